#!/usr/bin/env python3
"""Compare the tables two checkouts of wspcap make of the same captures.

A refactoring that must not change what users see is checked with this:
every table (``connections``, ``frames``, ``messages``, ``anomalies``) of
every capture is made by each checkout in a child process of its own (with
that checkout first on ``PYTHONPATH``), and the two are compared value for
value, dtype for dtype, row order included.

Usage, from the repository root::

    python benchmarks/compare_checkouts.py OLD_CHECKOUT NEW_CHECKOUT            # the bundled captures
    python benchmarks/compare_checkouts.py OLD NEW --ref main                     # OLD as git ref of this repo
    python benchmarks/compare_checkouts.py OLD NEW benchmarks/data/chat.pcap      # named captures too

``--ref REF`` makes OLD a temporary ``git worktree`` of REF. By default the
captures are those bundled: ``samples/``, ``samples/anomalies/``,
``tests/golden/`` and the peers' captures in ``tests/data/peers/``, taken
from NEW. The exit status is 1 when any table differs, and each difference is
printed (table, column, first differing row). A capture with a TLS key
log beside it (``NAME.keys``, as ``make_captures.py`` writes) is read
with it. ``--ignore TABLE.COLUMN``
leaves out a column that is meant to change.

``--written`` compares what ``wspcap.analyze_to`` writes instead (the path
of ``wspcap analyze CAPTURE -o DIR``): each checkout writes every capture's
tables, and the Parquet files are read back with pyarrow and compared
schema (pandas metadata included) and values; ``--written csv,jsonl``
(any of ``parquet``, ``csv``, ``jsonl``) compares those formats too, CSV
and JSON lines byte for byte::

    python benchmarks/compare_checkouts.py OLD NEW --written
    python benchmarks/compare_checkouts.py OLD NEW benchmarks/data/chat.pcap --written parquet,csv,jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

TABLES = ("connections", "frames", "messages", "anomalies")
#: Tables compared when both checkouts have them (issue 18 added ``app``).
LATER_TABLES = ("app",)
SUFFIXES = (".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz")


def bundled(root: Path) -> list[Path]:
    """The captures a checkout bundles."""
    found: list[Path] = []
    for folder in ("samples", "tests/golden", "tests/data/peers"):
        base = root / folder
        if base.is_dir():
            found += sorted(p for p in base.rglob("*") if p.name.endswith(SUFFIXES))
    return found


def dump(checkout: Path, captures: list[Path], out: Path) -> None:
    """Make every table of every capture with ``checkout``'s wspcap, as pickles in ``out``."""
    code = (
        "import json, sys, pickle, wspcap\n"
        "from pathlib import Path\n"
        "out = Path(sys.argv[1]); report = {}\n"
        "for i, name in enumerate(sys.argv[2:]):\n"
        "    try:\n"
        "        keys = Path(name).with_suffix('.keys')\n"
        "        cap = wspcap.read(name, keylog=keys if keys.is_file() else None)\n"
        "    except Exception as exc:\n"
        "        report[name] = f'{type(exc).__name__}: {exc}'\n"
        "        continue\n"
        "    tables = {t: getattr(cap, t) for t in " + repr(TABLES + LATER_TABLES)
        + " if hasattr(cap, t)}\n"
        "    (out / f'{i}.pkl').write_bytes(pickle.dumps(tables))\n"
        "    report[name] = 'ok'\n"
        "(out / 'report.json').write_text(json.dumps(report))\n"
        "print(wspcap.__file__, file=sys.stderr)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(checkout))
    subprocess.run([sys.executable, "-c", code, str(out), *map(str, captures)], env=env,
                   check=True, cwd=checkout)


def dump_written(checkout: Path, captures: list[Path], out: Path, formats: list[str]) -> None:
    """Write every capture's tables with ``checkout``'s ``analyze_to``, into
    ``out/INDEX/FORMAT/``."""
    code = (
        "import json, sys, wspcap\n"
        "from pathlib import Path\n"
        "out, formats = Path(sys.argv[1]), sys.argv[2].split(','); report = {}\n"
        "for i, name in enumerate(sys.argv[3:]):\n"
        "    try:\n"
        "        keys = Path(name).with_suffix('.keys')\n"
        "        for fmt in formats:\n"
        "            wspcap.analyze_to(name, out / str(i) / fmt, fmt,\n"
        "                              keylog=keys if keys.is_file() else None)\n"
        "    except Exception as exc:\n"
        "        report[name] = f'{type(exc).__name__}: {exc}'\n"
        "        continue\n"
        "    report[name] = 'ok'\n"
        "(out / 'report.json').write_text(json.dumps(report))\n"
        "print(wspcap.__file__, file=sys.stderr)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(checkout))
    subprocess.run([sys.executable, "-c", code, str(out), ",".join(formats),
                    *map(str, captures)], env=env, check=True, cwd=checkout)


def _both_read(old: Path, new: Path, captures: list[Path]) -> tuple[list[tuple[int, Path]], int]:
    """The captures both checkouts read (with their positions), and how many
    the two read differently (one failed, or both failed otherwise), printed."""
    old_report = json.loads((old / "report.json").read_text())
    new_report = json.loads((new / "report.json").read_text())
    readable: list[tuple[int, Path]] = []
    differing = 0
    for i, capture in enumerate(captures):
        name = str(capture)
        if old_report[name] == new_report[name] == "ok":
            readable.append((i, capture))
        elif old_report[name] != new_report[name]:
            print(f"{name}: old {old_report[name]!r}, new {new_report[name]!r}")
            differing += 1
    return readable, differing


def compare_written(old: Path, new: Path, captures: list[Path], formats: list[str]) -> int:
    """Print every difference between the files written; return how many differ."""
    import pyarrow.parquet as pq

    readable, differing = _both_read(old, new, captures)
    for i, capture in readable:
        for fmt in formats:
            for table in TABLES + LATER_TABLES:
                a, b = (d / str(i) / fmt / f"{table}.{fmt}" for d in (old, new))
                if table in LATER_TABLES and not (a.exists() and b.exists()):
                    continue
                if not a.exists() or not b.exists():
                    problem = f"file missing: old {a.exists()}, new {b.exists()}"
                elif fmt != "parquet":
                    problem = "" if a.read_bytes() == b.read_bytes() else "files differ"
                else:
                    problem = _parquet_difference(pq.read_table(a), pq.read_table(b))
                if problem:
                    differing += 1
                    print(f"{capture.name} {table}.{fmt}: {problem}")
    return differing


def _parquet_difference(x: Any, y: Any) -> str:
    """What differs between two tables read back from Parquet ("" if nothing)."""
    if not x.schema.equals(y.schema, check_metadata=True):
        if x.schema.equals(y.schema):
            return (f"schema metadata differs: {x.schema.metadata!r:.300} -> "
                    f"{y.schema.metadata!r:.300}")
        return f"schema differs: {x.schema} -> {y.schema}"
    if x.num_rows != y.num_rows:
        return f"rows {x.num_rows} -> {y.num_rows}"
    for name in x.column_names:
        left, right = x.column(name).combine_chunks(), y.column(name).combine_chunks()
        if not left.equals(right):
            diff = [k for k in range(len(left)) if left[k] != right[k]]
            where = diff[0] if diff else "?"
            return f"{name}: {len(diff)} rows differ, first row {where}"
    return ""


def compare(old: Path, new: Path, captures: list[Path], ignore: set[str]) -> int:
    """Print every difference; return how many tables differ."""
    import pickle

    import pandas as pd

    readable, differing = _both_read(old, new, captures)
    for i, capture in readable:
        a = pickle.loads((old / f"{i}.pkl").read_bytes())
        b = pickle.loads((new / f"{i}.pkl").read_bytes())
        for table in TABLES + tuple(t for t in LATER_TABLES if t in a and t in b):
            x, y = a[table], b[table]
            cols = [c for c in x.columns if f"{table}.{c}" not in ignore]
            extra = sorted(set(y.columns) - set(x.columns))
            missing = sorted(set(cols) - set(y.columns))
            problems = []
            if missing:
                problems.append(f"columns gone: {missing}")
            if len(x) != len(y):
                problems.append(f"rows {len(x)} -> {len(y)}")
            for col in cols:
                if col in missing or len(x) != len(y):
                    continue
                # (str() alone would call every categorical "category")
                if str(x[col].dtype) != str(y[col].dtype) or x[col].dtype != y[col].dtype:
                    problems.append(f"{col}: dtype {x[col].dtype} -> {y[col].dtype}")
                    continue
                try:
                    pd.testing.assert_series_equal(x[col].reset_index(drop=True),
                                                   y[col].reset_index(drop=True),
                                                   check_categorical=False)
                except AssertionError:
                    left, right = x[col].reset_index(drop=True), y[col].reset_index(drop=True)
                    diff = [k for k in range(len(left))
                            if not (left[k] is right[k] or repr(left[k]) == repr(right[k]))]
                    where = diff[0] if diff else "?"
                    shown = (f"{left[where]!r:.60} -> {right[where]!r:.60}"
                             if diff else "")
                    problems.append(f"{col}: {len(diff)} rows differ, first row {where} {shown}")
            if problems:
                differing += 1
                print(f"{capture.name} {table}: " + "; ".join(problems))
            elif extra:
                print(f"{capture.name} {table}: new columns {extra} (others equal)")
    return differing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", help="the checkout (folder) taken as reference")
    parser.add_argument("new", help="the checkout (folder) to check")
    parser.add_argument("captures", nargs="*", help="captures (default: the bundled ones)")
    parser.add_argument("--ref", help="make OLD a temporary git worktree of this ref")
    parser.add_argument("--ignore", action="append", default=[], metavar="TABLE.COLUMN")
    parser.add_argument("--written", nargs="?", const="parquet", metavar="FORMATS",
                        help="compare what analyze_to writes, in these formats "
                             "(comma-separated; default parquet)")
    args = parser.parse_args(argv)
    new = Path(args.new).resolve()
    captures = [Path(c).resolve() for c in args.captures] or bundled(new)
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(args.old).resolve()
        if args.ref:
            old = Path(tmp) / "old-checkout"
            subprocess.run(["git", "-C", str(new), "worktree", "add", "-q", "--detach",
                            str(old), args.ref], check=True)
        try:
            (Path(tmp) / "a").mkdir()
            (Path(tmp) / "b").mkdir()
            if args.written:
                formats = args.written.split(",")
                dump_written(old, captures, Path(tmp) / "a", formats)
                dump_written(new, captures, Path(tmp) / "b", formats)
                differing = compare_written(Path(tmp) / "a", Path(tmp) / "b", captures,
                                            formats)
            else:
                dump(old, captures, Path(tmp) / "a")
                dump(new, captures, Path(tmp) / "b")
                differing = compare(Path(tmp) / "a", Path(tmp) / "b", captures,
                                    set(args.ignore))
        finally:
            if args.ref:
                subprocess.run(["git", "-C", str(new), "worktree", "remove", "--force",
                                str(old)], check=False)
    print(f"{len(captures)} captures, {differing} differing tables")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
