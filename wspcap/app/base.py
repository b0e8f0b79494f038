"""The application-decoder interface: records in, events and findings out.

A decoder turns the data messages of one WebSocket connection into
application events (an MQTT PUBLISH, a JSON-RPC request, a GraphQL
``subscribe``...). It is pure (sans-I/O, like the rest of wspcap): it is
given the handshake facts and the messages in order, it never opens files
or sockets, it never raises, and it keeps bounded state.

Records
-------
- :class:`ConnFacts`: what the handshake said (subprotocol, URI, headers).
- :class:`AppMessage`: one data message as the messages table has it.
- :class:`MessageRun`: several data messages of a connection in a row, as
  columns (what the table side feeds once a decoder is chosen): lists, or
  the table's arrays (:class:`RunArrays`), made lists where asked for.
- :class:`AppEvent`: one application event decoded from a message.
- :class:`AppFinding`: something worth an anomaly (``app_*`` code).
- :class:`EventColumns`: the events and findings of a run, as columns (what
  the optional :meth:`Decoder.receive_columns` gives).

Contract of a :class:`Decoder` subclass
---------------------------------------
- ``name``: stable, lower-case; ``subprotocols``: the
  ``Sec-WebSocket-Protocol`` values it owns.
- ``recognize(facts, first)``: confidence 0..1 -- 1.0 by subprotocol,
  about 0.9 by URI convention, at most 0.7 by the content of the first few
  messages, 0 when not this protocol. Never raises.
- ``receive(message)``: the events and findings of one message. Never
  raises: bytes that are not the protocol give an ``app_parse_failed``
  finding when the conversation was recognized by subprotocol or URI, else
  nothing.
- ``receive_run(run)``: what ``receive`` gives for each message of a
  :class:`MessageRun`, in order, as ``(position, output)`` for the messages
  that give something. The default calls ``receive`` on each; a decoder
  overrides it to save the per-message calls and :class:`AppMessage`
  records where it can (the results must be the same). Never raises.
- ``receive_columns(run)``: optional, the fastest path: what ``receive_run``
  gives, as :class:`EventColumns` (the events as columns, their ``fields``
  JSON text already, :func:`~wspcap.app.fields.fields_text`, or the fields
  themselves for the table to write), or None, having
  done nothing, when the decoder does not offer it (the default): the caller
  then uses ``receive_run``. ``receive`` stays the reference: a decoder that
  offers it tests it against ``receive`` message by message. Never raises.
- ``finish()``: end of the connection (unanswered requests, etc.).
- ``fields`` are JSON-serializable (bytes become hex or base64 text).
  Credentials are kept in ``fields`` and flagged by a finding.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, ClassVar, NamedTuple, overload

import numpy as np

from .fields import Coded, Strings, Texts

__all__ = ["ANSWER", "DIRECTIONS", "NO_ANSWER", "UNANSWERED", "AppEvent", "AppFinding",
           "AppMessage", "ConnFacts", "Decoder", "EventColumns", "MessageRun", "Picked", "RunArrays",
           "RunOutput", "answer_bytes", "first_bytes"]


@dataclass(frozen=True, slots=True)
class ConnFacts:
    """What the handshake said about a connection."""

    #: ``Sec-WebSocket-Protocol`` chosen by the server, if any.
    subprotocol: str | None = None
    #: Subprotocols the client offered.
    offered: tuple[str, ...] = ()
    #: Request target, e.g. ``"/socket.io/?EIO=4&transport=websocket"``.
    uri: str | None = None
    #: Request headers, names lower-case.
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AppMessage:
    """One WebSocket data message, as the messages table has it."""

    msg_index: int
    #: ``"c2s"`` or ``"s2c"``.
    direction: str
    #: ``"text"`` or ``"binary"``.
    type: str
    #: Unmasked, joined, inflated.
    payload: bytes
    #: Timestamp in ns.
    ts: int = 0
    complete: bool = True


#: A message's direction by its code in :class:`RunArrays`.
DIRECTIONS = ("c2s", "s2c")


class RunArrays(NamedTuple):
    """A run's columns as NumPy arrays, as the table has them (see
    :meth:`MessageRun.of_arrays`)."""

    #: int64.
    msg_index: np.ndarray
    #: int8: the index of the direction's name in :data:`DIRECTIONS`.
    direction: np.ndarray
    #: bool: True for text, False for binary.
    text: np.ndarray
    #: The payloads (``bytes``) of the table's part, an object array: the
    #: run's are those at :attr:`rows` (not gathered: a reference counted
    #: each, the payloads' cache misses, was 7 ms a read of chat-jsonrpc).
    payloads: np.ndarray
    #: int64: where each message's payload is in :attr:`payloads`.
    rows: np.ndarray
    #: int64 ns, 0 where unknown.
    ts: np.ndarray
    #: bool.
    complete: np.ndarray

    @property
    def payload(self) -> Picked:
        """The run's payloads, each looked up when asked for."""
        return Picked(self.payloads, self.rows)


class Picked(Sequence[bytes]):
    """The items of ``values`` at ``rows``, each looked up when asked for
    (no list of them made, but by iterating)."""

    __slots__ = ("rows", "values")

    def __init__(self, values: np.ndarray, rows: np.ndarray) -> None:
        self.values = values
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, i: int) -> bytes: ...
    @overload
    def __getitem__(self, i: slice) -> list[bytes]: ...
    def __getitem__(self, i: int | slice) -> bytes | list[bytes]:
        if isinstance(i, slice):
            return self.values[self.rows[i]].tolist()  # type: ignore[no-any-return]
        return self.values[self.rows[i]]  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.values[self.rows].tolist())


_TYPE_NAMES = np.array(["binary", "text"], dtype=object)
_DIRECTION_NAMES = np.array(DIRECTIONS, dtype=object)


class MessageRun:
    """Data messages of one connection in a row, as columns of equal length
    (the fields of :class:`AppMessage`, message after message).

    Made of sequences (lists), or of the table's arrays
    (:meth:`of_arrays`): then each column is made a list the first time it
    is asked for, and a decoder with a compiled path may read
    :attr:`arrays` instead (no list, nor an object a message, made).
    """

    __slots__ = ("_columns", "arrays")

    def __init__(self, msg_index: Sequence[int], direction: Sequence[str],
                 type: Sequence[str], payload: Sequence[bytes], ts: Sequence[int],
                 complete: Sequence[bool]) -> None:
        self._columns: list[Sequence[Any] | None] = [msg_index, direction, type, payload, ts,
                                                     complete]
        #: The arrays the run was made of, or None.
        self.arrays: RunArrays | None = None

    @classmethod
    def of_arrays(cls, arrays: RunArrays) -> MessageRun:
        """A run of the table's arrays, its lists made when first asked for."""
        run = cls.__new__(cls)
        run._columns = [None] * 6
        run.arrays = arrays
        return run

    def _column(self, at: int) -> Sequence[Any]:
        column = self._columns[at]
        if column is None:
            a = self.arrays
            assert a is not None
            made: list[Any] = (
                a.msg_index.tolist() if at == 0 else
                _DIRECTION_NAMES[a.direction].tolist() if at == 1 else
                _TYPE_NAMES[a.text.astype(np.intp)].tolist() if at == 2 else
                a.payloads[a.rows].tolist() if at == 3 else
                a.ts.tolist() if at == 4 else a.complete.tolist())
            self._columns[at] = column = made
        return column

    @property
    def msg_index(self) -> Sequence[int]:
        return self._column(0)

    @property
    def direction(self) -> Sequence[str]:
        """``"c2s"`` or ``"s2c"``, each message's."""
        return self._column(1)

    @property
    def type(self) -> Sequence[str]:
        """``"text"`` or ``"binary"``, each message's."""
        return self._column(2)

    @property
    def payload(self) -> Sequence[bytes]:
        return self._column(3)

    @property
    def ts(self) -> Sequence[int]:
        return self._column(4)

    @property
    def complete(self) -> Sequence[bool]:
        return self._column(5)

    def __len__(self) -> int:
        return len(self.arrays.msg_index) if self.arrays is not None else len(self.msg_index)

    def message(self, i: int) -> AppMessage:
        """The message at position ``i``."""
        return AppMessage(self.msg_index[i], self.direction[i], self.type[i], self.payload[i],
                          self.ts[i], self.complete[i])


_FIRST = itemgetter(slice(0, 1))


def first_bytes(payloads: Iterable[bytes]) -> bytes:
    """The first byte of each payload, joined (an empty payload gives none):
    what a run's messages start with, looked at in C, for a decoder that
    passes over a run none of whose messages could begin its protocol."""
    return b"".join(map(_FIRST, payloads))


@dataclass(frozen=True, slots=True)
class AppEvent:
    """One application event decoded from a message."""

    msg_index: int
    direction: str
    #: Decoder name, e.g. ``"socketio"``, ``"mqtt"``, ``"jsonrpc"``.
    protocol: str
    #: connect, disconnect, subscribe, unsubscribe, publish, event, request,
    #: response, notification, error, ping, pong, ack, ...
    kind: str
    #: Topic, event name, destination, namespace/room, operation name.
    channel: str | None = None
    #: Message/ack/operation/packet id where the protocol has one.
    id: str | None = None
    #: Decoded fields, JSON-serializable.
    fields: Mapping[str, Any] = field(default_factory=dict)
    #: Index of this event within its message (a message may hold several).
    part: int = 0
    #: The msg_index of the request this event answers, and the ns between
    #: the two messages (None: unknown): set only by a decoder that pairs its
    #: own requests (:attr:`~wspcap.app.runner.Pairing.by_decoder`, as
    #: JSON-RPC's, whose ids are typed: ``7`` and ``"7"`` are two ids).
    request_msg: int | None = None
    latency: int | None = None


#: An event's ``request_msg`` and ``latency`` as :attr:`EventColumns.answers`
#: holds them: two native int64, :data:`NO_ANSWER` for None.
ANSWER = struct.Struct("=qq")
NO_ANSWER = -(1 << 63)
#: No request answered, as :attr:`EventColumns.answers` holds it.
UNANSWERED = ANSWER.pack(NO_ANSWER, NO_ANSWER)


def answer_bytes(request_msg: int | None, latency: int | None) -> bytes:
    """An event's ``request_msg`` and ``latency`` as :attr:`EventColumns.answers` holds them."""
    if request_msg is None:
        return UNANSWERED
    return ANSWER.pack(request_msg, NO_ANSWER if latency is None else latency)


@dataclass(frozen=True, slots=True)
class AppFinding:
    """Something worth an anomaly, once the lead registers the code."""

    #: snake_case, prefix ``app_``: ``app_parse_failed``,
    #: ``app_credentials_in_clear``, ``app_graphql_introspection``,
    #: ``app_keepalive_missed``, ``app_request_unanswered``,
    #: ``app_protocol_violation``.
    code: str
    msg_index: int | None
    direction: str | None
    #: Short, like the other detail texts ("MQTT CONNECT password for user bob").
    detail: str


#: Columns of :class:`EventColumns` a compiled loop may give otherwise than as lists.
_TYPED = ("position", "msg_index", "direction", "protocol", "kind", "channel", "id", "fields",
          "part")


def _listed(values: Sequence[Any] | np.ndarray) -> list[Any]:
    """A column as a list (a NumPy array's values as Python's)."""
    if type(values) is list:
        return values
    return values.tolist() if isinstance(values, np.ndarray | Coded) else list(values)


@dataclass(slots=True, eq=False)
class EventColumns:
    """The events of a run as columns of equal length, in the order
    :meth:`Decoder.receive_run` gives them (message after message, each
    message's events in order), and the findings with their positions.

    An event's ``position`` is that of the message it came out of in the run
    (its ``msg_index`` may name an earlier message, as an :class:`AppEvent`'s
    may); its ``fields`` are JSON text already
    (:func:`~wspcap.app.fields.fields_text` of the event's fields), or the
    fields themselves, which the table writes as it writes those of the other
    paths (what :meth:`add` keeps: the text made where it always was); or,
    where every event's is text made by a compiled loop, a
    :class:`~wspcap.app.fields.Texts` (one buffer, no ``str`` a row).

    Where a compiled loop made every event (:meth:`extend` into empty
    columns), ``position``, ``msg_index`` and ``part`` may be int64 arrays,
    ``direction``, ``protocol`` and ``kind`` :class:`~wspcap.app.fields.Coded`,
    ``channel`` and ``id``
    :class:`~wspcap.app.fields.Strings`: no object a row. They read as the
    lists they stand for, and become lists once events are added after them.
    """

    position: list[int] | np.ndarray = field(default_factory=list)
    msg_index: list[int] | np.ndarray = field(default_factory=list)
    direction: list[str] | Coded = field(default_factory=list)
    protocol: list[str] | Coded = field(default_factory=list)
    kind: list[str] | Coded = field(default_factory=list)
    channel: list[str | None] | Strings = field(default_factory=list)
    id: list[str | None] | Strings = field(default_factory=list)
    fields: list[str | Mapping[str, Any]] | Texts = field(default_factory=list)
    part: list[int] | np.ndarray = field(default_factory=list)
    #: Each event's ``request_msg`` and ``latency`` (:data:`ANSWER`, 16
    #: bytes an event), as a decoder that pairs its own requests gives them.
    answers: bytearray = field(default_factory=bytearray)
    #: (position, finding), in order.
    findings: list[tuple[int, AppFinding]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.kind)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EventColumns):
            return NotImplemented
        return all(_listed(getattr(self, name)) == _listed(getattr(other, name))
                   for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # (mutable, as a dataclass's)

    def as_lists(self) -> None:
        """The columns a compiled loop gave otherwise, as lists."""
        for name in _TYPED:
            values = getattr(self, name)
            if type(values) is not list:
                setattr(self, name, _listed(values))

    def add(self, position: int, items: Sequence[AppEvent | AppFinding]) -> None:
        """What :meth:`Decoder.receive` gave for the message at ``position``."""
        for item in items:
            if isinstance(item, AppEvent):
                self.as_lists()
                assert type(self.position) is list and type(self.kind) is list
                assert type(self.msg_index) is list and type(self.direction) is list
                assert type(self.protocol) is list and type(self.part) is list
                assert type(self.channel) is list and type(self.id) is list
                assert type(self.fields) is list
                self.position.append(position)
                self.msg_index.append(item.msg_index)
                self.direction.append(item.direction)
                self.protocol.append(item.protocol)
                self.kind.append(item.kind)
                self.channel.append(item.channel)
                self.id.append(item.id)
                self.fields.append(item.fields)
                self.part.append(item.part)
                self.answers += answer_bytes(item.request_msg, item.latency)
            elif isinstance(item, AppFinding):
                self.findings.append((position, item))

    def extend(self, position: Sequence[int] | np.ndarray, msg_index: Sequence[int] | np.ndarray,
               direction: Sequence[str] | Coded, protocol: str, kind: Sequence[str] | Coded,
               channel: Sequence[str | None] | Strings, ident: Sequence[str | None] | Strings,
               fields: Sequence[str] | Texts,
               answers: bytes | bytearray | None = None) -> None:
        """Events made as columns (every one of ``protocol``, whole, part 0;
        their position, kind, channel, id and fields as a compiled loop
        gives them, see the class's note, as they may be; ``answers`` as
        :attr:`answers` holds them, or None for none)."""
        n = len(kind)
        self.answers += UNANSWERED * n if answers is None else answers
        first = not len(self.kind)
        typed = type(position) is not list
        for name, values in (("position", position), ("msg_index", msg_index),
                             ("direction", direction), ("kind", kind), ("channel", channel),
                             ("id", ident),
                             ("protocol", Coded(np.zeros(n, np.uint8), (protocol,)) if typed
                              else [protocol] * n),
                             ("part", np.zeros(n, np.int64) if typed else [0] * n)):
            mine = getattr(self, name)
            if first and type(values) is not list:  # (taken as it is: see the class's note)
                setattr(self, name, values)
            elif type(mine) is list:
                mine += _listed(values)
            else:
                setattr(self, name, [*_listed(mine), *_listed(values)])
        if isinstance(fields, Texts) and not self.fields:
            self.fields = fields
        elif isinstance(fields, Texts) and isinstance(self.fields, Texts):
            self.fields = Texts.join([self.fields, fields])
        else:  # (a list from then on: extended in place)
            if type(self.fields) is not list:
                self.fields = list(self.fields)
            self.fields += fields


#: What :meth:`Decoder.receive_run` gives: (position in the run, what
#: :meth:`Decoder.receive` gives for that message), for the messages that give something.
RunOutput = list[tuple[int, list[AppEvent | AppFinding]]]


class Decoder:
    """Pure: no I/O. One instance per connection.

    Subclasses set ``name`` (and ``subprotocols``) and override
    :meth:`recognize`, :meth:`receive` and, where needed, :meth:`finish`.
    """

    #: Stable, lower-case decoder name.
    name: ClassVar[str]
    #: ``Sec-WebSocket-Protocol`` values this decoder owns.
    subprotocols: ClassVar[tuple[str, ...]] = ()
    #: How :meth:`recognize` knows the protocol, in a few words (``wspcap decoders``).
    recognition: ClassVar[str] = "subprotocol"

    @classmethod
    def recognize(cls, facts: ConnFacts, first: Sequence[AppMessage]) -> float:
        """Confidence 0..1 that the conversation speaks this protocol.

        1.0 by subprotocol, about 0.9 by URI convention, at most 0.7 by the
        content of the first few messages; 0 when not this protocol. Must
        never raise. The default recognizes by subprotocol only.
        """
        return 1.0 if facts.subprotocol in cls.subprotocols else 0.0

    def __init__(self, facts: ConnFacts) -> None:
        self.facts = facts

    def receive(self, message: AppMessage) -> list[AppEvent | AppFinding]:
        """The events and findings of one message. Never raises."""
        return []

    def receive_run(self, run: MessageRun) -> RunOutput:
        """:meth:`receive` on each message of ``run``, in order: (position,
        output) for each message that gives something. Never raises."""
        out: RunOutput = []
        for i in range(len(run)):
            got = self.receive(run.message(i))
            if got:
                out.append((i, got))
        return out

    def receive_columns(self, run: MessageRun) -> EventColumns | None:
        """Optional fast path: what :meth:`receive_run` gives for ``run``, as
        :class:`EventColumns`; None, having done nothing, when not offered
        (the default). Never raises."""
        return None

    def finish(self) -> list[AppEvent | AppFinding]:
        """End of the connection: unanswered requests, etc. Never raises."""
        return []
