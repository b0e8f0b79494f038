"""``wspcap plot`` and ``wspcap report``: a capture drawn into PNG files or one
HTML page, for every connection or those ``--conn`` names."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wspcap.cli.common import ProgressBar, check_input, check_output, decoding_of

if TYPE_CHECKING:
    from wspcap.tables.capture import CaptureInfo

__all__ = ["plot", "report"]


def plot(args: argparse.Namespace) -> int:
    """``wspcap plot``: write the PNGs; return the exit status."""
    from wspcap.views.plot import LEFT_OUT_FILE, write_plots
    from wspcap.views.summary import plural

    written, note = _drawn(
        args, True, "sequence diagrams", lambda capture, chosen, progress: write_plots(
            capture, args.output, dpi=args.dpi, conns=chosen, progress=progress))
    if note is not None:  # said even with -q: nothing is left out silently
        print(f"wspcap: {note} (listed in {LEFT_OUT_FILE})", file=sys.stderr)
    if not args.quiet:
        pngs = [p for p in written if p.endswith(".png")]
        print(f"wrote {plural(len(pngs), 'plot')} into {args.output}", file=sys.stderr)
    return 0


def report(args: argparse.Namespace) -> int:
    """``wspcap report``: write the HTML page; return the exit status."""
    from wspcap.views.report import write_report

    _, note = _drawn(args, False, "sections", lambda capture, chosen, progress: write_report(
        capture, args.output, max_messages=args.max_messages, conns=chosen, progress=progress))
    if note is not None:  # said even with -q: nothing is left out silently
        print(f"wspcap: {note} (the report says so too)", file=sys.stderr)
    if not args.quiet:
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _drawn(args: argparse.Namespace, folder: bool, what: str,
           draw: Callable[[Any, list[int], Any], Any]) -> tuple[Any, str | None]:
    """What ``draw(capture, connections, progress)`` gives for the capture
    plot or report reads (its output checked first: a ``folder`` for the
    plots, one file for the report), and the note on the connections left
    without ``what``, if any."""
    from wspcap.views.plot import left_out_note

    check_input(args.capture)
    check_output(args.output, "-o", folder=folder)
    bar = ProgressBar(args.quiet)
    try:
        capture, chosen = _read_for_view(args, bar)
        drawn = draw(capture, chosen, bar.steps("drawing"))
    finally:
        bar.close()
    return drawn, left_out_note(capture, chosen, what)


def _warn_stopped(path: str, info: CaptureInfo) -> None:
    """The one warning line for a capture read only up to a cut or damage."""
    if info.truncated:
        print(f"wspcap: warning: {path}: {info.truncated}; everything before it was read",
              file=sys.stderr)


def _read_for_view(args: argparse.Namespace, bar: ProgressBar) -> tuple[Any, list[int]]:
    """The capture that plot and report draw, and the connections each
    draws one by one (ConfigError for a --conn not in the capture)."""
    from wspcap.api.reading import read
    from wspcap.views.plot import choose_connections

    capture = read(args.capture, progress=bar.reading(args.capture),
                   keylog=args.keylog or None, options=decoding_of(args))
    _warn_stopped(args.capture, capture.info)
    chosen, _ = choose_connections(capture, args.conn, args.max_conns, "--conn")
    return capture, chosen
