"""Damaged inputs through the whole tool: ``wspcap.read``, ``analyze_to`` and the
CLI (issue 15 items 1 and 3).

Item 1: a cut or corrupt file (plain, pcapng or gzip-compressed) gives every
packet before the fault, a ``capture_truncated`` or ``capture_corrupt`` row,
and one warning line from the CLI (exit status 0, as for a cut plain pcap).
Item 3: packets whose timestamps int64 nanoseconds cannot hold are kept with
a null ``ts`` and a ``capture_timestamp_invalid`` row, in every output.
"""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import wspcap
from wspcap.api.reading import analyze_to, from_packets
from wspcap.engine import Pipeline
from wspcap.engine import runs as blocks
from wspcap.sources import PacketRecord, open_capture

TIMEOUT = 120
PCAP_HEADER, RECORD_HEADER = 24, 16
SAMPLES = Path(__file__).resolve().parents[1] / "samples"
FRAME_KEY = ["packet", "direction", "opcode", "payload_len"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wspcap", *args], capture_output=True,
                          text=True, timeout=TIMEOUT, check=False)


def warning_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith("wspcap: warning: "), stderr
    return lines[0]


def record_ends(data: bytes) -> list[int]:
    ends, pos = [], PCAP_HEADER
    while pos < len(data):
        pos += RECORD_HEADER + struct.unpack_from("<I", data, pos + 8)[0]
        ends.append(pos)
    return ends


def frames_of(capture: Any, before: int | None = None) -> list[tuple[Any, ...]]:
    """The frames whose bytes all came (in packets before ``before``)."""
    f = capture.frames
    f = f[f.missing == 0]
    if before is not None:
        f = f[f.packet < before]
    return sorted(tuple(r) for r in f[FRAME_KEY].astype(str).itertuples(index=False))


def codes(capture: Any) -> set[str]:
    return set(capture.anomalies.code.astype(str))


@pytest.fixture(scope="module")
def plain() -> tuple[bytes, Any]:
    path = SAMPLES / "plain.pcap"
    return path.read_bytes(), wspcap.read(path)


# -- item 1: cut and corrupt files ---------------------------------------------------------


def test_cut_gzip_keeps_the_packets_before_the_cut(tmp_path: Path, plain: Any) -> None:
    """Was 0 packets and no frame: GzipFile's error dropped the whole read block."""
    data, full = plain
    packed = gzip.compress(data, mtime=0)
    cut = packed[:len(packed) * 2 // 3]
    readable = len(zlib.decompressobj(31).decompress(cut))
    whole = sum(end <= readable for end in record_ends(data))
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(cut)
    capture = wspcap.read(path)
    assert capture.info.packets == whole > 0
    assert frames_of(capture) == frames_of(full, whole + 1) != []
    assert "capture_truncated" in codes(capture) and "capture_corrupt" not in codes(capture)
    assert "cut short" in str(capture.info.truncated)


def test_bad_crc_keeps_every_packet_and_flags_it(tmp_path: Path, plain: Any) -> None:
    data, full = plain
    packed = bytearray(gzip.compress(data, mtime=0))
    packed[-8] ^= 0xFF
    path = tmp_path / "crc.pcap.gz"
    path.write_bytes(bytes(packed))
    capture = wspcap.read(path)
    assert frames_of(capture) == frames_of(full)
    rows = capture.anomalies[capture.anomalies.code == "capture_corrupt"]
    assert len(rows) == 1 and "CRC-32" in rows.detail.iloc[0]
    assert "capture_truncated" not in codes(capture)


def test_corrupt_deflate_is_not_an_exception(tmp_path: Path, plain: Any) -> None:
    """Was zlib.error out of wspcap.read and a traceback from the CLI."""
    data, full = plain
    packed = gzip.compress(data, mtime=0)
    path = tmp_path / "bad.pcap.gz"
    path.write_bytes(_damaged(packed))
    capture = wspcap.read(path)
    assert "capture_corrupt" in codes(capture)
    assert 0 < capture.info.packets < full.info.packets
    out = tmp_path / "out"
    done = run("analyze", str(path), "-q", "-o", str(out))
    assert done.returncode == 0
    assert "corrupt gzip data" in warning_line(done.stderr)


def _damaged(packed: bytes) -> bytes:
    """``packed`` with 64 bytes overwritten where zlib finds the deflate data
    corrupt (not only its CRC: stored blocks take any bytes)."""
    for start in range(200, len(packed) - 100, 101):
        bad = packed[:start] + bytes(range(64)) + packed[start + 64:]
        try:
            zlib.decompress(bad, 31)
        except zlib.error as exc:
            if "incorrect data check" not in str(exc):
                return bad
    raise AssertionError("no place found to damage")


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_cli_cut_gzip_warns_once_and_writes_the_frames(tmp_path: Path, plain: Any,
                                                       fmt: str) -> None:
    data, full = plain
    packed = gzip.compress(data, mtime=0)
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(packed[:len(packed) // 2])
    readable = len(zlib.decompressobj(31).decompress(packed[:len(packed) // 2]))
    whole = sum(end <= readable for end in record_ends(data))
    out = tmp_path / "out"
    done = run("analyze", str(path), "-q", "-o", str(out), "--format", fmt)
    assert done.returncode == 0
    line = warning_line(done.stderr)
    assert path.name in line and "cut short" in line
    frames = _read_table(out, "frames", fmt)
    expected = frames_of(full, whole + 1)
    assert expected and sorted(tuple(r) for r in frames[frames.missing == 0][FRAME_KEY]
                               .astype(str).itertuples(index=False)) == expected
    anomalies = _read_table(out, "anomalies", fmt)
    assert "capture_truncated" in set(anomalies.code.astype(str))


def test_cli_summary_of_a_bad_crc(tmp_path: Path) -> None:
    path = tmp_path / "crc.pcap.gz"
    packed = bytearray(gzip.compress((SAMPLES / "plain.pcap").read_bytes(), mtime=0))
    packed[-5] ^= 1
    path.write_bytes(bytes(packed))
    done = run("analyze", str(path))
    assert done.returncode == 0 and "capture_corrupt" in done.stdout
    assert "CRC-32" in warning_line(done.stderr)


def test_pcapng_cut_through_read_and_analyze_to(tmp_path: Path) -> None:
    """Cuts in block headers and bodies, on both engine entry points: the
    packets that were whole, and the same frames from both."""
    data = (SAMPLES / "multi.pcapng").read_bytes()
    full = wspcap.read(SAMPLES / "multi.pcapng")
    ends, pos = [], 0
    while pos < len(data):
        btype, blen = struct.unpack_from("<II", data, pos)
        pos += blen
        if btype == 6:
            ends.append(pos)
    path = tmp_path / "cut.pcapng"
    for size in sorted({*range(ends[0] - 40, len(data), 613), ends[5] + 4, ends[-1] - 3}):
        path.write_bytes(data[:size])
        whole = sum(end <= size for end in ends)
        capture = wspcap.read(path)
        assert capture.info.packets == whole, size
        assert frames_of(capture) == frames_of(full, whole + 1), size
        written = analyze_to(path, tmp_path / f"out{size}")
        frames = pd.read_parquet(tmp_path / f"out{size}" / "frames.parquet")
        assert len(frames) == len(capture.frames) and written.info.packets == whole


def _read_table(out: Path, name: str, fmt: str) -> pd.DataFrame:
    path = out / f"{name}.{fmt}"
    if fmt == "parquet":
        return pd.read_parquet(path)
    if fmt == "csv":
        return pd.read_csv(path)
    return pd.read_json(path, lines=True)


# -- item 3: timestamps past int64 nanoseconds ------------------------------------------------


def _pcapng(records: list[tuple[int, bytes]], tsresol: int | None = None) -> bytes:
    """A little-endian pcapng (draft-ietf-opsawg-pcapng sections 4.1-4.3), Ethernet,
    with these raw (timestamp, data) packets."""
    def block(btype: int, body: bytes) -> bytes:
        body += bytes(-len(body) % 4)
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I",
                                                                               len(body) + 12)
    opts = b""
    if tsresol is not None:
        opts = struct.pack("<HHB3x", 9, 1, tsresol) + struct.pack("<HH", 0, 0)
    out = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
           block(1, struct.pack("<HHI", 1, 0, 0) + opts)]
    for ts, data in records:
        out.append(block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(data),
                                        len(data)) + data))
    return b"".join(out)


@pytest.fixture(scope="module")
def bad_times(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[int]]:
    """plain.pcap as pcapng in seconds (if_tsresol 10^-0), every fifth packet's
    count of seconds past 2262 (the SYN's among them)."""
    data = (SAMPLES / "plain.pcap").read_bytes()
    records, pos, number, bad = [], PCAP_HEADER, 0, set()
    while pos < len(data):
        sec, _usec, caplen = struct.unpack_from("<III", data, pos)
        number += 1
        if number % 5 == 1:
            sec = (1 << 40) + number
            bad.add(number)
        records.append((sec, data[pos + RECORD_HEADER:pos + RECORD_HEADER + caplen]))
        pos += RECORD_HEADER + caplen
    path = tmp_path_factory.mktemp("ts") / "late.pcapng"
    path.write_bytes(_pcapng(records, tsresol=0))
    return path, bad


def test_read_keeps_packets_with_null_times(bad_times: tuple[Path, set[int]],
                                            plain: Any) -> None:
    """Was OverflowError from wspcap.read."""
    path, bad = bad_times
    capture = wspcap.read(path)
    _, full = plain
    assert capture.info.packets == full.info.packets
    assert frames_of(capture) == frames_of(full)
    f = capture.frames
    assert f.ts.isna().to_numpy().tolist() == f.packet.isin(bad).to_numpy().tolist()
    assert f.ts.isna().any() and f.ts.notna().any()
    assert pd.isna(capture.connections.ts_start.iloc[0])  # its SYN's time is unknown
    rows = capture.anomalies[capture.anomalies.code == "capture_timestamp_invalid"]
    assert len(rows) == 1 and int(rows.packet.iloc[0]) == min(bad)
    assert rows.detail.iloc[0].startswith(f"{len(bad)} packets")


def test_block_path_gives_the_per_packet_records(bad_times: tuple[Path, set[int]],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The block path (file batches) and the per-packet path agree, NaT and flag included."""
    path, _ = bad_times
    monkeypatch.setattr(blocks, "MIN_PACKETS", 1)  # the block path for short runs too
    pipeline = Pipeline()
    with open_capture(path) as cap:
        for batch in cap.batches():
            pipeline.receive_batch(batch)
        records = list(open_capture(path))
    assert pipeline.block_frames > 0, "the block path should have taken some frames"
    by_block = wspcap.Capture.from_collector(pipeline.finish(), wspcap.CaptureInfo())
    by_packet = from_packets(records)
    for name in ("frames", "messages", "anomalies", "connections"):
        pd.testing.assert_frame_equal(getattr(by_block, name), getattr(by_packet, name))


def test_from_packets_takes_any_int(plain: Any) -> None:
    """Timestamps handed in by a caller, past int64 either way, are nulled and flagged."""
    with open_capture(SAMPLES / "plain.pcap") as cap:
        records = list(cap)
    records[3] = records[3]._replace(ts_ns=1 << 64)
    records[7] = records[7]._replace(ts_ns=-(1 << 64))
    capture = from_packets(records)
    rows = capture.anomalies[capture.anomalies.code == "capture_timestamp_invalid"]
    assert rows.detail.tolist() == [(
        "2 packets have a timestamp outside int64 nanoseconds (years 1677 to 2262); "
        "their ts is null (first: packet 4)")]
    assert frames_of(capture) == frames_of(plain[1])


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_analyze_o_writes_null_times(tmp_path: Path, bad_times: tuple[Path, set[int]],
                                     fmt: str) -> None:
    """Was an OverflowError traceback (and a NaT would be a year-1677 time in Arrow)."""
    path, bad = bad_times
    out = tmp_path / "out"
    done = run("analyze", str(path), "-q", "-o", str(out), "--format", fmt)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    frames = _read_table(out, "frames", fmt)
    null = frames.ts.isna().to_numpy().tolist()
    assert null == frames.packet.isin(bad).to_numpy().tolist() and any(null)
    assert frames.ts.dropna().astype(str).str.startswith("20").all()
    messages = _read_table(out, "messages", fmt)
    assert messages.ts_end.isna().any() and messages.ts_end.notna().any()
    anomalies = _read_table(out, "anomalies", fmt)
    assert "capture_timestamp_invalid" in set(anomalies.code.astype(str))


def test_summary_report_and_plots_with_null_times(tmp_path: Path,
                                                  bad_times: tuple[Path, set[int]]) -> None:
    path, _ = bad_times
    done = run("analyze", str(path))
    assert done.returncode == 0 and "capture_timestamp_invalid" in done.stdout, done.stderr
    done = run("report", str(path), "-o", str(tmp_path / "r.html"))
    assert done.returncode == 0, done.stderr
    done = run("plot", str(path), "-o", str(tmp_path / "plots"))
    assert done.returncode == 0, done.stderr


def test_crafted_sample_keeps_the_late_packet() -> None:
    expect = json.loads((SAMPLES / "anomalies" / "capture-timestamp-invalid.expect.json")
                        .read_text(encoding="utf-8"))
    (row,) = [r for r in expect["anomalies"] if r["code"] == "capture_timestamp_invalid"]
    capture = wspcap.read(SAMPLES / "anomalies" / expect["file"])
    late = capture.frames[capture.frames.packet == row["packet"]]
    assert len(late) == 1 and late.ts.isna().all()
    assert bytes(late.payload.iloc[0]) == b"this frame's packet has no usable time"


def test_replay_events_have_null_times(bad_times: tuple[Path, set[int]]) -> None:
    """The live API on a file: events of packets without a time say ``ts: null``
    (iso_ts gave a year-1677 time for NaT)."""
    from wspcap.api.live import replay
    path, _ = bad_times
    events = [e.to_dict() for e in replay(path)]
    stamps = [e["ts"] for e in events]
    assert None in stamps and all(t is None or t.startswith("20") for t in stamps)
    assert any(e["event"] == "anomaly" and e["code"] == "capture_timestamp_invalid"
               for e in events)
    json.dumps(events)


def _timed_conversation() -> tuple[list[Any], dict[str, int]]:
    """A conversation whose times are all plain (one packet a second): a request
    head in two segments, 30 pings answered, a frame in two segments. Returns
    its packet records and the packets to give a null time: the request's first
    segment, the last ping, the frame's first segment."""
    from golden.crafted import Conversation, request_head
    from golden.rfc6455 import BINARY, PING, PONG

    conv = Conversation()
    conv.open()
    head = request_head()
    at = {"request": len(conv.packets) + 1}
    conv.upgrade(head, request_sizes=[10, len(head) - 10])
    for n in range(30):
        conv.exchange("c2s", PING, b"%d" % n)
        at["ping"] = len(conv.packets) - 1
        conv.exchange("s2c", PONG, b"%d" % n)
    wire = conv.message("s2c", BINARY, bytes(300))
    at["frame"] = len(conv.packets) + 1
    conv.send("s2c", wire, [100, len(wire) - 100])
    conv.closing_handshake()
    conv.close()
    records = [PacketRecord(n, (1_700_000_000 + n) * 10**9, 1, bytes(p), len(p))
               for n, p in enumerate(conv.packets, 1)]
    return records, at


@pytest.mark.parametrize("where", ["request", "ping", "frame"])
def test_unknown_times_raise_no_timing_anomaly(where: str) -> None:
    """A null time is not a time: the duration and rate checks pass over it,
    where they saw a request head or a frame that took centuries to arrive
    (res_slow_handshake, res_slow_frame) and 11 pings within 1 s, the last of
    them before 1677 (res_ping_flood)."""
    records, at = _timed_conversation()
    want = codes(from_packets(records))
    number = at[where]
    late = [r._replace(ts_ns=1 << 70) if r.number == number else r for r in records]
    assert codes(from_packets(late)) == want | {"capture_timestamp_invalid"}


@pytest.mark.parametrize("command", ["report", "plot"])
def test_report_and_plot_warn_about_a_cut(tmp_path: Path, command: str) -> None:
    """They said nothing on stderr about a capture read only up to its cut."""
    packed = gzip.compress((SAMPLES / "plain.pcap").read_bytes(), mtime=0)
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(packed[:len(packed) // 2])
    out = tmp_path / ("r.html" if command == "report" else "plots")
    done = run(command, str(path), "-o", str(out))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("wspcap: warning")]
    assert len(warnings) == 1 and "cut short" in warnings[0]
