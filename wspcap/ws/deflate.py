"""permessage-deflate (RFC 7692): negotiated parameters and inflation.

Sans-I/O: performs no I/O.

Each direction has its own compression context. A message with RSV1 set on its
first frame is compressed: the sender removed the trailing ``00 00 ff ff`` of
a sync flush, so the receiver appends it before inflating (section 7.2.2).
With context takeover (the default) the LZ77 window carries over from one
message to the next in that direction; with ``*_no_context_takeover`` each
message starts afresh. The sender's window is at most ``2***_max_window_bits``
bytes (client_max_window_bits for client-to-server messages).

An inflated message larger than ``max_size`` is cut there and the rest is not
inflated (a decompression bomb is recorded, not followed); the direction's
context is then unusable and later messages that depend on it are reported.

That bounds one message; many messages are bounded by :class:`InflateBudget`
objects that inflaters share (one per connection, one per capture): a
message that would take a budget past its limit is not inflated at all, and
neither are the direction's later messages (``res_inflate_budget_exceeded``,
reported once per direction), so their payloads stay the compressed bytes.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from wspcap.http.upgrade import parse_extensions

__all__ = ["EXTENSION_NAME", "MAX_INFLATED", "DeflateParams", "InflateBudget", "Inflater",
           "negotiate"]

EXTENSION_NAME = "permessage-deflate"
#: RFC 7692 section 7.2.2: the bytes removed from the end of each message.
TAIL = b"\x00\x00\xff\xff"
#: Default bound on the inflated size of one message.
MAX_INFLATED = 64 << 20


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """The permessage-deflate parameters a server accepted (RFC 7692 section 7.1)."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15


#: RFC 7692 section 7.1.2: a window size is "a decimal integer value without leading
#: zeroes", in ASCII digits (``str.isdigit`` also takes "²", which ``int`` refuses).
_WINDOW_BITS = re.compile(r"[1-9][0-9]?")


def _bits(value: str | None, default: int) -> int | None:
    if value is None:
        return default
    if not _WINDOW_BITS.fullmatch(value) or not 8 <= int(value) <= 15:
        return None
    return int(value)


def negotiate(selected: str | None) -> tuple[DeflateParams | None, list[str]]:
    """Read the server's ``Sec-WebSocket-Extensions`` answer.

    Args:
        selected: the response header's value.

    Returns:
        The accepted parameters (``None`` if permessage-deflate was not
        accepted) and a list of problems found in them, each a short text.
    """
    problems: list[str] = []
    for name, params in parse_extensions(selected):
        if name != EXTENSION_NAME:
            continue
        kwargs: dict[str, object] = {}
        seen: set[str] = set()
        for pname, pvalue in params:
            if pname in seen:
                problems.append(f"parameter {pname} repeated")
            seen.add(pname)
            if pname in ("server_no_context_takeover", "client_no_context_takeover"):
                if pvalue is not None:
                    problems.append(f"{pname} takes no value")
                kwargs[pname] = True
            elif pname in ("server_max_window_bits", "client_max_window_bits"):
                bits = _bits(pvalue, 15)
                if bits is None or (pname == "server_max_window_bits" and pvalue is None):
                    problems.append(f"{pname}={pvalue} is not a value from 8 to 15")
                    bits = 15
                kwargs[pname] = bits
            else:
                problems.append(f"unknown parameter {pname}")
        return DeflateParams(**kwargs), problems  # type: ignore[arg-type]
    return None, problems


class InflateBudget:
    """Inflated bytes that the inflaters sharing this object may still make.

    Args:
        limit: bytes in all.
        scope: what it is the budget of (``connection``, ``capture``), for
            the anomaly's detail.

    Attributes:
        used: bytes inflated so far, counted by the inflaters.
    """

    __slots__ = ("limit", "scope", "used")

    def __init__(self, limit: int, scope: str) -> None:
        self.limit = limit
        self.scope = scope
        self.used = 0

    @property
    def room(self) -> int:
        """Bytes left."""
        return self.limit - self.used

    def release(self, size: int) -> None:
        """``size`` inflated bytes were let go of (written out): they no longer
        count against the budget."""
        self.used -= size


class Inflater:
    """Inflates the compressed messages of one direction.

    Args:
        window_bits: the sender's negotiated maximum window (8 to 15).
        no_context_takeover: the sender resets its context after each message.
        max_size: bound on one message's inflated size.
        budgets: bounds on what this inflater and others together inflate
            (for example a connection's and a capture's).

    Attributes:
        broken: the context is lost (a message failed or was cut), so messages
            that depend on earlier ones can no longer be inflated exactly.
        over_budget: a budget ran out; no later message is inflated.
    """

    def __init__(self, window_bits: int = 15, no_context_takeover: bool = False,
                 max_size: int = MAX_INFLATED,
                 budgets: tuple[InflateBudget, ...] = ()) -> None:
        # zlib refuses a raw window of 8 bits for deflate but a compressor
        # that used 8 is read correctly with 9 (zlib changes 8 to 9 itself).
        self.window_bits = max(9, window_bits)
        self.no_context_takeover = no_context_takeover
        self.max_size = max_size
        self.budgets = budgets
        self.broken = False
        self.used = False
        self.over_budget = False
        self._d = zlib.decompressobj(-self.window_bits)

    def inflate(self, data: bytes) -> tuple[bytes | None, str | None, str]:
        """Inflate one message's payload.

        Returns:
            ``(payload, problem, detail)``: the inflated bytes (``None`` when
            inflation failed or a budget ran out), and ``None`` or the anomaly
            code (``pmd_inflate_failed``, ``pmd_ratio_excessive``,
            ``pmd_window_bits_exceeded``, ``pmd_context_takeover_violated``,
            ``pmd_context_lost``, ``res_inflate_budget_exceeded``) with a
            detail text.
        """
        if not self.budgets:
            return self._inflate(data, self.max_size)
        if self.over_budget:
            return None, None, ""  # reported at the first message kept compressed
        budget = min(self.budgets, key=lambda b: b.room)
        room = budget.room
        if room > 0:
            limit = min(room, self.max_size)
            out, problem, detail = self._inflate(data, limit)
            if not (problem == "pmd_ratio_excessive" and limit < self.max_size):
                if out is not None:
                    for b in self.budgets:
                        b.used += len(out)
                return out, problem, detail
        # Kept compressed. The context is lost with this message, so the
        # direction's later messages stay compressed too (the budget is spent).
        self.over_budget = True
        self.broken = True
        return None, "res_inflate_budget_exceeded", (
            f"the {budget.scope}'s inflation budget of {budget.limit} bytes is used up "
            f"({budget.used} inflated): this message ({len(data)} compressed bytes) and the "
            "later compressed ones in this direction are kept compressed")

    def _inflate(self, data: bytes, max_size: int) -> tuple[bytes | None, str | None, str]:
        """:meth:`inflate` without budgets, cut at ``max_size`` bytes."""
        # After a block with BFINAL set (RFC 7692 section 7.2.3.4) the DEFLATE
        # stream has ended and zlib would take further input as unused data.
        previous = None  # the window the sender agreed not to use (no_context_takeover)
        if (self.no_context_takeover and self.used) or self._d.eof:
            previous = self._d if self.no_context_takeover else None
            self._d = zlib.decompressobj(-self.window_bits)
        self.used = True
        try:
            out = self._d.decompress(data + TAIL, max_size + 1)
        except zlib.error as exc:
            was_broken = self.broken
            self.broken = True
            text = str(exc)
            self._d = zlib.decompressobj(-self.window_bits)
            if "too far back" in text and previous is not None:
                try:  # RFC 7692 section 7.1.1: does it need the previous window?
                    kept = previous.decompress(data + TAIL, max_size + 1)
                except zlib.error:
                    kept = None
                if kept is not None:
                    return kept, "pmd_context_takeover_violated", (
                        "message refers to the previous message's window although "
                        f"no_context_takeover was agreed ({text})")
            if "too far back" in text and was_broken and not self.no_context_takeover:
                return None, "pmd_context_lost", (
                    "compressed message refers to the window of an earlier message that "
                    f"could not be inflated ({text})")
            if "too far back" in text and self.window_bits < 15:
                try:  # inflate it alone with the largest window, to recover the data
                    alone = zlib.decompressobj(-15).decompress(data + TAIL, max_size + 1)
                except zlib.error:
                    alone = None
                return alone, "pmd_window_bits_exceeded", (
                    f"the sender refers back further than its window of "
                    f"2**{self.window_bits} bytes ({text})")
            return None, "pmd_inflate_failed", f"inflate failed: {text}"
        if len(out) > max_size or self._d.unconsumed_tail:
            self.broken = True
            self._d = zlib.decompressobj(-self.window_bits)
            return out[:max_size], "pmd_ratio_excessive", (
                f"inflated size exceeds {max_size} bytes from {len(data)} "
                f"compressed bytes; inflation cut")
        return out, None, ""

    def lose_context(self) -> None:
        """A compressed message of this direction was not inflated (bytes of it
        are missing): the window it would have left is unknown, so a later
        message that refers back to it is reported as ``pmd_context_lost``
        rather than inflated against the wrong window."""
        self.broken = True
        self.used = True
        self._d = zlib.decompressobj(-self.window_bits)
