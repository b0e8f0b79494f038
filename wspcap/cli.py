"""The ``wspcap`` command line: thin wrappers over the library.

Every error a user can cause (missing file, not a capture, bad option) ends
with one line on stderr and a non-zero exit status, never a traceback:

- 0: done (a truncated capture is a warning, not a failure);
- 1: an unexpected internal error (a bug: please report it);
- 2: bad usage or an unreadable input;
- 3: ``analyze --fail-on SEVERITY`` found an anomaly at or above SEVERITY;
- 130: interrupted.
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from wspcap.constants import __version__
from wspcap.errors import ConfigError, WspcapError

if TYPE_CHECKING:
    from rich.console import Console

    from wspcap.api.live import Event
    from wspcap.api.many import FileResult
    from wspcap.tables.capture import CaptureInfo

__all__ = ["main", "run"]

#: A command shows its progress bar once it has worked this long (seconds),
#: when stderr is a terminal and -q is not given: quick runs stay silent.
PROGRESS_AFTER = 1.0


def _stderr_console() -> Console:
    """Where progress bars go (tests give a console of their own): stderr, a
    terminal only when it is one (rich would also take FORCE_COLOR for one)."""
    from rich.console import Console

    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):  # no stderr, or a closed one
        tty = False
    return Console(stderr=True, force_terminal=tty)


class _Progress:
    """The progress bar of a command that works on a file: the bytes of the
    file read, then the steps after it (plots drawn, ...), on one line of
    stderr that goes away at the end.

    Nothing is shown when stderr is not a terminal or ``quiet`` is set, nor
    before the command has worked PROGRESS_AFTER seconds. The callbacks it
    hands out are what the readers call once per block of the file.
    """

    def __init__(self, quiet: bool) -> None:
        self.console = None if quiet else _stderr_console()
        self.enabled = self.console is not None and self.console.is_terminal
        self._start_at = time.monotonic() + PROGRESS_AFTER
        self._bar: Any = None
        self._task: Any = None
        self._what = ""
        self._total = 0
        self._unit = ""

    def reading(self, path: str) -> Callable[[int], None] | None:
        """A callback for the bytes of ``path`` read (None when not shown)."""
        if not self.enabled:
            return None
        try:
            size = os.path.getsize(path)
        except OSError:
            size = 0
        self._stage("reading", size, "MB")
        return self._update

    def steps(self, what: str) -> Callable[[int, int], None] | None:
        """A callback for (steps done, steps) of the next stage, e.g. "drawing"."""
        if not self.enabled:
            return None

        def update(done: int, total: int) -> None:
            if self._what != what or self._total != total:
                self._stage(what, total, "")
            self._update(done)
        return update

    def _stage(self, what: str, total: int, unit: str) -> None:
        self._what, self._total, self._unit = what, total, unit
        if self._bar is not None:
            self._bar.reset(self._task, total=total or None, description=what,
                            amount=self._amount(0))

    def _amount(self, done: int) -> str:
        if self._unit == "MB":
            return f"{done / 1e6:.1f}/{self._total / 1e6:.1f} MB"
        return f"{done}/{self._total}"

    def _update(self, done: int) -> None:
        if self._bar is None:
            if time.monotonic() < self._start_at:
                return
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[amount]}"), TimeRemainingColumn(),
                                 console=self.console, transient=True)
            self._task = self._bar.add_task(self._what, total=self._total or None,
                                            amount=self._amount(0))
            self._bar.start()
        self._bar.update(self._task, completed=done, amount=self._amount(done))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


# -- where output goes, what input comes: checked before any work starts ----------------

def check_output(path: str, option: str, folder: bool) -> None:
    """Make sure ``path`` can be written, before any work starts.

    Missing parent folders are created (``mkdir -p``), and so is ``path``
    itself when it is to be a folder. An existing file given as a file output
    is replaced (as ``tcpdump -w`` does); an existing file where a folder is
    wanted, or a folder where a file is wanted, is refused. Writing is tried
    for real (a temporary file in the folder; an existing file opened for
    update, not truncated), so a read-only file system or a ``/proc`` path
    is caught even for root.

    Args:
        path: the folder (``folder=True``) or file to write.
        option: the option that named it, for the message (``-o``, ``-w``).
        folder: whether ``path`` is a folder to write files into.

    Raises:
        ConfigError: one line saying what is wrong.
    """
    import tempfile

    def refuse(reason: str) -> ConfigError:
        return ConfigError(option, f"{path}: {reason}")

    if not path:
        raise ConfigError(option, "an empty path")
    if folder:
        if os.path.exists(path) and not os.path.isdir(path):
            raise refuse("is a file, not a folder (give a folder name for the output)")
        target = path
    else:
        if os.path.isdir(path):
            raise refuse("is a folder, not a file (give a file name in it)")
        target = os.path.dirname(path) or os.curdir
    try:
        os.makedirs(target, exist_ok=True)
    except FileExistsError:
        raise refuse(f"cannot create the folder {target}: a file of that name is in "
                     "the way") from None
    except NotADirectoryError:
        raise refuse(f"cannot create the folder {target}: a file is in the way "
                     "(a part of the path is a file)") from None
    except OSError as exc:
        raise refuse(f"cannot create the folder {target}: {exc.strerror or exc}") from None
    try:
        if not folder and os.path.exists(path):
            with open(path, "r+b"):
                pass
        else:
            with tempfile.TemporaryFile(dir=target, prefix=".wspcap-"):
                pass
    except OSError as exc:
        raise refuse(f"cannot write in {target}: {exc.strerror or exc}") from None


def _check_input(path: str) -> None:
    """Raise the one-line CaptureFormatError of an input that cannot be read."""
    from wspcap.sources.files import open_capture

    open_capture(path).close()


def _check_inputs(inputs: Sequence[str]) -> list[str]:
    """The capture files named by ``inputs`` (files, folders, patterns), each
    opened once to check it, before any work starts.

    Raises:
        _BadInputs: one line per input that is missing, unreadable or not a
            capture (every input is checked, not only up to the first).
    """
    from wspcap.api.many import expand_inputs

    files: list[str] = []
    problems: list[str] = []
    for item in inputs:
        try:
            found = expand_inputs([item])
        except WspcapError as exc:
            problems.append(str(exc))
            continue
        for path in found:
            if path in files:
                continue
            try:
                _check_input(path)
            except WspcapError as exc:
                problems.append(str(exc))
                continue
            files.append(path)
    if problems:
        raise _BadInputs(problems)
    return files


class _BadInputs(WspcapError):
    """Several inputs that cannot be read: one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(f"wspcap: error: {p}" for p in self.problems)


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
    analyze.add_argument("capture", nargs="+",
                         help="pcap or pcapng file (may be gzip-compressed); several files, "
                              "directories or glob patterns are read in parallel with Dask")
    analyze.add_argument("-o", "--output", metavar="DIR",
                         help="write the four tables into DIR")
    analyze.add_argument("--format", choices=("parquet", "csv", "jsonl"), default="parquet",
                         help="table format with -o (default: parquet)")
    analyze.add_argument("--max-rows", type=int, default=50, metavar="N",
                         help="connections shown in the summary (default: 50)")
    analyze.add_argument("-q", "--quiet", action="store_true",
                         help="print no summary (with -o: only write the tables)")
    _add_keylog_option(analyze)
    _add_decoder_options(analyze)
    _add_rule_options(analyze)
    scale = analyze.add_argument_group(
        "several captures (Dask)", "With several inputs, each table is written as a dataset "
        "DIR/<table>/part-NNNNN.<format> with a 'capture' column and conn_id unique across "
        "captures. Needs the 'dask' extra: pip install 'wspcap[dask]'.")
    scale.add_argument("--scheduler", metavar="ADDR",
                       help="a running dask.distributed scheduler, e.g. tcp://HOST:8786, or "
                            "'sync' to read in this process (default: chosen by work size: "
                            "this process, or a local cluster of worker processes where "
                            "it pays: from about 270 MiB of input on 4 cores, 170 MiB on "
                            "8, never on 2)")
    scale.add_argument("--workers", type=_positive_int, metavar="N",
                       help="worker processes of a local cluster (default: one per core); "
                            "a lone capture is shared among them by flow; 1 reads in this "
                            "process")
    scale.add_argument("--split-large", type=_size, metavar="BYTES",
                       help="share captures of at least BYTES (e.g. 500M, 2G) among the "
                            "workers by flow")
    _add_view_parsers(sub)
    _add_rules_parser(sub)
    _add_decoders_parser(sub)
    return parser


def run() -> None:
    """The ``wspcap`` program: :func:`main`, then exit with its status.

    Exits without tearing the interpreter down: freeing the modules of
    pandas, pyarrow and NumPy object by object takes about 0.15 s, for
    nothing, at the end of every command. What an exit must still do is
    done first: flush the standard streams and run the exit handlers (every
    file wspcap writes is closed before :func:`main` returns).

    NumPy's OpenBLAS is told to start no thread of its own (unless the
    environment says otherwise): wspcap does no linear algebra, and the
    thread OpenBLAS starts on import spins for a while, 0.1-0.18 s of CPU
    per command on the benchmarks, taken from the parsing and writing
    threads on a small machine (and from the other processes of
    ``--workers``, which inherit the setting).
    """
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe: nothing more can be said
        pass
    atexit._run_exitfuncs()
    os._exit(code)


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
        if args.command == "live":
            return _live(args)
        if args.command == "plot":
            return _plot(args)
        if args.command == "report":
            return _report(args)
        if args.command == "rules":
            return _rules(args)
        if args.command == "decoders":
            return _decoders(args)
    except _BadInputs as exc:
        print(exc, file=sys.stderr)
        return 2
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
    from wspcap.api.reading import analyze_to, read
    from wspcap.tables.capture import Capture
    from wspcap.tables.stream import Written

    if _many_inputs(args):
        return _analyze_many(args)
    path = args.capture[0]
    if args.output:
        _check_input(path)
        check_output(args.output, "-o", folder=True)
    bar = _Progress(args.quiet)
    progress = bar.reading(path)
    thresholds = _thresholds(args)
    capture: Capture | Written
    try:
        if args.output:  # written while read: memory bounded whatever the size
            capture = analyze_to(path, args.output, args.format, progress=progress,
                                 thresholds=thresholds, keylog=args.keylog or None,
                                 options=_decoding(args))
        else:
            capture = read(path, progress=progress, thresholds=thresholds,
                           keylog=args.keylog or None, options=_decoding(args))
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


# -- several captures (Dask) -------------------------------------------------------------

def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _size(text: str) -> int:
    """Bytes, with an optional K, M, G or T suffix (powers of 1024)."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    number, unit = text.rstrip("BbIi"), ""
    if number[-1:].upper() in units:
        number, unit = number[:-1], number[-1:].upper()
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 500M") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive size")
    return int(value)


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
    thresholds = _thresholds(args)
    options = _decoding(args)
    if thresholds is not None or args.keylog:
        from dataclasses import replace

        from wspcap.engine import Options
        from wspcap.sources.keys import read_key_logs
        from wspcap.tls import KeyLog
        options = replace(options or Options(), thresholds=thresholds,
                          keylog=KeyLog(read_key_logs(args.keylog)) if args.keylog else None)

    files = _check_inputs(args.capture)
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


# -- live, plot, report -----------------------------------------------------------------

def _add_view_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    live = sub.add_parser(
        "live", help="watch WebSocket traffic on an interface as it happens",
        description="Capture from a network interface (needs root or CAP_NET_RAW), show "
                    "connections, message rates and the latest messages and anomalies, or "
                    "stream them as JSON lines. Ctrl-C or SIGTERM stops cleanly with a "
                    "summary. Records are kept in memory for the final summary and tables.")
    live.add_argument("-i", "--interface", metavar="IFACE",
                      help="interface to capture on, 'any' for all (default: the default "
                           "route's)")
    live.add_argument("-f", "--filter", metavar="BPF",
                      help="BPF capture filter, e.g. 'tcp port 8765'")
    live.add_argument("-c", "--count", type=int, metavar="N", help="stop after N packets")
    live.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    live.add_argument("-w", "--write", metavar="FILE.pcap",
                      help="also write the packets to a pcap file (analyze reads it back)")
    live.add_argument("-o", "--output", metavar="DIR",
                      help="write the four tables into DIR while capturing (memory stays flat)")
    live.add_argument("--format", choices=("parquet", "csv", "jsonl"), default="parquet",
                      help="table format with -o (default: parquet)")
    live.add_argument("--jsonl", metavar="PATH|-",
                      help="write one JSON object per connection event, message and anomaly "
                           "('-' for stdout: no terminal view)")
    live.add_argument("-q", "--quiet", action="store_true",
                      help="no terminal view and no final summary")
    _add_keylog_option(live, follow=True)
    _add_decoder_options(live)

    plot = sub.add_parser("plot", help="draw a capture's plots as PNG files",
                          description="Read a capture and write its plots (connection "
                                      "timeline, sizes, throughput, opcodes, ping RTT, "
                                      "anomalies, a sequence diagram for each of the "
                                      "first 20 connections or those --conn names) as PNG "
                                      "files into DIR.")
    plot.add_argument("capture", help="pcap or pcapng file")
    plot.add_argument("-o", "--output", metavar="DIR", required=True, help="folder for the PNGs")
    plot.add_argument("--dpi", type=int, default=100, help="resolution (default: 100)")
    _add_conn_options(plot, "a sequence diagram", 20)
    _add_keylog_option(plot)
    _add_decoder_options(plot)

    report = sub.add_parser("report", help="write a self-contained HTML report of a capture",
                            description="Read a capture and write one HTML page (plots "
                                        "embedded, no external resources): summary, "
                                        "connections, messages, anomalies explained. It "
                                        "shows summaries and samples (the first connections "
                                        "and anomaly rows, the first and last messages of "
                                        "each connection shown), says how many rows it left "
                                        "out, and stays small on any capture; 'wspcap "
                                        "analyze -o' writes every row.")
    report.add_argument("capture", help="pcap or pcapng file")
    report.add_argument("-o", "--output", metavar="FILE.html", required=True,
                        help="the HTML file to write")
    report.add_argument("--max-messages", type=int, default=200, metavar="N",
                        help="messages listed per connection: the first N/2 and the last "
                             "N/2 (default: 200)")
    _add_conn_options(report, "a section (handshake, sequence diagram, messages)", 10)
    _add_keylog_option(report)
    _add_decoder_options(report)


def _add_keylog_option(parser: argparse.ArgumentParser, follow: bool = False) -> None:
    more = (" It is followed as it grows (a browser appends a line per connection), and "
            "-w then writes pcapng carrying the keys used." if follow else
            " Keys embedded in a pcapng (editcap --inject-secrets) need no option.")
    parser.add_argument("--keylog", action="append", default=[], metavar="FILE",
                        help="TLS key log (NSS format, as SSLKEYLOGFILE writes it) to "
                             "decrypt wss:// with; repeatable." + more)


def _add_conn_options(parser: argparse.ArgumentParser, what: str, default: int) -> None:
    parser.add_argument("--conn", type=_conn_ids, metavar="ID,ID,...",
                        help=f"the connections that get {what}, by conn_id (as 'wspcap "
                             "analyze' lists them), e.g. --conn 3,7")
    parser.add_argument("--max-conns", type=_count, default=default, metavar="N",
                        help=f"without --conn: the first N connections get {what} "
                             f"(default: {default}); the others are named on stderr and "
                             "in the output")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bar and no messages but warnings and errors")


def _conn_ids(text: str) -> list[int]:
    """``3,7,12``: connection ids."""
    try:
        ids = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of connection ids such "
                                         "as 3,7") from None
    if not ids or min(ids) < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of connection ids such "
                                         "as 3,7")
    return ids


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (0 or more)")
    return value


def _live(args: argparse.Namespace) -> int:
    import signal

    from rich.console import Console

    from wspcap.api.live import Sniffer
    from wspcap.views.liveview import JsonlSink, LiveView

    if args.write:
        check_output(args.write, "-w", folder=False)
    if args.output:
        check_output(args.output, "-o", folder=True)
    if args.jsonl and args.jsonl != "-":
        check_output(args.jsonl, "--jsonl", folder=False)
    sniffer = Sniffer(args.interface, args.filter, count=args.count, timeout=args.duration,
                      write=args.write, output=args.output, fmt=args.format,
                      keylog=args.keylog or None, options=_decoding(args))
    sniffer.open()  # no right, unknown interface, bad filter: one line, exit 2

    def stop(signum: int, frame: object) -> None:
        if sniffer.stopping and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        sniffer.stop()

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    to_stdout = args.jsonl == "-"
    from wspcap.views.summary import console_width

    out = Console(stderr=to_stdout, width=console_width())
    sinks: list[Callable[[Event], None]] = []
    jsonl = JsonlSink(args.jsonl) if args.jsonl else None
    if jsonl is not None:
        sinks.append(jsonl)
    view = None
    if not args.quiet and not to_stdout and sys.stdout.isatty():
        view = LiveView(sniffer, Console())
        sinks.append(view)
    elif not args.quiet:
        print(f"wspcap: capturing on {sniffer.iface}"
              f"{' (' + args.filter + ')' if args.filter else ''}; Ctrl-C to stop",
              file=sys.stderr)
    try:
        if view is not None:
            view.__enter__()
        try:
            for event in sniffer:
                for sink in sinks:
                    sink(event)
        finally:
            if view is not None:
                view.__exit__(None, None, None)
            if jsonl is not None:
                jsonl.close()
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    # With -o the tables were written while capturing (memory stays bounded
    # however long it runs).
    capture = sniffer.capture() if sniffer.written is None else sniffer.written
    if sniffer.written is not None and not args.quiet:
        print(f"wrote {', '.join(sniffer.written.paths)}", file=sys.stderr)
    if not args.quiet:
        from wspcap.views.summary import print_summary
        out.print(stop_line(sniffer) + (f"; wrote {args.write}" if args.write else ""),
                  highlight=False)
        print_summary(capture, console=out)
    return 0


def stop_line(sniffer: Any) -> str:
    """What ``wspcap live`` says when it stops: why, how long, and the
    packets captured next to the kernel's counts, which take every loopback
    packet twice (leaving and arriving) where the capture keeps one copy."""
    from wspcap.views.summary import plural

    line = (f"stopped ({sniffer.stopped_by}) after {sniffer.elapsed:.1f} s: "
            f"{plural(sniffer.packets, 'packet')} captured")
    if sniffer.kernel_dropped is None:
        return line + "; kernel drop counts unavailable"
    line += f"; kernel: {sniffer.kernel_received} passed the filter"
    if sniffer.copies_skipped:
        line += (f" ({sniffer.copies_skipped} of them the outgoing copies of loopback "
                 "packets: the kernel counts each twice, leaving and arriving)")
    return line + f", {sniffer.kernel_dropped} dropped"


def _plot(args: argparse.Namespace) -> int:
    from wspcap.views.plot import LEFT_OUT_FILE, left_out_note, write_plots
    from wspcap.views.summary import plural

    _check_input(args.capture)
    check_output(args.output, "-o", folder=True)
    bar = _Progress(args.quiet)
    try:
        capture, chosen = _read_for_view(args, bar)
        written = write_plots(capture, args.output, dpi=args.dpi, conns=chosen,
                              progress=bar.steps("drawing"))
    finally:
        bar.close()
    note = left_out_note(capture, chosen)
    if note is not None:  # said even with -q: nothing is left out silently
        print(f"wspcap: {note} (listed in {LEFT_OUT_FILE})", file=sys.stderr)
    if not args.quiet:
        pngs = [p for p in written if p.endswith(".png")]
        print(f"wrote {plural(len(pngs), 'plot')} into {args.output}", file=sys.stderr)
    return 0


def _warn_stopped(path: str, info: CaptureInfo) -> None:
    """The one warning line for a capture read only up to a cut or damage."""
    if info.truncated:
        print(f"wspcap: warning: {path}: {info.truncated}; everything before it was read",
              file=sys.stderr)


def _report(args: argparse.Namespace) -> int:
    from wspcap.views.plot import left_out_note
    from wspcap.views.report import write_report

    _check_input(args.capture)
    check_output(args.output, "-o", folder=False)
    bar = _Progress(args.quiet)
    try:
        capture, chosen = _read_for_view(args, bar)
        write_report(capture, args.output, max_messages=args.max_messages, conns=chosen,
                     progress=bar.steps("drawing"))
    finally:
        bar.close()
    note = left_out_note(capture, chosen, "sections")
    if note is not None:  # said even with -q: nothing is left out silently
        print(f"wspcap: {note} (the report says so too)", file=sys.stderr)
    if not args.quiet:
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _read_for_view(args: argparse.Namespace, bar: _Progress) -> tuple[Any, list[int]]:
    """The capture that plot and report draw, and the connections each
    draws one by one (ConfigError for a --conn not in the capture)."""
    from wspcap.api.reading import read
    from wspcap.views.plot import choose_connections

    capture = read(args.capture, progress=bar.reading(args.capture),
                   keylog=args.keylog or None, options=_decoding(args))
    _warn_stopped(args.capture, capture.info)
    chosen, _ = choose_connections(capture, args.conn, args.max_conns, "--conn")
    return capture, chosen


# -- anomaly rules: thresholds, --fail-on, the catalog -----------------------------------

def _add_rule_options(parser: argparse.ArgumentParser) -> None:
    rules = parser.add_argument_group(
        "anomaly rules", "See 'wspcap rules' for the codes, severities and thresholds.")
    rules.add_argument("--fail-on", choices=("warning", "error"), metavar="SEVERITY",
                       help="exit with status 3 when an anomaly of this severity or above "
                            "(warning or error) is found, for CI pipelines and scripts")
    rules.add_argument("--thresholds", metavar="FILE.toml",
                       help="thresholds of the resource rules, as name = value lines (at the "
                            "top level or under [thresholds])")
    rules.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       dest="settings",
                       help="set one threshold, e.g. --set frame_flood_rate=500 (repeatable; "
                            "applied after --thresholds)")


def _thresholds(args: argparse.Namespace) -> Any:
    """The thresholds the options ask for, or None for the defaults (ConfigError if bad)."""
    from wspcap.rules.thresholds import Thresholds

    path = getattr(args, "thresholds", None)
    settings = getattr(args, "settings", None) or []
    if path is None and not settings:
        return None
    thresholds = Thresholds()
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError("--thresholds", f"cannot read {path}: {exc}") from None
        thresholds = Thresholds.from_toml(text)
    return thresholds.with_settings(settings)


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


def _binary_size(value: float) -> str:
    """``16 MiB`` for 16777216: a byte count as people read it."""
    size, unit = float(value), "bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024:
            break
    return f"{size:g} {unit}"


def _add_rules_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    rules = sub.add_parser(
        "rules", help="print the anomaly catalog",
        description="Print every anomaly code wspcap reports: severity, reference, what it "
                    "means, and the equivalent in Zeek, Wireshark or Suricata ('Zeek: not "
                    "checked' marks what Zeek does not look for); then the thresholds.")
    rules.add_argument("code", nargs="*", help="only these codes (or code prefixes, e.g. sec_)")
    rules.add_argument("--format", choices=("table", "json"), default="table",
                       help="a table (default) or JSON")
    rules.add_argument("--thresholds", metavar="FILE.toml",
                       help="show these thresholds rather than the defaults")
    rules.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       dest="settings", help="show the thresholds with this one changed")


def _rules(args: argparse.Namespace) -> int:
    import json

    from wspcap.rules.registry import RULES
    from wspcap.rules.thresholds import Thresholds

    selected = [r for r in RULES.values()
                if not args.code or any(r.code == c or r.code.startswith(c) for c in args.code)]
    if not selected:
        raise ConfigError("code", f"no anomaly code matches {' '.join(args.code)}")
    thresholds = _thresholds(args) or Thresholds()
    if args.format == "json":
        json.dump({"rules": [r.as_dict() for r in selected],
                   "thresholds": thresholds.as_dict(), "threshold_units": Thresholds.units()},
                  sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    styles = {"info": "cyan", "warning": "yellow", "error": "bold red"}
    from wspcap.views.summary import console_width, plural

    console = Console(width=console_width())
    table = Table(title=f"Anomaly catalog ({plural(len(selected), 'code')})", title_justify="left",
                  show_lines=True)
    table.add_column("code", no_wrap=True)
    table.add_column("severity")
    table.add_column("what was seen / what it means", ratio=3)
    table.add_column("reference", ratio=1)
    table.add_column("peers", ratio=1)
    for r in selected:
        style = styles[r.severity]
        text = f"[bold]{escape(r.summary)}[/bold]"
        if r.meaning:
            text += f"\n{escape(r.meaning)}"
        if r.detail:
            text += f"\n[dim]e.g. {escape(r.detail)}[/dim]"
        table.add_row(r.code, f"[{style}]{r.severity}[/{style}]", text, escape(r.reference),
                      escape(r.peers))
    console.print(table)
    limits = Table(title="Thresholds", title_justify="left")
    limits.add_column("name")
    limits.add_column("value", justify="right")
    limits.add_column("unit")
    units = Thresholds.units()
    for name, value in thresholds.as_dict().items():
        limits.add_row(name, f"{value:g}" if isinstance(value, float) else str(value),
                       units[name] + (f" ({_binary_size(value)})" if units[name] == "bytes"
                                      and value >= 1024 else ""))
    console.print(limits)
    return 0


# -- application decoders (issue 18) ------------------------------------------------------

def _add_decoder_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "application decoders", "What the messages say (the app table): each connection's "
        "protocol is chosen by subprotocol, URI or the first messages; 'wspcap decoders' "
        "lists them.")
    choice = group.add_mutually_exclusive_group()
    choice.add_argument("--decoder", metavar="NAME",
                        help="decode every connection with this decoder (e.g. jsonrpc)")
    choice.add_argument("--no-decoders", action="store_true",
                        help="decode no application protocol (no app rows)")


def _decoding(args: argparse.Namespace) -> Any:
    """The Options of ``--decoder``/``--no-decoders``, or None for the defaults
    (ConfigError for a decoder that is not installed)."""
    decoder, off = getattr(args, "decoder", None), getattr(args, "no_decoders", False)
    if decoder is None and not off:
        return None
    from wspcap.engine import Options
    from wspcap.tables.app import check_decoder
    return Options(decoder=check_decoder(decoder), decoders=not off)


def _add_decoders_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    decoders = sub.add_parser(
        "decoders", help="list the application-protocol decoders installed",
        description="List every application decoder: its name (for --decoder), the "
                    "subprotocols it owns, how it recognizes a conversation, and its module. "
                    "Third-party decoders come from the 'wspcap.decoders' entry-point group.")
    decoders.add_argument("--format", choices=("table", "json"), default="table",
                          help="a table (default) or JSON")


def _decoders(args: argparse.Namespace) -> int:
    import json

    from wspcap.app.registry import BROKEN, installed

    rows = installed()
    if args.format == "json":
        json.dump({"decoders": rows, "broken": BROKEN}, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from wspcap.views.summary import console_width

    table = Table(title=f"Application decoders ({len(rows)})", title_justify="left")
    for column in ("name", "subprotocols", "recognizes by", "module"):
        table.add_column(column, no_wrap=column == "name")
    for row in rows:
        table.add_row(row["name"], escape(row["subprotocols"]), escape(row["recognition"]),
                      escape(row["module"]))
    console = Console(width=console_width())
    console.print(table)
    for entry, why in BROKEN.items():
        console.print(f"[yellow]not loaded[/yellow]: {escape(entry)} ({escape(why)})")
    return 0
