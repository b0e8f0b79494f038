"""``wspcap analyze``: one capture read, or written while read with ``-o``,
then summarized; several captures read in parallel (Dask); the exit status
of ``--fail-on``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from wspcap.cli.common import (
    ProgressBar,
    check_input,
    check_inputs,
    check_output,
    decoding_of,
    thresholds_of,
)
from wspcap.errors import ConfigError

if TYPE_CHECKING:
    from wspcap.api.many import FileResult

__all__ = ["analyze"]


def analyze(args: argparse.Namespace) -> int:
    """``wspcap analyze``: return the exit status (3 for ``--fail-on``)."""
    from wspcap.api.reading import analyze_to, read
    from wspcap.tables.capture import Capture
    from wspcap.tables.stream import Written

    if _many_inputs(args):
        return _analyze_many(args)
    path = args.capture[0]
    if args.output:
        check_input(path)
        check_output(args.output, "-o", folder=True)
    bar = ProgressBar(args.quiet)
    progress = bar.reading(path)
    thresholds = thresholds_of(args)
    capture: Capture | Written
    try:
        if args.output:  # written while read: memory bounded whatever the size
            capture = analyze_to(path, args.output, args.format, progress=progress,
                                 thresholds=thresholds, keylog=args.keylog or None,
                                 options=decoding_of(args))
        else:
            capture = read(path, progress=progress, thresholds=thresholds,
                           keylog=args.keylog or None, options=decoding_of(args))
    finally:
        bar.close()
    if capture.info.truncated:
        print(f"wspcap: warning: {path}: {capture.info.truncated}; "
              "everything before it was read", file=sys.stderr)
    if isinstance(capture, Written) and not args.quiet:
        print(f"wrote {', '.join(capture.paths)}", file=sys.stderr)
    if not args.quiet:
        from wspcap.views.summary import print_summary
        print_summary(capture, max_rows=args.max_rows)
    return _fail_status(args, capture)


def _many_inputs(args: argparse.Namespace) -> bool:
    """More than one plain file, or a Dask option: the parallel path."""
    if len(args.capture) > 1 or args.scheduler or args.workers or args.split_large:
        return True
    path = args.capture[0]
    return os.path.isdir(path) or (not os.path.exists(path) and any(c in path for c in "*?["))


def _analyze_many(args: argparse.Namespace) -> int:
    from wspcap.api.many import analyze_many
    from wspcap.tables.export import TABLES

    if args.fail_on:
        raise ConfigError("--fail-on", "takes a single capture")
    thresholds = thresholds_of(args)
    options = decoding_of(args)
    if thresholds is not None or args.keylog:
        from dataclasses import replace

        from wspcap.engine import Options
        from wspcap.sources.keys import read_key_logs
        from wspcap.tls import KeyLog
        options = replace(options or Options(), thresholds=thresholds,
                          keylog=KeyLog(read_key_logs(args.keylog)) if args.keylog else None)

    files = check_inputs(args.capture)
    if args.output:
        check_output(args.output, "-o", folder=True)
    progress = None
    bar = None
    if sys.stderr.isatty() and not args.quiet:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )
        bar = Progress(TextColumn("analyzing"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("captures"), TimeRemainingColumn(), transient=True)
        task = bar.add_task("captures", total=len(files))
        bar.start()

        def progress(result: FileResult, total: int) -> None:
            bar.advance(task)
    try:
        results = analyze_many(files, args.output, args.format, scheduler=args.scheduler,
                               workers=args.workers, split_large=args.split_large,
                               options=options, progress=progress)
    finally:
        if bar is not None:
            bar.stop()
    for r in results:
        if r.info.truncated:
            print(f"wspcap: warning: {r.path}: {r.info.truncated}; "
                  "everything before it was read", file=sys.stderr)
    if args.output and not args.quiet:
        written = [os.path.join(args.output, table, "") for table in TABLES]
        print(f"wrote {', '.join(written)}", file=sys.stderr)
    if not args.quiet:
        _print_many(results, args.max_rows)
    return 0


def _print_many(results: list[FileResult], max_rows: int) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from wspcap.views.summary import console_width, plural

    console = Console(width=console_width())
    shown = results[:max_rows]
    notes = any(r.info.truncated for r in shown)
    table = Table(title="Captures (conns: WebSocket connections, msgs: messages)",
                  title_justify="left",
                  box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True)
    for col in ("capture", "packets", "conns", "conn_id", "frames", "msgs", "anomalies",
                *(["note"] if notes else [])):
        table.add_column(col, justify="left" if col in ("capture", "note") else "right",
                         overflow="fold", ratio=1 if col in ("capture", "note") else None)
    for r in shown:
        ids = (f"{r.first_conn_id}-{r.first_conn_id + r.connections - 1}"
               if r.connections else "")
        table.add_row(r.path, str(r.info.packets), str(r.connections), ids, str(r.frames),
                      str(r.messages), str(r.anomalies),
                      *([r.info.truncated or ""] if notes else []))
    console.print(table)
    if len(results) > max_rows:
        console.print(f"... and {plural(len(results) - max_rows, 'more capture')}")
    console.print(
        f"[bold]{plural(len(results), 'capture')}[/bold]: "
        f"{plural(sum(r.info.packets for r in results), 'packet')}, "
        f"[bold]{plural(sum(r.connections for r in results), 'WebSocket connection')}[/bold], "
        f"{plural(sum(r.frames for r in results), 'frame')}, "
        f"{plural(sum(r.messages for r in results), 'message')}, "
        f"{plural(sum(r.anomalies for r in results), 'anomaly', 'anomalies')}")


def _fail_status(args: argparse.Namespace, capture: Any) -> int:
    """3 when ``--fail-on`` is given and an anomaly of ``capture`` reaches that
    severity, else 0."""
    level = getattr(args, "fail_on", None)
    if not level:
        return 0
    from wspcap.rules.registry import SEVERITIES
    from wspcap.views.summary import columns_of, plural, small_tables

    anomalies = small_tables(capture)[1]
    worse = set(SEVERITIES[SEVERITIES.index(level):])
    columns = columns_of(anomalies, ("severity", "code"))
    hits = [code for severity, code in zip(columns["severity"], columns["code"], strict=True)
            if severity in worse]
    if not hits:
        return 0
    codes = ", ".join(sorted(set(hits)))
    print(f"wspcap: {plural(len(hits), 'anomaly', 'anomalies')} at or above {level} ({codes})",
          file=sys.stderr)
    return 3
