#!/usr/bin/env python3
"""What application decoding (issue 18) adds to ``wspcap.read()``.

Reads one capture (default: benchmarks/data/chat.pcap, made by
make_captures.py: ~250k JSON text messages over 40 connections) in one
process, alternating three ways, and prints the median time of each and the
ratio to the first, in wall time and in CPU time (user + system of the
process: on a shared machine it moves much less than the wall time):

  off        Options(decoders=False): no application decoding at all
  auto       the defaults: each connection's decoder chosen by handshake or by
             its first messages; on the chat capture none applies (the worst
             case for "nothing measurable")
  forced     Options(decoder=NAME) (default jsonrpc): every connection decoded,
             every message parsed (the worst case for the 20% budget)

On chat the JSON messages are not JSON-RPC: forced, every message is parsed
and none makes a row. ``chat-jsonrpc`` (make_captures.py --only
chat-jsonrpc) is the same traffic in JSON-RPC 2.0: auto recognizes it by
content and every message makes a row; there ``--decoder none`` leaves the
forced way out (it would be auto again).

With ``--fresh``, each read is made in a process of its own (after a read
of a small sample there, for the imports), as a user's one read of a
capture is: nothing an earlier read let go of is there to be used again,
every page of memory the read writes is new to it. In one process, the
reads alternate: a read after one that held less memory finds less of it
ready (on chat-jsonrpc the decoded read faults twice as many pages in after
a read without decoding as after another decoded one), so that way's
figure moves with the order of the ways. Both ways print the median and the
fastest run.

Usage::

    python benchmarks/app_decoding.py [FILE | chat | chat-jsonrpc] [--decoder NAME|none]
                                      [--repeat N] [--fresh]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import wspcap

HERE = Path(__file__).resolve().parent
DEFAULT = HERE / "data" / "chat.pcap"
#: A small sample read first in a fresh process (the imports, not timed).
WARM = HERE.parent / "samples" / "plain.pcap"

#: What a fresh process runs: one read of the capture (argv: the capture,
#: the Options' keyword arguments as JSON), its wall and CPU seconds, and
#: the rows of its app table, as JSON.
_FRESH = """
import json, sys, time
import wspcap
options = wspcap.Options(**json.loads(sys.argv[2]))
wspcap.read(sys.argv[3], options=options)
start, cpu = time.perf_counter(), time.process_time()
capture = wspcap.read(sys.argv[1], options=options)
print(json.dumps([time.perf_counter() - start, time.process_time() - cpu, len(capture.app)]))
"""


def _time(path: Path, options: wspcap.Options) -> tuple[float, float, int]:
    """Wall and CPU seconds of one read, and the rows of its app table (the
    garbage of the reads before collected first, not timed: a read's
    collector is freed by the garbage collector, whenever it runs)."""
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    capture = wspcap.read(path, options=options)
    return time.perf_counter() - start, time.process_time() - cpu, len(capture.app)


def _time_fresh(path: Path, options: dict[str, object]) -> tuple[float, float, int]:
    """:func:`_time` in a process of its own."""
    done = subprocess.run([sys.executable, "-c", _FRESH, str(path), json.dumps(options),
                           str(WARM)], capture_output=True, text=True, check=True)
    wall, cpu, rows = json.loads(done.stdout)
    return float(wall), float(cpu), int(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("capture", nargs="?", type=Path, default=DEFAULT,
                    help="a capture file, or the name of one in benchmarks/data [chat]")
    ap.add_argument("--decoder", default="jsonrpc",
                    help="decoder forced, none for no forced way [%(default)s]")
    ap.add_argument("--repeat", type=int, default=5, help="runs of each way [%(default)s]")
    ap.add_argument("--fresh", action="store_true",
                    help="each read in a process of its own (see above)")
    args = ap.parse_args(argv)
    if not args.capture.exists() and not args.capture.suffix:
        args.capture = HERE / "data" / f"{args.capture}.pcap"
    if not args.capture.exists():
        ap.error(f"{args.capture} is missing: make it with benchmarks/make_captures.py "
                 f"--only {args.capture.stem}")
    kwargs: dict[str, dict[str, object]] = {"off": {"decoders": False}, "auto": {}}
    if args.decoder.lower() != "none":
        kwargs["forced"] = {"decoder": args.decoder}
    ways = {name: wspcap.Options(**given) for name, given in kwargs.items()}  # type: ignore[arg-type]
    wall: dict[str, list[float]] = {name: [] for name in ways}
    cpu: dict[str, list[float]] = {name: [] for name in ways}
    rows: dict[str, int] = {}
    if not args.fresh:
        _time(args.capture, ways["off"])  # warm the caches and the imports
    names = list(ways)
    for r in range(args.repeat):
        # Each way takes each place in the round in turn: a read right after
        # another one costs more or less than the first (the memory the last
        # one let go of), by as much as 10% on chat.
        for name in names[r % len(names):] + names[:r % len(names)]:
            seconds, cpu_seconds, rows[name] = (
                _time_fresh(args.capture, kwargs[name]) if args.fresh else
                _time(args.capture, ways[name]))
            wall[name].append(seconds)
            cpu[name].append(cpu_seconds)
    where = "each read in a fresh process" if args.fresh else "in one process"
    for label, pick in (("median", statistics.median), ("fastest", min)):
        base, cpu_base = pick(wall["off"]), pick(cpu["off"])
        print(f"{args.capture.name}: {label} of {args.repeat} runs, {where} (wall, then CPU)")
        for name in ways:
            seconds, cpu_seconds = pick(wall[name]), pick(cpu[name])
            print(f"  {name:<7} {seconds:7.3f} s  {seconds / base - 1:+6.1%}   "
                  f"{cpu_seconds:7.3f} s  {cpu_seconds / cpu_base - 1:+6.1%}  "
                  f"app rows {rows[name]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
