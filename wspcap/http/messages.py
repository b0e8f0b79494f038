"""HTTP/1.1 messages before an upgrade on a keep-alive connection: where each
body ends (`RFC 9112 section 6
<https://www.rfc-editor.org/rfc/rfc9112#section-6>`_).

Sans-I/O: performs no I/O. A client may send plain requests on a connection
before the one that upgrades it to WebSocket (aiohttp's ``ClientSession``
does, reusing a pooled connection for ``ws_connect`` after a ``get``). To
find that request, and the server's answer to it, the messages before them
are read head by head (:class:`~wspcap.http.upgrade.HeadParser`) and their
bodies skipped by a :class:`Body`, whose length the head gives
(:func:`request_body`, :func:`response_body`).

Design note
-----------
The rules are RFC 9112 section 6.3's, read as a passive observer must:

- a response to HEAD, and a 1xx, 204 or 304 response, has no body, whatever
  its header fields say;
- ``Transfer-Encoding`` ending in ``chunked`` frames the body in chunks; any
  other transfer coding, like a response with neither field, ends only when
  the connection closes: nothing can follow it (None: the connection is not
  followed further);
- otherwise ``Content-Length``, whose values must all be the same decimal
  number (a list of equal values is allowed by RFC 9110 section 8.6);
- a request with neither field has no body.

h11 frames bodies the same way, but as one endpoint of the connection: it
checks each side against the state it would be in itself, where an observer
has to take both sides as they come, odd ones included.

A body longer than :data:`MAX_BODY` is not followed (None, or
:attr:`Body.failed` for a chunked one): the messages before an upgrade are
short (a login, a poll), and following a download to its end would cost its
every packet (a plain HTTP connection was not followed past its first
request head before; now it costs at most its first MAX_BODY bytes a
message, read packet by packet).
"""

from __future__ import annotations

from wspcap.http.upgrade import HttpHead

__all__ = ["MAX_BODY", "MAX_LINE", "Body", "request_body", "response_body"]

#: Bodies longer than this are not followed (see the design note).
MAX_BODY = 1 << 20
#: A chunk-size line or trailer field longer than this breaks the framing.
MAX_LINE = 8 << 10

_DATA, _SIZE, _DATA_END, _TRAILER = range(4)
_HEX = frozenset(b"0123456789abcdefABCDEF")


class Body:
    """Where the body of one HTTP/1.1 message ends, in the bytes that follow its head.

    Args:
        length: the body's length (a ``Content-Length`` body).
        chunked: the body is in chunks (``Transfer-Encoding: chunked``);
            ``length`` is then not used.
        limit: the most bytes followed (see :data:`MAX_BODY`).

    Attributes:
        failed: the chunks are not framed as RFC 9112 section 7.1 says, or
            the body runs past ``limit``: where it ends is not known.
    """

    __slots__ = ("_line", "_state", "chunked", "failed", "left", "limit", "skipped")

    def __init__(self, length: int = 0, chunked: bool = False, limit: int | None = None) -> None:
        self.chunked = chunked
        self.left = 0 if chunked else length  # bytes of data (or of the chunk) to skip
        self.limit = MAX_BODY if limit is None else limit
        self.skipped = 0
        self.failed = False
        self._state = _SIZE if chunked else _DATA
        self._line = bytearray()

    def receive_data(self, data: bytes) -> bytes | None:
        """Take the next bytes; once the body has ended, the bytes after it
        (``b""`` if none), else None (see :attr:`failed`)."""
        if self.failed:
            return None
        pos, end = 0, len(data)
        while True:
            if self._state == _DATA:
                take = min(self.left, end - pos)
                pos += take
                self.left -= take
                self.skipped += take
                if self.left:
                    return None
                if not self.chunked:
                    return data[pos:]
                self._state = _DATA_END
                continue
            line, pos = self._read_line(data, pos)
            if line is None:
                return None
            if self._state == _SIZE:  # chunk-size [ chunk-ext ] CRLF
                digits = line.split(b";", 1)[0].strip(b" \t")
                if not digits or len(digits) > 16 or not _HEX.issuperset(digits):
                    self.failed = True
                    return None
                size = int(digits, 16)
                self._state, self.left = (_TRAILER, 0) if size == 0 else (_DATA, size)
                if self.skipped + size > self.limit:
                    self.failed = True
                    return None
            elif self._state == _DATA_END:  # the CRLF after a chunk's data
                if line:
                    self.failed = True
                    return None
                self._state = _SIZE
            elif not line:  # the empty line that ends the trailer section
                return data[pos:]

    def _read_line(self, data: bytes, pos: int) -> tuple[bytes | None, int]:
        """The next line (its CRLF or bare LF taken off) and where it ends;
        None and the end of ``data`` while it is not whole."""
        nl = data.find(b"\n", pos)
        if nl < 0:
            self._line += data[pos:]
            if len(self._line) > MAX_LINE:
                self.failed = True
            return None, len(data)
        line = bytes(self._line) + data[pos:nl] if self._line else data[pos:nl]
        self._line.clear()
        if len(line) > MAX_LINE:
            self.failed = True
            return None, len(data)
        return line.rstrip(b"\r"), nl + 1


def _content_length(values: list[str]) -> int | None:
    """The length ``Content-Length`` values give: every one (and every item of
    a comma-separated one) the same string of ASCII digits; None otherwise."""
    items = {item.strip() for value in values for item in value.split(",")}
    if len(items) != 1:
        return None
    (item,) = items
    if not item or len(item) > 18 or not item.isascii() or not item.isdigit():
        return None
    return int(item)


def _framed(head: HttpHead, limit: int, otherwise: int | None) -> Body | None:
    codings = head.tokens("Transfer-Encoding")
    if codings:
        return Body(chunked=True, limit=limit) if codings[-1] == "chunked" else None
    values = head.get_all("Content-Length")
    if values:
        length = _content_length(values)
        return Body(length, limit=limit) if length is not None and length <= limit else None
    return None if otherwise is None else Body(otherwise, limit=limit)


def request_body(head: HttpHead, limit: int | None = None) -> Body | None:
    """The body of the request whose :class:`~wspcap.http.upgrade.HttpHead`
    is ``head``; None where it cannot be followed (see the module's note).
    ``limit``: :data:`MAX_BODY` if None."""
    return _framed(head, MAX_BODY if limit is None else limit, 0)


def response_body(head: HttpHead, method: str, limit: int | None = None) -> Body | None:
    """The body of a final (not 1xx) response to a ``method`` request; None
    where nothing after it can be followed (a body that ends with the
    connection, a tunnel, a status line without a status code).
    ``limit``: :data:`MAX_BODY` if None."""
    limit = MAX_BODY if limit is None else limit
    status = head.status
    if status is None:
        return None
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return Body(0, limit=limit)
    if method == "CONNECT" and 200 <= status < 300:
        return None  # a tunnel: the bytes after it are not HTTP
    return _framed(head, limit, None)
