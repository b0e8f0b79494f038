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


def test_against_autobahn_serializer() -> None:
    """Ground truth from autobahn's own WAMP message classes and JSON serializer."""
    import pytest

    txaio = pytest.importorskip("txaio")
    pytest.importorskip("autobahn")
    txaio.use_asyncio()
    from autobahn.wamp import message as m
    from autobahn.wamp import role
    from autobahn.wamp.serializer import JsonSerializer

    serializer = JsonSerializer()
    sent = [
        ("c2s", m.Hello("realm1", {"subscriber": role.RoleSubscriberFeatures(),
                                   "caller": role.RoleCallerFeatures()},
                        authmethods=["ticket"], authid="joe")),
        ("s2c", m.Challenge("ticket")),
        ("c2s", m.Authenticate("secret")),
        ("s2c", m.Welcome(123456, {"broker": role.RoleBrokerFeatures()})),
        ("c2s", m.Subscribe(1, "com.t")),
        ("s2c", m.Subscribed(1, 55)),
        ("s2c", m.Event(55, 77, args=["x"])),
        ("c2s", m.Call(2, "com.p", args=[1])),
        ("s2c", m.Result(2, args=[2])),
        ("c2s", m.Call(3, "com.q")),
        ("s2c", m.Error(m.Call.MESSAGE_TYPE, 3, "wamp.error.x")),
        ("c2s", m.Publish(4, "com.t", args=["y"], acknowledge=True)),
        ("s2c", m.Published(4, 88)),
        ("c2s", m.Goodbye()),
    ]
    msgs = conversation(*[(d, serializer.serialize(x)[0].decode()) for d, x in sent])
    assert WampDecoder.recognize(ConnFacts(), msgs[:4]) == 0.7
    events, findings = run(WampDecoder, ConnFacts(subprotocol="wamp.2.json"), msgs)
    assert summary(events) == [
        (0, "c2s", "connect", "realm1", None, 0),
        (1, "s2c", "challenge", "ticket", None, 0),
        (2, "c2s", "auth", None, None, 0),
        (3, "s2c", "ack", None, "123456", 0),
        (4, "c2s", "subscribe", "com.t", "1", 0),
        (5, "s2c", "ack", "com.t", "1", 0),
        (6, "s2c", "event", "com.t", "77", 0),
        (7, "c2s", "request", "com.p", "2", 0),
        (8, "s2c", "response", "com.p", "2", 0),
        (9, "c2s", "request", "com.q", "3", 0),
        (10, "s2c", "error", "wamp.error.x", "3", 0),
        (11, "c2s", "publish", "com.t", "4", 0),
        (12, "s2c", "ack", "com.t", "4", 0),
        (13, "c2s", "disconnect", "wamp.close.normal", None, 0),
    ]
    assert events[6].fields["args"] == ["x"]
    assert [(f.code, f.msg_index) for f in findings] == [("app_credentials_in_clear", 2)]
