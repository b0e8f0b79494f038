"""The readable summary ``wspcap analyze`` prints (rich tables)."""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from wspcap.rules.registry import RULES

if TYPE_CHECKING:
    from wspcap.capture import Capture, Written

__all__ = ["print_summary"]

_SEVERITY_STYLE = {"info": "cyan", "warning": "yellow", "error": "bold red"}


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


def print_summary(capture: Capture | Written, max_rows: int = 50, console: Console | None = None) -> None:
    """Print the capture's connections and anomalies.

    Args:
        capture: what to summarize.
        max_rows: connections shown; the rest are counted.
        console: where to print (stdout by default).
    """
    console = console or Console(width=None if sys.stdout.isatty() else 160)
    conns = capture.connections
    info = capture.info
    established = int(conns.established.sum()) if len(conns) else 0
    console.print(
        f"[bold]{info.source}[/bold]  {info.format}  {info.packets} packets, "
        f"{info.tcp_connections} TCP connections, [bold]{len(conns)} WebSocket[/bold] "
        f"({established} established), {int(conns.frames.sum())} frames, "
        f"{int(conns.messages.sum())} messages, {len(capture.anomalies)} anomalies")
    if len(conns):
        table = Table(title="WebSocket connections", title_justify="left")
        for col, justify in (("id", "right"), ("client", "left"), ("server", "left"),
                             ("uri", "left"), ("status", "right"), ("accept", "left"),
                             ("subprotocol", "left"), ("deflate", "left"),
                             ("frames c/s", "right"), ("msgs", "right"),
                             ("bytes c/s", "right"), ("close c/s", "left")):
            table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
        for c in conns.head(max_rows).itertuples(index=False):
            accept_marks: dict[object, str] = {True: "ok", False: "[red]WRONG[/red]"}
            accept = accept_marks.get(
                c.accept_valid if c.accept_valid is not None and _na(c.accept_valid) else None,
                "")
            table.add_row(
                str(c.conn_id), f"{c.client_ip}:{c.client_port}",
                f"{c.server_ip}:{c.server_port}",
                escape(_na(c.uri)) or ("(midstream)" if c.midstream else ""),
                _na(c.status), accept, escape(_na(c.subprotocol)),
                "yes" if c.permessage_deflate else "", f"{c.frames_c2s}/{c.frames_s2c}",
                str(c.messages), f"{c.bytes_c2s}/{c.bytes_s2c}",
                f"{_na(c.close_code_c2s) or '-'}/{_na(c.close_code_s2c) or '-'}")
        console.print(table)
        if len(conns) > max_rows:
            console.print(f"... and {len(conns) - max_rows} more connections")
    anomalies = capture.anomalies
    if len(anomalies):
        table = Table(title="Anomalies by code", title_justify="left")
        for col in ("severity", "code", "count", "connections", "first detail", "summary"):
            table.add_column(col, overflow="fold")
        grouped = anomalies.groupby("code", observed=True, sort=False)
        rows = []
        for code, group in grouped:
            rule = RULES[str(code)]
            rows.append((-("info", "warning", "error").index(rule.severity), str(code),
                         rule, group))
        for _, code, rule, group in sorted(rows, key=lambda r: (r[0], r[1])):
            style = _SEVERITY_STYLE[rule.severity]
            table.add_row(f"[{style}]{rule.severity}[/{style}]", code, str(len(group)),
                          str(group.conn_id.nunique()), escape(_na(group.detail.iloc[0])),
                          rule.summary)
        console.print(table)
    else:
        console.print("no anomalies")
