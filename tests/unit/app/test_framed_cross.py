"""Cross-recognition of the framed decoders (Socket.IO, MQTT, STOMP) against every other sample.

Each framed decoder's own sample is recognized by its owner above everyone
else; no framed decoder claims another protocol's conversation (ours, and the
JSON family's samples from ``app_samples`` when that module is present), and
when picked by content a framed decoder stays quiet on foreign messages.
"""

from __future__ import annotations

import importlib

import pytest

from tests.unit.app.framed_samples import CONVERSATIONS
from wspcap.app.base import AppEvent, AppFinding, AppMessage, ConnFacts
from wspcap.app.registry import DECODERS, choose

for _module in ("wspcap.app", "wspcap.app.socketio", "wspcap.app.mqtt", "wspcap.app.stomp"):
    importlib.import_module(_module)

FRAMED = ["mqtt", "socketio", "stomp"]


def _json_family() -> dict[str, tuple[ConnFacts, list[AppMessage]]]:
    try:
        samples = importlib.import_module("app_samples")
    except ImportError:
        return {}
    return {f"json:{k}": (s.facts, s.messages) for k, s in samples.SAMPLES.items()}


OTHERS = {**{k: v for k, v in CONVERSATIONS.items() if k not in FRAMED}, **_json_family()}


def _run(name: str, facts: ConnFacts, messages: list[AppMessage]) -> list[AppEvent | AppFinding]:
    decoder = DECODERS[name](facts)
    out: list[AppEvent | AppFinding] = []
    for m in messages:
        out += decoder.receive(m)
    return out + decoder.finish()


@pytest.mark.parametrize("owner", FRAMED)
@pytest.mark.parametrize("with_facts", [True, False])
def test_owner_wins(owner: str, with_facts: bool) -> None:
    facts, conv = CONVERSATIONS[owner]
    facts = facts if with_facts else ConnFacts()
    first = conv[:4]
    own = DECODERS[owner].recognize(facts, first)
    assert own > 0
    for name, cls in DECODERS.items():
        if name != owner:
            assert cls.recognize(facts, first) < own, name
    assert choose(facts, first) == (DECODERS[owner], own)


@pytest.mark.parametrize("name", FRAMED)
@pytest.mark.parametrize("other", sorted(OTHERS))
@pytest.mark.parametrize("with_facts", [True, False])
def test_no_false_recognition(name: str, other: str, with_facts: bool) -> None:
    facts, conv = OTHERS[other]
    facts = facts if with_facts else ConnFacts()
    assert DECODERS[name].recognize(facts, conv[:4]) == 0.0


@pytest.mark.parametrize("name", FRAMED)
@pytest.mark.parametrize("other", sorted(OTHERS))
def test_foreign_text_decodes_quietly(name: str, other: str) -> None:
    """Picked by content (not claimed), a framed decoder gives no parse findings on foreign text messages."""
    _, conv = OTHERS[other]
    out = _run(name, ConnFacts(), [m for m in conv if m.type == "text"])
    assert not [f for f in out if isinstance(f, AppFinding) and f.code == "app_parse_failed"]
