"""The :class:`Capture`: the four tables of a capture and what they came from."""

from __future__ import annotations

import contextlib
import gc
import html
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from wspcap.pipeline import Collector, Options, Pipeline
from wspcap.rules.thresholds import Thresholds
from wspcap.sources import CaptureFile, PacketRecord, open_capture
from wspcap.sources.keys import read_key_logs
from wspcap.tables import anomalies_table, connections_table, frames_table, messages_table
from wspcap.tls import KeyLog

__all__ = ["Capture", "CaptureInfo", "TablesWriter", "Written", "analyze_to", "from_packets",
           "read"]

#: :func:`analyze_to` writes when this many file bytes were read, or this much
#: message payload collected, since it last wrote.
SPILL_BYTES = 4 << 20
#: ... which it looks at every time this many more file bytes were read.
LOOK_BYTES = 1 << 20


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
    """

    def __init__(self, connections: pd.DataFrame, frames: pd.DataFrame,
                 messages: pd.DataFrame, anomalies: pd.DataFrame,
                 info: CaptureInfo | None = None) -> None:
        self.connections = connections
        self.frames = frames
        self.messages = messages
        self.anomalies = anomalies
        self.info = info or CaptureInfo()

    @classmethod
    def from_collector(cls, col: Collector, info: CaptureInfo) -> Capture:
        """Build the tables from the pipeline's records."""
        return cls(connections_table(col), frames_table(col), messages_table(col),
                   anomalies_table(col), info)

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
        """Write the four tables as Parquet files; return their paths."""
        from wspcap.export import write_tables
        return write_tables(self, directory, "parquet")

    def to_csv(self, directory: str | os.PathLike[str]) -> list[str]:
        """Write the four tables as CSV files (payloads in hex)."""
        from wspcap.export import write_tables
        return write_tables(self, directory, "csv")

    def to_jsonl(self, directory: str | os.PathLike[str]) -> list[str]:
        """Write the four tables as JSON lines (payloads in hex)."""
        from wspcap.export import write_tables
        return write_tables(self, directory, "jsonl")


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while records pile up.

    The records are tuples of bytes, ints and strings: they form no cycles,
    but every one is tracked, so the collector keeps re-walking millions of
    them. Measured on a 310,258-packet capture (250,520 frames): 5.3 s with
    the collector running, 3.1 s with it paused.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _printable(payload: bytes) -> bool:
    """Valid UTF-8 without control characters (a ping payload worth showing as text)."""
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return text.isprintable()


def from_packets(packets: Iterable[PacketRecord], source: str = "",
                 options: Options | None = None,
                 thresholds: Thresholds | Mapping[str, Any] | None = None) -> Capture:
    """Analyze packets from any source (a list, a live capture, a test).

    Args:
        packets: :class:`~wspcap.sources.PacketRecord` tuples in capture order.
        source: a name for :attr:`CaptureInfo.source`.
        options: engine limits.
        thresholds: limits of the anomaly rules, as in :func:`read`.
    """
    options = _with_thresholds(options, thresholds)
    pipeline = Pipeline(options)
    receive = pipeline.receive_packet
    with paused_gc():
        for number, ts, linktype, data, _wirelen in packets:
            receive(number, ts, linktype, data)
        return _finish(pipeline, CaptureInfo(source, "packets"), None)


def _take_secrets(cap: CaptureFile, pipeline: Pipeline) -> None:
    """TLS secrets embedded in the capture (pcapng Decryption Secrets Blocks)."""
    for secrets in cap.secrets:
        pipeline.receive_secrets(secrets)
    cap.secrets.clear()


#: What the ``keylog`` parameters take: key log file(s), or a KeyLog.
KeylogArg = str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | KeyLog | None


def _with_keylog(options: Options | None, keylog: KeylogArg) -> Options | None:
    """``options`` with the key log named added to the one they carry (ConfigError
    for a file that cannot be read)."""
    if keylog is None:
        return options
    log = keylog if isinstance(keylog, KeyLog) else KeyLog(read_key_logs(keylog))
    options = options or Options()
    if options.keylog is not None and options.keylog is not log:
        merged = KeyLog()
        merged.update(options.keylog)
        merged.update(log)
        log = merged
    return replace(options, keylog=log)


def _with_thresholds(options: Options | None,
                     thresholds: Thresholds | Mapping[str, Any] | None) -> Options | None:
    """``options`` with the anomaly thresholds set (checked: ConfigError)."""
    if thresholds is None:
        return options
    return replace(options or Options(), thresholds=Thresholds.coerce(thresholds))


def _finish(pipeline: Pipeline, info: CaptureInfo, truncated: str | None,
            corrupt: bool = False) -> Capture:
    return Capture.from_collector(_finish_records(pipeline, info, truncated, corrupt=corrupt),
                                  info)


def _finish_records(pipeline: Pipeline, info: CaptureInfo, truncated: str | None,
                    check: bool = True, corrupt: bool = False) -> Collector:
    """End the pipeline, fill in ``info``, return the records (``corrupt``:
    the file is damaged where reading stopped, see :class:`CaptureFile`)."""
    col = pipeline.finish(truncated, check, corrupt)
    info.packets = pipeline.packets
    info.tcp_connections = pipeline.sessions_seen
    info.truncated = truncated
    d = pipeline.decoder
    info.counters = {"not_tcp": d.not_tcp, "malformed": d.malformed,
                     "ip_fragments": d.fragments, "snap_length_cut": pipeline.snap_cut}
    return col


def read(path: str | os.PathLike[str], options: Options | None = None,
         progress: Callable[[int], None] | None = None,
         shard: tuple[int, int] | None = None,
         thresholds: Thresholds | Mapping[str, Any] | None = None,
         keylog: KeylogArg = None) -> Capture:
    """Read a pcap or pcapng file (optionally gzip-compressed) into tables.

    Args:
        path: the capture file.
        options: engine limits (:class:`~wspcap.pipeline.Options`).
        progress: called after each block of the file is read (never per
            packet) with the bytes of the file read so far, out of its size
            on disk (``os.path.getsize``; compressed bytes for a gzip file).
        shard: ``(i, n)`` keeps only the connections of shard ``i`` out of
            ``n`` (split by a stable hash of the 4-tuple), so ``n`` readers can
            share one file; see :func:`wspcap.read_many`.
        thresholds: limits of the anomaly rules
            (:class:`~wspcap.rules.thresholds.Thresholds`, or a mapping of
            threshold names to values); the defaults if None.
        keylog: TLS key log file(s) in the NSS format (``SSLKEYLOGFILE``), or
            a :class:`~wspcap.tls.KeyLog`, to decrypt wss:// connections.

    Returns:
        A :class:`Capture`. A file that ends mid-packet (or whose gzip stream
        is cut) still gives everything before that point;
        :attr:`CaptureInfo.truncated` says so and the anomalies table has a
        ``capture_truncated`` row. A damaged file (corrupt gzip data or
        checksum, an impossible record header) gives everything before the
        damage, with a ``capture_corrupt`` row. Packets whose timestamps
        int64 nanoseconds cannot hold are kept with a null ``ts`` and a
        ``capture_timestamp_invalid`` row.

    Raises:
        CaptureFormatError: the file is missing or is not a capture.
        ConfigError: ``shard`` is not ``(i, n)`` with ``0 <= i < n``.
    """
    if shard is not None:
        from wspcap.errors import ConfigError
        i, n = shard
        if not (isinstance(i, int) and isinstance(n, int) and 0 <= i < n):
            raise ConfigError("shard", f"{shard!r} is not (i, n) with 0 <= i < n")
        options = replace(options or Options(), shard=(i, n))
    options = _with_keylog(_with_thresholds(options, thresholds), keylog)
    pipeline = Pipeline(options)
    receive = pipeline.receive_batch
    with open_capture(path) as cap, paused_gc():
        cap.progress = progress
        for batch in cap.batches():
            if cap.secrets:
                _take_secrets(cap, pipeline)
            receive(batch)
        info = CaptureInfo(os.fspath(path), cap.format)
        truncated = cap.truncated
        return _finish(pipeline, info, truncated, cap.corrupt)


@dataclass
class Written:
    """What :func:`analyze_to` wrote, and the small tables it kept.

    Attributes:
        paths: the four files, in the order connections, frames, messages,
            anomalies.
        connections: the connections table.
        anomalies: the anomalies table.
        info: a :class:`CaptureInfo`.
    """

    paths: list[str]
    connections: pd.DataFrame
    anomalies: pd.DataFrame
    info: CaptureInfo


def analyze_to(path: str | os.PathLike[str], directory: str | os.PathLike[str],
               fmt: str = "parquet", options: Options | None = None,
               progress: Callable[[int], None] | None = None,
               thresholds: Thresholds | Mapping[str, Any] | None = None,
               spill_bytes: int = SPILL_BYTES, keylog: KeylogArg = None) -> Written:
    """Read a capture and write its four tables, in memory that neither payload
    size nor the number of connections grows.

    The same tables as ``read(path)`` followed by writing them (same rows, same
    order), but frames and messages are written while the capture is read,
    every ``spill_bytes`` of file or of message payload (inflation can make
    more of the second). What stays in memory is, for the connections still
    open, a few dozen bytes per frame and message (packed into columns,
    without data payloads, for the cross-record rules); a connection that
    has ended is checked then and its records are let go of. The connections
    and anomalies tables are kept whole.

    Args:
        path: the capture file.
        directory: where the tables go (created if missing).
        fmt: ``parquet`` (row groups), ``csv`` or ``jsonl``.
        options, progress, thresholds, keylog: as for :func:`read`.
        spill_bytes: bytes of file, or of message payload, between two
            writes (looked at every LOOK_BYTES of file; 0 writes after every
            packet).

    Returns:
        A :class:`Written`.

    Raises:
        CaptureFormatError: the file is missing or is not a capture.
        ConfigError: an unknown format.
    """
    options = _with_keylog(_with_thresholds(options, thresholds), keylog)
    pipeline = Pipeline(options)
    receive = pipeline.receive_batch
    tables = TablesWriter(pipeline, directory, fmt, spill_bytes, spool=True)
    with open_capture(path) as cap, paused_gc():
        cap.progress = progress
        for batch in cap.batches():
            if cap.secrets:
                _take_secrets(cap, pipeline)
            receive(batch)
            tables.look(cap.position)
        info = CaptureInfo(os.fspath(path), cap.format)
        truncated, corrupt = cap.truncated, cap.corrupt
    _finish_records(pipeline, info, truncated, check=False, corrupt=corrupt)
    return tables.close(info)


class TablesWriter:
    """Writes a pipeline's frames and messages while it runs (for
    :func:`analyze_to`, and live capture into a directory), so that memory
    holds neither every payload nor every record.

    Call :meth:`look` after feeding the pipeline, and :meth:`close` after
    ``pipeline.finish(check=False)``.

    Args:
        pipeline: the pipeline whose collector is written.
        directory: where the tables go (created if missing).
        fmt: ``parquet`` (row groups), ``csv`` or ``jsonl``.
        spill_bytes: bytes of input, or of message payload, between two
            writes (looked at every LOOK_BYTES of input; 0 writes every time;
            SPILL_BYTES by default).
        spool: put large inflated payloads aside in a temporary file in
            ``directory`` until they are written
            (:class:`~wspcap.export.PayloadSpool`), so that they do not wait
            in memory for the end of the block of input that made them; for
            a caller that reads no payload from the collector meanwhile.

    Attributes:
        writes: how many times the records were written and packed so far
            (each time, the collector's unpacked record lists start empty).

    Raises:
        ConfigError: an unknown format.
    """

    def __init__(self, pipeline: Pipeline, directory: str | os.PathLike[str],
                 fmt: str = "parquet", spill_bytes: int | None = None,
                 spool: bool = False) -> None:
        from wspcap.export import PayloadSpool, TableStream

        self.pipeline = pipeline
        self.stream = TableStream(directory, fmt)
        if spool:
            pipeline.collector.spool = self.stream.spool = PayloadSpool(directory)
        self.spill_bytes = SPILL_BYTES if spill_bytes is None else spill_bytes
        self.writes = 0
        self._written_at = 0  # input position at the last write
        self._next_look = 0

    def look(self, position: int) -> bool:
        """After input up to ``position`` bytes: write the records gathered
        since the last write, when ``spill_bytes`` of input or of message
        payload (inflation can make more of the second) came since; then run
        the checks of the connections that have ended and let go of their
        records. Returns True when it looked (every LOOK_BYTES of input)."""
        if position < self._next_look:
            return False
        self._next_look = position + min(LOOK_BYTES, self.spill_bytes)
        col = self.pipeline.collector
        if (position - self._written_at >= self.spill_bytes
                or self.stream.unwritten_bytes(col) >= self.spill_bytes):
            self.pipeline.release_inflated(self.stream.spill(col))
            self.pipeline.check_ended()
            gc.collect(0)  # what building the part's tables left behind
            self._written_at = position
            self.writes += 1
        return True

    def close(self, info: CaptureInfo) -> Written:
        """Write what is left, run the remaining checks (a group of
        connections at a time), and write the connections and anomalies."""
        col = self.pipeline.collector
        self.pipeline.release_inflated(self.stream.spill(col))
        self.writes += 1
        self.pipeline.check_packed()
        connections, anomalies = connections_table(col), anomalies_table(col)
        return Written(self.stream.close(connections, anomalies), connections, anomalies, info)
