"""The SOCKS handshake that opens a tunnel through a SOCKS proxy.

Sans-I/O: performs no I/O. A client behind a SOCKS proxy (``ssh -D``, Tor,
proxychains, a pentester's intercepting proxy) opens a TCP connection to the
proxy and asks it for a tunnel; once granted, each direction carries the
tunnel's own stream: a ClientHello for wss://, an upgrade request for ws://.
A capture taken between the client and the proxy shows the handshake first.
:class:`SocksHandshake` reads it from both directions' bytes and says where
each direction's tunneled stream starts.

SOCKS 5 (`RFC 1928 <https://www.rfc-editor.org/rfc/rfc1928>`_): the client
offers authentication methods (VER=5, NMETHODS, METHODS), the server picks
one (VER=5, METHOD; 0xFF: none acceptable); with username/password
(`RFC 1929 <https://www.rfc-editor.org/rfc/rfc1929>`_, method 2) the client
sends VER=1, ULEN, UNAME, PLEN, PASSWD and the server a status (0: success);
then the client's request (VER=5, CMD, RSV, ATYP, DST.ADDR, DST.PORT; CMD 1
is CONNECT) and the server's reply of the same shape (REP 0: succeeded).
A client that offers no authentication may send its request without waiting
for the method (the two messages in one segment): the bytes of each
direction are read in order, each message when the other side's answer
that it depends on is known.

SOCKS 4 and 4a (the protocol's own documents): the client sends VN=4, CD=1,
DSTPORT, DSTIP, USERID and a NUL, then for 4a (DSTIP 0.0.0.x, x not 0) the
host name and a NUL; the server answers 8 bytes, VN=0 and CD=90 when granted.

Only CONNECT is followed: BIND and UDP ASSOCIATE tunnels are not streams of
this connection.
"""

from __future__ import annotations

__all__ = ["MAX_SOCKS", "SocksHandshake", "looks_like_socks"]

#: Bytes a direction's handshake may take (RFC 1929 caps a user name and a
#: password at 255 bytes each, a SOCKS 4 user id is not capped: this is).
MAX_SOCKS = 4096

_CONNECT = 1
_NO_METHOD = 0xFF
_USER_PASSWORD = 2
#: ATYP -> address length (3, a domain name, has a length byte of its own).
_ADDRESS = {1: 4, 4: 16}


def looks_like_socks(data: bytes) -> bool | None:
    """Whether a client's first bytes start a SOCKS 5 or SOCKS 4 CONNECT
    handshake; None while they are too few to tell."""
    if not data:
        return None
    if data[0] == 5:
        if len(data) < 2:
            return None
        n = data[1]
        if not 1 <= n <= 16:
            return False
        if len(data) < 2 + n:
            return None
        return _NO_METHOD not in data[2:2 + n]
    if data[0] == 4:
        if len(data) >= 2 and data[1] != _CONNECT:
            return False
        if len(data) < 9:
            return None
        if b"\0" in data[8:]:
            return True
        return None if len(data) < MAX_SOCKS else False
    return False


class SocksHandshake:
    """Both directions of a SOCKS handshake (see the module's note).

    Feed each direction's bytes in order with :meth:`receive_client` and
    :meth:`receive_server`; once :attr:`granted`, :attr:`client_rest` and
    :attr:`server_rest` are the first bytes of each direction's tunneled
    stream (those that came with the handshake's last messages). :attr:`failed`
    says why the handshake is not followed (refused, or not SOCKS after all).

    Attributes:
        version: 4 or 5, from the client's first byte.
        target: where the client asked to go, ``host:port``.
        user: the user name sent (SOCKS 5 username/password, SOCKS 4 user id), if any.
        password_size: the bytes of the password sent in the clear (SOCKS 5
            username/password, RFC 1929 section 2), or None.
    """

    def __init__(self) -> None:
        self.version = 0
        self.target = ""
        self.user: str | None = None
        self.password_size: int | None = None
        self.granted = False
        self.failed: str | None = None
        self.client_rest = b""
        self.server_rest = b""
        self._client = bytearray()
        self._server = bytearray()
        self._client_step = "greeting"  # -> (wait) auth -> request -> done
        self._server_step = "method"    # -> auth -> reply -> done
        self._method: int | None = None
        self._authenticated = False

    # -- input ---------------------------------------------------------------------

    def receive_client(self, data: bytes) -> None:
        """The client's next bytes."""
        self._client += data
        self._advance()

    def receive_server(self, data: bytes) -> None:
        """The server's (the proxy's) next bytes."""
        self._server += data
        self._advance()

    @property
    def done(self) -> bool:
        """Granted or failed: the handshake takes no more bytes."""
        return self.granted or self.failed is not None

    # -- reading ---------------------------------------------------------------------

    def _fail(self, why: str) -> None:
        if self.failed is None:
            self.failed = why

    def _advance(self) -> None:
        """Read what both directions' bytes allow, in the protocol's order."""
        while not self.done:
            if not (self._client_message() or self._server_message()):
                break
        if not self.done and max(len(self._client), len(self._server)) > MAX_SOCKS:
            self._fail("handshake too long")

    def _client_message(self) -> bool:
        """Read the client's next message if whole and due; whether one was read."""
        buf, step = self._client, self._client_step
        if step == "greeting":
            if not buf:
                return False
            self.version = buf[0]
            if self.version == 4:
                return self._socks4_request()
            if len(buf) < 2 or len(buf) < 2 + buf[1]:
                return False
            del buf[:2 + buf[1]]
            self._client_step = "wait"
            return True
        if step == "wait":  # the method decides what comes next
            if self._method is None:
                # (an optimistic client sends its request at once when it offers
                # no authentication; its bytes are read once the method is known)
                return False
            self._client_step = "auth" if self._method == _USER_PASSWORD else "request"
            return True
        if step == "auth":
            if len(buf) < 2 or len(buf) < 3 + buf[1]:
                return False
            ulen = buf[1]
            plen_at = 2 + ulen
            if len(buf) < plen_at + 1 + buf[plen_at]:
                return False
            self.user = bytes(buf[2:plen_at]).decode("latin-1")
            self.password_size = buf[plen_at]
            del buf[:plen_at + 1 + buf[plen_at]]
            self._client_step = "request"
            return True
        if step == "request":
            size = _request_size(buf)
            if size is None:
                return False
            if buf[0] != 5 or buf[1] != _CONNECT or size < 0:
                self._fail(f"SOCKS 5 request VER={buf[0]} CMD={buf[1]} ATYP={buf[3]}: "
                           "not a CONNECT")
                return False
            self.target = _address(buf, 3, size)
            self.client_rest = bytes(buf[size:])
            buf.clear()
            self._client_step = "done"
            return True
        if step == "done" and buf:  # tunneled bytes sent before the grant
            self.client_rest += bytes(buf)
            buf.clear()
        return False

    def _socks4_request(self) -> bool:
        buf = self._client
        if len(buf) < 9:
            return False
        end = buf.find(b"\0", 8)
        if end < 0:
            return False
        if buf[1] != _CONNECT:
            self._fail(f"SOCKS 4 request CD={buf[1]}: not a CONNECT")
            return False
        self.user = bytes(buf[8:end]).decode("latin-1") or None
        port = int.from_bytes(buf[2:4], "big")
        ip = bytes(buf[4:8])
        if ip[:3] == b"\0\0\0" and ip[3]:  # SOCKS 4a: the host name follows
            host_end = buf.find(b"\0", end + 1)
            if host_end < 0:
                return False
            host = bytes(buf[end + 1:host_end]).decode("latin-1")
            end = host_end
        else:
            host = ".".join(map(str, ip))
        self.target = f"{host}:{port}"
        self.client_rest = bytes(buf[end + 1:])
        buf.clear()
        self._client_step = "done"
        self._server_step = "reply4"
        return True

    def _server_message(self) -> bool:
        """Read the server's next message if whole and due; whether one was read."""
        buf, step = self._server, self._server_step
        if step == "method":
            if self._client_step == "greeting" or len(buf) < 2:
                return False
            if buf[0] != 5 or buf[1] == _NO_METHOD:
                self._fail(f"SOCKS 5 method answer VER={buf[0]} METHOD={buf[1]}")
                return False
            self._method = buf[1]
            del buf[:2]
            self._server_step = "auth" if self._method == _USER_PASSWORD else "reply"
            if self._method not in (0, _USER_PASSWORD):
                self._fail(f"SOCKS 5 method {self._method}: not followed")
            return True
        if step == "auth":
            if self._client_step not in ("request", "done") or len(buf) < 2:
                return False
            if buf[1] != 0:
                self._fail(f"SOCKS 5 authentication failed (status {buf[1]})")
                return False
            del buf[:2]
            self._server_step = "reply"
            return True
        if step == "reply":
            if self._client_step != "done":
                return False
            size = _request_size(buf)
            if size is None:
                return False
            if buf[0] != 5 or buf[1] != 0 or size < 0:
                self._fail(f"SOCKS 5 reply REP={buf[1]}: not granted")
                return False
            return self._grant(size)
        if step == "reply4":
            if len(buf) < 8:
                return False
            if buf[1] != 90:
                self._fail(f"SOCKS 4 reply CD={buf[1]}: not granted")
                return False
            return self._grant(8)
        return False

    def _grant(self, size: int) -> bool:
        self.server_rest = bytes(self._server[size:])
        self._server.clear()
        self._server_step = "done"
        self.client_rest += bytes(self._client)
        self._client.clear()
        self.granted = True
        return True


def _request_size(buf: bytearray) -> int | None:
    """The size of a SOCKS 5 request or reply at the start of ``buf`` (VER,
    CMD or REP, RSV, ATYP, address, port), None while it is not whole, -1
    for an unknown ATYP."""
    if len(buf) < 5:
        return None
    atyp = buf[3]
    if atyp != 3 and atyp not in _ADDRESS:
        return -1
    size = 4 + (1 + buf[4] if atyp == 3 else _ADDRESS[atyp]) + 2
    return size if len(buf) >= size else None


def _address(buf: bytearray, at: int, size: int) -> str:
    """``host:port`` of a SOCKS 5 request (ATYP at ``at``, port at the end)."""
    atyp = buf[at]
    port = int.from_bytes(buf[size - 2:size], "big")
    if atyp == 3:
        host = bytes(buf[at + 2:size - 2]).decode("latin-1")
    elif atyp == 1:
        host = ".".join(map(str, buf[at + 1:at + 5]))
    else:
        raw = bytes(buf[at + 1:at + 17])
        host = "[" + ":".join(raw[i:i + 2].hex() for i in range(0, 16, 2)) + "]"
    return f"{host}:{port}"
