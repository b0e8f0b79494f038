"""Tests of :mod:`wspcap.ws.deflate` (RFC 7692, permessage-deflate).

Compressed payloads are made here with zlib directly, as RFC 7692 section
7.2.1 describes (raw DEFLATE, sync flush, trailing ``00 00 ff ff`` removed),
or copied from the RFC's examples in section 7.2.3.
"""

from __future__ import annotations

import random
import tracemalloc
import zlib

import pytest

from wspcap.ws.deflate import DeflateParams, InflateBudget, Inflater, negotiate

TAIL = b"\x00\x00\xff\xff"


class Sender:
    """One direction's compressor, per RFC 7692 section 7.2.1."""

    def __init__(self, window_bits: int = 15, no_context_takeover: bool = False) -> None:
        self.window_bits = window_bits
        self.no_context_takeover = no_context_takeover
        self._c = zlib.compressobj(wbits=-window_bits)

    def compress(self, message: bytes) -> bytes:
        if self.no_context_takeover:
            self._c = zlib.compressobj(wbits=-self.window_bits)
        data = self._c.compress(message) + self._c.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(TAIL)
        return data[:-4]


def corpus(seed: int, count: int = 12) -> list[bytes]:
    """Messages that share a lot of text, so back references cross messages."""
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randint(3, 12)).hex().encode() for _ in range(40)]
    return [b" ".join(rng.choice(words) for _ in range(rng.randint(1, 300)))
            for _ in range(count)]


class TestRfcExamples:
    """RFC 7692 section 7.2.3: the examples, byte for byte."""

    def test_hello(self) -> None:
        """Section 7.2.3.1: "Hello" is ``f2 48 cd c9 c9 07 00``."""
        data = bytes([0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00])
        assert Sender().compress(b"Hello") == data
        assert Inflater().inflate(data) == (b"Hello", None, "")

    def test_shared_window(self) -> None:
        """Section 7.2.3.2: the same message again refers back: ``f2 00 11 00 00``."""
        first = bytes([0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00])
        second = bytes([0xF2, 0x00, 0x11, 0x00, 0x00])
        sender = Sender()
        assert [sender.compress(b"Hello"), sender.compress(b"Hello")] == [first, second]
        inflater = Inflater()
        assert inflater.inflate(first)[0] == b"Hello"
        assert inflater.inflate(second) == (b"Hello", None, "")

    def test_no_compression_block(self) -> None:
        """Section 7.2.3.3: a stored DEFLATE block."""
        data = bytes([0x00, 0x05, 0x00, 0xFA, 0xFF, 0x48, 0x65, 0x6C, 0x6C, 0x6F, 0x00])
        assert Inflater().inflate(data) == (b"Hello", None, "")

    def test_bfinal_block(self) -> None:
        """Section 7.2.3.4: a block with BFINAL set, then a byte to complete the tail."""
        data = bytes([0xF3, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00, 0x00])
        assert Inflater().inflate(data) == (b"Hello", None, "")

    def test_bfinal_blocks_in_a_row(self) -> None:
        """A sender that always ends with BFINAL: every message must still inflate."""
        data = bytes([0xF3, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00, 0x00])
        inflater = Inflater()
        for _ in range(3):
            assert inflater.inflate(data) == (b"Hello", None, "")

    def test_two_blocks(self) -> None:
        """Section 7.2.3.5: "Hello" in two DEFLATE blocks."""
        data = bytes([0xF2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xCA, 0xC9, 0xC9,
                      0x07, 0x00])
        assert Inflater().inflate(data) == (b"Hello", None, "")

    def test_empty_message(self) -> None:
        data = Sender().compress(b"")
        assert Inflater().inflate(data) == (b"", None, "")


class TestContext:
    """RFC 7692 sections 7.1.1 and 7.1.2: context takeover and window sizes."""

    @pytest.mark.parametrize("window_bits", range(9, 16))
    @pytest.mark.parametrize("no_context_takeover", [False, True])
    def test_window_and_takeover(self, window_bits: int, no_context_takeover: bool) -> None:
        messages = corpus(window_bits)
        sender = Sender(window_bits, no_context_takeover)
        inflater = Inflater(window_bits, no_context_takeover)
        for message in messages:
            assert inflater.inflate(sender.compress(message)) == (message, None, "")
        assert not inflater.broken

    def test_takeover_actually_used(self) -> None:
        """With context takeover, later messages depend on earlier ones."""
        messages = corpus(1)
        with_takeover = [Sender().compress(m) for m in messages]
        sender = Sender()
        shared = [sender.compress(m) for m in messages]
        assert sum(map(len, shared)) < sum(map(len, with_takeover))
        # A receiver that resets its context cannot inflate them.
        inflater = Inflater(no_context_takeover=True)
        results = [inflater.inflate(data) for data in shared]
        assert results[0] == (messages[0], None, "")
        assert any(problem == "pmd_inflate_failed" for _, problem, _ in results[1:])

    def test_window_bits_exceeded(self) -> None:
        """A sender that refers back further than its negotiated window."""
        block = random.Random(3).randbytes(1000)
        sender = Sender(15)
        first, second = sender.compress(block), sender.compress(block)
        # The second message repeats the first, 1000 bytes back: beyond 2**9.
        assert len(second) < 100
        inflater = Inflater(window_bits=9)
        assert inflater.inflate(first) == (block, None, "")
        _out, problem, detail = inflater.inflate(second)
        assert problem == "pmd_window_bits_exceeded" and detail
        assert inflater.broken
        # The same bytes with the window the sender really used inflate fine.
        inflater = Inflater(window_bits=15)
        assert [inflater.inflate(first)[0], inflater.inflate(second)[0]] == [block, block]

    def test_window_bits_8_read_as_9(self) -> None:
        messages = corpus(8)
        sender = Sender(9)
        inflater = Inflater(window_bits=8)
        for message in messages:
            assert inflater.inflate(sender.compress(message))[0] == message

    def test_garbage_fails_and_marks_broken(self) -> None:
        inflater = Inflater()
        out, problem, detail = inflater.inflate(b"\xff\xff\xff\xff")
        assert (out, problem) == (None, "pmd_inflate_failed") and detail
        assert inflater.broken
        # A later self-contained message still inflates.
        assert inflater.inflate(Sender().compress(b"Hello"))[0] == b"Hello"


class TestBomb:
    """RFC 7692 section 8.1: a decompression bomb is cut, not followed."""

    @pytest.fixture(scope="class")
    def bomb(self) -> bytes:
        comp = zlib.compressobj(wbits=-15)
        zeros = bytes(1 << 20)
        data = b"".join(comp.compress(zeros) for _ in range(200))  # 200 MiB of zeros
        data += comp.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(TAIL) and len(data) < 1 << 20
        return data[:-4]

    def test_cut_at_max_size(self, bomb: bytes) -> None:
        max_size = 1 << 20
        inflater = Inflater(max_size=max_size)
        tracemalloc.start()
        try:
            out, problem, detail = inflater.inflate(bomb)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert problem == "pmd_ratio_excessive" and detail
        assert out == bytes(max_size)
        assert peak < 16 << 20  # nowhere near the 200 MiB the message inflates to
        assert inflater.broken

    def test_exactly_max_size_is_fine(self) -> None:
        message = b"a" * 1000
        assert Inflater(max_size=1000).inflate(Sender().compress(message)) == (
            message, None, "")
        out, problem, _ = Inflater(max_size=999).inflate(Sender().compress(message))
        assert problem == "pmd_ratio_excessive" and out == message[:999]


class TestBudget:
    """Budgets across messages (issue 15 item 9): what would go past one is kept
    compressed, and so is what follows in that direction."""

    def test_fill_exactly_then_refuse(self) -> None:
        message = b"hello, budget " * 100
        budget = InflateBudget(2 * len(message), "connection")
        sender, inflater = Sender(), Inflater(budgets=(budget,))
        assert inflater.inflate(sender.compress(message)) == (message, None, "")
        assert inflater.inflate(sender.compress(message)) == (message, None, "")  # to the byte
        assert budget.room == 0
        out, problem, detail = inflater.inflate(sender.compress(b"x"))
        assert (out, problem) == (None, "res_inflate_budget_exceeded")
        assert f"connection's inflation budget of {2 * len(message)} bytes" in detail
        assert inflater.inflate(sender.compress(b"y")) == (None, None, "")  # flagged once
        assert budget.used == 2 * len(message)

    def test_a_message_past_the_room_is_not_cut_but_kept(self) -> None:
        budget = InflateBudget(1500, "capture")
        inflater = Inflater(budgets=(budget,))
        sender = Sender()
        assert inflater.inflate(sender.compress(b"a" * 1000))[0] == b"a" * 1000
        out, problem, _ = inflater.inflate(sender.compress(b"b" * 1000))
        assert (out, problem) == (None, "res_inflate_budget_exceeded")
        assert budget.used == 1000 and inflater.over_budget and inflater.broken

    def test_shared_by_inflaters_the_smallest_room_counts(self) -> None:
        connection, capture = InflateBudget(10_000, "connection"), InflateBudget(1500, "capture")
        one = Inflater(budgets=(connection, capture))
        two = Inflater(budgets=(InflateBudget(10_000, "connection"), capture))
        assert one.inflate(Sender().compress(b"a" * 1000))[0] == b"a" * 1000
        out, problem, detail = two.inflate(Sender().compress(b"b" * 1000))
        assert (out, problem) == (None, "res_inflate_budget_exceeded")
        assert "capture's inflation budget of 1500 bytes" in detail
        assert connection.used == capture.used == 1000

    def test_per_message_cut_still_applies_within_the_budget(self) -> None:
        budget = InflateBudget(1 << 30, "capture")
        out, problem, _ = Inflater(max_size=999, budgets=(budget,)).inflate(
            Sender().compress(b"a" * 1000))
        assert problem == "pmd_ratio_excessive" and out == b"a" * 999
        assert budget.used == 999


class TestNegotiate:
    """RFC 7692 section 7.1: the parameters a server accepts."""

    def test_not_accepted(self) -> None:
        assert negotiate(None) == (None, [])
        assert negotiate("") == (None, [])
        assert negotiate("x-webkit-deflate-frame") == (None, [])

    def test_defaults(self) -> None:
        assert negotiate("permessage-deflate") == (DeflateParams(), [])
        assert DeflateParams() == DeflateParams(False, False, 15, 15)

    def test_all_parameters(self) -> None:
        params, problems = negotiate(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=10; client_max_window_bits=12")
        assert problems == []
        assert params == DeflateParams(server_no_context_takeover=True,
                                       client_no_context_takeover=True,
                                       server_max_window_bits=10, client_max_window_bits=12)

    def test_case_spaces_and_quotes(self) -> None:
        params, problems = negotiate('Permessage-Deflate ;Client_Max_Window_Bits = "9"')
        assert problems == []
        assert params == DeflateParams(client_max_window_bits=9)

    def test_first_of_several_extensions(self) -> None:
        params, problems = negotiate("x-foo; bar=1, permessage-deflate; "
                                     "server_max_window_bits=8, permessage-deflate")
        assert problems == []
        assert params == DeflateParams(server_max_window_bits=8)

    @pytest.mark.parametrize("value", ["7", "16", "0", "abc", "-9", "", "9.5"])
    @pytest.mark.parametrize("name", ["server_max_window_bits", "client_max_window_bits"])
    def test_invalid_window_bits(self, name: str, value: str) -> None:
        params, problems = negotiate(f"permessage-deflate; {name}={value}")
        assert params is not None and getattr(params, name) == 15
        assert len(problems) == 1 and name in problems[0]

    def test_server_window_bits_needs_a_value(self) -> None:
        params, problems = negotiate("permessage-deflate; server_max_window_bits")
        assert params == DeflateParams() and len(problems) == 1

    def test_no_context_takeover_takes_no_value(self) -> None:
        params, problems = negotiate("permessage-deflate; server_no_context_takeover=1")
        assert params == DeflateParams(server_no_context_takeover=True)
        assert len(problems) == 1

    def test_repeated_parameter(self) -> None:
        params, problems = negotiate("permessage-deflate; client_max_window_bits=10; "
                                     "client_max_window_bits=11")
        assert params is not None and len(problems) == 1 and "repeated" in problems[0]

    def test_unknown_parameter(self) -> None:
        params, problems = negotiate("permessage-deflate; mem_level=8")
        assert params == DeflateParams() and len(problems) == 1
