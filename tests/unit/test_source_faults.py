"""Damaged capture files: cut anywhere, corrupt gzip, absurd timestamps (issue 15 items 1, 3).

The rule under test: every packet before the fault is kept, the fault is said
once (:attr:`CaptureFile.truncated`, with :attr:`CaptureFile.corrupt` for
damage rather than an early end), and nothing escapes but
:class:`CaptureFormatError` for a file that holds no capture header at all.

What is expected is worked out here without wspcap: the packets a cut leaves
whole come from a struct walk over the intact file (libpcap's record headers,
pcapng's block lengths), and what a damaged gzip stream still gives comes
from feeding :mod:`zlib` one byte at a time.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import pytest
from test_sources import epb, idb, pcap, shb

from wspcap.errors import CaptureFormatError
from wspcap.sources import files, open_capture

#: A null timestamp: NumPy's NaT as int64 (wspcap.timestamps.TS_NULL).
TS_NULL = -(1 << 63)

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
PCAP_HEADER, RECORD_HEADER = 24, 16
EPB, PB, SPB = 6, 2, 3


def pcap_ends(data: bytes) -> list[int]:
    """Where each record of a classic pcap ends (the file is intact)."""
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    ends, pos = [], PCAP_HEADER
    while pos < len(data):
        pos += RECORD_HEADER + struct.unpack_from(endian + "I", data, pos + 8)[0]
        ends.append(pos)
    assert pos == len(data)
    return ends


def pcapng_ends(data: bytes) -> tuple[int, list[int]]:
    """The end of the first (section header) block, and where each packet
    block ends (little-endian, intact)."""
    packets, pos = [], 0
    first = struct.unpack_from("<I", data, 4)[0]
    while pos < len(data):
        btype, blen = struct.unpack_from("<II", data, pos)
        pos += blen
        if btype in (EPB, PB, SPB):
            packets.append(pos)
    assert pos == len(data)
    return first, packets


def whole(ends: list[int], size: int) -> int:
    """Packets whose record ends within the first ``size`` bytes."""
    return sum(end <= size for end in ends)


def walk(path: Path) -> tuple[int, str | None, bool]:
    """(packets, truncated, corrupt), reading the file as the pipeline does."""
    with open_capture(path) as cap:
        n = sum(len(b.starts) for b in cap.batches())
        assert n == cap.packets_read
        return n, cap.truncated, cap.corrupt


def readable_after_cuts(stream: bytes) -> list[int]:
    """For every cut ``size`` of a sound gzip ``stream``, how many content bytes
    zlib inflates from ``stream[:size]`` (one member)."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    sizes, out = [0], 0
    for i in range(len(stream)):
        out += len(d.decompress(stream[i:i + 1]))
        sizes.append(out)
    return sizes


def salvage(stream: bytes) -> bytes:
    """What zlib inflates from a gzip ``stream`` before its first fault, fed a
    byte at a time (members in turn; the expected content of a damaged file)."""
    out = bytearray()
    rest = stream
    while rest:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        for i in range(len(rest)):
            try:
                out += d.decompress(rest[i:i + 1])
            except zlib.error:
                return bytes(out)
            if d.eof:
                break
        if not d.eof:
            return bytes(out)
        rest = d.unused_data.lstrip(b"\0")
    return bytes(out)


# -- cut anywhere ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cooked.pcap", "ipv6.pcap"])
def test_pcap_cut_at_every_byte(tmp_path: Path, name: str) -> None:
    data = (SAMPLES / name).read_bytes()
    ends = pcap_ends(data)
    path = tmp_path / name
    for size in range(len(data) + 1):
        path.write_bytes(data[:size])
        if size < PCAP_HEADER:
            with pytest.raises(CaptureFormatError):
                walk(path)
            continue
        n, truncated, corrupt = walk(path)
        assert n == whole(ends, size), size
        assert (truncated is None) == (size == PCAP_HEADER or size in ends), size
        assert not corrupt


def test_pcapng_cut_anywhere(tmp_path: Path) -> None:
    """Inside block headers, bodies and trailers, and in the section header."""
    data = (SAMPLES / "multi.pcapng").read_bytes()
    first, ends = pcapng_ends(data)
    boundaries = set()
    pos = 0
    while pos < len(data):
        pos += struct.unpack_from("<I", data, pos + 4)[0]
        boundaries.add(pos)
    path = tmp_path / "cut.pcapng"
    # Every byte of its first blocks and around every block boundary, every
    # seventh byte elsewhere (all 11,732 took half a minute on a busy machine).
    sizes = {*range(3000), *range(3000, len(data) + 1, 7), len(data)}
    sizes |= {b + d for b in boundaries for d in range(-16, 17) if 0 <= b + d <= len(data)}
    for size in sorted(sizes):
        path.write_bytes(data[:size])
        if size < first:
            with pytest.raises(CaptureFormatError):
                walk(path)
            continue
        n, truncated, corrupt = walk(path)
        assert n == whole(ends, size), size
        assert (truncated is None) == (size in boundaries), size
        assert not corrupt


@pytest.mark.parametrize("name", ["cooked.pcap", "multi.pcapng"])
def test_gzip_cut_at_every_byte(tmp_path: Path, name: str) -> None:
    """A cut .gz gives every packet its readable part holds, and says it was cut."""
    data = (SAMPLES / name).read_bytes()
    if name.endswith(".pcapng"):
        header, ends = pcapng_ends(data)
    else:
        header, ends = PCAP_HEADER, pcap_ends(data)
    packed = gzip.compress(data, mtime=0)
    path = tmp_path / (name + ".gz")
    readable_at = readable_after_cuts(packed)
    for size in range(len(packed)):
        path.write_bytes(packed[:size])
        readable = readable_at[size]
        if readable < header:
            with pytest.raises(CaptureFormatError):
                walk(path)
            continue
        n, truncated, corrupt = walk(path)
        assert n == whole(ends, readable), size
        assert truncated and not corrupt, size
    path.write_bytes(packed)
    assert walk(path) == (len(ends), None, False)


def test_gzip_cut_across_read_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cut past the first read block: the packets of every block before it too
    (GzipFile.read dropped the whole block the error came in: 0 packets)."""
    monkeypatch.setattr(files, "BLOCK_SIZE", 1 << 20)
    records = [(i, i, bytes([i & 0xFF]) * (500 + i % 900), 500 + i % 900) for i in range(8000)]
    data = pcap(packets=records)
    assert len(data) > 2 * files.BLOCK_SIZE
    packed = gzip.compress(data, mtime=0)
    for size in (len(packed) // 3, len(packed) * 2 // 3, len(packed) - 9, 70_000):
        path = tmp_path / "big.pcap.gz"
        path.write_bytes(packed[:size])
        n, truncated, corrupt = walk(path)
        assert n == whole(pcap_ends(data), len(salvage(packed[:size])))
        assert n > 0 and truncated and "cut short" in truncated and not corrupt


# -- corrupt gzip ------------------------------------------------------------------------


def test_gzip_bad_crc_keeps_every_packet(tmp_path: Path) -> None:
    data = (SAMPLES / "plain.pcap").read_bytes()
    packed = bytearray(gzip.compress(data, mtime=0))
    packed[-8] ^= 1  # the CRC-32 (RFC 1952 section 2.3)
    path = tmp_path / "crc.pcap.gz"
    path.write_bytes(bytes(packed))
    n, truncated, corrupt = walk(path)
    assert n == len(pcap_ends(data))
    assert corrupt and truncated is not None and "CRC-32" in truncated


def test_gzip_bad_length_keeps_every_packet(tmp_path: Path) -> None:
    data = (SAMPLES / "plain.pcap").read_bytes()
    packed = bytearray(gzip.compress(data, mtime=0))
    packed[-4] ^= 1  # ISIZE
    path = tmp_path / "isize.pcap.gz"
    path.write_bytes(bytes(packed))
    n, truncated, corrupt = walk(path)
    assert n == len(pcap_ends(data)) and corrupt and "length" in str(truncated)


@pytest.mark.parametrize("at", [0.1, 0.5, 0.9])
def test_gzip_corrupt_deflate_keeps_what_came_before(tmp_path: Path, at: float) -> None:
    """Corrupt compressed bytes: no zlib.error, and the packets inflated before
    the damage. (Deflate may give some garbage before zlib sees the damage: the
    packets read from it, if any, are the ones that cannot be vouched for.)"""
    data = pcap(packets=[(i, i, bytes(range(256)) * (1 + i % 5), 256 * (1 + i % 5))
                         for i in range(400)])
    packed = bytearray(gzip.compress(data, mtime=0))
    where = int(len(packed) * at)
    packed[where:where + 40] = bytes(range(40, 80))
    path = tmp_path / "bad.pcap.gz"
    path.write_bytes(bytes(packed))
    readable = salvage(bytes(packed))
    assert readable != data
    intact = next((i for i, (a, b) in enumerate(zip(readable, data)) if a != b),
                  min(len(readable), len(data)))
    sound = whole(pcap_ends(data), intact)
    with open_capture(path) as cap:
        got = [r.data for r in cap]
        assert cap.corrupt and cap.truncated
    ends = pcap_ends(data)
    want = [data[end - n:end] for end, n in zip(ends, [e - s - RECORD_HEADER for s, e in
                                                       zip([PCAP_HEADER, *ends], ends)])]
    assert sound > 0 and got[:sound] == want[:sound]


def test_gzip_members_and_padding(tmp_path: Path) -> None:
    """Concatenated members (``cat a.gz b.gz``), zero padding between them."""
    data = (SAMPLES / "plain.pcap").read_bytes()
    half = pcap_ends(data)[10]
    path = tmp_path / "two.pcap.gz"
    path.write_bytes(gzip.compress(data[:half]) + bytes(7) + gzip.compress(data[half:]))
    assert walk(path) == (len(pcap_ends(data)), None, False)


def test_gzip_trailing_garbage(tmp_path: Path) -> None:
    data = (SAMPLES / "plain.pcap").read_bytes()
    path = tmp_path / "tail.pcap.gz"
    path.write_bytes(gzip.compress(data) + b"this is not gzip")
    n, truncated, corrupt = walk(path)
    assert n == len(pcap_ends(data)) and corrupt and "not gzip" in str(truncated)


@pytest.mark.parametrize("content", [b"\x1f\x8b\x08", b"\x1f\x8b" + bytes(30),
                                     gzip.compress(b"\xd4\xc3\xb2")])
def test_gzip_without_a_capture_header(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.pcap.gz"
    path.write_bytes(content)
    with pytest.raises(CaptureFormatError):
        walk(path)


# -- corrupt pcapng blocks ------------------------------------------------------------------


@pytest.mark.parametrize("bad", [
    struct.pack("<III", EPB, 12, 12),  # a packet block too short for its fields
    struct.pack("<III", 1, 12, 12),  # an interface block too short for its link type
    struct.pack("<II", EPB, 44) + struct.pack("<IIIII", 0, 0, 1, 200, 200) + bytes(12)
    + struct.pack("<I", 44),  # captured length past its block
    struct.pack("<II", EPB, 36) + struct.pack("<IIIII", 5, 0, 1, 1, 1) + bytes(4)
    + struct.pack("<I", 36),  # an unknown interface
])
def test_pcapng_corrupt_block(tmp_path: Path, bad: bytes) -> None:
    e = "<"
    path = tmp_path / "x.pcapng"
    path.write_bytes(shb(e) + idb(e, 1) + epb(e, 0, 1, b"a") + bad + epb(e, 0, 2, b"b"))
    n, truncated, corrupt = walk(path)
    assert n == 1 and truncated and corrupt


# -- timestamps -------------------------------------------------------------------------------


def stamps(path: Path) -> list[int]:
    with open_capture(path) as cap:
        return [r.ts_ns for r in cap]


@pytest.mark.parametrize(("tsresol", "raw", "ns"), [
    (9, (1 << 63) - 1, (1 << 63) - 1),  # the last nanosecond int64 holds
    (9, 1 << 63, TS_NULL),
    (9, (1 << 64) - 1, TS_NULL),
    (6, (1 << 64) - 1, TS_NULL),  # the default resolution, an absurd count
    (0, 9_223_372_036, 9_223_372_036_000_000_000),  # seconds: 2262-04-11
    (0, 9_223_372_037, TS_NULL),
    (0, (1 << 64) - 1, TS_NULL),  # 10^-0: a 64-bit count of seconds
    (0x80, 1 << 40, TS_NULL),  # 2^-0: seconds too
    (0x80 | 30, 1 << 62, (1 << 32) * 10**9),
    (0x7F, 1 << 63, 0),  # 10^-127 s
])
def test_pcapng_timestamps_past_int64(tmp_path: Path, tsresol: int, raw: int, ns: int) -> None:
    e = "<"
    path = tmp_path / "ts.pcapng"
    path.write_bytes(shb(e) + idb(e, 1, tsresol=tsresol) + epb(e, 0, raw, b"x")
                     + epb(e, 0, 1, b"y"))
    first, second = stamps(path)
    assert first == ns
    assert second != TS_NULL  # the next packet has its own time


def test_pcapng_tsoffset_of_centuries(tmp_path: Path) -> None:
    e = "<"
    path = tmp_path / "off.pcapng"
    path.write_bytes(shb(e) + idb(e, 1, tsoffset=1 << 40) + epb(e, 0, 5, b"x")
                     + idb(e, 1, tsoffset=-(1 << 40)) + epb(e, 1, 5, b"y")
                     + idb(e, 1, tsoffset=-1_700_000_000) + epb(e, 2, 5, b"z"))
    assert stamps(path) == [TS_NULL, TS_NULL, -1_700_000_000 * 10**9 + 5_000]


def test_pcap_seconds_near_2_to_32_still_fit(tmp_path: Path) -> None:
    """32-bit seconds end in 2106, inside int64 nanoseconds: nothing to null."""
    path = tmp_path / "late.pcap"
    sec = (1 << 32) - 1
    path.write_bytes(pcap(packets=[(sec, 999_999, b"a", 1), (sec, (1 << 32) - 1, b"b", 1)]))
    assert stamps(path) == [sec * 10**9 + 999_999_000, sec * 10**9 + ((1 << 32) - 1) * 1000]


def test_pcapng_option_running_past_its_block(tmp_path: Path) -> None:
    """An option whose length runs out of its block is not read (was struct.error)."""
    e = "<"
    body = struct.pack("<HHI", 1, 0, 0) + struct.pack("<HH", 14, 8)  # an if_tsoffset, cut
    path = tmp_path / "opt.pcapng"
    path.write_bytes(shb(e) + struct.pack("<II", 1, 12 + len(body)) + body
                     + struct.pack("<I", 12 + len(body)) + epb(e, 0, 7, b"x"))
    assert stamps(path) == [7_000]

