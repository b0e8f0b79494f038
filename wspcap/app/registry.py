"""The decoder registry: every application decoder, declared once.

``DECODERS`` maps a decoder's name to its class in registration order
(module import order). :func:`register` is the class decorator that adds
one; :func:`choose` picks the decoder for a connection: the highest
confidence wins, ties go to the decoder registered first, a forced name
wins outright, and nothing is chosen when every confidence is 0 or
decoding is disabled. ``choose`` never raises: a ``recognize`` that
raises or returns something odd counts as 0.

Third-party decoders come in through the entry-point group
:data:`ENTRY_POINT_GROUP` (``wspcap.decoders``): each entry point names a
:class:`~wspcap.app.base.Decoder` subclass (registered here if it is not
yet) or a module that registers its decoders on import.
:func:`load_entry_points` loads them once; one that fails to load is set
aside with the reason (:data:`BROKEN`), it never stops a capture.
:func:`installed` lists every decoder: name, subprotocols, how it
recognizes, module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from importlib import metadata

from .base import AppMessage, ConnFacts, Decoder

__all__ = ["BROKEN", "DECODERS", "ENTRY_POINT_GROUP", "choose", "installed",
           "load_entry_points", "register"]

#: Decoder name -> class, in registration order.
DECODERS: dict[str, type[Decoder]] = {}
#: The entry-point group third-party decoders are declared in.
ENTRY_POINT_GROUP = "wspcap.decoders"
#: Entry points that failed to load: ``"name = value"`` -> why.
BROKEN: dict[str, str] = {}
_LOADED: list[bool] = []


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


def _load_one(entry: metadata.EntryPoint) -> None:
    try:
        value = entry.load()
        if isinstance(value, type) and issubclass(value, Decoder):
            register(value)
        elif not hasattr(value, "__name__"):
            raise TypeError(f"{type(value).__name__} is neither a Decoder class nor a module")
    except Exception as exc:  # noqa: BLE001 - a broken plug-in must not stop the capture
        BROKEN[f"{entry.name} = {entry.value}"] = f"{type(exc).__name__}: {exc}"


def load_entry_points(force: bool = False) -> dict[str, str]:
    """Load the decoders of group :data:`ENTRY_POINT_GROUP` (once, unless ``force``).

    Returns:
        :data:`BROKEN`: the entry points that failed, and why.
    """
    if _LOADED and not force:
        return BROKEN
    _LOADED.append(True)
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        _load_one(entry)
    return BROKEN


def installed() -> list[dict[str, str]]:
    """Every decoder (entry points loaded): name, subprotocols, recognition, module."""
    load_entry_points()
    return [{"name": name, "subprotocols": ", ".join(cls.subprotocols),
             "recognition": getattr(cls, "recognition", "subprotocol"),
             "module": cls.__module__}
            for name, cls in DECODERS.items()]
