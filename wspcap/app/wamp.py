"""WAMP v2 over WebSocket, JSON serialization (``wamp.2.json``).

Own parser: autobahn's ``wamp.message`` classes parse messages, but
importing autobahn pulls twisted/txaio machinery and its ``parse`` raises
on the first protocol error; a WAMP message is a JSON array whose first
element is the type code, so a table (``TYPES``, codes from the WAMP spec,
"Message Codes and Direction") is enough. ``wamp.2.json.batched`` frames
several messages, each ended by 0x1E, into one WebSocket message.

Kinds and channel/id:

======================  ===========  =====================  =================
message (code)          kind         channel                id
======================  ===========  =====================  =================
HELLO (1)               connect      realm                  -
WELCOME (2)             ack          -                      session
ABORT (3)               error        reason                 -
CHALLENGE (4)           challenge    auth method            -
AUTHENTICATE (5)        auth         -                      -
GOODBYE (6)             disconnect   reason                 -
ERROR (8)               error        error URI              request
PUBLISH/PUBLISHED       publish/ack  topic                  request
SUBSCRIBE/SUBSCRIBED    subscribe/ack topic                 request
UNSUBSCRIBE(D)          unsubscribe/ack topic (when known)  request
EVENT (36)              event        topic (by subscription) publication
CALL/RESULT             request/response procedure          request
CANCEL/INTERRUPT        cancel       procedure (when known) request
REGISTER(ED)            register/ack procedure              request
UNREGISTER(ED)          unregister/ack procedure            request
INVOCATION/YIELD        request/response procedure          request
======================  ===========  =====================  =================

Topics of EVENTs and procedures of RESULTs are learnt from
SUBSCRIBE/SUBSCRIBED and CALL (bounded tables).

Credentials: an AUTHENTICATE after a ``ticket`` CHALLENGE (or after a
HELLO offering only ``ticket``) carries the ticket in clear ->
``app_credentials_in_clear`` naming the HELLO's ``authid``; a HELLO whose
``authextra`` holds a password or token likewise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._json import MAX_OPEN, NOT_JSON, JsonDecoder, credential_paths, loads, scalar_id
from .base import AppEvent, AppFinding, AppMessage, ConnFacts
from .registry import register

__all__ = ["TYPES", "WampDecoder"]

SUBPROTOCOL = "wamp.2.json"
BATCHED = "wamp.2.json.batched"

#: code -> (name, kind, minimum length)
TYPES: dict[int, tuple[str, str, int]] = {
    1: ("HELLO", "connect", 3),
    2: ("WELCOME", "ack", 3),
    3: ("ABORT", "error", 3),
    4: ("CHALLENGE", "challenge", 3),
    5: ("AUTHENTICATE", "auth", 3),
    6: ("GOODBYE", "disconnect", 3),
    8: ("ERROR", "error", 5),
    16: ("PUBLISH", "publish", 4),
    17: ("PUBLISHED", "ack", 3),
    32: ("SUBSCRIBE", "subscribe", 4),
    33: ("SUBSCRIBED", "ack", 3),
    34: ("UNSUBSCRIBE", "unsubscribe", 3),
    35: ("UNSUBSCRIBED", "ack", 2),
    36: ("EVENT", "event", 4),
    48: ("CALL", "request", 4),
    49: ("CANCEL", "cancel", 3),
    50: ("RESULT", "response", 3),
    64: ("REGISTER", "register", 4),
    65: ("REGISTERED", "ack", 3),
    66: ("UNREGISTER", "unregister", 3),
    67: ("UNREGISTERED", "ack", 2),
    68: ("INVOCATION", "request", 4),
    69: ("INTERRUPT", "cancel", 3),
    70: ("YIELD", "response", 3),
}

_ARGS_AT = {8: 5, 16: 4, 36: 4, 48: 4, 50: 3, 68: 4, 70: 3}
_ROLES = ("publisher", "subscriber", "caller", "callee", "broker", "dealer")

#: What a message gives: its event, then its findings.
_Out = list[AppEvent | AppFinding]
#: A message's handler (see :data:`_HANDLERS`): (decoder, message, its array,
#: the array's second element as an id, the event's fields, findings) -> the
#: event's (channel, id).
_Handler = Callable[["WampDecoder", AppMessage, list[Any], str | None, dict[str, Any], _Out],
                    tuple[Any, Any]]


def _is_wamp(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) >= 2
        and isinstance(value[0], int)
        and not isinstance(value[0], bool)
        and value[0] in TYPES
        and len(value) >= TYPES[value[0]][2]
    )


class _Bounded(dict[str, str]):
    """A dict that stops growing at :data:`MAX_OPEN` entries."""

    def put(self, key: str | None, value: Any) -> None:
        if key is not None and isinstance(value, str) and (key in self or len(self) < MAX_OPEN):
            self[key] = value


@register
class WampDecoder(JsonDecoder):
    """WAMP v2 JSON messages (plain and batched)."""

    name = "wamp"
    recognition = "subprotocol wamp.2.json(.batched); content (a HELLO array)"
    label = "WAMP"
    #: Every WAMP message is an array (see decode).
    marks = (b"[",)
    subprotocols = (SUBPROTOCOL, BATCHED)

    @classmethod
    def content_score(cls, value: Any) -> float:
        if not _is_wamp(value):
            return 0.0
        code = value[0]
        greeting = code == 2 or (code == 1 and isinstance(value[1], str))  # WELCOME, HELLO
        return 0.7 if greeting and isinstance(value[2], dict) and "roles" in value[2] else 0.0

    def __init__(self, facts: ConnFacts) -> None:
        super().__init__(facts)
        self.batched = facts.subprotocol == BATCHED
        self.authid: str | None = None
        self.ticket_only = False
        self.auth_method: str | None = None
        self.pending_sub = _Bounded()  # SUBSCRIBE request -> topic
        self.subscriptions = _Bounded()  # subscription id -> topic
        self.pending_call = _Bounded()  # CALL/REGISTER/INVOCATION request -> procedure
        self.registrations = _Bounded()  # registration id -> procedure
        self.pending_pub = _Bounded()  # PUBLISH request -> topic

    def decode(self, message: AppMessage) -> list[AppEvent | AppFinding]:
        data = message.payload
        if self.batched:
            chunks = data.split(b"\x1e")
            if chunks and chunks[-1] == b"":
                chunks.pop()
        else:
            chunks = [data]
        out: list[AppEvent | AppFinding] = []
        for part, chunk in enumerate(chunks):
            value = loads(chunk)
            if not _is_wamp(value):
                what = "not JSON" if value is NOT_JSON else "not a known WAMP message"
                out.extend(self.parse_failed(message, f"WAMP message is {what}"))
                continue
            out.extend(self._one(message, value, part))
        return out

    def _one(self, message: AppMessage, msg: list[Any], part: int) -> list[AppEvent | AppFinding]:
        """One WAMP message (``decode`` checked its code and length): its
        event, with the fields every message has, then its findings."""
        code = msg[0]
        name, kind, _ = TYPES[code]
        fields: dict[str, Any] = {"type": name, "code": code}
        out: _Out = []
        at = _ARGS_AT.get(code)
        if at is not None:
            if len(msg) > at:
                fields["args"] = msg[at]
            if len(msg) > at + 1:
                fields["kwargs"] = msg[at + 1]
        # (every code of TYPES has a handler: decode let only those through)
        channel, ident = _HANDLERS[code](self, message, msg, scalar_id(msg[1]), fields, out)
        if not isinstance(channel, str):
            channel = None
        out.insert(0, self.event(message, kind, channel, ident, fields, part))
        return out

    # One handler per message (or family of messages of the same shape), in
    # :data:`_HANDLERS`. Each takes the message, its array, ``key`` (the
    # array's second element as an id: the request, subscription or session
    # the message names), the fields to fill and the list to add findings to,
    # updates the learnt tables, and returns the event's (channel, id); a
    # channel that is not a string is dropped by :meth:`_one`.

    def _hello(self, message: AppMessage, msg: list[Any], key: str | None,
               fields: dict[str, Any], out: _Out) -> tuple[Any, Any]:
        """[HELLO, Realm, Details]: the authid and auth methods offered, and
        secrets in ``authextra``."""
        details = msg[2]
        fields["realm"], fields["details"] = msg[1], details
        if isinstance(details, dict):
            authid = details.get("authid")
            self.authid = authid if isinstance(authid, str) else None
            methods = details.get("authmethods")
            fields["authid"], fields["authmethods"] = authid, methods
            self.ticket_only = methods == ["ticket"]
            if isinstance(details.get("roles"), dict):
                fields["roles"] = [r for r in _ROLES if r in details["roles"]]
            secrets = credential_paths(details.get("authextra"))
            if secrets:
                out.append(self.finding(
                    message, "app_credentials_in_clear",
                    f"WAMP HELLO authextra carries {', '.join(secrets[:5])}"
                    f" for authid {self.authid}"))
        return msg[1], None

    def _welcome(self, message: AppMessage, msg: list[Any], key: str | None,
                 fields: dict[str, Any], out: _Out) -> tuple[Any, Any]:
        """[WELCOME, Session, Details]."""
        fields["details"] = msg[2]
        return None, msg[1]

    def _closing(self, message: AppMessage, msg: list[Any], key: str | None,
                 fields: dict[str, Any], out: _Out) -> tuple[Any, Any]:
        """[ABORT|GOODBYE, Details, Reason]."""
        fields["details"] = msg[1]
        return msg[2], None

    def _challenge(self, message: AppMessage, msg: list[Any], key: str | None,
                   fields: dict[str, Any], out: _Out) -> tuple[Any, Any]:
        """[CHALLENGE, AuthMethod, Extra]: the method, for the AUTHENTICATE."""
        fields["extra"] = msg[2]
        self.auth_method = msg[1] if isinstance(msg[1], str) else None
        return msg[1], None

    def _authenticate(self, message: AppMessage, msg: list[Any], key: str | None,
                      fields: dict[str, Any], out: _Out) -> tuple[Any, Any]:
        """[AUTHENTICATE, Signature, Extra]: after a ticket challenge (or a
        HELLO offering only ``ticket``), the signature is the ticket itself."""
        fields["signature"], fields["extra"] = msg[1], msg[2]
        fields["authid"] = self.authid
        if self.auth_method == "ticket" or (self.auth_method is None and self.ticket_only):
            out.append(self.finding(
                message, "app_credentials_in_clear",
                f"WAMP AUTHENTICATE ticket for authid {self.authid}"))
        return None, None

    def _error(self, message: AppMessage, msg: list[Any], key: str | None,
               fields: dict[str, Any], out: _Out) -> tuple[Any, Any]:
        """[ERROR, REQUEST.Type, REQUEST.Request, Details, Error]: the request
        is answered."""
        fields["request_type"] = TYPES.get(msg[1], (str(msg[1]),))[0] if isinstance(
            msg[1], int) else msg[1]
        fields["details"] = msg[3]
        self._forget(scalar_id(msg[2]))
        return msg[4], msg[2]

    def _request(self, message: AppMessage, msg: list[Any], key: str | None,
                 fields: dict[str, Any], out: _Out) -> tuple[Any, Any]:
        """[PUBLISH|SUBSCRIBE|CALL|REGISTER, Request, Options, Topic|Procedure]:
        the topic or procedure, until the answer."""
        fields["options"] = msg[2]
        table = {16: self.pending_pub, 32: self.pending_sub}.get(msg[0], self.pending_call)
        table.put(key, msg[3])
        return msg[3], msg[1]

    def _published(self, message: AppMessage, msg: list[Any], key: str | None,
                   fields: dict[str, Any], out: _Out) -> tuple[Any, Any]:
        """[PUBLISHED, PUBLISH.Request, Publication]."""
        channel = self.pending_pub.pop(key or "", None)
        fields["publication"] = msg[2]
        return channel, msg[1]

    def _granted(self, message: AppMessage, msg: list[Any], key: str | None,
                 fields: dict[str, Any], out: _Out) -> tuple[Any, Any]:
        """[SUBSCRIBED|REGISTERED, Request, Subscription|Registration]: the
        subscription's topic, for its EVENTs, or the registration's
        procedure, for its INVOCATIONs."""
        subscribed = msg[0] == 33
        pending = self.pending_sub if subscribed else self.pending_call
        channel = pending.pop(key or "", None)
        fields["subscription" if subscribed else "registration"] = msg[2]
        table = self.subscriptions if subscribed else self.registrations
        table.put(scalar_id(msg[2]), channel)
        return channel, msg[1]

    def _unsubscribe(self, message: AppMessage, msg: list[Any], key: str | None,
                     fields: dict[str, Any], out: _Out) -> tuple[Any, Any]:
        """[UNSUBSCRIBE|UNREGISTER, Request, Subscription|Registration]."""
        subscription = msg[0] == 34
        table = self.subscriptions if subscription else self.registrations
        channel = table.get(scalar_id(msg[2]) or "")
        fields["subscription" if subscription else "registration"] = msg[2]
        return channel, msg[1]

    def _unsubscribed(self, message: AppMessage, msg: list[Any], key: str | None,
                      fields: dict[str, Any], out: _Out) -> tuple[Any, Any]:
        """[UNSUBSCRIBED|UNREGISTERED, Request]."""
        return None, msg[1]

    def _event(self, message: AppMessage, msg: list[Any], key: str | None,
               fields: dict[str, Any], out: _Out) -> tuple[Any, Any]:
        """[EVENT, Subscription, Publication, Details]: the topic from the
        details, else the subscription's."""
        fields["subscription"], fields["details"] = msg[1], msg[3]
        topic = msg[3].get("topic") if isinstance(msg[3], dict) else None
        return (topic if isinstance(topic, str) else self.subscriptions.get(key or "")), msg[2]

    def _invocation(self, message: AppMessage, msg: list[Any], key: str | None,
                    fields: dict[str, Any], out: _Out) -> tuple[Any, Any]:
        """[INVOCATION, Request, Registration, Details]: the procedure from the
        details, else the registration's, until the YIELD."""
        fields["registration"], fields["details"] = msg[2], msg[3]
        proc = msg[3].get("procedure") if isinstance(msg[3], dict) else None
        channel = proc if isinstance(proc, str) else self.registrations.get(
            scalar_id(msg[2]) or "")
        self.pending_call.put(key, channel)
        return channel, msg[1]

    def _cancel(self, message: AppMessage, msg: list[Any], key: str | None,
                fields: dict[str, Any], out: _Out) -> tuple[Any, Any]:
        """[CANCEL|INTERRUPT, Request, Options]: the request stays open."""
        fields["options"] = msg[2]
        return self.pending_call.get(key or ""), msg[1]

    def _result(self, message: AppMessage, msg: list[Any], key: str | None,
                fields: dict[str, Any], out: _Out) -> tuple[Any, Any]:
        """[RESULT|YIELD, Request, Details|Options]: the request is answered."""
        channel = self.pending_call.pop(key or "", None)
        fields["details" if msg[0] == 50 else "options"] = msg[2]
        return channel, msg[1]

    def _forget(self, key: str | None) -> None:
        if key is not None:
            for table in (self.pending_sub, self.pending_call, self.pending_pub):
                table.pop(key, None)


#: Message code -> its handler (a :class:`WampDecoder` method), for every code of :data:`TYPES`.
_HANDLERS: dict[int, _Handler] = {
    1: WampDecoder._hello,
    2: WampDecoder._welcome,
    3: WampDecoder._closing,
    4: WampDecoder._challenge,
    5: WampDecoder._authenticate,
    6: WampDecoder._closing,
    8: WampDecoder._error,
    16: WampDecoder._request,
    17: WampDecoder._published,
    32: WampDecoder._request,
    33: WampDecoder._granted,
    34: WampDecoder._unsubscribe,
    35: WampDecoder._unsubscribed,
    36: WampDecoder._event,
    48: WampDecoder._request,
    49: WampDecoder._cancel,
    50: WampDecoder._result,
    64: WampDecoder._request,
    65: WampDecoder._granted,
    66: WampDecoder._unsubscribe,
    67: WampDecoder._unsubscribed,
    68: WampDecoder._invocation,
    69: WampDecoder._cancel,
    70: WampDecoder._result,
}
