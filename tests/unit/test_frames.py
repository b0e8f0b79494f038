"""Unit and property tests of :mod:`wspcap.ws.frames` (RFC 6455 section 5).

Frames are written as byte literals, from the RFC text where it gives them;
failing cases assert anomaly codes, never messages.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wspcap.ws.frames import (
    MAX_PAYLOAD,
    Frame,
    FrameParser,
    opcode_name,
    plausible_frames,
    serialize_frame,
)


class Recorder:
    """A FrameSink that keeps everything it is given."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.anomalies: list[tuple[str, int]] = []

    def frame(self, frame: Frame) -> None:
        self.frames.append(frame)

    def anomaly_at_offset(self, code: str, detail: str, offset: int, ts: int,
                          packet: int) -> None:
        assert isinstance(detail, str) and detail
        self.anomalies.append((code, offset))

    @property
    def codes(self) -> list[str]:
        return [code for code, _ in self.anomalies]


def parse(*chunks: bytes, eof: bool = True, **kwargs: int) -> Recorder:
    rec = Recorder()
    parser = FrameParser(rec, **kwargs)
    for i, chunk in enumerate(chunks):
        parser.receive_data(chunk, i, i)
    if eof:
        parser.receive_eof(len(chunks), len(chunks))
    return rec


def wire(rec: Recorder) -> tuple[list[Frame], list[tuple[str, int]]]:
    """The records minus what depends on how the bytes were cut into chunks."""
    return [f._replace(ts=0, packet=0, ts_start=0) for f in rec.frames], rec.anomalies


def splits(data: bytes, every_offset: bool = True):
    """Whole, one byte at a time, and (optionally) in two at every offset."""
    yield [data]
    yield [data[i:i + 1] for i in range(len(data))]
    if every_offset:
        for i in range(1, len(data)):
            yield [data[:i], data[i:]]


# RFC 6455 section 5.7, examples, copied from the RFC text.
HELLO_UNMASKED = bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
HELLO_MASKED = bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
FRAGMENT_1 = bytes([0x01, 0x03, 0x48, 0x65, 0x6C])
FRAGMENT_2 = bytes([0x80, 0x02, 0x6C, 0x6F])
PING_HELLO = bytes([0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
PONG_HELLO_MASKED = bytes([0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
BINARY_256_HEAD = bytes([0x82, 0x7E, 0x01, 0x00])
BINARY_64K_HEAD = bytes([0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00])
RFC_KEY = 0x37FA213D

# A client frame from a real session: masked FIN text, 37 bytes.
SEED = bytes.fromhex(
    "81a5bdccefe0e9a48a999abe8ac0dea38289d3abcf94d2ec8885c9ec968fc8e0cf"
    "a2dcbe8d81cfadc1ce93")
SEED_TEXT = "They're coming to get you, Barbara..."


class TestExamples:
    """RFC 6455 section 5.7: the examples, byte for byte."""

    def test_unmasked_text(self) -> None:
        rec = parse(HELLO_UNMASKED)
        (f,) = rec.frames
        assert (f.fin, f.opcode, f.masked, f.mask_key) == (True, 0x1, False, None)
        assert (f.length_encoding, f.payload_len, f.header_len) == (7, 5, 2)
        assert f.payload == b"Hello" and f.missing == 0 and f.offset == 0
        assert rec.anomalies == []

    def test_masked_text(self) -> None:
        rec = parse(HELLO_MASKED)
        (f,) = rec.frames
        assert (f.fin, f.opcode, f.masked, f.mask_key) == (True, 0x1, True, RFC_KEY)
        assert (f.payload_len, f.header_len, f.payload) == (5, 6, b"Hello")
        assert rec.anomalies == []

    def test_fragmented_text(self) -> None:
        rec = parse(FRAGMENT_1 + FRAGMENT_2)
        first, second = rec.frames
        assert (first.fin, first.opcode, first.payload, first.offset) == (False, 0x1, b"Hel", 0)
        assert (second.fin, second.opcode, second.payload) == (True, 0x0, b"lo")
        assert second.offset == len(FRAGMENT_1)
        assert rec.anomalies == []

    def test_ping_and_masked_pong(self) -> None:
        (ping,) = parse(PING_HELLO).frames
        assert (ping.opcode, ping.masked, ping.payload) == (0x9, False, b"Hello")
        (pong,) = parse(PONG_HELLO_MASKED).frames
        assert (pong.opcode, pong.masked, pong.mask_key, pong.payload) == (
            0xA, True, RFC_KEY, b"Hello")

    def test_256_bytes_binary(self) -> None:
        payload = bytes(range(256))
        rec = parse(BINARY_256_HEAD + payload)
        (f,) = rec.frames
        assert (f.opcode, f.length_encoding, f.payload_len, f.header_len) == (0x2, 16, 256, 4)
        assert f.payload == payload and rec.anomalies == []

    def test_64k_binary(self) -> None:
        payload = bytes(i & 0xFF for i in range(65536))
        for chunks in ([BINARY_64K_HEAD + payload],
                       [bytes([b]) for b in BINARY_64K_HEAD + payload]):
            rec = parse(*chunks)
            (f,) = rec.frames
            assert (f.opcode, f.length_encoding, f.payload_len, f.header_len) == (
                0x2, 64, 65536, 10)
            assert f.payload == payload and rec.anomalies == []

    def test_seed_vector(self) -> None:
        rec = parse(SEED)
        (f,) = rec.frames
        assert (f.fin, f.opcode, f.masked, f.payload_len) == (True, 0x1, True, 37)
        assert f.mask_key == 0xBDCCEFE0
        assert f.payload.decode() == SEED_TEXT
        assert rec.anomalies == []

    def test_serializer_matches_rfc(self) -> None:
        """The test serializer itself agrees with the RFC's bytes."""
        key = RFC_KEY.to_bytes(4, "big")
        assert serialize_frame(0x1, b"Hello") == HELLO_UNMASKED
        assert serialize_frame(0x1, b"Hello", mask_key=key) == HELLO_MASKED
        assert serialize_frame(0x1, b"Hel", fin=False) == FRAGMENT_1
        assert serialize_frame(0x0, b"lo") == FRAGMENT_2
        assert serialize_frame(0xA, b"Hello", mask_key=key) == PONG_HELLO_MASKED
        assert serialize_frame(0x2, bytes(256))[:4] == BINARY_256_HEAD
        assert serialize_frame(0x2, bytes(65536))[:10] == BINARY_64K_HEAD


class TestBaseFraming:
    """RFC 6455 section 5.2: base framing protocol."""

    @pytest.mark.parametrize("opcode", range(16))
    def test_every_opcode_kept_raw(self, opcode: int) -> None:
        rec = parse(bytes([0x80 | opcode, 0x01, 0x41]))
        (f,) = rec.frames
        assert f.opcode == opcode and f.payload == b"A"
        # The parser records reserved opcodes; judging them is the assembler's job.
        assert rec.anomalies == []

    def test_opcode_names(self) -> None:
        known = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}
        for opcode in range(16):
            assert opcode_name(opcode) == known.get(opcode, f"unknown-0x{opcode:x}")

    @pytest.mark.parametrize("bits", range(16))
    def test_fin_and_rsv_bits(self, bits: int) -> None:
        (f,) = parse(bytes([bits << 4 | 0x2, 0x00])).frames
        assert (f.fin, f.rsv1, f.rsv2, f.rsv3) == (
            bool(bits & 8), bool(bits & 4), bool(bits & 2), bool(bits & 1))
        assert f.opcode == 0x2

    @pytest.mark.parametrize("n", [0, 1, 125])
    def test_7_bit_length(self, n: int) -> None:
        rec = parse(bytes([0x82, n]) + b"x" * n)
        (f,) = rec.frames
        assert (f.length_encoding, f.payload_len, f.header_len, len(f.payload)) == (7, n, 2, n)
        assert rec.anomalies == []

    @pytest.mark.parametrize("n", [126, 127, 256, 65535])
    def test_16_bit_length(self, n: int) -> None:
        rec = parse(bytes([0x82, 126]) + n.to_bytes(2, "big") + b"x" * n)
        (f,) = rec.frames
        assert (f.length_encoding, f.payload_len, f.header_len, len(f.payload)) == (16, n, 4, n)
        assert rec.anomalies == []

    @pytest.mark.parametrize("n", [65536, 65537, 100_000])
    def test_64_bit_length(self, n: int) -> None:
        rec = parse(bytes([0x82, 127]) + n.to_bytes(8, "big") + b"x" * n)
        (f,) = rec.frames
        assert (f.length_encoding, f.payload_len, f.header_len, len(f.payload)) == (64, n, 10, n)
        assert rec.anomalies == []

    @pytest.mark.parametrize("n", [0, 5, 125])
    def test_nonminimal_16_bit(self, n: int) -> None:
        rec = parse(bytes([0x82, 126]) + n.to_bytes(2, "big") + b"x" * n)
        (f,) = rec.frames
        assert (f.length_encoding, f.payload_len) == (16, n)
        assert rec.anomalies == [("ws_nonminimal_length", 0)]

    @pytest.mark.parametrize("n", [0, 125, 126, 65535])
    def test_nonminimal_64_bit(self, n: int) -> None:
        rec = parse(bytes([0x82, 127]) + n.to_bytes(8, "big") + b"x" * n)
        (f,) = rec.frames
        assert (f.length_encoding, f.payload_len, f.payload) == (64, n, b"x" * n)
        assert rec.anomalies == [("ws_nonminimal_length", 0)]

    def test_nonminimal_reported_at_frame_offset(self) -> None:
        frame = bytes([0x82, 126, 0, 3]) + b"abc"
        rec = parse(HELLO_UNMASKED + frame)
        assert rec.anomalies == [("ws_nonminimal_length", len(HELLO_UNMASKED))]

    def test_length_msb_set(self) -> None:
        head = bytes([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0x03]) + b"\x01\x02\x03\x04"
        rec = parse(head + b"abc")
        (f,) = rec.frames
        assert f.payload_len == (1 << 63) + 3 and f.masked
        assert "ws_length_msb_set" in rec.codes
        assert "ws_truncated_frame" in rec.codes

    def test_masked_key_and_header_length(self) -> None:
        key = bytes([1, 2, 3, 4])
        for n, hl in ((5, 6), (200, 8), (70000, 14)):
            payload = bytes(i % 251 for i in range(n))
            (f,) = parse(serialize_frame(2, payload, mask_key=key)).frames
            assert (f.masked, f.mask_key, f.header_len) == (True, 0x01020304, hl)
            assert f.payload == payload

    def test_offsets_and_timestamps(self) -> None:
        rec = Recorder()
        parser = FrameParser(rec, offset=1000)
        parser.receive_data(HELLO_UNMASKED + FRAGMENT_1[:2], 10, 1)
        parser.receive_data(FRAGMENT_1[2:], 20, 2)
        parser.receive_data(FRAGMENT_2, 30, 3)
        a, b, c = rec.frames
        assert (a.offset, a.ts_start, a.ts, a.packet) == (1000, 10, 10, 1)
        assert (b.offset, b.ts_start, b.ts, b.packet) == (1007, 10, 20, 2)
        assert (c.offset, c.ts_start, c.ts, c.packet) == (1012, 30, 30, 3)
        assert parser.frames == 3


class TestIncremental:
    """Whole, byte by byte, split anywhere: the same records (h11 test_io style)."""

    CORPUS = (HELLO_UNMASKED + HELLO_MASKED + FRAGMENT_1 + PING_HELLO + FRAGMENT_2
              + PONG_HELLO_MASKED + BINARY_256_HEAD + bytes(range(256)) + SEED
              + bytes([0x82, 126, 0, 3]) + b"abc"
              + serialize_frame(2, bytes(300), mask_key=b"\xaa\xbb\xcc\xdd")
              + bytes([0x8B, 0x00]) + bytes([0x73, 0x02, 0x00, 0x01]))

    def test_corpus_split_everywhere(self) -> None:
        expected = wire(parse(self.CORPUS))
        assert len(expected[0]) == 12
        for chunks in splits(self.CORPUS):
            assert wire(parse(*chunks)) == expected

    def test_corpus_split_everywhere_with_truncated_tail(self) -> None:
        data = self.CORPUS + SEED[:20]
        expected = wire(parse(data))
        assert expected[1][-1] == ("ws_truncated_frame", len(self.CORPUS))
        assert expected[0][-1].missing == 37 - 14
        for chunks in splits(data):
            assert wire(parse(*chunks)) == expected

    def test_trailing_bytes_left_for_next_call(self) -> None:
        rec = Recorder()
        parser = FrameParser(rec)
        parser.receive_data(HELLO_MASKED + SEED[:1], 0, 1)
        assert len(rec.frames) == 1
        assert bytes(parser._buf) == SEED[:1]
        parser.receive_data(SEED[1:7], 0, 2)
        assert len(rec.frames) == 1
        parser.receive_data(SEED[7:] + HELLO_UNMASKED[:3], 0, 3)
        assert [f.payload for f in rec.frames] == [b"Hello", SEED_TEXT.encode()]
        assert bytes(parser._buf) == HELLO_UNMASKED[:3]
        assert rec.anomalies == []

    def test_large_masked_frame_byte_by_byte(self) -> None:
        payload = bytes(i % 253 for i in range(5000))
        data = serialize_frame(2, payload, mask_key=b"\x10\x20\x30\x40") + HELLO_UNMASKED
        rec = parse(*[data[i:i + 1] for i in range(len(data))])
        assert [f.payload for f in rec.frames] == [payload, b"Hello"]


class TestTruncation:
    """Frames cut short by the end of the capture, and declared sizes never trusted."""

    def test_truncated_payload(self) -> None:
        rec = parse(HELLO_UNMASKED[:4])
        (f,) = rec.frames
        assert (f.payload, f.payload_len, f.missing) == (b"He", 5, 3)
        assert rec.anomalies == [("ws_truncated_frame", 0)]

    def test_truncated_masked_payload_unmasked(self) -> None:
        rec = parse(HELLO_MASKED[:9])
        (f,) = rec.frames
        assert (f.payload, f.missing) == (b"Hel", 2)
        assert rec.codes == ["ws_truncated_frame"]

    @pytest.mark.parametrize("head", [b"\x81", b"\x82\x7e\x01", b"\x82\xfe\x01\x00\x01\x02",
                                      b"\x82\x7f\x00\x00\x00"])
    def test_truncated_header(self, head: bytes) -> None:
        rec = parse(HELLO_UNMASKED + head)
        assert len(rec.frames) == 1
        assert rec.anomalies == [("ws_truncated_frame", len(HELLO_UNMASKED))]

    def test_no_eof_no_report(self) -> None:
        rec = parse(HELLO_UNMASKED[:4], eof=False)
        assert rec.frames == [] and rec.anomalies == []

    def test_huge_declared_length_then_eof(self) -> None:
        """2**63-1 bytes declared, a few sent: a truncated frame, nothing allocated."""
        head = bytes([0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        rec = Recorder()
        parser = FrameParser(rec)
        parser.receive_data(head[:5], 1, 1)
        parser.receive_data(head[5:] + b"abc", 2, 2)
        parser.receive_data(b"defg", 3, 3)
        assert len(parser._buf) < 16
        parser.receive_eof(4, 4)
        (f,) = rec.frames
        assert f.payload_len == 2**63 - 1 and f.length_encoding == 64
        assert f.payload == b"abcdefg"
        assert f.missing == 2**63 - 1 - 7
        assert rec.codes == ["ws_truncated_frame"]

    def test_huge_declared_length_memory_bounded(self) -> None:
        head = bytes([0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4])
        rec = Recorder()
        parser = FrameParser(rec, max_payload=4096)
        parser.receive_data(head, 0, 0)
        chunk = bytes(65536)
        for i in range(64):  # 4 MiB of payload
            parser.receive_data(chunk, i, i)
            assert len(parser._buf) < 16
            assert len(parser._skipped_payload) <= 4096
        parser.receive_eof(99, 99)
        (f,) = rec.frames
        assert len(f.payload) == 4096
        assert f.payload == (bytes([1, 2, 3, 4]) * 1024)  # zeros unmasked: the key
        assert f.missing == 2**63 - 1 - 4096
        assert sorted(rec.codes) == ["ws_payload_cut", "ws_truncated_frame"]


class TestOversized:
    """Frames larger than ``max_payload`` are cut; the frames after them still parse."""

    KEY = b"\x0f\x1e\x2d\x3c"
    BIG = bytes(i % 249 for i in range(1000))
    DATA = serialize_frame(2, BIG, mask_key=KEY) + HELLO_MASKED + PING_HELLO

    def test_cut_and_realigned(self) -> None:
        rec = parse(self.DATA, max_payload=100)
        big, hello, ping = rec.frames
        assert (big.payload, big.payload_len, big.missing) == (self.BIG[:100], 1000, 900)
        assert hello.payload == b"Hello" and hello.offset == 8 + 1000
        assert ping.payload == b"Hello" and ping.offset == 8 + 1000 + 11
        assert rec.anomalies == [("ws_payload_cut", 0)]

    def test_cut_the_same_however_split(self) -> None:
        expected = wire(parse(self.DATA, max_payload=100))
        for chunks in splits(self.DATA):
            assert wire(parse(*chunks, max_payload=100)) == expected

    def test_gap_to_the_end_writes_no_zeros(self) -> None:
        """A gap that runs past the kept part: the payload is what was captured."""
        rec = Recorder()
        parser = FrameParser(rec, max_payload=100)
        parser.receive_data(self.DATA[:8 + 30], 0, 0)
        parser.receive_gap(900, 0, 1)  # to 70 bytes before the frame's end
        parser.receive_data(self.DATA[8 + 930:], 0, 2)
        parser.receive_eof(0, 3)
        big, hello, ping = rec.frames
        assert big.payload == self.BIG[:30] and big.missing == 970
        assert hello.payload == b"Hello" and ping.payload == b"Hello"

    def test_hole_larger_than_what_was_captured_ends_the_kept_part(self) -> None:
        """Zeros for a hole are written only up to what the capture held of the frame
        (or HOLE_FILL): a huge hole in a frame over max_payload costs no memory."""
        import wspcap.ws.frames as frames_module
        rec = Recorder()
        parser = FrameParser(rec, max_payload=100)
        saved = frames_module.HOLE_FILL
        frames_module.HOLE_FILL = 5
        try:
            parser.receive_data(self.DATA[:8 + 4], 0, 0)  # 4 payload bytes
            parser.receive_gap(20, 0, 1)                  # a 20-byte hole in the kept part
            parser.receive_data(self.DATA[8 + 24:], 0, 2)
            parser.receive_eof(0, 3)
        finally:
            frames_module.HOLE_FILL = saved
        big, hello, _ping = rec.frames
        assert big.payload == self.BIG[:4] and big.missing == 996
        assert hello.payload == b"Hello"

    def test_gap_inside_kept_part(self) -> None:
        rec = Recorder()
        parser = FrameParser(rec, max_payload=100)
        wire_bytes = self.DATA
        parser.receive_data(wire_bytes[:8 + 50], 0, 0)  # header + 50 payload bytes
        parser.receive_gap(10, 0, 1)
        parser.receive_data(wire_bytes[8 + 60:], 0, 2)
        parser.receive_eof(0, 3)
        big, hello, ping = rec.frames
        assert big.payload == self.BIG[:50] + bytes(10) + self.BIG[60:100]
        assert big.missing == 900 + 10
        assert (hello.offset, hello.payload) == (1008, b"Hello")
        assert (ping.offset, ping.payload) == (1019, b"Hello")
        assert rec.codes == ["ws_payload_cut"]

    def test_gap_inside_passed_over_part(self) -> None:
        rec = Recorder()
        parser = FrameParser(rec, max_payload=100)
        parser.receive_data(self.DATA[:8 + 500], 0, 0)
        parser.receive_gap(100, 0, 1)
        parser.receive_data(self.DATA[8 + 600:], 0, 2)
        big, hello, ping = rec.frames
        assert big.payload == self.BIG[:100] and big.missing == 900
        assert (hello.offset, hello.payload) == (1008, b"Hello")
        assert (ping.offset, ping.payload) == (1019, b"Hello")
        assert rec.codes == ["ws_payload_cut"]

    def test_start_time_is_its_first_bytes(self) -> None:
        """ts_start of every frame, the cut one too, is the time of the chunk that
        brought its first byte, wherever the stream is cut in three (issue 15
        item 8: the cut frame kept the start time of a frame before it)."""
        data = HELLO_MASKED + PING_HELLO + self.DATA
        starts = [0, 11, 18, 18 + 1008, 18 + 1019]  # offsets of the five frames
        for i in range(1, 30):
            for j in range(i + 1, 80, 3):
                rec = parse(data[:i], data[i:j], data[j:], max_payload=100)
                want = [0 if s < i else 1 if s < j else 2 for s in starts]
                assert [f.ts_start for f in rec.frames] == want, (i, j)

    def test_default_limit(self) -> None:
        assert MAX_PAYLOAD >= 1 << 20


class TestGaps:
    """Bytes the capture lost: zero-filled inside a payload, resync after a header."""

    def test_gap_inside_payload(self) -> None:
        f1 = bytes([0x82, 10]) + b"0123456789"
        rec = Recorder()
        parser = FrameParser(rec)
        parser.receive_data(f1[:6], 0, 1)
        parser.receive_gap(3, 0, 2)
        parser.receive_data(f1[9:] + HELLO_UNMASKED, 0, 3)
        first, second = rec.frames
        assert (first.payload, first.missing) == (b"0123" + bytes(3) + b"789", 3)
        assert (second.offset, second.payload, second.missing) == (12, b"Hello", 0)
        assert rec.anomalies == [] and not parser.desynced

    def test_gap_inside_masked_payload(self) -> None:
        f1 = serialize_frame(2, b"0123456789", mask_key=b"\x01\x02\x03\x04")
        rec = Recorder()
        parser = FrameParser(rec)
        parser.receive_data(f1[:6 + 4], 0, 1)
        parser.receive_gap(3, 0, 2)
        parser.receive_data(f1[13:] + HELLO_MASKED, 0, 3)
        first, second = rec.frames
        assert (first.payload, first.missing) == (b"0123" + bytes(3) + b"789", 3)
        assert (second.offset, second.payload) == (16, b"Hello")

    def test_gap_ending_the_payload(self) -> None:
        f1 = bytes([0x82, 10]) + b"0123456789"
        rec = Recorder()
        parser = FrameParser(rec)
        parser.receive_data(f1[:9], 0, 1)
        parser.receive_gap(3, 0, 2)
        assert len(rec.frames) == 1
        parser.receive_data(HELLO_UNMASKED, 0, 3)
        first, second = rec.frames
        assert (first.payload, first.missing) == (b"0123456" + bytes(3), 3)
        assert second.offset == 12 and second.payload == b"Hello"

    def test_gap_over_a_whole_frame_resyncs(self) -> None:
        rec = Recorder()
        parser = FrameParser(rec)
        parser.receive_data(HELLO_UNMASKED, 0, 1)
        parser.receive_gap(len(SEED), 0, 2)
        assert parser.desynced
        parser.receive_data(HELLO_MASKED, 0, 3)
        assert not parser.desynced
        _first, second = rec.frames
        assert second.offset == len(HELLO_UNMASKED) + len(SEED)
        assert second.payload == b"Hello"
        # The gap ended on a frame boundary: no captured byte was passed over, so
        # there is nothing to report beyond the gap itself (the TCP layer's).
        assert rec.codes == []

    def test_gap_over_header_skips_garbage_then_resyncs(self) -> None:
        rec = Recorder()
        parser = FrameParser(rec)
        parser.receive_data(HELLO_UNMASKED + SEED[:3], 0, 1)
        parser.receive_gap(10, 0, 2)  # runs past the header: boundaries lost
        assert parser.desynced
        parser.receive_data(b"\xff" * 17, 0, 3)  # bytes that cannot start a frame
        assert parser.desynced and len(rec.frames) == 1
        parser.receive_data(b"\x70" * 13, 0, 4)  # reserved opcode: still not a boundary
        parser.receive_data(PING_HELLO + HELLO_UNMASKED, 0, 5)
        assert not parser.desynced
        assert [f.payload for f in rec.frames] == [b"Hello", b"Hello", b"Hello"]
        assert rec.frames[1].offset == len(HELLO_UNMASKED) + len(SEED)
        assert rec.frames[2].offset == rec.frames[1].offset + len(PING_HELLO)
        assert "ws_desync" in rec.codes

    def test_gap_past_a_frame_emits_it_truncated(self) -> None:
        f1 = bytes([0x82, 10]) + b"0123456789"
        rec = Recorder()
        parser = FrameParser(rec)
        parser.receive_data(f1[:6], 0, 1)
        parser.receive_gap(6 + len(SEED), 0, 2)
        parser.receive_data(HELLO_UNMASKED, 0, 3)
        first, second = rec.frames
        assert first.payload == b"0123" and first.missing == 6
        assert second.offset == len(f1) + len(SEED) and second.payload == b"Hello"
        # The gap ended on a frame boundary: the truncated frame is all that is lost.
        assert rec.codes == ["ws_truncated_frame"]

    def test_desync_until_eof(self) -> None:
        rec = Recorder()
        parser = FrameParser(rec)
        parser.receive_data(HELLO_UNMASKED + b"\x81", 0, 1)
        parser.receive_gap(4, 0, 2)
        parser.receive_data(b"\xff\xff\xff", 0, 3)
        parser.receive_eof(0, 4)
        assert len(rec.frames) == 1
        # The partial header is passed over with the bytes after the gap.
        assert rec.anomalies == [("ws_desync", len(HELLO_UNMASKED))]


class TestPlausible:
    """The heuristic used to find frame boundaries again."""

    def test_well_formed(self) -> None:
        assert plausible_frames(HELLO_UNMASKED + HELLO_MASKED) == 2
        assert plausible_frames(SEED[:10]) == 1  # runs past the end: first frame only

    @pytest.mark.parametrize("data", [b"", b"\x81", b"\xf1\x00", b"\x83\x00", b"\x09\x00",
                                      bytes([0x89, 126, 0, 200]), bytes([0x82, 126, 0, 5])])
    def test_implausible(self, data: bytes) -> None:
        assert plausible_frames(data) == 0


# -- properties ----------------------------------------------------------------

@st.composite
def frames(draw: st.DrawFn) -> tuple[bytes, dict[str, object]]:
    # (and a few around 4 KiB, where the parser copies a payload out through
    # a memoryview: see frames._VIEW_FROM)
    payload = draw(st.binary(max_size=300) | st.integers(4090, 4200).map(
        lambda n: bytes(i * 7 & 0xFF for i in range(n))))
    n = len(payload)
    encodings = ([7] if n < 126 else []) + ([16] if n < 65536 else []) + [64]
    enc = draw(st.sampled_from(encodings))
    opcode = draw(st.integers(0, 15))
    fin = draw(st.booleans())
    rsv = draw(st.integers(0, 7))
    key = draw(st.none() | st.binary(min_size=4, max_size=4))
    data = serialize_frame(opcode, payload, fin=fin, rsv=rsv, mask_key=key,
                           length_encoding=enc)
    facts = {"opcode": opcode, "fin": fin, "rsv1": bool(rsv & 4), "rsv2": bool(rsv & 2),
                 "rsv3": bool(rsv & 1), "masked": key is not None,
                 "mask_key": int.from_bytes(key, "big") if key else None,
                 "length_encoding": enc, "payload_len": n, "payload": payload, "missing": 0,
                 "header_len": 2 + {7: 0, 16: 2, 64: 8}[enc] + (4 if key else 0)}
    nonminimal = (enc == 16 and n < 126) or (enc == 64 and n < 65536)
    return data, dict(facts, nonminimal=nonminimal)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames(), min_size=1, max_size=8), st.lists(st.integers(0, 10_000), max_size=12))
def test_roundtrip_any_split(items: list[tuple[bytes, dict[str, object]]],
                             points: list[int]) -> None:
    """serialize(random frames), cut anywhere, parse: the same frames."""
    data = b"".join(d for d, _ in items)
    rec = parse(*cut(data, points))
    assert len(rec.frames) == len(items)
    offset = 0
    expected_anomalies = []
    for (raw, facts), frame in zip(items, rec.frames):
        assert frame.offset == offset
        for name, value in facts.items():
            if name != "nonminimal":
                assert getattr(frame, name) == value, name
        if facts["nonminimal"]:
            expected_anomalies.append(("ws_nonminimal_length", offset))
        offset += len(raw)
    assert rec.anomalies == expected_anomalies


_ops = st.lists(st.one_of(st.binary(max_size=64), st.integers(1, 50)), max_size=30)


@settings(max_examples=300, deadline=None)
@given(_ops, st.sampled_from([8, 100, MAX_PAYLOAD]))
def test_garbage_never_raises(ops: list[bytes | int], max_payload: int) -> None:
    """Any bytes and gaps: only frames and anomalies come out, never an exception."""
    rec = Recorder()
    parser = FrameParser(rec, max_payload=max_payload)
    for i, op in enumerate(ops):
        if isinstance(op, int):
            parser.receive_gap(op, i, i)
        else:
            parser.receive_data(op, i, i)
    parser.receive_eof(99, 99)
    for f in rec.frames:
        assert 0 <= f.missing <= f.payload_len
        assert len(f.payload) <= f.payload_len
        assert len(f.payload) + f.missing >= min(f.payload_len, 2**64)
    for code, _ in rec.anomalies:
        assert code in {"ws_nonminimal_length", "ws_length_msb_set", "ws_truncated_frame",
                        "ws_desync", "ws_payload_cut"}


@settings(max_examples=150, deadline=None)
@given(st.lists(frames(), min_size=1, max_size=6), st.lists(st.integers(0, 10_000), max_size=12),
       st.integers(0, 200))
def test_records_independent_of_split_with_cut(items: list[tuple[bytes, dict[str, object]]],
                                               points: list[int], max_payload: int) -> None:
    """Frames cut at ``max_payload`` come out the same however the stream is split."""
    data = b"".join(d for d, _ in items)
    whole = parse(data, max_payload=max_payload)
    assert wire(parse(*cut(data, points), max_payload=max_payload)) == wire(whole)
    for (_, facts), frame in zip(items, whole.frames, strict=True):
        payload = facts["payload"]
        assert isinstance(payload, bytes)
        assert frame.payload == payload[:max_payload]
        assert frame.missing == max(0, len(payload) - max_payload)


# -- the one length decoder, and its NumPy mirror ------------------------------------

@settings(max_examples=300, deadline=None)
@given(length=st.one_of(st.integers(0, 300), st.integers(0, 0x1FFFF),
                        st.integers(0, (1 << 63) - 1),
                        st.sampled_from((125, 126, 127, 0xFFFF, 0x10000))),
       width=st.sampled_from((None, 16, 64)), masked=st.booleans(),
       lead=st.binary(max_size=5), cut=st.integers(0, 12))
def test_frame_length_reads_what_was_written(length: int, width: int | None, masked: bool,
                                             lead: bytes, cut: int) -> None:
    """frame_length reads back the length of any header written in any of
    the three forms (RFC 6455 section 5.2), says how many bytes a cut header
    needs, and the NumPy mirror (ws.runs.frame_lengths) agrees with it."""
    import numpy as np

    from wspcap.ws.frames import frame_length
    from wspcap.ws.runs import frame_lengths

    if width == 16 and length > 0xFFFF:
        width = 64
    enc = width or (7 if length < 126 else 16 if length < 0x10000 else 64)
    b1 = (0x80 if masked else 0) | (length if enc == 7 else 126 if enc == 16 else 127)
    ext = b"" if enc == 7 else length.to_bytes(2 if enc == 16 else 8, "big")
    header = bytes((0x82, b1)) + ext
    buf = lead + header + (b"\x01\x02\x03\x04" if masked else b"")
    pos = len(lead)
    assert frame_length(buf, pos, len(buf)) == (len(header), length, enc)
    short = pos + min(cut, len(header) - 1)  # cut inside the header
    hl, need, _ = frame_length(buf, pos, short)
    assert hl == 0 and short - pos < need <= len(header)
    view = np.frombuffer(buf + bytes(8), np.uint8)
    hls, lengths, encs = frame_lengths(view, np.array([pos]))
    assert (int(hls[0]), int(lengths[0]), int(encs[0])) == (len(header), length, enc)
