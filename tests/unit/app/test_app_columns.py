"""The column path (``Decoder.receive_columns``, ``Runner.feed_columns``) gives
what the reference path gives, message by message.

- JSON-RPC's ``receive_columns`` against ``receive`` on each message, on
  generated conversations: requests, notifications, responses and errors in
  both directions, ids of every JSON type (reused, answered from the wrong
  side, never answered), params with keys that name secrets (spelled in other
  cases, escaped, folded from non-ASCII letters, nested), floats, big
  integers, duplicate keys, whitespace, batches, other JSON-RPC versions,
  garbage and cut messages, payloads that only join into JSON (``{"x":"}``
  then ``{"}``), with the conversation claimed by its facts or not, and cut
  into runs anywhere.
- ``Runner.feed_columns`` against ``Runner.feed_run``: the same rows, the
  same pairing and latencies, the same state after (open requests, message
  times), the same last words.
- The decoders that do not offer the path say so (None) and change nothing.
"""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import numpy as np
import pytest
from app_samples import SAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wspcap.app import DECODERS, AppMessage, ConnFacts
from wspcap.app._json import MAX_JSON_BYTES
from wspcap.app.base import NO_ANSWER, EventColumns, MessageRun
from wspcap.app.fields import fields_text
from wspcap.app.jsonrpc import JsonRpcDecoder
from wspcap.app.runner import ANY_KIND, PAIRING, RECENT, Pairing, Runner

DIRECTIONS = ("c2s", "s2c")

SCALARS = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.integers(-5, 5) | st.text(max_size=6)
           | st.floats(allow_nan=False, allow_infinity=False))
KEYS = st.sampled_from(["room", "from", "text", "password", "Token", "api_key", "AUTH", "user",
                        "pa\u017f\u017fword", "ticket", "sessionKey", "x", "é"]) | st.text(
    max_size=5)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(KEYS, inner, max_size=4), max_leaves=12)
PARAMS = st.dictionaries(KEYS, VALUES, max_size=4) | st.lists(VALUES, max_size=4)
IDS = st.integers(0, 6) | st.sampled_from(["1", "a", "é", None, 1.5, True, 2**70, [1], {}])
METHODS = st.sampled_from(["chat.send", "chat.history", "m", "é", ""]) | st.integers(0, 2)


@st.composite
def rpc_object(draw: Any) -> dict[str, Any]:
    """A JSON-RPC 2.0 object, mostly well formed."""
    kind = draw(st.sampled_from(["request", "request", "notification", "response", "response",
                                 "error", "odd"]))
    obj: dict[str, Any] = {"jsonrpc": draw(st.sampled_from(["2.0"] * 8 + ["1.0", 2]))}
    if kind in ("request", "notification"):
        obj["method"] = draw(METHODS)
        if draw(st.booleans()):
            obj["params"] = draw(PARAMS | SCALARS) if draw(st.integers(0, 9)) == 0 else \
                draw(PARAMS)
        if kind == "request":
            obj["id"] = draw(IDS)
    elif kind == "response":
        obj["result"] = draw(VALUES)
        obj["id"] = draw(IDS)
    elif kind == "error":
        obj["error"] = draw(st.fixed_dictionaries(
            {"code": st.integers(-32700, 0) | st.sampled_from(["x", True]),
             "message": st.text(max_size=5)}, optional={"data": VALUES}) | VALUES)
        obj["id"] = draw(IDS)
    else:
        for key in draw(st.lists(st.sampled_from(["method", "params", "id", "result", "error"]),
                                 max_size=4)):
            obj[key] = draw(VALUES)
    items = list(obj.items())
    return dict(draw(st.permutations(items)))


def spell(draw: Any, value: Any) -> bytes:
    """``value`` as JSON text, in one of the ways peers write it."""
    style = draw(st.integers(0, 5))
    if style == 0:
        text = json.dumps(value, indent=1)
    elif style == 1:
        text = json.dumps(value)  # ASCII escapes, spaces
    elif style == 2 and isinstance(value, dict) and value:  # a duplicate key
        key = draw(st.sampled_from(sorted(value)))
        body = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        text = body[:-1] + "," + json.dumps(key) + ":" + json.dumps(draw(VALUES)) + "}"
    elif style == 3:
        text = " " + json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n"
    else:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "surrogatepass")


ODD_PAYLOADS = [
    b'{"x":"}', b'{"}', b'{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"b"}',
    b"", b"[]", b"{}", b"null", b"not json", b"\xff\xfe", b'\xef\xbb\xbf{"jsonrpc":"2.0"}',
    b'{"jsonrpc":"2.0","method":"m","params":{"k":1e400}}',
    b'{"jsonrpc":"2.0","method":"m","params":{"k":"\\ud800"}}',
    b'{"jsonrpc":"2.0","method":"m","x":"\\udc00","id":1}',
    b'{"jsonrpc":"2.0","method":"m","params":{"\\u0070assword":"s"},"id":2}',
    b'{"jsonrpc":"2.0","method":"m","params":{"p":{"token":"t"}}}',
    b'{"jsonrpc":"2.0","method":"m","params":{"k":"{["},"id":3}',
    b'{"jsonrpc":"1.0","jsonrpc":"2.0","id":1,"result":1}',
    b'{"jsonrpc":"2.0","id":1,"id":"1","result":null}',
    b'[{"jsonrpc":"2.0","method":"b","id":9},{"jsonrpc":"2.0","result":1,"id":9}]',
    b'{"note":"jsonrpc"}', b'{"jsonrpc":"2.0","method":"m","params":[' + b"[" * 3000 + b"]" * 3000
    + b"]}", b'{"jsonrpc": "2.0", "method": "big", "params": ["' + b"x" * 300 + b'"]}',
    # Not UTF-8 in a member the typed parse skips (msgspec does not look at
    # it; the reference refuses the text), and UTF-8 that is not ASCII there.
    b'{"jsonrpc":"2.0","method":"update","param\xf3":[1,2]}',
    b'{"jsonrpc":"2.0","result":1,"id":1,"note":"\xc3"}',
    '{"jsonrpc":"2.0","method":"m","é":"ü","id":4}'.encode(),
]


@st.composite
def payload(draw: Any) -> bytes:
    choice = draw(st.integers(0, 19))
    if choice == 0:
        return draw(st.sampled_from(ODD_PAYLOADS))
    if choice == 1:
        return draw(st.binary(max_size=12))
    if choice == 2:  # cut
        data = spell(draw, draw(rpc_object()))
        return data[:draw(st.integers(0, len(data)))]
    if choice == 3:  # a batch
        return spell(draw, draw(st.lists(rpc_object(), max_size=3)))
    return spell(draw, draw(rpc_object()))


@st.composite
def conversations(draw: Any) -> list[AppMessage]:
    payloads = draw(st.lists(payload(), max_size=24))
    out = []
    ts = 0
    for i, data in enumerate(payloads):
        ts += draw(st.sampled_from([0, 1, 1000]))
        out.append(AppMessage(10 + 2 * i, draw(st.sampled_from(DIRECTIONS)), "text", data, ts))
    return out


FACTS = st.sampled_from([ConnFacts(), ConnFacts(uri="/rpc")])


def as_run(messages: list[AppMessage]) -> MessageRun:
    return MessageRun([m.msg_index for m in messages], [m.direction for m in messages],
                      [m.type for m in messages], [m.payload for m in messages],
                      [m.ts for m in messages], [m.complete for m in messages])


def texts(cols: EventColumns | None) -> EventColumns | None:
    """``cols`` with every ``fields`` as the table writes it (text)."""
    if cols is not None:
        cols.fields = [f if isinstance(f, str) else fields_text(f) for f in cols.fields]
    return cols


def listed(values: Any) -> list[Any]:
    """A column of :class:`~wspcap.app.runner.RowColumns` as a list (an
    array, the decoder's pairing, with None for NO_ANSWER), or of its
    :class:`~wspcap.app.base.EventColumns` (an array of positions)."""
    if isinstance(values, np.ndarray) and values.dtype == np.int64:
        return [None if v == NO_ANSWER else v for v in values.tolist()]
    return list(values)


def reference_columns(decoder: Any, messages: list[AppMessage]) -> EventColumns | None:
    """What ``receive`` gives message by message, as columns."""
    cols = EventColumns()
    for i, message in enumerate(messages):
        cols.add(i, decoder.receive(message))
    return texts(cols)


def cuts(draw: Any, n: int) -> list[int]:
    return sorted(set(draw(st.lists(st.integers(0, n), max_size=3))) | {0, n})


def runs_columns(decoder: JsonRpcDecoder, messages: list[AppMessage],
                 bounds: list[int]) -> EventColumns | None:
    """The column path's columns over the runs cut at ``bounds``, joined."""
    got = EventColumns()
    for start, end in pairwise(bounds):
        part = decoder.receive_columns(as_run(messages[start:end]))
        assert part is not None
        got.position += [start + i for i in part.position]
        for name in ("msg_index", "direction", "protocol", "kind", "channel", "id", "fields",
                     "part", "answers"):
            getattr(got, name).extend(getattr(part, name))
        got.findings += [(start + i, f) for i, f in part.findings]
    return texts(got)


def state(decoder: JsonRpcDecoder) -> tuple[Any, ...]:
    return decoder.claimed, list(decoder.open.items()), decoder.untracked


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations(), FACTS, st.data())
def test_jsonrpc_columns_are_receive(messages: list[AppMessage], facts: ConnFacts,
                                     data: st.DataObject) -> None:
    single, fast = JsonRpcDecoder(facts), JsonRpcDecoder(facts)
    want = reference_columns(single, messages)
    assert runs_columns(fast, messages, cuts(data.draw, len(messages))) == want
    assert state(fast) == state(single)
    assert fast.finish() == single.finish()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(conversations(), min_size=1, max_size=40), FACTS, st.data())
def test_jsonrpc_columns_are_receive_on_long_runs(parts: list[list[AppMessage]],
                                                  facts: ConnFacts, data: st.DataObject) -> None:
    """Runs of several chunks (the column path reads a chunk at a time):
    the reference path's messages and the column path's anywhere in them."""
    messages = [AppMessage(i, m.direction, m.type, m.payload, m.ts) for i, m in
                enumerate(m for part in parts * data.draw(st.sampled_from([1, 8]))
                          for m in part)]
    single, fast = JsonRpcDecoder(facts), JsonRpcDecoder(facts)
    want = reference_columns(single, messages)
    assert texts(fast.receive_columns(as_run(messages))) == want
    assert state(fast) == state(single)
    assert fast.finish() == single.finish()


def test_jsonrpc_columns_on_edges() -> None:
    """The odd payloads one after another, then each after a valid request (claimed)."""
    request = b'{"jsonrpc":"2.0","method":"m","params":{"a":1},"id":1}'
    # Three messages that join into three objects, none of them theirs.
    joining = [b'{"jsonrpc":"2.0","method":"x","params":{"s":"}', b'{"}}',
               b'{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"b"}']
    for facts in (ConnFacts(), ConnFacts(uri="/rpc")):
        for payloads in ([*ODD_PAYLOADS], *([request, p, request] for p in ODD_PAYLOADS),
                         [b" " * (MAX_JSON_BYTES + 1), request] * 3, [request, *joining, request],
                         [request] * 3 + joining + [request] * 3):
            messages = [AppMessage(i, DIRECTIONS[i % 2], "text", p, i) for i, p in
                        enumerate(payloads)]
            single, fast = JsonRpcDecoder(facts), JsonRpcDecoder(facts)
            assert texts(fast.receive_columns(as_run(messages))) == reference_columns(single,
                                                                                     messages)
            assert state(fast) == state(single) and fast.finish() == single.finish()


def test_jsonrpc_columns_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Well-formed messages never reach the reference path."""
    payloads = [b'{"jsonrpc":"2.0","method":"m","params":{"a":1},"id":%d}' % i for i in range(9)]
    payloads += [b'{"jsonrpc":"2.0","id":%d,"result":{"ok":true}}' % i for i in range(8)]
    payloads += [b'{"jsonrpc":"2.0","method":"n","params":["r",1]}'] * 9
    payloads += [b'{"jsonrpc":"2.0","id":%d,"error":{"code":-1,"message":"no","data":[1]}}' % i
                 for i in (8, 9)]
    messages = [AppMessage(i, "s2c" if b"result" in p or b"error" in p else "c2s", "text", p, i)
                for i, p in enumerate(payloads)]
    fast = JsonRpcDecoder(ConnFacts())
    for name in ("receive", "receive_parsed"):
        monkeypatch.setattr(fast, name, lambda *args: pytest.fail("reference path"))
    cols = fast.receive_columns(as_run(messages))
    assert cols is not None and all(isinstance(f, str) for f in cols.fields)
    assert texts(cols) == reference_columns(JsonRpcDecoder(ConnFacts()), messages)
    assert cols.kind == ["request"] * 9 + ["response"] * 8 + ["notification"] * 9 + ["error"] * 2
    assert cols.fields[9] == '{"id":0,"method":"m","result":{"ok":true}}'
    assert cols.fields[-2:] == [
        ('{"id":8,"method":"m","error":{"code":-1,"message":"no","data":[1]},"code":-1,'
         '"message":"no"}'),
        '{"id":9,"error":{"code":-1,"message":"no","data":[1]},"code":-1,"message":"no"}']


def test_jsonrpc_columns_find_secrets() -> None:
    messages = [AppMessage(i, "c2s", "text", p, i) for i, p in enumerate([
        b'{"jsonrpc":"2.0","method":"login","params":{"user":"u","password":"p"},"id":1}',
        b'{"jsonrpc":"2.0","method":"login","params":{"user":"u","pa\xc5\xbf\xc5\xbfword":"p"}}',
        b'{"jsonrpc":"2.0","method":"login","params":{"user":"u","\\u0074oken":"t"}}',
        b'{"jsonrpc":"2.0","method":"login","params":[{"Api-Key":"k"}]}',
        b'{"jsonrpc":"2.0","method":"login","params":{"user":"u","password":""}}',
    ])]
    cols = JsonRpcDecoder(ConnFacts()).receive_columns(as_run(messages))
    assert cols is not None
    assert [(i, f.code) for i, f in cols.findings] == [(i, "app_credentials_in_clear")
                                                       for i in range(4)]


def runner_state(runner: Runner) -> tuple[Any, ...]:
    return (list(runner.open.items()), runner.untracked, list(runner.recent.items()),
            runner.now, runner.now_index)


#: JSON-RPC's pairing rule (None: its own, the decoder's), or rules the
#: runner pairs by itself: any kind opened, or from one direction only.
RULES = st.sampled_from([
    None,
    Pairing(ANY_KIND, frozenset({"response", "error"}), request_direction="c2s"),
    Pairing(frozenset({"notification", "request"}), frozenset({"response"}),
            request_direction="s2c"),
])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations(), FACTS, RULES, st.data())
def test_feed_columns_is_feed_run(messages: list[AppMessage], facts: ConnFacts,
                                  rule: Pairing | None, data: st.DataObject) -> None:
    """The column path's rows, pairs, latencies (times 0 among them: not
    known) and runner state are the run path's, with the decoder's pairing
    and with the runner's own under other rules."""
    # Long runs too (the message times keep the last RECENT).
    messages = messages * data.draw(st.sampled_from([1, 1, RECENT // 8 + 1]))
    messages = [AppMessage(i, m.direction, m.type, m.payload,
                           data.draw(st.sampled_from([0, m.ts + i, m.ts + i + 2**62])))
                for i, m in enumerate(messages)]
    with pytest.MonkeyPatch.context() as patch:
        if rule is not None:
            patch.setitem(PAIRING, "jsonrpc", rule)
        runs_are_columns(messages, facts, cuts(data.draw, len(messages)))


def runs_are_columns(messages: list[AppMessage], facts: ConnFacts, bounds: list[int]) -> None:
    single, fast = Runner(facts, "jsonrpc"), Runner(facts, "jsonrpc")
    for start, end in pairwise(bounds):
        run = as_run(messages[start:end])
        want = single.feed_run(run)
        got = fast.feed_columns(run)
        if not len(run):
            assert got is None and want == []
            continue
        assert got is not None
        rows = [(i, row) for i, found, _ in want for row in found]
        assert [i for i, _ in rows] == listed(got.events.position)
        assert [row.request_msg for _, row in rows] == listed(got.request_msg)
        assert [row.latency for _, row in rows] == listed(got.latency)
        assert [(row.event.msg_index, row.event.kind, row.event.id) for _, row in rows] == list(
            zip(got.events.msg_index, got.events.kind, got.events.id))
        assert [(i, f) for i, _, findings in want for f in findings] == got.events.findings
        assert runner_state(fast) == runner_state(single)
    assert fast.finish() == single.finish()


@pytest.mark.parametrize("name", sorted(set(DECODERS) - {"jsonrpc"}))
def test_other_decoders_offer_no_columns(name: str) -> None:
    sample = SAMPLES.get(name) or next(iter(SAMPLES.values()))
    runner = Runner(sample.facts, name)
    before = runner_state(runner)
    assert runner.feed_columns(as_run(sample.messages)) is None
    assert runner_state(runner) == before


@pytest.mark.parametrize("where", ["x", "params", "result"])
def test_jsonrpc_columns_near_the_depth_limit(where: str) -> None:
    """Nested near the parsers' depth limit (the interpreter's recursion
    limit, less the frames above): the column path leaves such a message to
    the reference path, parsed at the same depth as receive_run parses it."""
    for depth in range(940, 1060, 3):
        inner = b"[" * depth + b"]" * depth
        payload = {
            "x": b'{"jsonrpc":"2.0","method":"m","x":' + inner + b',"id":1}',
            "params": b'{"jsonrpc":"2.0","method":"m","params":[' + inner + b'],"id":1}',
            "result": b'{"jsonrpc":"2.0","result":' + inner + b',"id":1}',
        }[where]
        run = as_run([AppMessage(0, "c2s", "text", payload, 1)])
        single, fast = JsonRpcDecoder(ConnFacts()), JsonRpcDecoder(ConnFacts())
        want = EventColumns()
        for i, got in single.receive_run(run):
            want.add(i, got)
        cols = fast.receive_columns(run)
        assert cols is not None
        assert (list(cols.position), list(cols.kind), list(cols.id), cols.findings) == (
            want.position, want.kind, want.id, want.findings)
