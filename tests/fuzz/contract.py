"""The contract every input must hold, checked in a forked child process.

For a capture file, ``wspcap.read(path)`` either returns a Capture whose four
tables can be built, or raises a documented :class:`wspcap.errors.WspcapError`
subclass; so does a read that sends every packet run through the block path
(:mod:`wspcap.engine.runs`), and both give the same tables; optionally
``wspcap.analyze_to(path, dir, "parquet")`` too. No other exception escapes,
no case runs past :data:`TIME_LIMIT` seconds, and none grows its resident
memory by more than :data:`RSS_LIMIT` bytes over what it started with.

Each case runs in a child forked from this process (so a hang can be killed,
and memory measured: the child's peak from ``os.wait4``, plus polling of
``/proc/<pid>/statm`` so a runaway child is stopped before it takes the
machine).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

import wspcap
from wspcap.engine import runs as blocks
from wspcap.errors import WspcapError
from wspcap.tables.capture import Capture

__all__ = ["RSS_LIMIT", "TIME_LIMIT", "Outcome", "check", "run_case"]

TIME_LIMIT = 10.0  #: seconds per case
RSS_LIMIT = 1 << 30  #: bytes of resident memory a case may add to its start
#: address space a child may add before allocations fail (a backstop for
#: allocations too fast for the polling)
_AS_HEADROOM = 6 << 30
TABLES = ("connections", "frames", "messages", "anomalies")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Outcome:
    """What one case did.

    Attributes:
        status: ``ok`` (a Capture), ``refused`` (a documented WspcapError),
            or a failure: ``escaped`` (another exception), ``paths-differ``
            (the block path's tables differ from read()'s), ``hang`` (killed
            at the time limit), ``memory`` (past the RSS limit), ``crashed``
            (the child died without a word).
        error: the exception's type and message (``refused``, ``escaped``).
        where: the innermost wspcap frame of the traceback, ``file:line
            function`` (``escaped``).
        detail: the traceback or the difference, for the report.
        seconds: the wall time.
        rss_added: the child's peak resident memory over its start, in bytes.
        packets: the packets read (``ok``).
    """

    status: str
    error: str = ""
    where: str = ""
    detail: str = ""
    seconds: float = 0.0
    rss_added: int = 0
    packets: int = 0

    @property
    def failed(self) -> bool:
        return self.status not in ("ok", "refused")

    def signature(self) -> tuple[str, str]:
        """``(status or exception type, where)``: one per distinct finding."""
        kind = self.error.split(":", 1)[0] if self.status == "escaped" else self.status
        return kind, self.where


def _touch(cap: Capture) -> None:
    """Build every table (they may be made on first use) and the summary."""
    for name in TABLES:
        getattr(cap, name)
    str(cap)


def _name(exc: BaseException) -> str:
    """``ValueError``, ``zlib.error``: the exception's type, qualified if not a builtin."""
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else (
        f"{kind.__module__}.{kind.__qualname__}")


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if "/wspcap/" in f.filename.replace(os.sep, "/")]
    if not (mine or frames):
        return ""
    f = (mine or frames)[-1]
    path = f.filename.replace(os.sep, "/")
    short = "wspcap/" + path.rsplit("/wspcap/", 1)[1] if "/wspcap/" in path else Path(path).name
    return f"{short}:{f.lineno} {f.name}"


def _difference(got: pd.DataFrame, want: pd.DataFrame) -> tuple[str, str] | None:
    """``(column, what)`` of the first difference between two tables, or None."""
    if got.equals(want) and (got.dtypes == want.dtypes).all():
        return None
    if list(got.columns) != list(want.columns):
        return "", f"columns {list(got.columns)} vs {list(want.columns)}"
    if len(got) != len(want):
        return "", f"{len(got)} rows vs {len(want)}"
    for column in got.columns:
        a, b = got[column], want[column]
        try:
            pd.testing.assert_series_equal(a, b, check_names=False)
            continue
        except AssertionError as exc:
            text = str(exc).splitlines()[0]
        for row in range(len(a)):
            x, y = a.iloc[row], b.iloc[row]
            same = x is y or (pd.isna(x) and pd.isna(y)) if _scalar(x) and _scalar(y) else False
            if not same and not (_scalar(x) and _scalar(y) and x == y):
                text = f"row {row}: {x!r} vs {y!r}"
                break
        return column, f"column {column}, {text}"
    return None


def _scalar(x: Any) -> bool:
    return not hasattr(x, "__len__") or isinstance(x, (str, bytes))


def check(path: Path, analyze_dir: Path | None = None, read: bool = True) -> dict[str, Any]:
    """The contract on one file, in this process; returns what the child
    reports (status, error, where, detail, packets). ``read=False`` runs
    only analyze_to (to measure its memory alone)."""
    try:
        if not read:
            if analyze_dir is not None:
                wspcap.analyze_to(path, analyze_dir, "parquet")
            return {"status": "ok"}
        cap = wspcap.read(path)
        _touch(cap)
        saved = blocks.MIN_PACKETS
        blocks.MIN_PACKETS = 1
        try:
            every = wspcap.read(path)
            _touch(every)
        finally:
            blocks.MIN_PACKETS = saved
        for name in TABLES:
            differ = _difference(getattr(every, name), getattr(cap, name))
            if differ is not None:
                column, text = differ
                return {"status": "paths-differ", "where": f"{name}.{column}",
                        "detail": f"block path vs read(), {name}: {text}"[:4000]}
        if analyze_dir is not None:
            wspcap.analyze_to(path, analyze_dir, "parquet")
        return {"status": "ok", "packets": cap.info.packets}
    except WspcapError as exc:
        return {"status": "refused", "error": f"{type(exc).__name__}: {exc}"[:500]}
    except BaseException as exc:  # noqa: BLE001 - what the contract is about
        return {"status": "escaped", "error": f"{_name(exc)}: {exc}"[:500],
                "where": _where(exc), "detail": traceback.format_exc()[-6000:]}


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _child(path: Path, analyze_dir: Path | None, read: bool, out: int) -> None:
    try:
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        with open("/proc/self/statm") as f:
            size = int(f.read().split()[0]) * _PAGE
        limit = size + _AS_HEADROOM
        if hard == resource.RLIM_INFINITY or limit < hard:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (OSError, ValueError):
        pass
    try:
        result = check(path, analyze_dir, read)
    except BaseException as exc:  # noqa: BLE001
        result = {"status": "escaped", "error": f"{type(exc).__name__}: {exc}"[:500]}
    data = json.dumps(result).encode()
    while data:
        data = data[os.write(out, data):]


def run_case(path: Path, analyze_dir: Path | None = None, *, time_limit: float = TIME_LIMIT,
             rss_limit: int = RSS_LIMIT, read: bool = True) -> Outcome:
    """Check ``path`` in a forked child with a wall-time and a memory limit
    (``read=False``: only ``analyze_to`` into ``analyze_dir``)."""
    start_rss = _rss(os.getpid())
    read_end, write_end = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's code
        code = 0
        try:
            os.close(read_end)
            _child(path, analyze_dir, read, write_end)
        except BaseException:  # noqa: BLE001
            code = 70
        finally:
            os._exit(code)
    os.close(write_end)
    os.set_blocking(read_end, False)
    chunks: list[bytes] = []
    peak, killed, pause = 0, "", 0.002
    while True:
        try:
            while chunk := os.read(read_end, 65536):
                chunks.append(chunk)
        except BlockingIOError:
            pass
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        peak = max(peak, _rss(pid) - start_rss)
        if peak > rss_limit:
            killed = "memory"
        elif time.monotonic() - started > time_limit:
            killed = "hang"
        if killed:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            break
        time.sleep(pause)
        pause = min(pause * 1.5, 0.02)
    seconds = time.monotonic() - started
    try:
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
    except BlockingIOError:
        pass
    os.close(read_end)
    peak = max(peak, usage.ru_maxrss * 1024 - start_rss)
    if killed == "hang":
        return Outcome("hang", detail=f"killed after {seconds:.1f} s", seconds=seconds,
                       rss_added=peak)
    if killed == "memory" or peak > rss_limit:
        return Outcome("memory", detail=f"resident memory grew by {peak / 2**20:.0f} MiB",
                       seconds=seconds, rss_added=peak)
    try:
        got = json.loads(b"".join(chunks))
    except ValueError:
        how = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
               else f"exit status {os.waitstatus_to_exitcode(status)}")
        return Outcome("crashed", detail=f"the child died ({how}) without a report",
                       seconds=seconds, rss_added=peak)
    return Outcome(got["status"], got.get("error", ""), got.get("where", ""),
                   got.get("detail", ""), seconds, peak, got.get("packets", 0))
