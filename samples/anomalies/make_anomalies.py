#!/usr/bin/env python3
"""Craft one small capture per anomaly code, and write down what must fire.

Every scenario builds a complete conversation packet by packet with scapy
(``Ether()/IP()/TCP()`` with consistent sequence and acknowledgement numbers,
the TCP three-way handshake, the HTTP upgrade, then frames laid out by hand
as RFC 6455 section 5.2 draws them) and breaks exactly the rule it is named
after; everything else is kept conforming (a closing handshake, FINs) so that
nothing else fires. Next to ``NAME.pcap`` it writes ``NAME.expect.json``: the
anomalies the sender put there (code, connection, direction, frame index,
packet, a piece of the detail) and the complete set of codes that must fire,
``sec_plaintext_ws`` included (every crafted connection is ws://).

The captures are deterministic (fixed addresses, sequence numbers, masking
keys from a seeded generator, timestamps from a fixed start): running the
script again gives the same bytes.

Usage, from the repository root::

    python samples/anomalies/make_anomalies.py                # all, into samples/anomalies/
    python samples/anomalies/make_anomalies.py --only ws-close-1-byte
    python samples/anomalies/make_anomalies.py --out /tmp/x   # elsewhere (tests)
    python samples/anomalies/make_anomalies.py --list         # names and descriptions

Nothing is sent on a network: packets are only built and written to files.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

# -- RFC 6455 by hand ---------------------------------------------------------------

#: RFC 6455 section 1.3.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
RSV1, RSV2, RSV3 = 4, 2, 1  # the three RSV bits as the 3-bit number of the header


def accept_for(key: str) -> str:
    """Sec-WebSocket-Accept: base64(SHA-1(key + GUID)) (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def xor(data: bytes, key: bytes) -> bytes:
    """RFC 6455 section 5.3: octet i is XORed with key octet i MOD 4."""
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
          key: bytes | None = None, form: int | None = None,
          declared: int | None = None) -> bytes:
    """One frame, laid out as in RFC 6455 section 5.2.

    Args:
        opcode: the 4-bit opcode.
        payload: the unmasked payload (masked here when ``key`` is given).
        fin: the FIN bit.
        rsv: RSV1..3 as a 3-bit number (4 is RSV1).
        key: the 4-byte masking key, or None for an unmasked frame.
        form: 7, 16 or 64: the length field to use (default: the minimal one).
        declared: a payload length to declare instead of ``len(payload)``.
    """
    n = len(payload) if declared is None else declared
    if form is None:
        form = 7 if n < 126 else 16 if n < 65536 else 64
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask = 0x80 if key is not None else 0
    if form == 7:
        head = bytes([b0, mask | n])
    elif form == 16:
        head = bytes([b0, mask | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, mask | 127]) + struct.pack("!Q", n)
    if key is not None:
        return head + key + xor(payload, key)
    return head + payload


def close_payload(code: int | None, reason: bytes = b"") -> bytes:
    return b"" if code is None else struct.pack("!H", code) + reason


def deflate_message(data: bytes, comp: Any = None, wbits: int = 15) -> bytes:
    """RFC 7692 section 7.2.1: compress, sync-flush, drop the trailing 00 00 ff ff."""
    c = comp or zlib.compressobj(9, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


# -- pcap writing ---------------------------------------------------------------------

T0_US = 1_700_000_000 * 1_000_000  # 2023-11-14T22:13:20Z
MAC_C, MAC_S = "02:00:00:00:00:01", "02:00:00:00:00:02"


class Pcap:
    """Packets with timestamps, written as a classic microsecond pcap (or, with
    ``fmt``, as pcapng or gzip-compressed pcap)."""

    def __init__(self, snaplen: int = 262144) -> None:
        self.snaplen = snaplen
        self.records: list[tuple[int, bytes, int]] = []  # ts_us, data, wire length
        self.t = T0_US
        #: ``pcap``, ``pcapng`` or ``pcap.gz`` (the file name's extension).
        self.fmt = "pcap"
        #: pcapng: packet number -> the 64-bit timestamp its block carries
        #: instead of its own (microseconds, the default if_tsresol).
        self.raw_ts: dict[int, int] = {}
        #: pcap.gz: XOR the gzip trailer's CRC-32 with this (0: a correct CRC).
        self.crc_xor = 0
        #: pcapng: a TLS key log to embed (wss:// captures).
        self.secrets: str | None = None

    def add(self, data: bytes, dt: float = 0.001) -> int:
        """Add a packet (cut at the snap length); return its 1-based number."""
        self.records.append((self.t, data[:self.snaplen], len(data)))
        self.t += round(dt * 1e6)
        return len(self.records)

    def wait(self, seconds: float) -> None:
        self.t += round(seconds * 1e6)

    def write(self, path: Path, cut_last: int = 0) -> None:
        out = self.pcapng() if self.fmt == "pcapng" else self.pcap()
        if cut_last:
            del out[-cut_last:]
        if self.fmt == "pcap.gz":
            out = gzip_stored(bytes(out), self.crc_xor)
        path.write_bytes(bytes(out))

    def pcap(self) -> bytearray:
        out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, self.snaplen, 1))
        for ts, data, wire in self.records:
            out += struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(data), wire)
            out += data
        return out

    def pcapng(self) -> bytearray:
        """A section header, one Ethernet interface (microseconds), an enhanced
        packet block per packet (pcapng draft, sections 4.1, 4.2 and 4.3)."""
        def block(btype: int, body: bytes) -> bytes:
            body += bytes(-len(body) % 4)
            return struct.pack("<II", btype, len(body) + 12) + body + struct.pack(
                "<I", len(body) + 12)
        out = bytearray(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        out += block(0x00000001, struct.pack("<HHI", 1, 0, self.snaplen))
        if self.secrets is not None:
            # A TLS key log in a Decryption Secrets Block before the packets
            # (section 4.7; as ``editcap --inject-secrets tls,KEYS`` lays it out).
            keys = self.secrets.encode()
            out += block(0x0000000A, struct.pack("<II", 0x544C534B, len(keys)) + keys)
        for number, (ts, data, wire) in enumerate(self.records, 1):
            ts = self.raw_ts.get(number, ts)
            out += block(0x00000006, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF,
                                                 len(data), wire) + data)
        return out


def gzip_stored(data: bytes, crc_xor: int = 0) -> bytes:
    """``data`` as a gzip file (RFC 1952) of stored deflate blocks (RFC 1951
    section 3.2.4): the same bytes whatever zlib builds it."""
    out = bytearray(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")  # no name, mtime 0
    size = 0xFFFF
    for i in range(0, max(len(data), 1), size):
        piece = data[i:i + size]
        final = i + size >= len(data)
        out += struct.pack("<BHH", final, len(piece), len(piece) ^ 0xFFFF) + piece
    crc = zlib.crc32(data) ^ crc_xor
    return bytes(out + struct.pack("<II", crc, len(data) & 0xFFFFFFFF))


# -- TLS 1.3 by hand (RFC 8446), for the tls_ captures ------------------------------------

TLS_AES_128_GCM_SHA256 = 0x1301


def hkdf_label(secret: bytes, label: str, length: int) -> bytes:
    """HKDF-Expand-Label with an empty context (RFC 8446 section 7.1)."""
    full = b"tls13 " + label.encode()
    info = struct.pack(">HB", length, len(full)) + full + b"\x00"
    return HKDFExpand(hashes.SHA256(), length, info).derive(secret)


def tls_record(kind: int, body: bytes) -> bytes:
    return struct.pack(">BHH", kind, 0x0303, len(body)) + body


def handshake(kind: int, body: bytes) -> bytes:
    return struct.pack(">B", kind) + len(body).to_bytes(3, "big") + body


def vec(data: bytes, size: int) -> bytes:
    return len(data).to_bytes(size, "big") + data


class Tls13:
    """A TLS 1.3 connection's bytes, laid out by hand with secrets from the scenario's
    generator: the hellos in the clear, then records under AES-128-GCM. The key log
    (:attr:`keylog`) names the four traffic secrets as browsers write them."""

    def __init__(self, sc: Scenario, sni: str = "example.test", alpn: str | None = None,
                 suite: int = TLS_AES_128_GCM_SHA256, version: int = 0x0304) -> None:
        rb = sc.rng.randbytes
        self.client_random, self.server_random, self.session_id = rb(32), rb(32), rb(32)
        self.sni, self.alpn, self.suite, self.version = sni, alpn, suite, version
        self.secrets = {label: rb(32) for label in (
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0")}
        self.keys: dict[str, tuple[bytes, bytes]] = {}
        self.seq: dict[str, int] = {}
        self._use(C2S, "CLIENT_HANDSHAKE_TRAFFIC_SECRET")
        self._use(S2C, "SERVER_HANDSHAKE_TRAFFIC_SECRET")

    @property
    def keylog(self) -> str:
        return "".join(f"{label} {self.client_random.hex()} {secret.hex()}\n"
                       for label, secret in self.secrets.items())

    def _use(self, d: str, label: str) -> None:
        secret = self.secrets[label]
        self.keys[d] = (hkdf_label(secret, "key", 16), hkdf_label(secret, "iv", 12))
        self.seq[d] = 0

    def client_hello(self) -> bytes:
        exts = vec(vec(b"\x00" + vec(self.sni.encode(), 2), 2), 2)  # server_name
        ext = struct.pack(">H", 0) + exts
        ext += struct.pack(">H", 43) + vec(vec(struct.pack(">H", 0x0304), 1), 2)
        if self.alpn:
            ext += struct.pack(">H", 16) + vec(vec(vec(self.alpn.encode(), 1), 2), 2)
        body = (struct.pack(">H", 0x0303) + self.client_random + vec(self.session_id, 1)
                + vec(struct.pack(">H", self.suite), 2) + b"\x01\x00" + vec(ext, 2))
        return tls_record(22, handshake(1, body))

    def server_flight(self) -> bytes:
        """ServerHello, the compatibility ChangeCipherSpec, then EncryptedExtensions
        and Finished under the server's handshake secret."""
        ext = struct.pack(">H", 43) + vec(struct.pack(">H", self.version), 2)
        body = (struct.pack(">H", 0x0303) + self.server_random + vec(self.session_id, 1)
                + struct.pack(">HB", self.suite, 0) + vec(ext, 2))
        out = tls_record(22, handshake(2, body)) + tls_record(20, b"\x01")
        ee = b""
        if self.alpn:
            ee = struct.pack(">H", 16) + vec(vec(vec(self.alpn.encode(), 1), 2), 2)
        out += self.seal(S2C, handshake(8, vec(ee, 2)) + handshake(20, bytes(32)), 22)
        self._use(S2C, "SERVER_TRAFFIC_SECRET_0")
        return out

    def client_finished(self) -> bytes:
        out = tls_record(20, b"\x01") + self.seal(C2S, handshake(20, bytes(32)), 22)
        self._use(C2S, "CLIENT_TRAFFIC_SECRET_0")
        return out

    def seal(self, d: str, data: bytes, kind: int = 23) -> bytes:
        """``data`` as records of direction ``d`` (16 KiB of plaintext each at most)."""
        out = b""
        for i in range(0, max(len(data), 1), 1 << 14):
            key, iv = self.keys[d]
            nonce = (int.from_bytes(iv, "big") ^ self.seq[d]).to_bytes(12, "big")
            self.seq[d] += 1
            inner = data[i:i + (1 << 14)] + bytes([kind])
            header = struct.pack(">BHH", 23, 0x0303, len(inner) + 16)
            out += header + AESGCM(key).encrypt(nonce, inner, header)
        return out


# -- scenarios ----------------------------------------------------------------------------


class Scenario:
    """One capture and what must fire on it."""

    def __init__(self, name: str, description: str) -> None:
        self.name = name
        self.description = description
        self.pcap = Pcap()
        self.rng = random.Random(name)
        self.expected: list[dict[str, Any]] = []
        self.conns = 0
        self.ports = 40000
        self.options: dict[str, Any] = {}
        self.thresholds: dict[str, Any] = {}
        self.cut_last = 0

    @property
    def file(self) -> str:
        """The capture's file name."""
        return f"{self.name}.{self.pcap.fmt}"

    def key(self) -> bytes:
        """A masking key from the scenario's seeded generator (never all zero)."""
        while True:
            k = self.rng.getrandbits(32).to_bytes(4, "big")
            if k != b"\0\0\0\0":
                return k

    def ws_key(self) -> str:
        return base64.b64encode(self.rng.getrandbits(128).to_bytes(16, "big")).decode()

    def conn(self, client: str = "10.0.0.1", server: str = "10.0.0.2",
             server_port: int = 80) -> Conn:
        self.ports += 1
        return Conn(self, client, self.ports, server, server_port)

    def expect(self, code: str, conn: int | None, direction: str | None,
               frame_index: int | None = None, packet: int | None = None,
               detail: str = "", **extra: Any) -> None:
        """An anomaly that must be in the anomalies table."""
        row: dict[str, Any] = {"code": code, "conn_id": conn, "direction": direction,
                               "frame_index": frame_index, "detail": detail}
        if packet is not None:
            row["packet"] = packet
        row.update(extra)
        self.expected.append(row)

    def write(self, out: Path) -> None:
        self.pcap.write(out / self.file, self.cut_last)
        doc = {
            "name": self.name,
            "file": self.file,
            "description": self.description,
            "codes": sorted({e["code"] for e in self.expected}),
            "anomalies": self.expected,
            "options": self.options,
            "thresholds": self.thresholds,
        }
        (out / f"{self.name}.expect.json").write_text(json.dumps(doc, indent=1) + "\n")


C2S, S2C = "c2s", "s2c"


class Conn:
    """One TCP connection, built packet by packet with consistent seq/ack numbers."""

    def __init__(self, sc: Scenario, client: str, cport: int, server: str, sport: int) -> None:
        self.sc = sc
        self.pcap = sc.pcap
        self.ends = {C2S: (client, cport, MAC_C), S2C: (server, sport, MAC_S)}
        self.seq = {C2S: 1_000_000 + cport * 7, S2C: 3_000_000 + cport * 11}
        self.conn_id: int | None = None
        self.frames = 0
        #: When set, everything sent goes through TLS (see :meth:`tls_open`).
        self.tls: Tls13 | None = None

    # -- TCP ------------------------------------------------------------------------

    def packet(self, d: str, flags: str, payload: bytes = b"", seq: int | None = None,
               dt: float = 0.001, advance: bool = True) -> int:
        """One segment from ``d``; returns its packet number."""
        other = S2C if d == C2S else C2S
        (src, sp, smac), (dst, dp, dmac) = self.ends[d], self.ends[other]
        s = self.seq[d] if seq is None else seq
        ack = self.seq[other] if "A" in flags else 0
        pkt = (Ether(src=smac, dst=dmac) / IP(src=src, dst=dst, id=1, flags="DF")
               / TCP(sport=sp, dport=dp, flags=flags, seq=s & 0xFFFFFFFF,
                     ack=ack & 0xFFFFFFFF, window=65535))
        if payload:
            pkt = pkt / Raw(payload)
        number = self.pcap.add(bytes(pkt), dt)
        if advance and seq is None:
            self.seq[d] += len(payload) + (1 if ("S" in flags or "F" in flags) else 0)
        return number

    def open(self) -> None:
        """The three-way handshake."""
        self.packet(C2S, "S")
        self.packet(S2C, "SA")
        self.packet(C2S, "A")

    def send(self, d: str, data: bytes, dt: float = 0.001) -> int:
        if self.tls is not None:
            data = self.tls.seal(d, data)
        return self.packet(d, "PA", data, dt=dt)

    def tls_open(self, tls: Tls13) -> tuple[int, int]:
        """TCP handshake, then the TLS handshake: the hellos' packets; what is
        sent from then on is sealed in records."""
        self.open()
        hello = self.packet(C2S, "PA", tls.client_hello())
        server = self.packet(S2C, "PA", tls.server_flight())
        self.packet(C2S, "PA", tls.client_finished())
        self.tls = tls
        return hello, server

    def ack(self, d: str) -> int:
        return self.packet(d, "A")

    def shutdown(self, first: str = C2S) -> tuple[int, int]:
        """FIN from ``first``, FIN from the other side, last ACK."""
        other = S2C if first == C2S else C2S
        a = self.packet(first, "FA")
        b = self.packet(other, "FA")
        self.packet(first, "A")
        return a, b

    def reset(self, d: str) -> int:
        return self.packet(d, "RA")

    # -- HTTP -------------------------------------------------------------------------

    def request(self, path: str = "/chat", *, method: str = "GET", host: str | None = "DEFAULT",
                key: str | None = "DEFAULT", version: str | None = "13",
                headers: list[tuple[str, str]] | None = None,
                upgrade: bool = True, connection: bool = True,
                user_agent: str = "wspcap-crafted/1.0",
                chunks: list[float] | None = None) -> int:
        """Send the upgrade request; the connection becomes the scenario's next conn_id.

        ``chunks``: send the head in len(chunks)+1 pieces with these pauses
        (seconds) between them.
        """
        if key == "DEFAULT":
            key = self.sc.ws_key()
        self.key = key
        lines = [f"{method} {path} HTTP/1.1"]
        if host == "DEFAULT":
            host = self.ends[S2C][0]
        if host is not None:
            lines.append(f"Host: {host}")
        if upgrade:
            lines.append("Upgrade: websocket")
        if connection:
            lines.append("Connection: Upgrade")
        if key is not None:
            lines.append(f"Sec-WebSocket-Key: {key}")
        if version is not None:
            lines.append(f"Sec-WebSocket-Version: {version}")
        lines.append(f"User-Agent: {user_agent}")
        for name, value in headers or []:
            lines.append(f"{name}: {value}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.conn_id = self.sc.conns
        self.sc.conns += 1
        if chunks:
            pieces = len(chunks) + 1
            size = -(-len(head) // pieces)
            for i in range(pieces):
                number = self.send(C2S, head[i * size:(i + 1) * size],
                                   dt=chunks[i] if i < len(chunks) else 0.001)
        else:
            number = self.send(C2S, head)
        self.request_packet = number
        if self.tls is None:
            # (up to the query: the detail leaves credentials in it out)
            target = f"ws://{host or self.ends[S2C][0]}{path.partition('?')[0]}"
            self.sc.expect("sec_plaintext_ws", self.conn_id, C2S, None, number, target)
        return number

    def response(self, status: int = 101, *, accept: str | None = "DEFAULT",
                 headers: list[tuple[str, str]] | None = None, upgrade: bool = True,
                 connection: bool = True, trailing: bytes = b"") -> int:
        reason = {101: "Switching Protocols", 400: "Bad Request", 403: "Forbidden",
                  426: "Upgrade Required"}.get(status, "Status")
        lines = [f"HTTP/1.1 {status} {reason}"]
        if status == 101:
            if upgrade:
                lines.append("Upgrade: websocket")
            if connection:
                lines.append("Connection: Upgrade")
            if accept == "DEFAULT":
                accept = accept_for(self.key) if self.key else None
            if accept is not None:
                lines.append(f"Sec-WebSocket-Accept: {accept}")
        for name, value in headers or []:
            lines.append(f"{name}: {value}")
        if status != 101:
            lines.append("Content-Length: 0")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.response_packet = self.send(S2C, head + trailing)
        return self.response_packet

    def upgrade_after_tls(self, path: str = "/chat") -> None:
        """The upgrade, inside the TLS connection :meth:`tls_open` started."""
        self.request(path)
        self.response()

    def upgrade(self, path: str = "/chat", **request: Any) -> None:
        """TCP handshake, a conforming upgrade request and its 101."""
        self.open()
        self.request(path, **request)
        self.response()

    # -- frames -------------------------------------------------------------------------

    def ws(self, d: str, *frames: bytes, dt: float = 0.001) -> tuple[list[int], int]:
        """Send frames in one segment; return their frame indexes and the packet."""
        first = self.frames
        self.frames += len(frames)
        number = self.send(d, b"".join(frames), dt=dt)
        return list(range(first, self.frames)), number

    def text(self, d: str, text: str | bytes, **kw: Any) -> tuple[int, int]:
        """A single-frame text message (masked when from the client)."""
        data = text.encode() if isinstance(text, str) else text
        key = self.sc.key() if d == C2S else None
        (index,), number = self.ws(d, frame(TEXT, data, key=key, **kw))
        return index, number

    def control(self, d: str, opcode: int, payload: bytes = b"", dt: float = 0.001,
                **kw: Any) -> tuple[int, int]:
        key = kw.pop("key", self.sc.key() if d == C2S else None)
        (index,), number = self.ws(d, frame(opcode, payload, key=key, **kw), dt=dt)
        return index, number

    def close(self, first: str = C2S, code: int = 1000, reason: bytes = b"bye") -> None:
        """A conforming closing handshake, then the TCP close."""
        other = S2C if first == C2S else C2S
        self.control(first, CLOSE, close_payload(code, reason))
        self.control(other, CLOSE, close_payload(code, reason))
        self.shutdown(other)


SCENARIOS: dict[str, tuple[str, Callable[[Scenario], None]]] = {}


def scenario(name: str, description: str) -> Callable[[Callable[[Scenario], None]],
                                                       Callable[[Scenario], None]]:
    def register(fn: Callable[[Scenario], None]) -> Callable[[Scenario], None]:
        SCENARIOS[name] = (description, fn)
        return fn
    return register


# -- a clean conversation: only sec_plaintext_ws ----------------------------------------

@scenario("clean", "a conforming conversation: text, binary, ping/pong, fragments, close "
          "(only sec_plaintext_ws fires)")
def _clean(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade("/clean")
    c.text(C2S, "hello")
    c.text(S2C, "hello yourself")
    c.ws(C2S, frame(BINARY, b"\x00\x01\x02", key=sc.key()))
    c.control(C2S, PING, b"p1")
    c.control(S2C, PONG, b"p1")
    c.ws(S2C, frame(TEXT, b"frag", fin=False), frame(CONT, b"mented", fin=False))
    c.control(S2C, PING, b"p2")
    c.control(C2S, PONG, b"p2")
    c.ws(S2C, frame(CONT, b"!", fin=True))
    c.control(S2C, PONG, b"unsolicited")
    c.close(C2S)


# -- TCP and capture ---------------------------------------------------------------------

@scenario("tcp-gap", "a client segment carrying a whole frame is missing from the capture")
def _tcp_gap(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    c.text(C2S, "before the gap")
    lost = frame(TEXT, b"this frame was never captured", key=sc.key())
    c.seq[C2S] += len(lost)  # sent, not captured (and never a frame wspcap sees)
    offset = c.seq[C2S] - len(lost) - (1_000_000 + c.ends[C2S][1] * 7) - 1
    index, _ = c.text(C2S, "after the gap")
    ack = c.ack(S2C)  # the server acknowledges beyond the hole
    sc.expect("tcp_gap", 0, C2S, None, None,
              f"{len(lost)} bytes missing at stream offset {offset}")
    # The gap ends on a frame boundary: nothing else is lost, so no ws_desync.
    del ack, index
    c.close(C2S)


@scenario("ws-desync", "a lost segment takes the end of one frame and the header of the next")
def _ws_desync(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    a = frame(TEXT, b"A" * 20, key=sc.key())
    b = frame(TEXT, b"B" * 40, key=sc.key())
    blob = a + b
    cut1, cut2 = len(a) - 5, len(a) + 10  # lost: A's last 5 bytes, B's first 10
    c.send(C2S, blob[:cut1])
    index_a = c.frames
    c.frames += 1  # frame A, emitted truncated at the gap
    c.seq[C2S] += cut2 - cut1  # sent, not captured
    passed = c.send(C2S, blob[cut2:])  # the rest of B: no header to frame it by
    c.text(C2S, "after the gap")  # a frame boundary again
    c.ack(S2C)  # the server acknowledges beyond the hole
    sc.expect("tcp_gap", 0, C2S, None, None, f"{cut2 - cut1} bytes missing")
    sc.expect("ws_truncated_frame", 0, C2S, index_a, None,
              "declared 20 bytes, 15 captured before a gap in the capture")
    sc.expect("ws_desync", 0, C2S, None, None,
              f"{len(blob) - cut2} captured bytes after a gap of {cut2 - len(a)} passed over "
              "until a frame boundary was found")
    del passed
    c.close(C2S)


@scenario("tcp-overlap-conflict", "a retransmitted client segment carries different bytes")
def _tcp_overlap(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    key = sc.key()
    original = frame(TEXT, b"transfer 10 EUR", key=key)
    start = c.seq[C2S]
    c.ws(C2S, original)
    forged = frame(TEXT, b"transfer 99 EUR", key=key)
    number = c.packet(C2S, "PA", forged, seq=start)
    offset = start - (1_000_000 + c.ends[C2S][1] * 7) - 1
    sc.expect("tcp_overlap_conflict", 0, C2S, None, number,
              f"{len(original)} bytes at stream offset {offset} differ from the first copy")
    c.close(C2S)


@scenario("tcp-data-after-fin", "after its FIN the client sends one more segment, a whole text "
          "frame, just past the FIN's sequence number")
def _tcp_data_after_fin(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    c.text(C2S, "before the FIN")
    c.control(C2S, CLOSE, close_payload(1000, b"bye"))
    c.control(S2C, CLOSE, close_payload(1000, b"bye"))
    isn = 1_000_000 + c.ends[C2S][1] * 7
    fin_offset = c.seq[C2S] - isn - 1  # the FIN's sequence number, as a stream offset
    c.packet(C2S, "FA")
    # RFC 9293 section 3.10.7.4: the receiver takes no text past the FIN (its FIN
    # acknowledges the client's FIN only). The frame is not delivered: not in the
    # frames table, and no ws_data_after_close.
    late = frame(TEXT, b"sent after FIN", key=sc.key())
    number = c.packet(C2S, "PA", late, advance=False)
    c.packet(S2C, "FA")
    c.packet(C2S, "A")
    sc.expect("tcp_data_after_fin", 0, C2S, None, number,
              f"{len(late)} bytes at stream offset {fin_offset + 1} after the FIN at stream "
              f"offset {fin_offset} (not delivered)")


@scenario("tcp-midstream", "the capture starts inside an open connection: no SYN, no handshake")
def _tcp_midstream(sc: Scenario) -> None:
    c = sc.conn()
    c.conn_id = 0
    sc.conns = 1
    first = c.send(C2S, frame(TEXT, b"already talking", key=sc.key())
                   + frame(TEXT, b"second frame", key=sc.key()))
    c.frames = 2
    c.text(S2C, "yes")
    c.close(C2S)
    sc.expect("tcp_midstream", 0, None, None, None, "SYN was not captured")
    sc.expect("http_handshake_missing", 0, None, None, first, "without the opening handshake")
    sc.expect("sec_plaintext_ws", 0, None, None, None, "no handshake captured")


@scenario("tcp-reset", "the client resets the connection after a message, with no close frame")
def _tcp_reset(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    c.text(C2S, "bye-ish")
    rst = c.reset(C2S)
    sc.expect("tcp_reset", 0, C2S, None, rst, "RST after")
    sc.expect("ws_no_close", 0, C2S, None, None, "RST from the client")


@scenario("capture-truncated", "a snap length of 256 bytes cuts a 400-byte client frame")
def _capture_truncated(sc: Scenario) -> None:
    sc.pcap.snaplen = 256  # 54 bytes of headers: TCP payloads past 202 bytes are cut
    c = sc.conn()
    c.upgrade()
    start = c.seq[C2S] - (1_000_000 + c.ends[C2S][1] * 7) - 1
    wire = frame(BINARY, bytes(394), key=sc.key())  # 8 header bytes: 402 in all
    c.ws(C2S, wire)
    c.close(C2S)
    sc.expect("capture_truncated", None, None, None, None,
              "1 packet was cut by the snap length")
    sc.expect("tcp_gap", 0, C2S, None, None,
              f"{len(wire) - 202} bytes missing at stream offset {start + 202}")


@scenario("capture-file-cut", "the file ends in the middle of the last packet record")
def _capture_file_cut(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    c.text(C2S, "the last record of this file (the last ACK) is cut short")
    c.close(C2S)
    sc.cut_last = 10
    sc.expect("capture_truncated", None, None, None, None, "")


@scenario("capture-corrupt", "the gzip-compressed capture's CRC-32 does not match its data")
def _capture_corrupt(sc: Scenario) -> None:
    sc.pcap.fmt = "pcap.gz"
    sc.pcap.crc_xor = 1
    c = sc.conn()
    c.upgrade()
    c.text(C2S, "every packet reads, but the gzip checksum says the bytes were damaged")
    c.close(C2S)
    sc.expect("capture_corrupt", None, None, None, None, "gzip CRC-32 does not match")


@scenario("capture-timestamp-invalid", "a pcapng packet's 64-bit timestamp, in "
          "microseconds, is far past what nanoseconds hold (year 2262)")
def _capture_timestamp_invalid(sc: Scenario) -> None:
    sc.pcap.fmt = "pcapng"
    c = sc.conn()
    c.upgrade()
    _, number = c.text(S2C, "this frame's packet has no usable time")
    sc.pcap.raw_ts[number] = (1 << 64) - 1
    c.close(C2S)
    sc.expect("capture_timestamp_invalid", None, None, None, number,
              "1 packets have a timestamp outside int64 nanoseconds (years 1677 to 2262); "
              f"their ts is null (first: packet {number})")


@scenario("capture-ip-fragment", "a client segment travels as two IP fragments")
def _ip_fragment(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    data = frame(TEXT, b"x" * 60, key=sc.key())
    (src, sp, smac), (dst, dp, dmac) = c.ends[C2S], c.ends[S2C]
    tcp = TCP(sport=sp, dport=dp, flags="PA", seq=c.seq[C2S], ack=c.seq[S2C], window=65535)
    whole = IP(src=src, dst=dst, id=77, proto=6) / tcp / Raw(data)
    raw = bytes(whole)
    ihl = 20
    body = raw[ihl:]
    first = IP(src=src, dst=dst, id=77, proto=6, flags="MF", frag=0) / Raw(body[:48])
    second = IP(src=src, dst=dst, id=77, proto=6, frag=6) / Raw(body[48:])
    p1 = sc.pcap.add(bytes(Ether(src=smac, dst=dmac) / first))
    p2 = sc.pcap.add(bytes(Ether(src=smac, dst=dmac) / second))
    c.seq[C2S] += len(data)
    c.ack(S2C)
    c.close(C2S)
    sc.expect("capture_ip_fragment", None, None, None, p1, f"packet {p1} is an IP fragment")
    sc.expect("capture_ip_fragment", None, None, None, p2, f"packet {p2} is an IP fragment")
    sc.expect("tcp_gap", 0, C2S, None, None, f"{len(data)} bytes missing")


# -- HTTP upgrade ---------------------------------------------------------------------------

@scenario("http-accept-mismatch", "the 101's Sec-WebSocket-Accept is not derived from the key")
def _accept_mismatch(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    c.request()
    expected = accept_for(c.key)
    wrong = base64.b64encode(hashlib.sha1(b"not the key").digest()).decode()
    number = c.response(accept=wrong)
    c.shutdown(C2S)  # a conforming client fails the connection (no close frame owed)
    sc.expect("http_accept_mismatch", 0, S2C, None, number,
              f"expected={expected}, found={wrong}")


@scenario("http-accept-missing", "a 101 answer without Sec-WebSocket-Accept")
def _accept_missing(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    c.request()
    number = c.response(accept=None)
    c.shutdown(C2S)
    sc.expect("http_accept_missing", 0, S2C, None, number, "no Sec-WebSocket-Accept")


@scenario("http-key-missing", "upgrade requests without Sec-WebSocket-Key: conn 0 accepted "
          "anyway, conn 1 refused with 400")
def _key_missing(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    c.request(key=None)
    answer = c.response(accept="dGhpcyBpcyBub3QgYW4gYWNjZXB0Lg==")
    c.text(C2S, "hi")
    c.close(C2S)
    sc.expect("http_key_missing", 0, C2S, None, answer, "no Sec-WebSocket-Key")
    c = sc.conn()
    c.open()
    number = c.request(key=None)
    refused = c.response(400)
    c.shutdown(C2S)
    sc.expect("http_key_missing", 1, C2S, None, number, "no Sec-WebSocket-Key")
    sc.expect("http_status_not_101", 1, S2C, None, refused, "status 400")


@scenario("http-key-invalid", "Sec-WebSocket-Key is base64 of 5 bytes, not 16")
def _key_invalid(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    number = c.request(key="c2hvcnQ=")
    c.response()
    c.text(C2S, "hi")
    c.close(C2S)
    sc.expect("http_key_invalid", 0, C2S, None, number, "'c2hvcnQ=' decodes to 5 bytes, not 16")


@scenario("http-key-reused", "two connections send the same Sec-WebSocket-Key (the RFC's sample)")
def _key_reused(sc: Scenario) -> None:
    for _ in range(2):
        c = sc.conn()
        c.open()
        number = c.request(key="dGhlIHNhbXBsZSBub25jZQ==")
        c.response()
        c.text(C2S, "hi")
        c.close(C2S)
    sc.expect("http_key_reused", 1, C2S, None, number,
              "key 'dGhlIHNhbXBsZSBub25jZQ==' also sent on conn 0")


@scenario("http-version-not-13", "Sec-WebSocket-Version: 8, answered 426 with version 13")
def _version(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    number = c.request(version="8")
    answer = c.response(426, headers=[("Sec-WebSocket-Version", "13")])
    c.shutdown(C2S)
    sc.expect("http_version_not_13", 0, C2S, None, number, "Sec-WebSocket-Version: 8")
    sc.expect("http_status_not_101", 0, S2C, None, answer, "status 426")


@scenario("http-method-not-get", "an upgrade request with method POST, accepted with 101")
def _method(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    number = c.request(method="POST")
    c.response()
    c.text(C2S, "hi")
    c.close(C2S)
    sc.expect("http_method_not_get", 0, C2S, None, number, "method POST")


@scenario("http-host-missing", "an upgrade request without Host")
def _host(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    number = c.request(host=None)
    c.response()
    c.text(C2S, "hi")
    c.close(C2S)
    sc.expect("http_host_missing", 0, C2S, None, number, "no Host header")


@scenario("http-upgrade-tokens-missing", "no Connection: Upgrade in the request, no Upgrade in "
          "the 101")
def _tokens(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    req = c.request(connection=False)
    resp = c.response(upgrade=False)
    c.text(C2S, "hi")
    c.close(C2S)
    sc.expect("http_upgrade_tokens_missing", 0, C2S, None, req, "lacks Connection: Upgrade")
    sc.expect("http_upgrade_tokens_missing", 0, S2C, None, resp, "lacks Upgrade: websocket")


@scenario("http-duplicate-header", "Sec-WebSocket-Key twice in the request, "
          "Sec-WebSocket-Protocol twice in the 101")
def _duplicate(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    other = sc.ws_key()
    req = c.request(headers=[("Sec-WebSocket-Key", other), ("Sec-WebSocket-Protocol", "chat")])
    resp = c.response(headers=[("Sec-WebSocket-Protocol", "chat"),
                               ("Sec-WebSocket-Protocol", "chat")])
    c.text(C2S, "hi")
    c.close(C2S)
    sc.expect("http_duplicate_header", 0, C2S, None, req,
              "Sec-WebSocket-Key appears 2 times in the request")
    sc.expect("http_duplicate_header", 0, S2C, None, resp,
              "Sec-WebSocket-Protocol appears 2 times in the answer")


@scenario("http-subprotocol-not-offered", "the client offers chat.v1, the server selects chat.v3")
def _subprotocol(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    c.request(headers=[("Sec-WebSocket-Protocol", "chat.v1")])
    resp = c.response(headers=[("Sec-WebSocket-Protocol", "chat.v3")])
    c.text(C2S, "hi")
    c.close(C2S)
    sc.expect("http_subprotocol_not_offered", 0, S2C, None, resp,
              "server selected 'chat.v3'; client offered 'chat.v1'")


@scenario("http-extension-not-offered", "the client offers no extension, the server accepts "
          "permessage-deflate")
def _extension(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    c.request()
    resp = c.response(headers=[("Sec-WebSocket-Extensions", "permessage-deflate")])
    c.text(C2S, "hi")
    c.close(C2S)
    sc.expect("http_extension_not_offered", 0, S2C, None, resp,
              "server accepted 'permessage-deflate'; client offered none")


@scenario("http-data-with-101", "the server's first ping is in the same segment as the 101")
def _data_with_101(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    c.request()
    ping = frame(PING, b"hello")
    number = c.response(trailing=ping)
    c.frames = 1
    c.control(C2S, PONG, b"hello")
    c.close(C2S)
    sc.expect("http_data_with_101", 0, S2C, None, number,
              f"{len(ping)} bytes after the 101 head in the same segment")


@scenario("http-frames-before-101", "the client sends a frame before the server's answer")
def _before_101(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    c.request()
    early = frame(TEXT, b"too early", key=sc.key())
    index, number = c.ws(C2S, early)
    c.response()
    c.close(C2S)
    sc.expect("http_frames_before_101", 0, C2S, index[0], number,
              f"{len(early)} bytes (1 frame) sent by the client before the answer")


@scenario("http-frames-without-101", "the server refuses the upgrade (403), the client sends "
          "frames anyway (the smuggling pattern)")
def _without_101(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    c.request()
    refused = c.response(403)
    number = c.send(C2S, frame(TEXT, b"GET /admin HTTP/1.1", key=sc.key()))
    c.shutdown(C2S)
    sc.expect("http_status_not_101", 0, S2C, None, refused, "status 403 Forbidden")
    sc.expect("http_frames_without_101", 0, C2S, None, number,
              "c2s bytes frame as WebSocket after status 403")


@scenario("http-status-invalid", "the 101 answer's status code is written 1\u00b21 (a "
          "superscript two, not an ASCII digit)")
def _status_invalid(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    c.request()
    head = ("HTTP/1.1 1\u00b21 Switching Protocols\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_for(c.key)}\r\n\r\n").encode("latin-1")
    answer = c.send(S2C, head)
    c.shutdown(C2S)  # a client cannot read the answer: no WebSocket follows
    sc.expect("http_status_invalid", 0, S2C, None, answer,
              "status line 'HTTP/1.1 1\u00b21 Switching Protocols' has no three-digit status code")


@scenario("http-head-too-large", "a 101 answer whose head is larger than 64 KiB")
def _head_too_large(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    c.request()
    filler = [(f"X-Filler-{i}", "f" * 1000) for i in range(70)]
    head_lines = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket",
                  "Connection: Upgrade", f"Sec-WebSocket-Accept: {accept_for(c.key)}"]
    head_lines += [f"{n}: {v}" for n, v in filler]
    head = ("\r\n".join(head_lines) + "\r\n\r\n").encode()
    number = 0
    for i in range(0, len(head), 1400):
        number = c.send(S2C, head[i:i + 1400])
    c.shutdown(C2S)
    del number
    sc.expect("http_head_too_large", 0, S2C, None, None, "response head over 64 KiB")


# -- security ---------------------------------------------------------------------------

BROWSER = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/120.0.0.0 Safari/537.36")


@scenario("sec-origin-missing", "a browser User-Agent without an Origin header")
def _origin_missing(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    number = c.request(user_agent=BROWSER)
    c.response()
    c.text(C2S, "hi")
    c.close(C2S)
    sc.expect("sec_origin_missing", 0, C2S, None, number, "but no Origin")


@scenario("sec-origin-null", "Origin: null (a sandboxed iframe or a file:// page)")
def _origin_null(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    number = c.request(host="app.example", user_agent=BROWSER, headers=[("Origin", "null")])
    c.response()
    c.text(C2S, "hi")
    c.close(C2S)
    sc.expect("sec_origin_null", 0, C2S, None, number, "Origin: null")


@scenario("sec-cswsh-risk", "a cookie-authenticated upgrade from another site's page, accepted "
          "with 101 (cross-site WebSocket hijacking)")
def _cswsh(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    number = c.request("/account/live", host="bank.example", user_agent=BROWSER,
                       headers=[("Origin", "https://evil.example"),
                                ("Cookie", "session=8f14e45fceea167a5a36dedd4bea2543")])
    resp = c.response()
    c.text(S2C, '{"balance": 1200}')
    c.close(C2S)
    sc.expect("sec_origin_cross_site", 0, C2S, None, number,
              "Origin 'https://evil.example' is not Host 'bank.example'")
    sc.expect("sec_cswsh_risk", 0, S2C, None, resp,
              "Cookie sent, Origin 'https://evil.example' is cross-site for Host "
              "'bank.example', accepted with 101")


@scenario("sec-credentials-in-url", "an access token in the query string of a ws:// request")
def _creds_url(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    token = "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl"
    number = c.request(f"/stream?room=7&access_token={token}")
    c.response()
    c.text(C2S, "hi")
    c.close(C2S)
    sc.expect("sec_credentials_in_url", 0, C2S, None, number,
              f"query parameter 'access_token' ({len(token)} chars, 'eyJh'...)")


@scenario("sec-credentials-in-header", "Authorization Basic and an X-Api-Key on a ws:// request")
def _creds_header(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    key = "5f4dcc3b5aa765d61d8327deb882cf99"
    number = c.request(headers=[("Authorization", "Basic Ym9iOmh1bnRlcjI="),
                                ("X-Api-Key", key)])
    c.response()
    c.text(C2S, "hi")
    c.close(C2S)
    sc.expect("sec_credentials_in_header", 0, C2S, None, number,
              "Authorization Basic: user 'bob', a password of 7 characters; header "
              f"'X-Api-Key' ({len(key)} chars, '5f4d'...) in cleartext")


@scenario("sec-proxy-credentials", "ws:// through a SOCKS 5 proxy, username/password in the clear")
def _proxy_credentials(sc: Scenario) -> None:
    c = sc.conn(server_port=1080)
    c.open()
    c.send(C2S, b"\x05\x02\x00\x02")  # offers no authentication and username/password
    c.send(S2C, b"\x05\x02")  # username/password, please (RFC 1929)
    number = c.send(C2S, b"\x01\x03bob\x07hunter2")
    c.send(S2C, b"\x01\x00")
    c.send(C2S, b"\x05\x01\x00\x03\x10chat.example.com\x00\x50")  # CONNECT
    c.send(S2C, b"\x05\x00\x00\x01\x0a\x00\x00\x02\x04\x38")
    c.request(host="chat.example.com")
    c.response()
    c.text(C2S, "hi")
    c.close(C2S)
    sc.expect("sec_proxy_credentials", 0, C2S, None, number,
              "SOCKS 5 username/password: user 'bob', a password of 7 bytes")


@scenario("sec-credentials-in-subprotocol", "a bearer token offered as a subprotocol")
def _creds_subprotocol(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    token = "bearer.eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
    number = c.request(headers=[("Sec-WebSocket-Protocol", f"chat, {token}")])
    c.response(headers=[("Sec-WebSocket-Protocol", "chat")])
    c.text(C2S, "hi")
    c.close(C2S)
    sc.expect("sec_credentials_in_subprotocol", 0, C2S, None, number,
              f"offered subprotocol {token[:24]!r}... ({len(token)} chars) carries a credential")


@scenario("sec-mask-zero", "client frames masked with the all-zero key")
def _mask_zero(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    zero = b"\0\0\0\0"
    (index,), number = c.ws(C2S, frame(TEXT, b"in clear", key=zero))
    c.ws(C2S, frame(TEXT, b"also in clear", key=zero))
    c.close(C2S)
    sc.expect("sec_mask_zero", 0, C2S, index, number, "masking key 0x00000000 on 2 client frames")


@scenario("sec-mask-predictable", "conn 0 masks with keys 1, 2, 3, 4...; conn 1 with one "
          "constant key")
def _mask_predictable(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    numbers = []
    for i in range(1, 6):
        (index,), number = c.ws(C2S, frame(TEXT, f"message {i}".encode(),
                                           key=i.to_bytes(4, "big")))
        numbers.append((index, number))
    c.close(C2S, code=1000)
    sc.expect("sec_mask_predictable", 0, C2S, numbers[3][0], numbers[3][1],
              "sequential masking keys: 0x00000001 then +1 per frame (4 frames in a row)")
    c = sc.conn()
    c.upgrade()
    key = bytes.fromhex("c0ffee00")
    first = []
    for i in range(3):
        (index,), number = c.ws(C2S, frame(TEXT, f"again {i}".encode(), key=key))
        first.append((index, number))
    c.ws(S2C, frame(CLOSE, close_payload(1000)))
    c.ws(C2S, frame(CLOSE, close_payload(1000), key=key))
    c.shutdown(S2C)
    sc.expect("sec_mask_predictable", 1, C2S, first[1][0], first[1][1],
              "masking key 0xc0ffee00 used by all 4 client frames")


# -- framing ------------------------------------------------------------------------------

@scenario("ws-client-unmasked", "the client sends an unmasked text frame")
def _client_unmasked(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    (index,), number = c.ws(C2S, frame(TEXT, b"no mask"))
    c.close(S2C, 1002, b"")
    sc.expect("ws_client_unmasked", 0, C2S, index, number, "without a mask")


@scenario("ws-server-masked", "the server sends a masked text frame")
def _server_masked(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    (index,), number = c.ws(S2C, frame(TEXT, b"masked", key=bytes.fromhex("01020304")))
    c.close(C2S, 1002, b"")
    sc.expect("ws_server_masked", 0, S2C, index, number, "masked with key 0x01020304")


@scenario("ws-rsv-unnegotiated", "RSV2 and RSV3 set on a client frame; no extension negotiated")
def _rsv(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    (index,), number = c.ws(C2S, frame(TEXT, b"covert", rsv=RSV2 | RSV3, key=sc.key()))
    c.close(S2C, 1002, b"")
    sc.expect("ws_rsv_unnegotiated", 0, C2S, index, number, "RSV bits 0x3 set")


@scenario("ws-reserved-opcode", "frames with the reserved opcodes 0x3 and 0xB")
def _opcode(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    (i1,), n1 = c.ws(C2S, frame(0x3, b"data?", key=sc.key()))
    (i2,), n2 = c.ws(S2C, frame(0xB, b"control?"))
    c.close(C2S, 1002, b"")
    sc.expect("ws_reserved_opcode", 0, C2S, i1, n1, "reserved opcode 0x3")
    sc.expect("ws_reserved_opcode", 0, S2C, i2, n2, "reserved opcode 0xb")


@scenario("ws-nonminimal-length", "19 bytes sent with a 16-bit length, 200 with a 64-bit one")
def _nonminimal(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    (i1,), n1 = c.ws(C2S, frame(TEXT, b"x" * 19, key=sc.key(), form=16))
    (i2,), n2 = c.ws(S2C, frame(BINARY, b"y" * 200, form=64))
    c.close(C2S, 1002, b"")
    sc.expect("ws_nonminimal_length", 0, C2S, i1, n1, "19 sent in the 16-bit form")
    sc.expect("ws_nonminimal_length", 0, S2C, i2, n2, "200 sent in the 64-bit form")


@scenario("ws-length-msb-set", "a 64-bit length with its most significant bit set")
def _msb(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    c.text(C2S, "normal first")
    declared = (1 << 63) | 16
    (index,), number = c.ws(C2S, frame(BINARY, b"z" * 16, key=sc.key(), declared=declared,
                                       form=64))
    c.shutdown(C2S)
    del number  # a truncated frame is reported at the end of its stream
    sc.expect("ws_length_msb_set", 0, C2S, index, None,
              f"64-bit length 0x{declared:016x} has its most significant bit set")
    sc.expect("ws_truncated_frame", 0, C2S, index, None,
              f"declared {declared} bytes, 16 captured before the end of the stream")
    sc.expect("res_huge_declared_length", 0, C2S, index, None,
              f"declared {declared} bytes, 16 captured")
    sc.expect("ws_no_close", 0, C2S, None, None, "FIN from the client")


@scenario("ws-control-too-long", "a 126-byte ping (16-bit length)")
def _control_too_long(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    index, number = c.control(C2S, PING, b"p" * 126)
    c.close(S2C, 1002, b"")
    sc.expect("ws_control_too_long", 0, C2S, index, number, "126 > 125 bytes in a ping frame")


@scenario("ws-control-fragmented", "a ping without FIN")
def _control_fragmented(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    index, number = c.control(C2S, PING, b"half", fin=False)
    c.close(S2C, 1002, b"")
    sc.expect("ws_control_fragmented", 0, C2S, index, number, "ping frame without FIN")


@scenario("ws-orphan-continuation", "a continuation frame with no message to continue")
def _orphan(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    (index,), number = c.ws(C2S, frame(CONT, b"where is the start?", key=sc.key()))
    c.close(S2C, 1002, b"")
    sc.expect("ws_orphan_continuation", 0, C2S, index, number, "no message to continue")


@scenario("ws-message-interleaved", "a binary frame while a fragmented text message is open")
def _interleaved(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    c.ws(C2S, frame(TEXT, b"part one ", fin=False, key=sc.key()))
    (index,), number = c.ws(C2S, frame(BINARY, b"\x01\x02", key=sc.key()))
    c.close(S2C, 1002, b"")
    sc.expect("ws_message_interleaved", 0, C2S, index, number,
              "new binary frame while a fragmented text message of 1 frames is open")


@scenario("ws-invalid-utf8", "a fragmented text message whose bytes are not UTF-8")
def _utf8(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    (first,), _ = c.ws(C2S, frame(TEXT, b"caf\xc3", fin=False, key=sc.key()))
    c.ws(C2S, frame(CONT, b"\x28 ok", key=sc.key()))
    c.close(S2C, 1007, b"")
    sc.expect("ws_invalid_utf8", 0, C2S, first, None,
              "text message is not valid UTF-8 at byte 3")


@scenario("ws-close-1-byte", "a close frame with a 1-byte payload")
def _close_1(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    index, number = c.control(C2S, CLOSE, b"\x03")
    c.control(S2C, CLOSE, close_payload(1002))
    c.shutdown(S2C)
    sc.expect("ws_close_1_byte", 0, C2S, index, number, "1-byte payload")


@scenario("ws-close-code-invalid", "six connections closing with 1005, 1006, 1015, 999, 1004 "
          "and 2000")
def _close_codes(sc: Scenario) -> None:
    for conn_id, code in enumerate((1005, 1006, 1015, 999, 1004, 2000)):
        c = sc.conn()
        c.upgrade()
        index, number = c.control(C2S, CLOSE, close_payload(code))
        c.control(S2C, CLOSE, close_payload(1002))
        c.shutdown(S2C)
        sc.expect("ws_close_code_invalid", conn_id, C2S, index, number,
                  f"close code {code} may not be sent")


@scenario("ws-close-reason-invalid-utf8", "a close reason that is not UTF-8")
def _close_reason(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    index, number = c.control(C2S, CLOSE, close_payload(1000, b"\xff\xfebad"))
    c.control(S2C, CLOSE, close_payload(1007))
    c.shutdown(S2C)
    sc.expect("ws_close_reason_invalid_utf8", 0, C2S, index, number, "not valid UTF-8")


@scenario("ws-data-after-close", "the client sends a text frame after its close frame")
def _after_close(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    close_index, _ = c.control(C2S, CLOSE, close_payload(1000))
    index, number = c.text(C2S, "one more thing")
    c.control(S2C, CLOSE, close_payload(1000))
    c.shutdown(S2C)
    sc.expect("ws_data_after_close", 0, C2S, index, number,
              f"text frame after this side's close (frame {close_index}); 1 frame after it")


@scenario("ws-close-unanswered", "the client closes; the server ends TCP without a close frame")
def _close_unanswered(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    c.text(C2S, "hi")
    index, number = c.control(C2S, CLOSE, close_payload(1000, b"done"))
    c.shutdown(S2C)
    sc.expect("ws_close_unanswered", 0, C2S, index, number,
              "close 1000 from the client got no close in reply (the server ended TCP)")


@scenario("ws-no-close", "both sides end TCP without any close frame")
def _no_close(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    c.text(C2S, "hi")
    c.text(S2C, "hi")
    fin, _ = c.shutdown(S2C)
    sc.expect("ws_no_close", 0, S2C, None, None,
              "TCP ended (FIN from the server) without a close frame")
    del fin


@scenario("ws-ping-unanswered", "the client pings; the server sends data and closes, never a pong")
def _ping_unanswered(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    index, number = c.control(C2S, PING, b"are you there")
    c.text(S2C, "busy")
    c.close(S2C)
    sc.expect("ws_ping_unanswered", 0, C2S, index, number,
              "ping 'are you there' got no pong (the server closed without answering)")


@scenario("ws-pong-mismatch", "the server's pong does not echo the ping (then a correct one)")
def _pong_mismatch(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    c.control(C2S, PING, b"ping-1")
    index, number = c.control(S2C, PONG, b"something else")
    c.control(S2C, PONG, b"ping-1")
    c.close(C2S)
    sc.expect("ws_pong_mismatch", 0, S2C, index, number,
              "pong 'something else' matches no outstanding ping (latest 'ping-1')")


@scenario("ws-truncated-frame", "the client declares 2 GiB and sends 12 bytes, then ends TCP")
def _truncated(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    c.text(C2S, "hi")
    declared = 1 << 31
    (index,), number = c.ws(C2S, frame(BINARY, b"A" * 12, key=sc.key(), declared=declared))
    c.shutdown(C2S)
    sc.expect("ws_truncated_frame", 0, C2S, index, None,
              f"declared {declared} bytes, 12 captured before the end of the stream")
    sc.expect("res_huge_declared_length", 0, C2S, index, None,
              f"declared {declared} bytes, 12 captured (threshold 16777216)")
    sc.expect("ws_no_close", 0, C2S, None, None, "FIN from the client")
    del number


@scenario("ws-message-incomplete", "TCP ends inside a fragmented message")
def _incomplete(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    (index,), _ = c.ws(C2S, frame(TEXT, b"first half ", fin=False, key=sc.key()))
    c.shutdown(C2S)
    sc.expect("ws_message_incomplete", 0, C2S, index, None, "after 1 frames")
    sc.expect("ws_no_close", 0, C2S, None, None, "FIN from the client")


@scenario("ws-message-gap", "the segment holding the middle one of 3 fragments is lost")
def _message_gap(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    start = c.seq[C2S] - (1_000_000 + c.ends[C2S][1] * 7) - 1  # stream offset
    (index,), _ = c.ws(C2S, frame(TEXT, b"first, ", fin=False, key=sc.key()))
    lost = frame(CONT, b"second (never captured), ", fin=False, key=sc.key())
    c.seq[C2S] += len(lost)  # sent, not captured: the parser finds the next frame
    c.ws(C2S, frame(CONT, b"third", key=sc.key()))
    c.ack(S2C)  # the server acknowledges beyond the hole
    at = start + 6 + len(b"first, ")
    sc.expect("tcp_gap", 0, C2S, None, None, f"{len(lost)} bytes missing at stream offset {at}")
    sc.expect("ws_message_incomplete", 0, C2S, index, None,
              f"lacks {len(lost)} stream bytes no captured frame holds (stream offsets "
              f"{at}-{at + len(lost)})")
    c.close(C2S)


@scenario("ws-payload-cut", "a 300-byte frame read with max_payload=100 (Options)")
def _payload_cut(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    wire = frame(BINARY, bytes(range(256)) + b"x" * 44)
    index = c.frames
    c.frames += 1
    number = 0
    for i in range(0, len(wire), 100):
        number = c.send(S2C, wire[i:i + 100])
    c.close(C2S)
    sc.options = {"max_payload": 100}
    sc.expect("ws_payload_cut", 0, S2C, index, number, "declared 300 bytes; kept the first 100")


# -- permessage-deflate ---------------------------------------------------------------------

PMD = [("Sec-WebSocket-Extensions", "permessage-deflate")]


def _pmd_conn(sc: Scenario, answer: str = "permessage-deflate",
              offer: str = "permessage-deflate") -> Conn:
    c = sc.conn()
    c.open()
    c.request(headers=[("Sec-WebSocket-Extensions", offer)])
    c.response(headers=[("Sec-WebSocket-Extensions", answer)])
    return c


@scenario("pmd-rsv1-on-control", "permessage-deflate; a ping with RSV1")
def _pmd_control(sc: Scenario) -> None:
    c = _pmd_conn(sc)
    index, number = c.control(C2S, PING, b"squeezed?", rsv=RSV1)
    c.close(S2C, 1002, b"")
    sc.expect("pmd_rsv1_on_control", 0, C2S, index, number, "RSV1 set on a ping frame")


@scenario("pmd-rsv1-on-continuation", "permessage-deflate; RSV1 on a continuation frame")
def _pmd_cont(sc: Scenario) -> None:
    c = _pmd_conn(sc)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = deflate_message(b"hello hello hello", comp)
    (first,), _ = c.ws(C2S, frame(TEXT, data[:4], fin=False, rsv=RSV1, key=sc.key()))
    (index,), number = c.ws(C2S, frame(CONT, data[4:], rsv=RSV1, key=sc.key()))
    c.close(S2C, 1002, b"")
    sc.expect("pmd_rsv1_on_continuation", 0, C2S, index, number, "RSV1 set on a continuation")
    del first


@scenario("pmd-inflate-failed", "permessage-deflate; a compressed message that is not DEFLATE")
def _pmd_failed(sc: Scenario) -> None:
    c = _pmd_conn(sc)
    (index,), number = c.ws(C2S, frame(TEXT, b"\xff\xff\xff\xff", rsv=RSV1, key=sc.key()))
    c.close(S2C, 1007, b"")
    sc.expect("pmd_inflate_failed", 0, C2S, index, number, "invalid block type")


@scenario("pmd-params-invalid", "conn 0 accepts server_max_window_bits=20; conn 1 answers "
          "client_max_window_bits=10 to an offer without it")
def _pmd_params(sc: Scenario) -> None:
    c = _pmd_conn(sc, answer="permessage-deflate; server_max_window_bits=20")
    resp0 = c.response_packet
    c.text(C2S, "hi")
    c.close(C2S)
    c = _pmd_conn(sc, answer="permessage-deflate; client_max_window_bits=10")
    resp1 = c.response_packet
    c.text(C2S, "hi")
    c.close(C2S)
    sc.expect("pmd_params_invalid", 0, S2C, None, resp0,
              "server_max_window_bits=20 is not a value from 8 to 15")
    sc.expect("pmd_params_invalid", 1, S2C, None, resp1,
              "client_max_window_bits in the answer, but the client did not offer it")


@scenario("pmd-context-takeover-violated", "client_no_context_takeover agreed, but the "
          "client's second message refers to the first one's window")
def _pmd_takeover(sc: Scenario) -> None:
    c = _pmd_conn(sc, answer="permessage-deflate; client_no_context_takeover",
                  offer="permessage-deflate; client_no_context_takeover")
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    text = b'{"ticker": "ACME", "price": 1234.5, "volume": 1000}'
    c.ws(C2S, frame(TEXT, deflate_message(text, comp), rsv=RSV1, key=sc.key()))
    (index,), number = c.ws(C2S, frame(TEXT, deflate_message(text, comp), rsv=RSV1,
                                       key=sc.key()))
    c.close(S2C, 1007, b"")
    sc.expect("pmd_context_takeover_violated", 0, C2S, index, number,
              "refers to the previous message's window although no_context_takeover")


@scenario("pmd-window-bits-exceeded", "client_max_window_bits=9 agreed; the client's second "
          "message refers 1000 bytes back into the first")
def _pmd_window(sc: Scenario) -> None:
    c = _pmd_conn(sc, answer="permessage-deflate; client_max_window_bits=9",
                  offer="permessage-deflate; client_max_window_bits")
    rng = random.Random(7)
    chunk = bytes(rng.getrandbits(8) for _ in range(1000))
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)  # a 32 KiB window, not 512 bytes
    c.ws(C2S, frame(BINARY, deflate_message(chunk, comp), rsv=RSV1, key=sc.key()))
    (index,), number = c.ws(C2S, frame(BINARY, deflate_message(chunk, comp), rsv=RSV1,
                                       key=sc.key()))
    c.close(S2C, 1007, b"")
    sc.expect("pmd_window_bits_exceeded", 0, C2S, index, number,
              "refers back further than its window of 2**9 bytes")


@scenario("pmd-bomb", "a 20 MiB message of zeros compressed to about 20 KB (decompression bomb)")
def _pmd_bomb(sc: Scenario) -> None:
    c = _pmd_conn(sc)
    size = 20 << 20
    data = deflate_message(bytes(size), zlib.compressobj(9, zlib.DEFLATED, -15))
    wire = frame(BINARY, data, rsv=RSV1)
    first = c.frames
    c.frames += 1
    number = 0
    for i in range(0, len(wire), 1400):
        number = c.send(S2C, wire[i:i + 1400])
    c.close(C2S)
    ratio = size / len(data)
    sc.expect("pmd_ratio_excessive", 0, S2C, first, number,
              f"{size} bytes inflated from {len(data)} (ratio {ratio:.0f}, threshold 100)")
    sc.expect("res_oversized_message", 0, S2C, first, number,
              f"{size} bytes in 1 frame (threshold 16777216)")


@scenario("res-inflate-budget-exceeded", "permessage-deflate; the server sends three "
          "compressed JSON texts of 40,000 bytes: the third goes past the connection's "
          "inflation budget and is kept compressed")
def _inflate_budget(sc: Scenario) -> None:
    sc.thresholds = {"inflate_budget_connection": 100_000}
    c = _pmd_conn(sc)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    rng = random.Random(11)
    hit: tuple[list[int], int] = ([], 0)
    for n in range(3):
        rows = []
        while sum(map(len, rows)) < 40_000:
            rows.append(f'{{"seq":{n},"id":{rng.randrange(10**6)},"v":{rng.random():.6f}}}')
        text = ("[" + ",".join(rows) + "]").encode()[:39_999] + b"]"
        hit = c.ws(S2C, frame(TEXT, deflate_message(text, comp), rsv=RSV1))
    c.close(C2S)
    (index,), number = hit
    sc.expect("res_inflate_budget_exceeded", 0, S2C, index, number,
              "the connection's inflation budget of 100000 bytes is used up (80000 inflated)")


@scenario("pmd-context-lost", "capture starts mid-connection; a compressed message refers to "
          "an earlier, uncaptured one")
def _pmd_lost(sc: Scenario) -> None:
    c = sc.conn()
    c.conn_id = 0
    sc.conns = 1
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    text = b'{"event": "tick", "sequence": 1, "payload": "abcdefghijklmnop"}'
    deflate_message(text, comp)  # sent before the capture began
    one = frame(TEXT, deflate_message(text, comp), rsv=RSV1)
    two = frame(TEXT, deflate_message(text, comp), rsv=RSV1)
    (i1, _i2), number = c.ws(S2C, one, two)
    c.close(S2C)
    sc.expect("pmd_context_lost", 0, S2C, i1, number, "window from before the capture")
    sc.expect("pmd_context_lost", 0, S2C, i1 + 1, number,
              "the window of an earlier message that could not be inflated")
    sc.expect("tcp_midstream", 0, None, None, None, "SYN was not captured")
    sc.expect("http_handshake_missing", 0, None, None, number, "without the opening handshake")
    sc.expect("sec_plaintext_ws", 0, None, None, None, "no handshake captured")


# -- resources -------------------------------------------------------------------------------

@scenario("res-frame-flood", "the client sends 1200 small frames within half a second")
def _frame_flood(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    sent = 0
    hit = None
    for _ in range(12):
        frames = [frame(BINARY, b"!", key=sc.key()) for _ in range(100)]
        indexes, number = c.ws(C2S, *frames, dt=0.04)
        for index in indexes:
            sent += 1
            if sent == 1001 and hit is None:
                hit = (index, number)
    c.close(C2S)
    sc.expect("res_frame_flood", 0, C2S, hit[0], hit[1],  # type: ignore[index]
              "1001 frames within 1 s (threshold 1000/s)")


@scenario("res-ping-flood", "the client sends 20 pings in 0.2 s (each answered)")
def _ping_flood(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    hit = None
    for i in range(20):
        index, number = c.control(C2S, PING, f"{i}".encode(), dt=0.005)
        c.control(S2C, PONG, f"{i}".encode(), dt=0.005)
        if i == 10:
            hit = (index, number)
    c.close(C2S)
    sc.expect("res_ping_flood", 0, C2S, hit[0], hit[1],  # type: ignore[index]
              "11 pings within 1 s (threshold 10/s)")


@scenario("res-tiny-fragments", "a text message in 200 fragments of 1 byte")
def _tiny(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    text = b"abcdefghij" * 20
    frames = [frame(TEXT if i == 0 else CONT, text[i:i + 1], fin=i == len(text) - 1,
                    key=sc.key()) for i in range(len(text))]
    first = c.frames
    number = 0
    for i in range(0, len(frames), 50):
        _, number = c.ws(C2S, *frames[i:i + 50])
    c.close(C2S)
    sc.expect("res_tiny_fragments", 0, C2S, first, number,
              "200 fragments of 1.0 bytes on average")


@scenario("res-slow-handshake", "the request head arrives in 6 pieces over 30 seconds")
def _slow_handshake(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    number = c.request(chunks=[6.0] * 5)
    c.response()
    c.text(C2S, "hi")
    c.close(C2S)
    sc.expect("res_slow_handshake", 0, C2S, None, number, "request head took 30.0 s to arrive")


@scenario("res-slow-frame", "a 100-byte frame arrives 10 bytes every 4 seconds")
def _slow_frame(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade()
    wire = frame(BINARY, b"s" * 94, key=sc.key())  # 2 + 4 + 94 = 100 bytes
    index = c.frames
    c.frames += 1
    number = 0
    for i in range(0, len(wire), 10):
        number = c.send(C2S, wire[i:i + 10], dt=4.0)
    c.close(C2S)
    sc.expect("res_slow_frame", 0, C2S, index, number,
              "frame took 36.0 s to arrive (100 bytes, 2.8 B/s")


@scenario("res-many-connections", "one client opens 33 concurrent connections to one server")
def _many(sc: Scenario) -> None:
    conns = []
    for _ in range(33):
        c = sc.conn()
        c.upgrade()
        conns.append(c)
    for c in conns:
        c.close(C2S)
    sc.expect("res_many_connections", 32, None, None, None,
              "33 concurrent connections from 10.0.0.1 to 10.0.0.2:80 (threshold 32)")


# -- TLS (wss://) ---------------------------------------------------------------------------------

def _wss(sc: Scenario, tls: Tls13, embed: bool = True) -> tuple[Conn, int, int]:
    """A wss:// connection on port 443 through the TLS handshake; the key log embedded."""
    c = sc.conn(server_port=443)
    hello, server = c.tls_open(tls)
    if embed:
        sc.pcap.fmt, sc.pcap.secrets = "pcapng", tls.keylog
    return c, hello, server


@scenario("tls-keys-missing", "a wss:// connection whose key log is not in the capture: "
          "its row has the hello facts, its content is not read")
def _tls_keys_missing(sc: Scenario) -> None:
    tls = Tls13(sc)
    c, _hello, server = _wss(sc, tls, embed=False)
    finished = server + 1  # the client's Finished
    c.request("/chat")
    c.response()
    c.text(C2S, "hello")
    c.shutdown(C2S)
    detail = f"client_random={tls.client_random.hex()}"
    sc.expect("tls_keys_missing", 0, S2C, None, server, detail)
    sc.expect("tls_keys_missing", 0, C2S, None, finished, detail)


@scenario("tls-decrypt-failed", "one server record of a wss:// connection is changed on the "
          "way: it does not authenticate; the records after it are read")
def _tls_decrypt_failed(sc: Scenario) -> None:
    tls = Tls13(sc)
    c, _hello, _server = _wss(sc, tls)
    c.upgrade_after_tls()
    c.text(S2C, "first")
    record = bytearray(tls.seal(S2C, frame(TEXT, b"changed on the way")))
    record[12] ^= 0x40
    c.frames += 1
    number = c.packet(S2C, "PA", bytes(record))
    c.text(S2C, "after the bad record")
    c.close(C2S)
    sc.expect("tls_decrypt_failed", 0, S2C, None, number,
              "record of 37 bytes, seq=2: record does not authenticate")


@scenario("tls-record-too-long", "a wss:// server sends a record header declaring 40000 bytes")
def _tls_record_too_long(sc: Scenario) -> None:
    tls = Tls13(sc)
    c, _hello, _server = _wss(sc, tls)
    c.upgrade_after_tls()
    c.text(C2S, "hello")
    number = c.packet(S2C, "PA", struct.pack(">BHH", 23, 0x0303, 40000) + bytes(64))
    c.shutdown(C2S)
    sc.expect("tls_record_too_long", 0, S2C, None, number, "length=40000 > 16640")
    sc.expect("ws_no_close", 0, C2S, None, None, "TCP ended (FIN from the client)")


@scenario("tls-record-invalid", "bytes that are not a TLS record in a wss:// server stream, "
          "then records again")
def _tls_record_invalid(sc: Scenario) -> None:
    tls = Tls13(sc)
    c, _hello, _server = _wss(sc, tls)
    c.upgrade_after_tls()
    number = c.packet(S2C, "PA", b"not a TLS record at all")
    c.text(S2C, "read again")
    c.close(C2S)
    sc.expect("tls_record_invalid", 0, S2C, None, number, "type=110, version=0x6f74")


@scenario("tls-handshake-invalid", "a ClientHello whose extensions run past its end "
          "(so the keys of the connection cannot be found either)")
def _tls_handshake_invalid(sc: Scenario) -> None:
    tls = Tls13(sc)
    c = sc.conn(server_port=443)
    c.open()
    hello = bytearray(tls.client_hello())
    hello[-3] = 0xFF  # the last extension's length now runs past the message
    number = c.packet(C2S, "PA", bytes(hello))
    server = c.packet(S2C, "PA", tls.server_flight())
    sc.pcap.fmt, sc.pcap.secrets = "pcapng", tls.keylog
    c.shutdown(C2S)
    sc.expect("tls_handshake_invalid", 0, C2S, None, number, "message type 1")
    sc.expect("tls_keys_missing", 0, S2C, None, server, "client_random=unknown")


@scenario("tls-alert-fatal", "the server answers a ClientHello with a fatal handshake_failure "
          "alert")
def _tls_alert_fatal(sc: Scenario) -> None:
    tls = Tls13(sc)
    c = sc.conn(server_port=443)
    c.open()
    c.packet(C2S, "PA", tls.client_hello())
    number = c.packet(S2C, "PA", tls_record(21, b"\x02\x28"))
    c.shutdown(S2C)
    sc.expect("tls_alert_fatal", 0, S2C, None, number, "description=handshake_failure (40)")


@scenario("tls-weak", "a server that chooses TLS 1.0 with static-RSA key exchange")
def _tls_weak(sc: Scenario) -> None:
    tls = Tls13(sc)
    c = sc.conn(server_port=443)
    c.open()
    c.packet(C2S, "PA", tls.client_hello())
    body = (struct.pack(">H", 0x0301) + tls.server_random + vec(b"", 1)
            + struct.pack(">HB", 0x002F, 0))
    number = c.packet(S2C, "PA", tls_record(22, handshake(2, body)))
    c.shutdown(C2S)
    sc.expect("tls_weak", 0, S2C, None, number, "version=TLS 1.0")


@scenario("tls-alpn-h2", "a TLS server chooses HTTP/2 by ALPN, and only the handshake "
          "secrets are in the capture: a WebSocket there would ride HTTP/2 (RFC 8441), unread")
def _tls_alpn_h2(sc: Scenario) -> None:
    tls = Tls13(sc, alpn="h2")
    c, _hello, server = _wss(sc, tls)
    sc.pcap.secrets = "".join(line + "\n" for line in tls.keylog.splitlines()
                              if "HANDSHAKE" in line)
    data = c.send(C2S, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    c.shutdown(C2S)
    sc.expect("tls_alpn_h2", 0, S2C, None, server, "alpn=h2")
    sc.expect("tls_keys_missing", 0, C2S, None, data,
              f"client_random={tls.client_random.hex()}")


class _H2:
    """An HTTP/2 connection in a wss:// connection (ALPN h2, TLS 1.3, keys
    embedded), a WebSocket opened on stream 1 by extended CONNECT (RFC 8441):
    frames by hyperframe, header blocks by hpack."""

    def __init__(self, sc: Scenario, allowed: bool = True) -> None:
        from hpack import Encoder
        from hyperframe.frame import SettingsFrame

        self.c, _hello, _server = _wss(sc, Tls13(sc, alpn="h2"))
        self.encoders = {C2S: Encoder(), S2C: Encoder()}
        self.c.send(C2S, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                    + SettingsFrame(0, settings={}).serialize())
        self.c.send(S2C, SettingsFrame(0, settings={
            SettingsFrame.ENABLE_CONNECT_PROTOCOL: 1} if allowed else {}).serialize())
        self.request = self.headers(C2S, 1, [(":method", "CONNECT"), (":protocol", "websocket"),
                              (":scheme", "https"), (":path", "/chat"),
                              (":authority", "example.test"), ("sec-websocket-version", "13"),
                              ("origin", "https://example.test")])
        self.headers(S2C, 1, [(":status", "200")])

    def headers(self, d: str, stream: int, fields: list[tuple[str, str]]) -> int:
        from hyperframe.frame import HeadersFrame

        block = self.encoders[d].encode(fields)
        return self.c.send(d, HeadersFrame(stream, block, flags=["END_HEADERS"]).serialize())

    def data(self, d: str, payload: bytes, stream: int = 1) -> int:
        from hyperframe.frame import DataFrame

        return self.c.send(d, DataFrame(stream, payload).serialize())

    def end(self) -> None:
        """TCP closed with no close frame: the stream ends with the connection's FIN."""
        self.c.shutdown(C2S)
        self.c.sc.expect("ws_no_close", 0, C2S, None, None, "the HTTP/2 stream ended (TCP FIN "
                         "from the client) without a close frame")

    def text(self, d: str, text: str) -> int:
        return self.data(d, frame(TEXT, text.encode(), key=self.c.sc.key() if d == C2S else None))


@scenario("h2-connect-not-enabled", "a WebSocket over HTTP/2 whose client sends the extended "
          "CONNECT though the server's SETTINGS did not allow it (and the server takes it)")
def _h2_connect_not_enabled(sc: Scenario) -> None:
    h2 = _H2(sc, allowed=False)
    h2.text(C2S, "hello")
    h2.text(S2C, "hi")
    h2.end()
    sc.expect("h2_connect_not_enabled", 0, C2S, None, h2.request,
              "extended CONNECT (:protocol websocket) before the server sent "
              "SETTINGS_ENABLE_CONNECT_PROTOCOL = 1")


@scenario("h2-stream-reset", "a WebSocket over HTTP/2 (RFC 8441) in a decrypted wss:// "
          "connection, ended by the client's RST_STREAM CANCEL (what a browser does when the "
          "page goes away)")
def _h2_stream_reset(sc: Scenario) -> None:
    from hyperframe.frame import RstStreamFrame

    h2 = _H2(sc)
    h2.text(C2S, "hello")
    h2.text(S2C, "hi")
    reset = h2.c.send(C2S, RstStreamFrame(1, error_code=8).serialize())
    h2.c.shutdown(C2S)
    sc.expect("h2_stream_reset", 0, C2S, None, reset, "RST_STREAM CANCEL (8) from the client")
    sc.expect("ws_no_close", 0, C2S, None, None,
              "the HTTP/2 stream ended (RST_STREAM from the client) without a close frame")


@scenario("h2-malformed", "a WebSocket over HTTP/2: the client sends a DATA frame in the "
          "middle of a header block (RFC 9113 section 6.10 wants CONTINUATION there)")
def _h2_malformed(sc: Scenario) -> None:
    from hyperframe.frame import DataFrame, HeadersFrame

    h2 = _H2(sc)
    h2.text(C2S, "hello")
    open_block = HeadersFrame(3, h2.encoders[C2S].encode([(":method", "GET"), (":path", "/")]))
    bad = h2.c.send(C2S, open_block.serialize() + DataFrame(1, b"\x81\x00").serialize())
    h2.text(S2C, "the server still talks")
    h2.end()
    sc.expect("h2_malformed", 0, C2S, None, bad,
              "HTTP/2 connection: DataFrame inside a header block (CONTINUATION expected)")


@scenario("h2-headers-unreadable", "a WebSocket over HTTP/2: a header block of the server's "
          "that HPACK cannot decode (an index past both tables)")
def _h2_headers_unreadable(sc: Scenario) -> None:
    from hyperframe.frame import HeadersFrame

    h2 = _H2(sc)
    h2.text(C2S, "hello")
    bad = h2.c.send(S2C, HeadersFrame(3, b"\xbf\xff\xff\x7f", flags=["END_HEADERS"]
                                      ).serialize())
    h2.text(S2C, "DATA is still read")
    h2.end()
    sc.expect("h2_headers_unreadable", 0, S2C, None, bad,
              "HTTP/2 connection: header block on stream 3: InvalidTableIndex; the "
              "direction's later header blocks cannot be read")


@scenario("tls-keys-late", "records of a TLS connection wait for keys that never come, past "
          "the bound held (a live capture following a key log)")
def _tls_keys_late(sc: Scenario) -> None:
    tls = Tls13(sc)
    c, _hello, _server = _wss(sc, tls, embed=False)
    request = c.request("/chat")
    response = c.response()
    c.send(S2C, b"x" * 200)
    c.shutdown(C2S)
    sc.options = {"tls_hold": 100}
    for d, number in ((C2S, request), (S2C, response)):
        sc.expect("tls_keys_late", 0, d, None, number, "later records not kept")
        sc.expect("tls_keys_missing", 0, d, None, number, "client_random=")


# -- application protocols (wspcap.app decoders, issue 18) ------------------------------------

GQL = "graphql-transport-ws"


def _subprotocol_upgrade(c: Conn, protocol: str, path: str = "/graphql") -> None:
    """An upgrade that offers and accepts ``protocol``."""
    c.request(path, headers=[("Sec-WebSocket-Protocol", protocol)])
    c.response(headers=[("Sec-WebSocket-Protocol", protocol)])


def _mqtt_connect(client_id: bytes, keep_alive: int, user: bytes = b"", password: bytes = b"") -> bytes:
    """An MQTT 3.1.1 CONNECT packet (section 3.1), laid out by hand."""
    flags = 0x02 | (0x80 if user else 0) | (0x40 if password else 0)
    body = b"\x00\x04MQTT\x04" + bytes([flags]) + struct.pack(">H", keep_alive)
    for part in (client_id, user, password):
        if part or part is client_id:
            body += struct.pack(">H", len(part)) + part
    return bytes([0x10, len(body)]) + body


def _binary(c: Conn, d: str, data: bytes, dt: float = 0.001) -> tuple[int, int]:
    key = c.sc.key() if d == C2S else None
    (index,), number = c.ws(d, frame(BINARY, data, key=key), dt=dt)
    return index, number


@scenario("app-parse-failed", "a graphql-transport-ws connection (by subprotocol) whose client "
          "sends a message that is not JSON")
def _app_parse_failed(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    _subprotocol_upgrade(c, GQL)
    c.text(C2S, '{"type":"connection_init"}')
    c.text(S2C, '{"type":"connection_ack"}')
    index, number = c.text(C2S, "subscribe me, please")
    c.close(C2S)
    sc.expect("app_parse_failed", 0, C2S, index, number,
              "GraphQL over WebSocket message is not JSON")


def _graphql_credentials(c: Conn) -> tuple[int, int]:
    index, number = c.text(C2S, '{"type":"connection_init","payload":{"authToken":"s3cr3t-t0ken"}}')
    c.text(S2C, '{"type":"connection_ack"}')
    c.close(C2S)
    return index, number


@scenario("app-credentials-plaintext", "a GraphQL connection_init carrying a token over plain ws://")
def _app_credentials_plaintext(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    _subprotocol_upgrade(c, GQL)
    index, number = _graphql_credentials(c)
    sc.expect("app_credentials_plaintext", 0, C2S, index, number,
              "GraphQL connection_init payload carries authToken")


@scenario("app-credentials-in-clear", "a GraphQL connection_init carrying a token inside a "
          "wss:// connection (decrypted with the embedded key log)")
def _app_credentials_in_clear(sc: Scenario) -> None:
    tls = Tls13(sc)
    c, _hello, _server = _wss(sc, tls)
    _subprotocol_upgrade(c, GQL)
    index, number = _graphql_credentials(c)
    sc.expect("app_credentials_in_clear", 0, C2S, index, number,
              "GraphQL connection_init payload carries authToken")


@scenario("app-graphql-introspection", "a GraphQL query for the schema (__schema), answered")
def _app_graphql_introspection(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    _subprotocol_upgrade(c, GQL)
    c.text(C2S, '{"type":"connection_init"}')
    c.text(S2C, '{"type":"connection_ack"}')
    index, number = c.text(C2S, '{"type":"subscribe","id":"1","payload":{"query":'
                                '"query IntrospectionQuery { __schema { types { name } } }"}}')
    c.text(S2C, '{"type":"next","id":"1","payload":{"data":{"__schema":{"types":[]}}}}')
    c.text(S2C, '{"type":"complete","id":"1"}')
    c.close(C2S)
    sc.expect("app_graphql_introspection", 0, C2S, index, number,
              "GraphQL introspection query (operation IntrospectionQuery)")


@scenario("app-keepalive-missed", "an MQTT client with a keep-alive of 1 s silent for 3 s")
def _app_keepalive_missed(sc: Scenario) -> None:
    c = sc.conn()
    c.open()
    _subprotocol_upgrade(c, "mqtt", "/mqtt")
    _binary(c, C2S, _mqtt_connect(b"sensor-1", 1))
    _binary(c, S2C, b"\x20\x02\x00\x00", dt=3.0)  # the time goes by after this packet
    index, number = _binary(c, C2S, b"\xc0\x00")
    _binary(c, S2C, b"\xd0\x00")
    _binary(c, C2S, b"\xe0\x00")
    c.close(C2S)
    sc.expect("app_keepalive_missed", 0, C2S, index, number, "MQTT client silent for 3.0 s")


@scenario("app-request-unanswered", "a JSON-RPC 2.0 call answered, then one never answered")
def _app_request_unanswered(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade("/rpc")
    c.text(C2S, '{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":1}')
    c.text(S2C, '{"jsonrpc":"2.0","result":3,"id":1}')
    index, number = c.text(C2S, '{"jsonrpc":"2.0","method":"sum","params":[3,4],"id":7}')
    c.close(C2S)
    sc.expect("app_request_unanswered", 0, C2S, index, number,
              "JSON-RPC request 'sum' id 7 never answered")


SOCKETIO = "/socket.io/?EIO=4&transport=websocket"
SIO_OPEN = '0{"sid":"lv8sd1Gw","upgrades":[],"pingInterval":25000,"pingTimeout":20000}'


@scenario("app-protocol-violation", "a Socket.IO client emits an EVENT without an event name")
def _app_protocol_violation(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade(SOCKETIO)
    c.text(S2C, SIO_OPEN)
    c.text(C2S, "40")
    c.text(S2C, '40{"sid":"Xn2bDk4P"}')
    index, number = c.text(C2S, '42[{"no":"name"}]')
    c.close(C2S)
    sc.expect("app_protocol_violation", 0, C2S, index, number,
              "Socket.IO EVENT without an event name")


@scenario("app-buffer-limit", "a Socket.IO binary event announcing 300 attachments (cap 256)")
def _app_buffer_limit(sc: Scenario) -> None:
    c = sc.conn()
    c.upgrade(SOCKETIO)
    c.text(S2C, SIO_OPEN)
    c.text(C2S, "40")
    c.text(S2C, '40{"sid":"Xn2bDk4P"}')
    index, number = c.text(C2S, '45300-["upload",{"_placeholder":true,"num":0}]')
    c.close(C2S)
    sc.expect("app_buffer_limit", 0, C2S, index, number,
              "Socket.IO binary packet announces 300 attachments (cap 256)")


# -- main ---------------------------------------------------------------------------------------


def build(name: str) -> Scenario:
    description, fn = SCENARIOS[name]
    sc = Scenario(name, description)
    fn(sc)
    return sc


README_START = "<!-- captures: made by make_anomalies.py, do not edit -->"
README_END = "<!-- end of captures -->"


def readme_table() -> str:
    """The README's table: one line per capture, with the codes it makes fire."""
    lines = ["| capture | codes | what it shows |", "|---|---|---|"]
    for name, (description, _) in SCENARIOS.items():
        sc = build(name)
        codes = sorted({e["code"] for e in sc.expected} - {"sec_plaintext_ws"})
        shown = ", ".join(f"`{c}`" for c in codes or ["sec_plaintext_ws"])
        if sc.options:
            description += " (read with `Options(" + ", ".join(
                f"{k}={v}" for k, v in sc.options.items()) + ")`)"
        if sc.thresholds:
            description += " (read with thresholds `" + ", ".join(
                f"{k}={v}" for k, v in sc.thresholds.items()) + "`)"
        lines.append(f"| `{sc.file}` | {shown} | {description} |")
    return "\n".join(lines)


def update_readme(path: Path) -> None:
    """Replace the table between the README's markers."""
    text = path.read_text(encoding="utf-8")
    head, _, rest = text.partition(README_START)
    _, _, tail = rest.partition(README_END)
    path.write_text(f"{head}{README_START}\n{readme_table()}\n{README_END}{tail}",
                    encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="directory to write into (default: this script's)")
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS), metavar="NAME",
                        help="build only this scenario (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, (description, _) in SCENARIOS.items():
            print(f"{name}: {description}")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or SCENARIOS:
        build(name).write(args.out)
    readme = args.out / "README.md"
    if readme.exists() and not args.only:
        update_readme(readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
