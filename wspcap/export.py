"""Writing the tables: Parquet, CSV and JSON lines.

Parquet keeps every dtype (payloads stay binary). CSV and JSON lines are text
formats, so payload bytes are written as lowercase hex and timestamps as
ISO 8601 UTC.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pandas as pd

from wspcap.errors import ConfigError

if TYPE_CHECKING:
    from wspcap.capture import Capture

__all__ = ["FORMATS", "arrow_schema", "textual", "write_parquet", "write_tables"]

FORMATS = ("parquet", "csv", "jsonl")
_EXT = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}
TABLES = ("connections", "frames", "messages", "anomalies")


#: Payload bytes converted to Arrow at a time when writing Parquet: the
#: table is written in row groups of about this much payload, so writing
#: never holds a second full copy of the payloads (it did: `analyze -o` on a
#: 257 MB bulk capture peaked at 1.48 GB, against 0.63 GB for reading it).
SLICE_BYTES = 16 << 20
PAYLOAD_COLUMNS = frozenset(("payload",))


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


def write_parquet(df: pd.DataFrame, path: str) -> None:
    """Write one table as Parquet, in row groups of about SLICE_BYTES of payload."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema(df)
    step = max(len(df), 1)
    if "payload" in df.columns and len(df):
        total = sum(map(len, df["payload"].dropna()))
        if total > SLICE_BYTES:
            step = max(64, int(len(df) * SLICE_BYTES / total))
    # Payloads are not dictionary-encoded: they rarely repeat, and building
    # the dictionary held several copies of each row group in memory.
    plain = [f.name for f in schema if f.name not in PAYLOAD_COLUMNS]
    with pq.ParquetWriter(path, schema, use_dictionary=plain) as writer:
        for start in range(0, max(len(df), 1), step):
            part = df.iloc[start:start + step]
            writer.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False))


def textual(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` fit for text formats: bytes as hex, times as ISO 8601."""
    out = df.copy()
    for name in out.columns:
        col = out[name]
        if name == "payload":
            out[name] = [b.hex() if b is not None else None for b in col]
        elif isinstance(col.dtype, pd.DatetimeTZDtype):
            out[name] = col.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return out


def write_tables(capture: Capture, directory: str | os.PathLike[str], fmt: str) -> list[str]:
    """Write the four tables of ``capture`` into ``directory``.

    Args:
        capture: the tables.
        directory: created if missing.
        fmt: ``parquet``, ``csv`` or ``jsonl``.

    Returns:
        The paths written, one per table.
    """
    if fmt not in FORMATS:
        raise ConfigError("format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
    os.makedirs(directory, exist_ok=True)
    paths = []
    for name in TABLES:
        df: pd.DataFrame = getattr(capture, name)
        path = os.path.join(os.fspath(directory), f"{name}.{_EXT[fmt]}")
        if fmt == "parquet":
            write_parquet(df, path)
        elif fmt == "csv":
            textual(df).to_csv(path, index=False)
        else:
            textual(df).to_json(path, orient="records", lines=True, force_ascii=False)
        paths.append(path)
    return paths
