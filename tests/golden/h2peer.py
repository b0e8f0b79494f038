"""Hypercorn, an HTTP/2 server that allows RFC 8441's extended CONNECT, as a
peer: it serves a page, a blocking image and an echoing WebSocket, and records
what the WebSocket received and sent (the ground truth of the tests that
capture it, and of ``samples/make_h2_sample.py``).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from typing import Any, Self

__all__ = ["Hypercorn"]

#: Seconds any one wait may take.
STEP = 10.0


class Hypercorn:
    """Hypercorn in a thread, serving the page, the blocking image and the
    echoing WebSocket; what the WebSocket received and sent is recorded."""

    def __init__(self, port: int, page: str = "", tls: tuple[Path, Path] | None = None) -> None:
        self.port, self.page, self.tls = port, page, tls
        self.received: list[tuple[str, bytes]] = []
        self.sent: list[tuple[str, bytes]] = []
        self.versions: list[str] = []
        self.closed = threading.Event()
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                done = event["type"].replace(".startup", ".startup.complete").replace(
                    ".shutdown", ".shutdown.complete")
                await send({"type": done})
                if event["type"] == "lifespan.shutdown":
                    return
        elif scope["type"] == "http":
            await receive()
            if scope["path"] == "/wait":
                await asyncio.get_running_loop().run_in_executor(None, self.closed.wait,
                                                                 3 * STEP)
                body, status = b"", 404
            else:
                body, status = self.page.encode(), 200
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"text/html; charset=utf-8")]})
            await send({"type": "http.response.body", "body": body})
        elif scope["type"] == "websocket":
            self.versions.append(scope.get("http_version", ""))
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            try:
                while True:
                    event = await receive()
                    if event["type"] != "websocket.receive":
                        break
                    if event.get("text") is not None:
                        self.received.append(("text", event["text"].encode()))
                        reply = f"echo: {event['text']}"
                        self.sent.append(("text", reply.encode()))
                        await send({"type": "websocket.send", "text": reply})
                    else:
                        data = bytes(event["bytes"])
                        self.received.append(("binary", data))
                        self.sent.append(("binary", data[::-1]))
                        await send({"type": "websocket.send", "bytes": data[::-1]})
            finally:
                self.closed.set()

    async def _main(self) -> None:
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"127.0.0.1:{self.port}"]
        config.accesslog = config.errorlog = None
        if self.tls is not None:
            config.certfile, config.keyfile = map(str, self.tls)
        self.loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        self.loop.call_soon(self.ready.set)
        await serve(self.app, config, shutdown_trigger=self.stop_event.wait)  # type: ignore[arg-type]

    def __enter__(self) -> Self:
        threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True).start()
        if not self.ready.wait(STEP):
            raise RuntimeError("hypercorn did not start")
        for _ in range(50):  # (listening a moment after the loop starts)
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            self.closed.wait(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.loop is not None and self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
