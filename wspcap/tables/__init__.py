"""The tables: what the engine's records become (pandas DataFrames and Arrow
tables), and the writers that put them in Parquet, CSV and JSON lines files."""

from wspcap.tables.capture import Capture, CaptureInfo

__all__ = ["Capture", "CaptureInfo"]
