#!/usr/bin/env python3
"""Would a second process make application decoding cheaper? (issue 18)

An experiment, not a feature: ``wspcap.read()`` decodes in its own process.
Here the application decoding moves to a helper process that starts with the
read (``python`` running this file with ``--worker``) and is sent each part
of the messages while the capture is still being read (every 4 MB of file,
pickled by the reader and written to the helper's standard input by a
thread, so the reader does not wait on the pipe). At the end the reader
builds its other tables while the helper finishes, then takes the helper's
``app`` table, anomalies and protocols, and makes the same Capture as
``read()`` (checked: the four tables the decoding touches are equal).

Prints the median wall time of ``read()`` without decoding (off), with it
(in-process), and with the helper, alternating the three, and what the
helper way spent: pickling the parts, waiting for the helper at the end,
the helper's whole life and its decoding alone.

Usage::

    python benchmarks/app_worker.py [FILE | chat-jsonrpc] [--repeat N]
"""

from __future__ import annotations

import argparse
import pickle
import queue
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import wspcap
from wspcap.api.reading import _feed, _finish_records, _pipeline, paused_gc
from wspcap.tables.app import AppDecoding, AppResult, facts_of_row, record_columns
from wspcap.tables.build import (
    RunningIndex,
    anomaly_part,
    arrow_table,
    connection_part,
    data_frame,
    frames_table,
    messages_table,
)
from wspcap.tables.capture import Capture
from wspcap.tables.schema import ANOMALIES, APP, CONNECTIONS
from wspcap.ws.records import concat_columns, to_columns

HERE = Path(__file__).resolve().parent
#: File bytes read between two parts sent to the helper.
PART_BYTES = 4 << 20


def worker() -> None:
    """The helper: decode the parts from standard input, answer the result."""
    start = time.perf_counter()
    facts: dict[int, Any] = {}
    decoding = AppDecoding(facts.__getitem__)
    running = RunningIndex()
    feeding = 0.0
    while True:
        message = pickle.load(sys.stdin.buffer)
        if message[0] == "part":
            facts.update(message[1])
            t = time.perf_counter()
            decoding.feed(record_columns(message[2], running))
            feeding += time.perf_counter() - t
            continue
        result = decoding.finish(message[1])
        pickle.dump((result.table, result.anomalies, result.protocols,
                     time.perf_counter() - start, feeding), sys.stdout.buffer, protocol=5)
        sys.stdout.buffer.flush()
        return


def read_with_helper(path: Path) -> tuple[Capture, dict[str, float]]:
    """``read(path)`` with the application decoding in a helper process."""
    helper = subprocess.Popen([sys.executable, __file__, "--worker"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert helper.stdin is not None and helper.stdout is not None
    out: queue.Queue[bytes | None] = queue.Queue()

    def write() -> None:
        assert helper.stdin is not None
        while (data := out.get()) is not None:
            helper.stdin.write(data)
        helper.stdin.close()

    writer = threading.Thread(target=write)
    writer.start()
    pipeline = _pipeline(wspcap.Options(decoders=False), None, None)
    col = pipeline.collector
    state = {"sent": 0, "next": 0}
    pickling = [0.0]
    known: set[int] = set()

    def send(parts: list[Any]) -> None:
        if not parts:
            return
        t = time.perf_counter()
        columns = concat_columns([(c, n) for c, n, _k in parts])
        keys = np.concatenate([k for _c, _n, k in parts])
        new = set((keys >> 1).tolist()) - known
        known.update(new)
        facts = {conn: facts_of_row(col.sessions[conn].record()) for conn in new}
        out.put(pickle.dumps(("part", facts, (columns, keys)), protocol=5))
        pickling[0] += time.perf_counter() - t

    def look(position: int) -> None:
        if position >= state["next"]:
            state["next"] = position + PART_BYTES
            parts = col.message_chunks.parts()
            send(parts[state["sent"]:])
            state["sent"] = len(parts)

    with paused_gc():
        info, truncated, corrupt = _feed(path, pipeline, None, look)
        col, info = _finish_records(pipeline, info, truncated, corrupt=corrupt)
        parts = col.message_chunks.parts()[state["sent"]:]
        if col.messages:
            parts.append((*to_columns(col.messages, col.message_chunks.packing),
                          np.asarray(col.message_keys, np.int64)))
        send(parts)
        messages = messages_table(col)
        connections = arrow_table(CONNECTIONS, connection_part(col))
        tls = dict(zip(connections.column("conn_id").to_pylist(),
                       connections.column("tls").to_pylist(), strict=True))
        out.put(pickle.dumps(("finish", tls), protocol=5))
        out.put(None)
        frames = frames_table(col)
        t = time.perf_counter()
        table, anomalies, protocols, life, decoding = pickle.load(helper.stdout)
        waited = time.perf_counter() - t
        helper.wait()
        writer.join()
        result = AppResult(table, anomalies, protocols)
        capture = Capture(data_frame(CONNECTIONS, result.connection_columns(connections)),
                          frames, messages,
                          data_frame(ANOMALIES, anomaly_part(col, result.anomalies)), info,
                          data_frame(APP, result.table))
    return capture, {"pickling": pickling[0], "waited": waited, "helper life": life,
                     "helper decoding": decoding}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("capture", nargs="?", type=Path, default=HERE / "data" / "chat-jsonrpc.pcap",
                    help="a capture file, or the name of one in benchmarks/data [chat-jsonrpc]")
    ap.add_argument("--repeat", type=int, default=5, help="runs of each way [%(default)s]")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker()
        return 0
    if not args.capture.exists() and not args.capture.suffix:
        args.capture = HERE / "data" / f"{args.capture}.pcap"
    if not args.capture.exists():
        ap.error(f"{args.capture} is missing: make it with benchmarks/make_captures.py "
                 f"--only {args.capture.stem}")
    wspcap.read(args.capture)  # (imports and caches warm)
    ways = ["off", "in-process", "helper"]
    wall: dict[str, list[float]] = {way: [] for way in ways}
    spent: dict[str, list[float]] = {}
    helped = None
    for r in range(args.repeat):
        for way in ways[r % 3:] + ways[:r % 3]:
            start = time.perf_counter()
            if way == "helper":
                helped, figures = read_with_helper(args.capture)
                for name, seconds in figures.items():
                    spent.setdefault(name, []).append(seconds)
            else:
                wspcap.read(args.capture, options=wspcap.Options(decoders=way != "off"))
            wall[way].append(time.perf_counter() - start)
    base = statistics.median(wall["off"])
    print(f"{args.capture.name}: median of {args.repeat} runs (wall)")
    for way in ways:
        median = statistics.median(wall[way])
        print(f"  {way:<11} {median:7.3f} s  {median / base - 1:+6.1%}")
    for name, values in spent.items():
        print(f"    helper way: {name:<16} {statistics.median(values):7.3f} s")
    assert helped is not None
    read = wspcap.read(args.capture)
    for table in ("connections", "messages", "anomalies", "app"):
        pd.testing.assert_frame_equal(getattr(read, table), getattr(helped, table))
    print("  the helper way's tables are read()'s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
