"""Rails ActionCable over WebSocket (subprotocol ``actioncable-v1-json``).

Own parser: no Python package reads ActionCable passively, and the format
(actioncable's ``connection.js``/``subscriptions.js`` and
``ActionCable::Connection``) is a few JSON objects:

- client commands ``{"command": "subscribe"|"unsubscribe"|"message",
  "identifier": "<JSON text>", "data": "<JSON text>"}`` -> ``subscribe``,
  ``unsubscribe``, ``publish`` (``message``: the ``perform`` call, its
  ``action`` in fields);
- server ``{"type": "welcome"}`` -> ``connect``, ``ping`` -> ``ping``,
  ``confirm_subscription`` -> ``ack``, ``reject_subscription`` -> ``error``,
  ``disconnect`` -> ``disconnect``; a broadcast ``{"identifier", "message"}``
  -> ``event``.

Channel: the ``channel`` of the identifier (the identifier is itself JSON
text; its other keys, e.g. ``room``, go to fields as ``params``). id: the
identifier's text, which names a subscription (the protocol has no message
ids): the server confirms or rejects a ``subscribe`` with the identifier the
client sent, so the runner pairs them (latency of a subscription). A ``subscribe`` identifier or a
``message`` data carrying tokens or passwords -> ``app_credentials_in_clear``.

Recognition: subprotocol ``actioncable-v1-json`` (and
``actioncable-unsupported``) 1.0; URI path ``/cable`` 0.9; content: the
``welcome``, a command with an identifier, or a broadcast (a ``message`` to an
identifier naming a ``channel``) 0.7; a ``confirm_subscription``, the
server's heart-beat (``ping`` with a Unix time) or a ``disconnect`` saying
whether to reconnect 0.6. A capture that starts mid-conversation on a
connection that only listens holds nothing but broadcasts and pings (seen on
Rails' own server, tests/test_app_actioncable_live.py).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from ._json import NOT_JSON, JsonDecoder, credential_paths, loads
from .base import AppEvent, AppFinding, AppMessage, ConnFacts
from .registry import register

__all__ = ["ActionCableDecoder"]

_COMMANDS = {"subscribe": "subscribe", "unsubscribe": "unsubscribe", "message": "publish"}
_TYPES = {
    "welcome": "connect",
    "ping": "ping",
    "confirm_subscription": "ack",
    "reject_subscription": "error",
    "disconnect": "disconnect",
}


def _uri_is_cable(uri: str | None) -> bool:
    if not uri:
        return False
    try:
        return urlsplit(uri).path.rstrip("/").endswith("/cable")
    except ValueError:
        return False


def _identifier(text: Any) -> tuple[str | None, Any]:
    """(channel name, the parsed identifier) of an identifier string."""
    parsed = loads(text) if isinstance(text, str) else NOT_JSON
    if isinstance(parsed, dict):
        channel = parsed.get("channel")
        return (channel if isinstance(channel, str) else None), parsed
    return None, text


@register
class ActionCableDecoder(JsonDecoder):
    """ActionCable commands, pings and broadcasts."""

    name = "actioncable"
    recognition = ("subprotocol actioncable-v1-json; URI path /cable; "
                   "content (welcome, commands, broadcasts, pings)")
    label = "ActionCable"
    #: A command, a server message with a type, or one naming its channel's
    #: identifier (see decode): anything else gives nothing unclaimed.
    marks = (b'"command"', b'"type"', b'"identifier"')
    subprotocols = ("actioncable-v1-json", "actioncable-unsupported")

    @classmethod
    def claimed_by(cls, facts: ConnFacts) -> bool:
        return facts.subprotocol in cls.subprotocols or _uri_is_cable(facts.uri)

    @classmethod
    def uri_score(cls, uri: str | None) -> float:
        return 0.9 if _uri_is_cable(uri) else 0.0

    @classmethod
    def content_score(cls, value: Any) -> float:
        if not isinstance(value, dict):
            return 0.0
        mtype = value.get("type")
        if mtype == "welcome" or (
            value.get("command") in _COMMANDS and isinstance(value.get("identifier"), str)
        ):
            return 0.7
        if mtype is None and "message" in value and _identifier(value.get("identifier"))[0]:
            return 0.7  # a broadcast or transmit to a subscription
        if mtype == "confirm_subscription":
            return 0.6
        if mtype == "ping":  # ActionCable::Connection::Base#beat: the server's Unix time
            stamp = value.get("message")
            return 0.6 if isinstance(stamp, int) and not isinstance(stamp, bool) else 0.0
        if mtype == "disconnect" and isinstance(value.get("reconnect"), bool):
            return 0.6
        return 0.0

    def decode(self, message: AppMessage) -> list[AppEvent | AppFinding]:
        value = loads(message.payload)
        if not isinstance(value, dict):
            what = "not JSON" if value is NOT_JSON else "not a JSON object"
            return self.parse_failed(message, f"ActionCable message is {what}")
        out: list[AppEvent | AppFinding] = []
        fields: dict[str, Any] = {}
        channel, ident = _identifier(value.get("identifier"))
        if "identifier" in value:
            fields["identifier"] = value["identifier"]
            if isinstance(ident, dict):
                fields["params"] = {k: v for k, v in ident.items() if k != "channel"}
        command = value.get("command")
        mtype = value.get("type")
        if isinstance(command, str):
            kind = _COMMANDS.get(command)
            if kind is None:
                return self.parse_failed(
                    message, f"ActionCable unknown command {command[:40]!r}", force=True)
            fields["command"] = command
            secrets = credential_paths(ident) if command == "subscribe" else []
            if "data" in value:
                data = value["data"]
                parsed = loads(data) if isinstance(data, str) else data
                fields["data"] = parsed if parsed is not NOT_JSON else data
                if isinstance(parsed, dict):
                    if isinstance(parsed.get("action"), str):
                        fields["action"] = parsed["action"]
                    secrets += [f"data.{p}" for p in credential_paths(parsed)]
            if secrets:
                out.append(self.finding(
                    message, "app_credentials_in_clear",
                    f"ActionCable {command} to {channel or '?'} carries {', '.join(secrets[:5])}"))
        elif isinstance(mtype, str):
            kind = _TYPES.get(mtype, "event")
            fields["type"] = mtype
            for key in ("message", "reason", "reconnect", "sid"):
                if key in value:
                    fields[key] = value[key]
        elif "message" in value and "identifier" in value:
            kind = "event"
            fields["message"] = value["message"]
        else:
            return self.parse_failed(message, "ActionCable message of unknown shape", force=False)
        ident_text = value.get("identifier")
        out.insert(0, self.event(message, kind, channel,
                                 ident_text if isinstance(ident_text, str) else None, fields))
        return out
