"""Writing the tables: Parquet, CSV and JSON lines.

Parquet keeps every dtype (payloads stay binary). CSV and JSON lines are text
formats, so payload bytes are written as lowercase hex and timestamps as
ISO 8601 UTC.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pandas as pd

from wspcap.errors import ConfigError

if TYPE_CHECKING:
    from wspcap.capture import Capture

__all__ = ["FORMATS", "textual", "write_tables"]

FORMATS = ("parquet", "csv", "jsonl")
_EXT = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}
TABLES = ("connections", "frames", "messages", "anomalies")


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
            df.to_parquet(path, index=False)
        elif fmt == "csv":
            textual(df).to_csv(path, index=False)
        else:
            textual(df).to_json(path, orient="records", lines=True, force_ascii=False)
        paths.append(path)
    return paths
