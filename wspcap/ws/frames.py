"""RFC 6455 frames, parsed incrementally from one direction's byte stream.

Sans-I/O: performs no I/O. Bytes go in through :meth:`FrameParser.receive_data`
(and :meth:`~FrameParser.receive_gap` / :meth:`~FrameParser.receive_eof`);
every complete frame comes out through the sink's ``frame`` call, and wire
facts that break the RFC's framing rules through its ``anomaly_at_offset`` call.

Design note
-----------
Goals: keep every wire fact (FIN, RSV1-3, the raw opcode, MASK, the key,
which length encoding was used, header length, stream offset), never trust a
declared length, and be cheap for the common case of small frames.

Plan. Bytes of an incomplete frame wait in a buffer. Once a header is read,
the parser knows how many bytes the frame needs and simply appends further
input until they are there (no re-parsing, so a large frame arriving in many
segments costs one copy). A frame is emitted whole, payload unmasked.

Invariants and warnings:
- Nothing is allocated from a declared length. A frame that declares 2**63-1
  bytes holds only the bytes that arrived; at end of input it is emitted as a
  truncated frame (``missing`` > 0). A payload is kept up to ``max_payload``
  bytes; bytes beyond are counted and passed over.
- A gap (bytes the capture lost) inside a payload is zero-filled so the
  frames after it stay aligned, and counted in ``missing``. A gap that hides
  a header loses the frame boundaries: the parser then waits for a chunk
  (segment) that starts with a plausible frame header and resumes there,
  reporting the bytes it passed over (``ws_desync``).
"""

from __future__ import annotations

import enum
import struct
from typing import NamedTuple, Protocol

from wspcap.ws.mask import unmask

__all__ = [
    "FIN",
    "LEN7",
    "MASKED",
    "MAX_PAYLOAD",
    "OPCODE",
    "RSV1",
    "RSV2",
    "RSV3",
    "CloseCode",
    "Frame",
    "FrameParser",
    "FrameSink",
    "Opcode",
    "frame_length",
    "opcode_name",
    "plausible_frames",
    "serialize_frame",
]

# RFC 6455 section 5.2, base framing protocol:
#
#   0                   1                   2                   3
#   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
#  +-+-+-+-+-------+-+-------------+-------------------------------+
#  |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
#  |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
#  |N|V|V|V|       |S|             |   (if payload len==126/127)   |
#  | |1|2|3|       |K|             |                               |
#  +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
#  |     Extended payload length continued, if payload len == 127  |
#  + - - - - - - - - - - - - - - - +-------------------------------+
#  |                               |Masking-key, if MASK set to 1  |
#  +-------------------------------+-------------------------------+
FIN = 0x80  #: first byte: final fragment of a message
RSV1 = 0x40  #: first byte: reserved bit 1 (permessage-deflate: compressed)
RSV2 = 0x20  #: first byte: reserved bit 2
RSV3 = 0x10  #: first byte: reserved bit 3
OPCODE = 0x0F  #: first byte: the opcode
MASKED = 0x80  #: second byte: the payload is masked
LEN7 = 0x7F  #: second byte: 7-bit length, or 126 / 127 for 16 / 64 bits

#: Default bound on the payload bytes kept for one frame.
MAX_PAYLOAD = 256 << 20

_U64 = struct.Struct("!Q")


def frame_length(buf: bytes | bytearray, pos: int, end: int) -> tuple[int, int, int]:
    """The payload length of the frame header at ``buf[pos:end]``: RFC 6455
    section 5.2's rule, decoded here and nowhere else.

    Returns ``(header, length, encoding)``: the header's length before any
    masking key (2, 4 or 10), the payload length, and the form it was sent in
    (7, 16 or 64 bits). ``header`` is 0 when ``buf`` holds too few bytes to
    tell; then ``length`` is how many bytes from ``pos`` it needs.
    """
    if end - pos < 2:
        return 0, 2, 7
    length = buf[pos + 1] & LEN7
    if length < 126:
        return 2, length, 7
    if length == 126:
        if end - pos < 4:
            return 0, 4, 16
        return 4, (buf[pos + 2] << 8) | buf[pos + 3], 16
    if end - pos < 10:
        return 0, 10, 64
    return 10, _U64.unpack_from(buf, pos + 2)[0], 64
_new = tuple.__new__
#: Payloads from this length on are copied out of the parser's buffer once,
#: through a memoryview, rather than sliced (a copy) and then made bytes or
#: unmasked (a second one).
_VIEW_FROM = 4096


class Opcode(enum.IntEnum):
    """Frame opcodes (RFC 6455 section 5.2); 3-7 and 11-15 are reserved."""

    CONT = 0x0  #: continuation of a fragmented message
    TEXT = 0x1  #: first frame of a UTF-8 text message
    BINARY = 0x2  #: first frame of a binary message
    CLOSE = 0x8  #: connection close
    PING = 0x9  #: ping
    PONG = 0xA  #: pong


_OPCODE_NAMES = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}


def opcode_name(opcode: int) -> str:
    """``text``, ``binary``, ... or ``unknown-0x3`` for a reserved opcode."""
    return _OPCODE_NAMES.get(opcode) or f"unknown-0x{opcode:x}"


class CloseCode(enum.IntEnum):
    """Close status codes (RFC 6455 section 7.4.1, IANA registry)."""

    NORMAL_CLOSURE = 1000  #: normal closure
    GOING_AWAY = 1001  #: endpoint going away
    PROTOCOL_ERROR = 1002  #: protocol error
    UNSUPPORTED_DATA = 1003  #: data type not accepted
    RESERVED_1004 = 1004  #: reserved
    NO_STATUS_RCVD = 1005  #: no status (never sent on the wire)
    ABNORMAL_CLOSURE = 1006  #: abnormal closure (never sent on the wire)
    INVALID_DATA = 1007  #: data inconsistent with its type (e.g. bad UTF-8)
    POLICY_VIOLATION = 1008  #: policy violation
    MESSAGE_TOO_BIG = 1009  #: message too big
    MANDATORY_EXTENSION = 1010  #: client needed an extension the server refused
    INTERNAL_ERROR = 1011  #: unexpected condition on the server
    SERVICE_RESTART = 1012  #: service restart
    TRY_AGAIN_LATER = 1013  #: try again later
    BAD_GATEWAY = 1014  #: bad gateway
    TLS_HANDSHAKE = 1015  #: TLS handshake failure (never sent on the wire)


class Frame(NamedTuple):
    """One frame and its wire facts.

    ``payload`` is unmasked and as captured: shorter than ``payload_len`` when
    the frame was truncated or cut at ``max_payload``, zero-filled where a gap
    fell inside it; ``missing`` counts the payload bytes not captured.
    """

    offset: int  #: stream offset of the frame's first byte
    ts: int  #: timestamp (ns) of the packet that completed the frame
    packet: int  #: number of the packet that completed the frame
    ts_start: int  #: timestamp (ns) of the packet that carried its first byte
    fin: bool
    rsv1: bool
    rsv2: bool
    rsv3: bool
    opcode: int
    masked: bool
    mask_key: int | None  #: the masking key as a 32-bit big-endian integer
    length_encoding: int  #: 7, 16 or 64: the length field used
    payload_len: int  #: the declared payload length
    header_len: int
    payload: bytes
    missing: int  #: declared payload bytes not in ``payload``


class FrameSink(Protocol):
    """Receives what a :class:`FrameParser` finds."""

    def frame(self, frame: Frame) -> None:
        """A complete (or truncated) frame."""

    def anomaly_at_offset(self, code: str, detail: str, offset: int, ts: int,
                          packet: int) -> None:
        """A framing anomaly at stream ``offset``."""


#: Zeros written for a hole inside the kept part of a frame over max_payload, at
#: most (or as many as the bytes captured before it): the kept part of a frame
#: with a larger hole ends before it.
HOLE_FILL = 1 << 20


class FrameParser:
    """Parses the frames of one direction of a WebSocket connection.

    Sans-I/O: performs no I/O.

    Args:
        sink: receives frames and framing anomalies.
        offset: stream offset of the first byte that will be fed.
        max_payload: payload bytes kept per frame.

    Attributes:
        frames: frames emitted so far.
        desynced: framing was lost after a gap and not yet recovered.
    """

    def __init__(self, sink: FrameSink, offset: int = 0, max_payload: int = MAX_PAYLOAD) -> None:
        self.sink = sink
        self.max_payload = max_payload
        self.frames = 0
        self.desynced = False
        self._buf: bytearray | bytes = b""
        self._base = offset  # stream offset of _buf[0]
        self._need = 0  # bytes _buf must hold before parsing is worth trying
        self._start_ts = 0
        self._holes: list[tuple[int, int]] = []  # zero-filled (start, size) in _buf
        self._skip = 0  # payload bytes still to pass over (beyond max_payload)
        self._skipped_frame: tuple[bytes, int, int, int] | None = None  # head, key..., kept
        self._skipped_payload = bytearray()
        self._skipped_key: bytes | bytearray = b""
        self._skipped_missing = 0
        self._skipped_holes: list[tuple[int, int]] = []  # zero-filled (start, size) in kept
        self._skipped_owed = 0  # zeros of a gap in the kept part, written when bytes follow
        self._skipped_frozen = False  # the kept part ended at a hole too large to fill
        self._desync_bytes = 0
        self._desync_gap = 0
        self._desync_start = offset

    # -- input -----------------------------------------------------------------

    def receive_data(self, data: bytes, ts: int, packet: int) -> None:
        """Take the next bytes of the stream.

        Args:
            data: the bytes, in stream order.
            ts: timestamp (ns) of the packet they came in.
            packet: that packet's number.
        """
        if self._skip:
            data = self._pass_over(data, ts, packet)
            if not data:
                return
        if self.desynced:
            data = self._resync(data, ts, packet)
            if not data:
                return
        buf = self._buf
        if buf:
            buf += data
            self._buf = buf
            if len(buf) < self._need:
                return
        else:
            buf = data
            self._start_ts = ts
        self._parse(buf, ts, packet)

    def receive_gap(self, size: int, ts: int, packet: int, exact: bool = True) -> None:
        """``size`` bytes of the stream are missing from the capture here.

        ``exact=False`` says the size is only a bound (plaintext lost inside a
        TLS stream): no frame is zero-filled across it; framing resyncs after it.
        """
        if self._skip:
            passed = min(size, self._skip)
            kept = len(self._skipped_payload) + self._skipped_owed
            room = self.max_payload - kept
            if room > 0 and not self._skipped_frozen:
                # The kept part gets zeros here so that bytes after the gap stay in
                # place; they are written only if captured bytes come after them
                # (a gap that runs to the frame's end costs no memory).
                self._skipped_holes.append((kept, min(passed, room)))
                self._skipped_owed += min(passed, room)
            self._skip -= passed
            self._base += passed
            self._skipped_missing += passed
            size -= passed
            if not self._skip:
                self._finish_skipped(ts, packet)
            if not size:
                return
        if self.desynced:
            self._desync_gap += size
            self._base += size
            return
        buf = self._buf
        if buf:
            head = self._header(buf)
            if head is not None:
                hl, length = head[0], head[1]
                room = hl + length - len(buf)
                if exact and 0 < size <= room and size <= self.max_payload:
                    # Inside the payload: zero-fill to keep the frames after it aligned.
                    self._holes.append((self._base + len(buf), size))
                    buf += bytes(size)
                    self._buf = buf
                    if len(self._buf) >= hl + length:
                        self._parse(self._buf, ts, packet)
                    return
                # The gap runs past this frame: emit it truncated, then desync.
                self._emit_truncated(ts, packet, gap=True)
                room = max(room, 0)
                self._base += len(buf) + room  # the end of the truncated frame
                size -= room
                buf = b""
        # A partial header in the buffer is passed over with the gap.
        self._buf = b""
        self._holes = []
        self.desynced = True
        self._desync_bytes = len(buf)  # captured bytes passed over
        self._desync_gap = size  # bytes missing from the capture
        self._desync_start = self._base
        self._base += len(buf) + size

    # -- bulk ------------------------------------------------------------------

    @property
    def bulk_ready(self) -> bool:
        """Nothing is being passed over or resynchronized and no gap is held:
        :meth:`scan` and :meth:`commit_run` may stand in for :meth:`receive_data`."""
        return not (self._skip or self.desynced or self._holes)

    def scan(self, data: bytes) -> tuple[bytes, list[int], list[int], list[int]]:
        """Where the frames are in the held bytes followed by ``data``.

        Emits nothing and changes nothing: for a caller that turns frames into
        records a block at a time (see :mod:`wspcap.ws.runs`) and then tells
        :meth:`commit_run` how far it went.

        Returns:
            ``(stream, starts, header_lens, lengths)``: the held bytes and
            ``data`` as one buffer (offset 0 is the stream offset
            :attr:`base`), and the start, header length and payload length
            of every frame complete in it, in order.
        """
        stream = bytes(self._buf) + data if self._buf else data
        starts: list[int] = []
        hls: list[int] = []
        lengths: list[int] = []
        pos = 0
        end = len(stream)
        while end - pos >= 2:
            hl, length, _enc = frame_length(stream, pos, end)
            if not hl:
                break
            if stream[pos + 1] & MASKED:
                hl += 4
            stop = pos + hl + length
            if stop > end:
                break
            starts.append(pos)
            hls.append(hl)
            lengths.append(length)
            pos = stop
        return stream, starts, hls, lengths

    @property
    def holding(self) -> int:
        """Bytes held of a frame not complete yet (what :meth:`scan` puts first)."""
        return len(self._buf)

    @property
    def base(self) -> int:
        """The stream offset of the first byte held (or of the next byte fed)."""
        return self._base

    @property
    def held_since(self) -> int:
        """Timestamp of the packet that brought the first byte held."""
        return self._start_ts

    def commit_run(self, frames: int, stream: bytes, stop: int, used: int,
                   start_ts: int) -> None:
        """After :meth:`scan` (see :class:`wspcap.ws.runs.FrameRun`): the caller
        made records of ``frames`` frames, those before ``stream[stop]``, and
        fed the parser ``stream[:used]`` (0 when it fed nothing);
        ``start_ts`` is the timestamp of the packet that brought
        ``stream[stop]``."""
        self.frames += frames
        if not used:
            return
        rest = stream[stop:used]
        self._base += stop
        self._start_ts = start_ts
        self._need = 0
        self._buf = b""
        if rest:
            # The held bytes start a frame: _parse works out what they need, and
            # passes over a frame larger than max_payload as receive_data would.
            self._buf = bytearray(rest)
            self._parse(self._buf, start_ts, 0)

    @property
    def idle(self) -> bool:
        """Between frames: :meth:`receive_eof` would report nothing."""
        return not (self._skip or self._buf or (self.desynced and self._desync_bytes))

    def receive_eof(self, ts: int, packet: int) -> None:
        """End of the stream: report an unfinished frame."""
        if self._skip:
            self._finish_skipped(ts, packet, missing_extra=self._skip, eof=True)
            self._skip = 0
        elif self._buf:
            self._emit_truncated(ts, packet, gap=False)
        if self.desynced and self._desync_bytes:
            self.sink.anomaly_at_offset("ws_desync", f"{self._desync_bytes} captured bytes after a "
                              f"gap of {self._desync_gap} could not be framed before the "
                              "end of the stream", self._desync_start, ts, packet)
            self._desync_bytes = 0

    # -- parsing -----------------------------------------------------------------

    def _header(self, buf: bytes | bytearray) -> tuple[int, int, int] | None:
        """(header length, payload length, encoding) if the header is complete."""
        n = len(buf)
        hl, length, enc = frame_length(buf, 0, n)
        if not hl:
            return None
        if buf[1] & MASKED:
            hl += 4
        if n < hl:
            return None
        return hl, length, enc

    def _parse(self, buf: bytes | bytearray, ts: int, packet: int) -> None:
        """Emit every complete frame in ``buf`` and keep the rest."""
        pos = 0
        end = len(buf)
        sink_frame = self.sink.frame
        base = self._base
        start_ts = self._start_ts
        max_payload = self.max_payload
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            hl, length, enc = frame_length(buf, pos, end)
            if not hl:
                self._need = pos + length
                break
            stop = pos + hl + length
            if b1 & MASKED:
                hl += 4
                stop += 4
                if end - pos < hl:
                    self._need = pos + hl
                    break
                key = buf[pos + hl - 4:pos + hl]
                if stop > end:
                    if length > self.max_payload:
                        self._start_skip(buf, pos, hl, length, key, start_ts)
                        return
                    self._need = stop
                    break
                if length < _VIEW_FROM:
                    payload: bytes | bytearray = unmask(buf[pos + hl:stop], key)
                else:
                    with memoryview(buf) as view:
                        payload = unmask(view[pos + hl:stop], key)
                mask_key = int.from_bytes(key, "big")
                masked = True
            else:
                if stop > end:
                    if length > self.max_payload:
                        self._start_skip(buf, pos, hl, length, b"", start_ts)
                        return
                    self._need = stop
                    break
                if length < _VIEW_FROM or type(buf) is bytes:
                    payload = buf[pos + hl:stop]
                else:
                    with memoryview(buf) as view:
                        payload = bytes(view[pos + hl:stop])
                mask_key = None
                masked = False
            missing = 0
            if self._holes:
                payload, missing = self._apply_holes(payload, base + pos + hl, base + stop)
            elif type(payload) is not bytes:
                payload = bytes(payload)
            if length > max_payload:
                # Complete in the buffer, but cut all the same: the records must
                # not depend on how the stream was split into segments.
                payload = payload[:max_payload]
                missing = length - max_payload
            self.frames += 1
            # tuple.__new__ skips NamedTuple's Python-level __new__: half the cost.
            sink_frame(_new(Frame, (base + pos, ts, packet, start_ts,
                                    b0 >= 0x80, b0 & RSV1 != 0, b0 & RSV2 != 0, b0 & RSV3 != 0,
                                    b0 & OPCODE, masked, mask_key, enc, length, hl, payload,
                                    missing)))
            if enc != 7:
                self._check_length(length, enc, base + pos, ts, packet)
            if missing and length > max_payload:
                self.sink.anomaly_at_offset("ws_payload_cut", f"declared {length} bytes; kept the first "
                                  f"{max_payload}, 0 not captured", base + pos, ts, packet)
            start_ts = ts
            pos = stop
        else:
            self._need = pos + 2
        # Keep the unparsed rest for the next call.
        if pos:
            self._base = base + pos
            self._start_ts = start_ts
            self._need -= pos
            self._buf = bytearray(buf[pos:]) if pos < end else b""
        elif type(buf) is bytes:
            self._buf = bytearray(buf)

    def _check_length(self, length: int, enc: int, offset: int, ts: int, packet: int) -> None:
        """RFC 6455 section 5.2: "the minimal number of bytes MUST be used"."""
        if enc == 16 and length < 126:
            self.sink.anomaly_at_offset("ws_nonminimal_length",
                              f"{length} sent in the 16-bit form", offset, ts, packet)
        elif enc == 64:
            if length >> 63:
                self.sink.anomaly_at_offset("ws_length_msb_set",
                                  f"64-bit length 0x{length:016x} has its most significant "
                                  "bit set", offset, ts, packet)
            elif length < 0x10000:
                self.sink.anomaly_at_offset("ws_nonminimal_length",
                                  f"{length} sent in the 64-bit form", offset, ts, packet)

    def _apply_holes(self, payload: bytes | bytearray, start: int, stop: int
                     ) -> tuple[bytes, int]:
        """Zero the gap regions of a payload again after unmasking."""
        out = bytearray(payload)
        missing = 0
        rest = []
        for hstart, hsize in self._holes:
            if hstart >= stop:
                rest.append((hstart, hsize))
                continue
            lo = max(hstart, start) - start
            hi = min(hstart + hsize, stop) - start
            if hi > lo:
                out[lo:hi] = bytes(hi - lo)
                missing += hi - lo
        self._holes = rest
        return bytes(out), missing

    # -- frames larger than max_payload ---------------------------------------------

    def _start_skip(self, buf: bytes | bytearray, pos: int, hl: int, length: int,
                    key: bytes | bytearray, start_ts: int) -> None:
        """Keep ``max_payload`` bytes of an oversized frame and pass over the rest;
        ``start_ts`` is the timestamp of the packet that brought its first byte."""
        have = len(buf) - pos - hl
        kept = bytes(buf[pos + hl:pos + hl + min(have, self.max_payload)])
        self._skipped_frame = (bytes(buf[pos:pos + hl]), pos + self._base, start_ts, 0)
        self._skipped_payload = bytearray(kept)
        self._skipped_owed = 0
        self._skipped_frozen = False
        self._skipped_key = key
        self._skipped_missing = 0
        self._skipped_holes = []
        self._skip = length - have
        self._buf = b""
        self._holes = []
        self._base += pos + hl + have

    def _pass_over(self, data: bytes, ts: int, packet: int) -> bytes:
        take = min(len(data), self._skip)
        if (self._skipped_owed and take
                and len(self._skipped_payload) + self._skipped_owed < self.max_payload):
            if self._skipped_owed <= max(HOLE_FILL, len(self._skipped_payload)):
                # Captured bytes land in the kept part after a gap: write its zeros.
                self._skipped_payload += bytes(self._skipped_owed)
            else:
                # A hole larger than what was captured of the frame: zeros for it
                # would cost memory the capture never held. The kept part ends
                # before the hole; the rest counts as missing.
                self._skipped_holes = [h for h in self._skipped_holes
                                       if h[0] < len(self._skipped_payload)]
                self._skipped_frozen = True
            self._skipped_owed = 0
        room = (0 if self._skipped_frozen
                else self.max_payload - len(self._skipped_payload) - self._skipped_owed)
        if room > 0:
            self._skipped_payload += data[:min(take, room)]
        self._skip -= take
        self._base += take
        if not self._skip:
            self._finish_skipped(ts, packet)
        return data[take:]

    def _finish_skipped(self, ts: int, packet: int, missing_extra: int = 0,
                        eof: bool = False) -> None:
        head, offset, start_ts, _ = self._skipped_frame  # type: ignore[misc]
        hl, length, enc = self._header(head)  # type: ignore[misc]
        b0, b1 = head[0], head[1]
        payload = bytes(self._skipped_payload)
        key = self._skipped_key
        if key:
            payload = unmask(payload, key)
        hole_bytes = 0
        self._skipped_owed = 0  # zeros of a gap at the end: not written
        holes = [(s, n) for s, n in self._skipped_holes if s < len(payload)]
        self._skipped_holes = []
        if holes:  # zero the gap regions again after unmasking
            out = bytearray(payload)
            for hstart, hsize in holes:
                hsize = min(hsize, len(out) - hstart)
                out[hstart:hstart + hsize] = bytes(hsize)
                hole_bytes += hsize
            payload = bytes(out)
        missing = length - len(payload) + hole_bytes
        lost = missing_extra + self._skipped_missing  # never captured: gaps, end of stream
        self.frames += 1
        self.sink.frame(Frame(offset, ts, packet, start_ts, b0 >= 0x80, bool(b0 & RSV1),
                              bool(b0 & RSV2), bool(b0 & RSV3), b0 & OPCODE, bool(b1 & MASKED),
                              int.from_bytes(key, "big") if key else None, enc, length, hl,
                              payload, missing))
        if enc != 7:
            self._check_length(length, enc, offset, ts, packet)
        if missing > lost:  # bytes beyond max_payload were captured and passed over
            self.sink.anomaly_at_offset("ws_payload_cut", f"declared {length} bytes; kept the first "
                              f"{self.max_payload}, {lost} not captured", offset, ts, packet)
        if eof:
            self.sink.anomaly_at_offset("ws_truncated_frame", f"declared {length} bytes, "
                              f"{length - lost} captured before the end of the stream",
                              offset, ts, packet)
        self._skipped_frame = None
        self._skipped_payload = bytearray()
        self._start_ts = ts

    # -- truncation and resynchronisation ---------------------------------------------

    def _emit_truncated(self, ts: int, packet: int, gap: bool) -> None:
        buf = self._buf
        head = self._header(buf)
        offset = self._base
        why = "a gap in the capture" if gap else "the end of the stream"
        if head is None:
            self.sink.anomaly_at_offset("ws_truncated_frame",
                              f"{len(buf)} bytes of a frame header before {why}",
                              offset, ts, packet)
        else:
            hl, length, enc = head
            b0, b1 = buf[0], buf[1]
            raw = bytes(buf[hl:])
            key = bytes(buf[hl - 4:hl]) if b1 & MASKED else b""
            payload = unmask(raw, key) if key else raw
            hole_bytes = 0
            if self._holes:
                payload, hole_bytes = self._apply_holes(payload, offset + hl,
                                                        offset + hl + len(raw))
            self.frames += 1
            self.sink.frame(Frame(offset, ts, packet, self._start_ts, b0 >= 0x80,
                                  bool(b0 & RSV1), bool(b0 & RSV2), bool(b0 & RSV3),
                                  b0 & OPCODE, bool(b1 & MASKED),
                                  int.from_bytes(key, "big") if key else None, enc, length,
                                  hl, payload, length - len(raw) + hole_bytes))
            if enc != 7:
                self._check_length(length, enc, offset, ts, packet)
            self.sink.anomaly_at_offset("ws_truncated_frame",
                              f"declared {length} bytes, {len(raw)} captured before {why}",
                              offset, ts, packet)
        self._buf = b""
        self._holes = []
        self._need = 0

    def _resync(self, data: bytes, ts: int, packet: int) -> bytes:
        """Find frame boundaries again after a gap; return the data to parse."""
        if plausible_frames(data):
            # A gap that ends on a frame boundary loses nothing more than itself
            # (tcp_gap says so); only captured bytes passed over are a desync.
            if self._desync_bytes:
                self.sink.anomaly_at_offset("ws_desync", f"{self._desync_bytes} captured bytes after a "
                                  f"gap of {self._desync_gap} passed over until a frame "
                                  "boundary was found", self._desync_start, ts, packet)
            self.desynced = False
            self._desync_bytes = 0
            return data
        self._desync_bytes += len(data)
        self._base += len(data)
        return b""


def plausible_frames(data: bytes, limit: int = 8) -> int:
    """How many well-formed frames ``data`` starts with (0: not frames).

    Used to find frame boundaries after a gap or in a connection captured
    midstream: each frame must have a known opcode, no RSV2/RSV3, a minimal
    length that lands exactly on the end of ``data`` or on another plausible
    header; control frames must be final and short. A frame that runs past the
    end of ``data`` counts only as the first one.
    """
    pos = 0
    n = len(data)
    count = 0
    while pos < n and count < limit:
        if n - pos < 2:
            return 0
        b0, b1 = data[pos], data[pos + 1]
        opcode = b0 & OPCODE
        if b0 & (RSV2 | RSV3) or opcode not in _OPCODE_NAMES:
            return 0
        hl, length, enc = frame_length(data, pos, n)
        if not hl or (enc == 16 and length < 126) or (
                enc == 64 and (length < 0x10000 or length >> 62)):
            return 0
        if opcode >= 8 and (length > 125 or not b0 & FIN):
            return 0
        if b1 & MASKED:
            hl += 4
        pos += hl + length
        count += 1
        if pos > n:
            return 1 if count == 1 and length <= 1 << 24 else 0
    return count


def serialize_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0,
                    mask_key: bytes | None = None, length_encoding: int | None = None) -> bytes:
    """Build a frame's wire bytes (for tests and crafted captures).

    Args:
        opcode: the 4-bit opcode.
        payload: the unmasked payload.
        fin: the FIN bit.
        rsv: the three RSV bits as a number from 0 to 7 (4 is RSV1).
        mask_key: a 4-byte key to mask with, or None for an unmasked frame.
        length_encoding: force 7, 16 or 64 (default: the minimal one).
    """
    n = len(payload)
    enc = length_encoding or (7 if n < 126 else 16 if n < 0x10000 else 64)
    head = bytearray([(FIN if fin else 0) | (rsv << 4) | (opcode & OPCODE)])
    mbit = MASKED if mask_key is not None else 0
    if enc == 7:
        head.append(mbit | n)
    elif enc == 16:
        head.append(mbit | 126)
        head += n.to_bytes(2, "big")
    else:
        head.append(mbit | 127)
        head += n.to_bytes(8, "big")
    if mask_key is not None:
        head += mask_key
        payload = unmask(payload, mask_key)
    return bytes(head) + payload
