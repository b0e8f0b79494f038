"""Scapy-built captures where bytes of a fragmented message are missing.

Each builder returns a :class:`~golden.crafted.Crafted` whose ``notes`` say
what was lost (stream offsets of the lost bytes, relative to the start of
the direction's stream as wspcap counts it: the SYN's sequence number plus
one). Used by ``tests/test_completeness.py`` (what the messages say) and
``tests/test_blocks.py`` (both engine paths give the same records).
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from golden.crafted import Conversation, Crafted, request_head, response_head
from golden.rfc6455 import BINARY, CONT, TEXT, frame

__all__ = ["BUILDERS", "deflate_lost_fragment", "fragments_lost", "oversized_frame",
           "raw_deflate"]

PMD = "Sec-WebSocket-Extensions: permessage-deflate"
ISN = {"c2s": 1000, "s2c": 5000}  #: Conversation's default initial sequence numbers


def raw_deflate(comp: Any, data: bytes) -> bytes:
    """RFC 7692 section 7.2.1: a sync flush, then its ``00 00 ff ff`` dropped."""
    out: bytes = comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def _offset(conv: Conversation, d: str) -> int:
    """The stream offset of the next byte ``d`` sends."""
    return conv.next[d] - ISN[d] - 1


def _fragmented(conv: Conversation, d: str, opcode: int, parts: Sequence[bytes],
                rsv1: bool = False) -> list[bytes]:
    """The wire bytes of each frame of one fragmented message."""
    return [frame(opcode if n == 0 else CONT, part, fin=n == len(parts) - 1,
                  rsv=4 if rsv1 and n == 0 else 0,
                  mask=conv.next_mask() if d == "c2s" else None)
            for n, part in enumerate(parts)]


def _send_losing(conv: Conversation, d: str, wire: bytes, cuts: Sequence[int],
                 lost: Sequence[int]) -> list[tuple[int, int]]:
    """``wire`` from ``d`` in segments ending at ``cuts`` (positions in ``wire``),
    the segments numbered in ``lost`` left out of the capture; the peer then
    acknowledges it all. Returns the lost ``(stream offset, size)`` ranges."""
    start = _offset(conv, d)
    bounds = [0, *cuts, len(wire)]
    sizes = [b - a for a, b in itertools.pairwise(bounds)]
    pkts = conv.send(d, wire, sizes, ack=False, keep=False)
    conv.packets += [p for n, p in enumerate(pkts) if n not in lost]
    conv.segment("s2c" if d == "c2s" else "c2s", flags="A")
    return [(start + bounds[n], sizes[n]) for n in lost]


def fragments_lost(case: str, d: str = "c2s") -> Crafted:
    """A 5-fragment text message (300 bytes a fragment) from ``d`` with bytes of
    it lost; a message before and one after it are whole.

    ``case``:
        ``whole``: the third frame's segment (exactly that frame);
        ``head``: the third frame's header and first 100 payload bytes (its
        payload's rest arrives, but cannot be framed);
        ``middle``: 100 bytes inside the third frame's payload;
        ``across``: the end of the second frame and the header of the third;
        ``first``: the first frame (the others are orphan continuations);
        ``last``: the final frame (the message after it starts while this one
        is open).
    """
    conv = Conversation()
    conv.open()
    conv.upgrade()
    conv.exchange(d, TEXT, b"before")
    parts = [bytes([0x61 + n]) * 300 for n in range(5)]  # a..e, never a frame header
    wires = _fragmented(conv, d, TEXT, parts)
    at = [0]
    for w in wires:
        at.append(at[-1] + len(w))
    wire = b"".join(wires)
    hl = len(wires[2]) - 300
    cuts = {
        "whole": ([at[1], at[2], at[3], at[4]], [2]),
        "head": ([at[1], at[2], at[2] + hl + 100, at[3], at[4]], [2]),
        "middle": ([at[1], at[2], at[2] + hl + 100, at[2] + hl + 200, at[3], at[4]], [3]),
        "across": ([at[1], at[2] - 50, at[2] + hl, at[3], at[4]], [2]),
        "first": ([at[1], at[2], at[3], at[4]], [0]),
        "last": ([at[1], at[2], at[3], at[4]], [4]),
    }[case]
    start = _offset(conv, d)
    lost = _send_losing(conv, d, wire, *cuts)
    conv.exchange(d, TEXT, b"after")
    conv.closing_handshake()
    conv.close()
    return conv.crafted(f"fragments_lost_{case}_{d}", notes={
        "lost": lost, "frames_at": [start + a for a in at[:-1]], "end": start + len(wire),
        "parts": parts})


def deflate_lost_fragment(lose: int | None = 2, level: int = 6) -> Crafted:
    """permessage-deflate: a compressed text message in 5 fragments, the segment
    of fragment ``lose`` (from 0; None: none) lost; compressed messages before
    and after it share the compression context (the one after refers back to
    the lost one's text). ``level`` 0 makes stored blocks, which inflate
    without an error whatever is missing."""
    conv = Conversation()
    conv.open()
    conv.upgrade(request_head(extra=[PMD]), response_head(extra=[PMD]))
    comp = zlib.compressobj(level, wbits=-15)
    first = b"the first message, whole"
    conv.send("s2c", frame(TEXT, raw_deflate(comp, first), rsv=4))
    text = b"".join(b"line %d of a long message that compresses\n" % n for n in range(60))
    data = raw_deflate(comp, text)
    size = -(-len(data) // 5)
    parts = [data[n * size:(n + 1) * size] for n in range(5)]
    wires = _fragmented(conv, "s2c", TEXT, parts, rsv1=True)
    at = [0]
    for w in wires:
        at.append(at[-1] + len(w))
    start = _offset(conv, "s2c")
    lost = _send_losing(conv, "s2c", b"".join(wires), at[1:-1],
                        [] if lose is None else [lose])
    after = b"line 7 of a long message that compresses\n" * 2
    conv.send("s2c", frame(TEXT, raw_deflate(comp, after), rsv=4))
    conv.closing_handshake()
    conv.close()
    return conv.crafted(f"deflate_lost_fragment_{lose}_{level}", notes={
        "lost": lost, "first": first, "text": text, "after": after, "compressed": data,
        "frames_at": [start + a for a in at[:-1]]})


def oversized_frame(size: int, declared: int | None = None) -> Crafted:
    """Server frames at distinct timestamps, then a binary frame of ``size``
    bytes in three segments, whose header arrives in the segment that ends the
    frame before it (a 200-byte frame in two segments).

    With ``declared`` the big frame's header declares that many bytes (its
    64-bit form) but only ``size`` of them are sent before the connection ends.
    """
    conv = Conversation()
    conv.open()
    conv.upgrade()
    for n in range(3):
        conv.exchange("s2c", TEXT, b"frame %d" % n)
    split = frame(BINARY, bytes(range(200)))
    body = bytes((n * 7) & 0xFF for n in range(size))
    if declared is None:
        big = frame(BINARY, body)
    else:
        big = bytes([0x82, 127]) + declared.to_bytes(8, "big") + body
    wire = split + big
    cuts = [0, 100, len(split) + 20, len(split) + 20 + size // 2, len(wire)]
    conv.send("s2c", wire, [b - a for a, b in itertools.pairwise(cuts)])
    if declared is None:
        conv.exchange("s2c", TEXT, b"after")
        conv.closing_handshake()
    conv.close()
    return conv.crafted(f"oversized_frame_{size}_{declared}")


#: name -> builder, for the tests that run every capture here.
BUILDERS: dict[str, Callable[[], Crafted]] = {
    **{f"fragments_lost_{case}_{d}": partial(fragments_lost, case, d)
       for case in ("whole", "head", "middle", "across", "first", "last")
       for d in ("c2s", "s2c")},
    **{f"deflate_lost_fragment_{lose}_{level}": partial(deflate_lost_fragment, lose, level)
       for lose in (None, 2, 4) for level in (0, 6)},
    "oversized_frame": partial(oversized_frame, 3000),
    "oversized_frame_declared": partial(oversized_frame, 3000, 300 << 20),
}
