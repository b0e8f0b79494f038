"""The readable summary ``wspcap analyze`` prints (rich tables)."""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from wspcap.rules.registry import RULES

if TYPE_CHECKING:
    import pandas as pd

    from wspcap.tables.capture import Capture
    from wspcap.tables.stream import Written

__all__ = ["console_width", "plural", "print_summary"]

_SEVERITY_STYLE = {"info": "cyan", "warning": "yellow", "error": "bold red"}
#: Width of the output when it goes to a file or a pipe and COLUMNS is not set.
PIPE_WIDTH = 160
#: Console width from which anomalies are shown in columns (else stacked).
WIDE_ANOMALIES = 120
#: What the close column says when a side sent no close frame, and when its
#: close frame had no code (an empty payload, or a malformed 1-byte one).
NO_CLOSE = "none"
NO_CODE = "no code"
#: The legend under the connections table.
LEGEND = (f"c/s: client to server / server to client; close: the close code sent, "
          f"'{NO_CODE}' for a close frame without a code, '{NO_CLOSE}' for no close frame")


#: Control characters (C0, DEL, C1) that a capture could use to drive the terminal.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _na(value: object) -> str:
    """A cell's text: empty for missing values, control characters escaped.

    Capture strings are attacker-controlled: an escape sequence in a URI must
    be shown, not obeyed by the analyst's terminal.
    """
    if value is None:
        return ""
    try:
        import pandas as pd
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 packet``, ``2 packets``: a count and its noun (``words`` if not word + s)."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


def console_width() -> int | None:
    """The width for a rich Console on stdout: the terminal's (None lets rich
    find it), ``COLUMNS`` when set, else :data:`PIPE_WIDTH` for files and pipes."""
    if sys.stdout.isatty() or os.environ.get("COLUMNS", "").strip().isdigit():
        return None
    return PIPE_WIDTH


def _close_text(code: object, reason: object) -> str:
    """A side's close: its code, ``no code`` (a close frame without one), or
    ``none`` (no close frame); see the connections table's close columns."""
    if _na(code):
        return _na(code)
    return NO_CODE if isinstance(reason, str) else NO_CLOSE


def print_summary(capture: Capture | Written, max_rows: int = 50, console: Console | None = None) -> None:
    """Print the capture's connections and anomalies.

    The layout follows the console's width: one line per connection where
    every column fits, else the endpoints and the handshake stacked in two
    lines, so that nothing is cut or folded mid-word at 80 columns.

    Args:
        capture: what to summarize.
        max_rows: connections shown; the rest are counted.
        console: where to print (stdout by default).
    """
    console = console or Console(width=console_width())
    conns = capture.connections
    info = capture.info
    established = int(conns.established.sum()) if len(conns) else 0
    console.print(f"[bold]{escape(_na(info.source))}[/bold]  {info.format}", highlight=False)
    console.print(
        f"{plural(info.packets, 'packet')}, {plural(info.tcp_connections, 'TCP connection')}, "
        f"[bold]{len(conns)} WebSocket[/bold] ({established} established), "
        f"{plural(int(conns.frames.sum()), 'frame')}, "
        f"{plural(int(conns.messages.sum()), 'message')}, "
        f"{plural(len(capture.anomalies), 'anomaly', 'anomalies')}")
    if len(conns):
        shown = conns.head(max_rows)
        table = _connections_wide(shown)
        wide = Measurement.get(console, console.options.update_width(1 << 16), table)
        if wide.maximum > console.width:
            table = _connections_narrow(shown)
        console.print(table)
        if len(conns) > max_rows:
            console.print(f"... and {plural(len(conns) - max_rows, 'more connection')}")
        console.print(f"[dim]{LEGEND}[/dim]", highlight=False)
    anomalies = capture.anomalies
    if len(anomalies):
        console.print(_anomalies(anomalies, wide=console.width >= WIDE_ANOMALIES))
    else:
        console.print("no anomalies")
    hidden = int((conns.tls & ~conns.decrypted).sum()) if "tls" in conns else 0
    if hidden:
        console.print(
            f"{plural(hidden, 'TLS connection')} not decrypted: give the key log that "
            "the client wrote (SSLKEYLOGFILE) with --keylog FILE; see 'Reading wss' in "
            "the README", highlight=False)


def _cells(c: Any) -> dict[str, str]:
    """One connection's cells, by name."""
    accept_marks: dict[object, str] = {True: "ok", False: "[red]WRONG[/red]"}
    accept = accept_marks.get(
        c.accept_valid if c.accept_valid is not None and _na(c.accept_valid) else None, "")
    uri = escape(_na(c.uri)) or ("(midstream)" if c.midstream else "")
    if getattr(c, "tls", False):
        sni = escape(_na(c.sni))
        uri = (f"wss {uri}" if c.decrypted else
               f"(TLS, not decrypted{': ' + sni if sni else ''})")
    return {
        "id": str(c.conn_id), "client": f"{c.client_ip}:{c.client_port}",
        "server": f"{c.server_ip}:{c.server_port}",
        "uri": uri,
        "status": _na(c.status), "accept": accept, "subprotocol": escape(_na(c.subprotocol)),
        "deflate": "deflate" if c.permessage_deflate else "",
        "frames": f"{c.frames_c2s}/{c.frames_s2c}", "msgs": str(c.messages),
        "bytes": f"{c.bytes_c2s}/{c.bytes_s2c}",
        "close": f"{_close_text(c.close_code_c2s, c.close_reason_c2s)}/"
                 f"{_close_text(c.close_code_s2c, c.close_reason_s2c)}",
    }


def _connections_wide(conns: pd.DataFrame) -> Table:
    table = Table(title="WebSocket connections", title_justify="left")
    for col, justify in (("id", "right"), ("client", "left"), ("server", "left"),
                         ("uri", "left"), ("status", "right"), ("accept", "left"),
                         ("subprotocol", "left"), ("deflate", "left"),
                         ("frames c/s", "right"), ("msgs", "right"),
                         ("bytes c/s", "right"), ("close c/s", "left")):
        table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for c in conns.itertuples(index=False):
        cell = _cells(c)
        table.add_row(cell["id"], cell["client"], cell["server"], cell["uri"], cell["status"],
                      cell["accept"], cell["subprotocol"], "yes" if cell["deflate"] else "",
                      cell["frames"], cell["msgs"], cell["bytes"], cell["close"])
    return table


def _connections_narrow(conns: pd.DataFrame) -> Table:
    """Two lines per connection: client over server, URI over the handshake's
    outcome, frames over bytes."""
    table = Table(title="WebSocket connections", title_justify="left", box=box.SIMPLE_HEAD,
                  show_lines=True, padding=(0, 1), collapse_padding=True)
    table.add_column("id", justify="right")
    table.add_column("client\n→ server", overflow="fold")
    table.add_column("uri\nstatus accept ...", overflow="fold", ratio=1)
    table.add_column("frames c/s\nbytes c/s", justify="right", overflow="fold")
    table.add_column("msgs", justify="right")
    table.add_column("close c/s", overflow="fold")
    for c in conns.itertuples(index=False):
        cell = _cells(c)
        outcome = " ".join(v for v in (cell["status"], cell["accept"], cell["subprotocol"],
                                       cell["deflate"]) if v)
        table.add_row(cell["id"], f"{cell['client']}\n→ {cell['server']}",
                      f"{cell['uri']}\n{outcome}", f"{cell['frames']}\n{cell['bytes']}",
                      cell["msgs"], cell["close"])
    return table


def _anomalies(anomalies: pd.DataFrame, wide: bool) -> Table:
    """Anomalies by code, most severe first: the code, how many anomalies (one
    per event, e.g. per unanswered ping) in how many connections, what the
    code means and the first one's detail; in columns when ``wide``, else
    the last two on the lines below the code."""
    title = "Anomalies by code (count: anomalies found, one per event)"
    if wide:
        table = Table(title=title, title_justify="left")
        for col in ("severity", "code", "count", "connections", "first detail", "summary"):
            table.add_column(col, overflow="fold")
    else:
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_lines=True,
                      padding=(0, 1), collapse_padding=True)
        table.add_column("severity", no_wrap=True)
        table.add_column("code, count, what it means, first detail", overflow="fold", ratio=1)
    rows = []
    for code, group in anomalies.groupby("code", observed=True, sort=False):
        rule = RULES[str(code)]
        rows.append((-("info", "warning", "error").index(rule.severity), str(code), rule,
                     group))
    for _, code, rule, group in sorted(rows, key=lambda r: (r[0], r[1])):
        style = _SEVERITY_STYLE[rule.severity]
        nconns = int(group.conn_id.nunique())
        if wide:
            table.add_row(f"[{style}]{rule.severity}[/{style}]", code, str(len(group)),
                          str(nconns), escape(_na(group.detail.iloc[0])), escape(rule.summary))
            continue
        where = f" in {plural(nconns, 'connection')}" if nconns else ""
        text = (f"[bold]{code}[/bold]  {len(group)}{where}\n{escape(rule.summary)}\n"
                f"[dim]first: {escape(_na(group.detail.iloc[0]))}[/dim]")
        table.add_row(f"[{style}]{rule.severity}[/{style}]", text)
    return table
