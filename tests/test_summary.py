"""What ``wspcap analyze CAPTURE`` prints, read as a newcomer reads it (issue 15 item 15).

At 80 columns every line fits and no endpoint, URI or anomaly code is cut
mid-word; the close column tells "no close frame" from "a close frame
without a code"; counts are events (7 unanswered pings are 7); "1 TCP
connection", never "1 TCP connections"; the live command's last line says
why the kernel counts twice as many packets on loopback; every threshold
shows its unit.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from golden.paths import REPO_ROOT, SAMPLES_DIR, peer_captures, peers_location
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

import wspcap
from wspcap.cli import main, stop_line
from wspcap.rules.thresholds import Thresholds
from wspcap.views.summary import APP_LEGEND, APP_TITLE, LEGEND, NO_CLOSE, NO_CODE, print_summary

TIMEOUT = 60
ANOMALIES = SAMPLES_DIR / "anomalies"
ZEEK = peers_location() / "zeek" / "traces"
#: Every sample, crafted anomaly capture and peer capture.
CAPTURES = sorted([*(str(p.relative_to(REPO_ROOT)) for p in SAMPLES_DIR.glob("*.pcap*")),
                   *(str(p.relative_to(REPO_ROOT)) for p in ANOMALIES.glob("*.pcap*")),
                   *(str(peers_location() / name) for name in peer_captures())])
#: A count of one with a plural noun.
ONE_PLURAL = re.compile(r"(?<![\w.])1 (packets|TCP connections|frames|messages|anomalies|"
                        r"connections|captures|plots|codes|WebSocket connections)\b")


def _summary(capture: Any, width: int) -> str:
    out = io.StringIO()
    print_summary(capture, console=Console(file=out, width=width, color_system=None))
    return out.getvalue()


def _read(path: str) -> Any:
    return wspcap.read(path if os.path.isabs(path) else REPO_ROOT / path)


@pytest.mark.parametrize("path", CAPTURES)
def test_80_columns(path: str) -> None:
    """No line over 80 characters, and what one looks up whole: endpoints,
    URIs (short ones), anomaly codes."""
    capture = _read(path)
    text = _summary(capture, 80)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 80, text
    for c in capture.connections.head(50).itertuples():
        for endpoint in (f"{c.client_ip}:{c.client_port}", f"{c.server_ip}:{c.server_port}"):
            if len(endpoint) <= 30:
                assert any(endpoint in line for line in lines), (endpoint, text)
        uri = c.uri if isinstance(c.uri, str) else ""
        if 0 < len(uri) <= 20 and uri.isprintable():
            assert any(uri in line for line in lines), (uri, text)
    for code in set(capture.anomalies.code.astype(str)):
        assert any(code in line for line in lines), (code, text)
    # The summary's own words (the anomalies' details come from the rules).
    capture.anomalies["detail"] = ""
    own = _summary(capture, 80)
    assert not ONE_PLURAL.search(own), own


def test_columns_variable_is_honoured(tmp_path: Path) -> None:
    """``COLUMNS=80 wspcap analyze ... | less``: the width asked for, not 160."""
    env = {**os.environ, "COLUMNS": "80"}
    done = subprocess.run([sys.executable, "-m", "wspcap", "analyze",
                           str(ZEEK / "wstunnel-ssh.pcap")], capture_output=True, text=True,
                          timeout=TIMEOUT, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert max(map(len, done.stdout.splitlines())) <= 80, done.stdout
    assert "127.0.0.1:42906" in done.stdout


class TestClose:
    """``none``: no close frame; ``no code``: a close frame without a code."""

    def test_close_frames_without_a_code(self) -> None:
        capture = _read(str(ZEEK / "http-websocket.pcap"))  # both sides: empty close
        c = capture.connections.iloc[0]
        assert pd.isna(c.close_code_c2s) and c.close_reason_c2s == ""
        text = _summary(capture, 160)
        assert f"{NO_CODE}/{NO_CODE}" in text
        assert LEGEND in text.replace("\n", " ")

    def test_no_close_frame(self) -> None:
        capture = _read(str(ANOMALIES / "ws-no-close.pcap"))
        c = capture.connections.iloc[0]
        assert pd.isna(c.close_code_c2s) and pd.isna(c.close_reason_c2s)
        text = _summary(capture, 160)
        assert f"{NO_CLOSE}/{NO_CLOSE}" in text

    def test_codes_and_both_kinds_tell_apart(self) -> None:
        text = _summary(_read("samples/multi.pcapng"), 160)
        assert "1000/1000" in text
        assert NO_CODE not in text.split("c/s:")[0]


def test_unanswered_pings_are_counted_one_by_one() -> None:
    """Zeek's wstunnel capture: 1 + 6 pings get no pong before the close."""
    capture = _read(str(ZEEK / "wstunnel-ssh.pcap"))
    pings = capture.anomalies[capture.anomalies.code == "ws_ping_unanswered"]
    assert len(pings) == 7
    assert pings.groupby("conn_id").size().to_dict() == {0: 1, 1: 6}
    assert pings.frame_index.is_unique  # each row names its own ping
    frames = capture.frames.set_index(["conn_id", "frame_index"])
    assert (frames.loc[list(zip(pings.conn_id, pings.frame_index)), "opcode"] == 9).all()
    text = _summary(capture, 80)
    assert "ws_ping_unanswered  7 in 2 connections" in text
    wide = _summary(capture, 160)
    row = next(line for line in wide.splitlines() if "ws_ping_unanswered" in line)
    assert re.search(r"│ 7\s+│ 2\s+│", row), row


def test_plurals_in_the_header_and_the_many_captures_table(capsys: Any) -> None:
    capture = _read(str(ZEEK / "http-websocket.pcap"))
    text = _summary(capture, 160)
    assert "1 TCP connection," in text
    assert ": 1 connection, 9 frames" in repr(capture)
    assert "1 connection, 9 frames" in capture._repr_html_()
    truncated = _summary(_read(str(ANOMALIES / "capture-truncated.pcap")), 160)
    assert "1 packet was cut by the snap length" in truncated
    one = str(SAMPLES_DIR / "plain.pcap")
    assert main(["analyze", one, one, "--scheduler", "sync"]) == 0
    out = capsys.readouterr().out
    assert "1 capture:" in out and "1 WebSocket connection," in out, out
    assert not ONE_PLURAL.search(out), out


class TestThresholdUnits:
    def test_every_threshold_has_a_unit(self) -> None:
        units = Thresholds.units()
        assert list(units) == Thresholds.names()
        assert all(units.values()), units
        assert units["oversized_message"] == "bytes" and units["pong_timeout"] == "seconds"

    def test_rules_listing_shows_units(self, capsys: Any) -> None:
        assert main(["rules", "ws_ping_unanswered"]) == 0
        out = capsys.readouterr().out
        rows = {line.split("│")[1].strip(): line for line in out.splitlines()
                if line.startswith("│") and line.split("│")[1].strip() in Thresholds.names()}
        assert set(rows) == set(Thresholds.names())
        for name, unit in Thresholds.units().items():
            assert f" {unit} " in rows[name] or f" {unit}" in rows[name].rstrip("│ "), rows[name]
        assert "16 MiB" in rows["oversized_message"]
        assert main(["rules", "--format", "json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["threshold_units"] == Thresholds.units()


class TestLiveCounts:
    def test_stop_line_explains_the_loopback_double_count(self) -> None:
        sniffer = SimpleNamespace(stopped_by="duration", elapsed=3.0, packets=1320,
                                  kernel_received=2640, kernel_dropped=0, copies_skipped=1320)
        line = stop_line(sniffer)
        assert "1320 packets captured" in line
        assert "2640 passed the filter (1320 of them the outgoing copies of loopback " \
               "packets" in line and "counts each twice" in line
        one = SimpleNamespace(stopped_by="count", elapsed=1.0, packets=1, kernel_received=1,
                              kernel_dropped=0, copies_skipped=0)
        assert "1 packet captured" in stop_line(one) and "copies" not in stop_line(one)

    @pytest.mark.network
    def test_loopback_copies_are_counted(self) -> None:
        """On lo the kernel counts every packet twice; the capture keeps one of
        each and counts the other as a skipped copy."""
        if sys.platform != "linux" or os.geteuid() != 0:
            pytest.skip("live capture needs Linux and root")
        pytest.importorskip("scapy", reason="scapy (wspcap[live]) is not installed")
        from wspcap.sources.live import LiveSource

        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        source = LiveSource("lo", f"tcp port {port}")
        try:
            def serve() -> None:
                conn, _ = server.accept()
                with conn:
                    conn.recv(100)
                    conn.sendall(b"pong")
            thread = threading.Thread(target=serve)
            thread.start()
            with socket.create_connection(("127.0.0.1", port)) as client:
                client.sendall(b"ping")
                client.recv(100)
            thread.join(TIMEOUT)
            while source.recv(0.5) is not None:
                pass
            received, dropped = source.stats()
        finally:
            source.close()
            server.close()
        assert source.packets >= 6  # handshake, data, acks, close
        assert dropped == 0
        assert source.copies_skipped == source.packets
        assert received == source.packets + source.copies_skipped


class TestApplicationLayer:
    """What the messages say: per connection its protocol, top kinds and channels."""

    def test_mqtt(self) -> None:
        capture = _read("samples/mqtt.pcapng")
        for width in (80, 160):
            text = _summary(capture, width)
            assert APP_TITLE in text
            assert "mqtt" in text and "1.0" in text
            # 10 PUBLISH and 10 acks (PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK)
            assert "ack 10, publish 10, connect 1, + 6 more" in text, text
            assert "sensors/temp 2" in text
            assert APP_LEGEND in " ".join(text.split()) or width == 80

    def test_socketio_by_uri(self) -> None:
        text = _summary(_read("samples/socketio.pcapng"), 160)
        row = next(line for line in text.splitlines() if "│ socketio" in line)
        assert re.search(r"│ socketio │\s+0\.9 │\s+22 │ event 12, ack 4,", row), row

    def test_nothing_without_an_application_protocol(self) -> None:
        capture = _read("samples/multi.pcapng")
        assert capture.connections["app_protocol"].isna().all()
        text = _summary(capture, 160)
        assert APP_TITLE not in text and "conf." not in text

    def test_channels_are_shown_not_obeyed_and_cut(self) -> None:
        capture = _read("samples/mqtt.pcapng")
        hostile = "\x1b[2J[bold]x[/bold]" + "y" * 100
        capture.app["channel"] = pd.array([hostile] * len(capture.app), dtype="string")
        text = _summary(capture, 160)
        assert "\x1b" not in text and "\\x1b[2J[bold]x[/bold]" in text
        assert "y" * 30 not in text and "…" in text

    def test_analyze_to_directory_names_the_protocol(self, tmp_path: Path,
                                                     capsys: Any) -> None:
        """``analyze -o``: the events went to app.parquet; the protocol is still named."""
        assert main(["analyze", str(SAMPLES_DIR / "mqtt.pcapng"), "-o", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        assert APP_TITLE in out
        row = next(line for line in out.splitlines() if "│ mqtt " in line and "1.0" in line)
        assert row.count("│") == 4, row  # id, protocol, conf.: the events are in app.parquet


# -- the one-line table's width, bounded before rich measures it ------------------------------

_CELL = st.text(alphabet=st.sampled_from("ab[]/\\:.é漢 0129"), max_size=30)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_CELL, min_size=12, max_size=12), min_size=1, max_size=6),
       st.integers(40, 400))
def test_the_width_bound_never_says_fits_when_rich_would_not(rows: list[list[str]],
                                                             width: int) -> None:
    # _surely_fits skips rich's measurement: it must be an upper bound of it
    # (markup, escapes and wide characters included), or a table too wide for
    # the console would be printed folded instead of in two lines.
    from rich.markup import escape
    from rich.measure import Measurement

    from wspcap.views.summary import _connections_wide, _surely_fits

    # (cells as _cells makes them: escaped capture text, or our own markup)
    rows = [[f"[red]{escape(text)}[/red]" if i == 5 else escape(text)
             for i, text in enumerate(row)] for row in rows]
    console = Console(file=io.StringIO(), width=width)
    measured = Measurement.get(console, console.options.update_width(1 << 16),
                               _connections_wide(rows)).maximum
    if _surely_fits(rows, width):
        assert measured <= width
    assert not _surely_fits(rows, measured - 1)  # (at the edge)
