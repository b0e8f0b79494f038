"""The ``wspcap`` command line, run as a user would (a subprocess, bounded in time).

Exit statuses are the ones documented in :mod:`wspcap.cli`: 0 done (a
truncated capture is a warning), 2 bad usage or unreadable input. Every error
a user can cause must end with exactly one line on stderr and no traceback.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pyarrow.parquet as pq
import pytest
from golden import truth as T

import wspcap

#: Bound on one run (a guard against hangs, not a measurement).
TIMEOUT = 60
TABLES = ("connections", "frames", "messages", "anomalies", "app")
PCAP_HEADER = 24
RECORD_HEADER = 16


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m wspcap ARGS``, bounded by TIMEOUT."""
    return subprocess.run([sys.executable, "-m", "wspcap", *args], capture_output=True,
                          text=True, timeout=TIMEOUT, cwd=cwd, check=False)


def _one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def _record_offsets(data: bytes) -> list[int]:
    """Where each record of a little-endian classic pcap starts."""
    assert struct.unpack_from("<I", data)[0] == 0xA1B2C3D4
    offsets, pos = [], PCAP_HEADER
    while pos + RECORD_HEADER <= len(data):
        offsets.append(pos)
        pos += RECORD_HEADER + struct.unpack_from("<I", data, pos + 8)[0]
    assert pos == len(data)
    return offsets


class TestBasics:
    def test_version(self) -> None:
        done = run("--version")
        assert done.returncode == 0
        assert done.stdout.strip() == f"wspcap {wspcap.__version__}"

    def test_console_script(self) -> None:
        exe = shutil.which("wspcap")
        if exe is None:
            pytest.skip("the wspcap script is not on PATH (package not installed)")
        done = subprocess.run([exe, "--version"], capture_output=True, text=True,
                              timeout=TIMEOUT, check=False)
        assert done.returncode == 0 and wspcap.__version__ in done.stdout

    def test_exit_status_and_whole_output(self, samples_dir: Path, tmp_path: Path) -> None:
        """The program exits without tearing the interpreter down: its status
        is main()'s, its output is all there, and exit handlers still run."""
        anomalous = str(samples_dir / "anomalies" / "ws-client-unmasked.pcap")
        assert run("analyze", anomalous, "-q", "--fail-on", "warning").returncode == 3
        done = run("rules", "--format", "json")
        assert done.returncode == 0
        assert len(json.loads(done.stdout)["rules"]) > 50  # the whole catalog, parsed
        mark = tmp_path / "atexit"
        code = ("import atexit, pathlib, sys; from wspcap.cli import run; "
                f"atexit.register(pathlib.Path({str(mark)!r}).write_text, 'ran'); "
                "print('buffered', end=''); "  # (-q: nothing else prints, or flushes)
                f"sys.argv = ['wspcap', 'analyze', {anomalous!r}, '-q', '--fail-on', 'warning']; "
                "run()")
        buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=TIMEOUT, check=False, env=buffered)
        assert (done.returncode, done.stdout) == (3, "buffered")
        assert mark.read_text() == "ran"

    @pytest.mark.skipif(not os.path.exists("/proc/self/status") or (os.cpu_count() or 1) < 2,
                        reason="counts the process's threads in /proc, on 2 cores or more")
    @pytest.mark.parametrize("given", [None, "2"])
    def test_openblas_starts_no_thread_unless_told(self, given: str | None) -> None:
        """The command sets OPENBLAS_NUM_THREADS=1 before NumPy is imported
        (NumPy's OpenBLAS then starts no thread of its own), unless the
        environment sets it."""
        code = ("import os, re, sys; from wspcap import cli; "
                "cli.main = lambda: __import__('numpy') and print("
                "os.environ['OPENBLAS_NUM_THREADS'], re.search(r'Threads:\\s+(\\d+)', "
                "open('/proc/self/status').read()).group(1)) or 0; cli.run()")
        env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
        if given is not None:
            env["OPENBLAS_NUM_THREADS"] = given
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=TIMEOUT, check=False, env=env)
        assert (done.returncode, done.stdout) == (0, "1 1\n" if given is None else "2 2\n")

    def test_help(self) -> None:
        done = run("--help")
        assert done.returncode == 0
        assert done.stdout.startswith("usage: wspcap")
        assert "analyze" in done.stdout
        done = run("analyze", "--help")
        assert done.returncode == 0 and "--format" in done.stdout

    def test_no_command(self) -> None:
        done = run()
        assert done.returncode == 2
        assert "usage: wspcap" in done.stdout + done.stderr

    def test_bad_option(self, samples_dir: Path) -> None:
        done = run("analyze", str(samples_dir / "plain.pcap"), "--format", "xml")
        assert done.returncode == 2
        assert "Traceback" not in done.stderr and "--format" in done.stderr


class TestAnalyze:
    def test_prints_connections(self, samples_dir: Path) -> None:
        truth = T.load(samples_dir / "multi.truth.json")
        done = run("analyze", str(samples_dir / truth["file"]))
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        out = done.stdout
        assert f"{len(truth['connections'])} WebSocket" in out
        for tc in truth["connections"]:
            assert f"{tc['client']['ip']}:{tc['client']['port']}" in out
            assert tc["handshake"]["path"] in out

    @pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
    def test_writes_tables(self, fmt: str, samples_dir: Path, tmp_path: Path,
                           read_capture: Any) -> None:
        capture_path = samples_dir / "fragmented.pcap"
        out = tmp_path / "out"
        done = run("analyze", str(capture_path), "-o", str(out), "--format", fmt, "-q")
        assert done.returncode == 0, done.stderr
        assert done.stdout == ""
        assert sorted(p.name for p in out.iterdir()) == sorted(f"{t}.{fmt}" for t in TABLES)
        expected = read_capture(capture_path)
        truth = T.load(samples_dir / "fragmented.truth.json")
        for table in TABLES:
            path = out / f"{table}.{fmt}"
            if fmt == "parquet":
                df = pq.read_table(path).to_pandas()
            elif fmt == "csv":
                df = pd.read_csv(path)
            else:
                df = pd.read_json(path, lines=True)
            ours = getattr(expected, table)
            assert len(df) == len(ours), table
            if len(ours):
                assert list(df.columns) == list(ours.columns), table
        # the numbers come from the truth file, not from wspcap
        frames = sum(tc["counts"][d]["frames"] for tc in truth["connections"]
                     for d in ("c2s", "s2c"))
        messages = sum(tc["counts"][d]["messages"] for tc in truth["connections"]
                       for d in ("c2s", "s2c"))
        assert len(expected.frames) == frames
        assert len(expected.messages) == messages
        assert len(expected.connections) == len(truth["connections"])

    def test_payloads_round_trip(self, samples_dir: Path, tmp_path: Path) -> None:
        """Parquet keeps payload bytes; CSV writes them as hex."""
        truth = T.load(samples_dir / "plain.truth.json")
        sent = [bytes.fromhex(m["payload"]) if m["type"] != "text"
                else m["payload"].encode() for m in truth["connections"][0]["messages"]]
        for fmt in ("parquet", "csv"):
            out = tmp_path / fmt
            done = run("analyze", str(samples_dir / truth["file"]), "-o", str(out),
                       "--format", fmt, "-q")
            assert done.returncode == 0, done.stderr
            if fmt == "parquet":
                payloads = [bytes(p) for p in pd.read_parquet(out / "messages.parquet").payload]
            else:
                df = pd.read_csv(out / "messages.csv", keep_default_na=False,
                                 dtype={"payload": str})
                payloads = [bytes.fromhex(p) for p in df.payload]
            assert sorted(payloads) == sorted(sent), fmt


class TestBadInput:
    """Each bad input: one line on stderr, the documented status, no traceback."""

    def _expect_error(self, path: Path, cwd: Path) -> str:
        done = run("analyze", str(path), cwd=cwd)
        assert done.returncode == 2, done.stderr
        line = _one_line(done.stderr)
        assert line.startswith("wspcap: error: ")
        assert done.stdout == ""
        return line

    def test_missing_file(self, tmp_path: Path) -> None:
        self._expect_error(tmp_path / "nope.pcap", tmp_path)

    def test_directory(self, tmp_path: Path) -> None:
        (tmp_path / "dir").mkdir()
        self._expect_error(tmp_path / "dir", tmp_path)

    def test_empty_file(self, tmp_path: Path) -> None:
        path = tmp_path / "empty.pcap"
        path.write_bytes(b"")
        self._expect_error(path, tmp_path)

    def test_text_file(self, tmp_path: Path) -> None:
        path = tmp_path / "notes.txt"
        path.write_text("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
        self._expect_error(path, tmp_path)

    def test_random_garbage(self, tmp_path: Path) -> None:
        rng = random.Random(6455)
        path = tmp_path / "garbage.pcap"
        data = bytes(rng.randrange(256) for _ in range(8192))
        # make sure it does not start with a capture magic by chance
        assert data[:4] not in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                                b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a", b"\x1f\x8b")
        path.write_bytes(data)
        self._expect_error(path, tmp_path)

    def _truncated_run(self, path: Path, tmp_path: Path) -> tuple[str, pd.DataFrame]:
        out = tmp_path / "out"
        done = run("analyze", str(path), "-o", str(out), "--format", "parquet", "-q")
        assert done.returncode == 0, done.stderr
        line = _one_line(done.stderr)
        assert line.startswith("wspcap: warning: ")
        return line, pd.read_parquet(out / "frames.parquet")

    def _frames_before(self, full: Any, packet: int) -> list[tuple[Any, ...]]:
        f = full.frames
        f = f[f.packet < packet]
        return sorted((int(r.packet), r.direction, int(r.opcode), int(r.payload_len),
                       bytes(r.payload)) for r in f.itertuples(index=False))

    def test_truncated_mid_record(self, samples_dir: Path, tmp_path: Path,
                                  read_capture: Any) -> None:
        """A file cut in the middle of a record: warning, exit 0, every earlier frame."""
        source = samples_dir / "plain.pcap"
        data = source.read_bytes()
        offsets = _record_offsets(data)
        cut_record = len(offsets) * 2 // 3
        path = tmp_path / "truncated.pcap"
        path.write_bytes(data[:offsets[cut_record] + RECORD_HEADER + 10])
        line, frames = self._truncated_run(path, tmp_path)
        assert path.name in line
        expected = self._frames_before(read_capture(source), cut_record + 1)
        assert expected, "the cut should leave some frames before it"
        # frames cut short by the end of the file are kept too, marked incomplete
        got = sorted((int(r.packet), r.direction, int(r.opcode), int(r.payload_len),
                      bytes(r.payload)) for r in frames.itertuples(index=False)
                     if r.missing == 0)
        assert got == expected

    def test_huge_record_header(self, samples_dir: Path, tmp_path: Path,
                                read_capture: Any) -> None:
        """A record header declaring 2**31 bytes: a corrupt file, not an allocation."""
        source = samples_dir / "plain.pcap"
        data = source.read_bytes()
        offsets = _record_offsets(data)
        keep = len(offsets) // 2
        bogus = struct.pack("<IIII", 1, 0, 2**31, 2**31) + bytes(64)
        path = tmp_path / "huge.pcap"
        path.write_bytes(data[:offsets[keep]] + bogus)
        line, frames = self._truncated_run(path, tmp_path)
        assert path.name in line
        expected = self._frames_before(read_capture(source), keep + 1)
        got = sorted((int(r.packet), r.direction, int(r.opcode), int(r.payload_len),
                      bytes(r.payload)) for r in frames.itertuples(index=False))
        assert got == expected


class TestOutputPaths:
    """Issue 15 item 10: where output cannot go, one line and status 2 before any
    work starts (no traceback, nothing half written); missing parent folders are
    made (``mkdir -p``). Tests run as root, so "cannot write" is a path no one
    can write: under a regular file, or in ``/proc``."""

    #: Every command and output option, with whether it names a folder.
    OUTPUTS: ClassVar[list[tuple[tuple[str, ...], bool]]] = [
        (("analyze", "{capture}", "-o"), True),
        (("analyze", "{capture}", "{capture2}", "--scheduler", "sync", "-o"), True),
        (("plot", "{capture}", "-o"), True),
        (("report", "{capture}", "-o"), False),
        (("live", "-i", "lo", "--duration", "1", "-w"), False),
        (("live", "-i", "lo", "--duration", "1", "-o"), True),
        (("live", "-i", "lo", "--duration", "1", "--jsonl"), False),
    ]

    @staticmethod
    def _args(template: tuple[str, ...], samples_dir: Path, out: Path) -> list[str]:
        names = {"{capture}": str(samples_dir / "plain.pcap"),
                 "{capture2}": str(samples_dir / "deflate.pcap")}
        return [names.get(a, a) for a in template] + [str(out)]

    def _refused(self, args: list[str], words: str, cwd: Path) -> None:
        done = run(*args, cwd=cwd)
        assert done.returncode == 2, done.stderr
        line = _one_line(done.stderr)
        assert line.startswith("wspcap: error: option ") and words in line, line
        assert done.stdout == ""

    @pytest.mark.parametrize("template, folder", OUTPUTS)
    def test_under_a_regular_file(self, template: tuple[str, ...], folder: bool,
                                  samples_dir: Path, tmp_path: Path) -> None:
        blocker = tmp_path / "notes.txt"
        blocker.write_text("a file, not a folder")
        self._refused(self._args(template, samples_dir, blocker / "out" / "x"),
                      "a file is in the way", tmp_path)
        assert blocker.read_text() == "a file, not a folder"

    @pytest.mark.parametrize("template, folder", OUTPUTS)
    def test_where_no_one_can_write(self, template: tuple[str, ...], folder: bool,
                                    samples_dir: Path, tmp_path: Path) -> None:
        if not Path("/proc/self").is_dir():
            pytest.skip("needs /proc")
        self._refused(self._args(template, samples_dir, Path("/proc/wspcap-out")),
                      "/proc/wspcap-out: cannot", tmp_path)

    @pytest.mark.parametrize("template, folder", OUTPUTS)
    def test_the_wrong_kind_already_there(self, template: tuple[str, ...], folder: bool,
                                          samples_dir: Path, tmp_path: Path) -> None:
        """A file where a folder is wanted, a folder where a file is wanted."""
        there = tmp_path / "there"
        if folder:
            there.write_text("keep me")
            self._refused(self._args(template, samples_dir, there), "is a file, not a folder",
                          tmp_path)
            assert there.read_text() == "keep me"
        else:
            there.mkdir()
            self._refused(self._args(template, samples_dir, there), "is a folder, not a file",
                          tmp_path)

    @pytest.mark.parametrize("template, folder", [o for o in OUTPUTS if o[0][0] != "live"])
    def test_missing_folders_are_made(self, template: tuple[str, ...], folder: bool,
                                      samples_dir: Path, tmp_path: Path) -> None:
        out = tmp_path / "new" / "deeper" / ("tables" if folder else "report.html")
        done = run(*self._args(template, samples_dir, out), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        assert out.is_dir() if folder else out.is_file()
        assert any(out.iterdir()) if folder else out.stat().st_size > 0

    def test_live_makes_missing_folders(self, tmp_path: Path) -> None:
        if sys.platform != "linux" or os.geteuid() != 0:
            pytest.skip("live capture needs Linux and root")
        pytest.importorskip("scapy", reason="scapy (wspcap[live]) is not installed")
        pcap, tables = tmp_path / "a" / "b" / "live.pcap", tmp_path / "c" / "tables"
        done = run("live", "-i", "lo", "-f", "tcp port 9", "--duration", "0.5", "-q",
                   "-w", str(pcap), "-o", str(tables), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert pcap.is_file() and tables.is_dir()

    def test_an_existing_report_is_replaced(self, samples_dir: Path, tmp_path: Path) -> None:
        out = tmp_path / "report.html"
        out.write_text("old")
        done = run("report", str(samples_dir / "plain.pcap"), "-o", str(out))
        assert done.returncode == 0, done.stderr
        assert out.read_text() != "old"

    def test_checked_before_reading(self, tmp_path: Path) -> None:
        """A bad output is told at once, even when the input is bad too: the
        input is told first, and no output folder is left behind."""
        done = run("analyze", str(tmp_path / "nope.pcap"), "-o", str(tmp_path / "out"))
        assert done.returncode == 2
        assert "nope.pcap: no such file" in _one_line(done.stderr)
        assert not (tmp_path / "out").exists()


class TestSeveralInputs:
    """Issue 15 item 11: every input checked before anything starts (no Dask
    error dump); one line per bad input."""

    @pytest.mark.parametrize("dask", [[], ["--scheduler", "sync"], ["--workers", "2"]])
    def test_one_line_per_bad_input(self, dask: list[str], samples_dir: Path,
                                    tmp_path: Path) -> None:
        notes = tmp_path / "notes.pcap"
        notes.write_text("hello")
        (tmp_path / "empty").mkdir()
        good = [str(samples_dir / "plain.pcap"), str(samples_dir / "deflate.pcap")]
        bad = [str(tmp_path / "missing.pcap"), str(notes), str(tmp_path / "*.pcapng"),
               str(tmp_path / "empty"), str(tmp_path / "gone.pcap")]
        done = run("analyze", good[0], bad[0], bad[1], good[1], *bad[2:], *dask,
                   "-o", str(tmp_path / "out"))
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == len(bad), done.stderr
        for line, name in zip(lines, bad):
            assert line.startswith(f"wspcap: error: {name}: "), line
        assert done.stdout == ""
        assert not (tmp_path / "out").exists()


def test_many_captures_table_at_80_columns(samples_dir: Path) -> None:
    """Issue 15 item 15: the several-captures table fits 80 columns with the
    file names whole (when they fit) and a singular for one capture's counts."""
    names = ["plain.pcap", "multi.pcapng", "anomalies/tcp-reset.pcap"]
    done = subprocess.run([sys.executable, "-m", "wspcap", "analyze", *names, "--scheduler",
                           "sync"], capture_output=True, text=True, timeout=TIMEOUT,
                          check=False, env={**os.environ, "COLUMNS": "80",
                                            "PYTHONPATH": os.pathsep.join(sys.path)},
                          cwd=samples_dir)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(map(len, lines)) <= 80, done.stdout
    for name in names:
        assert any(name in line for line in lines), done.stdout
    assert "3 captures:" in done.stdout
