"""MQTT 3.1.1 and 5.0 over WebSocket (subprotocol ``mqtt``, also ``mqttv3.1``).

Our own small parser, from the OASIS specs (MQTT 3.1.1 and 5.0, sections 2
and 3). paho-mqtt has no passive decoder: its packet reading lives inside
``Client`` and is tied to a socket and the client's own state machine, so the
decoder does not use it (the tests use paho's packet builders as the real
encoder).

MQTT is a byte stream carried in binary WebSocket messages: a packet may be
split over several messages or several packets packed into one, so each
direction keeps a buffer, bounded by :data:`MAX_PACKET` (a larger packet is
skipped by its declared length and reported, the stream stays in step).

Events: ``connect`` (client id, clean session, keep-alive, user, password,
will), ``connected``/``error`` (CONNACK), ``publish`` (channel = topic, id =
packet id), ``ack`` (PUBACK/PUBREC/PUBREL/PUBCOMP/SUBACK/UNSUBACK, id = packet
id), ``subscribe``/``unsubscribe`` (channel = topics joined by ``,``),
``ping``/``pong``, ``disconnect``, ``auth``. ``fields["type"]`` is the packet
name. An event is reported on the message in which its packet ends (with
``fields["start_msg"]`` when it began in an earlier one).

Findings: ``app_credentials_in_clear`` (CONNECT with a password; the user
name in the detail), ``app_keepalive_missed`` (no client packet within 1.5 x
keep-alive, also checked at :meth:`MqttDecoder.finish`),
``app_protocol_violation`` (remaining length over 4 bytes, PUBLISH/SUBSCRIBE
QoS 3, wrong fixed-header flags, reserved types, MQTT in text messages,
unexpected trailing bytes), ``app_parse_failed`` (a body that cannot be read,
a packet cut short at the end), ``app_buffer_limit`` (a packet over
:data:`MAX_PACKET`, skipped). Parse and spec findings only once the
conversation is claimed by subprotocol or confirmed by a CONNECT.

MQTT travels in binary messages only (MQTT 3.1.1 and 5.0, section 6): a
text message is read as MQTT, and flagged, once the conversation is claimed
or confirmed; before that, only a text message that starts a CONNECT is
read (a client that sends MQTT as text is still found), and the others are
passed over. Forced on a conversation of JSON text, the decoder read each
``{"`` as a PUBCOMP and gave a row of nonsense per message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

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

__all__ = ["MAX_PACKET", "MqttDecoder"]

#: Largest packet (fixed header included) buffered for decoding.
MAX_PACKET = 1 << 20
#: Packets decoded from one message at the most (a message of a million
#: two-byte packets is an attack on the reader, not traffic): the rest of the
#: message is passed over, with an ``app_buffer_limit`` finding.
MAX_PACKETS_PER_MESSAGE = 4096
#: Findings reported only once the conversation is known to be MQTT.
#: Most topic aliases remembered per direction.
MAX_ALIASES = 1024

# Control packet types (MQTT 3.1.1 2.2.1, MQTT 5 2.1.2)
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP = 8, 9, 10, 11, 12, 13
DISCONNECT, AUTH = 14, 15
PACKET_NAMES = {
    1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
    7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
    12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH",
}
KINDS = {
    CONNECT: "connect", CONNACK: "connected", PUBLISH: "publish", PUBACK: "ack",
    PUBREC: "ack", PUBREL: "ack", PUBCOMP: "ack", SUBSCRIBE: "subscribe", SUBACK: "ack",
    UNSUBSCRIBE: "unsubscribe", UNSUBACK: "ack", PINGREQ: "ping", PINGRESP: "pong",
    DISCONNECT: "disconnect", AUTH: "auth",
}
#: Fixed-header flags a packet type must carry (2.2.2); PUBLISH's are free.
REQUIRED_FLAGS = {PUBREL: 0b0010, SUBSCRIBE: 0b0010, UNSUBSCRIBE: 0b0010}
#: Packets whose body is a packet id, then (MQTT 5) a reason code, properties or codes.
_ACKS = frozenset({PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK})

# PUBLISH flags (3.3.1)
DUP = 0b1000
QOS = 0b0110
RETAIN = 0b0001
# CONNECT flags (3.1.2.3)
USERNAME_FLAG = 0x80
PASSWORD_FLAG = 0x40
WILL_RETAIN = 0x20
WILL_QOS = 0x18
WILL_FLAG = 0x04
CLEAN_SESSION = 0x02
CONNECT_RESERVED = 0x01

# MQTT 5 properties (2.2.2.2): identifier -> (name, wire type)
PROPERTIES: dict[int, tuple[str, str]] = {
    0x01: ("payload_format_indicator", "byte"), 0x02: ("message_expiry_interval", "u32"),
    0x03: ("content_type", "str"), 0x08: ("response_topic", "str"),
    0x09: ("correlation_data", "bin"), 0x0B: ("subscription_identifier", "varint"),
    0x11: ("session_expiry_interval", "u32"), 0x12: ("assigned_client_identifier", "str"),
    0x13: ("server_keep_alive", "u16"), 0x15: ("authentication_method", "str"),
    0x16: ("authentication_data", "bin"), 0x17: ("request_problem_information", "byte"),
    0x18: ("will_delay_interval", "u32"), 0x19: ("request_response_information", "byte"),
    0x1A: ("response_information", "str"), 0x1C: ("server_reference", "str"),
    0x1F: ("reason_string", "str"), 0x21: ("receive_maximum", "u16"),
    0x22: ("topic_alias_maximum", "u16"), 0x23: ("topic_alias", "u16"),
    0x24: ("maximum_qos", "byte"), 0x25: ("retain_available", "byte"),
    0x26: ("user_property", "pair"), 0x27: ("maximum_packet_size", "u32"),
    0x28: ("wildcard_subscription_available", "byte"),
    0x29: ("subscription_identifier_available", "byte"),
    0x2A: ("shared_subscription_available", "byte"),
}


class _Malformed(Exception):
    """A packet body that does not follow the spec (internal only)."""


class _Reader:
    """Bounds-checked reads over one packet body."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _Malformed(f"needs {n} bytes, {self.left()} left")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def varint(self) -> int:
        value = 0
        for i in range(4):
            byte = self.u8()
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                return value
        raise _Malformed("variable byte integer over 4 bytes")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def string(self) -> str:
        raw = self.binary()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Malformed("string is not UTF-8") from exc

    def properties(self) -> dict[str, Any]:
        """Read an MQTT 5 property block; unknown identifiers end decoding, the block is skipped whole."""
        length = self.varint()
        block = _Reader(self.take(length))
        props: dict[str, Any] = {}
        while block.left():
            ident = block.varint()
            known = PROPERTIES.get(ident)
            if known is None:
                props["unknown_property"] = ident
                break
            name, kind = known
            value: Any
            if kind == "byte":
                value = block.u8()
            elif kind == "u16":
                value = block.u16()
            elif kind == "u32":
                value = block.u32()
            elif kind == "varint":
                value = block.varint()
            elif kind == "str":
                value = block.string()
            elif kind == "bin":
                value = block.binary().hex()
            else:
                value = [block.string(), block.string()]
            if name in ("user_property", "subscription_identifier"):
                props.setdefault(name, []).append(value)
            else:
                props[name] = value
        return props


def _text_or_hex(raw: bytes, key: str, out: dict[str, Any]) -> None:
    try:
        out[key] = raw.decode("utf-8")
    except UnicodeDecodeError:
        out[key + "_hex"] = raw.hex()


def _maybe_fixed_header(buf: bytes | bytearray) -> tuple[int, int, int] | None:
    """(first byte, header length, remaining length), None when more bytes are needed.

    Raises :class:`_Malformed` when the remaining length runs over 4 bytes.
    """
    if not buf:
        return None
    value = 0
    for i in range(4):
        if 1 + i >= len(buf):
            return None
        byte = buf[1 + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return buf[0], 2 + i, value
    raise _Malformed("remaining length over 4 bytes")


class _Direction:
    __slots__ = ("aliases", "buf", "skip", "start_msg")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.skip = 0
        self.start_msg: int | None = None
        self.aliases: dict[int, str] = {}


@register
class MqttDecoder(Decoder):
    """MQTT 3.1.1 / 5.0 control packets, per direction, across message boundaries."""

    name: ClassVar[str] = "mqtt"
    recognition = "subprotocol mqtt or mqttv3.1; content (a CONNECT packet from the client)"
    subprotocols: ClassVar[tuple[str, ...]] = ("mqtt", "mqttv3.1")

    @classmethod
    def recognize(cls, facts: ConnFacts, first: Sequence[AppMessage]) -> float:
        try:
            if (facts.subprotocol or "").lower() in cls.subprotocols:
                return 1.0
            for message in first[:3]:
                if message.direction == "c2s":
                    return 0.7 if _looks_like_connect(message.payload) else 0.0
            return 0.0
        except Exception:  # noqa: BLE001  (recognize() must never raise)
            return 0.0

    def __init__(self, facts: ConnFacts) -> None:
        self.facts = facts
        self.claimed = (facts.subprotocol or "").lower() in self.subprotocols
        self.confirmed = False  # a CONNECT decoded: the conversation is MQTT even without the subprotocol
        self.version = 4
        self.dirs = {"c2s": _Direction(), "s2c": _Direction()}
        self.keep_alive = 0  # seconds, 0 = off
        self.last_client_ts: int | None = None
        self.last_ts: int | None = None

    # -- public ---------------------------------------------------------------

    def receive(self, message: AppMessage) -> list[AppEvent | AppFinding]:
        out: list[AppEvent | AppFinding] = []
        try:
            self._receive(message, out)
        except Exception as exc:  # noqa: BLE001  (never raise: a bug here is reported, tests look for it)
            out.append(self._finding("app_parse_failed", message, f"MQTT decoder error: {type(exc).__name__}"))
        return quiet(out, self.claimed or self.confirmed)

    def finish(self) -> list[AppEvent | AppFinding]:
        out: list[AppEvent | AppFinding] = []
        try:
            if self.last_ts is not None:
                self._check_keepalive(self.last_ts, None, None, out)
            for direction, state in self.dirs.items():
                if state.buf or state.skip:
                    n = len(state.buf) or state.skip
                    out.append(AppFinding("app_parse_failed", state.start_msg, direction,
                                          f"MQTT packet cut short at the end of the connection ({n} bytes pending)"))
                    state.buf.clear()
                    state.skip = 0
        except Exception as exc:  # noqa: BLE001  (never raise: a bug here is reported, tests look for it)
            out.append(AppFinding("app_parse_failed", None, None, f"MQTT decoder error: {type(exc).__name__}"))
        return quiet(out, self.claimed or self.confirmed)

    # -- internals ------------------------------------------------------------

    def _finding(self, code: str, message: AppMessage, detail: str) -> AppFinding:
        return AppFinding(code, message.msg_index, message.direction, detail)

    def _check_keepalive(self, ts: int, message: AppMessage | None, direction: str | None,
                         out: list[AppEvent | AppFinding]) -> None:
        if not self.keep_alive or self.last_client_ts is None:
            return
        gap = ts - self.last_client_ts
        if gap > self.keep_alive * 1_500_000_000:
            out.append(AppFinding(
                "app_keepalive_missed", message.msg_index if message else None, direction,
                f"MQTT client silent for {gap / 1e9:.1f} s, keep-alive {self.keep_alive} s x 1.5"))

    def receive_run(self, run: MessageRun) -> RunOutput:
        """:meth:`receive` on each message of ``run``; a run of text none of
        whose messages starts as a CONNECT does, while the conversation is
        neither claimed nor confirmed, is passed over whole (see the module's
        note): its latest time is all :meth:`receive` would take from it."""
        if not (self.claimed or self.confirmed) and "binary" not in run.type and \
                _CONNECT_BYTE not in first_bytes(run.payload):
            self._saw(max(run.ts, default=0))
            return []
        return super().receive_run(run)

    def _saw(self, ts: int) -> None:
        """A message's time (0: none) taken as the latest one seen."""
        if ts:
            self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)

    def _receive(self, message: AppMessage, out: list[AppEvent | AppFinding]) -> None:
        direction = message.direction if message.direction in self.dirs else "c2s"
        state = self.dirs[direction]
        if message.ts and direction == "c2s":
            self._check_keepalive(message.ts, message, direction, out)
        self._saw(message.ts)
        if message.type == "text" and not self._read_text(message, out):
            return  # (not MQTT, see the module's note)
        data = message.payload
        if state.skip:
            n = min(state.skip, len(data))
            state.skip -= n
            data = data[n:]
        if not data:
            return  # (nothing to read: an empty message, or only the rest of a skipped packet)
        if not state.buf:
            state.start_msg = message.msg_index
        state.buf += data
        # The whole packets at the front of the buffer; what is left there is
        # the start of a packet that ends in a later message. (This loop is run
        # per message: it stays here, the rare turns go to the helpers.)
        part = decoded = 0
        while state.buf:
            header = self._next_header(message, state, decoded, out)
            if header is None:
                break
            first, hlen, total = header
            if total > MAX_PACKET:
                if self._skip_oversize(first, total, message, state, out):
                    continue
                break
            if len(state.buf) < total:
                break
            body = bytes(state.buf[hlen:total])
            start = state.start_msg
            del state.buf[:total]
            part = self._packet(first, body, message, direction, state, part, start, out)
            decoded += 1
            state.start_msg = message.msg_index
        if state.skip == 0 and not state.buf:
            state.start_msg = None
        if direction == "c2s" and message.ts:
            self.last_client_ts = message.ts

    def _read_text(self, message: AppMessage, out: list[AppEvent | AppFinding]) -> bool:
        """Whether a text message is read as MQTT (flagged: binary is required);
        before the conversation is claimed or confirmed, only one that starts
        a CONNECT is (see the module's note)."""
        if not (self.claimed or self.confirmed) and not _looks_like_connect(message.payload):
            return False
        out.append(self._finding("app_protocol_violation", message,
                                 "MQTT sent in a text message (binary required)"))
        return True

    def _next_header(self, message: AppMessage, state: _Direction, decoded: int,
                     out: list[AppEvent | AppFinding]) -> tuple[int, int, int] | None:
        """(first byte, header length, whole length) of the packet at the front of
        ``state.buf``; None when decoding stops for this message: more bytes are
        needed, or the rest of the buffer was dropped (and reported) because the
        packets' boundaries can no longer be trusted or there were too many."""
        try:
            header = _maybe_fixed_header(state.buf)
        except _Malformed as exc:
            out.append(self._finding("app_protocol_violation", message, f"MQTT {exc}; rest of the message dropped"))
            state.buf.clear()
            return None
        if header is None:
            if len(state.buf) > 5:  # pragma: no cover - a header is at most 5 bytes
                state.buf.clear()
            return None
        first, hlen, remaining = header
        ptype = first >> 4
        if ptype not in PACKET_NAMES or (ptype == AUTH and self.version < 5):
            # The packets' boundaries cannot be trusted past a reserved type.
            out.append(self._finding("app_protocol_violation", message,
                                     f"MQTT reserved packet type {ptype}; rest of the "
                                     "message dropped"))
            state.buf.clear()
            return None
        if decoded >= MAX_PACKETS_PER_MESSAGE:
            out.append(self._finding("app_buffer_limit", message,
                                     f"more than {MAX_PACKETS_PER_MESSAGE} MQTT packets in "
                                     "one message; the rest passed over"))
            state.buf.clear()
            return None
        return first, hlen, hlen + remaining

    def _skip_oversize(self, first: int, total: int, message: AppMessage, state: _Direction,
                       out: list[AppEvent | AppFinding]) -> bool:
        """Report a packet over :data:`MAX_PACKET` and pass over it by its declared
        length. True when it was whole in the buffer (decoding goes on after it);
        False when the rest of it is left in ``state.skip`` for the messages to come."""
        out.append(self._finding(
            "app_buffer_limit", message,
            f"MQTT {PACKET_NAMES.get(first >> 4, 'packet')} of {total} bytes over the {MAX_PACKET} byte cap, skipped"))
        left = pass_over(state.buf, total)
        if left:
            state.skip = left
        return not left

    def _packet(self, first: int, body: bytes, message: AppMessage, direction: str,
                state: _Direction, part: int, start: int | None,
                out: list[AppEvent | AppFinding]) -> int:
        """Decode one whole packet into an event (or an ``app_parse_failed``
        finding when its body cannot be read); the next event's ``part``."""
        ptype, flags = first >> 4, first & 0x0F
        name = PACKET_NAMES[ptype]  # (reserved types stop the message before: _next_header)
        if ptype in REQUIRED_FLAGS and flags != REQUIRED_FLAGS[ptype] or \
                ptype not in REQUIRED_FLAGS and ptype != PUBLISH and flags:
            out.append(self._finding("app_protocol_violation", message,
                                     f"MQTT {name} with fixed-header flags {flags:04b}"))
        fields: dict[str, Any] = {"type": name}
        if start is not None and start != message.msg_index:
            fields["start_msg"] = start
        kind = KINDS[ptype]
        channel: str | None = None
        ident: str | None = None
        reader = _Reader(body)
        try:
            if ptype == CONNECT:
                self._connect(reader, fields, message, out)
            elif ptype == CONNACK:
                if self._connack(reader, fields):
                    kind = "error"
            elif ptype == PUBLISH:
                channel, ident = self._publish(reader, flags, fields, message, state, out)
            elif ptype in _ACKS:
                ident = self._ack(ptype, reader, fields)
            elif ptype in (SUBSCRIBE, UNSUBSCRIBE):
                channel, ident = self._subscribe(ptype, reader, fields, message, out)
            elif ptype in (DISCONNECT, AUTH):
                self._disconnect_or_auth(ptype, direction, reader, fields)
            # (PINGREQ and PINGRESP have no body)
            if reader.left() and ptype not in (PUBLISH,):
                fields["trailing_hex"] = reader.take(reader.left()).hex()
                out.append(self._finding("app_protocol_violation", message,
                                         f"MQTT {name} with {len(fields['trailing_hex']) // 2} unexpected bytes"))
        except _Malformed as exc:
            out.append(self._finding("app_parse_failed", message, f"MQTT {name}: {exc}"))
            return part
        out.append(AppEvent(message.msg_index, direction, self.name, kind, channel, ident, fields, part))
        return part + 1

    def _connack(self, reader: _Reader, fields: dict[str, Any]) -> int:
        """Read a CONNACK's body into ``fields``; its return (reason) code, 0 when accepted."""
        fields["session_present"] = bool(reader.u8() & 0x01)
        code = reader.u8()
        fields["code"] = code
        if self.version >= 5 and reader.left():
            fields["properties"] = props = reader.properties()
            if isinstance(props.get("server_keep_alive"), int):
                self.keep_alive = props["server_keep_alive"]
        return code

    def _ack(self, ptype: int, reader: _Reader, fields: dict[str, Any]) -> str:
        """Read a PUBACK/PUBREC/PUBREL/PUBCOMP/SUBACK/UNSUBACK body into ``fields``; its packet id."""
        ident = str(reader.u16())
        if self.version >= 5 and reader.left():
            if ptype in (SUBACK, UNSUBACK):
                fields["properties"] = reader.properties()
            else:
                fields["code"] = reader.u8()
                if reader.left():
                    fields["properties"] = reader.properties()
        if ptype in (SUBACK, UNSUBACK) and reader.left():
            fields["codes"] = list(reader.take(reader.left()))
        return ident

    def _subscribe(self, ptype: int, reader: _Reader, fields: dict[str, Any], message: AppMessage,
                   out: list[AppEvent | AppFinding]) -> tuple[str | None, str]:
        """Read a SUBSCRIBE/UNSUBSCRIBE body into ``fields``; (topics joined by ``,``, packet id)."""
        ident = str(reader.u16())
        if self.version >= 5:
            fields["properties"] = reader.properties()
        topics: list[dict[str, Any]] = []
        while reader.left():
            topic = reader.string()
            if ptype == SUBSCRIBE:
                topics.append(self._subscription(topic, reader.u8(), message, out))
            else:
                topics.append({"topic": topic})
        if not topics:
            out.append(self._finding("app_protocol_violation", message, f"MQTT {PACKET_NAMES[ptype]} without topics"))
        fields["topics"] = topics
        return ",".join(t["topic"] for t in topics) or None, ident

    def _subscription(self, topic: str, options: int, message: AppMessage,
                      out: list[AppEvent | AppFinding]) -> dict[str, Any]:
        """One SUBSCRIBE topic filter with its subscription options byte (3.8.3.1)."""
        entry: dict[str, Any] = {"topic": topic, "qos": options & 0x03}
        if self.version >= 5:
            entry.update(no_local=bool(options & 0x04), retain_as_published=bool(options & 0x08),
                         retain_handling=(options >> 4) & 0x03)
        if options & 0x03 == 3:
            out.append(self._finding("app_protocol_violation", message,
                                     f"MQTT SUBSCRIBE to {topic!r} with QoS 3"))
        return entry

    def _disconnect_or_auth(self, ptype: int, direction: str, reader: _Reader, fields: dict[str, Any]) -> None:
        """Read a DISCONNECT/AUTH body (MQTT 5 reason code and properties, both optional) into ``fields``."""
        if ptype == DISCONNECT and direction == "c2s":
            self.keep_alive = 0  # the client left: its silence from now on is no missed keep-alive
        if self.version >= 5 and reader.left():
            fields["code"] = reader.u8()
            if reader.left():
                fields["properties"] = reader.properties()

    def _connect(self, reader: _Reader, fields: dict[str, Any], message: AppMessage,
                 out: list[AppEvent | AppFinding]) -> None:
        fields["protocol_name"] = reader.string()
        level = reader.u8()
        fields["protocol_level"] = level
        if level in (3, 4, 5):
            self.version = level
        flags = reader.u8()
        if flags & CONNECT_RESERVED:
            out.append(self._finding("app_protocol_violation", message, "MQTT CONNECT reserved flag set"))
        self.keep_alive = reader.u16()
        fields["keep_alive"] = self.keep_alive
        fields["clean_session"] = bool(flags & CLEAN_SESSION)
        if level >= 5:
            fields["properties"] = reader.properties()
        fields["client_id"] = reader.string()
        if flags & WILL_FLAG:
            fields["will_qos"] = (flags & WILL_QOS) >> 3
            fields["will_retain"] = bool(flags & WILL_RETAIN)
            if level >= 5:
                fields["will_properties"] = reader.properties()
            fields["will_topic"] = reader.string()
            _text_or_hex(reader.binary(), "will_payload", fields)
        user: str | None = None
        if flags & USERNAME_FLAG:
            user = fields["username"] = reader.string()
        fields["password_flag"] = bool(flags & PASSWORD_FLAG)
        self.confirmed = True
        if flags & PASSWORD_FLAG:
            _text_or_hex(reader.binary(), "password", fields)
            who = f"user {user}" if user is not None else "no user name"
            out.append(self._finding("app_credentials_in_clear", message,
                                     f"MQTT CONNECT password for {who} (fields.password)"))

    def _publish(self, reader: _Reader, flags: int, fields: dict[str, Any], message: AppMessage,
                 state: _Direction, out: list[AppEvent | AppFinding]) -> tuple[str | None, str | None]:
        qos = (flags & QOS) >> 1
        fields.update(qos=qos, retain=bool(flags & RETAIN), dup=bool(flags & DUP))
        topic = reader.string()
        if qos == 3:
            out.append(self._finding("app_protocol_violation", message, f"MQTT PUBLISH to {topic!r} with QoS 3"))
        if qos == 0 and flags & DUP:
            out.append(self._finding("app_protocol_violation", message, "MQTT PUBLISH QoS 0 with DUP set"))
        ident = str(reader.u16()) if qos else None
        if self.version >= 5:
            props = reader.properties()
            fields["properties"] = props
            alias = props.get("topic_alias")
            if isinstance(alias, int):
                if topic:
                    if alias in state.aliases or len(state.aliases) < MAX_ALIASES:
                        state.aliases[alias] = topic
                else:
                    topic = state.aliases.get(alias, "")
                    fields["topic_from_alias"] = True
        payload = reader.take(reader.left())
        fields["payload_len"] = len(payload)
        _text_or_hex(payload, "payload", fields)
        return topic, ident


#: A CONNECT's first byte (type 1, flags 0), as a one-byte bytes.
_CONNECT_BYTE = bytes([CONNECT << 4])


def _looks_like_connect(payload: bytes) -> bool:
    """A CONNECT packet's start: type 1, flags 0, then "MQTT" (3.1.1/5) or "MQIsdp" (3.1)."""
    if len(payload) < 8 or payload[:1] != _CONNECT_BYTE:
        return False
    try:
        header = _maybe_fixed_header(payload)
    except _Malformed:
        return False
    if header is None:
        return False
    rest = payload[header[1]:]
    return rest[:6] == b"\x00\x04MQTT" or rest[:8] == b"\x00\x06MQIsdp"
