"""Records packed into NumPy columns, for memory that frame count barely grows.

Sans-I/O: performs no I/O.

Design note
-----------
The pipeline collects one small named tuple per frame and per message (see
:class:`wspcap.ws.Frame`, :class:`wspcap.ws.Message`). As Python objects they
cost about 1 KB per frame and message of a chat (the tuple, its int objects,
the payload's bytes and text). When the frames and messages have been written
out (``wspcap analyze -o``), only the cross-record rules still read them, and
those read no data payload. So :class:`Packed` keeps such records as NumPy
columns, a few dozen bytes per record, and hands back:

- one record at a time (:meth:`Packed.record`), rebuilt as the same named
  tuple with plain Python values, for the rules that look at single frames;
- a whole int field as one array (:meth:`Packed.array`, :func:`array`),
  the form the rules compare whole with NumPy.

Each kind of record declares how its fields pack (:data:`FRAME_PACKING`,
:data:`MESSAGE_PACKING`): a NumPy dtype, ``NULLABLE_U32`` for an int that may
be None, or ``OBJECT`` for what stays a Python object (strings, None/bool
flags). Data payloads are not packed: :meth:`Packed.add` keeps the payload
(and text) of control records only, whose payloads the rules compare.

:class:`RecordView` joins what was packed and the records collected since,
as one read-only sequence.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence
from operator import attrgetter
from typing import Any

import numpy as np

__all__ = [
    "FRAME_PACKING",
    "MESSAGE_PACKING",
    "NULLABLE_U32",
    "OBJECT",
    "Columns",
    "Packed",
    "RecordView",
    "array",
    "concat_columns",
    "group_positions",
    "take_columns",
    "to_columns",
]

#: Records as columns: field -> array, and field -> None mask for the
#: :data:`NULLABLE_U32` fields.
Columns = tuple[dict[str, np.ndarray], dict[str, np.ndarray]]

#: A field kept as Python objects (pointers to shared str/None/bool objects).
OBJECT = "O"
#: An ``int | None`` field of 32-bit values: a uint32 column and a None mask.
NULLABLE_U32 = "u4?"

#: How a :class:`~wspcap.ws.Frame`'s fields pack.
FRAME_PACKING: dict[str, str] = {
    "offset": "i8", "ts": "i8", "packet": "i8", "ts_start": "i8",
    "fin": "?", "rsv1": "?", "rsv2": "?", "rsv3": "?", "opcode": "u1", "masked": "?",
    "mask_key": NULLABLE_U32, "length_encoding": "u1", "payload_len": "u8",
    "header_len": "u1", "payload": OBJECT, "missing": "u8",
}
#: How a :class:`~wspcap.ws.Message`'s fields pack.
MESSAGE_PACKING: dict[str, str] = {
    "type": OBJECT, "opcode": "u1", "frames": "i8", "length": "i8", "wire_length": "i8",
    "payload": OBJECT, "text": OBJECT, "compressed": "?", "inflated": OBJECT,
    "ts_start": "i8", "ts_end": "i8", "packet_start": "i8", "packet_end": "i8",
    "first_frame": "i8", "last_frame": "i8", "close_code": OBJECT, "close_reason": OBJECT,
    "complete": "?",
}
#: Fields dropped from data records (opcode below 8) when they are packed.
DATA_FIELDS = {"payload": b"", "text": None}
_CONTROL = 8
#: Connection ids below this are looked up in a table (see :class:`_Lookup`).
_TABLE_IDS = 1 << 22


class _Chunk:
    """Records ``start`` .. ``start + size`` as columns."""

    __slots__ = ("columns", "keys", "nulls", "size", "start")

    def __init__(self, start: int, size: int, columns: dict[str, np.ndarray],
                 nulls: dict[str, np.ndarray], keys: np.ndarray) -> None:
        self.start = start
        self.size = size
        self.columns = columns
        self.nulls = nulls
        self.keys = keys


def to_columns(records: Sequence[Any], packing: dict[str, str]) -> Columns:
    """Named tuples as columns in the dtypes of ``packing`` (every field kept)."""
    n = len(records)
    values = zip(*records) if n else ([] for _ in packing)
    columns: dict[str, np.ndarray] = {}
    nulls: dict[str, np.ndarray] = {}
    for (name, dtype), col in zip(packing.items(), values, strict=True):
        if dtype == OBJECT:
            arr = np.empty(n, dtype=object)
            arr[:] = col
        elif dtype == NULLABLE_U32:
            nulls[name] = np.fromiter((v is None for v in col), dtype=bool, count=n)
            arr = np.fromiter((v or 0 for v in col), dtype=np.uint32, count=n)
        else:
            arr = np.fromiter(col, dtype=dtype, count=n)
        columns[name] = arr
    return columns, nulls


def group_positions(keys: Sequence[int] | np.ndarray) -> dict[int, np.ndarray]:
    """``{key: positions}``, each key's positions in order, as read-only views
    of one array.

    A stable NumPy sort by key (by radix, see :func:`_radix_sortable`), cut
    where the key changes: 2-4 ms for 250,000 keys of 80 interleaved
    connections, where appending each position to its key's list in a
    Python loop took 150 ms. The positions stay in NumPy: as lists they
    would cost a Python int each (8 ms for 250,000, and 36 bytes each).
    """
    arr = np.asarray(keys, dtype=np.int64)
    if not len(arr):
        return {}
    order = np.argsort(_radix_sortable(arr), kind="stable")
    order.flags.writeable = False
    ordered = arr[order]
    cuts = (np.flatnonzero(ordered[1:] != ordered[:-1]) + 1).tolist()
    bounds = [0, *cuts, len(arr)]
    starts, stops = bounds[:-1], bounds[1:]
    return {key: order[a:b] for key, a, b in zip(ordered[starts].tolist(), starts, stops,
                                                 strict=True)}


def _radix_sortable(values: np.ndarray) -> np.ndarray:
    """Ints in the same order, as 8- or 16-bit ints where they span fewer than
    2**16 values: NumPy sorts those stably by radix, in linear time (250,000
    keys of 80 connections: 0.9 ms as 8-bit ints, 1.7 ms as 16-bit, 11-13 ms
    as 32- or 64-bit)."""
    low = int(values.min())
    span = int(values.max()) - low
    if span >= 1 << 16:
        return values
    return (values - low).astype(np.uint8 if span < 1 << 8 else np.uint16)


def concat_columns(parts: list[Columns]) -> Columns:
    """Columns of the same fields, one after the other."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    return ({k: np.concatenate([p[0][k] for p in parts]) for k in first[0]},
            {k: np.concatenate([p[1][k] for p in parts]) for k in first[1]})


def take_columns(cols: Columns, order: np.ndarray) -> Columns:
    """The rows ``order`` of ``cols``."""
    return {k: v[order] for k, v in cols[0].items()}, {k: v[order] for k, v in cols[1].items()}


class _Lookup:
    """The group of each connection id (key >> 1) among disjoint ``groups`` of
    them, or ``len(groups)`` for an id in none.

    A table indexed by id where the ids are small (the engine numbers
    connections from 0), which takes 1 ms for 250,000 records where a binary
    search took 12 ms; a binary search otherwise.
    """

    def __init__(self, groups: list[set[int]]) -> None:
        self.none = len(groups)
        ids = np.fromiter((i for g in groups for i in g), dtype=np.int64)
        which = np.fromiter((n for n, g in enumerate(groups) for _ in g), dtype=np.int64,
                            count=len(ids))
        by_id = np.argsort(ids)
        self.ids, self.which = ids[by_id], which[by_id]
        self.table: np.ndarray | None = None
        if len(ids) and 0 <= self.ids[0] and self.ids[-1] < _TABLE_IDS:
            self.table = np.full(int(self.ids[-1]) + 1, self.none, np.int64)
            self.table[self.ids] = self.which

    def __call__(self, conn: np.ndarray) -> np.ndarray:
        ids, table = self.ids, self.table
        if table is not None:
            inside = (conn >= 0) & (conn < len(table))
            if inside.all():
                found: np.ndarray = table[conn]
                return found
            return np.where(inside, table[np.where(inside, conn, 0)], self.none)
        if not len(ids):
            return np.full(len(conn), self.none)
        at = np.minimum(np.searchsorted(ids, conn), len(ids) - 1)
        return np.where(ids[at] == conn, self.which[at], self.none)


class Packed:
    """Records of one named-tuple kind, packed into columns a batch at a time.

    Args:
        kind: the named tuple class (its ``_fields`` must match ``packing``).
        packing: field -> NumPy dtype, :data:`NULLABLE_U32` or :data:`OBJECT`.
        keep_data: keep the payload and text of data records too (the
            collector's column chunks, which the tables are made from).
    """

    def __init__(self, kind: Any, packing: dict[str, str], keep_data: bool = False) -> None:
        if tuple(packing) != kind._fields:
            raise ValueError(f"packing does not match {kind.__name__}'s fields")
        self.kind = kind
        self.packing = packing
        self._field_at = {name: n for n, name in enumerate(packing)}
        self.keep_data = keep_data
        self.size = 0
        self._chunks: list[_Chunk] = []
        self._starts: list[int] = []

    def __len__(self) -> int:
        return self.size

    def add(self, records: Sequence[Any], keys: Sequence[int]) -> None:
        """Pack ``records`` (and their ``keys``) after those packed before.

        The payload and text of data records are not kept, unless ``keep_data``.
        """
        if records:
            self.add_columns(*to_columns(records, self.packing), keys)

    def add_columns(self, columns: dict[str, np.ndarray], nulls: dict[str, np.ndarray],
                    keys: Sequence[int] | np.ndarray) -> None:
        """Pack records given as columns (one array per field, in the dtypes of
        the packing; ``nulls`` masks the :data:`NULLABLE_U32` fields), as
        :meth:`add` would pack the same records."""
        if set(columns) != set(self.packing):
            raise ValueError(f"columns do not match {self.kind.__name__}'s fields")
        n = len(keys)
        if not n:
            return
        data = columns["opcode"] < _CONTROL
        out: dict[str, np.ndarray] = {}
        for name, dtype in self.packing.items():
            arr = columns[name]
            if dtype == OBJECT:
                if name in DATA_FIELDS and not self.keep_data and data.any():
                    arr = arr.copy()
                    arr[data] = DATA_FIELDS[name]
            elif dtype != NULLABLE_U32:
                arr = arr.astype(dtype, copy=False)
            if len(arr) != n:
                raise ValueError(f"column {name} has {len(arr)} values, not {n}")
            out[name] = arr
        self._append(out, dict(nulls), np.asarray(keys, dtype=np.int64), n)

    def parts(self) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]]:
        """The chunks, in order, as ``(columns, nulls, keys)``."""
        return [(c.columns, c.nulls, c.keys) for c in self._chunks]

    def clear(self) -> None:
        """Let go of every record."""
        self._chunks, self._starts, self.size = [], [], 0

    def object_columns(self) -> list[np.ndarray]:
        """The chunks' columns of objects (payloads, texts, ...)."""
        return [c.columns[name] for c in self._chunks
                for name, dtype in self.packing.items() if dtype == OBJECT]

    @classmethod
    def chain(cls, parts: list[Packed]) -> Packed:
        """The records of ``parts``, one after the other (sharing their arrays)."""
        first = parts[0]
        out = cls(first.kind, first.packing, first.keep_data)
        for part in parts:
            for c in part._chunks:
                out._append(c.columns, c.nulls, c.keys, c.size)
        return out

    def split(self, groups: list[set[int]]) -> Iterator[Packed]:
        """Move the records into one Packed per group of connections (key >> 1),
        yielded in turn, each with its records in order; records of other
        connections are dropped, and this Packed is left empty.

        A chunk whose records are all of one group goes to that group as it
        is. Any other chunk is sorted by group once, in place (a stable radix
        sort of the group numbers), so that a group is a slice of it: taking
        each group in turn would mask every chunk again. A group's records
        are views of the chunks, not copies.
        """
        chunks = self._chunks
        self.clear()
        group_of = _Lookup(groups)
        bounds: list[list[int]] = []
        for c in chunks:
            group = group_of(c.keys >> 1)
            only = int(group[0])
            if (group == only).all():
                bounds.append([0 if n <= only else c.size for n in range(len(groups) + 1)])
                continue
            order = np.argsort(_radix_sortable(group), kind="stable")
            for arrays in (c.columns, c.nulls):
                for k in arrays:
                    arrays[k] = arrays[k][order]
            c.keys = c.keys[order]
            bounds.append(np.searchsorted(group[order], np.arange(len(groups) + 1)).tolist())
        for n in range(len(groups)):
            out = Packed(self.kind, self.packing, self.keep_data)
            for c, b in zip(chunks, bounds, strict=True):
                lo, hi = b[n], b[n + 1]
                if hi > lo:
                    out._append({k: v[lo:hi] for k, v in c.columns.items()},
                                {k: v[lo:hi] for k, v in c.nulls.items()}, c.keys[lo:hi],
                                hi - lo)
            yield out

    def take(self, conn_ids: set[int]) -> Packed:
        """Move the records of connections ``conn_ids`` (key >> 1) into a new Packed.

        Both what is taken and what stays end up in one chunk each, in order.
        """
        group_of = _Lookup([conn_ids])
        taken = Packed(self.kind, self.packing)
        chunks, self._chunks, self._starts, self.size = self._chunks, [], [], 0
        masks = [group_of(c.keys >> 1) == 0 for c in chunks]
        taken._join([(c, m) for c, m in zip(chunks, masks)])
        self._join([(c, ~m) for c, m in zip(chunks, masks)])
        return taken

    def _join(self, parts: list[tuple[_Chunk, np.ndarray]]) -> None:
        """Append the rows ``mask`` selects of each chunk, as one chunk."""
        parts = [(c, m) for c, m in parts if m.any()]
        if not parts:
            return
        first = parts[0][0]
        columns = {k: np.concatenate([c.columns[k][m] for c, m in parts]) for k in first.columns}
        nulls = {k: np.concatenate([c.nulls[k][m] for c, m in parts]) for k in first.nulls}
        keys = np.concatenate([c.keys[m] for c, m in parts])
        self._append(columns, nulls, keys, len(keys))

    def _append(self, columns: dict[str, np.ndarray], nulls: dict[str, np.ndarray],
                keys: np.ndarray, n: int) -> None:
        self._chunks.append(_Chunk(self.size, n, columns, nulls, keys))
        self._starts.append(self.size)
        self.size += n

    def record(self, i: int) -> Any:
        """Record ``i`` (0-based among the packed), as the named tuple."""
        chunk = self._chunks[bisect_right(self._starts, i) - 1]
        j = i - chunk.start
        # (``item`` gives the Python value, the object itself for an object column)
        values = [arr.item(j) for arr in chunk.columns.values()]
        for name, mask in chunk.nulls.items():
            if mask[j]:
                values[self._field_at[name]] = None
        return self.kind._make(values)

    def array(self, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """Field ``name`` of every packed record, in order, as one array (0
        where None), and the None mask of a :data:`NULLABLE_U32` field (else None)."""
        dtype = self.packing[name]
        nullable = dtype == NULLABLE_U32
        if not self._chunks:
            return (np.zeros(0, np.uint32 if nullable else dtype),
                    np.zeros(0, bool) if nullable else None)
        values = np.concatenate([c.columns[name] for c in self._chunks])
        if not nullable:
            return values, None
        return values, np.concatenate([c.nulls[name] for c in self._chunks])

    def keys(self) -> np.ndarray:
        """The key of every packed record, in order (int64)."""
        if not self._chunks:
            return np.zeros(0, np.int64)
        return np.concatenate([c.keys for c in self._chunks])

    def nbytes(self) -> int:
        """Bytes held by the columns (not counting the objects they point to)."""
        return sum(a.nbytes for c in self._chunks
                   for a in (*c.columns.values(), *c.nulls.values(), c.keys))


class RecordView(Sequence[Any]):
    """What was packed, then the records collected since, as one sequence.

    Args:
        packed: the packed records (positions ``0 .. len(packed) - 1``).
        tail: the records after them, as named tuples.
    """

    def __init__(self, packed: Packed, tail: list[Any]) -> None:
        self.packed = packed
        self.tail = tail

    @classmethod
    def of(cls, packed: Packed, tail: list[Any]) -> Sequence[Any]:
        """A view of both, or ``tail`` itself when nothing was packed (faster to index)."""
        return cls(packed, tail) if len(packed) else tail

    def __len__(self) -> int:
        return len(self.packed) + len(self.tail)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self.packed)
        if i < 0:
            i += len(self)
        if i >= n:
            return self.tail[i - n]
        if i < 0:
            raise IndexError(i)
        return self.packed.record(i)

    def __iter__(self) -> Iterator[Any]:
        for i in range(len(self.packed)):
            yield self.packed.record(i)
        yield from self.tail

    def array(self, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """Field ``name`` of every record, in order, as :meth:`Packed.array` gives it."""
        values, nulls = self.packed.array(name)
        if not self.tail:
            return values, nulls
        more, more_nulls = _array(self.tail, name)
        values = np.concatenate([values, more.astype(values.dtype)])
        if nulls is None and more_nulls is None:
            return values, None
        return values, np.concatenate([np.zeros(len(self.packed), bool) if nulls is None
                                       else nulls,
                                       np.zeros(len(more), bool) if more_nulls is None
                                       else more_nulls])


def array(records: Sequence[Any], name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Field ``name`` (an int field) of every record of a list or a
    :class:`RecordView`, as an int64 or uint64 array (0 where None), and its None
    mask where a value is None (else None)."""
    if isinstance(records, RecordView):
        return records.array(name)
    return _array(records, name)


def _array(records: Sequence[Any], name: str) -> tuple[np.ndarray, np.ndarray | None]:
    values = list(map(attrgetter(name), records))
    nulls = None
    if None in values:
        nulls = np.fromiter((v is None for v in values), bool, len(values))
        values = [0 if v is None else v for v in values]
    try:
        return np.array(values, np.int64), nulls
    except OverflowError:  # a 64-bit length past int64 (a hostile declared length)
        return np.array(values, np.uint64), nulls
