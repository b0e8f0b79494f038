"""Link-layer headers: where the network-layer packet starts.

Link types are the LINKTYPE_* values that capture files carry (tcpdump.org's
list), not the platform's DLT_* values, which differ on some BSDs for raw IP.
"""

from __future__ import annotations

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

__all__ = ["ETH_IPV4", "ETH_IPV6", "ETH_VLAN_TAGS", "link_payload"]

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_VLAN_TAGS = (0x8100, 0x88A8, 0x9100)

#: Address family values for IPv6 in BSD loopback headers (Linux, FreeBSD,
#: Darwin, OpenBSD/NetBSD all differ); IPv4 is 2 everywhere.
AF_INET = 2
AF_INET6 = (10, 24, 28, 30)


def link_payload(linktype: int, data: bytes) -> tuple[int, int]:
    """Find the network-layer packet inside a link-layer frame.

    Args:
        linktype: the capture's LINKTYPE_* value for this packet.
        data: the captured bytes.

    Returns:
        ``(ethertype, offset)``: ``ETH_IPV4`` or ``ETH_IPV6`` (or another
        ethertype, or -1 when unknown) and where that packet starts.
    """
    n = len(data)
    if linktype == LINKTYPE_ETHERNET:
        if n < 14:
            return -1, 0
        etype = (data[12] << 8) | data[13]
        off = 14
        while etype in ETH_VLAN_TAGS and off + 4 <= n:  # 802.1Q / QinQ tags
            etype = (data[off + 2] << 8) | data[off + 3]
            off += 4
        return etype, off
    if linktype == LINKTYPE_LINUX_SLL:
        if n < 16:
            return -1, 0
        return (data[14] << 8) | data[15], 16
    if linktype == LINKTYPE_LINUX_SLL2:
        if n < 20:
            return -1, 0
        return (data[0] << 8) | data[1], 20
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if n < 4:
            return -1, 0
        # NULL is in the writer's byte order, LOOP in network order: try both.
        family = int.from_bytes(data[:4], "little")
        if family > 0xFFFF:
            family = int.from_bytes(data[:4], "big")
        if family == AF_INET:
            return ETH_IPV4, 4
        if family in AF_INET6:
            return ETH_IPV6, 4
        return -1, 4
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6) or linktype in LINKTYPE_RAW_ALIASES:
        if not n:
            return -1, 0
        version = data[0] >> 4
        return (ETH_IPV4 if version == 4 else ETH_IPV6 if version == 6 else -1), 0
    return -1, 0
