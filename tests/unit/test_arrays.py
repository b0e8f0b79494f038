"""wspcap.tables.arrays: Arrow arrays made from their buffers, against
``pa.array`` on the same values (pyarrow's own converter, which the module
stands in for so that writing the tables does not import pandas)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wspcap.tables import arrays
from wspcap.tables.arrays import (
    binary,
    decoded,
    from_python,
    is_none,
    null_mask,
    numeric,
    numpy_of,
    strings,
)
from wspcap.tables.schema import ANOMALIES, APP, CONNECTIONS, FRAMES, MESSAGES

INTS = {pa.int8(): 8, pa.int16(): 16, pa.int32(): 32, pa.int64(): 64}
UINTS = {pa.uint8(): 8, pa.uint16(): 16, pa.uint32(): 32, pa.uint64(): 64}


def same(ours: pa.Array | pa.ChunkedArray, theirs: pa.Array | pa.ChunkedArray) -> None:
    """Equal values, type and nulls; ours valid to the last byte."""
    for chunk in ours.chunks if isinstance(ours, pa.ChunkedArray) else [ours]:
        chunk.validate(full=True)
    if isinstance(ours, pa.ChunkedArray):
        ours = ours.combine_chunks()
    if isinstance(theirs, pa.ChunkedArray):
        theirs = theirs.combine_chunks()
    assert ours.type == theirs.type
    assert ours.null_count == theirs.null_count
    assert ours.equals(theirs), (ours, theirs)


@st.composite
def int_column(draw: Any) -> tuple[pa.DataType, list[int | None]]:
    kind, bits = draw(st.sampled_from([*INTS.items(), *UINTS.items()]))
    signed = kind in INTS
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    values = draw(st.lists(st.one_of(st.none(), st.integers(low, high)), max_size=40))
    return kind, values


@settings(deadline=None)
@given(int_column())
def test_integers_with_nulls_as_pa_array(column: tuple[pa.DataType, list[int | None]]) -> None:
    kind, values = column
    same(from_python(values, kind), pa.array(values, kind))
    present = [v for v in values if v is not None]
    same(numeric(np.array(present, arrays._NUMPY[kind]), kind), pa.array(present, kind))


@settings(deadline=None)
@given(st.lists(st.one_of(st.none(), st.booleans()), max_size=70))
def test_booleans_with_nulls_as_pa_array(values: list[bool | None]) -> None:
    same(from_python(values, pa.bool_()), pa.array(values, pa.bool_()))


@settings(deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=False)), max_size=30))
def test_floats_with_nulls_as_pa_array(values: list[float | None]) -> None:
    same(from_python(values, pa.float64()), pa.array(values, pa.float64()))


@settings(deadline=None)
@given(st.lists(st.integers(-(1 << 62), 1 << 62), max_size=30),
       st.lists(st.booleans(), max_size=30))
def test_timestamps_and_durations_from_int64(values: list[int], null: list[bool]) -> None:
    null = (null + [False] * len(values))[:len(values)]
    for kind in (pa.timestamp("ns", "UTC"), pa.duration("ns")):
        masked = [None if n else v for v, n in zip(values, null, strict=True)]
        same(numeric(np.array(values, np.int64), kind, np.array(null, bool)),
             pa.array(masked, pa.int64()).view(kind))


@settings(deadline=None)
@given(st.lists(st.one_of(st.none(), st.binary(max_size=20)), max_size=40))
def test_bytes_as_pa_array(values: list[bytes | None]) -> None:
    for kind in (pa.binary(), pa.large_binary()):
        same(binary(values, kind), pa.array(values, kind))
    items = np.empty(len(values), object)
    items[:] = values
    same(binary(items, pa.binary()), pa.array(values, pa.binary()))


@settings(deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=12)), max_size=40))
def test_strings_as_pa_array(values: list[str | None]) -> None:
    for kind in (pa.string(), pa.large_string()):
        same(strings(values, kind), pa.array(values, kind))
        same(from_python(values, kind), pa.array(values, kind))


@settings(deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=12)), max_size=40))
def test_text_made_from_the_payloads_bytes(texts: list[str | None]) -> None:
    # A text message's text is its payload decoded: the string column is the
    # payloads' bytes with the texts' nulls (a binary message's payload is
    # left out, whatever it holds).
    payloads = [b"\xff\xfe binary" if t is None else t.encode() for t in texts]
    items = np.empty(len(texts), object)
    items[:] = texts
    same(binary(payloads, pa.large_string(), is_none(items)), pa.array(texts, pa.large_string()))


@settings(deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=12)), max_size=40), st.integers(0, 40))
def test_text_over_the_payloads_buffers(texts: list[str | None], cut: int) -> None:
    # The text column shares the payload column's buffers: a binary
    # message's bytes (not UTF-8 here) stay under a null, as Arrow allows.
    payloads = [b"\xff\xfe binary" if t is None else t.encode() for t in texts]
    items = np.empty(len(texts), object)
    items[:] = texts
    whole = binary(payloads, pa.binary())
    text = decoded(whole, is_none(items))
    assert text.buffers()[2].address == whole.buffers()[2].address  # no copy
    same(text, pa.array(texts, pa.large_string()))
    cut = min(cut, len(payloads))
    chunked = pa.chunked_array([binary(payloads[:cut], pa.binary()),
                                binary(payloads[cut:], pa.binary())], pa.binary())
    same(decoded(chunked, is_none(items)), pa.array(texts, pa.large_string()))


@settings(deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=12)), max_size=40))
def test_strings_by_the_reference_as_pa_array(values: list[str | None]) -> None:
    # (the pure-Python loop that the compiled join_strs mirrors, where it is
    # not built)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(arrays, "_join_strs", arrays.py_join_strs)
        for kind in (pa.string(), pa.large_string()):
            same(strings(values, kind), pa.array(values, kind))


def test_a_lone_surrogate_is_written_as_its_escape(monkeypatch: pytest.MonkeyPatch) -> None:
    """UTF-8 cannot spell a lone surrogate (pa.array refuses it): it is
    written as its escape, with the compiled loop and without it; a JSON
    text so written reads back as the text it was made of."""
    for loop in (arrays._join_strs, arrays.py_join_strs):
        monkeypatch.setattr(arrays, "_join_strs", loop)
        for values in (["ok", "\udcff"], ["ok", None, "a\ud800b"]):
            got = strings(values)
            got.validate(full=True)
            assert got.to_pylist() == [None if v is None else
                                       v.encode("utf-8", "backslashreplace").decode()
                                       for v in values]
        text = json.dumps({"k": "\\\ud800"}, ensure_ascii=False)
        assert json.loads(strings([text]).to_pylist()[0]) == {"k": "\\\ud800"}
        with pytest.raises(TypeError):  # (only: a value neither str nor None)
            strings(["\ud800", {"k": 1}], only=True)


def test_over_max_binary_bytes_go_into_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # (2 GiB of values stand for 10 bytes here)
    monkeypatch.setattr(arrays, "MAX_BINARY", 10)
    monkeypatch.setattr(arrays, "_join_bytes", arrays.py_join_bytes)  # (the kernel's is 2 GiB)
    values = [b"abcd", None, b"efgh", b"ijklmnopq", b"", b"v", b"wxyz", b"0123456"]
    out = binary(values, pa.binary())
    assert isinstance(out, pa.ChunkedArray) and out.num_chunks == 4
    assert all(chunk.buffers()[2].size <= 10 for chunk in out.chunks)
    same(out, pa.array(values, pa.binary()))
    with pytest.raises(ValueError, match="does not fit"):
        binary([b"a", b"0123456789ab"], pa.binary())
    monkeypatch.setattr(arrays, "_join_strs", arrays.py_join_strs)
    texts = ["abcd", None, "efgh", "ijklmnopq", None, "v"]  # (strings with nulls: the same)
    out = strings(texts, pa.string())
    assert isinstance(out, pa.ChunkedArray) and out.num_chunks > 1
    same(out, pa.array(texts, pa.string()))
    large = binary(values, pa.large_binary())  # 64-bit offsets: one chunk
    assert isinstance(large, pa.Array)
    same(large, pa.array(values, pa.large_binary()))


@settings(deadline=None)
@given(int_column(), st.integers(0, 10), st.integers(0, 10))
def test_numpy_of_and_null_mask_of_slices(column: tuple[pa.DataType, list[int | None]],
                                          start: int, length: int) -> None:
    kind, values = column
    array = pa.array(values, kind).slice(start, length)
    expected_null = np.array([v is None for v in values[start:start + length]], bool)
    assert null_mask(array).tolist() == expected_null.tolist()
    filled = [0 if v is None else v for v in values[start:start + length]]
    assert numpy_of(array, 0).tolist() == filled
    if not expected_null.any():
        assert numpy_of(array).tolist() == filled
    else:
        with pytest.raises(ValueError, match="nulls"):
            numpy_of(array)


def test_numpy_of_chunks_and_no_copy() -> None:
    chunked = pa.chunked_array([pa.array([1, 2], pa.int64()), pa.array([3], pa.int64())])
    assert numpy_of(chunked).tolist() == [1, 2, 3]
    one = pa.array([5, 6, 7], pa.int64())
    view = numpy_of(one)
    assert view.ctypes.data == one.buffers()[1].address


@pytest.mark.parametrize("schema", [CONNECTIONS, ANOMALIES, APP, FRAMES, MESSAGES],
                         ids=lambda s: s.name)
def test_every_column_type_of_the_tables(schema: Any) -> None:
    # Each declared column's type, with a value and a null, made as pa.array makes it.
    samples = {pa.large_string(): "a\u00e9", pa.binary(): b"\x00\x01"}
    for c in schema.columns:
        if pa.types.is_dictionary(c.type):
            continue  # (made from strings: tables.build._dictionary)
        value = samples.get(c.type, 1 if not pa.types.is_boolean(c.type) else True)
        if pa.types.is_timestamp(c.type) or pa.types.is_duration(c.type):
            same(numeric(np.array([value, 0], np.int64), c.type, np.array([False, True])),
                 pa.array([value, None], pa.int64()).view(c.type))
            continue
        same(from_python([value, None], c.type), pa.array([value, None], c.type))


def test_empty() -> None:
    for kind in (pa.int64(), pa.bool_(), pa.large_string(), pa.binary()):
        same(from_python([], kind), pa.array([], kind))
    assert len(numeric(np.zeros(0, np.int64), pa.timestamp("ns", "UTC"))) == 0
