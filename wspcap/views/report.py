"""A self-contained HTML report of a capture.

One page, no external resources: CSS inline, plots as PNG ``data:`` URIs, no
script at all (a Content-Security-Policy forbids any). Sections: what the page
is, the capture summary, the plots, the connections table, the anomalies with
their explanations from the catalog (:data:`wspcap.rules.registry.RULES`),
what the messages say (the ``app`` table, when a decoder recognized an
application protocol: per connection its events by kind and channel, its
request/response latency, its ``app_*`` anomalies), then one section per connection with its handshake, sequence diagram and
messages (text shown as text, binary as hex).

Warning: everything taken from the capture (URIs, headers, payloads, close
reasons, anomaly details) is attacker-controlled. It goes through
:func:`html.escape` exactly once, in :func:`_e`, and nowhere is it placed
outside element text or quoted attribute values. Previews also show control
characters as ``\\xNN`` so they cannot disguise the text around them.
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from wspcap.rules.registry import RULES, SEVERITIES
from wspcap.views.summary import ranked

if TYPE_CHECKING:
    from wspcap.tables.capture import Capture

__all__ = ["render_report", "write_report"]

# The report stays small and quick on any capture: it shows summaries and
# samples, says how many rows it left out, and points to `wspcap analyze -o`
# for the whole tables.

#: Connections that get their own section when none are chosen.
MAX_CONNECTION_SECTIONS = 10
#: Rows of the connections table (the chosen connections are always listed).
MAX_CONNECTION_ROWS = 100
#: Rows listed per anomaly code.
MAX_ANOMALY_ROWS = 10
#: Messages drawn in a connection's sequence diagram.
SEQUENCE_MESSAGES = 20
#: Kinds and channels named per connection in the application section, the
#: characters a channel keeps, and the application anomalies listed.
TOP_APP = 5
CHANNEL_CHARS = 48
MAX_APP_ANOMALY_ROWS = 20
#: Characters of text, and bytes of binary, shown per message.
PREVIEW_CHARS = 200
PREVIEW_BYTES = 64

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")

CSS = """
:root { --fg:#1d2330; --muted:#5b6475; --line:#d9dee7; --bg:#f6f8fb; --accent:#2458b3;
        --info:#0e7c86; --warning:#a35a00; --error:#b3261e; --c2s:#1f77b4; --s2c:#d9700b; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       margin: 0; background: #fff; }
header { background: #1d2330; color: #fff; padding: 22px 32px 18px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 600; }
header p { margin: 0; color: #c5cbd6; }
main { padding: 8px 32px 48px; max-width: 1400px; }
h2 { font-size: 19px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 8px; }
p.lead { color: var(--muted); max-width: 60em; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.card { background: var(--bg); border: 1px solid var(--line); border-radius: 8px;
        padding: 10px 16px; min-width: 150px; }
.card .n { font-size: 22px; font-weight: 600; }
.card .l { color: var(--muted); font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13.5px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 9px; text-align: left;
         vertical-align: top; }
th { background: var(--bg); font-weight: 600; position: sticky; top: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.scroll { overflow-x: auto; max-width: 100%; }
td.payload { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
             font-size: 12.5px; white-space: pre-wrap; word-break: break-all; max-width: 60em; }
.hex { color: #4a3a8c; }
.dir-c2s { color: var(--c2s); font-weight: 600; }
.dir-s2c { color: var(--s2c); font-weight: 600; }
.sev { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff;
       font-size: 12px; font-weight: 600; }
.sev-info { background: var(--info); } .sev-warning { background: var(--warning); }
.sev-error { background: var(--error); }
.rule { border: 1px solid var(--line); border-left-width: 5px; border-radius: 6px;
        padding: 10px 14px; margin: 12px 0; background: #fff; }
.rule.s-info { border-left-color: var(--info); } .rule.s-warning { border-left-color: var(--warning); }
.rule.s-error { border-left-color: var(--error); }
.rule .meaning { color: var(--muted); margin: 4px 0 6px; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 14px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 8px; background: #fff; }
figure img { width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
figure.seq { max-width: 640px; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0; }
dl.kv dt { color: var(--muted); } dl.kv dd { margin: 0; word-break: break-all; }
details { margin: 8px 0; } summary { cursor: pointer; color: var(--accent); }
.muted { color: var(--muted); }
section.conn { border-top: 1px dashed var(--line); margin-top: 26px; }
"""


def _e(value: Any) -> str:
    """Escape a value for HTML text or a quoted attribute (None and NA: empty)."""
    if value is None or value is pd.NA:
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return html.escape(str(value), quote=True)


def _visible(text: str) -> str:
    """Control characters (other than tab and newline) as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _text(value: Any) -> str:
    """A capture-derived string, made visible and escaped (missing: empty)."""
    if value is None or value is pd.NA or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return _e(_visible(str(value)))


def _ts(value: Any) -> str:
    if value is None or value is pd.NaT or pd.isna(value):
        return ""
    return str(pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S.%f UTC"))


def _preview(row: Any) -> str:
    """A message's payload for the table: text as text, binary as hex (escaped)."""
    if row.type == "close":
        code = "" if pd.isna(row.close_code) else str(row.close_code)
        reason = row.close_reason if isinstance(row.close_reason, str) else ""
        body = f"code {code}" + (f", reason “{_visible(reason)}”" if reason else "")
        return _e(body)
    payload = bytes(row.payload) if isinstance(row.payload, (bytes, bytearray)) else b""
    if isinstance(row.text, str):
        text = row.text
        cut = len(text) > PREVIEW_CHARS
        return _e(_visible(text[:PREVIEW_CHARS])) + (
            f' <span class="muted">… ({len(text)} characters)</span>' if cut else "")
    if row.type in ("ping", "pong") and payload:
        try:
            return _e(_visible(payload.decode("utf-8")))
        except UnicodeDecodeError:
            pass
    data = bytes(payload[:PREVIEW_BYTES])
    more = (f' <span class="muted">… ({len(payload)} bytes)</span>'
            if len(payload) > PREVIEW_BYTES else "")
    return f'<span class="hex">{_e(data.hex(" "))}</span>{more}' if data else \
        '<span class="muted">(empty)</span>'


def _img(png: bytes, alt: str, caption: str, cls: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    klass = f' class="{_e(cls)}"' if cls else ""
    return (f'<figure{klass}><img alt="{_e(alt)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _plots(capture: Capture, chosen: Sequence[int] = (),
           progress: Callable[[int, int], None] | None = None) -> tuple[str, dict[int, str]]:
    """The plots section and the sequence diagrams of the ``chosen``
    connections (HTML); ``progress(done, total)`` after each figure."""
    try:
        from wspcap.views import plot as wp
        wp._axes(None)  # matplotlib importable?
    except ImportError:
        note = ('<p class="muted">Plots need matplotlib '
                '(<code>pip install "wspcap[plot]"</code>).</p>')
        return note, {}
    captions = {
        "connections": "Connections over time: one lane per connection (green: "
                       "established), ticks are messages (blue client→server above, orange "
                       "server→client below), crosses are close frames.",
        "sizes": "Message sizes per direction (logarithmic bins).",
        "throughput": "Payload bytes per second on the wire, per direction.",
        "opcodes": "Messages by type and direction.",
        "ping_rtt": "Round-trip time of each ping answered by a pong.",
        "anomalies": "Anomalies over time by severity (first of each code labelled).",
    }
    total = len(wp.PLOTS) + len(chosen)
    figs = []
    for name, fn in wp.PLOTS.items():
        figs.append(_img(wp.figure_png(fn(capture)), name, captions[name]))
        if progress is not None:
            progress(len(figs), total)
    seqs = {}
    for cid in chosen:
        seqs[cid] = _img(wp.figure_png(wp.sequence_diagram(capture, cid,
                                                            max_messages=SEQUENCE_MESSAGES)),
                         f"sequence diagram of connection {cid}",
                         "Messages in order, time flowing down; arrow colour = type "
                         "(green text, purple binary, cyan ping, olive pong, red "
                         "close), thickness = size.", "seq")
        if progress is not None:
            progress(len(figs) + len(seqs), total)
    return f'<div class="plots">{"".join(figs)}</div>', seqs


def _more(left: int, what: str, table: str, source: str) -> str:
    """The line that says how many rows were left out and where they all are."""
    return (f'<p class="muted more">… {left} more {_e(what)} not listed here: '
            f'<code>wspcap analyze {_e(source)} -o DIR</code> writes them all '
            f'(the {_e(table)} table).</p>')


def _summary(capture: Capture) -> str:
    info = capture.info
    conns = capture.connections
    anomalies = capture.anomalies
    established = int(conns.established.sum()) if len(conns) else 0
    sev = anomalies.severity.astype(str).value_counts() if len(anomalies) else {}
    starts = [t for t in (conns.ts_start.min() if len(conns) else None,) if t is not None]
    ends = [t for t in (conns.ts_end.max() if len(conns) else None,) if t is not None]
    span = ""
    if starts and ends and not pd.isna(starts[0]):
        span = f"{(ends[0] - starts[0]).total_seconds():.3f} s"
    cards = [
        (f"{len(conns)}", f"WebSocket connections ({established} established)"),
        (f"{len(capture.messages)}", "messages (control frames included)"),
        (f"{len(capture.frames)}", "frames"),
        (f"{len(anomalies)}", "anomalies: " + ", ".join(
            f"{int(sev.get(s, 0))} {s}" for s in reversed(SEVERITIES))),
        (f"{info.packets}", f"packets, {info.tcp_connections} TCP connections"),
    ]
    if span:
        cards.append((span, "from the first to the last WebSocket packet"))
    out = ['<div class="cards">']
    for n, label in cards:
        out.append(f'<div class="card"><div class="n">{_e(n)}</div>'
                   f'<div class="l">{_e(label)}</div></div>')
    out.append("</div>")
    out.append('<dl class="kv">')
    rows = [("capture file", info.source), ("format", info.format)]
    if starts and not pd.isna(starts[0]):
        rows += [("first connection", _ts(starts[0])), ("last packet", _ts(ends[0]))]
    if info.truncated:
        rows.append(("reading stopped early", info.truncated))
    passed = {k: v for k, v in info.counters.items() if v}
    if passed:
        rows.append(("packets passed over", ", ".join(f"{k}: {v}" for k, v in passed.items())))
    for k, v in rows:
        out.append(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>")
    out.append("</dl>")
    return "".join(out)


def _connections_table(capture: Capture, sections: Sequence[int] = (), source: str = ""
                       ) -> str:
    conns = capture.connections
    if conns.empty:
        return '<p class="muted">No WebSocket connection in this capture.</p>'
    listed = conns.head(MAX_CONNECTION_ROWS)
    extra = conns.conn_id.isin(list(sections)) & ~conns.conn_id.isin(listed.conn_id)
    if extra.any():  # a chosen connection past the first rows is listed too
        listed = pd.concat([listed, conns[extra]])
    linked = set(sections)
    head = ("id", "client", "server", "request target", "host", "origin", "status",
            "subprotocol", "compression", "frames c→s / s→c", "messages",
            "bytes c→s / s→c", "close c→s / s→c", "duration")
    num = {"id", "status", "messages", "frames c→s / s→c", "bytes c→s / s→c", "duration",
           "close c→s / s→c"}
    out = ['<div class="scroll"><table id="connections"><thead><tr>']
    out += [f'<th{" class=num" if h in num else ""}>{_e(h)}</th>' for h in head]
    out.append("</tr></thead><tbody>")
    for c in listed.itertuples(index=False):
        dur = (c.ts_end - c.ts_start).total_seconds()
        closes = f"{_e(c.close_code_c2s) or '–'} / {_e(c.close_code_s2c) or '–'}"
        target = _e(_visible(str(c.uri))) if not pd.isna(c.uri) else (
            '<span class="muted">(mid-stream)</span>' if c.midstream else "")
        link = (f'<a href="#conn-{int(c.conn_id)}">{int(c.conn_id)}</a>'
                if int(c.conn_id) in linked else f"{int(c.conn_id)}")
        cells = [
            (link, True), (_e(f"{c.client_ip}:{c.client_port}"), False),
            (_e(f"{c.server_ip}:{c.server_port}"), False), (target, False),
            (_e(_visible(str(c.host))) if not pd.isna(c.host) else "", False),
            (_e(_visible(str(c.origin))) if not pd.isna(c.origin) else "", False),
            (_e(c.status), True), (_e(c.subprotocol), False),
            ("permessage-deflate" if c.permessage_deflate else "", False),
            (f"{c.frames_c2s} / {c.frames_s2c}", True), (_e(c.messages), True),
            (f"{c.bytes_c2s} / {c.bytes_s2c}", True), (closes, True),
            (f"{dur:.3f} s", True),
        ]
        out.append("<tr>" + "".join(f'<td{" class=num" if n else ""}>{v}</td>'
                                    for v, n in cells) + "</tr>")
    out.append("</tbody></table></div>")
    if len(conns) > len(listed):
        out.append(_more(len(conns) - len(listed), "connections", "connections", source))
    return "".join(out)


def _anomalies(capture: Capture, source: str = "") -> str:
    anomalies = capture.anomalies
    if anomalies.empty:
        return '<p>No anomalies: every rule wspcap checks held.</p>'
    out = [('<p class="lead">Each kind of anomaly once, most severe first, with what it '
            'means; the rows below each say where it happened.</p>')]
    groups = []
    for code, group in anomalies.groupby("code", observed=True, sort=False):
        rule = RULES.get(str(code))
        severity = rule.severity if rule else str(group.severity.iloc[0])
        groups.append((-SEVERITIES.index(severity) if severity in SEVERITIES else 0,
                       str(code), rule, severity, group))
    for _, code, rule, severity, group in sorted(groups, key=lambda g: (g[0], g[1])):
        sev = _e(severity)
        out.append(f'<div class="rule s-{sev}" id="anomaly-{_e(code)}">'
                   f'<span class="sev sev-{sev}">{sev}</span> <b>{_e(code)}</b> '
                   f'<span class="muted">× {len(group)}</span>')
        if rule is not None:
            out.append(f"<div><b>{_e(rule.summary)}</b></div>")
            if rule.meaning:
                out.append(f'<div class="meaning">{_e(rule.meaning)}</div>')
            refs = " · ".join(_e(x) for x in (rule.reference, rule.peers) if x)
            if refs:
                out.append(f'<div class="muted">{refs}</div>')
        out.append('<table><thead><tr><th class=num>conn</th><th>direction</th><th>time</th>'
                   '<th class=num>frame</th><th class=num>packet</th><th>detail</th>'
                   '</tr></thead><tbody>')
        for a in group.head(MAX_ANOMALY_ROWS).itertuples(index=False):
            direction = _e(a.direction)
            out.append(f'<tr><td class=num>{_e(a.conn_id)}</td>'
                       f'<td class="dir-{direction}">{direction}</td><td>{_ts(a.ts)}</td>'
                       f'<td class=num>{_e(a.frame_index)}</td><td class=num>{_e(a.packet)}</td>'
                       f'<td>{_e(_visible(str(a.detail)))}</td></tr>')
        out.append("</tbody></table>")
        if len(group) > MAX_ANOMALY_ROWS:
            out.append(_more(len(group) - MAX_ANOMALY_ROWS, f"{code} rows", "anomalies",
                             source))
        out.append("</div>")
    return "".join(out)


def _duration(value: Any) -> str:
    """A latency as µs, ms or s (missing: empty)."""
    if value is None or pd.isna(value):
        return ""
    seconds = pd.Timedelta(value).total_seconds()
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _top(values: pd.Series) -> str:
    """The :data:`TOP_APP` most frequent values with their counts (escaped)."""
    top, others = ranked(values, TOP_APP, CHANNEL_CHARS)
    more = f' <span class="muted">+ {others} more</span>' if others else ""
    return ", ".join(f"{_text(text)}&nbsp;×{count}" for text, count in top) + more


def _app_row(cid: int, events: pd.DataFrame, conn: Any, linked: set[int]) -> str:
    """One connection's row of the application table."""
    link = f'<a href="#conn-{cid}">{cid}</a>' if cid in linked else str(cid)
    protocol = getattr(conn, "app_protocol", None) if conn is not None else None
    if protocol is None or pd.isna(protocol):
        protocol = events["protocol"].iloc[0]
    confidence = getattr(conn, "app_confidence", None) if conn is not None else None
    answered = events["latency"].dropna()
    cells = [(link, True), (_e(protocol), False),
             ("" if confidence is None or pd.isna(confidence) else f"{float(confidence):.1f}",
              True), (str(len(events)), True), (_top(events["kind"]), False),
             (_top(events["channel"]), False), (str(len(answered)), True),
             (_duration(answered.median()) if len(answered) else "", True),
             (_duration(answered.max()) if len(answered) else "", True)]
    return "<tr>" + "".join(f'<td{" class=num" if n else ""}>{v}</td>' for v, n in cells) + \
        "</tr>"


def _app_anomalies(capture: Capture, source: str) -> str:
    """The ``app_*`` anomalies, the first :data:`MAX_APP_ANOMALY_ROWS`."""
    anomalies = capture.anomalies
    found = anomalies[anomalies["code"].astype(str).str.startswith("app_")]
    if found.empty:
        return '<p class="muted">No application anomaly.</p>'
    out = [('<table id="app-anomalies"><thead><tr><th class=num>conn</th><th>severity</th>'
            '<th>code</th><th>direction</th><th>time</th><th class=num>frame</th>'
            '<th>detail</th></tr></thead><tbody>')]
    for a in found.head(MAX_APP_ANOMALY_ROWS).itertuples(index=False):
        sev, direction = _e(a.severity), _e(a.direction)
        out.append(f'<tr><td class=num>{_e(a.conn_id)}</td>'
                   f'<td><span class="sev sev-{sev}">{sev}</span></td>'
                   f'<td><a href="#anomaly-{_e(a.code)}">{_e(a.code)}</a></td>'
                   f'<td class="dir-{direction}">{direction}</td><td>{_ts(a.ts)}</td>'
                   f'<td class=num>{_e(a.frame_index)}</td>'
                   f'<td>{_e(_visible(str(a.detail)))}</td></tr>')
    out.append("</tbody></table>")
    if len(found) > MAX_APP_ANOMALY_ROWS:
        out.append(_more(len(found) - MAX_APP_ANOMALY_ROWS, "application anomalies",
                         "anomalies", source))
    return "".join(out)


def _application(capture: Capture, sections: Sequence[int] = (), source: str = "") -> str:
    """The application section (empty without ``app`` rows): per connection
    its protocol, events by kind and channel, request/response latency
    (median and max over the answers paired with their request), then the
    application anomalies."""
    app = getattr(capture, "app", None)
    if app is None or app.empty:
        return ""
    conns = {int(c.conn_id): c for c in capture.connections.itertuples(index=False)}
    groups = list(app.groupby("conn_id", sort=True))
    listed = groups[:MAX_CONNECTION_ROWS]
    linked = set(sections)
    head = [("conn", True), ("protocol", False), ("confidence", True), ("events", True),
            ("kinds", False), ("channels", False), ("answers", True),
            ("latency median", True), ("latency max", True)]
    out = ['<h2 id="application">What the messages say</h2>',
           ('<p class="lead">The application protocol a decoder recognized on each connection '
            "(confidence 1.0 by the subprotocol, about 0.9 by the URI, up to 0.7 by the first "
            "messages) and what its messages say: events by kind and by channel (topic, event "
            "name, method...), and the time from a request to its answer (an ack, a response) "
            "for the answers paired with their request.</p>"),
           '<div class="scroll"><table id="app"><thead><tr>']
    out += [f'<th{" class=num" if n else ""}>{_e(h)}</th>' for h, n in head]
    out.append("</tr></thead><tbody>")
    out += [_app_row(int(cid), events, conns.get(int(cid)), linked) for cid, events in listed]
    out.append("</tbody></table></div>")
    if len(groups) > len(listed):
        out.append(_more(len(groups) - len(listed), "connections", "app", source))
    out.append("<h3>Application anomalies</h3>")
    out.append(_app_anomalies(capture, source))
    return "".join(out)


def _message_row(m: Any, t0: Any) -> str:
    direction = str(m.direction)
    arrow = "client → server" if direction == "c2s" else "server → client"
    flags = []
    if m.compressed:
        flags.append("deflate")
    if m.frames > 1:
        flags.append(f"{m.frames} frames")
    if not m.complete:
        flags.append("incomplete")
    kind = _e(m.type) + (f' <span class="muted">({_e(", ".join(flags))})</span>'
                         if flags else "")
    return (f'<tr><td class=num>{int(m.msg_index)}</td>'
            f'<td class=num>{(m.ts_end - t0).total_seconds():.6f}</td>'
            f'<td class="dir-{_e(direction)}">{arrow}</td><td>{kind}</td>'
            f'<td class=num>{int(m.length)}</td><td class=num>{int(m.wire_length)}</td>'
            f'<td class="payload">{_preview(m)}</td></tr>')


def _connection_section(capture: Capture, c: Any, sequence: str, max_messages: int,
                        source: str = "") -> str:
    cid = int(c.conn_id)
    out = [(f'<section class="conn" id="conn-{cid}"><h3>Connection {cid}: '
            f'{_e(c.client_ip)}:{_e(c.client_port)} → {_e(c.server_ip)}:{_e(c.server_port)} '
            f'{_text(c.uri)}</h3>')]
    fields = [("request", f"{_e(c.method)} {_e(_visible(str(c.uri)))}"
               if not pd.isna(c.uri) else "not captured (connection seen mid-stream)"),
              ("Host", _e(_visible(str(c.host))) if not pd.isna(c.host) else ""),
              ("Origin", _e(_visible(str(c.origin))) if not pd.isna(c.origin) else ""),
              ("User-Agent", _e(_visible(str(c.user_agent)))
               if not pd.isna(c.user_agent) else ""),
              ("credentials sent", ", ".join(n for n, v in (("Cookie", c.cookie),
                                                            ("Authorization", c.authorization))
                                             if v is True)),
              ("subprotocols offered → chosen",
               f"{_e(c.protocols_offered)} → {_e(c.subprotocol) or '(none)'}"
               if not pd.isna(c.protocols_offered) else _e(c.subprotocol)),
              ("extensions offered → accepted",
               f"{_e(c.extensions_offered)} → {_e(c.extensions) or '(none)'}"
               if not pd.isna(c.extensions_offered) else _e(c.extensions)),
              ("answer", f"{_e(c.status)} {_e(c.reason)}".strip()),
              ("Sec-WebSocket-Accept", "" if pd.isna(c.accept_valid) else
               ("correct" if bool(c.accept_valid) else "WRONG")),
              ("close (code, reason)",
               (f"client: {_e(c.close_code_c2s) or '–'} {_text(c.close_reason_c2s)} · "
                f"server: {_e(c.close_code_s2c) or '–'} {_text(c.close_reason_s2c)}")),
              ("TCP end", ", ".join(x for x, v in (("FIN from client", c.fin_c2s),
                                                    ("FIN from server", c.fin_s2c),
                                                    ("RST", c.rst)) if v) or "not seen")]
    stream = getattr(c, "h2_stream", None)
    if stream is not None and not pd.isna(stream):  # (a WebSocket over HTTP/2, RFC 8441)
        request = f"{fields[0][1]} (extended CONNECT, HTTP/2 stream {int(stream)})"
        fields[0] = ("request", request)
        fields[-1] = ("stream end", ", ".join(x for x, v in (
            ("ended by the client", c.fin_c2s), ("ended by the server", c.fin_s2c),
            ("reset", c.rst)) if v) or "not seen")
    out.append('<dl class="kv">' + "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>"
                                            for k, v in fields if v) + "</dl>")
    out.append(sequence)
    msgs = capture.messages[capture.messages.conn_id == cid]
    if msgs.empty:
        out.append('<p class="muted">No messages.</p></section>')
        return "".join(out)
    # The first and the last messages: how it started and how it ended.
    head = msgs.head((max_messages + 1) // 2)
    tail = msgs.tail(max_messages // 2) if len(msgs) > len(head) else msgs.head(0)
    if len(head) + len(tail) > len(msgs):
        tail = msgs.iloc[len(head):]
    left = len(msgs) - len(head) - len(tail)
    t0 = msgs.ts_start.min()
    out.append(f"<details open><summary>{len(msgs)} messages"
               + (f" (the first {len(head)} and the last {len(tail)} listed)" if left else "")
               + "</summary>")
    out.append('<table class="messages"><thead><tr><th class=num>#</th>'
               '<th class=num>time (s)</th><th>direction</th><th>type</th>'
               '<th class=num>bytes</th><th class=num>on wire</th><th>payload</th>'
               '</tr></thead><tbody>')
    out += [_message_row(m, t0) for m in head.itertuples(index=False)]
    if left:
        out.append(f'<tr class="gap"><td colspan=7 class="muted">… {left} more messages '
                   f'not listed here: <code>wspcap analyze {_e(source)} -o DIR</code> writes '
                   "them all (the messages table).</td></tr>")
    out += [_message_row(m, t0) for m in tail.itertuples(index=False)]
    out.append("</tbody></table></details></section>")
    return "".join(out)


def render_report(capture: Capture, max_messages: int = 200, title: str | None = None,
                  conns: Sequence[int] | None = None,
                  max_conns: int = MAX_CONNECTION_SECTIONS,
                  progress: Callable[[int, int], None] | None = None) -> str:
    """The report as one HTML string.

    Its size and the time to make it do not grow with the capture: the
    connections table lists the first MAX_CONNECTION_ROWS connections, each
    anomaly code its first MAX_ANOMALY_ROWS rows, and the chosen connections
    get a section with their first and last messages; each cut says how many
    rows it left out and that ``wspcap analyze -o`` writes them all.

    Args:
        capture: what to report on.
        max_messages: messages listed per connection (half from its start,
            half from its end).
        title: the page title (default: from the capture's source).
        conns: the connections that get a section (each must exist); None:
            the first ``max_conns``.
        max_conns: how many connections get a section when ``conns`` is None.
        progress: called with (figures drawn, figures to draw) after each.

    Raises:
        ConfigError: a connection in ``conns`` is not in the capture.
    """
    from wspcap.views.plot import choose_connections, left_out_note

    name = os.path.basename(capture.info.source) or "capture"
    title = title or f"WebSocket report: {name}"
    chosen, _ = choose_connections(capture, conns, max_conns)
    plots, sequences = _plots(capture, chosen, progress)
    sections = _connection_sections(capture, chosen, sequences, max_messages, name)
    application = _application(capture, chosen, name)
    note = left_out_note(capture, chosen, "sections")
    if note is not None:
        sections.insert(0, f'<p class="muted more">{_e(note)} '
                           "(<code>wspcap report</code>).</p>")
    return _page(capture, title, name, chosen, plots, application, sections)


def _connection_sections(capture: Capture, chosen: Sequence[int], sequences: dict[int, str],
                         max_messages: int, name: str) -> list[str]:
    """The sections of the ``chosen`` connections, in their order (``sequences``:
    their sequence diagrams, as :func:`_plots` drew them)."""
    wanted = set(chosen)
    by_id = {int(c.conn_id): c for c in capture.connections.itertuples(index=False)
             if int(c.conn_id) in wanted}
    return [_connection_section(capture, by_id[cid], sequences.get(cid, ""), max_messages, name)
            for cid in chosen]


def _page(capture: Capture, title: str, name: str, chosen: Sequence[int], plots: str,
          application: str, sections: list[str]) -> str:
    """The page around the parts made beforehand (the summary, connections
    table and anomalies are made here, in the page's order)."""
    from wspcap.constants import __version__

    app_link = '<a href="#application">Application</a>' if application else ""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>{_e(title)}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>{_e(title)}</h1>
<p>Every WebSocket conversation found in the capture, rebuilt from its packets by wspcap
{_e(__version__)} on {_e(now)}.</p>
</header>
<main>
<nav><a href="#summary">Summary</a><a href="#plots">Plots</a>
<a href="#connections-section">Connections</a><a href="#anomalies">Anomalies</a>
{app_link}<a href="#messages">Messages</a></nav>
<h2 id="summary">Summary</h2>
<p class="lead">WebSocket (RFC 6455) turns an HTTP request into a two-way channel: the client
asks to upgrade, the server answers <code>101 Switching Protocols</code>, then both sides send
<em>messages</em> (text or binary) cut into <em>frames</em>, plus control frames (ping, pong,
close). Below: who talked to whom, what they said, and anything that broke the protocol's
rules or deserves a second look (<em>anomalies</em>).</p>
{_summary(capture)}
<h2 id="plots">Plots</h2>
{plots}
<h2 id="connections-section">Connections</h2>
<p class="lead">One row per WebSocket connection (or upgrade attempt). “c→s” is client to
server, “s→c” server to client. Click an id for its handshake and messages.</p>
{_connections_table(capture, chosen, name)}
<h2 id="anomalies">Anomalies</h2>
{_anomalies(capture, name)}
{application}
<h2 id="messages">Connections in detail</h2>
{"".join(sections) or '<p class="muted">Nothing to show.</p>'}
</main>
</body>
</html>
"""


def write_report(capture: Capture, path: str | os.PathLike[str], max_messages: int = 200,
                 title: str | None = None, conns: Sequence[int] | None = None,
                 max_conns: int = MAX_CONNECTION_SECTIONS,
                 progress: Callable[[int, int], None] | None = None) -> str:
    """Write :func:`render_report` to ``path`` (UTF-8); return the path."""
    page = render_report(capture, max_messages, title, conns, max_conns, progress)
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return os.fspath(path)
