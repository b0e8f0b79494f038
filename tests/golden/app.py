"""One connection's application decoding, as the tests compare it with the truth.

- :func:`from_table`: what the engine gives, read back from ``capture.app``
  (each row an :class:`AppEvent`), the ``app_*`` anomalies (each an
  :class:`AppFinding`) and the connection's ``app_protocol`` and
  ``app_confidence``: what the tests check.
- :func:`decode`: the decoders run test-side, straight from the registry
  (build the :class:`ConnFacts` from the connections row, choose a decoder
  from them and the first messages, feed it every data message in order,
  then ``finish()``): a reference the table is compared with, and the
  findings' message indexes, which the anomalies table does not carry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

import wspcap
from wspcap.app import AppEvent, AppFinding, AppMessage, ConnFacts, choose

__all__ = ["FIRST", "Decoded", "app_messages", "decode", "facts", "from_table"]

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


def _cell(value: Any) -> str | None:
    return None if value is None or value is pd.NA or (
        not isinstance(value, str) and pd.isna(value)) else str(value)


def from_table(capture: wspcap.Capture, conn_id: int) -> Decoded:
    """The connection's decoding as the engine gave it: ``capture.app`` rows in
    table order, ``app_*`` anomaly rows (no message index: the anomalies table
    locates them by frame), and the connection's protocol and confidence."""
    (row,) = capture.connections[capture.connections.conn_id == conn_id].itertuples()
    confidence = 0.0 if pd.isna(row.app_confidence) else float(row.app_confidence)
    out = Decoded(conn_id, _cell(row.app_protocol), confidence)
    rows = capture.app[capture.app.conn_id == conn_id]
    out.events = [AppEvent(int(r.msg_index), str(r.direction), str(r.protocol), str(r.kind),
                           _cell(r.channel), _cell(r.id), json.loads(r.fields), int(r.part))
                  for r in rows.itertuples()]
    a = capture.anomalies
    found = a[(a.conn_id == conn_id) & a.code.astype(str).str.startswith("app_")]
    out.findings = [AppFinding(str(f.code), None, _cell(f.direction), str(f.detail))
                    for f in found.itertuples()]
    return out
