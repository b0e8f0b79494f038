"""Writing the tables: Parquet, CSV and JSON lines.

Parquet keeps every dtype (payloads stay binary). CSV and JSON lines are text
formats, so payload bytes are written as lowercase hex and timestamps as
ISO 8601 UTC.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import pandas as pd

from wspcap.errors import ConfigError
from wspcap.tables.build import (
    FRAME_SCHEMA,
    MESSAGE_SCHEMA,
    RunningIndex,
    empty_table,
    frame_arrays,
    frames_table,
    message_arrays,
    messages_table,
)

if TYPE_CHECKING:
    from wspcap.engine import Collector
    from wspcap.ws.messages import Message

__all__ = ["APP_TABLE", "FORMATS", "PayloadSpool", "SpooledBytes", "TableStream", "TableWriter",
           "arrow_schema", "table_path", "textual", "write_table",
           "write_tables"]

FORMATS = ("parquet", "csv", "jsonl")
_EXT = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}
TABLES = ("connections", "frames", "messages", "anomalies")
#: The fifth table, written after the four (wspcap.tables.app).
APP_TABLE = "app"


#: Payload bytes converted to Arrow at a time when writing Parquet: the
#: table is written in row groups of about this much payload, so writing
#: never holds a second full copy of the payloads (it did: `analyze -o` on a
#: 257 MB bulk capture peaked at 1.48 GB, against 0.63 GB for reading it).
SLICE_BYTES = 16 << 20
PAYLOAD_COLUMNS = frozenset(("payload",))
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
    with every other message of the same 2 MiB block of the capture, until the
    block's records are written: a capture of such messages took 5.9 GB to
    analyze into Parquet. Set as :attr:`Collector.spool
    <wspcap.engine.Collector.spool>`, it is given each inflated message and
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


def _unspooled_row(table: Any, marker: SpooledBytes, is_text: bool) -> Any:
    """A one-row Arrow table with its payload (and text) read back from the
    spool, without copying it again (Arrow arrays over the bytes read)."""
    import pyarrow as pa

    data = marker.load()
    buffer = pa.py_buffer(data)
    offsets = pa.py_buffer(memoryview(bytearray(4) + len(data).to_bytes(4, "little")))
    table = table.set_column(table.schema.get_field_index("payload"), "payload",
                             pa.Array.from_buffers(pa.binary(), 1, [None, offsets, buffer]))
    if is_text:
        long = pa.py_buffer(memoryview(bytearray(8) + len(data).to_bytes(8, "little")))
        text = pa.Array.from_buffers(pa.large_string(), 1, [None, long, buffer])
        table = table.set_column(table.schema.get_field_index("text"), "text", text)
    return table


def arrow_schema(df: pd.DataFrame) -> Any:
    """The Arrow schema of a table, whatever its values.

    Columns that are all None get their real type (binary for payloads,
    string otherwise), and categoricals one index width, so every row group
    and every part of a dataset shares one schema.
    """
    import pyarrow as pa

    # Inferred from the first rows: inference converts object columns (whole
    # payload columns would be copied just to learn they are binary), and the
    # only object column is the payload; the others have declared dtypes.
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


def arrow_pool() -> Any:
    """The Arrow memory pool for writing: jemalloc where pyarrow has it.

    Parts are made on one thread and written on another; with jemalloc
    ``analyze -o`` peaked 50-90 MB lower than with pyarrow's default
    (mimalloc) or the system allocator on the bulk benchmark.
    """
    import pyarrow as pa

    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:
        return pa.default_memory_pool()


def _row_step(rows: int, payload_bytes: int) -> int:
    """Rows per part for parts of about SLICE_BYTES of payload each."""
    if payload_bytes > SLICE_BYTES:
        return max(64, int(rows * SLICE_BYTES / payload_bytes))
    return max(rows, 1)


def _row_slices(df: pd.DataFrame) -> list[pd.DataFrame]:
    """``df`` cut into parts of about SLICE_BYTES of payload each."""
    total = sum(map(len, df["payload"].dropna())) if "payload" in df.columns else 0
    step = _row_step(len(df), total)
    return [df.iloc[start:start + step] for start in range(0, max(len(df), 1), step)]


class TableWriter:
    """One table's file, written in parts as they come.

    Parquet gets row groups of about SLICE_BYTES of payload, all with the
    schema of the first part; CSV and JSON lines get rows appended (one
    header for CSV). A writer given no rows writes an empty table with the
    columns of ``empty``.

    Args:
        path: the file to write (replaced if it exists).
        fmt: ``parquet``, ``csv`` or ``jsonl``.
        empty: the table with no rows, written if no part comes.
    """

    def __init__(self, path: str, fmt: str, empty: pd.DataFrame) -> None:
        self.path = path
        self.fmt = fmt
        self._empty = empty
        self._parquet: Any = None
        self._schema: Any = None
        self._started = False

    def _open_parquet(self, df: pd.DataFrame) -> Any:
        import pyarrow.parquet as pq

        if self._parquet is None:
            self._schema = arrow_schema(df)
            # Payloads are not dictionary-encoded: they rarely repeat, and
            # building the dictionary held several copies of each row group.
            plain = [f.name for f in self._schema if f.name not in PAYLOAD_COLUMNS]
            summarized = [f.name for f in self._schema if f.name not in UNSUMMARIZED]
            self._parquet = pq.ParquetWriter(self.path, self._schema, use_dictionary=plain,
                                             write_statistics=summarized,
                                             data_page_version="2.0",
                                             memory_pool=arrow_pool())
        return self._parquet

    def arrow_table(self, arrays: dict[str, Any]) -> Any:
        """Rows given as Arrow arrays, one per column, as a table of this
        file's schema, for :meth:`write_arrow` (Parquet only)."""
        import pyarrow as pa

        self._open_parquet(self._empty)
        self._started = True
        return pa.Table.from_arrays(list(arrays.values()), schema=self._schema)

    def write_arrow(self, table: Any,
                    spooled: list[tuple[int, SpooledBytes, bool]] | None = None) -> None:
        """Append the rows of an :meth:`arrow_table` (Parquet only; touches
        no Python object of the pipeline, so may run on another thread).
        ``spooled`` are the rows whose payloads a :class:`PayloadSpool` put
        aside: each is read back and written alone."""
        start = 0
        for row, marker, is_text in spooled or ():
            self._write_slices(table.slice(start, row - start))
            self._parquet.write_table(_unspooled_row(table.slice(row, 1), marker, is_text))
            start = row + 1
        self._write_slices(table.slice(start) if start else table)
        if spooled:
            # The pool would keep the pages of those large values for a while
            # (jemalloc's decay), on top of what parsing needs next.
            arrow_pool().release_unused()

    def _write_slices(self, table: Any) -> None:
        names = table.column_names
        size = table.column("payload").nbytes if "payload" in names else 0
        step = _row_step(len(table), size)
        for start in range(0, len(table), step):
            self._parquet.write_table(table.slice(start, step))

    def write_spooled(self, df: pd.DataFrame,
                      spooled: list[tuple[int, SpooledBytes, bool]]) -> None:
        """Append ``df``'s rows, the ``spooled`` ones each alone, read back."""
        start = 0
        for row, marker, is_text in spooled:
            if row > start:
                self.write(df.iloc[start:row])
            one = df.iloc[row:row + 1].copy()
            data = marker.load()
            one["payload"] = pd.Series([data], index=one.index, dtype=object)
            if is_text:
                one["text"] = pd.array([data.decode()], dtype=df["text"].dtype)
            self.write(one)
            start = row + 1
        if start < len(df) or not start:
            self.write(df.iloc[start:])

    def write(self, df: pd.DataFrame) -> None:
        """Append ``df``'s rows."""
        if self.fmt == "parquet":
            import pyarrow as pa

            parquet = self._open_parquet(df)
            for part in _row_slices(df):
                parquet.write_table(
                    pa.Table.from_pandas(part, schema=self._schema, preserve_index=False))
        elif self.fmt == "csv":
            textual(df).to_csv(self.path, index=False, mode="a" if self._started else "w",
                               header=not self._started)
        else:
            with open(self.path, "a" if self._started else "w", encoding="utf-8") as f:
                if len(df):
                    textual(df).to_json(f, orient="records", lines=True, force_ascii=False)
        self._started = True

    def close(self) -> str:
        """Finish the file; return its path."""
        if not self._started:
            self.write(self._empty)
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        return self.path


def write_table(df: pd.DataFrame, path: str, fmt: str) -> str:
    """Write one whole table to ``path`` in format ``fmt``; return the path."""
    writer = TableWriter(path, fmt, df.iloc[:0])
    writer.write(df)
    return writer.close()


def textual(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` fit for text formats: bytes as hex, times as ISO 8601,
    durations in seconds."""
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
    """Write the four tables of ``capture`` into ``directory``.

    Args:
        capture: the tables (a :class:`~wspcap.tables.Capture`, or anything
            with the four tables as attributes).
        directory: created if missing.
        fmt: ``parquet``, ``csv`` or ``jsonl``.

    Returns:
        The paths written, one per table.
    """
    _check_format(fmt)
    os.makedirs(directory, exist_ok=True)
    paths = []
    for name in TABLES:
        paths.append(write_table(getattr(capture, name), table_path(directory, name, fmt), fmt))
    if getattr(capture, APP_TABLE, None) is not None:
        paths.append(write_table(capture.app, table_path(directory, APP_TABLE, fmt), fmt))
    return paths


def _write_parts(parts: list[tuple[TableWriter, Any, list[Any]]]) -> None:
    for writer, table, spooled in parts:
        writer.write_arrow(table, spooled)


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
    """

    def __init__(self, directory: str | os.PathLike[str], fmt: str,
                 spool: PayloadSpool | None = None) -> None:
        _check_format(fmt)
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.fmt = fmt
        self.spool = spool
        self._frames = TableWriter(table_path(directory, "frames", fmt), fmt,
                                   empty_table(FRAME_SCHEMA))
        self._messages = TableWriter(table_path(directory, "messages", fmt), fmt,
                                     empty_table(MESSAGE_SCHEMA))
        self._frame_index = RunningIndex()
        self._message_index = RunningIndex()
        # Parquet parts are encoded and written on a thread of their own
        # (pyarrow lets go of the GIL) while the next part is parsed; one
        # part at a time, so memory holds at most two parts.
        self._pool = ThreadPoolExecutor(1, "wspcap-parquet") if fmt == "parquet" else None
        self._writing: Future[None] | None = None
        #: Called with each part's message columns before they are packed (the
        #: application decoding, wspcap.tables.app), or None.
        self.on_messages: Callable[[Any], None] | None = None

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
        # The records not written yet, as columns: for the tables, then packed.
        kinds = ((self._frames, self._frame_index, bool(col.frames or len(col.frame_chunks)),
                  col.frame_columns, frame_arrays, frames_table),
                 (self._messages, self._message_index,
                  bool(col.messages or len(col.message_chunks)), col.message_columns,
                  message_arrays, messages_table))
        made: list[Any] = []
        parts = []
        inflated = 0
        for writer, index, unwritten, columns, arrays, table in kinds:
            made.append(columns() if unwritten else None)
            if made[-1] is None:
                continue
            rows: list[tuple[int, SpooledBytes, bool]] = []
            if writer is self._messages:
                c = made[-1][0][0]
                inflated = int(c["length"][c["inflated"] == True].sum())
                if spooled:
                    rows = _spooled_rows(c["payload"], c["text"])
            if self._pool is not None:
                parts.append((writer, writer.arrow_table(arrays(made[-1], index, arrow_pool())),
                              rows))
            elif rows:
                writer.write_spooled(table(col, index, made[-1]), rows)
            else:
                writer.write(table(col, index, made[-1]))
        if self.on_messages is not None and made[1] is not None:
            self.on_messages(made[1])
        col.pack(*made)
        if parts:
            self._wait()
            assert self._pool is not None
            self._writing = self._pool.submit(_write_parts, parts)
            if any(rows for _writer, _table, rows in parts):
                # Reading a spooled payload back and encoding it takes about
                # three times its size: not while the next ones are inflated.
                self._wait()
        return inflated

    def _wait(self) -> None:
        """Wait for the part being written (raising what writing it raised)."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            writing.result()

    def close(self, connections: pd.DataFrame, anomalies: pd.DataFrame,
              app: pd.DataFrame | None = None) -> list[str]:
        """Write the connections and anomalies tables (and ``app``), finish every file.

        Returns:
            The paths written, one per table, in :data:`TABLES` order (then
            the ``app`` table's, when given).
        """
        self._wait()
        if self._pool is not None:
            self._pool.shutdown()
        tables = {"connections": connections, "anomalies": anomalies}
        paths = []
        for name in TABLES:
            if name in tables:
                path = table_path(self.directory, name, self.fmt)
                paths.append(write_table(tables[name], path, self.fmt))
            else:
                paths.append((self._frames if name == "frames" else self._messages).close())
        if app is not None:
            paths.append(write_table(app, table_path(self.directory, APP_TABLE, self.fmt),
                                     self.fmt))
        return paths
