"""TLS records and the handshake messages wspcap reads, on the wire.

Pure functions over bytes. A record (`RFC 8446 section 5.1
<https://www.rfc-editor.org/rfc/rfc8446#section-5.1>`_, RFC 5246 section 6.2)::

    struct {
        ContentType type;                 1 byte
        ProtocolVersion legacy_version;   2 bytes
        uint16 length;                    2 bytes
        opaque fragment[length];
    } TLSPlaintext;

and the handshake messages whose clear facts the connections table shows:
ClientHello (client random, SNI, ALPN offered, versions offered),
ServerHello (server random, version and suite chosen, ALPN, encrypt-then-MAC,
and whether it is a HelloRetryRequest), EncryptedExtensions (TLS 1.3 ALPN).
A message that does not parse gives :class:`TLSParseError`, never another
exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "ALERT",
    "ALERT_DESCRIPTIONS",
    "APPLICATION_DATA",
    "CHANGE_CIPHER_SPEC",
    "HANDSHAKE",
    "HEADER_LEN",
    "HELLO_RETRY_RANDOM",
    "MAX_CIPHERTEXT_12",
    "MAX_CIPHERTEXT_13",
    "ClientHello",
    "ServerHello",
    "TLSParseError",
    "looks_like_client_hello",
    "maybe_client_hello",
    "parse_client_hello",
    "parse_encrypted_extensions",
    "parse_server_hello",
    "version_name",
]

# Content types (RFC 8446 section 5.1).
CHANGE_CIPHER_SPEC = 20
ALERT = 21
HANDSHAKE = 22
APPLICATION_DATA = 23
CONTENT_TYPES = (CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA)
HEADER_LEN = 5
#: Longest record fragment: TLSCiphertext in TLS 1.3 is 2^14 + 256 bytes at
#: most (RFC 8446 section 5.2), TLS 1.2's 2^14 + 2048 (RFC 5246 section 6.2.3).
MAX_CIPHERTEXT_13 = (1 << 14) + 256
MAX_CIPHERTEXT_12 = (1 << 14) + 2048

# Handshake message types (RFC 8446 section 4).
CLIENT_HELLO = 1
SERVER_HELLO = 2
NEW_SESSION_TICKET = 4
ENCRYPTED_EXTENSIONS = 8
FINISHED = 20
KEY_UPDATE = 24

# Extensions.
EXT_SERVER_NAME = 0
EXT_ALPN = 16
EXT_ENCRYPT_THEN_MAC = 22
EXT_EXTENDED_MASTER_SECRET = 23
EXT_SUPPORTED_VERSIONS = 43

#: ServerHello.random of a HelloRetryRequest: SHA-256 of "HelloRetryRequest"
#: (RFC 8446 section 4.1.3).
HELLO_RETRY_RANDOM = bytes.fromhex(
    "CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")

#: Alert descriptions (RFC 8446 section 6, RFC 5246 section 7.2).
ALERT_DESCRIPTIONS = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac",
    21: "decryption_failed", 22: "record_overflow", 30: "decompression_failure",
    40: "handshake_failure", 41: "no_certificate", 42: "bad_certificate",
    43: "unsupported_certificate", 44: "certificate_revoked", 45: "certificate_expired",
    46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca",
    49: "access_denied", 50: "decode_error", 51: "decrypt_error", 70: "protocol_version",
    71: "insufficient_security", 80: "internal_error", 86: "inappropriate_fallback",
    90: "user_canceled", 100: "no_renegotiation", 109: "missing_extension",
    110: "unsupported_extension", 112: "unrecognized_name",
    113: "bad_certificate_status_response", 115: "unknown_psk_identity",
    116: "certificate_required", 120: "no_application_protocol",
}

_VERSIONS = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2",
             0x0304: "TLS 1.3"}


def version_name(version: int) -> str:
    """``TLS 1.2`` and the like; ``0xNNNN`` for a value with no name."""
    return _VERSIONS.get(version, f"0x{version:04X}")


class TLSParseError(ValueError):
    """A handshake message is shorter than its fields say, or malformed."""


class _Reader:
    """Bounded reads from a message body; any overrun is a :class:`TLSParseError`."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise TLSParseError(f"{n} bytes needed, {self.end - self.pos} left")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, len_bytes: int) -> _Reader:
        """A length-prefixed vector, as a reader over its contents."""
        n = self.uint(len_bytes)
        start = self.pos
        self.take(n)
        return _Reader(self.data, start, start + n)

    def left(self) -> int:
        return self.end - self.pos

    def text(self) -> str:
        """The rest, as text (names on the wire are ASCII)."""
        return self.take(self.left()).decode("ascii", "replace")


def maybe_client_hello(data: bytes) -> bool | None:
    """Whether a stream starts like a TLS record holding a ClientHello; None while
    the bytes so far are too few to tell (a first segment of 1-5 bytes).

    Content type 22, a record version of SSL 3.0 to TLS 1.3, and handshake
    type 1: what every TLS client sends first, on any port.
    """
    n = len(data)
    if (n > 0 and data[0] != HANDSHAKE) or (n > 1 and data[1] != 3) \
            or (n > 2 and data[2] > 4) or (n > 5 and data[5] != CLIENT_HELLO):
        return False
    return True if n > 5 else None


def looks_like_client_hello(data: bytes) -> bool:
    """Whether a stream starts like a TLS record holding a ClientHello."""
    return maybe_client_hello(data) is True


@dataclass(slots=True)
class ClientHello:
    """The clear facts of a ClientHello."""

    random: bytes
    session_id: bytes
    suites: list[int]
    sni: str | None = None
    alpn: list[str] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    legacy_version: int = 0x0303


@dataclass(slots=True)
class ServerHello:
    """The clear facts of a ServerHello (or HelloRetryRequest)."""

    random: bytes
    session_id: bytes
    suite: int
    version: int
    alpn: str | None = None
    encrypt_then_mac: bool = False
    extended_master_secret: bool = False

    @property
    def retry(self) -> bool:
        """This is a TLS 1.3 HelloRetryRequest, not a ServerHello."""
        return self.random == HELLO_RETRY_RANDOM


def _extensions(r: _Reader) -> list[tuple[int, _Reader]]:
    if not r.left():
        return []
    exts = r.vector(2)
    out = []
    while exts.left():
        kind = exts.uint(2)
        out.append((kind, exts.vector(2)))
    return out


def _alpn_list(body: _Reader) -> list[str]:
    names = body.vector(2)
    out = []
    while names.left():
        out.append(names.vector(1).text())
    return out


def parse_client_hello(body: bytes) -> ClientHello:
    """A ClientHello's body (after the 4-byte handshake header)."""
    r = _Reader(body)
    legacy = r.uint(2)
    random = r.take(32)
    session_id = r.take(r.uint(1))
    suites_r = r.vector(2)
    suites = [suites_r.uint(2) for _ in range(suites_r.left() // 2)]
    r.vector(1)  # compression methods
    hello = ClientHello(random, session_id, suites, legacy_version=legacy)
    for kind, ext in _extensions(r):
        if kind == EXT_SERVER_NAME:
            names = ext.vector(2)
            while names.left():
                name_type = names.uint(1)
                name = names.vector(2).text()
                if name_type == 0 and hello.sni is None:
                    hello.sni = name
        elif kind == EXT_ALPN:
            hello.alpn = _alpn_list(ext)
        elif kind == EXT_SUPPORTED_VERSIONS:
            versions = ext.vector(1)
            hello.versions = [versions.uint(2) for _ in range(versions.left() // 2)]
    return hello


def parse_server_hello(body: bytes) -> ServerHello:
    """A ServerHello's body; its ``version`` is the one negotiated."""
    r = _Reader(body)
    version = r.uint(2)
    random = r.take(32)
    session_id = r.take(r.uint(1))
    suite = r.uint(2)
    r.uint(1)  # compression method
    hello = ServerHello(random, session_id, suite, version)
    for kind, ext in _extensions(r):
        if kind == EXT_SUPPORTED_VERSIONS and ext.left() >= 2:
            hello.version = ext.uint(2)
        elif kind == EXT_ALPN:
            names = _alpn_list(ext)
            hello.alpn = names[0] if names else None
        elif kind == EXT_ENCRYPT_THEN_MAC:
            hello.encrypt_then_mac = True
        elif kind == EXT_EXTENDED_MASTER_SECRET:
            hello.extended_master_secret = True
    return hello


def parse_encrypted_extensions(body: bytes) -> str | None:
    """The ALPN protocol a TLS 1.3 server chose, from EncryptedExtensions."""
    r = _Reader(body)
    for kind, ext in _extensions(r):
        if kind == EXT_ALPN:
            names = _alpn_list(ext)
            return names[0] if names else None
    return None
