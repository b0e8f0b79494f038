"""Mutated message payloads fed to every application decoder: nothing escapes.

Bit flips, cuts and splices of the unit tests' sample conversations
(tests/unit/app/samples.py), seeded, run through every registered decoder,
claimed (by the decoder's own facts) and unclaimed. A decoder must not raise,
must not report its own bug guard ("decoder error"), and its fields must be
JSON-serializable.
"""

from __future__ import annotations

import importlib
import json
import random
import time

import pytest

from tests.unit.app.framed_samples import CONVERSATIONS
from wspcap.app.base import AppEvent, AppFinding, AppMessage, ConnFacts
from wspcap.app.registry import DECODERS

for _module in ("wspcap.app", "wspcap.app.socketio", "wspcap.app.mqtt", "wspcap.app.stomp"):
    importlib.import_module(_module)

SEED = 18
ROUNDS = 30000
TIME_BUDGET = 12.0  # seconds for the whole file


def _mutate(rng: random.Random, payload: bytes, pool: list[bytes]) -> bytes:
    data = bytearray(payload)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(4)
        if op == 0 and data:
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1 and data:
            i = rng.randrange(len(data) + 1)
            data = data[:i] if rng.random() < 0.5 else data[i:]
        elif op == 2:
            other = rng.choice(pool)
            j = rng.randrange(len(other) + 1)
            i = rng.randrange(len(data) + 1)
            data = data[:i] + other[j:]
        else:
            i = rng.randrange(len(data) + 1)
            data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
    return bytes(data)


def _check(items: list[AppEvent | AppFinding]) -> None:
    for item in items:
        if isinstance(item, AppFinding):
            assert "decoder error" not in item.detail, item
        else:
            json.dumps(item.fields)


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_mutated_conversations(name: str) -> None:
    cls = DECODERS[name]
    rng = random.Random(f"{SEED}-{name}")
    pool = [m.payload for _, conv in CONVERSATIONS.values() for m in conv]
    convs = list(CONVERSATIONS.values())
    deadline = time.monotonic() + TIME_BUDGET / max(len(DECODERS), 1)
    for round_ in range(ROUNDS):
        if time.monotonic() > deadline:
            break
        facts, conv = convs[round_ % len(convs)]
        if round_ % 3 == 0:
            facts = ConnFacts()
        messages = [
            AppMessage(i, m.direction, rng.choice(("text", "binary", m.type)),
                       _mutate(rng, m.payload, pool) if rng.random() < 0.7 else m.payload,
                       ts=m.ts * rng.randint(1, 50))
            for i, m in enumerate(conv)
        ]
        cls.recognize(facts, messages)
        decoder = cls(facts)
        for message in messages:
            _check(decoder.receive(message))
        _check(decoder.finish())
