"""The per-connection runner: choice, bounded sniffing, pairing and latency, never raising."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from wspcap.app import AppMessage, ConnFacts
from wspcap.app.runner import SNIFF_MESSAGES, AppRow, Runner


def _msg(i: int, direction: str, obj: object, ts: int = 0) -> AppMessage:
    return AppMessage(i, direction, "text", json.dumps(obj).encode(), ts=ts or 1000 * (i + 1))


def _rpc_conversation(n: int) -> list[AppMessage]:
    out = []
    for k in range(n):
        out.append(_msg(2 * k, "c2s", {"jsonrpc": "2.0", "method": "sum", "params": [k], "id": k}))
        out.append(_msg(2 * k + 1, "s2c", {"jsonrpc": "2.0", "result": k, "id": k},
                        ts=1000 * (2 * k + 1) + 500))
    return out


def _run(runner: Runner, messages: list[AppMessage]) -> tuple[list[AppRow], list[str]]:
    rows, codes = [], []
    for m in messages:
        r, f = runner.feed(m)
        rows += r
        codes += [x.code for x in f]
    r, f = runner.finish()
    return rows + r, codes + [x.code for x in f]


def test_content_choice_after_the_first_messages_then_pairs() -> None:
    runner = Runner(ConnFacts())
    assert not runner.decided
    rows, codes = _run(runner, _rpc_conversation(5))
    assert runner.protocol == "jsonrpc" and runner.confidence == 0.7
    assert codes == []
    assert [r.event.kind for r in rows] == ["request", "response"] * 5
    answers = [r for r in rows if r.event.kind == "response"]
    assert [r.request_msg for r in answers] == [0, 2, 4, 6, 8]
    assert all(r.latency == 500 for r in answers)


def test_held_messages_are_decoded_at_the_end_when_few() -> None:
    runner = Runner(ConnFacts())
    rows, _ = _run(runner, _rpc_conversation(1))
    assert [r.event.kind for r in rows] == ["request", "response"]


def test_subprotocol_chooses_at_once_and_nothing_is_held() -> None:
    runner = Runner(ConnFacts(subprotocol="graphql-transport-ws"))
    assert runner.protocol == "graphql" and runner.confidence == 1.0
    rows, _ = runner.feed(_msg(0, "c2s", {"type": "connection_init"}))
    assert [r.event.kind for r in rows] == ["connect"]


def test_nothing_chosen_lets_go_of_the_held_messages() -> None:
    runner = Runner(ConnFacts())
    for i in range(SNIFF_MESSAGES):
        runner.feed(AppMessage(i, "c2s", "text", b"hello"))
    assert runner.decided and runner.decoder is None and runner.held == []
    assert runner.feed(AppMessage(9, "c2s", "text", b"x")) == ([], [])


def test_forced_and_disabled() -> None:
    forced = Runner(ConnFacts(), forced="jsonrpc")
    assert forced.protocol == "jsonrpc" and forced.decided
    assert Runner(ConnFacts(subprotocol="mqtt"), disabled=True).decoder is None
    assert Runner(ConnFacts(), forced="no-such").decoder is None


def test_unanswered_reported_where_the_protocol_obliges() -> None:
    runner = Runner(ConnFacts(uri="/socket.io/?EIO=4&transport=websocket"))
    rows, codes = _run(runner, [AppMessage(0, "c2s", "text", b'4212["get",1]'),
                                AppMessage(1, "c2s", "text", b'4213["get",2]'),
                                AppMessage(2, "s2c", "text", b'4312[{"ok":1}]', ts=50)])
    assert runner.protocol == "socketio"
    ack = rows[-1]
    assert ack.event.kind == "ack" and ack.request_msg == 0
    assert codes == ["app_request_unanswered"]


messages = st.lists(
    st.tuples(st.sampled_from(["c2s", "s2c"]), st.sampled_from(["text", "binary"]),
              st.one_of(st.binary(max_size=40),
                        st.sampled_from([b'{"jsonrpc":"2.0","method":"m","id":1}',
                                         b'{"jsonrpc":"2.0","result":1,"id":1}',
                                         b'{"type":"connection_init"}', b"42[\"x\"]",
                                         b"\x10\x0c\x00\x04MQTT\x04\x02\x00<\x00\x00",
                                         b"CONNECT\naccept-version:1.2\n\n\x00"]))),
    max_size=20)
facts = st.sampled_from([ConnFacts(), ConnFacts(subprotocol="mqtt"),
                         ConnFacts(subprotocol="v12.stomp"),
                         ConnFacts(uri="/socket.io/?EIO=4&transport=websocket"),
                         ConnFacts(subprotocol="graphql-transport-ws")])


@settings(max_examples=200, deadline=None)
@given(facts, messages, st.integers(1, 6))
def test_never_raises_and_decodes_each_message_once(f: ConnFacts, items: list[tuple[str, str, bytes]],
                                                    sniff: int) -> None:
    stream = [AppMessage(i, d, t, p, ts=i) for i, (d, t, p) in enumerate(items)]
    runner = Runner(f, sniff=sniff)
    rows, _codes = _run(runner, stream)
    keys = [(r.event.msg_index, r.event.part, r.event.kind) for r in rows]
    assert len(keys) == len(set(keys))
    for r in rows:
        if r.request_msg is not None:
            assert r.request_msg <= r.event.msg_index and (r.latency or 0) >= 0
    assert runner.finish() == ([], [])


@settings(max_examples=100, deadline=None)
@given(facts, messages)
def test_the_same_with_any_sniff_once_chosen_by_handshake(
        f: ConnFacts, items: list[tuple[str, str, bytes]]) -> None:
    """A decoder the handshake names is fed the same messages whatever the sniff count."""
    stream = [AppMessage(i, d, t, p, ts=i) for i, (d, t, p) in enumerate(items)]
    a = _run(Runner(f, sniff=1), stream)
    b = _run(Runner(f, sniff=6), stream)
    if f != ConnFacts():
        assert a == b


def _stomp(i: int, direction: str, command: str, headers: dict[str, str], ts: int) -> AppMessage:
    head = "".join(f"{k}:{v}\n" for k, v in headers.items())
    return AppMessage(i, direction, "text", f"{command}\n{head}\n\0".encode(), ts=ts)


def test_stomp_receipts_pair_only_the_frames_that_asked() -> None:
    """STOMP ids name subscriptions, acks and messages too: only a client
    frame with a receipt header opens a request, answered by the RECEIPT (or
    ERROR) with that receipt-id."""
    conversation = [
        _stomp(0, "c2s", "CONNECT", {"accept-version": "1.2", "host": "/"}, 1000),
        _stomp(1, "s2c", "CONNECTED", {"version": "1.2"}, 1100),
        _stomp(2, "c2s", "SUBSCRIBE", {"id": "r-1", "destination": "/q/a"}, 2000),
        _stomp(3, "c2s", "ACK", {"id": "r-3"}, 2500),  # an ack id, not a receipt
        _stomp(4, "c2s", "SEND", {"destination": "/q/a", "receipt": "r-1"}, 3000),
        _stomp(5, "s2c", "RECEIPT", {"receipt-id": "r-1"}, 3400),
        _stomp(6, "c2s", "DISCONNECT", {"receipt": "r-2"}, 4000),
        _stomp(7, "s2c", "ERROR", {"receipt-id": "r-2", "message": "bye"}, 4700),
        _stomp(8, "s2c", "RECEIPT", {"receipt-id": "r-3"}, 5000),  # asked by nobody
    ]
    rows, codes = _run(Runner(ConnFacts(subprotocol="v12.stomp")), conversation)
    assert codes == []
    paired = {r.event.msg_index: (r.request_msg, r.latency) for r in rows
              if r.request_msg is not None}
    assert paired == {5: (4, 400), 7: (6, 700)}


def test_phoenix_heartbeat_replies_pair_with_their_heartbeats() -> None:
    """phoenix.js times its heartbeats by the reply with the same ref: a pong
    is an answer like any reply."""
    runner = Runner(ConnFacts(uri="/socket/websocket?vsn=2.0.0"))
    rows, codes = _run(runner, [
        _msg(0, "c2s", [None, "13", "phoenix", "heartbeat", {}], ts=1000),
        _msg(1, "s2c", [None, "13", "phoenix", "phx_reply", {"status": "ok", "response": {}}],
             ts=1700),
    ])
    assert [(r.event.kind, r.request_msg, r.latency) for r in rows] == \
        [("ping", None, None), ("pong", 0, 700)]
    assert codes == []


def test_actioncable_subscriptions_pair_with_their_confirmations() -> None:
    """The server confirms or rejects a subscribe with the identifier the client
    sent: the subscription's latency. A broadcast to the same identifier is no
    answer, and a subscribe left waiting is not reported (@rails/actioncable
    sends it again while it waits)."""
    runner = Runner(ConnFacts(subprotocol="actioncable-v1-json", uri="/cable"))
    room = json.dumps({"channel": "ChatChannel", "room": "lobby"})
    other = json.dumps({"channel": "ChatChannel", "room": "forbidden"})
    rows, codes = _run(runner, [
        _msg(0, "s2c", {"type": "welcome"}, ts=100),
        _msg(1, "c2s", {"command": "subscribe", "identifier": room}, ts=1000),
        _msg(2, "c2s", {"command": "subscribe", "identifier": other}, ts=1100),
        _msg(3, "s2c", {"identifier": room, "type": "confirm_subscription"}, ts=1400),
        _msg(4, "s2c", {"identifier": room, "message": {"body": "hi"}}, ts=1500),
        _msg(5, "s2c", {"identifier": other, "type": "reject_subscription"}, ts=1600),
        _msg(6, "c2s", {"command": "subscribe", "identifier": room}, ts=2000),
    ])
    assert [(r.event.kind, r.event.id, r.request_msg, r.latency) for r in rows] == [
        ("connect", None, None, None), ("subscribe", room, None, None),
        ("subscribe", other, None, None), ("ack", room, 1, 400), ("event", room, None, None),
        ("error", other, 2, 500), ("subscribe", room, None, None)]
    assert codes == []
