"""A WebSocket frame builder for the tests, written from RFC 6455 alone.

It shares no code with :mod:`wspcap.ws` on purpose: frames built here are
the independent side of a comparison. Only what the tests need is here.

RFC 6455 section 5.2::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-------+-+-------------+-------------------------------+
    |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
    |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
    |N|V|V|V|       |S|             |   (if payload len==126/127)   |
    | |1|2|3|       |K|             |                               |
    +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
    |     Extended payload length continued, if payload len == 127  |
    + - - - - - - - - - - - - - - - +-------------------------------+
    |                               |Masking-key, if MASK set to 1  |
    +-------------------------------+-------------------------------+
"""

from __future__ import annotations

import base64
import hashlib

__all__ = [
    "BINARY",
    "CLOSE",
    "CONT",
    "PING",
    "PONG",
    "RFC_ACCEPT",
    "RFC_KEY",
    "TEXT",
    "accept_for",
    "close_payload",
    "frame",
]

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

#: RFC 6455 section 1.3's worked example: this key gives this accept value.
RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0,
          mask: bytes | None = None, width: int | None = None) -> bytes:
    """One frame on the wire.

    Args:
        opcode: the 4-bit opcode.
        payload: the application payload (unmasked).
        fin: the FIN bit.
        rsv: RSV1..3 as a 3-bit number (4 = RSV1).
        mask: a 4-byte masking key (client frames), or None.
        width: force the length field: 7, 16 or 64 bits (default: the shortest).
    """
    n = len(payload)
    if width is None:
        width = 7 if n <= 125 else 16 if n <= 0xFFFF else 64
    head = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mbit = 0x80 if mask is not None else 0
    if width == 7:
        assert n <= 125
        head.append(mbit | n)
    elif width == 16:
        head.append(mbit | 126)
        head += n.to_bytes(2, "big")
    else:
        head.append(mbit | 127)
        head += n.to_bytes(8, "big")
    if mask is None:
        return bytes(head) + payload
    assert len(mask) == 4
    # Section 5.3: octet i of the masked data is octet i of the payload XOR
    # octet (i MOD 4) of the masking key.
    return bytes(head) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def close_payload(code: int, reason: str = "") -> bytes:
    """Section 5.5.1: a 2-byte status code in network order, then UTF-8 reason."""
    return code.to_bytes(2, "big") + reason.encode("utf-8")


def accept_for(key: str) -> str:
    """Section 4.2.2: base64(SHA-1(key + GUID))."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode()


assert accept_for(RFC_KEY) == RFC_ACCEPT
