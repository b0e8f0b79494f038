"""The decoder registry: every application decoder, declared once.

``DECODERS`` maps a decoder's name to its class in registration order
(module import order). :func:`register` is the class decorator that adds
one; :func:`choose` picks the decoder for a connection: the highest
confidence wins, ties go to the decoder registered first, a forced name
wins outright, and nothing is chosen when every confidence is 0 or
decoding is disabled. ``choose`` never raises: a ``recognize`` that
raises or returns something odd counts as 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .base import AppMessage, ConnFacts, Decoder

__all__ = ["DECODERS", "choose", "register"]

#: Decoder name -> class, in registration order.
DECODERS: dict[str, type[Decoder]] = {}


def register(cls: type[Decoder]) -> type[Decoder]:
    """Class decorator: add ``cls`` to :data:`DECODERS` under ``cls.name``.

    Registering a second class under a name already taken raises
    ``ValueError`` (a programming error, found at import time);
    re-registering the same class is a no-op.
    """
    name = cls.name
    if not name or name != name.lower():
        raise ValueError(f"decoder name must be lower-case and non-empty: {name!r}")
    old = DECODERS.get(name)
    if old is not None and old is not cls:
        raise ValueError(f"decoder name already registered: {name!r}")
    DECODERS[name] = cls
    return cls


def _confidence(cls: type[Decoder], facts: ConnFacts, first: Sequence[AppMessage]) -> float:
    try:
        value = float(cls.recognize(facts, first))
    except Exception:  # noqa: BLE001 - a decoder's bug must not stop the capture
        return 0.0
    if math.isnan(value):
        return 0.0
    return min(max(value, 0.0), 1.0)


def choose(
    facts: ConnFacts,
    first: Sequence[AppMessage],
    forced: str | None = None,
    disabled: bool = False,
) -> tuple[type[Decoder] | None, float]:
    """The decoder for a connection and its confidence.

    ``forced`` names a decoder to use whatever it says (its own confidence
    is still reported; an unknown name chooses nothing). ``disabled``
    chooses nothing. Otherwise the highest confidence above 0 wins, ties
    going to the earlier registration. Never raises.
    """
    if disabled:
        return None, 0.0
    if forced is not None:
        cls = DECODERS.get(forced.lower()) if isinstance(forced, str) else None
        if cls is None:
            return None, 0.0
        return cls, _confidence(cls, facts, first)
    best: type[Decoder] | None = None
    best_conf = 0.0
    for cls in list(DECODERS.values()):
        conf = _confidence(cls, facts, first)
        if conf > best_conf:
            best, best_conf = cls, conf
    return best, best_conf
