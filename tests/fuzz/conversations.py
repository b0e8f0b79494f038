"""Hypothesis strategies for whole conversations.

:func:`conversations` draws a TCP connection with an opening handshake
(plain or permessage-deflate, with awkward parameter and status texts now and
then), random frames both ways (any opcode, FIN, RSV bits, masking, length
width, deflated payloads, declared lengths far past the data), the byte
streams cut into TCP segments at random places (the request's first segment
often 1 to 3 bytes), and segments reordered, duplicated or lost, the 101
now and then before the request, and now and then plain HTTP/1.1 exchanges
before the upgrade on the same connection (bodies by length or in chunks,
their framing drawn right or wrong; a proxy's CONNECT tunnel, granted or not),
and now and then a SOCKS handshake first (right, or with a byte changed). It is built with :mod:`golden.crafted`'s
``Conversation`` and :mod:`golden.rfc6455`'s frame builder, which share no
code with wspcap.
"""

from __future__ import annotations

import zlib
from itertools import pairwise
from pathlib import Path

from golden.crafted import Conversation, request_head, response_head
from golden.rfc6455 import BINARY, CLOSE, CONT, PING, PONG, TEXT, frame
from hypothesis import strategies as st
from scapy.packet import Packet

from .mutations import HUGE64

__all__ = ["Generated", "conversations"]

OPCODES = (TEXT, TEXT, BINARY, BINARY, CONT, CONT, PING, PONG, CLOSE, 0x3, 0xB)
PMD_OFFERS = ("permessage-deflate", "permessage-deflate; client_max_window_bits",
              "permessage-deflate; client_max_window_bits=10",
              "permessage-deflate; client_max_window_bits=\u00b2",
              "permessage-deflate; server_max_window_bits=08",
              "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
              "permessage-deflate; server_max_window_bits=\u0661\u0665")
STATUS_LINES = ("HTTP/1.1 101 Switching Protocols",) * 6 + (
    "HTTP/1.1 1\u00b21 Switching Protocols", "HTTP/1.1 200 OK", "HTTP/1.1 \u0661\u0660\u0661 x",
    "HTTP/1.1 101")


#: What chunked bodies and lengths are drawn from (some right, most not).
_CHUNK_BYTES = b"0123456789abcdefXZ; \r\n\r\n\r\n"


@st.composite
def _plain(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A plain request and its answer, their bodies framed right or wrong."""
    method = draw(st.sampled_from(("GET", "POST", "HEAD", "PUT", "CONNECT")))
    if method == "CONNECT":  # an HTTP proxy's tunnel, granted or not
        return b"CONNECT s:80 HTTP/1.1\r\nHost: s:80\r\n\r\n", draw(st.sampled_from((
            b"HTTP/1.1 200 Connection established\r\n\r\n",
            b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 4\r\n\r\nauth")))
    ask = f"{method} /p HTTP/1.1\r\nHost: s\r\n".encode()
    if method in ("POST", "PUT"):
        body = draw(st.binary(max_size=40))
        ask += b"Content-Length: %d\r\n\r\n" % draw(st.sampled_from(
            (len(body), len(body), len(body) + 1, max(len(body) - 1, 0)))) + body
    else:
        ask += b"\r\n"
    how = draw(st.sampled_from(("length", "chunked", "chunked-drawn", "none", "interim")))
    if how == "length":
        body = draw(st.binary(max_size=60))
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    elif how == "chunked":
        parts = draw(st.lists(st.binary(min_size=1, max_size=30), max_size=3))
        answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"".join(
            b"%x\r\n" % len(p) + p + b"\r\n" for p in parts) + b"0\r\n\r\n"
    elif how == "chunked-drawn":
        text = draw(st.lists(st.sampled_from(_CHUNK_BYTES), max_size=40))
        answer = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + bytes(text)
                  + b"0\r\n\r\n")
    elif how == "none":
        answer = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"
    else:
        answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
    return ask, answer


@st.composite
def _socks(draw: st.DrawFn) -> tuple[bytes, bytes, str]:
    """A SOCKS handshake before everything (the client behind a SOCKS proxy):
    SOCKS 5 with or without username/password, or SOCKS 4; now and then a
    byte of it changed."""
    version = draw(st.sampled_from((5, 5, 4)))
    if version == 5:
        auth = draw(st.booleans())
        client = b"\x05\x02\x00\x02" if auth else b"\x05\x01\x00"
        server = b"\x05\x02" if auth else b"\x05\x00"
        if auth:
            client += b"\x01\x03bob\x07hunter2"
            server += b"\x01\x00"
        client += draw(st.sampled_from((b"\x05\x01\x00\x01\x0a\x00\x00\x02\x00\x50",
                                        b"\x05\x01\x00\x03\x01s\x00\x50")))
        server += b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    else:
        client, server = b"\x04\x01\x00\x50\x0a\x00\x00\x02bob\x00", b"\x00\x5a" + bytes(6)
    note = f"SOCKS {version}"
    if draw(st.integers(0, 3)) == 0:
        d = draw(st.booleans())
        data = bytearray(client if d else server)
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
        client, server = (bytes(data), server) if d else (client, bytes(data))
        note += f", {'client' if d else 'server'} byte {at} changed"
    return client, server, note


class Generated:
    """A drawn conversation: its packets (capture order) and what was drawn."""

    def __init__(self, conv: Conversation, packets: list[Packet], notes: list[str]) -> None:
        self.conv, self.packets, self.notes = conv, packets, notes

    def write(self, path: Path) -> Path:
        """The capture as a pcap file (packets 1 ms apart, in capture order)."""
        self.conv.packets = self.packets
        return self.conv.crafted("generated").write(path)

    def __repr__(self) -> str:  # what hypothesis prints for a failing example
        return "Generated(" + "; ".join(self.notes) + ")"


def _wire(text: str) -> bytes:
    """Header text as bytes: ISO-8859-1 where it can be (so "\u00b2" is one
    byte, as HTTP heads are decoded), UTF-8 otherwise."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode()


def _deflate(payload: bytes) -> bytes:
    """RFC 7692 section 7.2.1: raw deflate, the final empty block's tail cut."""
    comp = zlib.compressobj(wbits=-15)
    data = comp.compress(payload) + comp.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4] if data.endswith(b"\x00\x00\xff\xff") else data


@st.composite
def _frame(draw: st.DrawFn, conv: Conversation, pmd: bool) -> tuple[str, bytes, str]:
    d = draw(st.sampled_from(("c2s", "s2c")))
    opcode = draw(st.sampled_from(OPCODES))
    payload = draw(st.binary(max_size=300) | st.text(max_size=80).map(str.encode))
    fin = draw(st.booleans()) if opcode in (TEXT, BINARY, CONT) else True
    rsv = draw(st.sampled_from((0, 0, 0, 4, 2, 1)))
    if pmd and rsv == 4 and opcode in (TEXT, BINARY) and draw(st.booleans()):
        payload = _deflate(payload)
    masked = (d == "c2s") != draw(st.sampled_from((False, False, False, True)))
    mask = conv.next_mask() if masked else None
    size = len(payload)
    width = draw(st.sampled_from([None, None, 64] + ([16] if size <= 0xFFFF else [])))
    if size > 125 and width is None:
        width = 16
    wire = frame(opcode, payload, fin=fin, rsv=rsv, mask=mask, width=width)
    note = f"{d} op={opcode:#x} fin={fin} rsv={rsv} masked={masked} len={size} width={width}"
    if draw(st.integers(0, 19)) == 0:  # a declared length far past the data
        huge = draw(st.sampled_from(HUGE64))
        body = wire[len(wire) - size:]
        key = wire[len(wire) - size - 4:len(wire) - size] if masked else b""
        wire = (wire[:1] + bytes([(0x80 if masked else 0) | 127]) + huge.to_bytes(8, "big")
                + key + body[:50])
        note += f" declared={huge}"
    return d, wire, note


def _sizes(draw: st.DrawFn, n: int, first: bool = False) -> list[int]:
    """Cut ``n`` bytes into segments (the first one 1-3 bytes if ``first``)."""
    if n <= 1:
        return [n] if n else []
    cuts = set(draw(st.lists(st.integers(1, n - 1), max_size=4)))
    if first and draw(st.booleans()):
        cuts.add(draw(st.integers(1, min(3, n - 1))))
    bounds = [0, *sorted(cuts), n]
    return [b - a for a, b in pairwise(bounds)]


@st.composite
def conversations(draw: st.DrawFn) -> Generated:
    """A whole conversation (see the module's docstring)."""
    conv = Conversation()
    notes: list[str] = []
    conv.open()
    pmd = draw(st.booleans())
    offer = draw(st.sampled_from(PMD_OFFERS)) if pmd else None
    # The heads are built in ASCII, then the drawn (maybe non-ASCII) texts go in.
    ext = ["Sec-WebSocket-Extensions: @"] if offer else []
    request = request_head(extra=ext).replace(b"@", _wire(offer or ""))
    status = draw(st.sampled_from(STATUS_LINES))
    response = response_head(extra=ext).replace(b"@", _wire(offer or ""))
    response = _wire(status) + response[response.index(b"\r\n"):]
    notes.append(f"offer={offer!r} status={status!r}")

    def send(d: str, data: bytes, first: bool = False) -> list[Packet]:
        sizes = _sizes(draw, len(data), first)
        out = []
        pos = 0
        for n in sizes:
            out.append(conv.segment(d, data[pos:pos + n], keep=False))
            pos += n
        notes.append(f"{d} {len(data)} bytes in segments {sizes}")
        return out

    plain = draw(st.lists(_plain(), max_size=2)) if draw(st.integers(0, 3)) == 0 else []
    if plain:
        notes.append(f"{len(plain)} plain exchanges before the upgrade")
    socks_client, socks_server = b"", b""
    if draw(st.integers(0, 5)) == 0:
        socks_client, socks_server, note = draw(_socks())
        notes.append(note)
    req = send("c2s", socks_client + b"".join(ask for ask, _ in plain) + request, first=True)
    resp = send("s2c", socks_server + b"".join(answer for _, answer in plain) + response)
    if draw(st.integers(0, 4)) == 0:
        packets = conv.packets + resp + req
        notes.append("the 101 before the request")
    else:
        packets = conv.packets + req + resp
    conv.packets = []
    for _ in range(draw(st.integers(0, 8))):
        d, wire, note = draw(_frame(conv, pmd))
        notes.append(note)
        packets += send(d, wire)
    end = draw(st.sampled_from(("fin", "fin", "rst", "none")))
    if end == "fin":
        packets += [conv.segment("c2s", flags="FA", keep=False),
                    conv.segment("s2c", flags="FA", keep=False)]
    elif end == "rst":
        packets.append(conv.segment(draw(st.sampled_from(("c2s", "s2c"))), flags="R", keep=False))
    notes.append(f"end={end}")
    # Packet-level disorder: swaps, duplicates, losses.
    n = len(packets)
    for _ in range(draw(st.integers(0, 3))):
        i, j = draw(st.integers(3, n - 1)), draw(st.integers(3, n - 1))
        packets[i], packets[j] = packets[j], packets[i]
        notes.append(f"packets {i + 1} and {j + 1} swapped")
    for _ in range(draw(st.integers(0, 2))):
        i = draw(st.integers(0, len(packets) - 1))
        packets.insert(draw(st.integers(i, len(packets))), packets[i])
        notes.append(f"packet {i + 1} duplicated")
    for _ in range(draw(st.integers(0, 2))):
        if len(packets) > 4:
            i = draw(st.integers(3, len(packets) - 1))
            del packets[i]
            notes.append(f"packet {i + 1} lost")
    return Generated(conv, packets, notes)
