"""Reading the HTTP/1.1 Upgrade request and its answer (RFC 6455 section 4).

Sans-I/O: performs no I/O. A :class:`HeadParser` takes one direction's bytes
until the head (start line and headers) is complete, then hands over what
follows it, like h11's ``trailing_data``: after a ``101`` those bytes are
WebSocket frames.

Header fields are parsed with the standard library's ``http.client``
machinery (an ``email`` parser), which keeps repeated fields in order; a
field repeated where RFC 6455 allows it once is something the rules report.
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import hashlib
import http.client
import re
from dataclasses import dataclass, field

__all__ = [
    "ACCEPT_GUID",
    "MAX_HEAD",
    "NEITHER",
    "REQUEST",
    "RESPONSE",
    "Handshake",
    "HeadParser",
    "HttpHead",
    "accept_for",
    "looks_like_request",
    "looks_like_response",
    "maybe_head_kind",
    "parse_extensions",
    "read_authorization",
]

#: RFC 6455 section 1.3: the GUID appended to the key before hashing.
ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: A head larger than this is not an HTTP head we follow.
MAX_HEAD = 64 << 10

_METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"OPTIONS ", b"PATCH ", b"DELETE ",
            b"CONNECT ", b"TRACE ")
#: RFC 9112 section 4: ``status-code = 3DIGIT``, where DIGIT is ASCII 0-9 only (RFC 5234
#: appendix B.1); ``str.isdigit`` and ``int`` also take other scripts' digits and "²".
_STATUS_CODE = re.compile(r"[0-9]{3}")


def accept_for(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value a server must send for ``key``.

    RFC 6455 section 4.2.2: base64 of the SHA-1 of the key (as sent, spaces
    trimmed) concatenated with :data:`ACCEPT_GUID`.
    """
    digest = hashlib.sha1((key.strip() + ACCEPT_GUID).encode("latin-1")).digest()
    return base64.b64encode(digest).decode("ascii")


def read_authorization(value: str) -> tuple[str, str, tuple[str, str] | None]:
    """An ``Authorization`` or ``Proxy-Authorization`` value read: ``(scheme
    lower-cased, token, (user, password))``, the last None unless the scheme
    is ``Basic`` and the token decodes to ``user:password`` (RFC 7617 section
    2: base64 of them, joined by the first colon)."""
    scheme, _, token = value.strip().partition(" ")
    scheme, token = scheme.lower(), token.strip()
    if scheme != "basic":
        return scheme, token, None
    try:
        user, colon, password = base64.b64decode(token, validate=True).decode(
            "utf-8", "replace").partition(":")
    except (binascii.Error, ValueError):
        return scheme, token, None
    return scheme, token, (user, password) if colon else None


def looks_like_request(data: bytes) -> bool:
    """Whether ``data`` starts like an HTTP/1.x request line."""
    return data.startswith(_METHODS)


def looks_like_response(data: bytes) -> bool:
    """Whether ``data`` starts like an HTTP/1.x status line."""
    return data.startswith(b"HTTP/")


#: :func:`maybe_head_kind`'s answers.
REQUEST, RESPONSE, NEITHER = "request", "response", ""
_STARTS = (*_METHODS, b"HTTP/")
_LONGEST_START = max(map(len, _STARTS))


def maybe_head_kind(data: bytes) -> str | None:
    """What the first bytes of one direction of a connection start.

    Returns:
        ``"request"`` (:func:`looks_like_request`), ``"response"``
        (:func:`looks_like_response`), ``""`` for neither, or None while
        ``data`` is too short to tell: a proper prefix of a method and its
        space or of ``HTTP/``, as a request whose first segment carries only
        ``G``, ``GE`` or ``GET`` is.
    """
    if looks_like_request(data):
        return REQUEST
    if looks_like_response(data):
        return RESPONSE
    if len(data) < _LONGEST_START and any(start.startswith(data) for start in _STARTS):
        return None
    return NEITHER


@dataclass(frozen=True, slots=True)
class HttpHead:
    """The start line and header fields of one HTTP request or response.

    Attributes:
        start_line: the first line, decoded as Latin-1.
        headers: ``(name, value)`` pairs in order, repeated names kept.
        size: bytes of the head, blank line included.
    """

    start_line: str
    headers: tuple[tuple[str, str], ...]
    size: int
    #: Lower-cased name -> its values, in order (made once: the rules ask a
    #: head for a dozen names).
    _values: dict[str, list[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        values: dict[str, list[str]] = {}
        for key, value in self.headers:
            values.setdefault(key.lower(), []).append(value)
        object.__setattr__(self, "_values", values)

    def get(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        values = self._values.get(name.lower())
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in order."""
        return list(self._values.get(name.lower(), ()))

    def tokens(self, name: str) -> list[str]:
        """Comma-separated tokens of every ``name`` header, lower-cased."""
        return [t.strip().lower() for v in self.get_all(name) for t in v.split(",") if t.strip()]

    # Request view
    @property
    def method(self) -> str:
        return self.start_line.split(" ", 1)[0]

    @property
    def target(self) -> str:
        parts = self.start_line.split(" ")
        return parts[1] if len(parts) > 2 else ""

    @property
    def version(self) -> str:
        """``HTTP/1.1`` and the like, for requests and responses alike."""
        parts = self.start_line.split(" ")
        return parts[0] if self.start_line.startswith("HTTP/") else parts[-1]

    # Response view
    @property
    def status(self) -> int | None:
        """The status code; None when the status line has no three ASCII digits there."""
        parts = self.start_line.split(" ", 2)
        if len(parts) >= 2 and _STATUS_CODE.fullmatch(parts[1]):
            return int(parts[1])
        return None

    @property
    def reason(self) -> str:
        parts = self.start_line.split(" ", 2)
        return parts[2] if len(parts) > 2 else ""

    @classmethod
    def parse(cls, head: bytes) -> HttpHead:
        """Parse a complete head (ending with the blank line)."""
        line_end = head.find(b"\n")
        start = head[:line_end].rstrip(b"\r").decode("latin-1")
        # The email parser http.client.parse_headers uses, without its limits of
        # 100 fields and 64 KiB lines, which raise: the head is already bounded.
        message = email.parser.Parser(_class=http.client.HTTPMessage).parsestr(
            head[line_end + 1:].decode("latin-1"))
        headers = tuple((k, v.strip()) for k, v in message.items())
        return cls(start, headers, len(head))


class HeadParser:
    """Collects one HTTP head from a byte stream.

    Sans-I/O: performs no I/O. Feed bytes with :meth:`receive_data` until it
    returns the :class:`HttpHead`; :attr:`trailing` then holds the bytes that
    came after the head. The search resumes where it stopped, so bytes fed one
    at a time are never rescanned.

    Args:
        max_size: a head larger than this is abandoned (:attr:`too_large`).
    """

    def __init__(self, max_size: int = MAX_HEAD) -> None:
        self.max_size = max_size
        self.trailing = b""
        self.too_large = False
        self._buf = bytearray()
        self._searched = 0

    def receive_data(self, data: bytes) -> HttpHead | None:
        """Take more bytes; return the head once it is complete."""
        if self.too_large:
            return None
        self._buf += data
        buf = self._buf
        start = max(0, self._searched - 3)
        end = buf.find(b"\r\n\r\n", start)
        size = end + 4
        # The first blank line ends the head, whichever line ending it uses.
        lf_end = buf.find(b"\n\n", start, end + 2 if end >= 0 else len(buf))
        if lf_end >= 0:
            end, size = lf_end, lf_end + 2
        if end < 0:
            self._searched = len(buf)
            if len(buf) > self.max_size:
                self.too_large = True
                self._buf = bytearray()
            return None
        head = bytes(buf[:size])
        self.trailing = bytes(buf[size:])
        self._buf = bytearray()
        return HttpHead.parse(head)


def parse_extensions(value: str | None) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Parse a ``Sec-WebSocket-Extensions`` value (RFC 6455 section 9.1).

    Returns:
        ``[(name, [(param, value or None), ...]), ...]`` in order; quoted
        values are unquoted.
    """
    result: list[tuple[str, list[tuple[str, str | None]]]] = []
    if not value:
        return result
    for item in value.split(","):
        parts = [p.strip() for p in item.split(";")]
        if not parts[0]:
            continue
        params: list[tuple[str, str | None]] = []
        for p in parts[1:]:
            if not p:
                continue
            name, eq, val = p.partition("=")
            v: str | None = val.strip().strip('"') if eq else None
            params.append((name.strip().lower(), v))
        result.append((parts[0].lower(), params))
    return result


@dataclass(slots=True)
class Handshake:
    """What the Upgrade request and its answer said.

    Built from the request head, then completed by :meth:`answer` with the
    response head.
    """

    method: str = ""
    uri: str = ""
    http_version: str = ""
    host: str | None = None
    origin: str | None = None
    user_agent: str | None = None
    cookie: bool = False
    authorization: bool = False
    key: str | None = None
    version: str | None = None
    protocols_offered: list[str] = field(default_factory=list)
    extensions_offered: str | None = None
    upgrade_websocket: bool = False
    connection_upgrade: bool = False
    status: int | None = None
    reason: str | None = None
    accept: str | None = None
    accept_expected: str | None = None
    accept_valid: bool | None = None
    subprotocol: str | None = None
    extensions: str | None = None
    request: HttpHead | None = None
    response: HttpHead | None = None

    @classmethod
    def from_request(cls, head: HttpHead) -> Handshake:
        """Read the client's fields from the request head."""
        key = head.get("Sec-WebSocket-Key")
        return cls(
            method=head.method,
            uri=head.target,
            http_version=head.version,
            host=head.get("Host"),
            origin=head.get("Origin") or head.get("Sec-WebSocket-Origin"),
            user_agent=head.get("User-Agent"),
            cookie=head.get("Cookie") is not None,
            authorization=head.get("Authorization") is not None,
            key=key,
            version=head.get("Sec-WebSocket-Version"),
            # Subprotocols are matched case-sensitively (RFC 6455 section 4.1; RFC 7936
            # makes only the IANA registry case-insensitive): kept as sent, not tokens().
            protocols_offered=[t.strip() for v in head.get_all("Sec-WebSocket-Protocol")
                               for t in v.split(",") if t.strip()],
            extensions_offered=", ".join(head.get_all("Sec-WebSocket-Extensions")) or None,
            upgrade_websocket="websocket" in head.tokens("Upgrade"),
            connection_upgrade="upgrade" in head.tokens("Connection"),
            accept_expected=accept_for(key) if key is not None else None,
            request=head,
        )

    def answer(self, head: HttpHead) -> None:
        """Read the server's answer."""
        self.response = head
        self.status = head.status
        self.reason = head.reason
        self.accept = head.get("Sec-WebSocket-Accept")
        if self.accept is not None and self.accept_expected is not None:
            self.accept_valid = self.accept.strip() == self.accept_expected
        elif self.status == 101:
            self.accept_valid = False
        self.subprotocol = head.get("Sec-WebSocket-Protocol")
        self.extensions = ", ".join(head.get_all("Sec-WebSocket-Extensions")) or None

    @property
    def upgraded(self) -> bool:
        """The server switched protocols."""
        return self.status == 101

    @property
    def h2(self) -> bool:
        """The opening was an HTTP/2 extended CONNECT (RFC 8441), not an Upgrade."""
        return self.http_version == "HTTP/2"

    @property
    def accepted(self) -> bool:
        """The server took the WebSocket: a 101, or a 2xx to an extended
        CONNECT (RFC 8441 section 5)."""
        status = self.status
        return status == 101 or (self.h2 and status is not None and 200 <= status < 300)

    def key_is_valid(self) -> bool:
        """RFC 6455 section 4.1: the key is base64 of 16 random bytes."""
        if self.key is None:
            return False
        try:
            return len(base64.b64decode(self.key.strip(), validate=True)) == 16
        except (binascii.Error, ValueError):
            return False
