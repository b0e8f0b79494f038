"""Arrow arrays made from their buffers: NumPy values, and Python values.

pyarrow's converter (``pa.array``) asks its pandas shim whether the values
it is given are pandas objects, and that shim imports pandas the first time
it is asked, whatever the values are: 0.25-0.3 s of a process's start on
this project's machine, as much as the rest of ``wspcap analyze -o`` spends
before its first packet. Writing the tables needs no pandas otherwise, so the
arrays it writes are made here, over buffers, with ``pa.Array.from_buffers``
(pyarrow's own constructor, which checks the buffers' sizes and copies
nothing):

- :func:`numeric`: a NumPy array (integers, floats, booleans, timestamps),
  with an optional null mask;
- :func:`binary`: ``bytes`` values (or strings that are those bytes decoded,
  see :func:`binary`'s ``null``) joined into one data buffer, by the
  compiled ``join_bytes`` where it is built (:func:`py_join_bytes`);
- :func:`strings`: ``str`` values encoded and joined, by the compiled
  ``join_strs`` where it is built (:func:`py_join_strs`);
- :func:`decoded`: a string column over a binary column's buffers;
- :func:`codes_of`: a dictionary column's codes, by the compiled
  ``codes_of`` where it is built (:func:`py_codes_of`);
- :func:`from_python`: a sequence of Python values (``None`` for null) by
  the column's Arrow type;
- :func:`numpy_of`, :func:`null_mask`: a numeric array's values as NumPy,
  without a copy where it has no nulls, and its nulls.

``tests/unit/test_arrays.py`` compares every function with ``pa.array`` on
the same values; ``tests/test_no_pandas.py`` checks that ``analyze -o``
does not import pandas.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from typing import Any

import numpy as np
import pyarrow as pa

from wspcap.constants import SPEEDUPS

__all__ = ["binary", "codes_of", "decoded", "from_python", "is_none", "null_mask", "numeric",
           "numpy_of", "py_codes_of", "py_join_bytes", "py_join_strs", "strings"]

#: The NumPy type of each Arrow type :func:`numeric` takes (timestamps and
#: durations are their int64 counts).
_NUMPY = {pa.int8(): np.int8, pa.int16(): np.int16, pa.int32(): np.int32,
          pa.int64(): np.int64, pa.uint8(): np.uint8, pa.uint16(): np.uint16,
          pa.uint32(): np.uint32, pa.uint64(): np.uint64, pa.float32(): np.float32,
          pa.float64(): np.float64}
#: The most bytes a binary or string array (32-bit offsets) holds; more go
#: into further chunks, as ``pa.array`` does.
MAX_BINARY = (1 << 31) - 1
STRING = pa.large_string()


def _numpy_type(kind: pa.DataType) -> Any:
    if pa.types.is_timestamp(kind) or pa.types.is_duration(kind):
        return np.int64
    return _NUMPY[kind]


def _validity(null: np.ndarray | None) -> tuple[pa.Buffer | None, int]:
    """Arrow's validity bitmap of a null mask, and the null count (no bitmap
    when nothing is null)."""
    if null is None:
        return None, 0
    count = int(np.count_nonzero(null))
    if not count:
        return None, 0
    return pa.py_buffer(np.packbits(~np.asarray(null, bool), bitorder="little")), count


def numeric(values: Any, kind: pa.DataType, null: np.ndarray | None = None) -> pa.Array:
    """NumPy values (or a sequence of numbers) as an Arrow array of ``kind``:
    an integer, floating point, boolean, timestamp or duration type
    (timestamps and durations given as int64 counts of their unit).
    ``null``: a boolean mask of the rows that are null (their values are
    ignored). Values are converted to the type as NumPy casts them: the
    caller gives values that fit."""
    validity, nulls = _validity(null)
    if pa.types.is_boolean(kind):
        flags = np.asarray(values, bool)
        data = pa.py_buffer(np.packbits(flags, bitorder="little"))
        return pa.Array.from_buffers(kind, len(flags), [validity, data], null_count=nulls)
    arr = np.ascontiguousarray(values, _numpy_type(kind))
    return pa.Array.from_buffers(kind, len(arr), [validity, pa.py_buffer(arr)],
                                 null_count=nulls)


def numpy_of(array: pa.Array | pa.ChunkedArray, null_as: Any = None) -> np.ndarray:
    """A numeric array's values (integers, floats, or timestamps and
    durations as int64) as a NumPy array, over Arrow's buffer where the
    array is one chunk without nulls; null rows take ``null_as`` (an array
    with nulls and no ``null_as`` raises ``ValueError``)."""
    if isinstance(array, pa.ChunkedArray):
        if array.num_chunks == 1:
            return numpy_of(array.chunk(0), null_as)
        parts = [numpy_of(chunk, null_as) for chunk in array.chunks]
        return np.concatenate(parts) if parts else np.zeros(0, _numpy_type(array.type))
    dtype = np.dtype(_numpy_type(array.type))
    values = np.frombuffer(array.buffers()[1], dtype, len(array), array.offset * dtype.itemsize)
    if not array.null_count:
        return values
    if null_as is None:
        raise ValueError("numpy_of: the array has nulls")
    return np.where(null_mask(array), null_as, values).astype(dtype)


def null_mask(array: pa.Array) -> np.ndarray:
    """Which rows of an array are null, as a NumPy boolean array."""
    n = len(array)
    validity = array.buffers()[0]
    if not array.null_count or validity is None:
        return np.zeros(n, bool)
    bits = np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")
    null: np.ndarray = bits[array.offset:array.offset + n] == 0
    return null


def _offsets(lengths: np.ndarray, width: int) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets if width == 8 else offsets.astype(np.int32)


def is_none(items: np.ndarray) -> np.ndarray:
    """Which of an object array's items are None (a boolean array)."""
    found: np.ndarray = items == None  # (element by element)
    return found


def _objects(values: Sequence[Any]) -> np.ndarray:
    items = np.empty(len(values), object)
    items[:] = values
    return items


def py_join_bytes(items: Sequence[Any] | np.ndarray, wide: bool) -> tuple[bytes, bytes]:
    """The ``bytes`` objects of ``items`` joined, and the offsets of an Arrow
    binary array over them (``len(items) + 1`` native integers: int64 when
    ``wide``, else int32), as bytes.

    Raises:
        TypeError: an item is not ``bytes`` (None, a bytearray, a str: the
            caller's general path takes those).
        OverflowError: more bytes than int32 offsets hold (not ``wide``).

    The loop of :func:`binary` for every table part; ``wspcap/tables/_speedups.c``
    is its compiled mirror, used where it is built.
    """
    for i, item in enumerate(items):
        if not isinstance(item, bytes):
            raise TypeError(f"join_bytes: item {i} is not bytes")
    lengths = np.fromiter(map(len, items), np.int64, len(items))
    if not wide and lengths.sum() > MAX_BINARY:
        raise OverflowError("join_bytes: more bytes than 32-bit offsets hold")
    return b"".join(items), _offsets(lengths, 8 if wide else 4).tobytes()


_join_bytes = py_join_bytes
if SPEEDUPS:
    try:
        from wspcap.tables._speedups import join_bytes as _join_bytes
    except ImportError:  # not built: the reference above
        pass


def binary(values: Sequence[Any] | np.ndarray, kind: pa.DataType,
           null: np.ndarray | None = None) -> pa.Array | pa.ChunkedArray:
    """``bytes`` values as an array of ``kind`` (binary, large binary, string
    or large string), their bytes joined into one buffer. ``None`` values
    are null; so are the rows of ``null``, where given.

    A string column whose values are a binary column's bytes decoded as
    UTF-8 (a text message's text, its payload) is made from those bytes and
    the string column's nulls: the decoding was the check that they are
    UTF-8. Past :data:`MAX_BINARY` bytes, a 32-bit offset array is split
    into chunks."""
    items = values if isinstance(values, np.ndarray) else _objects(values)
    if null is not None and null.any():  # a null row holds no bytes (a binary
        items = np.where(null, b"", items)  # message's payload under a null text)
    large = kind in (pa.large_binary(), pa.large_string())
    try:
        data, offsets = _join_bytes(items, large)
    except TypeError:  # (None among them, or bytes-like objects that are not bytes)
        missing = is_none(items)
        if missing.any():
            null = missing if null is None else (missing | null)
        return binary(_objects([b"" if v is None else bytes(memoryview(v)) for v in items]),
                      kind, null)
    except OverflowError:  # more than 32-bit offsets hold: two arrays, or more
        ends = np.cumsum(np.fromiter(map(len, items), np.int64, len(items)))
        cut = int(np.searchsorted(ends, MAX_BINARY, side="right"))
        if not cut:
            raise ValueError(f"a value of {ends[0]} bytes does not fit a {kind} array") from None
        head = binary(items[:cut], kind, None if null is None else null[:cut])
        tail = binary(items[cut:], kind, None if null is None else null[cut:])
        return pa.chunked_array([head, *(tail.chunks if isinstance(tail, pa.ChunkedArray)
                                         else [tail])], kind)
    validity, nulls = _validity(null)
    return pa.Array.from_buffers(kind, len(items), [validity, pa.py_buffer(offsets),
                                                    pa.py_buffer(data)], null_count=nulls)


def decoded(data: pa.Array | pa.ChunkedArray, null: np.ndarray, kind: pa.DataType = STRING
            ) -> pa.Array | pa.ChunkedArray:
    """A string column over a binary column's buffers (no byte copied): the
    rows of ``data`` that are not ``null``, as strings of ``kind``. For a
    column that is the other decoded as UTF-8 where not null (a text
    message's text, its payload): the decoding was the check. A null row
    keeps its bytes in the buffer, which Arrow allows; no reader sees them.
    """
    if isinstance(data, pa.ChunkedArray):
        chunks, start = [], 0
        for chunk in data.chunks:
            chunks.append(decoded(chunk, null[start:start + len(chunk)], kind))
            start += len(chunk)
        return pa.chunked_array(chunks, kind)
    n = len(data)
    validity, nulls = _validity(null)
    _, offsets, values = data.buffers()
    width = 8 if data.type in (pa.large_binary(), pa.large_string()) else 4
    if (8 if kind == pa.large_string() else 4) != width:
        ends = np.frombuffer(offsets, np.int32 if width == 4 else np.int64, n + 1,
                             data.offset * width)
        offsets = pa.py_buffer(ends.astype(np.int64 if width == 4 else np.int32))
    elif data.offset:
        raise ValueError("decoded: a sliced array of the same offset width")
    return pa.Array.from_buffers(kind, n, [validity, offsets, values], null_count=nulls)


def py_join_strs(items: Sequence[Any] | np.ndarray, wide: bool
                 ) -> tuple[bytes, bytes, bytes | None]:
    """The ``str`` items (``None`` for null) encoded as UTF-8 and joined, the
    offsets of an Arrow string array over them (as :func:`py_join_bytes`
    gives them), and their nulls: ``None`` when no item is ``None``, else one
    byte per item, 1 where it is ``None``.

    Raises:
        TypeError: an item is neither ``str`` nor ``None`` (the caller's
            general path takes those).
        UnicodeEncodeError: a lone surrogate (as ``pa.array`` raises).
        OverflowError: more bytes than int32 offsets hold (not ``wide``).

    The loop of :func:`strings`; ``wspcap/tables/_speedups.c`` is its
    compiled mirror, used where it is built.
    """
    encoded: list[bytes] = []
    null = np.zeros(len(items), np.uint8)
    total = 0
    for i, item in enumerate(items):
        if item is None:
            null[i] = 1
            encoded.append(b"")
            continue
        if not isinstance(item, str):
            raise TypeError(f"join_strs: item {i} is neither str nor None")
        encoded.append(item.encode())
        total += len(encoded[-1])
        if not wide and total > MAX_BINARY:
            raise OverflowError("join_strs: more bytes than 32-bit offsets hold")
    data, offsets = py_join_bytes(encoded, wide)
    return data, offsets, null.tobytes() if null.any() else None


_join_strs = py_join_strs
if SPEEDUPS:
    try:
        from wspcap.tables._speedups import join_strs as _join_strs
    except ImportError:  # not built: the reference above
        pass


def py_codes_of(names: Sequence[Any], index: dict[Any, int]) -> bytes:
    """The code ``index`` gives each of ``names``, -1 for a name it lacks,
    as native int32 (a dictionary column's codes). Its compiled mirror,
    ``codes_of`` in ``wspcap/tables/_speedups.c``, is used where it is
    built: it looks a name up only where it is not the one before it."""
    return np.fromiter(map(index.get, names, repeat(-1)), np.int32, len(names)).tobytes()


codes_of = py_codes_of
if SPEEDUPS:
    try:
        from wspcap.tables._speedups import codes_of
    except ImportError:  # not built: the reference above
        pass


def strings(values: Sequence[str | None], kind: pa.DataType = STRING, only: bool = False
            ) -> pa.Array | pa.ChunkedArray:
    """``str`` values (``None`` for null) as a string array of ``kind``,
    encoded as UTF-8. A lone surrogate, which UTF-8 cannot spell (and
    ``pa.array`` refuses), is written as its escape, ``\\ud800``
    (``backslashreplace``): a JSON decoder's text of a ``"\\ud800"`` escape,
    which the ``fields`` JSON text then spells as the message did. With
    ``only``, a value that is neither raises ``TypeError`` (for a caller that
    writes such values otherwise)."""
    try:
        data, offsets, null = _join_strs(values, kind == pa.large_string())
    except TypeError:  # (other values)
        if only:
            raise
        return _strings(values, kind)
    except OverflowError:  # (past 32-bit offsets)
        return _strings(values, kind)
    except UnicodeEncodeError:  # (a lone surrogate: see above)
        if only and not all(v is None or isinstance(v, str) for v in values):
            raise TypeError("strings: a value is neither str nor None") from None
        return _strings(values, kind)
    n = len(values)
    if null is None:
        validity, nulls = None, 0
    else:
        mask = np.frombuffer(null, np.bool_)
        if mask.all():
            return pa.nulls(n, kind)
        validity, nulls = _validity(mask)
    return pa.Array.from_buffers(kind, n, [validity, pa.py_buffer(offsets), pa.py_buffer(data)],
                                 null_count=nulls)


def _strings(values: Sequence[str | None], kind: pa.DataType) -> pa.Array | pa.ChunkedArray:
    """:func:`strings` of values the joined way refuses: those past 32-bit
    offsets (chunks, see :func:`binary`), values that are not strings, or
    lone surrogates (written as their escapes)."""
    items = values if isinstance(values, np.ndarray) else _objects(values)
    null = is_none(items)
    if not null.any():
        return binary([v.encode("utf-8", "backslashreplace") for v in items.tolist()], kind)
    if null.all():
        return pa.nulls(len(items), kind)
    # Only the rows with a value are encoded (a column of close reasons is
    # null but for a few rows).
    encoded = np.full(len(items), b"", object)
    encoded[~null] = [v.encode("utf-8", "backslashreplace") for v in items[~null].tolist()]
    return binary(encoded, kind, null)


def from_python(values: Sequence[Any], kind: pa.DataType) -> pa.Array | pa.ChunkedArray:
    """Python values of a column (``None`` for null) as an array of ``kind``:
    strings, bytes, integers, floats, booleans, or timestamps and durations
    as int64 counts of their unit; or an Arrow array of ``kind`` already,
    as it is."""
    if isinstance(values, pa.Array) and values.type == kind:
        return values
    if kind in (pa.string(), pa.large_string()):
        return strings(values, kind)
    if kind in (pa.binary(), pa.large_binary()):
        return binary(values, kind)
    if isinstance(values, np.ndarray) and values.dtype != object:
        return numeric(values, kind)
    dtype = bool if pa.types.is_boolean(kind) else _numpy_type(kind)
    items = values if isinstance(values, np.ndarray) else _objects(values)
    null = is_none(items)
    if not null.any():
        return numeric(np.array(items.tolist(), dtype), kind)
    if null.all():
        return pa.nulls(len(items), kind)
    filled = np.zeros(len(items), dtype)  # (only the rows with a value go through Python)
    filled[~null] = np.array(items[~null].tolist(), dtype)
    return numeric(filled, kind, null)
