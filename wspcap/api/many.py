"""Scaling out with Dask: many captures at once, or one large capture shared by flow.

Design note
-----------
Goal: the tables :func:`wspcap.read` gives, for thousands of rotated files
(``tcpdump -C``/``-G``), a directory, a glob, or one capture too large for one
core, on a local cluster of processes or on an existing ``dask.distributed``
cluster, with nothing in the tables changed but two added columns.

Plan: one task per capture file, in which a worker calls
:func:`wspcap.read` and sends back the :class:`~wspcap.Capture`. A file
chosen for splitting becomes ``n`` tasks ``read(path, shard=(i, n))``: every
worker reads the whole file but keeps only its share of the connections (the
others cost a decode and a dict lookup each, see
:meth:`wspcap.engine.Pipeline._new_session`), and the shards are merged
again. The client takes the results **in input order**, with at most
``window`` tasks in flight, so its memory stays bounded however many files
there are, and the ids it hands out are the same on every run. When the
tables are to be written (:func:`analyze_many` on a cluster), no table
crosses to the client: it takes each file's row counts, which fix the ids,
and the worker holding the tables writes them (:func:`_analyze_on_cluster`).

Invariants:

- Every table gets a ``capture`` column (categorical): the file name as given,
  after directories and globs are expanded.
- ``conn_id`` is unique across captures: a file's own ids shifted by the
  number of connections in the files before it. The connections table keeps
  the file's own id as ``capture_conn_id`` (what ``wspcap.read(file)`` gives),
  and frames, messages, anomalies and ``app`` are renumbered with the same map.
- The ``app`` table (application events, :mod:`wspcap.tables.app`) is
  combined like the four others (:data:`ALL_TABLES`) and written after them.
- A file split into shards: the shards' connections are numbered in the order
  their TCP connections started (``tcp_stream``), which is
  ``wspcap.read``'s order unless a later connection finished its handshake
  first; frames and messages are put back in capture order (by packet), the
  ``app`` rows in connection order (each connection's rows as its shard had them), and
  the anomalies without a connection (``capture_truncated``,
  ``capture_ip_fragment``), which every shard sees, are kept once.

Warning: the workers open the files by the names given (and write the
output directory), so a remote cluster needs them on storage that the client
and every worker see under the same path.
"""

from __future__ import annotations

import glob
import math
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import pandas as pd

from wspcap.api.reading import read
from wspcap.engine import Options, snap_detail
from wspcap.errors import CaptureFormatError, ConfigError
from wspcap.tables.capture import Capture, CaptureInfo
from wspcap.tables.export import FORMATS, TABLES, write_table

__all__ = ["ALL_TABLES", "SYNC", "DaskCapture", "FileResult", "analyze_many",
           "choose_scheduler", "cluster_min_bytes", "expand_inputs", "merge_shards", "read_many"]

#: Every table combined and written: the four, then ``app``.
ALL_TABLES = TABLES
#: The ``scheduler`` value that runs every task in this process, without Dask.
SYNC = "sync"
#: Tasks in flight per worker: enough to keep workers busy while the client
#: writes, few enough to bound what waits in memory.
TASKS_PER_WORKER = 2
#: First bytes of the files a directory is searched for (pcap in both byte
#: orders, micro- and nanosecond; pcapng; gzip).
CAPTURE_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                  b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a", b"\x1f\x8b")
_GLOB_CHARS = re.compile(r"[*?[]")
# Measured with benchmarks/many.py (benchmarks/README.md, "Many captures"):
#: Seconds a local cluster takes to start and hand out the first tasks (its
#: worker processes import pandas and pyarrow), over reading in this process:
#: 20 small captures take 0.7 s in one process and 3.3 s on a fresh cluster
#: of 2 workers.
CLUSTER_START_SECONDS = 3.0
#: Capture bytes one process reads per second (37-42 MiB/s on 20 files of
#: 2 to 32 MiB).
READ_BYTES_PER_SECOND = 40 << 20
#: What each worker of a local cluster adds, as a share of one process's
#: speed: 2 workers read 640 MiB at 0.89 times one process's speed (0.45
#: each), the cluster spending half as much CPU again as one process.
CLUSTER_EFFICIENCY = 0.45
#: The snap-length row of ``capture_truncated``: its count is per shard.
_SNAP_DETAIL = re.compile(r"^(\d+) packets? (?:was|were) cut by the snap length$")


# -- inputs -----------------------------------------------------------------------------


def _natural(name: str) -> list[Any]:
    """Sort key putting ``cap.pcap2`` before ``cap.pcap10`` (tcpdump -C names)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _looks_like_capture(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head.startswith(CAPTURE_MAGICS)


def expand_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[str]:
    """The capture files named by files, directories and glob patterns.

    A directory gives the capture files directly inside it (found by their
    first bytes, so rotated ``cap.pcap1``, ``cap.pcap2``... count), a pattern
    with ``*``, ``?`` or ``[`` that is not itself a file gives the files it
    matches (``**`` recurses), anything else is taken as a file name. Names
    are sorted naturally within a directory or pattern (``x2`` before
    ``x10``); the inputs' own order is kept, and a file named twice is read
    once.

    Args:
        inputs: file names, directory names and patterns.

    Returns:
        File names, as given or joined to the directory given.

    Raises:
        CaptureFormatError: a directory holds no capture, or a pattern
            matches no file.
        ConfigError: there is no input at all.
    """
    out: list[str] = []
    seen: set[str] = set()
    for item in inputs:
        name = os.fspath(item)
        if os.path.isdir(name):
            found = sorted((os.path.join(name, entry) for entry in os.listdir(name)
                            if not entry.startswith(".")), key=_natural)
            found = [p for p in found if os.path.isfile(p) and _looks_like_capture(p)]
            if not found:
                raise CaptureFormatError(name, "no capture file in this directory")
        elif not os.path.exists(name) and _GLOB_CHARS.search(name):
            found = sorted((p for p in glob.glob(name, recursive=True) if os.path.isfile(p)),
                           key=_natural)
            if not found:
                raise CaptureFormatError(name, "no file matches this pattern")
        else:
            found = [name]
        for path in found:
            if path not in seen:
                seen.add(path)
                out.append(path)
    if not out:
        raise ConfigError("captures", "no capture given")
    return out


# -- where tasks run ----------------------------------------------------------------------


def cluster_min_bytes(workers: int) -> float:
    """Input bytes from which a local cluster of ``workers`` processes beats
    reading in this process: where ``start + T / speedup < T``, ``T`` being
    the one-process time and ``speedup = workers * CLUSTER_EFFICIENCY``
    (:data:`CLUSTER_START_SECONDS`, :data:`READ_BYTES_PER_SECOND`). Never
    for 1 or 2 workers (measured: 2 workers lose at every size up to 640
    MiB), about 270 MiB for 4, 170 MiB for 8. ``benchmarks/many.py``
    measures it."""
    speedup = workers * CLUSTER_EFFICIENCY
    if speedup <= 1:
        return math.inf
    return CLUSTER_START_SECONDS * READ_BYTES_PER_SECOND / (1 - 1 / speedup)


def choose_scheduler(files: Sequence[str], scheduler: Any, workers: int | None) -> Any:
    """Where the work runs: the scheduler asked for, or one chosen by work size.

    A scheduler given (``"sync"``, an address, a ``distributed.Client``) is
    kept. Otherwise ``workers=1`` means this process, ``workers`` above 1 a
    local cluster of that many processes, and without either the total size
    of the files decides: under :func:`cluster_min_bytes` for one worker
    per core (never reached on one core) this process, where 20 small
    captures take a second or two rather than the cluster's start; from it
    on, a local cluster.

    Args:
        files: the capture files (after :func:`expand_inputs`).
        scheduler: as for :func:`read_many` (None: choose).
        workers: as for :func:`read_many`.

    Returns:
        :data:`SYNC`, or None for a local cluster, or ``scheduler`` as given.
    """
    if scheduler is not None:
        return scheduler
    if workers is not None:
        return SYNC if workers == 1 else None
    least = cluster_min_bytes(os.cpu_count() or 1)
    total = 0
    for path in files:
        try:
            total += os.path.getsize(path)
        except OSError:
            pass  # reading it will say what is wrong
        if total >= least:
            return None
    return SYNC



class _Runner:
    """Runs tasks in this process (``"sync"``) or on a ``dask.distributed`` cluster.

    Args:
        scheduler: None (start a local cluster of processes), ``"sync"``, a
            scheduler address such as ``tcp://host:8786``, or a
            ``distributed.Client``.
        workers: worker processes of a local cluster (default: one per core);
            with an existing cluster, the number of shards a split file gets.
    """

    def __init__(self, scheduler: Any, workers: int | None) -> None:
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise ConfigError("workers", f"{workers!r} is not a positive integer")
        self.client: Any = None
        self.cluster: Any = None
        self.own_client = False
        if scheduler == SYNC:
            self.nworkers = 1
            return
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("scheduler", "dask.distributed is not installed (pip install "
                              "'wspcap[dask]'); the scheduler 'sync' reads the files one "
                              "after the other without it") from None
        if scheduler is None:
            n = workers or os.cpu_count() or 1
            self.cluster = LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0")
            self.client = Client(self.cluster)  # type: ignore[no-untyped-call]
            self.own_client = True
            self.nworkers = n
        elif isinstance(scheduler, str):
            try:
                self.client = Client(scheduler)  # type: ignore[no-untyped-call]
            except (OSError, ValueError) as exc:
                raise ConfigError("scheduler", f"cannot connect to {scheduler}: {exc}") from None
            self.own_client = True
            self.nworkers = workers or max(1, sum(self.client.nthreads().values()))
        elif isinstance(scheduler, Client):
            self.client = scheduler
            self.nworkers = workers or max(1, sum(self.client.nthreads().values()))
        else:
            raise ConfigError("scheduler", f"{scheduler!r} is not None, 'sync', an address "
                              "or a distributed.Client")

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.client is None:
            return (fn, args)  # run when its result is asked for
        return self.client.submit(fn, *args, pure=False)

    def result(self, handle: Any) -> Any:
        if self.client is None:
            fn, args = handle
            return fn(*args)
        return handle.result()

    def close(self) -> None:
        if self.own_client and self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.client = self.cluster = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_task(path: str, shard: tuple[int, int] | None, options: Options | None) -> Capture:
    """What a worker does: read one file (or one shard of it)."""
    return read(path, options=options, shard=shard)


def _plan(paths: Sequence[str], nworkers: int, split_large: int | None) -> list[int]:
    """Shards per file: every worker shares a lone file, and files of at least
    ``split_large`` bytes."""
    if nworkers <= 1:
        return [1] * len(paths)
    plan = []
    for path in paths:
        split = len(paths) == 1
        if split_large is not None and not split:
            try:
                split = os.path.getsize(path) >= split_large
            except OSError:
                split = False
        plan.append(nworkers if split else 1)
    return plan


def _tasks(paths: Sequence[str], plan: Sequence[int]
           ) -> Iterator[tuple[int, str, tuple[int, int] | None]]:
    for index, (path, n) in enumerate(zip(paths, plan)):
        if n == 1:
            yield index, path, None
        else:
            for i in range(n):
                yield index, path, (i, n)


def _submit_file(client: Any, path: str, n: int, options: Options | None) -> Any:
    """A file's Capture on the cluster: read by ``n`` shards (``n`` tasks, merged
    on a worker) or whole (``n == 1``); returns its future."""
    if n == 1:
        return client.submit(_read_task, path, None, options, pure=False)
    shards = [client.submit(_read_task, path, (i, n), options, pure=False) for i in range(n)]
    return client.submit(merge_shards, shards, pure=False)


def _iter_captures(paths: Sequence[str], runner: _Runner, plan: Sequence[int],
                   options: Options | None) -> Iterator[tuple[int, str, Capture]]:
    """Each file's Capture (shards merged), in input order, with a bounded window."""
    window = max(1, runner.nworkers * TASKS_PER_WORKER) if runner.client is not None else 1
    todo = _tasks(paths, plan)
    pending: deque[tuple[int, str, tuple[int, int] | None, Any]] = deque()

    def fill() -> None:
        while len(pending) < window:
            task = next(todo, None)
            if task is None:
                return
            index, path, shard = task
            pending.append((index, path, shard, runner.submit(_read_task, path, shard, options)))

    fill()
    shards: list[Capture] = []
    while pending:
        index, path, shard, handle = pending.popleft()
        capture = runner.result(handle)
        del handle
        fill()
        shards.append(capture)
        if shard is None or shard[0] == shard[1] - 1:
            yield index, path, merge_shards(shards)
            shards = []


# -- merging ------------------------------------------------------------------------------


def _union_categories(lists: Sequence[Sequence[Any]]) -> list[Any]:
    """Categories of several tables: sorted when each list was, else first-seen order."""
    seen: dict[Any, None] = {}
    for cats in lists:
        seen.update(dict.fromkeys(cats))
    union = list(seen)
    if all(list(cats) == sorted(cats) for cats in lists):
        union.sort()
    return union


def _concat(dfs: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate tables of one schema, keeping categoricals categorical."""
    if len(dfs) == 1:
        return dfs[0].reset_index(drop=True)
    dfs = list(dfs)
    for name in dfs[0].columns:
        dtypes = [df[name].dtype for df in dfs]
        if not isinstance(dtypes[0], pd.CategoricalDtype) or all(d == dtypes[0] for d in dtypes):
            continue
        cats = _union_categories([list(d.categories) for d in dtypes])
        dtype = pd.CategoricalDtype(cats, ordered=dtypes[0].ordered)
        dfs = [df.assign(**{name: df[name].astype(dtype)}) for df in dfs]
    return pd.concat(dfs, ignore_index=True)


def _map_ids(ids: pd.Series, lut: np.ndarray) -> Any:
    """``lut[conn_id]`` for a nullable Int64 column (missing ids stay missing)."""
    mask = ids.notna().to_numpy()
    values = ids.to_numpy(dtype=np.int64, na_value=0)
    mapped = np.zeros(len(values), dtype=np.int64)
    mapped[mask] = lut[values[mask]]
    return pd.arrays.IntegerArray(mapped, ~mask)


def _snap_count(detail: object) -> int | None:
    match = _SNAP_DETAIL.match(str(detail))
    return int(match.group(1)) if match else None


def merge_shards(parts: Sequence[Capture]) -> Capture:
    """One file's Capture from the Captures of its shards ``(0, n) ... (n-1, n)``.

    Connections are numbered by ``tcp_stream``; frames and messages are put
    back in capture order; the anomalies that belong to no connection, which
    every shard reports, are kept once (the snap-length count is summed).

    Args:
        parts: ``read(path, shard=(i, n))`` for every ``i``, in order.
    """
    if len(parts) == 1:
        return parts[0]
    streams = np.concatenate([p.connections["tcp_stream"].to_numpy(np.int64) for p in parts])
    new_ids = np.empty(len(streams), dtype=np.int64)
    new_ids[np.argsort(streams, kind="stable")] = np.arange(len(streams), dtype=np.int64)
    luts = []
    start = 0
    for p in parts:
        old = p.connections["conn_id"].to_numpy(np.int64)
        lut = np.zeros(int(old.max()) + 1 if len(old) else 0, dtype=np.int64)
        lut[old] = new_ids[start:start + len(old)]
        start += len(old)
        luts.append(lut)

    connections = _concat([p.connections.assign(conn_id=lut[p.connections["conn_id"]
                                                            .to_numpy(np.int64)])
                           for p, lut in zip(parts, luts)])
    connections = connections.sort_values("conn_id", kind="stable").reset_index(drop=True)
    frames = _concat([p.frames.assign(conn_id=lut[p.frames["conn_id"].to_numpy(np.int64)])
                      for p, lut in zip(parts, luts)])
    frames = frames.sort_values("packet", kind="stable").reset_index(drop=True)
    messages = _concat([p.messages.assign(conn_id=lut[p.messages["conn_id"]
                                                      .to_numpy(np.int64)])
                        for p, lut in zip(parts, luts)])
    messages = messages.sort_values("packet_end", kind="stable").reset_index(drop=True)
    # A connection's app rows are all in one shard, in its order: a stable sort
    # by the new ids gives read()'s order (connection after connection).
    app = _concat([p.app.assign(conn_id=lut[p.app["conn_id"].to_numpy(np.int64)])
                   for p, lut in zip(parts, luts)])
    app = app.sort_values("conn_id", kind="stable").reset_index(drop=True)

    anomalies = []
    snap_rows: list[pd.DataFrame] = []
    snap_count = 0
    for s, (p, lut) in enumerate(zip(parts, luts)):
        a = p.anomalies
        global_rows = a["conn_id"].isna().to_numpy()
        counts = [_snap_count(d) if g else None for d, g in zip(a["detail"], global_rows)]
        snap = np.array([c is not None for c in counts], dtype=bool)
        if snap.any():
            snap_rows.append(a[snap])
            snap_count += sum(c for c in counts if c is not None)
        keep = ~global_rows | (global_rows & ~snap & (s == 0))
        kept = a[keep]
        anomalies.append(kept.assign(conn_id=_map_ids(kept["conn_id"], lut)))
    if snap_rows:
        row = snap_rows[0].iloc[:1].copy()
        detail = snap_detail(snap_count)
        row["detail"] = pd.Series([detail], index=row.index, dtype=row["detail"].dtype)
        anomalies.append(row)
    merged_anomalies = _concat(anomalies).sort_values("ts", kind="stable").reset_index(drop=True)

    first = parts[0].info
    counters = dict(first.counters)
    if "snap_length_cut" in counters:
        counters["snap_length_cut"] = sum(p.info.counters.get("snap_length_cut", 0)
                                          for p in parts)
    info = CaptureInfo(first.source, first.format, first.packets, first.tcp_connections,
                       first.truncated, counters)
    return Capture(connections, frames, messages, merged_anomalies, info, app)


def _label(df: pd.DataFrame, table: str, name_code: int, names: Sequence[str],
           offset: int) -> pd.DataFrame:
    """One table of one file: add ``capture``, shift ``conn_id`` by ``offset``."""
    out = df.copy(deep=False)
    conn = out["conn_id"]
    out["conn_id"] = conn + offset
    if table == "connections":
        out.insert(list(out.columns).index("conn_id") + 1, "capture_conn_id", conn)
    capture = pd.Categorical.from_codes(np.full(len(out), name_code, dtype=np.int32),
                                        dtype=pd.CategoricalDtype(list(names)))
    out.insert(0, "capture", pd.Series(capture, index=out.index))
    return out


def _label_capture(capture: Capture, name_code: int, names: Sequence[str],
                   offset: int) -> dict[str, pd.DataFrame]:
    return {table: _label(getattr(capture, table), table, name_code, names, offset)
            for table in ALL_TABLES}


def _merge_infos(paths: Sequence[str], infos: Sequence[CaptureInfo]) -> CaptureInfo:
    if len(infos) == 1:
        return infos[0]
    counters: dict[str, int] = {}
    for info in infos:
        for key, value in info.counters.items():
            counters[key] = counters.get(key, 0) + value
    truncated = "; ".join(f"{i.source}: {i.truncated}" for i in infos if i.truncated)
    formats = list(dict.fromkeys(i.format for i in infos))
    source = (", ".join(paths) if len(paths) <= 3
              else f"{paths[0]} and {len(paths) - 1} more captures")
    return CaptureInfo(source, "+".join(formats), sum(i.packets for i in infos),
                       sum(i.tcp_connections for i in infos), truncated or None, counters)


# -- the library entry points ---------------------------------------------------------------


def read_many(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
              scheduler: Any = None, workers: int | None = None, as_dask: bool = False, *,
              split_large: int | None = None, options: Options | None = None,
              progress: Callable[[int, int], None] | None = None) -> Capture:
    """Read many captures in parallel into one :class:`~wspcap.Capture`.

    Each file is one task, in which a worker runs :func:`wspcap.read`. The
    tables are those of the files one after the other, with a ``capture``
    column (the file name) first, ``conn_id`` unique across files and, in the
    connections table, ``capture_conn_id`` (the id within the file). A lone
    file, and every file of at least ``split_large`` bytes, is shared among
    the workers by flow (``read(path, shard=(i, n))``).

    Args:
        paths: files, directories and glob patterns (see :func:`expand_inputs`).
        scheduler: None chooses by work size (see :func:`choose_scheduler`):
            this process for small jobs, else a local cluster of worker
            processes (closed afterwards; always with ``as_dask``);
            ``"sync"`` reads in this process without Dask; an
            address such as ``"tcp://host:8786"`` connects to a running
            ``dask.distributed`` scheduler; a ``distributed.Client`` is used
            as is.
        workers: processes of the local cluster (default: one per core; 1
            reads in this process); with another cluster, the shards a split
            file gets (default: its threads).
        as_dask: give dask DataFrames (one partition per file) instead of
            pandas ones; see :class:`DaskCapture`.
        split_large: files of at least this many bytes are shared by flow.
        options: engine limits for every file.
        progress: called with (files done, files) after each file.

    Returns:
        A :class:`~wspcap.Capture` (a :class:`DaskCapture` with ``as_dask``).

    Raises:
        CaptureFormatError: a file is not a capture, a directory holds none,
            or a pattern matches nothing.
        ConfigError: a bad scheduler or worker count, or Dask is missing.
    """
    files = expand_inputs([paths] if isinstance(paths, (str, os.PathLike)) else paths)
    if as_dask:
        return _read_many_dask(files, scheduler, workers, split_large, options)
    scheduler = choose_scheduler(files, scheduler, workers)
    tables: dict[str, list[pd.DataFrame]] = {t: [] for t in ALL_TABLES}
    infos = []
    offset = 0
    with _Runner(scheduler, workers) as runner:
        plan = _plan(files, runner.nworkers, split_large)
        for index, _path, capture in _iter_captures(files, runner, plan, options):
            for table, df in _label_capture(capture, index, files, offset).items():
                tables[table].append(df)
            offset += len(capture.connections)
            infos.append(capture.info)
            if progress is not None:
                progress(index + 1, len(files))
    connections, frames, messages, anomalies, app = (_concat(tables[t]) for t in ALL_TABLES)
    return Capture(connections, frames, messages, anomalies, _merge_infos(files, infos), app)


class DaskCapture(Capture):
    """A :class:`~wspcap.Capture` whose tables are dask DataFrames.

    Partitions are files, in input order. With a cluster, the partitions stay
    in the workers' memory: call ``.compute()`` on a table (or a query on it)
    to bring the result here, and :meth:`close` (or use ``with``) when done,
    which stops the local cluster :func:`read_many` started.

    Attributes:
        client: the ``distributed.Client`` holding the data (None for ``sync``).
    """

    def __init__(self, connections: Any, frames: Any, messages: Any, anomalies: Any,
                 info: CaptureInfo, runner: _Runner | None = None, app: Any = None) -> None:
        super().__init__(connections, frames, messages, anomalies, info, app)
        self._runner = runner
        self.client = runner.client if runner is not None else None

    def close(self) -> None:
        """Release the cluster (when :func:`read_many` started or connected it)."""
        if self._runner is not None:
            self._runner.close()
            self._runner = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<DaskCapture {self.info.source!r}: {self.frames.npartitions} partitions, "
                f"{self.info.packets} packets>")

    def _repr_html_(self) -> str:
        import html
        return f"<pre>{html.escape(repr(self))}</pre>"


def _describe(capture: Capture) -> tuple[int, CaptureInfo, dict[str, dict[str, list[Any]]]]:
    """Small facts about a capture kept on a worker: connections, info, categories."""
    cats = {table: {name: list(col.cat.categories)
                    for name, col in getattr(capture, table).items()
                    if isinstance(col.dtype, pd.CategoricalDtype)}
            for table in ALL_TABLES}
    return len(capture.connections), capture.info, cats


def _label_table(capture: Capture, table: str, name_code: int, names: Sequence[str],
                 offset: int, categories: dict[str, list[Any]]) -> pd.DataFrame:
    df = _label(getattr(capture, table), table, name_code, names, offset)
    for name, cats in categories.items():
        df[name] = df[name].cat.set_categories(cats)
    return df


def _read_many_dask(files: list[str], scheduler: Any, workers: int | None,
                    split_large: int | None, options: Options | None) -> DaskCapture:
    import dask
    import dask.dataframe as dd
    from dask.delayed import delayed

    def no_strings() -> Any:
        """Payloads are bytes: dask must not turn object columns into strings."""
        return dask.config.set({"dataframe.convert-string": False})

    if scheduler == SYNC:
        capture = read_many(files, SYNC, options=options)
        by_file = {t: [getattr(capture, t)[getattr(capture, t)["capture"] == name]
                       .reset_index(drop=True) for name in files] for t in ALL_TABLES}
        with no_strings():
            tables = [dd.from_delayed([delayed(df) for df in by_file[t]],
                                      meta=by_file[t][0].iloc[:0], verify_meta=False)
                      for t in ALL_TABLES]
        connections, frames, messages, anomalies, app = tables
        return DaskCapture(connections, frames, messages, anomalies, capture.info, app=app)
    runner = _Runner(scheduler, workers)
    try:
        client = runner.client
        plan = _plan(files, runner.nworkers, split_large)
        per_file = [_submit_file(client, path, n, options) for path, n in zip(files, plan)]
        facts = client.gather([client.submit(_describe, f, pure=False) for f in per_file])
        offsets = np.concatenate([[0], np.cumsum([f[0] for f in facts])[:-1]]).tolist()
        tables = []
        for table in ALL_TABLES:
            names = facts[0][2][table].keys()
            categories = {name: _union_categories([f[2][table][name] for f in facts])
                          for name in names}
            parts = [client.submit(_label_table, f, table, i, files, int(offsets[i]),
                                   categories, pure=False) for i, f in enumerate(per_file)]
            meta = client.submit(lambda df: df.iloc[:0], parts[0], pure=False).result()
            with no_strings():
                tables.append(dd.from_delayed(parts, meta=meta, verify_meta=False))
        del per_file  # the labelled tables are all the workers keep
        info = _merge_infos(files, [f[1] for f in facts])
        connections, frames, messages, anomalies, app = tables
        return DaskCapture(connections, frames, messages, anomalies, info, runner, app)
    except BaseException:
        runner.close()
        raise


# -- the command line's engine ----------------------------------------------------------------


@dataclass
class FileResult:
    """What :func:`analyze_many` did with one file.

    Attributes:
        path: the file.
        info: how reading it went.
        connections, frames, messages, anomalies: rows of each table.
        first_conn_id: its connections have ids ``first_conn_id`` onwards.
        app: rows of the ``app`` table.
    """

    path: str
    info: CaptureInfo
    connections: int
    frames: int
    messages: int
    anomalies: int
    first_conn_id: int
    app: int = 0


def analyze_many(inputs: Iterable[str | os.PathLike[str]],
                 directory: str | os.PathLike[str] | None = None, fmt: str = "parquet",
                 scheduler: Any = None, workers: int | None = None,
                 split_large: int | None = None, options: Options | None = None,
                 progress: Callable[[FileResult, int], None] | None = None
                 ) -> list[FileResult]:
    """Read many captures in parallel and write one dataset per table.

    With ``directory``, each table (the four, then ``app``) becomes a directory of parts,
    ``DIR/<table>/part-NNNNN.<fmt>`` (one per file that has rows; ``NNNNN``
    is the file's position in the input), with the columns of
    :func:`read_many` (``capture``, unique ``conn_id``, ``capture_conn_id``).
    ``pandas.read_parquet(DIR / "frames")`` reads a table back whole. Parts
    left there by an earlier run are removed first. Files are written as they
    come, so the client holds only a few files' tables at a time.

    Args:
        inputs: files, directories and glob patterns.
        directory: where to write; None only counts.
        fmt: ``parquet``, ``csv`` or ``jsonl``.
        scheduler, workers, split_large, options: as for :func:`read_many`.
        progress: called after each file with its result and the number of files.

    Returns:
        One :class:`FileResult` per file, in input order.
    """
    if fmt not in FORMATS:
        raise ConfigError("format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
    files = expand_inputs(inputs)
    scheduler = choose_scheduler(files, scheduler, workers)
    dirs = {}
    if directory is not None:
        for table in ALL_TABLES:
            d = os.path.join(os.fspath(directory), table)
            os.makedirs(d, exist_ok=True)
            for stale in glob.glob(os.path.join(glob.escape(d), f"part-*.{fmt}")):
                os.remove(stale)
            dirs[table] = d
    results: list[FileResult] = []
    empty: dict[str, tuple[int, pd.DataFrame]] = {}
    written: set[str] = set()

    def wrote(result: FileResult, index: int, empties: dict[str, pd.DataFrame]) -> None:
        results.append(result)
        for table in ALL_TABLES:
            if table not in empties:
                written.add(table)
            elif table not in empty:
                empty[table] = (index, empties[table])
        if progress is not None:
            progress(result, len(files))

    with _Runner(scheduler, workers) as runner:
        plan = _plan(files, runner.nworkers, split_large)
        if runner.client is not None:
            _analyze_on_cluster(files, runner, plan, options, dirs, fmt, wrote)
        else:
            offset = 0
            for index, path, capture in _iter_captures(files, runner, plan, options):
                result = _file_result(path, _describe_file(capture), offset)
                empties = _write_file(capture, index, path, offset, dirs, fmt)
                offset += result.connections
                del capture
                wrote(result, index, empties)
    for table, (index, df) in empty.items():
        if dirs and table not in written:  # an empty table is still a readable, typed dataset
            write_table(df, os.path.join(dirs[table], f"part-{index:05d}.{fmt}"), fmt)
    return results


def _describe_file(capture: Capture) -> tuple[CaptureInfo, int, int, int, int, int]:
    """A file's info and row counts (what the client needs of its tables)."""
    return (capture.info, len(capture.connections), len(capture.frames),
            len(capture.messages), len(capture.anomalies), len(capture.app))


def _file_result(path: str, counts: tuple[CaptureInfo, int, int, int, int, int],
                 offset: int) -> FileResult:
    """The :class:`FileResult` of a file's :func:`_describe_file`."""
    info, conns, frames, messages, anomalies, app = counts
    return FileResult(path, info, conns, frames, messages, anomalies, offset, app)


def _write_file(capture: Capture, index: int, path: str, offset: int, dirs: dict[str, str],
                fmt: str) -> dict[str, pd.DataFrame]:
    """Label a file's tables (its connections numbered from ``offset``) and
    write each one that has rows as part ``index`` of its dataset (nothing
    without ``dirs``); returns the tables without rows, typed (see
    :func:`analyze_many`)."""
    empties = {}
    for table, df in _label_capture(capture, 0, [path], offset).items():
        if not len(df):
            empties[table] = df
        elif dirs:
            write_table(df, os.path.join(dirs[table], f"part-{index:05d}.{fmt}"), fmt)
    return empties


def _analyze_on_cluster(files: Sequence[str], runner: _Runner, plan: Sequence[int],
                        options: Options | None, dirs: dict[str, str], fmt: str,
                        wrote: Callable[[FileResult, int, dict[str, pd.DataFrame]], None]
                        ) -> None:
    """:func:`analyze_many` on a cluster: the workers write the tables.

    Each file is read (by shards where planned) and its shards merged on the
    workers; the client only asks for each file's row counts, in input order,
    to number its connections after the earlier files', then has the worker
    holding the tables write them. So no table crosses to the client, whose
    work does not grow with the payload; at most a window of files is in
    flight, and their tables are let go of once written.
    """
    client = runner.client
    window = max(1, runner.nworkers * TASKS_PER_WORKER)
    todo = iter(enumerate(zip(files, plan, strict=True)))
    reading: deque[tuple[int, str, Any, Any]] = deque()  # index, path, tables, counts
    writing: deque[tuple[int, FileResult, Any]] = deque()

    def fill() -> None:
        while len(reading) + len(writing) < window:
            item = next(todo, None)
            if item is None:
                return
            index, (path, n) = item
            tables = _submit_file(client, path, n, options)
            reading.append((index, path, tables,
                            client.submit(_describe_file, tables, pure=False)))

    offset = 0
    fill()
    while reading or writing:
        if reading:
            index, path, tables, counts = reading.popleft()
            result = _file_result(path, counts.result(), offset)
            offset += result.connections
            writing.append((index, result, client.submit(_write_file, tables, index, path,
                                                         result.first_conn_id, dirs, fmt,
                                                         pure=False)))
            del tables, counts
        if writing and (not reading or len(writing) >= runner.nworkers):
            index, result, done = writing.popleft()
            wrote(result, index, done.result())
        fill()
