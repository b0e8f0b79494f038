"""Tests of :mod:`wspcap.ws.messages`: fragmentation, control frames, close, UTF-8.

Frames are built as :class:`~wspcap.ws.frames.Frame` records, the way the
frame parser hands them over; failing cases assert anomaly codes.
"""

from __future__ import annotations

import zlib

import pytest

from wspcap.ws.deflate import Inflater
from wspcap.ws.frames import RSV1, Frame
from wspcap.ws.messages import Message, MessageAssembler, close_code_valid

KEY = 0x37FA213D


def mk(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv1: bool = False,
       rsv2: bool = False, rsv3: bool = False, masked: bool = True, missing: int = 0,
       payload_len: int | None = None, ts: int = 0, packet: int = 0) -> Frame:
    n = len(payload) + missing if payload_len is None else payload_len
    return Frame(offset=0, ts=ts, packet=packet, ts_start=ts, fin=fin, rsv1=rsv1, rsv2=rsv2,
                 rsv3=rsv3, opcode=opcode, masked=masked, mask_key=KEY if masked else None,
                 length_encoding=7 if n < 126 else 16, payload_len=n,
                 header_len=2 + (4 if masked else 0), payload=payload, missing=missing)


class Recorder:
    """A MessageSink that keeps everything."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.anomalies: list[tuple[str, int | None]] = []
        self.details: list[str] = []

    def message(self, message: Message) -> None:
        self.messages.append(message)

    def anomaly_at_frame(self, code: str, detail: str, frame_index: int | None, ts: int,
                         packet: int) -> None:
        assert isinstance(detail, str) and detail
        self.anomalies.append((code, frame_index))
        self.details.append(detail)

    @property
    def codes(self) -> list[str]:
        return [code for code, _ in self.anomalies]


def assemble(*frames: Frame, client: bool = True, inflater: Inflater | None = None,
             rsv_allowed: int = 0, eof: bool = True) -> Recorder:
    rec = Recorder()
    asm = MessageAssembler(rec, client=client, inflater=inflater, rsv_allowed=rsv_allowed)
    for i, frame in enumerate(frames):
        asm.receive_frame(frame, i)
    if eof:
        asm.receive_eof()
    assert asm.messages == len(rec.messages)
    return rec


def deflate(*messages: bytes) -> list[bytes]:
    """RFC 7692 section 7.2.1, with zlib: sync flush, then drop ``00 00 ff ff``."""
    comp = zlib.compressobj(wbits=-15)
    out = []
    for m in messages:
        data = comp.compress(m) + comp.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(b"\x00\x00\xff\xff")
        out.append(data[:-4])
    return out


class TestFragmentation:
    """RFC 6455 section 5.4: fragmentation."""

    def test_single_frame_text(self) -> None:
        rec = assemble(mk(1, b"Hello", ts=5, packet=2))
        (m,) = rec.messages
        assert (m.type, m.opcode, m.frames, m.payload, m.text) == ("text", 1, 1, b"Hello", "Hello")
        assert (m.length, m.wire_length, m.complete, m.compressed, m.inflated) == (
            5, 5, True, False, None)
        assert (m.ts_start, m.ts_end, m.packet_start, m.first_frame, m.last_frame) == (
            5, 5, 2, 0, 0)
        assert rec.anomalies == []

    def test_single_frame_binary(self) -> None:
        (m,) = assemble(mk(2, b"\x00\xff")).messages
        assert (m.type, m.payload, m.text) == ("binary", b"\x00\xff", None)

    def test_fragments_joined(self) -> None:
        # RFC 6455 section 5.7: "Hel" then "lo".
        rec = assemble(mk(1, b"Hel", fin=False, ts=1, packet=1),
                       mk(0, b"lo", ts=2, packet=2))
        (m,) = rec.messages
        assert (m.type, m.frames, m.payload, m.text, m.complete) == (
            "text", 2, b"Hello", "Hello", True)
        assert (m.first_frame, m.last_frame, m.ts_start, m.ts_end) == (0, 1, 1, 2)
        assert (m.packet_start, m.packet_end) == (1, 2)
        assert rec.anomalies == []

    def test_many_fragments_binary(self) -> None:
        parts = [bytes([i]) * i for i in range(1, 10)]
        frames = [mk(2, parts[0], fin=False)] + [mk(0, p, fin=False) for p in parts[1:-1]]
        frames.append(mk(0, parts[-1]))
        (m,) = assemble(*frames).messages
        assert m.frames == 9 and m.payload == b"".join(parts) and m.last_frame == 8

    def test_empty_fragments(self) -> None:
        (m,) = assemble(mk(1, b"", fin=False), mk(0, b"", fin=False), mk(0, b"")).messages
        assert (m.payload, m.text, m.frames) == (b"", "", 3)

    def test_utf8_character_split_across_fragments(self) -> None:
        snowman = "\u2603".encode()
        rec = assemble(mk(1, snowman[:1], fin=False), mk(0, snowman[1:]))
        assert rec.messages[0].text == "\u2603" and rec.anomalies == []

    def test_control_frames_between_fragments(self) -> None:
        rec = assemble(mk(1, b"Hel", fin=False), mk(9, b"ping"), mk(10, b"pong"),
                       mk(0, b"lo"))
        ping, pong, text = rec.messages
        assert (ping.type, ping.payload, ping.first_frame) == ("ping", b"ping", 1)
        assert (pong.type, pong.payload, pong.first_frame) == ("pong", b"pong", 2)
        assert (text.text, text.frames, text.first_frame, text.last_frame) == ("Hello", 2, 0, 3)
        assert rec.anomalies == []

    def test_orphan_continuation(self) -> None:
        rec = assemble(mk(0, b"lo"), mk(1, b"x"))
        orphan, text = rec.messages
        assert orphan.type == "continuation" and orphan.payload == b"lo"
        assert text.text == "x"
        assert rec.anomalies == [("ws_orphan_continuation", 0)]

    def test_interleaved_message(self) -> None:
        rec = assemble(mk(1, b"Hel", fin=False), mk(2, b"\x01\x02"), mk(0, b"lo"))
        first, second, orphan = rec.messages
        assert (first.type, first.payload, first.complete) == ("text", b"Hel", False)
        assert (second.type, second.payload, second.complete) == ("binary", b"\x01\x02", True)
        assert orphan.type == "continuation"
        assert rec.anomalies == [("ws_message_interleaved", 1), ("ws_orphan_continuation", 2)]

    def test_interleaved_fragmented_message(self) -> None:
        rec = assemble(mk(2, b"a", fin=False), mk(1, b"b", fin=False), mk(0, b"c"))
        first, second = rec.messages
        assert (first.payload, first.complete) == (b"a", False)
        assert (second.type, second.payload, second.frames) == ("text", b"bc", 2)
        assert rec.codes == ["ws_message_interleaved"]

    def test_eof_inside_message(self) -> None:
        rec = assemble(mk(1, b"Hel", fin=False), mk(0, b"l", fin=False))
        (m,) = rec.messages
        assert (m.payload, m.complete, m.frames) == (b"Hell", False, 2)
        assert rec.anomalies == [("ws_message_incomplete", 0)]

    def test_no_eof_nothing_emitted(self) -> None:
        rec = assemble(mk(1, b"Hel", fin=False), eof=False)
        assert rec.messages == [] and rec.anomalies == []

    def test_truncated_frame_makes_incomplete_message(self) -> None:
        rec = assemble(mk(1, "\u2603".encode()[:2], missing=1))
        (m,) = rec.messages
        assert m.complete is False and m.text is None
        assert rec.anomalies == []  # a cut character is not a UTF-8 violation


def placed(*frames: Frame, start: int = 100) -> list[Frame]:
    """The frames at their stream offsets, one after the other from ``start``
    (a test leaves one out to lose it in a gap)."""
    out, offset = [], start
    for f in frames:
        out.append(f._replace(offset=offset))
        offset += f.header_len + f.payload_len
    return out


class TestLostBytes:
    """Issue 15 items 6 and 7: a message is complete only when all of it was captured."""

    def test_frame_lost_between_fragments(self) -> None:
        a, b, lost, c, d = placed(mk(1, b"aaaa", fin=False), mk(0, b"bbbb", fin=False),
                                  mk(0, b"cccc", fin=False), mk(0, b"dddd", fin=False),
                                  mk(0, b"eeee"))
        del lost  # its segment was not captured: the parser resyncs at the next frame
        rec = assemble(a, b, c, d)
        (m,) = rec.messages
        assert (m.frames, m.payload, m.complete) == (4, b"aaaabbbbddddeeee", False)
        assert rec.anomalies == [("ws_message_incomplete", 0)]
        # the lost frame's 10 bytes: 6 of header (masked) and 4 of payload
        assert rec.details == [("fragmented text message of 4 frames from stream offset 100 "
                                "lacks 10 stream bytes no captured frame holds (stream "
                                "offsets 120-130)")]

    def test_control_frames_between_fragments_leave_no_hole(self) -> None:
        rec = assemble(*placed(mk(1, b"Hel", fin=False), mk(9, b"ping"), mk(0, b"lo")))
        assert rec.messages[1].complete and rec.anomalies == []

    def test_bytes_missing_inside_a_fragment(self) -> None:
        frames = placed(mk(2, b"ab", fin=False), mk(0, b"c\0", fin=False),
                        mk(0, b"d"))
        frames[1] = frames[1]._replace(missing=1)  # a zero-filled hole in its payload
        rec = assemble(*frames)
        (m,) = rec.messages
        assert m.complete is False
        assert rec.details == [("fragmented binary message of 3 frames from stream offset "
                                "100 lacks payload bytes of 1 of its frames (1 of 2 in the "
                                "frame at stream offset 108)")]

    def test_final_fragment_lost_before_the_next_message(self) -> None:
        a, b, _lost, nxt = placed(mk(1, b"Hel", fin=False), mk(0, b"l", fin=False),
                                  mk(0, b"o"), mk(1, b"next"))
        rec = assemble(a, b, nxt)
        first, second = rec.messages
        assert (first.payload, first.complete) == (b"Hell", False)
        assert (second.text, second.complete) == ("next", True)
        # not interleaving: the final fragment may be in the lost bytes
        assert rec.codes == ["ws_message_incomplete"]
        assert rec.details[0].endswith("stream offsets 116-123)")

    def test_interleaving_without_a_loss_is_still_reported(self) -> None:
        rec = assemble(*placed(mk(1, b"Hel", fin=False), mk(1, b"new")))
        assert rec.codes == ["ws_message_interleaved"]

    def test_orphan_continuation_is_incomplete(self) -> None:
        rec = assemble(mk(0, b"lo"), mk(0, b"more", fin=False), mk(1, b"x"))
        orphan, more, text = rec.messages
        assert (orphan.type, orphan.complete, more.complete) == ("continuation", False, False)
        assert text.complete

    def test_compressed_message_without_its_end_is_not_inflated(self) -> None:
        (data,) = deflate(b"Hello, world! " * 20)
        third = len(data) // 3
        rec = assemble(*placed(mk(1, data[:third], fin=False, rsv1=True),
                               mk(0, data[third:2 * third], fin=False)),
                       inflater=Inflater(), rsv_allowed=RSV1)
        (m,) = rec.messages
        assert (m.compressed, m.inflated, m.complete) == (True, False, False)
        assert (m.payload, m.text, m.length) == (data[:2 * third], None, 2 * third)
        assert rec.codes == ["ws_message_incomplete"]
        assert rec.details[0].endswith("after 2 frames; not inflated")

    def test_context_after_a_lost_compressed_message(self) -> None:
        """The window a lost message would have left is unknown: the next message
        that refers back to it is reported, not inflated against another window."""
        first, second = deflate(b"Hello, world! " * 20, b"Hello, world! " * 2)
        half = len(first) // 2
        a, _lost, c, nxt = placed(mk(1, first[:half], fin=False, rsv1=True),
                                  mk(0, first[half:-2], fin=False), mk(0, first[-2:]),
                                  mk(1, second, rsv1=True))
        rec = assemble(a, c, nxt, inflater=Inflater(), rsv_allowed=RSV1)
        lost, after = rec.messages
        assert (lost.inflated, lost.complete) == (False, False)
        assert (after.inflated, after.complete) == (False, True)
        assert rec.codes == ["ws_message_incomplete", "pmd_context_lost"]


class TestControlFrames:
    """RFC 6455 section 5.5: control frames."""

    def test_ping_pong(self) -> None:
        ping, pong = assemble(mk(9, b"Hello"), mk(10, b"Hello")).messages
        assert (ping.type, ping.opcode, ping.payload) == ("ping", 9, b"Hello")
        assert (pong.type, pong.opcode, pong.payload) == ("pong", 10, b"Hello")

    def test_control_too_long(self) -> None:
        rec = assemble(mk(9, b"x" * 126))
        assert rec.messages[0].type == "ping"
        assert rec.anomalies == [("ws_control_too_long", 0)]

    def test_control_125_is_fine(self) -> None:
        assert assemble(mk(10, b"x" * 125)).anomalies == []

    def test_control_fragmented(self) -> None:
        rec = assemble(mk(9, b"x", fin=False))
        assert rec.anomalies == [("ws_control_fragmented", 0)]

    @pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
    def test_reserved_opcode(self, opcode: int) -> None:
        rec = assemble(mk(opcode, b"?"))
        (m,) = rec.messages
        assert m.type == f"unknown-0x{opcode:x}" and m.opcode == opcode
        assert rec.anomalies == [("ws_reserved_opcode", 0)]

    def test_reserved_opcode_does_not_break_message(self) -> None:
        rec = assemble(mk(1, b"a", fin=False), mk(3, b"?"), mk(0, b"b"))
        unknown, text = rec.messages
        assert unknown.type == "unknown-0x3" and text.text == "ab"
        assert rec.codes == ["ws_reserved_opcode"]


class TestClose:
    """RFC 6455 sections 5.5.1 and 7.4: the close frame's body."""

    def test_code_and_reason(self) -> None:
        rec = assemble(mk(8, b"\x03\xe8bye"))
        (m,) = rec.messages
        assert (m.type, m.close_code, m.close_reason) == ("close", 1000, "bye")
        assert rec.anomalies == []

    def test_code_only(self) -> None:
        (m,) = assemble(mk(8, b"\x03\xe9")).messages
        assert (m.close_code, m.close_reason) == (1001, "")

    def test_empty_close(self) -> None:
        rec = assemble(mk(8, b""))
        assert (rec.messages[0].close_code, rec.messages[0].close_reason) == (None, None)
        assert rec.anomalies == []

    def test_one_byte_close(self) -> None:
        rec = assemble(mk(8, b"\x03"))
        assert rec.messages[0].close_code is None
        assert rec.anomalies == [("ws_close_1_byte", 0)]

    @pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999,
                                      5000, 65535])
    def test_invalid_codes(self, code: int) -> None:
        rec = assemble(mk(8, code.to_bytes(2, "big")))
        assert rec.messages[0].close_code == code
        assert rec.anomalies == [("ws_close_code_invalid", 0)]
        assert not close_code_valid(code)

    @pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                                      1012, 1013, 1014, 3000, 4000, 4999])
    def test_valid_codes(self, code: int) -> None:
        rec = assemble(mk(8, code.to_bytes(2, "big") + b"ok"))
        assert rec.messages[0].close_code == code
        assert rec.anomalies == []
        assert close_code_valid(code)

    def test_invalid_utf8_reason(self) -> None:
        rec = assemble(mk(8, b"\x03\xe8\xff\xfe"))
        (m,) = rec.messages
        assert m.close_code == 1000 and m.close_reason is not None
        assert rec.anomalies == [("ws_close_reason_invalid_utf8", 0)]


class TestUtf8:
    """RFC 6455 section 8.1: text messages are UTF-8."""

    @pytest.mark.parametrize("payload", [b"\xff", b"abc\xc3", b"\xed\xa0\x80",
                                         b"\xf4\x90\x80\x80", b"\xc0\xaf"])
    def test_invalid_single_frame(self, payload: bytes) -> None:
        rec = assemble(mk(1, payload))
        (m,) = rec.messages
        assert m.text is None and m.payload == payload
        assert rec.anomalies == [("ws_invalid_utf8", 0)]

    def test_invalid_fragmented(self) -> None:
        rec = assemble(mk(1, b"ok", fin=False), mk(0, b"\xff"))
        assert rec.messages[0].text is None
        assert rec.anomalies == [("ws_invalid_utf8", 0)]

    def test_binary_is_not_checked(self) -> None:
        assert assemble(mk(2, b"\xff")).anomalies == []


class TestMasking:
    """RFC 6455 section 5.1: clients mask, servers do not."""

    def test_client_unmasked(self) -> None:
        rec = assemble(mk(1, b"a", masked=False), client=True)
        assert rec.anomalies == [("ws_client_unmasked", 0)]
        assert rec.messages[0].text == "a"

    def test_server_masked(self) -> None:
        rec = assemble(mk(1, b"a", masked=True), client=False)
        assert rec.anomalies == [("ws_server_masked", 0)]

    def test_correct_directions(self) -> None:
        assert assemble(mk(1, b"a", masked=True), client=True).anomalies == []
        assert assemble(mk(1, b"a", masked=False), client=False).anomalies == []


class TestReservedBits:
    """RFC 6455 section 5.2 and RFC 7692 section 6: RSV bits."""

    def test_rsv1_without_extension(self) -> None:
        rec = assemble(mk(1, b"Hello", rsv1=True))
        (m,) = rec.messages
        assert (m.payload, m.compressed, m.inflated) == (b"Hello", False, None)
        assert rec.anomalies == [("ws_rsv_unnegotiated", 0)]

    @pytest.mark.parametrize("bits", [{"rsv2": True}, {"rsv3": True}])
    def test_rsv2_rsv3_never_negotiated(self, bits: dict[str, bool]) -> None:
        rec = assemble(mk(2, b"x", **bits), inflater=Inflater(), rsv_allowed=RSV1)
        assert rec.anomalies == [("ws_rsv_unnegotiated", 0)]

    def test_rsv1_under_permessage_deflate(self) -> None:
        (hello,) = deflate(b"Hello")
        assert hello == bytes.fromhex("f248cdc9c90700")  # RFC 7692 section 7.2.3.1
        rec = assemble(mk(1, hello, rsv1=True), inflater=Inflater(), rsv_allowed=RSV1)
        (m,) = rec.messages
        assert (m.text, m.compressed, m.inflated) == ("Hello", True, True)
        assert (m.length, m.wire_length) == (5, len(hello))
        assert rec.anomalies == []

    def test_compressed_fragmented_message(self) -> None:
        (data,) = deflate(b"Hello, world! " * 20)
        half = len(data) // 2
        rec = assemble(mk(1, data[:half], fin=False, rsv1=True), mk(0, data[half:]),
                       inflater=Inflater(), rsv_allowed=RSV1)
        (m,) = rec.messages
        assert m.text == "Hello, world! " * 20 and m.frames == 2 and m.compressed
        assert rec.anomalies == []

    def test_context_takeover_across_messages(self) -> None:
        first, second = deflate(b"Hello", b"Hello")
        assert second == bytes.fromhex("f200110000")  # RFC 7692 section 7.2.3.2
        rec = assemble(mk(1, first, rsv1=True), mk(1, second, rsv1=True),
                       inflater=Inflater(), rsv_allowed=RSV1)
        assert [m.text for m in rec.messages] == ["Hello", "Hello"]

    def test_uncompressed_message_under_extension(self) -> None:
        rec = assemble(mk(1, b"plain"), inflater=Inflater(), rsv_allowed=RSV1)
        assert rec.messages[0].compressed is False and rec.anomalies == []

    def test_rsv1_on_continuation(self) -> None:
        (data,) = deflate(b"Hello")
        rec = assemble(mk(1, data[:3], fin=False, rsv1=True), mk(0, data[3:], rsv1=True),
                       inflater=Inflater(), rsv_allowed=RSV1)
        assert rec.anomalies == [("pmd_rsv1_on_continuation", 1)]
        assert rec.messages[0].text == "Hello"

    def test_rsv1_on_control(self) -> None:
        rec = assemble(mk(9, b"x", rsv1=True), inflater=Inflater(), rsv_allowed=RSV1)
        assert rec.anomalies == [("pmd_rsv1_on_control", 0)]

    def test_inflate_failure(self) -> None:
        rec = assemble(mk(2, b"\xff\xff\xff", rsv1=True), inflater=Inflater(),
                       rsv_allowed=RSV1)
        (m,) = rec.messages
        assert (m.compressed, m.inflated, m.payload) == (True, False, b"\xff\xff\xff")
        assert rec.anomalies == [("pmd_inflate_failed", 0)]

    def test_invalid_utf8_after_inflation(self) -> None:
        (data,) = deflate(b"\xff\xfe")
        rec = assemble(mk(1, data, rsv1=True), inflater=Inflater(), rsv_allowed=RSV1)
        assert rec.messages[0].text is None
        assert rec.anomalies == [("ws_invalid_utf8", 0)]
