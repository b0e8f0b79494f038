"""ActionCable: commands, server types, broadcasts, identifiers as JSON text."""

from __future__ import annotations

from app_samples import ACTIONCABLE, conversation, j, run, summary

from wspcap.app import ConnFacts, choose
from wspcap.app.actioncable import ActionCableDecoder


def test_conversation() -> None:
    events, findings = run(ActionCableDecoder, ACTIONCABLE.facts, ACTIONCABLE.messages)
    assert summary(events) == ACTIONCABLE.expected
    assert events[1].fields["params"] == {"room": "Best Room"}
    assert events[4].fields["action"] == "speak"
    assert events[4].fields["data"] == {"message": "hello", "action": "speak"}
    assert events[5].fields["message"] == {"body": "hello"}
    assert events[7].fields["reason"] == "server_restart"
    assert findings == []


def test_credentials_and_rejection() -> None:
    ident = j({"channel": "PrivateChannel", "token": "abc"})
    msgs = conversation(
        ("c2s", j({"command": "subscribe", "identifier": ident})),
        ("s2c", j({"identifier": ident, "type": "reject_subscription"})),
        ("c2s", j({"command": "message", "identifier": ident,
                   "data": j({"action": "login", "password": "pw"})})),
    )
    events, findings = run(ActionCableDecoder, ACTIONCABLE.facts, msgs)
    assert [e.kind for e in events] == ["subscribe", "error", "publish"]
    assert [(f.code, f.msg_index) for f in findings] == [
        ("app_credentials_in_clear", 0), ("app_credentials_in_clear", 2)]
    assert "data.password" in findings[1].detail


def test_bad_messages() -> None:
    msgs = conversation(("c2s", "x"), ("c2s", j({"command": "dance", "identifier": "{}"})),
                        ("c2s", j({"identifier": "not json"})), ("c2s", j({"a": 1})))
    events, findings = run(ActionCableDecoder, ACTIONCABLE.facts, msgs)
    assert events == []
    assert [f.msg_index for f in findings] == [0, 1, 2, 3]
    events, findings = run(ActionCableDecoder, ConnFacts(), msgs)
    assert [f.msg_index for f in findings] == [1]  # an unknown command claims the protocol


def test_recognize() -> None:
    assert ActionCableDecoder.recognize(ConnFacts(subprotocol="actioncable-v1-json"), []) == 1.0
    assert ActionCableDecoder.recognize(ConnFacts(uri="/cable"), []) == 0.9
    assert ActionCableDecoder.recognize(ConnFacts(), ACTIONCABLE.messages[:1]) == 0.7
    assert ActionCableDecoder.recognize(ConnFacts(), ACTIONCABLE.messages[2:3]) == 0.6


def test_recognize_a_listener_midstream() -> None:
    """A capture that starts mid-conversation on a connection that only listens
    (the shape of most ActionCable pages, Turbo Streams among them) holds the
    server's broadcasts and heart-beats only, as Rails' ActionCable 6.1 sent
    them in tests/test_app_actioncable_live.py: no handshake, no welcome, no
    command. They say ActionCable all the same."""
    lobby = j({"channel": "ChatChannel", "room": "lobby"})
    broadcast = ("s2c", j({"identifier": lobby, "message": {"body": "hello 1", "from": "alice"}}))
    ping = ("s2c", j({"type": "ping", "message": 1796308792}))
    bye = ("s2c", j({"type": "disconnect", "reason": "remote", "reconnect": False}))
    listener = conversation(broadcast, broadcast, ping, broadcast)
    assert ActionCableDecoder.recognize(ConnFacts(), listener) == 0.7
    assert ActionCableDecoder.recognize(ConnFacts(), conversation(ping, ping)) == 0.6
    assert ActionCableDecoder.recognize(ConnFacts(), conversation(bye)) == 0.6
    assert choose(ConnFacts(), listener) == (ActionCableDecoder, 0.7)
    events, findings = run(ActionCableDecoder, ConnFacts(), listener)
    assert [(e.kind, e.channel) for e in events] == [
        ("event", "ChatChannel"), ("event", "ChatChannel"), ("ping", None), ("event", "ChatChannel")]
    assert findings == []
    # look-alikes that are not: graphql-transport-ws's ping, an identifier that
    # is not ActionCable's JSON text, a heart-beat without its Unix time
    for value in ({"type": "ping"}, {"type": "ping", "message": "1796308792"},
                  {"type": "ping", "message": True}, {"identifier": "room-1", "message": 1},
                  {"identifier": j({"room": "lobby"}), "message": 1},
                  {"type": "disconnect", "reason": "remote"}):
        assert ActionCableDecoder.recognize(ConnFacts(), conversation(("s2c", j(value)))) == 0.0
