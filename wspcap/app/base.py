"""Application-decoder interface (local copy of the brief's text; a1's version is kept at merge)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["AppEvent", "AppFinding", "AppMessage", "ConnFacts", "Decoder"]


@dataclass(frozen=True, slots=True)
class ConnFacts:
    subprotocol: str | None = None
    offered: tuple[str, ...] = ()
    uri: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AppMessage:
    msg_index: int
    direction: str
    type: str
    payload: bytes
    ts: int = 0
    complete: bool = True


@dataclass(frozen=True, slots=True)
class AppEvent:
    msg_index: int
    direction: str
    protocol: str
    kind: str
    channel: str | None = None
    id: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    part: int = 0


@dataclass(frozen=True, slots=True)
class AppFinding:
    code: str
    msg_index: int | None
    direction: str | None
    detail: str


class Decoder:
    """Pure: no I/O. One instance per connection."""

    name: ClassVar[str]
    subprotocols: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def recognize(cls, facts: ConnFacts, first: Sequence[AppMessage]) -> float:
        return 0.0

    def __init__(self, facts: ConnFacts) -> None:
        self.facts = facts

    def receive(self, message: AppMessage) -> list[AppEvent | AppFinding]:
        return []

    def finish(self) -> list[AppEvent | AppFinding]:
        return []
