"""One direction of a connection (wspcap.engine.direction): what takes its
bytes, its layers' sink, and its TLS side; driven through its methods alone,
with a stand-in for its connection."""

from __future__ import annotations

from tests.golden.rfc6455 import CLOSE, TEXT, close_payload, frame
from wspcap.engine.collector import Collector
from wspcap.engine.direction import Chunk, Direction

SYN, ACK = 0x02, 0x10
MASK = b"\x01\x02\x03\x04"


class _Connection:
    """What a direction asks of its connection, recorded."""

    def __init__(self) -> None:
        self.conn_id: int | None = None
        self.tls = None
        self.reports: list[tuple[str, int | None, int | None]] = []  # code, index, offset
        self.conflicts: list[tuple[int, int, int]] = []  # d, offset, size
        self.lost: list[tuple[int, int]] = []  # offset, size
        self.nframes = 0
        self.nmessages = 0

    def report(self, ts: int, direction: str | None, frame_index: int | None, code: str,
               detail: str, packet: int | None, offset: int | None = None) -> None:
        self.reports.append((code, frame_index, offset))

    def conflict(self, ts: int, d: int, offset: int, size: int, packet: int) -> None:
        self.conflicts.append((d, offset, size))

    def tls_events(self, events: object, ts: int, packet: int) -> None:
        raise AssertionError("no TLS here")

    def head_lost(self, dr: Direction, offset: int, size: int, ts: int, packet: int) -> None:
        self.lost.append((offset, size))

    def count_frame(self) -> int:
        self.nframes += 1
        return self.nframes - 1

    def count_message(self) -> None:
        self.nmessages += 1


def direction(d: int = 0) -> tuple[Direction, _Connection, Collector]:
    conn, collector = _Connection(), Collector()
    return Direction(conn, d, collector, 1 << 20), conn, collector


def segments(dr: Direction, *payloads: bytes) -> None:
    """``payloads`` in order through the direction's reassembler (after a SYN)."""
    r = dr.reasm
    r.receive_segment(99, SYN, b"", 0, 0, 0)
    seq = 100
    for n, payload in enumerate(payloads, 1):
        r.receive_segment(seq, ACK, payload, 0, n * 10, n)
        seq += len(payload)


class _Recorder:
    """A handler that records what it takes, and hands over to ``then`` after
    its first chunk (if given)."""

    def __init__(self, then: _Recorder | None = None) -> None:
        self.took: list[Chunk] = []
        self.then = then

    def __call__(self, dr: Direction, data: bytes, offset: int, ts: int, packet: int) -> None:
        self.took.append((data, offset, ts, packet))
        if self.then is not None:
            dr.give_to(self.then)


class TestHandlers:
    def test_bytes_go_to_the_handler_with_their_stream_offset(self) -> None:
        dr, _, _ = direction()
        got = _Recorder()
        dr.give_to(got)
        segments(dr, b"abc", b"de")
        assert got.took == [(b"abc", 0, 10, 1), (b"de", 3, 20, 2)]
        assert dr.at(got) and not dr.ignored and not dr.framing

    def test_held_bytes_come_first_each_to_the_handler_of_the_moment(self) -> None:
        dr, _, _ = direction()
        dr.hold_back()
        segments(dr, b"one", b"two", b"three")
        assert [c[0] for c in dr.pending] == [b"one", b"two", b"three"]
        second = _Recorder()
        first = _Recorder(then=second)
        dr.hand_over(first)
        assert [c[0] for c in first.took] == [b"one"]
        assert [c[0] for c in second.took] == [b"two", b"three"]
        assert dr.pending == [] and dr.at(second)

    def test_ignore_drops_held_bytes_only_when_asked(self) -> None:
        dr, _, _ = direction()
        dr.hold((b"x", 0, 1, 1))
        dr.ignore()
        assert dr.ignored and dr.pending == [(b"x", 0, 1, 1)]
        dr.ignore(drop=True)
        assert dr.pending == []
        segments(dr, b"more")  # not followed: nothing held, nothing made
        assert dr.pending == []


class TestFrames:
    def test_start_frames_feeds_the_parser_straight(self) -> None:
        """Without TLS the reassembler's bytes go to the parser, with no handler
        between; frames and messages reach the collector under the
        direction's key, with frame_index from the connection."""
        dr, conn, c = direction()
        dr.named(client=True, conn_id=3)
        dr.start_frames(0, is_client=True, inflater=None, max_payload=1 << 20)
        assert dr.framing and dr.reasm.on_data == dr.parser.receive_data  # type: ignore[union-attr]
        wire = frame(TEXT, b"hello", mask=MASK) + frame(CLOSE, close_payload(1000, "bye"),
                                                         mask=MASK)
        segments(dr, wire[:4], wire[4:])
        assert [f.opcode for f in c.frames] == [TEXT, CLOSE]
        assert c.frame_keys == [6, 6] and c.message_keys == [6, 6]
        assert (conn.nframes, conn.nmessages, dr.frames) == (2, 2, 2)
        assert (dr.close_code, dr.close_reason) == (1000, "bye")
        assert dr.last_frame_index == 1 and dr.last_frame_offset == 11
        assert conn.reports == []

    def test_only_the_first_close_is_kept(self) -> None:
        dr, _, _ = direction(1)
        dr.named(client=False, conn_id=0)
        dr.start_frames(0, is_client=False, inflater=None, max_payload=1 << 20)
        segments(dr, frame(CLOSE, close_payload(1001)), frame(CLOSE, close_payload(1002)))
        assert (dr.name, dr.key) == ("s2c", 1)
        assert dr.close_code == 1001

    def test_a_close_without_a_code_has_an_empty_reason(self) -> None:
        dr, _, _ = direction(1)
        dr.start_frames(0, is_client=False, inflater=None, max_payload=1 << 20)
        segments(dr, frame(CLOSE, b""))
        assert (dr.close_code, dr.close_reason) == (None, "")

    def test_an_anomaly_at_the_last_frame_names_it(self) -> None:
        dr, conn, _ = direction()
        dr.took_frames(4, last_offset=120, last_index=9)
        dr.anomaly_at_offset("ws_x", "", 120, 0, 0)
        dr.anomaly_at_offset("ws_y", "", 121, 0, 0)
        dr.anomaly_at_frame("ws_z", "", 7, 0, 0)
        assert conn.reports == [("ws_x", 9, 120), ("ws_y", None, 121), ("ws_z", 7, None)]
        assert dr.frames == 4


class TestStream:
    def test_a_gap_before_frames_is_the_connections_to_judge(self) -> None:
        dr, conn, _ = direction()
        dr.gap(5, 10, 0, 0)
        assert conn.lost == [(5, 10)] and conn.reports == []  # no conn_id yet: no tcp_gap

    def test_a_gap_between_frames_goes_to_the_parser(self) -> None:
        dr, conn, _ = direction()
        conn.conn_id = 0
        dr.start_frames(0, is_client=False, inflater=None, max_payload=1 << 20)
        dr.gap(0, 10, 0, 0)
        assert conn.lost == []
        assert conn.reports[0] == ("tcp_gap", None, 0)

    def test_conflicts_and_ends(self) -> None:
        dr, conn, _ = direction(1)
        dr.conflict(7, 3, 1, 1)
        assert conn.conflicts == [(1, 7, 3)]
        dr.rst(4, 50, 5)
        dr.fin(4, 60, 6)
        assert dr.rst_seen and dr.fin_seen and dr.reset_first and dr.end_ts == 50
        assert conn.reports == []  # no conn_id yet: the RST is not reported

    def test_ended_quietly_once_its_fin_is_delivered(self) -> None:
        dr, _, _ = direction()
        dr.start_frames(0, is_client=False, inflater=None, max_payload=1 << 20)
        segments(dr, frame(TEXT, b"hi")[:3])
        dr.reasm.receive_segment(103, 0x01 | ACK, b"", 0, 30, 3)  # FIN
        assert dr.reasm.fin_done and not dr.ended_quietly()  # half a frame
        dr2, _, _ = direction()
        dr2.start_frames(0, is_client=False, inflater=None, max_payload=1 << 20)
        segments(dr2, frame(TEXT, b"hi"))
        assert not dr2.ended_quietly()
        dr2.reasm.receive_segment(104, 0x01 | ACK, b"", 0, 30, 3)
        assert dr2.ended_quietly()


class TestTLSSide:
    def test_plaintext_takes_the_segment_of_its_record(self) -> None:
        """Decrypted bytes get the packet and time of the TCP segment holding
        their record's start, and offsets of their own (the plaintext stream)."""
        dr, _, _ = direction()
        got = _Recorder()
        dr.give_to(got)
        dr.took_tls_run(0, [(0, 7, 700), (100, 8, 800)])
        assert dr.receive_plain(b"abc", 150, 1, 1) == (800, 8)
        assert dr.receive_plain(b"de", 160, 1, 1) == (800, 8)
        assert got.took == [(b"abc", 0, 800, 8), (b"de", 3, 800, 8)]
        assert dr.plain_offset == 5

    def test_plaintext_lost_before_any_came_is_not_told(self) -> None:
        dr, _, _ = direction()
        dr.give_to(_Recorder())
        dr.lose_plain(40, True, 0, 0)
        assert dr.plain_offset == 0 and not dr.ignored

    def test_plaintext_lost_inside_a_head_ends_the_direction(self) -> None:
        dr, _, _ = direction()
        dr.give_to(_Recorder())
        dr.receive_plain(b"GET / HTTP/1.1\r\n", 0, 1, 1)
        dr.lose_plain(40, False, 2, 2)
        assert dr.plain_offset == 16 + 40 and dr.ignored
