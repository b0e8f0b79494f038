#!/usr/bin/env python3
"""Make large benchmark captures from real WebSocket traffic on loopback.

A `websockets` server (in its own process) and many `websockets` clients (in
this process) talk over 127.0.0.1 while tcpdump records the port. Nothing is
synthesized: every byte in the captures was put on the wire by the library.

Captures (written to ``benchmarks/data/`` unless ``--out`` says otherwise):

  chat            ~250k small JSON text frames, 40 connections, both ways,
                  no compression, with pings, handshakes and clean closes
  chat-deflate    the same kind of traffic with permessage-deflate, ~125k frames
  chat-churn      the chat traffic over 2,000 short connections, 40 open at a
                  time (connections that come and go, as a sensor sees them)
  chat-jsonrpc    chat's shape (40 connections, ~250k small text frames) in
                  JSON-RPC 2.0: clients send requests (3 in 4, some answered
                  with an error) and notifications, the server answers every
                  request and pushes notifications: every message is an app row
  bulk            4 connections, messages of 1 KB..500 KB both ways (some
                  fragmented), ~256 MB of payload, no compression
  bulk-deflate    the same with permessage-deflate and compressible JSON text
  bomb            one connection whose server sends 30 messages of 60 MiB of
                  zeros with permessage-deflate, ~62 KB each on the wire: a
                  decompression bomb spread over many messages (1.9 MB file)

  chat-h2         chat's WebSocket bytes over HTTP/2 in clear (RFC 8441): each
                  connection one extended CONNECT stream, each TCP segment's
                  payload one DATA frame (derived from chat.pcap, see below)

chat-h2 is not recorded but derived from chat.pcap (made first if missing):
no Python library sends a quarter of a million WebSocket messages over HTTP/2
at chat's pace, and the derivation keeps chat's every WebSocket byte, timing
and segmentation, so the two read side by side. The upgrade request becomes
the client preface, SETTINGS and a CONNECT HEADERS frame (hpack), the 101 the
server's SETTINGS (ENABLE_CONNECT_PROTOCOL) and a 200 HEADERS frame; every
other segment's payload gets a DATA frame header on stream 1 (hyperframe's
layout); sequence and acknowledgement numbers move by the bytes added;
retransmitted segments are left out. Its NAME.json is chat's.

The bomb is not recorded but written out (no root or tcpdump needed):
websockets' own permessage-deflate extension compresses each message with
zlib as its server does (raw deflate, 2**12 window, memLevel 5, context
takeover) and its Frame class lays out the frames; the TCP segments around
them are those of a loopback connection (64 KiB segments, ACKs, handshakes).
Sending it for real would only cost the time to inflate 1.8 GB on the
receiving side.

Next to each ``NAME.pcap`` goes ``NAME.json``, the ground truth counted as the
frames were serialized (frames, opcodes, payload bytes on the wire, messages,
message bytes before compression), so that run.py can check the tools.

The recorded captures need root (or capture rights) and tcpdump. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import multiprocessing as mp
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "data"
HOST = "127.0.0.1"  # never anything but loopback

# Default sizes. `--frames` scales the chat captures, `--bulk-mb` the bulk ones.
DEFAULT_CHAT_FRAMES = 250_000
DEFAULT_BULK_MB = 256

CAPTURE_NAMES = ("chat", "chat-deflate", "chat-churn", "bulk", "bulk-deflate", "bomb",
                 "chat-tls", "bulk-tls", "chat-jsonrpc", "chat-h2")

BOMB_MESSAGES = 30  # messages in the bomb capture
BOMB_MIB = 60  # MiB of zeros in each (just under the 64 MiB cut per message)

CHURN_CONNS = 2000  # connections in chat-churn, one after another in each slot
CHAT_OPEN_AT_ONCE = 40  # connections a chat capture keeps open at a time
CHAT_PUSH_EVERY = 10  # the server pushes one extra event per 10 client messages
CHAT_PING_EVERY = 500  # each client pings once per 500 messages
RPC_NOTIFY_EVERY = 4  # in chat-jsonrpc, one client message in 4 is a notification
RPC_ERROR_EVERY = 50  # and one request in about 50 is answered with an error
BULK_FRAGMENT = 64 * 1024  # fragment size of fragmented bulk messages
BULK_MIN, BULK_MAX = 1024, 500 * 1024
BULK_PACE = 0.005  # seconds each bulk stream waits between messages

TRAFFIC_TIMEOUT = 240.0  # seconds for the traffic of one capture, all included
TCPDUMP_START_TIMEOUT = 15.0
TCPDUMP_STOP_TIMEOUT = 20.0
TCPDUMP_FLUSH_WAIT = 2.5


def capture_specs(frames: int, bulk_mb: float, seed: int) -> dict[str, dict[str, Any]]:
    """What each capture is made of."""
    def chat(n_frames: int, deflate: bool, conns: int = 40,
             answered: float = 1.0) -> dict[str, Any]:
        # Per client message: the message, its ack (for the `answered` share
        # of them) and 1/CHAT_PUSH_EVERY push.
        per_msg = 1 + answered + 1 / CHAT_PUSH_EVERY
        msgs = max(1, math.ceil(n_frames / per_msg / conns))
        return {"kind": "chat", "deflate": deflate, "conns": conns, "msgs_per_conn": msgs,
                "window": 4, "seed": seed, "target_frames": n_frames,
                "open_at_once": CHAT_OPEN_AT_ONCE}

    def bulk(mb: float, deflate: bool) -> dict[str, Any]:
        conns = 4
        return {"kind": "bulk", "deflate": deflate, "conns": conns,
                "bytes_per_stream": int(mb * 1e6 / (2 * conns)), "seed": seed,
                # seconds between messages per stream: unpaced, 8 streams push
                # ~600 MB/s through loopback, faster than tcpdump writes it out
                "pace": BULK_PACE,
                "target_payload_mb": mb}

    return {
        "chat": chat(frames, False),
        "chat-deflate": chat(max(1, frames // 2), True),
        "chat-churn": chat(frames, False, conns=CHURN_CONNS),
        # The chat traffic as JSON-RPC 2.0: every message makes an app row.
        "chat-jsonrpc": {**chat(frames, False, answered=1 - 1 / RPC_NOTIFY_EVERY),
                         "app": "jsonrpc"},
        "bulk": bulk(bulk_mb, False),
        "bulk-deflate": bulk(bulk_mb * 3 / 8, True),
        # The chat and bulk traffic over TLS 1.3 (wss://); the clients' key log is
        # written next to the capture as NAME.keys.
        "chat-tls": {**chat(frames, False), "tls": True},
        "bulk-tls": {**bulk(bulk_mb, False), "tls": True},
        "chat-h2": {"kind": "derived", "from": "chat"},
        "bomb": {"kind": "bomb", "deflate": True, "conns": 1, "messages": BOMB_MESSAGES,
                 "message_bytes": BOMB_MIB << 20},
    }


# ---------------------------------------------------------------------------
# Ground truth: count every frame as websockets serializes it for the wire.

class SideStats:
    def __init__(self) -> None:
        self.frames = 0
        self.opcodes: Counter[int] = Counter()
        self.wire_payload_bytes = 0
        self.compressed_frames = 0  # RSV1 set
        self.non_fin_frames = 0
        self.messages = 0
        self.message_bytes = 0  # application bytes, before compression
        self.received_messages = 0

    def as_dict(self) -> dict[str, Any]:
        data = self.opcodes[1] + self.opcodes[2] + self.opcodes[0]
        return {
            "frames": self.frames,
            "data_frames": data,
            "control_frames": self.frames - data,
            "opcodes": {str(k): v for k, v in sorted(self.opcodes.items())},
            "wire_payload_bytes": self.wire_payload_bytes,
            "compressed_frames": self.compressed_frames,
            "non_fin_frames": self.non_fin_frames,
            "messages": self.messages,
            "message_bytes": self.message_bytes,
            "received_messages": self.received_messages,
        }


STATS = {"client": SideStats(), "server": SideStats()}
_HOOKED = False


def install_frame_hook() -> None:
    """Wrap websockets' Frame.serialize to count what goes on the wire."""
    global _HOOKED
    if _HOOKED:
        return
    from websockets.frames import Frame

    original = Frame.serialize

    def serialize(self: Any, *, mask: bool, extensions: Any = None) -> bytes:
        out = original(self, mask=mask, extensions=extensions)
        b0, b1 = out[0], out[1]
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(out[2:4], "big")
        elif n == 127:
            n = int.from_bytes(out[2:10], "big")
        st = STATS["client" if mask else "server"]
        st.frames += 1
        st.opcodes[b0 & 0x0F] += 1
        st.wire_payload_bytes += n
        if b0 & 0x40:
            st.compressed_frames += 1
        if not b0 & 0x80:
            st.non_fin_frames += 1
        return out

    Frame.serialize = serialize  # type: ignore[method-assign]
    _HOOKED = True


# ---------------------------------------------------------------------------
# Message content (deterministic for a given seed).

WORDS = ("hello ok yes no lol brb see you soon meeting at noon ship it deploy done "
         "thanks great idea review please merge conflict fixed tests green red build "
         "coffee lunch later tomorrow today weekend plan call me ping pong release notes "
         "bug crash logs metrics graph latency spike dashboard alert resolved").split()
ROOMS = [f"room-{i}" for i in range(12)]


def chat_text(rng: random.Random) -> str:
    target = min(140, int(rng.expovariate(1 / 45)))
    words: list[str] = []
    length = 0
    while length < target:
        w = rng.choice(WORDS)
        words.append(w)
        length += len(w) + 1
    return " ".join(words)


def chat_message(rng: random.Random, conn: int, seq: int) -> str:
    return json.dumps({"t": "msg", "room": ROOMS[conn % len(ROOMS)], "from": f"user-{conn}",
                       "seq": seq, "text": chat_text(rng)}, separators=(",", ":"))


def chat_push(rng: random.Random, conn: int, seq: int) -> str:
    other = rng.randrange(1000)
    if rng.random() < 0.5:
        return json.dumps({"t": "typing", "room": ROOMS[conn % len(ROOMS)],
                           "user": f"user-{other}"}, separators=(",", ":"))
    return json.dumps({"t": "msg", "room": ROOMS[conn % len(ROOMS)], "from": f"user-{other}",
                       "id": seq * 1000 + other, "text": chat_text(rng)}, separators=(",", ":"))


def chat_expected_pushes(n: int) -> int:
    return sum(1 for s in range(n) if s % CHAT_PUSH_EVERY == CHAT_PUSH_EVERY - 3)


# JSON-RPC 2.0 chat (chat-jsonrpc): the same words and rooms, as requests,
# notifications, responses and errors.

def rpc_is_request(seq: int) -> bool:
    """Whether a client's message ``seq`` is a request (else a notification)."""
    return seq % RPC_NOTIFY_EVERY != RPC_NOTIFY_EVERY - 1


def rpc_client_message(rng: random.Random, conn: int, seq: int) -> str:
    room = ROOMS[conn % len(ROOMS)]
    if not rpc_is_request(seq):
        obj: dict[str, Any] = {"jsonrpc": "2.0", "method": "chat.typing",
                               "params": {"room": room, "user": f"user-{conn}"}}
    elif seq % 25 == 5:
        obj = {"jsonrpc": "2.0", "id": seq, "method": "chat.history",
               "params": [room, rng.randrange(10, 50)]}
    else:
        obj = {"jsonrpc": "2.0", "id": seq, "method": "chat.send",
               "params": {"room": room, "from": f"user-{conn}", "text": chat_text(rng)}}
    return json.dumps(obj, separators=(",", ":"))


def rpc_answer(request: dict[str, Any]) -> str:
    """The server's response to a request: a result, or an error for some."""
    seq = request["id"]
    if seq % RPC_ERROR_EVERY == RPC_ERROR_EVERY - 3:
        return ('{"jsonrpc":"2.0","id":%d,"error":{"code":-32602,'
                '"message":"Invalid params","data":"room is read-only"}}' % seq)
    if request["method"] == "chat.history":
        return '{"jsonrpc":"2.0","id":%d,"result":{"messages":[],"more":false}}' % seq
    return '{"jsonrpc":"2.0","id":%d,"result":{"ok":true,"seq":%d}}' % (seq, seq)


def rpc_push(rng: random.Random, conn: int, seq: int) -> str:
    other = rng.randrange(1000)
    return json.dumps({"jsonrpc": "2.0", "method": "chat.message",
                       "params": {"room": ROOMS[conn % len(ROOMS)], "from": f"user-{other}",
                                  "id": seq * 1000 + other, "text": chat_text(rng)}},
                      separators=(",", ":"))


def rpc_expected_answers(n: int) -> int:
    return sum(1 for s in range(n) if rpc_is_request(s))


def bulk_plan(spec: dict[str, Any], side: str, conn: int) -> list[tuple[int, bool, bool]]:
    """(size, is_text, fragmented) for each message one side of one conn sends."""
    rng = random.Random(f"{spec['seed']}-bulk-plan-{side}-{conn}")
    plan: list[tuple[int, bool, bool]] = []
    total = 0
    lo, hi = math.log(BULK_MIN), math.log(BULK_MAX)
    while total < spec["bytes_per_stream"]:
        size = int(math.exp(rng.uniform(lo, hi)))
        i = len(plan)
        is_text = spec["deflate"] or i % 4 == 3
        if spec["deflate"] and i % 4 == 1:
            is_text = False  # JSON sent as a binary message
        fragmented = i % 5 == 4 and size > BULK_FRAGMENT
        plan.append((size, is_text, fragmented))
        total += size
    return plan


class Content:
    """Pools that bulk messages are cut from, built once per process."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(f"{seed}-pool")
        self.binary = rng.randbytes(8 * 1024 * 1024 + BULK_MAX)
        self.b64 = base64.b64encode(self.binary[: 6 * 1024 * 1024 + BULK_MAX]).decode()
        events = ["click", "view", "scroll", "purchase", "login", "logout", "search", "share"]
        self.records: list[str] = []
        for i in range(8192):
            self.records.append(json.dumps({
                "id": i * 7919 % 1000003,
                "user": f"user-{rng.randrange(5000)}",
                "event": rng.choice(events),
                "ts": 1_700_000_000_000 + i * 37 + rng.randrange(1000),
                "page": f"/p/{rng.randrange(300)}/{rng.choice(WORDS)}",
                "value": round(rng.uniform(0, 1000), 3),
                "tags": rng.sample(WORDS, rng.randrange(0, 4)),
            }, separators=(",", ":")))

    def message(self, rng: random.Random, size: int, is_text: bool, deflate: bool) -> str | bytes:
        if deflate:
            start = rng.randrange(len(self.records))
            parts: list[str] = []
            length = 2
            k = start
            while length < size:
                r = self.records[k % len(self.records)]
                parts.append(r)
                length += len(r) + 1
                k += 1
            text = ("[" + ",".join(parts) + "]")
            return text if is_text else text.encode()
        if is_text:
            off = rng.randrange(len(self.b64) - size)
            body = self.b64[off: off + max(0, size - 11)]
            return '{"blob":"' + body + '"}'
        off = rng.randrange(len(self.binary) - size)
        return self.binary[off: off + size]


def fragments(payload: str | bytes) -> list[Any]:
    return [payload[i: i + BULK_FRAGMENT] for i in range(0, len(payload), BULK_FRAGMENT)]


def _nbytes(payload: str | bytes) -> int:
    return len(payload.encode()) if isinstance(payload, str) else len(payload)


def ws_options(spec: dict[str, Any]) -> dict[str, Any]:
    opts: dict[str, Any] = {"ping_interval": None, "max_size": None, "close_timeout": 30}
    if not spec["deflate"]:
        opts["compression"] = None
    return opts


# ---------------------------------------------------------------------------
# Server side (runs in its own process).

async def chat_server(ws: Any, spec: dict[str, Any], st: SideStats, conn: int) -> None:
    rng = random.Random(f"{spec['seed']}-chat-server-{conn}")
    rpc = spec.get("app") == "jsonrpc"
    seq = -1
    async for msg in ws:
        st.received_messages += 1
        obj = json.loads(msg)
        seq = obj["id"] if "id" in obj else seq + 1 if rpc else obj["seq"]
        if seq % CHAT_PUSH_EVERY == CHAT_PUSH_EVERY - 3:
            push = rpc_push(rng, conn, seq) if rpc else chat_push(rng, conn, seq)
            await ws.send(push)
            st.messages += 1
            st.message_bytes += len(push)
        if rpc and "id" not in obj:
            continue  # a notification is not answered
        ack = rpc_answer(obj) if rpc else '{"t":"ack","seq":%d,"ok":true}' % seq
        await ws.send(ack)
        st.messages += 1
        st.message_bytes += len(ack)
        if spec.get("slow"):
            await asyncio.sleep(spec["slow"])


async def bulk_send(ws: Any, spec: dict[str, Any], st: SideStats, side: str, conn: int,
                    content: Content) -> None:
    rng = random.Random(f"{spec['seed']}-bulk-content-{side}-{conn}")
    for size, is_text, fragmented in bulk_plan(spec, side, conn):
        payload = content.message(rng, size, is_text, spec["deflate"])
        await ws.send(fragments(payload) if fragmented else payload)
        st.messages += 1
        st.message_bytes += _nbytes(payload)
        pace = spec.get("pace", 0.0) + spec.get("slow", 0.0) * 10
        if pace:
            await asyncio.sleep(pace)


async def bulk_server(ws: Any, spec: dict[str, Any], st: SideStats, conn: int,
                      content: Content) -> None:
    sender = asyncio.create_task(bulk_send(ws, spec, st, "server", conn, content))
    try:
        async for _ in ws:
            st.received_messages += 1
    finally:
        await sender


async def server_main(spec: dict[str, Any], port_q: Any) -> dict[str, Any]:
    from websockets.asyncio.server import serve

    install_frame_hook()
    st = STATS["server"]
    content = Content(spec["seed"]) if spec["kind"] == "bulk" else None
    errors: list[str] = []
    finished = 0
    all_done = asyncio.Event()

    async def handler(ws: Any) -> None:
        nonlocal finished
        try:
            conn = int(ws.request.path.rsplit("/", 1)[1])
            if spec["kind"] == "chat":
                await chat_server(ws, spec, st, conn)
            else:
                assert content is not None
                await bulk_server(ws, spec, st, conn, content)
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            errors.append(f"server handler: {exc!r}")
        finally:
            finished += 1
            if finished >= spec["conns"]:
                all_done.set()

    tls: dict[str, Any] = {}
    if spec.get("tls"):
        import ssl
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(spec["cert"], spec["key"])
        tls["ssl"] = context
    async with serve(handler, HOST, 0, **ws_options(spec), **tls) as server:
        port = server.sockets[0].getsockname()[1]
        port_q.put(port)
        try:
            await asyncio.wait_for(all_done.wait(), TRAFFIC_TIMEOUT + 30)
        except TimeoutError:
            errors.append(f"server: only {finished}/{spec['conns']} connections finished in time")
    return {"stats": st.as_dict(), "errors": errors, "port": port}


def server_process(spec: dict[str, Any], port_q: Any, result_q: Any) -> None:
    try:
        result = asyncio.run(server_main(spec, port_q))
    except Exception as exc:  # noqa: BLE001
        result = {"stats": STATS["server"].as_dict(), "errors": [f"server: {exc!r}"]}
        port_q.put(None)
    result_q.put(result)


# ---------------------------------------------------------------------------
# Client side (runs in this process).

def _scheme(spec: dict[str, Any]) -> str:
    return "wss" if spec.get("tls") else "ws"


_CLIENT_CONTEXTS: dict[str, Any] = {}


def _client_tls(spec: dict[str, Any]) -> dict[str, Any]:
    """TLS 1.3 to the local self-signed server; the key log goes to spec["keylog"]."""
    if not spec.get("tls"):
        return {}
    context = _CLIENT_CONTEXTS.get(spec["keylog"])
    if context is None:
        import ssl
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.keylog_filename = spec["keylog"]
        _CLIENT_CONTEXTS[spec["keylog"]] = context
    return {"ssl": context, "server_hostname": "localhost"}


async def chat_client(port: int, spec: dict[str, Any], conn: int, st: SideStats) -> None:
    from websockets.asyncio.client import connect

    rng = random.Random(f"{spec['seed']}-chat-client-{conn}")
    n = spec["msgs_per_conn"]
    rpc = spec.get("app") == "jsonrpc"
    answers = rpc_expected_answers(n) if rpc else n
    expected = answers + chat_expected_pushes(n)
    answer_head = '{"jsonrpc":"2.0","id"' if rpc else '{"t":"ack"'
    async with connect(f"{_scheme(spec)}://{HOST}:{port}/chat/{conn}", open_timeout=60,
                       **ws_options(spec), **_client_tls(spec)) as ws:
        window = asyncio.Semaphore(spec["window"])

        async def reader() -> None:
            for _ in range(expected):
                msg = await ws.recv()
                st.received_messages += 1
                if msg.startswith(answer_head):
                    window.release()

        reading = asyncio.create_task(reader())
        for seq in range(n):
            if not rpc or rpc_is_request(seq):
                await window.acquire()  # a notification waits for no answer
            msg = rpc_client_message(rng, conn, seq) if rpc else chat_message(rng, conn, seq)
            await ws.send(msg)
            st.messages += 1
            st.message_bytes += len(msg)
            if seq % CHAT_PING_EVERY == CHAT_PING_EVERY - 1:
                await ws.ping()  # the server's pong comes back on its own
            if spec.get("slow"):
                await asyncio.sleep(spec["slow"])
        await reading
    # leaving the block closes cleanly: close frame each way, then TCP FIN


async def bulk_client(port: int, spec: dict[str, Any], conn: int, st: SideStats,
                      content: Content) -> None:
    from websockets.asyncio.client import connect

    expected = len(bulk_plan(spec, "server", conn))
    async with connect(f"{_scheme(spec)}://{HOST}:{port}/bulk/{conn}", open_timeout=60,
                       **ws_options(spec), **_client_tls(spec)) as ws:
        async def reader() -> None:
            for _ in range(expected):
                await ws.recv()
                st.received_messages += 1

        reading = asyncio.create_task(reader())
        await bulk_send(ws, spec, st, "client", conn, content)
        await reading


async def clients_main(port: int, spec: dict[str, Any]) -> None:
    st = STATS["client"]
    if spec["kind"] == "chat":
        slots = asyncio.Semaphore(spec.get("open_at_once") or spec["conns"])

        async def chat_slot(i: int) -> None:
            async with slots:  # at most open_at_once connections at a time
                await chat_client(port, spec, i, st)

        jobs = [chat_slot(i) for i in range(spec["conns"])]
    else:
        content = Content(spec["seed"])
        jobs = [bulk_client(port, spec, i, st, content) for i in range(spec["conns"])]
    await asyncio.wait_for(asyncio.gather(*jobs), TRAFFIC_TIMEOUT)


# ---------------------------------------------------------------------------
# The bomb: written out, not recorded.

BOMB_PORT = 8765
BOMB_SEGMENT = 65483  # what TCP puts in one segment on loopback (MTU 65536)


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(memoryview(data).cast("H"))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class LoopbackConnection:
    """One TCP connection over 127.0.0.1, as tcpdump -i lo writes it (Ethernet, zero MACs)."""

    def __init__(self, cport: int, sport: int) -> None:
        import struct

        self.struct = struct
        self.ports = {"c": (cport, sport), "s": (sport, cport)}
        self.seq = {"c": 1_000_000, "s": 2_000_000}
        self.records: list[bytes] = []
        self.t = 1_700_000_000_000_000  # microseconds

    def packet(self, side: str, flags: int, payload: bytes = b"") -> None:
        st = self.struct
        other = "s" if side == "c" else "c"
        src, dst = self.ports[side]
        ack = self.seq[other] if flags & 0x10 else 0
        tcp = st.pack("!HHIIBBHHH", src, dst, self.seq[side] & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      5 << 4, flags, 65535, 0, 0)
        loopback = bytes([127, 0, 0, 1])
        pseudo = loopback + loopback + st.pack("!BBH", 0, 6, len(tcp) + len(payload))
        check = _checksum(pseudo + tcp + payload)
        tcp = tcp[:16] + st.pack("!H", check) + tcp[18:]
        ip = st.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload),
                     len(self.records) & 0xFFFF, 0x4000, 64, 6, 0, loopback, loopback)
        ip = ip[:10] + st.pack("!H", _checksum(ip)) + ip[12:]
        data = bytes(12) + b"\x08\x00" + ip + tcp + payload
        self.records.append(st.pack("<IIII", self.t // 1_000_000, self.t % 1_000_000,
                                    len(data), len(data)) + data)
        self.t += 50
        self.seq[side] += len(payload) + (1 if flags & 0x03 else 0)  # SYN, FIN

    def send(self, side: str, data: bytes) -> None:
        """``data`` in loopback-sized segments, each acknowledged."""
        for i in range(0, len(data), BOMB_SEGMENT):
            self.packet(side, 0x18, data[i:i + BOMB_SEGMENT])  # PSH ACK
            self.packet("s" if side == "c" else "c", 0x10)

    def write(self, path: Path) -> int:
        head = self.struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
        with open(path, "wb") as f:
            f.write(head)
            f.writelines(self.records)
        return len(head) + sum(map(len, self.records))


def make_h2(name: str, out: Path) -> dict[str, Any]:
    """``chat-h2`` from ``chat.pcap`` (see the module's note)."""
    import bisect

    import dpkt
    from hpack import Encoder
    from hyperframe.frame import HeadersFrame, SettingsFrame

    source = out / "chat.pcap"
    if not source.exists():
        make("chat", capture_specs(DEFAULT_CHAT_FRAMES, DEFAULT_BULK_MB, 1)["chat"], out)
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    added: dict[tuple[Any, ...], int] = {}  # direction -> bytes added so far
    ends: dict[tuple[Any, ...], list[tuple[int, int]]] = {}  # (old end seq, added by then)
    sent: dict[tuple[Any, ...], int] = {}  # direction -> highest old end seq
    partial = out / f".{name}.partial"
    with open(source, "rb") as f, open(partial, "wb") as g:
        writer = dpkt.pcap.Writer(g, nano=True)
        for ts, buf in dpkt.pcap.Reader(f):
            eth = dpkt.ethernet.Ethernet(buf)
            ip, tcp = eth.data, eth.data.data
            key = (ip.src, tcp.sport, ip.dst, tcp.dport)
            data = bytes(tcp.data)
            seq = tcp.seq
            if data:
                end = (seq + len(data)) & 0xFFFFFFFF
                top = sent.get(key)
                if top is not None and (top - end) & 0xFFFFFFFF < 1 << 31:
                    continue  # a retransmission (its bytes were sent already)
                sent[key] = end
                if data.startswith(b"GET "):
                    path = data.split(b" ", 2)[1].decode()
                    block = Encoder().encode([
                        (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                        (":path", path), (":authority", "127.0.0.1"),
                        ("sec-websocket-version", "13")])
                    new = (preface + SettingsFrame(0).serialize()
                           + HeadersFrame(1, block, flags=["END_HEADERS"]).serialize())
                elif data.startswith(b"HTTP/1.1 101"):
                    new = (SettingsFrame(0, settings={
                        SettingsFrame.ENABLE_CONNECT_PROTOCOL: 1}).serialize()
                        + HeadersFrame(1, Encoder().encode([(":status", "200")]),
                                       flags=["END_HEADERS"]).serialize())
                else:  # a DATA frame header (RFC 9113 section 6.1), stream 1
                    new = len(data).to_bytes(3, "big") + b"\x00\x00\x00\x00\x00\x01" + data
            else:
                new = b""
            tcp.seq = (seq + added.get(key, 0)) & 0xFFFFFFFF
            if tcp.flags & dpkt.tcp.TH_ACK:
                back = (ip.dst, tcp.dport, ip.src, tcp.sport)
                marks = ends.get(back, [])
                i = bisect.bisect_right(marks, (tcp.ack, 1 << 62)) - 1
                tcp.ack = (tcp.ack + (marks[i][1] if i >= 0 else 0)) & 0xFFFFFFFF
            if data:
                added[key] = added.get(key, 0) + len(new) - len(data)
                ends.setdefault(key, []).append(((seq + len(data)) & 0xFFFFFFFF, added[key]))
            tcp.data, tcp.sum = new, 0
            ip.data, ip.sum = tcp, 0
            ip.len = ip.__hdr_len__ + len(ip.opts) + len(bytes(tcp))
            writer.writepkt(bytes(eth), ts)
    os.replace(partial, out / f"{name}.pcap")
    truth = json.loads((out / "chat.json").read_text())
    truth["derived_from"] = "chat.pcap"
    (out / f"{name}.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth


def make_bomb(name: str, spec: dict[str, Any], out: Path) -> dict[str, Any]:
    """The bomb capture: websockets' deflate and framing, written to a pcap file."""
    import base64 as b64
    import hashlib

    from websockets.extensions.permessage_deflate import PerMessageDeflate
    from websockets.frames import Close, Frame, Opcode

    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    stats = {"client": SideStats(), "server": SideStats()}
    conn = LoopbackConnection(40000, BOMB_PORT)
    conn.packet("c", 0x02)  # SYN
    conn.packet("s", 0x12)  # SYN ACK
    conn.packet("c", 0x10)
    key = b64.b64encode(hashlib.sha256(b"wspcap bomb").digest()[:16]).decode()
    accept = b64.b64encode(hashlib.sha1(
        (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    conn.send("c", (f"GET /bomb HTTP/1.1\r\nHost: 127.0.0.1:{BOMB_PORT}\r\n"
                    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                    "User-Agent: Python/3.11 websockets/14\r\n\r\n").encode())
    conn.send("s", ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
                    "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12; "
                    "client_max_window_bits=12\r\n\r\n").encode())
    # The server's side of the extension, as websockets' default server makes it.
    server = PerMessageDeflate(False, False, 12, 12, {"memLevel": 5})
    client = PerMessageDeflate(False, False, 12, 12, {"memLevel": 5})

    def send(side: str, frame: Any) -> None:
        wire = frame.serialize(mask=side == "c",
                               extensions=[server if side == "s" else client])
        n = wire[1] & 0x7F
        if n >= 126:
            n = int.from_bytes(wire[2:4] if n == 126 else wire[2:10], "big")
        st = stats["server" if side == "s" else "client"]
        st.frames += 1
        st.opcodes[int(frame.opcode)] += 1
        st.wire_payload_bytes += n
        st.compressed_frames += bool(wire[0] & 0x40)
        st.messages += 1
        st.message_bytes += len(frame.data)
        conn.send(side, wire)

    zeros = bytes(spec["message_bytes"])
    for _ in range(spec["messages"]):
        send("s", Frame(Opcode.BINARY, zeros))
    send("c", Frame(Opcode.CLOSE, Close(1000, "").serialize()))
    send("s", Frame(Opcode.CLOSE, Close(1000, "").serialize()))
    conn.packet("s", 0x11)  # FIN ACK
    conn.packet("c", 0x11)
    conn.packet("s", 0x10)
    size = conn.write(out / f"{name}.pcap")
    client_st, server_st = stats["client"].as_dict(), stats["server"].as_dict()
    total = {k: client_st[k] + server_st[k] for k in
             ("frames", "data_frames", "control_frames", "wire_payload_bytes", "messages",
              "message_bytes", "compressed_frames", "non_fin_frames")}
    total["opcodes"] = dict(Counter(client_st["opcodes"]) + Counter(server_st["opcodes"]))
    import websockets

    truth = {
        "name": name, "file": f"{name}.pcap", "kind": "bomb", "deflate": True,
        "port": BOMB_PORT, "connections": 1, "spec": spec,
        "client": client_st, "server": server_st, "total": total,
        "capture": {"captured": len(conn.records), "dropped_by_kernel": 0,
                    "file_bytes": size, "written_by": "make_captures.py (not recorded)"},
        "generation_seconds": round(time.perf_counter() - t0, 3),
        "websockets_version": websockets.__version__, "python": sys.version.split()[0],
        "errors": [], "attempts": 1,
    }
    (out / f"{name}.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth


# ---------------------------------------------------------------------------
# tcpdump

class Tcpdump:
    def __init__(self, path: Path, port: int, buffer_kib: int) -> None:
        cmd = ["tcpdump", "-i", "lo", "-w", str(path), "-U", "-B", str(buffer_kib)]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd += ["-Z", "root"]  # keep root so it can write into any directory
        cmd.append(f"tcp port {port}")
        self.cmd = cmd
        self.lines: list[str] = []
        self.listening = threading.Event()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if "listening on" in line:
                self.listening.set()

    def wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.listening.wait(0.1):
            if self.proc.poll() is not None:
                raise RuntimeError("tcpdump exited: " + " | ".join(self.lines))
            if time.monotonic() > deadline:
                raise RuntimeError("tcpdump did not start listening in time: "
                                   + " | ".join(self.lines))

    def stop(self) -> dict[str, int]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(TCPDUMP_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.reader.join(5)
        stats: dict[str, int] = {}
        for line in self.lines:
            m = re.match(r"\s*(\d+) packets? (captured|received by filter|dropped by kernel)",
                         line)
            if m:
                stats[m.group(2).replace(" ", "_")] = int(m.group(1))
        return stats


# ---------------------------------------------------------------------------

def run_capture(name: str, spec: dict[str, Any], out: Path, buffer_kib: int) -> dict[str, Any]:
    """Run the traffic once under tcpdump. Returns the truth record."""
    STATS["client"] = SideStats()
    install_frame_hook()
    ctx = mp.get_context("spawn")
    port_q, result_q = ctx.Queue(), ctx.Queue()
    server = ctx.Process(target=server_process, args=(spec, port_q, result_q), daemon=True)
    partial = out / f".{name}.pcap.partial"
    tcpdump: Tcpdump | None = None
    server.start()
    try:
        port = port_q.get(timeout=60)
        if port is None:
            raise RuntimeError("server failed to start: " + repr(result_q.get(timeout=10)))
        tcpdump = Tcpdump(partial, port, buffer_kib)
        tcpdump.wait_listening(TCPDUMP_START_TIMEOUT)

        t0 = time.perf_counter()
        client_error = None
        try:
            asyncio.run(clients_main(port, spec))
        except Exception as exc:  # noqa: BLE001
            client_error = f"clients: {exc!r}"
        seconds = time.perf_counter() - t0
        try:
            server_result = result_q.get(timeout=60)
        except queue.Empty:
            server_result = {"stats": {}, "errors": ["server: no result in time"]}
        server.join(15)
        # libpcap's TPACKET_V3 ring hands packets over block by block, a block
        # at the latest after its 1 s timeout, and tcpdump drops what is still
        # in the ring on SIGINT: wait for the last block before stopping it.
        time.sleep(TCPDUMP_FLUSH_WAIT)
        cap = tcpdump.stop()
        tcpdump = None
    finally:
        if tcpdump is not None:
            tcpdump.stop()
        if server.is_alive():
            server.terminate()
            server.join(5)

    errors = list(server_result.get("errors", []))
    if client_error:
        errors.append(client_error)
    client = STATS["client"].as_dict()
    srv = server_result.get("stats", {})
    total = {k: client.get(k, 0) + srv.get(k, 0) for k in
             ("frames", "data_frames", "control_frames", "wire_payload_bytes", "messages",
              "message_bytes", "compressed_frames", "non_fin_frames")}
    total["opcodes"] = dict(Counter(client["opcodes"]) + Counter(srv.get("opcodes", {})))
    import websockets

    return {
        "name": name,
        "file": f"{name}.pcap",
        "kind": spec["kind"],
        "deflate": spec["deflate"],
        "port": port,
        "connections": spec["conns"],
        "spec": spec,
        "client": client,
        "server": srv,
        "total": total,
        "capture": {**cap, "file_bytes": partial.stat().st_size if partial.exists() else 0,
                    "tcpdump": " ".join(tcpdump_cmd_for_record(port, buffer_kib))},
        "generation_seconds": round(seconds, 3),
        "websockets_version": websockets.__version__,
        "python": sys.version.split()[0],
        "errors": errors,
        "_partial": str(partial),
    }


def tcp_handshake_counts(path: Path) -> dict[str, int]:
    """Count SYN (without ACK) and FIN packets: a cheap check that the capture
    holds every connection from its first to its last packet."""
    import struct

    syn = fin = packets = 0
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError(f"{path}: not a classic pcap file")
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    link_len = {1: 14, 113: 16, 276: 20, 0: 4, 101: 0}.get(linktype & 0x0FFFFFFF)
    if link_len is None:
        raise ValueError(f"{path}: unsupported link type {linktype}")
    rec = struct.Struct(endian + "IIII")
    off, end = 24, len(data)
    while off + 16 <= end:
        _, _, incl, _ = rec.unpack_from(data, off)
        off += 16
        ip = off + link_len
        if data[ip] >> 4 == 4:
            tcp = ip + (data[ip] & 0x0F) * 4
        else:
            tcp = ip + 40
        if tcp + 14 <= off + incl:
            flags = data[tcp + 13]
            if flags & 0x02 and not flags & 0x10:
                syn += 1
            if flags & 0x01:
                fin += 1
        packets += 1
        off += incl
    return {"packets": packets, "syn": syn, "fin": fin}


def tcpdump_cmd_for_record(port: int, buffer_kib: int) -> list[str]:
    return ["tcpdump", "-i", "lo", "-w", "FILE", "-U", "-B", str(buffer_kib), f"tcp port {port}"]


def make(name: str, spec: dict[str, Any], out: Path, attempts: int = 3) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    buffer_kib = 65536
    spec = dict(spec)
    if spec.get("tls"):
        sys.path.insert(0, str(HERE.parent / "tests"))
        from golden.tls import self_signed  # the tests' certificate maker

        cert, key = self_signed(out)
        spec.update(cert=str(cert), key=str(key), keylog=str(out / f".{name}.keys.partial"))
    for attempt in range(1, attempts + 1):
        t0 = time.perf_counter()
        truth = run_capture(name, spec, out, buffer_kib)
        wall = time.perf_counter() - t0
        partial = Path(truth.pop("_partial"))
        drops = truth["capture"].get("dropped_by_kernel", -1)
        if partial.exists():
            flags = tcp_handshake_counts(partial)
            truth["capture"]["syn_packets"] = flags["syn"]
            truth["capture"]["fin_packets"] = flags["fin"]
            if flags["syn"] != spec["conns"] or flags["fin"] < 2 * spec["conns"]:
                truth["errors"].append(
                    f"capture incomplete: {flags['syn']} SYN and {flags['fin']} FIN packets "
                    f"for {spec['conns']} connections")
        t = truth["total"]
        print(f"  attempt {attempt}: traffic {truth['generation_seconds']:.1f}s "
              f"(wall {wall:.1f}s), {t['frames']:,} frames "
              f"({t['frames'] / max(truth['generation_seconds'], 1e-9):,.0f}/s), "
              f"{t['wire_payload_bytes'] / 1e6:,.1f} MB wire payload, "
              f"{truth['capture'].get('captured', '?'):,} packets, "
              f"{truth['capture']['file_bytes'] / 1e6:,.1f} MB file, "
              f"dropped by kernel: {drops}", flush=True)
        if truth["errors"]:
            print("  errors: " + "; ".join(truth["errors"]), flush=True)
        if drops == 0 and not truth["errors"]:
            truth["attempts"] = attempt
            final = out / f"{name}.pcap"
            os.replace(partial, final)
            if spec.get("tls"):
                os.replace(spec["keylog"], out / f"{name}.keys")
                truth["keylog"] = f"{name}.keys"
            (out / f"{name}.json").write_text(json.dumps(truth, indent=2) + "\n")
            return truth
        partial.unlink(missing_ok=True)
        # Slow down and enlarge the capture buffer, then try again.
        spec["slow"] = (spec.get("slow") or 0.0) + (0.0005 if spec["kind"] == "chat" else 0.002)
        buffer_kib *= 2
        print(f"  retrying slower (sleep {spec['slow']}s per message, -B {buffer_kib})",
              flush=True)
    raise SystemExit(f"{name}: could not make a clean capture in {attempts} attempts")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", metavar="NAME",
                    help=f"make only this capture (repeatable or comma-separated): "
                         f"{', '.join(CAPTURE_NAMES)}")
    ap.add_argument("--frames", type=int, default=DEFAULT_CHAT_FRAMES,
                    help="data frames in chat (chat-deflate gets half) [%(default)s]")
    ap.add_argument("--bulk-mb", type=float, default=DEFAULT_BULK_MB,
                    help="payload MB in bulk (bulk-deflate gets 3/8 of it) [%(default)s]")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="output directory [benchmarks/data]")
    ap.add_argument("--seed", type=int, default=1, help="content seed [%(default)s]")
    ap.add_argument("--skip-existing", action="store_true",
                    help="keep captures that already exist (with their .json)")
    args = ap.parse_args(argv)

    names = list(CAPTURE_NAMES)
    if args.only:
        names = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
        unknown = [n for n in names if n not in CAPTURE_NAMES]
        if unknown:
            ap.error(f"unknown capture(s): {', '.join(unknown)}")
    if shutil.which("tcpdump") is None and any(n not in ("bomb", "chat-h2") for n in names):
        print("tcpdump not found", file=sys.stderr)
        return 2

    specs = capture_specs(args.frames, args.bulk_mb, args.seed)
    out = args.out.resolve()
    t_all = time.perf_counter()
    for name in names:
        if args.skip_existing and (out / f"{name}.pcap").exists() \
                and (out / f"{name}.json").exists():
            print(f"{name}: exists, skipped")
            continue
        print(f"{name}: {json.dumps(specs[name])}", flush=True)
        t0 = time.perf_counter()
        if name == "bomb":
            truth = make_bomb(name, specs[name], out)
        elif name == "chat-h2":
            truth = make_h2(name, out)
        else:
            truth = make(name, specs[name], out)
        t = truth["total"]
        print(f"{name}: wrote {out / (name + '.pcap')} in {time.perf_counter() - t0:.1f}s: "
              f"{t['frames']:,} frames ({t['data_frames']:,} data), {t['messages']:,} messages, "
              f"{t['wire_payload_bytes'] / 1e6:,.1f} MB wire payload, "
              f"{t['message_bytes'] / 1e6:,.1f} MB message bytes", flush=True)
    print(f"all done in {time.perf_counter() - t_all:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
