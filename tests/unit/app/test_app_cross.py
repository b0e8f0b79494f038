"""All JSON-family decoders together: ground truth of every sample, no false
recognition of another protocol's conversation, outputs within the contract,
random bytes and random JSON never raise."""

from __future__ import annotations

import json
from typing import Any

import pytest
from app_samples import FOREIGN, SAMPLES, run, summary
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wspcap.app import DECODERS, AppMessage, ConnFacts, choose
from wspcap.app.base import Decoder

MINE = ["actioncable", "graphql", "jsonrpc", "phoenix", "signalr", "wamp"]


def test_all_registered() -> None:
    for name in MINE:
        assert name in DECODERS
        assert issubclass(DECODERS[name], Decoder)


@pytest.mark.parametrize("sample", SAMPLES)
def test_ground_truth(sample: str) -> None:
    s = SAMPLES[sample]
    events, _ = run(DECODERS[s.owner], s.facts, s.messages)
    assert summary(events) == s.expected


@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize("with_facts", [True, False])
def test_no_false_recognition(sample: str, with_facts: bool) -> None:
    s = SAMPLES[sample]
    facts = s.facts if with_facts else ConnFacts()
    first = s.messages[:4]
    own = DECODERS[s.owner].recognize(facts, first)
    assert own > 0
    for name in MINE:
        if name != s.owner:
            assert DECODERS[name].recognize(facts, first) < own, name
    chosen, confidence = choose(facts, first)
    assert chosen is DECODERS[s.owner] and confidence == own


@pytest.mark.parametrize("foreign", FOREIGN)
def test_other_protocols_not_recognized(foreign: str) -> None:
    for name in MINE:
        assert DECODERS[name].recognize(ConnFacts(), FOREIGN[foreign]) == 0.0, name


@pytest.mark.parametrize("name", MINE)
@pytest.mark.parametrize("foreign", FOREIGN)
def test_other_protocols_decode_quietly(name: str, foreign: str) -> None:
    """Chosen by content (so not claimed), foreign messages give no findings."""
    events, findings = run(DECODERS[name], ConnFacts(), FOREIGN[foreign])
    assert findings == [] and events == []


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.sampled_from(
        ["2.0", "jsonrpc", "type", "subscribe", "phx_join", "phoenix", "heartbeat", "welcome",
         "command", "identifier", "connection_init", "next", "id", "method", "result", "error"])
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=6)
        | st.dictionaries(st.sampled_from(
            ["jsonrpc", "method", "params", "id", "result", "error", "type", "payload",
             "topic", "event", "ref", "command", "identifier", "data", "message", "target",
             "invocationId", "arguments", "query", "operationName", "protocol", "version",
             "code", "status", "item"]) | st.text(max_size=5), children, max_size=6),
        max_leaves=20,
    )


@pytest.mark.parametrize("name", MINE)
@pytest.mark.parametrize("claimed", [True, False])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads=st.lists(
    st.one_of(st.binary(max_size=64), _json_values().map(lambda v: json.dumps(v).encode()),
              st.lists(_json_values(), max_size=3).map(
                  lambda vs: b"".join(json.dumps(v).encode() + b"\x1e" for v in vs))),
    max_size=8))
def test_never_raises(name: str, claimed: bool, payloads: list[bytes]) -> None:
    cls = DECODERS[name]
    facts = ConnFacts(subprotocol=(cls.subprotocols or (None,))[0], uri="/x/hub/websocket?vsn=2") \
        if claimed else ConnFacts()
    messages = [AppMessage(i, "c2s" if i % 2 == 0 else "s2c", "text", p)
                for i, p in enumerate(payloads)]
    assert 0.0 <= cls.recognize(facts, messages) <= 1.0
    run(cls, facts, messages)
