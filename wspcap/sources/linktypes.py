"""Link-layer header types: the numbers capture files give their packets'
first header (tcpdump.org's LINKTYPE registry), declared once for the
readers, the live sources and the decoders."""

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_LOOP",
    "LINKTYPE_NAMES",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "LINKTYPE_RAW_ALIASES",
]

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
#: OpenBSD and some old files write raw IP as 12 or 14.
LINKTYPE_RAW_ALIASES = (12, 14)

LINKTYPE_NAMES = {
    LINKTYPE_NULL: "BSD loopback", LINKTYPE_ETHERNET: "Ethernet", LINKTYPE_RAW: "raw IP",
    LINKTYPE_LOOP: "OpenBSD loopback", LINKTYPE_LINUX_SLL: "Linux cooked v1",
    LINKTYPE_IPV4: "raw IPv4", LINKTYPE_IPV6: "raw IPv6", LINKTYPE_LINUX_SLL2: "Linux cooked v2",
}
