"""The readable summary ``wspcap analyze`` prints (rich tables).

The header line, the connections, what the messages say (the application
layer, when a decoder recognized a connection: its protocol, its events by
kind and by channel, from the ``app`` table), then the anomalies by code.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from wspcap.rules.registry import RULES

if TYPE_CHECKING:
    import pandas as pd

    from wspcap.tables.capture import Capture
    from wspcap.tables.stream import Written

__all__ = ["APP_LEGEND", "APP_TITLE", "columns_of", "console_width", "plural", "print_summary",
           "small_tables"]

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

#: The application layer's table title, and its legend.
APP_TITLE = "What the messages say (application protocols)"
APP_LEGEND = ("conf.: 1.0 by subprotocol, 0.9 by URI, up to 0.7 by the messages; kinds, "
              "channels: the most frequent, with their counts")
#: Kinds and channels shown per connection, and the characters a channel keeps.
TOP_APP = 3
CHANNEL_CHARS = 32


#: Control characters (C0, DEL, C1) that a capture could use to drive the terminal.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _na(value: object) -> str:
    """A cell's text: empty for missing values (None, or a float NaN),
    control characters escaped.

    Capture strings are attacker-controlled: an escape sequence in a URI must
    be shown, not obeyed by the analyst's terminal.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def columns_of(table: Any, names: Sequence[str]) -> dict[str, list[Any]]:
    """Columns of a table as Python lists, missing values as None: of an
    Arrow table (``analyze -o`` keeps its small tables so, and never imports
    pandas) or of a DataFrame (``read()``). Names the table lacks are left out."""
    if hasattr(table, "schema") and hasattr(table, "column"):  # an Arrow table
        return {n: table.column(n).to_pylist() for n in names if n in table.schema.names}
    out = {}
    for n in names:
        if n in table:
            col = table[n]
            out[n] = col.astype(object).where(col.notna(), None).tolist()
    return out


def small_tables(capture: Capture | Written) -> tuple[Any, Any]:
    """A capture's connections and anomalies tables: the Arrow tables that
    ``analyze -o`` keeps (reading them needs no pandas), else the DataFrames."""
    kept = getattr(capture, "arrow", None)
    if kept:
        return kept["connections"], kept["anomalies"]
    return capture.connections, capture.anomalies


#: The connections' columns the summary reads.
_CONNECTION_COLUMNS = (
    "conn_id", "client_ip", "client_port", "server_ip", "server_port", "uri", "midstream",
    "status", "accept_valid", "subprotocol", "permessage_deflate", "frames", "frames_c2s",
    "frames_s2c", "messages", "bytes_c2s", "bytes_s2c", "close_code_c2s", "close_reason_c2s",
    "close_code_s2c", "close_reason_s2c", "established", "tls", "sni", "decrypted",
    "app_protocol", "app_confidence", "proxy", "h2_stream")


def _rows(table: Any, names: Sequence[str]) -> list[SimpleNamespace]:
    """A table's rows, each with the columns ``names`` (None where missing) as attributes."""
    columns = columns_of(table, names)
    n = len(next(iter(columns.values()))) if columns else 0
    return [SimpleNamespace(**{name: values[i] for name, values in columns.items()})
            for i in range(n)]


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
    connections, anomaly_table = small_tables(capture)
    conns = _rows(connections, _CONNECTION_COLUMNS)
    anomalies = columns_of(anomaly_table, ("code", "conn_id", "detail"))
    info = capture.info
    established = sum(bool(c.established) for c in conns)
    console.print(f"[bold]{escape(_na(info.source))}[/bold]  {info.format}", highlight=False)
    console.print(
        f"{plural(info.packets, 'packet')}, {plural(info.tcp_connections, 'TCP connection')}, "
        f"[bold]{len(conns)} WebSocket[/bold] ({established} established), "
        f"{plural(sum(c.frames for c in conns), 'frame')}, "
        f"{plural(sum(c.messages for c in conns), 'message')}, "
        f"{plural(len(anomalies['code']), 'anomaly', 'anomalies')}")
    if conns:
        shown = conns[:max_rows]
        rows = [_wide_row(_cells(c)) for c in shown]
        table = _connections_wide(rows)
        if not _surely_fits(rows, console.width) and Measurement.get(
                console, console.options.update_width(1 << 16), table).maximum > console.width:
            table = _connections_narrow(shown)
        console.print(table)
        if len(conns) > max_rows:
            console.print(f"... and {plural(len(conns) - max_rows, 'more connection')}")
        console.print(f"[dim]{LEGEND}[/dim]", highlight=False)
        _print_app(console, shown, getattr(capture, "app", None))
    if anomalies["code"]:
        console.print(_anomalies(anomalies, wide=console.width >= WIDE_ANOMALIES))
    else:
        console.print("no anomalies")
    hidden = sum(bool(getattr(c, "tls", False)) and not c.decrypted for c in conns)
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
    if getattr(c, "tls", False):  # (tables from before TLS have no such column)
        sni = escape(_na(c.sni))
        uri = (f"wss {uri}" if c.decrypted else
               f"(TLS, not decrypted{': ' + sni if sni else ''})")
    stream = _na(getattr(c, "h2_stream", None))
    if stream != "":  # (a WebSocket over HTTP/2: its stream, RFC 8441)
        uri = f"{uri} (HTTP/2 stream {stream})"
    return {
        "id": str(c.conn_id), "client": f"{c.client_ip}:{c.client_port}",
        # (through a proxy, the server address is the proxy's: say where it led)
        "server": f"{c.server_ip}:{c.server_port}" + (f" ({escape(_na(c.proxy))})"
                                                      if _na(c.proxy) else ""),
        "uri": uri,
        "status": _na(c.status), "accept": accept, "subprotocol": escape(_na(c.subprotocol)),
        "deflate": "deflate" if c.permessage_deflate else "",
        "frames": f"{c.frames_c2s}/{c.frames_s2c}", "msgs": str(c.messages),
        "bytes": f"{c.bytes_c2s}/{c.bytes_s2c}",
        "close": f"{_close_text(c.close_code_c2s, c.close_reason_c2s)}/"
                 f"{_close_text(c.close_code_s2c, c.close_reason_s2c)}",
    }


#: The one-line connections table's columns and their justification.
_WIDE = (("id", "right"), ("client", "left"), ("server", "left"), ("uri", "left"),
         ("status", "right"), ("accept", "left"), ("subprotocol", "left"), ("deflate", "left"),
         ("frames c/s", "right"), ("msgs", "right"), ("bytes c/s", "right"),
         ("close c/s", "left"))


def _wide_row(cell: dict[str, str]) -> list[str]:
    """A connection's cells in the one-line table's order."""
    return [cell["id"], cell["client"], cell["server"], cell["uri"], cell["status"],
            cell["accept"], cell["subprotocol"], "yes" if cell["deflate"] else "",
            cell["frames"], cell["msgs"], cell["bytes"], cell["close"]]


def _surely_fits(rows: list[list[str]], width: int) -> bool:
    """The one-line table is no wider than ``width``, by an upper bound of its
    width: each column as wide as its widest text, markup counted as if shown,
    plus rich's padding (one each side) and borders. Measuring the table with
    rich (the exact answer, taken when this bound says no) cost a quarter of
    the summary, 13 ms for 40 connections."""
    widths = [cell_len(name) for name, _justify in _WIDE]
    for row in rows:
        widths = [max(w, cell_len(text)) for w, text in zip(widths, row, strict=True)]
    return sum(widths) + 3 * len(widths) + 1 <= width


def _connections_wide(rows: list[list[str]]) -> Table:
    table = Table(title="WebSocket connections", title_justify="left")
    for col, justify in _WIDE:
        table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*row)
    return table


def _connections_narrow(conns: list[SimpleNamespace]) -> Table:
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
    for c in conns:
        cell = _cells(c)
        outcome = " ".join(v for v in (cell["status"], cell["accept"], cell["subprotocol"],
                                       cell["deflate"]) if v)
        table.add_row(cell["id"], f"{cell['client']}\n→ {cell['server']}",
                      f"{cell['uri']}\n{outcome}", f"{cell['frames']}\n{cell['bytes']}",
                      cell["msgs"], cell["close"])
    return table


def _anomalies(anomalies: dict[str, list[Any]], wide: bool) -> Table:
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
    counts = Counter(anomalies["code"])
    first: dict[str, Any] = {}  # by code: the first one's detail, and the connections
    conns: dict[str, set[Any]] = defaultdict(set)
    for code, conn_id, detail in zip(anomalies["code"], anomalies["conn_id"],
                                     anomalies["detail"], strict=True):
        first.setdefault(code, detail)
        if conn_id is not None:
            conns[code].add(conn_id)
    rows = []
    for code, count in counts.items():
        rule = RULES[str(code)]
        rows.append((-("info", "warning", "error").index(rule.severity), str(code), rule,
                     count, len(conns[code]), first[code]))
    for _, code, rule, count, nconns, detail in sorted(rows, key=lambda r: (r[0], r[1])):
        style = _SEVERITY_STYLE[rule.severity]
        if wide:
            table.add_row(f"[{style}]{rule.severity}[/{style}]", code, str(count),
                          str(nconns), escape(_na(detail)), escape(rule.summary))
            continue
        where = f" in {plural(nconns, 'connection')}" if nconns else ""
        text = (f"[bold]{code}[/bold]  {count}{where}\n{escape(rule.summary)}\n"
                f"[dim]first: {escape(_na(detail))}[/dim]")
        table.add_row(f"[{style}]{rule.severity}[/{style}]", text)
    return table


# -- the application layer (issue 18) --------------------------------------------------------


def ranked(values: pd.Series, n: int, width: int) -> tuple[list[tuple[str, int]], int]:
    """The ``n`` most frequent values with their counts (ties in first-seen
    order; each cut to ``width`` characters), and how many other values
    there are. For the summary and the HTML report."""
    counts = values.dropna().astype(str).value_counts(sort=False)
    counts = counts.sort_values(ascending=False, kind="stable")
    top = [(text if len(text) <= width else text[:width - 1] + "…", int(count))
           for text, count in counts.head(n).items()]
    return top, max(len(counts) - n, 0)


def _top(values: pd.Series, n: int = TOP_APP) -> str:
    """``publish 10, ack 9, connect 1``: the ``n`` most frequent values, with
    counts (ties in first-seen order), ``+ 2 more`` for the others."""
    top, others = ranked(values, n, CHANNEL_CHARS)
    more = f", + {others} more" if others else ""
    return ", ".join(f"{escape(_na(text))} {count}" for text, count in top) + more


def _app_cells(conns: list[SimpleNamespace], app: pd.DataFrame | None) -> list[dict[str, str]]:
    """One dict of cells per connection an application decoder recognized."""
    decoded = [c for c in conns if getattr(c, "app_protocol", None) is not None]
    if not decoded:
        return []
    groups = dict(tuple(app.groupby("conn_id", sort=False))) \
        if app is not None and len(app) else {}
    rows = []
    for c in decoded:
        events = groups.get(c.conn_id)
        confidence = c.app_confidence
        rows.append({
            "id": str(c.conn_id), "protocol": escape(_na(c.app_protocol)),
            "conf": "" if not _na(confidence) else f"{float(confidence):.1f}",
            "events": "" if app is None else str(0 if events is None else len(events)),
            "kinds": "" if events is None else _top(events["kind"]),
            "channels": "" if events is None else _top(events["channel"]),
        })
    return rows


def _app_wide(rows: list[dict[str, str]], events: bool = True) -> Table:
    """One line per connection (``events``: False for the protocols alone)."""
    table = Table(title=APP_TITLE, title_justify="left", min_width=len(APP_TITLE))
    columns = (("id", "right"), ("protocol", "left"), ("conf.", "right"), ("events", "right"),
               ("kinds", "left"), ("channels", "left"))[:6 if events else 3]
    for col, justify in columns:
        table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for r in rows:
        table.add_row(*(r[k] for k in ("id", "protocol", "conf", "events", "kinds",
                                       "channels")[:len(columns)]))
    return table


def _app_narrow(rows: list[dict[str, str]]) -> Table:
    """Two lines per connection: kinds over channels."""
    table = Table(title=APP_TITLE, title_justify="left", box=box.SIMPLE_HEAD,
                  min_width=len(APP_TITLE), show_lines=True, padding=(0, 1), collapse_padding=True)
    table.add_column("id", justify="right")
    table.add_column("protocol\nconf.", overflow="fold")
    table.add_column("events", justify="right")
    table.add_column("kinds\nchannels", overflow="fold", ratio=1)
    for r in rows:
        table.add_row(r["id"], f"{r['protocol']}\n{r['conf']}", r["events"],
                      f"{r['kinds']}\n{r['channels']}".rstrip())
    return table


def _print_app(console: Console, conns: list[SimpleNamespace], app: pd.DataFrame | None
               ) -> None:
    """The application layer of the connections shown (nothing when no
    connection has an application protocol). ``app``: None when the events
    are not at hand (``analyze -o`` wrote them): the protocols only."""
    rows = _app_cells(conns, app)
    if not rows:
        return
    table = _app_wide(rows, app is not None)
    wide = Measurement.get(console, console.options.update_width(1 << 16), table)
    if wide.maximum > console.width and app is not None:
        table = _app_narrow(rows)
    console.print(table)
    console.print(f"[dim]{APP_LEGEND}[/dim]", highlight=False)
