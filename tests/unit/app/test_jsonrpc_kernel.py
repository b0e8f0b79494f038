"""The compiled loop of JSON-RPC's column path (``wspcap/app/_speedups.c``,
``rpc_rows``) against the column path without it and the reference path.

The loop takes a message only where it is sure to make the row the column
path makes (see the C module's note); every other message it leaves to the
column path. So the tests spell the same JSON-RPC objects every way the loop
must tell apart (whitespace anywhere, each string escape, raw DEL and
non-ASCII text, integers near its digit bound, "-0", floats, keys twice,
nesting and key counts near its bounds, keys that could name secrets, ids of
every type), then require the same columns, findings and decoder state from
the column path with the loop, without it, and from ``receive`` message by
message; and they check that the loop does take the common spellings (a loop
that left every message to the column path would pass the first test).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from golden.kernels import kernel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_app_columns import (
    reference_columns,
    runs_columns,
    state,
)

from wspcap.app import AppMessage, ConnFacts, jsonrpc
from wspcap.app.base import NO_ANSWER, EventColumns, MessageRun
from wspcap.app.fields import Texts
from wspcap.app.jsonrpc import JsonRpcDecoder
from wspcap.tables.app import _string_part, _texts


@contextmanager
def loops(compiled: bool) -> Iterator[None]:
    """The column path with its compiled loop, or without."""
    built = kernel("wspcap.app._speedups")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jsonrpc, "_rows", built.rpc_rows if compiled else None)
        yield


# -- JSON text written by hand, every spelling ----------------------------------------------

WS = st.sampled_from(["", "", "", " ", "\n", "\t ", "\r\n  "])
#: A character's spellings in a JSON string: the first ones the loop takes.
ESCAPES = {'"': ['\\"'], "\\": ["\\\\"], "\b": ["\\b"], "\f": ["\\f"], "\n": ["\\n"],
           "\r": ["\\r"], "\t": ["\\t"], "/": ["/", "\\/"], "A": ["A", "\\u0041"],
           "d": ["d", "\\u0064"],
           "é": ["é", "\\u00e9"], "\x7f": ["\x7f", "\\u007f"], "😀": ["😀", "\\ud83d\\ude00"],
           "\x01": ["\\u0001"]}


class Writer:
    """JSON text of a value, with whitespace anywhere between tokens. A
    clean writer spells only what the loop takes (no float, no "-0", no key
    twice, no escape but the seven, integers of at most 18 digits); one with
    the ``spelling`` flaw spells characters the other ways too, with the
    ``numbers`` flaw "-0" for some zeros, with the ``twice`` flaw some key twice."""

    def __init__(self, draw: Any, flaw: str | None) -> None:
        self.draw, self.flaw = draw, flaw

    def string(self, value: str) -> str:
        out = []
        for ch in value:
            ways = ESCAPES.get(ch, [ch])
            out.append(self.draw(st.sampled_from(ways)) if self.flaw == "spelling" else ways[0])
        return '"' + "".join(out) + '"'

    def value(self, value: Any) -> str:
        draw, ws = self.draw, lambda: self.draw(WS)
        if isinstance(value, bool) or value is None:
            return json.dumps(value)
        if isinstance(value, float):
            return draw(st.sampled_from([repr(value), f"{value:e}"]))
        if isinstance(value, int):
            return "-0" if value == 0 and self.flaw == "numbers" and draw(st.booleans()) \
                else str(value)
        if isinstance(value, str):
            return self.string(value)
        if isinstance(value, list):
            return "[" + ws() + ("," + ws()).join(self.value(v) + ws() for v in value) + "]"
        items = list(value.items())
        if items and self.flaw in ("twice", "spelling") and draw(st.booleans()):
            # (spelled otherwise, with the spelling flaw: "d" and "\u0064")
            items.append((draw(st.sampled_from(items))[0], draw(CLEAN_SCALARS)))
        return "{" + ws() + ("," + ws()).join(
            self.string(k) + ws() + ":" + ws() + self.value(v) + ws() for k, v in items) + "}"


def text(size: int = 6, odd: bool = False) -> st.SearchStrategy[str]:
    """Text of letters mostly, and of the characters with several spellings."""
    chars = [c for c in ESCAPES if odd or not ESCAPES[c][0].startswith("\\u")]
    return st.text(st.sampled_from("abcdefgh :-"), max_size=size) | st.text(
        st.sampled_from(["a", " ", *chars]), max_size=4)


CLEAN_SCALARS = (st.none() | st.booleans() | st.integers(-5, 5)
                 | st.integers(-(10**18) + 1, 10**18 - 1) | text())
ODD_SCALARS = CLEAN_SCALARS | text(odd=True) | st.sampled_from(
    [10**18, -(10**18), 10**25, 1.5, -0.0, 1e300, 0])
CLEAN_IDS = st.integers(0, 9) | st.text(st.sampled_from('abc-1 "\\'), max_size=4) | st.none()
CLEAN_KEYS = st.text(st.sampled_from("abcdefgh :-"), max_size=6) | st.sampled_from(
    ["room", "from", "text", "tok", "user", "x"])
#: Keys that name secrets, or might (the loop leaves params that have one).
SECRET_KEYS = st.sampled_from(["monkey", "Passcode", "AUTHORITY", "tickets", "JwT", "key",
                               "cookie", "credentials", "bearer", "secret", "pa\u017f\u017f",
                               "é", "token", "apiKey", "PAssword", "Api-Key"])


def values(scalars: st.SearchStrategy[Any], keys: st.SearchStrategy[str]
           ) -> st.SearchStrategy[Any]:
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(keys, inner, max_size=4), max_leaves=10)


def deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


#: What a message may have that the loop must see (one each, or none).
FLAWS = [None, None, None, "spelling", "numbers", "twice", "version", "odd", "after", "utf8",
         "cut", "secrets", "shape", "ids", "error"]


@st.composite
def rpc_text(draw: Any) -> bytes:
    """A JSON-RPC 2.0 object spelled one of many ways: clean (what the loop
    takes), or with one flaw that the loop must leave to the column path or
    read right."""
    flaw = draw(st.sampled_from(FLAWS))
    scalars = ODD_SCALARS if flaw in ("numbers", "spelling") else CLEAN_SCALARS
    keys = CLEAN_KEYS | SECRET_KEYS if flaw == "secrets" else \
        CLEAN_KEYS | text(odd=True) | SECRET_KEYS if flaw == "spelling" else CLEAN_KEYS
    values_ = values(scalars, keys)
    ids = CLEAN_IDS | st.sampled_from([1.0, True, 10**19, -0.0, [1], {}, "é", "\x7f", "\x01"]) \
        if flaw == "ids" else CLEAN_IDS
    kind = draw(st.sampled_from(["request", "notification", "response", "error"]
                                + (["odd"] if flaw == "odd" else [])))
    obj: dict[str, Any] = {"jsonrpc": draw(st.sampled_from(["2.00", "1.0", 2, None]))
                           if flaw == "version" else "2.0"}
    if kind in ("request", "notification"):
        obj["method"] = draw(text() | st.sampled_from(["chat.send", "é.x"]))
        if draw(st.booleans()):
            obj["params"] = draw(
                st.dictionaries(keys, values_, max_size=4) | st.lists(values_, max_size=4)
                if flaw != "shape" else st.sampled_from(
                    [deep(62), deep(63), deep(70), {f"k{i}": i for i in range(33)},
                     {f"k{i}": i for i in range(31)}, "text", 3, None]))
        if flaw == "secrets":  # a key that names a secret, or might, over text, somewhere
            secret = {draw(SECRET_KEYS): draw(st.text("xyz", min_size=draw(st.integers(0, 1)),
                                                      max_size=3))}
            obj["params"] = draw(st.sampled_from([secret, [secret], {"a": secret}, {
                **draw(st.dictionaries(CLEAN_KEYS, values_, max_size=2)), **secret}]))
        if kind == "request":
            obj["id"] = draw(ids)
    elif kind == "response":
        obj["result"] = draw(values_)
        obj["id"] = draw(ids)
    elif kind == "error":
        code, message = (st.integers(-32700, 0), text()) if flaw != "error" else (
            st.integers(-32700, 0) | st.sampled_from(["x", True, 1.5, None]),
            text() | st.sampled_from([None, 3]))
        error = st.fixed_dictionaries({"code": code, "message": message},
                                      optional={"data": values_})
        obj["error"] = draw(error if flaw != "error" else error | values_)
        obj["id"] = draw(ids)
    else:
        for key in draw(st.lists(st.sampled_from(["method", "params", "id", "result", "error",
                                                  "extra"]), max_size=4)):
            obj[key] = draw(values_)
    if draw(st.integers(0, 4)) == 0:
        obj["extra"] = draw(values_)
    writer = Writer(draw, flaw)
    data = (draw(WS) + writer.value(dict(draw(st.permutations(list(obj.items())))))
            + draw(WS)).encode("utf-8", "surrogatepass")
    if flaw == "cut":
        data = data[:draw(st.integers(0, len(data)))]
    elif flaw == "after":
        data += draw(st.sampled_from([b"x", b"{}", b"\xff", b",", b"\x00", b"\xef\xbb\xbf"]))
    elif flaw == "utf8":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80",
                                                 b"\xf4\x90\x80\x80", b"\xe0\x80\x80",
                                                 b"\xc0\xaf"])) + data[at:]
    return data


@st.composite
def conversations(draw: Any) -> list[AppMessage]:
    """Requests answered (ids reused across them), or not."""
    out = []
    for i, data in enumerate(draw(st.lists(rpc_text(), max_size=30))):
        out.append(AppMessage(i, draw(st.sampled_from(["c2s", "s2c"])), "text", data, i))
    return out


def columns(messages: list[AppMessage], facts: ConnFacts, compiled: bool,
            cuts: list[int]) -> tuple[EventColumns | None, tuple[Any, ...], Any]:
    """The column path's columns over runs cut at ``cuts``, its state and last words."""
    decoder = JsonRpcDecoder(facts)
    with loops(compiled):
        got = runs_columns(decoder, messages, cuts)
    return got, state(decoder), decoder.finish()


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations(), st.sampled_from([ConnFacts(), ConnFacts(uri="/rpc")]), st.data())
def test_loop_is_the_column_path(messages: list[AppMessage], facts: ConnFacts,
                                 data: st.DataObject) -> None:
    cuts = sorted({0, len(messages), *data.draw(st.lists(st.integers(0, len(messages)),
                                                         max_size=2))})
    with_loop = columns(messages, facts, True, cuts)
    assert with_loop == columns(messages, facts, False, cuts)
    single = JsonRpcDecoder(facts)
    assert with_loop[0] == reference_columns(single, messages)
    assert with_loop[1:] == (state(single), single.finish())


def looped(out: list[bytearray]) -> dict[str, Any]:
    """The columns of the compiled loop's rows (its ``out``), as the column
    path reads them (position, answers as lists)."""
    position, kind, channel, ident, fields, answers = jsonrpc.loop_columns(out)
    return {"position": position.tolist(), "kind": kind, "channel": channel, "id": ident,
            "fields": fields, "answers": np.frombuffer(answers, np.int64).reshape(-1, 2).tolist()}


def rpc_rows(payloads: list[Any], start: int, stop: int, directions: list[str],
             index: list[int], ts: list[int], *args: Any) -> tuple[int, int]:
    """The compiled loop over a run given as lists (made arrays as the
    column path makes them of a run of lists)."""
    n = len(payloads)
    arrays = jsonrpc._arrays_of(MessageRun(index, directions, ["text"] * n, payloads, ts,
                                           [True] * n))
    assert arrays is not None
    built = kernel("wspcap.app._speedups")
    got: tuple[int, int] = built.rpc_rows(arrays.payloads, arrays.rows, start, stop,
                                          arrays.direction, arrays.msg_index, arrays.ts, *args)
    return got


def taken(payloads: list[bytes], directions: list[str] | None = None) -> int:
    """How many of the messages the compiled loop takes, read in one run."""
    built = kernel("wspcap.app._speedups")
    directions = directions or ["c2s"] * len(payloads)
    count = 0
    opened = built.OpenRequests()
    out = [bytearray() for _ in jsonrpc._LOOP_COLUMNS]
    at = 0
    while at < len(payloads):
        stop, _ = rpc_rows(payloads, at, len(payloads), directions, list(range(len(payloads))),
                           [0] * len(payloads), opened, 10, out)
        count += stop - at
        at = stop + 1
    # (a row taken in every column, the texts one after the other, valid
    # UTF-8 as Arrow takes them: the table makes its columns of the buffers
    # as they are)
    rows = looped(out)
    assert all(len(column) == count for column in rows.values())
    _texts([rows["fields"]]).validate(full=True)
    for name in ("channel", "id"):
        _string_part(rows[name], pa.large_string()).validate(full=True)
    return count


def test_loop_takes_the_common_spellings() -> None:
    """What peers write, compact or not, is taken whole; what the loop is
    not sure of is left, one message at a time."""
    objects = [
        {"jsonrpc": "2.0", "method": "chat.send", "params": {"room": "r", "text": "a\n\"b\""},
         "id": 1},
        {"jsonrpc": "2.0", "method": "chat.é", "params": {"url": "<https://x/y>", "t": "😀\x01"},
         "id": 2},
        {"jsonrpc": "2.0", "method": "notify", "params": ["é", 1, None, True, [], {}]},
        {"jsonrpc": "2.0", "result": {"ok": True, "n": -12}, "id": "x-1"},
        {"jsonrpc": "2.0", "error": {"code": -32601, "message": "not found", "data": [1]},
         "id": 3},
        {"jsonrpc": "2.0", "method": "m", "id": None},
    ]
    common = [json.dumps(o, separators=sep, ensure_ascii=False).encode()
              for o in objects for sep in ((",", ":"), (", ", ": "))]
    common += [json.dumps(o, indent=2, ensure_ascii=False).encode() for o in objects]
    # ASCII escapes (Python's default, Go's \u003c), and PHP's \/
    common += [json.dumps(o).encode() for o in objects]
    common += [json.dumps(o).replace("<", "\\u003C").replace("/", "\\/").encode()
               for o in objects]
    assert taken(common) == len(common)
    left = [
        b'{"jsonrpc":"2.0","method":"m","params":{"x":1.5},"id":1}',  # a float
        b'{"jsonrpc":"2.0","method":"m","params":{"\\u0078":1},"id":1}',  # a key escaped
        b'{"jsonrpc":"2.0","method":"m","params":{"x":"\\ud800"},"id":1}',  # lone surrogates
        b'{"jsonrpc":"2.0","method":"m","params":{"x":"\\udc00\\ud800"},"id":1}',
        b'{"jsonrpc":"2.0","method":"m","params":{"x":"\\u12"},"id":1}',  # not JSON
        b'{"jsonrpc":"2.0","method":"m","id":"\\u0041"}',  # an id that is not plain
        b'{"jsonrpc":"2.0","method":"m","params":{"password":"p"},"id":1}',  # a secret's key
        b'{"jsonrpc":"2.0","method":"m","params":{"x":1,"x":2},"id":1}',  # a key twice
        b'{"jsonrpc":"2.0","method":"m","id":-0}',
        b'{"jsonrpc":"2.0","method":"m","id":1234567890123456789}',
        b'{"jsonrpc":"2.0","method":"m","id":"\xc3\xa9"}',  # not printable ASCII
        b'[{"jsonrpc":"2.0","method":"m"}]',  # a batch
        b'{"jsonrpc":"2.0","method":"m"} x',
        b'{"jsonrpc":"2.0","method":"m","result":1}',
    ]
    for payload in left:
        assert taken([payload]) == 0, payload


def test_loop_reads_a_string_whatever_its_place_in_its_bytes() -> None:
    """The loop reads a string's plain bytes sixteen at a time where it can:
    a byte that is not plain (a quote or backslash escaped, DEL, UTF-8, a
    raw control byte or a byte that is no UTF-8, which are no JSON) is found
    at every place within those sixteen and in the bytes after them, near
    the payload's end or far from it; the rows are the column path's
    without the loop, and the reference path's."""
    specials = [b'\\"', b"\\\\", b"\\n", b"\x7f", "\u00e9".encode(), "\U0001f600".encode(),
                b"\x01", b"\x1f", b"\x80", b"\xff"]
    messages = []
    for special in specials:
        for before in range(36):
            for after in (0, 3, 17):
                text = b"a" * before + special + b"b" * after
                messages.append(b'{"jsonrpc":"2.0","method":"m","params":{"t":"' + text
                                + b'"}' + b" " * (after % 2) + b"}")
    conversation = [AppMessage(i, "c2s", "text", data, i) for i, data in enumerate(messages)]
    with_loop = columns(conversation, ConnFacts(), True, [0, len(conversation)])
    assert with_loop == columns(conversation, ConnFacts(), False, [0, len(conversation)])
    single = JsonRpcDecoder(ConnFacts())
    assert with_loop[0] == reference_columns(single, conversation)
    # (the JSON strings taken; the raw control bytes and bytes no UTF-8 left)
    assert taken(messages) == len(messages) - 4 * 36 * 3
    # An id of plain bytes only is taken (DEL, found at any place, is not plain).
    for before in range(36):
        ident = b"i" * before
        assert taken([b'{"jsonrpc":"2.0","method":"m","id":"' + ident + b'x"}']) == 1
        assert taken([b'{"jsonrpc":"2.0","method":"m","id":"' + ident + b'\x7fx"}']) == 0


def test_loop_pairs_and_bounds_the_open_requests() -> None:
    """An answer takes its request's method from the requests opened in the
    other direction, and its msg_index and the latency (from the two
    messages' times, 0 being unknown); past max_open a request is counted,
    not kept."""
    built = kernel("wspcap.app._speedups")
    payloads = [b'{"jsonrpc":"2.0","method":"a\\"b","id":"q"}',
                b'{"jsonrpc":"2.0","method":"c","id":2}',
                b'{"jsonrpc":"2.0","method":"d","id":3}',
                b'{"jsonrpc":"2.0","result":[],"id":"q"}',
                b'{"jsonrpc":"2.0","result":[],"id":2}',
                b'{"jsonrpc":"2.0","method":"e","id":4}',
                b'{"jsonrpc":"2.0","result":1,"id":4}']
    opened = built.OpenRequests()
    # (what the bytearrays held before stays; the ends count from their start)
    out = [bytearray() for _ in jsonrpc._LOOP_COLUMNS]
    out[8] += b"before"
    out[10] += b"x" * 16
    stop, untracked = rpc_rows(payloads[:5], 0, 5, ["c2s", "c2s", "c2s", "s2c", "c2s"],
                               [10, 11, 12, 13, 14], [100, 200, 300, 450, 500], opened, 2, out)
    assert (stop, untracked) == (5, 1)
    assert out[8].startswith(b"before{") and out[10].startswith(b"x" * 16)
    fields = Texts(out[8][6:], np.frombuffer(out[9], np.int64) - 6)
    del out[8][:6], out[10][:16]
    rows = looped(out)
    assert rows["position"] == [0, 1, 2, 3, 4] and len(fields) == 5
    assert rows["kind"] == ["request", "request", "request", "response", "response"]
    assert rows["channel"] == ['a"b', "c", "d", 'a"b', None]  # (2 answered from its own side)
    assert rows["id"] == ["q", "2", "3", "q", "2"]
    assert fields[3] == '{"id":"q","method":"a\\"b","result":[]}'
    assert opened == {("c2s", "2"): (11, "c", 200)}
    # (a row without an answer: none, none)
    none = NO_ANSWER
    assert rows["answers"] == [[none, none], [none, none], [none, none], [10, 350], [none, none]]
    # A time of 0 is unknown: the answer is paired, without a latency; a
    # notification has no id.
    out = [bytearray() for _ in jsonrpc._LOOP_COLUMNS]
    rpc_rows(payloads + [b'{"jsonrpc":"2.0","method":"f"}'], 5, 8, ["c2s"] * 6 + ["s2c", "c2s"],
             list(range(20, 28)), [0] * 6 + [900, 0], opened, 9, out)
    rows = looped(out)
    assert rows["answers"][:2] == [[none, none], [25, none]]
    assert (rows["kind"], rows["channel"], rows["id"]) == (
        ["request", "response", "notification"], ["e", "e", "f"], ["4", "4", None])


@pytest.mark.parametrize("bad", [
    ([b"{}"], 0, 2), ([b"{}"], -1, 1)])
def test_loop_refuses_bounds_outside_the_columns(bad: tuple[list[bytes], int, int]) -> None:
    payloads, start, stop = bad
    with pytest.raises(IndexError):
        rpc_rows(payloads, start, stop, ["c2s"], [0], [0],
                 kernel("wspcap.app._speedups").OpenRequests(), 1,
                 [bytearray() for _ in jsonrpc._LOOP_COLUMNS])


@pytest.mark.parametrize("bad", range(7))
def test_loop_refuses_columns_of_another_type(bad: int) -> None:
    """Each column must be a contiguous array of its type (an object array,
    int64 rows within it, int8, int64, int64), and out eleven bytearrays:
    else a clear error, not a read out of their bounds."""
    built = kernel("wspcap.app._speedups")
    args: list[Any] = [np.array([b"{}"], object), np.zeros(1, np.int64), 0, 1,
                       np.zeros(1, np.int8), np.zeros(1, np.int64), np.zeros(1, np.int64),
                       built.OpenRequests(), 1, [bytearray() for _ in jsonrpc._LOOP_COLUMNS]]
    where, wrong = [(0, [b"{}"]), (4, np.zeros(1, np.int64)), (5, np.zeros(1, np.int32)),
                    (6, np.zeros(4, np.int64)[::2]), (9, [bytearray()] * 10),
                    (1, np.ones(1, np.int64)), (1, np.full(1, -1, np.int64))][bad]
    args[where] = wrong
    with pytest.raises((TypeError, ValueError, BufferError, IndexError)):
        built.rpc_rows(*args)
    # (nothing left in the columns it was given: no room made and not cut)
    assert all(len(column) == 0 for column in args[9])


def test_loop_leaves_what_the_typed_parse_is_not_to_see(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    # A valid request over MAX_JSON_BYTES (the loop would take it: it is
    # given the limit), one nested past _NEST, and a payload that is not
    # bytes, amid common messages: the rows, state and last words of the
    # column path are the same with the loop and without, and the reference's.
    monkeypatch.setattr(jsonrpc, "MAX_JSON_BYTES", 200)
    monkeypatch.setattr(jsonrpc, "_NEST", 8)
    common = b'{"jsonrpc":"2.0","id":%d,"method":"m","params":{"a":1}}'
    answer = b'{"jsonrpc":"2.0","id":%d,"result":[1]}'
    big = b'{"jsonrpc":"2.0","id":90,"method":"big","params":[' + b" " * 200 + b"1]}"
    deep = b'{"jsonrpc":"2.0","id":91,"method":"deep","params":' + b"[" * 12 + b"]" * 12 + b"}"
    payloads: list[Any] = [common % 1, big, answer % 1, deep, common % 2,
                           bytearray(common % 3), answer % 2, answer % 90, common % 4]
    messages = [AppMessage(i, "s2c" if b"result" in p else "c2s", "text", p, 1000 + i)
                for i, p in enumerate(payloads)]
    assert taken([bytes(p) for p in payloads]) == len(payloads)  # (all taken, unlimited)
    stop, _ = rpc_rows([bytes(p) for p in payloads], 0, len(payloads), ["c2s"] * 9,
                       list(range(9)), [0] * 9, kernel("wspcap.app._speedups").OpenRequests(),
                       10, [bytearray() for _ in jsonrpc._LOOP_COLUMNS], 200)
    assert stop == 1  # (the big one left, by its size)
    received: list[int] = []
    receive = JsonRpcDecoder.receive

    def counted(self: JsonRpcDecoder, message: AppMessage) -> Any:
        received.append(message.msg_index)
        return receive(self, message)

    monkeypatch.setattr(JsonRpcDecoder, "receive", counted)
    with_loop = columns(messages, ConnFacts(), True, [0, len(messages)])
    assert received == [1]  # (the big one, read whole by the reference path: see _reference)
    assert with_loop == columns(messages, ConnFacts(), False, [0, len(messages)])
    single = JsonRpcDecoder(ConnFacts())
    assert with_loop[0] == reference_columns(single, messages)
    assert with_loop[1:] == (state(single), single.finish())
    assert with_loop[0] is not None and len(with_loop[0]) == len(messages)


# -- the table of open requests ---------------------------------------------------------------

#: Keys: a few directions, ids short and long (past the table's key buffer), ASCII or not.
TABLE_KEYS = st.tuples(st.sampled_from(["c2s", "s2c", "", "é"]),
                       st.sampled_from(["1", "2", '"a"', "null", "x" * 600, "é😀", ""])
                       | st.integers(0, 40).map(str))
#: Values kept as their parts (within int64), and others kept as they are.
TABLE_VALUES = st.tuples(st.integers(-(2**63), 2**63 - 1) | st.integers(2**63, 2**70),
                         st.sampled_from(["m", "é", ""]),
                         st.integers(0, 2**63 - 1) | st.just(1.5))
TABLE_OPS = st.lists(st.one_of(
    st.tuples(st.just("set"), TABLE_KEYS, TABLE_VALUES), st.tuples(st.just("pop"), TABLE_KEYS),
    st.tuples(st.just("del"), TABLE_KEYS), st.tuples(st.just("get"), TABLE_KEYS),
    st.tuples(st.just("in"), TABLE_KEYS), st.tuples(st.just("clear"))), max_size=400)


@settings(max_examples=300, deadline=None)
@given(TABLE_OPS)
def test_open_table_is_a_dict(ops: list[tuple[Any, ...]]) -> None:
    """The compiled loop's table of open requests does what the decoder does
    with a dict as a dict does it: same values, same errors, items in the
    same order (a key set again keeps its place), through growth, keys
    taken and the table packed again."""
    table, want = kernel("wspcap.app._speedups").OpenRequests(), {}
    for op, *args in ops:
        if op == "set":
            table[args[0]] = want[args[0]] = args[1]
        elif op == "pop":
            assert table.pop(args[0], None) == want.pop(args[0], None)
        elif op in ("del", "get"):
            said: list[Any] = []
            for mapping in (table, want):
                try:
                    if op == "get":
                        said.append(mapping[args[0]])
                    else:
                        del mapping[args[0]]
                        said.append(None)
                except KeyError as exc:
                    said.append(exc.args)
            assert said[0] == said[1]
        elif op == "in":
            assert (args[0] in table) == (args[0] in want)
        else:
            table.clear()
            want.clear()
        assert len(table) == len(want)
        assert table.items() == list(want.items())
    assert table == want
    assert (table != want) is False


def test_open_table_refuses_other_keys() -> None:
    table = kernel("wspcap.app._speedups").OpenRequests()
    for key in [1, ("c2s",), ("c2s", 1), ("c2s", "1", "x")]:
        with pytest.raises(TypeError):
            table[key] = (1, "m", 2)
        with pytest.raises(TypeError):
            key in table  # noqa: B015
    assert len(table) == 0 and repr(table) == "OpenRequests({})"


def test_open_table_churn_keeps_order_and_references() -> None:
    """Requests opened and answered by the thousand (the table grows, is
    packed and made again) keep what is open, in order, and let go of
    every method they held."""
    import sys

    table = kernel("wspcap.app._speedups").OpenRequests()
    method = f"chat.{'send'}-{len(table)}"  # (a str made here, its references counted)
    before = sys.getrefcount(method)
    for i in range(20_000):
        table[("c2s", str(i))] = (i, method, i)
        if i % 100:
            assert table.pop(("c2s", str(i)), None) == (i, method, i)
    assert [key for key, _ in table.items()] == [("c2s", str(i)) for i in range(0, 20_000, 100)]
    table.clear()
    assert len(table) == 0 and sys.getrefcount(method) == before
