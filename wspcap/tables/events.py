"""Events: the rows of the tables as a live capture gives them out, one at a
time (a connection opened or closed, a message, an anomaly)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from wspcap.rules.registry import RULES
from wspcap.timestamps import TS_NULL

__all__ = ["AnomalyEvent", "ConnectionEvent", "Event", "MessageEvent", "iso_ts",
           "payload_field"]


def iso_ts(ts_ns: int) -> str:
    """An integer nanosecond timestamp as ISO 8601 UTC, to the nanosecond
    (``""`` for :data:`~wspcap.timestamps.TS_NULL`, a time not known)."""
    if ts_ns == TS_NULL:
        return ""
    sec, nsec = divmod(ts_ns, 1_000_000_000)
    return f"{datetime.fromtimestamp(sec, UTC):%Y-%m-%dT%H:%M:%S}.{nsec:09d}Z"


def payload_field(payload: bytes) -> tuple[str, str]:
    """``(value, encoding)``: the payload as text when it is UTF-8, else hex."""
    try:
        return payload.decode("utf-8"), "text"
    except UnicodeDecodeError:
        return payload.hex(), "hex"


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """A WebSocket connection changed state.

    Attributes:
        kind: ``open`` (upgrade request, or frames mid-stream), ``established``
            (101 answer, frames follow), ``refused`` (another status),
            ``closed`` (FIN or RST both ways, or the end of the capture).
        conn_id: the connection (``conn_id`` of the tables).
        ts: capture time in integer nanoseconds.
        client: ``ip:port`` of the client.
        server: ``ip:port`` of the server.
        uri: the upgrade request's target, if seen.
        status: the answer's HTTP status, if seen.
        subprotocol: the negotiated subprotocol.
        permessage_deflate: compression negotiated.
        close_code_c2s: the client's close code, if any (``closed`` only).
        close_code_s2c: the server's close code, if any (``closed`` only).
    """

    kind: str
    conn_id: int
    ts: int
    client: str
    server: str
    uri: str | None = None
    status: int | None = None
    subprotocol: str | None = None
    permessage_deflate: bool = False
    close_code_c2s: int | None = None
    close_code_s2c: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``event: "connection"``)."""
        return {"event": "connection", "kind": self.kind, "ts": iso_ts(self.ts) or None,
                "conn_id": self.conn_id, "client": self.client, "server": self.server,
                "uri": self.uri, "status": self.status, "subprotocol": self.subprotocol,
                "permessage_deflate": self.permessage_deflate,
                "close_code_c2s": self.close_code_c2s, "close_code_s2c": self.close_code_s2c}


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """A message (control frames included) was completed.

    Attributes:
        conn_id: the connection.
        direction: ``c2s`` or ``s2c``.
        msg_index: its ``msg_index`` in the messages table.
        ts: capture time (ns) of its last frame.
        type: ``text``, ``binary``, ``close``, ``ping``, ``pong`` or ``unknown-0xN``.
        opcode: the raw opcode.
        length: payload bytes (after inflation).
        wire_length: payload bytes on the wire.
        payload: unmasked, reassembled, inflated bytes.
        text: the text of a valid UTF-8 text message, else None.
        compressed: sent with permessage-deflate.
        frames: frames that carried it.
        close_code: close frames only.
        close_reason: close frames only.
        complete: every byte was captured.
    """

    conn_id: int
    direction: str
    msg_index: int
    ts: int
    type: str
    opcode: int
    length: int
    wire_length: int
    payload: bytes
    text: str | None
    compressed: bool
    frames: int
    close_code: int | None
    close_reason: str | None
    complete: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``event: "message"``); the payload as text when
        it is valid UTF-8, else hex (``payload_encoding`` says which)."""
        value, encoding = payload_field(self.payload)
        return {"event": "message", "ts": iso_ts(self.ts) or None, "conn_id": self.conn_id,
                "direction": self.direction, "msg_index": self.msg_index, "type": self.type,
                "opcode": self.opcode, "length": self.length, "wire_length": self.wire_length,
                "compressed": self.compressed, "frames": self.frames,
                "complete": self.complete, "close_code": self.close_code,
                "close_reason": self.close_reason, "payload": value,
                "payload_encoding": encoding}


@dataclass(frozen=True, slots=True)
class AnomalyEvent:
    """An anomaly was reported (see :mod:`wspcap.rules.registry`).

    Attributes:
        conn_id: the connection, or None (capture-wide).
        direction: ``c2s``, ``s2c`` or None.
        ts: capture time (ns).
        code: the stable anomaly code.
        severity: ``info``, ``warning`` or ``error``.
        detail: what exactly was seen.
        frame_index: the frame it is about, if any.
        packet: the packet number it is about, if any.
        stream_offset: the stream offset it is about, if any.
    """

    conn_id: int | None
    direction: str | None
    ts: int
    code: str
    severity: str
    detail: str
    frame_index: int | None
    packet: int | None
    stream_offset: int | None

    @property
    def summary(self) -> str:
        """The catalog's one-line explanation of the code."""
        rule = RULES.get(self.code)
        return rule.summary if rule is not None else ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``event: "anomaly"``)."""
        return {"event": "anomaly", "ts": iso_ts(self.ts) or None, "conn_id": self.conn_id,
                "direction": self.direction, "code": self.code, "severity": self.severity,
                "detail": self.detail, "summary": self.summary,
                "frame_index": self.frame_index, "packet": self.packet,
                "stream_offset": self.stream_offset}


Event = ConnectionEvent | MessageEvent | AnomalyEvent
