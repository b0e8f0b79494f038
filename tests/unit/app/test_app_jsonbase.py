"""The JSON decoders' shared base: bounded loads, the never-raise barrier, credential keys."""

from __future__ import annotations

from wspcap.app import AppMessage, ConnFacts
from wspcap.app._json import (
    MAX_JSON_BYTES,
    NOT_JSON,
    JsonDecoder,
    credential_paths,
    loads,
    scalar_id,
)


def test_loads_never_raises() -> None:
    assert loads(b'{"a": [1, 2]}') == {"a": [1, 2]}
    assert loads("[1]") == [1]
    for bad in (b"[" * 100_000 + b"]" * 100_000, b"[" * 5000, b"NaN", b"[Infinity]",
                b"\xff\xfe", b"{", b"9" * 5000, b"", b"\"" + b"a" * MAX_JSON_BYTES + b"\""):
        assert loads(bad) is NOT_JSON, bad[:10]


def test_scalar_id() -> None:
    assert scalar_id("a") == "a"
    assert scalar_id(7) == "7"
    assert scalar_id(1.5) == "1.5"
    assert scalar_id(True) is None and scalar_id(None) is None and scalar_id([1]) is None


def test_credential_paths() -> None:
    payload = {"authToken": "x", "user": "bob", "password": "", "nested": {"Authorization": "B"},
               "list": [{"api_key": "k"}], "passwordHint": None, "passcode": "p",
               "tokens_count": 0}
    assert credential_paths(payload) == [
        "authToken", "nested.Authorization", "list[0].api_key", "passcode"]
    deep: dict[str, object] = {"token": "x"}
    for _ in range(10):
        deep = {"k": deep}
    assert credential_paths(deep) == []  # deeper than the bound
    assert credential_paths("token") == []


class _Broken(JsonDecoder):
    name = "broken"
    subprotocols = ("broken.v1",)

    def decode(self, message: AppMessage) -> list:  # type: ignore[type-arg]
        raise KeyError("bug")

    def end(self) -> list:  # type: ignore[type-arg]
        raise KeyError("bug")


def test_barrier_turns_a_bug_into_a_finding_when_claimed() -> None:
    message = AppMessage(3, "s2c", "text", b"{}")
    claimed = _Broken(ConnFacts(subprotocol="broken.v1"))
    [finding] = claimed.receive(message)
    assert (finding.code, finding.msg_index, finding.direction) == ("app_parse_failed", 3, "s2c")
    assert "KeyError" in finding.detail
    assert claimed.finish() == []
    assert _Broken(ConnFacts()).receive(message) == []


def test_oversized_message_is_reported_not_parsed() -> None:
    from wspcap.app.jsonrpc import JsonRpcDecoder

    big = AppMessage(0, "c2s", "text", b'{"jsonrpc":"2.0","method":"m","params":["'
                     + b"a" * MAX_JSON_BYTES + b'"]}')
    [finding] = JsonRpcDecoder(ConnFacts()).receive(big)
    assert finding.code == "app_parse_failed" and "not parsed" in finding.detail
