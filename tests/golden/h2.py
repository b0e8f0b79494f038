"""Scapy-built HTTP/2 connections carrying WebSockets (RFC 8441), for the cases
real peers do not show on demand.

Frames are serialised by hyperframe and header blocks encoded by hpack (the
HTTP/2 libraries h2 is built on), WebSocket frames by :mod:`golden.rfc6455`,
TCP by :class:`golden.crafted.Conversation`; nothing comes from wspcap.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    HeadersFrame,
    RstStreamFrame,
    SettingsFrame,
)

from golden.crafted import TYPES, Conversation, Crafted
from golden.rfc6455 import BINARY, CLOSE, TEXT, close_payload

__all__ = ["PAGE", "PREFACE", "H2Conversation", "sizes", "two_streams"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PAGE = b"<html>" + b"page " * 700 + b"</html>"


class H2Conversation:
    """One HTTP/2 connection over a crafted TCP connection (cleartext, prior
    knowledge), its WebSockets' messages recorded per stream."""

    def __init__(self, port: int = 8080) -> None:
        self.conv = Conversation(server=("10.0.0.2", port))
        self.encoders = {"c2s": Encoder(), "s2c": Encoder()}
        #: stream -> direction -> [(type, payload)] of the WebSocket messages sent.
        self.sent: dict[int, dict[str, list[tuple[str, bytes]]]] = {}

    def start(self) -> None:
        """TCP handshake, the client's preface and both SETTINGS."""
        self.conv.open()
        settings = SettingsFrame(0, settings={SettingsFrame.HEADER_TABLE_SIZE: 8192})
        self.conv.send("c2s", PREFACE + settings.serialize())
        server = SettingsFrame(0, settings={SettingsFrame.ENABLE_CONNECT_PROTOCOL: 1})
        self.conv.send("s2c", server.serialize() + SettingsFrame(0, flags=["ACK"]).serialize())

    def header_block(self, d: str, stream: int, fields: list[tuple[str, str]], *,
                     end_stream: bool = False, pieces: int = 1) -> bytes:
        """HEADERS (and ``pieces - 1`` CONTINUATIONs) for ``fields``."""
        block = self.encoders[d].encode(fields)
        cut = max(1, len(block) // pieces)
        parts = [block[i:i + cut] for i in range(0, len(block), cut)] or [b""]
        out = b""
        for n, part in enumerate(parts):
            last = n == len(parts) - 1
            flags = (["END_HEADERS"] if last else []) + (
                ["END_STREAM"] if end_stream and n == 0 else [])
            frame: Frame = (HeadersFrame(stream, part, flags=flags) if n == 0 else
                            ContinuationFrame(stream, part, flags=flags))
            out += frame.serialize()
        return out

    def connect(self, stream: int, path: str = "/chat", *, protocols: str | None = None,
                extra: Iterable[tuple[str, str]] = (), pieces: int = 1) -> bytes:
        """An extended CONNECT request's bytes (RFC 8441 section 5.1's example)."""
        fields = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                  (":path", path), (":authority", "server.example.com"),
                  ("sec-websocket-version", "13"), ("origin", "http://server.example.com")]
        if protocols:
            fields.append(("sec-websocket-protocol", protocols))
        fields += list(extra)
        self.sent.setdefault(stream, {"c2s": [], "s2c": []})
        return self.header_block("c2s", stream, fields, pieces=pieces)

    def answer(self, stream: int, status: int = 200, *, protocol: str | None = None,
               end_stream: bool = False) -> bytes:
        fields = [(":status", str(status))]
        if protocol:
            fields.append(("sec-websocket-protocol", protocol))
        return self.header_block("s2c", stream, fields, end_stream=end_stream)

    def data(self, stream: int, payload: bytes, *, end_stream: bool = False,
             padding: int = 0) -> bytes:
        flags = ["END_STREAM"] if end_stream else []
        if padding:
            flags.append("PADDED")
        frame = DataFrame(stream, payload, flags=flags)
        frame.pad_length = padding
        return frame.serialize()

    def message(self, d: str, stream: int, opcode: int, payload: bytes,
                fragments: list[int] | None = None) -> bytes:
        """A WebSocket message's frames (masked from the client), recorded."""
        wire = self.conv.message(d, opcode, payload, fragments=fragments, record=False)
        self.sent[stream][d].append((TYPES[opcode], payload))
        return wire

    def reset(self, stream: int, code: int = 8) -> bytes:
        return RstStreamFrame(stream, error_code=code).serialize()

    def crafted(self, name: str) -> Crafted:
        return self.conv.crafted(name)


def sizes(total: int, cuts: list[int] | None) -> list[int] | None:
    """Segment sizes for ``total`` bytes from ``cuts`` (repeated), or None (one)."""
    if not cuts:
        return None
    out: list[int] = []
    while sum(out) < total:
        out.append(cuts[len(out) % len(cuts)])
    out[-1] -= sum(out) - total
    return out


def two_streams(cuts: list[int] | None = None) -> H2Conversation:
    """A page (stream 1) and two WebSockets (streams 3 and 5), interleaved; the
    client's WebSocket DATA cut into segments of ``cuts`` bytes (repeated)."""
    h2 = H2Conversation()
    h2.start()
    conv = h2.conv
    c2s = h2.header_block("c2s", 1, [(":method", "GET"), (":scheme", "http"), (":path", "/"),
                                     (":authority", "server.example.com")], end_stream=True)
    c2s += h2.connect(3, "/chat?room=1", pieces=3)
    conv.send("c2s", c2s)
    conv.send("s2c", h2.header_block("s2c", 1, [(":status", "200")])
              + h2.data(1, PAGE[:2000]) + h2.answer(3) + h2.data(1, PAGE[2000:], end_stream=True))
    # (a padded DATA frame; a fragmented message over two DATA frames)
    wire = h2.data(3, h2.message("c2s", 3, TEXT, b"hello over h2"), padding=7)
    split = h2.message("c2s", 3, BINARY, bytes(range(256)) * 20, fragments=[1000, 4120])
    wire += h2.data(3, split[:700]) + h2.data(3, split[700:])
    conv.send("c2s", wire, sizes(len(wire), cuts))
    conv.send("s2c", h2.data(3, h2.message("s2c", 3, TEXT, b"echo: hello over h2")))
    conv.send("c2s", h2.connect(5, "/feed", protocols="chat, superchat"))
    conv.send("s2c", h2.answer(5, protocol="chat")
              + h2.data(5, h2.message("s2c", 5, TEXT, "bienvenue ✓".encode())))
    conv.send("c2s", h2.data(5, h2.message("c2s", 5, TEXT, b"subscribe prices")))
    for stream in (3, 5):
        for d in ("c2s", "s2c"):
            conv.send(d, h2.data(stream, h2.message(d, stream, CLOSE, close_payload(1000, "bye")),
                                 end_stream=True))
    conv.close()
    return h2


def main() -> int:
    """Write the golden copy (a seed of the fuzzing corpus) next to this file."""
    out = Path(__file__).resolve().parent / "h2_two_streams.pcap"
    two_streams().crafted("h2_two_streams").write(out)
    print(out.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
