"""Packet timestamps: integer nanoseconds since the epoch, and their null.

Sans-I/O, and imports nothing: every layer (sources, pipeline, rules, tables)
uses these.

Timestamps are int64 nanoseconds, as NumPy's ``datetime64[ns]`` holds them
(the years 1677 to 2262). A packet whose time falls outside (a pcapng
timestamp resolution or offset that puts it centuries away) keeps its place
with :data:`TS_NULL`, the int64 value of NumPy's ``NaT``: a null timestamp in
the tables, flagged ``capture_timestamp_invalid``. Checks that compare times
pass over :data:`TS_NULL`.
"""

from __future__ import annotations

__all__ = ["TS_MAX", "TS_MIN", "TS_NULL"]

#: The timestamp of a packet whose time int64 nanoseconds cannot hold (NaT).
TS_NULL = -(1 << 63)
#: The timestamps (ns) kept as they are: every int64 but :data:`TS_NULL`.
TS_MIN, TS_MAX = TS_NULL + 1, (1 << 63) - 1
