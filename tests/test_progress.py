"""Progress: the file sources report the bytes of the file read, a block at a
time, and the commands that read a file show a progress bar on stderr when it
is a terminal (never when it is not, nor with ``-q``).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

import wspcap
from wspcap.capture import analyze_to
from wspcap.sources import files


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(files, "BLOCK_SIZE", 16 << 10)
    return files.BLOCK_SIZE


class TestSourcesReportBytes:
    """``progress`` gets the bytes of the file on disk, once per block."""

    @pytest.mark.parametrize("name", ["plain.pcap", "multi.pcapng"])
    def test_plain_file(self, samples_dir: Path, small_blocks: int, name: str) -> None:
        path = samples_dir / name
        seen: list[int] = []
        wspcap.read(path, progress=seen.append)
        size = os.path.getsize(path)
        assert seen == sorted(seen) and seen[-1] == size
        # per block (and once at the end), never per packet
        assert len(seen) <= size // small_blocks + 2

    def test_gzip_counts_compressed_bytes(self, samples_dir: Path, tmp_path: Path,
                                          small_blocks: int) -> None:
        path = tmp_path / "plain.pcap.gz"
        path.write_bytes(gzip.compress((samples_dir / "plain.pcap").read_bytes()))
        seen: list[int] = []
        wspcap.read(path, progress=seen.append)
        assert seen == sorted(seen) and seen[-1] == os.path.getsize(path)

    def test_analyze_to(self, samples_dir: Path, tmp_path: Path, small_blocks: int) -> None:
        path = samples_dir / "plain.pcap"
        seen: list[int] = []
        analyze_to(path, tmp_path / "out", progress=seen.append)
        assert seen == sorted(seen) and seen[-1] == os.path.getsize(path)
        assert len(seen) >= os.path.getsize(path) // small_blocks
