"""aiohttp's WebSocket client over wss:// (TLS 1.2 and 1.3, with its own permessage-deflate),
captured live on loopback while following the key log its ``ssl`` context writes: wspcap
must give back every message each side sent.

Needs root (live capture) and aiohttp (the ``test`` extra); skipped with a reason otherwise.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from golden.tls import contexts
from test_wss_browser import STEP, _data, _free_port, _need_capture_rights, _Server, capturing

pytestmark = pytest.mark.network

TEXTS = ["hello from aiohttp", "héllo wörld ✓", "z" * 40_000]


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_aiohttp_client_decrypted_live(version: str, tmp_path: Path) -> None:
    _need_capture_rights()
    aiohttp = pytest.importorskip("aiohttp")
    port = _free_port()
    keys = tmp_path / "keys.log"
    server_ctx, client_ctx = contexts(tmp_path, version, keys)
    server = _Server(port, server_ctx)
    threading.Thread(target=server.run, daemon=True).start()
    assert server.ready.wait(STEP)

    async def client() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(
                f"wss://localhost:{port}/aiohttp", ssl=client_ctx, compress=15) as ws:
            for text in TEXTS:
                await ws.send_str(text)
                await asyncio.wait_for(ws.receive(), STEP)
            await ws.send_bytes(bytes(range(200)))
            await asyncio.wait_for(ws.receive(), STEP)
            await ws.close(code=1000, message=b"bye from aiohttp")

    try:
        with capturing(port, keys, 6 * STEP) as result:
            asyncio.run(asyncio.wait_for(client(), 3 * STEP))
            assert server.closed.wait(STEP)
    finally:
        server.stop()
    cap = result["cap"]
    (row,) = cap.connections.itertuples()
    assert row.tls and row.decrypted and row.tls_version == f"TLS {version}"
    assert row.permessage_deflate
    assert _data(cap, "c2s") == server.received
    assert _data(cap, "s2c") == server.sent
    assert len(server.received) == len(TEXTS) + 1
