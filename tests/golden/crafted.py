"""Scapy-built captures for cases that real captures do not show.

Each scenario builds a small WebSocket conversation packet by packet, with
frames from :mod:`golden.rfc6455` (not from wspcap), and records what each
side sent, so a test can compare wspcap's tables with it. Packet timestamps
and addresses are fixed, so the files are identical on every run.

Regenerate the golden copies kept next to this file (nobody edits them by
hand; ``tests/test_crafted.py`` checks they are up to date)::

    python tests/golden/crafted.py            # into tests/golden/
    python tests/golden/crafted.py --out DIR
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from golden.rfc6455 import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    RFC_ACCEPT,
    RFC_KEY,
    TEXT,
    close_payload,
    frame,
)

__all__ = ["SCENARIOS", "Conversation", "Crafted", "build", "write_all"]

T0 = 1_700_000_000  #: first packet's timestamp (seconds)
SEQ_MOD = 1 << 32
MAC = {"c2s": ("02:00:00:00:00:01", "02:00:00:00:00:02"),
       "s2c": ("02:00:00:00:00:02", "02:00:00:00:00:01")}
TYPES = {TEXT: "text", BINARY: "binary", CLOSE: "close", PING: "ping", PONG: "pong"}
OTHER = {"c2s": "s2c", "s2c": "c2s"}


def request_head(path: str = "/chat", host: str = "server.example.com",
                 key: str = RFC_KEY, extra: Iterable[str] = ()) -> bytes:
    """An RFC 6455 section 4.1 opening handshake (section 1.3's example key)."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
             "Sec-WebSocket-Version: 13", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def response_head(status: int = 101, reason: str = "Switching Protocols",
                  accept: str | None = RFC_ACCEPT, extra: Iterable[str] = ()) -> bytes:
    """The server's answer; a 101 carries the accept value for the key."""
    lines = [f"HTTP/1.1 {status} {reason}"]
    if status == 101:
        lines += ["Upgrade: websocket", "Connection: Upgrade"]
        if accept is not None:
            lines.append(f"Sec-WebSocket-Accept: {accept}")
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


@dataclass
class Crafted:
    """A crafted capture and what was sent in it.

    Attributes:
        name: the scenario.
        packets: scapy packets (with ``time``) in capture order.
        sent: per direction, every message as ``(type, payload)`` in send order.
        client, server: ``(ip, port)`` of each end.
        snaplen: the snap length written in the file header.
        notes: scenario facts a test needs (sizes of lost bytes and the like).
    """

    name: str
    packets: list[Packet]
    sent: dict[str, list[tuple[str, bytes]]]
    client: tuple[str, int]
    server: tuple[str, int]
    snaplen: int = 65535
    notes: dict[str, Any] = field(default_factory=dict)

    def write(self, path: Path | str) -> Path:
        """Write the capture as a classic pcap file."""
        wrpcap(str(path), self.packets, snaplen=self.snaplen)
        return Path(path)


class Conversation:
    """One TCP connection, built segment by segment.

    Sequence numbers are tracked per direction; ``segment`` builds the next
    segment (or one at an explicit sequence number), ``send`` cuts bytes into
    segments and has the peer acknowledge them. Packets are kept in
    :attr:`packets` in the order built unless ``keep=False``.
    """

    def __init__(self, client: tuple[str, int] = ("10.0.0.1", 40001),
                 server: tuple[str, int] = ("10.0.0.2", 80), *,
                 isn: tuple[int, int] = (1000, 5000), vlans: tuple[int, ...] = (),
                 hop_by_hop: bool = False) -> None:
        self.client, self.server = client, server
        self.ends = {"c2s": (client, server), "s2c": (server, client)}
        self.next = {"c2s": isn[0], "s2c": isn[1]}
        self.vlans = vlans
        self.hop_by_hop = hop_by_hop
        self.packets: list[Packet] = []
        self.sent: dict[str, list[tuple[str, bytes]]] = {"c2s": [], "s2c": []}
        self.tick = 0
        self.masks = 0

    # -- TCP ---------------------------------------------------------------------------

    def segment(self, d: str, payload: bytes = b"", flags: str = "PA", *,
                seq: int | None = None, keep: bool = True) -> Packet:
        """The next segment from direction ``d`` (or one at stream sequence ``seq``)."""
        (src, sport), (dst, dport) = self.ends[d]
        link: Packet = Ether(src=MAC[d][0], dst=MAC[d][1])
        tags = list(self.vlans)
        for n, vid in enumerate(tags):
            outer = n == 0 and len(tags) > 1
            link = link / (Dot1AD(vlan=vid) if outer else Dot1Q(vlan=vid))
        if ":" in src:
            net: Packet = IPv6(src=src, dst=dst, hlim=64)
            if self.hop_by_hop:
                net = net / IPv6ExtHdrHopByHop()
        else:
            net = IP(src=src, dst=dst, ttl=64, id=self.tick & 0xFFFF)
        s = self.next[d] if seq is None else seq
        ack = self.next[OTHER[d]] if "A" in flags else 0
        tcp = TCP(sport=sport, dport=dport, seq=s % SEQ_MOD, ack=ack % SEQ_MOD,
                  flags=flags, window=65535)
        pkt = link / net / tcp
        if payload:
            pkt = pkt / Raw(payload)
        self.tick += 1
        if seq is None:
            self.next[d] += len(payload) + ("S" in flags) + ("F" in flags)
        if keep:
            self.packets.append(pkt)
        return pkt

    def open(self) -> None:
        """The three-way handshake."""
        self.segment("c2s", flags="S")
        self.segment("s2c", flags="SA")
        self.segment("c2s", flags="A")

    def send(self, d: str, data: bytes, sizes: Iterable[int] | None = None, *,
             ack: bool = True, keep: bool = True) -> list[Packet]:
        """``data`` from ``d`` in segments of ``sizes`` (one segment by default);
        then the peer acknowledges everything."""
        cuts = list(sizes) if sizes is not None else [len(data)]
        assert sum(cuts) == len(data)
        out, pos = [], 0
        for n in cuts:
            out.append(self.segment(d, data[pos:pos + n], keep=keep))
            pos += n
        if ack:
            self.segment(OTHER[d], flags="A")
        return out

    def close(self) -> None:
        """FIN from each side, each acknowledged."""
        self.segment("c2s", flags="FA")
        self.segment("s2c", flags="FA")
        self.segment("c2s", flags="A")

    # -- HTTP and WebSocket ----------------------------------------------------------------

    def upgrade(self, request: bytes | None = None, response: bytes | None = None, *,
                request_sizes: Iterable[int] | None = None,
                response_sizes: Iterable[int] | None = None) -> None:
        """The opening handshake (request, then the server's answer)."""
        self.send("c2s", request or request_head(), request_sizes)
        self.send("s2c", response or response_head(), response_sizes)

    def next_mask(self) -> bytes:
        """A fresh masking key: fixed from run to run, but with no pattern across
        frames (RFC 6455 section 5.3 wants them unpredictable)."""
        self.masks += 1
        return hashlib.sha256(f"{self.client}{self.masks}".encode()).digest()[:4]

    def message(self, d: str, opcode: int, payload: bytes, *,
                fragments: list[int] | None = None, record: bool = True) -> bytes:
        """The wire bytes of one message from ``d`` (masked when from the client),
        recorded in :attr:`sent`; ``fragments`` cuts it into frames of those sizes."""
        cuts = fragments or [len(payload)]
        assert sum(cuts) == len(payload)
        wire, pos = b"", 0
        for n, size in enumerate(cuts):
            part = payload[pos:pos + size]
            pos += size
            wire += frame(opcode if n == 0 else CONT, part, fin=n == len(cuts) - 1,
                          mask=self.next_mask() if d == "c2s" else None)
        if record:
            self.sent[d].append((TYPES[opcode], payload))
        return wire

    def exchange(self, d: str, opcode: int, payload: bytes, **kw: Any) -> list[Packet]:
        """One message from ``d`` in one segment, acknowledged."""
        return self.send(d, self.message(d, opcode, payload), **kw)

    def closing_handshake(self, code: int = 1000, reason: str = "bye") -> None:
        """Client close, server echo (RFC 6455 section 5.5.1)."""
        self.exchange("c2s", CLOSE, close_payload(code, reason))
        self.exchange("s2c", CLOSE, close_payload(code, reason))

    def crafted(self, name: str, **kw: Any) -> Crafted:
        """The capture: the kept packets, copied and re-timed 1 ms apart in order."""
        packets = []
        for n, pkt in enumerate(self.packets):
            copy = pkt.copy()
            copy.time = T0 + n / 1000
            copy.wirelen = getattr(pkt, "wirelen", None)
            packets.append(copy)
        return Crafted(name, packets, self.sent, self.client, self.server, **kw)


# -- the scenarios ---------------------------------------------------------------------------

def _chat(conv: Conversation) -> None:
    """A short conversation: text, binary (16-bit length), ping/pong, both ways."""
    conv.exchange("c2s", TEXT, "Hello, server ✓".encode())
    conv.exchange("s2c", TEXT, b"Hello, client")
    conv.exchange("c2s", BINARY, bytes(range(256)) * 2)
    conv.exchange("s2c", PING, b"are you there")
    conv.exchange("c2s", PONG, b"are you there")
    conv.exchange("s2c", BINARY, bytes(300))


def nonstandard_port() -> Crafted:
    """A WebSocket on port 31337, from client port 50555."""
    conv = Conversation(("10.1.1.1", 50555), ("10.1.1.2", 31337))
    conv.open()
    conv.upgrade(request_head(host="10.1.1.2:31337"))
    _chat(conv)
    conv.closing_handshake()
    conv.close()
    return conv.crafted("nonstandard_port")


def split_handshake() -> Crafted:
    """Request and 101 each cut into several segments (one cut inside CRLFCRLF)."""
    conv = Conversation()
    conv.open()
    req, resp = request_head(), response_head()
    conv.upgrade(req, resp, request_sizes=[5, 30, len(req) - 37, 2],
                 response_sizes=[9, 20, len(resp) - 30, 1])
    _chat(conv)
    # a message whose frame is split between segments, header included
    wire = conv.message("c2s", TEXT, b"x" * 200)
    conv.send("c2s", wire, [1, 3, 100, len(wire) - 104])
    conv.closing_handshake()
    conv.close()
    return conv.crafted("split_handshake", notes={"request": req, "response": resp})


def _three_segments(conv: Conversation) -> tuple[list[Packet], list[bytes]]:
    """Three client messages, each in its own segment, built but not yet kept."""
    pkts, wires = [], []
    for text in (b"first message", b"second message", b"third message"):
        wire = conv.message("c2s", TEXT, text)
        pkts += conv.send("c2s", wire, ack=False, keep=False)
        wires.append(wire)
    return pkts, wires


def out_of_order() -> Crafted:
    """Segments reordered, one retransmitted whole, one overlapping (same bytes)."""
    conv = Conversation()
    conv.open()
    conv.upgrade()
    start = conv.next["c2s"]
    (p1, p2, p3), wires = _three_segments(conv)
    conv.packets += [p1, p3, p2, p1]  # 3 before 2, then 1 again
    # an overlap: the tail of 2 and the head of 3, same bytes as before
    stream = b"".join(wires)
    at = len(wires[0]) + len(wires[1]) - 4
    conv.segment("c2s", stream[at:at + 10], seq=start + at)
    conv.segment("s2c", flags="A")
    conv.exchange("s2c", TEXT, b"got them")
    conv.closing_handshake()
    conv.close()
    return conv.crafted("out_of_order")


def overlap_conflict() -> Crafted:
    """A retransmission of delivered bytes that carries different bytes."""
    conv = Conversation()
    conv.open()
    conv.upgrade()
    start = conv.next["c2s"]
    wire = conv.message("c2s", TEXT, b"transfer 100 to alice")
    conv.send("c2s", wire)
    forged = conv.message("c2s", TEXT, b"transfer 999 to mallory", record=False)
    assert len(forged) != len(wire) or forged != wire
    forged = forged[:len(wire)]
    conv.segment("c2s", forged, seq=start)  # same sequence range, other bytes
    conv.exchange("s2c", TEXT, b"ok")
    conv.closing_handshake()
    conv.close()
    return conv.crafted("overlap_conflict", notes={"offset": start, "size": len(wire)})


def overlap_conflict_pending() -> Crafted:
    """Two out-of-order copies of the same range differ (before the hole fills)."""
    conv = Conversation()
    conv.open()
    conv.upgrade()
    start = conv.next["c2s"]
    (p1, p2, p3), wires = _three_segments(conv)
    at = start + len(wires[0])
    forged = bytes(b ^ 0xFF for b in wires[1])
    conv.packets += [p2]
    conv.segment("c2s", forged, seq=at)  # a second, different copy of segment 2
    conv.packets += [p3, p1]  # the hole before them fills last
    conv.segment("s2c", flags="A")
    conv.exchange("s2c", TEXT, b"ok")
    conv.closing_handshake()
    conv.close()
    return conv.crafted("overlap_conflict_pending")


def lost_segment() -> Crafted:
    """The segment with the second client message is not in the capture; the
    server acknowledges it (so it reached the server, not the capture)."""
    conv = Conversation()
    conv.open()
    conv.upgrade()
    (p1, _lost, p3), wires = _three_segments(conv)
    conv.packets += [p1, p3]
    conv.segment("s2c", flags="A")
    conv.exchange("s2c", TEXT, b"after the gap")
    conv.closing_handshake()
    conv.close()
    lost = conv.sent["c2s"].pop(1)
    return conv.crafted("lost_segment", notes={"lost_bytes": len(wires[1]), "lost": lost})


def lost_mid_frame() -> Crafted:
    """A 3000-byte frame over three segments, the middle one lost."""
    conv = Conversation()
    conv.open()
    conv.upgrade()
    conv.exchange("c2s", TEXT, b"before")
    payload = bytes((i * 7) & 0xFF for i in range(3000))
    wire = conv.message("c2s", BINARY, payload)
    a, _lost, c = conv.send("c2s", wire, [1000, 1000, len(wire) - 2000], ack=False,
                            keep=False)
    conv.packets += [a, c]
    conv.segment("s2c", flags="A")
    conv.exchange("c2s", TEXT, b"after")
    conv.exchange("s2c", TEXT, b"done")
    conv.closing_handshake()
    conv.close()
    header = len(wire) - len(payload)
    return conv.crafted("lost_mid_frame", notes={
        "payload": payload, "lost_range": (1000 - header, 2000 - header)})


def seq_wraparound() -> Crafted:
    """Both sequence numbers pass 2**32 in the middle of the conversation."""
    req, resp = request_head(), response_head()
    # the client wraps inside its second message, the server inside the 101's successor
    conv = Conversation(isn=(SEQ_MOD - 1 - len(req) - 30, SEQ_MOD - 1 - len(resp) - 5))
    conv.open()
    conv.upgrade(req, resp)
    _chat(conv)
    conv.closing_handshake()
    conv.close()
    return conv.crafted("seq_wraparound")


def midstream() -> Crafted:
    """The capture starts after the opening handshake and the first messages."""
    conv = Conversation(("10.0.0.1", 40100), ("10.0.0.2", 8080))
    conv.open()
    conv.upgrade()
    conv.exchange("c2s", TEXT, b"never captured")
    conv.exchange("s2c", TEXT, b"not captured either")
    skip = len(conv.packets)
    del conv.sent["c2s"][:], conv.sent["s2c"][:]
    for n in range(3):
        conv.exchange("c2s", TEXT, f"client message {n}".encode())
        conv.exchange("s2c", BINARY, bytes([n]) * (20 + n))
    conv.closing_handshake()
    conv.close()
    conv.packets = conv.packets[skip:]
    return conv.crafted("midstream")


def vlan() -> Crafted:
    """Ethernet with an 802.1Q tag."""
    conv = Conversation(vlans=(100,))
    conv.open()
    conv.upgrade()
    _chat(conv)
    conv.closing_handshake()
    conv.close()
    return conv.crafted("vlan")


def qinq() -> Crafted:
    """Ethernet with two tags (802.1ad outer, 802.1Q inner)."""
    conv = Conversation(vlans=(10, 200))
    conv.open()
    conv.upgrade()
    _chat(conv)
    conv.closing_handshake()
    conv.close()
    return conv.crafted("qinq")


def ipv6_hop_by_hop() -> Crafted:
    """IPv6 with a hop-by-hop options header before TCP."""
    conv = Conversation(("2001:db8::1", 40200), ("2001:db8::2", 80), hop_by_hop=True)
    conv.open()
    conv.upgrade(request_head(host="[2001:db8::2]"))
    _chat(conv)
    conv.closing_handshake()
    conv.close()
    return conv.crafted("ipv6_hop_by_hop")


def refused() -> Crafted:
    """The server answers the upgrade with 403 and closes."""
    conv = Conversation()
    conv.open()
    body = b"forbidden\n"
    conv.upgrade(response=response_head(403, "Forbidden", extra=[
        "Content-Type: text/plain", f"Content-Length: {len(body)}"]) + body)
    conv.close()
    return conv.crafted("refused", notes={"status": 403, "reason": "Forbidden"})


def vxlan() -> Crafted:
    """The chat, every packet mirrored in VXLAN (UDP port 4789, VNI 42), as AWS
    VPC Traffic Mirroring or an Azure virtual network TAP delivers it."""
    from scapy.layers.inet import UDP
    from scapy.layers.vxlan import VXLAN

    conv = Conversation()
    conv.open()
    conv.upgrade()
    _chat(conv)
    conv.closing_handshake()
    conv.close()
    conv.packets = [Ether(src="02:00:00:00:00:aa", dst="02:00:00:00:00:bb")
                    / IP(src="172.16.0.1", dst="172.16.0.2", id=n)
                    / UDP(sport=49152 + n % 1000, dport=4789) / VXLAN(vni=42) / pkt
                    for n, pkt in enumerate(conv.packets)]
    return conv.crafted("vxlan")


def _http(start: str, fields: Iterable[str] = (), body: bytes = b"") -> bytes:
    return "".join(f"{line}\r\n" for line in (start, *fields, "")).encode() + body


def _cut(data: bytes, *sizes: int) -> tuple[bytes, list[int]]:
    """``data`` and segment sizes for it: ``sizes``, then the rest."""
    return data, [*sizes, len(data) - sum(sizes)]


def keepalive() -> Crafted:
    """Plain HTTP/1.1 exchanges before the upgrade on the same keep-alive
    connection (as aiohttp's pooled connections do): a GET whose answer's
    body spans segments, a POST with a body, a HEAD answered with a
    Content-Length and no body, a PUT with ``Expect: 100-continue`` (an
    interim 100), two pipelined GETs in one segment, one answered in chunks
    (with a chunk extension and a trailer field), then the upgrade."""
    conv = Conversation()
    conv.open()
    page = bytes(range(256)) * 12
    conv.send("c2s", _http("GET /index.html HTTP/1.1", ["Host: server.example.com"]))
    conv.send("s2c", *_cut(_http("HTTP/1.1 200 OK", [f"Content-Length: {len(page)}"], page),
                           700, 1400))
    login = b'{"user": "bob", "password": "hunter2"}'
    conv.send("c2s", *_cut(_http("POST /login HTTP/1.1", [
        "Host: server.example.com", "Content-Type: application/json",
        f"Content-Length: {len(login)}"], login), 60))
    conv.send("s2c", _http("HTTP/1.1 204 No Content", ["Set-Cookie: s=1"]))
    conv.send("c2s", _http("HEAD /big HTTP/1.1", ["Host: server.example.com"]))
    conv.send("s2c", _http("HTTP/1.1 200 OK", ["Content-Length: 999999"]))
    upload = b"x" * 500
    conv.send("c2s", _http("PUT /upload HTTP/1.1", ["Host: server.example.com",
                                                    "Expect: 100-continue",
                                                    f"Content-Length: {len(upload)}"]))
    conv.send("s2c", _http("HTTP/1.1 100 Continue"))
    conv.send("c2s", upload)
    conv.send("s2c", _http("HTTP/1.1 201 Created", ["Content-Length: 2"], b"ok"))
    conv.send("c2s", _http("GET /a HTTP/1.1", ["Host: server.example.com"])
              + _http("GET /b HTTP/1.1", ["Host: server.example.com"]))
    chunked = b"5;ext=1\r\nhello\r\n0010\r\n" + b"0123456789abcdef" + b"\r\n0\r\nX-T: 1\r\n\r\n"
    conv.send("s2c", *_cut(_http("HTTP/1.1 200 OK", ["Transfer-Encoding: chunked"], chunked)
                           + _http("HTTP/1.1 404 Not Found", ["Content-Length: 0"]), 50, 31, 40))
    conv.upgrade()
    _chat(conv)
    conv.closing_handshake()
    conv.close()
    return conv.crafted("keepalive")


def snaplen_cut() -> Crafted:
    """Written with a 200-byte snap length: a 3000-byte frame's segment is cut."""
    conv = Conversation()
    conv.open()
    conv.upgrade()
    conv.exchange("c2s", TEXT, b"short one")
    payload = bytes((i * 13 + 1) & 0xFF for i in range(3000))
    conv.exchange("s2c", BINARY, payload)
    conv.exchange("c2s", TEXT, b"still here")
    conv.exchange("s2c", TEXT, b"me too")
    conv.closing_handshake()
    conv.close()
    snap = 256  # the handshake heads fit, the 3000-byte frame's segment does not
    cut = []
    for pkt in conv.packets:
        raw = bytes(pkt)
        if len(raw) > snap:
            short = Ether(raw[:snap])
            short.wirelen = len(raw)
            cut.append(short)
        else:
            cut.append(pkt)
    conv.packets = cut
    return conv.crafted("snaplen_cut", snaplen=snap, notes={"snaplen": snap, "payload": payload})


SCENARIOS: dict[str, Callable[[], Crafted]] = {
    f.__name__: f for f in (
        nonstandard_port, split_handshake, out_of_order, overlap_conflict,
        overlap_conflict_pending, lost_segment, lost_mid_frame, seq_wraparound, midstream,
        vlan, qinq, ipv6_hop_by_hop, refused, snaplen_cut, keepalive, vxlan)
}


def build(name: str) -> Crafted:
    """Build one scenario."""
    return SCENARIOS[name]()


def write_all(out: Path) -> list[Path]:
    """Write every scenario as ``<name>.pcap`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    return [build(name).write(out / f"{name}.pcap") for name in SCENARIOS]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Regenerate the crafted golden captures.")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                    help="output folder (default: tests/golden)")
    args = ap.parse_args(argv)
    for path in write_all(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
