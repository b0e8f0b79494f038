"""Fuzz the application decoders (wspcap.app) with mutated message payloads.

The seeds are the sample conversations of the decoder tests (every
``tests/unit/app/*_samples.py`` module's ``SAMPLES``: objects with ``facts``
and ``messages``). Each case mutates those payloads (bit flips, byte sets,
cuts, splices of two messages, duplications, record-separator and
brace insertions, truncation to a prefix) and feeds them to every
registered decoder, with the sample's handshake facts and with none, then
checks that nothing escapes ``recognize``/``receive``/``finish`` and that
what comes out keeps the interface's contract; and that the run and column
paths (``receive_run``, ``receive_columns``) give what ``receive`` gives on
the same messages cut into runs (JSON-RPC's column path with its compiled
loop where it is built, ``wspcap/app/_speedups.c``: it reads the mutated
payloads' bytes itself). Seeded, bounded in time; the long mode
(``python -m tests.fuzz``) runs them longer with other seeds.
"""

from __future__ import annotations

import importlib.util
import json
import random
import sys
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from wspcap.app import DECODERS, AppEvent, AppFinding, AppMessage, ConnFacts
from wspcap.app.base import Decoder, EventColumns, MessageRun
from wspcap.app.fields import fields_text
from wspcap.tables.app import _texts
from wspcap.tables.arrays import strings

SEED = 18_01  #: issue 18
CASES = 1500
BUDGET_S = 12.0
_APP_TESTS = Path(__file__).resolve().parent.parent / "unit" / "app"


def _samples() -> list[tuple[ConnFacts, list[AppMessage]]]:
    out: list[tuple[ConnFacts, list[AppMessage]]] = []
    for path in sorted(_APP_TESTS.glob("*_samples.py")):
        spec = importlib.util.spec_from_file_location(f"_fuzz_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        for sample in getattr(module, "SAMPLES", {}).values():
            out.append((sample.facts, list(sample.messages)))
    return out


def _mutate(rng: random.Random, data: bytes, other: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        if op == 0 and buf:  # bit flip
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:  # byte set
            buf[rng.randrange(len(buf))] = rng.choice((0, 0x1E, 0x22, 0x5B, 0x7B, 0x7D, 0xFF))
        elif op == 2 and buf:  # cut
            del buf[rng.randrange(len(buf)):]
        elif op == 3:  # splice with another message
            cut = rng.randrange(len(buf) + 1)
            buf[cut:] = other[rng.randrange(len(other) + 1):]
        elif op == 4:  # duplicate
            buf += bytes(buf)
        elif op == 5:  # separators and brackets
            buf.insert(rng.randrange(len(buf) + 1), rng.choice(b"\x1e{}[]\",:0"))
        elif op == 6 and buf:  # drop a range
            i = rng.randrange(len(buf))
            del buf[i:i + rng.randint(1, 8)]
        elif op == 7:  # a lone surrogate's escape (in a string, the standard library takes it)
            i = rng.randrange(len(buf) + 1)
            buf[i:i] = rng.choice((b"\\ud800", b"\\udfff"))
        else:  # deep nesting
            depth = rng.choice((10, 100, 5000))
            buf[:0] = b"[" * depth
    return bytes(buf)


def _check(item: Any) -> None:
    assert isinstance(item, (AppEvent, AppFinding)), item
    if isinstance(item, AppEvent):
        json.dumps(dict(item.fields), allow_nan=False)
        assert item.channel is None or isinstance(item.channel, str)
        assert item.id is None or isinstance(item.id, str)
        # (the table writes it: valid UTF-8 whatever the strings hold)
        strings([item.channel, item.id]).validate(full=True)
        _texts([[dict(item.fields)]]).validate(full=True)
    else:
        assert item.code.startswith("app_")
        assert "decoder error" not in item.detail, item  # an internal exception, caught


def _cases(name: str, tag: str, seed: int, budget: float, cases: int
           ) -> Iterator[tuple[int, random.Random, ConnFacts, list[AppMessage], list[bytes]]]:
    """The cases of one decoder's test: (case, its random source, a sample's
    facts and messages, every sample's payloads to splice), until ``cases``
    or the ``budget`` of seconds is spent; seeded by ``seed``, the decoder
    and ``tag``. (The tests take the three as keyword arguments, for the
    long mode of ``python -m tests.fuzz``.)"""
    samples = _samples()
    assert samples
    pool = [m.payload for _, msgs in samples for m in msgs]
    rng = random.Random(f"{seed}:{tag}{name}")
    deadline = time.monotonic() + budget
    for case in range(cases):
        if time.monotonic() > deadline:
            return
        facts, messages = samples[rng.randrange(len(samples))]
        yield case, rng, facts, messages, pool


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_mutated_payloads_never_escape(name: str, seed: int = SEED,
                                       budget: float = BUDGET_S / max(1, len(DECODERS)),
                                       cases: int = CASES) -> None:
    cls = DECODERS[name]
    for case, rng, facts, messages, pool in _cases(name, "", seed, budget, cases):
        if case % 2:
            facts = ConnFacts(subprotocol=(cls.subprotocols or (None,))[0], uri=facts.uri)
        mutated = [
            AppMessage(m.msg_index, m.direction, m.type,
                       _mutate(rng, m.payload, rng.choice(pool)) if rng.random() < 0.5
                       else m.payload, m.ts)
            for m in messages
        ]
        try:
            assert 0.0 <= float(cls.recognize(facts, mutated[:4])) <= 1.0
            decoder = cls(facts)
            for message in mutated:
                for item in decoder.receive(message):
                    _check(item)
            for item in decoder.finish():
                _check(item)
        except AssertionError:
            raise
        except Exception as exc:  # pragma: no cover - the failure report
            raise AssertionError(f"{name} case {case} (seed {seed}) raised {exc!r}") from exc


def _run(messages: list[AppMessage]) -> MessageRun:
    return MessageRun([m.msg_index for m in messages], [m.direction for m in messages],
                      [m.type for m in messages], [m.payload for m in messages],
                      [m.ts for m in messages], [m.complete for m in messages])


#: Decoders that offer the column path (``receive_columns`` gives columns).
COLUMNS = sorted(name for name, cls in DECODERS.items()
                 if cls.receive_columns is not Decoder.receive_columns)


@pytest.mark.parametrize("name", COLUMNS)
def test_mutated_runs_by_columns_are_receive(name: str, seed: int = SEED,
                                             budget: float = BUDGET_S / 2,
                                             cases: int = CASES) -> None:
    cls = DECODERS[name]
    for case, rng, facts, messages, pool in _cases(name, "columns:", seed, budget, cases):
        facts = facts if case % 2 else ConnFacts()
        # Long enough to be parsed joined, mutated now and then.
        mutated = [AppMessage(i, m.direction, m.type,
                              _mutate(rng, m.payload, rng.choice(pool)) if rng.random() < 0.2
                              else m.payload, m.ts)
                   for i, m in enumerate(messages * rng.randint(1, 4))]
        single, columns = cls(facts), cls(facts)
        want = EventColumns()
        for i, message in enumerate(mutated):
            want.add(i, single.receive(message))
        got = EventColumns()
        cuts = sorted({0, len(mutated), *(rng.randrange(len(mutated) + 1) for _ in range(2))})
        try:
            for start, end in pairwise(cuts):
                part = columns.receive_columns(_run(mutated[start:end]))
                assert part is not None
                got.position += [start + i for i in part.position]
                for field in ("msg_index", "direction", "protocol", "kind", "channel", "id",
                              "fields", "part", "answers"):
                    getattr(got, field).extend(getattr(part, field))
                got.findings += [(start + i, f) for i, f in part.findings]
            for cols in (got, want):  # (as the table writes them)
                cols.fields = [f if isinstance(f, str) else fields_text(f) for f in cols.fields]
            assert got == want, f"{name} case {case} (seed {seed})"
            assert columns.finish() == single.finish()
        except AssertionError:
            raise
        except Exception as exc:  # pragma: no cover - the failure report
            raise AssertionError(f"{name} case {case} (seed {seed}) raised {exc!r}") from exc


#: Decoders with a ``receive_run`` of their own (passing over what cannot be
#: theirs without an AppMessage, parsing once...).
RUNS = sorted(name for name, cls in DECODERS.items()
              if cls.receive_run is not Decoder.receive_run)


@pytest.mark.parametrize("name", RUNS)
def test_mutated_runs_are_receive(name: str, seed: int = SEED,
                                  budget: float = BUDGET_S / max(1, len(RUNS)),
                                  cases: int = CASES) -> None:
    # Mutated conversations, with and without the sample's facts, repeated
    # and cut into runs at random: receive_run gives what receive gives
    # message by message, and leaves the same end.
    cls = DECODERS[name]
    for case, rng, facts, messages, pool in _cases(name, "runs:", seed, budget, cases):
        facts = (facts, ConnFacts(), ConnFacts(subprotocol=(cls.subprotocols or (None,))[0],
                                               uri=facts.uri))[case % 3]
        if rng.random() < 0.3:  # (messages lost: the opening ones too, now and then)
            messages = [m for m in messages if rng.random() >= 0.3]
        pieces: list[tuple[str, str, bytes, int]] = []
        for m in messages * rng.randint(1, 3):
            payload = _mutate(rng, m.payload, rng.choice(pool)) if rng.random() < 0.3 \
                else m.payload
            kind = ("binary" if m.type == "text" else "text") if rng.random() < 0.1 else m.type
            cut = rng.randrange(len(payload) + 1) if rng.random() < 0.2 else len(payload)
            pieces.append((m.direction, kind, payload[:cut], m.ts))
            if cut < len(payload):  # (a message's rest in the next one)
                pieces.append((m.direction, kind, payload[cut:], m.ts))
        mutated = [AppMessage(i, *piece) for i, piece in enumerate(pieces)]
        single, runs = cls(facts), cls(facts)
        want = [(i, out) for i, message in enumerate(mutated) if (out := single.receive(message))]
        cuts = sorted({0, len(mutated), *(rng.randrange(len(mutated) + 1)
                                          for _ in range(rng.randint(1, len(mutated) // 2 + 1)))})
        try:
            got = [(start + i, out) for start, end in pairwise(cuts)
                   for i, out in runs.receive_run(_run(mutated[start:end]))]
            assert got == want, f"{name} case {case} (seed {seed})"
            assert runs.finish() == single.finish(), f"{name} case {case} (seed {seed})"
        except AssertionError:
            raise
        except Exception as exc:  # pragma: no cover - the failure report
            raise AssertionError(f"{name} case {case} (seed {seed}) raised {exc!r}") from exc


def test_the_long_mode_runs_these_and_reports_what_fails(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    # ``python -m tests.fuzz`` gives a share of its time to the tests above,
    # with other seeds: a decoder whose run path loses what it gave is found
    # there, and written down with how to run the test again.
    from tests.fuzz.__main__ import _decoders

    stomp = DECODERS["stomp"]
    real = stomp.receive_run
    monkeypatch.setattr(stomp, "receive_run", lambda self, run: real(self, run)[1:])
    calls, failed = _decoders(7, time.monotonic() + 3, tmp_path)
    assert calls >= len(DECODERS) + len(RUNS) + len(COLUMNS)
    assert failed and all("[stomp]" in what for what in failed)
    written = sorted(tmp_path.glob("decoders-*.txt"))
    assert len(written) == len(failed) and "replay:" in written[0].read_text()
