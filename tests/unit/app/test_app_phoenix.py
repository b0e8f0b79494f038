"""Phoenix channels: v2 arrays and v1 objects, replies, heartbeats, join tokens."""

from __future__ import annotations

from app_samples import PHOENIX, PHOENIX_V1, conversation, j, run, summary

from wspcap.app import ConnFacts
from wspcap.app.phoenix import PhoenixDecoder, parse_phoenix


def test_v2_conversation() -> None:
    events, findings = run(PhoenixDecoder, PHOENIX.facts, PHOENIX.messages)
    assert summary(events) == PHOENIX.expected
    assert events[1].fields["status"] == "ok"
    assert events[2].fields == {"event": "new_msg", "version": 2, "join_ref": "3",
                                "payload": {"body": "hi"}}
    assert events[8].fields["response"] == {"reason": "unauthorized"}
    assert [(f.code, f.msg_index) for f in findings] == [("app_credentials_in_clear", 7)]
    assert "room:secret" in findings[0].detail and "token" in findings[0].detail


def test_v1_conversation() -> None:
    events, findings = run(PhoenixDecoder, PHOENIX_V1.facts, PHOENIX_V1.messages)
    assert summary(events) == PHOENIX_V1.expected
    assert all(e.fields["version"] == 1 for e in events) and findings == []


def test_parse_phoenix_shapes() -> None:
    assert parse_phoenix(["1", "2", "t", "e", {}]) is not None
    assert parse_phoenix([1, 2, "t", "e", {}]) is None  # refs are strings
    assert parse_phoenix([16, 1, {}, "topic", []]) is None  # a WAMP PUBLISH
    assert parse_phoenix(["1", "2", "t", "e"]) is None
    assert parse_phoenix({"topic": "t", "event": "e"}) is None
    assert parse_phoenix({"topic": "t", "event": 1, "payload": {}}) is None


def test_bad_messages_when_claimed() -> None:
    msgs = conversation(("c2s", "x"), ("c2s", j({"topic": 1})))
    _, findings = run(PhoenixDecoder, PHOENIX.facts, msgs)
    assert [f.msg_index for f in findings] == [0, 1]
    assert run(PhoenixDecoder, ConnFacts(), msgs) == ([], [])


def test_recognize() -> None:
    assert PhoenixDecoder.recognize(ConnFacts(uri="/socket/websocket?vsn=2.0.0"), []) == 0.9
    assert PhoenixDecoder.recognize(ConnFacts(uri="/live/websocket"), []) == 0.5
    assert PhoenixDecoder.recognize(ConnFacts(uri="/websocket-ish"), []) == 0.0
    assert PhoenixDecoder.recognize(ConnFacts(), PHOENIX.messages[:1]) == 0.7
    assert PhoenixDecoder.recognize(ConnFacts(), PHOENIX.messages[2:3]) == 0.5


def _binary(kind: int, *strings: str, body: bytes = b"") -> bytes:
    """serializer.js's binary layout: kind, one length byte per string, strings, body."""
    raw = [s.encode() for s in strings]
    return bytes([kind, *(len(r) for r in raw)]) + b"".join(raw) + body


def test_binary_messages() -> None:
    msgs = conversation(
        ("c2s", _binary(0, "3", "9", "room:lobby", "upload", body=b"\x00\x01\xff")),
        ("s2c", _binary(1, "3", "9", "room:lobby", "ok", body=b"\xca\xfe")),
        ("s2c", _binary(0, "3", "room:lobby", "frame", body=b"\x01")),
        ("s2c", _binary(2, "room:lobby", "blob", body=b"")),
        ("s2c", b"\x01\x05ab"),  # cut short
    )
    events, findings = run(PhoenixDecoder, PHOENIX.facts, msgs)
    assert summary(events) == [
        (0, "c2s", "publish", "room:lobby", "9", 0),
        (1, "s2c", "response", "room:lobby", "9", 0),
        (2, "s2c", "event", "room:lobby", None, 0),
        (3, "s2c", "event", "room:lobby", None, 0),
    ]
    assert events[0].fields["payload"] == {"payload_size": 3, "payload_hex": "0001ff"}
    assert events[1].fields["status"] == "ok"
    assert events[1].fields["response"] == {"payload_size": 2, "payload_hex": "cafe"}
    assert events[2].fields["event"] == "frame" and events[2].fields["binary"] is True
    assert [(f.code, f.msg_index) for f in findings] == [("app_parse_failed", 4)]
