"""wspcap.api.reading and wspcap.tables.capture: what read, from_packets and
analyze_to give, table by table, against the declared schemas."""

from __future__ import annotations

import struct
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from golden.paths import REPO_ROOT

import wspcap
from wspcap.api.reading import analyze_to, from_packets, read
from wspcap.tables.capture import Capture
from wspcap.tables.schema import TABLES, TableSchema

SAMPLE = REPO_ROOT / "samples" / "deflate.pcap"  # compressed messages, a close, an anomaly
APP_SAMPLE = REPO_ROOT / "samples" / "socketio.pcapng"  # app rows, answers with latencies


def empty_pcap(path: Path) -> Path:
    """A pcap file with its header and no packet."""
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    return path


def check_capture(cap: Capture) -> None:
    for schema in TABLES:
        df = getattr(cap, schema.name)
        assert list(df.columns) == schema.names, schema.name
        for c in schema.columns:
            assert c.holds(df[c.name].dtype), f"{schema.name}.{c.name}"


def test_read_gives_the_declared_tables() -> None:
    cap = read(SAMPLE)
    check_capture(cap)
    assert len(cap.connections) == 1
    assert len(cap.frames) == len(cap.messages) > 0
    assert cap.messages.compressed.any()
    assert cap.messages.inflated.dropna().all()
    assert cap.frames.frame_index.tolist() == list(range(len(cap.frames)))


def test_an_empty_capture_gives_empty_typed_tables(tmp_path: Path) -> None:
    cap = read(empty_pcap(tmp_path / "empty.pcap"))
    check_capture(cap)
    assert all(len(getattr(cap, t.name)) == 0 for t in TABLES)
    check_capture(from_packets([]))


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_analyze_to_an_empty_capture_writes_every_table(tmp_path: Path, fmt: str) -> None:
    written = analyze_to(empty_pcap(tmp_path / "empty.pcap"), tmp_path / "out", fmt)
    assert [Path(p).name for p in written.paths] == [f"{t.name}.{fmt}" for t in TABLES]
    assert all(Path(p).exists() for p in written.paths)
    assert len(written.connections) == len(written.anomalies) == 0


def _read_back(path: str, schema: TableSchema) -> pd.DataFrame:
    df = pd.read_parquet(path)
    for c in schema.columns:
        if c.categories is not None:  # Parquet keeps only the categories seen
            df[c.name] = df[c.name].astype(c.dtype)
    return df


def test_read_gives_the_declared_app_table() -> None:
    app = read(APP_SAMPLE).app
    assert len(app) and app.latency.notna().any() and app.request_msg.notna().any()
    for c in TABLES[-1].columns:  # no third-party decoder: the declared dtypes exactly
        assert app[c.name].dtype == c.dtype, c.name


@pytest.mark.parametrize("sample", [SAMPLE, APP_SAMPLE], ids=lambda p: p.name)
def test_analyze_to_writes_what_read_gives(tmp_path: Path, sample: Path) -> None:
    cap = read(sample)
    written = analyze_to(sample, tmp_path, spill_bytes=0)  # a part after every packet
    for path, schema in zip(written.paths, TABLES, strict=True):
        written_schema = pq.read_schema(path)  # the declared one, for every capture
        assert written_schema.names == schema.names
        assert written_schema.metadata[b"pandas"] == schema.arrow.metadata[b"pandas"]
        pd.testing.assert_frame_equal(_read_back(path, schema), getattr(cap, schema.name),
                                      obj=schema.name)
    pd.testing.assert_frame_equal(written.connections, cap.connections)
    pd.testing.assert_frame_equal(written.anomalies, cap.anomalies)


def test_capture_writers_round_trip(tmp_path: Path) -> None:
    cap = read(SAMPLE)
    paths = cap.to_parquet(tmp_path / "pq")
    for path, schema in zip(paths, TABLES, strict=True):
        pd.testing.assert_frame_equal(_read_back(path, schema), getattr(cap, schema.name))
    csv = cap.to_csv(tmp_path / "csv")
    frames = pd.read_csv(csv[1])
    assert frames.payload.fillna("").tolist() == [p.hex() for p in cap.frames.payload]
    jsonl = cap.to_jsonl(tmp_path / "jsonl")
    assert len(Path(jsonl[2]).read_text().splitlines()) == len(cap.messages)


def test_the_public_catalog_is_the_tables_catalog() -> None:
    from wspcap.tables.build import catalog
    pd.testing.assert_frame_equal(wspcap.catalog(), catalog())


@pytest.mark.parametrize("sample", [SAMPLE, APP_SAMPLE])
def test_tables_made_once_let_go_of_the_records(sample: Path) -> None:
    # read() makes its tables once: the collector lets go of its frames and
    # messages once their tables are made (their memory there again for the
    # decoding); the tables are those made keeping them, and the
    # connections and anomalies read after are still there.
    from wspcap.api.reading import _feed, _finish_records, _pipeline

    pipeline = _pipeline(None, None, None)
    info, truncated, corrupt = _feed(sample, pipeline, None)
    col, info = _finish_records(pipeline, info, truncated, corrupt=corrupt)
    kept = Capture.from_collector(col, info, pipeline.options)
    assert len(col.frame_view()) == len(kept.frames) > 0
    released = Capture.from_collector(col, info, pipeline.options, release=True)
    assert len(col.frame_view()) == len(col.message_view()) == 0
    for schema in TABLES:
        pd.testing.assert_frame_equal(getattr(released, schema.name),
                                      getattr(kept, schema.name), check_exact=True)
    assert len(kept.anomalies) > 0 and (sample != APP_SAMPLE or len(kept.app) > 0)
