"""One direction of a TCP connection (:class:`Direction`): its layers, from the
reassembler up to the message assembler, and what it counted.

Design note
-----------
A direction owns its layers: a :class:`~wspcap.tcp.StreamReassembler`, the
TLS side (the TCP segments its plaintext came from, and the offset of the
next plaintext byte), and, once frames are parsed, a
:class:`~wspcap.ws.FrameParser` and a :class:`~wspcap.ws.MessageAssembler`
(with its :class:`~wspcap.ws.deflate.Inflater`, if any). It is their sink:
the reassembler calls it as a :class:`~wspcap.tcp.reassembly.StreamSink`,
the parser and the assembler as their frame and message sinks.

Its in-order bytes go to its *handler*, a function ``(direction, data,
offset, ts, packet)``: while the connection opens, one of the upgrade
stage's (:class:`~wspcap.engine.upgrade.Upgrade`), which tells what the bytes
are; then :func:`_frames` (the frame parser), :func:`_hold` (bytes waiting
for the other side) or :func:`_ignore`. Nothing outside writes a
direction's fields: the stage and the connection drive it through its
methods (:meth:`Direction.give_to`, :meth:`~Direction.hold`,
:meth:`~Direction.take_held`, :meth:`~Direction.start_frames`,
:meth:`~Direction.ignore`, ...).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Protocol

from wspcap.constants import C2S, S2C
from wspcap.engine.collector import Collector
from wspcap.tcp.reassembly import StreamReassembler
from wspcap.tls import Lost, Plaintext, TLSAnomaly, TLSSession
from wspcap.ws.deflate import Inflater
from wspcap.ws.frames import RSV1, Frame, FrameParser
from wspcap.ws.messages import Message, MessageAssembler

__all__ = ["Chunk", "Connection", "Direction", "Handler"]

#: Bytes of a direction at a stream offset: ``(data, offset, ts, packet)``.
Chunk = tuple[bytes, int, int, int]
#: What takes a direction's in-order bytes: ``(direction, data, offset, ts, packet)``.
Handler = Callable[["Direction", bytes, int, int, int], None]
#: Segment marks a TLS direction keeps before forgetting those of the bytes
#: whose records are given out (see :meth:`Direction.tls_data`).
MARKS = 64


class Connection(Protocol):
    """What a direction asks of its connection
    (:class:`~wspcap.engine.session.Session`)."""

    @property
    def conn_id(self) -> int | None:
        """The connection's id once it is WebSocket (None before)."""
        ...

    @property
    def tls(self) -> TLSSession | None:
        """The TLS layer, when the connection starts with a ClientHello."""
        ...

    def report(self, ts: int, direction: str | None, frame_index: int | None, code: str,
               detail: str, packet: int | None, offset: int | None = None) -> None:
        """An anomaly of the connection."""
        ...

    def conflict(self, ts: int, d: int, offset: int, size: int, packet: int) -> None:
        """A retransmitted copy of direction ``d``'s bytes that differs."""
        ...

    def tls_events(self, events: list[Plaintext | Lost | TLSAnomaly], ts: int,
                   packet: int) -> None:
        """What the TLS layer made of some bytes."""
        ...

    def head_lost(self, dr: Direction, offset: int, size: int, ts: int, packet: int) -> None:
        """Bytes of ``dr`` were lost before its frames (in an HTTP head, or
        before the roles were known)."""
        ...

    def count_frame(self) -> int:
        """A frame was made: its frame_index in the connection."""
        ...

    def count_message(self) -> None:
        """A message was made."""
        ...


def _frames(dr: Direction, data: bytes, offset: int, ts: int, packet: int) -> None:
    """Bytes for the frame parser."""
    dr.parser.receive_data(data, ts, packet)  # type: ignore[union-attr]


def _hold(dr: Direction, data: bytes, offset: int, ts: int, packet: int) -> None:
    """Bytes that must wait for the other side (the request, or the 101)."""
    dr.pending.append((data, offset, ts, packet))


def _ignore(dr: Direction, data: bytes, offset: int, ts: int, packet: int) -> None:
    """Bytes not followed."""


class Direction:
    """One direction of a connection: its layers, their sink, and its counters.

    Args:
        connection: the connection it is a direction of.
        d: 0 for the sender of the connection's first packet seen, else 1.
        collector: where its frames and messages go.
        max_pending: the reassembler's limit of bytes held out of order.

    Attributes:
        name: ``c2s`` or ``s2c`` once the connection is WebSocket ("" before).
        key: ``conn_id * 2`` for the client's direction, plus 1 for the server's.
        reasm: the direction's reassembler.
        parser, assembler: its frame parser and message assembler, once
            frames are parsed.
        pending: bytes held back (:meth:`hold`), in stream order.
        frames: frames made; last_frame_offset, last_frame_index: the last one's.
        close_code, close_reason: of the first close message.
        fin_seen, rst_seen: a FIN, a RST was delivered; end_ts: the time of the
            first of them; reset_first: that first was a RST.
    """

    __slots__ = (
        "assembler",
        "close_code",
        "close_reason",
        "collector",
        "connection",
        "d",
        "end_ts",
        "fin_seen",
        "frames",
        "handler",
        "key",
        "last_frame_index",
        "last_frame_offset",
        "name",
        "parser",
        "pending",
        "plain_offset",
        "reasm",
        "reset_first",
        "rst_seen",
        "tls_marks",
    )

    def __init__(self, connection: Connection, d: int, collector: Collector,
                 max_pending: int) -> None:
        self.connection = connection
        self.collector = collector
        self.d = d
        self.name = ""
        self.key = 0
        self.handler: Handler = _ignore  # (the upgrade stage gives it its first)
        self.reasm = StreamReassembler(self, max_pending)
        self.parser: FrameParser | None = None
        self.assembler: MessageAssembler | None = None
        self.pending: list[Chunk] = []
        #: (TCP stream offset, packet, ts) of the segments fed to TLS, from
        #: the one holding the first byte of a record not given out yet (those
        #: before are forgotten: a direction without keys would keep one a
        #: segment for its whole life).
        self.tls_marks: list[tuple[int, int, int]] = []
        #: The offset of the next plaintext byte (over TLS).
        self.plain_offset = 0
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.frames = 0
        self.last_frame_offset = -1
        self.last_frame_index: int | None = None
        self.fin_seen = False
        self.rst_seen = False
        self.end_ts: int | None = None  # time of the first FIN or RST
        self.reset_first = False  # that first end was a RST

    # -- what takes the bytes ------------------------------------------------------

    def receive(self, data: bytes, offset: int, ts: int, packet: int) -> None:
        """Bytes at stream ``offset``, for the handler."""
        self.handler(self, data, offset, ts, packet)

    def give_to(self, handler: Handler) -> None:
        """From now on, the direction's bytes go to ``handler``."""
        self.handler = handler

    def at(self, handler: Handler) -> bool:
        """The direction's bytes go to ``handler`` (a bound method is equal to
        another of the same function and object, though not the same object)."""
        return self.handler == handler

    def hold(self, chunk: Chunk) -> None:
        """Keep ``chunk`` back, after the chunks held already."""
        self.pending.append(chunk)

    def hold_back(self) -> None:
        """From now on, bytes wait for the other side (:meth:`take_held`)."""
        self.handler = _hold

    def take_held(self) -> list[Chunk]:
        """The chunks held back, no longer held."""
        held, self.pending = self.pending, []
        return held

    def replay(self, chunks: list[Chunk]) -> None:
        """``chunks`` to the handler, each to the handler of the moment."""
        for data, offset, ts, packet in chunks:
            self.handler(self, data, offset, ts, packet)

    def hand_over(self, handler: Handler) -> None:
        """From now on, the bytes go to ``handler``, beginning with those held."""
        held = self.take_held()
        self.handler = handler
        self.replay(held)

    def ignore(self, drop: bool = False) -> None:
        """From now on, the bytes are not followed (``drop``: nor those held)."""
        self.handler = _ignore
        if drop:
            self.pending = []

    @property
    def ignored(self) -> bool:
        """The direction's bytes are not followed."""
        return self.handler is _ignore

    @property
    def held_back(self) -> bool:
        """The direction's bytes wait for the other side (:meth:`hold_back`)."""
        return self.handler is _hold

    @property
    def framing(self) -> bool:
        """The direction's bytes go to its frame parser."""
        return self.handler is _frames

    def start_frames(self, start: int, is_client: bool, inflater: Inflater | None,
                     max_payload: int) -> None:
        """From now on, the bytes are frames; the first at stream offset ``start``.

        Without TLS the reassembler hands its bytes straight to the parser
        (a call a segment saved).
        """
        self.parser = FrameParser(self, start, max_payload)
        self.assembler = MessageAssembler(self, is_client, inflater,
                                          RSV1 if inflater is not None else 0)
        self.handler = _frames
        if self.connection.tls is None:
            self.reasm.deliver_to(self.parser.receive_data)

    def named(self, client: bool, conn_id: int) -> None:
        """The connection became WebSocket as ``conn_id``; this is the client's
        direction if ``client``."""
        self.name = C2S if client else S2C
        self.key = conn_id * 2 + (0 if client else 1)

    @property
    def stream_offset(self) -> int:
        """Where the next byte is, in the stream the layers above see."""
        return self.plain_offset if self.connection.tls is not None else self.reasm.offset

    # -- TLS -----------------------------------------------------------------------

    def start_tls(self) -> None:
        """From now on, the reassembler's bytes go to the TLS layer."""
        self.reasm.deliver_to(self._tls_segment)

    def _tls_segment(self, payload: bytes, ts: int, packet: int) -> None:
        self.tls_data(payload, self.reasm.offset, ts, packet)

    def tls_data(self, data: bytes, offset: int, ts: int, packet: int) -> None:
        """TCP bytes at ``offset``, for the TLS layer."""
        tls = self.connection.tls
        assert tls is not None
        marks = self.tls_marks
        marks.append((offset, packet, ts))
        self.connection.tls_events(tls.receive_data(self.d, data, offset), ts, packet)
        if len(marks) > MARKS:  # (a direction without keys gives no plaintext to trim them)
            self.forget_marks()

    def passed_tls_run(self, marks: list[tuple[int, int, int]]) -> None:
        """The block path passed over records of a run without their keys;
        ``marks`` (TCP offset, packet, ts) are the run's segments that hold a
        part of the record the TLS layer keeps, if any."""
        self.tls_marks += marks
        self.forget_marks()

    def forget_marks(self) -> None:
        """Forget the marks of the segments before the one holding the first
        byte whose record the TLS layer has not given out yet."""
        tls = self.connection.tls
        assert tls is not None
        if self.tls_marks:
            self._mark(tls.first_needed(self.d))

    def _mark(self, offset: int) -> tuple[int, int]:
        """The packet and time of the segment holding TCP stream ``offset``."""
        marks = self.tls_marks
        i = bisect.bisect_right(marks, (offset, 1 << 62, 0)) - 1
        if i < 0:
            return marks[0][1], marks[0][2]
        if i:
            del marks[:i]
        return marks[0][1], marks[0][2]

    def receive_plain(self, data: bytes, tcp_offset: int, ts: int, packet: int
                      ) -> tuple[int, int]:
        """Decrypted bytes, from the record at TCP stream ``tcp_offset``, for the
        handler. Returns the ``(ts, packet)`` they were given: of the segment
        holding the record's start when known, else those passed."""
        if self.tls_marks:
            packet, ts = self._mark(tcp_offset)
        offset = self.plain_offset
        self.plain_offset = offset + len(data)
        self.handler(self, data, offset, ts, packet)
        return ts, packet

    def lose_plain(self, size: int, exact: bool, ts: int, packet: int) -> None:
        """``size`` plaintext bytes were lost (``exact``: that many, else at most)."""
        if not self.plain_offset and self.parser is None:
            return  # nothing was decrypted yet: nothing above to tell
        self.plain_offset += size
        if self.parser is not None:
            self.parser.receive_gap(size, ts, packet, exact=exact)
        elif self.handler is not _ignore:
            self.handler = _ignore  # lost inside the HTTP head

    def took_tls_run(self, plain: int, marks: list[tuple[int, int, int]]) -> None:
        """The block path gave the parser ``plain`` decrypted bytes; ``marks``
        are the segments of the record the TLS layer holds a part of, if any."""
        self.plain_offset += plain
        self.tls_marks[:] = marks

    # -- StreamSink ----------------------------------------------------------------

    def data(self, payload: bytes, ts: int, packet: int) -> None:
        self.handler(self, payload, self.reasm.offset, ts, packet)

    def gap(self, offset: int, size: int, ts: int, packet: int) -> None:
        c = self.connection
        if c.conn_id is not None:
            c.report(ts, self.name or None, None, "tcp_gap",
                     f"{size} bytes missing at stream offset {offset}", packet, offset)
        if c.tls is not None:
            c.tls_events(c.tls.receive_gap(self.d, size), ts, packet)
        elif self.parser is not None:
            self.parser.receive_gap(size, ts, packet)
        else:
            c.head_lost(self, offset, size, ts, packet)

    def conflict(self, offset: int, size: int, ts: int, packet: int) -> None:
        self.connection.conflict(ts, self.d, offset, size, packet)

    def data_after_fin(self, offset: int, size: int, ts: int, packet: int) -> None:
        c = self.connection
        if c.conn_id is not None:
            c.report(ts, self.name or None, None, "tcp_data_after_fin",
                     f"{size} bytes at stream offset {offset} after the FIN at stream "
                     f"offset {self.reasm.fin_offset} (not delivered)", packet, offset)

    def fin(self, offset: int, ts: int, packet: int) -> None:
        self.fin_seen = True
        if self.end_ts is None:
            self.end_ts = ts

    def rst(self, offset: int, ts: int, packet: int) -> None:
        self.rst_seen = True
        if self.end_ts is None:
            self.end_ts = ts
            self.reset_first = True
        c = self.connection
        if c.conn_id is not None:
            c.report(ts, self.name or None, None, "tcp_reset",
                     f"RST after {offset} stream bytes", packet, offset)

    def stream_reset(self, ts: int) -> None:
        """(A WebSocket over HTTP/2) this direction sent RST_STREAM: its end, as
        a TCP RST would be (the connection reports it as ``h2_stream_reset``)."""
        self.rst_seen = True
        if self.end_ts is None:
            self.end_ts = ts
            self.reset_first = True

    # -- FrameSink / MessageSink ---------------------------------------------------

    def took_frames(self, count: int, last_offset: int, last_index: int) -> None:
        """``count`` frames were made into records by the block path, the last
        at stream offset ``last_offset`` with frame_index ``last_index``."""
        self.frames += count
        self.last_frame_offset = last_offset
        self.last_frame_index = last_index

    def frame(self, frame: Frame) -> None:
        index = self.connection.count_frame()
        self.frames += 1
        self.last_frame_offset = frame.offset
        self.last_frame_index = index
        c = self.collector
        c.frames.append(frame)
        c.frame_keys.append(self.key)
        self.assembler.receive_frame(frame, index)  # type: ignore[union-attr]

    def message(self, message: Message) -> None:
        c = self.collector
        if message.inflated and c.spool is not None:
            message = c.spool(message)
        c.messages.append(message)
        c.message_keys.append(self.key)
        self.connection.count_message()
        if message.opcode == 8 and self.close_reason is None:  # the first close
            self.close_code = message.close_code
            # A close without a code has no reason either: "" tells it from no close.
            self.close_reason = message.close_reason if message.close_code is not None else ""

    def anomaly_at_offset(self, code: str, detail: str, offset: int, ts: int,
                          packet: int) -> None:
        """From the frame parser: an anomaly at a stream offset (and at the
        frame that starts there, if one was made)."""
        index = self.last_frame_index if offset == self.last_frame_offset else None
        self.connection.report(ts, self.name, index, code, detail, packet, offset)

    def anomaly_at_frame(self, code: str, detail: str, frame_index: int | None, ts: int,
                         packet: int) -> None:
        """From the message assembler: an anomaly at a frame (its frame_index)."""
        self.connection.report(ts, self.name, frame_index, code, detail, packet, None)

    # -- state and end -------------------------------------------------------------

    def run_ready(self) -> bool:
        """Between frames and messages with no byte held back (and, over TLS,
        between records under known keys): the block path may take a run."""
        r = self.reasm
        tls = self.connection.tls
        return (self.handler is _frames and r.next_seq is not None and r.idle
                and (tls is None or tls.run_ready(self.d))
                and r.fin_offset is None and self.parser is not None
                and self.parser.bulk_ready and self.assembler is not None
                and self.assembler.idle)

    def keyless_ready(self) -> bool:
        """Over TLS, between records whose keys are missing, and nothing ever
        decrypted: the block path may pass over a run of them
        (:meth:`TLSSession.pass_scan <wspcap.tls.TLSSession.pass_scan>`)."""
        r = self.reasm
        tls = self.connection.tls
        return (tls is not None and r.next_seq is not None and r.idle and r.fin_offset is None
                and not self.plain_offset and self.parser is None
                and tls.keyless_ready(self.d))

    def ended_quietly(self) -> bool:
        """Its FIN was delivered, no byte is held out of order and no frame or
        message is half-parsed."""
        r = self.reasm
        return (r.fin_done and r.idle
                and (self.parser is None or self.parser.idle)
                and (self.assembler is None or self.assembler.idle))

    def flush(self, peer_ack: int, ts: int, packet: int) -> None:
        """End of input for the reassembler: what the peer acknowledged
        (``peer_ack``, 0 if nothing) is delivered, gaps included."""
        r = self.reasm
        if not r.fin_done and peer_ack and r.next_seq is not None:
            r.receive_ack(peer_ack, ts, packet)
        r.receive_eof(ts, packet)

    def receive_eof(self, ts: int, packet: int) -> None:
        """End of input for the parser and the assembler."""
        if self.parser is not None:
            self.parser.receive_eof(ts, packet)
        if self.assembler is not None:
            self.assembler.receive_eof()
