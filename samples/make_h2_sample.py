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

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEXTS = ["hello over HTTP/2", "héllo wörld ✓", "x" * 3000]


def main() -> int:
    # The tests' peer, page and certificate maker (as benchmarks/make_captures.py does)
    sys.path.insert(0, str(HERE.parent / "tests"))
    from golden.browser import page as browser_page
    from golden.h2peer import Hypercorn
    from golden.tls import self_signed

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
        page = browser_page(f"wss://localhost:{port}/ws", TEXTS, "/wait")
        server = Hypercorn(port, page, self_signed(folder)).__enter__()
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
        server.__exit__()
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
