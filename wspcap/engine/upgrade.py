"""The opening of one connection (:class:`Upgrade`): what its first bytes are,
the HTTP upgrade and its facts, and the switch of its directions to frames.

Design note
-----------
Each direction is told by its own first bytes, in TCP sequence order,
whatever came first in the capture (:meth:`Upgrade._probe`): a ClientHello
(the connection's bytes then go through the TLS layer, and what it decrypts
comes back here), an HTTP request or answer (on any port), WebSocket frames
(a connection captured mid-stream, when ``Options.midstream``), or anything
else (the connection is not followed). A start too short to tell (a request
whose first segment is ``G``) waits for the direction's next bytes.

The stages of a direction are handlers (see
:mod:`wspcap.engine.direction`), the methods of this object that take its
bytes: :meth:`~Upgrade._request` then :meth:`~Upgrade._response` for the
usual order; :meth:`~Upgrade._early_answer` for an answer read before its
request (two taps merged, clock skew: request and answer are paired by each
direction's TCP sequence, not by capture order); :meth:`~Upgrade._lost_request`
for a request head with bytes missing; :meth:`~Upgrade._after_refusal` for
what follows an answer other than 101. Plain HTTP requests before the
upgrade on a keep-alive connection (:meth:`~Upgrade._plain_request`) are
read head by head, their bodies skipped, and the server's answers to them
too (:meth:`~Upgrade._plain_answer`), up to MAX_EXCHANGES requests: the
upgrade request after them opens the conversation, and its answer is the
one after theirs; after a 2xx answer to CONNECT (an HTTP proxy's tunnel,
:meth:`~Upgrade._tunnel`), or a SOCKS 4 or 5 handshake that opens a tunnel
(:meth:`~Upgrade._start_socks`), both directions start again, as the
tunnel's own connection (:meth:`~Upgrade._restart`). A 101 (or frames mid-stream) turns
both directions to frames (:meth:`Direction.start_frames
<wspcap.engine.direction.Direction.start_frames>`), each from its own
stream offset; bytes that came before their time were held back and go to
the parser then.

The stage keeps what the connection row and the rules read of the opening:
the :class:`~wspcap.http.upgrade.Handshake`, the negotiated permessage-deflate
parameters, the times and packets of the request and the answer.
"""

from __future__ import annotations

from typing import Any, Protocol

from wspcap.constants import C2S, S2C
from wspcap.engine.collector import Shared
from wspcap.engine.direction import Chunk, Direction, Handler
from wspcap.engine.options import EARLY_CHUNKS, PROBE_CHUNKS
from wspcap.http.h2 import PREFACE, looks_like_settings
from wspcap.http.messages import Body, request_body, response_body
from wspcap.http.upgrade import (
    REQUEST,
    RESPONSE,
    Handshake,
    HeadParser,
    HttpHead,
    looks_like_request,
    looks_like_response,
    maybe_head_kind,
    read_authorization,
)
from wspcap.proxy import SocksHandshake, looks_like_socks
from wspcap.rules.context import preview
from wspcap.rules.thresholds import DEFAULT_THRESHOLDS
from wspcap.tls import TLSSession, maybe_client_hello
from wspcap.ws.deflate import DeflateParams, InflateBudget, Inflater, negotiate
from wspcap.ws.frames import plausible_frames

__all__ = ["MAX_EXCHANGES", "MAX_FOLLOWED", "Connection", "Upgrade"]

#: Plain requests followed before an upgrade on a keep-alive connection, and
#: body bytes of those requests and their answers (about: each body is given
#: what is left when it starts); past them the connection is not followed
#: (see :mod:`wspcap.http.messages`: following costs every packet).
MAX_EXCHANGES = 100
MAX_FOLLOWED = 4 << 20


class Connection(Protocol):
    """What the upgrade stage asks of its connection
    (:class:`~wspcap.engine.session.Session`)."""

    @property
    def tls(self) -> TLSSession | None:
        """The TLS layer, when the connection starts with a ClientHello."""
        ...

    @property
    def client(self) -> int | None:
        """The client's direction, once known."""
        ...

    @property
    def nframes(self) -> int:
        """Frames made so far."""
        ...

    def report(self, ts: int, direction: str | None, frame_index: int | None, code: str,
               detail: str, packet: int | None, offset: int | None = None) -> None:
        """An anomaly of the connection."""
        ...

    def become_websocket(self, client: int) -> None:
        """The connection is WebSocket, ``client`` its client's direction."""
        ...

    def start_tls(self, client: int) -> None:
        """The connection starts with a ClientHello from ``client``."""
        ...

    def give_up(self) -> None:
        """Not WebSocket (or no longer): stop following the connection."""
        ...

    def report_early(self, ts: int, d: int, offset: int, code: str, detail: str,
                     packet: int) -> None:
        """A finding of direction ``d`` made before the connection may be WebSocket."""
        ...

    def start_h2(self, client: int) -> None:
        """The connection speaks HTTP/2, ``client`` its client's direction."""
        ...


class _Side:
    """What the stage keeps of one direction while it opens."""

    __slots__ = ("body", "early_status", "first_ts", "head", "probe_chunks", "sniffed")

    def __init__(self) -> None:
        self.head: HeadParser | None = None  # of the HTTP head being read
        self.body: Body | None = None  # of a plain message before the upgrade, being skipped
        self.probe_chunks = 0  # chunks looked at (or, for an early answer, held)
        self.sniffed: list[Chunk] = []  # first bytes, too few to tell
        self.early_status: int | None = None  # of an answer read before its request
        self.first_ts: int | None = None  # of the first byte


class Upgrade:
    """The opening stage of one connection, until its frames are parsed.

    Args:
        connection: the connection.
        dirs: its two directions, whose bytes the stage takes first.
        shared: what every connection shares (options, inflation budget).

    Attributes:
        handshake: the request (and answer) heads, or None.
        deflate: the negotiated permessage-deflate parameters, or None.
        midstream: frames were found without the opening handshake.
        established: frames are parsed (after a 101, or mid-stream).
        ts_request, request_packet: when the request head was complete.
        ts_response, response_packet: when the answer's head was complete.
        request_end: the stream offset of the end of the request head.
        request_gap: ``(ts, offset, size, packet)`` of bytes lost in the
            request head, if any.
    """

    def __init__(self, connection: Connection, dirs: tuple[Direction, Direction],
                 shared: Shared) -> None:
        self.connection = connection
        self.dirs = dirs
        self.shared = shared
        self.options = shared.options
        self.sides = (_Side(), _Side())
        self.handshake: Handshake | None = None
        self.deflate: DeflateParams | None = None
        self.midstream = False
        self.established = False
        self.ts_request: int | None = None
        self.ts_response: int | None = None
        self.request_packet: int | None = None
        self.response_packet: int | None = None
        self.request_end = 0
        self.request_gap: tuple[int, int, int, int] | None = None
        #: The methods of the plain requests read before the upgrade, in order;
        #: how many of them the server's answers skipped so far; and, once
        #: the upgrade request is read, how many came before it.
        self.asked: list[str] = []
        self.answered = 0
        self.upgrade_at: int | None = None
        #: Body bytes of those requests and answers passed over.
        self.followed = 0
        #: A SOCKS handshake at the start (see :meth:`_start_socks`), the
        #: client's direction in it, and where each direction's bytes end.
        self.socks: SocksHandshake | None = None
        self.socks_client = 0
        self.socks_ends: list[tuple[int, int, int] | None] = [None, None]
        #: The proxy tunnels the connection went through, and the last
        #: CONNECT target asked (see :meth:`_tunnel`).
        self.proxy: str | None = None
        self.connect_target = ""
        for dr in dirs:
            dr.give_to(self._probe)

    def first_ts(self, d: int) -> int | None:
        """The time of direction ``d``'s first byte, once seen."""
        return self.sides[d].first_ts

    # -- first bytes ---------------------------------------------------------------

    def _probe(self, dr: Direction, data: bytes, offset: int, ts: int, packet: int) -> None:
        """First bytes of a direction: TLS, HTTP request, HTTP response, frames, or other."""
        side = self.sides[dr.d]
        if side.first_ts is None:
            side.first_ts = ts
        held = [*side.sniffed, (data, offset, ts, packet)]
        start = b"".join(chunk[0] for chunk in held) if side.sniffed else data
        side.sniffed = []
        c = self.connection
        if c.tls is None and c.client is None:
            hello = maybe_client_hello(start)
            if hello is None:
                side.sniffed = held  # may be the start of a ClientHello: wait for more
                return
            if hello:
                c.start_tls(dr.d)
                for chunk in held:
                    dr.tls_data(*chunk)
                return
            if self.socks is None and self.sides[1 - dr.d].first_ts is None:
                socks = looks_like_socks(start)
                if socks is None:
                    side.sniffed = held  # may be the start of a SOCKS handshake
                    return
                if socks:
                    self._start_socks(dr, held)
                    return
        if self.handshake is None and not self.asked:
            h2 = _starts_h2(start, c.tls is not None)
            if h2 is None:
                side.sniffed = held  # may be the start of the HTTP/2 preface
                return
            if h2:
                side.sniffed = held
                c.start_h2(dr.d if start[:1] == PREFACE[:1] else 1 - dr.d)
                return
        kind = maybe_head_kind(start)
        if kind is None:
            side.sniffed = held
        elif kind == REQUEST:
            self._start_http(dr.d)
            dr.replay(held)
        elif kind == RESPONSE:  # the answer came first in the capture: held until the request
            dr.give_to(self._early_answer)
            dr.replay(held)
        else:
            self._probe_frames(dr, held, start)

    def _probe_frames(self, dr: Direction, held: list[Chunk], start: bytes) -> None:
        """First bytes that are no HTTP: frames mid-stream, or not followed."""
        frames = plausible_frames(start) if self.options.midstream else 0
        if not frames:
            self.connection.give_up()
            return
        # Two chunks in a row, or two frames in one, that frame exactly.
        for chunk in held:
            dr.hold(chunk)
        side = self.sides[dr.d]
        side.probe_chunks += 1
        if side.probe_chunks >= 2 or frames >= 2:
            self._start_midstream(dr)

    def head_lost(self, dr: Direction, offset: int, size: int, ts: int, packet: int) -> None:
        """Bytes of ``dr`` were lost before its frames: in the request head its
        fields are lost (:meth:`_request_lost`); anywhere else (another head, or
        before the roles are known), the direction is given up."""
        if dr.at(self._request) and not self.asked:
            self._request_lost(dr, offset, size, ts, packet)
        elif self.asked and self.handshake is None:
            self.connection.give_up()  # in plain HTTP: where its messages end is lost
        elif not dr.ignored:
            dr.ignore()

    # -- the request ---------------------------------------------------------------

    def _start_http(self, client: int) -> None:
        self.sides[client].head = HeadParser()
        self.dirs[client].give_to(self._request)
        self.dirs[1 - client].hold_back()

    def _request(self, dr: Direction, data: bytes, offset: int, ts: int, packet: int) -> None:
        """The client's request head; then its bytes wait for the answer. A
        plain request before it (keep-alive) is passed over, body and all."""
        side = self.sides[dr.d]
        if side.body is not None:  # a plain request's body
            rest = self._skip(side, data)
            if rest is None:
                return
            side.head = HeadParser()
            offset += len(data) - len(rest)
            data = rest
            if not data:
                return
        parser = side.head
        assert parser is not None
        if side.first_ts is None:
            side.first_ts = ts
        head = parser.receive_data(data)
        if head is None:
            if parser.too_large:
                self.connection.give_up()
            return
        trailing = parser.trailing
        end = offset + len(data) - len(trailing)
        self._proxy_credentials(dr, head, offset, ts, packet)
        hs = Handshake.from_request(head)
        if not (hs.upgrade_websocket or hs.key is not None):
            self._plain_request(dr, head, trailing, end, ts, packet)
            return
        self.handshake = hs
        self.connection.become_websocket(dr.d)
        self.ts_request = ts
        self.request_packet = packet
        self.request_end = end
        side.head = None
        dr.hold_back()
        if trailing:
            dr.hold((trailing, self.request_end, ts, packet))
        server = self.dirs[1 - dr.d]
        if server.at(self._plain_answer) and self.answered < len(self.asked):
            self.upgrade_at = len(self.asked)  # read once the answers before are
        else:
            self.sides[server.d].head = HeadParser()
            server.hand_over(self._response)

    def _plain_request(self, dr: Direction, head: HttpHead, trailing: bytes, end: int,
                       ts: int, packet: int) -> None:
        """A request that is not an upgrade, whose head ends at stream offset
        ``end``: its body is skipped and the next request read, the server's
        answer to it skipped likewise (:meth:`_plain_answer`)."""
        connect = head.method == "CONNECT"
        body = Body(0) if connect else request_body(head, max(0, MAX_FOLLOWED - self.followed))
        if body is None or len(self.asked) >= MAX_EXCHANGES:
            # Plain HTTP that cannot be followed further: not ours.
            self.connection.give_up()
            return
        self.asked.append(head.method)
        if connect:
            self.connect_target = head.target
        side = self.sides[dr.d]
        side.head = None
        side.body = None if connect else body
        side.first_ts = None  # (the request that upgrades starts later)
        if connect:  # a tunnel, if the answer says so: what follows waits for it
            dr.hold_back()
            if trailing:
                dr.hold((trailing, end, ts, packet))
        server = self.dirs[1 - dr.d]
        if server.held_back:  # its answer comes now, and those held before it
            self.sides[server.d].head = None
            server.hand_over(self._plain_answer)
        if trailing and not connect:
            self._request(dr, trailing, end, ts, packet)

    def _plain_answer(self, dr: Direction, data: bytes, offset: int, ts: int,
                      packet: int) -> None:
        """The server's answers to the plain requests before the upgrade,
        passed over: each head read, then its body skipped. At the end of
        the answers read so far, the answer to the upgrade request is read
        (:meth:`_response`), or bytes wait for the next request."""
        side = self.sides[dr.d]
        while data:
            if side.body is not None:
                rest = self._skip(side, data)
                if rest is None:
                    return
                self.answered += 1
                offset += len(data) - len(rest)
                data = rest
                continue
            if side.head is None:  # between answers
                if self.answered == self.upgrade_at:
                    side.head = HeadParser()
                    dr.give_to(self._response)
                    self._response(dr, data, offset, ts, packet)
                    return
                if self.answered >= len(self.asked):  # before its request is read
                    dr.hold_back()
                    dr.hold((data, offset, ts, packet))
                    return
                side.head = HeadParser()
            head = side.head.receive_data(data)
            if head is None:
                if side.head.too_large:
                    self.connection.give_up()
                return
            rest = side.head.trailing
            offset += len(data) - len(rest)
            data = rest
            side.head = None
            status = head.status
            if status == 101:  # switched to a protocol that is not WebSocket (h2c...)
                self.connection.give_up()
                return
            if status is not None and 100 <= status < 200:
                continue  # an interim answer: the final one follows
            method = self.asked[self.answered]
            if method == "CONNECT" and status is not None and 200 <= status < 300:
                self._tunnel(dr, data, offset, ts, packet)
                return
            body = response_body(head, method, max(0, MAX_FOLLOWED - self.followed))
            if body is None:
                self.connection.give_up()
                return
            side.body = body
            client = self.dirs[1 - dr.d]
            if method == "CONNECT" and client.held_back:  # refused: plain HTTP goes on
                self.sides[client.d].head = HeadParser()
                client.hand_over(self._request)

    def _skip(self, side: _Side, data: bytes) -> bytes | None:
        """``data`` into the plain message body ``side`` is passing over: the
        bytes after the body once it ended, else None (and the connection
        given up where its framing broke)."""
        body = side.body
        assert body is not None
        rest = body.receive_data(data)
        if rest is None:
            if body.failed:
                self.connection.give_up()
            return None
        side.body = None
        self.followed += body.skipped
        return rest

    def _tunnel(self, server: Direction, data: bytes, offset: int, ts: int,
                packet: int) -> None:
        """A 2xx answer to CONNECT (through an HTTP proxy), ``data`` after its
        head: from here on each direction carries the tunnel's own stream
        (RFC 9110 section 9.3.6)."""
        self._tunneled(f"CONNECT {self.connect_target}")
        client = self.dirs[1 - server.d]
        self._restart(client, client.take_held(),
                      [(data, offset, ts, packet)] if data else [])

    def _tunneled(self, proxy: str) -> None:
        """The connection goes through a proxy's tunnel (after those before, if any)."""
        self.proxy = proxy if self.proxy is None else f"{self.proxy}, {proxy}"

    def _restart(self, client: Direction, client_bytes: list[Chunk],
                 server_bytes: list[Chunk]) -> None:
        """A proxy's tunnel is open: each direction's bytes from here on (the
        first of them given) are read as a connection's first bytes are
        (:meth:`_probe`: a ClientHello for wss://, an upgrade request for ws://)."""
        self.sides = (_Side(), _Side())
        self.asked, self.answered, self.upgrade_at, self.followed = [], 0, None, 0
        server = self.dirs[1 - client.d]
        for dr, chunks in ((client, client_bytes), (server, server_bytes)):
            dr.give_to(self._probe)
            for chunk in chunks:
                if self.connection.tls is not None:  # (a ClientHello started it)
                    dr.tls_data(*chunk)
                else:
                    dr.receive(*chunk)

    def _proxy_credentials(self, dr: Direction, head: HttpHead, offset: int, ts: int,
                           packet: int) -> None:
        """A request that gives a proxy a user and password in the clear
        (``Proxy-Authorization: Basic``, RFC 7617 section 4: not encrypted)."""
        value = head.get("Proxy-Authorization")
        if value is None or self.connection.tls is not None:
            return
        scheme, _token, pair = read_authorization(value)
        if scheme != "basic":
            return
        said = (f"user {preview(pair[0], 40)}, a password of {len(pair[1])} characters"
                if pair else "a Basic token that does not decode to user:password")
        self.connection.report_early(ts, dr.d, offset, "sec_proxy_credentials",
                                     f"Proxy-Authorization Basic on {head.method}: {said}",
                                     packet)

    # -- a SOCKS proxy -------------------------------------------------------------

    def _start_socks(self, client: Direction, held: list[Chunk]) -> None:
        """The client's first bytes start a SOCKS handshake (:mod:`wspcap.proxy.socks`)."""
        self.socks = SocksHandshake()
        self.socks_client = client.d
        for dr in self.dirs:
            dr.give_to(self._socks)
        client.replay(held)

    def _socks(self, dr: Direction, data: bytes, offset: int, ts: int, packet: int) -> None:
        """A direction's bytes during the SOCKS handshake; once the tunnel is
        granted, the bytes after the handshake start each direction again
        (:meth:`_restart`)."""
        socks = self.socks
        assert socks is not None
        self.socks_ends[dr.d] = (offset + len(data), ts, packet)
        if dr.d == self.socks_client:
            said = socks.password_size is not None
            socks.receive_client(data)
            if not said and socks.password_size is not None:
                self.connection.report_early(
                    ts, dr.d, offset, "sec_proxy_credentials",
                    f"SOCKS 5 username/password: user {preview(socks.user or '', 40)}, "
                    f"a password of {socks.password_size} bytes", packet)
        else:
            socks.receive_server(data)
        if socks.failed is not None:
            self.connection.give_up()
        elif socks.granted:
            self._tunneled(f"SOCKS{socks.version} {socks.target}")
            client = self.dirs[self.socks_client]
            rests = []
            for d, rest in ((client.d, socks.client_rest), (1 - client.d, socks.server_rest)):
                end = self.socks_ends[d]
                rests.append([(rest, end[0] - len(rest), end[1], end[2])] if rest and end else [])
            self._restart(client, rests[0], rests[1])

    def _request_lost(self, dr: Direction, offset: int, size: int, ts: int,
                      packet: int) -> None:
        """Bytes of the request head were not captured: its fields cannot be read,
        but the conversation can. The client's frames start after the head's end
        (:meth:`_lost_request`), the server's after its answer (:meth:`_early_answer`),
        as for a 101 whose request was not captured."""
        self.request_gap = (ts, offset, size, packet)
        self.sides[dr.d].head = HeadParser()
        dr.give_to(self._lost_request)
        self.dirs[1 - dr.d].hand_over(self._early_answer)

    def _lost_request(self, dr: Direction, data: bytes, offset: int, ts: int,
                      packet: int) -> None:
        """The client's bytes after a gap in its request head: the rest of the head
        (unless they frame exactly: the gap took the head's end), then frames, held
        until the answer is read (EARLY_CHUNKS segments at most)."""
        side = self.sides[dr.d]
        head = side.head
        if head is not None and plausible_frames(data):
            side.head = None  # the gap took the head's end: frames from here on
            self.request_end = offset
            dr.hold((data, offset, ts, packet))
        elif head is not None:
            if head.receive_data(data) is None:
                if head.too_large:
                    self.connection.give_up()
                return
            trailing = head.trailing
            side.head = None
            self.request_end = offset + len(data) - len(trailing)
            if trailing:
                dr.hold((trailing, self.request_end, ts, packet))
        else:
            dr.hold((data, offset, ts, packet))
        srv = self.dirs[1 - dr.d]
        if self.sides[srv.d].early_status == 101 and srv.at(self._early_answer):
            self._start_midstream(srv, dr.d)
        elif len(dr.pending) > EARLY_CHUNKS:
            self.connection.give_up()

    # -- the answer ----------------------------------------------------------------

    def _early_answer(self, dr: Direction, data: bytes, offset: int, ts: int,
                      packet: int) -> None:
        """The server's bytes while the client's request is not read yet: its HTTP
        answer, then frames if it is a 101.

        These wait for the request (see :meth:`_request`). The answer's head is
        read as it comes, to bound what is held: the head itself up to MAX_HEAD
        bytes; then after a 101 up to EARLY_CHUNKS segments and ``max_pending``
        bytes, past which the frames are read without the request
        (:meth:`_start_midstream`); after any other answer PROBE_CHUNKS * 4
        segments, past which the connection is not followed.
        """
        side = self.sides[dr.d]
        dr.hold((data, offset, ts, packet))
        if side.head is None and side.early_status is None:
            side.head = HeadParser()
        if side.head is not None:
            head = side.head.receive_data(data)
            if head is None and not side.head.too_large:
                return
            side.head = None
            side.early_status = head.status if head is not None and head.status else 0
            side.probe_chunks = len(dr.pending)  # (segments held up to the head's end)
        after = len(dr.pending) - side.probe_chunks
        if side.early_status == 101:
            client = self.dirs[1 - dr.d]
            if ((client.at(self._lost_request) and self.sides[client.d].head is None)
                    or after > EARLY_CHUNKS
                    or offset + len(data) - dr.pending[0][1] > self.options.max_pending):
                self._start_midstream(dr, client.d)
        elif after > PROBE_CHUNKS * 4:
            self.connection.give_up()

    def _response(self, dr: Direction, data: bytes, offset: int, ts: int, packet: int) -> None:
        """The server's answer head, after the request: a 101 starts the frames."""
        side = self.sides[dr.d]
        parser = side.head
        assert parser is not None
        head = parser.receive_data(data)
        if head is None:
            if parser.too_large:
                self.connection.report(ts, S2C, None, "http_head_too_large",
                                       "response head over 64 KiB", packet)
                self.connection.give_up()  # the rest of the connection is not WebSocket
            return
        trailing = parser.trailing
        end = offset + len(data) - len(trailing)
        status = head.status
        if status is not None and 100 <= status < 200 and status != 101:
            side.head = HeadParser()  # an interim answer (100 Continue): the real one follows
            if trailing:
                self._response(dr, trailing, end, ts, packet)
            return
        hs = self.handshake
        assert hs is not None
        hs.answer(head)
        self.ts_response = ts
        self.response_packet = packet
        side.head = None
        if status == 101:
            self._accepted(dr, trailing, end, ts, packet)
        else:
            self._refused(dr, head, trailing, end, ts, packet)

    def _accepted(self, dr: Direction, trailing: bytes, end: int, ts: int,
                  packet: int) -> None:
        """A 101 that ends at stream offset ``end`` of the server's direction
        ``dr``, ``trailing`` after it: the frames start."""
        client = self.dirs[1 - dr.d]
        held = client.take_held()
        self._check_accept(ts, packet)
        self._negotiate(ts, packet)
        # (the client's reassembler is still delivering the request's last bytes when
        # an answer held before it is read: its offset is not past them yet)
        self._start_frames({dr.d: end, client.d: held[0][1] if held else max(
            client.stream_offset, self.request_end)})
        if trailing:
            self.connection.report(ts, S2C, None, "http_data_with_101",
                                   f"{len(trailing)} bytes after the 101 head in the same "
                                   "segment", packet)
            dr.receive(trailing, end, ts, packet)
        if held:
            first = self.connection.nframes
            client.replay(held)
            count = self.connection.nframes - first
            self._frames_before_101(held, first if count else None, count)

    def _negotiate(self, ts: int, packet: int) -> None:
        """The permessage-deflate parameters the server's answer accepted (the
        problems with them reported at that answer)."""
        assert self.handshake is not None
        self.deflate, problems = negotiate(self.handshake.extensions)
        for problem in problems:
            self.connection.report(ts, S2C, None, "pmd_params_invalid", problem, packet)

    def _frames_before_101(self, held: list[Chunk], index: int | None, count: int) -> None:
        """RFC 6455 section 4.1: the client "MUST wait for a response from the
        server before sending any further data"."""
        _data, offset, ts, packet = held[0]
        size = sum(len(chunk[0]) for chunk in held)
        frames = f" ({count} frame{'s' if count > 1 else ''})" if count else ""
        self.connection.report(ts, C2S, index, "http_frames_before_101",
                               f"{size} bytes{frames} sent by the client before the answer",
                               packet, offset)

    def _check_accept(self, ts: int, packet: int) -> None:
        hs = self.handshake
        assert hs is not None
        report = self.connection.report
        if hs.key is None:
            report(ts, C2S, None, "http_key_missing",
                   "the upgrade request has no Sec-WebSocket-Key", packet)
        if hs.accept is None:
            report(ts, S2C, None, "http_accept_missing",
                   "the 101 answer has no Sec-WebSocket-Accept", packet)
        elif hs.accept_valid is False and hs.key is not None:
            report(ts, S2C, None, "http_accept_mismatch",
                   f"expected={hs.accept_expected}, found={hs.accept}", packet)

    # -- a refused upgrade ---------------------------------------------------------

    def _refused(self, dr: Direction, head: HttpHead, trailing: bytes, end: int, ts: int,
                 packet: int) -> None:
        """An answer other than 101 that ends at stream offset ``end`` of the
        server's direction ``dr``, ``trailing`` after it: look at what follows
        for frames, then stop."""
        if head.status is None:
            self.connection.report(ts, S2C, None, "http_status_invalid",
                                   f"status line {preview(head.start_line, 60)} has no "
                                   "three-digit status code", packet)
        else:
            self.connection.report(ts, S2C, None, "http_status_not_101",
                                   f"status {head.status} {head.reason}".rstrip(), packet)
        held = self.dirs[1 - dr.d].pending
        if held and plausible_frames(held[0][0]):
            self._frames_before_101(held, None, 0)
        if trailing:
            dr.hold((trailing, end, ts, packet))
        for d in self.dirs:
            self.sides[d.d].probe_chunks = 0
            d.hand_over(self._after_refusal)

    def _after_refusal(self, dr: Direction, data: bytes, offset: int, ts: int,
                       packet: int) -> None:
        """Bytes after a refused upgrade: WebSocket frames there are the smuggling
        pattern (``http_frames_without_101``); HTTP (keep-alive) is not followed."""
        side = self.sides[dr.d]
        if (plausible_frames(data) and not looks_like_request(data)
                and not looks_like_response(data)):
            status = self.handshake.status if self.handshake is not None else None
            answer = f"status {status}" if status is not None else "an unreadable status line"
            self.connection.report(ts, dr.name, None, "http_frames_without_101",
                                   f"{dr.name} bytes frame as WebSocket after {answer}",
                                   packet, offset)
            side.probe_chunks = PROBE_CHUNKS
        else:
            side.probe_chunks += 1
        if side.probe_chunks >= PROBE_CHUNKS:
            dr.ignore()
            if all(d.ignored for d in self.dirs):
                self.connection.give_up()  # (nothing is held by then)

    # -- HTTP/2 --------------------------------------------------------------------

    def hand_to_h2(self, handler: Handler) -> None:
        """The connection speaks HTTP/2: from now on both directions' bytes go to
        ``handler`` (:meth:`H2Streams.receive <wspcap.engine.h2.H2Streams.receive>`),
        beginning with those looked at so far."""
        for dr in self.dirs:
            side = self.sides[dr.d]
            held, side.sniffed = side.sniffed, []
            dr.give_to(handler)
            dr.replay(held)

    def h2_opened(self, head: HttpHead, ts: int, packet: int) -> None:
        """The connection is a WebSocket stream of an HTTP/2 connection, opened by
        the extended CONNECT ``head`` (RFC 8441 section 4): its client is
        direction 0, and both directions' bytes wait for the answer
        (:meth:`h2_answered`)."""
        self.handshake = Handshake.from_request(head)
        self.ts_request, self.request_packet = ts, packet
        self.sides[0].first_ts = ts
        self.connection.become_websocket(0)
        for dr in self.dirs:
            dr.hold_back()

    def h2_answered(self, head: HttpHead, ts: int, packet: int) -> None:
        """The server's answer on the stream: a 2xx starts the frames (RFC 8441
        section 5), anything else ends the stream's following."""
        hs = self.handshake
        assert hs is not None
        hs.answer(head)
        self.ts_response, self.response_packet = ts, packet
        if self.sides[1].first_ts is None:
            self.sides[1].first_ts = ts
        if not hs.accepted:
            self.connection.report(ts, S2C, None, "http_status_not_101",
                                   f"status {hs.status} {hs.reason}".rstrip()
                                   + " to the HTTP/2 extended CONNECT", packet)
            for dr in self.dirs:
                dr.ignore(drop=True)
            return
        self._negotiate(ts, packet)
        self._start_frames({0: 0, 1: 0})
        for dr in self.dirs:
            dr.replay(dr.take_held())

    # -- frames --------------------------------------------------------------------

    def _start_frames(self, offsets: dict[int, int]) -> None:
        """Frame parsing begins; ``offsets`` gives each direction's first frame offset."""
        self.established = True
        params = self.deflate
        budgets = self._inflate_budgets() if params is not None else ()
        for dr in self.dirs:
            is_client = dr.d == self.connection.client
            inflater = None
            if params is not None:
                bits, no_takeover = ((params.client_max_window_bits,
                                      params.client_no_context_takeover) if is_client else
                                     (params.server_max_window_bits,
                                      params.server_no_context_takeover))
                inflater = Inflater(bits, no_takeover, self.options.max_inflated, budgets)
            dr.start_frames(offsets[dr.d], is_client, inflater, self.options.max_payload)

    def _inflate_budgets(self) -> tuple[InflateBudget, InflateBudget]:
        """The connection's inflation budget (both directions share it) and the capture's."""
        th = self.options.thresholds or DEFAULT_THRESHOLDS
        return (InflateBudget(th.inflate_budget_connection, "connection"),
                self.shared.inflate_budget)

    def _start_midstream(self, dr: Direction, client: int | None = None) -> None:
        """Frames without a captured handshake: the masking direction is the client
        (unless ``client`` says which it is: the other side of a 101 answer)."""
        first, _offset, ts, packet = dr.pending[0]
        if client is None:
            client = dr.d if first[1] & 0x80 else 1 - dr.d
        self.midstream = True
        self.connection.become_websocket(client)
        self._report_missing(ts, packet)
        # Without the handshake, permessage-deflate is assumed when RSV1 shows up.
        self.deflate = None
        budgets = self._inflate_budgets()
        held: list[tuple[int, int, Chunk]] = []  # packet, direction, chunk
        for d in self.dirs:
            held += [(chunk[3], d.d, chunk) for chunk in self._frames_from(d, client, budgets)]
        # Replay both directions in capture order, so frame_index follows it.
        for _packet, d_index, chunk in sorted(held, key=lambda h: (h[0], h[1])):
            self.dirs[d_index].receive(*chunk)
        self.established = True

    def _frames_from(self, dr: Direction, client: int,
                     budgets: tuple[InflateBudget, ...]) -> list[Chunk]:
        """Direction ``dr`` turns to frames without the handshake: the chunks it
        held back that are frames (for the caller to feed)."""
        held = dr.take_held()
        start = held[0][1] if held else dr.stream_offset
        if dr.d == client and self.request_gap is not None and not held:
            # (the reassembler may still be delivering the head's last bytes)
            start = max(start, self.request_end)
        if self.sides[dr.d].early_status == 101:  # a 101 without its request
            held, start = _after_head(held, start)  # frames follow its head
        dr.start_frames(start, dr.d == client,
                        _MidstreamInflater(self.options.max_inflated, budgets),
                        self.options.max_payload)
        return held

    def _report_missing(self, ts: int, packet: int) -> None:
        if self.request_gap is not None:
            seen = "frames after a request head with bytes missing (tcp_gap)"
        elif any(side.early_status == 101 for side in self.sides):
            seen = "frames after a 101 answer whose request was not captured"
        else:
            seen = "frames seen without the opening handshake"
        self.connection.report(ts, None, None, "http_handshake_missing",
                               f"{seen}; extensions unknown "
                               "(RSV1 messages are inflated as permessage-deflate)", packet)

    # -- end -----------------------------------------------------------------------

    def finish(self) -> None:
        """End of input: a 101 whose request never came starts the frames."""
        for dr in self.dirs:
            if dr.at(self._early_answer) and self.sides[dr.d].early_status == 101:
                self._start_midstream(dr, 1 - dr.d)

    def columns(self) -> dict[str, Any]:
        """The opening's columns of the connection's row."""
        seen = self.handshake is not None
        hs = self.handshake or Handshake()
        return {
            "handshake": seen,
            "established": self.established,
            "method": hs.method or None,
            "uri": hs.uri or None,
            "host": hs.host,
            "origin": hs.origin,
            "user_agent": hs.user_agent,
            "cookie": hs.cookie if seen else None,
            "authorization": hs.authorization if seen else None,
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
            "permessage_deflate": self.deflate is not None,
            "proxy": self.proxy,
        }


def _starts_h2(start: bytes, tls: bool) -> bool | None:
    """Whether a direction's first bytes open HTTP/2: the client's preface, or
    (over TLS, where the server may speak first) a SETTINGS frame; None while
    they may still be the preface's start."""
    if start.startswith(PREFACE):
        return True
    if PREFACE.startswith(start):
        return None
    return tls and looks_like_settings(start)


def _after_head(held: list[Chunk], start: int) -> tuple[list[Chunk], int]:
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
