"""``wspcap live``: capture from an interface, show or stream what it sees,
and say why and when it stopped."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wspcap.cli.common import check_output, decoding_of

if TYPE_CHECKING:
    from wspcap.api.live import Event

__all__ = ["live", "stop_line"]


def live(args: argparse.Namespace) -> int:
    """``wspcap live``: capture until stopped; return the exit status."""
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
                      keylog=args.keylog or None, options=decoding_of(args))
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
