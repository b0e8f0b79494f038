"""WebSockets over HTTP/2 (RFC 8441) from real peers, captured live on loopback.

The server is Hypercorn, which allows extended CONNECT (it sends
``SETTINGS_ENABLE_CONNECT_PROTOCOL``) and hands such a stream to its ASGI
application as a WebSocket; the application records what it received and
sent, the ground truth. Two clients:

- headless Chromium over TLS (ALPN h2), with its key log: the page comes over
  HTTP/2 and Chromium opens its WebSocket as a stream of that connection (it
  does so by default), with permessage-deflate;
- the h2 library's client state machine in clear (h2c, prior knowledge),
  with wsproto's frames inside the stream.

Needs root (live capture), scapy and Hypercorn (Chromium for the first);
skipped with a reason otherwise.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from golden.browser import chromium, chromium_args
from golden.browser import page as browser_page
from golden.h2peer import Hypercorn
from golden.tls import self_signed
from test_wss_browser import STEP, _free_port, _need_capture_rights, capturing

import wspcap

pytestmark = pytest.mark.network

TEXTS = ["hello over HTTP/2", "héllo wörld ✓", "x" * 5000]


def _need_live() -> None:
    _need_capture_rights()
    pytest.importorskip("hypercorn", reason="hypercorn (the HTTP/2 server) is not installed")


def _data(cap: wspcap.Capture, conn_id: int, direction: str) -> list[tuple[str, bytes]]:
    m = cap.messages
    m = m[(m.conn_id == conn_id) & (m.direction == direction) & m.type.isin(["text", "binary"])]
    return [(str(t), bytes(p)) for t, p in zip(m.type, m.payload, strict=True)]


def test_chromium_websocket_over_http2_decrypted(tmp_path: Path) -> None:
    _need_live()
    exe = chromium()
    port = _free_port()
    page = browser_page(f"wss://localhost:{port}/ws", TEXTS, "/wait")
    keys = tmp_path / "keys.log"
    out = tmp_path / "h2.pcapng"
    with Hypercorn(port, page, self_signed(tmp_path)) as server, \
            capturing(port, keys, 12 * STEP, write=out) as result:
        done = subprocess.run(
            [exe, *chromium_args(tmp_path / "profile"), "--ignore-certificate-errors",
             f"--ssl-key-log-file={keys}", "--dump-dom", f"https://localhost:{port}/"],
            capture_output=True, text=True, timeout=6 * STEP, check=False)
        assert server.closed.wait(STEP), done.stderr[-2000:]
    assert server.versions == ["2"], "Chromium did not open its WebSocket over HTTP/2"
    cap = result["cap"]
    conns = cap.connections[cap.connections.established]
    (row,) = conns.itertuples()
    assert row.h2_stream is not None and row.h2_stream % 2 == 1
    assert row.method == "CONNECT" and row.uri == "/ws" and row.status == 200
    assert row.tls and row.decrypted and row.alpn == "h2" and row.sni == "localhost"
    assert row.permessage_deflate and "Chrome" in (row.user_agent or "")
    assert row.origin == f"https://localhost:{port}"
    assert _data(cap, row.conn_id, "c2s") == server.received
    assert _data(cap, row.conn_id, "s2c") == server.sent
    assert [t for t, _ in server.received] == ["text"] * len(TEXTS) + ["binary"]
    closes = cap.messages[(cap.messages.conn_id == row.conn_id) & (cap.messages.type == "close")]
    assert closes.close_code.tolist()[:1] == [1000]
    # The pcapng written carries the keys: read back, the same messages.
    again = wspcap.read(out)
    (back,) = again.connections[again.connections.established].itertuples()
    assert _data(again, back.conn_id, "c2s") == server.received


def _h2c_client(port: int, texts: list[str]) -> tuple[list[tuple[str, bytes]],
                                                      list[tuple[str, bytes]]]:
    """Open a WebSocket as an HTTP/2 stream in clear (prior knowledge) with the
    h2 library, exchange ``texts``, close; what it sent and received."""
    from h2.config import H2Configuration
    from h2.connection import H2Connection
    from h2.events import DataReceived, RemoteSettingsChanged, ResponseReceived
    from h2.settings import SettingCodes
    from wsproto.connection import Connection, ConnectionType
    from wsproto.events import CloseConnection, TextMessage

    sent: list[tuple[str, bytes]] = []
    got: list[tuple[str, bytes]] = []
    h2 = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
    ws = Connection(ConnectionType.CLIENT)
    with socket.create_connection(("127.0.0.1", port), timeout=STEP) as sock:
        h2.initiate_connection()
        sock.sendall(h2.data_to_send())

        def pump() -> list[Any]:
            data = sock.recv(65536)
            assert data, "the server closed the connection"
            events = h2.receive_data(data)
            sock.sendall(h2.data_to_send())
            return events

        while not any(isinstance(e, RemoteSettingsChanged) and
                      SettingCodes.ENABLE_CONNECT_PROTOCOL in e.changed_settings
                      for e in pump()):
            pass
        stream = h2.get_next_available_stream_id()
        h2.send_headers(stream, [(":method", "CONNECT"), (":protocol", "websocket"),
                                 (":scheme", "http"), (":path", "/h2c"),
                                 (":authority", f"127.0.0.1:{port}"),
                                 ("sec-websocket-version", "13")])
        sock.sendall(h2.data_to_send())
        status = None
        while status is None:
            for e in pump():
                if isinstance(e, ResponseReceived):
                    status = dict(e.headers)[":status"]
        assert status == "200"
        closing = False
        for text in texts:
            h2.send_data(stream, ws.send(TextMessage(data=text)))
            sent.append(("text", text.encode()))
        sock.sendall(h2.data_to_send())
        while not closing:
            for e in pump():
                if isinstance(e, DataReceived) and e.stream_id == stream:
                    h2.acknowledge_received_data(e.flow_controlled_length, stream)
                    ws.receive_data(e.data)
                    for w in ws.events():
                        if isinstance(w, TextMessage):
                            got.append(("text", w.data.encode()))
                        elif isinstance(w, CloseConnection):
                            closing = True
            sock.sendall(h2.data_to_send())
            if len(got) == len(texts) and not closing:
                h2.send_data(stream, ws.send(CloseConnection(code=1000, reason="bye")))
                sock.sendall(h2.data_to_send())
        h2.end_stream(stream)
        h2.close_connection()
        sock.sendall(h2.data_to_send())
    return sent, got


def test_h2_client_in_clear(tmp_path: Path) -> None:
    _need_live()
    pytest.importorskip("h2", reason="h2 (the HTTP/2 client) is not installed")
    port = _free_port()
    texts = ["first", "second ✓", "third " * 2000]
    with Hypercorn(port) as server, capturing(port, tmp_path / "none.log", 6 * STEP) as result:
        sent, got = _h2c_client(port, texts)
        assert server.closed.wait(STEP)
    assert server.versions == ["2"]
    cap = result["cap"]
    (row,) = cap.connections.itertuples()
    assert row.h2_stream == 1 and row.uri == "/h2c" and not row.tls and row.established
    assert _data(cap, row.conn_id, "c2s") == sent == server.received
    assert _data(cap, row.conn_id, "s2c") == got == server.sent
    assert row.close_code_c2s == 1000 and row.close_code_s2c == 1000
