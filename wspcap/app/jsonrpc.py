"""JSON-RPC 2.0 (https://www.jsonrpc.org/specification) over WebSocket.

Own parser: the protocol is a handful of JSON object shapes, and the Python
JSON-RPC packages (jsonrpcserver, jsonrpcclient, json-rpc) are dispatchers
tied to a server or client role, not passive readers of both directions.

Events (either side may send requests):

- request ``{"jsonrpc":"2.0","method":M,"params":P,"id":I}``: kind
  ``request``, channel M, id I;
- notification (no ``id``): kind ``notification``, channel M;
- response ``{"jsonrpc":"2.0","result":R,"id":I}``: kind ``response``, id I,
  channel the method of the request answered (when seen), and that
  request's msg_index and the latency (the decoder pairs its own requests,
  :attr:`~wspcap.app.runner.Pairing.by_decoder`: ids are typed, ``7`` and
  ``"7"`` are two ids, as the open requests are keyed by the id's JSON text);
  ``{"error":{"code","message","data"}}`` instead: kind ``error``;
- a batch (a JSON array) gives one event per member, ``part`` its index.

Request or notification params holding passwords or tokens (by key) ->
``app_credentials_in_clear``.

An object that says ``"jsonrpc"`` but breaks the shape (wrong version, both
``result`` and ``error``, a method that is not a string, an empty batch...)
gives ``app_parse_failed``. ``finish()`` gives one ``app_request_unanswered``
per request whose id never came back (at most :data:`MAX_OPEN` tracked).
Once one valid JSON-RPC object was seen, a message that is not JSON-RPC
gives ``app_parse_failed`` too.

No WebSocket subprotocol is registered for JSON-RPC, so recognition is by
content only (``"jsonrpc": "2.0"`` in the first messages, 0.7).

Columns
-------
:meth:`JsonRpcDecoder.receive_columns` is the column path of
:meth:`~wspcap.app.base.Decoder.receive_columns`: what ``receive`` gives
message after message, made without an event per message. Each payload is
parsed once by msgspec into a typed struct (:class:`_Rpc`, not tracked by
the garbage collector) that takes only the common shapes: ``"jsonrpc":
"2.0"``, a string method, params an object or an array, an integer, string
or null id, and no float anywhere it keeps (a float's ``fields`` text is the
standard library's, :func:`~wspcap.app.fields.fields_text`). A request, a
notification, a response or an error (an object with an integer code and a
string message) of that shape becomes a row of columns here; anything else
(batches, other versions, floats, bad JSON, what is not JSON-RPC, a message
that could nest deeper than :data:`_NEST` levels) goes to the reference
path, :meth:`JsonRpcDecoder.receive_run`'s, in its place in the order, with
the same state (``claimed``, the open requests).

A run is read :data:`_CHUNK` messages at a time: parsed, read in one loop,
and the rows' fields written, while the chunk's payloads and structs are in
the CPU's caches (a run read whole, a step at a time over all of it, cost
more in the pipeline than in a benchmark of the step, every step going to
memory again). A row's fields are a small struct (:class:`_Call`,
:class:`_Answer`: no dict per row), written by msgspec as JSON lines, a
chunk (or the rows before a reference message) at once. Credentials are
looked for as ``receive`` does, except in params known to have none: where
every params of a chunk is a container of scalars (their payloads, joined,
have no brace or bracket but their objects' and the params') and none of
their keys names a secret, with a C call or two for the chunk. While the
conversation is not claimed, a run none of whose messages has the bytes
``"jsonrpc"`` or an escape gives nothing, found on the run joined, without a
parse.

Where it is built, a compiled loop (``wspcap/app/_speedups.c``,
:data:`_rows`) reads the common messages in its place: it takes them in
order, each checked as strict JSON and UTF-8 in one pass over its bytes, its
row made there (the open requests paired, the fields text copied from the
payload without the whitespace between tokens), up to the first message it
is not sure to read as msgspec and the standard library would (a float, a
lone surrogate, a key twice or spelled with ``\\/`` or ``\\u``, a params key
that could name a secret, a string id that is not plain printable ASCII...:
its note says which); that one is parsed and read here, and the loop goes on
after it. A string value spelled with ``\\/`` or ``\\u`` (Python's
``json.dumps`` writes non-ASCII so) is written again as msgspec writes it.
Its rows are the column path's rows (a test compares the two, and the
reference path, on messages spelled every way). It writes them as columns
of buffers (:data:`_LOOP_COLUMNS`): positions, kinds by their code
(:class:`~wspcap.app.fields.Coded`), channels, ids
(:class:`~wspcap.app.fields.Strings`), fields text
(:class:`~wspcap.app.fields.Texts`), which the table makes its Arrow columns
of as they are: no ``str``, ``int`` or list item made a row (room made
for a run's rows at once where it reads the run from its start; a string's
plain bytes read sixteen at a time where the CPU has SSE2). Its open
requests are kept in a table of its own (``OpenRequests``, a dict's
behaviour for what is done with :attr:`JsonRpcDecoder.open`), opened and
answered without a key or a value made.

On chat-jsonrpc (250,080 messages, each an app row) this path took 0.37 s
of CPU in ``wspcap.read()`` (0.55 s before the chunks, the structs and the
errors, timed beside it): the typed parse 0.10 s, the loop 0.17 s, the
fields written 0.06 s, the secrets looked for 0.03 s. The compiled loop takes
every one of its messages, in 0.145 s; the path, 0.20 s. Joining a run's
payloads into one JSON array parsed at once, its elements' bounds checked
against the messages', cost more than parsing them one by one (the same
parse, plus a second pass); taking the run's columns from the structs with
C-level passes (attrgetter, NumPy masks, dict operations for the pairing)
cost more than the one loop.
A test compares the two paths on generated conversations.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Any, Literal, Protocol

import msgspec
import numpy as np
from msgspec import UNSET, UnsetType

from wspcap.constants import SPEEDUPS

from ._json import (
    MAX_JSON_BYTES,
    MAX_OPEN,
    NOT_JSON,
    PARSE_ERRORS,
    JsonDecoder,
    _secret_key,
    credential_paths,
    holds_none,
    loads,
    parse_fast,
    parse_strict,
    scalar_id,
)
from .base import (
    DIRECTIONS,
    UNANSWERED,
    AppEvent,
    AppFinding,
    AppMessage,
    ConnFacts,
    EventColumns,
    MessageRun,
    RunArrays,
    RunOutput,
    answer_bytes,
    first_bytes,
)
from .fields import Coded, Strings, Texts, fields_text, refuse_float
from .registry import register

__all__ = ["JsonRpcDecoder"]

_OTHER = {"c2s": "s2c", "s2c": "c2s"}


#: A payload that has this is reported when it fails to parse.
_SAYS = b'"jsonrpc"'


def _says_rpc(payload: bytes) -> bool:
    """Whether the payload names the protocol (a parse failure is reported then)."""
    return isinstance(payload, bytes) and _SAYS in payload[:4096]


#: ``json.dumps(value, sort_keys=True)``, made once.
_SORTED = json.JSONEncoder(sort_keys=True).encode


def _id_key(value: Any) -> str:
    """An id as the JSON text the open requests are keyed by."""
    return str(value) if type(value) is int else _SORTED(value)


def _answered(asked: tuple[int, str, int] | None, ts: int) -> tuple[int | None, int | None]:
    """The ``request_msg`` and ``latency`` of an answer at ``ts`` to the
    request ``asked`` (an open request's value; None: none): the runner's
    rule, a time of 0 being unknown."""
    if asked is None:
        return None, None
    return asked[0], ts - asked[2] if ts and asked[2] else None


class _Rpc(msgspec.Struct, gc=False):
    """A JSON-RPC 2.0 object as the column path reads it: a shape the reference
    may find fault with reads as something else (a type, a float) and is
    refused, and the reference path takes that message."""

    jsonrpc: Literal["2.0"]
    method: str | UnsetType = UNSET
    params: dict[str, Any] | list[Any] | UnsetType = UNSET
    id: int | str | None | UnsetType = UNSET
    result: Any = UNSET
    error: Any = UNSET


class _Call(msgspec.Struct, gc=False):
    """The ``fields`` of a request or a notification row of the column path,
    in the reference path's order (what is UNSET is left out of the text)."""

    method: Any
    params: Any = UNSET
    id: Any = UNSET


class _Answer(msgspec.Struct, gc=False):
    """The ``fields`` of a response or an error row of the column path, as
    :class:`_Call` does."""

    id: Any
    method: Any = UNSET
    result: Any = UNSET
    error: Any = UNSET
    code: Any = UNSET
    message: Any = UNSET


#: The column path's parsers: floats refused (their ``fields`` text is the
#: standard library's, see :func:`~wspcap.app.fields.fields_text`).
_ONE = msgspec.json.Decoder(_Rpc, float_hook=refuse_float)
#: The rows' ``fields`` as JSON lines (see _texts).
_LINES = msgspec.json.Encoder().encode_lines
_REFUSED = (msgspec.DecodeError, ValueError, RecursionError, TypeError)
#: Nesting the column path leaves to the reference path: a parser's depth
#: limit is the interpreter's recursion limit, less the frames above it, so
#: the two paths could disagree about a message nested near it. (A payload
#: of at most twice this many bytes cannot nest deeper: each level takes two.)
_NEST = 256
#: Messages parsed in one comprehension (see _typed).
_CHUNK = 256

#: A request waiting for its answer: (requesting direction, id as JSON text)
#: -> (msg_index, method, ts).
_Key = tuple[str, str]
_Asked = tuple[int, str, int]


class OpenTable(Protocol):
    """What :attr:`JsonRpcDecoder.open` is: a dict, or the compiled loop's
    table (``wspcap.app._speedups.OpenRequests``), which behaves as one for these."""

    def __len__(self) -> int: ...
    def __contains__(self, key: object, /) -> bool: ...
    def __setitem__(self, key: _Key, value: _Asked, /) -> None: ...
    def pop(self, key: _Key, default: None, /) -> _Asked | None: ...
    def items(self) -> Iterable[tuple[_Key, _Asked]]: ...
    def clear(self) -> None: ...


#: The compiled loop of the column path's common messages (what it takes,
#: and why: wspcap/app/_speedups.c), or None where it is not built (or
#: ``WSPCAP_NO_SPEEDUPS`` is set): then every message is parsed here.
_rows: Callable[..., tuple[int, int]] | None = None
#: The table the compiled loop keeps the open requests in (a dict's
#: behaviour, without a key, a tuple or an int made a row), or None.
_OpenTable: type[OpenTable] | None = None
if SPEEDUPS:
    try:
        from wspcap.app._speedups import OpenRequests, rpc_rows
    except ImportError:  # not built: every message read here
        pass
    else:
        _rows, _OpenTable = rpc_rows, OpenRequests

def _open_table() -> OpenTable:
    """An empty table of open requests: the compiled loop's, else a dict."""
    if _OpenTable is None:
        empty: dict[_Key, _Asked] = {}
        return empty
    return _OpenTable()


#: The kinds of the compiled loop's rows, by their code.
KINDS = ("request", "notification", "response", "error")
#: The compiled loop's columns (see wspcap/app/_speedups.c, rpc_rows), in order.
_LOOP_COLUMNS = ("position", "kind", "channel", "channel_ends", "channel_valid", "id",
                 "id_ends", "id_valid", "text", "ends", "answers")

#: Keys known not to name secrets (``_json._secret_key``), at most MAX_OPEN.
_CLEAN_KEYS: set[str] = set()


def _secrets(params: Any) -> list[str]:
    """:func:`credential_paths` of ``params``; the keys of a dict found not
    to name secrets are remembered (:data:`_CLEAN_KEYS`): the column path
    knows at once that a container of scalars (its payload has no other
    brace or bracket than its own object's and the params') with such keys
    holds none."""
    found = credential_paths(params, "params")
    if type(params) is dict:
        for key in params:
            if len(_CLEAN_KEYS) < MAX_OPEN and type(key) is str and not _secret_key(key):
                _CLEAN_KEYS.add(key)
    return found


def _typed(payloads: Sequence[bytes]) -> list[_Rpc | None]:
    """Each payload as an :class:`_Rpc`, or None where it is not one: a
    chunk of :data:`_CHUNK` at a time, message by message where a chunk holds
    one that is not, or one that is not UTF-8 (msgspec does not look at the
    bytes of the members it skips, where the reference's parse refuses the
    whole text)."""
    decode = _ONE.decode
    out: list[_Rpc | None] = []
    for start in range(0, len(payloads), _CHUNK):
        chunk = payloads[start:start + _CHUNK]
        if _all_utf8(chunk):
            try:
                out += [decode(payload) for payload in chunk]
                continue
            except _REFUSED:
                pass
        for payload in chunk:
            # (an object without the word has no "jsonrpc" key, or has it
            # escaped: the reference path takes it; an exception costs a
            # microsecond)
            try:
                out.append(decode(payload) if _SAYS in payload and _all_utf8((payload,))
                           else None)
            except _REFUSED:
                out.append(None)
    return out


#: UTF-8's continuation bytes, 10xxxxxx: no character starts with one.
_CONTINUATION = bytes(range(0x80, 0xC0))


def _all_utf8(payloads: Sequence[bytes]) -> bool:
    """Whether every payload is UTF-8, looked at on the payloads joined (in
    C, and at once where they are ASCII): they are when their join is and
    none starts with a continuation byte, each then starting a character of
    the join."""
    joined = b"".join(payloads)
    if joined.isascii():
        return True
    if len(first_bytes(payloads).translate(None, _CONTINUATION)) != len(payloads):
        return False  # (or an empty payload: they are looked at one by one)
    try:
        joined.decode()
    except UnicodeDecodeError:
        return False
    return True


class _Rows:
    """The column path's rows of a run (:meth:`JsonRpcDecoder.receive_columns`),
    kept as columns until they move into the run's
    :class:`~wspcap.app.base.EventColumns` (:meth:`JsonRpcDecoder._flush`).

    Attributes:
        run: the run; ``payloads``, its payloads as the typed parse sees them
            (``sizes``, their lengths); for the compiled loop, as they are
            (``sizes`` None: see :meth:`typed_one`).
        start, objs: the typed parses of the messages from ``start`` (those
            of the chunk read, or of the whole run for the compiled loop).
        position, kind, channel, ident, fields: the rows read here (not by
            the compiled loop), their fields the structs.
        out: the compiled loop's rows, not yet moved: its columns
            (:data:`_LOOP_COLUMNS`, see :meth:`take_looped`); while it holds
            some, no row is added to the others, and the other way round
            (see :meth:`JsonRpcDecoder.receive_columns`).
        answers: each row's ``request_msg`` and ``latency``, as
            :attr:`~wspcap.app.base.EventColumns.answers` holds them.
        asks, held: the calls with params, and those params that are objects
            (see :meth:`JsonRpcDecoder._secrets_of`).
    """

    __slots__ = ("answers", "arrays", "asks", "channel", "fields", "held", "ident", "kind",
                 "objs", "out", "payloads", "position", "run", "sizes", "start")

    def __init__(self, run: MessageRun, raw: Sequence[bytes],
                 arrays: RunArrays | None = None) -> None:
        self.run = run
        self.out = [bytearray() for _ in _LOOP_COLUMNS]
        #: The run's arrays, where the compiled loop reads it (see _arrays_of), or None.
        self.arrays = arrays
        self.answers = bytearray()
        if arrays is not None:
            # (the compiled loop stops at a payload that is not bytes, or is
            # over MAX_JSON_BYTES: what the typed parse sees of the messages
            # it leaves is made one by one, see typed_one; the run's array
            # of them, as it is)
            self.payloads: Sequence[bytes] = raw
            self.sizes: np.ndarray | None = None
        else:
            # (what the typed parse is not to see, as empty: the reference path's)
            if set(map(type, raw)) - {bytes}:
                raw = [p if type(p) is bytes else b"" for p in raw]
            self.sizes = np.fromiter(map(len, raw), np.intp, len(raw))
            if len(raw) and self.sizes.max() > MAX_JSON_BYTES:
                raw = [p if len(p) <= MAX_JSON_BYTES else b"" for p in raw]
                self.sizes[self.sizes > MAX_JSON_BYTES] = 0
            self.payloads = raw
        self.start = 0
        self.objs: list[_Rpc | None] = []
        self.position: list[int] = []
        self.kind: list[str] = []
        self.channel: list[str | None] = []
        self.ident: list[str | None] = []
        self.fields: list[Any] = []
        self.asks: list[int] = []
        self.held: list[Any] = []

    def chunk(self, start: int, stop: int, deep: set[int], parsed: bool) -> list[_Rpc | None]:
        """The typed parses of messages ``start:stop`` (None where there is
        none, and for those nested too deep: see _NEST), kept as ``objs``;
        all None where not ``parsed`` (the compiled loop's run: the messages
        it leaves are parsed one by one)."""
        if not parsed:
            objs: list[_Rpc | None] = [None] * (stop - start)
        else:
            objs = _typed(self.payloads[start:stop])
            for i in deep:
                if start <= i < stop:
                    objs[i - start] = None
        self.start, self.objs = start, objs
        return objs

    def typed_one(self, i: int) -> _Rpc | None:
        """The typed parse of message ``i`` where the compiled loop left it
        (None as :meth:`chunk` gives it: a payload that is not bytes or is
        over MAX_JSON_BYTES parsed as empty, one nested too deep not parsed)."""
        payload = self.payloads[i]
        if type(payload) is not bytes or len(payload) > MAX_JSON_BYTES:
            payload = b""
        return None if _nests_deep(payload) else _typed([payload])[0]

    def add(self, i: int, kind: str, channel: str | None, ident: str | None,
            fields: _Call | _Answer, answer: bytes = UNANSWERED) -> None:
        """A row of message ``i``, read here (not by the compiled loop);
        ``answer``: its request, as :attr:`answers` holds it."""
        self.answers += answer
        self.position.append(i)
        self.kind.append(kind)
        self.channel.append(channel)
        self.ident.append(ident)
        self.fields.append(fields)

    def texts(self) -> list[str]:
        """The ``fields`` text of the rows read here (see :func:`_fields_texts`)."""
        return _fields_texts(self.fields)

    def looped(self) -> bool:
        """Whether :attr:`out` holds rows of the compiled loop."""
        return bool(self.out[0])

    def take_looped(self) -> tuple[Any, ...]:
        """The rows :attr:`out` holds, moved out, as the arguments of
        :meth:`~wspcap.app.base.EventColumns.extend` after the protocol's
        name: position, msg_index, direction, kind, channel, id, fields,
        answers (nothing made a row)."""
        arrays = self.arrays
        assert arrays is not None  # (the loop ran on them)
        out, self.out = self.out, [bytearray() for _ in _LOOP_COLUMNS]
        position, *columns = loop_columns(out)
        return (position, arrays.msg_index[position],
                Coded(arrays.direction[position], DIRECTIONS), *columns)

    def clear(self) -> None:
        """The rows moved out."""
        for column in (self.position, self.kind, self.channel, self.ident, self.fields):
            column.clear()
        self.answers = bytearray()


def _nests_deep(payload: bytes) -> bool:
    """Whether the payload may nest deeper than :data:`_NEST`."""
    return len(payload) > 2 * _NEST and payload.count(b"[") + payload.count(b"{") > _NEST


def _deep(payloads: Sequence[bytes], sizes: np.ndarray) -> set[int]:
    """The payloads that may nest deeper than :data:`_NEST` (``sizes``: their
    lengths: only those long enough are looked at)."""
    return {i for i in np.flatnonzero(sizes > 2 * _NEST).tolist() if _nests_deep(payloads[i])}


def _fields_texts(structs: list[Any]) -> list[str]:
    """The ``fields`` text of the column path's rows read here, given as
    structs (:class:`_Call`, :class:`_Answer`):
    :func:`~wspcap.app.fields.fields_text` of the fields they stand for, for
    fields parsed with floats refused: msgspec's text, all at once (as JSON
    lines, split back: JSON text has no raw line feed; 0.4 us a row, against
    0.7 us encoding each), or where msgspec cannot write one, the reference
    spelling of each."""
    if not structs:
        return []
    try:
        texts = _LINES(structs).decode().split("\n")
        texts.pop()  # (after the last line feed)
    except Exception:  # noqa: BLE001 - the reference spelling says
        texts = [fields_text({name: value for name, value in zip(
            row.__struct_fields__, msgspec.structs.astuple(row)) if value is not UNSET})
            for row in structs]
    return texts


def loop_columns(out: list[bytearray]) -> tuple[np.ndarray, Coded, Strings, Strings, Texts,
                                                bytearray]:
    """The columns of the compiled loop's rows written into ``out`` (see
    :data:`_LOOP_COLUMNS`), over its buffers: position, kind, channel, id,
    fields, answers."""
    return (np.frombuffer(out[0], np.int64), Coded(np.frombuffer(out[1], np.uint8), KINDS),
            Strings(out[2], np.frombuffer(out[3], np.int64), np.frombuffer(out[4], np.bool_)),
            Strings(out[5], np.frombuffer(out[6], np.int64), np.frombuffer(out[7], np.bool_)),
            Texts(out[8], np.frombuffer(out[9], np.int64)), out[10])


def _arrays_of(run: MessageRun) -> RunArrays | None:
    """The run's arrays as the compiled loop reads them: those it was made
    of, else made of its lists (None where they cannot be: a direction not
    among DIRECTIONS, a number out of int64)."""
    if run.arrays is not None:
        return run.arrays
    codes = {name: code for code, name in enumerate(DIRECTIONS)}
    try:
        direction = np.fromiter((codes[d] for d in run.direction), np.int8, len(run))
        msg_index = np.array(run.msg_index, np.int64)
        ts = np.array(run.ts, np.int64)
    except (KeyError, OverflowError, TypeError, ValueError):
        return None
    payloads = np.empty(len(run), object)
    payloads[:] = run.payload
    return RunArrays(msg_index, direction, np.ones(len(run), bool), payloads,
                     np.arange(len(run), dtype=np.int64), ts, np.ones(len(run), bool))


def _is_rpc(value: Any) -> bool:
    if isinstance(value, dict):
        return "jsonrpc" in value
    if isinstance(value, list) and value:
        return any(isinstance(v, dict) and "jsonrpc" in v for v in value[:16])
    return False


@register
class JsonRpcDecoder(JsonDecoder):
    """JSON-RPC 2.0 requests, notifications, responses and batches."""

    name = "jsonrpc"
    recognition = 'content: "jsonrpc": "2.0" objects in the first messages'
    label = "JSON-RPC"
    #: Every JSON-RPC object names its ``"jsonrpc"`` version (see receive_columns).
    marks = (_SAYS,)

    @classmethod
    def content_score(cls, value: Any) -> float:
        items = value if isinstance(value, list) else [value]
        if items and all(isinstance(v, dict) and v.get("jsonrpc") == "2.0" for v in items[:16]):
            return 0.7
        return 0.0

    def __init__(self, facts: ConnFacts) -> None:
        super().__init__(facts)
        # (requesting direction, id as JSON) -> (msg_index, method, ts): the
        # requests waiting for their answer, which is paired with them here
        # (the runner's pairing is this one, see runner.PAIRING)
        # (the compiled loop's table where it is built: see _compiled)
        self.open: OpenTable = _open_table()
        self.untracked = 0

    def receive_run(self, run: MessageRun) -> RunOutput:
        """:meth:`receive` on each message, parsed here once, with no
        :class:`AppMessage` made for those that give nothing: while the
        conversation is not claimed, a message that is not JSON-RPC and does
        not say ``"jsonrpc"``."""
        out: RunOutput = []
        for i in range(len(run.payload)):
            got = self._reference(run, i)
            if got:
                out.append((i, got))
        return out

    def _reference(self, run: MessageRun, i: int) -> list[AppEvent | AppFinding] | None:
        """:meth:`receive` on message ``i`` of ``run``, parsed here (what
        loads, _is_rpc and _says_rpc do, without their calls); None, while the
        conversation is not claimed, for a message that is not JSON-RPC and
        does not say ``"jsonrpc"``. Both paths parse here, at the same depth
        of the stack, so with the same depth limit (see _NEST)."""
        payload = run.payload[i]
        if len(payload) > MAX_JSON_BYTES:
            return self.receive(run.message(i))
        try:
            value = parse_fast(payload)
        except PARSE_ERRORS:
            value = parse_strict(payload)
        if not self.claimed:
            if type(value) is dict:
                rpc = "jsonrpc" in value
            else:
                rpc = value is not NOT_JSON and _is_rpc(value)
            if not rpc and not (isinstance(payload, bytes) and payload.find(_SAYS, 0, 4096) >= 0):
                return None
        return self.receive_parsed(run.message(i), value)

    def receive_columns(self, run: MessageRun) -> EventColumns:
        """:meth:`receive_run` as columns (see the module's note, "Columns")."""
        cols = EventColumns()
        loop, arrays = _rows, None
        if loop is not None:  # (the compiled loop reads the run's arrays)
            arrays = _arrays_of(run)
            if arrays is None:  # (not what the loop reads: read here)
                loop = None
        # (the arrays': each looked up when asked for)
        raw: Sequence[bytes] = run.payload if arrays is None else arrays.payload
        if not self.claimed and holds_none(raw, self.marks):
            return cols
        rows = _Rows(run, raw, arrays)
        # (the run's lists, made where a row is read here: with the loop, seldom)
        lists = None if loop is not None else (run.direction, run.msg_index, run.ts)
        payloads = rows.payloads
        deep = set() if rows.sizes is None else _deep(payloads, rows.sizes)
        # A chunk at a time, parsed, read and written while it is in the
        # caches; the compiled loop reads the run whole (it keeps nothing per
        # message), taking the messages it can, in order, up to one it does
        # not: that one is parsed and read here, and the loop goes on after it.
        step = _CHUNK if loop is None else max(1, len(payloads))
        for start in range(0, len(payloads), step):
            stop = min(start + step, len(payloads))
            objs = rows.chunk(start, stop, deep, parsed=loop is None)
            i = start
            while i < stop:
                if loop is not None:
                    assert arrays is not None
                    if rows.position:  # (the rows read here first, in order)
                        self._flush(cols, rows)
                    i = self._compiled(loop, rows, i, stop, arrays)
                    if rows.looped():  # (the loop's rows, before any read here)
                        self._flush(cols, rows)
                    if i == stop:
                        break
                    objs[i - start] = rows.typed_one(i)
                o = objs[i - start]
                taken = False
                if o is not None:
                    if lists is None:
                        lists = (run.direction, run.msg_index, run.ts)
                    taken = self._typed_row(o, i, lists[0], lists[1], lists[2], rows)
                if not taken and self._may_say(raw[i]):
                    # Anything else: the reference path, in its place in the
                    # order, called from here: at receive_run's depth (see _NEST).
                    out = self._reference(run, i)
                    if out:
                        self._flush(cols, rows)
                        cols.add(i, out)
                i += 1
            self._flush(cols, rows)
        return cols

    def _compiled(self, loop: Callable[..., tuple[int, int]], rows: _Rows, i: int, stop: int,
                  arrays: RunArrays) -> int:
        """The compiled loop (``loop``, see _rows) over messages ``i:stop``
        of the run's ``arrays``: where it stopped (``stop``: it took them all)."""
        at = i
        if _OpenTable is not None and type(self.open) is not _OpenTable:
            # (a decoder made while the loop was not at hand: its table made again)
            table = _open_table()
            for key, value in self.open.items():
                table[key] = value
            self.open = table
        i, untracked = loop(arrays.payloads, arrays.rows, at, stop, arrays.direction,
                            arrays.msg_index, arrays.ts, self.open, MAX_OPEN, rows.out,
                            MAX_JSON_BYTES)
        self.untracked += untracked
        if i > at:  # (a message taken is JSON-RPC)
            self.claimed = True
        return i

    def _may_say(self, payload: bytes) -> bool:
        """Whether a message that is no row of the column path goes to the
        reference path: not, while the conversation is not claimed, where it
        names no "jsonrpc" key (unless escaped) and does not say it (what
        receive_run skips)."""
        return self.claimed or type(payload) is not bytes or _SAYS in payload or (
            b"\\" in payload or len(payload) > MAX_JSON_BYTES)

    def _typed_row(self, o: _Rpc, i: int, direction: Sequence[str], msg_index: Sequence[int],
                   ts: Sequence[int], rows: _Rows) -> bool:
        """Message ``i`` (``o``, its typed parse) as a row of the column
        path: a request or a notification (opened in :attr:`open`), or a
        response or an error (its request taken from there); False, having
        done nothing, for anything else."""
        method: Any = o.method
        x: Any = o.id
        if method is UNSET:
            err, result = o.error, o.result
            if x is UNSET or (result is UNSET) is (err is UNSET) or not (
                    err is UNSET or type(err) is dict and type(err.get("code")) is int
                    and type(err.get("message")) is str):
                return False  # (an error is an object with an integer code and a string message)
            self.claimed = True
            key = _id_key(x)
            sid = key if type(x) is int else x
            asked = self.open.pop((_OTHER.get(direction[i], ""), key), None)
            asker, channel = (UNSET, None) if asked is None else (asked[1], asked[1])
            answer = answer_bytes(*_answered(asked, ts[i]))
            if err is UNSET:
                rows.add(i, "response", channel, sid, _Answer(x, asker, result), answer)
            else:
                rows.add(i, "error", channel, sid,
                         _Answer(x, asker, UNSET, err, err["code"], err["message"]), answer)
            return True
        if o.result is not UNSET or o.error is not UNSET:
            return False
        # A request or a notification.
        self.claimed = True
        params = o.params
        if params is not UNSET:
            rows.asks.append(i)
            if type(params) is dict:
                rows.held.append(params)
        if x is UNSET:
            rows.add(i, "notification", method, None, _Call(method, params, x))
            return True
        key = _id_key(x)
        sid = key if type(x) is int else x
        rows.add(i, "request", method, sid, _Call(method, params, x))
        k = (direction[i], key)
        if len(self.open) < MAX_OPEN or k in self.open:
            self.open[k] = (msg_index[i], method, ts[i])
        else:
            self.untracked += 1
        return True

    def _flush(self, cols: EventColumns, rows: _Rows) -> None:
        """Move the column path's rows into ``cols``: their findings (see
        _secrets_of), then the rows, their fields written (see
        _fields_texts)."""
        run = rows.run
        if rows.asks:
            cols.findings.extend(self._secrets_of(run, rows.objs, rows.start, rows.asks,
                                                  rows.held, rows.payloads))
            rows.asks.clear()
            rows.held.clear()
        if rows.looped():
            position, index, where, *columns = rows.take_looped()
            cols.extend(position, index, where, self.name, *columns)
        position = rows.position
        if not position:
            return
        n, start = len(position), rows.start
        if position[0] == start and n == len(rows.objs):  # (one row each, all the messages)
            index, where = run.msg_index[start:start + n], run.direction[start:start + n]
        else:
            index = list(map(run.msg_index.__getitem__, position))
            where = list(map(run.direction.__getitem__, position))
        cols.extend(position, index, where, self.name, rows.kind, rows.channel, rows.ident,
                    rows.texts(), rows.answers)
        rows.clear()

    def _secrets_of(self, run: MessageRun, objs: list[_Rpc | None], start: int, asks: list[int],
                    held: list[Any], payloads: Sequence[bytes]) -> list[tuple[int, AppFinding]]:
        """``app_credentials_in_clear`` of the calls with params at ``asks``
        (``held``: those params that are objects), as ``receive`` finds them,
        in order. At once where every params is a container of scalars (its
        payload has no other brace or bracket than its object's and the
        params': the payloads joined have two each) and no key of the objects
        names a secret; else one by one (see _secrets)."""
        joined = b"\n".join(itemgetter(*asks)(payloads) if len(asks) > 1 else
                             (payloads[asks[0]],))
        if joined.count(b"{") + joined.count(b"[") == 2 * len(asks):
            keys = set().union(*held) - _CLEAN_KEYS
            if not any(map(_secret_key, keys)):
                _CLEAN_KEYS.update(list(keys)[:max(0, MAX_OPEN - len(_CLEAN_KEYS))])
                return []
        out: list[tuple[int, AppFinding]] = []
        for i in asks:
            call = objs[i - start]
            assert call is not None  # (a call of the column path)
            params: Any = call.params
            payload = payloads[i]
            # (params: a dict or a list, as _Rpc reads it; see _secrets)
            secrets = None if payload.count(b"{") + payload.count(b"[") == 2 and (
                type(params) is list or params.keys() <= _CLEAN_KEYS) else _secrets(params)
            if secrets:
                out.append((i, AppFinding(
                    "app_credentials_in_clear", run.msg_index[i], run.direction[i],
                    f"JSON-RPC {str(call.method)[:60]} carries {', '.join(secrets[:5])}")))
        return out

    def decode(self, message: AppMessage) -> list[AppEvent | AppFinding]:
        return self.decode_parsed(message, loads(message.payload))

    def decode_parsed(self, message: AppMessage, value: Any) -> list[AppEvent | AppFinding]:
        if value is NOT_JSON or not _is_rpc(value):
            # Once a valid JSON-RPC 2.0 object was seen the conversation is
            # JSON-RPC (``claimed``) and anything else is a parse failure.
            looks = _says_rpc(message.payload)
            return self.parse_failed(message, "JSON-RPC message is not valid JSON", force=looks)
        if isinstance(value, dict):
            return self._one(message, value, 0)
        out: list[AppEvent | AppFinding] = []
        for part, item in enumerate(value):
            out.extend(self._one(message, item, part))
        return out

    def _one(self, message: AppMessage, obj: dict[str, Any], part: int) -> list[AppEvent | AppFinding]:
        problem = _problem(obj)
        if problem:
            return self.parse_failed(message, f"invalid JSON-RPC object: {problem}", force=True)
        self.claimed = True
        has_id = "id" in obj
        id_key = _id_key(obj.get("id"))
        if "method" in obj:
            method = obj["method"]
            fields: dict[str, Any] = {"method": method}
            out: list[AppEvent | AppFinding] = []
            if "params" in obj:
                fields["params"] = obj["params"]
                secrets = credential_paths(obj["params"], "params")
                if secrets:
                    out.append(self.finding(
                        message, "app_credentials_in_clear",
                        f"JSON-RPC {method[:60]} carries {', '.join(secrets[:5])}"))
            if not has_id:
                return [self.event(message, "notification", method, None, fields, part), *out]
            fields["id"] = obj["id"]
            key = (message.direction, id_key)
            if key in self.open or len(self.open) < MAX_OPEN:
                self.open[key] = (message.msg_index, method, message.ts)
            else:
                self.untracked += 1
            return [self.event(message, "request", method, obj["id"], fields, part), *out]
        asked = self.open.pop((_OTHER.get(message.direction, ""), id_key), None)
        method = asked[1] if asked else None
        request_msg, latency = _answered(asked, message.ts)
        fields = {"id": obj.get("id")}
        if method is not None:
            fields["method"] = method
        if "error" in obj:
            err = obj["error"]
            fields["error"] = err
            fields["code"] = err.get("code")
            fields["message"] = err.get("message")
            return [self.event(message, "error", method, obj.get("id"), fields, part,
                               request_msg, latency)]
        fields["result"] = obj["result"]
        return [self.event(message, "response", method, obj.get("id"), fields, part,
                           request_msg, latency)]

    def end(self) -> list[AppEvent | AppFinding]:
        out: list[AppEvent | AppFinding] = []
        for (direction, id_key), (index, method, _ts) in self.open.items():
            out.append(
                AppFinding(
                    "app_request_unanswered",
                    index,
                    direction,
                    f"JSON-RPC request {method!r} id {scalar_id(json.loads(id_key)) or id_key} "
                    "never answered",
                )
            )
        if self.untracked:
            out.append(
                AppFinding(
                    "app_request_unanswered",
                    None,
                    None,
                    f"{self.untracked} JSON-RPC requests beyond the {MAX_OPEN} tracked not checked",
                )
            )
        self.open.clear()
        self.untracked = 0
        return out


def _problem(obj: Any) -> str | None:
    """Why ``obj`` is not a JSON-RPC 2.0 request/notification/response, or None."""
    if not isinstance(obj, dict):
        return "batch member is not an object"
    if obj.get("jsonrpc") != "2.0":
        return f"jsonrpc is {obj.get('jsonrpc')!r}, not '2.0'"
    if "id" in obj and not (
        obj["id"] is None or isinstance(obj["id"], str)
        or (isinstance(obj["id"], (int, float)) and not isinstance(obj["id"], bool))
    ):
        return "id is not a string, number or null"
    if "method" in obj:
        if not isinstance(obj["method"], str):
            return "method is not a string"
        if "result" in obj or "error" in obj:
            return "request with result or error"
        if "params" in obj and not isinstance(obj["params"], (list, dict)):
            return "params is not an array or object"
        return None
    if ("result" in obj) == ("error" in obj):
        return "neither a request nor a response (needs exactly one of result, error)"
    if "id" not in obj:
        return "response without id"
    if "error" in obj:
        err = obj["error"]
        if not isinstance(err, dict) or not isinstance(err.get("code"), int) or isinstance(
            err.get("code"), bool
        ) or not isinstance(err.get("message"), str):
            return "error is not an object with integer code and string message"
    return None
