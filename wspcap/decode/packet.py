"""From a link-layer frame to a TCP segment, fast.

Design note
-----------
This is the per-packet hot path. Building full dpkt objects for
Ethernet/IP/TCP costs about 12 us a packet (2.5 s on a 200,560-packet capture);
the common case, Ethernet or cooked or raw framing around IPv4 or IPv6 without
extension headers, is decoded here with precompiled structs and direct slicing
instead. Rare cases go the slow, general way: IPv6 extension headers through
dpkt's ``ip6`` module, imported when the first such packet comes (dpkt's
package imports every protocol module: 30 ms that most captures need not pay).

Tunnels are opened on the way, up to MAX_NESTING deep: traffic mirrored from
a cloud network comes in VXLAN (UDP port 4789: AWS VPC Traffic Mirroring,
Azure virtual network TAP) or GENEVE (UDP port 6081), from a switch's
remote SPAN in GRE with ERSPAN type II or III, and routed traffic in GRE,
IPv4-in-IP or IPv6-in-IP. A tunneled segment is read as if captured inside
the tunnel: its connection is that of its inner addresses and ports (two
tenants of one VXLAN using the same private addresses would share a flow).

A segment is returned as a plain tuple (see :data:`Segment`) because a
NamedTuple or dataclass per packet is measurable at this rate.

Flow keys are the bytes ``src_ip + dst_ip + src_port + dst_port`` (the port
bytes straight from the TCP header), so one dict lookup finds a connection.
"""

from __future__ import annotations

import struct
from typing import Final

from wspcap.decode.link import ETH_IPV4, ETH_IPV6, link_payload
from wspcap.sources.linktypes import LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6

__all__ = [
    "FRAGMENT",
    "TCP_ACK",
    "TCP_FIN",
    "TCP_PSH",
    "TCP_RST",
    "TCP_SYN",
    "PacketDecoder",
    "Segment",
]

# TCP flags (RFC 9293 section 3.1)
TCP_FIN: Final = 0x01
TCP_SYN: Final = 0x02
TCP_RST: Final = 0x04
TCP_PSH: Final = 0x08
TCP_ACK: Final = 0x10

IPPROTO_TCP: Final = 6
IPPROTO_UDP: Final = 17
IPPROTO_GRE: Final = 47
IPPROTO_IPIP: Final = 4
IPPROTO_IPV6: Final = 41
#: UDP ports of the tunnels opened: VXLAN (RFC 7348) and GENEVE (RFC 8926).
VXLAN_PORT: Final = 4789
GENEVE_PORT: Final = 6081
#: GRE protocol types (RFC 2784, RFC 1701): transparent Ethernet bridging,
#: ERSPAN type II and type III.
GRE_ETHERNET: Final = 0x6558
GRE_ERSPAN_2: Final = 0x88BE
GRE_ERSPAN_3: Final = 0x22EB
#: Tunnels opened inside one another at most (a packet deeper is not read).
MAX_NESTING = 4
#: IP protocols that may carry a tunnel, and the UDP destination ports of
#: those in UDP, as bytes (most UDP is not a tunnel: QUIC, DNS; one look).
_TUNNELED = frozenset((IPPROTO_UDP, IPPROTO_GRE, IPPROTO_IPIP, IPPROTO_IPV6))
_TUNNEL_PORTS = (VXLAN_PORT.to_bytes(2, "big"), GENEVE_PORT.to_bytes(2, "big"))
#: IPv6 extension headers that may stand between the fixed header and TCP.
IPV6_EXTENSIONS: Final = frozenset((0, 43, 44, 50, 51, 60, 135, 139, 140))

#: A decoded TCP segment:
#: ``(key, src, dst, sport, dport, seq, ack, flags, payload, missing)`` where
#: ``key`` identifies the direction's flow, ``src``/``dst`` are packed IP
#: addresses (4 or 16 bytes), ``payload`` the captured TCP payload and
#: ``missing`` how many payload bytes the snap length cut off.
Segment = tuple[bytes, bytes, bytes, int, int, int, int, int, bytes, int]

#: Returned for IP fragments, which are counted and flagged, not reassembled.
FRAGMENT: Final = "fragment"

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
#: IPv4 without options followed by TCP, read in one go: total length, flags
#: and fragment offset, protocol, then TCP's seq, ack, data offset, flags.
_IPV4_TCP = struct.Struct("!2xH2xHxB2x8x4xIIBB")
_TCP = struct.Struct("!HHIIBB")


class PacketDecoder:
    """Decode captured frames into TCP segments.

    Sans-I/O: performs no I/O. Counters say what was passed over.

    Attributes:
        not_tcp: packets that were not TCP over IPv4/IPv6 (ARP, UDP, ...).
        malformed: packets whose headers were cut or inconsistent.
        fragments: IP fragments seen.
    """

    def __init__(self) -> None:
        self.not_tcp = 0
        self.malformed = 0
        self.fragments = 0
        self._nesting = 0

    def decode(self, linktype: int, data: bytes, at: int = 0, caplen: int = -1
               ) -> Segment | str | None:
        """Decode one captured frame.

        Args:
            linktype: the LINKTYPE_* value of the packet's interface.
            data: the captured bytes, or a buffer holding them (a block of a
                capture file): they are read in place, and only the payload
                is copied out.
            at: where the frame starts in ``data``.
            caplen: its captured length (-1: to the end of ``data``).

        Returns:
            A :data:`Segment`, :data:`FRAGMENT`, or ``None`` for anything that
            is not a TCP segment we can read.
        """
        cap = len(data) if caplen < 0 else at + caplen
        if linktype == LINKTYPE_ETHERNET and cap - at >= 14 and data[at + 12] == 8 and \
                data[at + 13] == 0:
            etype, off = ETH_IPV4, at + 14
        else:
            # (a link header is short: 256 bytes hold every one, tags and all)
            etype, off = link_payload(linktype, data[at:min(cap, at + 256)])
            off += at
        if etype == ETH_IPV4:
            if cap >= off + 40 and data[off] == 0x45:
                # Fast path: IPv4 without options, one unpack for IP and TCP.
                total, frag, proto, seq, ack, doff, flags = _IPV4_TCP.unpack_from(data, off)
                if proto == IPPROTO_TCP and not frag & 0x3FFF:
                    t = off + 20
                    start = t + ((doff >> 4) << 2)
                    end = off + total if total else cap
                    if doff >= 0x50 and start <= end and cap >= end:
                        return (data[off + 12:off + 20] + data[t:t + 4],
                                data[off + 12:off + 16], data[off + 16:off + 20],
                                (data[t] << 8) | data[t + 1], (data[t + 2] << 8) | data[t + 3],
                                seq, ack, flags, data[start:end], 0)
            return self._ipv4(data, off, cap)
        if etype == ETH_IPV6:
            return self._ipv6(data, off, cap)
        self.not_tcp += 1
        return None

    def _ipv4(self, data: bytes, off: int, cap: int) -> Segment | str | None:
        if cap < off + 20:
            self.malformed += 1
            return None
        vhl, _tos, total, _ident, frag, _ttl, proto, _sum, src, dst = _IPV4.unpack_from(data, off)
        ihl = (vhl & 0x0F) * 4
        if vhl >> 4 != 4 or ihl < 20:
            self.malformed += 1
            return None
        if proto != IPPROTO_TCP:
            if frag & 0x3FFF or not _may_tunnel(proto, data, off + ihl):
                self.not_tcp += 1
                return None
            return self._tunnel(proto, data, off + ihl, min(off + total if total else cap, cap))
        if frag & 0x3FFF:  # MF set or offset non-zero
            self.fragments += 1
            return FRAGMENT
        # total == 0 happens with TCP segmentation offload: trust the capture.
        end = off + total if total else cap
        return self._tcp(data, off + ihl, end, src, dst, cap)

    def _ipv6(self, data: bytes, off: int, cap: int) -> Segment | str | None:
        if cap < off + 40:
            self.malformed += 1
            return None
        plen = (data[off + 4] << 8) | data[off + 5]
        nxt = data[off + 6]
        src = data[off + 8:off + 24]
        dst = data[off + 24:off + 40]
        end = off + 40 + plen if plen else cap  # plen 0: jumbogram or TSO
        if nxt == IPPROTO_TCP:
            return self._tcp(data, off + 40, end, src, dst, cap)
        if nxt not in IPV6_EXTENSIONS:
            if not _may_tunnel(nxt, data, off + 40):
                self.not_tcp += 1
                return None
            return self._tunnel(nxt, data, off + 40, min(end, cap))
        import dpkt  # (the first time only: see the module's note)

        try:  # the slow, general way for extension headers
            ip6 = dpkt.ip6.IP6(data[off:min(end, cap)])
        except (dpkt.UnpackError, struct.error, IndexError, ValueError):
            self.malformed += 1
            return None
        if 44 in getattr(ip6, "extension_hdrs", {}) and ip6.extension_hdrs[44] is not None:
            self.fragments += 1
            return FRAGMENT
        if getattr(ip6, "p", None) != IPPROTO_TCP:  # no ``p`` when ESP ends the chain
            self.not_tcp += 1
            return None
        tcp_bytes = bytes(ip6.data) if not isinstance(ip6.data, bytes) else ip6.data
        start = end - len(tcp_bytes) if len(tcp_bytes) <= end - off else off + 40
        return self._tcp(data, start, end, src, dst, cap)

    def _tunnel(self, proto: int, data: bytes, off: int, end: int) -> Segment | str | None:
        """The packet inside a tunnel whose outer IP payload (protocol
        ``proto``) is ``data[off:end]`` (:func:`_may_tunnel`); None when it is
        no tunnel we open."""
        inner = _inner(proto, data, off, end) if self._nesting < MAX_NESTING else None
        if inner is None:
            self.not_tcp += 1
            return None
        linktype, at = inner
        if at >= end:
            self.malformed += 1
            return None
        self._nesting += 1
        try:
            return self.decode(linktype, data, at, end - at)
        finally:
            self._nesting -= 1

    def _tcp(self, data: bytes, off: int, end: int, src: bytes, dst: bytes, cap: int
             ) -> Segment | None:
        if cap < off + 20 or end < off + 20:
            self.malformed += 1
            return None
        sport, dport, seq, ack, doff, flags = _TCP.unpack_from(data, off)
        hlen = (doff >> 4) * 4
        start = off + hlen
        if hlen < 20 or start > end:
            self.malformed += 1
            return None
        captured = cap
        if captured >= end:
            payload = data[start:end]
            missing = 0
        else:
            payload = data[start:captured] if captured > start else b""
            missing = end - max(captured, start)
        key = src + dst + data[off:off + 4]
        return key, src, dst, sport, dport, seq, ack, flags, payload, missing


def _may_tunnel(proto: int, data: bytes, off: int) -> bool:
    """Whether an IP payload of protocol ``proto`` at ``off`` may be a tunnel
    we open: the one look most packets that are not TCP get (QUIC, DNS)."""
    return proto in _TUNNELED and (proto != IPPROTO_UDP
                                   or data[off + 2:off + 4] in _TUNNEL_PORTS)


def _inner(proto: int, data: bytes, off: int, end: int) -> tuple[int, int] | None:
    """``(linktype, offset)`` of the frame a tunnel's outer IP payload (protocol
    ``proto``, ``data[off:end]``) carries, or None."""
    if proto == IPPROTO_IPIP:
        return LINKTYPE_IPV4, off
    if proto == IPPROTO_IPV6:
        return LINKTYPE_IPV6, off
    if proto == IPPROTO_UDP:
        if end < off + 16:
            return None
        port = (data[off + 2] << 8) | data[off + 3]
        if port == VXLAN_PORT and data[off + 8] & 0x08:  # RFC 7348: the I flag
            return LINKTYPE_ETHERNET, off + 16
        if port == GENEVE_PORT and data[off + 8] >> 6 == 0 and \
                (data[off + 10] << 8) | data[off + 11] == GRE_ETHERNET:  # RFC 8926 section 3.4
            return LINKTYPE_ETHERNET, off + 16 + (data[off + 8] & 0x3F) * 4
        return None
    if proto == IPPROTO_GRE:
        if end < off + 4 or data[off + 1] & 0x07:  # version 0 only (1: PPTP's enhanced GRE)
            return None
        flags = data[off]
        ptype = (data[off + 2] << 8) | data[off + 3]
        # RFC 2784 and 2890: checksum (and reserved), key, sequence number, 4 bytes each.
        at = off + 4 + 4 * ((flags >> 7) + ((flags >> 5) & 1) + ((flags >> 4) & 1))
        if ptype == ETH_IPV4:
            return LINKTYPE_IPV4, at
        if ptype == ETH_IPV6:
            return LINKTYPE_IPV6, at
        if ptype == GRE_ETHERNET:
            return LINKTYPE_ETHERNET, at
        if ptype == GRE_ERSPAN_2:  # an 8-byte header; none without a sequence number (type I)
            return LINKTYPE_ETHERNET, at + 8 if flags & 0x10 else at
        if ptype == GRE_ERSPAN_3 and end >= at + 12:  # 12 bytes, then 8 more where O is set
            return LINKTYPE_ETHERNET, at + 12 + (8 if data[at + 11] & 0x01 else 0)
    return None
