"""The tables, built from the engine's records: Arrow tables and pandas DataFrames.

Design note
-----------
One path for every table. A builder (:func:`frame_part`,
:func:`message_part`, :func:`connection_part`, :func:`anomaly_part`) turns
records into a *part*: one Arrow array per column of the table's schema
(:mod:`wspcap.tables.schema`), made column-wise from the collector's NumPy
columns (never row by row), except binary columns (payloads), which stay a
NumPy array of the records' ``bytes`` objects. From a part:

- :func:`arrow_table` makes the Arrow table (record batches) that the
  writers write, a slice of the capture at a time (large payloads shared,
  small ones copied into Arrow buffers);
- :func:`data_frame` makes the DataFrame of :func:`wspcap.read`, each column
  converted to its declared dtype (payloads stay the same ``bytes``
  objects: copying them into Arrow and out again would cost ``read`` two
  copies of every payload, 0.3 s and 500 MB on the 257 MB bulk capture).

An empty capture gives empty tables with the same columns and types.
Timestamps are int64 nanoseconds in the records, :data:`TS_NULL` for a
packet whose time int64 cannot hold: null in Arrow, NaT in pandas.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from wspcap.app.fields import Coded
from wspcap.rules.registry import RULES
from wspcap.tables.arrays import (
    binary,
    codes_of,
    decoded,
    from_python,
    is_none,
    numeric,
    numpy_of,
    strings,
)
from wspcap.tables.schema import (
    ANOMALIES,
    CATALOG,
    CONNECTIONS,
    DIRECTIONS,
    FRAMES,
    MESSAGE_TYPES,
    MESSAGES,
    Categories,
    Column,
    TableSchema,
)
from wspcap.timestamps import TS_NULL
from wspcap.ws.frames import opcode_name

if TYPE_CHECKING:
    import pandas as pd

    from wspcap.engine import Collector
    from wspcap.rules.registry import Anomaly
    from wspcap.ws.records import Columns

__all__ = [
    "Part",
    "RunningIndex",
    "anomalies_table",
    "anomaly_part",
    "arrow_table",
    "catalog",
    "chunks_array",
    "connection_part",
    "data_frame",
    "empty_table",
    "frame_part",
    "frames_table",
    "message_part",
    "messages_table",
    "part_from_values",
]

#: A table's columns before they become an Arrow table or a DataFrame: column
#: name -> Arrow array, or NumPy object array of the records' ``bytes`` (a
#: binary column) or ``str`` (a :data:`DECODED` column).
Part = dict[str, Any]

_DIRECTIONS = strings(DIRECTIONS.names)
#: A message's ``type`` is its opcode's name: each opcode's index among the
#: categories, so that the column is made from the opcodes (no string per row).
_TYPES = strings(MESSAGE_TYPES.names)
_TYPE_OF_OPCODE = np.array([MESSAGE_TYPES.names.index(opcode_name(op))
                            for op in range(16)], np.int32)


# -- parts -> Arrow and pandas ---------------------------------------------------------------

def arrow_table(schema: TableSchema, part: Part) -> pa.Table:
    """The part as an Arrow table of ``schema``.

    Payloads of :data:`SHARED_MIN` bytes and more are not copied: each is a
    chunk of its own over the ``bytes`` object (as is the text decoded from
    it, see :data:`DECODED`); smaller ones are joined, a run at a time, into
    one buffer (:func:`~wspcap.tables.arrays.binary`). Parquet writes a
    chunked column as one.
    """
    made: dict[str, pa.Array | pa.ChunkedArray] = {}
    for c in schema.columns:
        values = part[c.name]
        if isinstance(values, pa.Array | pa.ChunkedArray):
            made[c.name] = values
        elif DECODED.get(c.name) in made:  # a text column over its payloads' buffers
            made[c.name] = decoded(made[DECODED[c.name]], is_none(values), c.type)
        else:
            made[c.name] = _shared(values, part[DECODED.get(c.name, c.name)], c.type,
                                   _bound(part))
    arrays = [made[c.name] for c in schema.columns]
    return pa.Table.from_arrays(arrays, schema=schema.arrow)


def _bound(part: Part) -> np.ndarray | None:
    """An upper bound of each row's payload length (see :data:`LENGTHS`), or None."""
    bound = next((part[name] for name in LENGTHS if name in part), None)
    return None if bound is None else numpy_of(bound) if isinstance(
        bound, pa.Array | pa.ChunkedArray) else np.asarray(bound)


#: Payloads of this size and more go into Arrow without a copy (a chunk of
#: their own over the bytes object); below it, copying a run of them into one
#: buffer costs less than a chunk each. Bulk ``analyze -o``: copying every
#: payload took 0.47 s of 1.5 s (257 MB, twice: frames and messages).
SHARED_MIN = 64 << 10
#: String columns that are a binary column decoded as UTF-8 (where not null):
#: their large values are that column's bytes, shared rather than encoded again.
DECODED = {"text": "payload"}
#: Columns that bound the payload's length from above (the frames' declared
#: length, the messages' length), where a table has one: only the rows they
#: say may be large are measured (measuring every payload of a chat part,
#: 250,000 of them, took 0.04 s).
LENGTHS = ("payload_len", "length")


def _shared(values: np.ndarray, data: np.ndarray, kind: pa.DataType,
            bound: np.ndarray | None = None) -> pa.Array | pa.ChunkedArray:
    """Python values (``bytes``, or ``str`` that are ``data``'s bytes decoded)
    as an Arrow array of ``kind``, sharing the large ones' bytes (see
    :data:`SHARED_MIN`); ``bound``: an upper bound of each row's length."""
    n = len(values)
    rows = np.arange(n) if bound is None else np.flatnonzero(bound >= SHARED_MIN)
    # Only immutable bytes are shared: the writer may read them on its thread.
    big = [i for i in rows.tolist() if values[i] is not None and isinstance(data[i], bytes)
           and len(data[i]) >= SHARED_MIN]
    # (a string's bytes: its binary column's, where it is not null)
    null = None if values is data else is_none(values)
    if not big:
        return binary(data, kind, null)
    width = 8 if kind == pa.large_string() else 4
    chunks = []
    start = 0
    for i in big:
        if i > start:
            chunks.append(binary(data[start:i], kind, None if null is None else null[start:i]))
        size = len(data[i])
        offsets = pa.py_buffer(bytes(width) + size.to_bytes(width, "little"))
        chunks.append(pa.Array.from_buffers(kind, 1, [None, offsets, pa.py_buffer(data[i])]))
        start = i + 1
    if start < n:
        chunks.append(binary(data[start:], kind, None if null is None else null[start:]))
    return pa.chunked_array(chunks, kind)


def empty_table(schema: TableSchema) -> pa.Table:
    """An Arrow table of ``schema`` with no rows (each column one empty
    chunk; ``Schema.empty_table`` would import pandas, see
    :mod:`wspcap.tables.arrays`)."""
    return pa.Table.from_arrays([pa.nulls(0, f.type) for f in schema.arrow],
                                schema=schema.arrow)


def data_frame(schema: TableSchema, part: Part | pa.Table, owned: bool = False) -> pd.DataFrame:
    """The part (or an Arrow table of ``schema``) as a DataFrame of the declared dtypes.

    ``owned``: the part's arrays are the caller's alone, made for this table
    (nobody else holds them, nobody writes them after): an integer or
    duration column becomes a column of its buffer as it is, where that
    buffer can be written and its nulls read as null there (see
    :func:`_owned_numbers`; no copy into pandas' blocks: 16 MB a read of
    chat-jsonrpc's ``app`` table), any other column that pandas could not
    write into is copied (:func:`_writable`). Otherwise every column is
    copied, as pandas makes a DataFrame of a dict.
    """
    import pandas as pd

    if isinstance(part, pa.Table):
        part = dict(zip(part.schema.names, part.columns, strict=True))
    for name, source in DECODED.items():  # a text column from its payloads' bytes
        if name in part and not isinstance(part[name], pa.Array | pa.ChunkedArray):
            part = {**part, name: _shared(part[name], part[source], schema[name].type,
                                          _bound(part))}
    columns = {c.name: _pandas(part[c.name], c, owned) for c in schema.columns}
    if not owned:
        return pd.DataFrame(columns)
    return pd.DataFrame({name: _writable(values) for name, values in columns.items()},
                        copy=False)


#: A text column in at most this many chunks is made a pandas column of them
#: as they are (no copy); in more, joined first (a column of many small
#: chunks, such as a capture's text over its payloads, is slow to work on).
KEPT_CHUNKS = 256


def _pandas(values: Any, column: Column, owned: bool = False) -> Any:
    """One column of a part in its pandas dtype (``owned``: see :func:`data_frame`)."""
    import pandas as pd

    if isinstance(values, pa.ChunkedArray):
        if values.num_chunks == 1:
            values = values.chunk(0)  # (combine_chunks would copy it)
        elif not (column.categories is None and values.num_chunks <= KEPT_CHUNKS and (
                pa.types.is_large_string(values.type) or pa.types.is_string(values.type))):
            values = values.combine_chunks()
        # (text in a few chunks: pandas' Arrow strings are made of them as they are)
    elif not isinstance(values, pa.Array):
        if pa.types.is_binary(column.type):
            return values  # bytes objects, kept as they are
        values = pa.array(values, column.type)
    if column.categories is not None:
        codes = numpy_of(values.indices, -1)
        if column.open:  # the array's own dictionary, then every declared category
            names = values.dictionary.to_pylist()
            held = pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(names))
            return held.set_categories(column.dtype_for(names).categories)
        return pd.Categorical.from_codes(codes, dtype=column.dtype)
    dtype = column.dtype
    if owned and isinstance(values, pa.Array) and (pa.types.is_integer(values.type)
                                                   or pa.types.is_duration(values.type)):
        taken = _owned_numbers(values, dtype)
        if taken is not None:
            return taken
    if isinstance(dtype, pd.api.extensions.ExtensionDtype):
        # nullable ints and booleans, strings, UTC timestamps
        return dtype.__from_arrow__(values)
    return values.to_numpy(zero_copy_only=False)


def _owned_numbers(values: pa.Array, dtype: Any) -> Any:
    """An owned integer or duration array (see :func:`data_frame`) as the
    pandas column of ``dtype`` made of its buffer as it is, where it can be
    written and where its nulls are what pandas reads as null there (a
    nullable integer column: any value, with a mask; a duration: NaT, the
    int64 minimum); else None."""
    import pandas as pd

    data = values.buffers()[1]
    if data is None or not data.is_mutable:
        return None
    nullable = isinstance(dtype, pd.Int64Dtype)
    kind = np.dtype(np.int64) if nullable else np.dtype(dtype)
    if kind.kind not in "im" or kind.itemsize * 8 != values.type.bit_width:
        return None
    numbers = np.frombuffer(data, kind, len(values), values.offset * kind.itemsize)
    null = values.is_null().to_numpy(zero_copy_only=False) if values.null_count else None
    if nullable:
        return pd.arrays.IntegerArray(
            numbers, np.zeros(len(values), bool) if null is None else null, copy=False)
    if null is not None and not (numbers.view(np.int64)[null] == np.iinfo(np.int64).min).all():
        return None
    return numbers


def _writable(values: Any) -> Any:
    """A pandas column whose NumPy memory can be written: ``values`` as it is,
    or a copy of it where its memory is read-only (a view of an Arrow buffer:
    pandas would refuse to set a value in it). Arrow-backed columns (text)
    are as they are: pandas never writes into them."""
    arrays = [values] if isinstance(values, np.ndarray) else [
        getattr(values, name) for name in ("_ndarray", "_codes", "_data", "_mask")
        if isinstance(getattr(values, name, None), np.ndarray)]
    return values.copy() if any(not a.flags.writeable for a in arrays) else values


# -- Arrow arrays from record values ---------------------------------------------------------

def _arrow_ts(values: Any) -> pa.Array:
    """Timestamps (ns) as Arrow's, :data:`~wspcap.timestamps.TS_NULL` as null
    (pandas reads that int64 as NaT; Arrow would read it as a time)."""
    arr = np.asarray(values, np.int64)
    null = arr == TS_NULL
    return numeric(arr, pa.timestamp("ns", "UTC"), null)


def _dictionary(names: Sequence[str | None], column: Column,
                repeats: np.ndarray | None = None) -> pa.Array:
    """Strings (``None`` for null) as the dictionary column of ``column``'s
    categories (null for None, or for a name not among fixed ones, as pandas
    would; an open column's categories gain the names not declared).
    ``repeats``: how many rows each name stands for (one each if None)."""
    return _dictionary_of([names], column, repeats)


def _dictionary_of(chunks: Sequence[Sequence[str | None]], column: Column,
                   repeats: np.ndarray | None = None) -> pa.Array:
    """:func:`_dictionary` of the names given in chunks, one after the other
    (no list of all of them made)."""
    codes, categories = _codes(chunks, column)
    if repeats is not None:
        codes = np.repeat(codes, repeats)
    return pa.DictionaryArray.from_arrays(numeric(codes, pa.int32(), codes < 0),
                                          strings(categories.names), ordered=categories.ordered)


def _codes(chunks: Sequence[Sequence[str | None]], column: Column
           ) -> tuple[np.ndarray, Categories]:
    """The codes of the names given in chunks, and the categories they
    index: a fixed column's declared ones; an open column's gain the names
    not declared, looked for among the names the declared ones do not code
    (not in a set of every name: 3 ms a column of 250,000). Each name is
    looked up in a dict (:func:`~wspcap.tables.arrays.codes_of`): 250,000
    names take 1-2 ms compiled, 10 ms through ``map()``, less than making
    them an Arrow array for ``pyarrow.compute.index_in`` does."""
    assert column.categories is not None
    categories = column.categories_for(())
    codes, parts = _coded(chunks, categories)
    if column.open and bool((codes < 0).any()):
        unknown = {chunk[i] for chunk, part in zip(chunks, parts, strict=True)
                   for i in np.flatnonzero(part < 0).tolist()}
        wider = column.categories_for(unknown)
        if wider.names != categories.names:  # (every name among them: coded again)
            categories = wider
            codes, _ = _coded(chunks, categories)
    return codes, categories


def _coded(chunks: Sequence[Sequence[str | None]], categories: Categories
           ) -> tuple[np.ndarray, list[np.ndarray]]:
    """The chunks' codes in ``categories`` (-1: not among them), written
    into one array, and each chunk's (views of it)."""
    index: dict[str | None, int] = {name: i for i, name in enumerate(categories.names)}
    codes = np.empty(sum(map(len, chunks)), np.int32)
    parts = []
    # (names given by their index in a few, a compiled loop's: those few
    # looked up once for every chunk of the same few)
    lookups: dict[tuple[str, ...], np.ndarray] = {}
    at = 0
    for chunk in chunks:
        part = codes[at:at + len(chunk)]
        at += len(chunk)
        if type(chunk) is Coded:
            lookup = lookups.get(chunk.names)
            if lookup is None:
                lookup = lookups[chunk.names] = np.frombuffer(
                    codes_of(list(chunk.names), index), np.int32)
            np.take(lookup, chunk.codes, out=part)
        else:
            part[:] = np.frombuffer(codes_of(chunk, index), np.int32)
        parts.append(part)
    return codes, parts


def _array(values: Any, column: Column) -> pa.Array:
    """Python values (a sequence or an object array) as ``column``'s Arrow array."""
    if column.categories is not None:
        return _dictionary(values, column)
    if pa.types.is_timestamp(column.type):
        return _arrow_ts(values)
    return _one(from_python(values, column.type))


def _one(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """An array in one chunk."""
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def chunks_array(chunks: Sequence[Sequence[Any]], column: Column, chunked: bool = False
                 ) -> pa.Array | pa.ChunkedArray:
    """Python values given in chunks (as :func:`_array` takes them; not
    timestamps) as ``column``'s Arrow array: each chunk an Arrow array,
    joined in Arrow (no list of all the values made), or kept in its chunks
    (``chunked``: not for a dictionary column); a dictionary column's
    names, in one list."""
    if column.categories is not None:
        chunks = [chunk for chunk in chunks if len(chunk)]
        if all(type(chunk) is list and chunk.count(chunk[0]) == len(chunk) for chunk in chunks):
            # (a chunk of one name, as a run's protocol: looked up once)
            return _dictionary([chunk[0] for chunk in chunks], column,
                               np.array([len(chunk) for chunk in chunks], np.intp))
        return _dictionary_of(chunks, column)
    kind = column.type
    if chunked:
        return pa.chunked_array([_one(from_python(chunk, kind)) for chunk in chunks if len(chunk)],
                                kind)
    return pa.concat_arrays([_one(from_python(chunk, kind)) for chunk in chunks]) if chunks \
        else _one(from_python([], kind))


def part_from_values(schema: TableSchema, columns: dict[str, Any]) -> Part:
    """A part from Python values (sequences, or NumPy arrays), column by
    column: timestamps as int64 ns, categories as their names, nulls as
    None (binary columns kept as objects); or from Arrow arrays of the
    column's type, kept as they are."""
    part: Part = {}
    for c in schema.columns:
        values = columns[c.name]
        if isinstance(values, pa.Array | pa.ChunkedArray):
            part[c.name] = values
        elif pa.types.is_binary(c.type):
            arr = np.empty(len(values), dtype=object)
            arr[:] = values
            part[c.name] = arr
        else:
            part[c.name] = _array(values, c)
    return part


# -- frames and messages ---------------------------------------------------------------------

class RunningIndex:
    """Rows seen so far per conn_id, for a table made in parts."""

    def __init__(self) -> None:
        self.counts = np.zeros(0, dtype=np.int64)

    def advance(self, conn: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Shift a part's ``index`` by the rows of earlier parts; count this part's."""
        size = int(conn.max()) + 1
        if size > len(self.counts):
            self.counts = np.concatenate([self.counts,
                                          np.zeros(size - len(self.counts), dtype=np.int64)])
        index = index + self.counts[conn]
        self.counts += np.bincount(conn, minlength=len(self.counts))
        return index


def _index_within(conn: np.ndarray, running: RunningIndex | None = None) -> np.ndarray:
    """0, 1, 2, ... within each conn_id, in record order."""
    n = len(conn)
    if not n:
        return conn
    order = np.argsort(conn, kind="stable")
    grouped = conn[order]
    starts = np.flatnonzero(np.diff(grouped, prepend=grouped[0] - 1))
    index = np.empty(n, np.int64)
    index[order] = np.arange(n) - np.repeat(starts, np.diff(starts, append=n))
    return index if running is None else running.advance(conn, index)


def _keys(keys: np.ndarray, running: RunningIndex | None) -> tuple[pa.Array, pa.Array,
                                                                   pa.Array]:
    """conn_id, the index within the connection and direction, from the records' keys."""
    keys = np.asarray(keys, np.int64)
    conn = keys >> 1
    direction = pa.DictionaryArray.from_arrays(numeric(keys & 1, pa.int32()), _DIRECTIONS)
    return (numeric(conn, pa.int64()), numeric(_index_within(conn, running), pa.int64()),
            direction)


def _numeric(schema: TableSchema, c: dict[str, np.ndarray], made: Part) -> Part:
    """``made``, then every other column: the record field of its name, in
    the column's Arrow type (binary columns kept as objects)."""
    part: Part = {}
    for col in schema.columns:
        if col.name in made:
            part[col.name] = made[col.name]
        elif pa.types.is_binary(col.type):
            part[col.name] = c[col.name]
        else:
            part[col.name] = numeric(c[col.name], col.type)
    return part


def frame_part(columns: tuple[Columns, np.ndarray],
               running: RunningIndex | None = None) -> Part:
    """The frames table's columns from ``Collector.frame_columns()``.

    Args:
        columns: the records as columns, and their keys.
        running: for tables made in parts (see
            :meth:`~wspcap.engine.Collector.pack`): counts the frames of the
            parts before, so that ``frame_index`` goes on where they ended.
    """
    (c, nulls), keys = columns
    conn, index, direction = _keys(keys, running)
    return _numeric(FRAMES, c, {
        "conn_id": conn, "frame_index": index, "direction": direction,
        "ts": _arrow_ts(c["ts"]), "ts_start": _arrow_ts(c["ts_start"]),
        "mask_key": numeric(c["mask_key"], pa.uint32(), nulls["mask_key"]),
        "stream_offset": numeric(c["offset"], pa.uint64()),
    })


def message_part(columns: tuple[Columns, np.ndarray],
                 running: RunningIndex | None = None) -> Part:
    """The messages table's columns from ``Collector.message_columns()``
    (control frames included, in completion order); ``running`` as for
    :func:`frame_part`."""
    (c, _nulls), keys = columns
    conn, index, direction = _keys(keys, running)
    m = MESSAGES
    return _numeric(m, c, {
        "conn_id": conn, "msg_index": index, "direction": direction,
        "type": pa.DictionaryArray.from_arrays(numeric(_TYPE_OF_OPCODE[c["opcode"]], pa.int32()),
                                               _TYPES),
        "text": c["text"],
        "inflated": _array(c["inflated"], m["inflated"]),
        "ts_start": _arrow_ts(c["ts_start"]), "ts_end": _arrow_ts(c["ts_end"]),
        "close_code": _array(c["close_code"], m["close_code"]),
        "close_reason": _array(c["close_reason"], m["close_reason"]),
    })


# -- connections and anomalies ---------------------------------------------------------------

def connection_part(col: Collector) -> Part:
    """One row per WebSocket connection (or upgrade attempt), by conn_id."""
    rows = [s.record() for s in col.sessions]
    # (app_protocol and app_confidence are the application decoding's to fill:
    # wspcap.tables.app)
    return part_from_values(CONNECTIONS, {name: [r.get(name) for r in rows]
                                    for name in CONNECTIONS.names})


def anomaly_part(col: Collector, more: Sequence[Anomaly] = ()) -> Part:
    """One row per anomaly of ``col``, then of ``more`` (the application
    decoders'), sorted by time (stable: report order within a time, the
    engine's rows first; null times last)."""
    fields = ("conn_id", "ts", "direction", "frame_index", "code", "severity", "detail",
              "packet", "stream_offset")
    found = [*col.anomalies, *more]
    ts = np.fromiter((a.ts for a in found), np.int64, len(found))
    order = np.lexsort((ts, ts == TS_NULL))  # (lexsort is stable)
    rows = [found[i] for i in order.tolist()]
    return part_from_values(ANOMALIES, dict(zip(fields, zip(*rows), strict=True)) if rows
                            else {name: () for name in fields})


# -- the DataFrames of a Capture -------------------------------------------------------------

def frames_table(col: Collector) -> pd.DataFrame:
    """The frames not packed yet in ``col``, in the order they were completed."""
    return data_frame(FRAMES, frame_part(col.frame_columns()))


def messages_table(col: Collector) -> pd.DataFrame:
    """The messages not packed yet in ``col``, in the order they were completed."""
    return data_frame(MESSAGES, message_part(col.message_columns()))


def anomalies_table(col: Collector) -> pd.DataFrame:
    """The anomalies table (see :func:`anomaly_part`)."""
    return data_frame(ANOMALIES, anomaly_part(col))


def catalog() -> pd.DataFrame:
    """The anomaly catalog: one row per code wspcap can report.

    Columns (:data:`~wspcap.tables.schema.CATALOG`): ``code`` and
    ``severity`` (the dtypes of the anomalies table's columns, so the two
    tables join on ``code``), ``reference`` (RFC section), ``summary`` (what
    was seen), ``meaning`` (what to make of it), ``peers`` (the equivalent
    in Zeek, Wireshark or Suricata), ``detail`` (an example of the
    anomaly's detail text) and ``close_code`` (what a conforming endpoint
    would send, or missing). Rows come in catalog order, by layer, as
    ``wspcap rules`` lists them.

    >>> import wspcap
    >>> rules = wspcap.catalog()
    >>> rules.set_index("code").loc["tcp_gap", "severity"]
    'warning'
    """
    rules = list(RULES.values())
    return data_frame(CATALOG, part_from_values(CATALOG, {
        name: [getattr(rule, name) for rule in rules] for name in CATALOG.names}))
