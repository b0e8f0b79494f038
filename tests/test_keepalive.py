"""Plain HTTP/1.1 exchanges before the upgrade on one keep-alive connection.

A client may reuse a pooled connection for its WebSocket handshake after
plain requests on it (aiohttp's ``ClientSession`` does, for ``ws_connect``
after a ``get``): the upgrade is then not the connection's first request, and
its answer not the server's first. Crafted conversations (scapy, frames from
:mod:`golden.rfc6455`) put random exchanges before the upgrade: bodies by
length and in chunks, interim answers, HEAD, 204 and 304 answers, requests
pipelined, segments cut anywhere, the server's answers captured before the
requests they answer; every message sent after the upgrade must be read.
Then the ends of following: a body that ends with the connection, an
``Upgrade: h2c``, too many exchanges. And real traffic: aiohttp's client and
server on loopback, captured live.
"""

from __future__ import annotations

import asyncio
import random
import threading
from pathlib import Path
from typing import Any

import pytest
from golden.crafted import Conversation, _chat, _http, request_head
from golden.rfc6455 import TEXT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wspcap
from wspcap.engine import upgrade

#: (method, request body, status, interim answers, answer body); a body is
#: None, ("length", size) or ("chunked", sizes).
Exchange = tuple[str, Any, int, int, Any]

body = st.one_of(st.none(), st.tuples(st.just("length"), st.integers(0, 3000)),
                 st.tuples(st.just("chunked"), st.lists(st.integers(1, 700), max_size=4)))
exchange = st.tuples(st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS"]),
                     body, st.sampled_from([200, 201, 204, 304, 401, 404, 500]),
                     st.integers(0, 2), body)


def _body(kind: Any, rng: random.Random) -> tuple[list[str], bytes]:
    """Header fields and wire bytes of a body."""
    if kind is None:
        return [], b""
    if kind[0] == "length":
        return [f"Content-Length: {kind[1]}"], rng.randbytes(kind[1])
    wire = b"".join(f"{n:x}\r\n".encode() + rng.randbytes(n) + b"\r\n" for n in kind[1])
    return ["Transfer-Encoding: chunked"], wire + b"0\r\n\r\n"


def _message(start: str, kind: Any, rng: random.Random, sent: bool = True) -> bytes:
    fields, wire = _body(kind, rng)
    return _http(start, ["Host: server.example.com", *fields], wire if sent else b"")


def _cuts(data: bytes, rng: random.Random, pieces: int) -> list[int]:
    points = sorted(rng.sample(range(1, len(data)), min(pieces - 1, len(data) - 1)))
    return [b - a for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def conversation(exchanges: list[Exchange], seed: int, pipelined: bool,
                 answers_first: bool) -> Conversation:
    """The exchanges, then the upgrade and a chat. ``pipelined``: every request
    (the upgrade's too) goes before any answer; ``answers_first``: each answer
    is captured before its request."""
    rng = random.Random(seed)
    conv = Conversation()
    conv.open()
    requests, answers = [], []
    for method, ask, status, interim, answer in exchanges:
        if ask is not None and ask[0] == "length" and method in ("GET", "HEAD"):
            ask = None
        requests.append(_message(f"{method} /r{len(requests)} HTTP/1.1", ask, rng))
        no_body = method == "HEAD" or status in (204, 304)
        if answer is None and not no_body:
            answer = ("length", 0)  # (a body without either field ends with the connection)
        answers.append(b"HTTP/1.1 100 Continue\r\n\r\n" * interim
                       + _message(f"HTTP/1.1 {status} X", answer, rng, sent=not no_body))
    requests.append(request_head())
    answers.append(None)  # the 101 (sent by conv.upgrade below)
    if pipelined:
        client = b"".join(requests)
        conv.send("c2s", client, _cuts(client, rng, rng.randint(1, 6)))
        server = b"".join(a for a in answers if a is not None)
        if server:
            conv.send("s2c", server, _cuts(server, rng, rng.randint(1, 6)))
        conv.send("s2c", _http("HTTP/1.1 101 Switching Protocols", [
            "Upgrade: websocket", "Connection: Upgrade",
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="]))
    else:
        for ask, answer in zip(requests[:-1], answers[:-1], strict=True):
            order = [("s2c", answer), ("c2s", ask)] if answers_first else [("c2s", ask),
                                                                           ("s2c", answer)]
            for d, data in order:
                conv.send(d, data, _cuts(data, rng, rng.randint(1, 3)))
        conv.upgrade()
    _chat(conv)
    return conv


def _read(conv: Conversation, path: Path) -> wspcap.Capture:
    return wspcap.read(conv.crafted("keepalive").write(path))


def _sent(capture: wspcap.Capture, direction: str) -> list[tuple[str, bytes]]:
    m = capture.messages
    m = m[m.direction == direction]
    return [(str(t), bytes(p)) for t, p in zip(m.type, m.payload, strict=True)]


@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(exchanges=st.lists(exchange, max_size=5), seed=st.integers(0, 2**16),
       pipelined=st.booleans(), answers_first=st.booleans())
def test_the_upgrade_after_plain_exchanges(tmp_path: Path, exchanges: list[Exchange],
                                           seed: int, pipelined: bool,
                                           answers_first: bool) -> None:
    conv = conversation(exchanges, seed, pipelined, answers_first)
    cap = _read(conv, tmp_path / "keepalive.pcap")
    (row,) = cap.connections.itertuples()
    assert row.handshake and row.established and row.uri == "/chat" and row.accept_valid
    for d in ("c2s", "s2c"):
        assert _sent(cap, d) == conv.sent[d]
    codes = set(cap.anomalies.code.astype(str))
    assert not {c for c in codes if c.startswith(("http_", "tcp_", "ws_"))}, codes


def _plain_then_upgrade(answer: bytes, request: bytes = b"") -> Conversation:
    conv = Conversation()
    conv.open()
    conv.send("c2s", request or _http("GET / HTTP/1.1", ["Host: server.example.com"]))
    conv.send("s2c", answer)
    conv.upgrade()
    conv.exchange("c2s", TEXT, b"hello")
    return conv


@pytest.mark.parametrize(("answer", "request_"), [
    # a body that ends when the connection does: nothing can follow it
    (_http("HTTP/1.1 200 OK", ["Content-Type: text/plain"], b"all of it"), b""),
    # the connection switches to HTTP/2 (h2c): not WebSocket
    (_http("HTTP/1.1 101 Switching Protocols", ["Upgrade: h2c", "Connection: Upgrade"]),
     _http("GET / HTTP/1.1", ["Host: s", "Upgrade: h2c", "Connection: Upgrade, HTTP2-Settings",
                              "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"])),
    # a transfer coding that is not chunked ends with the connection too
    (_http("HTTP/1.1 200 OK", ["Transfer-Encoding: gzip"], b"\x1f\x8b..."), b""),
    # broken chunks
    (_http("HTTP/1.1 200 OK", ["Transfer-Encoding: chunked"], b"zz\r\n"), b""),
], ids=["close-delimited", "h2c", "gzip-coding", "broken-chunks"])
def test_what_cannot_be_followed_is_not(tmp_path: Path, answer: bytes, request_: bytes) -> None:
    """Where the messages before the upgrade cannot be framed, the connection
    is not followed (as a plain HTTP connection never was)."""
    cap = _read(_plain_then_upgrade(answer, request_), tmp_path / "c.pcap")
    assert cap.connections.empty and cap.frames.empty


def test_exchanges_are_followed_up_to_a_bound(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    exchanges: list[Exchange] = [("GET", None, 200, 0, ("length", 3))] * 3
    conv = conversation(exchanges, 1, False, False)
    monkeypatch.setattr(upgrade, "MAX_EXCHANGES", 3)
    assert len(_read(conv, tmp_path / "a.pcap").connections) == 1
    monkeypatch.setattr(upgrade, "MAX_EXCHANGES", 2)
    assert _read(conv, tmp_path / "b.pcap").connections.empty


def test_body_bytes_are_followed_up_to_a_bound(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    exchanges: list[Exchange] = [("POST", ("length", 300), 200, 0, ("chunked", [200, 100]))] * 2
    conv = conversation(exchanges, 2, False, False)
    monkeypatch.setattr(upgrade, "MAX_FOLLOWED", 1200)
    assert len(_read(conv, tmp_path / "a.pcap").connections) == 1
    monkeypatch.setattr(upgrade, "MAX_FOLLOWED", 1000)
    assert _read(conv, tmp_path / "b.pcap").connections.empty


def test_a_late_upgrade_is_not_a_slow_handshake(tmp_path: Path) -> None:
    """The handshake's time runs from the upgrade request's first byte, not
    from the first plain request's (20 s earlier)."""
    conv = _plain_then_upgrade(_http("HTTP/1.1 200 OK", ["Content-Length: 2"], b"ok"))
    crafted = conv.crafted("late")
    for pkt in crafted.packets[7:]:  # from the upgrade request on
        pkt.time += 20
    cap = wspcap.read(crafted.write(tmp_path / "late.pcap"))
    (row,) = cap.connections.itertuples()
    assert row.established
    assert "res_slow_handshake" not in set(cap.anomalies.code.astype(str))
    assert _sent(cap, "c2s") == conv.sent["c2s"]


# -- real traffic ---------------------------------------------------------------------------

def test_aiohttp_reuses_its_connection_for_ws_connect(tmp_path: Path) -> None:
    """aiohttp's client: a GET, a POST with a JSON body and a GET answered in
    chunks, then ``ws_connect`` on the same pooled connection (the server
    sees one client port throughout), captured live on loopback; every
    message each side sent is read."""
    from test_wss_browser import STEP, _free_port, _need_capture_rights

    _need_capture_rights()
    aiohttp = pytest.importorskip("aiohttp")
    from aiohttp import web

    from wspcap.api.live import Sniffer

    port = _free_port()
    peers: list[Any] = []
    received: list[tuple[str, bytes]] = []
    sent: list[tuple[str, bytes]] = []

    async def page(request: web.Request) -> web.StreamResponse:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        if request.method == "POST":
            return web.json_response({"token": "t0k3n", "echo": await request.json()})
        if request.path == "/stream":
            stream = web.StreamResponse()
            stream.enable_chunked_encoding()
            await stream.prepare(request)
            for n in range(5):
                await stream.write(b"part %d " % n * 50)
            await stream.write_eof()
            return stream
        return web.Response(text="hello " * 100)

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            received.append(("text", msg.data.encode()))
            reply = f"echo {msg.data}"
            sent.append(("text", reply.encode()))
            await ws.send_str(reply)
        return ws

    texts = ["one", "two ✓", "z" * 3000]

    async def run() -> None:
        app = web.Application()
        app.add_routes([web.get("/", page), web.post("/login", page),
                        web.get("/stream", page), web.get("/ws", ws_handler)])
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with aiohttp.ClientSession() as session:
                base = f"http://127.0.0.1:{port}"
                async with session.get(base + "/") as r:
                    await r.read()
                async with session.post(base + "/login", json={"user": "bob"}) as r:
                    await r.read()
                async with session.get(base + "/stream") as r:
                    await r.read()
                async with session.ws_connect(base + "/ws") as ws:
                    for text in texts:
                        await ws.send_str(text)
                        await asyncio.wait_for(ws.receive(), STEP)
                    await ws.close()
        finally:
            await runner.cleanup()

    sniffer = Sniffer("lo", f"tcp port {port}", timeout=6 * STEP)
    sniffer.open()
    result: dict[str, wspcap.Capture] = {}
    thread = threading.Thread(target=lambda: result.setdefault("cap", sniffer.capture()))
    thread.start()
    try:
        asyncio.run(asyncio.wait_for(run(), 3 * STEP))
    finally:
        sniffer.stop()
        thread.join(STEP)
    assert len(peers) == 4 and len(set(peers)) == 1, f"aiohttp used {set(peers)}"
    cap = result["cap"]
    (row,) = cap.connections.itertuples()
    assert row.established and row.uri == "/ws" and row.client_port == peers[0][1]
    assert [(t, p) for t, p in _sent(cap, "c2s") if t == "text"] == received
    assert [(t, p) for t, p in _sent(cap, "s2c") if t == "text"] == sent
    assert [p.decode() for _t, p in received] == texts
