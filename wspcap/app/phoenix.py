"""Phoenix channels (Elixir) over WebSocket, serializer v1 and v2.

Own parser: there is no Python package with a passive Phoenix parser (the
few clients open their own sockets), and the format is small
(phoenix.js ``serializer.js``):

- v1 (``vsn=1.0.0``): an object ``{"topic","event","payload","ref"}``
  (``join_ref`` optional);
- v2 (``vsn=2.0.0``): an array ``[join_ref, ref, topic, event, payload]``;
  binary payloads travel in binary messages: a kind byte (0 push, 1 reply,
  2 broadcast), one length byte per string, the strings, then the payload
  bytes. A client push carries join_ref, ref, topic, event
  (``[0, jr, r, t, e]``); a server push has no ref (``[0, jr, t, e]``); a
  reply ``[1, jr, r, t, status]``; a broadcast ``[2, t, e]``. The payload
  goes to fields as ``payload_hex`` (first 4 KiB) and ``payload_size``.

Kinds: ``phx_join`` -> ``subscribe``, ``phx_leave`` -> ``unsubscribe``,
``phx_reply`` -> ``response`` (``error`` when its status is not ``ok``;
``pong`` when it answers a heartbeat), ``phx_error`` -> ``error``,
``phx_close`` -> ``disconnect``, ``heartbeat`` (topic ``phoenix``) ->
``ping``; any other event -> ``publish`` from the client, ``event`` from
the server. Channel: the topic; id: the ref; fields: event, join_ref,
payload, and for replies status/response.

A ``phx_join`` payload carrying tokens or passwords ->
``app_credentials_in_clear``.

Recognition: no subprotocol; a URI path ending ``/websocket`` with a
``vsn=`` query (the Phoenix socket convention) 0.9, ``/websocket`` alone
0.5; content: ``phx_join``/``heartbeat`` messages 0.7, other messages of
the shape 0.5.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from ._json import MAX_OPEN, NOT_JSON, JsonDecoder, credential_paths, loads
from .base import AppEvent, AppFinding, AppMessage, ConnFacts
from .registry import register

__all__ = ["PhoenixDecoder", "parse_binary", "parse_phoenix"]

_KINDS = {
    "phx_join": "subscribe",
    "phx_leave": "unsubscribe",
    "phx_reply": "response",
    "phx_error": "error",
    "phx_close": "disconnect",
    "heartbeat": "ping",
}


def _uri_score(uri: str | None) -> float:
    if not uri:
        return 0.0
    try:
        parts = urlsplit(uri)
    except ValueError:
        return 0.0
    if not parts.path.rstrip("/").endswith("/websocket"):
        return 0.0
    return 0.9 if "vsn" in parse_qs(parts.query) else 0.5


#: binary kinds (phoenix.js serializer.js KINDS)
PUSH, REPLY, BROADCAST = 0, 1, 2
_HEX_LIMIT = 4096


def parse_binary(data: bytes, direction: str) -> dict[str, Any] | None:
    """A binary v2 message as :func:`parse_phoenix` returns, or None."""
    if not data:
        return None
    kind = data[0]
    names: tuple[str, ...]
    if kind == PUSH:
        names = ("join_ref", "ref", "topic", "event") if direction == "c2s" else (
            "join_ref", "topic", "event")
    elif kind == REPLY:
        names = ("join_ref", "ref", "topic", "status")
    elif kind == BROADCAST:
        names = ("topic", "event")
    else:
        return None
    sizes = data[1:1 + len(names)]
    if len(sizes) < len(names):
        return None
    offset = 1 + len(names)
    out: dict[str, Any] = {"version": 2, "join_ref": None, "ref": None, "binary": kind}
    for name, size in zip(names, sizes, strict=True):
        raw = data[offset:offset + size]
        if len(raw) < size:
            return None
        out[name] = raw.decode("utf-8", "replace")
        offset += size
    body = data[offset:]
    payload = {"payload_size": len(body), "payload_hex": body[:_HEX_LIMIT].hex()}
    if kind == REPLY:
        out["event"] = "phx_reply"
        out["payload"] = {"status": out.pop("status"), "response": payload}
    else:
        out["payload"] = payload
    return out


def _ok_ref(value: Any) -> bool:
    return value is None or isinstance(value, str)  # phoenix.js refs are strings


def parse_phoenix(value: Any) -> dict[str, Any] | None:
    """The message as ``{"version","join_ref","ref","topic","event","payload"}``,
    or None when ``value`` is neither a v1 object nor a v2 array."""
    if isinstance(value, list):
        if len(value) != 5:
            return None
        join_ref, ref, topic, event, payload = value
        version = 2
    elif isinstance(value, dict):
        if not {"topic", "event", "payload"} <= value.keys():
            return None
        join_ref, ref = value.get("join_ref"), value.get("ref")
        topic, event, payload = value["topic"], value["event"], value["payload"]
        version = 1
    else:
        return None
    if not (isinstance(topic, str) and isinstance(event, str) and _ok_ref(ref) and _ok_ref(join_ref)):
        return None
    return {"version": version, "join_ref": join_ref, "ref": ref, "topic": topic,
            "event": event, "payload": payload}


@register
class PhoenixDecoder(JsonDecoder):
    """Phoenix channel messages (v1 objects and v2 arrays)."""

    name = "phoenix"
    recognition = "URI path ending /websocket with vsn=; content (join/reply arrays or objects)"
    label = "Phoenix"
    #: A v1 object has a ``topic``, a v2 message is an array, a binary v2
    #: message starts with its kind, 0 to 2 (see gives_nothing).
    marks = (b'"topic"', b"[", b"\x00", b"\x01", b"\x02")

    @classmethod
    def claimed_by(cls, facts: ConnFacts) -> bool:
        return _uri_score(facts.uri) >= 0.9

    @classmethod
    def uri_score(cls, uri: str | None) -> float:
        return _uri_score(uri)

    @classmethod
    def content_score(cls, value: Any) -> float:
        msg = parse_phoenix(value)
        if msg is None:
            return 0.0
        return 0.7 if msg["event"] in ("phx_join", "heartbeat", "phx_reply") else 0.5

    def __init__(self, facts: ConnFacts) -> None:
        super().__init__(facts)
        # refs of heartbeats sent, to call their replies pongs
        self.heartbeats: set[str] = set()

    def gives_nothing(self, msg_type: str, payload: bytes) -> bool:
        """Neither a v1 object nor a v2 array (nor a binary v2 message):
        :meth:`decode` gives nothing for it, unclaimed, and changes nothing."""
        if msg_type == "binary" and payload[:1] in (b"\x00", b"\x01", b"\x02"):
            return False
        return parse_phoenix(loads(payload)) is None

    def decode(self, message: AppMessage) -> list[AppEvent | AppFinding]:
        if message.type == "binary" and message.payload[:1] in (b"\x00", b"\x01", b"\x02"):
            value: Any = None
            msg = parse_binary(message.payload, message.direction)
        else:
            value = loads(message.payload)
            msg = parse_phoenix(value)
        if msg is None:
            what = "not JSON" if value is NOT_JSON else "not a Phoenix message"
            return self.parse_failed(message, f"Phoenix channel message is {what}")
        event, topic, ref, payload = msg["event"], msg["topic"], msg["ref"], msg["payload"]
        ref_id = None if ref is None else str(ref)
        kind = _KINDS.get(event, "publish" if message.direction == "c2s" else "event")
        fields: dict[str, Any] = {"event": event, "version": msg["version"],
                                  "join_ref": msg["join_ref"], "payload": payload}
        if "binary" in msg:
            fields["binary"] = True
        out: list[AppEvent | AppFinding] = []
        if event == "heartbeat" and ref_id is not None and len(self.heartbeats) < MAX_OPEN:
            self.heartbeats.add(ref_id)
        elif event == "phx_reply":
            if isinstance(payload, dict):
                fields["status"] = payload.get("status")
                fields["response"] = payload.get("response")
                if payload.get("status") not in (None, "ok"):
                    kind = "error"
            if ref_id is not None and ref_id in self.heartbeats:
                self.heartbeats.discard(ref_id)
                kind = "pong"
        elif event == "phx_join":
            paths = credential_paths(payload)
            if paths:
                out.append(self.finding(
                    message, "app_credentials_in_clear",
                    f"Phoenix phx_join to {topic[:80]} carries {', '.join(paths[:5])}"))
        out.insert(0, self.event(message, kind, topic, ref_id, fields))
        return out
