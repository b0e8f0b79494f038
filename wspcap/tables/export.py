"""Writing the tables: Parquet, CSV and JSON lines.

Design note
-----------
Every writer takes Arrow tables (record batches) of a declared schema
(:mod:`wspcap.tables.schema`): :class:`TableStream` writes those the
builders make while the engine reads (``analyze -o``, live capture into a
directory), a part of the capture at a time, and :func:`write_table` writes
a whole DataFrame (``Capture.to_parquet``, :mod:`wspcap.api.many`).
Parquet gets them as they are (row groups of about
:data:`SLICE_BYTES` of payload), so it keeps every type (payloads stay
binary) and pandas' metadata; CSV and JSON lines are text formats, made
from the table's DataFrame (:func:`~wspcap.tables.build.data_frame`), with
payload bytes written as lowercase hex and timestamps as ISO 8601 UTC.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from wspcap.errors import ConfigError
from wspcap.tables.build import (
    RunningIndex,
    arrow_table,
    data_frame,
    empty_table,
    frame_part,
    message_part,
)
from wspcap.tables.schema import APP, FRAMES, MESSAGES, TableSchema
from wspcap.tables.schema import TABLES as SCHEMAS

if TYPE_CHECKING:
    import pandas as pd

    from wspcap.engine import Collector
    from wspcap.ws.messages import Message

__all__ = ["APP_TABLE", "FORMATS", "TABLES", "PayloadSpool", "SpooledBytes", "TableStream", "TableWriter",
           "table_path", "textual", "write_table", "write_tables"]

FORMATS = ("parquet", "csv", "jsonl")
_EXT = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}
#: The tables' names, in the order they are written: the engine's four, then ``app``.
TABLES = tuple(t.name for t in SCHEMAS)
#: The fifth table, written after them (application events: wspcap.tables.app).
APP_TABLE = APP.name


#: Payload bytes converted to Arrow at a time when writing Parquet: the
#: table is written in row groups of about this much payload, so writing
#: never holds a second full copy of the payloads (it did: `analyze -o` on a
#: 257 MB bulk capture peaked at 1.48 GB, against 0.63 GB for reading it).
SLICE_BYTES = 16 << 20
#: Binary columns: an inferred schema gives them this type when all are None.
PAYLOAD_COLUMNS = frozenset(("payload",))
#: Columns not dictionary-encoded, because their values rarely repeat:
#: pyarrow would build a dictionary, give it up for plain encoding once it
#: passes 1 MiB, and write what it would have written without (the files
#: come out the same). Payloads and texts: building the dictionary held
#: several copies of each row group, and bulk's texts (62 MB) took 0.19 s to
#: write with it, 0.05 s without. Times, packet numbers, offsets, indices and
#: masking keys: writing chat's frames and messages alone took 0.28 s of CPU
#: with it, 0.19 s without.
PLAIN = frozenset(("payload", "text", "ts", "ts_start", "ts_end", "packet", "packet_start",
                   "packet_end", "stream_offset", "frame_index", "msg_index", "first_frame",
                   "last_frame", "mask_key"))
#: Columns written without Parquet statistics: their min and max are of no use
#: for filtering, and computing them on 60 MiB values took 2.5 s and 300 MB
#: more for four of them (pyarrow 26).
UNSUMMARIZED = frozenset(("payload", "text"))
#: While the tables are streamed, inflated payloads of this size and more are
#: put aside in a spool file until written (see :class:`PayloadSpool`).
SPOOL_MIN = 1 << 20


class SpooledBytes(bytes):
    """Stands for a payload put aside by a :class:`PayloadSpool`; itself ``b""``.

    Attributes:
        file: the spool file (unbuffered) it is in.
        offset: where it starts there.
        size: its length.
    """

    file: Any
    offset: int
    size: int

    def load(self) -> bytes:
        """The payload, read back."""
        data = os.pread(self.file.fileno(), self.size, self.offset)
        if len(data) != self.size:
            raise OSError(f"spool file cut: {len(data)} of {self.size} bytes read back")
        return data


class SpooledText(str):
    """Stands for the text of a text message whose payload was spooled: the
    text is that payload, decoded (it was checked to be UTF-8); itself ``""``."""


SPOOLED_TEXT = SpooledText()


class PayloadSpool:
    """Puts large inflated payloads aside in a temporary file until they are written.

    A message of 60 MiB inflated from 60 KB would otherwise wait in memory,
    with every other message of the same block of the capture, until the
    block's records are written: a capture of such messages took 5.9 GB to
    analyze into Parquet. Given to :meth:`Collector.keep_with
    <wspcap.engine.Collector.keep_with>`, it is given each inflated message and
    returns it with the payload (and text) replaced by a
    :class:`SpooledBytes` marker when the payload is ``min_size`` bytes or
    more; :class:`TableStream` reads the payload back when it writes that
    row, one at a time. The file is unnamed (deleted as soon as it is
    closed), in ``directory``; each :meth:`rotate` starts another, and a file
    goes when the last marker of it does.

    Args:
        directory: where the files go.
        min_size: payloads smaller than this stay in memory.
    """

    def __init__(self, directory: str | os.PathLike[str], min_size: int = SPOOL_MIN) -> None:
        self.directory = directory
        self.min_size = min_size
        self.count = 0  #: payloads put aside since the last :meth:`rotate`
        self._file: Any = None

    def __call__(self, message: Message) -> Message:
        """``message``, its payload put aside when it is large."""
        payload = message.payload
        if len(payload) < self.min_size or isinstance(payload, SpooledBytes):
            return message
        if self._file is None:
            # (open for as long as a marker refers to it: closed, and gone, with the last)
            self._file = tempfile.TemporaryFile(  # noqa: SIM115
                dir=self.directory, buffering=0)
        marker = SpooledBytes()
        marker.file = self._file
        marker.offset = self._file.tell()
        marker.size = len(payload)
        view = memoryview(payload)
        while view:  # a raw file may write less than asked
            view = view[self._file.write(view):]
        self.count += 1
        text = SPOOLED_TEXT if message.text is not None else None
        return message._replace(payload=marker, text=text)

    def rotate(self) -> int:
        """Put later payloads in a new file; return how many were put aside since
        the last call."""
        count, self.count = self.count, 0
        self._file = None
        return count


def _spooled_rows(payloads: Any, texts: Any) -> list[tuple[int, SpooledBytes, bool]]:
    """``(row, marker, is_text)`` for each spooled payload of a part."""
    return [(i, p, texts[i] is not None) for i, p in enumerate(payloads)
            if isinstance(p, SpooledBytes)]


def _unspooled_row(table: pa.Table, marker: SpooledBytes,
                   is_text: bool) -> pa.Table:
    """A one-row table with its payload (and text) read back from the
    spool, without copying it again (Arrow arrays over the bytes read)."""
    data = marker.load()
    buffer = pa.py_buffer(data)
    offsets = pa.py_buffer(memoryview(bytearray(4) + len(data).to_bytes(4, "little")))
    columns = dict(zip(table.schema.names, table.columns, strict=True))
    columns["payload"] = pa.Array.from_buffers(pa.binary(), 1, [None, offsets, buffer])
    if is_text:
        long = pa.py_buffer(memoryview(bytearray(8) + len(data).to_bytes(8, "little")))
        columns["text"] = pa.Array.from_buffers(pa.large_string(), 1, [None, long, buffer])
    return pa.Table.from_arrays(list(columns.values()), schema=table.schema)


def _pieces(table: pa.Table,
            spooled: list[tuple[int, SpooledBytes, bool]] | None) -> Iterator[pa.Table]:
    """``table`` in order, its spooled rows each alone and read back."""
    start = 0
    for row, marker, is_text in spooled or ():
        if row > start:
            yield table.slice(start, row - start)
        yield _unspooled_row(table.slice(row, 1), marker, is_text)
        start = row + 1
    if start < table.num_rows or not start:
        yield table.slice(start) if start else table


def arrow_pool() -> Any:
    """The Arrow memory pool for writing: jemalloc where pyarrow has it.

    Parts are made on one thread and written on another; with jemalloc
    ``analyze -o`` peaked 50-90 MB lower than with pyarrow's default
    (mimalloc) or the system allocator on the bulk benchmark.
    """
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:
        return pa.default_memory_pool()


def _unlink_old(path: str) -> None:
    """Remove the file a table is about to replace, if there is one.

    A new file rather than the old one truncated: ext4 writes a truncated
    file's new blocks out when it is closed (its ``auto_da_alloc``
    heuristic), which held ``analyze -o`` 0.2 s at its end when it wrote
    over the bulk benchmark's 570 MB of tables. Nothing is removed that is
    not a file; what cannot be removed is left to the write to report.
    """
    with contextlib.suppress(OSError):
        if os.path.isfile(path) and not os.path.islink(path):
            os.unlink(path)


def _row_step(rows: int, payload_bytes: int) -> int:
    """Rows per part for parts of about SLICE_BYTES of payload each."""
    if payload_bytes > SLICE_BYTES:
        return max(64, int(rows * SLICE_BYTES / payload_bytes))
    return max(rows, 1)


class TableWriter:
    """One table's file, written a part at a time as they come.

    Parquet gets row groups of about SLICE_BYTES of payload; CSV and JSON
    lines get rows appended (one header for CSV). A writer given no rows
    writes an empty table of its schema.

    Args:
        path: the file to write (replaced if it exists).
        fmt: ``parquet``, ``csv`` or ``jsonl``.
        schema: the table's schema: every part written has it.
    """

    def __init__(self, path: str, fmt: str, schema: TableSchema) -> None:
        self.path = path
        self.fmt = fmt
        self.schema = schema
        self._parquet: Any = None
        self._started = False

    def _open_parquet(self) -> Any:
        import pyarrow.parquet as pq

        if self._parquet is None:
            arrow = self.schema.arrow
            plain = [name for name in arrow.names if name not in PLAIN]
            summarized = [name for name in arrow.names if name not in UNSUMMARIZED]
            self._parquet = pq.ParquetWriter(self.path, arrow, use_dictionary=plain,
                                             write_statistics=summarized,
                                             data_page_version="2.0",
                                             memory_pool=arrow_pool())
        return self._parquet

    def write(self, table: pa.Table,
              spooled: list[tuple[int, SpooledBytes, bool]] | None = None) -> None:
        """Append the rows of ``table`` (of this writer's schema). ``spooled``
        are the rows whose payloads a :class:`PayloadSpool` put aside: each is
        read back and written alone. Reads no Python object of the pipeline
        but the ``bytes`` of large payloads, which are immutable (see
        :func:`~wspcap.tables.build.arrow_table`), so may run on another
        thread."""
        if not self._started:  # (the old file goes when the new one is written)
            _unlink_old(self.path)
        for piece in _pieces(table, spooled):
            if self.fmt == "parquet":
                self._write_parquet(piece)
            else:
                self._write_text(piece)
        if spooled:
            # The pool would keep the pages of those large values for a while
            # (jemalloc's decay), on top of what parsing needs next.
            arrow_pool().release_unused()

    def _write_parquet(self, table: pa.Table) -> None:
        parquet = self._open_parquet()
        self._started = True
        names = table.schema.names
        size = table.column(names.index("payload")).nbytes if "payload" in names else 0
        step = _row_step(table.num_rows, size)
        for start in range(0, max(table.num_rows, 1), step):
            parquet.write_table(table.slice(start, step))

    def _write_text(self, table: pa.Table) -> None:
        df = textual(data_frame(self.schema, table))
        if self.fmt == "csv":
            df.to_csv(self.path, index=False, mode="a" if self._started else "w",
                      header=not self._started)
        else:
            with open(self.path, "a" if self._started else "w", encoding="utf-8") as f:
                if len(df):
                    df.to_json(f, orient="records", lines=True, force_ascii=False)
        self._started = True

    def close(self) -> str:
        """Finish the file; return its path."""
        if not self._started:
            self.write(empty_table(self.schema))
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        return self.path


def _frame_schema(df: pd.DataFrame, schema: TableSchema | None) -> pa.Schema:
    """The Arrow schema to write ``df`` with: ``schema``'s when ``df`` has its
    columns, in order, with their dtypes; else inferred (a table with more
    columns, such as :mod:`wspcap.api.many`'s): columns that are all None
    get their real type (binary for payloads, string otherwise), and
    categoricals int32 indices, so every part of a dataset shares one schema.
    """
    if schema is not None and schema.matches(df):
        return schema.arrow
    # Inferred from the first rows: inference converts object columns (whole
    # payload columns would be copied just to learn they are binary).
    inferred = pa.Schema.from_pandas(df.iloc[:1000], preserve_index=False)
    fields = []
    for f in inferred:
        t = f.type
        if pa.types.is_dictionary(t):
            value = t.value_type
            if pa.types.is_null(value) or pa.types.is_string(value):
                value = pa.large_string()
            t = pa.dictionary(pa.int32(), value, t.ordered)
        elif pa.types.is_null(t):
            t = pa.binary() if f.name in PAYLOAD_COLUMNS else pa.large_string()
        fields.append(pa.field(f.name, t))
    return pa.schema(fields, metadata=inferred.metadata)


def write_table(df: pd.DataFrame, path: str, fmt: str,
                schema: TableSchema | None = None) -> str:
    """Write one whole table to ``path`` in format ``fmt``; return the path.

    Args:
        df: the table.
        path: the file (replaced if it exists).
        fmt: ``parquet``, ``csv`` or ``jsonl``.
        schema: the declared table ``df`` is, if it is one (its Arrow types
            are then written as declared).
    """
    _unlink_old(path)
    if fmt == "csv":
        textual(df).to_csv(path, index=False)
        return path
    if fmt == "jsonl":
        with open(path, "w", encoding="utf-8") as f:
            if len(df):
                textual(df).to_json(f, orient="records", lines=True, force_ascii=False)
        return path
    import pyarrow.parquet as pq

    arrow = _frame_schema(df, schema)
    total = sum(map(len, df["payload"].dropna())) if "payload" in df.columns else 0
    step = _row_step(len(df), total)
    with pq.ParquetWriter(path, arrow, use_dictionary=[
            n for n in arrow.names if n not in PLAIN], write_statistics=[
            n for n in arrow.names if n not in UNSUMMARIZED], data_page_version="2.0") as out:
        for start in range(0, max(len(df), 1), step):
            out.write_table(pa.Table.from_pandas(df.iloc[start:start + step], schema=arrow,
                                                 preserve_index=False))
    return path


def textual(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` fit for text formats: bytes as hex, times as ISO 8601,
    durations in seconds."""
    import pandas as pd

    out = df.copy()
    for name in out.columns:
        col = out[name]
        if name == "payload":
            out[name] = [b.hex() if b is not None else None for b in col]
        elif isinstance(col.dtype, pd.DatetimeTZDtype):
            out[name] = col.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        elif pd.api.types.is_timedelta64_dtype(col.dtype):  # the app table's latency
            out[name] = col.dt.total_seconds()
    return out


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ConfigError("format", f"{fmt!r} is not one of {', '.join(FORMATS)}")


def table_path(directory: str | os.PathLike[str], name: str, fmt: str) -> str:
    """Where table ``name`` goes in ``directory`` for format ``fmt``."""
    return os.path.join(os.fspath(directory), f"{name}.{_EXT[fmt]}")


def write_tables(capture: Any, directory: str | os.PathLike[str], fmt: str) -> list[str]:
    """Write the tables of ``capture`` into ``directory``, each with its
    declared schema.

    Args:
        capture: the tables (a :class:`~wspcap.tables.Capture`, or anything
            with the four tables as attributes, and maybe ``app``).
        directory: created if missing.
        fmt: ``parquet``, ``csv`` or ``jsonl``.

    Returns:
        The paths written, one per table, in :data:`TABLES` order (``app``'s
        when ``capture`` has one).
    """
    _check_format(fmt)
    os.makedirs(directory, exist_ok=True)
    paths = []
    for t in SCHEMAS:
        df = getattr(capture, t.name, None) if t is APP else getattr(capture, t.name)
        if df is not None:
            paths.append(write_table(df, table_path(directory, t.name, fmt), fmt, t))
    return paths


class TableStream:
    """Writes a pipeline's frames and messages while it runs.

    Bounded memory for captures of any payload size: each :meth:`spill`
    writes the frames and messages collected since the last one, then packs
    them into columns in the collector (:meth:`~wspcap.engine.Collector.pack`):
    what stays is a few dozen bytes per record, without data payloads, which
    the cross-record rules read at the end. Rows come out in the same order
    and with the same values as :func:`write_tables` gives for the whole
    capture.

    Args:
        directory: created if missing.
        fmt: ``parquet``, ``csv`` or ``jsonl``.
        spool: a :class:`PayloadSpool` that the collector's messages went
            through, or None.
        on_messages: called with each part's message columns before they
            are packed (the application decoding, wspcap.tables.app), or None.
    """

    def __init__(self, directory: str | os.PathLike[str], fmt: str,
                 spool: PayloadSpool | None = None,
                 on_messages: Callable[[Any], None] | None = None) -> None:
        _check_format(fmt)
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.fmt = fmt
        self.spool = spool
        self._writers = {t.name: TableWriter(table_path(directory, t.name, fmt), fmt, t)
                         for t in SCHEMAS}
        self._frame_index = RunningIndex()
        self._message_index = RunningIndex()
        # Parquet parts are encoded and written on threads of their own
        # (pyarrow lets go of the GIL) while the next part is parsed, the
        # frames' and the messages' files side by side; a table's part at a
        # time, so memory holds at most two parts of each.
        self._pool = ThreadPoolExecutor(2, "wspcap-parquet") if fmt == "parquet" else None
        self._writing: dict[str, Future[None]] = {}
        self.on_messages = on_messages

    @staticmethod
    def unwritten_bytes(col: Collector) -> int:
        """Payload bytes of the messages ``col`` gained since the last spill."""
        chunked = sum(int(c["length"].sum()) for c, _n, _k in col.message_chunks.parts())
        return chunked + int(sum(map(attrgetter("length"), col.messages)))

    def spill(self, col: Collector) -> int:
        """Write the records ``col`` gained since the last call, then pack them.

        Returns:
            The inflated payload bytes of the messages written (which memory
            no longer holds).
        """
        spooled = self.spool.rotate() if self.spool is not None else 0
        frames = col.frame_columns() if col.frames or len(col.frame_chunks) else None
        messages = col.message_columns() if col.messages or len(col.message_chunks) else None
        parts: list[tuple[TableWriter, pa.Table, list[Any]]] = []
        inflated = 0
        if frames is not None:
            table = arrow_table(FRAMES, frame_part(frames, self._frame_index))
            parts.append((self._writers["frames"], table, []))
        if messages is not None:
            c = messages[0][0]
            inflated = int(c["length"][c["inflated"] == True].sum())
            rows = _spooled_rows(c["payload"], c["text"]) if spooled else []
            table = arrow_table(MESSAGES, message_part(messages, self._message_index))
            parts.append((self._writers["messages"], table, rows))
        if self.on_messages is not None and messages is not None:
            self.on_messages(messages)
        # The records not written yet, as columns: for the tables, then packed.
        col.pack(frames, messages)
        if self._pool is None:
            for writer, table, rows in parts:
                writer.write(table, rows)
        else:
            for writer, table, rows in parts:
                # (the table's part before first: its rows come first)
                self._wait(writer.schema.name)
                self._writing[writer.schema.name] = self._pool.submit(writer.write, table, rows)
            if any(rows for _writer, _table, rows in parts):
                # Reading a spooled payload back and encoding it takes about
                # three times its size: not while the next ones are inflated.
                self._wait()
        return inflated

    def _wait(self, table: str | None = None) -> None:
        """Wait for the part of ``table`` being written, or of every table
        (raising what writing it raised)."""
        for name in [table] if table is not None else list(self._writing):
            writing = self._writing.pop(name, None)
            if writing is not None:
                writing.result()

    def close(self, connections: pa.Table, anomalies: pa.Table,
              app: pa.Table | None = None) -> list[str]:
        """Write the connections, anomalies and ``app`` tables, finish every
        file (``app`` None: an empty one).

        Returns:
            The paths written, one per table, in :data:`TABLES` order.
        """
        self._wait()
        if self._pool is not None:
            self._pool.shutdown()
        self._writers["connections"].write(connections)
        self._writers["anomalies"].write(anomalies)
        if app is not None:
            self._writers[APP_TABLE].write(app)
        return [writer.close() for writer in self._writers.values()]
