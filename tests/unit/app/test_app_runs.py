"""Runs of messages give what the messages one by one give, and the fast JSON
parse gives the standard library's values.

- :func:`wspcap.app._json.loads` (msgspec, the standard library for what
  msgspec refuses) against ``json.loads`` as the decoders called it before:
  random JSON values, random bytes, and the edges where the two parsers differ.
- ``Decoder.receive_run`` against ``receive`` on each message, for every
  decoder forced on every sample conversation (its own and the others').
- ``Runner.feed_run`` against ``Runner.feed``.
- The ``app`` table made with runs against the message-by-message loop, on
  the bundled captures, in one part and in several, with few references kept.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from app_samples import FOREIGN, SAMPLES, conversation, j
from framed_samples import CONVERSATIONS
from hypothesis import given, settings
from hypothesis import strategies as st

import wspcap
import wspcap.tables.app as app_table
from wspcap.app import DECODERS, AppMessage, ConnFacts
from wspcap.app._json import MAX_JSON_BYTES, NOT_JSON, loads
from wspcap.app.base import Decoder, MessageRun
from wspcap.app.runner import Runner
from wspcap.tables.build import data_frame
from wspcap.tables.schema import APP

SAMPLES_DIR = Path(__file__).resolve().parents[3] / "samples"


def _raise(name: str) -> Any:
    raise ValueError(name)


def stdlib(data: bytes | str) -> Any:
    """What ``loads`` gave before msgspec: the standard library's parse."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text, parse_constant=_raise)
    except (ValueError, RecursionError, TypeError):
        return NOT_JSON


def same(a: Any, b: Any) -> bool:
    """Equal values of the same types all the way down (1 is not 1.0, -0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b) or (math.isnan(a) and isinstance(b, float) and math.isnan(b))
    return bool(a == b)


EDGES = [
    b"123456789012345678901234567890", b"-9223372036854775809", b"18446744073709551616",
    b"[1e400, -1e400, 1.7976931348623159e308]", b'"\\ud800"', b'{"k": "\\udc00x"}',
    b"NaN", b"[Infinity]", b"-Infinity", b"\xef\xbb\xbf{}", b"\xff\xfe", b"", b" ", b"{",
    b"9" * 5000, b"1" * 400, b"[" * 5000 + b"]" * 5000, b"[" * 100 + b"]" * 100,
    b'{"a": 1, "b": 2, "a": 3}', b" \t\r\n[1]\n ", b"\x0c[]", b"[1,]", b"01", b"1.", b".5",
    b"-0", b"-0.0", b"0e0", b"1E-400", b"0.1", b"1.0000000000000002", b"5e-324", b"1e22",
    b'"\\u0000\\t\\"\\\\\\/"', '"é😀"'.encode(), b'"\xed\xa0\x80"', b'"\x7f"', b'"\t"',
    b"true", b"null", b"[true, false, null]", b'{"jsonrpc": "2.0"}', b"{}\x00",
]


@pytest.mark.parametrize("data", EDGES, ids=range(len(EDGES)))
def test_loads_is_the_standard_librarys(data: bytes) -> None:
    assert same(loads(data), stdlib(data)) or loads(data) is stdlib(data) is NOT_JSON
    text = data.decode("utf-8", "surrogateescape")  # bad bytes become lone surrogates
    assert same(loads(text), stdlib(text)) or loads(text) is stdlib(text) is NOT_JSON


def test_loads_size_limit() -> None:
    assert loads(b" " * (MAX_JSON_BYTES - 2) + b"[]") == []
    assert loads(b" " * (MAX_JSON_BYTES - 1) + b"[]") is NOT_JSON


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=5),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES, st.booleans(), st.sampled_from([None, 1]))
def test_loads_random_json(value: Any, ascii_only: bool, indent: int | None) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    for data in (text, text.encode("utf-8", "surrogatepass")):
        assert same(loads(data), stdlib(data))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_loads_random_bytes(data: bytes) -> None:
    got, want = loads(data), stdlib(data)
    assert got is want is NOT_JSON or same(got, want)


def as_run(messages: list[AppMessage]) -> MessageRun:
    return MessageRun([m.msg_index for m in messages], [m.direction for m in messages],
                      [m.type for m in messages], [m.payload for m in messages],
                      [m.ts for m in messages], [m.complete for m in messages])


#: Conversations the runs are checked on: every sample, and messages that are
#: JSON but not any protocol, or say "jsonrpc" without being it.
CHAT = conversation(*[("c2s" if i % 2 else "s2c", j({"t": "msg", "seq": i, "text": "hi"}))
                      for i in range(6)])
ODD = conversation(
    ("c2s", j({"note": "jsonrpc"})), ("s2c", '{"x": "\\"jsonrpc\\""}'), ("c2s", "[]"),
    ("c2s", j({"jsonrpc": "1.0", "method": "m"})), ("s2c", "not json"), ("c2s", b"\x00\x01"),
    ("c2s", j({"json\\u0072pc": 1})), ("s2c", j({"jsonrpc": "2.0", "method": "m", "id": 7})),
    ("c2s", "x" * 10), ("s2c", j({"jsonrpc": "2.0", "result": 1, "id": 7})),
    ("c2s", " " * (MAX_JSON_BYTES + 1)), ("s2c", "42"),
)
#: Protocol messages whose key is spelled with an escape, so that the bytes a
#: decoder's ``marks`` look for are not there: a run holding one is parsed.
ESCAPED = conversation(
    ("c2s", j({"t": "msg", "seq": 1})),
    ("c2s", '{"\\u0074ype":"connection_init","payload":{}}'),
    ("s2c", '{"\\u0074ype":"connection_ack"}'),
    ("c2s", '{"\\u0074opic":"room:1","event":"phx_join","payload":{},"ref":"1"}'),
    ("s2c", j({"t": "msg", "seq": 2})),
    ("c2s", b"\x00\x01\x01\x03\x04" + b"1" + b"room" + b"join"),
)
RUNS: dict[str, tuple[ConnFacts, list[AppMessage]]] = {
    **{f"sample-{name}": (s.facts, s.messages) for name, s in SAMPLES.items()},
    **{f"framed-{name}": (facts, messages) for name, (facts, messages) in CONVERSATIONS.items()},
    **{f"foreign-{name}": (ConnFacts(), messages) for name, messages in FOREIGN.items()},
    "chat": (ConnFacts(), CHAT),
    "odd": (ConnFacts(), ODD),
    "escaped": (ConnFacts(), ESCAPED),
    # Each protocol's message that holds its decoder's marks and few others.
    "marked": (ConnFacts(), conversation(
        ("s2c", j([17, 1, 2])), ("s2c", j([33, 5, 6])), ("s2c", j({"type": "ka"})),
        ("c2s", j({"topic": "t", "event": "e", "payload": 1, "ref": None})),
        ("c2s", j({"type": 6}) + "\x1e"), ("c2s", j({"command": "subscribe", "identifier": "x"})),
        ("c2s", j({"jsonrpc": "2.0", "method": "m"})))),
}


def one_by_one(decoder: Decoder, messages: list[AppMessage]) -> list[tuple[int, list[Any]]]:
    out = []
    for i, message in enumerate(messages):
        got = decoder.receive(message)
        if got:
            out.append((i, got))
    return out


@pytest.mark.parametrize("name", sorted(DECODERS))
@pytest.mark.parametrize("conv", sorted(RUNS))
@pytest.mark.parametrize("facts_too", [True, False])
def test_receive_run_is_receive(name: str, conv: str, facts_too: bool) -> None:
    facts, messages = RUNS[conv]
    facts = facts if facts_too else ConnFacts()
    cls = DECODERS[name]
    single, whole = cls(facts), cls(facts)
    assert whole.receive_run(as_run(messages)) == one_by_one(single, messages)
    assert whole.finish() == single.finish()
    # In two runs, cut anywhere: the same.
    for cut in range(len(messages) + 1):
        single, split = cls(facts), cls(facts)
        want = one_by_one(single, messages)
        got = split.receive_run(as_run(messages[:cut]))
        got += [(i + cut, out) for i, out in split.receive_run(as_run(messages[cut:]))]
        assert got == want and split.finish() == single.finish()


#: Messages a run is drawn from: JSON of no protocol, and the protocols'
#: messages that the JSON decoders' ``marks`` look for, plainly and escaped.
POOL = [
    j({"t": "msg", "room": "r", "text": "hi"}), j({"t": "msg", "list": [1, 2]}), "not json",
    j({"type": "connection_init", "payload": {}}), j({"type": "next", "id": "1"}),
    '{"\\u0074ype":"ka"}', j({"type": "nothing we know"}),
    j({"topic": "room:1", "event": "phx_join", "payload": {}, "ref": "1"}),
    j(["1", "2", "room:1", "phx_reply", {"status": "ok", "response": {}}]),
    '{"\\u0074opic":"room:1","event":"phx_leave","payload":{},"ref":"3"}',
    j({"jsonrpc": "2.0", "method": "m", "id": 1}), '{"json\\u0072pc":"2.0","method":"n"}',
    b"\x00\x01\x01\x03\x04" + b"1" + b"room" + b"join", b"\x02\x01\x01\x03\x00",
    j({"command": "subscribe", "identifier": j({"channel": "ChatChannel"})}),
    j({"type": "welcome"}), j({"identifier": "x", "message": {"a": 1}}), j({"command": "nope"}),
    '{"\\u0063ommand":"subscribe","identifier":"x"}',
    j([1, "realm1", {}]), j([2, 1, {}]), j([17, 1, 2]), j([33, 5, 6]), '["\\u0041"]', j([99, "not wamp"]),
    j({"protocol": "json", "version": 1}) + "\x1e", j({"type": 6}) + "\x1e",
    j({"type": 1, "target": "send", "arguments": []}) + "\x1e" + j({"type": 6}) + "\x1e",
    "\x1e", "{}\x1e",
    '0{"sid":"a","pingInterval":25000,"pingTimeout":20000}', "40", '42["chat",{"a":1}]',
    '451-["up",{"_placeholder":true,"num":0}]', "2", "3", "bAAEC", b"\x01\x02",
]


def state(value: Any) -> Any:
    """A decoder's state, compared by value all the way down (its helper
    objects compare by identity)."""
    if isinstance(value, dict):
        return {k: state(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [state(v) for v in value]
    if isinstance(value, type):
        return value
    if hasattr(value, "__dict__"):
        return type(value).__name__, state(vars(value))
    slots = getattr(type(value), "__slots__", None)
    if slots and not hasattr(type(value), "__dataclass_fields__"):
        return type(value).__name__, state({name: getattr(value, name) for name in slots})
    return value


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["graphql", "phoenix", "jsonrpc", "actioncable", "wamp", "signalr",
                        "socketio"]),
       st.lists(st.tuples(st.sampled_from(["c2s", "s2c"]), st.sampled_from(POOL)), max_size=12),
       st.integers(0, 12),
       st.sampled_from([None, "/socket.io/?EIO=4&transport=websocket&token=s3cret"]))
def test_runs_without_marks_give_nothing(name: str, items: list[tuple[str, str | bytes]],
                                         cut: int, uri: str | None) -> None:
    """A run none of whose messages holds a decoder's marks (Socket.IO: starts
    as an Engine.IO packet) is passed over unparsed; whatever the mix, runs
    give what the messages one by one give, and leave the same state."""
    messages = conversation(*items)
    cls = DECODERS[name]
    facts = ConnFacts(uri=uri)
    single, split = cls(facts), cls(facts)
    want = one_by_one(single, messages)
    got = split.receive_run(as_run(messages[:cut]))
    got += [(i + cut, out) for i, out in split.receive_run(as_run(messages[cut:]))]
    assert got == want
    assert state(split) == state(single)  # (Socket.IO's last time seen among them)
    assert split.finish() == single.finish()


@pytest.mark.parametrize("forced", [None, *sorted(DECODERS)])
@pytest.mark.parametrize("conv", sorted(RUNS))
def test_feed_run_is_feed(forced: str | None, conv: str) -> None:
    facts, messages = RUNS[conv]
    single, runs = Runner(facts, forced), Runner(facts, forced)
    want = []
    for i, message in enumerate(messages):
        rows, findings = single.feed(message)
        if rows or findings:
            want.append((i, rows, findings))
    head = 2
    got = [(i, *out) for i, message in enumerate(messages[:head])
           if any(out := runs.feed(message))]
    got += [(i + head, rows, findings)
            for i, rows, findings in runs.feed_run(as_run(messages[head:]))]
    assert got == want
    assert runs.finish() == single.finish()
    assert (runs.protocol, runs.confidence) == (single.protocol, single.confidence)


def test_feed_run_reports_a_decoder_that_raises() -> None:
    class Broken(Decoder):
        name = "broken"

        def receive_run(self, run: MessageRun) -> Any:
            raise RuntimeError("bug")

    runner = Runner(ConnFacts())
    runner._start(Broken, 1.0)
    (i, rows, findings), = runner.feed_run(as_run(CHAT))
    assert i == 0 and rows == [] and [f.code for f in findings] == ["app_parse_failed"]
    assert runner.feed_run(as_run([])) == []


CAPTURES = ["socketio.pcapng", "mqtt.pcapng", "anomalies/app-request-unanswered.pcap",
            "anomalies/app-parse-failed.pcap", "anomalies/app-credentials-in-clear.pcapng",
            "anomalies/app-keepalive-missed.pcap", "anomalies/app-protocol-violation.pcap"]


def decode(capture: wspcap.Capture, forced: str | None, parts: int,
           by_message: bool) -> tuple[pd.DataFrame, list[Any]]:
    connections = pa.Table.from_pandas(capture.connections, preserve_index=False)
    decoding = app_table.AppDecoding(app_table.facts_table(connections), forced)
    if by_message:  # the message-by-message loop only
        decoding._run = (  # type: ignore[method-assign]
            lambda conn_id, conn, part, lo, hi:
            decoding._loop(conn_id, conn, part.rows[lo:hi], part.m) and None)
    for part in np.array_split(np.arange(len(capture.messages)), parts):
        decoding.feed(app_table.message_columns(capture.messages.iloc[part]))
    result = decoding.finish(app_table.tls_of(connections))
    return data_frame(APP, result.table), result.anomalies


@pytest.mark.parametrize("capture", CAPTURES)
def test_table_by_runs_is_by_messages(capture: str, monkeypatch: pytest.MonkeyPatch) -> None:
    read = wspcap.read(SAMPLES_DIR / capture, options=wspcap.Options(decoders=False))
    for keep in (app_table.KEEP_REFS, 2):
        monkeypatch.setattr(app_table, "KEEP_REFS", keep)
        for forced in (None, "jsonrpc", "socketio"):
            for parts in (1, 3):
                (table, anomalies) = decode(read, forced, parts, by_message=False)
                (want_table, want_anomalies) = decode(read, forced, parts, by_message=True)
                pd.testing.assert_frame_equal(table, want_table, check_exact=True)
                assert anomalies == want_anomalies  # (the rows, in report order)


def test_table_by_runs_is_by_messages_where_times_are_unknown() -> None:
    """A message complete at no known time (its ``ts_end`` null) is one of
    time 0 to its decoder, by runs as by messages: no latency to or from
    it, whatever run it falls in (a JSON-RPC conversation long enough for
    runs, each request answered by the next message)."""
    read = wspcap.read(SAMPLES_DIR / "anomalies/app-request-unanswered.pcap",
                       options=wspcap.Options(decoders=False))
    n = 60
    messages = read.messages.iloc[[0] * n].reset_index(drop=True)
    payloads = [(b'{"jsonrpc":"2.0","method":"m","params":[%d],"id":%d}' if k % 2 == 0 else
                 b'{"jsonrpc":"2.0","result":%d,"id":%d}') % (k, k // 2) for k in range(n)]
    ts = pd.Series(pd.to_datetime(1_700_000_000_000_000_000 + 1_000_000 * np.arange(n),
                                  utc=True))
    ts.iloc[5::7] = pd.NaT
    read.messages = messages.assign(
        msg_index=np.arange(n), payload=payloads, ts_end=ts,
        direction=pd.Categorical(["c2s", "s2c"] * (n // 2),
                                 dtype=messages["direction"].dtype))
    for parts in (1, 3):
        (table, anomalies) = decode(read, None, parts, by_message=False)
        (want_table, want_anomalies) = decode(read, None, parts, by_message=True)
        pd.testing.assert_frame_equal(table, want_table, check_exact=True)
        assert anomalies == want_anomalies
    assert table.latency.notna().sum() == 22 and table.ts.isna().sum() == 8
    assert len(table) == n


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.tuples(st.just("add")),
    st.tuples(st.just("extend"), st.integers(0, 6)),
    st.tuples(st.just("keep"), st.integers(1, 8)),
    st.tuples(st.just("get"), st.integers(0, 40))), max_size=40))
def test_kept_references_are_those_of_a_list(ops: list[tuple[Any, ...]]) -> None:
    """The references kept for a connection (lists, then a run's arrays) find
    what a plain list of the same messages finds: after adds, runs, trims."""
    kept, model, nxt = app_table._Kept(), [], 0

    def refs(k: int) -> app_table._Refs:
        return app_table._Refs(*(10 * k + c for c in range(len(app_table._REF_COLUMNS))))

    for op, *arg in ops:
        if op == "add":
            kept.add(nxt, refs(nxt))
            model.append(nxt)
            nxt += 1
        elif op == "extend":
            index = np.arange(nxt, nxt + arg[0], dtype=np.int64)
            kept.extend(index, np.array([refs(k) for k in index.tolist()],
                                        np.int64).reshape(-1, len(app_table._REF_COLUMNS)))
            model += index.tolist()
            nxt += arg[0]
        elif op == "keep":
            kept.keep(arg[0])
            model = model[-arg[0]:]
        else:
            want = refs(arg[0]) if arg[0] in model else None
            assert kept.get(arg[0], None) == want
        assert len(kept) == len(model)
    assert [k for k in range(nxt) if kept.get(k, None) is not None] == model
