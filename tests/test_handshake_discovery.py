"""Finding the opening handshake however the capture cuts and orders it (issue 15
items 4 and 5).

Item 4: a request whose first segment carries only ``G``, ``GE`` or ``GET``
made the connection vanish (the first segment alone did not look like a
request line). Every split point of the request head is tried here, and
heads sent a byte a segment.

Item 5: a capture merged from two taps (or with clock skew) may show the
server's SYN-ACK, its 101 and its first frames before the client's request,
or even before the client's SYN. Request and answer are paired by each
direction's TCP sequence, so the tables are those of the in-order capture;
only packet numbers and timestamps differ, as the packets moved (each packet
keeps its bytes; the crafted captures are timed 1 ms apart in capture order).

Both engine paths (per packet and by blocks) give the same tables on these
captures (see ``tests/test_blocks.py``).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from golden import crafted as C
from golden.rfc6455 import RFC_ACCEPT, RFC_KEY, TEXT
from hypothesis import given
from hypothesis import strategies as st
from scapy.utils import wrpcap
from test_blocks import assert_same

import wspcap
from wspcap.api.reading import analyze_to
from wspcap.engine import Pipeline
from wspcap.engine import runs as blocks
from wspcap.engine.options import EARLY_CHUNKS, PROBE_CHUNKS
from wspcap.http.upgrade import maybe_head_kind

REQUEST = C.request_head()
RESPONSE = C.response_head()
TABLES = ("connections", "frames", "messages", "anomalies")
#: The protocol layers (``sec_plaintext_ws`` fires on every ws:// connection).
LAYERS = ("capture_", "tcp_", "http_", "ws_", "pmd_")


@pytest.fixture(autouse=True)
def _every_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The block path for runs of any length (as in tests/test_blocks.py)."""
    monkeypatch.setattr(blocks, "MIN_PACKETS", 1)


def _chat(conv: C.Conversation) -> None:
    """The server greets first (two frames), then one message each way, then the close."""
    conv.exchange("s2c", TEXT, b"welcome")
    conv.exchange("s2c", TEXT, b"second")
    conv.exchange("c2s", TEXT, "Hello, server \u2713".encode())
    conv.exchange("s2c", TEXT, b"world")
    conv.closing_handshake()
    conv.close()


def _conversation(request_sizes: list[int] | None = None,
                  response_sizes: list[int] | None = None) -> C.Conversation:
    conv = C.Conversation()
    conv.open()
    conv.upgrade(REQUEST, RESPONSE, request_sizes=request_sizes,
                 response_sizes=response_sizes)
    _chat(conv)
    return conv


def _check(capture: Any, conv: C.Conversation) -> None:
    """One established connection with the RFC's handshake and every message sent."""
    assert len(capture.connections) == 1
    row = capture.connections.iloc[0]
    assert (row.client_ip, int(row.client_port)) == conv.client
    assert (row.server_ip, int(row.server_port)) == conv.server
    assert row.handshake and row.established and not row.midstream
    assert (row.method, row.uri, row.host, row.version) == (
        "GET", "/chat", "server.example.com", "13")
    assert (row.key, row.accept, int(row.status)) == (RFC_KEY, RFC_ACCEPT, 101)
    assert bool(row.accept_valid)
    assert (int(row.frames_c2s), int(row.frames_s2c)) == (2, 4)
    f = capture.frames
    for d, head in (("c2s", REQUEST), ("s2c", RESPONSE)):
        mine = f[f.direction == d]
        assert int(row[f"bytes_{d}"]) == len(head) + int((mine.header_len
                                                          + mine.payload_len).sum())
        assert int(mine.stream_offset.iloc[0]) == len(head)
    for d in ("c2s", "s2c"):
        m = capture.messages[capture.messages.direction == d]
        assert [(str(t), bytes(p)) for t, p in zip(m.type, m.payload)] == conv.sent[d]
        assert m.complete.all()
    assert list(f.frame_index) == list(range(6))
    assert list(f.direction) == ["s2c", "s2c", "c2s", "s2c", "c2s", "s2c"]
    codes = [c for c in capture.anomalies.code.astype(str) if c.startswith(LAYERS)]
    assert codes == []
    assert list(capture.anomalies.code.astype(str)) == ["sec_plaintext_ws"]


def _written_as_read(path: Path, tmp_path: Path) -> None:
    """analyze_to, writing the tables while it reads (after every packet), writes
    read()'s tables."""
    want = wspcap.read(path)
    analyze_to(path, tmp_path / "parts", spill_bytes=0)
    for name in TABLES:
        got = pd.read_parquet(tmp_path / "parts" / f"{name}.parquet")
        expected = getattr(want, name)
        pd.testing.assert_frame_equal(got, expected.astype(got.dtypes.to_dict()), obj=name)


def _read(conv: C.Conversation, tmp_path: Path, name: str = "capture") -> tuple[Any, Path]:
    path = conv.crafted(name).write(tmp_path / f"{name}.pcap")
    return wspcap.read(path), path


# -- item 4: the request cut anywhere ----------------------------------------------------

@pytest.mark.parametrize(("data", "kind"), [
    (b"G", None), (b"GE", None), (b"GET", None), (b"GET ", "request"), (b"GETX", ""),
    (b"H", None), (b"HE", None), (b"HT", None), (b"HTTP", None), (b"HTTP/", "response"),
    (b"OPTIONS", None), (b"OPTIONS ", "request"), (b"", None), (b"\x81\x05", ""),
    (b"get ", "")])
def test_head_kind(data: bytes, kind: str | None) -> None:
    assert maybe_head_kind(data) == kind


@given(st.sampled_from([b"GET /", b"HEAD /", b"HTTP/1.1 101", b"CONNECT x", b"PUT /", b""])
       .flatmap(lambda start: st.binary(max_size=10).map(lambda tail: start + tail))
       | st.binary(max_size=12))
def test_head_kind_once_told_stays(data: bytes) -> None:
    """More bytes never change a decided kind, and a start is told by its 8th byte."""
    kind = maybe_head_kind(data)
    for n in range(len(data) + 1):
        assert maybe_head_kind(data[:n]) in (None, kind)
    assert kind is not None or len(data) < 8


@pytest.mark.parametrize("first", range(1, len(REQUEST)))
def test_request_split_at_every_point(first: int, tmp_path: Path) -> None:
    """The head's first segment carries ``first`` bytes, the second the rest."""
    conv = _conversation(request_sizes=[first, len(REQUEST) - first])
    capture, _ = _read(conv, tmp_path)
    _check(capture, conv)
    # the request is read when its last segment comes (packet 5: SYN, SYN-ACK, ACK, 2 parts)
    assert int(capture.anomalies.packet.iloc[0]) == 5


@pytest.mark.parametrize("seed", range(12))
def test_request_split_into_many_segments(seed: int, tmp_path: Path) -> None:
    """The head cut at several random points, the first cuts often within the method."""
    rng = random.Random(seed)
    cuts = sorted({rng.randint(1, 4), *rng.sample(range(1, len(REQUEST)), rng.randint(1, 8))})
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, len(REQUEST)])]
    conv = _conversation(request_sizes=sizes)
    capture, path = _read(conv, tmp_path)
    _check(capture, conv)
    assert_same(path)


def test_request_and_answer_a_byte_a_segment(tmp_path: Path) -> None:
    conv = _conversation(request_sizes=[1] * len(REQUEST), response_sizes=[1] * len(RESPONSE))
    capture, path = _read(conv, tmp_path)
    _check(capture, conv)
    row = capture.connections.iloc[0]
    # the request head is complete with its last byte's packet, and so is the answer
    request_done = 3 + len(REQUEST)
    answer_done = request_done + 1 + len(RESPONSE)
    assert int(capture.anomalies.packet.iloc[0]) == request_done
    assert row.ts_start == _at(1)
    assert int(capture.frames.packet.iloc[0]) == answer_done + 2
    assert_same(path)


@pytest.mark.parametrize("method", [b"POST", b"OPTIONS", b"HEAD"])
def test_other_methods_split_after_one_byte(method: bytes, tmp_path: Path) -> None:
    """Any method, not only GET (the upgrade is then flagged http_method_not_get)."""
    request = method + REQUEST[3:]
    conv = C.Conversation()
    conv.open()
    conv.upgrade(request, RESPONSE, request_sizes=[1, 2, len(request) - 3])
    _chat(conv)
    capture, _ = _read(conv, tmp_path)
    row = capture.connections.iloc[0]
    assert row.established and row.method == method.decode()
    assert list(capture.anomalies.code.astype(str)) == ["http_method_not_get",
                                                         "sec_plaintext_ws"]


def test_a_lone_byte_that_is_not_http_is_still_not_followed() -> None:
    """A connection whose first bytes are a prefix of a method and then not HTTP is
    given up as before (no WebSocket row)."""
    conv = C.Conversation()
    conv.open()
    conv.send("c2s", b"G", [1])
    conv.send("c2s", b"ARBAGE that is not HTTP\r\n\r\n")
    conv.send("s2c", b"SSH-2.0-OpenSSH_9.6\r\n")
    conv.close()
    p = Pipeline()
    for n, pkt in enumerate(conv.crafted("other").packets, 1):
        p.receive_packet(n, n, 1, bytes(pkt))
    collector = p.finish()
    assert collector.sessions == []


# -- item 5: the answer before the request in capture order ------------------------------

def _at(packet: int) -> pd.Timestamp:
    """The timestamp of a crafted capture's packet ``packet`` (1 ms apart)."""
    return pd.Timestamp(C.T0, unit="s", tz="UTC") + pd.Timedelta(milliseconds=packet - 1)


def _reordered(moved_before: str) -> tuple[C.Conversation, C.Conversation, list[int]]:
    """The in-order conversation, and the same packets with the server's SYN-ACK, its
    ACK of the request, its 101 and its two first frames placed before the client's
    request (``"request"``) or before the client's SYN (``"syn"``).

    Returns both and ``new``: ``new[i]`` is the reordered packet number of the in-order
    packet ``i`` (1-based; ``new[0]`` unused).
    """
    conv = _conversation()
    # 1 SYN, 2 SYN-ACK, 3 ACK, 4 request, 5 ACK (s), 6 101, 7 ACK (c), 8 welcome,
    # 9 ACK (c), 10 second, 11 ACK (c), ...
    server_first = [2, 5, 6, 8, 10]
    client = [1, 3, 4, 7, 9, 11]
    order = ([1, *server_first, 3, 4, 7, 9, 11] if moved_before == "request"
             else [*server_first, *client])
    order += range(12, len(conv.packets) + 1)
    assert sorted(order) == list(range(1, len(conv.packets) + 1))
    late = C.Conversation()
    late.packets = [conv.packets[i - 1] for i in order]
    late.sent = conv.sent
    new = [0] * (len(order) + 1)
    for position, i in enumerate(order, 1):
        new[i] = position
    return conv, late, new


def _moved(table: pd.DataFrame, new: list[int], packets: tuple[str, ...],
           stamps: tuple[str, ...]) -> pd.DataFrame:
    """``table`` of the in-order capture with its packet numbers and timestamps moved
    with their packets."""
    out = table.copy()
    base = pd.Timestamp(C.T0, unit="s", tz="UTC")
    for column in packets:
        out[column] = pd.Series([new[int(p)] for p in table[column]], index=table.index,
                                dtype=table[column].dtype)
    for column in stamps:
        old = ((table[column] - base) / pd.Timedelta(milliseconds=1)).round().astype(int) + 1
        out[column] = pd.Series([_at(new[p]) for p in old], index=table.index,
                                dtype=table[column].dtype)
    return out


@pytest.mark.parametrize("moved_before", ["request", "syn"])
def test_answer_before_request(moved_before: str, tmp_path: Path) -> None:
    conv, late, new = _reordered(moved_before)
    want, _ = _read(conv, tmp_path, "in_order")
    got, path = _read(late, tmp_path, "late")
    _check(got, conv)
    # Packet numbers and timestamps follow their packets. A connection's ts_start and
    # ts_end are its first and last packets in capture order: packets 1 and n in both.
    expected = {
        "connections": want.connections,
        "frames": _moved(want.frames, new, ("packet",), ("ts", "ts_start")),
        "messages": _moved(want.messages, new, ("packet_start", "packet_end"),
                           ("ts_start", "ts_end")),
        "anomalies": _moved(want.anomalies, new, ("packet",), ("ts",)),
    }
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(got, name), expected[name], obj=name)
    assert_same(path)
    _written_as_read(path, tmp_path)


def test_answer_before_a_request_cut_after_one_byte(tmp_path: Path) -> None:
    """Items 4 and 5 together: the answer first, then a request whose first segment is
    ``G``, the answer itself a byte a segment."""
    conv = C.Conversation()
    conv.open()
    syn, synack, ack = conv.packets
    conv.packets = []
    request = conv.send("c2s", REQUEST, [1, 2, len(REQUEST) - 3], ack=False, keep=False)
    answer = conv.send("s2c", RESPONSE, [1] * len(RESPONSE), ack=False, keep=False)
    conv.packets = [syn, synack, *answer, ack, *request]
    _chat(conv)
    capture, path = _read(conv, tmp_path)
    _check(capture, conv)
    row = capture.connections.iloc[0]
    assert row.ts_start == _at(1)
    assert_same(path)


def test_many_frames_before_the_request(tmp_path: Path) -> None:
    """Past the few segments a probe looks at: a 101 and 40 frames, each in its own
    segment, before the request."""
    conv = C.Conversation()
    conv.open()
    syn, synack, ack = conv.packets
    conv.packets = []
    request = conv.send("c2s", REQUEST, ack=False, keep=False)
    early = conv.send("s2c", RESPONSE, ack=False, keep=False)
    for n in range(40):
        early += conv.send("s2c", conv.message("s2c", TEXT, f"tick {n}".encode()),
                           ack=False, keep=False)
    conv.packets = [syn, synack, *early, ack, *request]
    conv.exchange("c2s", TEXT, b"hello")
    conv.closing_handshake()
    conv.close()
    capture, path = _read(conv, tmp_path)
    row = capture.connections.iloc[0]
    assert row.established and int(row.status) == 101 and not row.midstream
    for d in ("c2s", "s2c"):
        m = capture.messages[capture.messages.direction == d]
        assert [(str(t), bytes(p)) for t, p in zip(m.type, m.payload)] == conv.sent[d]
    assert list(capture.anomalies.code.astype(str)) == ["sec_plaintext_ws"]
    assert_same(path)


def test_an_answer_without_its_request_is_held_a_few_segments() -> None:
    """Only the server's direction captured (asymmetric routing): a plain HTTP answer
    is held for PROBE_CHUNKS * 4 segments at most, then the connection is let go."""
    conv = C.Conversation()
    conv.open()
    conv.send("s2c", b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", ack=False)
    for _ in range(PROBE_CHUNKS * 4 + 5):
        conv.send("s2c", b"x" * 1000, ack=False)
    p = Pipeline()
    packets = conv.crafted("asymmetric").packets
    for n, pkt in enumerate(packets, 1):
        p.receive_packet(n, n, 1, bytes(pkt))
    session = p._all[0]
    assert session.ignored and all(not d.pending for d in session.dirs)
    assert p.finish().sessions == []


def test_a_101_without_its_request_starts_the_frames(tmp_path: Path) -> None:
    """The capture starts after the request: the server's 101 is there, then frames.
    The server's bytes after the 101 head are frames (they were read from the head's
    first byte on, as garbage)."""
    conv = C.Conversation()
    conv.open()
    conv.upgrade(REQUEST, RESPONSE)
    _chat(conv)
    conv.packets = conv.packets[4:]  # from the server's ACK of the request on
    capture, path = _read(conv, tmp_path)
    row = capture.connections.iloc[0]
    assert row.established and row.midstream and not row.handshake
    for d in ("c2s", "s2c"):
        m = capture.messages[capture.messages.direction == d]
        assert [(str(t), bytes(p)) for t, p in zip(m.type, m.payload)] == conv.sent[d]
    f = capture.frames
    assert int(f[f.direction == "s2c"].stream_offset.iloc[0]) == len(RESPONSE)
    assert sorted(c for c in capture.anomalies.code.astype(str) if c.startswith(LAYERS)) == [
        "http_handshake_missing", "tcp_midstream"]
    assert_same(path)


@pytest.mark.parametrize("skew_ms", [2, 10, 30])
def test_server_tap_clock_skew(skew_ms: int, tmp_path: Path) -> None:
    """Two taps merged by timestamp, the server's clock ``skew_ms`` behind: every server
    packet moves earlier (its SYN-ACK before the SYN at 2 ms and more, its 101 and first
    frames before the request, answers before what they answer)."""
    conv = C.Conversation()
    conv.open()
    conv.upgrade(REQUEST, RESPONSE)
    conv.exchange("s2c", TEXT, b"welcome")
    for n in range(5):
        conv.exchange("c2s", TEXT, f"hello {n}".encode())
        conv.exchange("s2c", TEXT, f"world {n}".encode())
    conv.closing_handshake()
    conv.close()
    packets = conv.crafted("skew").packets
    for pkt in packets:
        if pkt.sport == conv.server[1]:
            pkt.time -= skew_ms / 1000 + 0.0005
    packets.sort(key=lambda pkt: pkt.time)
    assert packets[0].sport == conv.server[1]
    path = tmp_path / "skew.pcap"
    wrpcap(str(path), packets)
    capture = wspcap.read(path)
    assert len(capture.connections) == 1
    row = capture.connections.iloc[0]
    assert row.established and not row.midstream and bool(row.accept_valid)
    assert (row.client_ip, int(row.client_port)) == conv.client
    for d in ("c2s", "s2c"):
        m = capture.messages[capture.messages.direction == d]
        assert [(str(t), bytes(p)) for t, p in zip(m.type, m.payload)] == conv.sent[d]
    codes = [c for c in capture.anomalies.code.astype(str) if c.startswith(LAYERS)]
    assert codes == []
    assert_same(path)


@pytest.mark.parametrize("frames", [3, EARLY_CHUNKS + 10])
def test_only_the_server_direction_captured(frames: int, tmp_path: Path) -> None:
    """Asymmetric routing: the 101 and the server's frames, never the request. Held a
    while in case the request comes late (EARLY_CHUNKS segments), then, or at the end
    of input, read as frames of a connection whose request was not captured."""
    conv = C.Conversation()
    conv.open()
    conv.packets = [conv.packets[1]]  # the SYN-ACK only
    conv.send("s2c", RESPONSE, ack=False)
    for n in range(frames):
        conv.send("s2c", conv.message("s2c", TEXT, f"tick {n}".encode()), ack=False)
    capture, path = _read(conv, tmp_path)
    row = capture.connections.iloc[0]
    assert row.established and not row.handshake
    assert (row.client_ip, int(row.client_port)) == conv.client
    m = capture.messages
    assert [(str(t), bytes(p)) for t, p in zip(m.type, m.payload)] == conv.sent["s2c"]
    assert list(m.direction.unique()) == ["s2c"]
    assert int(capture.frames.stream_offset.iloc[0]) == len(RESPONSE)
    a = capture.anomalies
    assert sorted(c for c in a.code.astype(str) if c.startswith(LAYERS)) == [
        "http_handshake_missing"]
    assert a[a.code == "http_handshake_missing"].detail.iloc[0].startswith(
        "frames after a 101 answer whose request was not captured")
    assert_same(path)
    _written_as_read(path, tmp_path)


@pytest.mark.parametrize("lost", [0, 1, 2])
def test_request_with_a_lost_segment(lost: int, tmp_path: Path) -> None:
    """A segment of the request head missing from the capture: its fields cannot be
    read, but the connection no longer vanishes. Its frames are read after the head's
    end and after the 101, as for a request that was not captured, and the loss is
    told (tcp_gap, http_handshake_missing)."""
    conv = C.Conversation()
    conv.open()
    cuts = [5, 30, 60, len(REQUEST) - 95]
    packets = conv.send("c2s", REQUEST, cuts)
    conv.packets.remove(packets[lost + 1])  # (2: the head's end, CRLF CRLF, is lost)
    conv.send("s2c", RESPONSE)
    _chat(conv)
    capture, path = _read(conv, tmp_path)
    row = capture.connections.iloc[0]
    assert row.established and not row.handshake and not row.midstream
    assert int(row.gap_bytes) == cuts[lost + 1]
    for d in ("c2s", "s2c"):
        m = capture.messages[capture.messages.direction == d]
        assert [(str(t), bytes(p)) for t, p in zip(m.type, m.payload)] == conv.sent[d]
    f = capture.frames
    assert int(f[f.direction == "c2s"].stream_offset.iloc[0]) == len(REQUEST)
    assert int(f[f.direction == "s2c"].stream_offset.iloc[0]) == len(RESPONSE)
    a = capture.anomalies
    assert sorted(c for c in a.code.astype(str) if c.startswith(LAYERS)) == [
        "http_handshake_missing", "tcp_gap"]
    assert a[a.code == "tcp_gap"].detail.iloc[0] == (
        f"{cuts[lost + 1]} bytes missing at stream offset {sum(cuts[:lost + 1])}")
    assert_same(path)
    _written_as_read(path, tmp_path)
