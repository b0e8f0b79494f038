"""WebSockets over HTTP/2 (RFC 8441): each stream that an extended CONNECT opens is
a connection of its own, read as any other.

Crafted connections (:mod:`golden.h2`: hyperframe, hpack and scapy) for what real
peers do not show on demand: several WebSocket streams beside a page's streams,
header blocks split into CONTINUATIONs, padded DATA, WebSocket frames split
over DATA frames and DATA frames over segments (any cut: a property test), a
refused CONNECT, a reset stream, a header block that cannot be decoded, bytes
lost in the capture. The real peers (Chromium and the h2 client against
Hypercorn, captured live) are in :mod:`tests.test_h2_live`.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from golden.h2 import PAGE, H2Conversation, two_streams
from golden.paths import GOLDEN_DIR
from golden.rfc6455 import TEXT
from hyperframe.frame import HeadersFrame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

import wspcap
from wspcap.views.summary import print_summary


def _read(crafted: Any, tmp_path: Path) -> wspcap.Capture:
    return wspcap.read(crafted.write(tmp_path / f"{crafted.name}.pcap"))


def _messages(cap: wspcap.Capture, conn_id: int, direction: str) -> list[tuple[str, bytes]]:
    m = cap.messages
    m = m[(m.conn_id == conn_id) & (m.direction == direction)]
    return [(str(t), bytes(p)) for t, p in zip(m.type, m.payload, strict=True)]


def _codes(cap: wspcap.Capture) -> list[str]:
    return sorted(str(c) for c in cap.anomalies.code)


def test_each_websocket_stream_is_a_connection(tmp_path: Path) -> None:
    h2 = two_streams()
    cap = _read(h2.crafted("h2-two-streams"), tmp_path)
    conns = cap.connections
    assert conns.h2_stream.tolist() == [3, 5]
    assert conns.tcp_stream.nunique() == 1
    assert conns.method.tolist() == ["CONNECT", "CONNECT"]
    assert conns.uri.tolist() == ["/chat?room=1", "/feed"]
    assert conns.host.tolist() == ["server.example.com"] * 2
    assert conns.origin.tolist() == ["http://server.example.com"] * 2
    assert conns.version.tolist() == ["13", "13"]
    assert conns.status.tolist() == [200, 200]
    assert conns.established.all() and conns.handshake.all()
    assert conns.key.isna().all() and conns.accept_valid.isna().all()
    assert conns.subprotocol.tolist()[1] == "chat"
    assert conns.client_port.tolist() == [40001, 40001]
    assert conns.server_port.tolist() == [8080, 8080]
    assert conns.close_code_c2s.tolist() == [1000, 1000]
    for conn_id, stream in zip(conns.conn_id, conns.h2_stream, strict=True):
        for d in ("c2s", "s2c"):
            assert _messages(cap, conn_id, d) == h2.sent[stream][d], (stream, d)
    # Nothing wrong in it but cleartext (Upgrade, Connection and the key are
    # not asked of an extended CONNECT).
    assert _codes(cap) == ["sec_plaintext_ws"] * 2
    out = io.StringIO()
    print_summary(cap, console=Console(file=out, width=160, color_system=None))
    assert "/chat?room=1 (HTTP/2 stream 3)" in out.getvalue()
    assert "/feed (HTTP/2 stream 5)" in out.getvalue()


def test_frames_are_placed_in_the_stream_and_the_capture(tmp_path: Path) -> None:
    h2 = two_streams()
    crafted = h2.crafted("h2-offsets")
    cap = _read(crafted, tmp_path)
    f = cap.frames
    first = f[(f.conn_id == 0) & (f.direction == "c2s")].iloc[0]
    assert first.stream_offset == 0  # (an offset in the stream's DATA)
    # The packet that carried the DATA frame holding it: the third c2s segment
    # with data (the preface, the requests, then it).
    payloads = [n + 1 for n, p in enumerate(crafted.packets)
                if p.haslayer("Raw") and p["TCP"].dport == 8080]
    assert first.packet == payloads[2]


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(1, 300), min_size=1, max_size=12))
def test_any_segmentation_reads_the_same(cuts: list[int], tmp_path: Path) -> None:
    h2 = two_streams(cuts)
    cap = _read(h2.crafted("h2-cut"), tmp_path)
    for conn_id, stream in zip(cap.connections.conn_id, cap.connections.h2_stream, strict=True):
        for d in ("c2s", "s2c"):
            assert _messages(cap, conn_id, d) == h2.sent[stream][d]
    assert _codes(cap) == ["sec_plaintext_ws"] * 2


def _opened(stream: int = 3) -> H2Conversation:
    """An HTTP/2 connection with one WebSocket stream open, a message each way."""
    h2 = H2Conversation()
    h2.start()
    h2.conv.send("c2s", h2.connect(stream))
    h2.conv.send("s2c", h2.answer(stream))
    h2.conv.send("c2s", h2.data(stream, h2.message("c2s", stream, TEXT, b"before")))
    h2.conv.send("s2c", h2.data(stream, h2.message("s2c", stream, TEXT, b"before too")))
    return h2


def _anomaly(cap: wspcap.Capture, code: str) -> Any:
    (row,) = cap.anomalies[cap.anomalies.code == code].itertuples()
    return row


def test_page_only_connection_gives_no_row(tmp_path: Path) -> None:
    h2 = H2Conversation()
    h2.start()
    h2.conv.send("c2s", h2.header_block("c2s", 1, [(":method", "GET"), (":path", "/"),
                                                   (":scheme", "http"),
                                                   (":authority", "example")],
                                        end_stream=True))
    h2.conv.send("s2c", h2.header_block("s2c", 1, [(":status", "200")])
                 + h2.data(1, PAGE, end_stream=True))
    h2.conv.close()
    cap = _read(h2.crafted("h2-page"), tmp_path)
    assert len(cap.connections) == 0 and len(cap.anomalies) == 0


def test_reset_stream_is_flagged(tmp_path: Path) -> None:
    h2 = _opened()
    h2.conv.send("c2s", h2.reset(3, code=8))
    h2.conv.send("s2c", h2.data(3, b"\x81\x05late!"))  # (after the reset: not the stream's)
    h2.conv.close()
    cap = _read(h2.crafted("h2-reset"), tmp_path)
    row = _anomaly(cap, "h2_stream_reset")
    assert (row.direction, row.detail) == ("c2s", "RST_STREAM CANCEL (8) from the client")
    assert row.severity == "info"
    assert _messages(cap, 0, "c2s") == h2.sent[3]["c2s"]
    assert _messages(cap, 0, "s2c") == h2.sent[3]["s2c"]
    conn = cap.connections.iloc[0]
    assert conn.rst and not conn.fin_c2s  # (reset, as by a TCP RST)


def test_refused_extended_connect(tmp_path: Path) -> None:
    h2 = H2Conversation()
    h2.start()
    h2.conv.send("c2s", h2.connect(3))
    h2.conv.send("s2c", h2.answer(3, status=403, end_stream=True))
    h2.conv.send("c2s", h2.data(3, b"\x81\x85" + b"\x00" * 4 + b"hello", end_stream=True))
    h2.conv.close()
    cap = _read(h2.crafted("h2-refused"), tmp_path)
    conn = cap.connections.iloc[0]
    assert conn.status == 403 and not conn.established and conn.frames == 0
    row = _anomaly(cap, "http_status_not_101")
    assert row.detail == "status 403 to the HTTP/2 extended CONNECT"


def test_unreadable_header_block(tmp_path: Path) -> None:
    """A header block that cannot be decoded: flagged; the stream already open is
    still read; a WebSocket opened after it cannot be seen."""
    h2 = _opened()
    block = b"\xff\xff\xff\xff\x0f"  # (an index far past both tables)
    h2.conv.send("c2s", HeadersFrame(7, block, flags=["END_HEADERS"]).serialize())
    h2.conv.send("c2s", h2.connect(9))
    h2.conv.send("c2s", h2.data(3, h2.message("c2s", 3, TEXT, b"after")))
    h2.conv.close()
    cap = _read(h2.crafted("h2-hpack"), tmp_path)
    assert cap.connections.h2_stream.tolist() == [3]
    row = _anomaly(cap, "h2_headers_unreadable")
    assert row.direction == "c2s" and row.severity == "warning"
    assert "stream 7" in row.detail
    assert _messages(cap, 0, "c2s") == h2.sent[3]["c2s"]


def test_lost_bytes_end_that_direction(tmp_path: Path) -> None:
    """Bytes lost: the rest of that direction cannot be framed (flagged, with the
    gap); what came before, and the other direction, are still read."""
    h2 = _opened()
    h2.conv.send("c2s", h2.data(3, b"\x81\x84" + b"\x01\x02\x03\x04" + b"lost"), keep=False)
    h2.conv.send("c2s", h2.data(3, h2.message("c2s", 3, TEXT, b"after the gap")))
    h2.conv.send("s2c", h2.data(3, h2.message("s2c", 3, TEXT, b"server goes on")))
    h2.conv.close()
    cap = _read(h2.crafted("h2-gap"), tmp_path)
    assert "tcp_gap" not in _codes(cap)  # (the carrying connection has no row)
    row = _anomaly(cap, "h2_malformed")
    assert row.direction == "c2s" and "bytes lost" in row.detail
    assert _messages(cap, 0, "c2s") == h2.sent[3]["c2s"][:1]
    assert _messages(cap, 0, "s2c") == h2.sent[3]["s2c"]


def test_broken_framing(tmp_path: Path) -> None:
    """A CONTINUATION with no header block before it breaks HTTP/2 framing."""
    h2 = _opened()
    h2.conv.send("c2s", b"\x00\x00\x01\x09\x04" + (3).to_bytes(4, "big") + b"\x82")
    h2.conv.send("s2c", h2.data(3, h2.message("s2c", 3, TEXT, b"still read")))
    h2.conv.close()
    cap = _read(h2.crafted("h2-broken"), tmp_path)
    row = _anomaly(cap, "h2_malformed")
    assert row.severity == "error" and "CONTINUATION on stream 3" in row.detail
    assert _messages(cap, 0, "s2c") == h2.sent[3]["s2c"]


def test_golden_copy_is_fresh(tmp_path: Path) -> None:
    """``tests/golden/h2_two_streams.pcap`` (a seed of the fuzzing corpus) is the
    builder's output. Regenerate with ``python tests/golden/h2.py``."""
    golden = GOLDEN_DIR / "h2_two_streams.pcap"
    fresh = two_streams().crafted("h2_two_streams").write(tmp_path / "h2.pcap")
    assert fresh.read_bytes() == golden.read_bytes(), "stale: run python tests/golden/h2.py"


def test_bundled_chromium_sample(samples_dir: Path) -> None:
    """``samples/wss-h2.pcapng``: Chromium's WebSocket over HTTP/2 to Hypercorn
    (samples/make_h2_sample.py), keys embedded; the server's record is the truth."""
    import base64
    import json

    truth = json.loads((samples_dir / "wss-h2.sent.json").read_text(encoding="utf-8"))
    cap = wspcap.read(samples_dir / truth["file"])
    (row,) = cap.connections.itertuples()
    assert row.h2_stream is not None and row.method == "CONNECT" and row.uri == "/ws"
    assert row.decrypted and row.alpn == "h2" and row.permessage_deflate
    assert row.server_port == truth["server_port"] and "Chrome" in row.user_agent
    for d, key in (("c2s", "received"), ("s2c", "sent")):
        want = [(t, base64.b64decode(p)) for t, p in truth[key]]
        m = cap.messages
        m = m[(m.direction == d) & m.type.isin(["text", "binary"])]
        assert [(str(t), bytes(p)) for t, p in zip(m.type, m.payload, strict=True)] == want
    # (nothing wrong; Chromium may reset the stream after the close, as a page goes away)
    assert set(cap.anomalies.code.astype(str)) <= {"h2_stream_reset"}


def test_capture_ending_inside_a_frame(tmp_path: Path) -> None:
    """A capture cut inside an HTTP/2 frame: what was whole is read, the rest is
    flagged, not dropped in silence."""
    h2 = _opened()
    whole = h2.data(3, h2.message("c2s", 3, TEXT, b"cut short"))
    h2.conv.send("c2s", whole[:12])
    cap = _read(h2.crafted("h2-cut-frame"), tmp_path)
    row = _anomaly(cap, "h2_malformed")
    assert row.direction == "c2s"
    assert row.detail == (f"HTTP/2 connection: the capture ends inside a frame of {len(whole)} "
                          "bytes (12 bytes held)")
    assert _messages(cap, 0, "c2s") == h2.sent[3]["c2s"][:1]


def test_capture_ending_inside_a_header_block(tmp_path: Path) -> None:
    """A HEADERS frame without END_HEADERS, then the end: flagged on the stream
    already open, timed by the last packet."""
    h2 = _opened()
    block = h2.encoders["c2s"].encode([(":method", "CONNECT"), (":path", "/late")])
    h2.conv.send("c2s", HeadersFrame(5, block).serialize())  # (no END_HEADERS)
    cap = _read(h2.crafted("h2-open-block"), tmp_path)
    row = _anomaly(cap, "h2_malformed")
    assert "header block of stream 5 (no END_HEADERS)" in row.detail


def test_report_names_the_stream(tmp_path: Path) -> None:
    """The HTML report's connection section says which HTTP/2 stream carried it."""
    from wspcap.views.report import render_report

    cap = _read(two_streams().crafted("h2-report"), tmp_path)
    html = render_report(cap)
    assert "CONNECT /chat?room=1 (extended CONNECT, HTTP/2 stream 3)" in html
    assert "ended by the client, ended by the server" in html


def test_answer_read_before_its_request(tmp_path: Path) -> None:
    """Two taps merged (or clocks apart): the server's answer and its first
    message come before the client's CONNECT in the capture. Each direction's
    bytes are in order; the answer waits for its request."""
    h2 = H2Conversation()
    h2.start()
    h2.sent.setdefault(3, {"c2s": [], "s2c": []})
    early = h2.answer(3) + h2.data(3, h2.message("s2c", 3, TEXT, b"welcome"))
    h2.conv.send("s2c", early)
    h2.conv.send("c2s", h2.connect(3))
    h2.conv.send("c2s", h2.data(3, h2.message("c2s", 3, TEXT, b"hello")))
    h2.conv.send("s2c", h2.data(3, h2.message("s2c", 3, TEXT, b"echo: hello")))
    h2.conv.close()
    cap = _read(h2.crafted("h2-early-answer"), tmp_path)
    (row,) = cap.connections.itertuples()
    assert row.status == 200 and row.established and row.h2_stream == 3
    assert _messages(cap, 0, "s2c") == h2.sent[3]["s2c"]
    assert _messages(cap, 0, "c2s") == h2.sent[3]["c2s"]
