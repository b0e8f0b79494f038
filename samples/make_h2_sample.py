#!/usr/bin/env python3
"""A real WebSocket over HTTP/2 (RFC 8441), captured: ``samples/wss-h2.pcapng``.

Headless Chromium loads a page from Hypercorn over TLS (ALPN h2) and opens
``wss://localhost:PORT/ws`` from it: Chromium sends the WebSocket as an
extended CONNECT stream of the page's HTTP/2 connection, with
permessage-deflate. The page sends three texts and a binary message, the
server (an ASGI application) answers each, then the page closes with 1000.
tcpdump captures ``lo``, Chromium writes its key log, and ``editcap
--inject-secrets`` embeds the keys in the pcapng, so the sample reads with no
option. ``wss-h2.sent.json`` is the server's own record of what it received
and sent, in order: the ground truth ``tests/test_h2.py`` compares with.

Usage (as root: tcpdump needs capture rights; needs chromium, tcpdump,
editcap and hypercorn)::

    python samples/make_h2_sample.py
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TEXTS = ["hello over HTTP/2", "héllo wörld ✓", "x" * 3000]
PAGE = """<!doctype html><html><head><title>h2</title></head><body>
<script>
const ws = new WebSocket("wss://localhost:%(port)d/ws");
ws.binaryType = "arraybuffer";
const texts = %(texts)s;
let got = 0;
ws.onopen = () => {
  for (const t of texts) ws.send(t);
  ws.send(new Uint8Array([0, 1, 2, 253, 254, 255]));
};
ws.onmessage = () => { got += 1; if (got === texts.length + 1) ws.close(1000, "bye"); };
</script>
<img src="/wait" alt="">
</body></html>
"""


def _cert(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost (cryptography)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class Server:
    """Hypercorn with the page, the blocking image and the echoing WebSocket."""

    def __init__(self, port: int, page: str, tls: tuple[Path, Path]) -> None:
        self.port, self.page, self.tls = port, page, tls
        self.received: list[tuple[str, bytes]] = []
        self.sent: list[tuple[str, bytes]] = []
        self.versions: list[str] = []
        self.closed = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop: asyncio.Event | None = None

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await receive()
            if scope["path"] == "/wait":
                await asyncio.get_running_loop().run_in_executor(None, self.closed.wait, 30)
                body, status = b"", 404
            else:
                body, status = self.page.encode(), 200
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"text/html; charset=utf-8")]})
            await send({"type": "http.response.body", "body": body})
        elif scope["type"] == "websocket":
            self.versions.append(scope.get("http_version", ""))
            await receive()
            await send({"type": "websocket.accept"})
            try:
                while (event := await receive())["type"] == "websocket.receive":
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

    async def main(self) -> None:
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"127.0.0.1:{self.port}"]
        config.certfile, config.keyfile = map(str, self.tls)
        self.loop, self.stop = asyncio.get_running_loop(), asyncio.Event()
        await serve(self.app, config, shutdown_trigger=self.stop.wait)  # type: ignore[arg-type]


def main() -> int:
    if os.geteuid() != 0:
        print("make_h2_sample.py must run as root (tcpdump)", file=sys.stderr)
        return 2
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    for tool, path in (("chromium", chromium), ("tcpdump", shutil.which("tcpdump")),
                       ("editcap", shutil.which("editcap"))):
        if not path:
            print(f"{tool} is missing", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        page = PAGE % {"port": port, "texts": json.dumps(TEXTS)}
        server = Server(port, page, _cert(folder))
        threading.Thread(target=lambda: asyncio.run(server.main()), daemon=True).start()
        time.sleep(1.0)
        raw, keys = folder / "raw.pcap", folder / "keys.log"
        dump = subprocess.Popen(["tcpdump", "-i", "lo", "-w", str(raw), "-U", "-n",
                                 "--immediate-mode", f"tcp port {port}"],
                                stderr=subprocess.PIPE)
        time.sleep(1.0)
        subprocess.run([str(chromium), "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={folder / 'profile'}", "--ignore-certificate-errors",
                        f"--ssl-key-log-file={keys}", "--dump-dom",
                        f"https://localhost:{port}/"],
                       capture_output=True, timeout=60, check=False)
        if not server.closed.wait(10):
            print("the WebSocket did not close", file=sys.stderr)
            return 1
        time.sleep(1.0)
        dump.terminate()
        dump.wait(10)
        assert server.loop is not None and server.stop is not None
        server.loop.call_soon_threadsafe(server.stop.set)
        if server.versions != ["2"]:
            print(f"Chromium used HTTP {server.versions}, not HTTP/2", file=sys.stderr)
            return 1
        out = HERE / "wss-h2.pcapng"
        subprocess.run(["editcap", "--inject-secrets", f"tls,{keys}", str(raw), str(out)],
                       check=True)
    truth = {"file": out.name, "server_port": port,
             "description": "Chromium's WebSocket over HTTP/2 (RFC 8441) to Hypercorn, TLS 1.3 "
                            "with its keys embedded, permessage-deflate",
             "received": [[t, base64.b64encode(p).decode()] for t, p in server.received],
             "sent": [[t, base64.b64encode(p).decode()] for t, p in server.sent]}
    (HERE / "wss-h2.sent.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
