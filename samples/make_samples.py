#!/usr/bin/env python3
"""Regenerate the WebSocket sample captures and their ground-truth files.

For every scenario this script

1. picks a free TCP port,
2. starts ``tcpdump`` on the loopback interface (or ``any`` for the cooked
   capture) with the filter ``tcp port <port>``,
3. runs a real ``websockets`` (asyncio API) server and client(s) inside this
   process over 127.0.0.1 (or ::1), following a fixed script of messages,
4. stops tcpdump with SIGINT, converts to pcapng if needed, and
5. writes ``<name>.truth.json`` describing exactly what each side sent.

The ground truth is taken from two places that are cross-checked:

* the scenario script (what the application asked to send; the receiving
  side checks that it got exactly that), and
* a hook on ``websockets.protocol.Protocol.send_frame`` that records every
  WebSocket frame the library put on the wire (including automatic pongs and
  close echoes), with its header bits and on-wire payload length.

Usage (from the repository root, as root because tcpdump needs it)::

    python samples/make_samples.py                 # all scenarios into samples/
    python samples/make_samples.py --only plain    # one scenario
    python samples/make_samples.py --out /tmp/x    # write elsewhere (tests)

Only loopback addresses are ever used.  Every wait is bounded by a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import os
import platform
import random
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Close, Frame
from websockets.protocol import Protocol, Side

HERE = Path(__file__).resolve().parent
SCHEMA_VERSION = 1

STEP_TIMEOUT = 10.0  # any single network wait inside a scenario
SCENARIO_TIMEOUT = 60.0  # a whole scenario (all connections)
TCPDUMP_START_TIMEOUT = 10.0
TCPDUMP_STOP_TIMEOUT = 10.0
SUBPROCESS_TIMEOUT = 30.0
PORT_RANGE = (20000, 29999)  # below the kernel's ephemeral range

OPCODE_NAMES = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}


# --------------------------------------------------------------------------
# Deterministic payload helpers
# --------------------------------------------------------------------------


def det_bytes(seed: int, n: int) -> bytes:
    """n pseudo-random bytes, stable for a given seed."""
    return random.Random(seed).randbytes(n)


def det_text(seed: int, n: int) -> str:
    """n characters of pseudo-random printable ASCII text, stable for a given seed."""
    rng = random.Random(seed)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf",
             "hotel", "india", "juliett", "kilo", "lima", "mike", "november"]
    out: list[str] = []
    size = 0
    while size < n:
        w = rng.choice(words) + (" " if rng.random() < 0.9 else "\n")
        out.append(w)
        size += len(w)
    return "".join(out)[:n]


def tick(i: int) -> str:
    """A JSON text message that is very similar from one call to the next."""
    return json.dumps(
        {"type": "tick", "seq": i, "symbol": "ACME", "price": 100 + i * 0.25,
         "volume": 1000 + 17 * i, "venue": "XNAS", "flags": ["regular", "lit"]},
        separators=(",", ":"),
    )


def ack(i: int) -> str:
    return json.dumps(
        {"type": "ack", "seq": i, "status": "ok", "server": "wspcap-sample",
         "note": "received tick for ACME"},
        separators=(",", ":"),
    )


# --------------------------------------------------------------------------
# Scenario description
# --------------------------------------------------------------------------
# A step is a dict:
#   {"by": "c"|"s", "op": "send",  "data": str|bytes}
#   {"by": ..., "op": "burst", "items": [str|bytes, ...], "cork": bool}
#        back-to-back sends; with cork=True the socket is TCP_CORKed meanwhile
#        so that several WebSocket frames share one TCP segment
#   {"by": ..., "op": "frag",  "chunks": [str..]|[bytes..],
#        "ping_after": k (optional), "ping_data": bytes}     fragmented send,
#        optionally with a ping sent after fragment k (0-based) was sent
#   {"by": ..., "op": "ping",  "data": bytes}   waits for the automatic pong
#   {"by": ..., "op": "pong",  "data": bytes}   unsolicited pong
#   {"by": ..., "op": "close", "code": int, "reason": str}   must be last
# Steps are executed strictly one after the other: a side starts step i+1
# only when step i is complete (message received by the peer, pong received,
# ...), so the order of frames on the wire is deterministic.


@dataclass
class ConnSpec:
    label: str
    path: str
    steps: list[dict]
    client_kwargs: dict = field(default_factory=dict)
    description: str = ""


@dataclass
class Scenario:
    name: str
    filename: str
    description: str
    host: str = "127.0.0.1"
    iface: str = "lo"
    fmt: str = "pcap"  # or "pcapng"
    server_kwargs: dict = field(default_factory=dict)
    connections: list[ConnSpec] = field(default_factory=list)
    concurrent: bool = False  # run the connections at the same time
    tls: str | None = None  # "1.2" or "1.3": wss://, keys embedded in the pcapng


def no_compression() -> dict:
    return {"compression": None}


def scenario_plain() -> Scenario:
    steps = [
        {"by": "c", "op": "send", "data": "Hello, server!"},
        {"by": "s", "op": "send", "data": "Hello, client!"},
        {"by": "c", "op": "send", "data": bytes(range(16))},
        {"by": "s", "op": "send", "data": bytes(range(255, 239, -1))},
        {"by": "c", "op": "send", "data": "héllo wörld ✓ 🚀 (utf-8)"},
        {"by": "s", "op": "send", "data": ""},
        {"by": "c", "op": "send", "data": b""},
        {"by": "c", "op": "send", "data": det_text(1, 125)},      # largest 7-bit length
        {"by": "s", "op": "send", "data": det_text(2, 126)},      # smallest 16-bit length
        {"by": "c", "op": "send", "data": det_bytes(3, 300)},     # 16-bit length
        {"by": "s", "op": "send", "data": det_bytes(4, 4000)},    # 16-bit length
        {"by": "c", "op": "ping", "data": b"client-ping-1"},
        {"by": "s", "op": "ping", "data": b"server-ping-1"},
        {"by": "c", "op": "send", "data": det_text(5, 70000)},    # 64-bit length
        {"by": "s", "op": "send", "data": det_bytes(6, 65536)},   # smallest 64-bit length
        {"by": "s", "op": "pong", "data": b"unsolicited-pong"},
        {"by": "c", "op": "burst", "items": ["burst-1", "burst-2", b"\x01\x02\x03"], "cork": True},
        {"by": "s", "op": "send", "data": "done"},
        {"by": "c", "op": "close", "code": 1000, "reason": "bye from client"},
    ]
    return Scenario(
        name="plain",
        filename="plain.pcap",
        description="One connection, no compression: text and binary both ways "
        "with 7/16/64-bit lengths, pings both ways, an unsolicited pong, close 1000.",
        server_kwargs=no_compression(),
        connections=[ConnSpec("plain", "/plain", steps, no_compression())],
    )


def scenario_deflate() -> Scenario:
    steps: list[dict] = []
    for i in range(6):
        steps.append({"by": "c", "op": "send", "data": tick(i)})
        steps.append({"by": "s", "op": "send", "data": ack(i)})
    steps += [
        {"by": "c", "op": "send", "data": tick(6)},
        {"by": "c", "op": "send", "data": tick(6)},  # identical message twice
        {"by": "s", "op": "burst", "items": [ack(6), ack(7), ack(8)], "cork": True},
        {"by": "c", "op": "send", "data": bytes(range(64)) * 4},   # binary, compressible
        {"by": "s", "op": "send", "data": det_bytes(7, 200)},       # binary, incompressible
        {"by": "c", "op": "ping", "data": b"deflate-ping"},
        {"by": "s", "op": "send", "data": det_text(8, 3000)},       # 16-bit after compression?
        {"by": "s", "op": "close", "code": 1000, "reason": "server done"},
    ]
    return Scenario(
        name="deflate",
        filename="deflate.pcap",
        description="One connection with default websockets settings: "
        "permessage-deflate with context takeover (window bits 12); similar JSON "
        "messages both ways, binary both ways, one ping, server-initiated close.",
        connections=[ConnSpec("deflate", "/deflate", steps, {})],
    )


def _no_ctx_server_ext() -> list:
    return [ServerPerMessageDeflateFactory(
        server_no_context_takeover=True,
        client_no_context_takeover=True,
        server_max_window_bits=10,
        client_max_window_bits=11,
        compress_settings={"memLevel": 5},
    )]


def _no_ctx_client_ext() -> list:
    return [ClientPerMessageDeflateFactory(
        server_no_context_takeover=True,
        client_no_context_takeover=True,
        server_max_window_bits=10,
        client_max_window_bits=11,
        compress_settings={"memLevel": 5},
    )]


def scenario_deflate_no_context() -> Scenario:
    steps: list[dict] = []
    for i in range(4):
        steps.append({"by": "c", "op": "send", "data": tick(i)})
        steps.append({"by": "s", "op": "send", "data": ack(i)})
    steps += [
        {"by": "c", "op": "send", "data": tick(4)},
        {"by": "c", "op": "send", "data": tick(4)},  # identical: same bytes without takeover
        {"by": "s", "op": "send", "data": bytes(range(32)) * 8},
        {"by": "c", "op": "send", "data": det_text(9, 2500)},
        {"by": "c", "op": "close", "code": 1001, "reason": "going away"},
    ]
    return Scenario(
        name="deflate-no-context",
        filename="deflate-no-context.pcap",
        description="One connection, permessage-deflate with client_no_context_takeover, "
        "server_no_context_takeover, server_max_window_bits=10, client_max_window_bits=11.",
        server_kwargs={"extensions": _no_ctx_server_ext(), "compression": None},
        connections=[ConnSpec("deflate-no-context", "/deflate-no-context", steps,
                              {"extensions": _no_ctx_client_ext(), "compression": None})],
    )


def _frag_steps(tag: str) -> list[dict]:
    return [
        {"by": "c", "op": "send", "data": f"{tag}: start"},
        {"by": "c", "op": "frag", "chunks": ["Hel", "lo, ", "frag", "mented ", "world"],
         "ping_after": 1, "ping_data": f"{tag}-ping-mid-c".encode()},
        {"by": "s", "op": "frag", "chunks": [bytes(range(10)), bytes(range(10, 30)), det_bytes(10, 300)]},
        {"by": "s", "op": "frag", "chunks": ["server ", "fragmented ", "text ✓"],
         "ping_after": 0, "ping_data": f"{tag}-ping-mid-s".encode()},
        {"by": "c", "op": "frag", "chunks": [det_text(11, 200), det_text(12, 70)]},
        {"by": "c", "op": "send", "data": f"{tag}: after fragments"},
        {"by": "s", "op": "send", "data": f"{tag}: ok"},
        {"by": "c", "op": "close", "code": 1000, "reason": f"{tag} done"},
    ]


def scenario_fragmented() -> Scenario:
    return Scenario(
        name="fragmented",
        filename="fragmented.pcap",
        description="Two sequential connections on the same port: connection 0 without "
        "compression, connection 1 with default permessage-deflate. Fragmented text and "
        "binary messages both ways, with a ping interleaved between fragments.",
        connections=[
            ConnSpec("fragmented-plain", "/fragmented/plain", _frag_steps("plain"), no_compression()),
            ConnSpec("fragmented-deflate", "/fragmented/deflate", _frag_steps("deflate"), {}),
        ],
    )


def scenario_multi() -> Scenario:
    def conv(tag: str, n: int, closer: str) -> list[dict]:
        steps: list[dict] = []
        for i in range(n):
            steps.append({"by": "c", "op": "send", "data": f"{tag} request {i}"})
            steps.append({"by": "s", "op": "send", "data": f"{tag} response {i}"})
        steps.append({"by": "c", "op": "send", "data": det_bytes(100 + n, 40)})
        steps.append({"by": closer, "op": "close", "code": 1000, "reason": f"{tag} end"})
        return steps

    return Scenario(
        name="multi",
        filename="multi.pcapng",
        fmt="pcapng",
        description="Four concurrent connections to one server on a non-standard port, "
        "pcapng. Connection 'subprotocol' negotiates subprotocol chat.v2; connection "
        "'origin' sends a custom Origin and User-Agent; 'plain' has no compression; "
        "'deflate' uses permessage-deflate.",
        server_kwargs={"subprotocols": ["chat.v2", "chat.v1"]},
        concurrent=True,
        connections=[
            ConnSpec("subprotocol", "/multi/subprotocol", conv("subprotocol", 4, "c"),
                     {"subprotocols": ["chat.v2"], "compression": None}),
            ConnSpec("origin", "/multi/origin", conv("origin", 3, "s"),
                     {"origin": "https://app.example.test",
                      "user_agent_header": "wspcap-sample-client/1.0",
                      "compression": None}),
            ConnSpec("plain", "/multi/plain", conv("plain", 5, "c"), {"compression": None}),
            ConnSpec("deflate", "/multi/deflate", conv("deflate", 4, "c"), {}),
        ],
    )


def scenario_ipv6() -> Scenario:
    steps = [
        {"by": "c", "op": "send", "data": "hello over IPv6"},
        {"by": "s", "op": "send", "data": "hello back over ::1"},
        {"by": "c", "op": "send", "data": det_bytes(20, 200)},
        {"by": "c", "op": "close", "code": 1000, "reason": ""},
    ]
    return Scenario(
        name="ipv6",
        filename="ipv6.pcap",
        description="One short connection over ::1, no compression.",
        host="::1",
        server_kwargs=no_compression(),
        connections=[ConnSpec("ipv6", "/ipv6", steps, no_compression())],
    )


def scenario_cooked() -> Scenario:
    steps = [
        {"by": "c", "op": "send", "data": "hello from a cooked capture"},
        {"by": "s", "op": "send", "data": b"\xde\xad\xbe\xef" * 8},
        {"by": "c", "op": "ping", "data": b"cooked"},
        {"by": "s", "op": "send", "data": "bye"},
        {"by": "s", "op": "close", "code": 4000, "reason": "custom app code"},
    ]
    return Scenario(
        name="cooked",
        filename="cooked.pcap",
        description="One short connection captured with tcpdump -i any "
        "(Linux cooked link type), no compression, close code 4000.",
        iface="any",
        server_kwargs=no_compression(),
        connections=[ConnSpec("cooked", "/cooked", steps, no_compression())],
    )


def _wss_steps(tag: str) -> list[dict]:
    return [
        {"by": "c", "op": "send", "data": f"hello over {tag}"},
        {"by": "s", "op": "send", "data": f"hello back over {tag}"},
        {"by": "c", "op": "send", "data": det_bytes(30, 300)},
        {"by": "s", "op": "send", "data": det_text(31, 70000)},   # several TLS records
        {"by": "c", "op": "ping", "data": b"wss-ping"},
        {"by": "c", "op": "burst", "items": ["burst-a", "burst-b"], "cork": True},
        {"by": "s", "op": "send", "data": det_bytes(32, 20000)},
        {"by": "c", "op": "close", "code": 1000, "reason": "bye over TLS"},
    ]


def scenario_wss() -> Scenario:
    return Scenario(
        name="wss",
        filename="wss.pcapng",
        description="wss:// over TLS 1.3 (the client's key log embedded in the pcapng as a "
        "Decryption Secrets Block), permessage-deflate, a 70000-byte message over several "
        "TLS records, a ping, a corked burst.",
        fmt="pcapng",
        tls="1.3",
        connections=[ConnSpec("wss", "/wss", _wss_steps("TLS 1.3"))],
    )


def scenario_wss_tls12() -> Scenario:
    return Scenario(
        name="wss-tls12",
        filename="wss-tls12.pcapng",
        description="wss:// over TLS 1.2 (ECDHE-ECDSA with AES-256-GCM; keys embedded), "
        "no compression.",
        fmt="pcapng",
        tls="1.2",
        server_kwargs=no_compression(),
        connections=[ConnSpec("wss-tls12", "/wss12", _wss_steps("TLS 1.2"), no_compression())],
    )


SCENARIOS = {
    s.name: s
    for s in (
        scenario_plain(), scenario_deflate(), scenario_deflate_no_context(),
        scenario_fragmented(), scenario_multi(), scenario_ipv6(), scenario_cooked(),
        scenario_wss(), scenario_wss_tls12(),
    )
}


def tls_contexts(version: str, folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext, Path]:
    """Server and client contexts for a local self-signed certificate; the client
    writes its key log (what SSLKEYLOGFILE does) into ``folder``."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from golden.tls import contexts  # the tests' TLS set-up

    keylog = folder / "keys.log"
    server, client = contexts(folder, version, keylog)
    return server, client, keylog


# --------------------------------------------------------------------------
# Frame recorder (hook on the sans-I/O protocol layer)
# --------------------------------------------------------------------------


class FrameRecorder:
    """Records every frame written by any websockets Protocol object."""

    def __init__(self) -> None:
        self.seq = itertools.count()
        self.by_protocol: dict[int, list[dict]] = {}
        self.keep_alive: list[Protocol] = []
        self._orig = None

    def install(self) -> None:
        recorder = self
        orig = Protocol.send_frame
        self._orig = orig

        def send_frame(proto: Protocol, frame: Frame) -> None:
            n_before = len(proto.writes)
            orig(proto, frame)
            wire = proto.writes[n_before] if len(proto.writes) > n_before else b""
            recorder.record(proto, frame, bytes(wire))

        Protocol.send_frame = send_frame  # type: ignore[method-assign]

    def uninstall(self) -> None:
        if self._orig is not None:
            Protocol.send_frame = self._orig  # type: ignore[method-assign]
            self._orig = None

    def record(self, proto: Protocol, frame: Frame, wire: bytes) -> None:
        if id(proto) not in self.by_protocol:
            self.by_protocol[id(proto)] = []
            self.keep_alive.append(proto)
        b0, b1 = wire[0], wire[1]
        n = b1 & 0x7F
        hlen = 2
        if n == 126:
            n = struct.unpack("!H", wire[2:4])[0]
            hlen = 4
        elif n == 127:
            n = struct.unpack("!Q", wire[2:10])[0]
            hlen = 10
        masked = bool(b1 & 0x80)
        if masked:
            hlen += 4
        assert len(wire) == hlen + n, (len(wire), hlen, n)
        self.by_protocol[id(proto)].append({
            "gseq": next(self.seq),
            "direction": "c2s" if proto.side is Side.CLIENT else "s2c",
            "fin": bool(b0 & 0x80),
            "rsv1": bool(b0 & 0x40),
            "rsv2": bool(b0 & 0x20),
            "rsv3": bool(b0 & 0x10),
            "opcode": b0 & 0x0F,
            "masked": masked,
            "payload_length": n,
            "header_length": hlen,
            # application (uncompressed) data of this frame, not serialized
            "_app_data": bytes(frame.data),
        })


RECORDER = FrameRecorder()


# --------------------------------------------------------------------------
# Script runner
# --------------------------------------------------------------------------


class ScriptError(Exception):
    pass


async def _wait(aw, what: str):
    try:
        return await asyncio.wait_for(aw, STEP_TIMEOUT)
    except TimeoutError:
        raise ScriptError(f"timeout while waiting for {what}") from None


async def run_side(ws, side: str, steps: list[dict], events: list[asyncio.Event],
                   explicit_pongs: list[bytes]) -> None:
    for i, st in enumerate(steps):
        ev = events[i]
        op = st["op"]
        mine = st["by"] == side
        if mine:
            if op == "send":
                await _wait(ws.send(st["data"]), f"send step {i}")
                await _wait(ev.wait(), f"peer to receive step {i}")
            elif op == "burst":
                sock = ws.transport.get_extra_info("socket")
                cork = bool(st.get("cork")) and hasattr(socket, "TCP_CORK") and sock is not None
                if cork:  # coalesce the frames into one TCP segment
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
                try:
                    for item in st["items"]:
                        await _wait(ws.send(item), f"burst send step {i}")
                finally:
                    if cork:
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
                await _wait(ev.wait(), f"peer to receive step {i}")
            elif op == "frag":
                await _wait(ws.send(_frag_iter(ws, st)), f"fragmented send step {i}")
                await _wait(ev.wait(), f"peer to receive step {i}")
            elif op == "ping":
                waiter = await _wait(ws.ping(st["data"]), f"ping step {i}")
                await _wait(waiter, f"pong for step {i}")
                ev.set()
            elif op == "pong":
                explicit_pongs.append(st["data"])
                await _wait(ws.pong(st["data"]), f"pong step {i}")
                ev.set()
            elif op == "close":
                await _wait(ws.close(st["code"], st["reason"]), f"close step {i}")
                ev.set()
            else:
                raise ScriptError(f"unknown op {op}")
        else:
            if op in ("send", "burst", "frag"):
                if op == "send":
                    expected = [st["data"]]
                elif op == "burst":
                    expected = list(st["items"])
                else:
                    first = st["chunks"][0]
                    expected = ["".join(st["chunks"]) if isinstance(first, str)
                                else b"".join(st["chunks"])]
                for exp in expected:
                    got = await _wait(ws.recv(), f"recv step {i}")
                    if type(got) is not type(exp) or got != exp:
                        raise ScriptError(f"step {i}: received {got!r:.80} expected {exp!r:.80}")
                ev.set()
            elif op == "close":
                await _wait(ws.wait_closed(), f"peer close step {i}")
                await _wait(ev.wait(), f"close step {i} completion")
            else:  # ping / pong: nothing to do at application level
                await _wait(ev.wait(), f"step {i}")


async def _frag_iter(ws, st: dict):
    """Async iterator of fragments; optionally sends a ping between fragments."""
    for k, chunk in enumerate(st["chunks"]):
        yield chunk
        # Execution resumes here once fragment k has been written.
        if st.get("ping_after") == k and k < len(st["chunks"]) - 1:
            waiter = await ws.ping(st["ping_data"])
            await asyncio.wait_for(waiter, STEP_TIMEOUT)


# --------------------------------------------------------------------------
# Running one scenario's network exchange
# --------------------------------------------------------------------------


@dataclass
class ConnResult:
    spec: ConnSpec
    client_ws: Any = None
    server_ws: Any = None
    explicit_pongs: dict = field(default_factory=lambda: {"c": [], "s": []})
    events: list = field(default_factory=list)
    #: (client address, server address), taken while the connection is open
    #: (a TLS transport forgets them once closed).
    addresses: tuple = (None, None)


async def run_exchange(sc: Scenario, port: int,
                       tls: tuple[ssl.SSLContext, ssl.SSLContext] | None = None
                       ) -> list[ConnResult]:
    results = {c.path: ConnResult(c) for c in sc.connections}
    for r in results.values():
        r.events = [asyncio.Event() for _ in r.spec.steps]
    server_done = {c.path: asyncio.Event() for c in sc.connections}
    errors: list[BaseException] = []

    async def handler(ws):
        path = ws.request.path
        r = results.get(path)
        if r is None:
            await ws.close(1008, "unknown path")
            return
        r.server_ws = ws
        try:
            await run_side(ws, "s", r.spec.steps, r.events, r.explicit_pongs["s"])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            server_done[path].set()

    server_kwargs: dict[str, Any] = {"ping_interval": None, "close_timeout": 5,
                                     "open_timeout": 5}
    if "subprotocols" in sc.server_kwargs:
        # Accept clients that offer no subprotocol (websockets rejects them by default).
        supported = list(sc.server_kwargs["subprotocols"])

        def select_subprotocol(conn, offered):
            for p in supported:
                if p in offered:
                    return p
            return None

        server_kwargs["select_subprotocol"] = select_subprotocol
    server_kwargs.update(sc.server_kwargs)
    if tls is not None:
        server_kwargs["ssl"] = tls[0]
    host_in_uri = f"[{sc.host}]" if ":" in sc.host else sc.host

    async def client(r: ConnResult) -> None:
        kwargs = {"ping_interval": None, "close_timeout": 5, "open_timeout": 5}
        kwargs.update(r.spec.client_kwargs)
        if tls is not None:
            kwargs["ssl"] = tls[1]
            kwargs["server_hostname"] = "localhost"  # an SNI, as a browser sends
        scheme = "wss" if tls is not None else "ws"
        uri = f"{scheme}://{host_in_uri}:{port}{r.spec.path}"
        ws = await connect(uri, **kwargs)
        r.client_ws = ws
        r.addresses = (ws.local_address, ws.remote_address)
        try:
            await run_side(ws, "c", r.spec.steps, r.events, r.explicit_pongs["c"])
        finally:
            await _wait(server_done[r.spec.path].wait(), "server handler to finish")
            await _wait(ws.wait_closed(), "client connection to close")

    async with serve(handler, sc.host, port, **server_kwargs):
        if sc.concurrent:
            await asyncio.gather(*(client(r) for r in results.values()))
        else:
            for r in results.values():
                await client(r)
                await asyncio.sleep(0.05)
    if errors:
        raise errors[0]
    return list(results.values())


# --------------------------------------------------------------------------
# Building the truth document
# --------------------------------------------------------------------------


def _hex(b: bytes) -> str:
    return b.hex()


def _deflate_params(ws) -> dict | None:
    for ext in ws.protocol.extensions:
        if isinstance(ext, PerMessageDeflate):
            # ws is the client connection: local = client, remote = server
            return {
                "client_no_context_takeover": ext.local_no_context_takeover,
                "server_no_context_takeover": ext.remote_no_context_takeover,
                "client_max_window_bits": ext.local_max_window_bits,
                "server_max_window_bits": ext.remote_max_window_bits,
            }
    return None


def _headers(h) -> list[list[str]]:
    return [[k, v] for k, v in h.raw_items()]


def build_connection_truth(idx: int, r: ConnResult) -> dict:
    c, s = r.client_ws, r.server_ws
    frames = sorted(
        RECORDER.by_protocol.get(id(c.protocol), []) + RECORDER.by_protocol.get(id(s.protocol), []),
        key=lambda f: f["gseq"],
    )
    # per-direction frame index
    counters = {"c2s": 0, "s2c": 0}
    for i, f in enumerate(frames):
        f["index"] = i
        f["dir_index"] = counters[f["direction"]]
        counters[f["direction"]] += 1

    closer = None
    for st in r.spec.steps:
        if st["op"] == "close":
            closer = "c2s" if st["by"] == "c" else "s2c"
    explicit_pongs = {"c2s": list(r.explicit_pongs["c"]), "s2c": list(r.explicit_pongs["s"])}

    # Reassemble messages from frames, per direction.
    messages: list[dict] = []
    open_msg: dict[str, dict | None] = {"c2s": None, "s2c": None}
    for f in frames:
        d = f["direction"]
        op = f["opcode"]
        if op in (1, 2):
            m = {"direction": d, "type": OPCODE_NAMES[op], "_data": [f["_app_data"]],
                 "_frames": [f], "_first": f["index"]}
            messages.append(m)
            if not f["fin"]:
                open_msg[d] = m
        elif op == 0:
            m = open_msg[d]
            assert m is not None
            m["_data"].append(f["_app_data"])
            m["_frames"].append(f)
            if f["fin"]:
                open_msg[d] = None
        else:
            m = {"direction": d, "type": OPCODE_NAMES[op], "_data": [f["_app_data"]],
                 "_frames": [f], "_first": f["index"]}
            messages.append(m)

    out_msgs: list[dict] = []
    pending_pings: dict[str, list[tuple[bytes, int]]] = {"c2s": [], "s2c": []}
    for mid, m in enumerate(messages):
        data = b"".join(m["_data"])
        fr = m["_frames"]
        entry: dict[str, Any] = {
            "id": mid,
            "direction": m["direction"],
            "type": m["type"],
        }
        if m["type"] == "text":
            entry["payload"] = data.decode("utf-8")
        elif m["type"] == "close":
            close = Close.parse(data)
            entry["payload"] = _hex(data)
            entry["code"] = close.code
            entry["reason"] = close.reason
        else:
            entry["payload"] = _hex(data)
        entry["length"] = len(data)
        entry["sha256"] = hashlib.sha256(data).hexdigest()
        entry["fragments"] = len(fr)
        if len(fr) > 1:
            entry["fragment_payloads"] = [
                (x["_app_data"].decode("utf-8") if m["type"] == "text" else _hex(x["_app_data"]))
                for x in fr
            ]
        entry["compressed"] = fr[0]["rsv1"]
        entry["wire_length"] = sum(x["payload_length"] for x in fr)
        entry["frames"] = [x["index"] for x in fr]
        entry["automatic"] = False
        entry["reply_to"] = None
        d = m["direction"]
        other = "s2c" if d == "c2s" else "c2s"
        if m["type"] == "ping":
            pending_pings[d].append((data, mid))
        elif m["type"] == "pong":
            if data in explicit_pongs[d]:
                explicit_pongs[d].remove(data)
            else:
                entry["automatic"] = True
                for j, (pdata, pid) in enumerate(pending_pings[other]):
                    if pdata == data:
                        entry["reply_to"] = pid
                        del pending_pings[other][j]
                        break
        elif m["type"] == "close" and d != closer:
            entry["automatic"] = True
            for prev in out_msgs:
                if prev["type"] == "close" and prev["direction"] == other:
                    entry["reply_to"] = prev["id"]
        out_msgs.append(entry)

    close_info: dict[str, Any] = {"initiator": closer}
    for d in ("c2s", "s2c"):
        cm = [m for m in out_msgs if m["type"] == "close" and m["direction"] == d]
        close_info[d] = ({"code": cm[0]["code"], "reason": cm[0]["reason"],
                          "automatic": cm[0]["automatic"]} if cm else None)

    wire_frames = []
    for f in frames:
        wf = {k: v for k, v in f.items() if not k.startswith("_") and k != "gseq"}
        wf["opcode_name"] = OPCODE_NAMES[f["opcode"]]
        wire_frames.append(wf)

    req_h, resp_h = c.request.headers, c.response.headers
    deflate = _deflate_params(c)
    caddr, saddr = r.addresses
    counts: dict[str, dict[str, int]] = {}
    for d in ("c2s", "s2c"):
        counts[d] = {
            "frames": sum(1 for f in frames if f["direction"] == d),
            "messages": sum(1 for m in out_msgs if m["direction"] == d),
            "data_messages": sum(1 for m in out_msgs if m["direction"] == d
                                 and m["type"] in ("text", "binary")),
            "control_frames": sum(1 for f in frames if f["direction"] == d and f["opcode"] >= 8),
        }
    return {
        "id": idx,
        "label": r.spec.label,
        "client": {"ip": caddr[0], "port": caddr[1]},
        "server": {"ip": saddr[0], "port": saddr[1]},
        "handshake": {
            "method": "GET",
            "path": c.request.path,
            "host": req_h.get("Host"),
            "origin": req_h.get("Origin"),
            "user_agent": req_h.get("User-Agent"),
            "sec_websocket_key": req_h.get("Sec-WebSocket-Key"),
            "sec_websocket_accept": resp_h.get("Sec-WebSocket-Accept"),
            "subprotocols_offered": req_h.get_all("Sec-WebSocket-Protocol"),
            "subprotocol": c.subprotocol,
            "extensions_offered": req_h.get("Sec-WebSocket-Extensions"),
            "extensions_accepted": resp_h.get("Sec-WebSocket-Extensions"),
            "response_status": c.response.status_code,
            "request_headers": _headers(req_h),
            "response_headers": _headers(resp_h),
        },
        "permessage_deflate": deflate is not None,
        "deflate_params": deflate,
        "subprotocol": c.subprotocol,
        "origin": req_h.get("Origin"),
        "user_agent": req_h.get("User-Agent"),
        "close": close_info,
        "counts": counts,
        "messages": out_msgs,
        "wire_frames": wire_frames,
    }


# --------------------------------------------------------------------------
# Capture handling
# --------------------------------------------------------------------------


def pick_port(host: str) -> int:
    rng = random.SystemRandom()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(200):
        port = rng.randint(*PORT_RANGE)
        ok = True
        for fam, addr in ((family, host), (socket.AF_INET, "127.0.0.1")):
            with socket.socket(fam, socket.SOCK_STREAM) as s:
                try:
                    s.bind((addr, port))
                except OSError:
                    ok = False
                    break
        if ok:
            return port
    raise RuntimeError("could not find a free port")


class Tcpdump:
    def __init__(self, iface: str, port: int, path: Path) -> None:
        # --immediate-mode: without it libpcap's TPACKET_V3 ring hands packets
        # over in blocks (up to ~1 s late) and SIGINT can lose the last block.
        # Immediate mode uses fixed-size ring slots of snaplen bytes, so give
        # the ring a large buffer (-B, KiB) to avoid kernel drops on bursts.
        # -Z root: keep privileges so the output file is owned by the caller.
        self.cmd = ["tcpdump", "-i", iface, "-w", str(path), "-U", "-n", "--immediate-mode",
                    "-B", "65536", "-Z", "root",
                    "-s", "262144", f"tcp port {port}"]
        self.filter = f"tcp port {port}"
        self.path = str(path)
        self.stderr_lines: list[str] = []
        self.listening = threading.Event()
        self.proc: subprocess.Popen | None = None
        self.thread: threading.Thread | None = None

    def _reader(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line.rstrip("\n"))
            if "listening on" in line:
                self.listening.set()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.thread = threading.Thread(target=self._reader, daemon=True)
        self.thread.start()
        if not self.listening.wait(TCPDUMP_START_TIMEOUT):
            self.stop()
            raise RuntimeError("tcpdump did not start: " + " | ".join(self.stderr_lines))
        time.sleep(0.3)  # let the filter settle

    def stop(self) -> dict:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(TCPDUMP_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
        if self.thread is not None:
            self.thread.join(5)
        stats: dict[str, Any] = {"tcpdump_command": " ".join("FILE" if x == self.path else x for x in self.cmd),
                                 "filter": self.filter}
        for line in self.stderr_lines:
            parts = line.split()
            if line.endswith("packets captured"):
                stats["packets_captured"] = int(parts[0])
            elif line.endswith("packets received by filter"):
                stats["packets_received_by_filter"] = int(parts[0])
            elif line.endswith("packets dropped by kernel"):
                stats["packets_dropped_by_kernel"] = int(parts[0])
            elif "listening on" in line:
                stats["tcpdump_banner"] = line
        return stats


LINKTYPE_NAMES = {0: "NULL", 1: "EN10MB", 113: "LINUX_SLL", 276: "LINUX_SLL2", 101: "RAW"}


def read_linktype(path: Path) -> tuple[str, int, str]:
    """Return (format, linktype, timestamp precision) of the first interface."""
    data = path.read_bytes()[:4096]
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        return "pcap", struct.unpack("<I", data[20:24])[0], "usec" if magic[0] == 0xD4 else "nsec"
    if magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        return "pcap", struct.unpack(">I", data[20:24])[0], "usec" if magic[3] == 0xD4 else "nsec"
    if magic == b"\x0a\x0d\x0d\x0a":
        bom = data[8:12]
        e = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
        off = 0
        while off + 12 <= len(data):
            btype, blen = struct.unpack(e + "II", data[off:off + 8])
            if btype == 1:  # Interface Description Block
                lt = struct.unpack(e + "H", data[off + 8:off + 10])[0]
                return "pcapng", lt, "usec"  # editcap keeps if_tsresol default (usec) unless set
            off += blen
    raise RuntimeError(f"unrecognised capture file {path}")


def run_checked(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, timeout=SUBPROCESS_TIMEOUT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_scenario(sc: Scenario, out: Path) -> dict:
    port = pick_port(sc.host)
    final = out / sc.filename
    raw = final if sc.fmt == "pcap" else out / (sc.filename + ".tmp.pcap")
    for p in (final, raw):
        if p.exists():
            p.unlink()
    td = Tcpdump(sc.iface, port, raw)
    td.start()
    RECORDER.by_protocol.clear()
    RECORDER.keep_alive.clear()
    RECORDER.seq = itertools.count()
    keydir = tempfile.TemporaryDirectory()
    contexts = None
    keylog = None
    if sc.tls is not None:
        server_ctx, client_ctx, keylog = tls_contexts(sc.tls, Path(keydir.name))
        contexts = (server_ctx, client_ctx)
    try:
        results = asyncio.run(asyncio.wait_for(run_exchange(sc, port, contexts),
                                               SCENARIO_TIMEOUT))
        time.sleep(1.5)  # let the last FIN/ACKs reach the capture
    finally:
        stats = td.stop()
    if sc.fmt == "pcapng":
        secrets = ["--inject-secrets", f"tls,{keylog}"] if keylog is not None else []
        run_checked(["editcap", "-F", "pcapng", *secrets, str(raw), str(final)])
        raw.unlink()
    keydir.cleanup()
    fmt, linktype, tsprec = read_linktype(final)
    if stats.get("packets_dropped_by_kernel", 0) != 0:
        print(f"WARNING: {sc.name}: kernel dropped packets", file=sys.stderr)

    conns = [build_connection_truth(i, r) for i, r in enumerate(results)]
    truth = {
        "schema_version": SCHEMA_VERSION,
        "scenario": sc.name,
        "file": sc.filename,
        "description": sc.description,
        "format": fmt,
        "linktype": linktype,
        "linktype_name": LINKTYPE_NAMES.get(linktype, str(linktype)),
        "timestamp_precision": tsprec,
        "interface": sc.iface,
        "ip_version": 6 if ":" in sc.host else 4,
        "server": {"ip": sc.host, "port": port},
        "ports": sorted({port} | {c["client"]["port"] for c in conns}),
        "concurrent": sc.concurrent,
        "capture": {**stats, "file_size": final.stat().st_size},
        "generator": {
            "script": "make_samples.py",
            "python": platform.python_version(),
            "websockets": websockets.__version__,
        },
        "connections": conns,
    }
    tpath = out / f"{Path(sc.filename).stem}.truth.json"
    tpath.write_text(json.dumps(truth, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return truth


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE,
                    help="output directory (default: the samples folder)")
    ap.add_argument("--only", action="append", choices=sorted(SCENARIOS),
                    help="make only this scenario (may be repeated)")
    args = ap.parse_args(argv)

    if os.geteuid() != 0:
        print("make_samples.py must run as root: tcpdump needs capture privileges "
              "(try: sudo python samples/make_samples.py)", file=sys.stderr)
        return 2
    for tool in ("tcpdump", "editcap"):
        if not any((Path(d) / tool).exists() for d in os.environ.get("PATH", "").split(os.pathsep)):
            print(f"required tool not found in PATH: {tool}", file=sys.stderr)
            return 2

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    names = args.only or list(SCENARIOS)
    RECORDER.install()
    try:
        for name in names:
            sc = SCENARIOS[name]
            truth = make_scenario(sc, out)
            cap = truth["capture"]
            print(f"{sc.filename}: port {truth['server']['port']}, "
                  f"{len(truth['connections'])} connection(s), "
                  f"{cap.get('packets_captured')} packets, "
                  f"{cap.get('packets_dropped_by_kernel')} dropped, "
                  f"{cap['file_size']} bytes")
    finally:
        RECORDER.uninstall()
    return 0


if __name__ == "__main__":
    sys.exit(main())
