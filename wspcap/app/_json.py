"""What the JSON-family decoders share: bounded JSON parsing, the error
barrier that keeps ``receive`` from raising, and credential-key spotting.

Not a decoder itself; no I/O.

Design note
-----------
Parsing is the cost of a JSON decoder (every message of a decoded connection
is parsed), so :func:`loads` parses with msgspec's JSON decoder, about eight
times faster than the standard library's on small messages, and keeps the
standard library's answer as the rule: wherever msgspec refuses what the
standard library takes (numbers beyond a double, ``1e400``, which becomes
``inf``; lone surrogate escapes) the standard library parses it again, and
what the standard library refuses (NaN, Infinity, bad UTF-8, a BOM, syntax
errors) msgspec refuses too. msgspec rather than orjson: msgspec keeps
integers beyond 64 bits exact (orjson makes them floats) and bounds nesting
by the interpreter's recursion limit, as the standard library does (the two
stop within a few levels of each other, near a thousand).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from .base import AppEvent, AppFinding, AppMessage, ConnFacts, Decoder, MessageRun, RunOutput

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_OPEN",
    "NOT_JSON",
    "PARSE_ERRORS",
    "JsonDecoder",
    "credential_paths",
    "first_json",
    "holds_none",
    "loads",
    "parse_fast",
    "parse_strict",
    "scalar_id",
]

#: A message larger than this is not parsed (one ``app_parse_failed``).
MAX_JSON_BYTES = 1 << 20
#: Cap on per-connection tables (open requests, id -> name maps).
MAX_OPEN = 10_000
#: How deep :func:`credential_paths` looks into a payload.
_MAX_DEPTH = 8

#: Keys whose values are secrets.
_CRED_KEY = re.compile(
    r"pass(word|wd|code)?$|secret|token|authori[sz]ation|^auth$|api[-_]?key|bearer|jwt|"
    r"cookie|credential|session[-_]?key|^ticket$",
    re.IGNORECASE,
)


class _NotJson:
    """Sentinel type for :data:`NOT_JSON`."""

    __slots__ = ()


#: What :func:`loads` returns for bytes that are not JSON.
NOT_JSON: Any = _NotJson()


def _no_constants(name: str) -> Any:
    raise ValueError(f"not JSON: {name}")


#: The standard library's parser, strict (made once: ``json.loads`` with an
#: argument makes a new decoder at each call).
_STRICT = json.JSONDecoder(parse_constant=_no_constants)
#: The fast parser (see the module's note).
_FAST = msgspec.json.Decoder()


#: :func:`loads` for a decoder's inner loop, in two steps: ``parse_fast``
#: (may raise :data:`PARSE_ERRORS`), then ``parse_strict`` on the data it
#: refused; the size limit is the caller's to check.
parse_fast: Callable[[bytes | str], Any] = _FAST.decode
PARSE_ERRORS = (ValueError, RecursionError, TypeError)


def loads(data: bytes | str) -> Any:
    """Parse strict JSON (no NaN/Infinity); :data:`NOT_JSON` when it is not.

    Never raises: bad UTF-8, syntax errors, nesting too deep and oversized
    input all give :data:`NOT_JSON`. The value is the standard library's
    (see the module's note).
    """
    if len(data) > MAX_JSON_BYTES:
        return NOT_JSON
    try:
        return _FAST.decode(data)
    except PARSE_ERRORS:
        return parse_strict(data)


def parse_strict(data: bytes | str) -> Any:
    """The standard library's parse of ``data``, or :data:`NOT_JSON`."""
    try:
        return _STRICT.decode(data.decode("utf-8") if isinstance(data, bytes) else data)
    except PARSE_ERRORS:
        return NOT_JSON


def first_json(first: Sequence[AppMessage], limit: int = 4) -> list[tuple[AppMessage, Any]]:
    """The first ``limit`` messages parsed as JSON (non-JSON ones left out)."""
    out = []
    for message in list(first)[:limit]:
        value = loads(message.payload)
        if value is not NOT_JSON:
            out.append((message, value))
    return out


def scalar_id(value: Any) -> str | None:
    """An id as text: strings as they are, numbers in JSON spelling, else None."""
    if type(value) is int:  # (json.dumps spells an int as int.__repr__ does)
        return str(value)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return None


#: Key -> whether it names a secret, for the keys seen (they repeat).
_SECRET_KEYS: dict[Any, bool] = {}


def _secret_key(key: Any) -> bool:
    """Whether a key names a secret (:data:`_CRED_KEY`), remembered for
    :data:`MAX_OPEN` keys."""
    known = _SECRET_KEYS.get(key) if type(key) is str else None
    if known is None:
        known = _CRED_KEY.search(str(key)) is not None
        if type(key) is str and len(_SECRET_KEYS) < MAX_OPEN:
            _SECRET_KEYS[key] = known
    return known


def credential_paths(value: Any, prefix: str = "", depth: int = 0) -> list[str]:
    """Dotted paths of keys in ``value`` that name secrets and hold non-empty text."""
    found: list[str] = []
    if depth > _MAX_DEPTH:
        return found
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if _secret_key(key) and isinstance(item, str) and item:
                found.append(path)
            elif isinstance(item, (dict, list)):
                found.extend(credential_paths(item, path, depth + 1))
    elif isinstance(value, list):
        for i, item in enumerate(value[:64]):
            found.extend(credential_paths(item, f"{prefix}[{i}]", depth + 1))
    return found


def holds_none(payloads: Sequence[bytes], marks: tuple[bytes, ...]) -> bool:
    """Whether none of the payloads holds one of the byte strings ``marks``
    nor a backslash (an escape could spell one), all being bytes of at most
    :data:`MAX_JSON_BYTES`. Looked at on the payloads joined, in C: 0.2 us a
    message on chat, where parsing and looking at each took 1.2 us."""
    if set(map(type, payloads)) - {bytes} or max(map(len, payloads), default=0) > MAX_JSON_BYTES:
        return False
    joined = b"\n".join(payloads)
    return b"\\" not in joined and not any(mark in joined for mark in marks)


class JsonDecoder(Decoder):
    """Base for the JSON decoders: the never-raise barrier and shared helpers.

    A message over :data:`MAX_JSON_BYTES` is not parsed: one
    ``app_parse_failed`` saying so, whatever the recognition.
    Subclasses implement :meth:`decode` (may raise: the barrier turns an
    escaped exception into ``app_parse_failed`` when the conversation was
    claimed, else nothing) and :meth:`claimed_by` (whether the handshake
    alone names this protocol: subprotocol or URI convention).
    """

    #: Human name used in finding details.
    label: str = "JSON"
    #: Byte strings of which every message that could give something, or
    #: change something, while the conversation is not claimed holds one (a
    #: key such a message must have, an array's bracket) unless an escape
    #: spells it; empty where none is known. A run none of whose messages
    #: holds one or a backslash (:func:`holds_none`) gives nothing and
    #: changes nothing: :meth:`receive_run` passes it over without a parse.
    marks: tuple[bytes, ...] = ()

    def __init__(self, facts: ConnFacts) -> None:
        super().__init__(facts)
        try:
            self.claimed = bool(type(self).claimed_by(facts))
        except Exception:  # noqa: BLE001
            self.claimed = False

    @classmethod
    def recognize(cls, facts: ConnFacts, first: Sequence[AppMessage]) -> float:
        """1.0 by subprotocol; else the best of what the URI says
        (:meth:`uri_score`) and of what each of the first messages' JSON
        values says (:meth:`content_score`). Never raises."""
        try:
            if facts.subprotocol in cls.subprotocols:
                return 1.0
            best = cls.uri_score(facts.uri)
            for _message, value in first_json(first):
                best = max(best, cls.content_score(value))
            return best
        except Exception:  # noqa: BLE001 - the contract says never
            return 0.0

    @classmethod
    def uri_score(cls, uri: str | None) -> float:
        """Confidence from the request target's conventions alone (0: none)."""
        return 0.0

    @classmethod
    def content_score(cls, value: Any) -> float:
        """Confidence from one message's JSON value (0: not this protocol)."""
        return 0.0

    @classmethod
    def claimed_by(cls, facts: ConnFacts) -> bool:
        """Whether the handshake alone says this protocol (subprotocol or URI)."""
        return facts.subprotocol in cls.subprotocols

    def receive(self, message: AppMessage) -> list[AppEvent | AppFinding]:
        try:
            size = len(message.payload)
            if size > MAX_JSON_BYTES:
                return self.parse_failed(
                    message,
                    f"{self.label} message of {size} bytes not parsed (limit {MAX_JSON_BYTES})",
                    force=True,
                )
            return self.decode(message)
        except Exception as exc:  # noqa: BLE001 - decoders never raise
            return self.parse_failed(message, f"{self.label} decoder error ({type(exc).__name__})")

    def gives_nothing(self, msg_type: str, payload: bytes) -> bool:
        """Whether :meth:`receive` would give nothing for this message (of at
        most :data:`MAX_JSON_BYTES`, the conversation not claimed) and change
        nothing, known cheaply; False when unsure. May raise (unsure then).
        The default is always unsure."""
        return False

    def receive_run(self, run: MessageRun) -> RunOutput:
        """:meth:`receive` on each message, with no :class:`AppMessage` made
        for those that :meth:`gives_nothing` says give nothing."""
        if not self.claimed and self.marks and holds_none(run.payload, self.marks):
            return []
        if type(self).gives_nothing is JsonDecoder.gives_nothing:
            return super().receive_run(run)
        out: RunOutput = []
        for i, payload in enumerate(run.payload):
            if not self.claimed and len(payload) <= MAX_JSON_BYTES:
                try:
                    if self.gives_nothing(run.type[i], payload):
                        continue
                except Exception:  # noqa: BLE001, S110 - unsure: receive says
                    pass
            got = self.receive(run.message(i))
            if got:
                out.append((i, got))
        return out

    def receive_parsed(self, message: AppMessage, value: Any) -> list[AppEvent | AppFinding]:
        """:meth:`receive` for a message of at most :data:`MAX_JSON_BYTES` whose
        payload ``value`` is parsed already (:func:`loads`): :meth:`decode_parsed`
        behind the same barrier."""
        try:
            return self.decode_parsed(message, value)
        except Exception as exc:  # noqa: BLE001 - decoders never raise
            return self.parse_failed(message, f"{self.label} decoder error ({type(exc).__name__})")

    def finish(self) -> list[AppEvent | AppFinding]:
        try:
            return self.end()
        except Exception:  # noqa: BLE001
            return []

    def decode(self, message: AppMessage) -> list[AppEvent | AppFinding]:
        """The events and findings of one message; may raise."""
        return []

    def decode_parsed(self, message: AppMessage, value: Any) -> list[AppEvent | AppFinding]:
        """:meth:`decode` given the payload parsed (for decoders that parse it
        whole, once; one that overrides this overrides :meth:`decode` too, to
        parse and call it); may raise. The default decodes the message again."""
        return self.decode(message)

    def end(self) -> list[AppEvent | AppFinding]:
        """End of the connection; may raise."""
        return []

    # helpers -------------------------------------------------------------

    def parse_failed(
        self, message: AppMessage, detail: str, force: bool = False
    ) -> list[AppEvent | AppFinding]:
        """``app_parse_failed`` when claimed (or ``force``: the message itself
        claims the protocol), else nothing."""
        if not (self.claimed or force):
            return []
        return [AppFinding("app_parse_failed", message.msg_index, message.direction, detail)]

    def event(
        self,
        message: AppMessage,
        kind: str,
        channel: Any = None,
        id: Any = None,
        fields: dict[str, Any] | None = None,
        part: int = 0,
        request_msg: int | None = None,
        latency: int | None = None,
    ) -> AppEvent:
        """An :class:`AppEvent` of this decoder, channel and id made text
        (``request_msg``, ``latency``: where it pairs its own requests)."""
        # (positional: keywords cost a third more, once a message)
        return AppEvent(message.msg_index, message.direction, self.name, kind,
                        channel if isinstance(channel, str) else scalar_id(channel),
                        scalar_id(id), fields or {}, part, request_msg, latency)

    def finding(self, message: AppMessage | None, code: str, detail: str) -> AppFinding:
        """An :class:`AppFinding` at ``message`` (or at no message)."""
        if message is None:
            return AppFinding(code, None, None, detail)
        return AppFinding(code, message.msg_index, message.direction, detail)
