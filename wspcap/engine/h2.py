"""The WebSocket streams of one HTTP/2 connection (RFC 8441): each a connection of its own.

A TCP connection that speaks HTTP/2 (chosen by ALPN over TLS, or opened
with the client preface in clear) may carry WebSockets as streams
(:mod:`wspcap.http.h2`). :class:`H2Streams` takes the in-order bytes of both
its directions (plaintext, after TLS) as their handler, reads them with an
:class:`~wspcap.http.h2.H2Reader`, and gives each WebSocket stream a
connection of its own, opened by the carrying connection
(:meth:`Carrier.open_stream`): its own conn_id and row, its handshake the
stream's request and answer, its bytes the stream's DATA in each direction,
its end the stream's END_STREAM or RST_STREAM. Everything above (frames,
messages, inflation, rules, application decoders) reads such a connection as
it reads any other.

Each event is timed by the segment that held its first byte (for a DATA
frame, the first byte of its payload): the direction's chunks are marked
from the first byte the reader has not finished with.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Protocol

from wspcap.http.h2 import H2Data, H2Event, H2Problem, H2Reader, H2Request, H2Reset, H2Response
from wspcap.http.upgrade import HttpHead

if TYPE_CHECKING:
    from wspcap.engine.direction import Direction

__all__ = ["Carrier", "H2Streams", "StreamConnection", "head_of"]


class StreamConnection(Protocol):
    """What a WebSocket stream's connection is told (a
    :class:`~wspcap.engine.session.Session` made by :meth:`Carrier.open_stream`)."""

    def stream_answer(self, head: HttpHead, end_stream: bool, ts: int, packet: int) -> None:
        """The server's answer to the extended CONNECT."""
        ...

    def stream_data(self, client: bool, data: bytes, end_stream: bool, ts: int,
                    packet: int) -> None:
        """DATA from the client (``client``) or the server."""
        ...

    def stream_reset(self, client: bool, code: int, ts: int, packet: int) -> None:
        """RST_STREAM from the client or the server."""
        ...

    def stream_problem(self, client: bool, code: str, detail: str, ts: int,
                       packet: int) -> None:
        """The HTTP/2 connection could not be read further in one direction."""
        ...

    def stream_carrier_end(self, client: bool, reset: bool, ts: int, packet: int) -> None:
        """The carrying connection's FIN (or RST) in one direction."""
        ...

    def finish(self) -> None:
        """End of input."""
        ...


class Carrier(Protocol):
    """What :class:`H2Streams` asks of the connection that carries the streams."""

    def open_stream(self, stream: int, head: HttpHead, allowed: bool, ts: int, packet: int
                    ) -> StreamConnection:
        """A connection for WebSocket stream ``stream``, opened by request ``head``
        (``allowed``: after the server's SETTINGS_ENABLE_CONNECT_PROTOCOL)."""
        ...


class H2Streams:
    """The WebSocket streams of one HTTP/2 connection (see the module's note).

    Args:
        carrier: the connection that carries them.
        client: its client's direction (0 or 1).
    """

    def __init__(self, carrier: Carrier, client: int) -> None:
        self.carrier = carrier
        self.client = client
        self.reader = H2Reader(client)
        self.streams: dict[int, StreamConnection] = {}
        #: Per direction: (reader offset, ts, packet) of the chunks from the
        #: first byte the reader has not finished with.
        self.marks: tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]] = ([], [])
        #: Per direction: bytes given to the reader so far, and of them those
        #: read (not lost).
        self.given = [0, 0]
        self.read = [0, 0]

    def receive(self, dr: Direction, data: bytes, offset: int, ts: int, packet: int) -> None:
        """A direction's handler: its next in-order bytes."""
        d = dr.d
        marks = self.marks[d]
        marks.append((self.given[d], ts, packet))
        self.given[d] += len(data)
        self.read[d] += len(data)
        events = self.reader.receive(d, data)
        if events:
            self._events(events)
        pending = self.reader.pending(d)
        if pending == self.given[d]:  # (the chunk ended on a frame's end: nothing held)
            del marks[:-1]
        else:
            keep = bisect.bisect_right(marks, (pending, 1 << 62, 0)) - 1
            if keep > 0:
                del marks[:keep]

    def lose(self, d: int, size: int, ts: int, packet: int) -> None:
        """``size`` bytes of direction ``d`` were lost."""
        self.marks[d].append((self.given[d], ts, packet))
        self.given[d] += size
        self._events(self.reader.lose(d, size))

    def _when(self, d: int, offset: int) -> tuple[int, int]:
        """The (ts, packet) of the chunk holding reader offset ``offset`` of ``d``."""
        marks = self.marks[d]
        last = marks[-1]
        if offset >= last[0]:  # (most often: in the chunk just given)
            return last[1], last[2]
        i = max(0, bisect.bisect_right(marks, (offset, 1 << 62, 0)) - 1)
        return marks[i][1], marks[i][2]

    def _events(self, events: list[H2Event]) -> None:
        """What the reader gave, each event timed and routed by its own
        direction (an answer read before its request comes out with the
        request, among the client's bytes' events)."""
        for event in events:
            if isinstance(event, H2Request):
                d = self.client
            elif isinstance(event, H2Response):
                d = 1 - self.client
            else:
                d = event.d
            client = d == self.client
            ts, packet = self._when(d, event.offset)
            if isinstance(event, H2Data):
                stream = self.streams.get(event.stream)
                if stream is not None:
                    stream.stream_data(client, event.data, event.end_stream, ts, packet)
            elif isinstance(event, H2Request):
                self.streams[event.stream] = self.carrier.open_stream(
                    event.stream, head_of(event.headers, request=True), event.allowed, ts,
                    packet)
            elif isinstance(event, H2Response):
                stream = self.streams.get(event.stream)
                if stream is not None:
                    stream.stream_answer(head_of(event.headers, request=False),
                                         event.end_stream, ts, packet)
            elif isinstance(event, H2Reset):
                stream = self.streams.get(event.stream)
                if stream is not None:
                    stream.stream_reset(client, event.code, ts, packet)
            elif isinstance(event, H2Problem):
                for stream in self.streams.values():
                    stream.stream_problem(client, event.code, event.detail, ts, packet)

    def finish(self, ends: list[tuple[bool, bool, int | None]], packet: int) -> None:
        """End of input: what the reader still held is told; each stream ends
        where the carrying connection ended (``ends``: per direction, its FIN,
        its RST and their time; ``packet``: the connection's last), then each
        stream's connection ends."""
        self._events(self.reader.finish())
        for stream in self.streams.values():
            for d, (fin, rst, ts) in enumerate(ends):
                if (fin or rst) and ts is not None:
                    stream.stream_carrier_end(d == self.client, rst and not fin, ts, packet)
            stream.finish()


def head_of(fields: tuple[tuple[str, str], ...], request: bool) -> HttpHead:
    """An HTTP/2 header list as the head an HTTP/1.1 opening would have had
    (RFC 8441 section 5): ``CONNECT :path HTTP/2`` (``:authority`` as Host)
    for a request, ``HTTP/2 :status`` for an answer; the other fields as sent."""
    pseudo = {k: v for k, v in fields if k.startswith(":")}
    headers = tuple((k, v) for k, v in fields if not k.startswith(":"))
    if request:
        start = f"{pseudo.get(':method', '')} {pseudo.get(':path', '')} HTTP/2"
        if ":authority" in pseudo:
            headers = (("host", pseudo[":authority"]), *headers)
    else:
        start = f"HTTP/2 {pseudo.get(':status', '')}"
    size = sum(len(k) + len(v) + 32 for k, v in fields)  # (RFC 9113 section 6.5.2's size)
    return HttpHead(start, headers, size)
