"""Decoder registry (local minimal copy; a1's version is kept at merge)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from wspcap.app.base import AppMessage, ConnFacts, Decoder

__all__ = ["DECODERS", "choose", "register"]

_D = TypeVar("_D", bound=type[Decoder])

DECODERS: dict[str, type[Decoder]] = {}


def register(cls: _D) -> _D:
    DECODERS[cls.name] = cls
    return cls


def choose(
    facts: ConnFacts,
    first: Sequence[AppMessage],
    forced: str | None = None,
    disabled: bool = False,
) -> tuple[type[Decoder] | None, float]:
    if disabled:
        return None, 0.0
    if forced is not None:
        cls = DECODERS.get(forced)
        return (cls, 1.0) if cls is not None else (None, 0.0)
    best: type[Decoder] | None = None
    score = 0.0
    for cls in DECODERS.values():
        c = cls.recognize(facts, first)
        if c > score:
            best, score = cls, c
    return best, score
