"""Tests of :mod:`wspcap.sources.files`: pcap and pcapng files, built byte by byte.

The files are written here with ``struct`` from the formats' specifications
(libpcap's file format, and draft-ietf-opsawg-pcapng), or with scapy's
writers; never with wspcap's own code.
"""

from __future__ import annotations

import gzip
import struct
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wspcap.errors import CaptureFormatError
from wspcap.sources import PacketRecord, open_capture

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D

# (seconds, fraction, data, wire length) with fractions valid in either resolution.
PACKETS = [
    (1_700_000_000, 123_456, b"\x01" * 60, 60),
    (1_700_000_001, 999_999, b"\x02" * 1514, 1514),
    (1_700_000_002, 0, b"\x03" * 10, 400),  # cut by the snap length
]


def pcap(packets=PACKETS, *, endian: str = "<", nano: bool = False, linktype: int = 1,
         snaplen: int = 65535) -> bytes:
    magic = PCAP_MAGIC_NS if nano else PCAP_MAGIC_US
    out = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for sec, frac, data, wirelen in packets:
        out += [struct.pack(endian + "IIII", sec, frac, len(data), wirelen), data]
    return b"".join(out)


def pad4(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def block(endian: str, btype: int, body: bytes) -> bytes:
    body = pad4(body)
    length = 12 + len(body)
    return struct.pack(endian + "II", btype, length) + body + struct.pack(endian + "I", length)


def option(endian: str, code: int, value: bytes) -> bytes:
    return struct.pack(endian + "HH", code, len(value)) + pad4(value)


def shb(endian: str = "<") -> bytes:
    return block(endian, 0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(endian: str, linktype: int, tsresol: int | None = None,
        tsoffset: int | None = None) -> bytes:
    body = struct.pack(endian + "HHI", linktype, 0, 0)
    opts = b""
    if tsresol is not None:
        opts += option(endian, 9, bytes([tsresol]))
    if tsoffset is not None:
        opts += option(endian, 14, struct.pack(endian + "q", tsoffset))
    if opts:
        opts += option(endian, 0, b"")
    return block(endian, 1, body + opts)


def epb(endian: str, iface: int, ts: int, data: bytes, wirelen: int | None = None) -> bytes:
    body = struct.pack(endian + "IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data),
                       len(data) if wirelen is None else wirelen) + pad4(data)
    return block(endian, 6, body)


def spb(endian: str, data: bytes, wirelen: int | None = None) -> bytes:
    return block(endian, 3, struct.pack(endian + "I", len(data) if wirelen is None
                                        else wirelen) + pad4(data))


def read(path: Path) -> tuple[list[PacketRecord], str | None, str]:
    with open_capture(path) as capture:
        records = list(capture)
        assert capture.packets_read == len(records)
        return records, capture.truncated, capture.format


class TestPcap:
    """The classic libpcap format, both byte orders and both resolutions."""

    @pytest.mark.parametrize("endian", ["<", ">"])
    @pytest.mark.parametrize("nano", [False, True])
    def test_byte_orders_and_resolutions(self, tmp_path: Path, endian: str,
                                         nano: bool) -> None:
        path = tmp_path / "x.pcap"
        path.write_bytes(pcap(endian=endian, nano=nano, linktype=113))
        records, truncated, fmt = read(path)
        assert truncated is None and fmt == "pcap"
        unit = 1 if nano else 1000
        assert records == [
            PacketRecord(i, sec * 1_000_000_000 + frac * unit, 113, data, wirelen)
            for i, (sec, frac, data, wirelen) in enumerate(PACKETS, 1)]

    def test_linktype_fcs_bits_ignored(self, tmp_path: Path) -> None:
        path = tmp_path / "x.pcap"
        path.write_bytes(pcap(linktype=0x14000001))  # FCS length in the upper bits
        records, _, _ = read(path)
        assert {r.linktype for r in records} == {1}

    def test_no_packets(self, tmp_path: Path) -> None:
        path = tmp_path / "x.pcap"
        path.write_bytes(pcap(packets=[]))
        assert read(path) == ([], None, "pcap")

    def test_many_packets_across_blocks(self, tmp_path: Path) -> None:
        packets = [(i, i, bytes([i & 0xFF]) * (1000 + i % 700), 1000 + i % 700)
                   for i in range(3000)]  # about 4 MB: several read blocks
        path = tmp_path / "x.pcap"
        path.write_bytes(pcap(packets=packets))
        records, truncated, _ = read(path)
        assert truncated is None and len(records) == 3000
        assert all(r.data == p[2] for r, p in zip(records, packets))

    def test_gzip(self, tmp_path: Path) -> None:
        path = tmp_path / "x.pcap.gz"
        path.write_bytes(gzip.compress(pcap()))
        records, truncated, fmt = read(path)
        assert fmt == "pcap.gz" and truncated is None
        assert [r.data for r in records] == [p[2] for p in PACKETS]

    def test_truncated_record(self, tmp_path: Path) -> None:
        data = pcap()
        path = tmp_path / "x.pcap"
        path.write_bytes(data[:-5])
        records, truncated, _ = read(path)
        assert [r.data for r in records] == [p[2] for p in PACKETS[:2]]
        assert truncated

    def test_truncated_record_header(self, tmp_path: Path) -> None:
        path = tmp_path / "x.pcap"
        path.write_bytes(pcap()[:24 + 16 + 60 + 7])
        records, truncated, _ = read(path)
        assert len(records) == 1 and truncated

    def test_truncated_gzip(self, tmp_path: Path) -> None:
        data = gzip.compress(pcap(packets=PACKETS * 50))
        path = tmp_path / "x.pcap.gz"
        path.write_bytes(data[:len(data) * 2 // 3])
        records, truncated, _ = read(path)
        assert truncated and len(records) < 150

    def test_corrupt_record_length(self, tmp_path: Path) -> None:
        data = pcap() + struct.pack("<IIII", 1, 1, 0xFFFFFF00, 0xFFFFFF00) + b"x" * 20
        path = tmp_path / "x.pcap"
        path.write_bytes(data)
        records, truncated, _ = read(path)
        assert len(records) == 3 and truncated

    def test_truncated_file_header(self, tmp_path: Path) -> None:
        path = tmp_path / "x.pcap"
        path.write_bytes(pcap()[:20])
        with pytest.raises(CaptureFormatError):
            read(path)

    def test_scapy_writer(self, tmp_path: Path) -> None:
        from scapy.all import IP, TCP, Ether, Raw, wrpcap

        pkts = [Ether() / IP(dst="10.0.0.1") / TCP(dport=80) / Raw(b"x" * i)
                for i in range(1, 4)]
        for i, p in enumerate(pkts):
            p.time = Decimal("1700000000.000001") + i
        path = tmp_path / "scapy.pcap"
        wrpcap(str(path), pkts)
        records, truncated, _ = read(path)
        assert truncated is None
        assert [r.data for r in records] == [bytes(p) for p in pkts]
        assert [r.ts_ns for r in records] == [
            (1_700_000_000 + i) * 10**9 + 1000 for i in range(3)]
        assert {r.linktype for r in records} == {1}


class TestPcapng:
    """pcapng: several interfaces, link types and time resolutions."""

    def test_two_interfaces(self, tmp_path: Path) -> None:
        e = "<"
        data = (shb(e) + idb(e, 1) + idb(e, 101, tsresol=9)
                + epb(e, 0, 1_700_000_000_123_456, b"\xaa" * 60)
                + epb(e, 1, 1_700_000_000_123_456_789, b"\x45" + b"\x00" * 39)
                + epb(e, 0, 1_700_000_001_000_000, b"\xbb" * 7, wirelen=1500))
        path = tmp_path / "x.pcapng"
        path.write_bytes(data)
        records, truncated, fmt = read(path)
        assert fmt == "pcapng" and truncated is None
        assert records == [
            PacketRecord(1, 1_700_000_000_123_456_000, 1, b"\xaa" * 60, 60),
            PacketRecord(2, 1_700_000_000_123_456_789, 101, b"\x45" + b"\x00" * 39, 40),
            PacketRecord(3, 1_700_000_001_000_000_000, 1, b"\xbb" * 7, 1500),
        ]

    @pytest.mark.parametrize("tsresol, ticks, ns", [
        (6, 1_500_000, 1_500_000_000),
        (3, 1_500, 1_500_000_000),
        (9, 1_500_000_000, 1_500_000_000),
        (0, 2, 2_000_000_000),
        (0x80 | 10, 1024 * 3, 3_000_000_000),  # 2**-10 seconds
        (0x80 | 20, (1 << 20) + (1 << 19), 1_500_000_000),
    ])
    def test_tsresol(self, tmp_path: Path, tsresol: int, ticks: int, ns: int) -> None:
        e = "<"
        path = tmp_path / "x.pcapng"
        path.write_bytes(shb(e) + idb(e, 1, tsresol=tsresol) + epb(e, 0, ticks, b"x"))
        (record,), _, _ = read(path)
        assert record.ts_ns == ns

    def test_tsoffset(self, tmp_path: Path) -> None:
        e = "<"
        path = tmp_path / "x.pcapng"
        path.write_bytes(shb(e) + idb(e, 1, tsoffset=100) + epb(e, 0, 5_000_000, b"x"))
        (record,), _, _ = read(path)
        assert record.ts_ns == 105 * 10**9

    def test_big_endian_and_second_section(self, tmp_path: Path) -> None:
        data = (shb(">") + idb(">", 113) + epb(">", 0, 1_000_000, b"be")
                + shb("<") + idb("<", 276, tsresol=9) + epb("<", 0, 7, b"le"))
        path = tmp_path / "x.pcapng"
        path.write_bytes(data)
        records, truncated, _ = read(path)
        assert truncated is None
        assert [(r.number, r.linktype, r.ts_ns, r.data) for r in records] == [
            (1, 113, 1_000_000_000, b"be"), (2, 276, 7, b"le")]

    def test_simple_packet_block(self, tmp_path: Path) -> None:
        e = "<"
        path = tmp_path / "x.pcapng"
        path.write_bytes(shb(e) + idb(e, 1) + spb(e, b"abcde") + epb(e, 0, 1, b"z"))
        records, _, _ = read(path)
        assert [(r.number, r.data, r.linktype) for r in records] == [
            (1, b"abcde", 1), (2, b"z", 1)]

    def test_unknown_blocks_skipped(self, tmp_path: Path) -> None:
        e = "<"
        path = tmp_path / "x.pcapng"
        path.write_bytes(shb(e) + idb(e, 1) + block(e, 0x0BAD, b"whatever")
                         + block(e, 5, bytes(16)) + epb(e, 0, 1, b"z"))
        records, truncated, _ = read(path)
        assert [r.data for r in records] == [b"z"] and truncated is None

    def test_gzip(self, tmp_path: Path) -> None:
        e = "<"
        path = tmp_path / "x.pcapng.gz"
        path.write_bytes(gzip.compress(shb(e) + idb(e, 1) + epb(e, 0, 1, b"z")))
        records, _, fmt = read(path)
        assert fmt == "pcapng.gz" and [r.data for r in records] == [b"z"]

    def test_truncated(self, tmp_path: Path) -> None:
        e = "<"
        data = shb(e) + idb(e, 1) + epb(e, 0, 1, b"one") + epb(e, 0, 2, b"two" * 20)
        path = tmp_path / "x.pcapng"
        path.write_bytes(data[:-9])
        records, truncated, _ = read(path)
        assert [r.data for r in records] == [b"one"] and truncated

    def test_unknown_interface(self, tmp_path: Path) -> None:
        e = "<"
        path = tmp_path / "x.pcapng"
        path.write_bytes(shb(e) + idb(e, 1) + epb(e, 0, 1, b"a") + epb(e, 3, 2, b"b"))
        records, truncated, _ = read(path)
        assert [r.data for r in records] == [b"a"] and truncated

    def test_corrupt_block_length(self, tmp_path: Path) -> None:
        e = "<"
        path = tmp_path / "x.pcapng"
        path.write_bytes(shb(e) + idb(e, 1) + epb(e, 0, 1, b"a")
                         + struct.pack("<II", 6, 13) + bytes(20))
        records, truncated, _ = read(path)
        assert [r.data for r in records] == [b"a"] and truncated

    def test_scapy_writer(self, tmp_path: Path) -> None:
        from scapy.all import IP, TCP, Ether, Raw
        from scapy.utils import PcapNgWriter

        pkts = [Ether() / IP() / TCP() / Raw(b"y" * i) for i in range(3)]
        for i, p in enumerate(pkts):
            p.time = Decimal(1_700_000_000 + i) + Decimal("0.25")
        path = tmp_path / "scapy.pcapng"
        writer = PcapNgWriter(str(path))
        for p in pkts:
            writer.write(p)
        writer.close()
        records, truncated, _ = read(path)
        assert truncated is None
        assert [(r.linktype, r.data) for r in records] == [(1, bytes(p)) for p in pkts]
        assert [r.ts_ns for r in records] == [
            (1_700_000_000 + i) * 10**9 + 250_000_000 for i in range(3)]


class TestNotACapture:
    """Files that are not captures raise CaptureFormatError, the one documented error."""

    @pytest.mark.parametrize("content", [b"", b"\xd4\xc3", b"hello world, not a capture",
                                         b"\x1f\x8bnot really gzip", gzip.compress(b""),
                                         gzip.compress(b"plain text inside gzip")])
    def test_bad_content(self, tmp_path: Path, content: bytes) -> None:
        path = tmp_path / "bad.pcap"
        path.write_bytes(content)
        with pytest.raises(CaptureFormatError) as info:
            read(path)
        assert info.value.path == str(path) and info.value.reason

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(CaptureFormatError):
            open_capture(tmp_path / "nope.pcap")

    def test_directory(self, tmp_path: Path) -> None:
        with pytest.raises(CaptureFormatError):
            open_capture(tmp_path)


def test_format_constants_are_dpkts() -> None:
    # files.py writes the formats' numbers out (importing dpkt cost 30 ms a
    # run): they must be dpkt's.
    from dpkt import pcap, pcapng

    from wspcap.sources import files

    assert files.PCAP_MAGICS == {pcap.TCPDUMP_MAGIC: ("<", False),
                                 pcap.TCPDUMP_MAGIC_NANO: ("<", True),
                                 pcap.PMUDPCT_MAGIC: (">", False),
                                 pcap.PMUDPCT_MAGIC_NANO: (">", True)}
    for name in ("PCAPNG_BT_SHB", "PCAPNG_BT_IDB", "PCAPNG_BT_PB", "PCAPNG_BT_SPB",
                 "PCAPNG_BT_EPB", "PCAPNG_OPT_ENDOFOPT", "PCAPNG_OPT_IF_TSRESOL",
                 "PCAPNG_OPT_IF_TSOFFSET"):
        assert getattr(files, name) == getattr(pcapng, name), name
    assert files.PCAPNG_BYTE_ORDER_MAGIC == pcapng.BYTE_ORDER_MAGIC


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 300), min_size=1, max_size=30),
       block_size=st.integers(1, 700), cut=st.integers(0, 40), ng=st.booleans())
def test_records_cut_by_blocks_read_the_same_from_a_seeking_file(
        sizes: list[int], block_size: int, cut: int, ng: bool) -> None:
    """A record cut by the end of a block is read again from the file, not
    copied with the next block, where the file seeks: the same records and
    the same end as from a gzip stream (which does not seek), at any block
    size (smaller than a record too) and with the file cut anywhere."""
    from wspcap.sources import files

    packets = [(1_700_000_000 + i, i, bytes([i % 256]) * n, n) for i, n in enumerate(sizes)]
    if ng:
        data = shb() + idb("<", 1) + b"".join(
            epb("<", 0, (sec * 10**6 + frac), d) for sec, frac, d, _ in packets)
    else:
        data = pcap(packets)
    data = data[:len(data) - cut]
    seen = []
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        mp.setattr(files, "BLOCK_SIZE", block_size)
        for name, raw in (("x.cap", data), ("x.cap.gz", gzip.compress(data))):
            path = Path(tmp) / name
            path.write_bytes(raw)
            try:
                with open_capture(path) as capture:
                    got = [(r.number, r.ts_ns, r.data, r.wirelen) for r in capture]
                    seen.append((got, capture.truncated, capture.position))
            except CaptureFormatError as exc:
                seen.append(([], str(exc).replace(".gz", ""), -1))
    assert seen[0] == seen[1]
    if cut == 0:
        assert len(seen[0][0]) == len(packets) and seen[0][1] is None
        assert [d for _n, _ts, d, _w in seen[0][0]] == [p[2] for p in packets]
