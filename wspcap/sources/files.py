"""Reading pcap and pcapng files, plain or gzip-compressed.

Design note
-----------
dpkt's ``pcap.Reader`` and ``pcapng.Reader`` are what we would use if they did
the whole job. They do not: the pcapng
reader keeps only the first interface's link type (a pcapng file may hold
several interfaces and link types, and several sections), the pcap reader turns
nanosecond timestamps into ``Decimal`` and hides the wire length (which tells
us the snap length cut a packet), and neither reports a file that ends
mid-record. They are also the hot path: on a 200,560-packet capture dpkt's
reader alone took 0.57 s against 0.19 s for a struct walk over the records.

The formats' magic numbers and block types are written out below, from the
specifications (libpcap's file format, draft-ietf-opsawg-pcapng): importing
dpkt for them cost 30 ms of every run (its package imports every protocol
module), a tenth of ``wspcap analyze``'s fixed cost. A unit test checks them
against dpkt's.

So both formats are walked here with precompiled structs over large blocks
read from the file (never the whole file in memory, never ``mmap``: a 2 GB
capture must not show up as 2 GB of resident pages). A record that crosses a
block boundary is carried into the next block.

Invariants: packet numbers are 1-based positions in the file, counting every
packet record (EPB, SPB and the obsolete PB in pcapng). A file that ends
mid-record, or whose record header is absurd, stops the walk and sets
:attr:`CaptureFile.truncated` (and :attr:`CaptureFile.corrupt` when the file is
damaged rather than cut short); everything before it has been yielded.

Gzip-compressed files are inflated by :class:`GzipStream` rather than
:class:`gzip.GzipFile`: ``GzipFile.read(n)`` raises on a cut or corrupt stream
and drops whatever it inflated in that call, so a 2 MiB read of a damaged file
gave no packet at all. :class:`GzipStream` hands over every byte inflated
before the fault, then says what the fault was.

Timestamps are integer nanoseconds since the epoch, as NumPy's
``datetime64[ns]`` holds them (the years 1677 to 2262). A pcapng timestamp
outside that range (a 64-bit count in seconds, an ``if_tsoffset`` of
centuries) is given as :data:`~wspcap.timestamps.TS_NULL`, NumPy's ``NaT``:
the packet is kept, its time is unknown (the pipeline flags it). A classic
pcap timestamp always fits: its 32-bit seconds end in 2106.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO, NamedTuple, Protocol, Self

import numpy as np

from wspcap.constants import SPEEDUPS
from wspcap.errors import CaptureFormatError
from wspcap.timestamps import TS_MAX, TS_MIN, TS_NULL

__all__ = ["Batch", "CaptureFile", "GzipStream", "PacketRecord", "open_capture"]

#: Bytes read from the file at a time.
BLOCK_SIZE = 8 << 20
#: A record longer than this is taken as a corrupt header, not a packet.
#: (libpcap's own limit is 256 KiB; some tools write up to 16 MiB.)
MAX_RECORD = 1 << 24
#: pcap's magic numbers: microsecond and nanosecond timestamps
#: (``TCPDUMP_MAGIC``, ``TCPDUMP_MAGIC_NANO`` in dpkt), as read little-endian
#: from a little-endian file; a big-endian file reads them byte-swapped.
PCAP_MAGIC, PCAP_MAGIC_NANO = 0xA1B2C3D4, 0xA1B23C4D
#: pcapng block types (section 4): Section Header, Interface Description,
#: (obsolete) Packet, Simple Packet, Enhanced Packet.
PCAPNG_BT_SHB, PCAPNG_BT_IDB, PCAPNG_BT_PB = 0x0A0D0D0A, 0x00000001, 0x00000002
PCAPNG_BT_SPB, PCAPNG_BT_EPB = 0x00000003, 0x00000006
#: The Section Header's byte-order magic.
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D
#: Interface Description options read: end of options, if_tsresol, if_tsoffset.
PCAPNG_OPT_ENDOFOPT, PCAPNG_OPT_IF_TSRESOL, PCAPNG_OPT_IF_TSOFFSET = 0, 9, 14
#: pcapng Decryption Secrets Block, and its secrets type for a TLS key log
#: (draft-ietf-opsawg-pcapng section 4.7; what ``editcap --inject-secrets`` writes).
PCAPNG_BT_DSB = 0x0000000A
DSB_TLS_KEY_LOG = 0x544C534B
#: The smallest length of the pcapng blocks whose fixed fields are read
#: (others: 12, a block with an empty body).
MIN_BLOCK = {PCAPNG_BT_SHB: 28, PCAPNG_BT_IDB: 20, PCAPNG_BT_EPB: 32, PCAPNG_BT_PB: 32,
             PCAPNG_BT_SPB: 16}

GZIP_MAGIC = b"\x1f\x8b"
#: zlib's ``wbits`` for a gzip member (header and CRC-32/ISIZE trailer checked).
GZIP_WBITS = 16 + zlib.MAX_WBITS
#: Compressed bytes inflated at a time by :class:`GzipStream`.
GZIP_CHUNK = 1 << 16
PCAP_MAGICS = {
    # magic as read little-endian -> (struct prefix, nanoseconds)
    PCAP_MAGIC: ("<", False),
    PCAP_MAGIC_NANO: ("<", True),
    int.from_bytes(PCAP_MAGIC.to_bytes(4, "little"), "big"): (">", False),
    int.from_bytes(PCAP_MAGIC_NANO.to_bytes(4, "little"), "big"): (">", True),
}


class PacketRecord(NamedTuple):
    """One packet as the capture holds it."""

    number: int
    ts_ns: int
    linktype: int
    data: bytes
    wirelen: int


class Batch(NamedTuple):
    """Consecutive packets of one link type, as slices of one buffer.

    Packet ``i`` of the batch is number ``first + i`` and its captured bytes
    are ``buf[starts[i]:starts[i] + caplens[i]]``. Readers that work a block at
    a time (see :meth:`wspcap.engine.Pipeline.receive_batch`) take these;
    :meth:`records` gives the same packets one by one.
    """

    first: int
    linktype: int
    buf: bytes
    starts: list[int]
    caplens: list[int]
    stamps: list[int]  #: timestamps (ns)
    wirelens: list[int]

    def records(self) -> Iterator[PacketRecord]:
        """The batch's packets as :class:`PacketRecord` tuples."""
        buf, linktype = self.buf, self.linktype
        for i, (start, caplen, ts, wirelen) in enumerate(
                zip(self.starts, self.caplens, self.stamps, self.wirelens, strict=True),
                self.first):
            yield PacketRecord(i, ts, linktype, buf[start:start + caplen], wirelen)


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...

    def close(self) -> None: ...

    def tell(self) -> int: ...

    def seekable(self) -> bool: ...

    def seek(self, offset: int, whence: int, /) -> int: ...


class GzipStream:
    """The content of a gzip file, read forward, keeping every byte inflated
    before a fault.

    Members may follow one another (``cat a.gz b.gz``), with zero bytes
    between them, as :mod:`gzip` reads them. Reading never raises on what the
    file holds: a stream cut short, corrupt deflate data, a CRC-32 or length
    trailer that does not match, or bytes after the last member that are not
    gzip end the content where the fault is, and set :attr:`fault` (a
    one-line reason) and :attr:`corrupt` (False only for a stream cut short).

    Args:
        raw: the compressed file, at its start; :meth:`close` closes it.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._inflater = zlib.decompressobj(GZIP_WBITS)
        self._input = b""  # compressed bytes not given to the inflater yet
        self._pending = bytearray()  # content inflated and not read yet
        self._between = True  # before a member (the first, or after one ended)
        self._members = 0
        self._member_start = 0  # self.inflated when the current member began
        self._done = False
        #: Bytes of content inflated so far.
        self.inflated = 0
        #: Why the content ended early, or None.
        self.fault: str | None = None
        #: The file is damaged (False for a stream that is only cut short).
        self.corrupt = False

    def read(self, size: int, /) -> bytes:
        """Up to ``size`` bytes of content (fewer only at its end)."""
        self._fill(size)
        out = bytes(self._pending[:size])
        del self._pending[:size]
        return out

    def peek(self, size: int) -> bytes:
        """The next ``size`` bytes of content, left to be read."""
        self._fill(size)
        return bytes(self._pending[:size])

    def close(self) -> None:
        self._raw.close()

    def seekable(self) -> bool:
        """False: a gzip stream is read forward only."""
        return False

    def seek(self, offset: int, whence: int, /) -> int:
        raise OSError("a gzip stream does not seek")

    def tell(self) -> int:
        """Bytes of the compressed file read so far."""
        return int(self._raw.tell())

    def _fill(self, size: int) -> None:
        while len(self._pending) < size and not self._done:
            if not self._input:
                self._input = self._raw.read(GZIP_CHUNK)
                if not self._input:  # end of file
                    self._done = True
                    if not self._between:
                        self._fail(f"the gzip stream is cut short after {self.inflated} "
                                   "bytes of capture data", corrupt=False)
                    return
            if self._between:
                self._input = self._input.lstrip(b"\0")  # padding between members
                if not self._input:
                    continue
                self._inflater = zlib.decompressobj(GZIP_WBITS)
                self._between = False
                self._members += 1
                self._member_start = self.inflated
            self._inflate()

    def _inflate(self) -> None:
        inflater, data = self._inflater, self._input
        before = inflater.copy()
        limit = BLOCK_SIZE
        try:
            out = inflater.decompress(data, limit)
        except zlib.error as exc:
            # Inflate again byte by byte from where this call began, to keep
            # what came before the fault (a CRC error comes after all of it).
            salvaged = bytearray()
            for i in range(len(data)):
                try:
                    salvaged += before.decompress(data[i:i + 1])
                except zlib.error:
                    break
                if len(salvaged) >= limit:
                    break
            self._pending += salvaged
            self.inflated += len(salvaged)
            self._done = True
            self._fail(self._reason(str(exc).rpartition(": ")[2]), corrupt=True)
            return
        self._pending += out
        self.inflated += len(out)
        if inflater.eof:
            self._input = inflater.unused_data
            self._between = True
        else:
            self._input = inflater.unconsumed_tail

    def _reason(self, error: str) -> str:
        at = f"after {self.inflated} bytes of capture data"
        if "incorrect data check" in error:
            return f"the gzip CRC-32 does not match the data (the {self.inflated} bytes " \
                   "read may be damaged)"
        if "incorrect length check" in error:
            return f"the gzip length field does not match the data (the {self.inflated} " \
                   "bytes read may be damaged)"
        if self._members > 1 and self.inflated == self._member_start:
            return f"bytes after the gzip data are not gzip ({error}), ignored"
        return f"corrupt gzip data {at} ({error})"

    def _fail(self, reason: str, corrupt: bool) -> None:
        self.fault = reason
        self.corrupt = corrupt


_CAPLEN = {False: struct.Struct("<I").unpack_from, True: struct.Struct(">I").unpack_from}


def pcap_records(buf: bytes, pos: int, big_endian: bool) -> tuple[list[int], int, int]:
    """Walk classic pcap record headers in ``buf`` from ``pos``.

    Returns:
        ``(starts, pos, pending)``: the data offsets of the records wholly in
        ``buf``, the position after the last of them, and the captured length
        declared by the record that the end of ``buf`` cuts (-1 when ``buf``
        ends before a whole record header).

    This loop turns once per packet; ``wspcap/sources/_speedups.c`` is its
    compiled mirror, used where it is built (see :data:`wspcap.constants.SPEEDUPS`).
    """
    caplen_at = _CAPLEN[big_endian]
    end = len(buf)
    starts: list[int] = []
    append = starts.append
    while pos + 16 <= end:
        caplen: int = caplen_at(buf, pos + 8)[0]
        nxt = pos + 16 + caplen
        if nxt > end:
            return starts, pos, caplen
        append(pos + 16)
        pos = nxt
    return starts, pos, -1


_pcap_records = pcap_records
if SPEEDUPS:
    try:
        from wspcap.sources._speedups import pcap_records as _pcap_records
    except ImportError:  # not built: the reference above
        pass


class CaptureFile:
    """An open capture file of either format.

    Use :func:`open_capture` to make one. Iterating gives
    :class:`PacketRecord` objects, :meth:`batches` the same packets a block at
    a time; after the iteration, :attr:`truncated` says
    why the walk stopped early, or is ``None``.

    Attributes:
        path: the file's name as given.
        format: ``"pcap"`` or ``"pcapng"`` (with ``".gz"`` when compressed).
        truncated: ``None``, or a one-line reason the walk stopped early.
        corrupt: the reason is damage in the file (a record header that
            cannot be right, corrupt gzip data or checksum), not only an
            early end.
        packets_read: how many packets were yielded.
    """

    def __init__(self, path: str, fileobj: _Readable, fmt: str, compressed: bool,
                 progress: Callable[[int], None] | None = None) -> None:
        self.path = path
        self.format = fmt + (".gz" if compressed else "")
        self.truncated: str | None = None
        self.corrupt = False
        self.packets_read = 0
        self.position = 0  # bytes of (uncompressed) file content read so far
        self._back = 0  # bytes put back in the file, to be read again
        #: TLS key log text from pcapng Decryption Secrets Blocks, not yet taken.
        self.secrets: list[bytes] = []
        #: None, or called after each block read (every BLOCK_SIZE bytes, never
        #: per packet, and once at the end) with :attr:`file_position`.
        self.progress = progress
        self._f = fileobj

    def close(self) -> None:
        self._f.close()

    @property
    def file_position(self) -> int:
        """Bytes of the file on disk read so far (for a gzip file, of its
        compressed content; it moves in the same steps as :attr:`position`)."""
        return int(self._f.tell())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[PacketRecord]:
        for batch in self.batches():
            yield from batch.records()

    def batches(self) -> Iterator[Batch]:
        """The packets, as :class:`Batch` objects: one or more per block read."""
        if self.format.startswith("pcapng"):
            return self._iter_pcapng()
        return self._iter_pcap()

    # -- helpers ---------------------------------------------------------------

    def _blocks(self) -> Iterator[bytes]:
        """Yield the file's bytes in blocks of BLOCK_SIZE (a constant size:
        reading BLOCK_SIZE plus what :meth:`_take_back` put back made the
        reads 60% slower, the allocator no longer reusing one buffer's
        memory)."""
        read = self._f.read
        try:
            while True:
                block = read(BLOCK_SIZE)
                self.position += len(block) - self._back
                self._back = 0
                if self.progress is not None:
                    self.progress(self.file_position)
                if not block:
                    break
                yield block
        except OSError as exc:
            self.truncated = f"read error: {exc}"
            return
        if isinstance(self._f, GzipStream) and self._f.fault is not None:
            self._stop(self._f.fault, self._f.corrupt)

    def _take_back(self, size: int, block: bytes) -> bool:
        """Put the last ``size`` bytes of ``block`` (the part of a record it
        cut) back in the file, to start the next block, rather than have the
        caller copy them and the whole next block into one buffer: that copy
        took 0.1 s of the 0.16 s a 257 MB capture's blocks took to read.
        Only where the file seeks (not gzip, not a pipe), and at most a
        quarter of the block, so that every read gives at least three
        quarters of BLOCK_SIZE of new bytes (a longer part is copied as
        before).

        Returns:
            Whether the bytes were put back (else the caller keeps them).
        """
        if 4 * size > len(block):
            return False
        try:
            if not self._f.seekable():
                return False
            self._f.seek(-size, os.SEEK_CUR)
        except (OSError, ValueError):
            return False
        self._back = size
        return True

    def _stop(self, reason: str, corrupt: bool) -> None:
        """Note why the walk stops early (the first reason found stands)."""
        if self.truncated is None:
            self.truncated = reason
            self.corrupt = corrupt

    # -- classic pcap ----------------------------------------------------------

    def _iter_pcap(self) -> Iterator[Batch]:
        head = self._f.read(24)
        if len(head) < 24:
            raise CaptureFormatError(self.path, "truncated pcap file header")
        magic = struct.unpack_from("<I", head)[0]
        endian, nano = PCAP_MAGICS[magic]
        # The upper bits carry the FCS length and its "present" flag (libpcap's
        # LT_LINKTYPE() keeps the low 26 bits).
        linktype = struct.unpack_from(endian + "I", head, 20)[0] & 0x03FFFFFF
        big = endian == ">"
        header = np.dtype(endian + "u4")
        frac_mult = 1 if nano else 1000
        number = 0
        buf = b""
        pos = 0
        for block in self._blocks():
            buf = buf[pos:] + block if pos < len(buf) else block
            pos = 0
            starts, pos, pending = _pcap_records(buf, pos, big)
            if pending > MAX_RECORD:
                self._stop(f"corrupt record header after packet {number + len(starts)} "
                           f"(declares {pending} bytes)", corrupt=True)
            if starts:
                # The record headers' other fields, all at once.
                at = np.asarray(starts, np.int64)[:, None] - 16 + np.arange(16)
                sec, frac, caplens, wirelens = (
                    np.frombuffer(buf, np.uint8)[at].view(header).astype(np.int64).T)
                stamps = sec * 1_000_000_000 + frac * frac_mult
                yield Batch(number + 1, linktype, buf, starts, caplens.tolist(),
                            stamps.tolist(), wirelens.tolist())
                number += len(starts)
            self.packets_read = number
            if self.truncated is not None:
                return
            if pos < len(buf) and self._take_back(len(buf) - pos, block):
                buf, pos = b"", 0
        if pos < len(buf):
            self._stop(f"file ends in the middle of packet {number + 1} "
                       f"({len(buf) - pos} bytes left over)", corrupt=False)

    # -- pcapng ----------------------------------------------------------------

    def _iter_pcapng(self) -> Iterator[Batch]:
        number = 0
        endian = "<"
        interfaces: list[tuple[int, int, int, int]] = []  # linktype, mult, div, offset_ns
        buf = b""
        pos = 0
        blocks = 0  # whole blocks walked
        batch = _Builder()
        for block in self._blocks():
            buf = buf[pos:] + block if pos < len(buf) else block
            pos = 0
            end = len(buf)
            batch.start(buf, number + 1)
            while pos + 12 <= end:
                btype = struct.unpack_from(endian + "I", buf, pos)[0]
                if btype == PCAPNG_BT_SHB:
                    # A new section: its byte-order magic sets the endianness.
                    bom = buf[pos + 8:pos + 12]
                    endian = "<" if bom == struct.pack("<I", PCAPNG_BYTE_ORDER_MAGIC) else ">"
                    interfaces = []
                blen = struct.unpack_from(endian + "I", buf, pos + 4)[0]
                if blen < MIN_BLOCK.get(btype, 12) or blen % 4 or blen > MAX_RECORD:
                    self._stop(f"corrupt pcapng block after packet {number} (type 0x{btype:x}, "
                               f"length {blen})", corrupt=True)
                    break
                nxt = pos + blen
                if nxt > end:
                    break
                blocks += 1
                if btype == PCAPNG_BT_EPB or btype == PCAPNG_BT_PB:
                    if btype == PCAPNG_BT_EPB:
                        iface, hi, lo, caplen, wirelen = struct.unpack_from(
                            endian + "IIIII", buf, pos + 8)
                    else:
                        iface, _drops, hi, lo, caplen, wirelen = struct.unpack_from(
                            endian + "HHIIII", buf, pos + 8)
                    if iface >= len(interfaces):
                        self._stop(f"packet {number + 1} names an unknown interface {iface}",
                                   corrupt=True)
                        break
                    if 32 + caplen > blen:
                        self._stop(f"packet {number + 1} declares {caplen} captured bytes, more "
                                   f"than its block holds", corrupt=True)
                        break
                    number += 1
                    linktype, mult, div, offset_ns = interfaces[iface]
                    ts = ((hi << 32) | lo) * mult // div + offset_ns
                    if not TS_MIN <= ts <= TS_MAX:
                        ts = TS_NULL
                    done = batch.add(linktype, pos + 28, caplen, ts, wirelen)
                    if done is not None:
                        yield done
                elif btype == PCAPNG_BT_SPB:
                    if not interfaces:
                        self._stop(f"packet {number + 1} comes before any interface",
                                   corrupt=True)
                        break
                    number += 1
                    wirelen = struct.unpack_from(endian + "I", buf, pos + 8)[0]
                    caplen = min(wirelen, blen - 16)
                    done = batch.add(interfaces[0][0], pos + 12, caplen, 0, wirelen)
                    if done is not None:
                        yield done
                elif btype == PCAPNG_BT_IDB:
                    interfaces.append(_parse_idb(buf[pos:nxt], endian))
                elif btype == PCAPNG_BT_DSB and blen >= 20:
                    kind, size = struct.unpack_from(endian + "II", buf, pos + 8)
                    if kind == DSB_TLS_KEY_LOG and 20 + size <= blen:
                        self.secrets.append(buf[pos + 16:pos + 16 + size])
                pos = nxt
            done = batch.flush()
            if done is not None:
                yield done
            self.packets_read = number
            if self.truncated is not None:
                return
            if pos < len(buf) and self._take_back(len(buf) - pos, block):
                buf, pos = b"", 0
        if pos < len(buf) and not blocks and not self.corrupt:  # not even a section header
            why = f" ({self.truncated})" if self.truncated else ""
            raise CaptureFormatError(self.path, f"truncated pcapng section header block{why}")
        if pos < len(buf):
            self._stop(f"file ends in the middle of a block after packet {number} "
                       f"({len(buf) - pos} bytes left over)", corrupt=False)


class _Builder:
    """Gathers consecutive packets of one buffer into :class:`Batch` objects,
    starting a new batch where the link type changes (pcapng interfaces)."""

    def __init__(self) -> None:
        self.start(b"", 1)

    def start(self, buf: bytes, first: int) -> None:
        self.buf = buf
        self.first = first
        self.linktype = -1
        self.starts: list[int] = []
        self.caplens: list[int] = []
        self.stamps: list[int] = []
        self.wirelens: list[int] = []

    def add(self, linktype: int, start: int, caplen: int, ts: int, wirelen: int
            ) -> Batch | None:
        """Add a packet; returns the batch it closed, if its link type differs."""
        done = None
        if linktype != self.linktype:
            done = self.flush()
            self.linktype = linktype
        self.starts.append(start)
        self.caplens.append(caplen)
        self.stamps.append(ts)
        self.wirelens.append(wirelen)
        return done

    def flush(self) -> Batch | None:
        """The packets gathered so far as a batch (None if there are none)."""
        if not self.starts:
            return None
        done = Batch(self.first, self.linktype, self.buf, self.starts, self.caplens,
                     self.stamps, self.wirelens)
        linktype = self.linktype
        self.start(self.buf, self.first + len(self.starts))
        self.linktype = linktype
        return done


def _parse_idb(block: bytes, endian: str) -> tuple[int, int, int, int]:
    """Read an Interface Description Block's link type and time resolution.

    Returns:
        (linktype, mult, div, offset_ns) such that a raw timestamp ``t`` is
        ``t * mult // div + offset_ns`` nanoseconds.
    """
    linktype = struct.unpack_from(endian + "H", block, 8)[0]
    mult, div, offset_ns = 1000, 1, 0  # default resolution: microseconds
    pos, end = 16, len(block) - 4
    while pos + 4 <= end:
        code, olen = struct.unpack_from(endian + "HH", block, pos)
        if code == PCAPNG_OPT_ENDOFOPT:
            break
        if pos + 4 + olen > end:  # an option that runs past its block
            break
        value = block[pos + 4:pos + 4 + olen]
        if code == PCAPNG_OPT_IF_TSRESOL and olen >= 1:
            res = value[0]
            if res & 0x80:  # negative power of two
                mult, div = 1_000_000_000, 1 << (res & 0x7F)
            elif res <= 9:
                mult, div = 10 ** (9 - res), 1
            else:
                mult, div = 1, 10 ** (res - 9)
        elif code == PCAPNG_OPT_IF_TSOFFSET and olen == 8:
            offset_ns = struct.unpack(endian + "q", value)[0] * 1_000_000_000
        pos += 4 + ((olen + 3) & ~3)
    return linktype, mult, div, offset_ns


def open_capture(path: str | os.PathLike[str],
                 progress: Callable[[int], None] | None = None) -> CaptureFile:
    """Open a pcap or pcapng file (optionally gzip-compressed).

    Args:
        path: the capture's file name.
        progress: the :class:`CaptureFile`'s ``progress``.

    Returns:
        A :class:`CaptureFile`, to iterate and then close.

    Raises:
        CaptureFormatError: the file is missing, unreadable, empty, or not a
            capture.
    """
    name = os.fspath(path)
    try:
        # No `with`: the file must stay open beyond this function, since the
        # CaptureFile returned to the caller owns it and closes it.
        raw: BinaryIO = open(name, "rb")  # noqa: SIM115
    except FileNotFoundError:
        raise CaptureFormatError(name, "no such file") from None
    except IsADirectoryError:
        raise CaptureFormatError(name, "is a directory, not a capture file") from None
    except OSError as exc:
        raise CaptureFormatError(name, exc.strerror or str(exc)) from None
    f: _Readable = raw
    compressed = False
    try:
        head = raw.read(4)
        raw.seek(0)
        if head[:2] == GZIP_MAGIC:
            f = gz = GzipStream(raw)
            compressed = True
            head = gz.peek(4)
            if len(head) < 4 and gz.fault is not None:
                raw.close()
                raise CaptureFormatError(name, f"unreadable: {gz.fault}")
    except OSError as exc:
        raw.close()
        raise CaptureFormatError(name, f"unreadable: {exc}") from None
    if not head:
        raw.close()
        raise CaptureFormatError(name, "empty file, not a capture")
    if len(head) < 4:
        raw.close()
        raise CaptureFormatError(name, "too short to be a capture")
    magic = struct.unpack("<I", head)[0]
    if magic in PCAP_MAGICS:
        return CaptureFile(name, f, "pcap", compressed, progress)
    if magic == PCAPNG_BT_SHB:
        return CaptureFile(name, f, "pcapng", compressed, progress)
    raw.close()
    raise CaptureFormatError(
        name, f"not a pcap or pcapng capture (file starts with 0x{head.hex()})")
