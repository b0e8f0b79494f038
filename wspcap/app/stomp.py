"""STOMP 1.0, 1.1 and 1.2 over WebSocket (subprotocols ``v10.stomp``, ``v11.stomp``, ``v12.stomp``).

Our own small parser, from the STOMP 1.2 specification (frames, header
escaping, content-length, heart-beats): stomp.py and the other Python STOMP
packages parse frames inside their transport classes, tied to a socket, so no
package parser fits passively.

A frame is ``COMMAND EOL (header:value EOL)* EOL body NUL``; EOL is ``\\n`` or
``\\r\\n``. Several frames may share a message, and a frame may span messages
(each direction keeps a buffer, bounded by :data:`MAX_FRAME`). EOLs between
frames are heart-beats: a message made only of them is a ``ping`` event.

Events: ``connect`` (CONNECT/STOMP, channel = host), ``connected``, ``publish`` (SEND, channel
= destination), ``message`` (MESSAGE, channel = destination, id =
message-id), ``subscribe``/``unsubscribe`` (channel = destination, id =
subscription id), ``ack``/``nack``, ``transaction`` (BEGIN/COMMIT/ABORT),
``disconnect``, ``receipt`` (id = receipt-id), ``error``. A client frame that
asks for a receipt carries the receipt value as its id, so RECEIPT (or ERROR)
pairs with it; only such frames open a request (the runner's ``asks`` rule:
the other ids name subscriptions, acks and messages). ``fields``: ``type``
(the command), ``headers``, ``body`` (text) or ``body_hex``.

Findings: ``app_credentials_in_clear`` (a ``passcode`` header),
``app_parse_failed`` (a frame that cannot be read, a frame cut short at the
end), ``app_protocol_violation`` (a client frame sent by the server or the
reverse, SEND/SUBSCRIBE without destination), ``app_buffer_limit`` (a frame
over :data:`MAX_FRAME`). Parse and spec findings only once the conversation is
claimed by subprotocol or confirmed by a CONNECT/STOMP/CONNECTED frame.

Until then, a message that comes on an empty buffer and whose first byte
after EOLs begins no command (a JSON text, say) is passed over: it can
neither start a frame nor continue one. (It was buffered, so that the
frame it made swallowed the messages after it up to a NUL; forced on
chat, each message went through the parser.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from wspcap.app._quiet import pass_over, quiet
from wspcap.app.base import (
    AppEvent,
    AppFinding,
    AppMessage,
    ConnFacts,
    Decoder,
    MessageRun,
    RunOutput,
    first_bytes,
)
from wspcap.app.registry import register

__all__ = ["MAX_FRAME", "StompDecoder"]

#: Largest frame buffered for decoding; past it the frame is dropped up to its NUL.
MAX_FRAME = 1 << 20

KINDS = {
    "CONNECT": "connect", "STOMP": "connect", "CONNECTED": "connected", "SEND": "publish",
    "MESSAGE": "message", "SUBSCRIBE": "subscribe", "UNSUBSCRIBE": "unsubscribe", "ACK": "ack",
    "NACK": "nack", "BEGIN": "transaction", "COMMIT": "transaction", "ABORT": "transaction",
    "DISCONNECT": "disconnect", "RECEIPT": "receipt", "ERROR": "error",
}
CLIENT_COMMANDS = frozenset({"CONNECT", "STOMP", "SEND", "SUBSCRIBE", "UNSUBSCRIBE", "ACK", "NACK",
                             "BEGIN", "COMMIT", "ABORT", "DISCONNECT"})
#: STOMP 1.1/1.2 header escapes (spec "Value Encoding").
ESCAPES = {"r": "\r", "n": "\n", "c": ":", "\\": "\\"}
#: Findings reported only once the conversation is known to be STOMP.
VERSIONS = {"v10.stomp": "1.0", "v11.stomp": "1.1", "v12.stomp": "1.2"}


#: The first bytes of the commands (:data:`KINDS`): a frame starts with one.
_STARTS = frozenset(ord(command[0]) for command in KINDS)
#: The bytes a message that may start a frame (or heart-beats: EOLs) starts with.
_MAY_START = bytes(sorted(_STARTS)) + b"\r\n"


def _starts_no_frame(data: bytes) -> bool:
    """Whether ``data``, at the start of a message on an empty buffer, can
    begin no frame: its first byte after EOLs begins no command (only EOLs
    are heart-beats, and nothing is nothing)."""
    i, n = 0, len(data)
    while i < n and data[i] in b"\r\n":
        i += 1
    return i < n and data[i] not in _STARTS


class _Malformed(Exception):
    """A frame that does not follow the spec (internal only)."""


class _Oversize(Exception):
    """A frame whose content-length runs past :data:`MAX_FRAME`; ``size`` is its whole length."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\":
            nxt = value[i + 1 : i + 2]
            if nxt not in ESCAPES:
                raise _Malformed(f"undefined header escape \\{nxt}")
            out.append(ESCAPES[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _line(raw: bytes) -> str:
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Malformed("header line is not UTF-8") from exc


def _maybe_frame(buf: bytes | bytearray, version: str | None, since: int = 0
                 ) -> tuple[int, str, list[tuple[str, str]], bytes] | Literal[False] | None:
    """Parse one frame at the start of ``buf`` (no leading EOLs).

    Returns (length consumed, command, headers in order, body), or, when
    more bytes are needed, None while the headers are not whole and False
    once they are. ``since``: how many leading bytes of ``buf`` a call that
    returned None looked through already (none holds a NUL or the end of
    the headers): the searches start there, so that a frame that grows a
    message at a time is not searched again from its start each time.
    Raises :class:`_Malformed`.
    """
    end_headers = buf.find(b"\n\n", max(0, since - 1))
    end_crlf = buf.find(b"\n\r\n", max(0, since - 2))
    if end_headers < 0 and end_crlf < 0:
        if buf.find(b"\0", since) >= 0:
            raise _Malformed("frame ends before its headers")
        return None
    if end_headers < 0 or 0 <= end_crlf < end_headers:
        head, body_start = bytes(buf[:end_crlf]), end_crlf + 3
    else:
        head, body_start = bytes(buf[:end_headers]), end_headers + 2
    if b"\0" in head:
        raise _Malformed("NUL inside the frame's headers")
    lines = head.split(b"\n")
    command = _line(lines[0])
    if command not in KINDS:
        raise _Malformed(f"unknown command {command[:40]!r}")
    escape = version != "1.0" and command not in ("CONNECT", "CONNECTED", "STOMP")
    headers: list[tuple[str, str]] = []
    for raw in lines[1:]:
        text = _line(raw)
        name, sep, value = text.partition(":")
        if not sep:
            raise _Malformed(f"header line without a colon: {text[:40]!r}")
        if escape:
            name, value = _unescape(name), _unescape(value)
        headers.append((name, value))
    length_text = next((v for k, v in headers if k == "content-length"), None)
    if length_text is not None:
        if not length_text.strip().isdigit():
            raise _Malformed(f"content-length {length_text[:20]!r}")
        length = int(length_text)
        if body_start + length + 1 > MAX_FRAME:
            raise _Oversize(body_start + length + 1)
        if len(buf) < body_start + length + 1:
            return False
        if buf[body_start + length] != 0:
            raise _Malformed("no NUL after content-length bytes")
        return body_start + length + 1, command, headers, bytes(buf[body_start : body_start + length])
    nul = buf.find(b"\0", body_start)
    if nul < 0:
        return False
    return nul + 1, command, headers, bytes(buf[body_start:nul])


def _skip_eols(buf: bytearray) -> int:
    i = 0
    while i < len(buf):
        if buf[i] == 0x0A:
            i += 1
        elif buf[i] == 0x0D and i + 1 < len(buf) and buf[i + 1] == 0x0A:
            i += 2
        else:
            break
    return i


def _only_eols(buf: bytearray) -> bool:
    """Whether ``buf`` holds nothing but CR and LF bytes (or nothing), without
    copying it where its first byte says no."""
    return (not buf or buf[0] in (0x0D, 0x0A)) and not buf.strip(b"\r\n")


@register
class StompDecoder(Decoder):
    """STOMP frames, per direction, across message boundaries."""

    name: ClassVar[str] = "stomp"
    recognition = "subprotocol v10/v11/v12.stomp; content (a CONNECT or STOMP frame from the client)"
    subprotocols: ClassVar[tuple[str, ...]] = ("v10.stomp", "v11.stomp", "v12.stomp")

    @classmethod
    def recognize(cls, facts: ConnFacts, first: Sequence[AppMessage]) -> float:
        try:
            if (facts.subprotocol or "").lower() in cls.subprotocols:
                return 1.0
            for message in first[:3]:
                if message.direction != "c2s":
                    continue
                data = message.payload.lstrip(b"\r\n")
                for command in (b"CONNECT", b"STOMP"):
                    if data.startswith((command + b"\n", command + b"\r\n")):
                        head = data.split(b"\n\n", 1)[0].split(b"\n\r\n", 1)[0]
                        return 0.7 if b"accept-version:" in head or b"\0" in data else 0.5
                return 0.0
            return 0.0
        except Exception:  # noqa: BLE001  (recognize() must never raise)
            return 0.0

    def __init__(self, facts: ConnFacts) -> None:
        self.facts = facts
        sub = (facts.subprotocol or "").lower()
        self.claimed = sub in self.subprotocols
        self.confirmed = False  # a CONNECT/STOMP/CONNECTED frame decoded
        self.version: str | None = VERSIONS.get(sub)
        self.bufs = {"c2s": bytearray(), "s2c": bytearray()}
        self.start: dict[str, int | None] = {"c2s": None, "s2c": None}
        self.dropping = {"c2s": False, "s2c": False}
        self.skip = {"c2s": 0, "s2c": 0}
        #: Leading bytes of each buffer searched already (see _maybe_frame).
        self.scanned = {"c2s": 0, "s2c": 0}

    def receive(self, message: AppMessage) -> list[AppEvent | AppFinding]:
        out: list[AppEvent | AppFinding] = []
        try:
            self._receive(message, out)
        except Exception as exc:  # noqa: BLE001  (never raise: a bug here is reported, tests look for it)
            out.append(AppFinding("app_parse_failed", message.msg_index, message.direction,
                                  f"STOMP decoder error: {type(exc).__name__}"))
        return quiet(out, self.claimed or self.confirmed)

    def receive_run(self, run: MessageRun) -> RunOutput:
        """:meth:`receive` on each message of ``run``; a run none of whose
        messages could start a frame, on empty buffers while the conversation
        is neither claimed nor confirmed, is passed over whole (see the
        module's note): it changes nothing."""
        if not (self.claimed or self.confirmed) and not any(self.bufs.values()) and \
                not any(self.skip.values()) and not any(self.dropping.values()):
            # (their first bytes, joined in C: none empty, none may start one)
            firsts = first_bytes(run.payload)
            if len(firsts) == len(run) and \
                    len(firsts.translate(None, _MAY_START)) == len(firsts):
                return []
        return super().receive_run(run)

    def finish(self) -> list[AppEvent | AppFinding]:
        out: list[AppEvent | AppFinding] = []
        for direction, buf in self.bufs.items():
            if buf.strip(b"\r\n") or self.skip[direction]:
                out.append(AppFinding("app_parse_failed", self.start[direction], direction,
                                      f"STOMP frame cut short at the end of the connection ({len(buf)} bytes pending)"))
            buf.clear()
            self.skip[direction] = 0
            self.scanned[direction] = 0
        return quiet(out, self.claimed or self.confirmed)

    def _receive(self, message: AppMessage, out: list[AppEvent | AppFinding]) -> None:
        direction = message.direction if message.direction in self.bufs else "c2s"
        buf = self.bufs[direction]
        data = message.payload
        if self.skip[direction] or self.dropping[direction]:
            rest = self._unskipped(direction, data)
            if rest is None:
                return
            data = rest
        if not buf and not (self.claimed or self.confirmed) and _starts_no_frame(data):
            return  # (not STOMP, see the module's note)
        if data and not data.strip(b"\r\n") and not buf:
            out.append(AppEvent(message.msg_index, direction, self.name, "ping", None, None,
                                {"type": "heart-beat", "eols": data.count(b"\n")}, 0))
            return
        if _only_eols(buf):
            self.start[direction] = message.msg_index
        since = self.scanned[direction]
        buf += data
        # The whole frames at the buffer's front (run per message: rare turns in helpers).
        part = 0
        while True:
            eols = _skip_eols(buf)
            if eols:
                del buf[:eols]
                since = 0
            if not buf:
                break
            # (a later turn comes after bytes were taken off the buffer's front)
            searched, since = since, 0
            try:
                frame = _maybe_frame(buf, self.version, searched)
            except _Oversize as exc:
                if self._skip_oversize(exc.size, message, direction, buf, out):
                    continue
                break
            except _Malformed as exc:
                self._drop_frame(exc, message, direction, buf, out)
                continue
            if not frame:  # more bytes needed
                self._await_more(frame, message, direction, buf, out)
                return
            used, command, headers, body = frame
            start = self.start[direction]
            del buf[:used]
            self.start[direction] = message.msg_index
            out.extend(self._frame(command, headers, body, message, direction, part, start))
            part += 1
        self.scanned[direction] = 0

    def _unskipped(self, direction: str, data: bytes) -> bytes | None:
        """``data`` past what is left of a frame being skipped (over the cap, by
        its content-length) or dropped (up to its NUL); None when nothing more
        of the message is to be looked at."""
        if self.skip[direction]:
            n = min(self.skip[direction], len(data))
            self.skip[direction] -= n
            data = data[n:]
            if not data:
                return None
        if self.dropping[direction]:
            nul = data.find(b"\0")
            if nul < 0:
                return None
            self.dropping[direction] = False
            data = data[nul + 1 :]
        return data

    def _skip_oversize(self, size: int, message: AppMessage, direction: str, buf: bytearray,
                       out: list[AppEvent | AppFinding]) -> bool:
        """Report a frame of ``size`` bytes (by its content-length) over :data:`MAX_FRAME`
        and pass over it. True when it was whole in ``buf`` (decoding goes on after
        it); False when the rest of it is left in ``skip`` for the messages to come."""
        out.append(AppFinding("app_buffer_limit", message.msg_index, direction,
                              f"STOMP frame of {size} bytes over the {MAX_FRAME} byte cap, skipped"))
        left = pass_over(buf, size)
        if left:
            self.skip[direction] = left
        return not left

    def _drop_frame(self, exc: _Malformed, message: AppMessage, direction: str, buf: bytearray,
                    out: list[AppEvent | AppFinding]) -> None:
        """Report a frame that cannot be read and take it off ``buf`` up to its NUL;
        with no NUL yet, drop the buffer and the messages to come up to one."""
        out.append(AppFinding("app_parse_failed", message.msg_index, direction, f"STOMP {exc}"))
        nul = buf.find(b"\0")
        if nul < 0:
            buf.clear()
            self.dropping[direction] = True
        else:
            del buf[: nul + 1]

    def _await_more(self, frame: Literal[False] | None, message: AppMessage, direction: str,
                    buf: bytearray, out: list[AppEvent | AppFinding]) -> None:
        """A frame not whole yet (``frame``: what :func:`_maybe_frame` said): keep it
        for the next message, unless it is already over :data:`MAX_FRAME`."""
        if len(buf) > MAX_FRAME:
            out.append(AppFinding("app_buffer_limit", message.msg_index, direction,
                                  f"STOMP frame over the {MAX_FRAME} byte cap, dropped"))
            buf.clear()
            self.dropping[direction] = True
        # (headers not whole: what is here holds neither their end nor a NUL)
        self.scanned[direction] = len(buf) if frame is None else 0

    def _frame(self, command: str, headers: list[tuple[str, str]], body: bytes, message: AppMessage,
               direction: str, part: int, start: int | None) -> list[AppEvent | AppFinding]:
        found: list[AppEvent | AppFinding] = []
        first: dict[str, str] = {}
        for name, value in headers:
            first.setdefault(name, value)  # a repeated header: the first one wins (spec)
        fields: dict[str, Any] = {"type": command, "headers": [[k, v] for k, v in headers]}
        if start is not None and start != message.msg_index:
            fields["start_msg"] = start
        if body:
            try:
                fields["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                fields["body_hex"] = body.hex()
        expected = "c2s" if command in CLIENT_COMMANDS else "s2c"
        if direction != expected:
            found.append(AppFinding("app_protocol_violation", message.msg_index, direction,
                                    f"STOMP {command} frame sent {direction}"))
        channel = first.get("destination")
        ident: str | None = first.get("receipt")
        if command in ("CONNECT", "STOMP", "CONNECTED"):
            self.confirmed = True
        if command in ("CONNECT", "STOMP"):
            if "passcode" in first:
                login = first.get("login")
                who = f"login {login}" if login is not None else "no login"
                found.append(AppFinding("app_credentials_in_clear", message.msg_index, direction,
                                        f"STOMP {command} passcode for {who} (fields.headers)"))
            channel = first.get("host")
        elif command == "CONNECTED":
            if first.get("version") in ("1.0", "1.1", "1.2"):
                self.version = first["version"]
        elif command == "MESSAGE":
            ident = first.get("message-id")
        elif command in ("SUBSCRIBE", "UNSUBSCRIBE"):
            ident = ident or first.get("id")
        elif command in ("ACK", "NACK"):
            ident = ident or first.get("id") or first.get("message-id")
        elif command in ("RECEIPT", "ERROR"):
            ident = first.get("receipt-id")
            if command == "ERROR" and "message" in first:
                channel = None
        if command in ("SEND", "SUBSCRIBE") and channel is None:
            found.append(AppFinding("app_protocol_violation", message.msg_index, direction,
                                    f"STOMP {command} without destination"))
        found.append(AppEvent(message.msg_index, direction, self.name, KINDS[command], channel, ident, fields, part))
        return found
