#!/usr/bin/env python3
"""The floor of ``wspcap analyze -o``: pyarrow alone writing the payload columns.

``analyze -o`` writes every payload three times: the frames' ``payload``,
the messages' ``payload`` and, for text messages, their ``text``. This
script takes those three columns of a capture (made with ``wspcap.read``,
before the clock) as Arrow arrays and times pyarrow alone writing them to
Parquet as wspcap's writer does (one file per table, row groups of about
16 MiB of payload, no dictionary, no statistics, data pages v2, pyarrow's
default compression, snappy), then the same uncompressed. Nothing else is
done: no parsing, no other column. The payload rate is the capture's wire
payload (the frames' ``payload_len``) over the time, as ``run.py`` reports
it, so the two compare directly.

Usage::

    python benchmarks/parquet_floor.py                      # benchmarks/data/bulk.pcap
    python benchmarks/parquet_floor.py chat --repeat 5
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: Payload bytes per row group, as wspcap's writer (wspcap.tables.export.SLICE_BYTES).
SLICE_BYTES = 16 << 20


def columns(path: Path) -> tuple[dict[str, list[Any]], int]:
    """The payload columns ``analyze -o`` writes, per file, and the wire payload bytes."""
    import pyarrow as pa

    sys.path.insert(0, str(HERE.parent))
    import wspcap

    keys = path.with_suffix(".keys")
    cap = wspcap.read(path, keylog=keys if keys.is_file() else None)
    frames = [pa.array(cap.frames["payload"].to_numpy(), pa.binary())]
    messages = [pa.array(cap.messages["payload"].to_numpy(), pa.binary()),
                pa.array(cap.messages["text"].array, pa.large_string())]
    return ({"frames": frames, "messages": messages},
            int(cap.frames["payload_len"].sum()))


def write(tables: dict[str, list[Any]], directory: str, compression: str) -> float:
    """Seconds to write each table's columns to a Parquet file of its own."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    for name, arrays in tables.items():
        table = pa.table({f"c{i}": a for i, a in enumerate(arrays)})
        size = sum(a.nbytes for a in arrays)
        step = max(64, int(len(table) * SLICE_BYTES / size)) if size > SLICE_BYTES else len(
            table)
        with pq.ParquetWriter(f"{directory}/{name}.parquet", table.schema,
                              compression=compression, use_dictionary=False,
                              write_statistics=False, data_page_version="2.0") as out:
            for start in range(0, max(len(table), 1), step):
                out.write_table(table.slice(start, step))
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("capture", nargs="?", default="bulk",
                    help="a capture file, or a name in benchmarks/data [bulk]")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs [%(default)s]")
    args = ap.parse_args(argv)
    path = Path(args.capture)
    if not path.exists():
        path = HERE / "data" / f"{args.capture}.pcap"
    tables, payload = columns(path)
    written = sum(a.nbytes for arrays in tables.values() for a in arrays)
    print(f"{path.name}: {payload / 1e6:,.1f} MB of wire payload; the three payload "
          f"columns hold {written / 1e6:,.1f} MB")
    for compression in ("snappy", "none"):
        best = float("inf")
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="wspcap-floor-") as tmp:
                best = min(best, write(tables, tmp, compression))
        print(f"  pyarrow alone, {compression:>6}: best {best:.3f} s, "
              f"{payload / 1e6 / best:,.0f} MB/s of payload, "
              f"{written / 1e6 / best:,.0f} MB/s written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
