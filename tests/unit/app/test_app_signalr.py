"""SignalR JSON hub protocol: records split on 0x1E, handshake, types 1-9."""

from __future__ import annotations

from app_samples import SIGNALR, conversation, j, run, summary

from wspcap.app import ConnFacts
from wspcap.app.signalr import SignalRDecoder
from wspcap.rules.sec import credential_name

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


def test_access_token_in_uri_is_the_handshake_rules() -> None:
    """The token the JavaScript client puts in the URI is reported once, by the
    handshake rule (sec_credentials_in_url, tests/rules), not again by the
    decoder."""
    facts = ConnFacts(uri="/chathub?id=abc&access_token=eyJhbGciOi")
    _, findings = run(SignalRDecoder, facts, SIGNALR.messages)
    assert findings == []
    assert credential_name("access_token")


def test_what_the_javascript_client_sends() -> None:
    """Shapes @microsoft/signalr 10 sends (tests/test_app_js_live.py), beyond the
    document's examples: a client-to-server stream (``streamIds``: the stream's
    items and its Completion carry the stream id), a client result (a server
    invocation with an id the client's own invocations also use), and the
    Completion a server sends after a CancelInvocation."""
    msgs = conversation(
        ("c2s", j({"target": "AskClient", "arguments": [21], "invocationId": "1", "type": 1}) + RS),
        # the server's own ids count from 1 too
        ("s2c", j({"type": 1, "invocationId": "1", "target": "GetValue", "arguments": [21]}) + RS),
        ("c2s", j({"type": 3, "invocationId": "1", "result": 42}) + RS),
        ("s2c", j({"type": 3, "invocationId": "1", "result": 42}) + RS),
        ("c2s", j({"target": "Counter", "arguments": [50], "invocationId": "2", "type": 4}) + RS),
        ("s2c", j({"type": 2, "invocationId": "2", "item": 0}) + RS),
        ("c2s", j({"invocationId": "2", "type": 5}) + RS
                + j({"target": "Upload", "arguments": [], "invocationId": "4",
                     "streamIds": ["3"], "type": 1}) + RS),
        ("s2c", j({"type": 3, "invocationId": "2"}) + RS),
        ("c2s", j({"invocationId": "3", "item": "up-1", "type": 2}) + RS),
        ("c2s", j({"invocationId": "3", "type": 3}) + RS),
        ("s2c", j({"type": 3, "invocationId": "4", "result": "up-1"}) + RS),
    )
    events, findings = run(SignalRDecoder, SIGNALR.facts, msgs)
    assert findings == []
    assert [(e.msg_index, e.direction, e.kind, e.channel, e.id) for e in events] == [
        (0, "c2s", "request", "AskClient", "1"),
        (1, "s2c", "request", "GetValue", "1"),
        (2, "c2s", "response", "GetValue", "1"),
        (3, "s2c", "response", "AskClient", "1"),
        (4, "c2s", "subscribe", "Counter", "2"),
        (5, "s2c", "event", "Counter", "2"),
        (6, "c2s", "unsubscribe", "Counter", "2"),
        (6, "c2s", "request", "Upload", "4"),
        (7, "s2c", "response", "Counter", "2"),
        (8, "c2s", "event", "Upload", "3"),
        (9, "c2s", "response", "Upload", "3"),
        (10, "s2c", "response", "Upload", "4"),
    ]
    assert events[7].fields["streamIds"] == ["3"]
