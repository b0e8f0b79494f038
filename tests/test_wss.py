"""wss:// read like ws://: the bundled TLS samples with their keys embedded, given as a
key log file, missing, or wrong.

``samples/wss.pcapng`` (TLS 1.3, permessage-deflate) and ``samples/wss-tls12.pcapng``
(TLS 1.2) were captured with tcpdump while the ``websockets`` library talked over
``ssl``; the client's key log is embedded in each (a Decryption Secrets Block, as
``editcap --inject-secrets`` writes). Their ground truth is checked by
``test_samples.py`` like every sample's; here, the ways of giving the keys.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from golden.paths import SAMPLES_DIR, anomaly_generator
from golden.tls import pcapng_secrets

import wspcap
from wspcap.cli import main
from wspcap.errors import ConfigError
from wspcap.sources import open_capture

WSS = ["wss.pcapng", "wss-tls12.pcapng"]


C2S = "c2s"


def split_secrets(path: Path, out: Path) -> str:
    """Write ``path`` without its Decryption Secrets Blocks to ``out``; return the key log."""
    bare, keys = pcapng_secrets(path.read_bytes())
    assert keys, "a pcapng with embedded keys"
    out.write_bytes(bare)
    return keys.decode()


def same_tables(a: wspcap.Capture, b: wspcap.Capture) -> None:
    for table in ("connections", "frames", "messages", "anomalies"):
        pd.testing.assert_frame_equal(getattr(a, table), getattr(b, table))


@pytest.mark.parametrize("name", WSS)
def test_embedded_keys_read_like_a_key_log_file(name: str, tmp_path: Path) -> None:
    bare = tmp_path / name
    keys = split_secrets(SAMPLES_DIR / name, bare)
    assert "CLIENT_" in keys
    with open_capture(bare) as cap:
        list(cap)
        assert cap.secrets == []
    keylog = tmp_path / "keys.log"
    keylog.write_text(keys)
    embedded = wspcap.read(SAMPLES_DIR / name)
    given = wspcap.read(bare, keylog=keylog)
    same_tables(embedded, given)
    assert embedded.connections.decrypted.all() and len(embedded.messages) == 11
    both = wspcap.read(SAMPLES_DIR / name, keylog=[keylog, keylog])
    same_tables(embedded, both)


@pytest.mark.parametrize("name", WSS)
def test_without_keys_the_connection_keeps_its_clear_facts(name: str, tmp_path: Path) -> None:
    bare = tmp_path / name
    split_secrets(SAMPLES_DIR / name, bare)
    cap = wspcap.read(bare)
    (row,) = cap.connections.itertuples()
    assert row.tls and not row.decrypted and not row.handshake
    assert row.sni == "localhost" and row.tls_version in ("TLS 1.2", "TLS 1.3")
    assert row.bytes_c2s > 0 and row.bytes_s2c > 0
    assert cap.frames.empty and cap.messages.empty
    assert set(cap.anomalies.code.astype(str)) == {"tls_keys_missing"}


def test_many_connections_count_only_those_known_to_be_websocket(tmp_path: Path) -> None:
    """33 concurrent wss:// connections from one client: with their keys they
    are WebSocket, and too many (``res_many_connections``); without, they
    are TLS connections that may be anything (a pool of HTTPS connections):
    each gets its row, none is counted."""
    m = anomaly_generator()
    sc = m.Scenario("many-wss", "generated")
    conns, keys = [], []
    for _ in range(33):
        tls = m.Tls13(sc)
        c = sc.conn(server_port=443)
        c.tls_open(tls)
        c.upgrade_after_tls()
        conns.append(c)
        keys.append(tls.keylog)
    for c in conns:
        c.shutdown(C2S)
    path = tmp_path / "many.pcap"
    sc.pcap.write(path)
    (tmp_path / "keys.log").write_text("".join(keys))
    with_keys = wspcap.read(path, keylog=tmp_path / "keys.log")
    assert with_keys.connections.decrypted.all() and with_keys.connections.handshake.all()
    codes = with_keys.anomalies.code.astype(str)
    assert (codes == "res_many_connections").sum() == 1
    without = wspcap.read(path)
    assert len(without.connections) == 33 and not without.connections.decrypted.any()
    assert "res_many_connections" not in set(without.anomalies.code.astype(str))


def test_keys_of_another_connection_do_not_open_it(tmp_path: Path) -> None:
    bare = tmp_path / "wss.pcapng"
    split_secrets(SAMPLES_DIR / "wss.pcapng", bare)
    other = split_secrets(SAMPLES_DIR / "wss-tls12.pcapng", tmp_path / "other.pcapng")
    (tmp_path / "other.log").write_text(other)
    cap = wspcap.read(bare, keylog=tmp_path / "other.log")
    assert not cap.connections.decrypted.any()
    assert "tls_keys_missing" in set(cap.anomalies.code.astype(str))


def test_wrong_keys_are_flagged(tmp_path: Path) -> None:
    bare = tmp_path / "wss.pcapng"
    keys = split_secrets(SAMPLES_DIR / "wss.pcapng", bare)
    wrong = "".join(f"{label} {random} {'11' * (len(secret) // 2)}\n"
                    for label, random, secret in (line.split() for line in keys.splitlines()
                                                  if line and not line.startswith("#")))
    (tmp_path / "wrong.log").write_text(wrong)
    cap = wspcap.read(bare, keylog=tmp_path / "wrong.log")
    codes = cap.anomalies.code.astype(str)
    assert (codes == "tls_decrypt_failed").sum() == 2  # once per direction
    assert cap.messages.empty


def test_a_missing_key_log_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="nope.log"):
        wspcap.read(SAMPLES_DIR / "wss.pcapng", keylog=tmp_path / "nope.log")


def test_no_plaintext_finding_on_wss() -> None:
    cap = wspcap.read(SAMPLES_DIR / "wss.pcapng")
    assert "sec_plaintext_ws" not in set(cap.anomalies.code.astype(str))
    assert cap.connections.tls_cipher.iloc[0] == "TLS_AES_256_GCM_SHA384"


@pytest.mark.parametrize("first", [1, 3, 5])
def test_client_hello_split_after_a_few_bytes(first: int, tmp_path: Path) -> None:
    """A ClientHello whose first segment holds 1-5 bytes is still found."""
    scapy_all = pytest.importorskip("scapy.all")
    keys = split_secrets(SAMPLES_DIR / "wss.pcapng", tmp_path / "bare.pcapng")
    (tmp_path / "keys.log").write_text(keys)
    packets = []
    with open_capture(tmp_path / "bare.pcapng") as cap:
        for _number, ts, _linktype, data, _wirelen in cap:
            pkt = scapy_all.Ether(data)
            pkt.time = ts / 1e9
            payload = bytes(pkt[scapy_all.TCP].payload)
            if payload[:2] == b"\x16\x03" and payload[5] == 1:  # the ClientHello
                for part, seq in ((payload[:first], 0), (payload[first:], first)):
                    piece = pkt.copy()
                    piece[scapy_all.TCP].remove_payload()
                    piece[scapy_all.TCP].seq = pkt[scapy_all.TCP].seq + seq
                    del piece[scapy_all.IP].len, piece[scapy_all.IP].chksum
                    del piece[scapy_all.TCP].chksum
                    piece = piece / scapy_all.Raw(part)
                    piece.time = pkt.time
                    packets.append(piece)
            else:
                packets.append(pkt)
    scapy_all.wrpcap(str(tmp_path / "split.pcap"), packets)
    whole = wspcap.read(SAMPLES_DIR / "wss.pcapng")
    split = wspcap.read(tmp_path / "split.pcap", keylog=tmp_path / "keys.log")
    assert split.connections.decrypted.all()
    assert [bytes(p) for p in split.messages.payload] == [bytes(p) for p in whole.messages.payload]


def test_keys_that_arrive_later_open_the_held_records(tmp_path: Path) -> None:
    """A live capture following a key log: the keys come after the connection's first
    records (as a browser writes them while the capture runs); the records wait for them,
    and the pcapng written carries the keys it used."""
    from wspcap.api.live import MessageEvent, Sniffer

    keys = split_secrets(SAMPLES_DIR / "wss.pcapng", tmp_path / "bare.pcapng")
    keyfile = tmp_path / "keys.log"
    with open_capture(tmp_path / "bare.pcapng") as cap:
        records = list(cap)

    def packets():  # type: ignore[no-untyped-def]
        for i, record in enumerate(records):
            if i == 12:  # after the handshake and the first protected records
                keyfile.write_text(keys)
                import time
                time.sleep(0.25)  # past the sniffer's poll interval
            yield record

    out = tmp_path / "live.pcapng"
    sniffer = Sniffer(source=packets(), keylog=keyfile, write=out)
    events = list(sniffer)
    cap = sniffer.capture()
    whole = wspcap.read(SAMPLES_DIR / "wss.pcapng")
    assert [bytes(p) for p in cap.messages.payload] == [bytes(p) for p in whole.messages.payload]
    assert sum(isinstance(e, MessageEvent) for e in events) == len(whole.messages)
    again = wspcap.read(out)  # no key log given: the file carries it
    assert [bytes(p) for p in again.messages.payload] == [bytes(p) for p in whole.messages.payload]


def test_keys_that_never_come(tmp_path: Path) -> None:
    from wspcap.api.live import Sniffer

    split_secrets(SAMPLES_DIR / "wss.pcapng", tmp_path / "bare.pcapng")
    with open_capture(tmp_path / "bare.pcapng") as cap:
        records = list(cap)
    sniffer = Sniffer(source=iter(records), keylog=tmp_path / "never.log")
    list(sniffer)
    cap = sniffer.capture()
    assert cap.messages.empty and not cap.connections.decrypted.any()
    assert "tls_keys_missing" in set(cap.anomalies.code.astype(str))


@pytest.mark.network
def test_live_wss_on_loopback(tmp_path: Path) -> None:
    """websockets over TLS 1.3 on lo, captured by the sniffer while the client writes
    its key log: every message decrypted, and the pcapng written reads the same."""
    from golden.tls import contexts
    from test_live import STEP, _data_messages, _free_port, _need_capture_rights, exchange
    from test_wss_browser import capturing

    _need_capture_rights()
    keyfile = tmp_path / "keys.log"
    server, client = contexts(tmp_path, keylog=keyfile)
    port = _free_port()
    out = tmp_path / "live.pcapng"
    with capturing(port, keyfile, 12 * STEP, write=out) as result:
        sent = exchange(port, "deflate", tls=(server, client))
    cap = result["cap"]
    (row,) = cap.connections.itertuples()
    assert row.tls and row.decrypted and row.tls_version == "TLS 1.3" and row.sni == "localhost"
    assert _data_messages(cap, "c2s") == sent["c2s"]
    assert _data_messages(cap, "s2c") == sent["s2c"]
    # The file reads the same messages, each direction's in the same order.
    # Across the two directions the order may differ: live, the key log is
    # polled between packets, and a direction whose secret comes after its
    # first records (a loaded machine delays the client's write, or the poll)
    # is decrypted when it comes, its messages listed then; reading the file,
    # the secrets of a block (here the whole file) are taken before its packets.
    again = wspcap.read(out)
    for direction in ("c2s", "s2c"):
        assert (list(again.messages[again.messages.direction == direction].payload)
                == list(cap.messages[cap.messages.direction == direction].payload))
    assert len(again.messages) == len(cap.messages)


def test_cli_keylog(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """analyze, report and plot take --keylog; without it the summary says what to do."""
    bare = tmp_path / "wss.pcapng"
    (tmp_path / "keys.log").write_text(split_secrets(SAMPLES_DIR / "wss.pcapng", bare))
    assert main(["analyze", str(bare)]) == 0
    out = capsys.readouterr().out
    assert "1 TLS connection not decrypted" in out and "--keylog" in out
    assert main(["analyze", str(bare), "--keylog", str(tmp_path / "keys.log"),
                 "-o", str(tmp_path / "out"), "--format", "csv", "-q"]) == 0
    messages = pd.read_csv(tmp_path / "out" / "messages.csv")
    assert len(messages) == 11
    assert main(["report", str(bare), "--keylog", str(tmp_path / "keys.log"),
                 "-o", str(tmp_path / "r.html"), "-q"]) == 0
    assert "bye over TLS" in (tmp_path / "r.html").read_text()
    assert main(["analyze", str(bare), "--keylog", str(tmp_path / "nope.log")]) == 2
    assert "nope.log" in capsys.readouterr().err


def _late_keys(tmp_path: Path, total: int) -> tuple[wspcap.Capture, int]:
    """Four wss:// connections read packet by packet holding their records for
    keys that come at the end (as a live capture following a key log), the
    bytes held by all of them bounded by ``total``; the Capture, and how many
    messages the four sent."""
    from wspcap.api.reading import _finish_records
    from wspcap.engine import Options, Pipeline
    from wspcap.tables.capture import Capture, CaptureInfo

    m = anomaly_generator()
    sc = m.Scenario("late-keys", "generated")
    keys, sent = [], 0
    for n in range(4):
        tls = m.Tls13(sc)
        c = sc.conn(server_port=443)
        c.tls_open(tls)
        c.upgrade_after_tls()
        for i in range(6):
            c.text(C2S, f"conn {n} message {i} " + "x" * 300)
            sent += 1
        keys.append(tls.keylog)
    path = tmp_path / "late.pcap"
    sc.pcap.write(path)
    p = Pipeline(Options(tls_hold=1 << 20, tls_hold_total=total))
    with open_capture(path) as cap:
        for number, ts, linktype, data, _wirelen in cap:
            p.receive_packet(number, ts, linktype, data)
        p.receive_secrets("".join(keys))
        info = CaptureInfo(str(path), cap.format)
        return Capture.from_collector(*_finish_records(p, info, cap.truncated)), sent


def test_records_held_for_keys_are_bounded_for_all_connections_together(
        tmp_path: Path) -> None:
    whole, sent = _late_keys(tmp_path, 1 << 20)
    assert whole.connections.decrypted.all() and len(whole.messages) == sent
    assert "tls_keys_late" not in set(whole.anomalies.code.astype(str))
    bounded, _ = _late_keys(tmp_path, 5000)  # about two connections' records
    late = bounded.anomalies[bounded.anomalies.code == "tls_keys_late"]
    assert len(late) >= 2 and late.detail.str.contains("all connections holding").all()
    assert 0 < len(bounded.messages) < sent  # those held within the bound still open


@pytest.mark.parametrize(("name", "late"), [
    ("wss.pcapng", "CLIENT_TRAFFIC_SECRET_0"), ("wss.pcapng", "SERVER_TRAFFIC_SECRET_0"),
    ("wss-tls12.pcapng", "CLIENT_RANDOM")])  # (TLS 1.2: one secret for both directions)
def test_one_direction_s_keys_late_keep_the_messages_in_order(name: str, late: str,
                                                              tmp_path: Path) -> None:
    # A key log followed while the capture runs (as ``wspcap live --keylog``
    # does) may name one direction's secret packets before the other's: the
    # tables are those of the keys known from the start, wherever the late
    # line comes (a request is not read after its answer, a ping after its
    # pong, the 101 before its request).
    from wspcap.api.reading import _finish
    from wspcap.engine import Options, Pipeline
    from wspcap.tables.capture import CaptureInfo
    from wspcap.tls.session import MAX_HELD

    bare = tmp_path / name
    keys = split_secrets(SAMPLES_DIR / name, bare).splitlines(keepends=True)
    later = [line for line in keys if line.startswith(late)]
    assert later
    first = "".join(line for line in keys if line not in later)
    with open_capture(bare) as cap:
        packets = list(cap)
    want = wspcap.read(SAMPLES_DIR / name)
    assert len(want.messages) == 11 and not len(want.anomalies)
    for at in range(1, len(packets) + 2, 3):
        p = Pipeline(Options(tls_hold=MAX_HELD))
        p.receive_secrets(first)
        for number, ts, linktype, data, _wirelen in packets:
            if number == at:
                p.receive_secrets("".join(later))
            p.receive_packet(number, ts, linktype, data)
        if at > len(packets):
            p.receive_secrets("".join(later))
        got = _finish(p, CaptureInfo(str(SAMPLES_DIR / name), "pcapng"), None)
        for table in ("messages", "anomalies"):
            pd.testing.assert_frame_equal(getattr(got, table), getattr(want, table),
                                          obj=f"{table}, keys at packet {at}")
