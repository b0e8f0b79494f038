#!/usr/bin/env python3
"""Time `wspcap report` and `wspcap plot` on WebSocket captures and print the
size of what they write, next to the report's targets (under 5 s and 3 MB on
the chat capture).

    python3 benchmarks/views.py                 # chat (made when missing)
    python3 benchmarks/views.py chat chat-churn --repeat 3
    python3 benchmarks/views.py some.pcap --json views.json

Each command runs in its own process, as a user runs it (interpreter start
and imports included): its wall time (best of --repeat), its CPU time (user
+ system, which moves less when the machine is shared) and its peak RSS.
stderr is not a terminal there, so no progress bar is drawn.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as bench  # run.py, beside this file

#: What the report should stay under on the chat capture (issue 15 item 14).
REPORT_SECONDS = 5.0
REPORT_BYTES = 3_000_000


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def run_view(command: str, capture: Path, timeout: float,
             repo: Path | None = None) -> dict[str, Any]:
    """One run of ``wspcap COMMAND CAPTURE -o OUT`` (the wspcap of the source
    tree ``repo``, this one by default): wall and CPU seconds, peak RSS, bytes
    written. CPU seconds (user + system, from ``os.wait4``) move less than
    wall time when the machine is shared."""
    env = bench.child_env()
    if repo is not None:
        env["PYTHONPATH"] = str(repo.resolve())
    with tempfile.TemporaryDirectory(prefix="wspcap-views-") as tmp:
        out = Path(tmp) / ("report.html" if command == "report" else "plots")
        t0 = time.perf_counter()
        # In the temporary folder: `python -m` looks in the current folder first.
        proc = subprocess.Popen([sys.executable, "-m", "wspcap", command,
                                 str(capture.resolve()), "-o", str(out)], cwd=tmp, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        assert proc.stderr is not None
        stderr = proc.stderr.read().decode(errors="replace")  # small: a few lines
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            return {"error": f"exit {proc.returncode}: {bench.last_line(stderr)}"}
        return {"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime,
                "rss_mb": usage.ru_maxrss / 1024, "bytes": _size(out),
                "files": len(list(out.iterdir())) if out.is_dir() else 1}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("captures", nargs="*", default=["chat"],
                    help="names in benchmarks/data (chat, ...) or capture files [chat]")
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs [%(default)s]")
    ap.add_argument("--data", type=Path, default=bench.DATA,
                    help="capture directory [benchmarks/data]")
    ap.add_argument("--no-generate", action="store_true",
                    help="do not make missing standard captures")
    ap.add_argument("--timeout", type=float, default=600.0, help="per run, seconds")
    ap.add_argument("--json", type=Path, help="also write the results here as JSON")
    ap.add_argument("--repo", type=Path, action="append", default=[],
                    help="run the wspcap of this source tree instead (repeatable, e.g. an "
                         "older checkout made with 'git worktree add' to compare; runs "
                         "alternate between the trees)")
    args = ap.parse_args(argv)
    repos: list[Path | None] = list(args.repo) or [None]
    results: dict[str, Any] = {}
    over = False
    for capture in bench.resolve_captures(args):
        bench.warm_cache(capture)
        mb = capture.stat().st_size / 1e6
        print(f"\n{capture.name} ({mb:.1f} MB)")
        print(f"  {'command':<8} {'best s':>8} {'CPU s':>7} {'runs':>18} {'peak RSS MB':>12} "
              f"{'output':>10}  files")
        results[capture.name] = {}
        for command in ("report", "plot"):
            runs: dict[str, list[dict[str, Any]]] = {}
            for _ in range(args.repeat):  # the trees alternate: drift hits them alike
                for repo in repos:
                    label = command if repo is None else f"{command} {repo}"
                    runs.setdefault(label, []).append(
                        run_view(command, capture, args.timeout, repo))
            for label, done in runs.items():
                errors = [r["error"] for r in done if "error" in r]
                if errors:
                    print(f"  {label:<8} FAILED ({errors[0]})")
                    over = True
                    continue
                seconds = [r["seconds"] for r in done]
                res = {"seconds": min(seconds), "all_seconds": seconds,
                       "cpu": min(r["cpu"] for r in done),
                       "rss_mb": max(r["rss_mb"] for r in done), "bytes": done[-1]["bytes"],
                       "files": done[-1]["files"]}
                results[capture.name][label] = res
                shown = ", ".join(f"{x:.2f}" for x in seconds)
                print(f"  {label:<8} {res['seconds']:>8.2f} {res['cpu']:>7.2f} {shown:>18} "
                      f"{res['rss_mb']:>12.0f} {res['bytes'] / 1e6:>7.2f} MB  {res['files']}")
        rep = results[capture.name].get("report", {})
        if capture.stem == "chat" and repos == [None] and "error" not in rep:
            ok = rep["seconds"] < REPORT_SECONDS and rep["bytes"] < REPORT_BYTES
            over |= not ok
            print(f"  report target (< {REPORT_SECONDS:g} s, < {REPORT_BYTES / 1e6:g} MB): "
                  + ("OK" if ok else "NOT MET"))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
