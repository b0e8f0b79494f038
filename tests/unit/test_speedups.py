"""The compiled kernels (``wspcap/*/_speedups.c``) against their pure-Python
references, on generated input.

Where a C compiler is at hand the kernels must have been built (an install
that silently fell back to the references would hide a broken build); where
none is, the tests skip and the references are what wspcap runs.
"""

from __future__ import annotations

import re
import struct
from typing import Any

import numpy as np
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from golden.kernels import kernel, same_headers, same_whole_frames
from hypothesis import given, settings
from hypothesis import strategies as st

from wspcap.decode.batch import LINK_MODES, py_headers
from wspcap.decode.link import AF_INET, AF_INET6
from wspcap.sources.files import pcap_records
from wspcap.tables.arrays import py_codes_of, py_join_bytes, py_join_strs
from wspcap.tls.protection import py_open_runs
from wspcap.ws.mask import py_frame_payloads, py_unmask
from wspcap.ws.runs import py_whole_frames

_kernel = kernel


# -- ws: frame payloads --------------------------------------------------------------------

@st.composite
def frames(draw: st.DrawFn) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
    """A buffer of payloads, each after 4 key bytes, some masked."""
    parts, starts, lengths, masked = [b"\x00" * draw(st.integers(0, 7))], [], [], []
    for payload in draw(st.lists(st.one_of(st.binary(max_size=40), st.binary(min_size=1000,
                                                                              max_size=3000)),
                                 max_size=12)):
        key = draw(st.binary(min_size=4, max_size=4))
        at = sum(map(len, parts)) + 4
        parts += [key, payload, b"\xaa" * draw(st.integers(0, 5))]
        starts.append(at)
        lengths.append(len(payload))
        masked.append(draw(st.booleans()))
    return (b"".join(parts), np.array(starts, np.int64), np.array(lengths, np.int64),
            np.array(masked, np.bool_))


@settings(max_examples=300, deadline=None)
@given(frames())
def test_frame_payloads_mirror(case: tuple[bytes, np.ndarray, np.ndarray, np.ndarray]) -> None:
    kernel = _kernel("wspcap.ws._speedups")
    buf, starts, lengths, masked = case
    expected = py_frame_payloads(buf, starts, lengths, masked)
    assert kernel.frame_payloads(buf, starts, lengths, masked) == expected
    # masking is its own inverse: unmasked payloads masked again are the wire bytes
    for x, n, m, got in zip(starts.tolist(), lengths.tolist(), masked.tolist(), expected,
                            strict=True):
        if not m:
            assert got == buf[x:x + n]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=64), st.binary(min_size=1000, max_size=5000)),
       st.binary(min_size=4, max_size=4), st.integers(0, 11))
def test_unmask_mirror(payload: bytes, key: bytes, start: int) -> None:
    kernel = _kernel("wspcap.ws._speedups")
    got = kernel.unmask(payload, key, start)
    assert got == py_unmask(payload, key, start)
    assert py_unmask(got, key, start) == payload  # its own inverse
    assert kernel.unmask(bytearray(payload), bytearray(key), start) == got
    with pytest.raises(ValueError, match="4 bytes"):
        kernel.unmask(payload, key[:3])


def test_frame_payloads_refuses_out_of_bounds() -> None:
    kernel = _kernel("wspcap.ws._speedups")
    buf = bytes(range(16))
    one = np.ones(1, np.bool_)
    for start, length, masked in ((10, 7, one), (-1, 2, ~one), (2, 2, one), (17, 0, ~one),
                                  (4, -1, ~one)):
        with pytest.raises(ValueError, match="outside the buffer"):
            kernel.frame_payloads(buf, np.array([start], np.int64),
                                  np.array([length], np.int64), masked)
    with pytest.raises(TypeError):
        kernel.frame_payloads(buf, np.array([4], np.int32), np.array([1], np.int64), one)
    with pytest.raises(ValueError, match="differ"):
        kernel.frame_payloads(buf, np.array([4], np.int64), np.array([1, 2], np.int64), one)


@st.composite
def segments(draw: st.DrawFn) -> tuple[bytes, np.ndarray, np.ndarray]:
    """Segments that are mostly one whole frame each (7-, 16- and 64-bit
    lengths, masked or not), sometimes cut, padded or too short."""
    parts, ps, sizes = [draw(st.binary(max_size=5))], [], []
    for _ in range(draw(st.integers(0, 8))):
        n = draw(st.one_of(st.integers(0, 125), st.integers(126, 70000)))
        masked = draw(st.booleans())
        b0 = draw(st.integers(0, 255))
        if n < 126:
            head = bytes([b0, n | (0x80 if masked else 0)])
        elif n < 0x10000 and draw(st.booleans()):
            head = bytes([b0, 126 | (0x80 if masked else 0)]) + n.to_bytes(2, "big")
        else:
            head = bytes([b0, 127 | (0x80 if masked else 0)]) + n.to_bytes(8, "big")
        frame = head + (b"\x01\x02\x03\x04" if masked else b"") + bytes(n)
        shape = draw(st.sampled_from(["whole"] * 6 + ["cut", "padded", "short"]))
        if shape == "cut":
            frame = frame[:draw(st.integers(0, len(frame) - 1))]
        elif shape == "padded":
            frame += draw(st.binary(min_size=1, max_size=3))
        elif shape == "short":
            frame = frame[:draw(st.integers(0, 3))]
        ps.append(sum(map(len, parts)))
        sizes.append(len(frame))
        parts.append(frame)
    return b"".join(parts), np.array(ps, np.int64), np.array(sizes, np.int64)


@settings(max_examples=300, deadline=None)
@given(segments())
def test_whole_frames_mirror(case: tuple[bytes, np.ndarray, np.ndarray]) -> None:
    kernel = _kernel("wspcap.ws._speedups")
    buf, ps, sizes = case
    assert same_whole_frames(kernel.whole_frames(buf, ps, sizes), py_whole_frames(buf, ps, sizes))


def test_whole_frames_refuses_out_of_bounds() -> None:
    kernel = _kernel("wspcap.ws._speedups")
    with pytest.raises(ValueError, match="outside the buffer"):
        kernel.whole_frames(b"\x81\x05abc", np.array([0], np.int64), np.array([7], np.int64))


# -- sources: pcap record walk -------------------------------------------------------------

@st.composite
def records(draw: st.DrawFn) -> tuple[bytes, int, bool]:
    """Classic pcap records (some cut by the end of the buffer, some declaring
    absurd lengths), after a prefix the walk starts beyond."""
    big = draw(st.booleans())
    fmt = ">IIII" if big else "<IIII"
    prefix = draw(st.binary(max_size=30))
    out = [prefix]
    for data in draw(st.lists(st.binary(max_size=60), max_size=20)):
        out += [struct.pack(fmt, 1, 2, len(data), len(data)), data]
    if draw(st.booleans()):  # a record header declaring more than is left
        out.append(struct.pack(fmt, 1, 2, draw(st.integers(0, 2**32 - 1)), 0))
    buf = b"".join(out)
    cut = draw(st.integers(len(prefix), len(buf)))
    return buf[:cut], len(prefix), big


@settings(max_examples=300, deadline=None)
@given(records())
def test_pcap_records_mirror(case: tuple[bytes, int, bool]) -> None:
    kernel = _kernel("wspcap.sources._speedups")
    buf, pos, big = case
    expected = pcap_records(buf, pos, big)
    assert kernel.pcap_records(buf, pos, big) == expected
    starts, end, pending = expected
    assert end <= len(buf) and (pending == -1) == (len(buf) - end < 16)
    assert all(pos <= s - 16 < len(buf) for s in starts)


# -- decode: header fields of a block ------------------------------------------------------

_LINKS = {  # link header before an IPv4 / IPv6 packet, by link mode
    0: (bytes(12) + b"\x08\x00", bytes(12) + b"\x86\xdd"),
    1: ((2).to_bytes(4, "little"), (30).to_bytes(4, "big")),
    2: (b"", b""),
}


@st.composite
def blocks(draw: st.DrawFn) -> tuple[bytes, np.ndarray, np.ndarray, tuple[int, int, int]]:
    """Packets of one link type: IPv4 or IPv6 TCP segments with options or
    not, then bytes flipped and ends cut, as a capture's block holds them."""
    link = draw(st.sampled_from(sorted(LINK_MODES)))
    mode, off, etype_at = LINK_MODES[link]
    # (a block's packets follow their record headers: its buffer is never empty)
    parts, starts, caplens = [draw(st.binary(min_size=1, max_size=16))], [], []
    for _ in range(draw(st.integers(1, 10))):
        v6 = draw(st.booleans())
        payload = draw(st.binary(max_size=30))
        doff = draw(st.sampled_from([5, 5, 8, 4, 15]))
        tcp = (draw(st.binary(min_size=12, max_size=12)) + bytes([doff << 4])
               + draw(st.binary(min_size=7, max_size=7)) + bytes(max(0, doff * 4 - 20)))
        if v6:
            ip = (b"\x60" + bytes(3) + (len(tcp) + len(payload)).to_bytes(2, "big") + b"\x06\x40"
                  + draw(st.binary(min_size=32, max_size=32)))
        else:
            ip = (b"\x45\x00" + (20 + len(tcp) + len(payload)).to_bytes(2, "big") + bytes(4)
                  + b"\x40\x06" + bytes(2) + draw(st.binary(min_size=8, max_size=8)))
        packet = bytearray(_LINKS[mode][v6] + ip + tcp + payload)
        if len(_LINKS[mode][v6]) != off:
            packet[:len(_LINKS[mode][v6])] = bytes(off)[:len(_LINKS[mode][v6])]
            packet = bytearray(bytes(off)) + packet[len(_LINKS[mode][v6]):]
            packet[etype_at:etype_at + 2] = b"\x86\xdd" if v6 else b"\x08\x00"
        for _ in range(draw(st.integers(0, 2))):  # flipped bytes
            at = draw(st.integers(0, len(packet) - 1))
            packet[at] = draw(st.integers(0, 255))
        packet = packet[:draw(st.integers(0, len(packet)))] if draw(st.booleans()) else packet
        starts.append(sum(map(len, parts)))
        caplens.append(len(packet))
        parts.append(bytes(packet))
    return (b"".join(parts) + draw(st.binary(max_size=3)), np.array(starts, np.int64),
            np.array(caplens, np.int64), (mode, off, etype_at))


@settings(max_examples=400, deadline=None)
@given(blocks())
def test_headers_mirror(case: tuple[bytes, np.ndarray, np.ndarray, tuple[int, int, int]]) -> None:
    kernel = _kernel("wspcap.decode._speedups")
    buf, starts, caplens, (mode, off, etype_at) = case
    assert same_headers(kernel.headers(buf, starts, caplens, mode, off, etype_at, AF_INET,
                                       AF_INET6),
                        py_headers(buf, starts, caplens, mode, off, etype_at))


# -- tls: records opened ------------------------------------------------------------------

@st.composite
def sealed(draw: st.DrawFn) -> tuple[AESGCM | ChaCha20Poly1305, bytes, int, bytes,
                                     np.ndarray, np.ndarray]:
    """TLS 1.3 records sealed with a real AEAD (nonce: iv XOR sequence number,
    additional data: the header) laid in a buffer with bytes between them;
    some records flipped (they do not open) or cut short."""
    cipher = draw(st.sampled_from([AESGCM, ChaCha20Poly1305]))
    aead = cipher(draw(st.binary(min_size=32, max_size=32)) if cipher is ChaCha20Poly1305
                  else draw(st.sampled_from([b"k" * 16, b"K" * 32])))
    iv = draw(st.binary(min_size=12, max_size=12))
    seq = draw(st.one_of(st.integers(0, 1000), st.integers((1 << 64) - 40, (1 << 64) - 1)))
    parts, starts, stops = [b"\x00" * draw(st.integers(0, 6))], [], []
    for i, content in enumerate(draw(st.lists(st.binary(max_size=300), max_size=10))):
        n = seq + i
        if n >= 1 << 64:
            break
        nonce = (int.from_bytes(iv, "big") ^ n).to_bytes(12, "big")
        header = bytes((23, 3, 3)) + (len(content) + 17).to_bytes(2, "big")
        record = bytearray(header + aead.encrypt(nonce, content + b"\x17", header))
        fault = draw(st.sampled_from(["none"] * 6 + ["flip", "cut"]))
        if fault == "flip":
            at = draw(st.integers(0, len(record) - 1))
            record[at] ^= 1 << draw(st.integers(0, 7))
        elif fault == "cut":
            record = record[:draw(st.integers(5, len(record) - 1))]
        at = sum(map(len, parts))
        parts += [bytes(record), b"\xee" * draw(st.integers(0, 3))]
        starts.append(at)
        stops.append(at + len(record))
    return (aead, iv, seq, b"".join(parts), np.array(starts, np.int64),
            np.array(stops, np.int64))


def _same(got: tuple[bytes, bytearray], want: tuple[bytes, np.ndarray]) -> bool:
    """Whether ``open_runs``'s kernel result equals its reference's."""
    return got[0] == want[0] and np.frombuffer(got[1], np.int64).tolist() == want[1].tolist()


@settings(max_examples=300, deadline=None)
@given(st.lists(sealed(), max_size=4), st.data())
def test_open_runs_mirror(cases: list[tuple[AESGCM | ChaCha20Poly1305, bytes, int, bytes,
                                            np.ndarray, np.ndarray]],
                          data: st.DataObject) -> None:
    """Runs of records (each in its own buffer, or all in one) opened by the
    kernel and by its reference alike: each run up to its first record that
    does not open, the next run from its own first record."""
    kernel = _kernel("wspcap.tls._speedups")
    shared = data.draw(st.booleans())
    buf = b"".join(case[3] for case in cases)
    runs, starts, stops, at = [], [], [], 0
    for aead, iv, seq, src, x, z in cases:
        shift = at if shared else 0
        runs.append((aead.decrypt, iv, seq, buf if shared else src, len(x)))
        starts.append(x + shift)
        stops.append(z + shift)
        at += len(src)
    x = np.concatenate([np.zeros(0, np.int64), *starts])
    z = np.concatenate([np.zeros(0, np.int64), *stops])
    want = py_open_runs(runs, x, z, InvalidTag)
    assert _same(kernel.open_runs(runs, x, z, InvalidTag), want)
    # what opened is each record's content and its type, a prefix of each run
    plain, lengths = want
    pos = at = 0
    for (_aead, _iv, _seq, _src, count), rx, rz in zip(runs, starts, stops, strict=True):
        opened = lengths[at:at + count]
        k = int((opened >= 0).sum())
        assert (opened[:k] >= 0).all() and (opened[k:] == -1).all()
        assert (opened[:k] == rz[:k] - rx[:k] - 5 - 16).all()
        for n in opened[:k].tolist():
            assert plain[pos + n - 1:pos + n] == b"\x17"
            pos += n
        at += count
    assert pos == len(plain)


def test_open_runs_stops_a_run_at_a_refusal_and_passes_other_errors_on() -> None:
    kernel = _kernel("wspcap.tls._speedups")
    calls: list[tuple[bytes, bytes, bytes]] = []

    def decrypt(nonce: bytes, fragment: bytes, header: bytes) -> bytes:
        calls.append((nonce, fragment, header))
        if fragment == b"no":
            raise InvalidTag
        if fragment == b"bad":
            raise KeyError(fragment)
        return fragment.upper() * 3  # (longer than the fragment: the buffer grows)

    src = b"HHHHHabcGGGGGno" + b"IIIIIbad" + b"JJJJJxy"
    starts = np.array([0, 8, 15, 23], np.int64)
    stops = np.array([8, 15, 23, 30], np.int64)
    iv = bytes(range(12))
    for fn in (kernel.open_runs, py_open_runs):
        calls.clear()
        # run 1: "abc" opens, "no" does not and "bad" is not tried; run 2: "xy" opens
        plain, lengths = fn([(decrypt, iv, 255, src, 3), (decrypt, iv, 7, src, 1)],
                            starts, stops, InvalidTag)
        assert plain == b"ABCABCABCXYXYXY"
        assert np.frombuffer(lengths, np.int64).tolist() == [9, -1, -1, 6]
        assert calls == [(bytes(range(11)) + bytes([11 ^ 255]), b"abc", b"HHHHH"),
                         (bytes(range(10)) + bytes([10 ^ 1, 11 ^ 0]), b"no", b"GGGGG"),
                         (bytes(range(11)) + bytes([11 ^ 7]), b"xy", b"JJJJJ")]
        with pytest.raises(KeyError):
            fn([(decrypt, iv, 0, src, 1)], starts[2:3], stops[2:3], InvalidTag)
        with pytest.raises(TypeError, match="bytes expected"):
            fn([(lambda *a: bytearray(3), iv, 0, src, 1)], starts[:1], stops[:1], InvalidTag)
        assert _same(fn([], starts[:0], stops[:0], InvalidTag),
                     (b"", np.zeros(0, np.int64)))


def test_open_runs_refuses_bad_arguments() -> None:
    """Every run is checked before a record is opened: a bad one anywhere
    opens none."""
    kernel = _kernel("wspcap.tls._speedups")
    src = bytes(20)
    one = np.array([0], np.int64)
    opened: list[bytes] = []

    def decrypt(nonce: bytes, fragment: bytes, header: bytes) -> bytes:
        opened.append(fragment)
        return fragment

    good = (decrypt, bytes(12), 0, src, 1)
    for fn in (kernel.open_runs, py_open_runs):
        for starts, stops, iv, seq, count, match in (
                (one, np.array([4], np.int64), bytes(12), 0, 1, "out of the buffer"),
                (one, np.array([21], np.int64), bytes(12), 0, 1, "out of the buffer"),
                (np.array([-1], np.int64), one + 8, bytes(12), 0, 1, "out of the buffer"),
                (one, np.array([5, 6], np.int64), bytes(12), 0, 1, "differ in length"),
                (one, one + 5, bytes(11), 0, 1, "12 bytes"),
                (one, one + 5, bytes(12), 0, 2, "do not add up"),
                (one, one + 5, bytes(12), 0, 0, "do not add up"),
                (np.array([0, 5], np.int64), np.array([5, 10], np.int64), bytes(12),
                 (1 << 64) - 1, 2, "2\\*\\*64")):
            with pytest.raises(ValueError, match=match):
                fn([(decrypt, iv, seq, src, count)], starts, stops, InvalidTag)
            x, z = np.concatenate([one, starts]), np.concatenate([one + 5, stops])
            with pytest.raises(ValueError, match=match):
                fn([good, (decrypt, iv, seq, src, count)], x, z, InvalidTag)
        with pytest.raises(TypeError):
            fn([(decrypt, bytearray(12), 0, src, 1)], one, one + 5, InvalidTag)
        with pytest.raises(TypeError):
            fn([(decrypt, bytes(12), 0, src)], one, one + 5, InvalidTag)
    assert not opened


# -- wspcap.tables: a part's payloads joined ------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=40), st.none(), st.just(bytearray(b"ab")),
                          st.just("text")), max_size=30),
       st.booleans(), st.booleans())
def test_join_bytes_mirror(items: list[object], wide: bool, as_array: bool) -> None:
    kernel = _kernel("wspcap.tables._speedups")
    got = _mirrored(py_join_bytes, kernel.join_bytes, _given(items, as_array), wide)
    if got is None:
        return
    data, offsets = got
    ends = np.frombuffer(offsets, np.int64 if wide else np.int32)
    assert data == b"".join(items) and ends[-1] == len(data)  # type: ignore[arg-type]


def _given(items: list[object], as_array: bool) -> object:
    """``items``, or an object array of them."""
    if not as_array:
        return items
    arr = np.empty(len(items), object)
    arr[:] = items
    return arr


def _mirrored(reference: Any, compiled: Any, items: object, wide: bool) -> Any:
    """What ``compiled(items, wide)`` gives, having checked that it is what
    ``reference`` gives; None where both raise the same (the same message for
    a TypeError: which item)."""
    try:
        expected = reference(items, wide)
    except (TypeError, UnicodeEncodeError) as e:
        with pytest.raises(type(e), match=re.escape(str(e)) if type(e) is TypeError else None):
            compiled(items, wide)
        return None
    got = compiled(items, wide)
    assert got == expected
    return got


def test_join_bytes_refuses_more_than_int32_offsets_hold(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    # (the reference's limit lowered to 10 bytes: OverflowError past it, and
    # 64-bit offsets take it)
    from wspcap.tables import arrays

    kernel = _kernel("wspcap.tables._speedups")
    monkeypatch.setattr(arrays, "MAX_BINARY", 10)
    with pytest.raises(OverflowError):
        py_join_bytes([b"0123456", b"89ab"], False)
    assert py_join_bytes([b"0123456", b"89ab"], True)[0] == b"012345689ab"
    # (the kernel's own limit would take 2 GiB of bytes objects to reach)
    with pytest.raises(TypeError):
        kernel.join_bytes(5, False)


# -- wspcap.tables: a column's strings encoded and joined ------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=12), st.none(), st.just("\udcff"),
                          st.just(b"bytes"), st.just(7)), max_size=30),
       st.booleans(), st.booleans())
def test_join_strs_mirror(items: list[object], wide: bool, as_array: bool) -> None:
    # The same buffers, nulls and errors (a value neither str nor None, a
    # lone surrogate: whichever comes first), from a list or an object array.
    kernel = _kernel("wspcap.tables._speedups")
    got = _mirrored(py_join_strs, kernel.join_strs, _given(items, as_array), wide)
    if got is None:
        return
    data, offsets, null = got
    texts = [t for t in items if t is not None]
    assert data == "".join(texts).encode()  # type: ignore[arg-type]
    assert np.frombuffer(offsets, np.int64 if wide else np.int32)[-1] == len(data)
    assert (null is None) == (None not in items)
    if null is not None:
        assert list(null) == [t is None for t in items]


def test_join_strs_refuses_more_than_int32_offsets_hold(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    from wspcap.tables import arrays

    kernel = _kernel("wspcap.tables._speedups")
    monkeypatch.setattr(arrays, "MAX_BINARY", 10)
    with pytest.raises(OverflowError):
        py_join_strs(["0123456", None, "89ab"], False)
    assert py_join_strs(["0123456", None, "89ab"], True)[0] == b"012345689ab"
    with pytest.raises(TypeError):
        kernel.join_strs(5, False)


# -- wspcap.tables: a dictionary column's codes ----------------------------------------------

_NAMES = ["c2s", "s2c", "request", "response", "", None, "é"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_NAMES), st.text(max_size=3), st.integers(-2, 2)),
                max_size=40),
       st.dictionaries(st.one_of(st.sampled_from(_NAMES), st.text(max_size=3)),
                       st.integers(-(1 << 31), (1 << 31) - 1), max_size=6),
       st.booleans())
def test_codes_of_mirror(names: list[object], index: dict[object, int], as_array: bool) -> None:
    # The same codes, whether a name repeats as one object or as equal
    # ones (the kernel looks a name up only where it is not the one before).
    kernel = _kernel("wspcap.tables._speedups")
    names = names + [(n + ".")[:-1] for n in names if isinstance(n, str)]  # (equal, other objects)
    given_names = _given(names, as_array)
    expected = py_codes_of(given_names, index)  # type: ignore[arg-type]
    assert kernel.codes_of(given_names, index) == expected
    codes = np.frombuffer(expected, np.int32).tolist()
    assert codes == [index.get(n, -1) for n in names]  # type: ignore[call-overload]


def test_codes_of_refuses_what_is_no_code() -> None:
    kernel = _kernel("wspcap.tables._speedups")
    with pytest.raises(OverflowError):
        kernel.codes_of(["a"], {"a": 1 << 40})
    with pytest.raises(TypeError):
        kernel.codes_of(["a"], {"a": "one"})
    with pytest.raises(TypeError):
        kernel.codes_of(["a"], ["a"])
    with pytest.raises(TypeError):  # (an unhashable name, as dict.get says)
        kernel.codes_of([["a"]], {"a": 1})
