"""What the framed decoders (Socket.IO, MQTT, STOMP) say about bytes they cannot read,
and how MQTT and STOMP pass over a unit too large to keep.

A decoder chosen by content alone may be wrong about the conversation: its parse
and protocol findings are then noise. They are kept only for a conversation the
subprotocol or URI claimed, or whose opening packet the decoder read; an internal
error of the decoder is always kept.
"""

from __future__ import annotations

from wspcap.app.base import AppEvent, AppFinding

__all__ = ["QUIET_CODES", "pass_over", "quiet"]

#: Findings left out for a conversation neither claimed nor confirmed.
QUIET_CODES = frozenset({"app_parse_failed", "app_protocol_violation", "app_buffer_limit"})


def pass_over(buf: bytearray, size: int) -> int:
    """Pass over a unit of ``size`` bytes at the start of ``buf`` (one over a
    decoder's cap, by its declared length): dropped where it is whole in
    ``buf`` (0 returned: decoding goes on after it); else ``buf`` emptied,
    and what is left of it returned, for the messages to come to skip."""
    if len(buf) >= size:
        del buf[:size]
        return 0
    left = size - len(buf)
    buf.clear()
    return left


def quiet(out: list[AppEvent | AppFinding], sure: bool) -> list[AppEvent | AppFinding]:
    """``out``, less its parse and protocol findings unless the decoder is ``sure``."""
    if sure:
        return out
    return [e for e in out if not isinstance(e, AppFinding) or e.code not in QUIET_CODES
            or "decoder error" in e.detail]
