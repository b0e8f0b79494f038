"""Pictures of a capture (matplotlib, imported only here and only when used).

Every function takes a :class:`~wspcap.tables.capture.Capture` (or the table it
needs) and an optional matplotlib ``Axes``, draws on it and returns it. With no
``ax``, a new :class:`matplotlib.figure.Figure` is made (never through
``pyplot``, so nothing global is created or changed: no current figure, no
``rcParams`` edits). An empty capture gives an axes that says "no data".

Times are drawn as seconds since the first packet of what is drawn, with that
instant (UTC) in the axis label: readable at any zoom, unlike wall-clock ticks.

>>> import wspcap, wspcap.views.plot as wp                    # doctest: +SKIP
>>> cap = wspcap.read("samples/multi.pcapng")           # doctest: +SKIP
>>> wp.connection_timeline(cap).figure.savefig("t.png")  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from wspcap.constants import DIRECTIONS

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from wspcap.tables.capture import Capture

__all__ = [
    "PLOTS",
    "anomaly_timeline",
    "choose_connections",
    "connection_timeline",
    "figure_png",
    "left_out_note",
    "opcode_mix",
    "ping_rtt",
    "ping_rtts",
    "sequence_diagram",
    "size_distribution",
    "throughput",
    "write_plots",
]

#: Colours: one per direction, one per message type, one per severity.
DIRECTION_COLORS = {"c2s": "#1f77b4", "s2c": "#ff7f0e"}
DIRECTION_LABELS = {"c2s": "client → server", "s2c": "server → client"}
TYPE_COLORS = {"text": "#2ca02c", "binary": "#9467bd", "close": "#d62728", "ping": "#17becf",
               "pong": "#bcbd22", "continuation": "#7f7f7f"}
SEVERITY_LEVELS = {"info": 0, "warning": 1, "error": 2}
SEVERITY_COLORS = {"info": "#17becf", "warning": "#ff7f0e", "error": "#d62728"}
OTHER_COLOR = "#8c564b"
#: Connections that get a sequence diagram when none are chosen (:func:`write_plots`).
MAX_SEQUENCES = 20
#: Written next to the plots when some connections have no sequence diagram.
LEFT_OUT_FILE = "sequences-left-out.txt"


def _axes(ax: Axes | None, size: tuple[float, float] = (8.0, 4.0)) -> Axes:
    if ax is not None:
        return ax
    from matplotlib.figure import Figure
    fig = Figure(figsize=size, layout="constrained")
    return fig.add_subplot()


def _no_data(ax: Axes, title: str, what: str = "no data") -> Axes:
    ax.set_title(title)
    ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def _seconds(ts: pd.Series, t0: pd.Timestamp) -> np.ndarray:
    out: np.ndarray = (ts - t0).dt.total_seconds().to_numpy(dtype=float)
    return out


def _t0_label(t0: pd.Timestamp) -> str:
    if pd.isna(t0):  # every time unknown (capture_timestamp_invalid): nothing placed
        return "seconds (no packet time known)"
    return f"seconds since {t0.strftime('%Y-%m-%d %H:%M:%S.%f')} UTC"


def _messages(data: Capture | pd.DataFrame) -> pd.DataFrame:
    return data if isinstance(data, pd.DataFrame) else data.messages


def _type_color(t: str) -> str:
    return TYPE_COLORS.get(t, OTHER_COLOR)


def connection_timeline(capture: Capture, ax: Axes | None = None) -> Axes:
    """One lane per connection: its lifetime as a bar, each message as a tick
    (client messages above the lane's middle, server messages below) and
    close frames as crosses.

    Args:
        capture: the capture.
        ax: where to draw (a new figure when None).

    Returns:
        The axes: one bar (patch) per connection; one scatter collection per
        direction with a point per data or control message.
    """
    conns = capture.connections
    n = len(conns)
    ax = _axes(ax, (9.0, max(2.5, 0.45 * n + 1.5)))
    title = "connections over time"
    if not n:
        return _no_data(ax, title, "no WebSocket connections")
    t0 = conns.ts_start.min()
    lane = {cid: i for i, cid in enumerate(conns.conn_id)}
    start = _seconds(conns.ts_start, t0)
    width = np.maximum(_seconds(conns.ts_end, t0) - start, 0.0)
    colors = ["#c7e9c0" if est else "#fdd0a2" for est in conns.established]
    ax.barh(np.arange(n), width, left=start, height=0.6, color=colors, edgecolor="0.5",
            linewidth=0.5, label="connection (established)")
    msgs = capture.messages
    # Lane i is drawn at y = i on an inverted axis (lane 0 on top), so a
    # smaller y is higher up: client messages at i - 0.15, server ones at i + 0.15.
    for direction, offset in (("c2s", -0.15), ("s2c", 0.15)):
        m = msgs[(msgs.direction == direction) & msgs.conn_id.isin(lane)]
        y = m.conn_id.map(lane).to_numpy(dtype=float) + offset
        x = _seconds(m.ts_end, t0)
        closes = (m.type == "close").to_numpy()
        ax.scatter(x[~closes], y[~closes], s=14, marker="|", linewidths=1.2,
                   color=DIRECTION_COLORS[direction],
                   label=f"message {DIRECTION_LABELS[direction]}")
        ax.scatter(x[closes], y[closes], s=40, marker="x", color=DIRECTION_COLORS[direction])
    ax.set_yticks(np.arange(n))
    ax.set_yticklabels([f"{cid}: {_short(uri)}" for cid, uri in zip(conns.conn_id, conns.uri)])
    ax.invert_yaxis()
    ax.set_xlabel(_t0_label(t0))
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize="small")
    return ax


def _short(value: Any, width: int = 28) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "(no handshake)"
    text = str(value)
    return text if len(text) <= width else text[:width - 1] + "…"


def sequence_diagram(capture: Capture, conn_id: int, ax: Axes | None = None,
                     max_messages: int = 60) -> Axes:
    """A message sequence diagram of one connection: client on the left, server
    on the right, time flowing down; one arrow per message, coloured by type,
    thicker for larger messages, labelled with type and size.

    Args:
        capture: the capture.
        conn_id: the connection.
        ax: where to draw.
        max_messages: draw the first this many messages (the title says so).

    Returns:
        The axes: one arrow (annotation) per message drawn.
    """
    msgs = capture.messages
    msgs = msgs[msgs.conn_id == conn_id]
    shown = msgs.head(max_messages)
    if ax is None:
        # Fixed margins: the layout is known, and constrained layout would
        # measure every label first (a third of the drawing time).
        from matplotlib.figure import Figure
        height = max(3.0, 0.32 * len(shown) + 1.5)
        fig = Figure(figsize=(7.0, height))
        fig.subplots_adjust(left=0.03, right=0.97, top=1 - 0.45 / height,
                            bottom=0.4 / height)
        ax = fig.add_subplot()
    title = f"connection {conn_id}: messages"
    if len(msgs) > len(shown):
        title += f" (first {len(shown)} of {len(msgs)})"
    if shown.empty:
        return _no_data(ax, title, "no messages")
    ax.set_xlim(-0.35, 1.35)
    ax.axvline(0, color="0.3", linewidth=1)
    ax.axvline(1, color="0.3", linewidth=1)
    y = np.arange(len(shown), dtype=float)
    t0 = shown.ts_end.iloc[0]
    rel = _seconds(shown.ts_end, t0)
    largest = max(int(shown.length.max()), 1)
    for yi, t, d, typ, length, rt in zip(y, shown.type, shown.direction, shown.type,
                                         shown.length, rel):
        x0, x1 = (0.0, 1.0) if d == "c2s" else (1.0, 0.0)
        lw = 0.8 + 2.5 * math.log1p(int(length)) / math.log1p(largest)
        ax.annotate("", xy=(x1, yi), xytext=(x0, yi),
                    arrowprops={"arrowstyle": "-|>", "color": _type_color(str(typ)),
                                "linewidth": lw, "shrinkA": 0, "shrinkB": 0})
        ax.text(0.5, yi - 0.12, f"{t} {int(length)} B", ha="center", va="bottom",
                fontsize="x-small")
        ax.text(-0.05 if d == "c2s" else 1.05, yi, f"+{rt:.3f}s", fontsize="x-small",
                ha="right" if d == "c2s" else "left", va="center", color="0.35")
    ax.set_ylim(len(shown) - 0.4, -0.8)
    ax.set_xticks([0, 1])
    ax.set_xticklabels(["client", "server"])
    ax.set_yticks([])
    ax.set_title(title)
    for name in ("top", "right", "left"):
        ax.spines[name].set_visible(False)
    return ax


def size_distribution(data: Capture | pd.DataFrame, ax: Axes | None = None,
                      bins: int = 30) -> Axes:
    """Histogram of message sizes (bytes after inflation), one per direction,
    on logarithmic bins (sizes span bytes to megabytes).

    Args:
        data: a capture or its messages table.
        ax: where to draw.
        bins: number of bins.

    Returns:
        The axes: for each direction with messages, ``bins`` bars whose
        heights add up to that direction's message count.
    """
    msgs = _messages(data)
    ax = _axes(ax)
    title = "message sizes"
    if msgs.empty:
        return _no_data(ax, title, "no messages")
    sizes = msgs.length.to_numpy(dtype=float) + 1.0  # 0-byte messages count too
    edges = np.logspace(0, math.log10(max(sizes.max(), 2.0)) + 0.01, bins + 1)
    for direction in DIRECTIONS:
        values = sizes[(msgs.direction == direction).to_numpy()]
        if len(values):
            ax.hist(values, bins=list(edges), alpha=0.6, color=DIRECTION_COLORS[direction],
                    label=f"{DIRECTION_LABELS[direction]} ({len(values)})")
    ax.set_xscale("log")
    ax.set_xlabel("message size, bytes + 1 (log scale)")
    ax.set_ylabel("messages")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def _bin_seconds(span: float) -> float:
    """A round bin width giving about 50-100 bins over ``span`` seconds."""
    target = max(span, 1e-3) / 60
    for step in (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60,
                 120, 300, 600, 1800, 3600):
        if step >= target:
            return float(step)
    return 3600.0


def throughput(data: Capture | pd.DataFrame, ax: Axes | None = None,
               bin_seconds: float | None = None) -> Axes:
    """Payload bytes per second over time, one step line per direction (wire
    bytes of each message, counted when its last frame arrived).

    Args:
        data: a capture or its messages table.
        ax: where to draw.
        bin_seconds: bin width (chosen from the span when None).

    Returns:
        The axes: one step patch (``StepPatch``) per direction; its values
        times the bin width add up to that direction's ``wire_length`` total.
    """
    msgs = _messages(data)
    msgs = msgs[msgs.ts_end.notna()]  # a null time (capture_timestamp_invalid) has no bin
    ax = _axes(ax)
    title = "throughput"
    if msgs.empty:
        return _no_data(ax, title, "no messages")
    t0 = msgs.ts_end.min()
    rel = _seconds(msgs.ts_end, t0)
    width = bin_seconds or _bin_seconds(float(rel.max()))
    nbins = int(rel.max() // width) + 1
    edges = np.arange(nbins + 1) * width
    for direction in DIRECTIONS:
        mask = (msgs.direction == direction).to_numpy()
        if not mask.any():
            continue
        total, _ = np.histogram(rel[mask], bins=edges,
                                weights=msgs.wire_length.to_numpy(dtype=float)[mask])
        ax.stairs(total / width, edges, color=DIRECTION_COLORS[direction], linewidth=1.5,
                  label=DIRECTION_LABELS[direction])
    ax.set_xlabel(_t0_label(t0) + f" (bins of {width:g} s)")
    ax.set_ylabel("payload bytes / s (wire)")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def opcode_mix(data: Capture | pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Messages by type (text, binary, close, ping, pong, unknown opcodes) and
    direction, as grouped bars.

    Args:
        data: a capture or its messages table.
        ax: where to draw.

    Returns:
        The axes: two bars per type present (c2s, s2c), heights the counts.
    """
    msgs = _messages(data)
    ax = _axes(ax)
    title = "message types"
    if msgs.empty:
        return _no_data(ax, title, "no messages")
    types = [str(t) for t in msgs.type.astype(str).unique()]
    order = [t for t in TYPE_COLORS if t in types] + sorted(set(types) - set(TYPE_COLORS))
    counts = (msgs.assign(type=msgs.type.astype(str), direction=msgs.direction.astype(str))
              .groupby(["type", "direction"]).size())
    x = np.arange(len(order))
    for i, direction in enumerate(DIRECTIONS):
        heights = [int(counts.get((t, direction), 0)) for t in order]
        bars = ax.bar(x + (i - 0.5) * 0.4, heights, width=0.4,
                      color=DIRECTION_COLORS[direction], label=DIRECTION_LABELS[direction])
        ax.bar_label(bars, fontsize="x-small")
    ax.set_xticks(x)
    ax.set_xticklabels(order)
    ax.set_ylabel("messages")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def ping_rtts(capture: Capture) -> pd.DataFrame:
    """Each ping matched with the first later pong carrying the same payload,
    in the other direction of the same connection (RFC 6455 section 5.5.3).

    Returns:
        One row per answered ping: ``conn_id``, ``direction`` (of the ping),
        ``ts`` (of the ping), ``rtt`` (seconds), ``payload``.
    """
    msgs = capture.messages
    pings = msgs[msgs.type == "ping"]
    pongs = msgs[msgs.type == "pong"]
    # Pongs by (connection, direction, payload), in table order; each is used once.
    waiting: dict[tuple[Any, str, bytes], list[tuple[pd.Timestamp, int]]] = {}
    for i, (cid, d, ts, payload) in enumerate(zip(pongs.conn_id, pongs.direction.astype(str),
                                                 pongs.ts_end, pongs.payload)):
        waiting.setdefault((cid, d, bytes(payload)), []).append((ts, i))
    rows = []
    used: set[int] = set()
    for cid, d, ts, payload in zip(pings.conn_id, pings.direction, pings.ts_end,
                                   pings.payload):
        other = "s2c" if str(d) == "c2s" else "c2s"
        for pong_ts, i in waiting.get((cid, other, bytes(payload)), ()):
            if i not in used and pong_ts >= ts:
                used.add(i)
                rows.append({"conn_id": cid, "direction": d, "ts": ts,
                             "rtt": (pong_ts - ts).total_seconds(),
                             "payload": bytes(payload)})
                break
    return pd.DataFrame(rows, columns=["conn_id", "direction", "ts", "rtt", "payload"])


def ping_rtt(capture: Capture, ax: Axes | None = None) -> Axes:
    """Ping/pong round-trip times over time, by who sent the ping.

    Args:
        capture: the capture.
        ax: where to draw.

    Returns:
        The axes: one scatter point per answered ping (see :func:`ping_rtts`).
    """
    rtts = ping_rtts(capture)
    ax = _axes(ax)
    title = "ping → pong round-trip time"
    if rtts.empty:
        return _no_data(ax, title, "no answered pings")
    t0 = capture.messages.ts_end.min()
    for direction in DIRECTIONS:
        r = rtts[rtts.direction == direction]
        if len(r):
            ax.scatter(_seconds(r.ts, t0), r.rtt.to_numpy(dtype=float) * 1000.0, s=25,
                       color=DIRECTION_COLORS[direction],
                       label=f"ping {DIRECTION_LABELS[direction]} ({len(r)})")
    ax.set_xlabel(_t0_label(t0))
    ax.set_ylabel("round trip, ms")
    ax.set_ylim(0, float(rtts.rtt.max()) * 1000.0 * 1.25 or 1.0)
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def anomaly_timeline(data: Capture | pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Anomalies over time, one row per severity, each point labelled by code.

    Args:
        data: a capture or its anomalies table.
        ax: where to draw.

    Returns:
        The axes: one scatter collection per severity present, one point per
        anomaly row.
    """
    anomalies = data if isinstance(data, pd.DataFrame) else data.anomalies
    ax = _axes(ax, (9.0, 3.0))
    title = "anomalies"
    if anomalies.empty:
        return _no_data(ax, title, "no anomalies")
    t0 = anomalies.ts.min()
    x = _seconds(anomalies.ts, t0)
    sev = anomalies.severity.astype(str).to_numpy()
    codes = anomalies.code.astype(str).to_numpy()
    for name, level in SEVERITY_LEVELS.items():
        mask = sev == name
        if mask.any():
            ax.scatter(x[mask], np.full(mask.sum(), level), s=45, color=SEVERITY_COLORS[name],
                       label=f"{name} ({int(mask.sum())})", zorder=3)
    labelled: set[str] = set()
    for xi, s, c in zip(x, sev, codes):
        if c not in labelled:  # label the first of each code only: stays readable
            labelled.add(c)
            ax.annotate(c, (xi, SEVERITY_LEVELS.get(s, 0)), xytext=(4, 6),
                        textcoords="offset points", fontsize="x-small", rotation=20)
    ax.set_yticks(list(SEVERITY_LEVELS.values()))
    ax.set_yticklabels(list(SEVERITY_LEVELS))
    ax.set_ylim(-0.6, 2.8)
    ax.set_xlabel(_t0_label(t0))
    ax.set_title(title)
    ax.legend(fontsize="small", loc="lower right")
    return ax


#: The capture-wide plots: file stem -> function(capture) -> Axes.
PLOTS: dict[str, Callable[..., Axes]] = {
    "connections": connection_timeline,
    "sizes": size_distribution,
    "throughput": throughput,
    "opcodes": opcode_mix,
    "ping_rtt": ping_rtt,
    "anomalies": anomaly_timeline,
}


def figure_png(ax: Axes, dpi: int = 100) -> bytes:
    """The figure of ``ax`` as PNG bytes (Agg, whatever pyplot's backend is)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    fig = ax.figure
    FigureCanvasAgg(fig)  # type: ignore[arg-type]
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)  # type: ignore[union-attr]
    return buf.getvalue()


def choose_connections(capture: Capture, conns: Sequence[int] | None = None,
                       max_conns: int = MAX_SEQUENCES, option: str = "conns"
                       ) -> tuple[list[int], int]:
    """The connections to draw (or report) one by one.

    Args:
        capture: the capture.
        conns: these connections, in this order (each must exist); None: the
            first ``max_conns`` in capture order.
        max_conns: how many at most when ``conns`` is None.
        option: the option's name for the error message.

    Returns:
        ``(ids, left_out)``: the connection ids chosen, and how many of the
        capture's connections are not among them.

    Raises:
        ConfigError: a connection in ``conns`` is not in the capture, or
            ``max_conns`` is negative.
    """
    from wspcap.errors import ConfigError

    ids = [int(c) for c in capture.connections.conn_id]
    if conns is None:
        if max_conns < 0:
            raise ConfigError(option, f"{max_conns} is not a count (0 or more)")
        chosen = ids[:max_conns]
    else:
        known = set(ids)
        missing = [c for c in conns if c not in known]
        if missing:
            have = f"ids {ids[0]}-{ids[-1]}" if ids else "none"
            raise ConfigError(option, f"no connection {', '.join(map(str, missing))} in "
                                      f"this capture (it has {len(ids)}: {have})")
        chosen = list(dict.fromkeys(int(c) for c in conns))
    return chosen, len(ids) - len(chosen)


def _id_list(ids: Sequence[int]) -> str:
    """``0-19, 25, 30-31``: runs of consecutive ids."""
    runs: list[list[int]] = []
    for i in ids:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def left_out_note(capture: Capture, chosen: Sequence[int], what: str = "sequence diagrams"
                  ) -> str | None:
    """One line saying which connections have no ``what`` and how to choose
    them, or None when every connection has one."""
    ids = [int(c) for c in capture.connections.conn_id]
    done = set(chosen)
    left = [i for i in ids if i not in done]
    if not left:
        return None
    drawn = f" ({_id_list(sorted(done))})" if done else ""
    return (f"{what} for {len(done)} of {len(ids)} connections{drawn}; left out: "
            f"{_id_list(left)}. Choose with --conn ID,ID,... or --max-conns N")


def write_plots(capture: Capture, directory: str | os.PathLike[str], dpi: int = 100,
                max_sequences: int = MAX_SEQUENCES, conns: Sequence[int] | None = None,
                progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Write every plot as a PNG file into ``directory`` (created if missing).

    Args:
        capture: the capture.
        directory: where to write.
        dpi: resolution.
        max_sequences: sequence diagrams for the first this many connections
            (when ``conns`` is None).
        conns: sequence diagrams for exactly these connections.
        progress: called with (plots written, plots to write) after each.

    Returns:
        The paths written: ``connections.png``, ``sizes.png``,
        ``throughput.png``, ``opcodes.png``, ``ping_rtt.png``,
        ``anomalies.png`` and ``sequence-<conn_id>.png``; and, when some
        connections have no sequence diagram, ``sequences-left-out.txt``
        saying which (see :func:`left_out_note`).

    Raises:
        ConfigError: a connection in ``conns`` is not in the capture.
    """
    chosen, _left = choose_connections(capture, conns, max_sequences)
    os.makedirs(directory, exist_ok=True)
    paths = []
    axes: list[tuple[str, Callable[[], Axes]]] = []
    for name, fn in PLOTS.items():
        axes.append((name, functools.partial(fn, capture)))
    for cid in chosen:
        axes.append((f"sequence-{cid}", functools.partial(sequence_diagram, capture, cid)))
    for done, (name, draw) in enumerate(axes, 1):
        path = os.path.join(os.fspath(directory), f"{name}.png")
        with open(path, "wb") as f:
            f.write(figure_png(draw(), dpi))
        paths.append(path)
        if progress is not None:
            progress(done, len(axes))
    note = left_out_note(capture, chosen)
    stale = os.path.join(os.fspath(directory), LEFT_OUT_FILE)
    if note is not None:
        with open(stale, "w", encoding="utf-8") as f:
            f.write(note + "\n")
        paths.append(stale)
    elif os.path.exists(stale):  # from an earlier run into the same folder
        os.remove(stale)
    return paths
