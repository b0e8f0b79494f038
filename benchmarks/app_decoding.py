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

Usage::

    python benchmarks/app_decoding.py [FILE | chat | chat-jsonrpc] [--decoder NAME|none]
                                      [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import wspcap

HERE = Path(__file__).resolve().parent
DEFAULT = HERE / "data" / "chat.pcap"


def _time(path: Path, options: wspcap.Options) -> tuple[float, float, int]:
    """Wall and CPU seconds of one read, and the rows of its app table."""
    start, cpu = time.perf_counter(), time.process_time()
    capture = wspcap.read(path, options=options)
    return time.perf_counter() - start, time.process_time() - cpu, len(capture.app)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("capture", nargs="?", type=Path, default=DEFAULT,
                    help="a capture file, or the name of one in benchmarks/data [chat]")
    ap.add_argument("--decoder", default="jsonrpc",
                    help="decoder forced, none for no forced way [%(default)s]")
    ap.add_argument("--repeat", type=int, default=5, help="runs of each way [%(default)s]")
    args = ap.parse_args(argv)
    if not args.capture.exists() and not args.capture.suffix:
        args.capture = HERE / "data" / f"{args.capture}.pcap"
    if not args.capture.exists():
        ap.error(f"{args.capture} is missing: make it with benchmarks/make_captures.py "
                 f"--only {args.capture.stem}")
    ways = {"off": wspcap.Options(decoders=False), "auto": wspcap.Options()}
    if args.decoder.lower() != "none":
        ways["forced"] = wspcap.Options(decoder=args.decoder)
    wall: dict[str, list[float]] = {name: [] for name in ways}
    cpu: dict[str, list[float]] = {name: [] for name in ways}
    rows: dict[str, int] = {}
    _time(args.capture, ways["off"])  # warm the caches and the imports
    names = list(ways)
    for r in range(args.repeat):
        # Each way takes each place in the round in turn: a read right after
        # another one costs more or less than the first (the memory the last
        # one let go of), by as much as 10% on chat.
        for name in names[r % len(names):] + names[:r % len(names)]:
            options = ways[name]
            seconds, cpu_seconds, rows[name] = _time(args.capture, options)
            wall[name].append(seconds)
            cpu[name].append(cpu_seconds)
    base, cpu_base = statistics.median(wall["off"]), statistics.median(cpu["off"])
    print(f"{args.capture.name}: median of {args.repeat} runs (wall, then CPU)")
    for name in ways:
        median, cpu_median = statistics.median(wall[name]), statistics.median(cpu[name])
        print(f"  {name:<7} {median:7.3f} s  {median / base - 1:+6.1%}   "
              f"{cpu_median:7.3f} s  {cpu_median / cpu_base - 1:+6.1%}  app rows {rows[name]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
