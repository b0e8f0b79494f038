"""Tests of :mod:`wspcap.ws.mask` (RFC 6455 section 5.3, client-to-server masking)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wspcap.ws.mask import NUMPY_THRESHOLD, frame_payloads, unmask


def reference(payload: bytes, key: bytes, start: int = 0) -> bytes:
    """RFC 6455 section 5.3, literally: octet i XOR masking-key octet (i MOD 4)."""
    return bytes(b ^ key[(start + i) % 4] for i, b in enumerate(payload))


class TestMasking:
    """RFC 6455 section 5.3: ``transformed-octet-i = original-octet-i XOR masking-key-octet-j``."""

    def test_rfc_example(self) -> None:
        # Section 5.7: "Hello" masked with 37 fa 21 3d.
        key = bytes([0x37, 0xFA, 0x21, 0x3D])
        assert unmask(bytes([0x7F, 0x9F, 0x4D, 0x51, 0x58]), key) == b"Hello"
        assert unmask(b"Hello", key) == bytes([0x7F, 0x9F, 0x4D, 0x51, 0x58])

    def test_threshold_in_range(self) -> None:
        assert 0 < NUMPY_THRESHOLD < 2100

    def test_every_length_around_the_threshold(self) -> None:
        rng = random.Random(6455)
        data = rng.randbytes(2100)
        key = rng.randbytes(4)
        for n in range(2101):
            assert unmask(data[:n], key) == reference(data[:n], key), n

    @pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 1023, 1024, 1025, 1027, 2048, 2049, 2100])
    @pytest.mark.parametrize("start", range(8))
    def test_key_rotation(self, n: int, start: int) -> None:
        rng = random.Random(n * 8 + start)
        data = rng.randbytes(n)
        key = rng.randbytes(4)
        assert unmask(data, key, start) == reference(data, key, start)

    def test_chunks_with_running_offset(self) -> None:
        """Unmasking a payload in chunks, carrying the offset, equals unmasking it whole."""
        rng = random.Random(7)
        data = rng.randbytes(5000)
        key = rng.randbytes(4)
        out = b""
        pos = 0
        for size in (1, 2, 3, 1500, 7, 1024, 2463):
            out += unmask(data[pos:pos + size], key, pos)
            pos += size
        assert pos == len(data)
        assert out == reference(data, key)

    @pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
    @pytest.mark.parametrize("n", [10, 3000])
    def test_buffer_types(self, kind: type, n: int) -> None:
        data = bytes(range(256)) * (n // 256 + 1)
        data = data[:n]
        key = b"\x01\x80\xff\x10"
        result = unmask(kind(data), key)
        assert type(result) is bytes
        assert result == reference(data, key)

    def test_involution(self) -> None:
        data = bytes(range(256)) * 10
        key = b"\xde\xad\xbe\xef"
        assert unmask(unmask(data, key), key) == data

    def test_input_not_modified(self) -> None:
        data = bytearray(b"x" * 2000)
        unmask(data, b"\x01\x02\x03\x04")
        assert data == bytearray(b"x" * 2000)


@given(st.binary(max_size=3000), st.binary(min_size=4, max_size=4), st.integers(0, 2**40))
def test_matches_reference(data: bytes, key: bytes, start: int) -> None:
    assert unmask(data, key, start) == reference(data, key, start)


@given(st.lists(st.tuples(st.binary(min_size=4, max_size=4),
                          st.one_of(st.binary(max_size=300), st.binary(min_size=1000,
                                                                       max_size=1100)),
                          st.binary(max_size=6), st.booleans()), max_size=12))
def test_frame_payloads_match_one_at_a_time(parts: list[tuple[bytes, bytes, bytes,
                                                              bool]]) -> None:
    """frame_payloads over a buffer of (gap, key, payload) pieces gives each
    payload, unmasked as unmask() does one by one where it is masked (either
    side of NUMPY_THRESHOLD)."""
    buf, want, starts, lengths, masked = b"", [], [], [], []
    for key, payload, gap, chosen in parts:
        buf += gap + key
        starts.append(len(buf))
        lengths.append(len(payload))
        masked.append(chosen)
        want.append(unmask(payload, key) if chosen else payload)
        buf += payload
    got = frame_payloads(buf, np.asarray(starts, np.int64), np.asarray(lengths, np.int64),
                         np.asarray(masked, bool))
    assert got == want
    assert all(type(p) is bytes for p in got)
