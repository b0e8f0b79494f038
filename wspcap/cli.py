"""The ``wspcap`` command line: thin wrappers over the library.

Every error a user can cause (missing file, not a capture, bad option) ends
with one line on stderr and a non-zero exit status, never a traceback:

- 0: done (a truncated capture is a warning, not a failure);
- 1: an unexpected internal error (a bug: please report it);
- 2: bad usage or an unreadable input;
- 130: interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from wspcap import __version__
from wspcap.errors import WspcapError

__all__ = ["main"]

#: Files above this size get a progress bar (when stderr is a terminal).
PROGRESS_MIN_BYTES = 8 << 20


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wspcap",
        description="Every WebSocket conversation in a capture, exactly: TCP reassembly, "
                    "the HTTP upgrade, RFC 6455 frames, permessage-deflate, anomalies.")
    parser.add_argument("--version", action="version", version=f"wspcap {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    analyze = sub.add_parser(
        "analyze", help="summarize a capture and optionally write its tables",
        description="Read a pcap or pcapng capture, print a summary of every WebSocket "
                    "connection in it and, with -o, write the connections, frames, "
                    "messages and anomalies tables.")
    analyze.add_argument("capture", help="pcap or pcapng file (may be gzip-compressed)")
    analyze.add_argument("-o", "--output", metavar="DIR",
                         help="write the four tables into DIR")
    analyze.add_argument("--format", choices=("parquet", "csv", "jsonl"), default="parquet",
                         help="table format with -o (default: parquet)")
    analyze.add_argument("--max-rows", type=int, default=50, metavar="N",
                         help="connections shown in the summary (default: 50)")
    analyze.add_argument("-q", "--quiet", action="store_true",
                         help="print no summary (with -o: only write the tables)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "analyze":
            return _analyze(args)
    except WspcapError as exc:
        print(f"wspcap: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wspcap: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except MemoryError:
        print("wspcap: error: out of memory", file=sys.stderr)
        return 1
    parser.error(f"unknown command {args.command}")
    return 2


def _analyze(args: argparse.Namespace) -> int:
    from wspcap.capture import read

    path = args.capture
    progress = None
    bar = None
    try:
        size = os.path.getsize(path)
    except OSError:
        size = 0
    if size >= PROGRESS_MIN_BYTES and sys.stderr.isatty() and not args.quiet:
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                   TimeRemainingColumn)
        bar = Progress(TextColumn("reading"), BarColumn(), DownloadColumn(),
                       TimeRemainingColumn(), transient=True)
        task = bar.add_task("read", total=size)
        bar.start()

        def progress(done: int) -> None:
            bar.update(task, completed=done)  # type: ignore[union-attr]
    try:
        capture = read(path, progress=progress)
    finally:
        if bar is not None:
            bar.stop()
    if capture.info.truncated:
        print(f"wspcap: warning: {path}: {capture.info.truncated}; "
              "everything before it was read", file=sys.stderr)
    if args.output:
        from wspcap.export import write_tables
        written = write_tables(capture, args.output, args.format)
        if not args.quiet:
            print(f"wrote {', '.join(written)}", file=sys.stderr)
    if not args.quiet:
        from wspcap.summary import print_summary
        print_summary(capture, max_rows=args.max_rows)
    return 0
