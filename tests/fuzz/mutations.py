"""The mutation engine: seeded mutations of the bundled captures.

The corpus is every capture in ``samples/``, ``samples/anomalies/``,
``tests/golden/`` and the peers' corpus (``tests/data/peers``). A case is made
from one integer seed (:func:`make_case`): the seed picks the mutation, the
source capture(s) and every random choice, so ``make_case(seed, corpus)``
rebuilds the same bytes on every machine.

Mutations work at three levels:

- file bytes: bit flips, byte sets, cuts (anywhere, or inside a record or
  block header), splices of two captures, pcap record and pcapng block length
  fields, absurd timestamps (pcap seconds, pcapng ``if_tsresol`` and
  ``if_tsoffset``), gzip wrapping then cutting or corrupting;
- packets (the capture read with dpkt, changed, written back as pcap or
  pcapng): reorder, duplication, loss, merge of two captures, TCP segments
  split in two or three, IP and TCP length fields;
- WebSocket frames found at the start of TCP payloads: the 7/16/64-bit payload
  length set to huge values (2^62, 2^63 - 1, ...), RSV1 (the permessage-deflate
  bit) and the other header bits toggled.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from itertools import pairwise
from pathlib import Path

import dpkt
from golden.paths import GOLDEN_DIR, SAMPLES_DIR, peers_location
from golden.tls import pcapng_secrets

__all__ = [
    "MUTATIONS",
    "Case",
    "Record",
    "Seed",
    "case_seed",
    "load_corpus",
    "make_case",
    "read_records",
    "tcp_layout",
    "write_pcap",
    "write_pcapng",
]

#: huge declared lengths for 64-bit fields (RFC 6455 section 5.2 forbids the MSB)
HUGE64 = (1 << 62, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, 1 << 32, (1 << 31) + 1,
          256 * 1024 * 1024 + 1)
#: interesting 32-bit values for length fields
EDGE32 = (0, 1, 3, 4, 11, 12, 13, 27, 28, 65535, 65536, 1 << 24, (1 << 31) - 1, 1 << 31,
          (1 << 32) - 1, (1 << 32) - 4)
EDGE16 = (0, 1, 19, 20, 21, 39, 40, 125, 126, 127, 0x7FFF, 0x8000, 0xFFFF)
#: pcapng if_tsresol bytes: 10^-0, 10^-19 .. 10^-127, 2^-0, 2^-63, 2^-127 ...
TSRESOL = (0, 1, 6, 9, 19, 20, 63, 64, 100, 127, 0x80, 0x80 | 1, 0x80 | 30, 0x80 | 63,
           0x80 | 64, 0xFF)

LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW = 0, 1, 101
LINKTYPE_LOOP, LINKTYPE_SLL, LINKTYPE_SLL2 = 108, 113, 276
LINKTYPE_IPV4, LINKTYPE_IPV6 = 228, 229
PCAP_NS_MAGIC = 0xA1B23C4D
PCAPNG_SHB, PCAPNG_IDB, PCAPNG_EPB = 0x0A0D0D0A, 1, 6
PCAPNG_BOM = 0x1A2B3C4D
PCAPNG_DSB, DSB_TLS_KEY_LOG = 0x0000000A, 0x544C534B


@dataclass(frozen=True)
class Record:
    """One packet: timestamp (ns), link type, captured bytes."""

    ts: int
    linktype: int
    data: bytes


@dataclass(frozen=True)
class Seed:
    """A capture of the corpus: its name (path from the repository root or the
    peers' root), its file bytes, and its packets (None if dpkt cannot read it)."""

    name: str
    data: bytes
    records: tuple[Record, ...] | None


@dataclass(frozen=True)
class Case:
    """One mutated capture.

    Attributes:
        seed: the integer that rebuilt it (:func:`make_case`).
        mutation: the mutation(s) applied, e.g. ``cut`` or ``reorder+rsv-bits``.
        sources: the corpus captures it came from.
        data: the file's bytes.
        suffix: the file name's suffix (``.pcap``, ``.pcapng``, ``.pcap.gz``).
        notes: what the mutation did, in a few words per step.
    """

    seed: int
    mutation: str
    sources: tuple[str, ...]
    data: bytes
    suffix: str
    notes: list[str] = field(default_factory=list)


# -- the corpus -----------------------------------------------------------------------------

def _corpus_files() -> list[tuple[str, Path]]:
    root = SAMPLES_DIR.parent
    files = [(p.relative_to(root).as_posix(), p) for d in
             (SAMPLES_DIR, SAMPLES_DIR / "anomalies", GOLDEN_DIR)
             for p in sorted(d.iterdir()) if p.name.endswith((".pcap", ".pcapng", ".pcap.gz"))]
    peers = peers_location()
    if peers.is_dir():
        files += [("peers/" + p.relative_to(peers).as_posix(), p) for p in sorted(peers.rglob("*"))
                  if p.is_file() and p.name.endswith((".pcap", ".pcapng", ".pcap.gz"))]
    return files


@cache
def load_corpus() -> tuple[Seed, ...]:
    """Every capture of the corpus, read once."""
    seeds = []
    for name, path in _corpus_files():
        data = path.read_bytes()
        seeds.append(Seed(name, data, read_records(data)))
    return tuple(seeds)


def read_records(data: bytes) -> tuple[Record, ...] | None:
    """The packets of a pcap or pcapng file (gzip or not), read with dpkt."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except Exception:  # noqa: BLE001 - a corrupt gzip stream (zlib.error, EOFError ...)
            return None
    try:
        reader: dpkt.pcap.Reader | dpkt.pcapng.Reader
        if data[:4] == struct.pack("<I", PCAPNG_SHB):
            reader = dpkt.pcapng.Reader(io.BytesIO(data))
        else:
            reader = dpkt.pcap.Reader(io.BytesIO(data))
        linktype = reader.datalink()
        return tuple(Record(round(ts * 1_000_000_000), linktype, bytes(buf)) for ts, buf in reader)
    except Exception:  # noqa: BLE001 - dpkt on mutated bytes: any failure means no packets
        return None


def write_pcap(records: list[Record], linktype: int | None = None) -> bytes:
    """A classic pcap file (nanosecond magic) of ``records``."""
    link = linktype if linktype is not None else (records[0].linktype if records else 1)
    out = [struct.pack("<IHHiIII", PCAP_NS_MAGIC, 2, 4, 0, 0, 262144, link & 0xFFFFFFFF)]
    for r in records:
        sec, ns = divmod(r.ts, 1_000_000_000)
        out.append(struct.pack("<IIII", sec & 0xFFFFFFFF, ns, len(r.data), len(r.data)))
        out.append(r.data)
    return b"".join(out)


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def write_pcapng(records: list[Record], tsresol: int | None = None, tsoffset: int | None = None,
                 ticks: Callable[[int], int] | None = None, secrets: bytes = b"") -> bytes:
    """A pcapng file of ``records``: one interface per link type, each with the
    given ``if_tsresol`` byte and ``if_tsoffset`` (seconds) options if not None;
    ``ticks(ts_ns)`` gives the 64-bit timestamp written (ns by default, which
    needs ``if_tsresol`` 9); ``secrets``, a TLS key log, goes in a Decryption
    Secrets Block before the packets."""
    out = [_block(PCAPNG_SHB, struct.pack("<IHHq", PCAPNG_BOM, 1, 0, -1))]
    if secrets:
        out.append(_block(PCAPNG_DSB, struct.pack("<II", DSB_TLS_KEY_LOG, len(secrets))
                          + secrets))
    ifaces: dict[int, int] = {}
    resol = 9 if tsresol is None and ticks is None else tsresol
    for r in records:
        if r.linktype not in ifaces:
            opts = b""
            if resol is not None:
                opts += _option(9, bytes([resol]))
            if tsoffset is not None:
                opts += _option(14, struct.pack("<q", tsoffset))
            if opts:
                opts += _option(0, b"")
            ifaces[r.linktype] = len(ifaces)
            out.append(_block(PCAPNG_IDB, struct.pack("<HHI", r.linktype & 0xFFFF, 0, 262144) + opts))
        t = (ticks or (lambda ns: ns))(r.ts) & 0xFFFFFFFFFFFFFFFF
        out.append(_block(PCAPNG_EPB, struct.pack("<IIIII", ifaces[r.linktype], t >> 32,
                                                  t & 0xFFFFFFFF, len(r.data), len(r.data))
                          + r.data))
    return b"".join(out)


def _write_any(rng: random.Random, records: list[Record]) -> tuple[bytes, str]:
    """Write back as pcap or pcapng (pcapng whenever link types are mixed)."""
    if len({r.linktype for r in records}) > 1 or rng.random() < 0.3:
        return write_pcapng(records), ".pcapng"
    return write_pcap(records), ".pcap"


# -- packet layout --------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """Offsets in one packet's bytes: the IP header, its version, the TCP
    header and the TCP payload."""

    ip: int
    version: int
    tcp: int
    payload: int


def _ip_start(linktype: int, buf: bytes) -> int | None:
    if linktype == LINKTYPE_ETHERNET:
        pos, etype = 12, 0
        while pos + 2 <= len(buf):
            etype = int.from_bytes(buf[pos:pos + 2], "big")
            if etype in (0x8100, 0x88A8, 0x9100):
                pos += 4
                continue
            break
        return pos + 2 if etype in (0x0800, 0x86DD) else None
    if linktype == LINKTYPE_SLL:
        return 16
    if linktype == LINKTYPE_SLL2:
        return 20
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        return 4
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6, 12, 14):
        return 0
    return None


def tcp_layout(linktype: int, buf: bytes) -> Layout | None:
    """Where the IP and TCP headers and the TCP payload start (None if the
    packet is not plain TCP over IPv4 or IPv6)."""
    ip = _ip_start(linktype, buf)
    if ip is None or ip >= len(buf):
        return None
    version = buf[ip] >> 4
    if version == 4 and len(buf) >= ip + 20 and buf[ip + 9] == 6:
        tcp = ip + (buf[ip] & 0x0F) * 4
    elif version == 6 and len(buf) >= ip + 40 and buf[ip + 6] == 6:
        tcp = ip + 40
    else:
        return None
    if len(buf) < tcp + 20:
        return None
    payload = tcp + (buf[tcp + 12] >> 4) * 4
    if payload > len(buf) or payload < tcp + 20:
        return None
    return Layout(ip, version, tcp, payload)


def _frame_starts(payload: bytes) -> list[int]:
    """Offsets of the WebSocket frame headers at the start of a TCP payload
    (the first frame at offset 0, then as long as the lengths add up)."""
    starts, pos = [], 0
    while pos + 2 <= len(payload):
        b0, b1 = payload[pos], payload[pos + 1]
        if b0 & 0x0F not in (0, 1, 2, 8, 9, 10) or b0 & 0x30:
            break
        n, head = b1 & 0x7F, 2
        if n == 126:
            if pos + 4 > len(payload):
                break
            n, head = int.from_bytes(payload[pos + 2:pos + 4], "big"), 4
        elif n == 127:
            if pos + 10 > len(payload):
                break
            n, head = int.from_bytes(payload[pos + 2:pos + 10], "big"), 10
        starts.append(pos)
        pos += head + (4 if b1 & 0x80 else 0) + n
    return starts


def _payloads(records: list[Record]) -> Iterator[tuple[int, int, bytes]]:
    """``(record index, payload offset, payload)`` of every TCP segment with data."""
    for i, r in enumerate(records):
        lay = tcp_layout(r.linktype, r.data)
        if lay is not None and lay.payload < len(r.data):
            yield i, lay.payload, r.data[lay.payload:]


def _frames(records: list[Record]) -> list[tuple[int, int]]:
    """``(record index, byte offset)`` of every frame header found."""
    found = []
    for i, at, payload in _payloads(records):
        if payload[:4] not in (b"GET ", b"HTTP"):
            found += [(i, at + s) for s in _frame_starts(payload)]
    return found


def _replace(records: list[Record], i: int, data: bytes) -> None:
    records[i] = Record(records[i].ts, records[i].linktype, data)


# -- the mutations --------------------------------------------------------------------------

Mutator = Callable[[random.Random, Case], Case | None]


def _with(case: Case, name: str, data: bytes, note: str, suffix: str | None = None,
          sources: tuple[str, ...] = ()) -> Case:
    mutation = f"{case.mutation}+{name}" if case.mutation else name
    return Case(case.seed, mutation, case.sources + sources, data, suffix or case.suffix,
                [*case.notes, f"{name}: {note}"])


def _records(case: Case) -> list[Record] | None:
    got = read_records(case.data)
    return list(got) if got else None


def bit_flip(rng: random.Random, case: Case) -> Case | None:
    data = bytearray(case.data)
    if not data:
        return None
    where = []
    for _ in range(rng.choice((1, 1, 2, 3, 8, 32))):
        pos = rng.randrange(len(data))
        data[pos] ^= 1 << rng.randrange(8)
        where.append(pos)
    return _with(case, "bit-flip", bytes(data), f"bits flipped at offsets {sorted(where)}")


def byte_set(rng: random.Random, case: Case) -> Case | None:
    data = bytearray(case.data)
    if not data:
        return None
    where = []
    for _ in range(rng.choice((1, 2, 4))):
        pos = rng.randrange(len(data))
        data[pos] = rng.choice((0, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        where.append(pos)
    return _with(case, "byte-set", bytes(data), f"bytes set at offsets {sorted(where)}")


def _headers(data: bytes) -> list[tuple[int, int]]:
    """``(offset, size)`` of the record headers (pcap) or blocks (pcapng) of a
    plain capture file, as far as the lengths can be followed."""
    out: list[tuple[int, int]] = []
    if data[:4] == struct.pack("<I", PCAPNG_SHB):
        pos = 0
        while pos + 12 <= len(data):
            blen = struct.unpack_from("<I", data, pos + 4)[0]
            if blen < 12 or blen % 4:
                break
            out.append((pos, blen))
            pos += blen
        return out
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    pos = 24
    while pos + 16 <= len(data):
        incl = struct.unpack_from(endian + "I", data, pos + 8)[0]
        out.append((pos, 16 + incl))
        pos += 16 + incl
    return out


def cut(rng: random.Random, case: Case) -> Case | None:
    if len(case.data) < 2:
        return None
    heads = _headers(case.data) if case.data[:2] != b"\x1f\x8b" else []
    if heads and rng.random() < 0.5:
        pos, size = rng.choice(heads)
        at = min(len(case.data) - 1, pos + rng.randrange(min(size, 32)))
        note = f"cut at {at}, inside the header of the record/block at {pos}"
    else:
        at = rng.randrange(1, len(case.data))
        note = f"cut at {at} of {len(case.data)}"
    return _with(case, "cut", case.data[:at], note)


def splice_bytes(rng: random.Random, case: Case, other: Seed) -> Case | None:
    if len(case.data) < 2 or len(other.data) < 2:
        return None
    i, j = rng.randrange(1, len(case.data)), rng.randrange(len(other.data))
    return _with(case, "splice-bytes", case.data[:i] + other.data[j:],
                 f"first {i} bytes, then {other.name} from byte {j}", sources=(other.name,))


def splice_packets(rng: random.Random, case: Case, other: Seed) -> Case | None:
    mine = _records(case)
    if not mine or not other.records:
        return None
    theirs = list(other.records)
    if rng.random() < 0.5:  # merged captures: the other's clock moved onto ours
        shift = mine[0].ts - theirs[0].ts + rng.randrange(-10**9, 10**9)
        merged = sorted(mine + [Record(r.ts + shift, r.linktype, r.data) for r in theirs],
                        key=lambda r: r.ts)
        note = f"merged with {other.name} by time"
    else:
        cut_at = rng.randrange(len(mine) + 1)
        merged = mine[:cut_at] + theirs[rng.randrange(len(theirs)):]
        note = f"first {cut_at} packets, then {other.name}'s tail"
    data, suffix = _write_any(rng, merged)
    return _with(case, "splice-packets", data, note, suffix, sources=(other.name,))


def reorder(rng: random.Random, case: Case) -> Case | None:
    recs = _records(case)
    if not recs or len(recs) < 2:
        return None
    if rng.random() < 0.5:
        i, j = rng.sample(range(len(recs)), 2)
        recs[i], recs[j] = recs[j], recs[i]
        note = f"packets {i + 1} and {j + 1} swapped"
    else:
        k = rng.randint(2, min(8, len(recs)))
        i = rng.randrange(len(recs) - k + 1)
        window = recs[i:i + k]
        rng.shuffle(window)
        recs[i:i + k] = window
        note = f"packets {i + 1}..{i + k} shuffled"
    data, suffix = _write_any(rng, recs)
    return _with(case, "reorder", data, note, suffix)


def duplicate(rng: random.Random, case: Case) -> Case | None:
    recs = _records(case)
    if not recs:
        return None
    picked = sorted(rng.sample(range(len(recs)), min(len(recs), rng.choice((1, 1, 2, 5)))))
    for i in reversed(picked):
        recs.insert(rng.randint(i + 1, min(len(recs), i + 4)), recs[i])
    data, suffix = _write_any(rng, recs)
    return _with(case, "duplicate", data, f"packets {[i + 1 for i in picked]} duplicated", suffix)


def drop(rng: random.Random, case: Case) -> Case | None:
    recs = _records(case)
    if not recs or len(recs) < 2:
        return None
    picked = set(rng.sample(range(len(recs)), min(len(recs) - 1, rng.choice((1, 1, 2, 4)))))
    data, suffix = _write_any(rng, [r for i, r in enumerate(recs) if i not in picked])
    return _with(case, "drop", data, f"packets {sorted(i + 1 for i in picked)} dropped", suffix)


def split_segment(rng: random.Random, case: Case) -> Case | None:
    """A TCP segment with data cut into 2-4 segments (sequence numbers kept
    consistent), first cuts often 1-3 bytes in."""
    recs = _records(case)
    if not recs:
        return None
    candidates = []
    for i, r in enumerate(recs):
        lay = tcp_layout(r.linktype, r.data)
        if lay is not None and len(r.data) - lay.payload >= 2:
            candidates.append((i, lay))
    if not candidates:
        return None
    i, lay = rng.choice(candidates)
    r = recs[i]
    payload = r.data[lay.payload:]
    cuts = {rng.choice((1, 2, 3, rng.randrange(1, len(payload))))}
    cuts |= {rng.randrange(1, len(payload)) for _ in range(rng.randrange(3))}
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(payload)), len(payload)]
    seq = int.from_bytes(r.data[lay.tcp + 4:lay.tcp + 8], "big")
    parts: list[Record] = []
    for a, b in pairwise(bounds):
        buf = bytearray(r.data[:lay.payload] + payload[a:b])
        buf[lay.tcp + 4:lay.tcp + 8] = ((seq + a) & 0xFFFFFFFF).to_bytes(4, "big")
        if lay.version == 4:
            buf[lay.ip + 2:lay.ip + 4] = (len(buf) - lay.ip).to_bytes(2, "big")
        else:
            buf[lay.ip + 4:lay.ip + 6] = (len(buf) - lay.ip - 40).to_bytes(2, "big")
        parts.append(Record(r.ts + len(parts) * 1000, r.linktype, bytes(buf)))
    recs[i:i + 1] = parts
    data, suffix = _write_any(rng, recs)
    return _with(case, "split-segment", data,
                 f"packet {i + 1}'s payload cut at {bounds[1:-1]}", suffix)


def ip_tcp_lengths(rng: random.Random, case: Case) -> Case | None:
    recs = _records(case)
    if not recs:
        return None
    found = [(i, lay) for i, r in enumerate(recs)
             if (lay := tcp_layout(r.linktype, r.data)) is not None]
    if not found:
        return None
    i, lay = rng.choice(found)
    buf = bytearray(recs[i].data)
    field_name = rng.choice(("ip-length", "ip-header-length", "tcp-data-offset"))
    if field_name == "ip-length":
        at = lay.ip + (2 if lay.version == 4 else 4)
        value = rng.choice((*EDGE16, rng.randrange(65536)))
        buf[at:at + 2] = value.to_bytes(2, "big")
    elif field_name == "ip-header-length" and lay.version == 4:
        value = rng.randrange(16)
        buf[lay.ip] = 0x40 | value
    else:
        field_name = "tcp-data-offset"
        value = rng.randrange(16)
        buf[lay.tcp + 12] = (value << 4) | (buf[lay.tcp + 12] & 0x0F)
    _replace(recs, i, bytes(buf))
    data, suffix = _write_any(rng, recs)
    return _with(case, "ip-tcp-lengths", data, f"packet {i + 1}: {field_name} = {value}", suffix)


def ws_lengths(rng: random.Random, case: Case) -> Case | None:
    """A frame's payload length rewritten in place (7, 16 or 64-bit form)."""
    recs = _records(case)
    if not recs:
        return None
    found = _frames(recs)
    if not found:
        return None
    i, at = rng.choice(found)
    buf = bytearray(recs[i].data)
    width = rng.choice((7, 16, 64, 64))
    if width == 7:
        value = rng.randrange(126)
        buf[at + 1] = (buf[at + 1] & 0x80) | value
    elif width == 16:
        value = rng.choice((*EDGE16, rng.randrange(65536)))
        buf[at + 1] = (buf[at + 1] & 0x80) | 126
        buf[at + 2:at + 4] = value.to_bytes(2, "big")
    else:
        value = rng.choice((*HUGE64, rng.randrange(1 << 64)))
        buf[at + 1] = (buf[at + 1] & 0x80) | 127
        buf[at + 2:at + 10] = value.to_bytes(8, "big")
    data, suffix = _write_any(rng, recs[:i] + [Record(recs[i].ts, recs[i].linktype,
                                                      bytes(buf[:len(recs[i].data)]))]
                              + recs[i + 1:])
    return _with(case, "ws-lengths", data,
                 f"packet {i + 1}, frame at byte {at}: {width}-bit length = {value}", suffix)


def embedded_secrets(data: bytes) -> bytes:
    """The TLS key log of a little-endian pcapng's Decryption Secrets Blocks."""
    return pcapng_secrets(data)[1]


def _tls_records(records: list[Record]) -> list[tuple[int, int]]:
    """``(record index, byte offset)`` of every TLS record header that starts a
    TCP payload or follows a whole record in it."""
    found = []
    for i, r in enumerate(records):
        layout = tcp_layout(r.linktype, r.data)
        if layout is None:
            continue
        pos = layout.payload
        while pos + 5 <= len(r.data) and r.data[pos] in (20, 21, 22, 23) \
                and r.data[pos + 1] == 3:
            found.append((i, pos))
            pos += 5 + int.from_bytes(r.data[pos + 3:pos + 5], "big")
    return found


def tls_records(rng: random.Random, case: Case) -> Case | None:
    """A TLS record changed in place: its length (0, one off, past the limit), its
    content type or version, or a byte of its protected body; written back with
    the capture's key log, so that decryption is exercised."""
    recs = _records(case)
    if not recs:
        return None
    found = _tls_records(recs)
    if not found:
        return None
    i, at = rng.choice(found)
    buf = bytearray(recs[i].data)
    length = int.from_bytes(buf[at + 3:at + 5], "big")
    how = rng.choice(("length", "length", "type", "version", "body"))
    if how == "length":
        value = rng.choice((0, 1, length - 1, length + 1, 16640, 16641, 18432, 65535))
        buf[at + 3:at + 5] = (value & 0xFFFF).to_bytes(2, "big")
        note = f"length {length} -> {value & 0xFFFF}"
    elif how == "type":
        value = rng.choice((0, 20, 21, 22, 23, 24, 255))
        buf[at] = value
        note = f"content type -> {value}"
    elif how == "version":
        value = rng.choice((0x0000, 0x0300, 0x0301, 0x0304, 0x0399, 0xFFFF))
        buf[at + 1:at + 3] = value.to_bytes(2, "big")
        note = f"version -> 0x{value:04x}"
    else:
        if at + 5 >= len(buf):
            return None
        pos = rng.randrange(at + 5, min(len(buf), at + 5 + max(length, 1)))
        buf[pos] ^= 1 << rng.randrange(8)
        note = f"body bit flipped at byte {pos}"
    recs[i] = Record(recs[i].ts, recs[i].linktype, bytes(buf))
    data = write_pcapng(recs, secrets=embedded_secrets(case.data))
    return _with(case, "tls-records", data, f"packet {i + 1}, record at byte {at}: {note}",
                 ".pcapng")


def tls_keys(rng: random.Random, case: Case) -> Case | None:
    """The capture's embedded TLS key log cut down or spoiled: none of it (the
    records passed over without keys), one side's secrets, the handshake
    secrets only, or every secret with a digit changed (records that do
    not open)."""
    keys = embedded_secrets(case.data)
    recs = _records(case) if keys else None
    if not recs:
        return None
    lines = [line.split() for line in keys.decode("ascii", "replace").splitlines()]
    lines = [line for line in lines if len(line) == 3]
    how = rng.choice(("none", "none", "client", "server", "handshake", "wrong"))
    if how == "client":
        lines = [line for line in lines if not line[0].startswith("SERVER_")]
    elif how == "server":
        lines = [line for line in lines if not line[0].startswith("CLIENT_")
                 or line[0] == "CLIENT_RANDOM"]
    elif how == "handshake":
        lines = [line for line in lines if "HANDSHAKE" in line[0]]
    elif how == "wrong":
        for line in lines:
            at = rng.randrange(len(line[2]))
            line[2] = line[2][:at] + ("1" if line[2][at] == "0" else "0") + line[2][at + 1:]
    else:
        lines = []
    secrets = "".join(" ".join(line) + "\n" for line in lines).encode()
    return _with(case, "tls-keys", write_pcapng(recs, secrets=secrets), how, ".pcapng")


#: The HTTP/2 client preface (an h2c capture's client starts with it).
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _h2_frames(records: list[Record]) -> list[tuple[int, int]]:
    """``(record index, byte offset)`` of the HTTP/2 frame headers of a
    cleartext (h2c) capture: the segments' frames walked from their start
    (after the preface), where a segment holds whole frames."""
    found = []
    for i, at, payload in _payloads(records):
        pos = len(_H2_PREFACE) if payload.startswith(_H2_PREFACE) else 0
        starts = []
        while pos + 9 <= len(payload):
            length = int.from_bytes(payload[pos:pos + 3], "big")
            if payload[pos + 3] > 0x9 or pos + 9 + length > len(payload):
                break
            starts.append(at + pos)
            pos += 9 + length
        if pos == len(payload):  # (only segments that are frames and nothing else)
            found += [(i, at) for at in starts]
    return found


def h2_frames(rng: random.Random, case: Case) -> Case | None:
    """An HTTP/2 frame of a cleartext capture changed in place: its length
    (0, one off, past the segment), type, flags, stream id, or a byte of
    its body (an HPACK block's, a DATA frame's padding or WebSocket bytes)."""
    recs = _records(case)
    if not recs or not any(_H2_PREFACE in r.data for r in recs):
        return None
    found = _h2_frames(recs)
    if not found:
        return None
    i, at = rng.choice(found)
    buf = bytearray(recs[i].data)
    length = int.from_bytes(buf[at:at + 3], "big")
    how = rng.choice(("length", "type", "flags", "stream", "body", "body"))
    if how == "length":
        value = rng.choice((0, 1, max(length - 1, 0), length + 1, 16384, (1 << 24) - 1))
        buf[at:at + 3] = value.to_bytes(3, "big")
        note = f"length {length} -> {value}"
    elif how == "type":
        value = rng.choice((0, 1, 3, 5, 9, 10, 255))
        buf[at + 3] = value
        note = f"type -> {value}"
    elif how == "flags":
        value = rng.randrange(256)
        buf[at + 4] = value
        note = f"flags -> 0x{value:02x}"
    elif how == "stream":
        value = rng.choice((0, 1, 2, 3, 5, 0x7FFFFFFF, 0xFFFFFFFF))
        buf[at + 5:at + 9] = value.to_bytes(4, "big")
        note = f"stream -> {value}"
    else:
        if not length:
            return None
        pos = at + 9 + rng.randrange(length)
        buf[pos] = rng.randrange(256)
        note = f"body byte {pos - at - 9} set"
    recs[i] = Record(recs[i].ts, recs[i].linktype, bytes(buf))
    return _with(case, "h2-frames", write_pcap(recs), f"packet {i + 1}, frame at byte {at}: "
                 f"{note}", ".pcap")


def rsv_bits(rng: random.Random, case: Case) -> Case | None:
    """RSV1 (the deflate bit) toggled on frames; now and then FIN, RSV2/3,
    the opcode or the mask bit instead."""
    recs = _records(case)
    if not recs:
        return None
    found = _frames(recs)
    if not found:
        return None
    picked = rng.sample(found, min(len(found), rng.choice((1, 1, 2, 5))))
    notes = []
    for i, at in picked:
        buf = bytearray(recs[i].data)
        what = rng.choice(("rsv1", "rsv1", "rsv1", "fin", "rsv2", "rsv3", "opcode", "mask"))
        if what == "opcode":
            buf[at] = (buf[at] & 0xF0) | rng.randrange(16)
        elif what == "mask":
            buf[at + 1] ^= 0x80
        else:
            buf[at] ^= {"fin": 0x80, "rsv1": 0x40, "rsv2": 0x20, "rsv3": 0x10}[what]
        _replace(recs, i, bytes(buf))
        notes.append(f"packet {i + 1} byte {at}: {what}")
    data, suffix = _write_any(rng, recs)
    return _with(case, "rsv-bits", data, "; ".join(notes), suffix)


def record_lengths(rng: random.Random, case: Case) -> Case | None:
    """A pcap record's incl_len/orig_len or a pcapng block's length fields set
    to edge values."""
    data = bytearray(case.data)
    if data[:2] == b"\x1f\x8b":
        return None
    heads = _headers(bytes(data))
    if not heads:
        return None
    pos, size = rng.choice(heads)
    value = rng.choice((*EDGE32, rng.randrange(1 << 32), size + rng.randrange(-8, 9) & 0xFFFFFFFF))
    endian = ">" if bytes(data[:4]) in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d") else "<"
    if data[:4] == struct.pack("<I", PCAPNG_SHB):
        spots = [(4, "leading block length"), (size - 4, "trailing block length")]
        if struct.unpack_from("<I", data, pos)[0] == PCAPNG_EPB and size >= 28:
            spots += [(20, "EPB captured length"), (24, "EPB original length")]
        off, what = rng.choice(spots)
    else:
        off, what = rng.choice(((8, "incl_len"), (12, "orig_len"), (8, "incl_len")))
    if pos + off + 4 > len(data):
        return None
    struct.pack_into(endian + "I", data, pos + off, value)
    return _with(case, "record-lengths", bytes(data), f"record/block at {pos}: {what} = {value}")


def timestamps(rng: random.Random, case: Case) -> Case | None:
    """Absurd timestamps: pcapng ``if_tsresol``/``if_tsoffset`` tricks with
    64-bit tick counts, or pcap seconds and sub-seconds at their maximum."""
    recs = _records(case)
    if not recs:
        return None
    if rng.random() < 0.7:
        resol = rng.choice(TSRESOL)
        offset = rng.choice((None, None, 0, 1 << 40, (1 << 63) - 1, -(1 << 63), -1))
        style = rng.choice(("max", "ns", "random"))

        def ticks(ns: int) -> int:
            if style == "max":
                return (1 << 64) - 1 - rng.randrange(4)
            if style == "random":
                return rng.randrange(1 << 64)
            return ns
        data = write_pcapng(recs, tsresol=resol, tsoffset=offset, ticks=ticks)
        return _with(case, "timestamps", data,
                     f"pcapng if_tsresol=0x{resol:02x} if_tsoffset={offset} ticks={style}",
                     ".pcapng")
    picked = rng.sample(range(len(recs)), min(len(recs), rng.choice((1, 3))))
    out = bytearray(write_pcap(recs))
    pos, i = 24, 0
    while pos + 16 <= len(out):
        if i in picked:
            struct.pack_into("<II", out, pos, rng.choice((0xFFFFFFFF, 0x7FFFFFFF, 0)),
                             rng.choice((0xFFFFFFFF, 999_999_999, 1_000_000_000)))
        pos += 16 + struct.unpack_from("<I", out, pos + 8)[0]
        i += 1
    return _with(case, "timestamps", bytes(out),
                 f"pcap packets {sorted(p + 1 for p in picked)}: absurd seconds/nanoseconds",
                 ".pcap")


def gzip_wrap(rng: random.Random, case: Case) -> Case | None:
    """Gzip the capture, then cut it, flip a bit in its deflate body, or spoil
    its CRC or size trailer (or leave it whole)."""
    if case.data[:2] == b"\x1f\x8b":
        return None
    body = gzip.compress(case.data, compresslevel=rng.choice((1, 6, 9)), mtime=0)
    how = rng.choice(("cut", "cut", "flip", "crc", "isize", "trailing", "whole"))
    out = bytearray(body)
    if how == "cut":
        at = rng.randrange(10, len(out))
        out = out[:at]
        note = f"cut at {at} of {len(body)}"
    elif how == "flip":
        at = rng.randrange(10, len(out) - 8)
        out[at] ^= 1 << rng.randrange(8)
        note = f"bit flipped at {at} (deflate body)"
    elif how == "crc":
        out[-8] ^= 0xFF
        note = "CRC32 spoiled"
    elif how == "isize":
        out[-4] ^= 0x01
        note = "ISIZE spoiled"
    elif how == "trailing":
        out += bytes(rng.randrange(256) for _ in range(rng.randint(1, 20)))
        note = "garbage after the gzip member"
    else:
        note = "whole"
    suffix = case.suffix if case.suffix.endswith(".gz") else case.suffix + ".gz"
    return _with(case, "gzip", bytes(out), note, suffix)


#: every mutation by name; the splices take a second corpus capture
MUTATIONS: dict[str, Callable[..., Case | None]] = {
    "bit-flip": bit_flip,
    "byte-set": byte_set,
    "cut": cut,
    "splice-bytes": splice_bytes,
    "splice-packets": splice_packets,
    "record-lengths": record_lengths,
    "timestamps": timestamps,
    "ip-tcp-lengths": ip_tcp_lengths,
    "ws-lengths": ws_lengths,
    "rsv-bits": rsv_bits,
    "reorder": reorder,
    "duplicate": duplicate,
    "drop": drop,
    "split-segment": split_segment,
    "gzip": gzip_wrap,
    "tls-records": tls_records,
    "tls-keys": tls_keys,
    "h2-frames": h2_frames,
}
_TWO_SOURCES = {"splice-bytes", "splice-packets"}


def case_seed(master: int, index: int) -> int:
    """The seed of case ``index`` of a run seeded with ``master``."""
    digest = hashlib.sha256(f"wspcap-fuzz:{master}:{index}".encode()).digest()
    return int.from_bytes(digest[:6], "big")


def _suffix(name: str) -> str:
    for s in (".pcapng.gz", ".pcap.gz", ".pcapng", ".pcap"):
        if name.endswith(s):
            return s
    return ".pcap"




def make_case(seed: int, corpus: tuple[Seed, ...] | None = None,
              mutation: str | None = None) -> Case:
    """The case of ``seed``: one mutation (``mutation``, or one picked by the
    seed), and a quarter of the time one or two more stacked on it."""
    corpus = corpus or load_corpus()
    rng = random.Random(seed)
    source = rng.choice(corpus)
    case = Case(seed, "", (source.name,), source.data, _suffix(source.name))
    steps = 1 if rng.random() < 0.75 else rng.randint(2, 3)
    if mutation:  # first on a seed it applies to (tls-* need TLS seeds, h2-frames an h2c
        # one): the drawn seed, then every other in an order the seed draws
        fn = MUTATIONS[mutation]
        for seed_file in [source, *rng.sample(corpus, len(corpus))]:
            case = Case(seed, "", (seed_file.name,), seed_file.data, _suffix(seed_file.name))
            got = (fn(rng, case, rng.choice(corpus)) if mutation in _TWO_SOURCES
                   else fn(rng, case))
            if got is not None:
                case = got
                break
    for _ in range(steps * 4):  # a mutation may not apply: try another
        if case.mutation.count("+") + 1 >= steps and case.mutation:
            break
        name = rng.choice(list(MUTATIONS))
        fn = MUTATIONS[name]
        got = fn(rng, case, rng.choice(corpus)) if name in _TWO_SOURCES else fn(rng, case)
        if got is not None:
            case = got
    if not case.mutation:  # nothing applied: a plain bit flip always does
        case = bit_flip(rng, case) or case
    return case
