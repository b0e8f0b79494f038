#!/usr/bin/env python3
"""Real application-protocol traffic on loopback, captured, with each side's record.

For every scenario this script picks a free port, starts ``tcpdump`` on ``lo``
(filter ``tcp port <port>``), runs a real server and a real client over
127.0.0.1, stops tcpdump, converts the capture to pcapng (``editcap``) and
writes ``<name>.truth.json``: what each side's application sent, in order,
as the side itself recorded it (see samples/README.md, "Application samples").

Scenarios (``--only``; the default makes the two bundled samples)

- ``socketio``, ``socketio-deflate``: python-socketio ``AsyncServer`` (aiohttp)
  and ``AsyncClient``, websocket transport only; events both ways, acks both
  ways, a room, a second namespace, binary attachments both ways. The deflate
  variant has the client offer permessage-deflate (aiohttp's server accepts).
- ``mqtt``: Mosquitto's WebSocket listener and a paho-mqtt client
  (``transport="websockets"``): CONNECT with user, password and will,
  SUBSCRIBE, PUBLISH QoS 0/1/2 with and without retain, UNSUBSCRIBE, PINGREQ
  (1 s keep-alive), DISCONNECT. paho's own log of every packet it sent and
  received is the packet-level truth.
- ``jsonrpc``, ``jsonrpc-deflate``: JSON-RPC 2.0 over ``websockets``: requests,
  an error, a notification, a batch.
- ``graphql-transport-ws``, ``graphql-ws``: a strawberry (aiohttp) server and a
  ``gql`` client: a query, a mutation and a subscription (legacy ``graphql-ws``:
  two subscriptions, strawberry refuses queries there).

WAMP is missing: autobahn has no router (crossbar is one, and a heavy install).

Usage (as root: tcpdump needs capture rights)::

    python samples/make_app_samples.py                    # socketio and mqtt into samples/
    python samples/make_app_samples.py --only jsonrpc --out /tmp/x

Only 127.0.0.1 is used; every wait is bounded (``STEP`` per step, ``SCENARIO``
per scenario).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_samples import Tcpdump, pick_port, run_checked

SCHEMA_VERSION = 1
STEP = 10.0  # one network wait
SCENARIO = 60.0  # a whole scenario
HOST = "127.0.0.1"


def jsonable(value: Any) -> Any:
    """A value as JSON: bytes become ``{"_binary_hex": ...}`` (Socket.IO attachments)."""
    if isinstance(value, (bytes, bytearray)):
        return {"_binary_hex": bytes(value).hex()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def record_ack_ids(obj: Any) -> list[int]:
    """Wrap ``obj._generate_ack_id`` (python-socketio) to keep every ack id it issues."""
    issued: list[int] = []
    original = obj._generate_ack_id

    def wrapper(*args: Any) -> int:
        ident = original(*args)
        issued.append(ident)
        return int(ident)

    obj._generate_ack_id = wrapper
    return issued


async def bounded(aw: Awaitable[Any], what: str) -> Any:
    try:
        return await asyncio.wait_for(aw, STEP)
    except TimeoutError:
        raise RuntimeError(f"timed out: {what}") from None


# --------------------------------------------------------------------------
# Socket.IO
# --------------------------------------------------------------------------


async def run_socketio(port: int, deflate: bool) -> dict[str, Any]:
    import socketio
    from aiohttp import web

    sent: list[dict[str, Any]] = []  # both sides, each in its own order

    def event(direction: str, ns: str, name: str, args: tuple[Any, ...],
              ack_id: int | None = None, room: str | None = None) -> None:
        entry = {"direction": direction, "kind": "event", "namespace": ns, "event": name,
                 "args": jsonable(list(args)), "ack_id": ack_id}
        if room is not None:
            entry["room"] = room  # rooms are server-side only: the wire shows one emit per member
        sent.append(entry)

    def ack(direction: str, ns: str, ack_id: int, args: tuple[Any, ...]) -> None:
        sent.append({"direction": direction, "kind": "ack", "namespace": ns, "ack_id": ack_id,
                     "args": jsonable(list(args))})

    # -- server --
    server = socketio.AsyncServer(async_mode="aiohttp", transports=["websocket"])
    server_ids = record_ack_ids(server.manager)
    app = web.Application()
    server.attach(app)
    last_c2s_ack: dict[str, int] = {}  # event -> the ack id the client asked for

    async def s_emit(name: str, args: tuple[Any, ...], to: str, ns: str = "/",
                     room: str | None = None, callback: Any = None) -> None:
        n = len(server_ids)
        await server.emit(name, args, to=to, namespace=ns, callback=callback)
        event("s2c", ns, name, args, server_ids[n] if callback else None, room)

    @server.on("connect")
    async def s_connect(sid: str, environ: Any, auth: Any) -> bool:
        return True

    @server.on("connect", namespace="/chat")
    async def s_connect_chat(sid: str, environ: Any, auth: Any) -> bool:
        return True

    @server.on("hello")
    async def s_hello(sid: str, data: Any) -> None:
        await s_emit("welcome", ("hi", {"n": 2}), sid)

    @server.on("ask")
    async def s_ask(sid: str, data: Any) -> int:
        answer = sum(data["values"])
        ack("s2c", "/", last_c2s_ack["ask"], (answer,))
        return answer

    @server.on("join")
    async def s_join(sid: str, data: Any) -> str:
        await server.enter_room(sid, data["room"])
        await s_emit("announce", ({"room": data["room"], "text": "alice joined"},), data["room"],
                     room=data["room"])
        ack("s2c", "/", last_c2s_ack["join"], ("joined",))
        return "joined"

    @server.on("upload")
    async def s_upload(sid: str, name: str, blob: bytes) -> dict[str, int]:
        await s_emit("blob", (bytes(reversed(blob)), "reversed"), sid)
        ack("s2c", "/", last_c2s_ack["upload"], ({"size": len(blob)},))
        return {"size": len(blob)}

    @server.on("ping_me")
    async def s_ping_me(sid: str) -> None:
        async def answered(*args: Any) -> None:
            await s_emit("done", ("thanks", list(args)), sid)

        await s_emit("confirm", ({"question": "still there?"},), sid, callback=answered)

    @server.on("message", namespace="/chat")
    async def s_chat(sid: str, text: str) -> None:
        await s_emit("message", ("echo: " + text,), sid, ns="/chat")
        await server.disconnect(sid, namespace="/chat")  # the server ends the namespace
        sent.append({"direction": "s2c", "kind": "disconnect", "namespace": "/chat"})

    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, HOST, port).start()

    # -- client --
    extra = {"compress": 15} if deflate else {}
    client = socketio.AsyncClient(websocket_extra_options=extra)
    client_ids = record_ack_ids(client)
    got = {name: asyncio.Event() for name in ("welcome", "announce", "blob", "done", "echo", "left")}

    for name in ("welcome", "announce", "blob", "done"):
        client.on(name, lambda *a, _n=name: got[_n].set())
    client.on("message", lambda *a: got["echo"].set(), namespace="/chat")
    client.on("disconnect", lambda *a: got["left"].set(), namespace="/chat")

    @client.on("confirm")
    async def c_confirm(data: Any) -> str:
        ack("c2s", "/", server_ids[-1], ("yes",))
        return "yes"

    async def c_emit(name: str, *args: Any, ns: str = "/", wait_ack: bool = False) -> Any:
        n = len(client_ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        callback = (lambda *a: future.set_result(a)) if wait_ack else None
        await client.emit(name, args, namespace=ns, callback=callback)
        ident = client_ids[n] if wait_ack else None
        if ident is not None:
            last_c2s_ack[name] = ident
        event("c2s", ns, name, args, ident)
        return await bounded(future, f"ack of {name}") if wait_ack else None

    auth = {"token": "sample-token-123"}
    sent.extend({"direction": "c2s", "kind": "connect", "namespace": ns, "auth": auth}
                for ns in ("/", "/chat"))
    await bounded(client.connect(f"http://{HOST}:{port}", transports=["websocket"],
                                 namespaces=["/", "/chat"], auth=auth, wait_timeout=STEP),
                  "connect")
    try:
        await c_emit("hello", {"from": "client", "n": 1})
        await bounded(got["welcome"].wait(), "welcome")
        await c_emit("ask", {"q": "sum", "values": [1, 2, 3]}, wait_ack=True)
        await c_emit("join", {"room": "lobby"}, wait_ack=True)
        await bounded(got["announce"].wait(), "announce")
        await c_emit("upload", "photo.bin", bytes(range(16)) + b"\xff\xfe", wait_ack=True)
        await bounded(got["blob"].wait(), "blob")
        await c_emit("ping_me")
        await bounded(got["done"].wait(), "done")
        await c_emit("message", "hello chat", ns="/chat")
        await bounded(got["echo"].wait(), "echo")
        await bounded(got["left"].wait(), "/chat disconnect")
    finally:
        # python-socketio queues a DISCONNECT per namespace and Engine.IO's close packet,
        # then closes the WebSocket before its writer sends them: neither reaches the wire,
        # so the truth lists no client disconnect.
        await client.disconnect()
        await asyncio.sleep(0.3)
        await runner.cleanup()
    return {
        "protocol": "socketio",
        "description": "python-socketio AsyncServer (aiohttp) and AsyncClient, websocket "
        "transport only" + (", permessage-deflate" if deflate else ", no compression")
        + ": events both ways, acks both ways, a room, namespace /chat (ended by the server), "
        "binary attachments both ways.",
        "generator": {"python-socketio": version("python-socketio"),
                      "python-engineio": version("python-engineio"), "aiohttp": version("aiohttp")},
        "connections": [{"id": 0, "label": "socketio", "uri_path": "/socket.io/",
                         "subprotocol": None, "permessage_deflate": deflate, "sent": sent}],
    }


# --------------------------------------------------------------------------
# MQTT
# --------------------------------------------------------------------------

MQTT_CLIENT_ID = "wspcap-sample"
#: (topic, payload, qos, retain): what the client publishes, in order.
MQTT_PUBLISHES = [
    ("sensors/temp", b"21.5", 0, False),
    ("sensors/humidity", b"\x00\x01\xfe\xff binary", 1, False),
    ("alerts/door", b"door open", 2, False),
    ("sensors/config", b'{"interval": 5, "unit": "C"}', 1, True),
    ("alerts/window", b"window open", 0, True),
]


def run_mqtt(port: int) -> dict[str, Any]:
    import paho.mqtt.client as mqtt

    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        # Mosquitto 2.0.11 will not start with a websockets listener alone: a
        # plain one (another free port, not captured) goes beside it.
        conf.write_text(f"listener {pick_port(HOST)} {HOST}\n"
                        f"listener {port} {HOST}\nprotocol websockets\n"
                        "allow_anonymous true\npersistence false\n", encoding="utf-8")
        broker = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        try:
            return _mqtt_client(mqtt, port, broker)
        finally:
            broker.terminate()
            try:
                broker.wait(5)
            except subprocess.TimeoutExpired:
                broker.kill()
                broker.wait(5)


def _mqtt_client(mqtt: Any, port: int, broker: subprocess.Popen[str]) -> dict[str, Any]:
    deadline = time.monotonic() + STEP
    log: list[str] = []  # paho's log: "Sending X ..." (c2s) and "Received X ..." (s2c)
    received: list[dict[str, Any]] = []
    cond = threading.Condition()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=MQTT_CLIENT_ID,
                         transport="websockets", protocol=mqtt.MQTTv311)
    client.ws_set_options(path="/mqtt")
    client.username_pw_set("alice", "s3cret-pass")
    client.will_set("status/" + MQTT_CLIENT_ID, b"offline", qos=1, retain=True)

    def on_log(_c: Any, _u: Any, _level: int, text: str) -> None:
        if text.startswith(("Sending ", "Received ")):
            with cond:
                log.append(text)
                cond.notify_all()

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        with cond:
            received.append({"direction": "s2c", "kind": "publish", "topic": msg.topic,
                             "payload_hex": msg.payload.hex(), "qos": msg.qos,
                             "retain": bool(msg.retain), "mid": msg.mid if msg.qos else None})
            cond.notify_all()

    def wait(what: str, test: Callable[[], bool]) -> None:
        with cond:
            if not cond.wait_for(test, STEP):
                raise RuntimeError(f"timed out: {what}; log: {log[-5:]}")

    client.on_log, client.on_message = on_log, on_message
    while True:  # the broker needs a moment to listen
        try:
            client.connect(HOST, port, keepalive=1)
            break
        except OSError:
            if time.monotonic() > deadline or broker.poll() is not None:
                raise RuntimeError("mosquitto did not start: " + (broker.stderr.read() if
                                   broker.stderr and broker.poll() is not None else "")) from None
            time.sleep(0.2)
    sent: list[dict[str, Any]] = [{
        "direction": "c2s", "kind": "connect", "client_id": MQTT_CLIENT_ID, "username": "alice",
        "password": "s3cret-pass", "keep_alive": 1, "clean_session": True,
        "will": {"topic": "status/" + MQTT_CLIENT_ID, "payload_hex": b"offline".hex(),
                 "qos": 1, "retain": True}}]
    client.loop_start()
    try:
        wait("CONNACK", lambda: any(t.startswith("Received CONNACK") for t in log))
        topics = [("sensors/#", 2), ("alerts/#", 1)]
        _rc, mid = client.subscribe(topics)
        sent.append({"direction": "c2s", "kind": "subscribe", "topics": topics, "mid": mid})
        wait("SUBACK", lambda: any(t.startswith("Received SUBACK") for t in log))
        for i, (topic, payload, qos, retain) in enumerate(MQTT_PUBLISHES):
            info = client.publish(topic, payload, qos=qos, retain=retain)
            sent.append({"direction": "c2s", "kind": "publish", "topic": topic,
                         "payload_hex": payload.hex(), "qos": qos, "retain": retain,
                         "mid": info.mid if qos else None})
            info.wait_for_publish(STEP)
            wait(f"delivery of {topic}", lambda i=i: len(received) > i)
            # the QoS 1 delivery's PUBACK (or the QoS 2 flow's last packet) goes out before the next step
            time.sleep(0.1)
        _rc, mid = client.unsubscribe(["alerts/#"])
        sent.append({"direction": "c2s", "kind": "unsubscribe", "topics": ["alerts/#"], "mid": mid})
        wait("UNSUBACK", lambda: any(t.startswith("Received UNSUBACK") for t in log))
        wait("PINGRESP", lambda: any(t.startswith("Received PINGRESP") for t in log))
        client.disconnect()
        sent.append({"direction": "c2s", "kind": "disconnect"})
        wait("DISCONNECT", lambda: any(t.startswith("Sending DISCONNECT") for t in log))
        time.sleep(0.3)
    finally:
        client.loop_stop()
    packets = {"c2s": [t.split()[1] for t in log if t.startswith("Sending ")],
               "s2c": [t.split()[1] for t in log if t.startswith("Received ")]}
    version_line = subprocess.run([broker.args[0], "-h"], capture_output=True, text=True,
                                  timeout=STEP, check=False).stdout.splitlines()[:1]
    return {
        "protocol": "mqtt",
        "description": "Mosquitto's WebSocket listener and a paho-mqtt client, MQTT 3.1.1: "
        "CONNECT with user, password and will, SUBSCRIBE, PUBLISH QoS 0/1/2 with and "
        "without retain (delivered back), UNSUBSCRIBE, PINGREQ, DISCONNECT.",
        "generator": {"paho-mqtt": version("paho-mqtt"),
                      "mosquitto": version_line[0] if version_line else None},
        "connections": [{"id": 0, "label": "mqtt", "uri_path": "/mqtt", "subprotocol": "mqtt",
                         "permessage_deflate": False, "sent": sent + received,
                         "packets": packets, "client_log": log}],
    }


# --------------------------------------------------------------------------
# JSON-RPC 2.0 over websockets
# --------------------------------------------------------------------------

#: What the client sends, one WebSocket message each; a list is a batch.
JSONRPC_CLIENT: list[Any] = [
    {"jsonrpc": "2.0", "method": "add", "params": [2, 3], "id": 1},
    {"jsonrpc": "2.0", "method": "echo", "params": {"text": "héllo"}, "id": "req-2"},
    {"jsonrpc": "2.0", "method": "log", "params": {"level": "info", "msg": "client ready"}},
    {"jsonrpc": "2.0", "method": "nope", "id": 3},
    [{"jsonrpc": "2.0", "method": "add", "params": [1, 1], "id": 4},
     {"jsonrpc": "2.0", "method": "log", "params": {"level": "debug", "msg": "in a batch"}},
     {"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": 5}],
]


def _jsonrpc_answer(request: dict[str, Any]) -> dict[str, Any] | None:
    """The server's answer to one request; None for a notification."""
    if "id" not in request:
        return None
    method, params = request["method"], request.get("params")
    if method == "add":
        return {"jsonrpc": "2.0", "result": sum(params), "id": request["id"]}
    if method == "echo":
        return {"jsonrpc": "2.0", "result": params, "id": request["id"]}
    return {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"},
            "id": request["id"]}


async def run_jsonrpc(port: int, deflate: bool) -> dict[str, Any]:
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    sent: list[dict[str, Any]] = []  # {"direction", "message"}: one WebSocket message each
    compression = "deflate" if deflate else None

    async def send(ws: Any, direction: str, message: Any) -> None:
        await ws.send(json.dumps(message, ensure_ascii=False))
        sent.append({"direction": direction, "message": message})

    async def handler(ws: Any) -> None:
        async for text in ws:
            message = json.loads(text)
            items = message if isinstance(message, list) else [message]
            answers = [a for a in map(_jsonrpc_answer, items) if a is not None]
            if isinstance(message, list):
                await send(ws, "s2c", answers)
            elif answers:
                await send(ws, "s2c", answers[0])
            if any(item.get("method") == "log" for item in items):
                await send(ws, "s2c", {"jsonrpc": "2.0", "method": "logged",
                                       "params": {"count": len(items)}})

    async with (serve(handler, HOST, port, compression=compression, ping_interval=None),
                connect(f"ws://{HOST}:{port}/rpc", compression=compression,
                        ping_interval=None) as ws):
        for message in JSONRPC_CLIENT:
            await send(ws, "c2s", message)
            items = message if isinstance(message, list) else [message]
            replies = int(any("id" in i for i in items)) + int(any(
                i.get("method") == "log" for i in items))
            for _ in range(replies):
                await bounded(ws.recv(), f"answer to {message}")
    return {
        "protocol": "jsonrpc",
        "description": "JSON-RPC 2.0 over the websockets library"
        + (" with permessage-deflate" if deflate else ", no compression")
        + ": requests with positional and named params, a string id, an error, "
        "notifications both ways, a batch.",
        "generator": {"websockets": version("websockets")},
        "connections": [{"id": 0, "label": "jsonrpc", "uri_path": "/rpc", "subprotocol": None,
                         "permessage_deflate": deflate, "sent": sent}],
    }


# --------------------------------------------------------------------------
# GraphQL over WebSocket: strawberry (aiohttp) and gql
# --------------------------------------------------------------------------

GRAPHQL_OPERATIONS = [  # (kind, operation name, query, variables)
    ("request", "Hello", "query Hello($name: String!) { hello(name: $name) }", {"name": "ws"}),
    ("request", "AddNote", "mutation AddNote($text: String!) { addNote(text: $text) }",
     {"text": "remember the milk"}),
    ("subscribe", "Count", "subscription Count($upto: Int!) { count(upto: $upto) }", {"upto": 3}),
]
#: strawberry answers queries and mutations over legacy graphql-ws with "queries are not
#: allowed": that flavour gets two subscriptions.
GRAPHQL_LEGACY_OPERATIONS = [
    GRAPHQL_OPERATIONS[2],
    ("subscribe", "CountAgain", "subscription CountAgain($upto: Int!) { count(upto: $upto) }",
     {"upto": 2}),
]


async def run_graphql(port: int, subprotocol: str) -> dict[str, Any]:
    import strawberry
    from aiohttp import web
    from gql import Client, GraphQLRequest
    from gql.transport.websockets import WebsocketsTransport
    from strawberry.aiohttp.views import GraphQLView

    notes: list[str] = []

    @strawberry.type
    class Query:
        @strawberry.field
        def hello(self, name: str) -> str:
            return f"Hello, {name}!"

    @strawberry.type
    class Mutation:
        @strawberry.mutation
        def add_note(self, text: str) -> int:
            notes.append(text)
            return len(notes)

    @strawberry.type
    class Subscription:
        @strawberry.subscription
        async def count(self, upto: int) -> AsyncGenerator[int, None]:  # resolved in module globals
            for i in range(upto):
                yield i

    schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)
    app = web.Application()
    app.router.add_route("*", "/graphql", GraphQLView(schema=schema,
                                                      subscription_protocols=[subprotocol]))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, HOST, port).start()
    sent: list[dict[str, Any]] = []  # the client's operations and the results it got
    try:
        transport = WebsocketsTransport(url=f"ws://{HOST}:{port}/graphql",
                                        subprotocols=[subprotocol], ping_interval=None)
        async with Client(transport=transport, fetch_schema_from_transport=False) as session:
            legacy = subprotocol == "graphql-ws"
            for kind, name, query, variables in (GRAPHQL_LEGACY_OPERATIONS if legacy
                                                 else GRAPHQL_OPERATIONS):
                request = GraphQLRequest(query, variable_values=variables, operation_name=name)
                sent.append({"direction": "c2s", "kind": kind, "operation_name": name,
                             "query": query, "variables": variables})
                if kind == "request":
                    results = [await bounded(session.execute(request), name)]
                else:
                    results = [r async for r in session.subscribe(request)]
                sent.extend({"direction": "s2c", "kind": "response" if kind == "request" else "event",
                             "operation_name": name, "data": r} for r in results)
            # gql's websockets client offers permessage-deflate; the 101 says whether it took
            headers = {k.lower(): v for k, v in transport.response_headers.items()}
            deflate = "permessage-deflate" in headers.get("sec-websocket-extensions", "")
    finally:
        await runner.cleanup()
    return {
        "protocol": "graphql",
        "description": f"GraphQL over WebSocket ({subprotocol}): a strawberry server on aiohttp "
        "and a gql client, with variables: "
        + ("two subscriptions." if subprotocol == "graphql-ws"
           else "a query, a mutation and a subscription."),
        "generator": {"strawberry-graphql": version("strawberry-graphql"), "gql": version("gql")},
        "connections": [{"id": 0, "label": subprotocol, "uri_path": "/graphql",
                         "subprotocol": subprotocol, "permessage_deflate": deflate, "sent": sent}],
    }


# --------------------------------------------------------------------------
# Capture and truth
# --------------------------------------------------------------------------


def _async(fn: Callable[..., Awaitable[dict[str, Any]]], *args: Any) -> Callable[[int], dict[str, Any]]:
    return lambda port: asyncio.run(asyncio.wait_for(fn(port, *args), SCENARIO))


#: name -> (file name, runner(port) -> truth fields). The first two are the bundled samples.
SCENARIOS: dict[str, tuple[str, Callable[[int], dict[str, Any]]]] = {
    "socketio": ("socketio.pcapng", _async(run_socketio, False)),
    "mqtt": ("mqtt.pcapng", run_mqtt),
    "socketio-deflate": ("socketio-deflate.pcapng", _async(run_socketio, True)),
    "jsonrpc": ("jsonrpc.pcapng", _async(run_jsonrpc, False)),
    "jsonrpc-deflate": ("jsonrpc-deflate.pcapng", _async(run_jsonrpc, True)),
    "graphql-transport-ws": ("graphql-transport-ws.pcapng", _async(run_graphql, "graphql-transport-ws")),
    "graphql-ws": ("graphql-ws.pcapng", _async(run_graphql, "graphql-ws")),
}
BUNDLED = ["socketio", "mqtt"]


def make(name: str, out: Path) -> dict[str, Any]:
    """Capture one scenario into ``out``; return its truth (also written beside it)."""
    filename, runner = SCENARIOS[name]
    port = pick_port(HOST)
    final, raw = out / filename, out / (filename + ".tmp.pcap")
    final.unlink(missing_ok=True)
    tcpdump = Tcpdump("lo", port, raw)
    tcpdump.start()
    try:
        truth = runner(port)
        time.sleep(1.0)  # the last FIN/ACKs
    except BaseException:
        tcpdump.stop()
        raw.unlink(missing_ok=True)
        raise
    stats = tcpdump.stop()
    run_checked(["editcap", "-F", "pcapng", str(raw), str(final)])
    raw.unlink()
    truth = {"schema_version": SCHEMA_VERSION, "scenario": name, "file": filename,
             "protocol": truth.pop("protocol"), "description": truth.pop("description"),
             "server": {"ip": HOST, "port": port},
             "capture": {**stats, "file_size": final.stat().st_size},
             "generator": {"script": "make_app_samples.py", "python": platform.python_version(),
                           **truth.pop("generator")},
             **truth}
    path = out / (Path(filename).stem + ".truth.json")
    path.write_text(json.dumps(truth, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return truth


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE, help="output folder (default: samples/)")
    ap.add_argument("--only", action="append", choices=sorted(SCENARIOS),
                    help="make only this scenario (repeatable; default: the bundled ones)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("make_app_samples.py must run as root (tcpdump)", file=sys.stderr)
        return 2
    for tool in ("tcpdump", "editcap"):
        if shutil.which(tool) is None:
            print(f"required tool not found in PATH: {tool}", file=sys.stderr)
            return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or BUNDLED:
        truth = make(name, args.out)
        cap = truth["capture"]
        print(f"{truth['file']}: port {truth['server']['port']}, {cap.get('packets_captured')} "
              f"packets, {cap.get('packets_dropped_by_kernel')} dropped, {cap['file_size']} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
