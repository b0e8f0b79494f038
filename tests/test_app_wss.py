"""What the messages say over wss://: JSON-RPC 2.0 between the ``websockets``
library's server and client over TLS 1.3 (with and without
permessage-deflate), captured on loopback while the client writes its key
log; the requests each side sent are the ground truth of the ``app`` table.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from golden.tls import contexts
from test_live import STEP, _free_port, _need_capture_rights
from test_wss_browser import capturing

pytestmark = pytest.mark.network

REQUESTS = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p}
            for i, (m, p) in enumerate([("add", [1, 2]), ("greet", {"name": "bob"}),
                                        ("missing", []), ("add", [40, 2])], 1)]
NOTIFY = {"jsonrpc": "2.0", "method": "log", "params": ["client says hi"]}


def answer(request: dict[str, Any]) -> dict[str, Any]:
    if request["method"] == "add":
        return {"jsonrpc": "2.0", "id": request["id"], "result": sum(request["params"])}
    if request["method"] == "greet":
        return {"jsonrpc": "2.0", "id": request["id"],
                "result": f"hello {request['params']['name']}"}
    return {"jsonrpc": "2.0", "id": request["id"],
            "error": {"code": -32601, "message": "Method not found"}}


def converse(port: int, tls: tuple[Any, Any], compression: str | None) -> list[dict[str, Any]]:
    """The client sends the requests (and a notification), the server answers
    each request; returns what the client sent, in order."""
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    sent: list[dict[str, Any]] = []

    async def handler(ws: Any) -> None:
        async for text in ws:
            request = json.loads(text)
            if "id" in request:
                await ws.send(json.dumps(answer(request)))

    async def main() -> None:
        async with (serve(handler, "127.0.0.1", port, ssl=tls[0], compression=compression,
                          ping_interval=None),
                    connect(f"wss://127.0.0.1:{port}/rpc", ssl=tls[1],
                            server_hostname="localhost", compression=compression,
                            ping_interval=None, open_timeout=STEP) as ws):
            for request in [REQUESTS[0], NOTIFY, *REQUESTS[1:]]:
                sent.append(request)
                await asyncio.wait_for(ws.send(json.dumps(request)), STEP)
                if "id" in request:
                    await asyncio.wait_for(ws.recv(), STEP)

    asyncio.run(asyncio.wait_for(main(), 6 * STEP))
    return sent


@pytest.mark.parametrize("compression", [None, "deflate"], ids=["plain", "deflate"])
def test_jsonrpc_over_wss(compression: str | None, tmp_path: Path) -> None:
    _need_capture_rights()
    keyfile = tmp_path / "keys.log"
    server, client = contexts(tmp_path, keylog=keyfile)
    port = _free_port()
    with capturing(port, keyfile, 12 * STEP) as result:
        sent = converse(port, (server, client), compression)
    cap = result["cap"]
    (conn,) = cap.connections.itertuples()
    assert conn.tls and conn.decrypted and conn.permessage_deflate == bool(compression)
    assert conn.app_protocol == "jsonrpc"
    app = cap.app
    requests = app[(app.direction == "c2s") & (app.kind == "request")]
    assert [int(i) for i in requests.id] == [r["id"] for r in sent if "id" in r]
    assert list(requests.channel) == [r["method"] for r in sent if "id" in r]
    notes = app[(app.direction == "c2s") & (app.kind == "notification")]
    assert list(notes.channel) == ["log"]
    answers = app[app.direction == "s2c"]
    assert [int(i) for i in answers.id] == [r["id"] for r in sent if "id" in r]
    assert list(answers.kind) == ["response", "response", "error", "response"]
    # Each answer names the message of its request, and the time it took.
    by_id = {int(r.id): r.msg_index for r in requests.itertuples()}
    assert [int(m) for m in answers.request_msg] == [by_id[int(i)] for i in answers.id]
    assert (answers.latency > pd.Timedelta(0)).all()
    assert not cap.anomalies.code.astype(str).str.startswith("app_").any()
