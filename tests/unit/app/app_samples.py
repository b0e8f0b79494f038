"""Sample conversations of the JSON-family decoders, built with json.dumps from
the message shapes their specifications document, each with what the decoder
must make of it (ground truth). Shared by the per-decoder tests, the
cross-recognition test and tests/fuzz/test_app_decoders.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from wspcap.app.base import AppMessage, ConnFacts

__all__ = ["FOREIGN", "SAMPLES", "Sample", "check", "conversation", "j", "run", "summary"]

RS = "\x1e"


def j(value: Any) -> str:
    """Compact JSON text, as the libraries send it."""
    return json.dumps(value, separators=(",", ":"))


def conversation(*items: tuple[str, str | bytes]) -> list[AppMessage]:
    """AppMessages from (direction, text-or-bytes) pairs, indexed in order."""
    out = []
    for i, (direction, payload) in enumerate(items):
        data = payload.encode() if isinstance(payload, str) else payload
        out.append(AppMessage(i, direction, "text" if isinstance(payload, str) else "binary", data,
                              ts=i * 1_000_000))
    return out


@dataclass(frozen=True)
class Sample:
    owner: str
    facts: ConnFacts
    messages: list[AppMessage]
    #: (msg_index, direction, kind, channel, id, part) of every event, in order
    expected: list[tuple[int, str, str, str | None, str | None, int]]


# JSON-RPC 2.0: the specification's examples (section 7).
JSONRPC = Sample(
    "jsonrpc",
    ConnFacts(uri="/rpc"),
    conversation(
        ("c2s", j({"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1})),
        ("s2c", j({"jsonrpc": "2.0", "result": 19, "id": 1})),
        ("c2s", j({"jsonrpc": "2.0", "method": "update", "params": [1, 2, 3, 4, 5]})),
        ("c2s", j([
            {"jsonrpc": "2.0", "method": "sum", "params": [1, 2, 4], "id": "1"},
            {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
            {"jsonrpc": "2.0", "method": "get_data", "id": "9"},
        ])),
        ("s2c", j([
            {"jsonrpc": "2.0", "result": 7, "id": "1"},
            {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"},
             "id": "9"},
        ])),
        ("c2s", j({"jsonrpc": "2.0", "method": "subtract", "params": {"a": 1}, "id": 3})),
    ),
    [
        (0, "c2s", "request", "subtract", "1", 0),
        (1, "s2c", "response", "subtract", "1", 0),
        (2, "c2s", "notification", "update", None, 0),
        (3, "c2s", "request", "sum", "1", 0),
        (3, "c2s", "notification", "notify_hello", None, 1),
        (3, "c2s", "request", "get_data", "9", 2),
        (4, "s2c", "response", "sum", "1", 0),
        (4, "s2c", "error", "get_data", "9", 1),
        (5, "c2s", "request", "subtract", "3", 0),
    ],
)

# graphql-transport-ws: PROTOCOL.md of enisdenjo/graphql-ws.
GRAPHQL = Sample(
    "graphql",
    ConnFacts(subprotocol="graphql-transport-ws", offered=("graphql-transport-ws",),
              uri="/graphql"),
    conversation(
        ("c2s", j({"type": "connection_init", "payload": {"authToken": "s3cr3t"}})),
        ("s2c", j({"type": "connection_ack"})),
        ("c2s", j({"id": "a1", "type": "subscribe", "payload": {
            "query": "subscription OnPrice($s: String!) { price(symbol: $s) }",
            "variables": {"s": "EURUSD"}}})),
        ("s2c", j({"id": "a1", "type": "next", "payload": {"data": {"price": 1.08}}})),
        ("c2s", j({"id": "b2", "type": "subscribe", "payload": {
            "operationName": "Me", "query": "query Me { me { name } }"}})),
        ("s2c", j({"id": "b2", "type": "next", "payload": {"data": {"me": {"name": "bob"}}}})),
        ("s2c", j({"id": "b2", "type": "complete"})),
        ("c2s", j({"type": "ping"})),
        ("s2c", j({"type": "pong"})),
        ("c2s", j({"id": "a1", "type": "complete"})),
    ),
    [
        (0, "c2s", "connect", None, None, 0),
        (1, "s2c", "ack", None, None, 0),
        (2, "c2s", "subscribe", "OnPrice", "a1", 0),
        (3, "s2c", "event", "OnPrice", "a1", 0),
        (4, "c2s", "request", "Me", "b2", 0),
        (5, "s2c", "response", "Me", "b2", 0),
        (6, "s2c", "complete", "Me", "b2", 0),
        (7, "c2s", "ping", None, None, 0),
        (8, "s2c", "pong", None, None, 0),
        (9, "c2s", "unsubscribe", "OnPrice", "a1", 0),
    ],
)

# Legacy graphql-ws: subscriptions-transport-ws PROTOCOL.md.
GRAPHQL_LEGACY = Sample(
    "graphql",
    ConnFacts(subprotocol="graphql-ws", uri="/subscriptions"),
    conversation(
        ("c2s", j({"type": "connection_init", "payload": {}})),
        ("s2c", j({"type": "connection_ack"})),
        ("s2c", j({"type": "ka"})),
        ("c2s", j({"id": "1", "type": "start", "payload": {
            "query": "subscription { newMessage { text } }", "variables": None}})),
        ("s2c", j({"id": "1", "type": "data", "payload": {"data": {"newMessage": {"text": "hi"}}}})),
        ("c2s", j({"id": "1", "type": "stop"})),
        ("s2c", j({"id": "1", "type": "complete"})),
        ("c2s", j({"type": "connection_terminate"})),
    ),
    [
        (0, "c2s", "connect", None, None, 0),
        (1, "s2c", "ack", None, None, 0),
        (2, "s2c", "ping", None, None, 0),
        (3, "c2s", "subscribe", None, "1", 0),
        (4, "s2c", "event", None, "1", 0),
        (5, "c2s", "unsubscribe", None, "1", 0),
        (6, "s2c", "complete", None, "1", 0),
        (7, "c2s", "disconnect", None, None, 0),
    ],
)

# SignalR JSON hub protocol: HubProtocol.md (dotnet/aspnetcore).
SIGNALR = Sample(
    "signalr",
    ConnFacts(uri="/chathub?id=K3bHx6z0Q"),
    conversation(
        ("c2s", j({"protocol": "json", "version": 1}) + RS),
        ("s2c", j({}) + RS + j({"type": 6}) + RS),
        ("c2s", j({"type": 1, "invocationId": "0", "target": "SendMessage",
                   "arguments": ["bob", "hello"]}) + RS
                + j({"type": 1, "target": "Typing", "arguments": ["bob"]}) + RS),
        ("s2c", j({"type": 1, "target": "ReceiveMessage", "arguments": ["bob", "hello"]}) + RS
                + j({"type": 3, "invocationId": "0", "result": 42}) + RS),
        ("c2s", j({"type": 4, "invocationId": "1", "target": "Counter", "arguments": [3]}) + RS),
        ("s2c", j({"type": 2, "invocationId": "1", "item": 0}) + RS
                + j({"type": 2, "invocationId": "1", "item": 1}) + RS),
        ("c2s", j({"type": 5, "invocationId": "1"}) + RS),
        ("c2s", j({"type": 1, "invocationId": "2", "target": "Fail", "arguments": []}) + RS),
        ("s2c", j({"type": 3, "invocationId": "2", "error": "boom"}) + RS),
        ("s2c", j({"type": 7, "error": "bye", "allowReconnect": False}) + RS),
    ),
    [
        (0, "c2s", "connect", None, None, 0),
        (1, "s2c", "ack", None, None, 0),
        (1, "s2c", "ping", None, None, 1),
        (2, "c2s", "request", "SendMessage", "0", 0),
        (2, "c2s", "notification", "Typing", None, 1),
        (3, "s2c", "notification", "ReceiveMessage", None, 0),
        (3, "s2c", "response", "SendMessage", "0", 1),
        (4, "c2s", "subscribe", "Counter", "1", 0),
        (5, "s2c", "event", "Counter", "1", 0),
        (5, "s2c", "event", "Counter", "1", 1),
        (6, "c2s", "unsubscribe", "Counter", "1", 0),
        (7, "c2s", "request", "Fail", "2", 0),
        (8, "s2c", "error", "Fail", "2", 0),
        (9, "s2c", "disconnect", None, None, 0),
    ],
)

# Phoenix channels, serializer v2 (phoenix.js serializer.js) ...
PHOENIX = Sample(
    "phoenix",
    ConnFacts(uri="/socket/websocket?token=abc&vsn=2.0.0"),
    conversation(
        ("c2s", j(["3", "3", "room:lobby", "phx_join", {"user": "bob"}])),
        ("s2c", j(["3", "3", "room:lobby", "phx_reply", {"status": "ok", "response": {}}])),
        ("c2s", j(["3", "4", "room:lobby", "new_msg", {"body": "hi"}])),
        ("s2c", j([None, None, "room:lobby", "new_msg", {"body": "hi"}])),
        ("s2c", j(["3", "4", "room:lobby", "phx_reply", {"status": "ok", "response": {}}])),
        ("c2s", j([None, "5", "phoenix", "heartbeat", {}])),
        ("s2c", j([None, "5", "phoenix", "phx_reply", {"status": "ok", "response": {}}])),
        ("c2s", j(["6", "6", "room:secret", "phx_join", {"token": "t0k"}])),
        ("s2c", j(["6", "6", "room:secret", "phx_reply",
                   {"status": "error", "response": {"reason": "unauthorized"}}])),
        ("c2s", j(["3", "7", "room:lobby", "phx_leave", {}])),
        ("s2c", j(["3", "3", "room:lobby", "phx_close", {}])),
    ),
    [
        (0, "c2s", "subscribe", "room:lobby", "3", 0),
        (1, "s2c", "response", "room:lobby", "3", 0),
        (2, "c2s", "publish", "room:lobby", "4", 0),
        (3, "s2c", "event", "room:lobby", None, 0),
        (4, "s2c", "response", "room:lobby", "4", 0),
        (5, "c2s", "ping", "phoenix", "5", 0),
        (6, "s2c", "pong", "phoenix", "5", 0),
        (7, "c2s", "subscribe", "room:secret", "6", 0),
        (8, "s2c", "error", "room:secret", "6", 0),
        (9, "c2s", "unsubscribe", "room:lobby", "7", 0),
        (10, "s2c", "disconnect", "room:lobby", "3", 0),
    ],
)

# ... and v1 objects (vsn=1.0.0).
PHOENIX_V1 = Sample(
    "phoenix",
    ConnFacts(uri="/socket/websocket?vsn=1.0.0"),
    conversation(
        ("c2s", j({"topic": "rooms:1", "event": "phx_join", "payload": {}, "ref": "1"})),
        ("s2c", j({"topic": "rooms:1", "event": "phx_reply",
                   "payload": {"status": "ok", "response": {}}, "ref": "1"})),
        ("s2c", j({"topic": "rooms:1", "event": "shout", "payload": {"x": 1}, "ref": None})),
        ("c2s", j({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": "2"})),
    ),
    [
        (0, "c2s", "subscribe", "rooms:1", "1", 0),
        (1, "s2c", "response", "rooms:1", "1", 0),
        (2, "s2c", "event", "rooms:1", None, 0),
        (3, "c2s", "ping", "phoenix", "2", 0),
    ],
)

_CHAT = j({"channel": "ChatChannel", "room": "Best Room"})
# ActionCable: actioncable's JavaScript client and ActionCable::Connection::Base.
ACTIONCABLE = Sample(
    "actioncable",
    ConnFacts(subprotocol="actioncable-v1-json",
              offered=("actioncable-v1-json", "actioncable-unsupported"), uri="/cable"),
    conversation(
        ("s2c", j({"type": "welcome"})),
        ("c2s", j({"command": "subscribe", "identifier": _CHAT})),
        ("s2c", j({"identifier": _CHAT, "type": "confirm_subscription"})),
        ("s2c", j({"type": "ping", "message": 1700000000})),
        ("c2s", j({"command": "message", "identifier": _CHAT,
                   "data": j({"message": "hello", "action": "speak"})})),
        ("s2c", j({"identifier": _CHAT, "message": {"body": "hello"}})),
        ("c2s", j({"command": "unsubscribe", "identifier": _CHAT})),
        ("s2c", j({"type": "disconnect", "reason": "server_restart", "reconnect": True})),
    ),
    [
        (0, "s2c", "connect", None, None, 0),
        (1, "c2s", "subscribe", "ChatChannel", _CHAT, 0),
        (2, "s2c", "ack", "ChatChannel", _CHAT, 0),
        (3, "s2c", "ping", None, None, 0),
        (4, "c2s", "publish", "ChatChannel", _CHAT, 0),
        (5, "s2c", "event", "ChatChannel", _CHAT, 0),
        (6, "c2s", "unsubscribe", "ChatChannel", _CHAT, 0),
        (7, "s2c", "disconnect", None, None, 0),
    ],
)

# WAMP v2 JSON: the WAMP specification's message examples.
WAMP = Sample(
    "wamp",
    ConnFacts(subprotocol="wamp.2.json", offered=("wamp.2.json", "wamp.2.msgpack"), uri="/ws"),
    conversation(
        ("c2s", j([1, "realm1", {"roles": {"subscriber": {}, "publisher": {}, "caller": {}},
                                 "authmethods": ["ticket"], "authid": "joe"}])),
        ("s2c", j([4, "ticket", {}])),
        ("c2s", j([5, "secret!!!", {}])),
        ("s2c", j([2, 9129137332, {"roles": {"broker": {}, "dealer": {}}}])),
        ("c2s", j([32, 713845233, {}, "com.myapp.mytopic1"])),
        ("s2c", j([33, 713845233, 5512315355])),
        ("c2s", j([16, 239714735, {"acknowledge": True}, "com.myapp.mytopic1", ["Hello"]])),
        ("s2c", j([17, 239714735, 4429313566])),
        ("s2c", j([36, 5512315355, 4429313566, {}, ["Hello"]])),
        ("c2s", j([48, 7814135, {}, "com.myapp.ping"])),
        ("s2c", j([50, 7814135, {}, [30]])),
        ("c2s", j([48, 7814136, {}, "com.myapp.nope"])),
        ("s2c", j([8, 48, 7814136, {}, "wamp.error.no_such_procedure"])),
        ("c2s", j([34, 85346237, 5512315355])),
        ("s2c", j([35, 85346237])),
        ("c2s", j([6, {}, "wamp.close.close_realm"])),
    ),
    [
        (0, "c2s", "connect", "realm1", None, 0),
        (1, "s2c", "challenge", "ticket", None, 0),
        (2, "c2s", "auth", None, None, 0),
        (3, "s2c", "ack", None, "9129137332", 0),
        (4, "c2s", "subscribe", "com.myapp.mytopic1", "713845233", 0),
        (5, "s2c", "ack", "com.myapp.mytopic1", "713845233", 0),
        (6, "c2s", "publish", "com.myapp.mytopic1", "239714735", 0),
        (7, "s2c", "ack", "com.myapp.mytopic1", "239714735", 0),
        (8, "s2c", "event", "com.myapp.mytopic1", "4429313566", 0),
        (9, "c2s", "request", "com.myapp.ping", "7814135", 0),
        (10, "s2c", "response", "com.myapp.ping", "7814135", 0),
        (11, "c2s", "request", "com.myapp.nope", "7814136", 0),
        (12, "s2c", "error", "wamp.error.no_such_procedure", "7814136", 0),
        (13, "c2s", "unsubscribe", "com.myapp.mytopic1", "85346237", 0),
        (14, "s2c", "ack", None, "85346237", 0),
        (15, "c2s", "disconnect", "wamp.close.close_realm", None, 0),
    ],
)

SAMPLES: dict[str, Sample] = {
    "jsonrpc": JSONRPC,
    "graphql": GRAPHQL,
    "graphql-legacy": GRAPHQL_LEGACY,
    "signalr": SIGNALR,
    "phoenix": PHOENIX,
    "phoenix-v1": PHOENIX_V1,
    "actioncable": ACTIONCABLE,
    "wamp": WAMP,
}


# Other protocols' first messages (the a2 decoders' families), for the
# cross-recognition check: none of the JSON decoders may claim them.
FOREIGN: dict[str, list[AppMessage]] = {
    "socketio": conversation(
        ("s2c", ('0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],"pingInterval":25000,'
                '"pingTimeout":5000,"maxPayload":1000000}')),
        ("c2s", "40"),
        ("s2c", '40{"sid":"wZX3oN0bSVIhsaknAAAI"}'),
        ("c2s", '42["chat message","hi"]'),
        ("s2c", "2"),
        ("c2s", "3"),
    ),
    "mqtt": conversation(
        ("c2s", b"\x10\x16\x00\x04MQTT\x04\xc2\x00\x3c\x00\x02c1\x00\x03bob\x00\x03pwd"),
        ("s2c", b"\x20\x02\x00\x00"),
        ("c2s", b"\x82\x0c\x00\x01\x00\x07prices/\x00"),
    ),
    "stomp": conversation(
        ("c2s", "CONNECT\naccept-version:1.2\nhost:broker\nlogin:bob\npasscode:pw\n\n\x00"),
        ("s2c", "CONNECTED\nversion:1.2\n\n\x00"),
        ("c2s", "SUBSCRIBE\nid:0\ndestination:/queue/foo\n\n\x00"),
    ),
    "plain": conversation(("c2s", "hello"), ("s2c", "hello"), ("c2s", j({"a": 1}))),
}


def run(cls: type[Any], facts: ConnFacts, messages: list[AppMessage]) -> tuple[list[Any], list[Any]]:
    """Feed ``messages`` (then finish) to a fresh ``cls(facts)``; (events, findings),
    each output checked against the interface's contract on the way."""
    from wspcap.app.base import AppEvent, AppFinding

    decoder = cls(facts)
    events: list[AppEvent] = []
    findings: list[AppFinding] = []
    by_index = {m.msg_index: m for m in messages}
    for message in messages:
        out = decoder.receive(message)
        assert isinstance(out, list)
        for item in out:
            check(item, by_index)
            (events if isinstance(item, AppEvent) else findings).append(item)
    for item in decoder.finish():
        check(item, by_index)
        (events if isinstance(item, AppEvent) else findings).append(item)
    return events, findings


def check(item: Any, by_index: dict[int, AppMessage]) -> None:
    """One output obeys the contract: JSON-serializable fields, app_ codes,
    indexes and directions of real messages."""
    from wspcap.app.base import AppEvent, AppFinding

    if isinstance(item, AppEvent):
        assert item.msg_index in by_index and by_index[item.msg_index].direction == item.direction
        assert item.kind and item.kind == item.kind.lower()
        assert item.channel is None or isinstance(item.channel, str)
        assert item.id is None or isinstance(item.id, str)
        json.dumps(dict(item.fields), allow_nan=False)
        assert item.part >= 0
    else:
        assert isinstance(item, AppFinding)
        assert item.code.startswith("app_") and item.code == item.code.lower()
        assert isinstance(item.detail, str) and item.detail
        if item.msg_index is not None:
            assert by_index[item.msg_index].direction == item.direction


def summary(events: list[Any]) -> list[tuple[int, str, str, str | None, str | None, int]]:
    """Events as Sample.expected spells them."""
    return [(e.msg_index, e.direction, e.kind, e.channel, e.id, e.part) for e in events]
