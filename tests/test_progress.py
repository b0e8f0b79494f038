"""Progress: the file sources report the bytes of the file read, a block at a
time, and the commands that read a file show a progress bar on stderr when it
is a terminal (never when it is not, nor with ``-q``).
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import pytest

import wspcap
from wspcap.api.reading import analyze_to
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
        # per block (and once at the end), never per packet; a block may start
        # with the part of a record the one before cut (read again: at most a
        # quarter of a block).
        assert len(seen) <= size // (small_blocks * 3 // 4) + 2 < len(wspcap.read(path).frames)

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


COMMANDS = {
    "analyze": lambda cap, out: ["analyze", cap],
    "analyze -o": lambda cap, out: ["analyze", cap, "-o", out],
    "plot": lambda cap, out: ["plot", cap, "-o", out],
    "report": lambda cap, out: ["report", cap, "-o", os.path.join(out, "r.html")],
}
BAR = "━"  # what rich draws a bar with


class TestProgressBar:
    """Every command that reads a file shows a bar on a terminal's stderr once
    it has worked PROGRESS_AFTER seconds (0 here), and nothing otherwise."""

    def _run(self, monkeypatch: pytest.MonkeyPatch, argv: list[str], terminal: bool) -> str:
        from rich.console import Console

        from wspcap import cli
        from wspcap.cli import common  # where the bar reads both
        out = io.StringIO()
        monkeypatch.setattr(common, "PROGRESS_AFTER", 0.0)
        monkeypatch.setattr(common, "_stderr_console",
                            lambda: Console(file=out, force_terminal=terminal, width=100))
        assert cli.main(argv) == 0
        return out.getvalue()

    @pytest.mark.parametrize("command", list(COMMANDS))
    def test_shown_on_a_terminal(self, command: str, samples_dir: Path, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
        shown = self._run(monkeypatch, COMMANDS[command](str(samples_dir / "plain.pcap"),
                                                         str(tmp_path)), terminal=True)
        assert "reading" in shown and BAR in shown
        size = os.path.getsize(samples_dir / "plain.pcap")
        assert f"/{size / 1e6:.1f} MB" in shown  # out of the file's size (drawn 10 times a s)
        if command in ("plot", "report"):
            assert "drawing" in shown

    @pytest.mark.parametrize("command", list(COMMANDS))
    def test_quiet_and_not_a_terminal(self, command: str, samples_dir: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
        argv = COMMANDS[command](str(samples_dir / "plain.pcap"), str(tmp_path))
        assert self._run(monkeypatch, argv, terminal=False) == ""
        assert self._run(monkeypatch, [*argv, "-q"], terminal=True) == ""

    def test_real_terminal(self, samples_dir: Path, tmp_path: Path) -> None:
        """The command as run: stderr a pseudo-terminal shows the bar, a pipe does not."""
        import pty
        import select
        import subprocess
        import sys

        code = ("import sys, wspcap.cli as c, wspcap.cli.common as common; "
                "common.PROGRESS_AFTER = 0; raise SystemExit(c.main(sys.argv[1:]))")
        argv = [sys.executable, "-c", code, "report", str(samples_dir / "plain.pcap"),
                "-o", str(tmp_path / "r.html")]
        env = {**os.environ, "COLUMNS": "100"}
        master, slave = pty.openpty()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=slave, env=env)
        os.close(slave)
        seen = b""
        while True:
            ready, _, _ = select.select([master], [], [], 120)
            if not ready:
                proc.kill()
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        os.close(master)
        assert proc.wait(timeout=60) == 0
        text = seen.decode("utf-8", "replace")
        assert "reading" in text and "drawing" in text and BAR in text
        # a pipe, even where FORCE_COLOR asks rich to take any stream for a terminal
        piped = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                               env={**env, "FORCE_COLOR": "1"}, check=False)
        assert piped.returncode == 0
        assert BAR not in piped.stderr and "reading" not in piped.stderr
        assert piped.stderr.strip() == f"wrote {tmp_path / 'r.html'}"
