"""Tests of :mod:`wspcap.ws.records`: records packed into columns come back the same.

Every field of every record comes back with its Python value and type (so
that detail texts built from them do not change), except the payload and
text of data records, which packing drops on purpose; keys stay with their
records; views join what was packed and what came after, in order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wspcap.engine import Collector
from wspcap.ws.frames import Frame
from wspcap.ws.messages import Message
from wspcap.ws.records import (
    FRAME_PACKING,
    MESSAGE_PACKING,
    OBJECT,
    Packed,
    RecordView,
    array,
    group_positions,
)

U64 = st.integers(0, 2**64 - 1)


def _listed(values: Any, nulls: Any) -> list[Any]:
    """An :func:`array` result as Python values, None where null."""
    if nulls is None:
        return [int(v) for v in values.tolist()]
    return [None if n else int(v) for v, n in zip(values.tolist(), nulls.tolist(), strict=True)]
I64 = st.integers(0, 2**63 - 1)

frames = st.builds(
    Frame, offset=I64, ts=I64, packet=I64, ts_start=I64, fin=st.booleans(),
    rsv1=st.booleans(), rsv2=st.booleans(), rsv3=st.booleans(), opcode=st.integers(0, 15),
    masked=st.booleans(), mask_key=st.none() | st.integers(0, 2**32 - 1),
    length_encoding=st.sampled_from([7, 16, 64]), payload_len=U64,
    header_len=st.integers(2, 14), payload=st.binary(max_size=40), missing=U64)

messages = st.builds(
    Message, type=st.sampled_from(["text", "binary", "close", "ping", "unknown-0x3"]),
    opcode=st.integers(0, 15), frames=I64, length=I64, wire_length=I64,
    payload=st.binary(max_size=40), text=st.none() | st.text(max_size=10),
    compressed=st.booleans(), inflated=st.sampled_from([None, False, True]),
    ts_start=I64, ts_end=I64, packet_start=I64, packet_end=I64, first_frame=I64,
    last_frame=I64, close_code=st.none() | st.integers(0, 65535),
    close_reason=st.none() | st.text(max_size=10), complete=st.booleans())


def _expected(record: Any) -> Any:
    """The record as packing keeps it: data records lose payload and text."""
    if record.opcode >= 8:
        return record
    drop = {"payload": b""} | ({"text": None} if "text" in record._fields else {})
    return record._replace(**drop)


def _types(record: Any) -> list[type]:
    return [type(v) for v in record]


@pytest.mark.parametrize(("kind", "packing", "strategy"), [
    (Frame, FRAME_PACKING, frames), (Message, MESSAGE_PACKING, messages)])
@given(data=st.data())
def test_packed_records_come_back(kind: Any, packing: dict[str, str], strategy: Any,
                                  data: Any) -> None:
    batches = data.draw(st.lists(st.lists(strategy, max_size=6), max_size=4))
    packed = Packed(kind, packing)
    keys: list[int] = []
    for batch in batches:
        batch_keys = list(range(len(keys), len(keys) + len(batch)))
        packed.add(batch, batch_keys)
        keys += batch_keys
    everything = [r for batch in batches for r in batch]
    assert len(packed) == len(everything)
    assert packed.keys().tolist() == keys
    for i, record in enumerate(everything):
        back = packed.record(i)
        assert back == _expected(record)
        assert _types(back) == _types(_expected(record))
    for name in kind._fields:
        if packing[name] != OBJECT:  # (the others: in the records above)
            assert _listed(*packed.array(name)) == [getattr(_expected(r), name)
                                                   for r in everything]


@given(st.lists(frames, max_size=5), st.lists(frames, max_size=5))
def test_view_joins_packed_and_tail(first: list[Frame], then: list[Frame]) -> None:
    packed = Packed(Frame, FRAME_PACKING)
    packed.add(first, [0] * len(first))
    view = RecordView(packed, then)
    expected = [_expected(f) for f in first] + then
    assert len(view) == len(expected)
    assert list(view) == expected
    assert [view[i] for i in range(-len(expected), len(expected))] == expected * 2
    assert view[1:4] == expected[1:4]
    for name in ("mask_key", "payload_len", "ts", "opcode"):
        assert _listed(*array(view, name)) == [getattr(f, name) for f in expected]
        assert _listed(*array(expected, name)) == [getattr(f, name) for f in expected]
    with pytest.raises(IndexError):
        view[len(expected)]


def test_packing_must_match_the_fields() -> None:
    with pytest.raises(ValueError, match="Frame"):
        Packed(Frame, MESSAGE_PACKING)


def test_collector_pack_keeps_order_and_keys() -> None:
    col = Collector()
    ping = Frame(0, 5, 1, 5, True, False, False, False, 9, True, 7, 7, 3, 6, b"abc", 0)
    data = ping._replace(opcode=2, payload=b"x" * 1000, payload_len=1000)
    col.frames += [data, ping]
    col.frame_keys += [3, 4]
    col.pack()
    assert col.frames == [] and col.frame_keys == []
    col.frames.append(data)
    col.frame_keys.append(5)
    assert list(col.frame_view()) == [data._replace(payload=b""), ping, data]
    assert col.all_frame_keys().tolist() == [3, 4, 5]
    assert col.packed_frames.nbytes() < 200  # the 1000-byte payload is not held


@given(st.lists(st.lists(st.tuples(frames, st.integers(0, 11)), max_size=6), max_size=4),
       st.lists(st.sets(st.integers(0, 5), max_size=4), max_size=4),
       st.sampled_from([0, 1 << 23, 1 << 40]))
def test_split_gives_each_group_its_records(batches: list[list[tuple[Frame, int]]],
                                            groups: list[set[int]], first: int) -> None:
    """split() in one pass moves, into each group of connections, what taking
    that group's records in turn gives: the same records with their keys, in
    order; records of connections in no group are dropped. Connection ids
    from ``first`` on: small ones are looked up in a table, others searched."""
    packed = Packed(Frame, FRAME_PACKING)
    batches = [[(f, k + 2 * first) for f, k in batch] for batch in batches]
    for batch in batches:
        packed.add([f for f, _ in batch], [k for _, k in batch])
    groups = [{first + i for i in g - set().union(*groups[:n])}  # disjoint
              for n, g in enumerate(groups)]
    every = [(f, k) for batch in batches for f, k in batch]
    for group, part in zip(groups, packed.split(groups), strict=True):
        want = [(_expected(f), k) for f, k in every if k >> 1 in group]
        assert [(part.record(i), key) for i, key in enumerate(part.keys().tolist())] == want
    assert len(packed) == 0 and not packed.parts()


def test_split_moves_a_chunk_of_one_group_as_it_is() -> None:
    """A chunk whose records are all of one group is not copied; one of
    several groups is sorted by group, and each group gets a slice of it."""
    ping = Frame(0, 5, 1, 5, True, False, False, False, 9, True, 7, 7, 3, 6, b"abc", 0)
    packed = Packed(Frame, FRAME_PACKING)
    packed.add([ping._replace(ts=t) for t in range(4)], [2, 3, 2, 3])  # connection 1
    packed.add([ping._replace(ts=t) for t in range(4, 8)], [4, 0, 5, 1])  # 2, 0, 2, 0
    whole = packed.parts()[0][0]["ts"]
    (one, two), (other,) = [part.parts() for part in packed.split([{1, 0}, {2}])]
    assert np.shares_memory(one[0]["ts"], whole) and one[2].tolist() == [2, 3, 2, 3]
    assert two[0]["ts"].tolist() == [5, 7] and two[2].tolist() == [0, 1]
    assert other[0]["ts"].tolist() == [4, 6] and other[2].tolist() == [4, 5]


@given(st.lists(st.integers(0, 300), max_size=60) | st.lists(st.integers(0, 70_000), max_size=60)
       | st.lists(st.integers(0, 2**62), max_size=60))
def test_group_positions(keys: list[int]) -> None:
    """Each key's positions in order, whatever the keys span (8-bit, 16-bit
    or wider once the least is taken away), and a check cannot change them."""
    want: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        want.setdefault(key, []).append(i)
    got = group_positions(keys)
    assert {k: v.tolist() for k, v in got.items()} == want
    for positions in got.values():
        with pytest.raises(ValueError):
            positions[0] = 1
