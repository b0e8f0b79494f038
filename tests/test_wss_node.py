"""Node's ``ws`` client over wss://: Node writes its own key log (``--tls-keylog``), its
``ws`` package frames and compresses the messages (permessage-deflate by default), and
wspcap, capturing live on loopback while following the key log, must give back every
message each side sent.

Needs root (live capture), Node.js and the ``ws`` package (``.ci/run`` installs it with
``npm install --prefix tests/node ws``); skipped with a reason otherwise.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from golden.tls import contexts
from test_wss_browser import STEP, _data, _free_port, _need_capture_rights, _Server, capturing

pytestmark = pytest.mark.network

NODE_DIR = Path(__file__).resolve().parent / "node"
TEXTS = ["hello from node", "héllo wörld ✓", "y" * 70_000]
BINARY = list(range(256))


def test_node_ws_client_decrypted_live(tmp_path: Path) -> None:
    _need_capture_rights()
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (NODE_DIR / "node_modules" / "ws").is_dir():
        pytest.skip("the ws package is not installed (npm install --prefix tests/node ws)")
    port = _free_port()
    context, _client = contexts(tmp_path)
    server = _Server(port, context)
    threading.Thread(target=server.run, daemon=True).start()
    assert server.ready.wait(STEP)
    keys = tmp_path / "keys.log"
    try:
        with capturing(port, keys, 6 * STEP) as result:
            done = subprocess.run(
                [node, f"--tls-keylog={keys}", str(NODE_DIR / "client.js"),
                 f"wss://127.0.0.1:{port}/node",
                 json.dumps({"texts": TEXTS, "binary": BINARY})],
                capture_output=True, text=True, timeout=3 * STEP, check=False, cwd=NODE_DIR)
            assert done.returncode == 0, done.stderr
            assert server.closed.wait(STEP)
    finally:
        server.stop()
    cap = result["cap"]
    (row,) = cap.connections.itertuples()
    assert row.tls and row.decrypted and row.tls_version == "TLS 1.3"
    assert row.permessage_deflate  # ws offers it, websockets accepts
    assert _data(cap, "c2s") == server.received
    assert _data(cap, "s2c") == server.sent
    assert [t for t, _ in server.received] == ["text"] * len(TEXTS) + ["binary"]
    closes = cap.messages[cap.messages.type == "close"]
    assert closes.close_reason.tolist()[:1] == ["bye from node"]
