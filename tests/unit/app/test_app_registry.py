"""The registry: register() and choose() (subprotocol > URI > content, forced, disabled, ties)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from wspcap.app import registry
from wspcap.app.base import AppMessage, ConnFacts, Decoder
from wspcap.app.registry import DECODERS, choose, register


@pytest.fixture
def empty_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, type[Decoder]]]:
    table: dict[str, type[Decoder]] = {}
    monkeypatch.setattr(registry, "DECODERS", table)
    yield table


def _msgs(*texts: str) -> list[AppMessage]:
    return [AppMessage(i, "c2s", "text", t.encode()) for i, t in enumerate(texts)]


def _make(name: str, sub: tuple[str, ...] = (), uri: str | None = None,
          content: str | None = None, raises: bool = False) -> type[Decoder]:
    class D(Decoder):
        subprotocols = sub

        @classmethod
        def recognize(cls, facts: ConnFacts, first: Sequence[AppMessage]) -> float:
            if raises:
                raise RuntimeError("buggy decoder")
            if facts.subprotocol in cls.subprotocols:
                return 1.0
            if uri is not None and facts.uri is not None and uri in facts.uri:
                return 0.9
            if content is not None and any(content.encode() in m.payload for m in first):
                return 0.7
            return 0.0

    D.name = name
    D.__name__ = name
    return D


def test_subprotocol_beats_uri_beats_content(empty_registry: dict[str, type[Decoder]]) -> None:
    by_content = register(_make("bycontent", content="hello"))
    by_uri = register(_make("byuri", uri="/hub"))
    by_sub = register(_make("bysub", sub=("proto",)))
    first = _msgs("hello")
    assert choose(ConnFacts(subprotocol="proto", uri="/hub"), first) == (by_sub, 1.0)
    assert choose(ConnFacts(uri="/hub"), first) == (by_uri, 0.9)
    assert choose(ConnFacts(), first) == (by_content, 0.7)
    assert choose(ConnFacts(), _msgs("nothing")) == (None, 0.0)


def test_forced_and_disabled(empty_registry: dict[str, type[Decoder]]) -> None:
    a = register(_make("a", sub=("x",)))
    b = register(_make("b"))
    facts = ConnFacts(subprotocol="x")
    assert choose(facts, [], forced="b") == (b, 0.0)
    assert choose(facts, [], forced="B") == (b, 0.0)
    assert choose(facts, [], forced="a") == (a, 1.0)
    assert choose(facts, [], forced="nosuch") == (None, 0.0)
    assert choose(facts, [], disabled=True) == (None, 0.0)
    assert choose(facts, [], forced="a", disabled=True) == (None, 0.0)


def test_ties_by_registration_order(empty_registry: dict[str, type[Decoder]]) -> None:
    first_cls = register(_make("zfirst", content="x"))
    register(_make("asecond", content="x"))
    assert choose(ConnFacts(), _msgs("x")) == (first_cls, 0.7)


def test_never_raises(empty_registry: dict[str, type[Decoder]]) -> None:
    register(_make("buggy", raises=True))

    class Odd(Decoder):
        name = "odd"

        @classmethod
        def recognize(cls, facts: ConnFacts, first: Sequence[AppMessage]) -> float:
            return float("nan")

    class Big(Decoder):
        name = "big"

        @classmethod
        def recognize(cls, facts: ConnFacts, first: Sequence[AppMessage]) -> float:
            return 7.0

    register(Odd)
    assert choose(ConnFacts(), []) == (None, 0.0)
    assert choose(ConnFacts(), [], forced="buggy")[1] == 0.0
    register(Big)
    assert choose(ConnFacts(), []) == (Big, 1.0)


def test_register_rejects_duplicates_and_bad_names(
    empty_registry: dict[str, type[Decoder]],
) -> None:
    a = register(_make("dup"))
    assert register(a) is a
    with pytest.raises(ValueError):
        register(_make("dup"))
    with pytest.raises(ValueError):
        register(_make("Upper"))


def test_default_recognize_is_by_subprotocol() -> None:
    class S(Decoder):
        name = "s"
        subprotocols = ("s.v1",)

    assert S.recognize(ConnFacts(subprotocol="s.v1"), []) == 1.0
    assert S.recognize(ConnFacts(subprotocol="other"), []) == 0.0
    assert S(ConnFacts()).receive(AppMessage(0, "c2s", "text", b"")) == []
    assert S(ConnFacts()).finish() == []


def test_real_registry_is_a_dict_of_decoders() -> None:
    for name, cls in DECODERS.items():
        assert name == cls.name == name.lower()
        assert issubclass(cls, Decoder)
