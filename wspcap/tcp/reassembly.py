"""Rebuild one direction of a TCP connection into an ordered byte stream.

Sans-I/O: performs no I/O. Segments go in through :meth:`receive_segment`
(in capture order, whatever their sequence order); the stream comes out,
in order, through the calls of a :class:`StreamSink`.

Design note
-----------
Goals: deliver every captured byte exactly once, in stream order, as early as
possible; say precisely where bytes are missing; never grow without bound.

Plan. Sequence numbers are 32-bit and wrap; the sink sees 64-bit *stream
offsets* instead (0 is the first byte after the SYN, or the first byte seen
when the SYN was not captured). A segment is, relative to the next expected
sequence number, in order (delivered at once, the hot path), ahead (kept in a
pending table until the hole before it fills), or behind (a retransmission:
compared with recently delivered bytes, and any new tail delivered).

Invariants:
- *First copy wins.* Bytes already delivered are never delivered again; a
  later copy whose bytes differ is reported through ``sink.conflict`` (the
  signature of injection or IDS evasion), and so is a pending copy that a
  later, differing segment overlaps.
- *Holes become gaps, never silence.* A hole is declared a gap (``sink.gap``
  with its size) when the peer acknowledges data beyond it (the bytes reached
  the peer but not the capture), when more than ``max_pending`` bytes wait
  behind it, or at end of input. Bytes the snap length cut off a segment are
  a gap too. Delivery then goes on after the hole.
- Pending data is bounded by ``max_pending``; remembered history, used only
  to check retransmissions, is the last :data:`HISTORY` delivered segments
  (a ring, so remembering costs two stores a segment on the hot path).
- *Nothing after the FIN.* A receiver takes no data beyond the FIN's sequence
  number. `RFC 9293 section 3.10.7.4
  <https://www.rfc-editor.org/rfc/rfc9293#section-3.10.7.4>`_, on segment text
  in CLOSE-WAIT, CLOSING, LAST-ACK and TIME-WAIT: "This should not occur since
  a FIN has been received from the remote side. Ignore the segment text."
  Once the FIN's offset is known, bytes at or beyond it are never delivered:
  a segment straddling it is cut there, and what lies beyond goes to
  ``sink.data_after_fin`` when the stream reaches the FIN (where it would
  have been delivered), one call a segment. Bytes held out of order beyond
  the FIN when it arrives meet the same fate; a retransmitted copy of bytes
  before the FIN is an ordinary duplicate, and so is a retransmitted FIN.

The in-order bytes go to ``on_data(payload, ts, packet)``, a plain callable
(the driver points it straight at the frame parser once the handshake is
done, saving a call a segment); everything else goes to the sink's methods.
The stream offset of the bytes being delivered is :attr:`offset` during the
call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from wspcap.decode.packet import TCP_FIN, TCP_RST, TCP_SYN

__all__ = ["SEQ_MOD", "StreamReassembler", "StreamSink"]

SEQ_MOD = 1 << 32
SEQ_MASK = SEQ_MOD - 1
SEQ_HALF = 1 << 31
#: Default bound on out-of-order bytes kept waiting for a hole to fill.
MAX_PENDING = 8 << 20
#: Delivered segments remembered to check retransmissions (a power of two).
HISTORY = 32


class StreamSink(Protocol):
    """Receives one direction's stream, in order."""

    def data(self, payload: bytes, ts: int, packet: int) -> None:
        """The next in-order bytes of the stream; they came in ``packet``."""

    def gap(self, offset: int, size: int, ts: int, packet: int) -> None:
        """``size`` bytes at ``offset`` are missing from the capture."""

    def conflict(self, offset: int, size: int, ts: int, packet: int) -> None:
        """A copy of ``size`` bytes at ``offset`` differs from the first copy."""

    def data_after_fin(self, offset: int, size: int, ts: int, packet: int) -> None:
        """``size`` bytes at ``offset`` lie at or beyond the FIN: not delivered.

        ``packet`` is the segment that carried them; called once a segment, when
        the stream has reached the FIN.
        """

    def fin(self, offset: int, ts: int, packet: int) -> None:
        """The sender closed its side after ``offset`` bytes."""

    def rst(self, offset: int, ts: int, packet: int) -> None:
        """The sender reset the connection."""


class StreamReassembler:
    """Reassembles one direction of one TCP connection.

    Args:
        sink: where the ordered stream goes.
        max_pending: out-of-order bytes kept before the oldest hole is
            declared a gap.
        history: delivered bytes remembered to check retransmissions.

    Attributes:
        syn_seen: the SYN of this direction was captured.
        midstream: the stream started without a captured SYN.
        offset: bytes of the stream delivered or declared missing so far.
        gaps: number of gaps declared; gap_bytes: their total size.
        overlaps: retransmitted or overlapping segments seen.
        fin_offset: the stream offset of the FIN (the first FIN seen), once known.
        after_fin: segments with bytes at or beyond the FIN (dropped);
            after_fin_bytes: their bytes beyond it.
    """

    def __init__(self, sink: StreamSink, max_pending: int = MAX_PENDING) -> None:
        self.sink = sink
        self.on_data: Callable[[bytes, int, int], None] = sink.data
        self.max_pending = max_pending
        self.next_seq: int | None = None
        self.offset = 0
        self.syn_seen = False
        self.midstream = False
        self.fin_offset: int | None = None
        self.fin_done = False
        self.rst_seen = False
        self.gaps = 0
        self.gap_bytes = 0
        self.overlaps = 0
        self.after_fin = 0
        self.after_fin_bytes = 0
        self.delivered = 0  # captured bytes delivered (offset less gaps)
        self._pending: dict[int, tuple[bytes, int, int, int]] = {}
        self._pending_bytes = 0
        self._history: list[tuple[int, bytes]] = [(0, b"")] * HISTORY
        self._hpos = 0
        self._peer_ack: int | None = None  # highest offset the peer acknowledged

    # -- input -----------------------------------------------------------------

    def deliver_to(self, on_data: Callable[[bytes, int, int], None]) -> None:
        """From now on, the in-order bytes go to ``on_data(payload, ts, packet)``
        rather than to the sink's ``data`` (a layer above taking them directly)."""
        self.on_data = on_data

    def receive_segment(self, seq: int, flags: int, payload: bytes, missing: int,
                        ts: int, packet: int) -> None:
        """Take one captured segment of this direction.

        Args:
            seq: the TCP sequence number.
            flags: the TCP flags byte.
            payload: the captured payload.
            missing: payload bytes the snap length cut off after ``payload``.
            ts: capture timestamp (ns); packet: the packet number.
        """
        if (seq == self.next_seq and payload and not (flags & 0x07 or missing or self._pending)
                and self.fin_offset is None):
            # The hot path, inline: the next bytes, in order, nothing waiting.
            self.on_data(payload, ts, packet)
            n = len(payload)
            hpos = self._hpos
            self._history[hpos] = (self.offset, payload)
            self._hpos = (hpos + 1) & (HISTORY - 1)
            self.offset += n
            self.delivered += n
            self.next_seq = (seq + n) & SEQ_MASK
            return
        if flags & TCP_SYN:
            seq = (seq + 1) & SEQ_MASK
            if self.next_seq is None or not self.syn_seen:
                if self.next_seq is None:
                    self.next_seq = seq
                self.syn_seen = True
        elif self.next_seq is None:
            self.next_seq = seq
            self.midstream = True
        size = len(payload) + missing
        if size:
            rel = (seq - self.next_seq) & SEQ_MASK
            if rel == 0:
                self._deliver(payload, missing, ts, packet)
            elif rel < SEQ_HALF:
                self._hold(self.offset + rel, payload, missing, ts, packet)
            else:
                self._behind(SEQ_MOD - rel, payload, missing, ts, packet)
        if flags & (TCP_FIN | TCP_RST):
            end = (seq + size - self.next_seq) & SEQ_MASK
            if flags & TCP_RST:
                self.rst_seen = True
                self.sink.rst(self.offset, ts, packet)
            elif self.fin_offset is None and end < SEQ_HALF:
                self.fin_offset = self.offset + end
                self._maybe_fin(ts, packet)

    def receive_ack(self, ack: int, ts: int, packet: int) -> None:
        """Take an acknowledgement sent by the *other* direction.

        An ACK beyond a hole proves the peer got bytes the capture missed, so
        the hole becomes a gap now rather than at end of input.
        """
        if self.next_seq is None:
            return
        rel = (ack - self.next_seq) & SEQ_MASK
        if 0 < rel < SEQ_HALF:
            target = self.offset + rel
            if self._peer_ack is None or target > self._peer_ack:
                self._peer_ack = target
            if self._pending:
                self._flush_gaps(target, ts, packet)

    def in_order(self, seqs: np.ndarray, sizes: np.ndarray) -> int:
        """How many of the data segments ``seqs``/``sizes`` (in capture order)
        start each where the one before ended, from :attr:`next_seq` on: those
        :meth:`took_in_order` may take for :meth:`receive_segment`."""
        want = (self.next_seq + np.cumsum(sizes) - sizes) & SEQ_MASK
        off = np.flatnonzero(seqs != want)
        return int(off[0]) if len(off) else len(seqs)

    def took_in_order(self, size: int, last: list[bytes]) -> None:
        """``size`` bytes were delivered in order, past this object.

        For a caller that checked what the hot path of :meth:`receive_segment`
        checks for each segment (in order, nothing waiting, no flag, no FIN
        yet) and handed the data on itself; ``last`` is the payloads of the
        last segments (up to HISTORY of them), in order, for the
        retransmission checks.
        """
        hpos = self._hpos
        offset = self.offset + size - sum(map(len, last))
        history = self._history
        for payload in last:
            history[hpos] = (offset, payload)
            hpos = (hpos + 1) & (HISTORY - 1)
            offset += len(payload)
        self._hpos = hpos
        self.offset += size
        self.delivered += size
        self.next_seq = (self.next_seq + size) & SEQ_MASK  # type: ignore[operator]

    @property
    def idle(self) -> bool:
        """No byte is held out of order (after the FIN, nothing more can be delivered)."""
        return not self._pending

    def receive_eof(self, ts: int, packet: int) -> None:
        """End of input: declare every remaining hole a gap and deliver the rest."""
        self._flush_gaps(None, ts, packet)
        if self._peer_ack is not None and self.fin_offset is None:
            lost = self._peer_ack - self.offset
            if lost > 0:  # acknowledged by the peer, never captured
                self._gap(lost, ts, packet)

    # -- internals -------------------------------------------------------------

    def _deliver(self, payload: bytes, missing: int, ts: int, packet: int) -> None:
        fin = self.fin_offset
        if fin is None:
            self._deliver_one(payload, missing, ts, packet)
        else:
            start = self.offset
            payload, missing, beyond = self._cut_at_fin(fin, start, payload, missing)
            self._deliver_one(payload, missing, ts, packet)
            if beyond:  # reported once the bytes before the FIN are delivered
                self._after_fin(max(start, fin), beyond, ts, packet)
        if self._pending:
            self._drain((ts, packet))
        if self.fin_offset is not None:
            self._maybe_fin(ts, packet)

    def _gap(self, size: int, ts: int, packet: int) -> None:
        self.gaps += 1
        self.gap_bytes += size
        self.sink.gap(self.offset, size, ts, packet)
        self.offset += size
        self.next_seq = (self.next_seq + size) & SEQ_MASK  # type: ignore[operator]

    def _hold(self, offset: int, payload: bytes, missing: int, ts: int, packet: int) -> None:
        if self.fin_done:  # beyond the FIN, which the stream has reached: never delivered
            self._after_fin(offset, len(payload) + missing, ts, packet)
            return
        old = self._pending.get(offset)
        if old is not None:
            self.overlaps += 1
            n = min(len(old[0]), len(payload))
            if old[0][:n] != payload[:n]:
                self.sink.conflict(offset, n, ts, packet)
            if len(payload) + missing <= len(old[0]) + old[1]:
                return
            # The longer copy extends the first one, which wins where they overlap.
            size = len(payload) + missing
            payload = old[0] + payload[len(old[0]):]
            missing = size - len(payload)
            self._pending_bytes -= len(old[0])
        self._pending[offset] = (payload, missing, ts, packet)
        self._pending_bytes += len(payload)
        if self._pending_bytes > self.max_pending:
            self._flush_gaps(min(self._pending) + 1, ts, packet)

    def _behind(self, back: int, payload: bytes, missing: int, ts: int, packet: int) -> None:
        """A segment that starts ``back`` bytes before the next expected byte."""
        self.overlaps += 1
        start = self.offset - back
        old = payload[:back]
        self._check_history(start, old, ts, packet)
        if len(payload) + missing > back:
            self._deliver(payload[back:], missing if len(payload) >= back
                          else missing - (back - len(payload)), ts, packet)

    def _check_history(self, start: int, data: bytes, ts: int, packet: int) -> None:
        """Compare a retransmitted copy with the bytes first delivered."""
        end = start + len(data)
        for off, seen in self._history:
            if off >= end or off + len(seen) <= start:
                continue
            lo = max(off, start)
            hi = min(off + len(seen), end)
            if seen[lo - off:hi - off] != data[lo - start:hi - start]:
                self.sink.conflict(lo, hi - lo, ts, packet)
                return

    def _drain(self, filler: tuple[int, int] | None = None) -> None:
        """Deliver pending segments that the stream has now reached.

        Args:
            filler: ``(ts, packet)`` of the segment that filled the hole, if one
                did: the bytes became readable then, so they are delivered with
                its time and number (as Wireshark attributes them, and keeping
                time monotonic); after a gap is declared, each segment keeps
                its own.
        """
        pending = self._pending
        fin = self.fin_offset
        while pending:
            first = min(pending)
            if first > self.offset:
                return
            payload, missing, ts, packet = pending.pop(first)
            self._pending_bytes -= len(payload)
            beyond = 0
            if fin is not None:
                payload, missing, beyond = self._cut_at_fin(fin, first, payload, missing)
            own = ts, packet  # bytes beyond the FIN are reported with their own packet
            if filler is not None:
                ts, packet = filler
            back = self.offset - first
            if back == 0:
                self._deliver_one(payload, missing, ts, packet)
            else:
                self.overlaps += 1
                self._check_history(first, payload[:back], ts, packet)
                if len(payload) + missing > back:
                    rest = missing if len(payload) >= back else missing - (back - len(payload))
                    self._deliver_one(payload[back:], rest, ts, packet)
            if beyond and fin is not None:
                self._after_fin(max(first, fin), beyond, *own)

    def _deliver_one(self, payload: bytes, missing: int, ts: int, packet: int) -> None:
        if payload:
            self.on_data(payload, ts, packet)
            n = len(payload)
            hpos = self._hpos
            self._history[hpos] = (self.offset, payload)
            self._hpos = (hpos + 1) & (HISTORY - 1)
            self.offset += n
            self.delivered += n
            self.next_seq = (self.next_seq + n) & SEQ_MASK  # type: ignore[operator]
        if missing:
            self._gap(missing, ts, packet)

    def _flush_gaps(self, upto: int | None, ts: int, packet: int) -> None:
        """Declare holes before pending data (up to offset ``upto``) as gaps."""
        fin = self.fin_offset
        while self._pending:
            first = min(self._pending)
            if upto is not None and first >= upto and first > self.offset:
                break
            if fin is not None and first >= fin:
                # All that waits lies beyond the FIN: the hole is the rest before it.
                if fin > self.offset:
                    self._gap(fin - self.offset, ts, packet)
                break
            if first > self.offset:
                self._gap(first - self.offset, ts, packet)
            self._drain()
        if fin is not None:
            self._maybe_fin(ts, packet)

    def _maybe_fin(self, ts: int, packet: int) -> None:
        if not self.fin_done and self.fin_offset is not None and self.offset >= self.fin_offset:
            self.fin_done = True
            self.sink.fin(self.offset, ts, packet)
            # Whatever still waits lies beyond the FIN: it will never be delivered.
            pending = self._pending
            for first in sorted(pending):
                payload, missing, pts, ppacket = pending.pop(first)
                self._after_fin(first, len(payload) + missing, pts, ppacket)
            self._pending_bytes = 0

    @staticmethod
    def _cut_at_fin(fin: int, start: int, payload: bytes, missing: int
                    ) -> tuple[bytes, int, int]:
        """Cut a segment that starts at stream offset ``start`` at the FIN (``fin``).

        Returns the part before the FIN (``payload``, ``missing``) and the number
        of bytes at or beyond it (dropped, for the caller to report).
        """
        keep = max(fin - start, 0)
        size = len(payload) + missing
        if size <= keep:
            return payload, missing, 0
        if keep <= len(payload):
            return payload[:keep], 0, size - keep
        return payload, keep - len(payload), size - keep

    def _after_fin(self, offset: int, size: int, ts: int, packet: int) -> None:
        self.after_fin += 1
        self.after_fin_bytes += size
        self.sink.data_after_fin(offset, size, ts, packet)
