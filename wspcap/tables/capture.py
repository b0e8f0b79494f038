"""The :class:`Capture`: the tables of a capture (the four, and ``app``) and what they came from."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wspcap.engine import Collector, Options
from wspcap.tables.build import (
    anomaly_part,
    arrow_table,
    connection_part,
    data_frame,
    empty_table,
    frames_table,
    messages_table,
)
from wspcap.tables.schema import ANOMALIES, APP, CONNECTIONS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Capture", "CaptureInfo"]


@dataclass
class CaptureInfo:
    """Where a capture came from and how reading it went.

    Attributes:
        source: the file name (or interface) read.
        format: ``pcap``, ``pcapng`` (``.gz`` when compressed) or ``live``.
        packets: packets read.
        tcp_connections: TCP connections seen (WebSocket or not).
        truncated: why reading stopped early, or None.
        counters: packets passed over, by reason.
    """

    source: str = ""
    format: str = ""
    packets: int = 0
    tcp_connections: int = 0
    truncated: str | None = None
    counters: dict[str, int] = field(default_factory=dict)


class Capture:
    """Every WebSocket conversation in a capture, as four DataFrames.

    Attributes:
        connections: one row per WebSocket connection (or upgrade attempt).
        frames: one row per frame.
        messages: one row per message, control frames included.
        anomalies: one row per anomaly, joinable on ``conn_id`` and
            ``frame_index``.
        info: a :class:`CaptureInfo`.
        app: one row per application event (see :mod:`wspcap.tables.app`),
            joinable on ``conn_id`` and ``msg_index``.
    """

    def __init__(self, connections: pd.DataFrame, frames: pd.DataFrame,
                 messages: pd.DataFrame, anomalies: pd.DataFrame,
                 info: CaptureInfo | None = None, app: pd.DataFrame | None = None) -> None:
        self.connections = connections
        self.frames = frames
        self.messages = messages
        self.anomalies = anomalies
        self.info = info or CaptureInfo()
        self.app = data_frame(APP, empty_table(APP)) if app is None else app

    @classmethod
    def from_collector(cls, col: Collector, info: CaptureInfo,
                       options: Options | None = None, release: bool = False) -> Capture:
        """Build the tables from the pipeline's records (``options``: the
        application decoding's, see :func:`wspcap.tables.app.decode_tables`;
        ``release``: ``col``'s frames and messages are let go of once their
        tables are made, see :meth:`Collector.release`: for a caller that
        makes its tables once)."""
        messages = messages_table(col)
        # (the frames before the decoding: made in the memory the reading let
        # go of, as without decoding; after it, where the app table's columns
        # hold that memory, they were faulted in afresh, 40 MB on chat-jsonrpc)
        frames = frames_table(col)
        if release:
            # (and the decoding made in the records' memory: 8,000 page faults
            # fewer, decode_tables 0.14 -> 0.095 s on chat-jsonrpc in a
            # fresh process)
            col.release()
        # -- application decoding (issue 18) --
        from wspcap.tables.app import decode_tables
        connections, found, app = decode_tables(
            arrow_table(CONNECTIONS, connection_part(col)), messages, options)
        return cls(data_frame(CONNECTIONS, connections), frames, messages,
                   data_frame(ANOMALIES, anomaly_part(col, found)), info,
                   data_frame(APP, app, owned=True))

    def _counts(self) -> str:
        """``1 connection, 3 frames, ...``: the tables' rows, singular where one."""
        def n(count: int, word: str, words: str) -> str:
            return f"{count} {word if count == 1 else words}"
        return (f"{n(len(self.connections), 'connection', 'connections')}, "
                f"{n(len(self.frames), 'frame', 'frames')}, "
                f"{n(len(self.messages), 'message', 'messages')}, "
                f"{n(len(self.anomalies), 'anomaly', 'anomalies')}")

    def __repr__(self) -> str:
        return f"<Capture {self.info.source!r}: {self._counts()}>"

    def _repr_html_(self) -> str:
        counts = self._counts()
        if len(self.anomalies):
            sev = self.anomalies.severity.astype(str).value_counts()
            top = self.anomalies.code.astype(str).value_counts().head(5)
            counts += (" (" + ", ".join(f"{int(sev[s])} {s}" for s in ("error", "warning",
                                                                       "info") if s in sev)
                       + "; most frequent: " + ", ".join(
                           f"{html.escape(code)} ×{int(n)}" for code, n in top.items()) + ")")
        cols = ["conn_id", "client_ip", "client_port", "server_ip", "server_port", "uri",
                "status", "subprotocol", "permessage_deflate", "frames", "messages"]
        table = self.connections[cols].head(20).to_html(index=False, na_rep="")
        return (f"<div><b>wspcap capture</b> {html.escape(self.info.source)}: "
                f"{counts}{table}</div>")

    def conversation(self, conn_id: int, width: int = 100) -> str:
        """A readable transcript of one connection's messages.

        Args:
            conn_id: the connection.
            width: previews are cut to this many characters.
        """
        conn = self.connections[self.connections.conn_id == conn_id]
        if conn.empty:
            raise KeyError(f"no connection {conn_id}")
        c = conn.iloc[0]
        uri = c.uri if isinstance(c.uri, str) else "(handshake not captured)"
        lines = [f"connection {conn_id}: {c.client_ip}:{c.client_port} -> "
                 f"{c.server_ip}:{c.server_port} {uri}".rstrip()]
        msgs = self.messages[self.messages.conn_id == conn_id]
        t0 = msgs.ts_start.min() if len(msgs) else None
        for m in msgs.itertuples(index=False):
            arrow = "->" if m.direction == "c2s" else "<-"
            if isinstance(m.text, str):
                body = repr(m.text)
            elif m.type == "close":
                import pandas as pd

                reason = m.close_reason if isinstance(m.close_reason, str) else ""
                code = "" if pd.isna(m.close_code) else m.close_code
                body = f"code={code} reason={reason!r}"
            elif m.type in ("ping", "pong") and _printable(m.payload):
                body = repr(bytes(m.payload).decode("utf-8"))
            else:
                body = bytes(m.payload[:width // 2]).hex(" ")
            if len(body) > width:
                body = body[:width - 3] + "..."
            rel = (m.ts_end - t0).total_seconds() if t0 is not None else 0.0
            lines.append(f"{rel:10.6f} {arrow} {m.type:<6} {m.length:>7} B  {body}")
        return "\n".join(lines)

    def to_parquet(self, directory: str | os.PathLike[str]) -> list[str]:
        """Write the tables (the four, then ``app``) as Parquet files; return their paths."""
        from wspcap.tables.export import write_tables
        return write_tables(self, directory, "parquet")

    def to_csv(self, directory: str | os.PathLike[str]) -> list[str]:
        """Write the tables as CSV files (payloads in hex)."""
        from wspcap.tables.export import write_tables
        return write_tables(self, directory, "csv")

    def to_jsonl(self, directory: str | os.PathLike[str]) -> list[str]:
        """Write the tables as JSON lines (payloads in hex)."""
        from wspcap.tables.export import write_tables
        return write_tables(self, directory, "jsonl")

def _printable(payload: bytes) -> bool:
    """Valid UTF-8 without control characters (a ping payload worth showing as text)."""
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return text.isprintable()
