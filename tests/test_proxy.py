"""WebSocket through an HTTP proxy: the CONNECT tunnel (RFC 9110 section 9.3.6).

A client behind an HTTP proxy (enterprise networks, debugging proxies) asks
it for a tunnel with ``CONNECT host:port``; after the proxy's 2xx answer,
both directions carry the tunnel's own stream: a ClientHello for wss://, an
upgrade request for ws://. A capture taken between the client and the proxy
shows that. The real thing: the ``websockets`` library's client with its
``proxy=`` option, through a CONNECT relay (asyncio streams: the relay only
copies bytes), to the ``websockets`` server, captured live on loopback
between client and relay; ws:// and wss:// (TLS 1.3 and 1.2, the client's
key log followed). Crafted: a proxy that first asks for credentials (407)
on the same connection, and one that refuses.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from golden.crafted import Conversation, _http, request_head, response_head
from golden.rfc6455 import TEXT
from golden.tls import contexts
from rich.console import Console
from test_wss_browser import STEP, _free_port, _need_capture_rights, capturing

import wspcap
from wspcap.views.summary import print_summary

pytestmark = pytest.mark.network

TEXTS = ["through the proxy", "héllo ✓", "x" * 5000]


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A CONNECT-only HTTP proxy: one tunnel a connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    host, port = head.split(b" ")[1].decode().rsplit(":", 1)
    up_reader, up_writer = await asyncio.open_connection(host, int(port))
    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    await writer.drain()
    await asyncio.gather(_relay(reader, up_writer), _relay(up_reader, writer))


def through(proxy: Any, proxy_uri: str, scheme: str, path: str, tmp_path: Path
            ) -> tuple[wspcap.Capture, int]:
    """The websockets client, through the proxy ``proxy`` (an asyncio stream
    handler; ``proxy_uri`` formats its port), to the websockets echo server,
    over ``scheme`` (``ws``, or ``wss-1.3``/``wss-1.2`` with the client's key
    log), captured live between the client and the proxy: the Capture, and
    the proxy's port. The server echoes each of TEXTS."""
    _need_capture_rights()
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    keys = tmp_path / "keys.log"
    keys.touch()
    server_ctx: Any = None
    client_ctx: Any = None
    if scheme != "ws":
        server_ctx, client_ctx = contexts(tmp_path, scheme[-3:], keys)
    proxy_port, server_port = _free_port(), _free_port()

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(f"echo {message}")

    async def run() -> None:
        server = await asyncio.start_server(proxy, "127.0.0.1", proxy_port)
        try:
            async with serve(echo, "localhost", server_port, ssl=server_ctx):
                uri = f"{scheme[:3].rstrip('-')}://localhost:{server_port}{path}"
                async with connect(uri, proxy=proxy_uri.format(port=proxy_port),
                                   ssl=client_ctx) as ws:
                    for text in TEXTS:
                        await ws.send(text)
                        await asyncio.wait_for(ws.recv(), STEP)
        finally:
            server.close()

    with capturing(proxy_port, keys, 6 * STEP) as result:
        asyncio.run(asyncio.wait_for(run(), 3 * STEP))
    cap = result["cap"]
    (row,) = cap.connections.itertuples()
    assert row.server_port == proxy_port and row.uri == path and row.established
    assert row.proxy.split(" ")[0] in ("CONNECT", "SOCKS5")
    assert row.proxy.endswith(f":{server_port}")
    assert bool(row.tls) is bool(row.decrypted) is (scheme != "ws")
    if scheme != "ws":
        assert row.tls_version == f"TLS {scheme[-3:]}"
    m = cap.messages[cap.messages.type == "text"]
    assert [str(t) for t in m[m.direction == "c2s"].text] == TEXTS
    assert [str(t) for t in m[m.direction == "s2c"].text] == [f"echo {t}" for t in TEXTS]
    return cap, proxy_port


@pytest.mark.parametrize("scheme", ["ws", "wss-1.3", "wss-1.2"])
def test_websockets_through_a_connect_proxy(scheme: str, tmp_path: Path) -> None:
    cap, _port = through(_proxy, "http://127.0.0.1:{port}", scheme, "/tunneled", tmp_path)
    assert cap.connections.proxy.iloc[0].startswith("CONNECT localhost:")


def _tunnel(answers: list[bytes]) -> Conversation:
    """CONNECT asked once an answer, each answer in turn; after the last a ws:// upgrade."""
    conv = Conversation(server=("10.0.0.3", 3128))
    conv.open()
    for n, answer in enumerate(answers):
        auth = ["Proxy-Authorization: Basic Ym9iOmh1bnRlcjI="] if n else []
        conv.send("c2s", _http("CONNECT chat.example.com:80 HTTP/1.1",
                               ["Host: chat.example.com:80", *auth]))
        conv.send("s2c", answer)
    conv.upgrade(request_head(host="chat.example.com"), response_head())
    conv.exchange("c2s", TEXT, b"hello through the tunnel")
    conv.exchange("s2c", TEXT, b"hello back")
    return conv


def test_a_proxy_that_asks_for_credentials_first(tmp_path: Path) -> None:
    """407 (with a body) on the first CONNECT, 200 on the second, on one connection."""
    need = b"proxy credentials, please\n"
    conv = _tunnel([_http("HTTP/1.1 407 Proxy Authentication Required", [
        'Proxy-Authenticate: Basic realm="proxy"', f"Content-Length: {len(need)}"], need),
        _http("HTTP/1.1 200 Connection established")])
    cap = wspcap.read(conv.crafted("proxy").write(tmp_path / "proxy.pcap"))
    (row,) = cap.connections.itertuples()
    assert row.host == "chat.example.com" and row.server_port == 3128 and row.accept_valid
    assert row.proxy == "CONNECT chat.example.com:80"
    out = io.StringIO()
    print_summary(cap, console=Console(file=out, width=120, color_system=None))
    assert "10.0.0.3:3128 (CONNECT chat.example.com:80)" in out.getvalue()
    m = cap.messages
    assert [(str(d), bytes(p)) for d, p in zip(m.direction, m.payload, strict=True)] == [
        ("c2s", b"hello through the tunnel"), ("s2c", b"hello back")]
    found = cap.anomalies[cap.anomalies.code == "sec_proxy_credentials"]
    assert list(found.detail) == [
        "Proxy-Authorization Basic on CONNECT: user 'bob', a password of 7 characters"]


def test_after_a_refused_connect_plain_http_goes_on(tmp_path: Path) -> None:
    """A CONNECT answered 403: no tunnel; the connection goes on as HTTP with
    the proxy itself, and the upgrade request sent on it next is read as such."""
    conv = _tunnel([_http("HTTP/1.1 403 Forbidden", ["Content-Length: 9"], b"forbidden")])
    cap = wspcap.read(conv.crafted("refused").write(tmp_path / "refused.pcap"))
    (row,) = cap.connections.itertuples()
    assert row.established and row.host == "chat.example.com"
    assert len(cap.messages) == 2 and pd.isna(row.proxy)  # (no tunnel)


# -- SOCKS ------------------------------------------------------------------------------------

async def _socks5(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A SOCKS 5 proxy (RFC 1928) for CONNECT, with username/password
    (RFC 1929) when the client offers it."""
    greeting = await reader.readexactly(2)
    methods = await reader.readexactly(greeting[1])
    method = 2 if 2 in methods else 0
    writer.write(bytes([5, method]))
    if method == 2:
        await reader.readexactly(1)
        user = await reader.readexactly((await reader.readexactly(1))[0])
        await reader.readexactly((await reader.readexactly(1))[0])
        writer.write(b"\x01\x00" if user == b"bob" else b"\x01\x01")
    head = await reader.readexactly(4)
    if head[3] == 3:
        host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
    else:
        host = ".".join(map(str, await reader.readexactly(4)))
    port = int.from_bytes(await reader.readexactly(2), "big")
    up_reader, up_writer = await asyncio.open_connection(host, port)
    writer.write(b"\x05\x00\x00\x01\x7f\x00\x00\x01" + port.to_bytes(2, "big"))
    await writer.drain()
    await asyncio.gather(_relay(reader, up_writer), _relay(up_reader, writer))


@pytest.mark.parametrize("scheme", ["ws", "wss-1.3"])
@pytest.mark.parametrize("auth", ["", "bob:hunter2@"], ids=["no-auth", "user-password"])
def test_websockets_through_a_socks5_proxy(scheme: str, auth: str, tmp_path: Path) -> None:
    """The websockets client with ``proxy="socks5://..."`` (python-socks), through
    a SOCKS 5 relay (asyncio streams), to the websockets server."""
    pytest.importorskip("python_socks", reason="python-socks (the test extra) is not installed")
    cap, _port = through(_socks5, f"socks5://{auth}127.0.0.1:{{port}}", scheme, "/socks",
                         tmp_path)
    found = cap.anomalies[cap.anomalies.code == "sec_proxy_credentials"]
    assert list(found.detail) == (
        ["SOCKS 5 username/password: user 'bob', a password of 7 bytes"] if auth else [])
