"""Socket.IO over Engine.IO (v3 and v4) on the websocket transport.

Our own small parser. python-engineio / python-socketio's ``packet.Packet``
classes do decode passively (no server, no I/O), but they are not used here:
they would be a runtime dependency, they raise ``ValueError``/``IndexError``/
``TypeError`` on odd input rather than reporting it, they know only the
Socket.IO v5 packet names (v3's ``ERROR`` is their ``CONNECT_ERROR``) and the
Engine.IO v4 binary form (v3 prefixes binary frames with a type byte), and
they drop facts an analyst wants (the namespace query, raw data). The tests use
them as the real encoders.

Engine.IO: one packet per WebSocket message. Text: a type digit (0 open,
1 close, 2 ping, 3 pong, 4 message, 5 upgrade, 6 noop) then data; binary: a
message (v3: after a type byte 0x04). Socket.IO rides in Engine.IO
``message`` packets: type digit (0 CONNECT, 1 DISCONNECT, 2 EVENT, 3 ACK,
4 CONNECT_ERROR (v4) / ERROR (v3), 5 BINARY_EVENT, 6 BINARY_ACK), for the
binary types ``N-`` attachments, ``/namespace,``, ack id, JSON data. A binary
packet is reported once its N attachments (the next N binary messages of the
same direction) have arrived, on the header's message, attachments as hex.

Events: ``open``, ``close``, ``ping``, ``pong``, ``upgrade``, ``noop``,
``message`` (Engine.IO level; ``fields["layer"] = "engineio"``);
``connect`` (c2s) / ``connected`` (s2c), ``disconnect``, ``event`` (channel =
event name, id = ack id, ``fields["args"]``), ``ack`` (id = ack id), ``error``;
Socket.IO events carry the namespace in ``fields["namespace"]`` (and as
channel where there is no event name).

Findings: ``app_credentials_in_clear`` (CONNECT auth payload, namespace query
or handshake URI query with token/password-like keys), ``app_keepalive_missed``
(gap between pings over pingInterval + pingTimeout, from the open packet,
also checked at :meth:`SocketIODecoder.finish`), ``app_protocol_violation``
(EVENT without a name, ACK without id, attachments missing or interrupted),
``app_parse_failed`` (unreadable packets), ``app_buffer_limit`` (attachments
over the caps). Parse and spec findings only once the conversation is claimed
by URI or confirmed by an Engine.IO open packet.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from wspcap.app._quiet import quiet
from wspcap.app.base import (
    AppEvent,
    AppFinding,
    AppMessage,
    ConnFacts,
    Decoder,
    MessageRun,
    RunOutput,
)
from wspcap.app.registry import register

__all__ = ["MAX_ATTACHMENTS", "MAX_ATTACHMENT_BYTES", "SocketIODecoder"]

#: Most binary attachments a BINARY_EVENT/BINARY_ACK may announce.
MAX_ATTACHMENTS = 256
#: Most attachment bytes held per direction while a binary packet assembles.
MAX_ATTACHMENT_BYTES = 1 << 20

EIO_TYPES = ("open", "close", "ping", "pong", "message", "upgrade", "noop")
#: First bytes of an Engine.IO text packet: its type, or ``b`` (base64 binary).
_EIO_START = frozenset(bytes([c]) for c in b"0123456b")
SIO_NAMES = ("CONNECT", "DISCONNECT", "EVENT", "ACK", "CONNECT_ERROR", "BINARY_EVENT", "BINARY_ACK")
CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR, BINARY_EVENT, BINARY_ACK = range(7)
#: An Engine.IO message carrying a Socket.IO packet: type, attachments, namespace, ack id, JSON or nothing.
SIO_IN_MESSAGE = re.compile(rb'4(?:[0-4]|[56][0-9]{1,3}-)(?:/[^,]*(?:,|$))?[0-9]*(?:[\[{"]|$)')
#: Findings reported only once the conversation is known to be Engine.IO.
#: Keys of a CONNECT payload (or namespace query) that carry credentials.
SECRET_KEYS = ("token", "password", "passwd", "pass", "secret", "auth", "authorization",
               "access_token", "jwt", "apikey", "api_key", "key")


def _uri_eio(uri: str | None) -> int | None:
    """The EIO version when the URI follows the Engine.IO websocket convention."""
    if not uri:
        return None
    try:
        query = parse_qs(urlsplit(uri).query)
    except ValueError:
        return None
    if query.get("transport", [""])[0] != "websocket" or "EIO" not in query:
        return None
    version = query["EIO"][0]
    return int(version) if version.isdigit() and len(version) < 3 else 0


def _uri_secret_keys(uri: str | None) -> list[str]:
    """Credential-like keys in the handshake URI's query (Socket.IO v2/v3 clients pass ``query`` there)."""
    if _uri_eio(uri) is None or uri is None:
        return []
    try:
        return _secret_keys(parse_qs(urlsplit(uri).query))
    except ValueError:
        return []


def _secret_keys(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return []
    return [k for k in value if isinstance(k, str) and k.lower() in SECRET_KEYS]


def _fill_binary(data: Any, attachments: list[bytes], depth: int = 0) -> Any:
    """Replace ``{"_placeholder": true, "num": k}`` by ``{"_binary_hex": ...}``."""
    if depth > 64:
        return data
    if isinstance(data, list):
        return [_fill_binary(item, attachments, depth + 1) for item in data]
    if isinstance(data, dict):
        num = data.get("num")
        if data.get("_placeholder") is True and isinstance(num, int) and not isinstance(num, bool):
            if 0 <= num < len(attachments):
                return {"_binary_hex": attachments[num].hex()}
            return {"_binary_missing": num}
        return {k: _fill_binary(v, attachments, depth + 1) for k, v in data.items()}
    return data


class _Pending:
    __slots__ = ("attachments", "expected", "header", "size")

    def __init__(self, header: tuple[AppMessage, int, dict[str, Any], Any, str | None], expected: int) -> None:
        self.header = header
        self.expected = expected
        self.attachments: list[bytes] = []
        self.size = 0


@register
class SocketIODecoder(Decoder):
    """Engine.IO packets and the Socket.IO packets they carry."""

    name: ClassVar[str] = "socketio"
    recognition = "URI with EIO= (/socket.io/); content (Engine.IO open packet, probes)"
    subprotocols: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def recognize(cls, facts: ConnFacts, first: Sequence[AppMessage]) -> float:
        try:
            if _uri_eio(facts.uri) is not None:
                return 0.9
            score = 0.0
            for message in first[:4]:
                if message.type != "text":
                    continue
                text = message.payload[:512]
                if text.startswith(b"0{") and b'"sid"' in text and b'"pingInterval"' in text:
                    return 0.7
                if text in (b"2probe", b"3probe"):
                    score = max(score, 0.6)
                elif SIO_IN_MESSAGE.match(text):
                    score = max(score, 0.5)
                elif text not in (b"2", b"3", b"6"):  # bare pings/pongs/noops say nothing either way
                    return score
            return score
        except Exception:  # noqa: BLE001  (recognize() must never raise)
            return 0.0

    def __init__(self, facts: ConnFacts) -> None:
        self.facts = facts
        eio = _uri_eio(facts.uri)
        self.claimed = eio is not None
        self.confirmed = False  # an Engine.IO open packet decoded
        self.eio = eio if eio in (3, 4) else 4
        self.pending: dict[str, _Pending | None] = {"c2s": None, "s2c": None}
        self.ping_interval: int | None = None  # ms
        self.ping_timeout: int | None = None  # ms
        self.last_ping_ts: int | None = None
        self.last_ts: int | None = None
        self.uri_secrets = _uri_secret_keys(facts.uri)  # reported once, with the first output

    # -- public ---------------------------------------------------------------

    def _uri_finding(self, out: list[AppEvent | AppFinding]) -> None:
        if self.uri_secrets:
            out.append(AppFinding("app_credentials_in_clear", None, "c2s",
                                  f"Socket.IO handshake URI query carries {', '.join(self.uri_secrets)}"))
            self.uri_secrets = []

    def receive(self, message: AppMessage) -> list[AppEvent | AppFinding]:
        out: list[AppEvent | AppFinding] = []
        self._uri_finding(out)
        try:
            self._receive(message, out)
        except Exception as exc:  # noqa: BLE001  (never raise: a bug here is reported, tests look for it)
            out.append(AppFinding("app_parse_failed", message.msg_index, message.direction,
                                  f"Socket.IO decoder error: {type(exc).__name__}"))
        return quiet(out, self.claimed or self.confirmed)

    def receive_run(self, run: MessageRun) -> RunOutput:
        """:meth:`receive` on each message, but a run of text messages none of
        which starts as an Engine.IO packet does (a type digit, or ``b`` for
        base64) while the conversation is neither claimed nor confirmed and
        no binary packet awaits its attachments: each of those would give
        only a quieted parse failure and move :attr:`last_ts`, which is done
        here for the run, with no message made (forced on the chat
        benchmark, where no message is Socket.IO: +136% of ``read()``)."""
        if (self.claimed or self.confirmed or self.pending["c2s"] is not None
                or self.pending["s2c"] is not None or set(run.type) != {"text"}
                or not _EIO_START.isdisjoint({p[:1] for p in run.payload})):
            return super().receive_run(run)
        # (no URI finding is due: only a claimed conversation has one, see
        # _uri_secret_keys)
        stamps = [ts for ts in run.ts if ts]
        if stamps:
            latest = max(stamps)
            self.last_ts = latest if self.last_ts is None else max(self.last_ts, latest)
        return []

    def finish(self) -> list[AppEvent | AppFinding]:
        out: list[AppEvent | AppFinding] = []
        self._uri_finding(out)
        try:
            if self.last_ts is not None:
                self._check_ping(self.last_ts, None, None, out)
            for direction, pending in self.pending.items():
                if pending is not None:
                    out.append(AppFinding(
                        "app_protocol_violation", pending.header[0].msg_index, direction,
                        f"Socket.IO binary packet got {len(pending.attachments)} of {pending.expected} attachments"))
                    self.pending[direction] = None
        except Exception as exc:  # noqa: BLE001  (never raise: a bug here is reported, tests look for it)
            out.append(AppFinding("app_parse_failed", None, None, f"Socket.IO decoder error: {type(exc).__name__}"))
        return quiet(out, self.claimed or self.confirmed)

    # -- internals ------------------------------------------------------------

    def _limit_ns(self) -> int | None:
        if self.ping_interval is None or self.ping_timeout is None:
            return None
        return (self.ping_interval + self.ping_timeout) * 1_000_000

    def _check_ping(self, ts: int, message: AppMessage | None, direction: str | None,
                    out: list[AppEvent | AppFinding]) -> None:
        limit = self._limit_ns()
        if limit is None or self.last_ping_ts is None:
            return
        gap = ts - self.last_ping_ts
        if gap > limit:
            out.append(AppFinding(
                "app_keepalive_missed", message.msg_index if message else None, direction,
                f"Engine.IO no ping for {gap / 1e9:.1f} s (pingInterval {self.ping_interval} ms"
                f" + pingTimeout {self.ping_timeout} ms)"))

    def _fail(self, message: AppMessage, detail: str, out: list[AppEvent | AppFinding]) -> None:
        out.append(AppFinding("app_parse_failed", message.msg_index, message.direction, detail))

    def _receive(self, message: AppMessage, out: list[AppEvent | AppFinding]) -> None:
        direction = message.direction if message.direction in self.pending else "c2s"
        if message.ts:
            self.last_ts = message.ts if self.last_ts is None else max(self.last_ts, message.ts)
        payload = message.payload
        if message.type == "binary":
            if self.eio == 3 and payload[:1] == b"\x04":
                payload = payload[1:]
            pending = self.pending[direction]
            if pending is not None:
                self._attach(pending, payload, message, direction, out)
                return
            out.append(AppEvent(message.msg_index, direction, self.name, "message", None, None,
                                {"layer": "engineio", "binary_hex": payload.hex()}, 0))
            return
        pending = self.pending[direction]
        if pending is not None:
            out.append(AppFinding(
                "app_protocol_violation", message.msg_index, direction,
                f"Socket.IO text packet while {pending.expected - len(pending.attachments)} attachments were due"))
            self.pending[direction] = None
            self._emit_binary(pending, out)
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            self._fail(message, "Engine.IO text packet is not UTF-8", out)
            return
        if not text or text[0] not in "0123456":
            if text.startswith("b"):  # base64 binary message (v3 clients without binary support)
                out.append(AppEvent(message.msg_index, direction, self.name, "message", None, None,
                                    {"layer": "engineio", "base64": text[1:]}, 0))
                return
            self._fail(message, f"Engine.IO packet type {text[:1]!r}", out)
            return
        etype = int(text[0])
        data = text[1:]
        kind = EIO_TYPES[etype]
        if kind == "message":
            self._socketio(data, message, direction, out)
            return
        fields: dict[str, Any] = {"layer": "engineio"}
        if kind == "open":
            try:
                info = json.loads(data)
            except (ValueError, RecursionError):  # RecursionError: JSON nested past the interpreter limit
                self._fail(message, "Engine.IO open packet without JSON", out)
                info = None
            if isinstance(info, dict):
                self.confirmed = True
                fields.update(info)
                interval, timeout = info.get("pingInterval"), info.get("pingTimeout")
                if isinstance(interval, int) and isinstance(timeout, int):
                    self.ping_interval, self.ping_timeout = interval, timeout
                    if message.ts:
                        self.last_ping_ts = message.ts
            out.append(AppEvent(message.msg_index, direction, self.name, "open",
                                None, info.get("sid") if isinstance(info, dict) and isinstance(info.get("sid"), str)
                                else None, fields, 0))
            return
        if data:
            fields["data"] = data
        if kind == "ping" and data != "probe" and message.ts:
            self._check_ping(message.ts, message, direction, out)
            self.last_ping_ts = message.ts
        out.append(AppEvent(message.msg_index, direction, self.name, kind, None, None, fields, 0))

    def _socketio(self, data: str, message: AppMessage, direction: str, out: list[AppEvent | AppFinding]) -> None:
        if not data or data[0] not in "0123456":
            self._fail(message, f"Socket.IO packet type {data[:1]!r}", out)
            return
        stype = int(data[0])
        rest = data[1:]
        fields: dict[str, Any] = {"type": SIO_NAMES[stype] if not (stype == CONNECT_ERROR and self.eio == 3)
                                  else "ERROR"}
        attachments = 0
        if stype in (BINARY_EVENT, BINARY_ACK):
            dash = rest.find("-")
            if dash <= 0 or not rest[:dash].isdigit() or dash > 6:
                self._fail(message, "Socket.IO binary packet without attachment count", out)
                return
            attachments = int(rest[:dash])
            rest = rest[dash + 1 :]
        namespace = "/"
        if rest.startswith("/"):
            sep = rest.find(",")
            namespace, rest = (rest, "") if sep < 0 else (rest[:sep], rest[sep + 1 :])
            if "?" in namespace:
                namespace, query = namespace.split("?", 1)
                fields["query"] = query
                keys = _secret_keys({k: v for k, v in parse_qs(query).items()})
                if keys:
                    out.append(AppFinding("app_credentials_in_clear", message.msg_index, direction,
                                          f"Socket.IO namespace query carries {', '.join(keys)} (fields.query)"))
        fields["namespace"] = namespace
        digits = 0
        while digits < len(rest) and rest[digits].isdigit() and rest[digits].isascii():
            digits += 1
        ack_id = rest[:digits] if digits else None
        if digits > 20:
            self._fail(message, "Socket.IO ack id too long", out)
            return
        rest = rest[digits:]
        payload: Any = None
        if rest:
            try:
                payload = json.loads(rest)
            except (ValueError, RecursionError):  # RecursionError: JSON nested past the interpreter limit
                self._fail(message, f"Socket.IO {fields['type']} data is not JSON", out)
                return
        if stype in (BINARY_EVENT, BINARY_ACK):
            if attachments > MAX_ATTACHMENTS:
                out.append(AppFinding("app_buffer_limit", message.msg_index, direction,
                                      f"Socket.IO binary packet announces {attachments} attachments"
                                      f" (cap {MAX_ATTACHMENTS})"))
                attachments = 0
            if attachments:
                self.pending[direction] = _Pending((message, stype, fields, payload, ack_id), attachments)
                return
        self._emit(message, stype, fields, payload, ack_id, out)

    def _attach(self, pending: _Pending, payload: bytes, message: AppMessage, direction: str,
                out: list[AppEvent | AppFinding]) -> None:
        pending.size += len(payload)
        if pending.size > MAX_ATTACHMENT_BYTES:
            out.append(AppFinding("app_buffer_limit", message.msg_index, direction,
                                  f"Socket.IO attachments over the {MAX_ATTACHMENT_BYTES} byte cap, dropped"))
            pending.attachments.append(b"")
        else:
            pending.attachments.append(payload)
        if len(pending.attachments) >= pending.expected:
            self.pending[direction] = None
            self._emit_binary(pending, out)

    def _emit_binary(self, pending: _Pending, out: list[AppEvent | AppFinding]) -> None:
        message, stype, fields, payload, ack_id = pending.header
        fields["attachments"] = pending.expected
        self._emit(message, stype, fields, _fill_binary(payload, pending.attachments), ack_id, out)

    def _emit(self, message: AppMessage, stype: int, fields: dict[str, Any], payload: Any, ack_id: str | None,
              out: list[AppEvent | AppFinding]) -> None:
        direction = message.direction if message.direction in self.pending else "c2s"
        namespace = fields["namespace"]
        channel: str | None = namespace
        if stype == CONNECT:
            kind = "connected" if direction == "s2c" else "connect"
            if payload is not None:
                fields["data"] = payload
            keys = _secret_keys(payload) if direction == "c2s" else []
            if keys:
                out.append(AppFinding("app_credentials_in_clear", message.msg_index, direction,
                                      f"Socket.IO CONNECT to {namespace} carries {', '.join(keys)} (fields.data)"))
        elif stype == DISCONNECT:
            kind = "disconnect"
        elif stype in (EVENT, BINARY_EVENT):
            kind = "event"
            if isinstance(payload, list) and payload and isinstance(payload[0], str):
                channel = payload[0]
                fields["args"] = payload[1:]
            else:
                out.append(AppFinding("app_protocol_violation", message.msg_index, direction,
                                      "Socket.IO EVENT without an event name"))
                fields["data"] = payload
        elif stype in (ACK, BINARY_ACK):
            kind = "ack"
            fields["args"] = payload
            if ack_id is None:
                out.append(AppFinding("app_protocol_violation", message.msg_index, direction,
                                      "Socket.IO ACK without an ack id"))
        else:
            kind = "error"
            fields["data"] = payload
        out.append(AppEvent(message.msg_index, direction, self.name, kind, channel, ack_id, fields, 0))
