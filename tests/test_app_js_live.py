"""SignalR and Phoenix on real traffic: the official JavaScript clients on loopback.

``tests/node/signalr_client.js`` runs @microsoft/signalr (ASP.NET Core's
JavaScript client: WebSockets transport, negotiation skipped, JSON hub
protocol) and ``tests/node/phoenix_client.js`` runs phoenix (the Phoenix
framework's channels client, serializer v2), each over Node's ``ws``. No
ASP.NET Core or Phoenix server runs here, so the server half is written in
this file with ``websockets``, from each protocol's documentation (ASP.NET
Core's HubProtocol.md; Phoenix's socket serializer and channel messages).
tcpdump records the conversation; each side logs what it sent (the client
every WebSocket message either way and what its library made of them, the
server every message it sent), and the capture's ``app`` table is held to
those logs, message by message, both ways, with the request/answer pairs.

SignalR: handshake, ``invoke`` answered by a Completion (a result, an
error), ``send`` (no invocation id), a server invocation without id and one
that asks the client for a result (client results), a server-to-client
stream (StreamItems then a Completion, the last item and the Completion in
one message), one cancelled (CancelInvocation), a client-to-server stream
(``streamIds``), pings both ways, and the end: the client's Close, or the
server's Close with an error, answered by the client's.

Phoenix: a socket authenticated both documented ways (a token among its
params, in the URI; phoenix.js 1.8's ``authToken``, in an offered
subprotocol), join answered by a reply (paired by ref), pushes answered ok
and error, a broadcast and a channel push, the same in the binary form (a
binary push, its binary reply, a binary push and broadcast from the server),
a refused join carrying a token, heartbeats (each reply paired with its
heartbeat), leave and phx_close.

Each with and without permessage-deflate (``ws`` offers it; the server
accepts it or not). Needs root and tcpdump (capture) and Node.js with the
packages of ``tests/node/package.json`` (``.ci/run`` installs them);
skipped with the reason otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Self

import pandas as pd
import pytest
from golden.live import NODE_DIR, node_peer

import wspcap

ROOT = Path(__file__).resolve().parent.parent
STEP = 20.0  # seconds for any one step (a conversation, a stop)
RS = "\x1e"  # SignalR's record separator
#: Over 1 KiB: the size from which Node's ws compresses (permessage-deflate).
NOTE = "héllo ✓ " + " ".join(f"price-{i}={1.25 + i / 1000:.4f}" for i in range(80))

pytestmark = pytest.mark.network

Handler = Callable[[Any, "Sent"], Awaitable[None]]


class Sent:
    """What the server sent, in order: each message as it went out."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.messages: list[str | bytes] = []
        self.lock = asyncio.Lock()

    async def __call__(self, data: str | bytes) -> None:
        async with self.lock:  # the log's order is the wire's
            await self.ws.send(data)
            self.messages.append(data)


class Server:
    """A ``websockets`` server on 127.0.0.1, in a thread of its own, for one conversation."""

    def __init__(self, handler: Handler, port: int, deflate: bool,
                 subprotocols: list[str] | None = None) -> None:
        self.handler, self.port, self.deflate = handler, port, deflate
        self.subprotocols = subprotocols
        self.sent: list[Sent] = []
        self.errors: list[BaseException] = []
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.stopping: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    async def _serve(self) -> None:
        from websockets.asyncio.server import serve

        self.stopping = asyncio.Event()

        async def handle(ws: Any) -> None:
            sent = Sent(ws)
            self.sent.append(sent)
            try:
                await self.handler(ws, sent)
            except Exception as exc:  # noqa: BLE001  (reported by the test)
                self.errors.append(exc)

        async with serve(handle, "127.0.0.1", self.port, ping_interval=None,
                         compression="deflate" if self.deflate else None,
                         subprotocols=self.subprotocols):
            self.ready.set()
            await self.stopping.wait()

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001
            self.errors.append(exc)
            self.ready.set()

    def __enter__(self) -> Self:
        self.thread.start()
        if not self.ready.wait(STEP) or self.errors:
            raise RuntimeError(f"the test server did not start: {self.errors}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.stopping is not None:
            self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(STEP)


def _needs(*packages: str) -> str:
    node = node_peer(*packages)
    pytest.importorskip("websockets")
    return node


def _record(tmp_path: Path, handler: Handler, deflate: bool, script: str, path: str,
            plan: dict[str, Any], package: str, subprotocols: list[str] | None = None,
            ) -> tuple[Path, dict[str, Any], list[str | bytes]]:
    """Run ``script`` against ``handler`` under tcpdump: the capture, the client's
    log and what the server sent."""
    node = _needs(package)
    sys.path.insert(0, str(ROOT / "samples"))
    from make_samples import Tcpdump, pick_port

    port = pick_port("127.0.0.1")
    pcap = tmp_path / "conversation.pcap"
    with Server(handler, port, deflate, subprotocols) as server:
        tcpdump = Tcpdump("lo", port, pcap)
        tcpdump.start()
        try:
            done = subprocess.run(
                [node, str(NODE_DIR / script), f"{path.format(port=port)}",
                 json.dumps({**plan, "timeout_ms": int(STEP * 1000)})],
                capture_output=True, text=True, timeout=2 * STEP, check=False, cwd=NODE_DIR)
        finally:
            time.sleep(0.5)
            tcpdump.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    assert not server.errors, server.errors
    (sent,) = server.sent
    return pcap, json.loads(done.stdout), sent.messages


def _wire_bytes(entry: dict[str, Any]) -> bytes:
    return bytes.fromhex(entry["hex"]) if "hex" in entry else entry["text"].encode()


def _sent(truth: dict[str, Any], server: list[str | bytes], direction: str) -> list[bytes]:
    """Each message ``direction``'s side sent, as that side recorded it: the
    client's own log, or the server's (which the client's log of what it
    received must match)."""
    got = [_wire_bytes(w) for w in truth["wire"] if w["direction"] == direction]
    if direction == "c2s":
        return got
    ours = [m.encode() if isinstance(m, str) else m for m in server]
    assert got == ours, "the client received other messages than the server sent"
    assert [w["binary"] for w in truth["wire"] if w["direction"] == "s2c"] == \
        [isinstance(m, bytes) for m in server]
    return ours


def _sent_texts(truth: dict[str, Any], server: list[str | bytes], direction: str) -> list[str]:
    return [m.decode() for m in _sent(truth, server, direction)]


def _check_connection(cap: wspcap.Capture, truth: dict[str, Any], server: list[str | bytes],
                      deflate: bool, uri: str, subprotocol: str | None = None) -> pd.DataFrame:
    """The one connection, with each side's messages as sent; its data messages."""
    (conn,) = cap.connections.itertuples()
    assert conn.established and conn.uri == uri and _none(conn.subprotocol) == subprotocol
    assert bool(conn.permessage_deflate) == deflate
    msgs = cap.messages
    data = msgs[msgs.type.astype(str).isin(["text", "binary"])]
    for direction in ("c2s", "s2c"):
        mine = data[data.direction == direction]
        sent = _sent(truth, server, direction)
        assert [bytes(p) for p in mine.payload] == sent, direction
        assert mine.complete.all()
        assert (mine.type.astype(str) == "binary").sum() == sum(
            w["binary"] for w in truth["wire"] if w["direction"] == direction), direction
    if deflate:  # websockets compresses every message; ws those over 1 KiB
        assert data[data.direction == "s2c"].compressed.all()
        assert data[data.direction == "c2s"].compressed.any()
    else:
        assert not data.compressed.any()
    closes = msgs[msgs.type.astype(str) == "close"]
    assert sorted(closes.direction.astype(str)) == ["c2s", "s2c"]
    return data


def _no_app_anomalies(cap: wspcap.Capture, *allowed: str) -> None:
    """No anomaly but ws:// itself and ``allowed``."""
    codes = cap.anomalies.code.astype(str)
    assert set(codes) <= {"sec_plaintext_ws", *allowed}, \
        cap.anomalies[["direction", "code", "detail"]].to_string()


def _none(value: Any) -> Any:
    return None if pd.isna(value) else value


def _rows(cap: wspcap.Capture, direction: str) -> list[Any]:
    app = cap.app
    return list(app[app.direction == direction].itertuples())


# -- SignalR -------------------------------------------------------------------

SIGNALR_PLAN = {"keepalive_ms": 150, "idle_ms": 700, "note": NOTE}
PING_MS = 150  # the server's pings


def _record_sep(*records: dict[str, Any]) -> str:
    return "".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + RS for r in records)


async def signalr_hub(ws: Any, send: Sent) -> None:
    """The server half of the JSON hub protocol (HubProtocol.md), for one client."""
    handshake = await asyncio.wait_for(ws.recv(), STEP)
    assert json.loads(handshake.rstrip(RS)) == {"protocol": "json", "version": 1}, handshake
    await send("{}" + RS)

    async def pings() -> None:
        from websockets.exceptions import ConnectionClosed

        with contextlib.suppress(ConnectionClosed):  # until the client has gone
            while True:
                await asyncio.sleep(PING_MS / 1000)
                await send(_record_sep({"type": 6}))

    async def counter(inv: str, count: int, delay_ms: int) -> None:
        for i in range(count - 1):
            await asyncio.sleep(delay_ms / 1000)
            await send(_record_sep({"type": 2, "invocationId": inv, "item": i}))
        await asyncio.sleep(delay_ms / 1000)
        # the last item and the completion, two records in one message
        await send(_record_sep({"type": 2, "invocationId": inv, "item": count - 1},
                               {"type": 3, "invocationId": inv}))

    server_ids = iter(range(1, 1000))
    asked: dict[str, str] = {}  # our invocation id -> the client's it answers
    uploads: dict[str, tuple[str, list[Any]]] = {}  # stream id -> (invocation id, items)
    streams: dict[str, asyncio.Task[None]] = {}
    pinger = asyncio.create_task(pings())
    try:
        async for data in ws:
            for text in data.split(RS)[:-1]:
                record = json.loads(text)
                mtype, inv = record["type"], record.get("invocationId")
                args = record.get("arguments", [])
                if mtype == 1:
                    target = record["target"]
                    if target == "Add":
                        await send(_record_sep({"type": 3, "invocationId": inv,
                                                "result": args[0] + args[1]}))
                    elif target == "Fail":
                        await send(_record_sep({"type": 3, "invocationId": inv,
                                                "error": f"boom: {args[0]}"}))
                    elif target == "Broadcast":
                        await send(_record_sep({"type": 1, "target": "ReceiveMessage",
                                                "arguments": args}))
                    elif target == "AskClient":  # a client result, then our answer
                        ours = str(next(server_ids))
                        asked[ours] = inv
                        await send(_record_sep({"type": 1, "invocationId": ours,
                                                "target": "GetValue", "arguments": args}))
                    elif target == "Upload":
                        (stream_id,) = record["streamIds"]
                        uploads[stream_id] = (inv, [])
                    elif target == "Goodbye":
                        await send(_record_sep({"type": 7, "error": "Server is closing.",
                                                "allowReconnect": False}))
                elif mtype == 4:  # StreamInvocation
                    streams[inv] = asyncio.create_task(counter(inv, *args))
                elif mtype == 5:  # CancelInvocation: the stream ends with a bare Completion
                    streams[inv].cancel()
                    await send(_record_sep({"type": 3, "invocationId": inv}))
                elif mtype == 2:  # an item the client streams to us
                    uploads[inv][1].append(record["item"])
                elif mtype == 3 and inv in asked:
                    await send(_record_sep({"type": 3, "invocationId": asked.pop(inv),
                                            "result": record["result"]}))
                elif mtype == 3 and inv in uploads:
                    answered, items = uploads.pop(inv)
                    await send(_record_sep({"type": 3, "invocationId": answered,
                                            "result": "+".join(items)}))
                elif mtype == 7:
                    await ws.close()
    finally:
        pinger.cancel()
        for task in streams.values():
            task.cancel()


@pytest.mark.parametrize("deflate", [True, False], ids=["deflate", "plain"])
def test_signalr_js_client(tmp_path: Path, deflate: bool) -> None:
    end = "client" if deflate else "server"
    pcap, truth, sent = _record(tmp_path, signalr_hub, deflate, "signalr_client.js",
                                "http://127.0.0.1:{port}/chathub",
                                {**SIGNALR_PLAN, "end": end}, "@microsoft/signalr")
    cap = wspcap.read(pcap)
    data = _check_connection(cap, truth, sent, deflate, "/chathub")
    # chosen by the URI (a "hub" path segment: no subprotocol in SignalR)
    assert (cap.connections.app_protocol.iloc[0], cap.connections.app_confidence.iloc[0]) == \
        ("signalr", 0.8)

    # Every record of every message each side sent, in order: one row each, at
    # its message and place in it, with the record's own fields.
    records: dict[str, list[tuple[int, int, dict[str, Any]]]] = {}
    for direction in ("c2s", "s2c"):
        texts = _sent_texts(truth, sent, direction)
        indexes = data[data.direction == direction].msg_index.tolist()
        records[direction] = [(int(i), part, json.loads(r))
                              for i, text in zip(indexes, texts, strict=True)
                              for part, r in enumerate(text.split(RS)[:-1])]
        assert all(text.endswith(RS) for text in texts)
        rows = _rows(cap, direction)
        assert [(int(r.msg_index), int(r.part)) for r in rows] == \
            [(i, part) for i, part, _ in records[direction]], direction
        for row, (_, _, sent_record) in zip(rows, records[direction], strict=True):
            fields, record = json.loads(row.fields), dict(sent_record)
            if "type" not in record:  # the handshake, both ways
                assert fields == record
                assert row.kind == ("connect" if direction == "c2s" else "ack")
                continue
            mtype = record.pop("type")
            assert fields.pop("type") == mtype and fields.pop("type_name") == SIGNALR_NAMES[mtype]
            assert _none(row.id) == record.pop("invocationId", None), record
            assert fields == record, (direction, record)
            assert row.kind == _signalr_kind(mtype, record, row.id), (direction, record)

    # Channels and pairs: what each record is about, followed through the
    # conversation in the order the client saw it (its wire log holds both ways).
    invoked: dict[tuple[str, str], tuple[str, int]] = {}  # (invoker, id) -> (target, msg)
    streamed: dict[str, str] = {}  # the client's stream ids -> the target they feed
    rows_of = {d: iter(_rows(cap, d)) for d in ("c2s", "s2c")}
    recs = {d: iter(records[d]) for d in ("c2s", "s2c")}
    latencies = []
    for wire in truth["wire"]:
        direction = wire["direction"]
        other = "s2c" if direction == "c2s" else "c2s"
        for _ in wire["text"].split(RS)[:-1]:
            row, (msg, _, record) = next(rows_of[direction]), next(recs[direction])
            mtype, inv = record.get("type"), _none(row.id)
            channel, request = record.get("target"), None
            if mtype in (1, 4) and inv is not None:
                invoked[(direction, inv)] = (record["target"], msg)
            for stream in record.get("streamIds", []):
                streamed[stream] = record["target"]
            if mtype == 5:
                channel = invoked[(direction, inv)][0]
            elif mtype == 2:
                channel = streamed.get(inv) if direction == "c2s" else invoked[(other, inv)][0]
            elif mtype == 3 and (other, inv) in invoked:
                channel, request = invoked.pop((other, inv))
            elif mtype == 3:  # the end of a stream the client sent
                channel = streamed.pop(inv)
            assert _none(row.channel) == channel, (direction, record)
            assert _none(row.request_msg) == request, (direction, record)
            if request is not None:
                asked = cap.app[(cap.app.msg_index == request) & (cap.app.part == 0)].iloc[0]
                assert row.latency == row.ts - asked.ts
                latencies.append(row.latency)
    # Add, Fail, GetValue, AskClient, the two streams, Upload
    assert len(latencies) == 7 and all(x > pd.Timedelta(0) for x in latencies)

    # What the client's library made of it: each result, error, item and server call.
    answers = {_none(r.id): json.loads(r.fields) for r in _rows(cap, "s2c") if r.kind in
               ("response", "error")}
    asked_rows = {r.channel: _none(r.id) for r in _rows(cap, "c2s") if r.kind in
                  ("request", "subscribe")}
    for did in truth["did"]:
        if did["call"] == "invoke" and "result" in did:
            assert answers[asked_rows[did["method"]]]["result"] == did["result"], did
        elif did["call"] == "invoke":
            assert answers[asked_rows[did["method"]]]["error"] in did["error"], did
        elif did["call"] == "stream":
            inv = [r.id for r in _rows(cap, "c2s") if r.kind == "subscribe"
                   and json.loads(r.fields)["arguments"] == did["arguments"]]
            items = [json.loads(r.fields)["item"] for r in _rows(cap, "s2c")
                     if r.kind == "event" and r.id in inv]
            assert items[:len(did["items"])] == did["items"] and items, did
    calls = [(r.channel, json.loads(r.fields)["arguments"]) for r in _rows(cap, "s2c")
             if r.kind in ("request", "notification")]
    assert calls == [(g["target"], g["arguments"]) for g in truth["got"]]
    (given,) = [json.loads(r.fields)["result"] for r in _rows(cap, "c2s")
                if r.kind == "response" and r.channel == "GetValue"]
    assert given == truth["got"][-1]["result"] == 42
    kinds = {d: [r.kind for r in _rows(cap, d)] for d in ("c2s", "s2c")}
    for kind in ("connect", "request", "notification", "subscribe", "unsubscribe", "event",
                 "response", "ping", "disconnect"):
        assert kind in kinds["c2s"], kind
    for kind in ("ack", "request", "notification", "event", "response", "error", "ping"):
        assert kind in kinds["s2c"], kind
    # the end: the client's Close; or the server's, with its error, then the client's
    assert kinds["c2s"][-1] == "disconnect"
    if end == "server":
        assert kinds["s2c"][-1] == "disconnect"
        assert json.loads(_rows(cap, "s2c")[-1].fields) == {
            "type": 7, "type_name": "close", "error": "Server is closing.",
            "allowReconnect": False}
        assert "Server is closing." in truth["closed"]
    _no_app_anomalies(cap)


SIGNALR_NAMES = {1: "invocation", 2: "stream_item", 3: "completion", 4: "stream_invocation",
                 5: "cancel_invocation", 6: "ping", 7: "close"}


def _signalr_kind(mtype: int, record: dict[str, Any], inv: Any) -> str:
    """The kind a record's row has (the decoder's documented mapping)."""
    if mtype == 1:
        return "notification" if _none(inv) is None else "request"
    if mtype == 3:
        return "error" if "error" in record else "response"
    return {2: "event", 4: "subscribe", 5: "unsubscribe", 6: "ping", 7: "disconnect"}[mtype]


# -- Phoenix -------------------------------------------------------------------

PHOENIX_PLAN = {"heartbeat_ms": 200, "idle_ms": 700, "note": NOTE, "topic": "room:lobby",
                "secret_topic": "room:secret", "bytes_hex": bytes(range(256)).hex() * 5,
                "socket_token": "SFMyNTY.not-a-secret", "auth_token": "not-a-secret-either"}


def _binary(kind: int, strings: list[str], payload: bytes) -> bytes:
    """A message of phoenix.js's binary serializer: kind, one length byte per
    string, the strings, the payload."""
    raw = [s.encode() for s in strings]
    return bytes([kind, *(len(s) for s in raw)]) + b"".join(raw) + payload


async def phoenix_endpoint(ws: Any, send: Sent) -> None:
    """The server half of Phoenix channels, serializer v2, for one client."""

    def reply(join_ref: str | None, ref: str, topic: str, status: str, response: Any) -> str:
        return json.dumps([join_ref, ref, topic, "phx_reply",
                           {"status": status, "response": response}])

    async for data in ws:
        if isinstance(data, bytes):  # a binary push: kind 0, join_ref, ref, topic, event
            assert data[0] == 0, data[:8]
            sizes = data[1:5]
            offset, strings = 5, []
            for size in sizes:
                strings.append(data[offset:offset + size].decode())
                offset += size
            join_ref, ref, topic, event = strings
            body = data[offset:]
            await send(_binary(1, [join_ref, ref, topic, "ok"], body[::-1]))
            await send(_binary(0, [join_ref, topic, "binary_news"], body[:16]))
            await send(_binary(2, [topic, "binary_news"], body[-16:]))
            continue
        join_ref, ref, topic, event, payload = json.loads(data)
        if event == "heartbeat":
            await send(reply(None, ref, "phoenix", "ok", {}))
        elif event == "phx_join" and topic == PHOENIX_PLAN["secret_topic"]:
            await send(reply(join_ref, ref, topic, "error", {"reason": "unauthorized"}))
        elif event == "phx_join":
            await send(reply(join_ref, ref, topic, "ok", {"welcome": payload["user"]}))
        elif event == "phx_leave":
            await send(reply(join_ref, ref, topic, "ok", {}))
            await send(json.dumps([join_ref, join_ref, topic, "phx_close", {}]))
        elif event == "new_msg":
            await send(reply(join_ref, ref, topic, "ok", {"length": len(payload["body"])}))
            # a broadcast (the endpoint's fastlane: no refs) and the channel's own push
            await send(json.dumps([None, None, topic, "new_msg", {"body": payload["body"]}]))
            await send(json.dumps([join_ref, None, topic, "new_msg", {"body": "welcome"}]))
        else:
            await send(reply(join_ref, ref, topic, "error", {"reason": f"no {event}"}))


@pytest.mark.parametrize("deflate", [True, False], ids=["deflate", "plain"])
def test_phoenix_js_client(tmp_path: Path, deflate: bool) -> None:
    # phoenix.js offers "phoenix" and its authToken as subprotocols: the server takes the first
    pcap, truth, sent = _record(tmp_path, phoenix_endpoint, deflate, "phoenix_client.js",
                                "ws://127.0.0.1:{port}/socket", PHOENIX_PLAN, "phoenix",
                                subprotocols=["phoenix"])
    cap = wspcap.read(pcap)
    # phoenix.js adds /websocket, the socket's params and the serializer's version
    uri = truth["url"].split(":", 2)[2].split("/", 1)[1]
    assert uri.endswith("vsn=2.0.0") and f"token={PHOENIX_PLAN['socket_token']}" in uri
    data = _check_connection(cap, truth, sent, deflate, "/" + uri, "phoenix")
    offered = cap.connections.protocols_offered.iloc[0].split(", ")
    assert offered == truth["protocols"] and offered[1].startswith("base64url.bearer.phx.")
    # chosen by the URI (/websocket with vsn=)
    assert (cap.connections.app_protocol.iloc[0], cap.connections.app_confidence.iloc[0]) == \
        ("phoenix", 0.9)

    # One row per message each way; the client's rows say what phoenix.js was
    # asked to send (before its serializer), the server's what phoenix.js
    # decoded on receipt, binary messages included.
    said = {"c2s": truth["pushed"], "s2c": truth["got"]}
    assert len(truth["pushed"]) == (data.direction == "c2s").sum()
    heartbeats: dict[str, int] = {}
    pushes: dict[str, Any] = {}
    for direction in ("c2s", "s2c"):
        rows = _rows(cap, direction)
        assert [int(r.msg_index) for r in rows] == \
            data[data.direction == direction].msg_index.tolist(), direction
        binary = data[data.direction == direction].type.astype(str).eq("binary").tolist()
        for row, message, is_binary in zip(rows, said[direction], binary, strict=True):
            fields = json.loads(row.fields)
            assert int(row.part) == 0
            assert (row.channel, _none(row.id)) == (message["topic"], message["ref"]), message
            assert (fields["event"], fields["join_ref"]) == \
                (message["event"], message["join_ref"]), message
            payload = message["payload"]
            if is_binary:
                assert fields["version"] == 2 and fields["binary"] is True
                blob = payload["response"] if message["event"] == "phx_reply" else payload
                got = fields["response"] if message["event"] == "phx_reply" else fields["payload"]
                assert got == {"payload_hex": blob["hex"], "payload_size": len(blob["hex"]) // 2}
            else:
                assert fields["version"] == 2 and "binary" not in fields
                assert fields["payload"] == payload, message
            if message["event"] == "phx_reply":
                assert fields["status"] == payload["status"]
            kind = _phoenix_kind(direction, message, heartbeats)
            assert row.kind == kind, message
            # every reply answers the client's push with its ref, heartbeats included
            if direction == "c2s":
                pushes[message["ref"]] = row
            if message["event"] == "phx_reply":
                asked = pushes[message["ref"]]
                assert _none(row.request_msg) == asked.msg_index, message
                assert row.latency == row.ts - asked.ts > pd.Timedelta(0)
            else:
                assert pd.isna(row.request_msg) and pd.isna(row.latency)

    # What the channel callbacks saw, in the replies' rows.
    replies = {r.id: json.loads(r.fields) for r in _rows(cap, "s2c")
               if r.kind in ("response", "error")}
    joins = [r.id for r in _rows(cap, "c2s") if r.kind == "subscribe"]
    asked = [r.id for r in _rows(cap, "c2s") if r.kind in ("publish", "unsubscribe")]
    answered = [d for d in truth["did"] if "status" in d]
    whats = ["join", "push new_msg", "push fail", "push upload", "join refused", "leave"]
    assert [d["what"] for d in answered] == whats
    for did, ref in zip(answered, [joins[0], *asked[:3], joins[1], asked[3]], strict=True):
        assert replies[ref]["status"] == did["status"], did
        response = replies[ref]["response"]
        if "hex" in did["response"]:
            assert response["payload_hex"] == did["response"]["hex"]
        else:
            assert response == did["response"], did
    (events,) = [d["events"] for d in truth["did"] if d["what"] == "events"]
    seen = [(json.loads(r.fields)["event"], json.loads(r.fields)["payload"])
            for r in _rows(cap, "s2c") if r.kind == "event"]
    assert [e for e, _ in seen] == [e["event"] for e in events]
    for (_, payload), event in zip(seen, events, strict=True):
        assert payload == event["payload"] or payload["payload_hex"] == event["payload"]["hex"]
    kinds = [r.kind for r in cap.app.itertuples()]
    for kind in ("subscribe", "response", "publish", "event", "error", "ping", "pong",
                 "unsubscribe", "disconnect"):
        assert kind in kinds, kind
    assert kinds.count("ping") >= 2

    # Tokens in clear: the handshake's, which the handshake rules report (the
    # socket's token param in the URI, the authToken subprotocol), and the
    # refused join's, which the decoder reports on that join (worse over ws://).
    found = cap.anomalies[cap.anomalies.code.astype(str).str.startswith("app_")]
    assert found.code.astype(str).tolist() == ["app_credentials_plaintext"]
    assert found.severity.astype(str).tolist() == ["error"]
    (refused,) = [r for r in _rows(cap, "c2s") if r.channel == PHOENIX_PLAN["secret_topic"]]
    assert int(found.frame_index.iloc[0]) == int(refused.first_frame)
    assert f"{PHOENIX_PLAN['secret_topic']} carries token" in found.detail.iloc[0]
    codes = cap.anomalies.code.astype(str).tolist()
    assert "sec_credentials_in_url" in codes and "sec_credentials_in_subprotocol" in codes
    _no_app_anomalies(cap, "app_credentials_plaintext", "sec_credentials_in_url",
                      "sec_credentials_in_subprotocol")


_PHOENIX_KINDS = {"phx_join": "subscribe", "phx_leave": "unsubscribe", "phx_close": "disconnect",
                  "phx_error": "error", "heartbeat": "ping"}


def _phoenix_kind(direction: str, message: dict[str, Any], heartbeats: dict[str, int]) -> str:
    """The kind a message's row has (the decoder's documented mapping)."""
    event = message["event"]
    if event == "heartbeat":
        heartbeats[message["ref"]] = 1
    if event == "phx_reply":
        if message["ref"] in heartbeats:
            return "pong"
        return "response" if message["payload"]["status"] == "ok" else "error"
    return _PHOENIX_KINDS.get(event, "publish" if direction == "c2s" else "event")
