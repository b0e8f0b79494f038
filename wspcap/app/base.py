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
  columns (what the table side feeds once a decoder is chosen).
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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, ClassVar, TypeVar

from .fields import Texts

__all__ = ["ANSWER", "NO_ANSWER", "UNANSWERED", "AppEvent", "AppFinding", "AppMessage",
           "ConnFacts", "Decoder", "EventColumns", "MessageRun", "RunOutput", "answer_bytes",
           "as_list", "first_bytes"]


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


@dataclass(frozen=True, slots=True)
class MessageRun:
    """Data messages of one connection in a row, as columns of equal length
    (the fields of :class:`AppMessage`, message after message)."""

    msg_index: Sequence[int]
    direction: Sequence[str]
    type: Sequence[str]
    payload: Sequence[bytes]
    ts: Sequence[int]
    complete: Sequence[bool]

    def __len__(self) -> int:
        return len(self.msg_index)

    def message(self, i: int) -> AppMessage:
        """The message at position ``i``."""
        return AppMessage(self.msg_index[i], self.direction[i], self.type[i], self.payload[i],
                          self.ts[i], self.complete[i])


_FIRST = itemgetter(slice(0, 1))
_T = TypeVar("_T")


def first_bytes(payloads: Iterable[bytes]) -> bytes:
    """The first byte of each payload, joined (an empty payload gives none):
    what a run's messages start with, looked at in C, for a decoder that
    passes over a run none of whose messages could begin its protocol."""
    return b"".join(map(_FIRST, payloads))


def as_list(values: Sequence[_T]) -> list[_T]:
    """A run's column as a list (what the compiled loops read), copied only
    where it is not one already."""
    return values if type(values) is list else list(values)


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


@dataclass(slots=True)
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
    """

    position: list[int] = field(default_factory=list)
    msg_index: list[int] = field(default_factory=list)
    direction: list[str] = field(default_factory=list)
    protocol: list[str] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    channel: list[str | None] = field(default_factory=list)
    id: list[str | None] = field(default_factory=list)
    fields: list[str | Mapping[str, Any]] | Texts = field(default_factory=list)
    part: list[int] = field(default_factory=list)
    #: Each event's ``request_msg`` and ``latency`` (:data:`ANSWER`, 16
    #: bytes an event), as a decoder that pairs its own requests gives them.
    answers: bytearray = field(default_factory=bytearray)
    #: (position, finding), in order.
    findings: list[tuple[int, AppFinding]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.kind)

    def add(self, position: int, items: Sequence[AppEvent | AppFinding]) -> None:
        """What :meth:`Decoder.receive` gave for the message at ``position``."""
        for item in items:
            if isinstance(item, AppEvent):
                if type(self.fields) is not list:
                    self.fields = list(self.fields)
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

    def extend(self, position: Sequence[int], msg_index: Iterable[int],
               direction: Iterable[str], protocol: str, kind: Sequence[str],
               channel: Sequence[str | None], ident: Sequence[str | None],
               fields: Sequence[str] | Texts,
               answers: bytes | bytearray | None = None) -> None:
        """Events made as columns (every one of ``protocol``, whole, part 0;
        their fields a :class:`~wspcap.app.fields.Texts` as they may be;
        ``answers`` as :attr:`answers` holds them, or None for none)."""
        n = len(kind)
        self.answers += UNANSWERED * n if answers is None else answers
        self.position += position
        self.msg_index += msg_index
        self.direction += direction
        self.kind += kind
        self.channel += channel
        self.id += ident
        if isinstance(fields, Texts) and not self.fields:
            self.fields = fields
        elif isinstance(fields, Texts) and isinstance(self.fields, Texts):
            self.fields = Texts.join([self.fields, fields])
        else:  # (a list from then on: extended in place)
            if type(self.fields) is not list:
                self.fields = list(self.fields)
            self.fields += fields
        self.part += [0] * n
        self.protocol += [protocol] * n


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
