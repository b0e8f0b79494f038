"""SignalR JSON hub protocol: records split on 0x1E, handshake, types 1-9."""

from __future__ import annotations

from app_samples import SIGNALR, conversation, j, run, summary

from wspcap.app import ConnFacts
from wspcap.app.signalr import SignalRDecoder

RS = "\x1e"


def test_hub_conversation() -> None:
    events, findings = run(SignalRDecoder, SIGNALR.facts, SIGNALR.messages)
    assert summary(events) == SIGNALR.expected
    assert events[0].fields == {"protocol": "json", "version": 1}
    assert events[3].fields["arguments"] == ["bob", "hello"]
    assert events[6].fields["result"] == 42
    assert events[12].fields["error"] == "boom"
    assert findings == []


def test_unterminated_and_bad_records() -> None:
    msgs = conversation(
        ("c2s", j({"protocol": "json", "version": 1})),  # no 0x1E
        ("c2s", j({"type": 99}) + RS),
        ("c2s", "not json" + RS),
    )
    _, findings = run(SignalRDecoder, SIGNALR.facts, msgs)
    assert [(f.code, f.msg_index) for f in findings] == [("app_parse_failed", i) for i in (0, 1, 2)]
    # without the hub URI only the records that are clearly broken are reported
    _, findings = run(SignalRDecoder, ConnFacts(), msgs)
    assert [f.msg_index for f in findings] == [1, 2]


def test_messagepack_handshake_stops_decoding() -> None:
    msgs = conversation(("c2s", j({"protocol": "messagepack", "version": 1}) + RS),
                        ("s2c", "{}" + RS), ("c2s", b"\x95\x01\x80\xc0\xa4Send\x90"))
    events, findings = run(SignalRDecoder, SIGNALR.facts, msgs)
    assert [e.kind for e in events] == ["connect"] and findings == []


def test_handshake_error() -> None:
    msgs = conversation(("c2s", j({"protocol": "json", "version": 9}) + RS),
                        ("s2c", j({"error": "Requested protocol 'json' is not available."}) + RS))
    events, _ = run(SignalRDecoder, SIGNALR.facts, msgs)
    assert [e.kind for e in events] == ["connect", "error"]


def test_mid_conversation_start() -> None:
    """A capture that starts after the handshake: the first records are typed."""
    msgs = conversation(("s2c", j({"type": 6}) + RS))
    events, _ = run(SignalRDecoder, SIGNALR.facts, msgs)
    assert [e.kind for e in events] == ["ping"]


def test_recognize() -> None:
    assert SignalRDecoder.recognize(ConnFacts(uri="/chatHub?id=x"), []) == 0.8
    assert SignalRDecoder.recognize(ConnFacts(uri="/hubs/notifications"), []) == 0.0
    assert SignalRDecoder.recognize(ConnFacts(uri="/hub"), []) == 0.8
    assert SignalRDecoder.recognize(ConnFacts(uri="/github/feed"), []) == 0.0
    assert SignalRDecoder.recognize(ConnFacts(), SIGNALR.messages[:1]) == 0.7
    assert SignalRDecoder.recognize(ConnFacts(), SIGNALR.messages[1:2]) == 0.6
    assert SignalRDecoder.recognize(ConnFacts(uri="::bad[uri"), []) == 0.0


def test_access_token_in_uri() -> None:
    facts = ConnFacts(uri="/chathub?id=abc&access_token=eyJhbGciOi")
    _, findings = run(SignalRDecoder, facts, SIGNALR.messages)
    assert [(f.code, f.msg_index) for f in findings] == [("app_credentials_in_clear", None)]
