"""Scaling out with Dask (:mod:`wspcap.api.many`): many captures, or one shared by flow.

The reference is always the one-process result, ``wspcap.read`` on each file;
ids are compared through ``tcp_stream`` (the position of the TCP connection in
the file), which sharding and renumbering leave alone. The flow hash is
recomputed here from the connections table, from the formula documented in
``docs/cluster.md``.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest
from golden.paths import peers_location

import wspcap
from wspcap.api import many as parallel
from wspcap.api.many import _plan, analyze_many, expand_inputs
from wspcap.cli import main
from wspcap.errors import CaptureFormatError, ConfigError
from wspcap.sources import open_capture

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SAMPLE_FILES = sorted(str(p) for p in SAMPLES.glob("*.pcap*"))
PEERS = peers_location()
#: Every table read_many combines and analyze_many writes: the four, then ``app``.
TABLES = ("connections", "frames", "messages", "anomalies", "app")
#: Seconds any one test may take, cluster start included.
TEST_TIME_LIMIT = 90


@pytest.fixture(autouse=True)
def _time_limit():
    """Bound every test: a hung cluster fails the test instead of the suite."""
    def expired(signum, frame):
        raise TimeoutError(f"test took over {TEST_TIME_LIMIT} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_TIME_LIMIT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def client():
    """A real local cluster: two worker processes, one thread each."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0")
    dask_client = distributed.Client(cluster, timeout="30s")
    try:
        yield dask_client
    finally:
        dask_client.close()
        cluster.close()


# -- helpers --------------------------------------------------------------------------------


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    """Categoricals as their values (category lists differ by what each file holds)."""
    return df.assign(**{name: df[name].astype(object) for name in df.columns
                        if isinstance(df[name].dtype, pd.CategoricalDtype)})


def _one_process(files: list[str]) -> dict[str, pd.DataFrame]:
    """``wspcap.read`` on each file, concatenated, with the documented renumbering:
    ``conn_id`` shifted by the connections of the files before."""
    out: dict[str, list[pd.DataFrame]] = {t: [] for t in TABLES}
    offset = 0
    for path in files:
        cap = wspcap.read(path)
        for table in TABLES:
            df = _plain(getattr(cap, table))
            if table == "connections":
                df.insert(1, "capture_conn_id", df["conn_id"])
            df["conn_id"] = df["conn_id"] + offset
            df.insert(0, "capture", path)
            out[table].append(df)
        offset += len(cap.connections)
    return {t: pd.concat(dfs, ignore_index=True) for t, dfs in out.items()}


def _capture(table: Callable[[str], pd.DataFrame]) -> wspcap.Capture:
    """A Capture of the tables ``table(name)`` gives (``app`` by keyword: the
    fifth positional argument is the info)."""
    return wspcap.Capture(*(table(t) for t in TABLES[:4]), app=table("app"))


def _assert_same_as_one_process(result: wspcap.Capture, files: list[str]) -> None:
    expected = _one_process(files)
    for table in TABLES:
        got = getattr(result, table)
        assert isinstance(got["capture"].dtype, pd.CategoricalDtype)
        pdt.assert_frame_equal(_plain(got).astype({"capture": str}),
                               expected[table].astype({"capture": str}), obj=table)
    assert result.connections["conn_id"].is_unique
    # Every frame, message and anomaly joins back to a connection of its own capture.
    conns = result.connections.set_index("conn_id")["capture"].astype(object)
    for table in ("frames", "messages", "anomalies", "app"):
        df = getattr(result, table)
        bound = df[df["conn_id"].notna()]
        assert (bound["conn_id"].map(conns).to_numpy()
                == bound["capture"].astype(object).to_numpy()).all()


def _by_stream(capture: wspcap.Capture) -> dict[str, pd.DataFrame]:
    """The tables with ``conn_id`` replaced by ``tcp_stream``, in a canonical order."""
    streams = capture.connections.set_index("conn_id")["tcp_stream"]
    drop = [c for c in ("capture", "capture_conn_id") if c in capture.connections.columns]
    out = {"connections": _plain(capture.connections.drop(columns=drop + ["conn_id"]))
           .sort_values("tcp_stream").reset_index(drop=True)}
    keys = {"frames": ["tcp_stream", "frame_index"], "messages": ["tcp_stream", "msg_index"],
            "app": ["tcp_stream", "msg_index", "part"],
            "anomalies": ["tcp_stream", "ts", "code", "detail", "frame_index"]}
    for table, key in keys.items():
        df = _plain(getattr(capture, table))
        df = df.drop(columns=[c for c in ("capture",) if c in df.columns])
        stream = df["conn_id"].map(streams)
        df = df.drop(columns=["conn_id"]).assign(tcp_stream=stream.astype("Int64"))
        out[table] = df.sort_values(key, kind="stable", na_position="first").reset_index(
            drop=True)[sorted(df.columns)]
    return out


def _only(capture: wspcap.Capture, name: str) -> wspcap.Capture:
    """The rows of one capture file."""
    return _capture(lambda t: getattr(capture, t)[getattr(capture, t)["capture"] == name])


def _flow_shard(row: object, n: int) -> int:
    """The documented flow hash: crc32 of the smaller of the two directions'
    ``ip_a + ip_b + port_a + port_b``, modulo n."""
    a = ipaddress.ip_address(row.client_ip).packed  # type: ignore[attr-defined]
    b = ipaddress.ip_address(row.server_ip).packed  # type: ignore[attr-defined]
    pa = struct.pack("!H", row.client_port)  # type: ignore[attr-defined]
    pb = struct.pack("!H", row.server_port)  # type: ignore[attr-defined]
    return zlib.crc32(min(a + b + pa + pb, b + a + pb + pa)) % n


@pytest.fixture(scope="module")
def merged(tmp_path_factory) -> Path:
    """One pcap with the connections of every Ethernet sample, in time order; the
    packets of ``plain.pcap`` over 600 bytes cut by a snap length, and the file cut
    in the middle of its last record: anomalies with and without a connection."""
    records = []
    for path in SAMPLE_FILES:
        with open_capture(path) as cap:
            for number, ts, linktype, data, wirelen in cap:
                if linktype != 1:
                    break
                if path.endswith("plain.pcap") and len(data) > 600:
                    data = data[:600]
                records.append((ts, data, wirelen))
    records.sort(key=lambda r: r[0])
    out = tmp_path_factory.mktemp("merged") / "merged.pcap"
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1))
        for ts, data, wirelen in records:
            f.write(struct.pack("<IIII", ts // 10**9, ts % 10**9, len(data), wirelen) + data)
        f.write(struct.pack("<IIII", 0, 0, 100, 100) + b"\0" * 10)
    return out


# -- sharding: read(path, shard=(i, n)) ---------------------------------------------------------


class TestShard:
    """One file shared by flow: every shard keeps its own connections, whole."""

    def test_merged_capture_has_the_anomalies_sharding_must_keep_once(self, merged):
        whole = wspcap.read(merged)
        codes = set(whole.anomalies["code"].astype(str))
        assert "capture_truncated" in codes
        assert whole.info.counters["snap_length_cut"] > 0
        assert whole.anomalies["conn_id"].notna().any()
        assert len(whole.connections) >= 8
        assert set(whole.app["protocol"].astype(str)) == {"mqtt", "socketio"}

    @pytest.mark.parametrize("n", [2, 3])
    def test_union_of_shards_is_the_whole(self, merged, n):
        whole = wspcap.read(merged)
        shards = [wspcap.read(merged, shard=(i, n)) for i in range(n)]
        streams = [set(s.connections["tcp_stream"]) for s in shards]
        assert set().union(*streams) == set(whole.connections["tcp_stream"])
        assert sum(len(s) for s in streams) == len(whole.connections)  # disjoint
        for i, s in enumerate(shards):
            assert all(_flow_shard(r, n) == i for r in s.connections.itertuples())
        expected = _by_stream(whole)
        got = [_by_stream(s) for s in shards]
        keys = {"connections": [], "frames": ["frame_index"], "messages": ["msg_index"],
                "app": ["msg_index", "part"]}
        for table, more in keys.items():
            union = pd.concat([g[table] for g in got], ignore_index=True)
            key = ["tcp_stream", *more]
            union = union.sort_values(key, kind="stable").reset_index(drop=True)
            pdt.assert_frame_equal(union, expected[table], obj=table)
        bound = [g["anomalies"][g["anomalies"]["tcp_stream"].notna()] for g in got]
        union = pd.concat(bound, ignore_index=True).sort_values(
            ["tcp_stream", "ts", "code", "detail", "frame_index"], kind="stable"
        ).reset_index(drop=True)
        whole_bound = expected["anomalies"][expected["anomalies"]["tcp_stream"].notna()]
        pdt.assert_frame_equal(union, whole_bound.reset_index(drop=True))
        # The whole file's anomalies without a connection, bar the snap-length count,
        # are seen by every shard.
        def unbound(df):
            rows = df[df["tcp_stream"].isna()]
            rows = rows[~rows["detail"].str.contains("snap length")]
            return rows.reset_index(drop=True)
        for g in got:
            pdt.assert_frame_equal(unbound(g["anomalies"]), unbound(expected["anomalies"]))

    def test_counts_stay_those_of_the_file(self, merged):
        whole = wspcap.read(merged)
        part = wspcap.read(merged, shard=(0, 2))
        assert part.info.packets == whole.info.packets
        assert part.info.tcp_connections == whole.info.tcp_connections

    @pytest.mark.parametrize("shard", [(2, 2), (-1, 2), (0, 0), ("0", 2)])
    def test_bad_shard_is_a_config_error(self, shard):
        with pytest.raises(ConfigError):
            wspcap.read(SAMPLE_FILES[0], shard=shard)


# -- read_many ---------------------------------------------------------------------------------


class TestReadManySync:
    """``scheduler="sync"``: the same tables without Dask."""

    def test_equals_one_process(self):
        _assert_same_as_one_process(wspcap.read_many(SAMPLE_FILES, scheduler="sync"),
                                    SAMPLE_FILES)

    def test_one_file_is_read_as_is(self):
        path = str(SAMPLES / "multi.pcapng")
        one = wspcap.read_many(path, scheduler="sync")
        _assert_same_as_one_process(one, [path])
        assert one.info.source == path

    def test_info_adds_up(self):
        many = wspcap.read_many(SAMPLE_FILES, scheduler="sync")
        singles = [wspcap.read(p) for p in SAMPLE_FILES]
        assert many.info.packets == sum(c.info.packets for c in singles)
        assert many.info.tcp_connections == sum(c.info.tcp_connections for c in singles)

    def test_progress_counts_files(self):
        seen = []
        wspcap.read_many(SAMPLE_FILES[:3], scheduler="sync",
                         progress=lambda done, total: seen.append((done, total)))
        assert seen == [(1, 3), (2, 3), (3, 3)]

    def test_not_a_capture_is_an_error(self, tmp_path):
        bad = tmp_path / "notes.pcap"
        bad.write_text("not a capture")
        with pytest.raises(CaptureFormatError):
            wspcap.read_many([SAMPLE_FILES[0], str(bad)], scheduler="sync")

    def test_bad_scheduler_and_workers(self):
        with pytest.raises(ConfigError):
            wspcap.read_many(SAMPLE_FILES, scheduler=42)
        with pytest.raises(ConfigError):
            wspcap.read_many(SAMPLE_FILES, scheduler="sync", workers=0)

    def test_as_dask_sync(self):
        pytest.importorskip("dask.dataframe")
        expected = wspcap.read_many(SAMPLE_FILES, scheduler="sync")
        got = wspcap.read_many(SAMPLE_FILES, scheduler="sync", as_dask=True)
        assert got.frames.npartitions == len(SAMPLE_FILES)
        for table in TABLES:
            pdt.assert_frame_equal(getattr(got, table).compute().reset_index(drop=True),
                                   getattr(expected, table), obj=table)


class TestReadManyCluster:
    """A real LocalCluster with two worker processes gives the one-process result."""

    def test_samples_equal_one_process(self, client):
        _assert_same_as_one_process(wspcap.read_many(SAMPLE_FILES, scheduler=client),
                                    SAMPLE_FILES)

    def test_peers_with_anomalies_equal_one_process(self, client):
        files = sorted(str(p) for p in (PEERS / "zeek" / "traces").glob("*.pcap*")
                       if not p.name.endswith(".tsv"))
        if not files:
            pytest.skip(f"peer captures not found in {PEERS}")
        result = wspcap.read_many(files, scheduler=client)
        assert result.anomalies["conn_id"].notna().any()
        _assert_same_as_one_process(result, files)

    def test_lone_file_is_shared_by_flow(self, client, merged):
        whole = wspcap.read(merged)
        got = wspcap.read_many(str(merged), scheduler=client)  # 2 workers: 2 shards
        expected, merged_tables = _by_stream(whole), _by_stream(got)
        for table in TABLES:
            pdt.assert_frame_equal(merged_tables[table], expected[table], obj=table)
        # Documented order: connections by tcp_stream, frames and messages by packet.
        conns = got.connections
        assert (conns["capture_conn_id"].to_numpy() == np.arange(len(conns))).all()
        assert conns["tcp_stream"].is_monotonic_increasing
        assert got.frames["packet"].is_monotonic_increasing
        assert got.messages["packet_end"].is_monotonic_increasing
        assert got.app["conn_id"].is_monotonic_increasing and len(got.app)
        assert got.info.counters == whole.info.counters
        assert got.info.truncated == whole.info.truncated

    def test_split_large_with_other_files(self, client, merged):
        files = [SAMPLE_FILES[0], str(merged)]
        got = wspcap.read_many(files, scheduler=client, split_large=os.path.getsize(merged))
        expected = wspcap.read_many(files, scheduler="sync")
        for name in files:
            g, e = _by_stream(_only(got, name)), _by_stream(_only(expected, name))
            for table in TABLES:
                pdt.assert_frame_equal(g[table], e[table], obj=f"{name} {table}")
        assert set(got.connections["conn_id"]) == set(range(len(got.connections)))

    def test_as_dask_keeps_partitions_on_the_cluster(self, client):
        expected = wspcap.read_many(SAMPLE_FILES, scheduler="sync")
        with wspcap.read_many(SAMPLE_FILES, scheduler=client, as_dask=True) as got:
            assert got.client is client
            assert got.connections.npartitions == len(SAMPLE_FILES)
            for table in TABLES:
                pdt.assert_frame_equal(getattr(got, table).compute().reset_index(drop=True),
                                       getattr(expected, table), obj=table)
        assert client.status == "running"  # a client we were given is left open

    def test_analyze_many_writes_on_the_workers(self, client, merged, tmp_path, monkeypatch):
        """The workers write the datasets (a split file included): no table
        crosses to the client, and the datasets are the one-process ones."""
        files = [*SAMPLE_FILES, str(merged)]
        expected = analyze_many(files, tmp_path / "sync", scheduler="sync")

        def gathered(*args):
            raise AssertionError("the client gathered a file's tables")

        monkeypatch.setattr(parallel, "_iter_captures", gathered)
        got = analyze_many(files, tmp_path / "cluster", scheduler=client,
                           split_large=os.path.getsize(merged))
        assert [(r.path, r.connections, r.frames, r.messages, r.anomalies, r.app, r.first_conn_id)
                for r in got] == [
            (r.path, r.connections, r.frames, r.messages, r.anomalies, r.app, r.first_conn_id)
            for r in expected]
        for table in TABLES:
            parts = sorted(p.name for p in (tmp_path / "cluster" / table).iterdir())
            assert parts == sorted(p.name for p in (tmp_path / "sync" / table).iterdir())
        # The split file's connections are numbered by tcp_stream (read()'s order
        # unless a later connection finished its handshake first): compare by flow.
        on_cluster, in_process = (_capture(lambda t, d=d: pd.read_parquet(tmp_path / d / t))
                                  for d in ("cluster", "sync"))
        for name in files:
            g, e = _by_stream(_only(on_cluster, name)), _by_stream(_only(in_process, name))
            for table in TABLES:
                pdt.assert_frame_equal(g[table], e[table], obj=f"{name} {table}")

    def test_cli_on_a_running_scheduler(self, client, tmp_path):
        out = tmp_path / "out"
        pattern = str(SAMPLES / "*.pcap")
        rc = main(["analyze", pattern, "-o", str(out), "--format", "csv", "-q",
                   "--scheduler", client.scheduler.address])
        assert rc == 0
        files = expand_inputs([pattern])
        expected = wspcap.read_many(files, scheduler="sync")
        for table in TABLES:
            parts = sorted((out / table).glob("part-*.csv"))
            assert parts
            rows = sum(len(pd.read_csv(p)) for p in parts)
            assert rows == len(getattr(expected, table)), table


def test_cli_default_local_cluster_writes_parquet_datasets(tmp_path, capsys):
    """``wspcap analyze DIR -o OUT --workers 2``: one dataset per table, equal to
    the one-process result."""
    pytest.importorskip("distributed")
    out = tmp_path / "out"
    rc = main(["analyze", str(SAMPLES), "-o", str(out), "--workers", "2"])
    assert rc == 0
    files = expand_inputs([str(SAMPLES)])
    assert files == SAMPLE_FILES
    printed = capsys.readouterr().out
    assert f"{len(files)} captures" in printed
    result = _capture(lambda table: pd.read_parquet(out / table))
    _assert_same_as_one_process(result, files)


# -- the command line and the inputs ----------------------------------------------------------


class TestCli:
    def test_single_file_keeps_the_plain_layout(self, tmp_path):
        out = tmp_path / "out"
        assert main(["analyze", str(SAMPLES / "plain.pcap"), "-o", str(out), "-q"]) == 0
        assert sorted(p.name for p in out.iterdir()) == [
            "anomalies.parquet", "app.parquet", "connections.parquet", "frames.parquet",
            "messages.parquet"]
        frames = pd.read_parquet(out / "frames.parquet")
        assert "capture" not in frames.columns
        pdt.assert_frame_equal(frames, wspcap.read(SAMPLES / "plain.pcap").frames)

    def test_sync_rerun_replaces_old_parts(self, tmp_path):
        out = tmp_path / "out"
        two = SAMPLE_FILES[:2]
        assert main(["analyze", *SAMPLE_FILES, "-o", str(out), "-q",
                     "--scheduler", "sync"]) == 0
        assert main(["analyze", *two, "-o", str(out), "-q", "--scheduler", "sync"]) == 0
        frames = pd.read_parquet(out / "frames")
        assert list(frames["capture"].astype(str).unique()) == two
        _assert_same_as_one_process(
            _capture(lambda t: pd.read_parquet(out / t)), two)

    def test_tables_without_rows_are_typed_datasets(self, tmp_path):
        """Captures with no packet: every table is one empty part, with its dtypes.

        Parquet keeps no categories for an empty column (only "categorical" is
        kept), and pandas 3 reads a text column back as ``str`` where the table
        had ``object``, as it does for one file's export."""
        files = []
        for name in ("empty1.pcap", "empty2.pcap"):
            path = tmp_path / name
            path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
            files.append(str(path))
        out = tmp_path / "out"
        assert main(["analyze", *files, "-o", str(out), "-q", "--scheduler", "sync"]) == 0
        expected = wspcap.read_many(files, scheduler="sync")
        for table in TABLES:
            assert [p.name for p in (out / table).iterdir()] == ["part-00000.parquet"]
            got = pd.read_parquet(out / table)
            want = getattr(expected, table)
            assert len(got) == len(want) == 0
            assert list(got.columns) == list(want.columns)
            for name, dtype in want.dtypes.items():
                if isinstance(dtype, pd.CategoricalDtype):
                    assert isinstance(got[name].dtype, pd.CategoricalDtype), name
                elif dtype == object and name != "payload":
                    assert got[name].dtype in (object, "str"), (table, name)
                else:
                    assert got[name].dtype == dtype, (table, name)

    def test_not_a_capture_among_several(self, tmp_path, capsys):
        bad = tmp_path / "notes.pcap"
        bad.write_text("hello")
        rc = main(["analyze", SAMPLE_FILES[0], str(bad), "--scheduler", "sync", "-q"])
        assert rc == 2
        assert "notes.pcap" in capsys.readouterr().err

    def test_pattern_matching_nothing(self, tmp_path, capsys):
        rc = main(["analyze", str(tmp_path / "*.pcap"), "--scheduler", "sync"])
        assert rc == 2
        assert "no file matches" in capsys.readouterr().err

    @pytest.mark.parametrize("option", [["--workers", "0"], ["--split-large", "lots"]])
    def test_bad_option_values(self, option):
        with pytest.raises(SystemExit) as exc:
            main(["analyze", *SAMPLE_FILES, *option])
        assert exc.value.code == 2


class TestInputs:
    def test_directory_takes_captures_by_content_in_natural_order(self, tmp_path):
        src = SAMPLES / "plain.pcap"
        for name in ("cap.pcap", "cap.pcap1", "cap.pcap10", "cap.pcap2"):
            shutil.copy(src, tmp_path / name)
        (tmp_path / "README.txt").write_text("not a capture")
        shutil.copy(src, tmp_path / ".hidden.pcap")
        (tmp_path / "sub").mkdir()
        shutil.copy(src, tmp_path / "sub" / "deeper.pcap")
        got = expand_inputs([tmp_path])
        assert got == [str(tmp_path / n) for n in ("cap.pcap", "cap.pcap1", "cap.pcap2",
                                                   "cap.pcap10")]

    def test_patterns_files_and_duplicates(self, tmp_path):
        pattern = str(SAMPLES / "*.pcapng")
        got = expand_inputs([SAMPLE_FILES[0], pattern, SAMPLE_FILES[0]])
        assert got == [SAMPLE_FILES[0], *sorted(str(p) for p in SAMPLES.glob("*.pcapng"))]
        assert str(SAMPLES / "multi.pcapng") in got
        rec = expand_inputs([str(SAMPLES.parent / "**" / "multi.pcapng")])
        assert str(SAMPLES / "multi.pcapng") in rec

    def test_empty_directory_and_no_input(self, tmp_path):
        with pytest.raises(CaptureFormatError):
            expand_inputs([tmp_path])
        with pytest.raises(ConfigError):
            expand_inputs([])

    def test_plan_splits_lone_and_large_files(self, tmp_path):
        small, big = tmp_path / "small", tmp_path / "big"
        small.write_bytes(b"x" * 10)
        big.write_bytes(b"x" * 1000)
        assert _plan([str(big)], 3, None) == [3]
        assert _plan([str(small), str(big)], 3, None) == [1, 1]
        assert _plan([str(small), str(big)], 3, 1000) == [1, 3]
        assert _plan([str(big)], 1, None) == [1]


def test_analyze_many_counts_without_writing():
    results = analyze_many(SAMPLE_FILES, None, scheduler="sync")
    singles = [wspcap.read(p) for p in SAMPLE_FILES]
    assert [r.path for r in results] == SAMPLE_FILES
    assert [r.frames for r in results] == [len(c.frames) for c in singles]
    assert [r.app for r in results] == [len(c.app) for c in singles]
    assert sum(r.app for r in results) > 0
    firsts = np.cumsum([0] + [len(c.connections) for c in singles])[:-1].tolist()
    assert [r.first_conn_id for r in results] == firsts


class TestChooseByWorkSize:
    """Issue 15 item 12: one process for small jobs, a local cluster when it
    pays (from cluster_min_bytes() of input), ``--workers 1`` in this process;
    the same tables either way. Which path runs is checked, not how fast."""

    @staticmethod
    def _files(tmp_path, sizes):
        files = []
        for i, size in enumerate(sizes):
            path = tmp_path / f"f{i}.pcap"
            with open(path, "wb") as f:
                f.truncate(size)  # sparse: only the size matters here
            files.append(str(path))
        return files

    def test_the_choice(self, tmp_path, monkeypatch):
        monkeypatch.setattr(os, "cpu_count", lambda: 4)
        limit = int(parallel.cluster_min_bytes(4))
        assert parallel.cluster_min_bytes(2) > limit > parallel.cluster_min_bytes(16)
        assert parallel.cluster_min_bytes(1) == float("inf")
        assert 64 << 20 < parallel.cluster_min_bytes(16) < limit < 1 << 30
        small = self._files(tmp_path, [limit // 4] * 3)
        large = self._files(tmp_path, [limit // 4 + 1] * 4)
        choose = parallel.choose_scheduler
        assert choose(small, None, None) == parallel.SYNC
        assert choose(large, None, None) is None  # a local cluster
        assert choose(large, None, 1) == parallel.SYNC  # --workers 1
        assert choose(small, None, 3) is None  # workers asked for: a cluster of them
        assert choose(large, "sync", None) == "sync"
        assert choose(small, "tcp://somewhere:8786", None) == "tcp://somewhere:8786"
        monkeypatch.setattr(os, "cpu_count", lambda: 1)
        assert choose(large, None, None) == parallel.SYNC  # one core: nothing to share

    @staticmethod
    def _no_cluster(monkeypatch):
        """Starting a local cluster fails the test."""
        distributed = pytest.importorskip("distributed")

        def refuse(*args, **kwargs):
            raise AssertionError("a local cluster was started")
        monkeypatch.setattr(distributed, "LocalCluster", refuse)

    def test_small_jobs_run_in_this_process(self, tmp_path, monkeypatch, capsys):
        self._no_cluster(monkeypatch)
        out = tmp_path / "out"
        assert main(["analyze", *SAMPLE_FILES, "-o", str(out), "-q"]) == 0
        assert main(["analyze", *SAMPLE_FILES, "-q", "--workers", "1"]) == 0
        assert capsys.readouterr().err == ""
        result = _capture(lambda table: pd.read_parquet(out / table))
        _assert_same_as_one_process(result, SAMPLE_FILES)
        got = wspcap.read_many(SAMPLE_FILES)
        want = wspcap.read_many(SAMPLE_FILES, scheduler="sync")
        for table in TABLES:
            pdt.assert_frame_equal(getattr(got, table), getattr(want, table))

    def test_large_jobs_start_a_cluster(self, tmp_path, monkeypatch):
        """Past the threshold (lowered here to one byte), a local cluster
        runs the job, and its tables are the in-process ones."""
        pytest.importorskip("distributed")
        monkeypatch.setattr(os, "cpu_count", lambda: 2)
        monkeypatch.setattr(parallel, "cluster_min_bytes", lambda workers: 1)
        started = []
        real = parallel._Runner.__init__

        def spy(self, scheduler, workers):
            started.append(scheduler)
            real(self, scheduler, workers)
        monkeypatch.setattr(parallel._Runner, "__init__", spy)
        out = tmp_path / "out"
        assert main(["analyze", *SAMPLE_FILES[:3], "-o", str(out), "-q"]) == 0
        assert started == [None]  # None: the local cluster
        result = _capture(lambda table: pd.read_parquet(out / table))
        _assert_same_as_one_process(result, SAMPLE_FILES[:3])
