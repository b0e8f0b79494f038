"""`analyze_to` / `wspcap analyze -o`: tables written while the capture is read.

The streamed tables must be the tables of `read` (same rows, same order, same
values), whatever the points at which parts were written: `spill_bytes=0`
writes after every packet, the harshest split. What is packed loses its
data payloads only (see tests/unit/test_records.py): the rules at the end
still see everything else, so the anomalies table comes out the same.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from golden.paths import REPO_ROOT, sample_captures

import wspcap
from wspcap.api.live import Sniffer
from wspcap.api.reading import analyze_to
from wspcap.engine import Pipeline
from wspcap.sources.files import open_capture
from wspcap.tables import stream as capture
from wspcap.tables.build import anomalies_table
from wspcap.tables.export import TABLES, write_tables

ANOMALY_CAPTURES = sorted(glob.glob(str(REPO_ROOT / "samples" / "anomalies" / "*.pcap")))


def _same_parquet(streamed: Path, whole: Path) -> None:
    for name in TABLES:
        a = pd.read_parquet(streamed / f"{name}.parquet")
        b = pd.read_parquet(whole / f"{name}.parquet")
        pd.testing.assert_frame_equal(a, b, obj=name)


def _both(path: Path | str, tmp_path: Path, fmt: str, spill_bytes: int) -> tuple[Path, Path]:
    streamed, whole = tmp_path / "streamed", tmp_path / "whole"
    written = analyze_to(path, streamed, fmt, spill_bytes=spill_bytes)
    write_tables(wspcap.read(path), whole, fmt)
    assert [Path(p).name for p in written.paths] == [f"{t}.{fmt}" for t in TABLES]
    return streamed, whole


@pytest.mark.parametrize("spill_bytes", [0, 1 << 20])
@pytest.mark.parametrize("path", sample_captures(), ids=lambda p: p.name)
def test_samples_stream_like_read(path: Path, tmp_path: Path, spill_bytes: int) -> None:
    streamed, whole = _both(path, tmp_path, "parquet", spill_bytes)
    _same_parquet(streamed, whole)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_text_formats_byte_for_byte(samples_dir: Path, tmp_path: Path, fmt: str) -> None:
    # fragmented.pcap: messages over several frames, so parts split messages.
    streamed, whole = _both(samples_dir / "fragmented.pcap", tmp_path, fmt, 0)
    for name in TABLES:
        assert (streamed / f"{name}.{fmt}").read_bytes() == \
            (whole / f"{name}.{fmt}").read_bytes(), name


@pytest.mark.parametrize("path", ANOMALY_CAPTURES, ids=lambda p: Path(p).stem)
def test_every_rule_fires_the_same_streamed(path: str, tmp_path: Path) -> None:
    """Packing, and checking ended connections early, change no finding: one
    crafted capture per anomaly code."""
    streamed, whole = _both(path, tmp_path, "parquet", 0)
    _same_parquet(streamed, whole)
    assert len(pd.read_parquet(streamed / "anomalies.parquet"))


def test_peer_capture_streamed(peer_capture: str, peers_dir: Path, tmp_path: Path) -> None:
    path = peers_dir / peer_capture
    try:
        wspcap.read(path)
    except wspcap.CaptureFormatError:
        pytest.skip("not a capture wspcap reads")
    streamed, whole = _both(path, tmp_path, "parquet", 0)
    _same_parquet(streamed, whole)


def test_written_keeps_connections_and_anomalies(samples_dir: Path, tmp_path: Path) -> None:
    written = analyze_to(samples_dir / "deflate.pcap", tmp_path)
    cap = wspcap.read(samples_dir / "deflate.pcap")
    pd.testing.assert_frame_equal(written.connections, cap.connections)
    pd.testing.assert_frame_equal(written.anomalies, cap.anomalies)
    assert written.info.packets == cap.info.packets




def _live(path: Path | str, output: Path | None) -> tuple[list[Any], Sniffer]:
    """Replay a capture through the live driver, writing the tables to
    ``output`` while it runs (or keeping them)."""
    with open_capture(path) as records:
        sniffer = Sniffer(source=records, output=output)
        events = list(sniffer)
    return events, sniffer


@pytest.mark.parametrize("path", [*sample_captures(), *ANOMALY_CAPTURES[::4]],
                         ids=lambda p: Path(p).stem)
def test_live_capture_written_while_capturing(path: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``wspcap live -o``: the tables written while capturing, after every
    packet, are those of the capture kept whole, and so are the events."""
    monkeypatch.setattr(capture, "SPILL_BYTES", 0)
    events, sniffer = _live(path, tmp_path / "streamed")
    kept_events, kept = _live(path, None)
    assert events == kept_events
    written = sniffer.written
    assert written is not None
    write_tables(kept.capture(), tmp_path / "whole", "parquet")
    _same_parquet(tmp_path / "streamed", tmp_path / "whole")
    assert written.info.packets == kept.capture().info.packets
    with pytest.raises(wspcap.ConfigError, match="written to"):
        sniffer.capture()


def test_live_capture_lets_go_of_written_records(samples_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """While a live capture writes its tables, the collector holds no data
    payload that is already written: at the end only packed records remain."""
    monkeypatch.setattr(capture, "SPILL_BYTES", 0)
    _events, sniffer = _live(samples_dir / "plain.pcap", tmp_path / "out")
    col = sniffer.monitor.pipeline.collector
    assert not col.frames and not col.messages and not len(col.frame_chunks)


def _fed(path: Path, each_packet: Any) -> Pipeline:
    pipeline = Pipeline()
    with open_capture(path) as cap:
        for number, ts, linktype, data, _ in cap:
            pipeline.receive_packet(number, ts, linktype, data)
            each_packet(pipeline)
    return pipeline


def test_ended_connections_are_checked_and_let_go(samples_dir: Path) -> None:
    """multi.pcapng: four connections, each closed by both FINs before the end."""
    checked_at: dict[int, int] = {}

    def spill(pipeline: Pipeline) -> None:
        col = pipeline.collector
        col.pack()
        pipeline.check_ended()
        unchecked = {s.conn_id for s in pipeline.unchecked}
        for s in col.sessions:
            if s.conn_id not in unchecked:
                checked_at.setdefault(s.conn_id, pipeline.packets)

    pipeline = _fed(samples_dir / "multi.pcapng", spill)
    col = pipeline.collector
    assert sorted(checked_at) == [0, 1, 2, 3]
    assert len(set(checked_at.values())) > 1  # one by one, as each ended
    assert len(col.packed_frames) == len(col.packed_messages) == 0  # all let go
    assert col.findings  # sec_plaintext_ws at least, held until the end
    pipeline.finish()
    cap = wspcap.read(samples_dir / "multi.pcapng")
    pd.testing.assert_frame_equal(anomalies_table(pipeline.collector), cap.anomalies)
    assert not pipeline.collector.findings


def test_open_connections_are_not_checked_early(samples_dir: Path) -> None:
    def spill(pipeline: Pipeline) -> None:
        pipeline.collector.pack()
        pipeline.check_ended()
        assert all(not s.ended_quietly() for s in pipeline.unchecked)

    pipeline = _fed(samples_dir / "fragmented.pcap", spill)
    assert pipeline.unchecked == [] or not pipeline.unchecked[0].ended_quietly()


def test_check_ended_needs_packed_records(samples_dir: Path) -> None:
    pipeline = Pipeline()
    pipeline.collector.frames.append(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pack"):
        pipeline.check_ended()


@pytest.mark.parametrize("path", [*sample_captures(), *ANOMALY_CAPTURES],
                         ids=lambda p: Path(p).name)
def test_checks_in_groups_find_the_same(path: Path | str) -> None:
    """check_packed checks the connections a group at a time (here one
    connection a group): the anomalies are those of checking them all at once."""
    def run(grouped: bool) -> pd.DataFrame:
        p = Pipeline()
        with open_capture(path) as cap:
            for batch in cap.batches():
                p.receive_batch(batch)
        col = p.finish(check=not grouped)
        if grouped:
            col.pack()
            p.check_packed(records=1)
            assert not len(col.packed_frames) and not len(col.packed_messages)
        return anomalies_table(col)

    pd.testing.assert_frame_equal(run(True), run(False))
