"""A block of packets decoded at once, with whole-array NumPy gathers.

Design note
-----------
:class:`~wspcap.decode.PacketDecoder` reads one packet at a time with
precompiled structs, about 2.5 us a packet in CPython. A file reader has the
packets of a whole block in one buffer (:class:`wspcap.sources.Batch`), so here
every header field of every packet is read with one gather over the buffer:
link header, IPv4 (without options) or IPv6 (without extension headers), TCP.

Only that common case is decoded. A packet that is anything else (802.1Q
tags, IP options, IPv6 extension headers, fragments, not TCP, cut by the snap
length, headers that do not add up) is marked not ``simple`` and goes through
the per-packet decoder, which is the reference: for every ``simple`` packet
both give the same flow key, sequence and acknowledgement numbers, flags and
payload (``tests/unit/test_batch_decode.py`` holds them to it).
"""

from __future__ import annotations

from types import ModuleType
from typing import NamedTuple

import numpy as np

from wspcap.constants import SPEEDUPS
from wspcap.decode.link import AF_INET, AF_INET6, ETH_IPV4, ETH_IPV6
from wspcap.sources.linktypes import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    LINKTYPE_RAW_ALIASES,
)

__all__ = ["LINK_MODES", "DecodedBatch", "Headers", "decode_batch", "headers", "opened",
           "py_headers"]

IPPROTO_TCP = 6


class DecodedBatch(NamedTuple):
    """The simple packets of a batch, decoded; arrays have one entry a packet.

    ``flow[i]`` indexes ``keys`` (the flow key, as the per-packet decoder
    makes it) or is -1 where the packet is not simple; ``pstart``/``pend``
    bound the TCP payload in the batch's buffer.
    """

    simple: np.ndarray  # bool
    flow: np.ndarray  # int64
    keys: list[bytes]
    seq: np.ndarray  # int64
    ack: np.ndarray  # int64
    flags: np.ndarray  # int64
    pstart: np.ndarray  # int64
    pend: np.ndarray  # int64


#: Link type -> (mode, offset of the IP header, offset of the ethertype): how
#: the link header says what follows: an ethertype (``ether``), an address
#: family in the writer's or network byte order (``family``: BSD NULL/LOOP),
#: or nothing but the IP version (``version``: raw IP).
LINK_MODES: dict[int, tuple[int, int, int]] = {
    LINKTYPE_ETHERNET: (0, 14, 12), LINKTYPE_LINUX_SLL: (0, 16, 14),
    LINKTYPE_LINUX_SLL2: (0, 20, 0), LINKTYPE_NULL: (1, 4, 0), LINKTYPE_LOOP: (1, 4, 0),
    LINKTYPE_RAW: (2, 0, 0), LINKTYPE_IPV4: (2, 0, 0), LINKTYPE_IPV6: (2, 0, 0),
    **{t: (2, 0, 0) for t in LINKTYPE_RAW_ALIASES},
}
MODE_ETHER, MODE_FAMILY, MODE_VERSION = 0, 1, 2

#: What :func:`headers` gives: per packet, whether it is simple, whether it
#: is IPv6, its sequence and acknowledgement numbers, TCP flags, and where
#: its TCP payload starts and ends in the buffer.
Headers = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                np.ndarray]


def decode_batch(linktype: int, buf: bytes, starts: list[int], caplens: list[int]
                 ) -> DecodedBatch | None:
    """Decode the packets ``buf[starts[i]:starts[i] + caplens[i]]``.

    Returns:
        A :class:`DecodedBatch`, or None when the link type is not one this
        path reads (every packet then goes the per-packet way).
    """
    link = LINK_MODES.get(linktype)
    if link is None:
        return None
    mode, off, etype_at = link
    st = np.asarray(starts, np.int64)
    cl = np.asarray(caplens, np.int64)
    if mode == MODE_ETHER:
        st, cl = opened(buf, st, cl)
    simple, v6, seq, ack, flags, pstart, pend = headers(buf, st, cl, mode, off, etype_at)
    a = np.frombuffer(buf, np.uint8)
    idx = np.flatnonzero(simple)
    flow = np.full(len(st), -1, np.int64)
    keys: list[bytes] = []
    for is_v6, width in ((False, 12), (True, 36)):
        sel = idx[v6[idx] == is_v6]
        if not len(sel):
            continue
        # src + dst addresses, then the two port fields straight from TCP
        addr = st[sel] + off + (8 if is_v6 else 12)
        tcp = st[sel] + off + (40 if is_v6 else 20)
        cols = np.concatenate((addr[:, None] + np.arange(width - 4),
                               tcp[:, None] + np.arange(4)), axis=1)
        raw = np.ascontiguousarray(a[cols])
        uniq, inverse = flow_keys(raw)
        flow[sel] = inverse + len(keys)
        keys += [u.tobytes() for u in uniq]
    return DecodedBatch(simple, flow, keys, seq, ack, flags, pstart, pend)


#: Ethernet, IPv4 without options, UDP and VXLAN's (or GENEVE's fixed) header.
_TUNNEL_HEAD = 14 + 20 + 8 + 8


def opened(buf: bytes, st: np.ndarray, cl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each Ethernet frame ``buf[st[i]:st[i] + cl[i]]`` that carries, over IPv4
    without options, a VXLAN or GENEVE tunnel (cloud traffic mirroring, see
    :mod:`wspcap.decode.packet`) as the Ethernet frame inside it: its start
    and length moved past the tunnel's headers, the others as they are. The
    block path then reads the inner frames like any captured frame (other
    tunnels, nested ones included, go the per-packet way)."""
    a = np.frombuffer(buf, np.uint8)
    last = len(a) - 1

    def at(rel: int) -> np.ndarray:
        out: np.ndarray = a[np.minimum(st + rel, last)].astype(np.int64)
        return out

    udp = at(23) == 17  # (the cheap look first: most blocks have no UDP)
    if not udp.any():
        return st, cl
    udp &= ((cl >= _TUNNEL_HEAD + 14) & (at(12) == 0x08) & (at(13) == 0) & (at(14) == 0x45)
            & (((at(20) & 0x3F) | at(21)) == 0))
    port = (at(36) << 8) | at(37)
    flags = at(42)
    vxlan = udp & (port == 4789) & ((flags & 0x08) != 0)
    geneve = udp & (port == 6081) & ((flags >> 6) == 0) & (((at(44) << 8) | at(45)) == 0x6558)
    if not (vxlan.any() or geneve.any()):
        return st, cl
    shift = np.where(vxlan, _TUNNEL_HEAD, np.where(geneve, _TUNNEL_HEAD + (flags & 0x3F) * 4, 0))
    shift = np.where(shift < cl, shift, 0)
    return st + shift, cl - shift


#: Odd 64-bit multipliers that spread a key's words over a hash (Fibonacci
#: hashing's golden ratio, and xxHash's second prime).
_SPREAD = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F))


def flow_keys(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``raw`` (one key of 12 or 36 bytes per packet,
    a multiple of 4), sorted by their bytes, and each packet's row among
    them: what ``np.unique(..., return_inverse=True)`` gives on the rows as
    byte strings, grouped by a 64-bit hash of each key rather than by
    sorting the keys themselves (half the time). The hash's groups are
    checked against the keys; should two keys share a hash, the keys are
    sorted after all."""
    keys = raw.view(f"V{raw.shape[1]}").ravel()
    words = raw.view("<u4").astype(np.uint64)
    h = np.zeros(len(words), np.uint64)
    for i in range(words.shape[1]):
        h = (h ^ words[:, i]) * _SPREAD[i & 1]
    _hashes, first, inverse = np.unique(h, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    uniq = keys[first]
    if not np.array_equal(uniq[inverse], keys):  # two keys with one hash
        uniq, inverse = np.unique(keys, return_inverse=True)
        return uniq, inverse.ravel()
    # In the keys' own order, as np.unique on them.
    order = np.argsort(uniq, kind="stable")
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return uniq[order], rank[inverse]


def headers(buf: bytes, st: np.ndarray, cl: np.ndarray, mode: int, off: int, etype_at: int
            ) -> Headers:
    """The header fields of every packet (see :data:`Headers`):
    :func:`py_headers`, or its compiled mirror where that is built."""
    if _kernel is None or not len(st):
        return py_headers(buf, st, cl, mode, off, etype_at)
    out = _kernel.headers(buf, st, cl, mode, off, etype_at, AF_INET, AF_INET6)
    return (np.frombuffer(out[0], np.bool_), np.frombuffer(out[1], np.bool_),
            *(np.frombuffer(o, np.int64) for o in out[2:]))  # type: ignore[return-value]


def py_headers(buf: bytes, st: np.ndarray, cl: np.ndarray, mode: int, off: int, etype_at: int
               ) -> Headers:
    """:func:`headers` with whole-array NumPy gathers (the reference of its
    compiled mirror). A read past a packet's end reads the byte at the
    smaller of that place and the buffer's last byte; the length checks that
    make a packet simple never let such a value through."""
    a = np.frombuffer(buf, np.uint8)
    last = len(a) - 1

    def at(rel: np.ndarray | int) -> np.ndarray:
        out: np.ndarray = a[np.minimum(st + rel, last)].astype(np.int64)
        return out

    def u16(rel: np.ndarray | int) -> np.ndarray:
        out: np.ndarray = (at(rel) << 8) | at(rel + 1)
        return out

    def u32(rel: np.ndarray | int) -> np.ndarray:
        out: np.ndarray = (u16(rel) << 16) | u16(rel + 2)
        return out

    if mode == MODE_ETHER:
        etype = u16(etype_at)
    elif mode == MODE_FAMILY:
        # NULL is in the writer's byte order, LOOP in network order (as link_payload).
        big = u32(0)
        little = at(0) | (at(1) << 8) | (at(2) << 16) | (at(3) << 24)
        family = np.where(little > 0xFFFF, big, little)
        etype = np.where(family == AF_INET, ETH_IPV4,
                         np.where(np.isin(family, AF_INET6), ETH_IPV6, -1))
    else:
        version = at(0) >> 4
        etype = np.where(version == 4, ETH_IPV4, np.where(version == 6, ETH_IPV6, -1))
    enough = cl >= off + 40  # the fixed IP header and a TCP header, at least

    # IPv4 without options: total length, fragment bits, protocol at fixed places.
    total = u16(off + 2)
    v4 = (enough & (etype == ETH_IPV4) & (at(off) == 0x45) & (at(off + 9) == IPPROTO_TCP)
          & ((u16(off + 6) & 0x3FFF) == 0))
    v4_end = np.where(total > 0, off + total, cl)
    # IPv6 with TCP as the next header.
    plen = u16(off + 4)
    v6 = enough & (etype == ETH_IPV6) & (at(off + 6) == IPPROTO_TCP)
    v6_end = np.where(plen > 0, off + 40 + plen, cl)
    v6 &= v6_end >= off + 60

    tcp = np.where(v6, off + 40, off + 20)
    end = np.where(v6, v6_end, v4_end)
    doff = at(tcp + 12)
    start = tcp + ((doff >> 4) << 2)
    simple = (v4 | v6) & (doff >= 0x50) & (start <= end) & (cl >= end)
    return simple, v6, u32(tcp + 4), u32(tcp + 8), at(tcp + 13), st + start, st + end


_kernel: ModuleType | None = None
if SPEEDUPS:
    try:
        from wspcap.decode import _speedups as _kernel
    except ImportError:  # not built: the NumPy reference
        pass
