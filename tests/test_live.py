"""Live sniffing: the event stream, JSON lines, and real traffic on loopback.

Part one needs nothing: the events :mod:`wspcap.api.live` gives for the sample
captures (replayed packet by packet, as a live capture would feed them) are
checked against the samples' ground truth, which their sender wrote.

Part two captures for real on ``lo`` (root only; skipped otherwise): a
``websockets`` server and client exchange messages, with and without
permessage-deflate, while wspcap sniffs the server's port; what wspcap
recovers must be exactly what the client and server sent (recorded by this
test as it sends). Every wait is bounded: asyncio steps by ``wait_for``, the
capture by its own ``timeout``/``--duration``, subprocesses by ``timeout=``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from golden import truth as T

import wspcap
from wspcap.api.live import (
    AnomalyEvent,
    ConnectionEvent,
    MessageEvent,
    Monitor,
    Sniffer,
    iso_ts,
    payload_field,
    replay,
)
from wspcap.sources import open_capture
from wspcap.tables.export import TABLES, write_tables

STEP = 10.0  # seconds any one network step may take


def _truth_messages(truth: dict[str, Any], tc: dict[str, Any],
                    direction: str) -> list[tuple[str, bytes]]:
    """(type, payload bytes) the sender recorded, in the order they were completed."""
    out = []
    for m in tc["messages"]:
        if m["direction"] != direction:
            continue
        payload = (m["payload"].encode() if m["type"] == "text"
                   else bytes.fromhex(m["payload"]))
        out.append((m["frames"][-1], m["type"], payload))
    return [(t, p) for _, t, p in sorted(out)]


# -- part one: events from the samples -------------------------------------------------

class TestReplayEvents:
    """The event stream, against the samples' ground truth."""

    def test_messages_match_truth(self, sample_name: str, samples_dir: Path) -> None:
        truth = T.load(samples_dir / f"{sample_name}.truth.json")
        events = list(replay(samples_dir / truth["file"]))
        opened = {e.conn_id: e for e in events
                  if isinstance(e, ConnectionEvent) and e.kind == "open"}
        assert len(opened) == len(truth["connections"])
        for tc in truth["connections"]:
            client = tc["client"]["port"]
            (conn_id,) = [cid for cid, e in opened.items()
                          if e.client.endswith(f":{client}")]
            for direction in T.DIRECTIONS:
                got = [(e.type, e.payload) for e in events
                       if isinstance(e, MessageEvent) and e.conn_id == conn_id
                       and e.direction == direction]
                assert got == _truth_messages(truth, tc, direction)

    def test_lifecycle_order(self, sample_name: str, samples_dir: Path) -> None:
        """open, then established, then messages, then closed, once each."""
        truth = T.load(samples_dir / f"{sample_name}.truth.json")
        events = list(replay(samples_dir / truth["file"]))
        for conn_id in {e.conn_id for e in events if isinstance(e, ConnectionEvent)}:
            kinds = [e.kind if isinstance(e, ConnectionEvent) else "message"
                     for e in events if e.conn_id == conn_id]
            assert kinds[:2] == ["open", "established"]
            assert kinds[-1] == "closed"
            assert set(kinds[2:-1]) == {"message"}
        # clean traffic: no protocol anomaly (sec_* are security notes on the setup)
        assert not [e.code for e in events if isinstance(e, AnomalyEvent)
                    and not e.code.startswith("sec_")]

    def test_same_as_tables(self, samples_dir: Path, read_capture: Any) -> None:
        """Every message and anomaly of the tables was given out once, in order."""
        path = samples_dir / "fragmented.pcap"
        cap = read_capture(path)
        events = [e for e in replay(path) if isinstance(e, MessageEvent)]
        assert [(e.conn_id, e.msg_index, e.direction, e.payload) for e in events] == list(
            zip(cap.messages.conn_id, cap.messages.msg_index, cap.messages.direction,
                cap.messages.payload))

    def test_monitor_fed_by_hand(self, samples_dir: Path, read_capture: Any) -> None:
        """Monitor.receive_packet / finish, packet by packet, give every message."""
        path = samples_dir / "multi.pcapng"
        monitor = Monitor()
        events = []
        with open_capture(path) as cap:
            for number, ts, linktype, data, _ in cap:
                events += monitor.receive_packet(number, ts, linktype, data)
        events += monitor.finish()
        assert monitor.finish() == []  # once only
        ref = read_capture(path)
        assert monitor.messages == len(ref.messages)
        assert monitor.frames == len(ref.frames)
        assert monitor.anomalies == len(ref.anomalies)
        assert sum(isinstance(e, MessageEvent) for e in events) == len(ref.messages)

    def test_sniffer_over_file_records(self, samples_dir: Path, read_capture: Any) -> None:
        """The Sniffer driver over a file gives the tables wspcap.read gives."""
        path = samples_dir / "deflate.pcap"
        with open_capture(path) as records:
            sniffer = Sniffer(source=records)
            capture = sniffer.capture()
        ref = read_capture(path)
        assert list(capture.messages.payload) == list(ref.messages.payload)
        assert capture.connections.drop(columns=[]).equals(ref.connections)

    def test_count_stops(self, samples_dir: Path) -> None:
        with open_capture(samples_dir / "plain.pcap") as records:
            sniffer = Sniffer(source=records, count=5)
            list(sniffer)
        assert sniffer.packets == 5
        assert sniffer.stopped_by == "count"


class TestJsonLines:
    """One JSON object per event, payload as text when it is UTF-8."""

    def test_payload_field(self) -> None:
        assert payload_field("héllo".encode()) == ("héllo", "text")
        assert payload_field(b"\xff\x00") == ("ff00", "hex")

    def test_iso_ts(self) -> None:
        # 2001-09-09T01:46:40 UTC is 1e9 s after the epoch.
        assert iso_ts(1_000_000_000_000_000_123) == "2001-09-09T01:46:40.000000123Z"

    def test_sink_writes_every_event(self, samples_dir: Path, tmp_path: Path) -> None:
        from wspcap.views.liveview import JsonlSink
        truth = T.load(samples_dir / "plain.truth.json")
        out = tmp_path / "events.jsonl"
        sink = JsonlSink(str(out))
        events = list(replay(samples_dir / "plain.pcap"))
        for e in events:
            sink(e)
        sink.close()
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert len(rows) == len(events)
        messages = [r for r in rows if r["event"] == "message"]
        expected = _truth_messages(truth, truth["connections"][0], "c2s")
        got = [(r["type"], r["payload"].encode() if r["payload_encoding"] == "text"
                else bytes.fromhex(r["payload"]))
               for r in messages if r["direction"] == "c2s"]
        assert got == expected


class TestLayering:
    """Only ``wspcap/sources/live.py`` imports scapy, and only when a capture opens."""

    def test_only_the_live_source_imports_scapy(self) -> None:
        package = Path(wspcap.__file__).resolve().parent
        importers = sorted(str(p.relative_to(package)) for p in package.rglob("*.py")
                           if re.search(r"^\s*(import|from)\s+scapy\b", p.read_text(
                               encoding="utf-8"), re.MULTILINE))
        assert importers == [str(Path("sources") / "live.py")]

    def test_importing_wspcap_loads_no_scapy(self) -> None:
        code = ("import sys, wspcap, wspcap.api.live, wspcap.views.liveview, wspcap.cli; "
                "print('scapy' in sys.modules)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60, check=True).stdout
        assert out.strip() == "False"


# -- part two: real traffic on loopback ----------------------------------------------

def _need_capture_rights() -> None:
    if sys.platform != "linux":
        pytest.skip("live capture needs Linux packet sockets")
    if os.geteuid() != 0:
        pytest.skip("live capture needs root (or CAP_NET_RAW)")
    pytest.importorskip("scapy", reason="scapy (wspcap[live]) is not installed")
    pytest.importorskip("websockets", reason="websockets is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


TEXTS = ["hello", "héllo wörld ✓", "x" * 200, '{"op": "tick", "n": 7}']
BINARIES = [b"", bytes(range(256)), os.urandom(70_000)]


def exchange(port: int, compression: str | None, tls: tuple[Any, Any] | None = None
             ) -> dict[str, list[tuple[str, bytes]]]:
    """Run a websockets server and client on 127.0.0.1:port; return what each sent.

    ``tls``: (server, client) :class:`ssl.SSLContext` for wss://.

    The server answers every message with a reply of its own; the client then
    closes. Returns ``{"c2s": [(type, payload)...], "s2c": [...]}`` of data
    messages in send order (recorded at the sender).
    """
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    sent: dict[str, list[tuple[str, bytes]]] = {"c2s": [], "s2c": []}

    def record(direction: str, msg: str | bytes) -> None:
        sent[direction].append(("text", msg.encode()) if isinstance(msg, str)
                               else ("binary", bytes(msg)))

    async def handler(ws: Any) -> None:
        async for msg in ws:
            reply: str | bytes = (f"echo: {msg}" if isinstance(msg, str)
                                  else bytes(reversed(msg)))
            record("s2c", reply)
            await ws.send(reply)

    async def main() -> None:
        server_tls = {} if tls is None else {"ssl": tls[0]}
        client_tls = {} if tls is None else {"ssl": tls[1], "server_hostname": "localhost"}
        scheme = "ws" if tls is None else "wss"
        async with (serve(handler, "127.0.0.1", port, compression=compression,
                          ping_interval=None, **server_tls),
                    connect(f"{scheme}://127.0.0.1:{port}/live", compression=compression,
                            ping_interval=None, open_timeout=STEP,
                            close_timeout=STEP, **client_tls) as ws):
            for msg in [*TEXTS, *BINARIES]:
                record("c2s", msg)
                await asyncio.wait_for(ws.send(msg), STEP)
                await asyncio.wait_for(ws.recv(), STEP)

    asyncio.run(asyncio.wait_for(main(), 6 * STEP))
    return sent


def _data_messages(capture: Any, direction: str) -> list[tuple[str, bytes]]:
    m = capture.messages
    m = m[(m.direction == direction) & m.type.isin(["text", "binary"])]
    return [(str(t), bytes(p)) for t, p in zip(m.type, m.payload)]


def _wait_for_packet_socket(before: int) -> None:
    """Until a new packet socket shows in /proc/net/packet (bounded), plus a moment
    for its bind and flush."""
    deadline = time.monotonic() + STEP
    while time.monotonic() < deadline:
        if _packet_sockets() > before:
            break
        time.sleep(0.02)
    time.sleep(0.3)


def _packet_sockets() -> int:
    try:
        return len(Path("/proc/net/packet").read_text().splitlines())
    except OSError:
        return 0


@pytest.mark.network
class TestSniffLoopback:
    """wspcap.sniff / wspcap.live on lo while websockets talks."""

    @pytest.mark.parametrize("compression", [None, "deflate"])
    @pytest.mark.parametrize("iface", ["lo", "any"])
    def test_every_message_recovered(self, compression: str | None, iface: str,
                                     tmp_path: Path) -> None:
        _need_capture_rights()
        port = _free_port()
        pcap = tmp_path / "live.pcap"
        sniffer = Sniffer(iface, f"tcp port {port}", timeout=12 * STEP, write=pcap)
        sniffer.open()
        result: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: result.setdefault("cap", sniffer.capture()))
        thread.start()
        try:
            sent = exchange(port, compression)
        finally:
            time.sleep(0.2)  # the last FIN/ACKs
            sniffer.stop()
            thread.join(STEP)
        assert not thread.is_alive()
        cap = result["cap"]
        assert sniffer.stopped_by == "stop requested"
        assert sniffer.kernel_dropped == 0
        assert len(cap.connections) == 1
        conn = cap.connections.iloc[0]
        assert bool(conn.established)
        assert bool(conn.permessage_deflate) == (compression is not None)
        assert _data_messages(cap, "c2s") == sent["c2s"]
        assert _data_messages(cap, "s2c") == sent["s2c"]
        codes = [str(c) for c in cap.anomalies.code]
        assert not [c for c in codes if not c.startswith("sec_")], cap.anomalies
        # --write round-trips: the file gives the same tables.
        again = wspcap.read(pcap)
        assert again.info.packets == cap.info.packets == sniffer.packets
        assert list(again.messages.payload) == list(cap.messages.payload)
        assert again.connections.equals(cap.connections)

    def test_sniff_function(self) -> None:
        """wspcap.sniff(...) in a thread, stopped by its own timeout."""
        _need_capture_rights()
        port = _free_port()
        result: dict[str, Any] = {}
        before = _packet_sockets()
        thread = threading.Thread(target=lambda: result.setdefault(
            "cap", wspcap.sniff(iface="lo", bpf=f"tcp port {port}", timeout=4.0)))
        thread.start()
        _wait_for_packet_socket(before)
        sent = exchange(port, "deflate")
        thread.join(STEP)
        assert not thread.is_alive()
        cap = result["cap"]
        assert cap.info.format == "live" and cap.info.source == "lo"
        assert cap.info.counters["kernel_dropped"] == 0
        assert _data_messages(cap, "c2s") == sent["c2s"]
        assert _data_messages(cap, "s2c") == sent["s2c"]

    def test_live_iterator(self) -> None:
        _need_capture_rights()
        port = _free_port()
        events: list[Any] = []
        sniffer = wspcap.live("lo", f"tcp port {port}", timeout=12 * STEP)
        thread = threading.Thread(target=lambda: events.extend(sniffer))
        thread.start()
        try:
            sent = exchange(port, None)
        finally:
            time.sleep(0.2)
            sniffer.stop()
            thread.join(STEP)
        assert not thread.is_alive()
        got = [("text" if e.type == "text" else "binary", e.payload) for e in events
               if isinstance(e, MessageEvent) and e.direction == "c2s"
               and e.type in ("text", "binary")]
        assert got == sent["c2s"]
        kinds = [e.kind for e in events if isinstance(e, ConnectionEvent)]
        assert kinds[:2] == ["open", "established"] and kinds[-1] == "closed"
        assert len(sniffer.capture().messages) == sum(isinstance(e, MessageEvent)
                                                      for e in events)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "wspcap", *args]


@pytest.mark.network
class TestLiveCommand:
    """``wspcap live`` in a subprocess."""

    def _start(self, *args: str) -> subprocess.Popen[str]:
        before = _packet_sockets()
        proc = subprocess.Popen(_cli("live", *args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        _wait_for_packet_socket(before)
        return proc

    def test_duration_jsonl_and_write(self, tmp_path: Path) -> None:
        _need_capture_rights()
        port = _free_port()
        pcap = tmp_path / "cli.pcap"
        proc = self._start("-i", "lo", "-f", f"tcp port {port}", "--duration", "4",
                           "--jsonl", "-", "-w", str(pcap), "-o", str(tmp_path / "tables"),
                           "--format", "csv")
        try:
            sent = exchange(port, "deflate")
            out, err = proc.communicate(timeout=4 + STEP)
        finally:
            proc.kill()
        assert proc.returncode == 0, err
        assert "stopped (duration)" in err
        rows = [json.loads(line) for line in out.splitlines()]
        assert {"connection", "message"} <= {r["event"] for r in rows}
        for direction in ("c2s", "s2c"):
            got = [(r["type"], r["payload"].encode() if r["payload_encoding"] == "text"
                    else bytes.fromhex(r["payload"])) for r in rows
                   if r["event"] == "message" and r["direction"] == direction
                   and r["type"] in ("text", "binary")]
            assert got == sent[direction]
        again = wspcap.read(pcap)
        assert _data_messages(again, "c2s") == sent["c2s"]
        # The tables written while capturing are those of the packets written.
        write_tables(again, tmp_path / "from-file", "csv")
        for name in TABLES:
            assert (tmp_path / "tables" / f"{name}.csv").read_bytes() == \
                (tmp_path / "from-file" / f"{name}.csv").read_bytes(), name

    def test_count_stops(self, tmp_path: Path) -> None:
        _need_capture_rights()
        port = _free_port()
        pcap = tmp_path / "count.pcap"
        proc = self._start("-i", "lo", "-f", f"tcp port {port}", "-c", "5", "-w", str(pcap),
                           "--duration", str(6 * STEP))
        try:
            exchange(port, None)
            out, err = proc.communicate(timeout=STEP)
        finally:
            proc.kill()
        assert proc.returncode == 0, err
        assert "stopped (count)" in out
        with open_capture(pcap) as records:
            assert sum(1 for _ in records) == 5

    def test_sigterm_stops_cleanly(self, tmp_path: Path) -> None:
        _need_capture_rights()
        port = _free_port()
        pcap = tmp_path / "term.pcap"
        proc = self._start("-i", "lo", "-f", f"tcp port {port}", "-w", str(pcap),
                           "--duration", str(6 * STEP))
        try:
            sent = exchange(port, None)
            time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=STEP)
        finally:
            proc.kill()
        assert proc.returncode == 0, err
        assert "stopped (stop requested)" in out and "dropped" in out
        again = wspcap.read(pcap)
        assert again.info.truncated is None
        assert _data_messages(again, "s2c") == sent["s2c"]

    @pytest.mark.parametrize("args, words", [
        (["-i", "nosuchif0"], "no such interface"),
        (["-i", "lo", "-f", "tcp portx 80"], "bad BPF filter"),
    ])
    def test_errors_are_one_line(self, args: list[str], words: str) -> None:
        _need_capture_rights()
        proc = subprocess.run(_cli("live", *args, "--duration", "1"), capture_output=True,
                              text=True, timeout=STEP, check=False)
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], proc.stderr

    def test_no_capture_rights(self) -> None:
        """Without CAP_NET_RAW: one clear line and a non-zero exit."""
        _need_capture_rights()
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv is needed to drop the capability")
        proc = subprocess.run(["setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw",
                               "--", *_cli("live", "-i", "lo", "--duration", "1")],
                              capture_output=True, text=True, timeout=STEP, check=False)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "no permission" in lines[0], proc.stderr
