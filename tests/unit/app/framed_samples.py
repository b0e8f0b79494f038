"""Sample conversations of the framed decoders (Socket.IO, MQTT, STOMP), shared by their tests.

``SAMPLES`` (objects with ``facts`` and ``messages``) is what the app-decoder
fuzz harness (tests/fuzz/test_app_decoders.py) loads from every
``tests/unit/app/*_samples.py``; ``CONVERSATIONS`` adds a JSON-RPC
conversation for the cross-recognition checks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from wspcap.app.base import AppEvent, AppFinding, AppMessage, ConnFacts, Decoder


def decode(cls: type[Decoder], facts: ConnFacts,
           messages: list[AppMessage]) -> list[AppEvent | AppFinding]:
    """What a fresh ``cls(facts)`` says of ``messages``, then at the end, in order."""
    dec = cls(facts)
    out: list[AppEvent | AppFinding] = []
    for m in messages:
        out += dec.receive(m)
    return out + dec.finish()


def events(items: list[AppEvent | AppFinding]) -> list[AppEvent]:
    return [e for e in items if isinstance(e, AppEvent)]


def findings(items: list[AppEvent | AppFinding]) -> list[AppFinding]:
    return [e for e in items if isinstance(e, AppFinding)]


def msgs(*items: tuple[str, str | bytes], step_ns: int = 1_000_000) -> list[AppMessage]:
    out = []
    for i, (direction, payload) in enumerate(items):
        raw = payload.encode() if isinstance(payload, str) else payload
        out.append(AppMessage(i, direction, "text" if isinstance(payload, str) else "binary", raw, ts=(i + 1) * step_ns))
    return out


SOCKETIO_FACTS = ConnFacts(uri="/socket.io/?EIO=4&transport=websocket")
SOCKETIO = msgs(
    ("s2c", '0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'),
    ("c2s", '40{"token":"t0k"}'),
    ("s2c", '40{"sid":"xyz"}'),
    ("c2s", '42["chat message","hi"]'),
    ("c2s", '451-["upload",{"_placeholder":true,"num":0}]'),
    ("c2s", b"\x01\x02"),
    ("s2c", "2"),
    ("c2s", "3"),
)

MQTT_FACTS = ConnFacts(subprotocol="mqtt", offered=("mqtt",), uri="/mqtt")
MQTT = msgs(
    ("c2s", bytes.fromhex("100f00044d5154540402003c0003646576")),  # CONNECT dev keep-alive 60
    ("s2c", bytes.fromhex("20020000")),  # CONNACK
    ("c2s", bytes.fromhex("820b00010006707269636573" "01")),  # SUBSCRIBE prices qos1
    ("s2c", bytes.fromhex("9003000101")),  # SUBACK
    ("s2c", bytes.fromhex("300c0006707269636573") + b"1.08"),  # PUBLISH prices
    ("c2s", bytes.fromhex("c000")),
    ("s2c", bytes.fromhex("d000")),
)

STOMP_FACTS = ConnFacts(subprotocol="v12.stomp", offered=("v10.stomp", "v11.stomp", "v12.stomp"), uri="/ws")
STOMP = msgs(
    ("c2s", "CONNECT\naccept-version:1.2\nhost:broker\nlogin:bob\npasscode:pw\n\n\0"),
    ("s2c", "CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0"),
    ("c2s", "SUBSCRIBE\nid:0\ndestination:/topic/prices\nack:client\n\n\0"),
    ("c2s", "SEND\ndestination:/queue/a\ncontent-type:text/plain\nreceipt:r1\n\nhello\0"),
    ("s2c", "RECEIPT\nreceipt-id:r1\n\n\0"),
    ("s2c", "MESSAGE\nsubscription:0\nmessage-id:m1\ndestination:/topic/prices\nack:a1\n\n1.08\0"),
    ("c2s", "\n"),
    ("c2s", "DISCONNECT\nreceipt:r2\n\n\0"),
)

JSONRPC_FACTS = ConnFacts(uri="/rpc")
JSONRPC = msgs(
    ("c2s", json.dumps({"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1})),
    ("s2c", json.dumps({"jsonrpc": "2.0", "result": 19, "id": 1})),
    ("c2s", json.dumps([{"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}])),
)

CONVERSATIONS = {
    "socketio": (SOCKETIO_FACTS, SOCKETIO),
    "mqtt": (MQTT_FACTS, MQTT),
    "stomp": (STOMP_FACTS, STOMP),
    "jsonrpc": (JSONRPC_FACTS, JSONRPC),
}


@dataclass(frozen=True)
class Sample:
    owner: str
    facts: ConnFacts
    messages: list[AppMessage]


SAMPLES = {name: Sample(name, *CONVERSATIONS[name]) for name in ("socketio", "mqtt", "stomp")}
