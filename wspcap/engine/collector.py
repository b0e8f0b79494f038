"""Record storage: the :class:`Collector` of the records the engine makes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from wspcap.engine.options import Options
from wspcap.rules.context import ConnFacts, Finding
from wspcap.rules.registry import RULES, Anomaly
from wspcap.tls import KeyLog
from wspcap.tls.session import HoldBudget
from wspcap.ws.deflate import InflateBudget
from wspcap.ws.frames import Frame
from wspcap.ws.messages import Message
from wspcap.ws.records import (
    FRAME_PACKING,
    MESSAGE_PACKING,
    Columns,
    Packed,
    RecordView,
    concat_columns,
    to_columns,
)

__all__ = ["Collector", "Connection", "Shared"]


class Connection(Protocol):
    """What the collector and the tables need of a connection (the engine's
    :class:`~wspcap.engine.session.Session`)."""

    conn_id: int | None
    nframes: int
    nmessages: int

    def record(self) -> dict[str, Any]:
        """The connection's row for the connections table."""
        ...

    def facts(self) -> ConnFacts:
        """What the cross-record rules read of the connection."""
        ...

class Collector:
    """Records produced by the pipeline, kept column-friendly.

    The records of each kind, in order, are: those packed (:meth:`pack`,
    without data payloads), then the columns the block path added
    (``frame_chunks``/``message_chunks``, see :meth:`add_columns`), then the
    named tuples the per-packet path added (``frames``/``messages``). Each
    record has a key, ``conn_id * 2 + (1 if s2c else 0)`` (``frame_keys``/
    ``message_keys`` for the tuples). :meth:`frame_view` and
    :meth:`message_view` give every record; :meth:`frame_columns` and
    :meth:`message_columns` those not packed yet, as columns. ``findings``
    holds what the cross-record checks found about connections that ended
    and were checked early (see :meth:`Pipeline.check_ended`) until they
    join ``anomalies`` at the end.
    """

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.frame_keys: list[int] = []
        self.messages: list[Message] = []
        self.message_keys: list[int] = []
        self.anomalies: list[Anomaly] = []
        self.sessions: list[Connection] = []  # WebSocket connections, by conn_id
        self.packed_frames = Packed(Frame, FRAME_PACKING)
        self.packed_messages = Packed(Message, MESSAGE_PACKING)
        self.frame_chunks = Packed(Frame, FRAME_PACKING, keep_data=True)
        self.message_chunks = Packed(Message, MESSAGE_PACKING, keep_data=True)
        self.findings: list[Finding] = []
        #: Called with each inflated message before it is kept, and keeps what
        #: it returns: a writer that streams the tables (see
        #: :class:`wspcap.tables.export.PayloadSpool`) puts large payloads aside there.
        self.spool: Callable[[Message], Message] | None = None
        #: The object columns of the records let go of (see :meth:`release`).
        self._released: list[Any] = []

    @classmethod
    def part(cls, frames: Packed, messages: Packed, anomalies: list[Anomaly]) -> Collector:
        """Packed records of some connections, and the anomalies they are to be
        checked with: what :func:`wspcap.rules.checks.check_connections` reads."""
        part = cls()
        part.packed_frames = frames
        part.packed_messages = messages
        part.anomalies = anomalies
        return part

    def found(self, findings: list[Finding]) -> None:
        """The cross-record checks found these about connections checked early
        (they join :attr:`anomalies` with :meth:`concluded`)."""
        self.findings += findings

    def concluded(self, anomalies: list[Anomaly]) -> None:
        """Every check has run: ``anomalies`` (the findings, ``findings``
        included, in order) join the parsers' own."""
        self.anomalies += anomalies
        self.findings = []

    def keep_with(self, spool: Callable[[Message], Message]) -> None:
        """From now on each inflated message goes through ``spool`` before it
        is kept (see :attr:`spool`)."""
        self.spool = spool

    def anomaly(self, conn_id: int | None, ts: int, direction: str | None,
                frame_index: int | None, code: str, detail: str, packet: int | None,
                offset: int | None = None) -> None:
        self.anomalies.append(Anomaly(conn_id, ts, direction, frame_index, code,
                                      RULES[code].severity, detail, packet, offset))

    @contextlib.contextmanager
    def diverted(self, messages: list[Message], keys: list[int],
                 anomalies: list[Anomaly]) -> Iterator[None]:
        """Messages and anomalies added meanwhile go to the given lists
        instead, for a caller that puts them in order itself (the block path:
        see :mod:`wspcap.engine.runs`)."""
        saved = self.messages, self.message_keys, self.anomalies
        self.messages, self.message_keys, self.anomalies = messages, keys, anomalies
        try:
            yield
        finally:
            self.messages, self.message_keys, self.anomalies = saved

    @property
    def unpacked(self) -> bool:
        """Some frame or message is not packed."""
        return bool(self.frames or self.messages or len(self.frame_chunks)
                    or len(self.message_chunks))

    def add_columns(self, frames: tuple[Columns, np.ndarray] | None,
                    messages: tuple[Columns, np.ndarray] | None,
                    frames_from: int, messages_from: int) -> None:
        """Records as columns with their keys, after the tuples before
        ``frames_from``/``messages_from``, in place of those after them (which
        the columns must include)."""
        for chunks, cols, records, keys, start in (
                (self.frame_chunks, frames, self.frames, self.frame_keys, frames_from),
                (self.message_chunks, messages, self.messages, self.message_keys,
                 messages_from)):
            if cols is None:
                continue
            if start:
                chunks.add_columns(*to_columns(records[:start], chunks.packing), keys[:start])
            chunks.add_columns(*cols[0], cols[1])
            del records[:], keys[:]

    def frame_columns(self) -> tuple[Columns, np.ndarray]:
        """The frames not packed yet, as columns, and their keys."""
        return _tail_columns(self.frame_chunks, self.frames, self.frame_keys)

    def message_columns(self) -> tuple[Columns, np.ndarray]:
        """The messages not packed yet, as columns, and their keys."""
        return _tail_columns(self.message_chunks, self.messages, self.message_keys)

    def pack(self, frames: tuple[Columns, np.ndarray] | None = None,
             messages: tuple[Columns, np.ndarray] | None = None) -> None:
        """Pack the frames and messages not packed yet.

        ``frames`` and ``messages``, when given, are what :meth:`frame_columns`
        and :meth:`message_columns` returned for those same records, which
        spares making them again.

        For a caller that has written those records out (see
        :class:`wspcap.tables.export.TableStream`): from then on they are there for
        the cross-record rules at the end, which read no data payload, at a
        few dozen bytes a record (see :mod:`wspcap.ws.records`).
        """
        for packed, chunks, given, records, keys in (
                (self.packed_frames, self.frame_chunks, frames, self.frames, self.frame_keys),
                (self.packed_messages, self.message_chunks, messages, self.messages,
                 self.message_keys)):
            if given is not None:
                packed.add_columns(*given[0], given[1])
            else:
                for part in chunks.parts():
                    packed.add_columns(*part)
                packed.add(records, keys)
            chunks.clear()
        self.frames, self.frame_keys = [], []
        self.messages, self.message_keys = [], []

    def release(self) -> None:
        """Let go of every frame and message, packed or not: for a caller whose
        tables hold them now, and that reads only the connections and the
        anomalies after (``read()``: their numbers' memory, 40 MB on a chat
        capture of 250,000 messages, is there again for what it makes next).
        Their columns of objects stay until the collector goes: letting go of
        them counts down each payload's references (16 ms on that capture,
        the tables holding the payloads), which the collector's end does in
        any case."""
        for packed in (self.packed_frames, self.packed_messages, self.frame_chunks,
                       self.message_chunks):
            self._released += packed.object_columns()
            packed.clear()
        self.frames, self.frame_keys = [], []
        self.messages, self.message_keys = [], []

    def frame_view(self) -> Sequence[Frame]:
        """Every frame, packed or not, in order."""
        return RecordView.of(_chain(self.packed_frames, self.frame_chunks), self.frames)

    def message_view(self) -> Sequence[Message]:
        """Every message, packed or not, in order."""
        return RecordView.of(_chain(self.packed_messages, self.message_chunks), self.messages)

    def all_frame_keys(self) -> np.ndarray:
        """The key of every frame, packed or not, in order (int64)."""
        return _all_keys(self.packed_frames, self.frame_chunks, self.frame_keys)

    def all_message_keys(self) -> np.ndarray:
        """The key of every message, packed or not, in order (int64)."""
        return _all_keys(self.packed_messages, self.message_chunks, self.message_keys)


def _all_keys(packed: Packed, chunks: Packed, keys: list[int]) -> np.ndarray:
    return np.concatenate([packed.keys(), chunks.keys(), np.asarray(keys, np.int64)])


def _chain(packed: Packed, chunks: Packed) -> Packed:
    return Packed.chain([packed, chunks]) if len(chunks) else packed


def _tail_columns(chunks: Packed, records: list[Any], keys: list[int]
                  ) -> tuple[Columns, np.ndarray]:
    parts = chunks.parts()
    if records or not parts:
        parts.append((*to_columns(records, chunks.packing), np.asarray(keys, np.int64)))
    cols = concat_columns([(c, n) for c, n, _k in parts])
    return cols, np.concatenate([k for _c, _n, k in parts])


@dataclass
class Shared:
    """What every connection of a pipeline shares: the limits, where records
    go, the TLS secrets, the capture's inflation budget and the bytes its TLS
    connections may hold for want of keys."""

    options: Options
    collector: Collector
    keylog: KeyLog
    inflate_budget: InflateBudget
    tls_budget: HoldBudget = field(default_factory=HoldBudget)
