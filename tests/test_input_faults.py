"""Damaged inputs through the whole tool: ``wspcap.read``, ``analyze_to`` and the
CLI (issue 15 item 1).

A cut or corrupt file (plain, pcapng or gzip-compressed) gives every packet
before the fault, a ``capture_truncated`` or ``capture_corrupt`` row, and one
warning line from the CLI (exit status 0, as for a cut plain pcap).
"""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import wspcap
from wspcap.capture import analyze_to

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
