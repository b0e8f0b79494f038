"""ASP.NET Core SignalR, JSON hub protocol, over WebSocket.

Own parser: the only Python client (signalrcore) is a connection object
that opens its own sockets; the wire format (HubProtocol.md) is JSON
records each terminated by the record separator 0x1E, several per
WebSocket message.

Records and kinds:

- handshake request ``{"protocol":"json","version":1}`` (client, first)
  -> ``connect``; handshake response ``{}`` -> ``ack``, ``{"error":...}`` ->
  ``error``;
- 1 Invocation -> ``request`` (with ``invocationId``) or ``notification``
  (without: fire and forget), channel the hub method (``target``); either
  side invokes (a server invocation with an id asks the client for a
  result), each numbering its own;
- 2 StreamItem -> ``event``; 3 Completion -> ``response`` (``error`` when
  it carries one), channel the target of the invocation answered, or of the
  invocation whose ``streamIds`` named the stream (a client-to-server stream:
  its items and its end carry the stream id);
- 4 StreamInvocation -> ``subscribe``; 5 CancelInvocation -> ``unsubscribe``;
- 6 Ping -> ``ping``; 7 Close -> ``disconnect``; 8 Ack, 9 Sequence (stateful
  reconnect) -> ``ack``, ``sequence``.

id: ``invocationId``; ``part``: the record's index in its message. A
handshake naming another protocol (``messagepack``) stops decoding (binary
records are not JSON) without findings.

Recognition: no standard subprotocol; a URI with a ``...hub`` path segment
(the ASP.NET convention, e.g. ``/chathub?id=...``) 0.8, the handshake
record 0.7.

The JavaScript client sends its bearer token in the URI when on WebSockets
(``?access_token=...``, browsers cannot set headers there): that is the
handshake's ``sec_credentials_in_url`` (wspcap.rules.sec), not reported
again here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from ._json import MAX_OPEN, NOT_JSON, JsonDecoder, loads
from .base import AppEvent, AppFinding, AppMessage, ConnFacts
from .registry import register

__all__ = ["RECORD_SEPARATOR", "SignalRDecoder"]

#: Ends every record of the JSON hub protocol.
RECORD_SEPARATOR = b"\x1e"

_HUB_PATH = re.compile(r"/[^/]*hub[^/]*/?$", re.IGNORECASE)

#: message type -> (name, kind)
TYPES: dict[int, tuple[str, str]] = {
    1: ("invocation", "request"),
    2: ("stream_item", "event"),
    3: ("completion", "response"),
    4: ("stream_invocation", "subscribe"),
    5: ("cancel_invocation", "unsubscribe"),
    6: ("ping", "ping"),
    7: ("close", "disconnect"),
    8: ("ack", "ack"),
    9: ("sequence", "sequence"),
}


def _uri_says_hub(uri: str | None) -> bool:
    if not uri:
        return False
    try:
        path = urlsplit(uri).path
    except ValueError:
        return False
    return bool(_HUB_PATH.search(path))


def _is_handshake(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("protocol"), str) and "version" in value


@register
class SignalRDecoder(JsonDecoder):
    """SignalR JSON hub protocol records."""

    name = "signalr"
    recognition = 'URI path with "hub"; content (the JSON hub handshake, 0x1E-ended records)'
    label = "SignalR"
    #: A record ends with the record separator: a message without one gives
    #: nothing unclaimed (see decode).
    marks = (b"\x1e",)

    @classmethod
    def claimed_by(cls, facts: ConnFacts) -> bool:
        return _uri_says_hub(facts.uri)

    @classmethod
    def recognize(cls, facts: ConnFacts, first: Sequence[AppMessage]) -> float:
        try:
            best = 0.8 if _uri_says_hub(facts.uri) else 0.0
            for message in list(first)[:4]:
                data = message.payload
                if not data.endswith(RECORD_SEPARATOR):
                    continue
                for record in data.split(RECORD_SEPARATOR)[:8]:
                    value = loads(record)
                    if _is_handshake(value):
                        return max(best, 0.7)
                    if isinstance(value, dict) and value.get("type") in TYPES:
                        best = max(best, 0.6)
            return best
        except Exception:  # noqa: BLE001
            return 0.0

    def __init__(self, facts: ConnFacts) -> None:
        super().__init__(facts)
        self.handshaken = {"c2s": False, "s2c": False}
        self.other_protocol: str | None = None
        # (invoker's direction, invocationId) -> target: each side numbers its
        # own invocations (a client result's id can be one the client uses too)
        self.targets: dict[tuple[str, str], str] = {}
        # (sender's direction, stream id) -> target of the invocation it streams to
        self.uploads: dict[tuple[str, str], str] = {}

    def decode(self, message: AppMessage) -> list[AppEvent | AppFinding]:
        out: list[AppEvent | AppFinding] = []
        if self.other_protocol is not None:
            return out
        data = message.payload
        records = data.split(RECORD_SEPARATOR)
        tail = records.pop()
        if tail:
            out.extend(
                self.parse_failed(message, "SignalR record without its 0x1E terminator")
            )
        for part, record in enumerate(records):
            out.extend(self._record(message, record, part))
            if self.other_protocol is not None:
                break
        return out

    def _record(self, message: AppMessage, record: bytes, part: int) -> list[AppEvent | AppFinding]:
        value = loads(record)
        if not isinstance(value, dict):
            what = "not JSON" if value is NOT_JSON else "not a JSON object"
            return self.parse_failed(message, f"SignalR record is {what}", force=True)
        direction = message.direction
        if not self.handshaken.get(direction, True) and "type" not in value:
            self.handshaken[direction] = True
            if direction == "c2s" or _is_handshake(value):
                protocol = value.get("protocol")
                if isinstance(protocol, str) and protocol != "json":
                    self.other_protocol = protocol
                return [self.event(message, "connect", None, None, dict(value), part)]
            kind = "error" if "error" in value else "ack"
            return [self.event(message, kind, None, None, dict(value), part)]
        self.handshaken[direction] = True
        mtype = value.get("type")
        if not isinstance(mtype, int) or isinstance(mtype, bool) or mtype not in TYPES:
            return self.parse_failed(message, f"SignalR record of unknown type {mtype!r:.40}", force=True)
        name, kind = TYPES[mtype]
        inv = value.get("invocationId")
        inv_id = inv if isinstance(inv, str) else None
        fields: dict[str, Any] = {"type": mtype, "type_name": name}
        for key in ("target", "arguments", "streamIds", "headers", "item", "result", "error",
                    "allowReconnect", "sequenceId"):
            if key in value:
                fields[key] = value[key]
        channel = value.get("target") if isinstance(value.get("target"), str) else None
        if mtype in (1, 4):
            if inv_id is None and mtype == 1:
                kind = "notification"
            elif inv_id is not None and channel is not None:
                _remember(self.targets, (direction, inv_id), channel)
            streams = value.get("streamIds")
            if channel is not None and isinstance(streams, list):
                for stream in streams[:MAX_OPEN]:
                    if isinstance(stream, str):
                        _remember(self.uploads, (direction, stream), channel)
        elif mtype in (2, 3, 5) and inv_id is not None:
            channel = self._answered(direction, inv_id, mtype)
            if mtype == 3 and "error" in value:
                kind = "error"
        return [self.event(message, kind, channel, inv_id, fields, part)]

    def _answered(self, direction: str, inv_id: str, mtype: int) -> str | None:
        """The target a StreamItem (2), Completion (3) or CancelInvocation (5)
        from ``direction`` is about; a Completion ends what it completes.

        A CancelInvocation names the sender's own stream invocation; its
        Completion may still follow (ASP.NET Core sends one). StreamItems and
        Completions answer the other side's invocation, or carry a stream
        the sender passed as an argument (``streamIds``): a client-to-server
        stream's items and its end."""
        other = "s2c" if direction == "c2s" else "c2s"
        if mtype == 5:
            return self.targets.get((direction, inv_id))
        answer, upload = (other, inv_id), (direction, inv_id)
        if mtype == 2:
            return self.uploads.get(upload, self.targets.get(answer))
        if answer in self.targets:
            return self.targets.pop(answer)
        return self.uploads.pop(upload, None)


def _remember(table: dict[tuple[str, str], str], key: tuple[str, str], target: str) -> None:
    """``table[key] = target`` while fewer than MAX_OPEN are held."""
    if key in table or len(table) < MAX_OPEN:
        table[key] = target
