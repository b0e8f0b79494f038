"""Application decoders: what the messages say (issue 18).

A pure, sans-I/O layer above WebSocket messages. Each decoder module
registers its class in :data:`DECODERS` on import; importing this package
imports them all.
"""

from __future__ import annotations

# Decoder modules register themselves on import (alphabetical: the tie-break order).
from . import (  # noqa: F401
    actioncable,
    graphql,
    jsonrpc,
    mqtt,
    phoenix,
    signalr,
    socketio,
    stomp,
    wamp,
)
from .base import AppEvent, AppFinding, AppMessage, ConnFacts, Decoder
from .registry import DECODERS, choose, register

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
