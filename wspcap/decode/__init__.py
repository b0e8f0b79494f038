"""Link, IP and TCP header decoding: from a captured packet to a TCP segment.

Fail-soft like dpkt's upper layers: a packet that is not TCP, or whose headers
are cut, decodes to ``None`` and is counted, never raised.
"""

from wspcap.decode.packet import (
    FRAGMENT,
    TCP_ACK,
    TCP_FIN,
    TCP_PSH,
    TCP_RST,
    TCP_SYN,
    PacketDecoder,
    Segment,
)

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
