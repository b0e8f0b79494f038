"""Socket.IO / Engine.IO decoder: python-socketio and python-engineio's Packet.encode() as ground truth."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.app.framed_samples import (
    CONVERSATIONS,
    SOCKETIO,
    SOCKETIO_FACTS,
    decode,
    events,
    findings,
    msgs,
)
from wspcap.app.base import AppEvent, AppFinding, AppMessage, ConnFacts
from wspcap.app.socketio import MAX_ATTACHMENT_BYTES, SocketIODecoder

eio_packet = pytest.importorskip("engineio.packet")
sio_packet = pytest.importorskip("socketio.packet")

V3 = ConnFacts(uri="/socket.io/?EIO=3&transport=websocket")


def run(facts: ConnFacts, messages: list[AppMessage]) -> list[AppEvent | AppFinding]:
    return decode(SocketIODecoder, facts, messages)


def sio(direction: str, packet: object) -> list[tuple[str, str | bytes]]:
    """Engine.IO-wrap what socketio.packet.Packet.encode() gives (header text, then raw attachments)."""
    encoded = packet.encode()  # type: ignore[attr-defined]
    parts = encoded if isinstance(encoded, list) else [encoded]
    out: list[tuple[str, str | bytes]] = [(direction, eio_packet.Packet(eio_packet.MESSAGE, parts[0]).encode())]
    out += [(direction, eio_packet.Packet(eio_packet.MESSAGE, a).encode()) for a in parts[1:]]
    return out


def test_real_encoders_ground_truth() -> None:
    items: list[tuple[str, str | bytes]] = [
        ("s2c", eio_packet.Packet(eio_packet.OPEN, {"sid": "s1", "upgrades": [], "pingInterval": 25000,
                                                    "pingTimeout": 20000}).encode()),
        *sio("c2s", sio_packet.Packet(sio_packet.CONNECT, {"token": "abc"}, namespace="/chat")),
        *sio("s2c", sio_packet.Packet(sio_packet.CONNECT, {"sid": "n1"}, namespace="/chat")),
        *sio("c2s", sio_packet.Packet(sio_packet.EVENT, ["chat message", {"room": 7}, "hi"], namespace="/chat", id=12)),
        *sio("s2c", sio_packet.Packet(sio_packet.ACK, ["ok"], namespace="/chat", id=12)),
        *sio("c2s", sio_packet.Packet(sio_packet.EVENT, ["upload", b"\x00\x01", {"f": b"\xff"}])),
        *sio("s2c", sio_packet.Packet(sio_packet.ACK, [b"\x02"], id=3)),
        ("s2c", eio_packet.Packet(eio_packet.PING).encode()),
        ("c2s", eio_packet.Packet(eio_packet.PONG).encode()),
        *sio("s2c", sio_packet.Packet(sio_packet.CONNECT_ERROR, {"message": "nope"}, namespace="/admin")),
        *sio("c2s", sio_packet.Packet(sio_packet.DISCONNECT, namespace="/chat")),
        ("s2c", eio_packet.Packet(eio_packet.CLOSE).encode()),
    ]
    out = run(SOCKETIO_FACTS, msgs(*items))
    ev = events(out)
    assert [(e.kind, e.channel, e.id) for e in ev] == [
        ("open", None, "s1"), ("connect", "/chat", None), ("connected", "/chat", None),
        ("event", "chat message", "12"), ("ack", "/chat", "12"), ("event", "upload", None), ("ack", "/", "3"),
        ("ping", None, None), ("pong", None, None), ("error", "/admin", None), ("disconnect", "/chat", None),
        ("close", None, None)]
    assert ev[0].fields["pingInterval"] == 25000
    assert ev[3].fields["args"] == [{"room": 7}, "hi"] and ev[3].fields["namespace"] == "/chat"
    assert ev[5].fields["args"] == [{"_binary_hex": "0001"}, {"f": {"_binary_hex": "ff"}}]
    assert ev[5].fields["type"] == "BINARY_EVENT" and ev[5].fields["attachments"] == 2
    assert ev[6].fields["args"] == [{"_binary_hex": "02"}] and ev[6].fields["type"] == "BINARY_ACK"
    assert ev[9].fields["data"] == {"message": "nope"} and ev[9].fields["type"] == "CONNECT_ERROR"
    cred = findings(out)
    assert [(f.code, f.msg_index) for f in cred] == [("app_credentials_in_clear", 1)]
    assert "token" in cred[0].detail
    json.dumps([e.fields for e in ev])
    # the package's own decoder agrees on what it reads
    for e, (_, raw) in zip(ev[1:5], items[1:5], strict=True):
        assert isinstance(raw, str)
        pkt = sio_packet.Packet(encoded_packet=raw[1:])
        assert (pkt.namespace or "/") == e.fields["namespace"]
        assert (str(pkt.id) if pkt.id is not None else None) == e.id


def test_sample_and_binary_spread_over_messages() -> None:
    ev = events(run(SOCKETIO_FACTS, SOCKETIO))
    upload = [e for e in ev if e.channel == "upload"]
    assert len(upload) == 1 and upload[0].msg_index == 4 and upload[0].fields["args"] == [{"_binary_hex": "0102"}]
    assert [e.kind for e in ev] == ["open", "connect", "connected", "event", "event", "ping", "pong"]


def test_v3_forms() -> None:
    items = msgs(("c2s", "2probe"), ("s2c", "3probe"), ("c2s", "5"), ("s2c", "40"),
                 ("s2c", "44\"not authorized\""), ("c2s", "451-[\"up\",{\"_placeholder\":true,\"num\":0}]"),
                 ("c2s", b"\x04\xaa"), ("c2s", "40/admin?token=x,"))
    out = run(V3, items)
    ev = events(out)
    assert [e.kind for e in ev] == ["ping", "pong", "upgrade", "connected", "error", "event", "connect"]
    assert ev[0].fields["data"] == "probe" and ev[4].fields["type"] == "ERROR"
    assert ev[5].fields["args"] == [{"_binary_hex": "aa"}]
    assert ev[6].channel == "/admin" and ev[6].fields["query"] == "token=x"
    assert [f.code for f in findings(out)] == ["app_credentials_in_clear"]


def test_attachments_bounded_and_interrupted() -> None:
    big = b"x" * (MAX_ATTACHMENT_BYTES + 1)
    out = run(SOCKETIO_FACTS, msgs(("c2s", '451-["a",{"_placeholder":true,"num":0}]'), ("c2s", big)))
    assert [f.code for f in findings(out)] == ["app_buffer_limit"]
    assert [e.channel for e in events(out)] == ["a"]
    cut = run(SOCKETIO_FACTS, msgs(("c2s", '452-["a",{"_placeholder":true,"num":0}]'), ("c2s", b"1"), ("c2s", "2")))
    assert [f.code for f in findings(cut)] == ["app_protocol_violation"]
    assert [e.kind for e in events(cut)] == ["event", "ping"]
    end = run(SOCKETIO_FACTS, msgs(("c2s", '451-["a",{"_placeholder":true,"num":0}]')))
    assert [f.code for f in findings(end)] == ["app_protocol_violation"] and not events(end)


def test_ping_gap() -> None:
    open_ = '0{"sid":"s","pingInterval":1000,"pingTimeout":500}'
    ok = [AppMessage(0, "s2c", "text", open_.encode(), ts=0), AppMessage(1, "s2c", "text", b"2", ts=1_400_000_000)]
    assert not findings(run(SOCKETIO_FACTS, ok))
    late = [AppMessage(0, "s2c", "text", open_.encode(), ts=1), AppMessage(1, "s2c", "text", b"2", ts=1_600_000_000)]
    assert [(f.code, f.msg_index) for f in findings(run(SOCKETIO_FACTS, late))] == [("app_keepalive_missed", 1)]
    silent = [AppMessage(0, "s2c", "text", open_.encode(), ts=1),
              AppMessage(1, "c2s", "text", b'42["x"]', ts=3_000_000_000)]
    assert [f.code for f in findings(run(SOCKETIO_FACTS, silent))] == ["app_keepalive_missed"]


def test_parse_failed_only_when_claimed() -> None:
    bad = msgs(("c2s", "hello"), ("c2s", "42[broken"), ("c2s", b"\xff".decode("latin-1")))
    assert {f.code for f in findings(run(SOCKETIO_FACTS, bad))} == {"app_parse_failed"}
    assert not findings(run(ConnFacts(), bad))


def test_recognize() -> None:
    assert SocketIODecoder.recognize(SOCKETIO_FACTS, []) == 0.9
    assert SocketIODecoder.recognize(ConnFacts(uri="/ws/x?transport=websocket&EIO=3"), []) == 0.9
    assert SocketIODecoder.recognize(ConnFacts(uri="/socket.io/?EIO=4&transport=polling"), []) == 0.0
    assert SocketIODecoder.recognize(ConnFacts(), SOCKETIO) == 0.7
    assert SocketIODecoder.recognize(ConnFacts(), msgs(("c2s", '42["x",1]'))) == 0.5
    assert SocketIODecoder.recognize(ConnFacts(), msgs(("s2c", "2"), ("c2s", '40{"token":"t"}'))) == 0.5
    assert SocketIODecoder.recognize(ConnFacts(), msgs(("c2s", "2probe"), ("s2c", "3probe"))) == 0.6
    assert SocketIODecoder.recognize(ConnFacts(), msgs(("c2s", "4hello"), ("c2s", '42["x"]'))) == 0.0
    for name, (facts, conv) in CONVERSATIONS.items():
        if name != "socketio":
            assert SocketIODecoder.recognize(facts, conv) == 0.0, name


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["c2s", "s2c"]), st.one_of(
    st.binary(max_size=40),
    st.text(alphabet="0123456789-/,?[]{}\":ab", max_size=40).map(str.encode),
)), max_size=12), st.booleans())
def test_random_never_raise(items: list[tuple[str, bytes]], claimed: bool) -> None:
    facts = SOCKETIO_FACTS if claimed else ConnFacts()
    messages = [AppMessage(i, d, "text" if i % 2 else "binary", p, ts=i * 10**9) for i, (d, p) in enumerate(items)]
    out = run(facts, messages)
    assert not [f for f in findings(out) if "decoder error" in f.detail]
    json.dumps([e.fields for e in events(out)])
    SocketIODecoder.recognize(facts, messages)


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4),
                    max_leaves=12))
def test_random_json_never_raise(value: object) -> None:
    text = json.dumps(value)
    out = run(SOCKETIO_FACTS, msgs(("c2s", "42" + text), ("c2s", "40" + text), ("c2s", "451-" + text),
                                   ("c2s", b"\x00"), ("s2c", "0" + text)))
    assert not [f for f in findings(out) if "decoder error" in f.detail]
    json.dumps([e.fields for e in events(out)])


def test_uri_query_token_flagged_once() -> None:
    facts = ConnFacts(uri="/socket.io/?EIO=3&transport=websocket&token=abc")
    out = run(facts, msgs(("s2c", "40"), ("c2s", "2")))
    assert [(f.code, f.msg_index) for f in findings(out)] == [("app_credentials_in_clear", None)]
    assert "token" in findings(out)[0].detail
    assert [f.code for f in findings(run(facts, []))] == ["app_credentials_in_clear"]


async def _live_conversation() -> list[tuple[str, str | bytes, int]]:
    """A real python-socketio client and server (websocket transport) through a recording websockets relay."""
    import asyncio
    import time

    import socketio
    import websockets
    from aiohttp import web

    server = socketio.AsyncServer(async_mode="aiohttp", ping_interval=0.2, ping_timeout=5)
    app = web.Application()
    server.attach(app)

    async def chat(sid: str, data: object) -> tuple[str, int]:
        await server.emit("chat message", data, room="room7")
        return "ok", 1

    async def connect(sid: str, environ: object, auth: object) -> None:
        await server.enter_room(sid, "room7")

    async def upload(sid: str, blob: bytes) -> int:
        return len(blob)

    server.on("connect", connect)
    server.on("chat message", chat)
    server.on("connect", lambda sid, environ, auth: None, namespace="/files")
    server.on("upload", upload, namespace="/files")
    runner = web.AppRunner(app, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    record: list[tuple[str, str | bytes, int]] = []

    async def relay(client: websockets.ServerConnection) -> None:
        assert client.request is not None
        async with websockets.connect(f"ws://127.0.0.1:{port}{client.request.path}") as upstream:

            async def pump(src: websockets.ServerConnection | websockets.ClientConnection,
                           dst: websockets.ServerConnection | websockets.ClientConnection, direction: str) -> None:
                async for msg in src:
                    record.append((direction, msg, time.monotonic_ns()))
                    await dst.send(msg)

            tasks = [asyncio.create_task(pump(client, upstream, "c2s")),
                     asyncio.create_task(pump(upstream, client, "s2c"))]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()

    proxy = await websockets.serve(relay, "127.0.0.1", 0)
    proxy_port = proxy.sockets[0].getsockname()[1]
    client = socketio.AsyncClient()
    try:
        await client.connect(f"http://127.0.0.1:{proxy_port}", transports=["websocket"], auth={"token": "s3cret"},
                             namespaces=["/", "/files"])
        assert await client.call("chat message", {"text": "hi"}) == ("ok", 1)
        assert await client.call("upload", b"\x00\x01\x02", namespace="/files") == 3
        await asyncio.sleep(0.5)
        await client.disconnect()
        await asyncio.sleep(0.1)
    finally:
        proxy.close()
        await proxy.wait_closed()
        await runner.cleanup()
    return record


def test_live_python_socketio_conversation() -> None:
    import asyncio

    pytest.importorskip("aiohttp")
    pytest.importorskip("websockets")
    record = asyncio.run(asyncio.wait_for(_live_conversation(), 20))
    messages = [AppMessage(i, d, "text" if isinstance(p, str) else "binary",
                           p.encode() if isinstance(p, str) else p, ts=ts) for i, (d, p, ts) in enumerate(record)]
    out = run(ConnFacts(uri="/socket.io/?transport=websocket&EIO=4"), messages)
    got = [(e.direction, e.kind, e.channel, e.id) for e in events(out) if e.kind not in ("ping", "pong")]
    assert got[:9] == [
        ("s2c", "open", None, got[0][3]), ("c2s", "connect", "/", None), ("c2s", "connect", "/files", None),
        ("s2c", "connected", "/", None), ("s2c", "connected", "/files", None),
        ("c2s", "event", "chat message", "1"), ("s2c", "event", "chat message", None), ("s2c", "ack", "/", "1"),
        ("c2s", "event", "upload", "1")]
    assert ("s2c", "ack", "/files", "1") in got
    upload = next(e for e in events(out) if e.channel == "upload")
    assert upload.fields["args"] == [{"_binary_hex": "000102"}] and upload.fields["namespace"] == "/files"
    assert [e.kind for e in events(out)].count("ping") >= 1
    assert [f.code for f in findings(out)] == ["app_credentials_in_clear"] * 2
    assert len(events(out)) + sum(1 for m in messages if m.type == "binary") == len(messages)


def test_deep_json_nesting() -> None:
    deep = "[" * 5000 + "]" * 5000
    out = run(SOCKETIO_FACTS, msgs(("c2s", "42" + deep), ("s2c", "0" + deep), ("c2s", '42["x",' + "[" * 500 + "]" * 500 + "]")))
    assert [f.code for f in findings(out)] == ["app_parse_failed", "app_parse_failed"]
    assert [e.channel for e in events(out)] == [None, "x"]
    json.dumps([e.fields for e in events(out)])
