"""Build the committed reproducers of issue 15's findings (items 1-9).

Each is a small capture made with scapy (:mod:`golden.crafted`) or from a
bundled sample, the same bytes on every run. ``tests/fuzz/test_reproducers.py``
runs every file in ``reproducers/`` under the contract, plus the checks the
finding needs (``EXPECT`` there). Regenerate (nobody edits them by hand)::

    python -m tests.fuzz.make_reproducers             # into tests/fuzz/reproducers/
    python -m tests.fuzz.make_reproducers --only NAME

The inflation bomb of item 9 (30 messages of 60 MiB) is not committed: the
test builds it with :func:`inflation_bomb`.
"""

from __future__ import annotations

import argparse
import gzip
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from golden.crafted import Conversation, request_head, response_head
from golden.paths import SAMPLES_DIR
from golden.rfc6455 import BINARY, CONT, TEXT, frame

from .mutations import Record, _frames, read_records, write_pcap, write_pcapng

__all__ = ["BUILDERS", "REPRODUCERS_DIR", "inflation_bomb", "main"]

REPRODUCERS_DIR = Path(__file__).resolve().parent / "reproducers"
PMD = "Sec-WebSocket-Extensions: permessage-deflate"
#: "²" in ISO-8859-1, the one-byte charset HTTP heads are decoded with
SUPERSCRIPT_TWO = b"\xb2"
PMD_NO_TAKEOVER = (PMD + "; server_no_context_takeover; client_no_context_takeover")


def _deflate(payload: bytes, level: int = 6) -> bytes:
    comp = zlib.compressobj(level, zlib.DEFLATED, -15)
    data = comp.compress(payload) + comp.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4]


def _chat(conv: Conversation, n: int = 3) -> None:
    for i in range(n):
        conv.exchange("c2s", TEXT, f"hello {i}".encode())
        conv.exchange("s2c", TEXT, f"world {i}".encode())


def _plain(path: Path, request_sizes: list[int] | None = None) -> None:
    conv = Conversation()
    conv.open()
    req = request_head()
    sizes = None
    if request_sizes:
        sizes = [*request_sizes, len(req) - sum(request_sizes)]
    conv.upgrade(req, request_sizes=sizes)
    _chat(conv)
    conv.closing_handshake()
    conv.close()
    conv.crafted(path.stem).write(path)


# -- item 1: cut or corrupt files ---------------------------------------------------------

def _plain_bytes() -> bytes:
    return (SAMPLES_DIR / "plain.pcap").read_bytes()


def _chat_bytes() -> bytes:
    """A small conversation's pcap bytes (for the gzip cases: small files)."""
    records = list(read_records(_plain_bytes()) or ())
    return write_pcap(records[:16])


def gzip_cut(path: Path) -> None:
    """The first 16 packets of plain.pcap, gzipped, cut in the middle."""
    body = gzip.compress(_chat_bytes(), mtime=0)
    path.write_bytes(body[:len(body) // 2])


def gzip_bad_crc(path: Path) -> None:
    """Whole, but the gzip trailer's CRC32 is wrong."""
    body = bytearray(gzip.compress(_chat_bytes(), mtime=0))
    body[-8] ^= 0xFF
    path.write_bytes(bytes(body))


def gzip_corrupt_body(path: Path) -> None:
    """One bit flipped in the second half of the deflate body, at the first
    place where that makes the body undecodable (zlib.error)."""
    body = gzip.compress(_chat_bytes(), mtime=0)
    for pos in range(len(body) // 2, len(body) - 8):
        for bit in range(8):
            bad = bytearray(body)
            bad[pos] ^= 1 << bit
            try:
                gzip.decompress(bytes(bad))
            except zlib.error:
                path.write_bytes(bytes(bad))
                return
            except (OSError, EOFError):
                continue
    raise AssertionError("no bit flip makes a zlib.error")


def pcap_cut_in_record_header(path: Path) -> None:
    data = _plain_bytes()
    pos = 24
    for _ in range(10):  # ten whole packets, then 9 bytes of the 11th header
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    path.write_bytes(data[:pos + 9])


def pcapng_cut_in_block_header(path: Path) -> None:
    records = list(read_records(_plain_bytes()) or ())
    data = write_pcapng(records)
    pos = 0
    for _ in range(12):  # SHB, IDB, ten packets, then 6 bytes of the next block
        pos += struct.unpack_from("<I", data, pos + 4)[0]
    path.write_bytes(data[:pos + 6])


# -- item 2: Unicode digits -------------------------------------------------------------

def window_bits_superscript(path: Path) -> None:
    conv = Conversation()
    conv.open()
    offer = (PMD + "; client_max_window_bits=@").encode()
    ext = ["Sec-WebSocket-Extensions: X"]
    req = request_head(extra=ext).replace(b"Sec-WebSocket-Extensions: X", offer).replace(
        b"@", SUPERSCRIPT_TWO)
    resp = response_head(extra=ext).replace(b"Sec-WebSocket-Extensions: X", offer).replace(
        b"@", SUPERSCRIPT_TWO)
    conv.upgrade(req, resp)
    _chat(conv, 1)
    conv.close()
    conv.crafted(path.stem).write(path)


def status_superscript(path: Path) -> None:
    conv = Conversation()
    conv.open()
    resp = response_head().replace(b"HTTP/1.1 101", b"HTTP/1.1 1" + SUPERSCRIPT_TWO + b"1")
    conv.upgrade(None, resp)
    _chat(conv, 1)
    conv.close()
    conv.crafted(path.stem).write(path)


# -- item 3: timestamps past int64 nanoseconds --------------------------------------------

def _sample_records() -> list[Record]:
    buf = Path(SAMPLES_DIR / "plain.pcap").read_bytes()
    return list(read_records(buf) or ())[:12]


def tsresol_seconds(path: Path) -> None:
    """if_tsresol 0 (10^0: whole seconds) with nanosecond tick counts: every
    timestamp is ~1.7e18 seconds, far past what int64 nanoseconds hold."""
    path.write_bytes(write_pcapng(_sample_records(), tsresol=0))


def tsoffset_huge(path: Path) -> None:
    """if_tsoffset of 2^62 seconds added to every timestamp."""
    path.write_bytes(write_pcapng(_sample_records(), tsoffset=1 << 62))


def one_absurd_timestamp(path: Path) -> None:
    """if_tsresol 2^-0 (seconds): ordinary seconds, but the first packet that
    carries a WebSocket frame has the maximal tick count."""
    records = _sample_records()
    target = records[_frames(records)[0][0]].ts

    def ticks(ns: int) -> int:
        return (1 << 64) - 1 if ns == target else ns // 1_000_000_000
    path.write_bytes(write_pcapng(records, tsresol=0x80, ticks=ticks))


# -- item 4: the first request segment carries 1-3 bytes ------------------------------------

def first_segment(n: int) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        _plain(path, [n])
    build.__doc__ = f"the request's first segment carries {n} byte(s)"
    return build


# -- item 5: the 101 before the request -------------------------------------------------------

def response_before_request(path: Path) -> None:
    """The server's 101 and first frames come before the client's request in
    the capture (two taps merged, clock skew); sequence numbers are right."""
    conv = Conversation()
    conv.open()
    handshake = conv.packets[:]
    conv.packets = []
    req = conv.send("c2s", request_head(), ack=False, keep=False)
    resp = conv.send("s2c", response_head(), ack=False, keep=False)
    first = conv.send("s2c", frame(TEXT, b"welcome"), ack=False, keep=False)
    conv.packets = handshake + resp + first + req
    _chat(conv, 2)
    conv.closing_handshake()
    conv.close()
    conv.crafted(path.stem).write(path)


# -- items 6 and 7: lost fragments, orphan continuations ------------------------------------

def lost_middle_fragment(path: Path) -> None:
    """A text message in three fragments, each in its own segment; the middle
    fragment's segment is lost (a TCP gap of exactly one frame)."""
    conv = Conversation()
    conv.open()
    conv.upgrade()
    parts = [b"first part, ", b"lost middle part, ", b"last part"]
    for n, part in enumerate(parts):
        wire = frame(TEXT if n == 0 else CONT, part, fin=n == 2, mask=conv.next_mask())
        conv.send("c2s", wire, keep=n != 1)
    conv.exchange("s2c", TEXT, b"ok")
    conv.closing_handshake()
    conv.close()
    conv.crafted(path.stem).write(path)


def lost_part_of_fragment(path: Path) -> None:
    """As above, but only the second half of the middle fragment is lost."""
    conv = Conversation()
    conv.open()
    conv.upgrade()
    parts = [b"first part, ", b"middle part whose tail is lost, ", b"last part"]
    for n, part in enumerate(parts):
        wire = frame(TEXT if n == 0 else CONT, part, fin=n == 2, mask=conv.next_mask())
        if n == 1:
            half = len(wire) // 2
            conv.send("c2s", wire[:half])
            conv.send("c2s", wire[half:], keep=False)
        else:
            conv.send("c2s", wire)
    conv.exchange("s2c", TEXT, b"ok")
    conv.closing_handshake()
    conv.close()
    conv.crafted(path.stem).write(path)


def lost_deflate_fragments(path: Path) -> None:
    """A permessage-deflate message in five fragments from the server; the
    4th fragment's segment is lost, so 4 of 5 fragments reach the inflater
    (no context takeover, so later messages still inflate)."""
    conv = Conversation()
    conv.open()
    conv.upgrade(request_head(extra=[PMD_NO_TAKEOVER]), response_head(extra=[PMD_NO_TAKEOVER]))
    text = b"".join(f"line {i}: the quick brown fox; ".encode() for i in range(60))
    body = _deflate(text)
    cuts = [len(body) * i // 5 for i in range(6)]
    for n in range(5):
        wire = frame(TEXT if n == 0 else CONT, body[cuts[n]:cuts[n + 1]], fin=n == 4,
                     rsv=4 if n == 0 else 0)
        conv.send("s2c", wire, keep=n != 3)
    conv.send("s2c", frame(TEXT, _deflate(b"after"), rsv=4))
    conv.closing_handshake()
    conv.close()
    conv.crafted(path.stem).write(path)


def orphan_continuation(path: Path) -> None:
    """Continuation frames with no opening frame captured: the segment
    holding the opening frame is lost."""
    conv = Conversation()
    conv.open()
    conv.upgrade()
    conv.send("s2c", frame(BINARY, b"opening, lost", fin=False), keep=False)
    conv.send("s2c", frame(CONT, b"orphan 1", fin=False))
    conv.send("s2c", frame(CONT, b"orphan 2", fin=True))
    conv.exchange("s2c", TEXT, b"a whole message")
    conv.closing_handshake()
    conv.close()
    conv.crafted(path.stem).write(path)


# -- item 8: a frame over 256 MiB ----------------------------------------------------------

BIG = (256 << 20) + 4096


def big_frame_ts(path: Path) -> None:
    """A small server frame cut across two segments; the second segment also
    carries the header of a frame declaring 256 MiB + 4 KiB and its first
    1000 bytes; then the connection ends. The big frame's ts_start must be
    its header's packet's time (the time the small frame ends), not the small
    frame's start."""
    conv = Conversation()
    conv.open()
    conv.upgrade()
    small = frame(TEXT, b"small frame, in two segments")
    head = frame(BINARY, b"", width=64)[:2] + BIG.to_bytes(8, "big")
    conv.send("s2c", small[:10])
    conv.send("s2c", small[10:] + head + b"x" * 1000)
    conv.close()
    conv.crafted(path.stem).write(path)


def gaps_in_big_frames(path: Path) -> None:
    """Found by the fuzzer: three server frames each declaring 256 MiB + 4 KiB,
    each carrying 2000 bytes, the rest of each lost (TCP gaps). A 6 KB
    capture; memory must stay bounded (the lost bytes are not data to keep)."""
    conv = Conversation()
    conv.open()
    conv.upgrade()
    head = frame(BINARY, b"", width=64)[:2] + BIG.to_bytes(8, "big")
    for _ in range(3):
        conv.send("s2c", head + b"x" * 1000)
        conv.next["s2c"] += BIG - 2000  # lost: the middle of the payload
        conv.send("s2c", b"y" * 1000)
    conv.exchange("s2c", TEXT, b"small frame after")
    conv.closing_handshake()
    conv.close()
    conv.crafted(path.stem).write(path)


# -- item 9: the inflation bomb (built by the test, not committed) --------------------------

def inflation_bomb(path: Path, messages: int = 30, size: int = 60 << 20) -> Path:
    """``messages`` server messages that each inflate to ``size`` bytes of
    zeros (no context takeover, so one compressed body serves them all)."""
    conv = Conversation()
    conv.open()
    conv.upgrade(request_head(extra=[PMD_NO_TAKEOVER]), response_head(extra=[PMD_NO_TAKEOVER]))
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = comp.compress(bytes(size)) + comp.flush(zlib.Z_SYNC_FLUSH)
    wire = frame(BINARY, body[:-4], rsv=4)
    for _ in range(messages):
        conv.send("s2c", wire, [min(60000, len(wire) - i) for i in range(0, len(wire), 60000)])
    conv.closing_handshake()
    conv.close()
    return conv.crafted(path.stem).write(path)


#: file name -> builder
BUILDERS: dict[str, Callable[[Path], None]] = {
    "item01-gzip-cut.pcap.gz": gzip_cut,
    "item01-gzip-bad-crc.pcap.gz": gzip_bad_crc,
    "item01-gzip-corrupt-body.pcap.gz": gzip_corrupt_body,
    "item01-pcap-cut-in-record-header.pcap": pcap_cut_in_record_header,
    "item01-pcapng-cut-in-block-header.pcapng": pcapng_cut_in_block_header,
    "item02-window-bits-superscript.pcap": window_bits_superscript,
    "item02-status-superscript.pcap": status_superscript,
    "item03-tsresol-seconds.pcapng": tsresol_seconds,
    "item03-tsoffset-huge.pcapng": tsoffset_huge,
    "item03-one-absurd-timestamp.pcapng": one_absurd_timestamp,
    "item04-first-segment-1-byte.pcap": first_segment(1),
    "item04-first-segment-2-bytes.pcap": first_segment(2),
    "item04-first-segment-3-bytes.pcap": first_segment(3),
    "item05-response-before-request.pcap": response_before_request,
    "item06-lost-middle-fragment.pcap": lost_middle_fragment,
    "item06-lost-part-of-fragment.pcap": lost_part_of_fragment,
    "item06-lost-deflate-fragment.pcap": lost_deflate_fragments,
    "item07-orphan-continuation.pcap": orphan_continuation,
    "item08-big-frame-ts.pcap": big_frame_ts,
    "found-gaps-in-big-frames.pcap": gaps_in_big_frames,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPRODUCERS_DIR)
    ap.add_argument("--only", action="append", help="a file name of BUILDERS (repeatable)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, build in BUILDERS.items():
        if args.only and name not in args.only:
            continue
        build(args.out / name)
        print(args.out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
