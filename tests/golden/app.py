"""Run the application decoders (``wspcap.app``) over a :class:`wspcap.Capture`, test-side.

The engine does not call the decoders yet; until it gives an ``app`` table,
this is what it will do for one connection: build the :class:`ConnFacts`
from the connections row, let the registry choose a decoder from them and
the first messages, feed it every data message in order, then ``finish()``.
Tests that use :func:`decode` should only need it repointed at that table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import wspcap
from wspcap.app import AppEvent, AppFinding, AppMessage, ConnFacts, choose

__all__ = ["FIRST", "Decoded", "app_messages", "decode", "facts"]

#: How many messages the registry sees to recognize a protocol by content.
FIRST = 8


@dataclass
class Decoded:
    """One connection's decoder, its confidence, and what it said."""

    conn_id: int
    decoder: str | None
    confidence: float
    events: list[AppEvent] = field(default_factory=list)
    findings: list[AppFinding] = field(default_factory=list)

    def of(self, direction: str, *kinds: str) -> list[AppEvent]:
        """The events of one direction (and of these kinds, when given), in order."""
        return [e for e in self.events if e.direction == direction and (not kinds or e.kind in kinds)]


def _text(value: Any) -> str | None:
    """A table cell as text; None for a missing value (None, NaN or pandas' NA)."""
    return value if isinstance(value, str) and value else None


def facts(row: Any) -> ConnFacts:
    """The handshake facts of a connections-table row (a namedtuple from ``itertuples``)."""
    offered = tuple(p.strip() for p in (_text(row.protocols_offered) or "").split(",") if p.strip())
    headers = {name: text for name, value in (("host", row.host), ("origin", row.origin),
                                              ("user-agent", row.user_agent))
               if (text := _text(value)) is not None}
    return ConnFacts(subprotocol=_text(row.subprotocol), offered=offered, uri=_text(row.uri),
                     headers=headers)


def app_messages(capture: wspcap.Capture, conn_id: int) -> list[AppMessage]:
    """The connection's data messages (text and binary), in order, as decoder input."""
    m = capture.messages
    m = m[(m.conn_id == conn_id) & m.type.isin(["text", "binary"])].sort_values("msg_index")
    return [AppMessage(int(r.msg_index), str(r.direction), str(r.type), bytes(r.payload),
                       int(r.ts_start.value), bool(r.complete)) for r in m.itertuples()]


def decode(capture: wspcap.Capture, conn_id: int, forced: str | None = None) -> Decoded:
    """Choose a decoder for the connection (or force one) and run it over its messages."""
    (row,) = capture.connections[capture.connections.conn_id == conn_id].itertuples()
    conn_facts = facts(row)
    messages = app_messages(capture, conn_id)
    cls, confidence = choose(conn_facts, messages[:FIRST], forced=forced)
    out = Decoded(conn_id, cls.name if cls else None, confidence)
    if cls is None:
        return out
    decoder = cls(conn_facts)
    results = [r for message in messages for r in decoder.receive(message)]
    results += decoder.finish()
    out.events = [r for r in results if isinstance(r, AppEvent)]
    out.findings = [r for r in results if isinstance(r, AppFinding)]
    return out
