"""What a cross-record check sees: the connections' facts (:class:`ConnFacts`,
made by the engine), their records (:class:`Context`), and the registry of
checks (:func:`check`). See :mod:`wspcap.rules.checks` for how they run.

Sans-I/O: performs no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress, count, repeat
from operator import gt
from typing import TYPE_CHECKING, Any

import numpy as np

from wspcap.constants import C2S, S2C
from wspcap.rules.registry import RULES, Anomaly
from wspcap.rules.thresholds import Thresholds
from wspcap.ws.records import array, group_positions

if TYPE_CHECKING:
    from wspcap.http.upgrade import Handshake
    from wspcap.ws.deflate import DeflateParams
    from wspcap.ws.frames import Frame
    from wspcap.ws.messages import Message
__all__ = [
    "C2S",
    "CHECKS",
    "DEDUPLICATED",
    "NO_POSITIONS",
    "S2C",
    "Conn",
    "ConnFacts",
    "Context",
    "Finding",
    "check",
    "over",
    "preview",
]

_DIRS = (C2S, S2C)

#: Codes that both a parser and a check may report for the same place.
DEDUPLICATED = frozenset(("pmd_ratio_excessive", "pmd_params_invalid"))

CheckFn = Callable[["Context"], None]
#: Registered checks, ``(layer, function, scope)``, in registration order.
CHECKS: list[tuple[str, CheckFn, str]] = []
#: What a check looks at: one connection at a time, or all of them together.
SCOPES = ("connection", "capture")
#: An anomaly a check found, with the position of that check in CHECKS.
Finding = tuple[int, Anomaly]
#: The positions of records that are not there.
NO_POSITIONS = np.zeros(0, np.intp)
NO_POSITIONS.flags.writeable = False


def check(layer: str, scope: str = "connection") -> Callable[[CheckFn], CheckFn]:
    """Register a function as a cross-record check of ``layer``.

    Args:
        layer: ``http``, ``sec``, ``ws``, ``pmd`` or ``res`` (the prefix of
            the codes it reports).
        scope: ``connection`` (its findings about a connection depend on
            that connection alone) or ``capture`` (it compares connections;
            it must read no frame or message).
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, not {scope!r}")

    def register(fn: CheckFn) -> CheckFn:
        CHECKS.append((layer, fn, scope))
        return fn
    return register


@dataclass(frozen=True, slots=True)
class ConnFacts:
    """What the checks read of one WebSocket connection: a read-only view the
    engine makes of its state (see ``Session.facts``).

    Attributes:
        conn_id: the connection.
        handshake: the :class:`~wspcap.http.upgrade.Handshake`, or None
            (captured mid-stream).
        established: frames were parsed (a 101, or frames mid-stream).
        midstream: no handshake was captured.
        tls: the connection is TLS (wss://, decrypted or not).
        client_ip, server_ip: addresses as text; server_port: the port.
        ts_start, ts_end: first and last packet time (ns).
        ts_request, request_packet: when the request head was complete.
        ts_response, response_packet: when the answer's head was complete.
        request_first_ts: time of the request's first byte.
        fin: per direction (``c2s``, ``s2c``), whether its FIN was seen.
        rst: per direction, whether it ended with a RST (its first FIN or
            RST was a RST): what happens after a connection ended does not
            change its findings (see :func:`check_connections`).
        end_ts: per direction, time of its first FIN or RST, or None.
        gap_bytes: per direction, bytes the capture missed.
        deflate: the negotiated permessage-deflate parameters, or None.
        h2: the WebSocket is a stream of an HTTP/2 connection (RFC 8441): its
            ends are END_STREAM or the connection's FIN (``fin``), RST_STREAM or
            the connection's RST (``rst``).
        h2_ends: over HTTP/2, per direction, which of those ended it
            (``END_STREAM``, ``RST_STREAM``, ``TCP FIN``, ``TCP RST``).
    """

    conn_id: int
    handshake: Handshake | None
    established: bool
    midstream: bool
    tls: bool
    client_ip: str
    server_ip: str
    server_port: int
    ts_start: int
    ts_end: int
    ts_request: int | None
    request_packet: int | None
    ts_response: int | None
    response_packet: int | None
    request_first_ts: int | None
    fin: Mapping[str, bool]
    rst: Mapping[str, bool]
    end_ts: Mapping[str, int | None]
    gap_bytes: Mapping[str, int]
    deflate: DeflateParams | None
    h2: bool = False
    h2_ends: Mapping[str, str] = field(default_factory=dict)


class Conn:
    """One WebSocket connection as the checks see it: its :class:`ConnFacts`
    (as attributes of the same names), and where its records are.

    Attributes:
        frame_pos: positions of the connection's frames in ``collector.frames``,
            in order (a read-only NumPy array).
        message_pos: positions of its messages in ``collector.messages``, likewise.
    """

    def __init__(self, facts: ConnFacts) -> None:
        self.facts = facts
        self.conn_id = facts.conn_id
        self.handshake = facts.handshake
        self.established = facts.established
        self.tls = facts.tls
        self.midstream = facts.midstream
        self.client_ip, self.server_ip, self.server_port = (
            facts.client_ip, facts.server_ip, facts.server_port)
        self.ts_start, self.ts_end = facts.ts_start, facts.ts_end
        self.ts_request, self.request_packet = facts.ts_request, facts.request_packet
        self.ts_response, self.response_packet = facts.ts_response, facts.response_packet
        self.request_first_ts = facts.request_first_ts
        self.fin, self.rst, self.end_ts = facts.fin, facts.rst, facts.end_ts
        self.gap_bytes = facts.gap_bytes
        self.deflate = facts.deflate
        self.h2, self.h2_ends = facts.h2, facts.h2_ends
        self.frame_pos: np.ndarray = NO_POSITIONS
        self.message_pos: np.ndarray = NO_POSITIONS

    @property
    def ended(self) -> bool:
        """TCP was closed or reset (a FIN or RST in either direction)."""
        return any(self.fin.values()) or any(self.rst.values())

    @property
    def accept_failed(self) -> bool:
        """The 101 lacked a correct Sec-WebSocket-Accept: a client must fail it."""
        hs = self.handshake
        return hs is not None and hs.status == 101 and hs.accept_valid is False


class Context:
    """What a check sees, and where it reports.

    Per-frame work is what costs on large captures, so besides the records the
    context offers columns (:meth:`array`: one int attribute of every frame
    or message, as a NumPy array), the records' keys (``frame_keys``,
    ``message_keys``: int64 arrays) and each connection's frame positions per
    direction (:meth:`positions`, read-only arrays like :attr:`Conn.frame_pos`),
    from which checks pre-filter with NumPy and look at single frames only
    where something is there. (Measured on a 250 000-frame capture: one
    Python loop over all frames costs about 0.2 s, a column compared with
    NumPy a few milliseconds; the positions as lists of Python ints cost
    more to make than every check together.)

    Args:
        records: a :class:`~wspcap.engine.Collector` holding every frame
            and message of ``connections`` (and of no other connection), and
            their parser anomalies (others may be there too).
        thresholds: the thresholds in force.
        connections: the facts of the connections to check.

    Attributes:
        findings: what the checks reported, as :data:`Finding`.
        rank: the position in :data:`CHECKS` of the check running now.
    """

    def __init__(self, records: Any, thresholds: Thresholds,
                 connections: Sequence[ConnFacts]) -> None:
        self.thresholds = thresholds
        self.frames: Sequence[Frame] = records.frame_view()
        self.frame_keys: np.ndarray = _read_only(records.all_frame_keys())
        self.messages: Sequence[Message] = records.message_view()
        self.message_keys: np.ndarray = _read_only(records.all_message_keys())
        self.conns = [Conn(facts) for facts in connections]
        self._conn = {conn.conn_id: conn for conn in self.conns}
        self._by_key = group_positions(self.frame_keys)
        frames_of = group_positions(self.frame_keys >> 1)
        messages_of = group_positions(self.message_keys >> 1)
        for conn in self.conns:
            conn.frame_pos = frames_of.get(conn.conn_id, NO_POSITIONS)
            conn.message_pos = messages_of.get(conn.conn_id, NO_POSITIONS)
        self._arrays: dict[str, np.ndarray] = {}
        self._nulls: dict[str, np.ndarray] = {}
        self._parsers = [a for a in records.anomalies if a.conn_id in self._conn]
        self._seen = {(a.conn_id, a.direction, a.frame_index, a.code)
                      for a in self._parsers if a.code in DEDUPLICATED}
        self._errors: dict[tuple[int | None, str | None], int] | None = None
        self.findings: list[Finding] = []
        self.rank = 0

    # -- views -------------------------------------------------------------------

    def array(self, name: str) -> np.ndarray:
        """Int attribute ``name`` of every frame, in collector order, as one
        NumPy array (computed once); 0 where the value is None (see
        :meth:`nulls`). Where checks compare or subtract whole columns, this
        costs a few milliseconds where a list and ``map`` cost tens."""
        return self._array(name, self.frames, name)

    def nulls(self, name: str) -> np.ndarray | None:
        """Where :meth:`array`'s values were None (None: nowhere)."""
        self.array(name)
        return self._nulls.get(name)

    def message_array(self, name: str) -> np.ndarray:
        """Int attribute ``name`` of every message, as :meth:`array` for frames."""
        return self._array("message." + name, self.messages, name)

    def _array(self, key: str, records: Sequence[Any], name: str) -> np.ndarray:
        values = self._arrays.get(key)
        if values is None:
            values, nulls = array(records, name)
            self._arrays[key] = values
            if nulls is not None and nulls.any():
                self._nulls[key] = nulls
        return values

    def positions(self, conn: Conn, direction: str) -> np.ndarray:
        """Positions (in ``collector.frames``) of ``conn``'s frames in
        ``direction``, in order (a read-only array)."""
        return self._by_key.get(conn.conn_id * 2 + (direction == S2C), NO_POSITIONS)

    def frame_at(self, pos: int) -> tuple[Conn, int, str, Frame]:
        """``(conn, frame_index, direction, frame)`` of the frame at a position."""
        pos = int(pos)
        key = int(self.frame_keys[pos])
        conn = self._conn[key >> 1]
        return conn, int(conn.frame_pos.searchsorted(pos)), _DIRS[key & 1], self.frames[pos]

    def message_at(self, pos: int) -> tuple[Conn, str, Message]:
        """``(conn, direction, message)`` of the message at a position."""
        pos = int(pos)
        key = int(self.message_keys[pos])
        return self._conn[key >> 1], _DIRS[key & 1], self.messages[pos]

    def first_error(self, conn: Conn, direction: str) -> int | None:
        """Where ``direction`` first broke a rule its peer must fail the connection for.

        Returns the frame_index of its first ``error`` anomaly (``-1`` when that
        anomaly is not tied to a frame, such as a wrong accept), or None. A peer
        that fails the connection owes no pong and no closing handshake. Built
        on first use from the parsers' anomalies and the findings so far.
        """
        if self._errors is None:
            errors: dict[tuple[int | None, str | None], int] = {}
            for a in [*self._parsers, *(a for _, a in self.findings)]:
                if a.severity == "error" and a.code.startswith(("ws_", "pmd_", "http_")):
                    index = -1 if a.frame_index is None else a.frame_index
                    key = (a.conn_id, a.direction)
                    if index < errors.get(key, 1 << 62):
                        errors[key] = index
            self._errors = errors
        return self._errors.get((conn.conn_id, direction))

    # -- output ------------------------------------------------------------------

    def run(self, rank: int, fn: CheckFn) -> None:
        """Run the check ``fn``, at position ``rank`` in :data:`CHECKS` (its
        findings are ranked by it)."""
        self.rank = rank
        fn(self)

    def report(self, conn_id: int | None, ts: int | None, direction: str | None,
               frame_index: int | None, code: str, detail: str, packet: int | None = None,
               offset: int | None = None) -> None:
        """Add an anomaly (the severity comes from the registry)."""
        if code in DEDUPLICATED:
            key = (conn_id, direction, frame_index, code)
            if key in self._seen:
                return
            self._seen.add(key)
        self.findings.append((self.rank, Anomaly(
            conn_id, ts if ts is not None else 0, direction, frame_index, code,
            RULES[code].severity, detail, packet, offset)))

    def report_frame(self, conn: Conn, index: int, direction: str, frame: Frame, code: str,
                     detail: str) -> None:
        """Add an anomaly tied to one frame."""
        self.report(conn.conn_id, frame.ts, direction, index, code, detail, frame.packet,
                    frame.offset)


def _read_only(values: Any) -> np.ndarray:
    """``values`` as an int64 array that a check cannot write to."""
    arr = np.asarray(values, np.int64)
    arr.flags.writeable = False
    return arr


def over(values: list[Any] | np.ndarray, limit: Any) -> list[int]:
    """Positions of the values greater than ``limit`` (C-level; NumPy for an array)."""
    if isinstance(values, np.ndarray):
        found: list[int] = np.flatnonzero(values > limit).tolist()
        return found
    return list(compress(count(), map(gt, values, repeat(limit))))


def preview(data: bytes | str, limit: int = 24) -> str:
    """A short, quoted view of a payload or value for a detail text."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
            if not text.isprintable():
                raise ValueError
        except ValueError:
            hexed = data[:limit // 2].hex()
            return f"0x{hexed}" + ("..." if len(data) > limit // 2 else "")
    else:
        text = data
    return repr(text[:limit] + ("..." if len(text) > limit else ""))
