"""WebSockets over HTTP/2: the streams that RFC 8441's extended CONNECT opens.

Sans-I/O: performs no I/O. A browser that already holds an HTTP/2
connection to a server which allows it (``SETTINGS_ENABLE_CONNECT_PROTOCOL``)
opens a WebSocket as one more stream of that connection: a ``CONNECT``
request whose ``:protocol`` pseudo-header is ``websocket``, answered with a
2xx (`RFC 8441 section 4 and 5
<https://www.rfc-editor.org/rfc/rfc8441#section-4>`_); the WebSocket frames
then travel as that stream's DATA, in both directions. Chromium does this
by default. :class:`H2Reader` reads both directions of one HTTP/2
connection as an observer and gives, for each such stream, its request and
its answer (the header fields), its DATA bytes in order, and its end.

Design note
-----------
- Frames are cut and read by hyperframe and header blocks decoded by hpack,
  the HTTP/2 libraries of python-hyper (h2 uses them): as an endpoint h2 would
  refuse what an observer must still read through, and send what it cannot.
- HPACK's dynamic table is per direction and changes with every header
  block, so every block of a direction is decoded, in order, whichever
  stream it belongs to (requests, answers, trailers, PUSH_PROMISE); the
  table size a peer allows (its ``SETTINGS_HEADER_TABLE_SIZE``) is the one
  the other direction's encoder may use, up to :data:`MAX_TABLE_SIZE`.
- A header block that cannot be decoded (bytes lost before it, a broken
  encoder) leaves that direction's table unknown: its later blocks are not
  read (:data:`H2_HEADERS`), but DATA of the streams already known still is.
- Bytes lost in a direction (:meth:`H2Reader.lose`) leave no way to find
  the next frame (HTTP/2 has no marker to resynchronise on): that direction
  is read no further.
- DATA of the other streams (pages, images, API calls) is passed over
  without a copy of its payload; a frame is held until whole, at most
  :data:`MAX_FRAME` bytes (the 24-bit length field's limit). DATA frames
  are read without hyperframe's objects (:attr:`H2Reader.fast`; its reading
  is the reference the tests compare with).
- An answer read before its request (two taps merged, clocks apart: each
  direction's bytes are in order, the two may not be) is kept, with the DATA
  after it, until the request comes (:data:`MAX_EARLY` streams,
  :data:`MAX_EARLY_BYTES`).
- The end of input inside a frame, a header block or the preface is told
  (:meth:`H2Reader.finish`): nothing held is dropped in silence.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from hpack import Decoder as HpackDecoder
from hpack import HPACKError
from hyperframe.exceptions import HyperframeError
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    HeadersFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
)

__all__ = [
    "H2_HEADERS",
    "H2_MALFORMED",
    "MAX_FRAME",
    "MAX_HEADER_BLOCK",
    "MAX_TABLE_SIZE",
    "PREFACE",
    "H2Data",
    "H2Problem",
    "H2Reader",
    "H2Request",
    "H2Reset",
    "H2Response",
    "looks_like_settings",
]

#: The client connection preface (RFC 9113 section 3.4).
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: A frame's header.
FRAME_HEADER = 9
#: The longest frame a length field can declare.
MAX_FRAME = (1 << 24) - 1
#: A header block (HEADERS or PUSH_PROMISE and its CONTINUATIONs) longer than
#: this is not decoded: the direction's table is lost from there.
MAX_HEADER_BLOCK = 256 << 10
#: The largest dynamic table a peer may allow the other's encoder.
MAX_TABLE_SIZE = 1 << 20
#: A header list longer than this (decoded) is refused by the decoder.
MAX_HEADER_LIST = 256 << 10
#: Streams whose answer may wait for its request, and the DATA bytes held for them.
MAX_EARLY = 16
MAX_EARLY_BYTES = 1 << 20
#: A frame header: length and type (one word), flags, stream id (RFC 9113 section 4.1).
_HEAD = struct.Struct(">IBI")
#: DATA's flags (RFC 9113 section 6.1).
_END_STREAM, _PADDED = 0x1, 0x8

#: Codes of :class:`H2Problem`.
H2_MALFORMED = "h2_malformed"
H2_HEADERS = "h2_headers_unreadable"


@dataclass(frozen=True, slots=True)
class H2Request:
    """A WebSocket stream opened: the client's extended CONNECT request.

    ``headers`` are the request's fields in order, pseudo-headers included,
    names lower-case (HTTP/2 sends them so), values as Latin-1 text.
    """

    stream: int
    headers: tuple[tuple[str, str], ...]
    offset: int
    #: The server had allowed extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL
    #: = 1) before the request: RFC 8441 section 4 forbids it otherwise.
    allowed: bool = True


@dataclass(frozen=True, slots=True)
class H2Response:
    """The server's answer on a WebSocket stream (its first HEADERS)."""

    stream: int
    headers: tuple[tuple[str, str], ...]
    end_stream: bool
    offset: int


@dataclass(frozen=True, slots=True)
class H2Data:
    """DATA of a WebSocket stream from direction ``d``: ``data`` starts at
    ``offset`` of that direction's bytes; ``end_stream``: its last."""

    d: int
    stream: int
    data: bytes
    end_stream: bool
    offset: int


@dataclass(frozen=True, slots=True)
class H2Reset:
    """RST_STREAM on a WebSocket stream, sent by direction ``d``."""

    d: int
    stream: int
    code: int
    offset: int


@dataclass(frozen=True, slots=True)
class H2Problem:
    """Direction ``d`` could not be read further (``code``: :data:`H2_MALFORMED`)
    or its header blocks could not (:data:`H2_HEADERS`)."""

    d: int
    code: str
    detail: str
    offset: int


H2Event = H2Request | H2Response | H2Data | H2Reset | H2Problem


def looks_like_settings(data: bytes) -> bool:
    """Whether ``data`` starts with a SETTINGS frame (a server's first frame)."""
    return (len(data) >= FRAME_HEADER and data[3] == 0x4 and data[4] & ~0x1 == 0
            and not any(data[5:9]) and int.from_bytes(data[:3], "big") % 6 == 0)


class _Side:
    """What one direction's reader keeps between calls."""

    __slots__ = ("base", "block", "buffer", "dead", "decoder", "preface", "unreadable")

    def __init__(self, preface: bool) -> None:
        #: Bytes not read yet, and the direction offset of the first of them.
        self.buffer = bytearray()
        self.base = 0
        #: The client's preface is still to be read.
        self.preface = preface
        self.decoder = HpackDecoder(max_header_list_size=MAX_HEADER_LIST)
        #: A header block being gathered: (stream, fragments, end_stream,
        #: offset, what it is: HEADERS or PUSH_PROMISE).
        self.block: tuple[int, bytearray, bool, int, bool] | None = None
        #: The header table is unknown (see the module's note).
        self.unreadable = False
        #: The direction is read no further.
        self.dead = False


class H2Reader:
    """Both directions of one HTTP/2 connection, read for their WebSocket streams.

    Args:
        client: the direction (0 or 1) of the client, which sends the preface.
    """

    #: DATA frames are read without hyperframe's objects (an object per frame
    #: cost more than the rest of the reading); False reads every frame with
    #: hyperframe, the reference the tests compare the two with.
    fast = True

    def __init__(self, client: int) -> None:
        self.client = client
        self.sides = (_Side(client == 0), _Side(client == 1))
        #: The WebSocket streams, and whether their answer came.
        self.streams: dict[int, bool] = {}
        #: The server allowed extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL).
        self.connect_protocol = False
        #: The highest stream the client opened so far (any request).
        self.opened = 0
        #: Answers (and the DATA after them) read before their request: two taps
        #: merged, or clocks apart, put a server's packets before the client's.
        #: Stream -> its events, at most MAX_EARLY streams and MAX_EARLY_BYTES.
        self.early: dict[int, list[H2Response | H2Data]] = {}
        self.early_bytes = 0

    def pending(self, d: int) -> int:
        """The direction offset of direction ``d``'s first byte not read yet."""
        return self.sides[d].base

    def receive(self, d: int, data: bytes) -> list[H2Event]:
        """Direction ``d``'s next bytes, in order: what they complete."""
        side = self.sides[d]
        if side.dead:
            side.base += len(data)
            return []
        side.buffer += data
        out: list[H2Event] = []
        if side.preface:
            have = bytes(side.buffer[:len(PREFACE)])
            if have != PREFACE[:len(have)]:
                self._kill(side, d, "the client's bytes do not begin with the HTTP/2 preface",
                           out)
                return out
            if len(have) < len(PREFACE):
                return out
            del side.buffer[:len(PREFACE)]
            side.base += len(PREFACE)
            side.preface = False
        buffer = side.buffer
        at = 0
        size = len(buffer)
        fast = self.fast
        streams = self.streams
        early = self.early
        while size - at >= FRAME_HEADER and not side.dead:
            if fast and side.block is None:
                # (the DATA frames of the streams followed, and those passed over:
                # what the reference below makes of them, without its objects)
                word, flags, stream = _HEAD.unpack_from(buffer, at)
                stream &= 0x7FFFFFFF
                if not word & 0xFF and stream and not flags & _PADDED and stream not in early:
                    # (a DATA frame the reference takes as it is: stream 0, which it
                    # refuses at its header, goes to the reference, whole or not)
                    end = at + FRAME_HEADER + (word >> 8)
                    if end > size:
                        break
                    if stream in streams:
                        out.append(H2Data(d, stream, bytes(buffer[at + FRAME_HEADER:end]),
                                          bool(flags & _END_STREAM),
                                          side.base + at + FRAME_HEADER))
                    at = end
                    continue
            try:
                frame, length = Frame.parse_frame_header(memoryview(buffer)[at:at + FRAME_HEADER])
            except HyperframeError as exc:
                self._kill(side, d, f"frame header: {exc}", out, side.base + at)
                break
            end = at + FRAME_HEADER + length
            if end > len(buffer):
                break
            offset = side.base + at + FRAME_HEADER
            self._frame(side, d, frame, memoryview(buffer)[at + FRAME_HEADER:end], offset, out)
            at = end
        if side.dead:
            side.base += len(buffer)
            buffer.clear()
        else:
            del buffer[:at]
            side.base += at
        return out

    def lose(self, d: int, size: int) -> list[H2Event]:
        """``size`` bytes of direction ``d`` were lost (see the module's note)."""
        side = self.sides[d]
        out: list[H2Event] = []
        if not side.dead:
            self._kill(side, d, f"{size} bytes lost: the frames after them cannot be found",
                       out)
        side.base += size
        return out

    def finish(self) -> list[H2Event]:
        """End of input: a direction that stops inside a frame (or a header
        block) says so (:data:`H2_MALFORMED`): what it held is not read."""
        out: list[H2Event] = []
        for d, side in enumerate(self.sides):
            if side.dead:
                continue
            held = len(side.buffer)
            if side.preface and held:
                self._kill(side, d, f"the capture ends inside the client's preface ({held} "
                           "bytes)", out)
            elif held:
                declared = (int.from_bytes(side.buffer[:3], "big") + FRAME_HEADER
                            if held >= FRAME_HEADER else None)
                frame = f"a frame of {declared} bytes" if declared else "a frame header"
                self._kill(side, d, f"the capture ends inside {frame} ({held} bytes held)",
                           out)
            elif side.block is not None:
                self._kill(side, d, f"the capture ends inside the header block of stream "
                           f"{side.block[0]} (no END_HEADERS)", out)
            side.buffer.clear()
        return out

    def _kill(self, side: _Side, d: int, detail: str, out: list[H2Event],
              offset: int | None = None) -> None:
        side.dead = True
        out.append(H2Problem(d, H2_MALFORMED, detail, side.base if offset is None else offset))

    def _frame(self, side: _Side, d: int, frame: Frame, body: memoryview, offset: int,
               out: list[H2Event]) -> None:
        """One whole frame of direction ``d``; ``offset``: its body's."""
        if side.block is not None and not isinstance(frame, ContinuationFrame):
            self._kill(side, d, f"{type(frame).__name__} inside a header block "
                       "(CONTINUATION expected)", out, offset - FRAME_HEADER)
            return
        stream = frame.stream_id
        if isinstance(frame, DataFrame) and stream not in self.streams and (
                stream not in self.early or d == self.client):
            return  # (another stream's: passed over, see the module's note)
        try:
            frame.parse_body(body)
        except HyperframeError as exc:
            self._kill(side, d, f"{type(frame).__name__} on stream {stream}: {exc}", out,
                       offset - FRAME_HEADER)
            return
        flags = frame.flags
        if isinstance(frame, DataFrame):
            start = offset + (1 if "PADDED" in flags else 0)
            data = H2Data(d, stream, frame.data, "END_STREAM" in flags, start)
            if stream in self.streams:
                out.append(data)
            else:  # (an answer's DATA before its request)
                self._hold(stream, data, out)
        elif isinstance(frame, HeadersFrame | PushPromiseFrame):
            push = isinstance(frame, PushPromiseFrame)
            side.block = (stream, bytearray(frame.data), not push and "END_STREAM" in flags,
                          offset, push)
            self._bound(side, d, offset, out)
            if "END_HEADERS" in flags:
                self._block(side, d, out)
        elif isinstance(frame, ContinuationFrame):
            if side.block is None or side.block[0] != stream:
                self._kill(side, d, f"CONTINUATION on stream {stream} without its header "
                           "block", out, offset - FRAME_HEADER)
                return
            side.block[1].extend(frame.data)
            self._bound(side, d, offset, out)
            if "END_HEADERS" in flags:
                self._block(side, d, out)
        elif isinstance(frame, RstStreamFrame):
            if stream in self.streams:
                out.append(H2Reset(d, stream, frame.error_code, offset))
        elif isinstance(frame, SettingsFrame):
            settings = frame.settings
            if SettingsFrame.HEADER_TABLE_SIZE in settings:
                # (the other direction's encoder may use a table this large)
                other = self.sides[1 - d].decoder
                other.max_allowed_table_size = min(settings[SettingsFrame.HEADER_TABLE_SIZE],
                                                   MAX_TABLE_SIZE)
            if d != self.client and settings.get(SettingsFrame.ENABLE_CONNECT_PROTOCOL) == 1:
                self.connect_protocol = True

    def _bound(self, side: _Side, d: int, offset: int, out: list[H2Event]) -> None:
        """A header block being gathered past :data:`MAX_HEADER_BLOCK` is not
        kept (its CONTINUATIONs are still passed over): the direction's table
        is lost from there."""
        assert side.block is not None
        fragments = side.block[1]
        if len(fragments) > MAX_HEADER_BLOCK:
            fragments.clear()
            if not side.unreadable:
                self._unreadable(side, d, f"header block on stream {side.block[0]} over "
                                 f"{MAX_HEADER_BLOCK} bytes", offset, out)

    def _block(self, side: _Side, d: int, out: list[H2Event]) -> None:
        """A whole header block of direction ``d``: decoded, and read if it
        opens or answers a WebSocket stream."""
        assert side.block is not None
        stream, fragments, end_stream, offset, push = side.block
        side.block = None
        if side.unreadable:
            return
        try:
            fields = tuple((name.decode("latin-1"), value.decode("latin-1"))
                           for name, value in side.decoder.decode(bytes(fragments), raw=True))
        except (HPACKError, ValueError, IndexError) as exc:
            self._unreadable(side, d, f"header block on stream {stream}: "
                             f"{type(exc).__name__}", offset, out)
            return
        if push:
            return
        if d == self.client:
            self.opened = max(self.opened, stream)
            held = self.early.pop(stream, [])
            self.early_bytes -= sum(len(e.data) for e in held if isinstance(e, H2Data))
            if stream not in self.streams and _opens_websocket(fields):
                self.streams[stream] = False
                out.append(H2Request(stream, fields, offset, self.connect_protocol))
                if held:  # (its answer came first: it follows its request now)
                    self.streams[stream] = True
                    out += held
            return
        status = next((v for k, v in fields if k == ":status"), "")
        if status.startswith("1"):
            return  # (an interim answer is not the answer)
        answer = H2Response(stream, fields, end_stream, offset)
        if self.streams.get(stream) is False:
            self.streams[stream] = True
            out.append(answer)
        elif stream > self.opened and stream % 2 and stream not in self.early:
            self._hold(stream, answer, out)

    def _hold(self, stream: int, event: H2Response | H2Data, out: list[H2Event]) -> None:
        """An answer to a stream the client has not opened yet, or DATA after
        one: kept for its request, within :data:`MAX_EARLY` streams and
        :data:`MAX_EARLY_BYTES`."""
        if isinstance(event, H2Response):
            if len(self.early) < MAX_EARLY:
                self.early[stream] = [event]
            return
        size = len(event.data)
        if self.early_bytes + size > MAX_EARLY_BYTES:
            del self.early[stream]  # (its DATA from here on is passed over)
            out.append(H2Problem(event.d, H2_MALFORMED, f"the answer on stream {stream} "
                                 f"came before its request, with over {MAX_EARLY_BYTES} "
                                 "bytes of DATA: not kept", event.offset))
            return
        self.early[stream].append(event)
        self.early_bytes += size

    def _unreadable(self, side: _Side, d: int, detail: str, offset: int,
                    out: list[H2Event]) -> None:
        side.unreadable = True
        out.append(H2Problem(d, H2_HEADERS, f"{detail}; the direction's later header "
                             "blocks cannot be read", offset))


def _opens_websocket(fields: tuple[tuple[str, str], ...]) -> bool:
    """An extended CONNECT for the WebSocket protocol (RFC 8441 section 4)."""
    pseudo = {k: v for k, v in fields if k.startswith(":")}
    return pseudo.get(":method") == "CONNECT" and pseudo.get(":protocol", "").lower() == \
        "websocket"
