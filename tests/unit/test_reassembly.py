"""Tests of :mod:`wspcap.tcp.reassembly` (RFC 9293 section 3.10.7, segment arrival)."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wspcap.tcp.reassembly import StreamReassembler

# RFC 9293 section 3.1, control bits.
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MOD = 1 << 32


class Recorder:
    """A StreamSink that keeps every call, in order."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.pos = 0  # where the next in-order bytes start

    def data(self, payload: bytes, ts: int, packet: int) -> None:
        assert payload
        self.events.append(("data", self.pos, bytes(payload), packet))
        self.pos += len(payload)

    def gap(self, offset: int, size: int, ts: int, packet: int) -> None:
        assert size > 0
        self.events.append(("gap", offset, size))
        self.pos = offset + size

    def conflict(self, offset: int, size: int, ts: int, packet: int) -> None:
        self.events.append(("conflict", offset, size))

    def data_after_fin(self, offset: int, size: int, ts: int, packet: int) -> None:
        assert size > 0
        self.events.append(("after_fin", offset, size, packet))

    def fin(self, offset: int, ts: int, packet: int) -> None:
        self.events.append(("fin", offset))

    def rst(self, offset: int, ts: int, packet: int) -> None:
        self.events.append(("rst", offset))

    def kinds(self, *names: str) -> list[tuple]:
        return [e for e in self.events if e[0] in names]

    def check_contiguous(self) -> int:
        """Check that data and gaps follow each other; return the stream length."""
        pos = 0
        for event in self.kinds("data", "gap"):
            assert event[1] == pos, f"{event[:2]} does not start at {pos}"
            pos += len(event[2]) if event[0] == "data" else event[2]
        return pos

    def stream(self) -> bytes:
        """The delivered stream, gaps as zeros; checks that it is contiguous."""
        out = bytearray()
        for event in self.kinds("data", "gap"):
            assert event[1] == len(out), f"{event[:2]} does not start at {len(out)}"
            out += event[2] if event[0] == "data" else bytes(event[2])
        return bytes(out)


def run(segments: list[tuple[int, int, bytes]], eof: bool = True, **kwargs: int
        ) -> tuple[Recorder, StreamReassembler]:
    """Feed ``(seq, flags, payload)`` segments, packet numbers from 1."""
    rec = Recorder()
    reasm = StreamReassembler(rec, **kwargs)
    for i, (seq, flags, payload) in enumerate(segments, 1):
        reasm.receive_segment(seq % MOD, flags, payload, 0, i, i)
    if eof:
        reasm.receive_eof(99, 99)
    return rec, reasm


def segment(stream: bytes, isn: int, start: int, end: int, flags: int = ACK
            ) -> tuple[int, int, bytes]:
    return ((isn + 1 + start) % MOD, flags, stream[start:end])


class TestInOrder:
    def test_syn_data_fin(self) -> None:
        rec, r = run([(1000, SYN, b""), (1001, ACK, b"abc"), (1004, ACK | PSH, b"def"),
                      (1007, FIN | ACK, b"")])
        assert rec.events == [("data", 0, b"abc", 2), ("data", 3, b"def", 3), ("fin", 6)]
        assert r.syn_seen and not r.midstream and r.offset == 6 and r.gaps == 0

    def test_fin_with_payload(self) -> None:
        rec, _ = run([(1000, SYN, b""), (1001, FIN | ACK, b"bye")])
        assert rec.events == [("data", 0, b"bye", 2), ("fin", 3)]

    def test_rst(self) -> None:
        rec, r = run([(1000, SYN, b""), (1001, ACK, b"abc"), (1004, RST, b"")])
        assert rec.events[-1] == ("rst", 3) and r.rst_seen

    def test_syn_retransmitted(self) -> None:
        rec, _ = run([(1000, SYN, b""), (1000, SYN, b""), (1001, ACK, b"abc")])
        assert rec.stream() == b"abc"

    def test_midstream(self) -> None:
        rec, r = run([(5000, ACK, b"abc"), (5003, ACK, b"def")])
        assert r.midstream and not r.syn_seen
        assert rec.events == [("data", 0, b"abc", 1), ("data", 3, b"def", 2)]

    def test_empty_acks_deliver_nothing(self) -> None:
        rec, _ = run([(1000, SYN, b""), (1001, ACK, b""), (1001, ACK, b"x")])
        assert rec.events == [("data", 0, b"x", 3)]


class TestOutOfOrder:
    def test_reordered(self) -> None:
        # "def" became readable when packet 3 filled the hole: it is delivered then.
        rec, r = run([(1000, SYN, b""), (1004, ACK, b"def"), (1001, ACK, b"abc")])
        assert rec.events == [("data", 0, b"abc", 3), ("data", 3, b"def", 3)]
        assert r.gaps == 0

    def test_fin_before_data(self) -> None:
        rec, _ = run([(1000, SYN, b""), (1004, FIN | ACK, b"def"), (1001, ACK, b"abc")],
                     eof=False)
        assert rec.events == [("data", 0, b"abc", 3), ("data", 3, b"def", 3), ("fin", 6)]

    def test_duplicate(self) -> None:
        rec, r = run([(1000, SYN, b""), (1001, ACK, b"abc"), (1001, ACK, b"abc"),
                      (1004, ACK, b"def")])
        assert rec.stream() == b"abcdef"
        assert rec.kinds("conflict") == [] and r.overlaps == 1

    def test_duplicate_pending(self) -> None:
        rec, _ = run([(1000, SYN, b""), (1004, ACK, b"def"), (1004, ACK, b"def"),
                      (1001, ACK, b"abc")])
        assert rec.stream() == b"abcdef" and rec.kinds("conflict") == []

    def test_overlap_same_bytes(self) -> None:
        rec, _ = run([(0, SYN, b""), (1, ACK, b"0123456789"), (6, ACK, b"56789abcde")])
        assert rec.kinds("data") == [("data", 0, b"0123456789", 2), ("data", 10, b"abcde", 3)]
        assert rec.kinds("conflict") == []

    def test_overlap_different_bytes_first_copy_wins(self) -> None:
        rec, _ = run([(0, SYN, b""), (1, ACK, b"A" * 10), (6, ACK, b"B" * 10)])
        assert rec.stream() == b"A" * 10 + b"B" * 5
        assert rec.kinds("conflict") == [("conflict", 5, 5)]

    def test_pending_copies_differ_first_copy_wins(self) -> None:
        rec, _ = run([(0, SYN, b""), (11, ACK, b"AAAA"), (11, ACK, b"BBBBBBBB"),
                      (1, ACK, b"0123456789")])
        assert rec.stream() == b"0123456789" + b"AAAA" + b"BBBB"
        assert rec.kinds("conflict") == [("conflict", 10, 4)]

    def test_pending_overlapping_segments_differ(self) -> None:
        rec, _ = run([(0, SYN, b""), (11, ACK, b"A" * 10), (16, ACK, b"B" * 10),
                      (1, ACK, b"0123456789")])
        assert len(rec.stream()) == 25
        assert rec.kinds("conflict") == [("conflict", 15, 5)]

    def test_retransmission_with_new_tail(self) -> None:
        rec, _ = run([(0, SYN, b""), (1, ACK, b"abc"), (1, ACK, b"abcdef")])
        assert rec.kinds("data") == [("data", 0, b"abc", 2), ("data", 3, b"def", 3)]
        assert rec.kinds("conflict") == []


class TestWrapAround:
    """Sequence numbers are modulo 2**32 (RFC 9293 section 3.4)."""

    @pytest.mark.parametrize("isn", [MOD - 1, MOD - 2, MOD - 5, MOD - 100])
    def test_stream_crosses_wrap(self, isn: int) -> None:
        stream = bytes(range(200))
        segs = [(isn, SYN, b"")] + [segment(stream, isn, i, i + 7) for i in range(0, 200, 7)]
        rec, r = run(segs)
        assert rec.stream() == stream and r.gaps == 0
        rec, _ = run([segs[0]] + segs[:0:-1])  # every segment in reverse order
        assert rec.stream() == stream

    def test_retransmission_across_wrap(self) -> None:
        isn = MOD - 4
        rec, _ = run([(isn, SYN, b""), ((isn + 1) % MOD, ACK, b"abcdef"),
                      ((isn + 1) % MOD, ACK, b"abcdefgh")])
        assert rec.stream() == b"abcdefgh" and rec.kinds("conflict") == []


class TestHoles:
    """Holes become gaps: on the peer's ACK, past max_pending, at end of input."""

    def test_hole_resolved_by_ack(self) -> None:
        rec = Recorder()
        r = StreamReassembler(rec)
        r.receive_segment(0, SYN, b"", 0, 0, 1)
        r.receive_segment(1, ACK, b"aaaa", 0, 0, 2)
        r.receive_segment(9, ACK, b"cccc", 0, 0, 3)  # "bbbb" at 5..8 never captured
        r.receive_ack(5, 0, 4)  # the peer has no more than we do: nothing yet
        assert rec.kinds("gap") == []
        r.receive_ack(13, 0, 5)
        assert rec.kinds("data", "gap") == [("data", 0, b"aaaa", 2), ("gap", 4, 4),
                                            ("data", 8, b"cccc", 3)]
        assert (r.gaps, r.gap_bytes) == (1, 4)

    def test_ack_inside_hole_declares_nothing_past_it(self) -> None:
        rec = Recorder()
        r = StreamReassembler(rec)
        r.receive_segment(0, SYN, b"", 0, 0, 1)
        r.receive_segment(1, ACK, b"aaaa", 0, 0, 2)
        r.receive_segment(13, ACK, b"dddd", 0, 0, 3)
        r.receive_ack(7, 0, 4)  # acknowledges 2 bytes of the 8-byte hole
        assert rec.kinds("gap") == []
        r.receive_segment(9, ACK, b"cccc", 0, 0, 5)
        r.receive_eof(0, 6)
        assert rec.stream() == b"aaaa" + bytes(4) + b"ccccdddd"

    def test_ack_before_anything(self) -> None:
        rec = Recorder()
        StreamReassembler(rec).receive_ack(1234, 0, 1)
        assert rec.events == []

    def test_hole_resolved_by_max_pending(self) -> None:
        rec, _ = run([(0, SYN, b""), (1, ACK, b"aaaa"), (9, ACK, b"c" * 20)], eof=False,
                     max_pending=10)
        assert rec.kinds("data", "gap") == [("data", 0, b"aaaa", 2), ("gap", 4, 4),
                                            ("data", 8, b"c" * 20, 3)]

    def test_hole_resolved_by_eof(self) -> None:
        rec, r = run([(0, SYN, b""), (1, ACK, b"aaaa"), (9, ACK, b"cccc"), (17, ACK, b"e")],
                     eof=False)
        assert rec.kinds("gap") == []
        r.receive_eof(0, 9)
        assert rec.stream() == b"aaaa" + bytes(4) + b"cccc" + bytes(4) + b"e"
        assert (r.gaps, r.gap_bytes) == (2, 8)

    def test_late_bytes_after_gap_are_ignored(self) -> None:
        rec, r = run([(0, SYN, b""), (1, ACK, b"aaaa"), (9, ACK, b"cccc")], eof=False)
        r.receive_ack(13, 0, 4)
        r.receive_segment(5, ACK, b"bbbb", 0, 0, 5)  # too late: already a gap
        assert rec.stream() == b"aaaa" + bytes(4) + b"cccc"

    def test_acked_tail_never_captured(self) -> None:
        rec = Recorder()
        r = StreamReassembler(rec)
        r.receive_segment(0, SYN, b"", 0, 0, 1)
        r.receive_segment(1, ACK, b"aaaa", 0, 0, 2)
        r.receive_ack(11, 0, 3)  # the peer got 6 more bytes
        r.receive_eof(0, 4)
        assert rec.kinds("gap") == [("gap", 4, 6)]

    def test_fin_after_hole(self) -> None:
        rec, _ = run([(0, SYN, b""), (1, ACK, b"aa"), (5, FIN | ACK, b"cc")])
        assert rec.events[-1] == ("fin", 6)
        assert rec.stream() == b"aa" + bytes(2) + b"cc"

    def test_snap_length_missing(self) -> None:
        rec = Recorder()
        r = StreamReassembler(rec)
        r.receive_segment(0, SYN, b"", 0, 0, 1)
        r.receive_segment(1, ACK, b"0123456789", 20, 0, 2)  # 30 bytes, 10 captured
        r.receive_segment(31, ACK, b"next", 0, 0, 3)
        r.receive_eof(0, 4)
        assert rec.kinds("data", "gap") == [("data", 0, b"0123456789", 2), ("gap", 10, 20),
                                            ("data", 30, b"next", 3)]

    def test_snap_length_missing_out_of_order(self) -> None:
        rec = Recorder()
        r = StreamReassembler(rec)
        r.receive_segment(0, SYN, b"", 0, 0, 1)
        r.receive_segment(31, ACK, b"next", 0, 0, 2)
        r.receive_segment(1, ACK, b"0123456789", 20, 0, 3)
        assert rec.stream() == b"0123456789" + bytes(20) + b"next"
        assert rec.kinds("gap") == [("gap", 10, 20)]


class TestDataAfterFin:
    """RFC 9293 section 3.10.7.4: after a FIN there is no more data, so bytes at or
    beyond the FIN's sequence number are never delivered (``sink.data_after_fin``)."""

    @pytest.mark.parametrize(("seq", "offset"), [(1005, 4), (1004, 3)])
    def test_in_order_segment_after_fin(self, seq: int, offset: int) -> None:
        # Just past the FIN's sequence number (where the next byte would go), or on it.
        rec, r = run([(1000, SYN, b""), (1001, ACK, b"abc"), (1004, FIN | ACK, b""),
                      (seq, ACK | PSH, b"xyz")])
        assert rec.events == [("data", 0, b"abc", 2), ("fin", 3), ("after_fin", offset, 3, 4)]
        assert (r.after_fin, r.after_fin_bytes, r.offset, r.gaps) == (1, 3, 3, 0)

    def test_every_segment_after_fin_is_reported(self) -> None:
        rec, r = run([(1000, SYN, b""), (1001, FIN | ACK, b"abc"), (1005, ACK, b"xy"),
                      (1007, ACK, b"z"), (1005, ACK, b"xy")])
        assert rec.stream() == b"abc"
        assert rec.kinds("after_fin") == [("after_fin", 4, 2, 3), ("after_fin", 6, 1, 4),
                                          ("after_fin", 4, 2, 5)]
        assert (r.after_fin, r.after_fin_bytes) == (3, 5)

    def test_straddling_segment_delivers_what_precedes_the_fin(self) -> None:
        # The FIN (offset 6) is seen before the bytes that lead up to it.
        rec, r = run([(1000, SYN, b""), (1007, FIN | ACK, b""), (1001, ACK, b"abcdefghij")])
        assert rec.events == [("data", 0, b"abcdef", 3), ("after_fin", 6, 4, 3), ("fin", 6)]
        assert r.offset == 6 and r.after_fin_bytes == 4

    def test_retransmission_with_a_tail_past_the_fin(self) -> None:
        rec, _ = run([(1000, SYN, b""), (1001, ACK, b"abc"), (1004, FIN | ACK, b""),
                      (1001, ACK, b"abcXYZ")])
        assert rec.stream() == b"abc"
        assert rec.kinds("after_fin") == [("after_fin", 3, 3, 4)]

    def test_pending_straddler_is_cut_when_the_hole_fills(self) -> None:
        # Reported with its own packet (2), not the one that filled the hole (4).
        rec, _ = run([(1000, SYN, b""), (1004, ACK, b"defghi"), (1007, FIN | ACK, b""),
                      (1001, ACK, b"abc")])
        assert rec.events == [("data", 0, b"abc", 4), ("data", 3, b"def", 4),
                              ("after_fin", 6, 3, 2), ("fin", 6)]

    def test_pending_data_beyond_fin_dropped_when_fin_arrives(self) -> None:
        rec, r = run([(1000, SYN, b""), (1001, ACK, b"abc"), (1005, ACK, b"xyz"),
                      (1004, FIN | ACK, b"")], eof=False)
        assert rec.events == [("data", 0, b"abc", 2), ("fin", 3), ("after_fin", 4, 3, 3)]
        r.receive_eof(99, 99)  # nothing left waiting: no gap, nothing delivered
        assert rec.events[-1] == ("after_fin", 4, 3, 3) and r.gaps == 0

    def test_pending_data_beyond_fin_waits_for_the_stream_to_reach_it(self) -> None:
        # "xyz" (packet 2) lies past the FIN of packet 3, behind a hole: reported once
        # packet 4 fills the hole and the stream reaches the FIN.
        rec, _ = run([(1000, SYN, b""), (1008, ACK, b"xyz"), (1004, FIN | ACK, b"def"),
                      (1001, ACK, b"abc")], eof=False)
        assert rec.events == [("data", 0, b"abc", 4), ("data", 3, b"def", 4), ("fin", 6),
                              ("after_fin", 7, 3, 2)]

    def test_hole_before_fin_at_end_of_input(self) -> None:
        rec, r = run([(1000, SYN, b""), (1001, ACK, b"abc"), (1008, FIN | ACK, b""),
                      (1009, ACK, b"xyz")])
        assert rec.events == [("data", 0, b"abc", 2), ("gap", 3, 4), ("fin", 7),
                              ("after_fin", 8, 3, 4)]
        assert r.offset == 7

    def test_retransmitted_bytes_before_fin_are_not_flagged(self) -> None:
        rec, r = run([(1000, SYN, b""), (1001, ACK, b"abc"), (1004, ACK, b"def"),
                      (1007, FIN | ACK, b""), (1004, ACK, b"def"), (1001, ACK, b"abcdef"),
                      (1002, ACK, b"bcd")])
        assert rec.stream() == b"abcdef"
        assert rec.kinds("after_fin", "conflict") == [] and r.after_fin == 0
        assert r.overlaps == 3

    def test_fin_retransmission_is_not_flagged(self) -> None:
        rec, r = run([(1000, SYN, b""), (1001, ACK, b"abc"), (1004, FIN | ACK, b"def"),
                      (1004, FIN | ACK, b"def"), (1007, FIN | ACK, b""), (1007, FIN, b"")])
        assert rec.events == [("data", 0, b"abc", 2), ("data", 3, b"def", 3), ("fin", 6)]
        assert r.after_fin == 0

    def test_rst_after_fin_unchanged(self) -> None:
        rec, _ = run([(1000, SYN, b""), (1001, FIN | ACK, b"abc"), (1005, RST, b"")])
        assert rec.events == [("data", 0, b"abc", 2), ("fin", 3), ("rst", 3)]


class TestIncremental:
    """The same stream however it is cut into segments."""

    def test_two_segments_every_cut(self) -> None:
        stream = bytes(range(64))
        for i in range(1, 64):
            a, b = segment(stream, 7, 0, i), segment(stream, 7, i, 64)
            for order in ([a, b], [b, a], [b, a, b, a]):
                rec, r = run([(7, SYN, b"")] + order)
                assert rec.stream() == stream and r.gaps == 0
                assert rec.kinds("conflict") == []


@st.composite
def shuffled_segments(draw: st.DrawFn) -> tuple[bytes, int, list[tuple[int, int, bytes]], bool]:
    stream = draw(st.binary(min_size=1, max_size=2000))
    isn = draw(st.one_of(st.integers(0, MOD - 1), st.integers(MOD - 2100, MOD - 1)))
    cuts = draw(st.lists(st.integers(1, len(stream)), max_size=30))
    bounds = sorted({0, len(stream), *cuts})
    segs = [segment(stream, isn, a, b) for a, b in itertools.pairwise(bounds)]
    # Retransmissions that overlap segment boundaries, with the right bytes.
    for _ in range(draw(st.integers(0, 10))):
        a = draw(st.integers(0, len(stream) - 1))
        b = draw(st.integers(a + 1, len(stream)))
        segs.append(segment(stream, isn, a, b))
    segs += draw(st.lists(st.sampled_from(segs), max_size=5))  # exact duplicates
    seed = draw(st.integers(0, 2**32))
    random.Random(seed).shuffle(segs)
    with_syn = draw(st.booleans())
    return stream, isn, segs, with_syn


@settings(max_examples=300, deadline=None)
@given(shuffled_segments())
def test_permuted_duplicated_segments_rebuild_the_stream(
        case: tuple[bytes, int, list[tuple[int, int, bytes]], bool]) -> None:
    stream, isn, segs, with_syn = case
    if with_syn:
        segs = [(isn, SYN, b"")] + segs
    else:  # midstream: the capture starts at the first byte of the stream
        segs = [segment(stream, isn, 0, 1)] + segs
    rec, r = run(segs)
    assert rec.stream() == stream
    assert rec.kinds("conflict") == [] and r.gaps == 0


_segment_ops = st.lists(
    st.one_of(
        st.tuples(st.just("seg"), st.integers(0, MOD - 1), st.integers(0, 0x3F),
                  st.binary(max_size=40), st.integers(0, 20)),
        st.tuples(st.just("ack"), st.integers(0, MOD - 1)),
        st.tuples(st.just("near"), st.integers(-50, 50), st.integers(0, 0x3F),
                  st.binary(max_size=40)),
    ),
    max_size=40)


@settings(max_examples=300, deadline=None)
@given(_segment_ops, st.integers(1, 100))
def test_garbage_segments_never_raise(ops: list[tuple], max_pending: int) -> None:
    """Any segments and ACKs: the stream stays contiguous and nothing is raised."""
    rec = Recorder()
    r = StreamReassembler(rec, max_pending=max_pending)
    base = None
    for i, op in enumerate(ops):
        if op[0] == "seg":
            _, seq, flags, payload, missing = op
            base = seq if base is None else base
            r.receive_segment(seq, flags, payload, missing, i, i)
        elif op[0] == "ack":
            r.receive_ack(op[1], i, i)
        else:
            _, delta, flags, payload = op
            seq = ((base or 0) + delta) % MOD
            base = seq if base is None else base
            r.receive_segment(seq, flags, payload, 0, i, i)
    r.receive_eof(999, 999)
    assert rec.check_contiguous() == r.offset
    assert len(rec.kinds("fin")) <= 1
    if r.fin_offset is not None:  # nothing delivered (or declared missing) past the FIN
        assert r.offset <= r.fin_offset
    assert len(rec.kinds("after_fin")) == r.after_fin
