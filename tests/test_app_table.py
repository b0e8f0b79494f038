"""The app table end to end (issue 18): read, analyze -o, options, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import wspcap
from wspcap.cli import main
from wspcap.errors import ConfigError
from wspcap.tables.build import data_frame, empty_table
from wspcap.tables.schema import APP

ANOMALIES = Path(__file__).resolve().parent.parent / "samples" / "anomalies"
RPC = ANOMALIES / "app-request-unanswered.pcap"
GRAPHQL = ANOMALIES / "app-graphql-introspection.pcap"


def test_app_rows_pair_requests_and_answers() -> None:
    cap = wspcap.read(RPC)
    app = cap.app
    assert list(app.columns) == APP.names
    assert app.kind.astype(str).tolist() == ["request", "response", "request"]
    assert app.channel.tolist() == ["sum", "sum", "sum"]
    response = app.iloc[1]
    assert response.request_msg == 0 and response.latency == pd.Timedelta("1ms")
    assert pd.isna(app.iloc[0].latency) and pd.isna(app.iloc[2].request_msg)
    assert json.loads(response.fields) == {"id": 1, "method": "sum", "result": 3}
    assert str(app.ts.dtype) == "datetime64[ns, UTC]"
    assert isinstance(app.kind.dtype, pd.CategoricalDtype)
    conn = cap.connections.iloc[0]
    assert conn.app_protocol == "jsonrpc" and conn.app_confidence == pytest.approx(0.7)
    # Every row joins back to its message.
    merged = app.merge(cap.messages, on=["conn_id", "msg_index"], suffixes=("", "_m"))
    assert (merged.first_frame == merged.first_frame_m).all()
    assert (merged.ts == merged.ts_end).all()


def test_graphql_latency_to_first_answer() -> None:
    app = wspcap.read(GRAPHQL).app
    answer = app[app.kind == "response"].iloc[0]
    assert answer.channel == "IntrospectionQuery" and answer.id == "1"
    assert answer.request_msg == 2


def test_empty_table_has_the_dtypes() -> None:
    empty = data_frame(APP, empty_table(APP))
    full = wspcap.read(RPC).app
    assert list(empty.columns) == list(full.columns)
    for name in ("conn_id", "ts", "latency", "request_msg", "fields", "direction"):
        assert empty[name].dtype == full[name].dtype, name
    assert len(wspcap.read(ANOMALIES / "clean.pcap").app) == 0


def test_options_force_and_disable() -> None:
    off = wspcap.read(RPC, options=wspcap.Options(decoders=False))
    assert len(off.app) == 0 and not off.anomalies.code.astype(str).str.startswith("app_").any()
    assert off.connections.app_protocol.isna().all()
    forced = wspcap.read(ANOMALIES / "clean.pcap", options=wspcap.Options(decoder="jsonrpc"))
    assert forced.connections.app_protocol.tolist() == ["jsonrpc"]
    assert forced.connections.app_confidence.tolist() == [0.0]
    with pytest.raises(ConfigError):
        wspcap.read(RPC, options=wspcap.Options(decoder="no-such-decoder"))


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_analyze_to_writes_the_same_app_table(tmp_path: Path, fmt: str) -> None:
    written = wspcap.analyze_to(GRAPHQL, tmp_path, fmt, spill_bytes=0)
    assert written.paths[-1].endswith(f"app.{fmt}")
    whole = wspcap.read(GRAPHQL)
    pd.testing.assert_frame_equal(written.anomalies, whole.anomalies)
    assert written.connections.app_protocol.tolist() == ["graphql"]
    if fmt == "parquet":
        back = pd.read_parquet(tmp_path / "app.parquet")
        assert back.kind.astype(str).tolist() == whole.app.kind.astype(str).tolist()
        assert back.latency.tolist() == whole.app.latency.tolist()
        assert back.fields.tolist() == whole.app.fields.tolist()


def test_to_parquet_writes_app(tmp_path: Path) -> None:
    paths = wspcap.read(RPC).to_parquet(tmp_path)
    assert Path(paths[-1]).name == "app.parquet"


def test_cli_decoders_and_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decoders", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)["decoders"]
    names = [d["name"] for d in listed]
    assert {"jsonrpc", "graphql", "mqtt", "socketio"} <= set(names)
    assert all(d["recognition"] and d["module"].startswith("wspcap.app.") for d in listed)
    assert main(["analyze", str(RPC), "-q", "-o", str(tmp_path / "t")]) == 0
    assert (tmp_path / "t" / "app.parquet").exists()
    assert main(["analyze", str(RPC), "-q", "--decoder", "nope"]) == 2
    assert main(["analyze", str(RPC), "-q", "--no-decoders", "-o", str(tmp_path / "u")]) == 0
    assert len(pd.read_parquet(tmp_path / "u" / "app.parquet")) == 0


@pytest.mark.parametrize("fields", [
    {"method": "chat.send", "params": {"room": "r", "text": "caf\u00e9 \U0001f600 \"q\" \\ \n\x00\x1f\x7f"}},
    {"id": 2**70, "n": -1, "ok": True, "none": None, "list": [1, [2, {"a": []}]]},
    {"f": 1e16}, {"f": 1e-05}, {"f": 0.1}, {"f": -0.0}, {"f": float("nan")}, {"f": float("inf")},
    {"t": (1, 2)}, {"b": b"\x00\xff"}, {1: "int key"}, {"s": {1, 2}}, {"u": "\ud800"},
    {"deep": [[[[[[[[[[1]]]]]]]]]]}, {"o": object()},
])
def test_fields_text_is_the_standard_librarys(fields: dict[str, object]) -> None:
    """msgspec writes the ``fields`` text only where it spells it as the standard library."""
    from wspcap.app.fields import _FIELDS_TEXT, fields_text

    text = fields_text(fields)
    if "o" in fields:  # repr of an object: its address changes nothing but the text
        assert text.startswith('{"o":"<object object at ')
    else:
        assert text == _FIELDS_TEXT(fields)
        assert text == json.dumps(fields, ensure_ascii=False, separators=(",", ":"), default=repr)


def test_analyze_to_writes_the_app_rows_of_many_connections_in_reads_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Five crafted conversations, each from a client address of its own, their
    packets taken in turn, written a few packets at a time (a spill after each
    block of 600 bytes):
    the app table that ``analyze_to`` writes is ``read()``'s, rows in the same
    order, though each connection's rows came over many parts."""
    scapy = pytest.importorskip("scapy.all")
    names = ["app-request-unanswered.pcap", "app-graphql-introspection.pcap",
             "app-protocol-violation.pcap", "app-credentials-plaintext.pcap",
             "app-parse-failed.pcap"]
    flows = []
    for k, name in enumerate(names):
        packets = []
        for pkt in scapy.rdpcap(str(ANOMALIES / name)):
            ip = pkt[scapy.IP]
            ip.src, ip.dst = ((f"10.0.1.{k}", ip.dst) if ip.src == "10.0.0.1"
                              else (ip.src, f"10.0.1.{k}"))
            del ip.chksum
            del pkt[scapy.TCP].chksum
            packets.append(pkt)
        flows.append(packets)
    merged = []
    for i in range(max(map(len, flows))):
        merged += [f[i] for f in flows if i < len(f)]
    for i, pkt in enumerate(merged):
        pkt.time = 1_700_000_000 + i / 100
    path = tmp_path / "many.pcap"
    scapy.wrpcap(str(path), merged)

    whole = wspcap.read(path)
    assert whole.app.conn_id.nunique() == len(names)
    from wspcap.sources import files
    monkeypatch.setattr(files, "BLOCK_SIZE", 600)
    wspcap.analyze_to(path, tmp_path / "out", "parquet", spill_bytes=0)
    back = pd.read_parquet(tmp_path / "out" / "app.parquet")
    expected = whole.app.reset_index(drop=True)
    for column in expected.columns:
        assert back[column].astype(object).tolist() == expected[column].astype(object).tolist(), \
            column


def test_lone_surrogate_escapes_are_written_as_escapes(tmp_path: Path) -> None:
    """JSON's ``\\ud800`` escapes (a lone surrogate, which the standard
    library parses and UTF-8 cannot spell) in a method, an id and the params
    and result of a JSON-RPC conversation: ``read()`` and every export keep
    the rows, the text columns spell each surrogate as its escape, and the
    ``fields`` JSON reads back as what the standard library parsed."""
    pytest.importorskip("scapy.all")
    from golden.crafted import TEXT, Conversation

    conv = Conversation()
    conv.open()
    conv.upgrade()
    for i in range(3):  # (plain requests first: the conversation is JSON-RPC by content)
        conv.exchange("c2s", TEXT, b'{"jsonrpc":"2.0","method":"m","params":{"x":"a"},"id":%d}' % i)
    asked = b'{"jsonrpc":"2.0","method":"m\\udc00","params":{"x":"\\ud800"},"id":"\\udfff"}'
    answer = b'{"jsonrpc":"2.0","result":"\\ud800","id":"\\udfff"}'
    conv.exchange("c2s", TEXT, asked)
    conv.exchange("s2c", TEXT, answer)
    path = conv.crafted("lone-surrogates").write(tmp_path / "lone.pcap")
    app = wspcap.read(path).app
    assert list(app.kind) == ["request"] * 4 + ["response"]
    last = app.iloc[-2:]
    assert list(last.channel) == ["m\\udc00"] * 2 and list(last.id) == ["\\udfff"] * 2
    assert last.request_msg.iloc[1] == last.msg_index.iloc[0]
    assert json.loads(last.fields.iloc[0]) == {
        "method": "m\udc00", "params": json.loads(asked)["params"], "id": "\udfff"}
    assert json.loads(last.fields.iloc[1])["result"] == json.loads(answer)["result"]
    for fmt in ("parquet", "csv", "jsonl"):
        wspcap.analyze_to(path, tmp_path / fmt, fmt)
    assert pd.read_parquet(tmp_path / "parquet" / "app.parquet").fields.tolist() == \
        app.fields.tolist()
    assert main(["analyze", str(path), "-q"]) == 0


@pytest.mark.parametrize("compiled", [True, False])
def test_jsonrpc_ids_are_typed_in_pairs_and_anomalies(tmp_path: Path, compiled: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A JSON-RPC response pairs with the request of its very id, typed as the
    specification has it (7 and "7" are two ids): the row's request_msg and
    channel and the unanswered-request anomalies say the same thing, with the
    compiled loop and without it. (Before, the runner paired 7 with "7" by
    the id column's text while the decoder reported the request unanswered;
    and it named a null id's answer by its request's method, and took it as
    answered, with no request_msg.)"""
    pytest.importorskip("scapy.all")
    from golden.crafted import TEXT, Conversation

    from wspcap.app import jsonrpc

    if not compiled:
        monkeypatch.setattr(jsonrpc, "_rows", None)
    conv = Conversation()
    conv.open()
    conv.upgrade()
    for ident, answer in ((b"7", b'"7"'), (b'"8"', b"8"), (b"9", b"9"), (b'"a"', b'"a"'),
                          (b"null", b"null")):
        conv.exchange("c2s", TEXT, b'{"jsonrpc":"2.0","method":"m%s","params":[1],"id":%s}'
                      % (ident.strip(b'"'), ident))
        conv.exchange("s2c", TEXT, b'{"jsonrpc":"2.0","result":1,"id":%s}' % answer)
    path = conv.crafted("typed-ids").write(tmp_path / "typed.pcap")
    cap = wspcap.read(path)
    app = cap.app
    answers = app[app.kind == "response"]
    assert answers.id.tolist() == ["7", "8", "9", "a", pd.NA]  # (the column spells both 7)
    assert answers.request_msg.tolist() == [pd.NA, pd.NA, 4, 6, 8]
    assert answers.channel.tolist() == [pd.NA, pd.NA, "m9", "ma", "mnull"]
    assert answers.latency.notna().tolist() == [False, False, True, True, True]
    unanswered = cap.anomalies[cap.anomalies.code == "app_request_unanswered"]
    assert sorted(unanswered.detail) == ["JSON-RPC request 'm7' id 7 never answered",
                                         "JSON-RPC request 'm8' id 8 never answered"]
