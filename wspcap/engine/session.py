"""One TCP connection (:class:`Session`) and its two directions: the sinks
of their layers, and the WebSocket conversation found in them."""

from __future__ import annotations

import bisect
import functools
import ipaddress
from typing import Any

from wspcap.constants import C2S, S2C
from wspcap.engine.collector import Shared
from wspcap.engine.options import EARLY_CHUNKS, PROBE_CHUNKS
from wspcap.http.upgrade import (
    REQUEST,
    RESPONSE,
    Handshake,
    HeadParser,
    looks_like_request,
    looks_like_response,
    maybe_head_kind,
)
from wspcap.rules.context import ConnFacts, preview
from wspcap.rules.thresholds import DEFAULT_THRESHOLDS
from wspcap.tcp.reassembly import StreamReassembler
from wspcap.tls import Lost, Plaintext, TLSAnomaly, TLSSession, maybe_client_hello
from wspcap.ws.deflate import DeflateParams, InflateBudget, Inflater, negotiate
from wspcap.ws.frames import RSV1, Frame, FrameParser, plausible_frames
from wspcap.ws.messages import Message, MessageAssembler

__all__ = ["Session"]

class _Direction:
    """One direction of a session: the sink of its reassembler, parser and assembler."""

    __slots__ = (
        "assembler",
        "close_code",
        "close_reason",
        "collector",
        "d",
        "early_status",
        "end_ts",
        "fin_seen",
        "first_data_ts",
        "frames",
        "handler",
        "head",
        "key",
        "last_frame_index",
        "last_frame_offset",
        "name",
        "parser",
        "pending",
        "probe_chunks",
        "reset_first",
        "rst_seen",
        "session",
        "sniffed",
    )

    def __init__(self, session: Session, d: int) -> None:
        self.session = session
        self.collector = session.collector
        self.d = d
        self.name = ""
        self.key = 0
        self.handler = session._probe
        self.parser: FrameParser | None = None
        self.assembler: MessageAssembler | None = None
        self.head: HeadParser | None = None
        self.probe_chunks = 0
        self.pending: list[tuple[bytes, int, int, int]] = []  # data, offset, ts, packet
        self.sniffed: list[tuple[bytes, int, int, int]] = []  # first bytes, too few to tell
        self.early_status: int | None = None  # of an answer read before its request
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.frames: int = 0
        self.last_frame_offset: int = -1
        self.last_frame_index: int | None = None
        self.fin_seen = False
        self.rst_seen = False
        self.first_data_ts: int | None = None
        self.end_ts: int | None = None  # time of the first FIN or RST
        self.reset_first = False  # that first end was a RST

    # StreamSink -----------------------------------------------------------------

    def data(self, payload: bytes, ts: int, packet: int) -> None:
        self.handler(self, payload, self.session.reasm[self.d].offset, ts, packet)

    def gap(self, offset: int, size: int, ts: int, packet: int) -> None:
        s = self.session
        if s.conn_id is not None:
            s.report(ts, self.name or None, None, "tcp_gap",
                     f"{size} bytes missing at stream offset {offset}", packet, offset)
        if s.tls is not None:
            s.tls_events(s.tls.receive_gap(self.d, size), ts, packet)
        elif self.parser is not None:
            self.parser.receive_gap(size, ts, packet)
        elif self.handler is Session._request:
            s._request_lost(self, offset, size, ts, packet)
        elif self.handler is not Session._ignore:
            # Lost inside an HTTP head or before the roles are known: give up on it.
            self.handler = Session._ignore

    def conflict(self, offset: int, size: int, ts: int, packet: int) -> None:
        s = self.session
        if s.conn_id is not None:
            s.report_conflict(ts, self.d, offset, size, packet)
        else:  # reported once the connection turns out to be WebSocket
            s.early_conflicts.append((ts, self.d, offset, size, packet))

    def data_after_fin(self, offset: int, size: int, ts: int, packet: int) -> None:
        s = self.session
        if s.conn_id is not None:
            fin = s.reasm[self.d].fin_offset
            s.report(ts, self.name or None, None, "tcp_data_after_fin",
                     f"{size} bytes at stream offset {offset} after the FIN at stream "
                     f"offset {fin} (not delivered)", packet, offset)

    def fin(self, offset: int, ts: int, packet: int) -> None:
        self.fin_seen = True
        if self.end_ts is None:
            self.end_ts = ts

    def rst(self, offset: int, ts: int, packet: int) -> None:
        self.rst_seen = True
        if self.end_ts is None:
            self.end_ts = ts
            self.reset_first = True
        s = self.session
        if s.conn_id is not None:
            s.report(ts, self.name or None, None, "tcp_reset",
                     f"RST after {offset} stream bytes", packet, offset)

    # FrameSink / MessageSink -------------------------------------------------------

    def took_frames(self, count: int, last_offset: int, last_index: int) -> None:
        """``count`` frames were made into records by the block path, the last
        at stream offset ``last_offset`` with frame_index ``last_index``."""
        self.frames += count
        self.last_frame_offset = last_offset
        self.last_frame_index = last_index

    def frame(self, frame: Frame) -> None:
        s = self.session
        index = s.nframes
        s.nframes = index + 1
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
        self.session.nmessages += 1
        if message.opcode == 8 and self.close_reason is None:  # the first close
            self.close_code = message.close_code
            # A close without a code has no reason either: "" tells it from no close.
            self.close_reason = message.close_reason if message.close_code is not None else ""

    def anomaly_at_offset(self, code: str, detail: str, offset: int, ts: int,
                          packet: int) -> None:
        """From the frame parser: an anomaly at a stream offset (and at the
        frame that starts there, if one was made)."""
        index = self.last_frame_index if offset == self.last_frame_offset else None
        self.session.report(ts, self.name, index, code, detail, packet, offset)

    def anomaly_at_frame(self, code: str, detail: str, frame_index: int | None, ts: int,
                         packet: int) -> None:
        """From the message assembler: an anomaly at a frame (its frame_index)."""
        self.session.report(ts, self.name, frame_index, code, detail, packet, None)


class Session:
    """One TCP connection, and the WebSocket conversation in it if there is one.

    Direction 0 is the sender of the first packet seen; :attr:`client` says
    which direction is the client once known.
    """

    def __init__(self, shared: Shared, tcp_stream: int, src: bytes, dst: bytes,
                 sport: int, dport: int, ts: int) -> None:
        self.shared = shared
        self.collector = shared.collector
        self.options = shared.options
        self.tcp_stream = tcp_stream
        self.addrs = (src, dst)
        self.ports = (sport, dport)
        self.ts_start = ts
        self.ts_end = ts
        self.last_packet = 0
        self.conn_id: int | None = None
        self.client: int | None = None
        self.ignored = False
        self.handshake: Handshake | None = None
        self.deflate: DeflateParams | None = None
        self.midstream_ws = False
        self.established = False
        self.nframes = 0
        self.nmessages = 0
        self.ts_request: int | None = None
        self.ts_response: int | None = None
        self.request_packet: int | None = None
        self.response_packet: int | None = None
        self.request_end = 0  # stream offset of the end of the request head
        self.request_gap: tuple[int, int, int, int] | None = None  # ts, offset, size, packet
        self.early_conflicts: list[tuple[int, int, int, int, int]] = []
        self.acks = [0, 0]
        #: The TLS layer, when the connection starts with a ClientHello.
        self.tls: TLSSession | None = None
        #: The direction that sent the ClientHello.
        self.tls_client = 0
        #: Per direction: (TCP stream offset, packet, ts) of the bytes fed to TLS.
        self.tls_marks: tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]] = ([], [])
        #: Per direction: the offset of the next plaintext byte.
        self.plain_offset = [0, 0]
        #: TLS findings made before the connection had a conn_id.
        self.tls_findings: list[tuple[int, int, int, str, str, int]] = []
        self.dirs = (_Direction(self, 0), _Direction(self, 1))
        opts = self.options
        self.reasm = (StreamReassembler(self.dirs[0], opts.max_pending),
                      StreamReassembler(self.dirs[1], opts.max_pending))

    # -- identification ------------------------------------------------------------

    def report(self, ts: int, direction: str | None, frame_index: int | None, code: str,
               detail: str, packet: int | None, offset: int | None = None) -> None:
        self.collector.anomaly(self.conn_id, ts, direction, frame_index, code, detail,
                               packet, offset)

    def _become_websocket(self, client: int) -> None:
        """Give the connection a conn_id and name its directions."""
        self.client = client
        c = self.collector
        self.conn_id = len(c.sessions)
        c.sessions.append(self)
        for d in self.dirs:
            d.name = C2S if d.d == client else S2C
            d.key = self.conn_id * 2 + (0 if d.d == client else 1)
        for conflict in self.early_conflicts:
            self.report_conflict(*conflict)
        self.early_conflicts = []
        for ts, side, offset, code, detail, packet in self.tls_findings:
            self.report(ts, self.dirs[side].name, None, code, detail, packet, offset)
        self.tls_findings = []
        if self.request_gap is not None:
            ts, offset, size, packet = self.request_gap
            self.report(ts, C2S, None, "tcp_gap",
                        f"{size} bytes missing at stream offset {offset}", packet, offset)

    def report_conflict(self, ts: int, d: int, offset: int, size: int, packet: int) -> None:
        """A retransmitted or overlapping copy whose bytes differ (first copy kept)."""
        self.report(ts, self.dirs[d].name, None, "tcp_overlap_conflict",
                    f"{size} bytes at stream offset {offset} differ from the first copy "
                    "(first copy kept)", packet, offset)

    @staticmethod
    def _probe(dr: _Direction, data: bytes, offset: int, ts: int, packet: int) -> None:
        """First bytes of a direction: HTTP request, HTTP response, frames, or other.

        Each direction is told by its own bytes, in TCP sequence order, whatever
        came first in the capture; a start too short to tell (a request whose
        first segment is ``G``) waits for the direction's next bytes.
        """
        s = dr.session
        if dr.first_data_ts is None:
            dr.first_data_ts = ts
        held = [*dr.sniffed, (data, offset, ts, packet)]
        start = b"".join(chunk[0] for chunk in held) if dr.sniffed else data
        if s.tls is None and s.client is None:
            hello = maybe_client_hello(start)
            if hello is None:
                dr.sniffed = held  # may be the start of a ClientHello: wait for more
                return
            if hello:
                dr.sniffed = []
                s.tls_client = dr.d
                s._start_tls()
                for chunk, coffset, cts, cpacket in held:
                    s.tls_data(dr.d, chunk, coffset, cts, cpacket)
                return
        kind = maybe_head_kind(start)
        if kind is None:
            dr.sniffed = held
            return
        dr.sniffed = []
        if kind == REQUEST or kind == RESPONSE:
            if kind == REQUEST:
                s._start_http(dr.d)
            else:  # the answer came first in the capture: held until the request is read
                dr.handler = Session._early_answer
            for chunk, coffset, cts, cpacket in held:
                dr.handler(dr, chunk, coffset, cts, cpacket)
            return
        frames = plausible_frames(start) if s.options.midstream else 0
        if frames:
            # Two chunks in a row, or two frames in one, that frame exactly.
            dr.pending += held
            dr.probe_chunks += 1
            if dr.probe_chunks >= 2 or frames >= 2:
                s._start_midstream(dr)
            return
        s._give_up()

    @staticmethod
    def _early_answer(dr: _Direction, data: bytes, offset: int, ts: int, packet: int) -> None:
        """The server's bytes while the client's request is not read yet: its HTTP
        answer, then frames if it is a 101.

        The capture may show them before the request (captures of two taps
        merged, clock skew): the request and the answer are paired by each
        direction's TCP sequence, not by capture order, so these wait for the
        request (see :meth:`_request`). The answer's head is read as it comes,
        to bound what is held: the head itself up to MAX_HEAD bytes; then after
        a 101 up to EARLY_CHUNKS segments and ``max_pending`` bytes, past which
        the frames are read without the request (:meth:`_start_midstream`); after
        any other answer PROBE_CHUNKS * 4 segments, past which the connection is
        not followed.
        """
        s = dr.session
        dr.pending.append((data, offset, ts, packet))
        if dr.head is None and dr.early_status is None:
            dr.head = HeadParser()
        if dr.head is not None:
            head = dr.head.receive_data(data)
            if head is None and not dr.head.too_large:
                return
            dr.head = None
            dr.early_status = head.status if head is not None and head.status else 0
            dr.probe_chunks = len(dr.pending)  # (segments held up to the head's end)
        if dr.early_status == 101:
            client = s.dirs[1 - dr.d]
            if ((client.handler is Session._lost_request and client.head is None)
                    or len(dr.pending) - dr.probe_chunks > EARLY_CHUNKS
                    or offset + len(data) - dr.pending[0][1] > s.options.max_pending):
                s._start_midstream(dr, client.d)
        elif len(dr.pending) - dr.probe_chunks > PROBE_CHUNKS * 4:
            s._give_up()

    def _give_up(self) -> None:
        """Not WebSocket: stop looking at this connection."""
        self.ignored = True
        for d in self.dirs:
            d.handler = Session._ignore
            d.pending = []

    @staticmethod
    def _ignore(dr: _Direction, data: bytes, offset: int, ts: int, packet: int) -> None:
        return None

    # -- TLS -----------------------------------------------------------------------

    def _start_tls(self) -> None:
        """The connection starts with a ClientHello: its bytes go through the TLS
        layer, and what it decrypts goes where the bytes went (:meth:`_probe` first)."""
        opts = self.options
        self.tls = TLSSession(self.shared.keylog, opts.tls_hold)
        for d in (0, 1):
            self.reasm[d].on_data = functools.partial(self._tls_segment, d)

    def _tls_segment(self, d: int, payload: bytes, ts: int, packet: int) -> None:
        self.tls_data(d, payload, self.reasm[d].offset, ts, packet)

    def tls_data(self, d: int, data: bytes, offset: int, ts: int, packet: int) -> None:
        """TCP bytes of direction ``d`` at ``offset``, for the TLS layer."""
        assert self.tls is not None
        self.tls_marks[d].append((offset, packet, ts))
        self.tls_events(self.tls.receive_data(d, data, offset), ts, packet)

    def _mark(self, d: int, offset: int) -> tuple[int, int]:
        """The packet and time of the segment holding TCP stream ``offset`` of ``d``."""
        marks = self.tls_marks[d]
        i = bisect.bisect_right(marks, (offset, 1 << 62, 0)) - 1
        if i < 0:
            return marks[0][1], marks[0][2]
        if i:
            del marks[:i]
        return marks[0][1], marks[0][2]

    def tls_events(self, events: list[Plaintext | Lost | TLSAnomaly], ts: int,
                   packet: int) -> None:
        """Plaintext to the layers above, holes to the frame parser, findings reported."""
        for event in events:
            d = event.direction
            dr = self.dirs[d]
            if isinstance(event, Plaintext):
                if self.tls_marks[d]:
                    packet, ts = self._mark(d, event.offset)
                offset = self.plain_offset[d]
                self.plain_offset[d] = offset + len(event.data)
                dr.handler(dr, event.data, offset, ts, packet)
            elif isinstance(event, Lost):
                if not self.plain_offset[d] and dr.parser is None:
                    continue  # nothing was decrypted yet: nothing above to tell
                size = event.size if event.plain is None else event.plain
                self.plain_offset[d] += size
                if dr.parser is not None:
                    dr.parser.receive_gap(size, ts, packet, exact=event.plain is not None)
                elif dr.handler is not Session._ignore:
                    dr.handler = Session._ignore  # lost inside the HTTP head
            elif self.conn_id is None:
                self.tls_findings.append((ts, d, event.offset, event.code, event.detail,
                                          packet))
                if event.code == "tls_alpn_h2":
                    # Its WebSocket, if any, rides HTTP/2: it gets a row of its own.
                    self._become_websocket(self.tls_client)
            else:
                self.report(ts, dr.name or None, None, event.code, event.detail, packet,
                            event.offset)

    def took_tls_run(self, d: int, plain: int, marks: list[tuple[int, int, int]]) -> None:
        """The block path gave direction ``d``'s parser ``plain`` decrypted
        bytes; ``marks`` (TCP offset, packet, ts) are the segments of the
        record the TLS layer holds a part of, if any (see :meth:`_mark`)."""
        self.plain_offset[d] += plain
        self.tls_marks[d][:] = marks

    def stream_offset(self, d: int) -> int:
        """Where direction ``d``'s next byte is, in the stream the layers above see."""
        return self.plain_offset[d] if self.tls is not None else self.reasm[d].offset

    # -- HTTP upgrade -------------------------------------------------------------

    def _start_http(self, client: int) -> None:
        self.client = client
        c, srv = self.dirs[client], self.dirs[1 - client]
        c.head = HeadParser()
        c.handler = Session._request
        srv.handler = Session._hold

    @staticmethod
    def _hold(dr: _Direction, data: bytes, offset: int, ts: int, packet: int) -> None:
        """Bytes that must wait for the other side (the request, or the 101)."""
        dr.pending.append((data, offset, ts, packet))

    @staticmethod
    def _request(dr: _Direction, data: bytes, offset: int, ts: int, packet: int) -> None:
        s = dr.session
        head = dr.head.receive_data(data)  # type: ignore[union-attr]
        if head is None:
            if dr.head.too_large:  # type: ignore[union-attr]
                s._give_up()
            return
        hs = Handshake.from_request(head)
        if not (hs.upgrade_websocket or hs.key is not None):
            s._give_up()  # plain HTTP: not ours (upgrades later in keep-alive are not followed)
            return
        s.handshake = hs
        s._become_websocket(dr.d)
        s.ts_request = ts
        s.request_packet = packet
        trailing = dr.head.trailing  # type: ignore[union-attr]
        s.request_end = offset + len(data) - len(trailing)
        dr.head = None
        dr.handler = Session._hold
        if trailing:
            dr.pending.append((trailing, offset + len(data) - len(trailing), ts, packet))
        srv = s.dirs[1 - dr.d]
        srv.head = HeadParser()
        srv.handler = Session._response
        held, srv.pending = srv.pending, []
        for chunk, coffset, cts, cpacket in held:
            srv.handler(srv, chunk, coffset, cts, cpacket)

    def _request_lost(self, dr: _Direction, offset: int, size: int, ts: int,
                      packet: int) -> None:
        """Bytes of the request head were not captured: its fields cannot be read,
        but the conversation can. The client's frames start after the head's end
        (:meth:`_lost_request`), the server's after its answer (:meth:`_early_answer`),
        as for a 101 whose request was not captured."""
        self.request_gap = (ts, offset, size, packet)
        dr.head = HeadParser()
        dr.handler = Session._lost_request
        srv = self.dirs[1 - dr.d]
        held, srv.pending = srv.pending, []
        srv.handler = Session._early_answer
        for chunk, coffset, cts, cpacket in held:
            srv.handler(srv, chunk, coffset, cts, cpacket)

    @staticmethod
    def _lost_request(dr: _Direction, data: bytes, offset: int, ts: int, packet: int) -> None:
        """The client's bytes after a gap in its request head: the rest of the head
        (unless they frame exactly: the gap took the head's end), then frames, held
        until the answer is read (EARLY_CHUNKS segments at most)."""
        s = dr.session
        if dr.head is not None and plausible_frames(data):
            dr.head = None  # the gap took the head's end: frames from here on
            s.request_end = offset
            dr.pending.append((data, offset, ts, packet))
        elif dr.head is not None:
            if dr.head.receive_data(data) is None:
                if dr.head.too_large:
                    s._give_up()
                return
            trailing = dr.head.trailing
            dr.head = None
            s.request_end = offset + len(data) - len(trailing)
            if trailing:
                dr.pending.append((trailing, s.request_end, ts, packet))
        else:
            dr.pending.append((data, offset, ts, packet))
        srv = s.dirs[1 - dr.d]
        if srv.early_status == 101 and srv.handler is Session._early_answer:
            s._start_midstream(srv, dr.d)
        elif len(dr.pending) > EARLY_CHUNKS:
            s._give_up()

    @staticmethod
    def _response(dr: _Direction, data: bytes, offset: int, ts: int, packet: int) -> None:
        s = dr.session
        head = dr.head.receive_data(data)  # type: ignore[union-attr]
        if head is None:
            if dr.head.too_large:  # type: ignore[union-attr]
                s.report(ts, S2C, None, "http_head_too_large",
                         "response head over 64 KiB", packet)
                s._end_websocket()
            return
        trailing = dr.head.trailing  # type: ignore[union-attr]
        status = head.status
        if status is not None and 100 <= status < 200 and status != 101:
            dr.head = HeadParser()  # an interim answer (100 Continue): the real one follows
            if trailing:
                Session._response(dr, trailing, offset + len(data) - len(trailing), ts, packet)
            return
        hs = s.handshake
        assert hs is not None
        hs.answer(head)
        s.ts_response = ts
        s.response_packet = packet
        dr.head = None
        client = s.dirs[s.client]  # type: ignore[index]
        held, client.pending = client.pending, []
        if status is None:
            s.report(ts, S2C, None, "http_status_invalid",
                     f"status line {preview(head.start_line, 60)} has no three-digit "
                     "status code", packet)
        elif status != 101:
            s.report(ts, S2C, None, "http_status_not_101",
                     f"status {status} {head.reason}".rstrip(), packet)
        if status != 101:
            if held and plausible_frames(held[0][0]):
                s._frames_before_101(held, None, 0)
            if trailing:
                dr.pending.append((trailing, offset + len(data) - len(trailing), ts, packet))
            client.pending = held
            s._refused()
            return
        s._check_accept(ts, packet)
        s.deflate, problems = negotiate(hs.extensions)
        for problem in problems:
            s.report(ts, S2C, None, "pmd_params_invalid", problem, packet)
        # (the client's reassembler is still delivering the request's last bytes when
        # an answer held before it is read: its offset is not past them yet)
        s._start_frames({dr.d: offset + len(data) - len(trailing),
                         client.d: held[0][1] if held else max(s.stream_offset(client.d),
                                                               s.request_end)})
        if trailing:
            s.report(ts, S2C, None, "http_data_with_101",
                     f"{len(trailing)} bytes after the 101 head in the same segment", packet)
            dr.parser.receive_data(trailing, ts, packet)  # type: ignore[union-attr]
        if held:
            first = s.nframes
            for chunk, _offset, cts, cpacket in held:
                client.parser.receive_data(chunk, cts, cpacket)  # type: ignore[union-attr]
            s._frames_before_101(held, first if s.nframes > first else None, s.nframes - first)

    def _frames_before_101(self, held: list[tuple[bytes, int, int, int]], index: int | None,
                           count: int) -> None:
        """RFC 6455 section 4.1: the client "MUST wait for a response from the
        server before sending any further data"."""
        _data, offset, ts, packet = held[0]
        size = sum(len(chunk[0]) for chunk in held)
        frames = f" ({count} frame{'s' if count > 1 else ''})" if count else ""
        self.report(ts, C2S, index, "http_frames_before_101",
                    f"{size} bytes{frames} sent by the client before the answer", packet,
                    offset)

    def _refused(self) -> None:
        """The upgrade was refused: look at what follows for frames, then stop."""
        for d in self.dirs:
            held, d.pending = d.pending, []
            d.handler = Session._after_refusal
            d.probe_chunks = 0
            for chunk, coffset, cts, cpacket in held:
                d.handler(d, chunk, coffset, cts, cpacket)

    @staticmethod
    def _after_refusal(dr: _Direction, data: bytes, offset: int, ts: int, packet: int) -> None:
        """Bytes after a refused upgrade: WebSocket frames there are the smuggling
        pattern (``http_frames_without_101``); HTTP (keep-alive) is not followed."""
        s = dr.session
        if (plausible_frames(data) and not looks_like_request(data)
                and not looks_like_response(data)):
            status = s.handshake.status if s.handshake is not None else None
            answer = f"status {status}" if status is not None else "an unreadable status line"
            s.report(ts, dr.name, None, "http_frames_without_101",
                     f"{dr.name} bytes frame as WebSocket after {answer}", packet, offset)
            dr.probe_chunks = PROBE_CHUNKS
        else:
            dr.probe_chunks += 1
        if dr.probe_chunks >= PROBE_CHUNKS:
            dr.handler = Session._ignore
            if all(d.handler is Session._ignore for d in s.dirs):
                s.ignored = True

    def _check_accept(self, ts: int, packet: int) -> None:
        hs = self.handshake
        assert hs is not None
        if hs.key is None:
            self.report(ts, C2S, None, "http_key_missing",
                        "the upgrade request has no Sec-WebSocket-Key", packet)
        if hs.accept is None:
            self.report(ts, S2C, None, "http_accept_missing",
                        "the 101 answer has no Sec-WebSocket-Accept", packet)
        elif hs.accept_valid is False and hs.key is not None:
            self.report(ts, S2C, None, "http_accept_mismatch",
                        f"expected={hs.accept_expected}, found={hs.accept}", packet)

    def _end_websocket(self) -> None:
        """The upgrade failed: the rest of the connection is not WebSocket."""
        for d in self.dirs:
            d.handler = Session._ignore
            d.pending = []
        self.ignored = True

    # -- frames --------------------------------------------------------------------

    def _start_frames(self, offsets: dict[int, int]) -> None:
        """Frame parsing begins; ``offsets`` gives each direction's first frame offset."""
        self.established = True
        opts = self.options
        params = self.deflate
        budgets = self._inflate_budgets() if params is not None else ()
        for d in self.dirs:
            is_client = d.d == self.client
            inflater = None
            if params is not None:
                if is_client:
                    inflater = Inflater(params.client_max_window_bits,
                                        params.client_no_context_takeover, opts.max_inflated,
                                        budgets)
                else:
                    inflater = Inflater(params.server_max_window_bits,
                                        params.server_no_context_takeover, opts.max_inflated,
                                        budgets)
            d.parser = FrameParser(d, offsets[d.d], opts.max_payload)
            d.assembler = MessageAssembler(d, is_client, inflater,
                                           RSV1 if inflater is not None else 0)
            d.handler = Session._frames
            if self.tls is None:
                self.reasm[d.d].on_data = d.parser.receive_data  # straight to the parser

    def _inflate_budgets(self) -> tuple[InflateBudget, InflateBudget]:
        """The connection's inflation budget (both directions share it) and the capture's."""
        th = self.options.thresholds or DEFAULT_THRESHOLDS
        return (InflateBudget(th.inflate_budget_connection, "connection"),
                self.shared.inflate_budget)

    @staticmethod
    def _frames(dr: _Direction, data: bytes, offset: int, ts: int, packet: int) -> None:
        dr.parser.receive_data(data, ts, packet)  # type: ignore[union-attr]

    def _start_midstream(self, dr: _Direction, client: int | None = None) -> None:
        """Frames without a captured handshake: the masking direction is the client
        (unless ``client`` says which it is: the other side of a 101 answer)."""
        first, _offset, ts, packet = dr.pending[0]
        if client is None:
            client = dr.d if first[1] & 0x80 else 1 - dr.d
        self.midstream_ws = True
        self._become_websocket(client)
        if self.request_gap is not None:
            seen = "frames after a request head with bytes missing (tcp_gap)"
        elif any(d.early_status == 101 for d in self.dirs):
            seen = "frames after a 101 answer whose request was not captured"
        else:
            seen = "frames seen without the opening handshake"
        self.report(ts, None, None, "http_handshake_missing",
                    f"{seen}; extensions unknown "
                    "(RSV1 messages are inflated as permessage-deflate)", packet)
        # Without the handshake, permessage-deflate is assumed when RSV1 shows up.
        self.deflate = None
        opts = self.options
        budgets = self._inflate_budgets()
        held: list[tuple[int, int, bytes, int]] = []  # packet, direction, data, ts
        for d in self.dirs:
            start = d.pending[0][1] if d.pending else self.stream_offset(d.d)
            if d.d == client and self.request_gap is not None:
                # (the reassembler may still be delivering the head's last bytes)
                start = d.pending[0][1] if d.pending else max(start, self.request_end)
            if d.early_status == 101:  # a 101 without its request: frames follow its head
                d.pending, start = _after_head(d.pending, start)
            held += [(cpacket, d.d, chunk, cts) for chunk, _offset, cts, cpacket in d.pending]
            d.pending = []
            d.parser = FrameParser(d, start, opts.max_payload)
            d.assembler = MessageAssembler(
                d, d.d == client, _MidstreamInflater(opts.max_inflated, budgets), RSV1)
            d.handler = Session._frames
            if self.tls is None:
                self.reasm[d.d].on_data = d.parser.receive_data  # straight to the parser
        # Replay both directions in capture order, so frame_index follows it.
        for cpacket, d_index, chunk, cts in sorted(held, key=lambda h: (h[0], h[1])):
            self.dirs[d_index].parser.receive_data(chunk, cts, cpacket)  # type: ignore[union-attr]
        self.established = True

    # -- blocks ----------------------------------------------------------------------

    def bulk_ready(self) -> bool:
        """Both directions are between WebSocket frames and messages with no byte
        held back (and, over TLS, between records under known keys): the block
        path (:mod:`wspcap.engine.runs`) may take over."""
        if self.ignored or self.conn_id is None:
            return False
        tls = self.tls
        for d in self.dirs:
            r = self.reasm[d.d]
            if (d.handler is not Session._frames or r.next_seq is None or not r.idle
                    or (tls is not None and not tls.run_ready(d.d))
                    or r.fin_offset is not None or d.parser is None
                    or not d.parser.bulk_ready or d.assembler is None
                    or not d.assembler.idle):
                return False
        return True

    # -- end -------------------------------------------------------------------------

    def ended_quietly(self) -> bool:
        """Nothing more can come of this connection: both FINs were delivered,
        no byte is held out of order and no frame or message is half-parsed."""
        for d in self.dirs:
            r = self.reasm[d.d]
            if not r.fin_done or not r.idle:
                return False
            if d.parser is not None and not d.parser.idle:
                return False
            if d.assembler is not None and not d.assembler.idle:
                return False
        return True

    def finish(self) -> None:
        """End of input: flush reassembly, then the parsers."""
        ts, packet = self.ts_end, self.last_packet
        for d in self.dirs:
            r = self.reasm[d.d]
            if not r.fin_done and self.acks[1 - d.d] and r.next_seq is not None:
                r.receive_ack(self.acks[1 - d.d], ts, packet)
            r.receive_eof(ts, packet)
        if self.tls is not None:
            for d in self.dirs:
                self.tls_events(self.tls.receive_eof(d.d), ts, packet)
            if self.conn_id is None and not self.ignored and not self.tls.info.decrypted:
                # Not decrypted: it may be wss://, so it gets a row of its own.
                self._become_websocket(self.tls_client)
        for d in self.dirs:
            if d.handler is Session._early_answer and d.early_status == 101:
                self._start_midstream(d, 1 - d.d)  # the request never came
        for d in self.dirs:
            if d.parser is not None:
                d.parser.receive_eof(ts, packet)
            if d.assembler is not None:
                d.assembler.receive_eof()
        if self.conn_id is not None and self.syn_missing:
            self.report(self.ts_start, None, None, "tcp_midstream",
                        "the connection's SYN was not captured", None)

    @property
    def syn_missing(self) -> bool:
        """The start of the connection (a SYN) was not captured."""
        return self.reasm[0].midstream or self.reasm[1].midstream

    def endpoints(self) -> tuple[str, int, str, int]:
        """``(client_ip, client_port, server_ip, server_port)``."""
        c = self.client if self.client is not None else 0
        return (str(ipaddress.ip_address(self.addrs[c])), self.ports[c],
                str(ipaddress.ip_address(self.addrs[1 - c])), self.ports[1 - c])

    def facts(self) -> ConnFacts:
        """What the cross-record rules read of this connection (read-only)."""
        assert self.conn_id is not None
        c = self.client if self.client is not None else 0
        cd, sd = self.dirs[c], self.dirs[1 - c]
        client_ip, _, server_ip, server_port = self.endpoints()
        return ConnFacts(
            conn_id=self.conn_id, handshake=self.handshake, established=self.established,
            midstream=self.midstream_ws, tls=self.tls is not None, client_ip=client_ip,
            server_ip=server_ip, server_port=server_port, ts_start=self.ts_start,
            ts_end=self.ts_end, ts_request=self.ts_request, request_packet=self.request_packet,
            ts_response=self.ts_response, response_packet=self.response_packet,
            request_first_ts=cd.first_data_ts,
            fin={C2S: cd.fin_seen, S2C: sd.fin_seen},
            rst={C2S: cd.reset_first, S2C: sd.reset_first},
            end_ts={C2S: cd.end_ts, S2C: sd.end_ts},
            gap_bytes={C2S: self.reasm[c].gap_bytes, S2C: self.reasm[1 - c].gap_bytes},
            deflate=self.deflate)

    def record(self) -> dict[str, Any]:
        """The connection's row for the connections table."""
        hs = self.handshake or Handshake()
        c = self.client if self.client is not None else 0
        cd, sd = self.dirs[c], self.dirs[1 - c]
        ext = self.deflate
        client_ip, client_port, server_ip, server_port = self.endpoints()
        return {
            "conn_id": self.conn_id,
            "tcp_stream": self.tcp_stream,
            "client_ip": client_ip,
            "client_port": client_port,
            "server_ip": server_ip,
            "server_port": server_port,
            "ts_start": self.ts_start,
            "ts_end": self.ts_end,
            "handshake": self.handshake is not None,
            "established": self.established,
            "midstream": self.syn_missing,
            "method": hs.method or None,
            "uri": hs.uri or None,
            "host": hs.host,
            "origin": hs.origin,
            "user_agent": hs.user_agent,
            "cookie": hs.cookie if self.handshake else None,
            "authorization": hs.authorization if self.handshake else None,
            "key": hs.key,
            "version": hs.version,
            "protocols_offered": ", ".join(hs.protocols_offered) or None,
            "extensions_offered": hs.extensions_offered,
            "status": hs.status,
            "reason": hs.reason,
            "accept": hs.accept,
            "accept_valid": hs.accept_valid,
            "subprotocol": hs.subprotocol,
            "extensions": hs.extensions,
            "permessage_deflate": ext is not None,
            "close_code_c2s": cd.close_code,
            "close_reason_c2s": cd.close_reason,
            "close_code_s2c": sd.close_code,
            "close_reason_s2c": sd.close_reason,
            "frames": self.nframes,
            "frames_c2s": cd.frames,
            "frames_s2c": sd.frames,
            "messages": self.nmessages,
            "bytes_c2s": self.reasm[c].delivered,
            "bytes_s2c": self.reasm[1 - c].delivered,
            "gap_bytes": self.reasm[0].gap_bytes + self.reasm[1].gap_bytes,
            "fin_c2s": cd.fin_seen,
            "fin_s2c": sd.fin_seen,
            "rst": cd.rst_seen or sd.rst_seen,
            **self.tls_record(),
        }

    def tls_record(self) -> dict[str, Any]:
        """The connection's TLS columns (from the clear hellos, with or without keys)."""
        if self.tls is None:
            return {"tls": False, "tls_version": None, "tls_cipher": None, "sni": None,
                    "alpn": None, "decrypted": False}
        info = self.tls.info
        return {"tls": True, "tls_version": info.version_name, "tls_cipher": info.suite_name,
                "sni": info.sni, "alpn": info.alpn, "decrypted": info.decrypted}


def _after_head(held: list[tuple[bytes, int, int, int]], start: int
                ) -> tuple[list[tuple[bytes, int, int, int]], int]:
    """The chunks ``held`` (data, offset, ts, packet) from the end of the HTTP head
    they start with, and the stream offset of that end; as given if the head does
    not end in them."""
    parser = HeadParser()
    for i, (chunk, offset, ts, packet) in enumerate(held):
        if parser.receive_data(chunk) is not None:
            rest = parser.trailing
            end = offset + len(chunk) - len(rest)
            return ([(rest, end, ts, packet)] if rest else []) + held[i + 1:], end
    return held, start


class _MidstreamInflater(Inflater):
    """Inflater for a connection whose handshake was not seen.

    The earlier window is unknown, so a message that cannot be inflated is
    reported as ``pmd_context_lost`` rather than as a failure.
    """

    def __init__(self, max_size: int, budgets: tuple[InflateBudget, ...] = ()) -> None:
        super().__init__(15, False, max_size, budgets)

    def inflate(self, data: bytes) -> tuple[bytes | None, str | None, str]:
        out, problem, detail = super().inflate(data)
        if problem == "pmd_inflate_failed":
            return out, "pmd_context_lost", ("compressed message refers to a window "
                                             f"from before the capture ({detail})")
        return out, problem, detail
