"""One connection's application decoding: choose a decoder, feed it, pair answers.

Sans-I/O, like the decoders: a :class:`Runner` is made for one WebSocket
connection from its handshake facts, is fed that connection's data messages
in order (:meth:`Runner.feed`), and is told when the connection ends
(:meth:`Runner.finish`); once a decoder is chosen, messages may come as
runs of columns (:meth:`Runner.feed_run`). It returns :class:`AppRow` (one per decoded event,
with the request it answers and the latency) and
:class:`~wspcap.app.base.AppFinding`. It never raises and keeps bounded state.

Design note
-----------
Choosing. A decoder that the handshake names (subprotocol, URI convention:
any confidence at all with no message seen) or a forced one is chosen at
once. Otherwise the first :data:`SNIFF_MESSAGES` data messages (at most
:data:`SNIFF_BYTES` of payload) are held, then shown to every decoder
(:func:`~wspcap.app.registry.choose`); the winner is fed them, in order, and
every later message. Nothing is chosen when every confidence is 0: the held
messages are let go of and the connection costs nothing more than a length
check per message from then on. A connection that ends while messages are
held is decided on what was held.

Pairing. Where the protocol has request ids (:data:`PAIRING`: JSON-RPC,
Socket.IO acks, GraphQL operations, MQTT packet ids, SignalR invocations,
WAMP requests, Phoenix refs, STOMP receipts: only the client frames that ask
for one, :attr:`Pairing.asks`), a request opens ``(direction, id)``; the first
answer from the other direction with that id closes it: the answer's row
gets ``request_msg`` (the request's msg_index) and ``latency`` (ns, between
the ``ts`` of the two events' messages, the rows' own ``ts``: an event made
of several messages, such as a Socket.IO binary event, is timed by the one
it starts in, kept for RECENT messages). At most :data:`MAX_OPEN_REQUESTS` are open at a
time; :meth:`Runner.finish` reports each one left open whose kind obliges an
answer (``must_answer``) as ``app_request_unanswered``.

A decoder that pairs its own requests (:attr:`Pairing.by_decoder`:
JSON-RPC's, which needs the request to name an answer by the method asked,
and whose ids are typed: ``7`` and ``"7"`` are two ids, where the ``id``
column spells both ``7``) gives each answer's ``request_msg`` and
``latency`` itself (:attr:`~wspcap.app.base.AppEvent.request_msg`,
:attr:`~wspcap.app.base.EventColumns.answers`), by the same rule, and
reports its own unanswered requests; the runner opens none for it: one
owner of the open requests, so a row never says an answer was paired while
an anomaly says its request was never answered.

Runs. Per message, the decoding's own cost (parsing) is a fraction of a
microsecond; records and calls made for each message would cost several
times that. :meth:`Runner.feed_run` hands a chosen decoder a
:class:`~wspcap.app.base.MessageRun` whole, and looks only at the messages
that gave something.

Columns. Where the decoder offers them (:meth:`~wspcap.app.base.Decoder.
receive_columns`), :meth:`Runner.feed_columns` takes a run's events as
columns and pairs them in one loop (:class:`RowColumns`): no event, row or
record per message. It keeps what :meth:`feed_run` keeps: the same open
requests (tuples), and the same message times, made only where an event
names another message and, at the end, for the last RECENT messages (what
the earlier ones leave there is gone by then, see :meth:`Runner._times`).
A decoder that pairs its own gives its columns paired already: they are
taken as they are (JSON-RPC's compiled loop pairs its answers as it names
them: 0.02-0.03 s less a read of chat-jsonrpc than pairing them again here,
even with the compiled pairing loop this module had for that, since gone).

Invariants: each event of each message is returned once (no message is fed
twice to a decoder); the rows of a message come in the decoder's order; the
result does not depend on anything but the facts and the messages in order.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .base import (
    NO_ANSWER,
    AppEvent,
    AppFinding,
    AppMessage,
    ConnFacts,
    Decoder,
    EventColumns,
    MessageRun,
)
from .fields import Coded
from .registry import choose

__all__ = [
    "MAX_OPEN_REQUESTS",
    "PAIRING",
    "SNIFF_BYTES",
    "SNIFF_MESSAGES",
    "AppRow",
    "Pairing",
    "RowColumns",
    "RunRows",
    "Runner",
]

#: Data messages held before a decoder is chosen by content.
SNIFF_MESSAGES = 4
#: ... or payload bytes, whichever comes first.
SNIFF_BYTES = 64 << 10
#: Messages whose time a runner keeps (see Runner.recent).
RECENT = 64
#: Requests waiting for their answer, per connection.
MAX_OPEN_REQUESTS = 10_000
#: A kind set that matches every kind.
ANY_KIND = frozenset({"*"})
#: Direction an answer comes from, given its request's.
OTHER = {"c2s": "s2c", "s2c": "c2s"}


@dataclass(frozen=True, slots=True)
class Pairing:
    """How a protocol's answers find their requests (by id, other direction)."""

    requests: frozenset[str]
    answers: frozenset[str]
    #: Request kinds reported when left unanswered at the end (the protocol
    #: obliges an answer, and the decoder does not report it itself).
    must_answer: frozenset[str] = frozenset()
    #: Requests open only from this direction (None: either).
    request_direction: str | None = None
    #: Whether an event of a request kind asks for an answer (None: all do);
    #: a protocol whose ids name other things too says here which ask.
    asks: Callable[[AppEvent], bool] | None = None
    #: The decoder pairs its own requests (its events' ``request_msg`` and
    #: ``latency``, :attr:`EventColumns.answers`): the runner opens none.
    by_decoder: bool = False


def _asks_receipt(event: AppEvent) -> bool:
    """A STOMP client frame with a ``receipt`` header (its id is that receipt)."""
    headers = event.fields.get("headers")
    return isinstance(headers, list) and any(
        isinstance(h, list) and h and h[0] == "receipt" for h in headers)


#: Protocol -> its pairing rule; protocols not listed are not paired.
PAIRING: dict[str, Pairing] = {
    # The JSON-RPC decoder pairs its requests (it names an answer by the
    # method asked) and reports those unanswered itself: its ids are typed
    # (7 and "7" are two ids), where the id column spells both 7.
    "jsonrpc": Pairing(frozenset({"request"}), frozenset({"response", "error"}),
                       by_decoder=True),
    # An event sent with an ack id asks for the ack.
    "socketio": Pairing(frozenset({"event"}), frozenset({"ack"}), frozenset({"event"})),
    # A subscription may legitimately see no event; a query or mutation is answered.
    "graphql": Pairing(frozenset({"subscribe", "request"}),
                       frozenset({"response", "event", "error", "complete"}),
                       frozenset({"request"}), request_direction="c2s"),
    # Packet ids exist only where an ack is due (QoS 1 and 2, SUBSCRIBE, UNSUBSCRIBE).
    "mqtt": Pairing(frozenset({"publish", "subscribe", "unsubscribe"}), frozenset({"ack"}),
                    frozenset({"publish", "subscribe", "unsubscribe"})),
    "signalr": Pairing(frozenset({"request", "subscribe"}), frozenset({"response", "error"}),
                       frozenset({"request"})),
    # PUBLISHED comes only when the publisher asked for it.
    "wamp": Pairing(frozenset({"request", "publish", "subscribe", "unsubscribe", "register",
                               "unregister"}),
                    frozenset({"response", "ack", "error"}),
                    frozenset({"request", "subscribe", "unsubscribe", "register",
                               "unregister"})),
    # Every push has a ref; only a join is always replied to. A heartbeat's
    # reply (a pong) is an answer too: phoenix.js times its heartbeats by it.
    "phoenix": Pairing(ANY_KIND, frozenset({"response", "error", "pong"}), frozenset({"subscribe"}),
                       request_direction="c2s"),
    # A client frame with a receipt header is answered by RECEIPT (or ERROR) with
    # that receipt-id. Not reported when left unanswered: RabbitMQ, for one,
    # closes the WebSocket instead of acknowledging DISCONNECT's receipt.
    "stomp": Pairing(ANY_KIND, frozenset({"receipt", "error"}), request_direction="c2s",
                     asks=_asks_receipt),
    # A subscribe is confirmed (ack) or rejected (error) with its identifier.
    # Not reported when left unanswered: @rails/actioncable sends a subscribe
    # again while it waits, and the server answers one.
    "actioncable": Pairing(frozenset({"subscribe"}), frozenset({"ack", "error"}),
                           request_direction="c2s"),
}


@dataclass(frozen=True, slots=True)
class AppRow:
    """One decoded event, with the request it answers (if any)."""

    event: AppEvent
    #: msg_index of the request this row answers.
    request_msg: int | None = None
    #: ns between the request's message and this one.
    latency: int | None = None


#: What :meth:`Runner.feed_run` gives: (position in the run, rows, findings)
#: for each message that gave something.
RunRows = list[tuple[int, list[AppRow], list[AppFinding]]]


@dataclass(slots=True)
class RowColumns:
    """What :meth:`Runner.feed_columns` gives: the rows as columns (the
    events, and the request each answers), and the findings."""

    events: EventColumns
    #: msg_index of the request each row answers, or None; where the
    #: decoder paired the rows, an int64 array, :data:`~wspcap.app.base.
    #: NO_ANSWER` for None (see :func:`_answered`).
    request_msg: list[int | None] | np.ndarray
    #: ns between that request's message and the row's, or None (as above).
    latency: list[int | None] | np.ndarray

    def __len__(self) -> int:
        return len(self.events)


def _given(run: MessageRun, cols: EventColumns) -> list[int]:
    """The positions of the run's messages that gave something, from the
    last RECENT on (those before change nothing, see :meth:`Runner._times`),
    where every event names the message it came out of."""
    tail = max(0, len(run) - RECENT)
    position = cols.position
    later = position[bisect.bisect_left(position, tail):]
    return sorted({*(later.tolist() if isinstance(later, np.ndarray) else later),
                   *(i for i, _ in cols.findings if i >= tail)})


def _answered(answers: bytes | bytearray) -> tuple[np.ndarray, np.ndarray]:
    """``request_msg`` and ``latency`` as a decoder that pairs its own
    requests gives them (:attr:`EventColumns.answers`): int64 arrays,
    :data:`~wspcap.app.base.NO_ANSWER` for None (a masked array's mask
    costs more than the table's null mask made of them)."""
    pairs = np.frombuffer(answers, np.int64).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]  # (views: the table copies them once, into its own)


#: A request waiting for its answer: msg_index, ts, kind, channel (a tuple:
#: made for every request, 0.06 us against 0.27 us for a slotted record).
_Open = tuple[int, int, str, str | None]



@dataclass(slots=True)
class Runner:
    """The application decoding of one connection (see the module's note).

    Args:
        facts: the handshake's facts.
        forced: a decoder name to use whatever the content says.
        disabled: decode nothing.
        sniff: data messages held before choosing by content.
    """

    facts: ConnFacts
    forced: str | None = None
    disabled: bool = False
    sniff: int = SNIFF_MESSAGES
    decoder: Decoder | None = None
    confidence: float = 0.0
    #: True once the choice is made (a decoder, or none).
    decided: bool = False
    held: list[AppMessage] = field(default_factory=list)
    held_bytes: int = 0
    open: dict[tuple[str, str], _Open] = field(default_factory=dict)
    untracked: int = 0
    #: ``ts`` of the message being decoded (events are reported on it).
    now: int = 0
    #: ``msg_index`` of that message.
    now_index: int = -1
    #: ``ts`` of the last RECENT messages decoded, by msg_index: an event made
    #: of several messages (Socket.IO's binary attachments) is timed, like its
    #: row, by the message it starts in.
    recent: dict[int, int] = field(default_factory=dict)
    #: The run of messages being decoded, if any.
    run: MessageRun | None = None
    finished: bool = False

    def __post_init__(self) -> None:
        if self.disabled:
            self.decided = True
            return
        cls, conf = choose(self.facts, [], self.forced)
        if cls is not None and (conf > 0 or self.forced is not None):
            self._start(cls, conf)
        elif self.forced is not None:
            self.decided = True  # an unknown forced name: nothing

    @property
    def protocol(self) -> str | None:
        """The chosen decoder's name, or None."""
        return self.decoder.name if self.decoder is not None else None

    def _start(self, cls: type[Decoder], confidence: float) -> None:
        self.decided = True
        self.confidence = confidence
        try:
            self.decoder = cls(self.facts)
        except Exception:  # noqa: BLE001 - a decoder's bug must not stop the capture
            self.decoder, self.confidence = None, 0.0

    def feed(self, message: AppMessage) -> tuple[list[AppRow], list[AppFinding]]:
        """The rows and findings this data message (and those held) give."""
        if self.finished:
            return [], []
        if not self.decided:
            self.held.append(message)
            self.held_bytes += len(message.payload)
            if len(self.held) < self.sniff and self.held_bytes < SNIFF_BYTES:
                return [], []
            return self._decide()
        if self.decoder is None:
            return [], []
        return self._run(message)

    def feed_run(self, run: MessageRun) -> RunRows:
        """:meth:`feed` on each message of ``run``, in order; once a decoder
        is chosen, the run goes to it whole (:meth:`Decoder.receive_run`)."""
        if self.finished or not len(run) or (self.decided and self.decoder is None):
            return []
        if not self.decided:
            out: RunRows = []
            for i in range(len(run)):
                rows, findings = self.feed(run.message(i))
                if rows or findings:
                    out.append((i, rows, findings))
            return out
        return self._run_many(run)

    def feed_columns(self, run: MessageRun) -> RowColumns | None:
        """:meth:`feed_run` as columns, where the chosen decoder offers them
        (:meth:`Decoder.receive_columns`); None, having done nothing, where
        not (undecided, no decoder, a decoder without the column path, or a
        protocol whose pairing looks at each event: :attr:`Pairing.asks`)."""
        decoder = self.decoder
        if self.finished or not len(run) or not self.decided or decoder is None:
            return None
        rule = PAIRING.get(decoder.name)
        if rule is not None and rule.asks is not None:
            return None
        try:
            got = decoder.receive_columns(run)
        except Exception as exc:  # noqa: BLE001 - the contract says never; be sure
            got = EventColumns(findings=[(0, AppFinding(
                "app_parse_failed", run.msg_index[0], run.direction[0],
                f"{decoder.name} decoder error ({type(exc).__name__})"))])
        if got is None:
            return None
        return self._pair_columns(run, got)

    def _pair_columns(self, run: MessageRun, cols: EventColumns) -> RowColumns:
        """:meth:`_pair` on each event of ``cols``, as :meth:`_run_many` does,
        with the message times kept as it keeps them (see :meth:`_times`)."""
        self.run = run
        protocol = cols.protocol
        names = protocol.present() if isinstance(protocol, Coded) else set(protocol)
        rules = {name: PAIRING.get(name) for name in names}
        (rule, *others) = rules.values() or (None,)
        if rule is not None and rule.by_decoder and not others:
            answered = _answered(cols.answers)
            self._times(run, _given(run, cols))
            self.run = None
            return RowColumns(cols, *answered)
        request_msg: list[int | None] = [None] * len(cols)
        latency: list[int | None] = [None] * len(cols)
        cols.as_lists()  # (the loop below reads Python's values, a row at a time)
        given, marked = self._pair_each(run, cols, rules, request_msg, latency)
        if given is None:
            given = _given(run, cols)
        self._times(run, given[marked:])
        self.run = None
        return RowColumns(cols, request_msg, latency)

    def _pair_each(self, run: MessageRun, cols: EventColumns,
                   rules: dict[str, Pairing | None], request_msg: list[int | None],
                   latency: list[int | None]) -> tuple[list[int] | None, int]:
        """The loop of :meth:`_pair_columns`, a row at a time: the pairs
        written into ``request_msg`` and ``latency``. Returns the positions
        of the messages that gave something, in order, where an event named
        another message (None if none did), and how many of them were marked
        (``_at``) meanwhile."""
        index, ts = run.msg_index, run.ts
        opened = self.open
        # (the pairs of decoders that pair their own, as lists: None where none)
        answered = [[None if v == NO_ANSWER else v for v in column.tolist()]
                    for column in _answered(cols.answers)] if any(
            rule is not None and rule.by_decoder for rule in rules.values()) else None
        # The messages that gave something, in order: _run_many marks each
        # (``_at``) before its events; here only when an event needs it.
        given: list[int] | None = None
        marked = 0
        for j, (ident, protocol, at, kind, direction, msg_index) in enumerate(zip(
                cols.id, cols.protocol, cols.position, cols.kind, cols.direction,
                cols.msg_index)):
            rule = rules[protocol]
            if rule is not None and rule.by_decoder:  # (a null id too: the decoder says)
                assert answered is not None
                request_msg[j], latency[j] = answered[0][j], answered[1][j]
                continue
            if ident is None or rule is None:
                continue
            if msg_index == index[at]:
                now = ts[at]
            else:  # another message's time: as _run_many knows it by then
                if given is None:
                    given = sorted({*cols.position, *(i for i, _ in cols.findings)})
                while marked < len(given) and given[marked] <= at:
                    self._at(index[given[marked]], ts[given[marked]])
                    marked += 1
                now = self._ts_of(msg_index)
            if kind in rule.answers:
                asked = opened.pop((OTHER.get(direction, ""), ident), None)
                if asked is not None:  # (0: a time not known)
                    request_msg[j] = asked[0]
                    latency[j] = now - asked[1] if now and asked[1] else None
                    continue
            if (rule.requests is ANY_KIND or kind in rule.requests) and (
                    rule.request_direction in (None, direction)):
                key = (direction, ident)
                if key in opened or len(opened) < MAX_OPEN_REQUESTS:
                    opened[key] = (msg_index, now, kind, cols.channel[j])
                else:
                    self.untracked += 1
        return given, marked

    def _times(self, run: MessageRun, given: list[int]) -> None:
        """What _run_many's ``_at`` calls leave in :attr:`recent`, ``now`` and
        ``now_index``, from those not made yet: ``given`` (the positions of
        the messages that gave something, in order), then the last RECENT
        messages. With RECENT messages or more, what remains is those last
        RECENT (each later mark is of a later message, or of one of them),
        in the order the marks among them put them: the earlier marks change
        nothing that remains."""
        n = len(run)
        tail = max(0, n - RECENT)
        if tail:
            given = given[bisect.bisect_left(given, tail):]
        marks = [*given, *range(tail, n)]
        arrays = run.arrays
        if arrays is not None:  # (the few looked at, as Python's ints: no list of them all)
            index, ts = arrays.msg_index[marks].tolist(), arrays.ts[marks].tolist()
        else:
            index, ts = [run.msg_index[i] for i in marks], [run.ts[i] for i in marks]
        for i, t in zip(index, ts, strict=True):
            self._at(i, t)

    def _run_many(self, run: MessageRun) -> RunRows:
        assert self.decoder is not None
        try:
            got = self.decoder.receive_run(run)
        except Exception as exc:  # noqa: BLE001 - the contract says never; be sure
            got = [(0, [AppFinding("app_parse_failed", run.msg_index[0], run.direction[0],
                                   f"{self.decoder.name} decoder error ({type(exc).__name__})")])]
        out: RunRows = []
        ts, index = run.ts, run.msg_index
        self.run = run
        for i, items in got:
            self._at(index[i], ts[i])
            rows, findings = self._sort(items)
            out.append((i, rows, findings))
        for i in range(max(0, len(ts) - RECENT), len(ts)):
            self._at(index[i], ts[i])
        self.run = None
        return out

    def _at(self, msg_index: int, ts: int) -> None:
        """The message being decoded is ``msg_index``, complete at ``ts``."""
        self.now, self.now_index = ts, msg_index
        recent = self.recent
        recent[msg_index] = ts
        if len(recent) > RECENT:
            del recent[next(iter(recent))]

    def _ts_of(self, msg_index: int) -> int:
        """When message ``msg_index`` was complete (the one being decoded, or a
        recent one; else the one being decoded)."""
        if msg_index == self.now_index:
            return self.now
        run = self.run
        if run is not None:  # (a run's messages are in msg_index order)
            j = bisect.bisect_left(run.msg_index, msg_index)
            if j < len(run) and run.msg_index[j] == msg_index:
                return int(run.ts[j])
        return self.recent.get(msg_index, self.now)

    def _decide(self) -> tuple[list[AppRow], list[AppFinding]]:
        held, self.held, self.held_bytes = self.held, [], 0
        cls, conf = choose(self.facts, held, self.forced)
        if cls is None or conf <= 0:
            self.decided = True
            return [], []
        self._start(cls, conf)
        rows: list[AppRow] = []
        findings: list[AppFinding] = []
        for message in held:
            more_rows, more_findings = self._run(message)
            rows += more_rows
            findings += more_findings
        return rows, findings

    def _run(self, message: AppMessage) -> tuple[list[AppRow], list[AppFinding]]:
        assert self.decoder is not None
        try:
            out = self.decoder.receive(message)
        except Exception as exc:  # noqa: BLE001 - the contract says never; be sure
            out = [AppFinding("app_parse_failed", message.msg_index, message.direction,
                              f"{self.decoder.name} decoder error ({type(exc).__name__})")]
        self._at(message.msg_index, message.ts)
        return self._sort(out)

    def _sort(self, out: list[AppEvent | AppFinding]) -> tuple[list[AppRow], list[AppFinding]]:
        rows: list[AppRow] = []
        findings: list[AppFinding] = []
        for item in out:
            if isinstance(item, AppEvent):
                rows.append(self._pair(item))
            elif isinstance(item, AppFinding):
                findings.append(item)
        return rows, findings

    def _pair(self, event: AppEvent) -> AppRow:
        rule = PAIRING.get(event.protocol)
        if rule is not None and rule.by_decoder:  # (a null id too: the decoder says)
            return AppRow(event, event.request_msg, event.latency)
        if rule is None or event.id is None:
            return AppRow(event)
        ts = self._ts_of(event.msg_index)
        if event.kind in rule.answers:
            asked = self.open.pop((OTHER.get(event.direction, ""), event.id), None)
            if asked is not None:  # (0: a time not known)
                latency = ts - asked[1] if ts and asked[1] else None
                return AppRow(event, asked[0], latency)
        if (rule.requests is ANY_KIND or event.kind in rule.requests) and (
                rule.request_direction in (None, event.direction)) and (
                rule.asks is None or rule.asks(event)):
            key = (event.direction, event.id)
            if key in self.open or len(self.open) < MAX_OPEN_REQUESTS:
                self.open[key] = (event.msg_index, ts, event.kind, event.channel)
            else:
                self.untracked += 1
        return AppRow(event)

    def finish(self) -> tuple[list[AppRow], list[AppFinding]]:
        """End of the connection: decide on what is held, the decoder's last
        words, the requests left unanswered. Later calls return nothing."""
        if self.finished:
            return [], []
        rows, findings = self._decide() if not self.decided and self.held else ([], [])
        self.decided = True
        if self.decoder is not None:
            try:
                out = self.decoder.finish()
            except Exception:  # noqa: BLE001
                out = []
            more_rows, more_findings = self._sort(out)
            rows += more_rows
            findings += more_findings + self._unanswered()
        self.finished = True
        self.open.clear()
        return rows, findings

    def _unanswered(self) -> list[AppFinding]:
        name = self.protocol or ""
        rule = PAIRING.get(name)
        if rule is None or not rule.must_answer:
            return []
        out = [AppFinding("app_request_unanswered", index, direction,
                          f"{name} {kind} {_label(channel)}id {ident} never answered")
               for (direction, ident), (index, _ts, kind, channel) in self.open.items()
               if kind in rule.must_answer]
        if self.untracked:
            out.append(AppFinding("app_request_unanswered", None, None,
                                  f"{self.untracked} {name} requests beyond the "
                                  f"{MAX_OPEN_REQUESTS} tracked not checked"))
        return out


def _label(channel: str | None) -> str:
    return f"{channel[:60]!r} " if channel else ""
