"""What ``wspcap live`` shows while it runs: a terminal view, or JSON lines.

:class:`LiveView` is a rich ``Live`` display (connections, messages per second
per direction, the latest messages and anomalies) fed with the events of a
:class:`~wspcap.api.live.Sniffer`; it keeps only rolling windows, so it stays
small however long the capture runs. :class:`JsonlSink` writes one JSON object
per event, flushed at once, for ``jq`` or a log shipper.

The view is redrawn by rich's refresh thread; the event loop only appends to
deques and bumps counters, and the renderer copies them first (``list()`` of a
deque or dict is a single C call, so it never sees one half-changed).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import deque
from typing import IO, Any, Protocol, Self

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from wspcap.tables.events import AnomalyEvent, ConnectionEvent, Event, MessageEvent, iso_ts


class Sniffer(Protocol):
    """What the view shows of a live capture (:class:`wspcap.api.live.Sniffer`)."""

    source: Any
    started: float | None
    iface: str | None
    bpf: str | None
    packets: int


__all__ = ["JsonlSink", "LiveView", "clean", "preview"]

#: Latest messages and anomalies shown.
LATEST_MESSAGES = 12
LATEST_ANOMALIES = 6
#: Connections shown (open ones first, then the latest closed).
MAX_CONNECTIONS = 12
#: Seconds over which messages per second are averaged.
RATE_WINDOW = 2.0
_SEVERITY_STYLE = {"info": "cyan", "warning": "yellow", "error": "bold red"}


def preview(event: MessageEvent, width: int = 60) -> str:
    """A one-line preview of a message: text as text, binary as hex."""
    if event.type == "close":
        body = f"{event.close_code if event.close_code is not None else ''} " \
               f"{event.close_reason or ''}".strip()
    elif event.text is not None:
        body = event.text
    else:
        body = event.payload[:width // 2].hex(" ")
    body = clean(body)
    return body if len(body) <= width else body[:width - 1] + "…"


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def clean(text: str) -> str:
    """Control characters (escape sequences included) shown as ``\\xNN``:
    capture contents must never drive the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class JsonlSink:
    """Writes each event as one JSON line.

    Args:
        target: a path, ``"-"`` for stdout, or an open text stream.
        connections: also write connection events (``event: "connection"``).
    """

    def __init__(self, target: str | IO[str], connections: bool = True) -> None:
        if isinstance(target, str):
            if target == "-":
                self._out: IO[str] = sys.stdout
                self._own = False
            else:
                self._out = open(target, "w", encoding="utf-8")  # noqa: SIM115
                self._own = True
        else:
            self._out = target
            self._own = False
        self.connections = connections
        self.lines = 0

    def __call__(self, event: Event) -> None:
        if isinstance(event, ConnectionEvent) and not self.connections:
            return
        self._out.write(json.dumps(event.to_dict(), ensure_ascii=False) + "\n")
        self._out.flush()
        self.lines += 1

    def close(self) -> None:
        """Close the file (stdout is only flushed)."""
        if self._own:
            self._out.close()
        else:
            self._out.flush()


class _Conn:
    __slots__ = ("counts", "event", "last", "state")

    def __init__(self, event: ConnectionEvent) -> None:
        self.event = event
        self.state = event.kind
        self.counts = [0, 0]
        self.last = event.ts


class LiveView:
    """A rich live display of a running capture.

    Args:
        sniffer: the capture being shown (for its interface, filter and counts).
        console: where to draw.
    """

    def __init__(self, sniffer: Sniffer, console: Console | None = None) -> None:
        self.sniffer = sniffer
        self.console = console or Console()
        self.conns: dict[int, _Conn] = {}
        self.messages: deque[MessageEvent] = deque(maxlen=LATEST_MESSAGES)
        self.anomalies: deque[AnomalyEvent] = deque(maxlen=LATEST_ANOMALIES)
        self.total_messages = 0
        self.total_anomalies = 0
        self._history: deque[tuple[float, dict[tuple[int, int], int]]] = deque()
        self._live = Live(console=self.console, get_renderable=self.render,
                          refresh_per_second=4, transient=False, redirect_stdout=False)

    def __enter__(self) -> Self:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.refresh()
        self._live.stop()

    def __call__(self, event: Event) -> None:
        if isinstance(event, MessageEvent):
            self.total_messages += 1
            self.messages.append(event)
            conn = self.conns.get(event.conn_id)
            if conn is not None:
                conn.counts[event.direction == "s2c"] += 1
                conn.last = event.ts
        elif isinstance(event, AnomalyEvent):
            self.total_anomalies += 1
            self.anomalies.append(event)
        else:
            conn = self.conns.get(event.conn_id)
            if conn is None:
                self.conns[event.conn_id] = _Conn(event)
            else:
                conn.state = event.kind
                if event.kind != "closed":
                    conn.event = event

    def _rates(self) -> dict[tuple[int, int], float]:
        """Messages per second per (conn_id, direction) over the last seconds."""
        now = time.monotonic()
        counts = {(cid, d): c.counts[d] for cid, c in list(self.conns.items()) for d in (0, 1)}
        self._history.append((now, counts))
        while len(self._history) > 2 and now - self._history[1][0] >= RATE_WINDOW:
            self._history.popleft()
        then, old = self._history[0]
        dt = now - then
        if dt <= 0:
            return {}
        return {k: (v - old.get(k, 0)) / dt for k, v in counts.items()}

    def render(self) -> Group:
        """The current view (called by rich's refresh thread)."""
        s = self.sniffer
        source = s.source
        drops = ""
        stats = getattr(source, "stats", None)
        if callable(stats):
            try:
                drops = f"  kernel drops [bold]{stats()[1]}[/bold]"
            except Exception:  # noqa: BLE001  (closed meanwhile)
                drops = ""
        elapsed = time.monotonic() - s.started if s.started is not None else 0.0
        conns = list(self.conns.items())
        open_ = sum(1 for _, c in conns if c.state != "closed")
        header = Text.from_markup(
            f"[bold]wspcap live[/bold] on [bold]{escape(str(s.iface))}[/bold]"
            f"{'  filter ' + escape(repr(s.bpf)) if s.bpf else ''}  {elapsed:6.1f} s  "
            f"packets [bold]{s.packets}[/bold]{drops}  connections [bold]{len(conns)}[/bold] "
            f"({open_} open)  messages [bold]{self.total_messages}[/bold]  "
            f"anomalies [bold]{self.total_anomalies}[/bold]   [dim]Ctrl-C to stop[/dim]")
        rates = self._rates()
        table = Table(title="connections", title_justify="left", expand=True)
        for name, justify in (("id", "right"), ("client", "left"), ("server", "left")):
            table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        table.add_column("uri", no_wrap=True, overflow="ellipsis", ratio=1)
        for name, justify in (("state", "left"), ("c2s msg/s", "right"),
                              ("s2c msg/s", "right"), ("msgs c2s/s2c", "right")):
            table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        shown = sorted(conns, key=lambda kv: (kv[1].state == "closed", -kv[1].last))
        for cid, c in shown[:MAX_CONNECTIONS]:
            e = c.event
            state = c.state if e.status is None or c.state == "closed" else \
                f"{c.state} {e.status}"
            style = "dim" if c.state == "closed" else ""
            table.add_row(str(cid), e.client, e.server, Text(clean(e.uri or "")), state,
                          f"{rates.get((cid, 0), 0.0):.1f}", f"{rates.get((cid, 1), 0.0):.1f}",
                          f"{c.counts[0]}/{c.counts[1]}", style=style)
        if len(conns) > MAX_CONNECTIONS:
            table.caption = f"... and {len(conns) - MAX_CONNECTIONS} more"
        msgs = Table(title="latest messages", title_justify="left", expand=True)
        for name, justify, width in (("time", "left", 12), ("conn", "right", 4),
                                     ("dir", "left", 3), ("type", "left", 6),
                                     ("bytes", "right", 7)):
            msgs.add_column(name, justify=justify, no_wrap=True,  # type: ignore[arg-type]
                            min_width=width)
        msgs.add_column("payload", no_wrap=True, overflow="ellipsis", ratio=1)
        for m in list(self.messages):
            msgs.add_row(iso_ts(m.ts)[11:23], str(m.conn_id),
                         "->" if m.direction == "c2s" else "<-", m.type, str(m.length),
                         Text(preview(m, 200)))
        parts: list[Any] = [header, table, msgs]
        anomalies = list(self.anomalies)
        if anomalies:
            an = Table(title="latest anomalies", title_justify="left", expand=True)
            for name, width in (("time", 12), ("conn", 4), ("severity", 8), ("code", 20)):
                an.add_column(name, no_wrap=True, min_width=width)
            an.add_column("detail", no_wrap=True, overflow="ellipsis", ratio=1)
            for a in anomalies:
                style = _SEVERITY_STYLE.get(a.severity, "")
                an.add_row(iso_ts(a.ts)[11:23], "" if a.conn_id is None else str(a.conn_id),
                           Text(a.severity, style=style), a.code, Text(clean(a.detail)))
            parts.append(an)
        return Group(*parts)
