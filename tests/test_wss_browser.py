"""A real browser over wss://: headless Chromium talks to a local ``websockets`` server
over TLS, writing its key log (``--ssl-key-log-file``); wspcap captures it live on
loopback, following the key log, and must give back every message each side sent,
inflated (Chromium always negotiates permessage-deflate).

Needs root (live capture), Chromium and scapy; skipped with a reason otherwise. The
page cannot finish loading before the conversation has: an image it loads is only
answered once the server saw the close, so Chromium's ``--dump-dom`` returns then.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import os
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from golden.browser import chromium, chromium_args
from golden.browser import page as browser_page
from golden.tls import contexts

import wspcap

pytestmark = pytest.mark.network

STEP = 10.0
TEXTS = ["hello from the browser", "héllo wörld ✓", "x" * 3000]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _need_capture_rights() -> None:
    if os.geteuid() != 0:
        pytest.skip("live capture needs root (or CAP_NET_RAW)")
    pytest.importorskip("scapy", reason="scapy (wspcap[live]) is not installed")


class _Server:
    """The wss server (a thread with its own event loop) and the page's blocking image."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        self.port = port
        self.context = context
        self.received: list[tuple[str, bytes]] = []
        self.sent: list[tuple[str, bytes]] = []
        self.closed = threading.Event()
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_future: asyncio.Future[None] | None = None

    async def _handler(self, ws: Any) -> None:
        try:
            async for msg in ws:
                kind = "text" if isinstance(msg, str) else "binary"
                data = msg.encode() if isinstance(msg, str) else bytes(msg)
                self.received.append((kind, data))
                reply: str | bytes = (f"echo: {msg}" if isinstance(msg, str)
                                      else bytes(reversed(msg)))
                self.sent.append((kind, reply.encode() if isinstance(reply, str) else reply))
                await ws.send(reply)
        finally:
            self.closed.set()

    async def _main(self) -> None:
        from websockets.asyncio.server import serve

        self.loop = asyncio.get_running_loop()
        self.stop_future = self.loop.create_future()
        async with serve(self._handler, "127.0.0.1", self.port, ssl=self.context,
                         ping_interval=None):
            self.ready.set()
            await self.stop_future

    def run(self) -> None:
        asyncio.run(self._main())

    def stop(self) -> None:
        if self.loop is not None and self.stop_future is not None:
            self.loop.call_soon_threadsafe(
                lambda: self.stop_future.done() or self.stop_future.set_result(None))


def _image_server(closed: threading.Event) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            closed.wait(3 * STEP)
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    return http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@contextlib.contextmanager
def capturing(port: int, keylog: Path, timeout: float,
              write: Path | None = None) -> Iterator[dict[str, wspcap.Capture]]:
    """Capture ``tcp port PORT`` on lo while the block runs, following ``keylog``;
    once the block is over (and the last FIN/ACKs with it), the dict holds the
    Capture under ``"cap"``."""
    from wspcap.api.live import Sniffer

    sniffer = Sniffer("lo", f"tcp port {port}", timeout=timeout, write=write, keylog=keylog)
    sniffer.open()
    result: dict[str, wspcap.Capture] = {}
    thread = threading.Thread(target=lambda: result.setdefault("cap", sniffer.capture()))
    thread.start()
    time.sleep(0.5)
    try:
        yield result
        time.sleep(0.5)  # the last FIN/ACKs
    finally:
        sniffer.stop()
        thread.join(STEP)


def _data(cap: wspcap.Capture, direction: str) -> list[tuple[str, bytes]]:
    m = cap.messages
    m = m[(m.direction == direction) & m.type.isin(["text", "binary"])]
    return [(str(t), bytes(p)) for t, p in zip(m.type, m.payload, strict=True)]


@pytest.mark.parametrize("port", [443, 0], ids=["port-443", "unusual-port"])
def test_chromium_wss_decrypted_live(port: int, tmp_path: Path) -> None:
    _need_capture_rights()
    exe = chromium()
    port = port or _free_port()
    context, _client = contexts(tmp_path)
    server = _Server(port, context)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    if not server.ready.wait(STEP):
        pytest.skip(f"could not listen on port {port}")
    images = _image_server(server.closed)
    threading.Thread(target=images.serve_forever, daemon=True).start()
    page = tmp_path / "page.html"
    page.write_text(browser_page(f"wss://localhost:{port}/browser", TEXTS,
                                 f"http://127.0.0.1:{images.server_address[1]}/wait"),
                    encoding="utf-8")
    keys = tmp_path / "keys.log"
    out = tmp_path / "browser.pcapng"
    try:
        with capturing(port, keys, 12 * STEP, write=out) as result:
            done = subprocess.run(
                [exe, *chromium_args(tmp_path / "profile"), "--ignore-certificate-errors",
                 f"--ssl-key-log-file={keys}", "--dump-dom", page.as_uri()],
                capture_output=True, text=True, timeout=6 * STEP, check=False,
                env=dict(os.environ, SSLKEYLOGFILE=str(keys)))
            assert server.closed.wait(STEP), done.stderr[-2000:]
    finally:
        server.stop()
        images.shutdown()
    cap = result["cap"]
    conns = cap.connections
    (row,) = conns[conns.established].itertuples()
    assert row.tls and row.decrypted and row.sni == "localhost"
    assert row.permessage_deflate
    assert row.user_agent and "Chrome" in row.user_agent
    assert _data(cap, "c2s") == server.received
    assert _data(cap, "s2c") == server.sent
    assert [t for t, _ in server.received] == ["text"] * len(TEXTS) + ["binary"]
    assert cap.messages[cap.messages.type == "close"].close_code.tolist()[:1] == [1000]
    # The pcapng written carries the keys: read back without --keylog, the same messages.
    again = wspcap.read(out)
    assert _data(again, "c2s") == server.received and _data(again, "s2c") == server.sent
