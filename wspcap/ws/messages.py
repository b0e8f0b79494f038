"""Messages from frames: fragments joined, control frames decoded, payloads inflated.

Sans-I/O: performs no I/O. One :class:`MessageAssembler` per direction takes
that direction's frames in order (:meth:`MessageAssembler.receive_frame`) and
gives complete messages to its sink; RFC 6455 and RFC 7692 rules that need the
assembler's state are checked here and reported by anomaly code, and the
assembler keeps going, as an analyzer must: a violation is recorded, never
fatal.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np

from wspcap.ws.deflate import Inflater
from wspcap.ws.frames import Frame, opcode_name

__all__ = ["Message", "MessageAssembler", "MessageSink", "close_code_valid", "plain_frames",
           "plain_messages"]

_DATA_TYPES = {1: "text", 2: "binary"}
_new = tuple.__new__
_CONTROL_TYPES = {8: "close", 9: "ping", 10: "pong"}


class Message(NamedTuple):
    """One message, control frames included (each is a one-frame message)."""

    type: str  #: text, binary, close, ping, pong or unknown-0xN
    opcode: int
    frames: int  #: how many frames carried it
    length: int  #: len(payload)
    wire_length: int  #: payload bytes on the wire (before inflation)
    payload: bytes  #: unmasked, reassembled, inflated
    text: str | None  #: the text, for a text message that is valid UTF-8
    compressed: bool  #: RSV1 set under permessage-deflate
    #: None: not compressed; False: not inflated (inflation failed, or bytes of
    #: the message are missing: ``payload`` holds the compressed bytes)
    inflated: bool | None
    ts_start: int
    ts_end: int
    packet_start: int
    packet_end: int
    first_frame: int  #: frame_index of its first frame
    last_frame: int
    close_code: int | None
    close_reason: str | None
    #: every fragment and every byte was captured (False also for a
    #: continuation frame whose message's start was not captured)
    complete: bool


class MessageSink(Protocol):
    """Receives what a :class:`MessageAssembler` finds."""

    def message(self, message: Message) -> None:
        """A message is complete (or was cut short)."""

    def anomaly_at_frame(self, code: str, detail: str, frame_index: int | None, ts: int,
                         packet: int) -> None:
        """A message-level anomaly, tied to a frame when there is one."""


def close_code_valid(code: int) -> bool:
    """RFC 6455 section 7.4: may this code be sent in a close frame?

    1000-1003 and 1007-1014 are defined (1012-1014 by the IANA registry),
    3000-4999 are for libraries and applications. 1004, 1005, 1006 and 1015
    must never be sent; the rest of 1000-2999 is unassigned; below 1000 and
    from 5000 up are not in use.
    """
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


class MessageAssembler:
    """Assembles one direction's messages.

    Args:
        sink: receives messages and anomalies.
        client: this is the client-to-server direction (its frames must be
            masked, the other direction's must not).
        inflater: the direction's permessage-deflate state, or None when the
            extension was not negotiated.
        rsv_allowed: RSV bits (as in the first byte) that negotiated
            extensions define.
    """

    def __init__(self, sink: MessageSink, client: bool, inflater: Inflater | None = None,
                 rsv_allowed: int = 0) -> None:
        self.sink = sink
        self.client = client
        self.inflater = inflater
        self.rsv_allowed = rsv_allowed
        self.messages = 0
        self._parts: list[Frame] = []
        self._first_index = 0
        self._last_index = 0
        # While a fragmented message is open: the stream offset where the last
        # frame ended, and the (offset, size) ranges no frame covered since the
        # message began (bytes lost in a gap, or passed over to find frames again).
        self._end = 0
        self._lost: list[tuple[int, int]] = []

    def took_plain(self, count: int) -> None:
        """``count`` plain frames, each a message of its own
        (:func:`plain_frames`), were made into messages by the caller while
        this assembler was idle (see :mod:`wspcap.ws.runs`)."""
        self.messages += count

    def receive_frame(self, frame: Frame, index: int) -> None:
        """Take the direction's next frame; ``index`` is its frame_index.

        Frames come in stream order. Stream bytes between the frames of an open
        fragmented message that no frame holds (``frame.offset`` beyond where the
        frame before ended: lost in a gap) make that message incomplete.
        """
        (_offset, ts, packet, ts_start, fin, rsv1, rsv2, rsv3, opcode, masked, _key, _enc,
         _plen, _hlen, payload, missing) = frame
        if 0 < opcode < 3 and fin and not self._parts and not (rsv1 or rsv2 or rsv3 or missing):
            # The common case, inline: one plain, complete, final data frame.
            if masked is not self.client:
                self._check(frame, index)
            text = None
            if opcode == 1:
                try:
                    text = payload.decode()
                except UnicodeDecodeError as exc:
                    self._bad_utf8(exc, index, frame)
            self.messages += 1
            n = len(payload)
            self.sink.message(_new(Message, (
                "text" if opcode == 1 else "binary", opcode, 1, n, n, payload, text, False,
                None, ts_start, ts, packet, packet, index, index, None, None, True)))
            return
        parts = self._parts
        if parts:
            if frame.offset > self._end:  # bytes between the frames are not in any frame
                self._lost.append((self._end, frame.offset - self._end))
            self._end = frame.offset + frame.header_len + frame.payload_len
        if (masked is not self.client or rsv1 or rsv2 or rsv3 or opcode > 2 or missing):
            self._check(frame, index)
        if opcode >= 8:
            if opcode in _CONTROL_TYPES:
                self._control(frame, index)
            else:
                self._single(frame, index, opcode_name(opcode))
            return
        if opcode == 0:
            if not parts:
                self.sink.anomaly_at_frame("ws_orphan_continuation",
                                  "continuation frame with no message to continue",
                                  index, frame.ts, frame.packet)
                # Its message's start was not captured: never a complete message.
                self._single(frame, index, "continuation", complete=False)
                return
            parts.append(frame)
            self._last_index = index
        elif opcode in _DATA_TYPES:
            if parts:
                lost = self._lost
                if lost and lost[-1][0] + lost[-1][1] == frame.offset:
                    # Bytes were lost right before this frame: the open message's
                    # final fragment may be among them, so no interleaving is known.
                    self._finish(complete=False, why=f"{_described(parts)} was still open "
                                 "when the next message began")
                else:
                    self.sink.anomaly_at_frame("ws_message_interleaved",
                                      f"new {opcode_name(opcode)} frame while a fragmented "
                                      f"{opcode_name(parts[0].opcode)} message of "
                                      f"{len(parts)} frames is open", index, frame.ts,
                                      frame.packet)
                    self._finish(complete=False)
            self._parts = parts = [frame]
            self._first_index = self._last_index = index
            self._end = frame.offset + frame.header_len + frame.payload_len
        else:  # reserved non-control opcode 3-7
            self._single(frame, index, opcode_name(opcode))
            return
        if frame.fin:
            self._finish(complete=True)

    @property
    def idle(self) -> bool:
        """Between messages: :meth:`receive_eof` would emit nothing."""
        return not self._parts

    def receive_eof(self) -> None:
        """End of the stream: an open fragmented message is emitted incomplete."""
        if self._parts:
            self._finish(complete=False, why=f"stream ended inside a fragmented message "
                         f"after {len(self._parts)} frames")

    # -- internals -------------------------------------------------------------

    def _check(self, frame: Frame, index: int) -> None:
        """Frame-level rules, only reached when a frame is unusual."""
        anomaly = self.sink.anomaly_at_frame
        ts, packet = frame.ts, frame.packet
        opcode = frame.opcode
        if frame.masked is not self.client:
            if self.client:
                anomaly("ws_client_unmasked", "client frame sent without a mask",
                        index, ts, packet)
            else:
                anomaly("ws_server_masked", f"server frame masked with key "
                        f"0x{frame.mask_key:08x}", index, ts, packet)
        rsv = (frame.rsv1 << 6) | (frame.rsv2 << 5) | (frame.rsv3 << 4)
        if rsv:
            if rsv & ~self.rsv_allowed:
                anomaly("ws_rsv_unnegotiated", f"RSV bits 0x{rsv >> 4:x} set but no "
                        "negotiated extension defines them", index, ts, packet)
            elif frame.rsv1 and opcode >= 8:
                anomaly("pmd_rsv1_on_control", f"RSV1 set on a {opcode_name(opcode)} frame",
                        index, ts, packet)
            elif frame.rsv1 and opcode == 0:
                anomaly("pmd_rsv1_on_continuation", "RSV1 set on a continuation frame",
                        index, ts, packet)
        if opcode > 2 and opcode not in _CONTROL_TYPES:
            anomaly("ws_reserved_opcode", f"reserved opcode 0x{opcode:x}", index, ts, packet)
        if opcode >= 8:
            if frame.payload_len > 125:
                anomaly("ws_control_too_long", f"{frame.payload_len} > 125 bytes in a "
                        f"{opcode_name(opcode)} frame", index, ts, packet)
            if not frame.fin:
                anomaly("ws_control_fragmented", f"{opcode_name(opcode)} frame without FIN",
                        index, ts, packet)

    def _bad_utf8(self, exc: UnicodeDecodeError, index: int, frame: Frame) -> None:
        self.sink.anomaly_at_frame("ws_invalid_utf8", f"text message is not valid UTF-8 at byte "
                          f"{exc.start} ({exc.reason})", index, frame.ts, frame.packet)

    def _single(self, frame: Frame, index: int, type_: str, complete: bool = True) -> None:
        self.messages += 1
        self.sink.message(Message(
            type_, frame.opcode, 1, len(frame.payload), len(frame.payload), frame.payload,
            None, False, None, frame.ts_start, frame.ts, frame.packet, frame.packet, index,
            index, None, None, complete and not frame.missing))

    def _control(self, frame: Frame, index: int) -> None:
        payload = frame.payload
        code = reason = None
        if frame.opcode == 8:
            code, reason = self._close(frame, index)
        self.messages += 1
        self.sink.message(Message(
            _CONTROL_TYPES[frame.opcode], frame.opcode, 1, len(payload), len(payload), payload,
            None, False, None, frame.ts_start, frame.ts, frame.packet, frame.packet, index,
            index, code, reason, not frame.missing))

    def _close(self, frame: Frame, index: int) -> tuple[int | None, str | None]:
        """RFC 6455 section 5.5.1: an optional 2-byte code, then a UTF-8 reason."""
        payload = frame.payload
        if not payload:
            return None, None
        if len(payload) == 1:
            self.sink.anomaly_at_frame("ws_close_1_byte", "close frame with a 1-byte payload",
                              index, frame.ts, frame.packet)
            return None, None
        code = (payload[0] << 8) | payload[1]
        if not close_code_valid(code):
            self.sink.anomaly_at_frame("ws_close_code_invalid", f"close code {code} may not be sent",
                              index, frame.ts, frame.packet)
        try:
            reason = payload[2:].decode()
        except UnicodeDecodeError:
            self.sink.anomaly_at_frame("ws_close_reason_invalid_utf8",
                              "close reason is not valid UTF-8", index, frame.ts, frame.packet)
            reason = payload[2:].decode("utf-8", "replace")
        return code, reason

    def _finish(self, complete: bool, why: str = "") -> None:
        """Emit the open message; ``complete`` is False when its final fragment
        was not seen, ``why`` then says why (for ``ws_message_incomplete``)."""
        parts = self._parts
        self._parts = []
        lost = self._lost
        self._lost = []
        first = parts[0]
        last = parts[-1]
        index = self._first_index
        last_index = self._last_index
        raw = first.payload if len(parts) == 1 else b"".join(f.payload for f in parts)
        cut = [f for f in parts if f.missing]
        complete = complete and not cut and not lost
        compressed = first.rsv1 and self.inflater is not None
        if (why or cut or lost) and not (first.fin and len(parts) == 1):
            # A fragmented message (a one-frame message's own frame says what it lacks).
            self.sink.anomaly_at_frame("ws_message_incomplete",
                              _incomplete(parts, why, lost, cut, compressed),
                              index, last.ts, last.packet)
        inflated = None
        payload = raw
        if compressed:
            assert self.inflater is not None
            if complete:
                out, problem, detail = self.inflater.inflate(raw)
                if problem:
                    self.sink.anomaly_at_frame(problem, detail, index, last.ts, last.packet)
                inflated = out is not None
                payload = out if out is not None else raw
            else:  # only the whole compressed message can be inflated as sent
                self.inflater.lose_context()
                inflated = False
        text = None
        if first.opcode == 1 and (inflated is not False):
            try:
                text = payload.decode()
            except UnicodeDecodeError as exc:
                if complete:
                    self._bad_utf8(exc, index, last)
        self.messages += 1
        self.sink.message(Message(
            _DATA_TYPES[first.opcode], first.opcode, len(parts), len(payload), len(raw),
            payload, text, compressed, inflated, first.ts_start, last.ts, first.packet,
            last.packet, index, last_index, None, None, complete))


def _described(parts: list[Frame]) -> str:
    """``fragmented text message of 4 frames from stream offset 173``."""
    return (f"fragmented {opcode_name(parts[0].opcode)} message of {len(parts)} frames "
            f"from stream offset {parts[0].offset}")


def _incomplete(parts: list[Frame], why: str, lost: list[tuple[int, int]], cut: list[Frame],
                compressed: bool) -> str:
    """The ``ws_message_incomplete`` detail: why, what the message lacks and where."""
    lacks = []
    if lost:
        ranges = ", ".join(f"{start}-{start + size}" for start, size in lost[:3])
        more = f" and {len(lost) - 3} more" if len(lost) > 3 else ""
        lacks.append(f"{sum(size for _, size in lost)} stream bytes no captured frame holds "
                     f"(stream offsets {ranges}{more})")
    if cut:
        where = ", ".join(f"{f.missing} of {f.payload_len} in the frame at stream offset "
                          f"{f.offset}" for f in cut[:3])
        more = f" and {len(cut) - 3} more" if len(cut) > 3 else ""
        lacks.append(f"payload bytes of {len(cut)} of its frames ({where}{more})")
    text = why or _described(parts)
    if lacks:
        text += ("; it lacks " if why else " lacks ") + " and ".join(lacks)
    return text + ("; not inflated" if compressed else "")


#: message type by opcode (as the assembler names them)
_TYPE_NAMES = np.array([opcode_name(op) for op in range(16)], dtype=object)


def plain_frames(fin: np.ndarray, rsv: np.ndarray, opcode: np.ndarray, masked: np.ndarray,
                 from_client: np.ndarray, lengths: np.ndarray, payloads: list[bytes]
                 ) -> tuple[np.ndarray, list[str | None]]:
    """Which frames (as columns) are plain: a message of their own, exactly as
    :meth:`MessageAssembler.receive_frame` would make it from an idle
    assembler, with nothing to report (final, no RSV bit, masked as their
    sender must, data or a ping or pong of at most 125 bytes, text that is
    UTF-8); and the text of each plain text frame.

    The assembler's rule for one frame, over many (``tests/test_blocks.py``
    compares the two paths on every sample).
    """
    plain = fin & ~rsv & (masked == from_client)
    plain &= (opcode == 1) | (opcode == 2) | (((opcode == 9) | (opcode == 10))
                                              & (lengths <= 125))
    texts: list[str | None] = [None] * len(plain)
    for j in np.flatnonzero(plain & (opcode == 1)).tolist():
        try:
            texts[j] = payloads[j].decode()
        except UnicodeDecodeError:
            plain[j] = False  # the assembler reports it
    return plain, texts


def plain_messages(fc: dict[str, np.ndarray], pos: np.ndarray, texts: list[str | None],
                   indices: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The messages of the plain frames at ``pos`` of the frame columns ``fc``
    (``indices``: every frame's frame_index), as message columns."""
    n = len(pos)
    ops = fc["opcode"][pos]
    length = fc["payload_len"][pos]
    text = np.empty(n, dtype=object)
    text[:] = [texts[i] for i in pos.tolist()]
    index = indices[pos]
    nothing = np.full(n, None, dtype=object)
    return ({
        "type": _TYPE_NAMES[ops], "opcode": ops, "frames": np.ones(n, np.int64),
        "length": length, "wire_length": length, "payload": fc["payload"][pos],
        "text": text, "compressed": np.zeros(n, bool), "inflated": nothing,
        "ts_start": fc["ts_start"][pos], "ts_end": fc["ts"][pos],
        "packet_start": fc["packet"][pos], "packet_end": fc["packet"][pos],
        "first_frame": index, "last_frame": index, "close_code": nothing,
        "close_reason": nothing, "complete": np.ones(n, bool),
    }, {})
