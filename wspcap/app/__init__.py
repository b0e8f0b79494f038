"""Application decoders: what the messages say (issue 18).

A pure, sans-I/O layer above WebSocket messages. Each decoder module
registers its class in :data:`DECODERS` on import; importing this package
imports them all.
"""

from __future__ import annotations

from .base import AppEvent, AppFinding, AppMessage, ConnFacts, Decoder
from .registry import DECODERS, choose, register

# Decoder modules register themselves on import; the order is the tie-break.
from . import graphql, wamp, actioncable, signalr, phoenix, jsonrpc  # noqa: E402, F401, I001

__all__ = [
    "DECODERS",
    "AppEvent",
    "AppFinding",
    "AppMessage",
    "ConnFacts",
    "Decoder",
    "choose",
    "register",
]
