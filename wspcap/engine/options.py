"""The engine's limits (:class:`Options`) and the constants of its driver."""

from __future__ import annotations

from dataclasses import dataclass

from wspcap.rules.thresholds import Thresholds
from wspcap.tcp.reassembly import MAX_PENDING
from wspcap.tls import KeyLog
from wspcap.tls.session import MAX_HELD_TOTAL
from wspcap.ws.deflate import MAX_INFLATED
from wspcap.ws.frames import MAX_PAYLOAD

__all__ = ["EARLY_CHUNKS", "PROBE_CHUNKS", "Options", "snap_detail"]

#: Data chunks looked at, per direction, before a connection that is neither
#: an HTTP upgrade nor framed like WebSocket is ignored.
PROBE_CHUNKS = 4
#: Segments held after a 101 answer captured before its request (two taps merged,
#: clock skew: see Session._early_answer). Past them, or past ``max_pending``
#: bytes, or at the end of input, the frames that follow the 101 are read as those
#: of a connection whose request was not captured (only one direction captured, as
#: with asymmetric routing).
EARLY_CHUNKS = 64


def snap_detail(packets: int) -> str:
    """The detail of ``capture_truncated`` for packets cut by the snap length."""
    return (f"{packets} packet was" if packets == 1 else f"{packets} packets were") + \
        " cut by the snap length"


@dataclass
class Options:
    """Limits of the engine; every one has a default that suits real traffic.

    Attributes:
        max_payload: payload bytes kept per frame.
        max_inflated: inflated bytes allowed per message (decompression bomb
            bound); the bounds across messages are thresholds
            (``inflate_budget_connection``, ``inflate_budget_capture``).
        max_pending: out-of-order bytes held per direction before a hole is a gap.
        midstream: look for WebSocket frames in connections whose handshake
            was not captured.
        shard: ``(i, n)`` keeps only the connections whose flow hash is ``i``
            modulo ``n`` (see :meth:`Pipeline._new_session`), so ``n`` readers
            of one file share its connections; None keeps them all.
        thresholds: limits of the anomaly rules
            (:class:`~wspcap.rules.thresholds.Thresholds`; defaults if None).
        keylog: TLS secrets (:class:`~wspcap.tls.KeyLog`) to decrypt wss://
            connections with; it may grow while reading (a live capture
            following a key log, or secrets embedded in a pcapng file).
        tls_hold: protected bytes held per direction of a TLS connection
            whose keys are not (yet) in the key log; 0 when the key log is
            complete before reading starts (files), more for a key log that
            is still being written (live).
        tls_hold_total: those bytes for all connections together (a busy
            interface has many connections whose keys never come).
        decoder: an application decoder to force on every connection (a
            name from ``wspcap decoders``); None chooses by handshake and
            content (see :mod:`wspcap.app.runner`).
        decoders: False turns application decoding off (no ``app`` rows).
    """

    max_payload: int = MAX_PAYLOAD
    max_inflated: int = MAX_INFLATED
    max_pending: int = MAX_PENDING
    midstream: bool = True
    shard: tuple[int, int] | None = None
    thresholds: Thresholds | None = None
    keylog: KeyLog | None = None
    tls_hold: int = 0
    tls_hold_total: int = MAX_HELD_TOTAL
    # -- application decoding (issue 18; read by wspcap.tables.app) --
    decoder: str | None = None
    decoders: bool = True
