"""The ``app`` table: what the messages say, decoded by the application decoders.

Design note
-----------
The decoding itself is pure and per connection (:class:`wspcap.app.runner.Runner`).
This module is the table side: :class:`AppDecoding` takes the messages as they
leave the engine, as columns (:class:`MessageColumns`: the messages table's
columns, in parts, each part in per-connection order: ``read()`` gives the whole
table once, ``analyze -o`` gives one part per spill), and the handshake facts
of each connection (:func:`facts_of_row`: subprotocol, subprotocols offered,
URI, the request headers the connections table keeps). At the end
(:meth:`AppDecoding.finish`, given the connections table) it returns an
:class:`AppResult`: the ``app`` table, the extra anomaly rows, and the two
connection columns ``app_protocol`` and ``app_confidence``.

Cost. Only data messages (text, binary) reach a runner; once a connection's
runner has decided on no decoder, the rest of its messages are skipped by
slicing, so a capture no decoder applies to costs a few messages per
connection. Once it has chosen one, the rest of the connection's messages in
the part go to it as one :class:`~wspcap.app.base.MessageRun` of the part's
arrays (:class:`~wspcap.app.base.RunArrays`: views of the part's columns
grouped by connection once, :class:`_Grouped`; a column made a list only
where a decoder asks for it, the payloads not gathered; no record per
message), and only the messages that gave something get their references
made. Where the decoder offers columns
(:meth:`~wspcap.app.runner.Runner.feed_columns`: JSON-RPC), the rows come
as columns, their ``fields`` already text: nothing is made per row here;
their connection, message and references are taken at the part's end, with
NumPy, from the message columns, all at once into the table's arrays
(:meth:`AppDecoding._resolve`). Rows are gathered as columns, each kept in
the parts it came in (no list extended), and made into the table once:
Arrow arrays of the declared schema, made part by part and joined in Arrow
(:data:`~wspcap.tables.schema.APP`, whose ``protocol`` and ``kind`` are open
categoricals), then the DataFrame (:func:`~wspcap.tables.build.data_frame`,
which takes the table's numbers as they are: they are its own).

Locations. A row carries its message's references (``first_frame``,
``last_frame``, ``packet_start``, ``packet_end``) and ``ts``, the time the
message was complete (its ``ts_end``): the instant the receiver could act on
it, and the instant latencies are measured between. A finding becomes an
anomaly row at the message's first frame (``frame_index``, ``packet_start``,
``ts_start``), or at the connection (no frame) for a finding about no message.
``app_credentials_in_clear`` becomes ``app_credentials_plaintext`` (error)
when the connection is not TLS (plain ws://).

Events can name a message decoded earlier (a Socket.IO binary event is
reported once its attachments came, on its header's message): the references
of the last :data:`KEEP_REFS` messages of each connection are kept for them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pyarrow as pa

from wspcap.app import AppFinding, AppMessage, ConnFacts
from wspcap.app.base import NO_ANSWER, MessageRun, RunArrays
from wspcap.app.fields import Strings, Texts, fields_text
from wspcap.app.registry import DECODERS, load_entry_points
from wspcap.app.runner import AppRow, RowColumns, Runner
from wspcap.errors import ConfigError
from wspcap.rules.registry import Anomaly, severity_of
from wspcap.tables.arrays import from_python, numeric, strings
from wspcap.tables.build import (
    RunningIndex,
    arrow_table,
    chunks_array,
    empty_table,
    part_from_values,
)
from wspcap.tables.schema import APP, CONNECTIONS, DIRECTIONS
from wspcap.timestamps import TS_NULL
from wspcap.ws.frames import Opcode

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "AppDecoding",
    "AppResult",
    "MessageColumns",
    "check_decoder",
    "decode_tables",
    "facts_of_row",
    "message_columns",
    "record_columns",
]

#: Message references kept per connection for events about earlier messages.
KEEP_REFS = 1024
_DIRECTIONS = DIRECTIONS.names
_PLAINTEXT = {"app_credentials_in_clear": "app_credentials_plaintext"}
#: The Arrow type of the ``fields`` column.
_FIELDS = next(c.type for c in APP.columns if c.name == "fields")
#: The ``app`` text columns kept in the chunks they came in (see _texts).
_TEXT_COLUMNS = frozenset({"channel", "id"})
#: The ``app`` columns given as lists (the others: NumPy arrays, see AppDecoding.columns).
_LIST_COLUMNS = frozenset({"direction", "protocol", "kind", "channel", "id", "fields"})


class MessageColumns(NamedTuple):
    """Messages as columns (NumPy arrays or sequences of equal length)."""

    conn_id: np.ndarray
    msg_index: np.ndarray
    #: 0 for c2s, 1 for s2c.
    direction: np.ndarray
    #: True for text and binary messages.
    data: np.ndarray
    #: True for text.
    text: np.ndarray
    payload: Sequence[bytes]
    ts_start: np.ndarray
    ts_end: np.ndarray
    packet_start: np.ndarray
    packet_end: np.ndarray
    first_frame: np.ndarray
    last_frame: np.ndarray
    complete: np.ndarray
    #: Whether a payload may be spooled (``analyze -o``: read back with
    #: ``load()``); a messages table's never are.
    spooled: bool = True


def message_columns(messages: pd.DataFrame) -> MessageColumns:
    """The columns of a messages table (or a part of one) the decoding reads
    (views of the table's arrays where they can be: no copy)."""
    return MessageColumns(
        messages["conn_id"].to_numpy(np.int64), messages["msg_index"].to_numpy(np.int64),
        messages["direction"].cat.codes.to_numpy(np.int8),
        *_data_and_text(messages["opcode"].to_numpy()), messages["payload"].to_numpy(),
        messages["ts_start"].array.asi8, messages["ts_end"].array.asi8,
        messages["packet_start"].to_numpy(np.int64), messages["packet_end"].to_numpy(np.int64),
        messages["first_frame"].to_numpy(np.int64), messages["last_frame"].to_numpy(np.int64),
        messages["complete"].to_numpy(bool), spooled=False)


def _data_and_text(opcodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which messages a decoder reads (text and binary) and which are text,
    by opcode (a message's type is its opcode's name)."""
    return (opcodes == Opcode.TEXT) | (opcodes == Opcode.BINARY), opcodes == Opcode.TEXT


def _index_within(conn: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each conn_id, in record order."""
    order = np.argsort(conn, kind="stable")
    grouped = conn[order]
    starts = np.flatnonzero(np.diff(grouped, prepend=grouped[0] - 1))
    index = np.empty(len(conn), np.int64)
    index[order] = np.arange(len(conn)) - np.repeat(starts, np.diff(starts, append=len(conn)))
    return index


def record_columns(columns: Any, running: RunningIndex) -> MessageColumns:
    """The columns of ``Collector.message_columns()`` (not empty), for the
    streamed path (``analyze -o``); ``running`` numbers messages across parts."""
    (c, _nulls), keys = columns
    keys = np.asarray(keys, np.int64)
    conn = keys >> 1
    return MessageColumns(
        conn, running.advance(conn, _index_within(conn)), (keys & 1).astype(np.int8),
        *_data_and_text(np.asarray(c["opcode"])), c["payload"],
        np.asarray(c["ts_start"], np.int64), np.asarray(c["ts_end"], np.int64),
        np.asarray(c["packet_start"], np.int64), np.asarray(c["packet_end"], np.int64),
        np.asarray(c["first_frame"], np.int64), np.asarray(c["last_frame"], np.int64),
        np.asarray(c["complete"], bool))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def facts_of_row(row: Mapping[str, Any]) -> ConnFacts:
    """A connection's :class:`ConnFacts` from its connections-table row (or record)."""
    offered = _text(row.get("protocols_offered"))
    headers = {name: value for name, value in (
        ("host", _text(row.get("host"))), ("origin", _text(row.get("origin"))),
        ("user-agent", _text(row.get("user_agent")))) if value is not None}
    return ConnFacts(subprotocol=_text(row.get("subprotocol")),
                     offered=tuple(p.strip() for p in offered.split(",")) if offered else (),
                     uri=_text(row.get("uri")), headers=headers)


def check_decoder(name: str | None) -> str | None:
    """``name`` lower-cased if it is an installed decoder (ConfigError if not)."""
    if name is None:
        return None
    load_entry_points()
    if name.lower() not in DECODERS:
        raise ConfigError("decoder", f"{name!r} is not one of {', '.join(DECODERS)}")
    return name.lower()


class _Refs(NamedTuple):
    first_frame: int
    last_frame: int
    packet_start: int
    packet_end: int
    ts_start: int
    ts_end: int


#: The message columns a :class:`_Refs` is made of, in its order.
_REF_COLUMNS = ("first_frame", "last_frame", "packet_start", "packet_end", "ts_start", "ts_end")
#: Those an ``app`` row takes (``ts_end`` as its ``ts``).
_ROW_REFS = ("first_frame", "last_frame", "packet_start", "packet_end", "ts_end")


#: The ``app`` columns :meth:`AppDecoding._resolve` makes: the connection,
#: the message, its references (``ts`` its ``ts_end``), and the request an
#: answer answers (:data:`~wspcap.app.base.NO_ANSWER` for none).
_RESOLVED = ("conn_id", "msg_index", "first_frame", "last_frame", "packet_start",
             "packet_end", "ts", "request_msg", "latency")
#: Where each reference of _RESOLVED is in a row of :data:`_REF_COLUMNS`.
_RESOLVED_AT = tuple(_REF_COLUMNS.index(name) for name in _ROW_REFS)


class _Segment(NamedTuple):
    """Rows kept, for :meth:`AppDecoding._resolve`: ``size`` of them, of
    connection ``conn_id`` (or a conn_id each); ``refs``: their messages'
    rows in the part being fed (their references taken from it), or their
    references (a row each, :data:`_REF_COLUMNS` in order); ``msg_index``:
    theirs, or None where it is that of their rows; ``fixes``: (row, its
    references) of the rows about another message than theirs;
    ``request_msg`` and ``latency``: as :class:`~wspcap.app.runner.
    RowColumns` has them."""

    conn_id: int | np.ndarray
    size: int
    refs: np.ndarray
    msg_index: np.ndarray | None
    fixes: list[tuple[int, _Refs]]
    request_msg: np.ndarray | list[int | None]
    latency: np.ndarray | list[int | None]


class _Kept:
    """The references of a connection's last messages, in msg_index order, as
    columns: no record (and nothing for the garbage collector) per message.
    A run's references (:meth:`extend`) stay NumPy arrays after the lists
    until one is looked up or added after them: most never are (0.015 s a
    read of chat-jsonrpc, made into lists for nothing)."""

    __slots__ = ("cols", "index", "tail")

    def __init__(self) -> None:
        self.index: list[int] = []
        self.cols: list[list[int]] = [[] for _ in _REF_COLUMNS]
        #: (msg_index, references: one row per message, :data:`_REF_COLUMNS`
        #: in order), after the lists; None for none.
        self.tail: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.index) + (0 if self.tail is None else len(self.tail[0]))

    def _settle(self) -> None:
        """The arrays after the lists, moved into them."""
        if self.tail is not None:
            index, refs = self.tail
            self.tail = None
            self.index += index.tolist()
            for col, values in zip(self.cols, refs.T.tolist(), strict=True):
                col += values

    def add(self, index: int, refs: _Refs) -> None:
        """One message's references (after those kept)."""
        self._settle()
        self.index.append(index)
        for col, value in zip(self.cols, refs):
            col.append(value)

    def extend(self, index: np.ndarray, refs: np.ndarray) -> None:
        """Several messages' references (after those kept): their msg_index,
        and their references (a row each, :data:`_REF_COLUMNS` in order)."""
        if self.tail is not None:
            index = np.concatenate([self.tail[0], index])
            refs = np.concatenate([self.tail[1], refs])
        self.tail = (index, refs)

    def keep(self, count: int) -> None:
        """Keep the last ``count`` messages' references only."""
        tail = 0 if self.tail is None else len(self.tail[0])
        if tail >= count:
            assert self.tail is not None
            cut = tail - count
            self.tail = (self.tail[0][cut:], self.tail[1][cut:])
        drop = max(0, len(self.index) - max(0, count - tail))
        del self.index[:drop]
        for col in self.cols:
            del col[:drop]

    def get(self, index: int, default: _Refs | None) -> _Refs | None:
        """The references of message ``index``, or ``default``."""
        self._settle()
        j = bisect_left(self.index, index)
        if j < len(self.index) and self.index[j] == index:
            return _Refs._make(col[j] for col in self.cols)
        return default


@dataclass(slots=True)
class _Conn:
    runner: Runner
    refs: _Kept = field(default_factory=_Kept)
    last: _Refs | None = None
    done: bool = False


class _Grouped:
    """A part's data messages grouped by connection, each connection's in
    order (``rows``: their rows in the part ``m``), and the part's columns in
    that order, each taken once asked for: one gather a column for the part,
    not one a run (each of a connection's rows is far from the next where
    connections interleave: a run's gather went to memory for each). A run's
    columns are then views."""

    __slots__ = ("_cols", "m", "rows")

    def __init__(self, m: MessageColumns, rows: np.ndarray) -> None:
        self.m = m
        self.rows = rows
        self._cols: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        """Column ``name`` of the grouped messages (taken once)."""
        col = self._cols.get(name)
        if col is None:
            col = self._cols[name] = getattr(self.m, name)[self.rows]
        return col

    def take(self, name: str, lo: int, hi: int) -> np.ndarray:
        """Column ``name`` of the grouped messages ``lo`` to ``hi``: a view where
        the column was taken, else those few taken."""
        col = self._cols.get(name)
        return col[lo:hi] if col is not None else getattr(self.m, name)[self.rows[lo:hi]]

    def times(self) -> np.ndarray:
        """``ts_end`` of the grouped messages as a run has it: 0 where unknown."""
        col = self._cols.get("times")
        if col is None:
            col = self._cols["times"] = self.m.ts_end[self.rows]  # (a copy: written here)
            col[col == TS_NULL] = 0
        return col


@dataclass
class AppResult:
    """What decoding a capture gave.

    Attributes:
        table: the ``app`` table.
        anomalies: the anomaly rows of the findings, in report order (see
            :func:`~wspcap.tables.build.anomaly_part`).
        protocols: conn_id -> (decoder name, confidence), for the decoded connections.
    """

    table: pa.Table
    anomalies: list[Anomaly]
    protocols: dict[int, tuple[str, float]]

    def connection_columns(self, connections: pa.Table) -> pa.Table:
        """``connections`` (an Arrow table of :data:`~wspcap.tables.schema.
        CONNECTIONS`) with ``app_protocol`` and ``app_confidence`` filled."""
        ids = connections.column("conn_id").to_pylist()
        found = [self.protocols.get(i) for i in ids]
        for name, values in (("app_protocol", [p[0] if p else None for p in found]),
                             ("app_confidence", [p[1] if p else None for p in found])):
            at = CONNECTIONS.names.index(name)
            connections = connections.set_column(
                at, connections.schema.field(at), from_python(values, CONNECTIONS[name].type))
        return connections


class AppDecoding:
    """Decodes a capture's messages, part after part (see the module's note).

    Args:
        facts: conn_id -> that connection's :class:`ConnFacts` (asked once per
            connection, when its first message comes).
        decoder: a decoder name to force on every connection.
        enabled: False decodes nothing (every message is skipped).
    """

    def __init__(self, facts: Callable[[int], ConnFacts], decoder: str | None = None,
                 enabled: bool = True) -> None:
        self.facts = facts
        self.forced = check_decoder(decoder)
        self.enabled = enabled
        self.conns: dict[int, _Conn] = {}
        self.rows: list[tuple[int, _Refs, AppRow]] = []
        #: The rows as columns (the column path's, and those of :attr:`rows`
        #: before them), in order: each column the list of its parts (NumPy
        #: arrays for the integer columns, lists for :data:`_LIST_COLUMNS`),
        #: joined by :meth:`_table`.
        self.columns: dict[str, list[Any]] = {c.name: [] for c in APP.columns}
        #: The rows kept since the last :meth:`_resolve`, for the columns it
        #: makes (:data:`_RESOLVED`), in order.
        self._segments: list[_Segment] = []
        self.findings: list[tuple[int, _Refs | None, AppFinding]] = []
        #: Rows given by the messages, before those the runners' ends gave.
        self._fed = 0

    def feed(self, m: MessageColumns) -> None:
        """Decode one part of the messages (each connection's in order)."""
        if not self.enabled or not len(m.conn_id):
            return
        order = _grouped(m.conn_id)
        conns = m.conn_id[order]
        starts = np.flatnonzero(np.diff(conns, prepend=conns[0] - 1))
        ends = np.append(starts[1:], len(conns))
        # (a connection's data messages: from before[start] to before[end] of
        # the part's, grouped)
        data = m.data[order]
        before = np.zeros(len(order) + 1, np.int64)
        np.cumsum(data, out=before[1:])
        part = _Grouped(m, order[data])
        for start, end in zip(starts.tolist(), ends.tolist()):
            self._feed_conn(int(conns[start]), part, int(before[start]), int(before[end]))
        self._flush_rows()
        self._resolve(m)

    @staticmethod
    def _references(part: _Grouped, lo: int, hi: int) -> np.ndarray:
        """The references of the part's grouped messages ``lo`` to ``hi`` (a
        row each, :data:`_REF_COLUMNS` in order)."""
        return np.stack([part.take(name, lo, hi) for name in _REF_COLUMNS], axis=1)

    def _conn(self, conn_id: int) -> _Conn:
        conn = self.conns.get(conn_id)
        if conn is None:
            conn = self.conns[conn_id] = _Conn(Runner(self.facts(conn_id), self.forced))
        return conn

    def _feed_conn(self, conn_id: int, part: _Grouped, lo: int, hi: int) -> None:
        """Decode the connection's data messages of the part (its grouped
        messages ``lo`` to ``hi``)."""
        conn = self._conn(conn_id)
        if conn.done:
            return
        # While undecided, a few messages at a time: a connection no decoder
        # takes costs those few, whatever its length.
        runner = conn.runner
        head = 0 if runner.decided else min(max(runner.sniff - len(runner.held), 1), hi - lo)
        if head and not self._loop(conn_id, conn, part.rows[lo:lo + head], part.m):
            return
        if runner.decided and runner.decoder is not None and not runner.finished:
            self._run(conn_id, conn, part, lo + head, hi)
        else:
            self._loop(conn_id, conn, part.rows[lo + head:hi], part.m)
        if len(conn.refs) > 2 * KEEP_REFS:
            conn.refs.keep(KEEP_REFS)

    def _loop(self, conn_id: int, conn: _Conn, rows: np.ndarray, m: MessageColumns) -> bool:
        """Feed ``rows`` to the connection's runner; False once it decodes nothing."""
        runner = conn.runner
        if not rows.size or conn.done:
            return not conn.done
        columns = zip(m.msg_index[rows].tolist(), m.direction[rows].tolist(),
                      m.text[rows].tolist(), m.complete[rows].tolist(), rows.tolist(),
                      m.first_frame[rows].tolist(), m.last_frame[rows].tolist(),
                      m.packet_start[rows].tolist(), m.packet_end[rows].tolist(),
                      m.ts_start[rows].tolist(), m.ts_end[rows].tolist())
        payloads = m.payload
        refs = conn.refs
        here: _Refs | None = None
        for index, direction, text, complete, i, *where in columns:
            payload = payloads[i]
            if hasattr(payload, "load"):  # a spooled payload (analyze -o): read it back
                payload = payload.load()
            here = _Refs(*where)
            refs.add(index, here)
            out = runner.feed(AppMessage(index, _DIRECTIONS[direction],
                                         "text" if text else "binary", payload,
                                         0 if here.ts_end == TS_NULL else here.ts_end,
                                         complete))
            if out[0] or out[1]:
                conn.last = here
                self._take(conn_id, out[0], out[1], _known(conn))
            if runner.decided and runner.decoder is None:
                conn.done = True
                conn.refs = _Kept()
                return False
        conn.last = here
        return True

    def _run(self, conn_id: int, conn: _Conn, part: _Grouped, lo: int, hi: int) -> None:
        """Feed the part's grouped messages ``lo`` to ``hi`` to the
        connection's runner as one run (its decoder is chosen)."""
        if hi <= lo:
            return
        # The run of the part's arrays (each column a list only where a
        # decoder asks for it): views of the part's grouped columns; the
        # part's payloads where they are, or those of the run read back
        # (spooled, ``analyze -o``).
        m, rows = part.m, part.rows[lo:hi]
        if m.spooled:
            payloads = np.empty(len(rows), object)
            payloads[:] = _payloads(m.payload, rows)
            at = np.arange(len(rows), dtype=np.int64)
        else:
            assert isinstance(m.payload, np.ndarray)
            payloads, at = m.payload, np.ascontiguousarray(rows, np.int64)
        run = MessageRun.of_arrays(RunArrays(
            part["msg_index"][lo:hi], part["direction"][lo:hi], part["text"][lo:hi], payloads,
            at, part.times()[lo:hi], part["complete"][lo:hi]))
        # The references of the run's messages, as columns (made when needed).
        cols: list[list[int]] = []

        def ref_columns() -> list[list[int]]:
            if not cols:
                cols.extend(part.take(name, lo, hi).tolist() for name in _REF_COLUMNS)
            return cols

        columns = conn.runner.feed_columns(run)
        if columns is not None:
            self._take_columns(conn_id, conn, columns, part, lo, run, ref_columns)
        else:
            got = conn.runner.feed_run(run)
            for i, found, findings in got:
                self._take(conn_id, found, findings,
                           _finder(conn.refs, ref_columns(), run.msg_index, i))
        # What the message-by-message loop would keep before its trim (see
        # _feed_conn): the earlier ones would be trimmed anyway.
        last = max(lo, hi - 2 * KEEP_REFS - 1)
        refs = self._references(part, last, hi)
        conn.last = _Refs._make(refs[-1].tolist())
        conn.refs.extend(part["msg_index"][last:hi], refs)

    def _take_columns(self, conn_id: int, conn: _Conn, got: RowColumns, part: _Grouped,
                      lo: int, run: MessageRun,
                      ref_columns: Callable[[], list[list[int]]]) -> None:
        """Keep the rows and findings of a run decoded as columns (the run:
        the part's grouped messages from ``lo``): what :meth:`_take` keeps of
        the same rows, a column at a time."""
        events = got.events
        for i, finding in events.findings:
            k = finding.msg_index
            self.findings.append((conn_id, None if k is None else
                                  _finder(conn.refs, ref_columns(), run.msg_index, i)(k),
                                  finding))
        if not len(events):
            return
        msg_index = np.asarray(events.msg_index, np.int64)
        at = np.asarray(events.position, np.intp) + lo
        # (the events' references are taken at the part's end, see _resolve;
        # those of an event about another message, as _take finds them)
        other = np.flatnonzero(msg_index != part["msg_index"][at])
        fixes = []
        for j in other.tolist():
            there = _finder(conn.refs, ref_columns(), run.msg_index,
                            int(events.position[j]))(int(msg_index[j]))
            assert there is not None  # (a finder's default is ``here``)
            fixes.append((j, there))
        self._flush_rows()
        self._segments.append(_Segment(conn_id, len(events), part.rows[at],
                                       msg_index if fixes else None, fixes,
                                       got.request_msg, got.latency))
        self._extend({
            # (a run's own events are all of part 0: no array made of their list)
            "part": events.part if isinstance(events.part, np.ndarray) else
            np.array(events.part, np.int64) if any(events.part) else
            np.zeros(len(events), np.int64),
            "direction": events.direction, "protocol": events.protocol,
            "kind": events.kind, "channel": _string_part(events.channel, APP["channel"].type),
            "id": _string_part(events.id, APP["id"].type),
            "fields": events.fields,
        })

    def _take(self, conn_id: int, rows: list[AppRow], findings: list[AppFinding],
              find: Callable[[int], _Refs | None]) -> None:
        """Keep ``rows`` and ``findings``; ``find``: a msg_index's references."""
        for row in rows:
            refs = find(row.event.msg_index)
            if refs is not None:
                self.rows.append((conn_id, refs, row))
        for finding in findings:
            index = finding.msg_index
            self.findings.append((conn_id, None if index is None else find(index), finding))

    def finish(self, tls: Mapping[int, bool]) -> AppResult:
        """End every runner; the tables (``tls``: conn_id -> whether the
        connection is TLS, for the findings' codes)."""
        self._flush_rows()
        self._resolve(None)
        self._fed = sum(map(len, self.columns["conn_id"]))
        for conn_id, conn in self.conns.items():
            if not conn.done:
                rows, findings = conn.runner.finish()
                self._take(conn_id, rows, findings, _known(conn))
        protocols = {conn_id: (c.runner.protocol, c.runner.confidence)
                     for conn_id, c in self.conns.items() if c.runner.protocol is not None}
        return AppResult(self._table(), self._anomalies(tls),
                         {k: (str(v[0]), float(v[1])) for k, v in protocols.items()})

    def _flush_rows(self) -> None:
        """The rows kept one by one (:meth:`_take`) as a part of columns."""
        if not self.rows:
            return
        # (three passes: zip(*rows) over 250,000 rows took 0.6 s)
        conn = [x[0] for x in self.rows]
        refs = [x[1] for x in self.rows]
        rows = [x[2] for x in self.rows]
        events = [r.event for r in rows]
        # (np.array on a sequence of tuples takes each apart slowly: 5 us a row)
        r = np.fromiter(chain.from_iterable(refs), np.int64, 6 * len(refs)).reshape(-1, 6)
        self._segments.append(_Segment(
            np.array(conn, np.int64), len(rows), r,
            np.array([e.msg_index for e in events], np.int64), [],
            [x.request_msg for x in rows], [x.latency for x in rows]))
        self._extend({
            "part": np.array([e.part for e in events], np.int64),
            "direction": [e.direction for e in events],
            "protocol": [e.protocol for e in events],
            "kind": [e.kind for e in events],
            "channel": [e.channel for e in events],
            "id": [e.id for e in events],
            "fields": [e.fields for e in events],  # (written by _table)
        })
        self.rows = []

    def _resolve(self, m: MessageColumns | None) -> None:
        """The columns :data:`_RESOLVED` of the rows kept since the last call
        (:attr:`_segments`), as one part each: the references of a run's
        events taken from ``m`` (the part they came from) here, all at once,
        into the part's arrays (no array a run, joined again after: 14 MB
        less a read of chat-jsonrpc, and the message columns gathered from
        while they are in the CPU's caches)."""
        segments, self._segments = self._segments, []
        n = sum(s.size for s in segments)
        if not n:
            return
        # (one block for them all: NumPy asks the kernel for huge pages for a
        # block of 4 MiB or more, each a page fault where 4 KiB pages took
        # 512: 3,000 fewer faults on chat-jsonrpc, 7 ms in a fresh process)
        out = dict(zip(_RESOLVED, np.empty((len(_RESOLVED), n), np.int64), strict=True))
        refs = [out[name] for name in _RESOLVED[2:7]]
        a = 0
        for seg in segments:
            b = a + seg.size
            out["conn_id"][a:b] = seg.conn_id
            if seg.refs.ndim == 2:  # (given: a row each, _REF_COLUMNS in order)
                for col, k in zip(refs, _RESOLVED_AT, strict=True):
                    col[a:b] = seg.refs[:, k]
            else:  # (the rows of m whose references the events take)
                assert m is not None
                # (mode="clip": written into place, where "raise" writes into a
                # buffer first; the rows are m's, none to clip)
                for col, name in zip(refs, _ROW_REFS, strict=True):
                    np.take(getattr(m, name), seg.refs, out=col[a:b], mode="clip")
                for j, there in seg.fixes:
                    for col, k in zip(refs, _RESOLVED_AT, strict=True):
                        col[a + j] = there[k]
            if seg.msg_index is None:
                assert m is not None
                np.take(m.msg_index, seg.refs, out=out["msg_index"][a:b], mode="clip")
            else:
                out["msg_index"][a:b] = seg.msg_index
            for name, values in (("request_msg", seg.request_msg), ("latency", seg.latency)):
                out[name][a:b] = values if isinstance(values, np.ndarray) else [
                    NO_ANSWER if v is None else v for v in values]
            a = b
        self._extend(out)

    def _extend(self, part: Mapping[str, Any]) -> None:
        """Add rows given as columns (:data:`~wspcap.tables.schema.APP`'s:
        NumPy arrays, or lists for :data:`_LIST_COLUMNS`), kept as they are:
        :meth:`_table` joins each column's once (no list extended with each
        part: a reference counted per value, 0.1 us a row)."""
        for name, values in part.items():
            self.columns[name].append(values)

    def _table(self) -> pa.Table:
        """The ``app`` table of the rows kept (its schema: :data:`~wspcap.
        tables.schema.APP`; ``protocol`` and ``kind`` are open categoricals)."""
        self._flush_rows()
        self._resolve(None)
        if not any(map(len, self.columns["kind"])):
            return empty_table(APP)
        parts = self.columns
        columns: dict[str, Any] = {
            c.name: _texts(parts[c.name]) if c.name == "fields" else
            chunks_array(parts[c.name], c, chunked=c.name in _TEXT_COLUMNS)
            if c.name in _LIST_COLUMNS else _joined(parts[c.name], c.name in _RESOLVED)
            for c in APP.columns}
        for name in ("request_msg", "latency"):  # (NO_ANSWER: null)
            values = columns[name]
            null = values == NO_ANSWER
            columns[name] = numeric(values, APP[name].type, null if null.any() else None)
        order = _connection_order(columns["conn_id"], self._fed)
        if order is not None:  # (the Arrow columns taken in Arrow)
            at = numeric(order, pa.int64())
            columns = {name: values[order] if isinstance(values, np.ndarray) else
                       values.take(at) for name, values in columns.items()}
        self.columns = {c.name: [] for c in APP.columns}
        return arrow_table(APP, part_from_values(APP, columns))

    def _anomalies(self, tls: Mapping[int, Any]) -> list[Anomaly]:
        rows: list[Anomaly] = []
        for conn_id, refs, f in self.findings:
            code = f.code if tls.get(conn_id, False) is True else _PLAINTEXT.get(f.code, f.code)
            if refs is None:
                last = self.conns[conn_id].last
                rows.append(Anomaly(conn_id, last.ts_end if last else 0, f.direction, None,
                                    code, severity_of(code), f.detail, None, None))
            else:
                rows.append(Anomaly(conn_id, refs.ts_start, f.direction, refs.first_frame, code,
                                    severity_of(code), f.detail, refs.packet_start, None))
        return rows


def _joined(parts: list[np.ndarray], fresh: bool) -> np.ndarray:
    """A column's parts as one array: the part itself where there is one
    and it is ``fresh`` (an array of the table's alone: :meth:`AppDecoding.
    _resolve`'s), else a copy."""
    return parts[0] if fresh and len(parts) == 1 else np.concatenate(parts)


def _connection_order(conn: np.ndarray, fed: int) -> np.ndarray | None:
    """The rows in ``read()``'s order: the messages' rows (the first ``fed``)
    connection by connection, then the rows of the runners' ends, connection
    by connection, each connection's in the order they came; None when they
    are in it already (``read()`` feeds the messages once, in connection
    order). ``analyze -o`` feeds them a part at a time, each part in
    connection order, so a connection's rows are spread over the parts."""
    pieces = [conn[:fed], conn[fed:]]
    if all(bool((p[1:] >= p[:-1]).all()) for p in pieces):
        return None
    return np.concatenate([np.argsort(p, kind="stable") + start
                           for p, start in zip(pieces, (0, fed), strict=True)])


def _string_part(values: Sequence[str | None] | Strings, kind: pa.DataType
                 ) -> Sequence[str | None] | pa.Array:
    """A string column of a run's events: :class:`~wspcap.app.fields.Strings`
    (a compiled loop's) as ``kind``'s Arrow array (see :func:`_buffered`);
    anything else as it is."""
    return _buffered(values, kind) if type(values) is Strings else values


def _buffered(values: Texts | Strings, kind: pa.DataType) -> pa.Array:
    """Text in one buffer, as a compiled loop writes it, as ``kind``'s Arrow
    array made of its buffers as they are (null where a :class:`~wspcap.app.
    fields.Strings` says none)."""
    valid = getattr(values, "valid", None)
    validity = None if valid is None or valid.all() else pa.py_buffer(
        np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(kind, len(values), [
        validity, pa.py_buffer(values.offsets), pa.py_buffer(values.data)])


def _grouped(conn: np.ndarray) -> np.ndarray:
    """The order that groups the rows by connection, each group's in record
    order (a stable sort; NumPy's radix sort where the ids span under 2**16:
    0.7 ms for 250,000 rows, against 4.5 ms)."""
    low = int(conn.min())
    if int(conn.max()) - low < 1 << 16:
        return np.argsort((conn - low).astype(np.uint16), kind="stable")
    return np.argsort(conn, kind="stable")


def _texts(parts: list[list[Any] | Texts]) -> pa.ChunkedArray:
    """The ``fields`` column of the parts of rows: the column path's fields
    are text (a compiled loop's in one buffer, :class:`Texts`, taken as it
    is), but for the events it took from the reference path, and the
    other paths' are fields: those are written here (:func:`fields_text`),
    in the parts where Arrow finds some. Chunked as they came (the table's
    pandas column is made of the chunks as they are: no 25 MB joined on
    chat-jsonrpc)."""
    arrays = []
    for part in parts:
        if type(part) is Texts:
            arrays.append(_buffered(part, _FIELDS))
            continue
        try:  # (a part of text only, as the column path gives, at once)
            arrays.append(strings(part, _FIELDS, only=True))
        except TypeError:
            texts = [f if f is None or isinstance(f, str) else fields_text(f) for f in part]
            arrays.append(from_python(texts, _FIELDS))
    return pa.chunked_array([a for chunked in arrays for a in (
        chunked.chunks if isinstance(chunked, pa.ChunkedArray) else [chunked])], _FIELDS)


def _payloads(payloads: Sequence[bytes], rows: np.ndarray) -> list[bytes]:
    """The payloads at ``rows`` of a part whose payloads may be spooled
    (``analyze -o``): those read back."""
    if isinstance(payloads, np.ndarray):
        out: list[bytes] = payloads[rows].tolist()
    else:
        out = [payloads[i] for i in rows.tolist()]
    if set(map(type, out)) <= {bytes}:
        return out
    return [p.load() if hasattr(p, "load") else p for p in out]


def _known(conn: _Conn) -> Callable[[int], _Refs | None]:
    """msg_index -> references: those kept for ``conn``, else its last message's."""
    kept, last = conn.refs, conn.last
    return lambda k: kept.get(k, last)


def _finder(kept: _Kept, cols: list[list[int]], index: Sequence[int], at: int
            ) -> Callable[[int], _Refs | None]:
    """msg_index -> references, while the message at position ``at`` of a run
    (reference columns ``cols``, msg_index ``index``) is decoded: that message,
    those before it in the run, those kept from before the run, else that
    message (what the message-by-message loop finds)."""
    here = _Refs._make(col[at] for col in cols)

    def find(k: int) -> _Refs | None:
        if k >= index[at]:
            return here
        j = bisect_left(index, k, 0, at)
        if j < at and index[j] == k:
            return _Refs._make(col[j] for col in cols)
        return kept.get(k, here)
    return find


def decode_tables(connections: pa.Table, messages: pd.DataFrame, options: Any = None
                  ) -> tuple[pa.Table, list[Anomaly], pa.Table]:
    """The whole-capture path (``read()``): connections with the app columns
    (an Arrow table), the decoders' anomaly rows, and the ``app`` table
    (``messages``: the messages DataFrame).

    ``options``: an :class:`~wspcap.engine.Options` (its ``decoder`` and
    ``decoders``), or None for the defaults.
    """
    decoding = AppDecoding(facts_table(connections), getattr(options, "decoder", None),
                           getattr(options, "decoders", True))
    decoding.feed(message_columns(messages))
    result = decoding.finish(tls_of(connections))
    return result.connection_columns(connections), result.anomalies, result.table


def tls_of(connections: pa.Table) -> dict[int, bool]:
    """conn_id -> whether the connection is TLS, from a connections table."""
    return dict(zip(connections.column("conn_id").to_pylist(),
                    connections.column("tls").to_pylist(), strict=True))


def facts_table(connections: pa.Table) -> Callable[[int], ConnFacts]:
    """conn_id -> :class:`ConnFacts`, from a connections table."""
    cols = ["conn_id", "subprotocol", "protocols_offered", "uri", "host", "origin", "user_agent"]
    rows = {int(r["conn_id"]): r for r in connections.select(cols).to_pylist()}
    return lambda conn_id: facts_of_row(rows.get(conn_id, {}))

