"""WAMP v2 JSON: message codes, topics and procedures learnt, ticket in clear, batched."""

from __future__ import annotations

from app_samples import WAMP, conversation, j, run, summary

from wspcap.app import ConnFacts
from wspcap.app._json import MAX_OPEN
from wspcap.app.wamp import WampDecoder


def test_spec_conversation() -> None:
    events, findings = run(WampDecoder, WAMP.facts, WAMP.messages)
    assert summary(events) == WAMP.expected
    assert events[0].fields["authid"] == "joe" and events[0].fields["authmethods"] == ["ticket"]
    assert events[0].fields["roles"] == ["publisher", "subscriber", "caller"]
    assert events[2].fields["signature"] == "secret!!!"  # kept for the analyst
    assert events[6].fields["args"] == ["Hello"]
    assert events[10].fields["args"] == [30]
    assert events[12].fields["request_type"] == "CALL"
    assert [(f.code, f.msg_index) for f in findings] == [("app_credentials_in_clear", 2)]
    assert "joe" in findings[0].detail


def test_wampcra_signature_is_not_a_credential() -> None:
    msgs = conversation(
        ("c2s", j([1, "realm1", {"roles": {"caller": {}}, "authmethods": ["wampcra", "ticket"],
                                 "authid": "peter"}])),
        ("s2c", j([4, "wampcra", {"challenge": "{...}"}])),
        ("c2s", j([5, "gir1mSx+deCDUV7wRM5SGIn/+R/ClqLZuH4m7FJeBVI=", {}])),
    )
    _, findings = run(WampDecoder, WAMP.facts, msgs)
    assert findings == []


def test_router_side_rpc_and_batched() -> None:
    rs = "\x1e"
    msgs = conversation(
        ("c2s", j([64, 25349185, {}, "com.myapp.myprocedure1"]) + rs),
        ("s2c", j([65, 25349185, 2103333224]) + rs
                + j([68, 6131533, 2103333224, {}, ["Hello"]]) + rs),
        ("c2s", j([70, 6131533, {}, ["Hi"]]) + rs),
        ("c2s", j([66, 788923562, 2103333224]) + rs),
    )
    events, _ = run(WampDecoder, ConnFacts(subprotocol="wamp.2.json.batched"), msgs)
    assert summary(events) == [
        (0, "c2s", "register", "com.myapp.myprocedure1", "25349185", 0),
        (1, "s2c", "ack", "com.myapp.myprocedure1", "25349185", 0),
        (1, "s2c", "request", "com.myapp.myprocedure1", "6131533", 1),
        (2, "c2s", "response", "com.myapp.myprocedure1", "6131533", 0),
        (3, "c2s", "unregister", "com.myapp.myprocedure1", "788923562", 0),
    ]


def test_bad_messages() -> None:
    msgs = conversation(("c2s", "x"), ("c2s", j([999, 1])), ("c2s", j([48, 1])),
                        ("c2s", j({"a": 1})))
    events, findings = run(WampDecoder, WAMP.facts, msgs)
    assert events == [] and [f.msg_index for f in findings] == [0, 1, 2, 3]
    assert run(WampDecoder, ConnFacts(), msgs) == ([], [])


def test_tables_are_bounded() -> None:
    decoder = WampDecoder(WAMP.facts)
    for i in range(MAX_OPEN + 10):
        decoder.receive(conversation(("c2s", j([32, i, {}, f"t{i}"])))[0])
    assert len(decoder.pending_sub) == MAX_OPEN


def test_recognize() -> None:
    assert WampDecoder.recognize(ConnFacts(subprotocol="wamp.2.json"), []) == 1.0
    assert WampDecoder.recognize(ConnFacts(subprotocol="wamp.2.msgpack"), []) == 0.0
    assert WampDecoder.recognize(ConnFacts(), WAMP.messages[:1]) == 0.7
    assert WampDecoder.recognize(ConnFacts(), WAMP.messages[4:5]) == 0.0
