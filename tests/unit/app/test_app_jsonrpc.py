"""JSON-RPC 2.0: the specification's examples, invalid objects, batches, unanswered requests."""

from __future__ import annotations

from app_samples import JSONRPC, conversation, j, run, summary

from wspcap.app import ConnFacts
from wspcap.app._json import MAX_OPEN
from wspcap.app.jsonrpc import JsonRpcDecoder


def test_spec_examples() -> None:
    events, findings = run(JsonRpcDecoder, JSONRPC.facts, JSONRPC.messages)
    assert summary(events) == JSONRPC.expected
    assert dict(events[0].fields) == {"method": "subtract", "params": [42, 23], "id": 1}
    assert events[1].fields["result"] == 19
    assert events[7].fields["code"] == -32601 and events[7].fields["message"] == "Method not found"
    # id 3 was never answered; ids 1 / "1" / "9" were
    assert [(f.code, f.msg_index) for f in findings] == [("app_request_unanswered", 5)]
    assert "subtract" in findings[0].detail


def test_requests_both_ways_pair_by_direction() -> None:
    msgs = conversation(
        ("s2c", j({"jsonrpc": "2.0", "method": "ask", "id": 1})),
        ("s2c", j({"jsonrpc": "2.0", "result": 1, "id": 1})),  # same side: not an answer
    )
    events, findings = run(JsonRpcDecoder, ConnFacts(), msgs)
    assert events[1].channel is None
    assert [f.code for f in findings] == ["app_request_unanswered"]


def test_invalid_objects() -> None:
    msgs = conversation(
        ("c2s", j({"jsonrpc": "1.0", "method": "x", "id": 1})),
        ("c2s", j({"jsonrpc": "2.0", "method": 5, "id": 1})),
        ("s2c", j({"jsonrpc": "2.0", "result": 1, "error": {"code": 1, "message": "m"}, "id": 1})),
        ("s2c", j({"jsonrpc": "2.0", "error": {"code": "x"}, "id": 1})),
        ("c2s", j([{"jsonrpc": "2.0", "method": "ok"}, 1])),
        ("c2s", j({"jsonrpc": "2.0", "method": "m", "params": 3})),
        ("c2s", '{"jsonrpc": "2.0", "method": '),
    )
    events, findings = run(JsonRpcDecoder, ConnFacts(), msgs)
    assert [e.channel for e in events] == ["ok"]
    assert [(f.code, f.msg_index) for f in findings] == [
        ("app_parse_failed", i) for i in (0, 1, 2, 3, 4, 5, 6)]


def test_not_json_is_quiet_until_the_conversation_is_proven() -> None:
    quiet = conversation(("c2s", "hello"), ("c2s", j({"a": 1})))
    assert run(JsonRpcDecoder, ConnFacts(), quiet) == ([], [])
    proven = conversation(("c2s", j({"jsonrpc": "2.0", "method": "n"})), ("c2s", "hello"),
                          ("c2s", j([])))
    _events, findings = run(JsonRpcDecoder, ConnFacts(), proven)
    assert [f.msg_index for f in findings] == [1, 2]


def test_open_requests_are_bounded() -> None:
    decoder = JsonRpcDecoder(ConnFacts())
    big = [{"jsonrpc": "2.0", "method": "m", "id": i} for i in range(MAX_OPEN + 5)]
    decoder.receive(conversation(("c2s", j(big)))[0])
    assert len(decoder.open) == MAX_OPEN
    findings = decoder.finish()
    assert len(findings) == MAX_OPEN + 1
    assert "5 JSON-RPC requests beyond" in findings[-1].detail
    assert decoder.finish() == []


def test_recognize() -> None:
    assert JsonRpcDecoder.recognize(ConnFacts(), JSONRPC.messages[:1]) == 0.7
    assert JsonRpcDecoder.recognize(ConnFacts(), conversation(("c2s", j({"method": "x"})))) == 0
    assert JsonRpcDecoder.recognize(ConnFacts(subprotocol="jsonrpc"), []) == 0


def test_credentials_in_params() -> None:
    msgs = conversation(
        ("c2s", j({"jsonrpc": "2.0", "method": "login",
                   "params": {"user": "bob", "password": "pw"}, "id": 1})),
        ("c2s", j({"jsonrpc": "2.0", "method": "auth", "params": [{"token": "t"}]})),
    )
    events, findings = run(JsonRpcDecoder, ConnFacts(), msgs)
    assert [e.kind for e in events] == ["request", "notification"]
    assert events[0].fields["params"]["password"] == "pw"  # kept for the analyst
    assert [(f.code, f.msg_index) for f in findings] == [
        ("app_credentials_in_clear", 0), ("app_credentials_in_clear", 1),
        ("app_request_unanswered", 0)]
    assert "params.password" in findings[0].detail and "params[0].token" in findings[1].detail
