"""The plots: what each draws, checked against the samples' ground truth.

The expected numbers (connections, messages per type and direction, pings
answered) come from the truth files the samples' sender wrote; the plots must
draw exactly that many bars and points. Every function must also work on an
empty capture and leave matplotlib's global state alone.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

matplotlib = pytest.importorskip("matplotlib")

import numpy as np
from golden import truth as T
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle, StepPatch
from matplotlib.text import Annotation

import wspcap
from wspcap.views import plot as wp


@pytest.fixture(scope="module")
def plain(samples_dir: Path) -> tuple[Any, dict[str, Any]]:
    truth = T.load(samples_dir / "plain.truth.json")
    return wspcap.read(samples_dir / truth["file"]), truth


@pytest.fixture(scope="module")
def multi(samples_dir: Path) -> tuple[Any, dict[str, Any]]:
    truth = T.load(samples_dir / "multi.truth.json")
    return wspcap.read(samples_dir / truth["file"]), truth


@pytest.fixture(scope="module")
def empty() -> Any:
    return wspcap.from_packets([])


def _truth_messages(truth: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for tc in truth["connections"] for m in tc["messages"]]


def _points(ax: Axes) -> int:
    return sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))


def _says_no_data(ax: Axes) -> bool:
    return any(t.get_text().startswith("no ") for t in ax.texts)


class TestConnectionTimeline:
    def test_one_lane_per_connection(self, multi: tuple[Any, dict[str, Any]]) -> None:
        cap, truth = multi
        ax = wp.connection_timeline(cap)
        bars = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert len(bars) == len(truth["connections"])
        assert len(ax.get_yticklabels()) == len(truth["connections"])
        assert _points(ax) == len(_truth_messages(truth))

    def test_close_markers(self, multi: tuple[Any, dict[str, Any]]) -> None:
        cap, truth = multi
        ax = wp.connection_timeline(cap)
        closes = sum(1 for m in _truth_messages(truth) if m["type"] == "close")
        crosses = sum(len(c.get_offsets()) for c in ax.collections[1::2])
        assert crosses == closes


    def test_directions_where_the_caption_says(self, multi: tuple[Any, dict[str, Any]]) -> None:
        """Client messages above their lane's middle, server messages below, as
        the docstring and the report's caption say; each direction's points
        carry that direction's legend label and colour."""
        from matplotlib.colors import to_hex

        from wspcap.views.report import _plots
        cap, truth = multi
        ax = wp.connection_timeline(cap)
        ax.get_ylim()  # autoscale now: the transform below uses the view limits
        lanes = {}
        for bar in (p for p in ax.patches if isinstance(p, Rectangle)):
            lanes[round(bar.get_y() + bar.get_height() / 2)] = ax.transData.transform(
                (0, bar.get_y() + bar.get_height() / 2))[1]
        labels = {"message client → server": "c2s", "message server → client": "s2c"}
        legend = {t.get_text() for t in ax.get_legend().get_texts()}
        assert set(labels) <= legend
        seen = Counter()
        for coll in ax.collections:
            if coll.get_label() not in labels:
                continue
            direction = labels[coll.get_label()]
            assert to_hex(coll.get_edgecolor()[0]) == wp.DIRECTION_COLORS[direction]
            for _x, y in coll.get_offsets():
                screen_y = ax.transData.transform((0, y))[1]  # pixels, upwards
                middle = lanes[round(float(y))]
                assert (screen_y > middle) == (direction == "c2s"), (direction, y)
                seen[direction] += 1
        truth_counts = Counter(m["direction"] for m in _truth_messages(truth)
                               if m["type"] != "close")
        assert seen == truth_counts
        caption = _plots(cap)[0]
        assert "blue client→server above" in caption and "orange server→client below" in caption


class TestSequenceDiagram:
    def test_one_arrow_per_message(self, plain: tuple[Any, dict[str, Any]]) -> None:
        cap, truth = plain
        ax = wp.sequence_diagram(cap, 0)
        arrows = [a for a in ax.texts if isinstance(a, Annotation)]
        assert len(arrows) == len(_truth_messages(truth))
        # direction: client messages point right (x grows), server ones left
        right = sum(1 for a in arrows if a.xy[0] > a.xyann[0])
        assert right == truth["connections"][0]["counts"]["c2s"]["messages"]

    def test_cut_at_max_messages(self, plain: tuple[Any, dict[str, Any]]) -> None:
        cap, truth = plain
        ax = wp.sequence_diagram(cap, 0, max_messages=5)
        assert len([a for a in ax.texts if isinstance(a, Annotation)]) == 5
        assert f"of {len(_truth_messages(truth))}" in ax.get_title()

    def test_unknown_connection(self, plain: tuple[Any, dict[str, Any]]) -> None:
        assert _says_no_data(wp.sequence_diagram(plain[0], 99))


class TestSizesThroughputOpcodes:
    def test_size_histogram_counts(self, plain: tuple[Any, dict[str, Any]]) -> None:
        cap, truth = plain
        ax = wp.size_distribution(cap, bins=20)
        bars = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert len(bars) == 2 * 20
        total = sum(b.get_height() for b in bars)
        assert total == len(_truth_messages(truth))

    def test_throughput_adds_up(self, plain: tuple[Any, dict[str, Any]]) -> None:
        cap, truth = plain
        ax = wp.throughput(cap, bin_seconds=0.01)
        steps = [p for p in ax.patches if isinstance(p, StepPatch)]
        assert len(steps) == 2
        expected = {d: sum(m["wire_length"] for m in _truth_messages(truth)
                           if m["direction"] == d) for d in T.DIRECTIONS}
        got = {}
        for step, d in zip(steps, ("c2s", "s2c")):
            values, _edges, _base = step.get_data()
            got[d] = round(float(np.sum(values)) * 0.01)
        assert got == expected

    def test_opcode_bars(self, plain: tuple[Any, dict[str, Any]]) -> None:
        cap, truth = plain
        ax = wp.opcode_mix(cap)
        expected = Counter((m["type"], m["direction"]) for m in _truth_messages(truth))
        types = [t.get_text() for t in ax.get_xticklabels()]
        assert set(types) == {t for t, _ in expected}
        bars = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert len(bars) == 2 * len(types)
        got = Counter()
        for i, b in enumerate(bars):
            direction = "c2s" if i < len(types) else "s2c"
            if b.get_height():
                got[(types[i % len(types)], direction)] = int(b.get_height())
        assert got == expected

    def test_takes_a_table(self, plain: tuple[Any, dict[str, Any]]) -> None:
        cap, _ = plain
        for fn in (wp.size_distribution, wp.throughput, wp.opcode_mix):
            assert isinstance(fn(cap.messages), Axes)


class TestPingAndAnomalies:
    def test_ping_rtts(self, plain: tuple[Any, dict[str, Any]]) -> None:
        cap, truth = plain
        msgs = _truth_messages(truth)
        answered = {m["reply_to"] for m in msgs if m["type"] == "pong" and m["reply_to"]
                    is not None}
        pings = [m for m in msgs if m["type"] == "ping" and m["id"] in answered]
        rtts = wp.ping_rtts(cap)
        assert sorted(rtts.direction.astype(str)) == sorted(m["direction"] for m in pings)
        assert sorted(rtts.payload) == sorted(bytes.fromhex(m["payload"]) for m in pings)
        assert (rtts.rtt >= 0).all()
        ax = wp.ping_rtt(cap)
        assert _points(ax) == len(pings)

    def test_anomaly_points(self, samples_dir: Path) -> None:
        from wspcap.engine import Collector
        from wspcap.tables.build import anomalies_table
        # Hand-made anomalies: one per severity plus a second error.
        col = Collector()
        for ts, code in ((1, "tcp_midstream"), (2, "tcp_gap"), (3, "ws_client_unmasked"),
                         (4, "ws_client_unmasked")):
            col.anomaly(0, ts * 1_000_000_000, "c2s", None, code, "detail", ts)
        table = anomalies_table(col)
        ax = wp.anomaly_timeline(table)
        assert _points(ax) == 4
        labels = {t.get_text() for t in ax.texts}
        assert {"tcp_midstream", "tcp_gap", "ws_client_unmasked"} <= labels
        ys = sorted(float(y) for c in ax.collections for _x, y in c.get_offsets())
        assert ys == [0.0, 1.0, 2.0, 2.0]  # info, warning, error, error

    def test_one_point_per_anomaly_row(self, plain: tuple[Any, dict[str, Any]]) -> None:
        cap, _ = plain
        ax = wp.anomaly_timeline(cap)
        if cap.anomalies.empty:
            assert _says_no_data(ax)
        else:
            assert _points(ax) == len(cap.anomalies)


ALL = [wp.connection_timeline, wp.size_distribution, wp.throughput, wp.opcode_mix,
       wp.ping_rtt, wp.anomaly_timeline, lambda cap, ax=None: wp.sequence_diagram(cap, 0, ax)]


class TestContract:
    """Axes in, the same Axes out; empty captures; no global state touched."""

    @pytest.mark.parametrize("fn", ALL)
    def test_empty_capture(self, fn: Any, empty: Any) -> None:
        ax = fn(empty)
        assert isinstance(ax, Axes) and _says_no_data(ax)

    @pytest.mark.parametrize("fn", ALL)
    def test_draws_on_given_axes(self, fn: Any, plain: tuple[Any, dict[str, Any]]) -> None:
        fig = Figure()
        ax = fig.add_subplot()
        assert fn(plain[0], ax=ax) is ax

    def test_no_global_state(self, plain: tuple[Any, dict[str, Any]], empty: Any,
                             tmp_path: Path) -> None:
        before = dict(matplotlib.rcParams)
        pyplot_loaded = "matplotlib.pyplot" in sys.modules
        for fn in ALL:
            fn(plain[0])
            fn(empty)
        wp.write_plots(plain[0], tmp_path)
        assert dict(matplotlib.rcParams) == before
        if not pyplot_loaded:
            assert "matplotlib.pyplot" not in sys.modules

    def test_importing_does_not_load_matplotlib(self) -> None:
        code = "import sys, wspcap, wspcap.views.plot; print('matplotlib' in sys.modules)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60, check=True).stdout
        assert out.strip() == "False"


class TestWritePlots:
    def test_cli_writes_pngs(self, samples_dir: Path, tmp_path: Path) -> None:
        truth = T.load(samples_dir / "fragmented.truth.json")
        from wspcap.cli import main
        assert main(["plot", str(samples_dir / truth["file"]), "-o", str(tmp_path)]) == 0
        names = sorted(p.name for p in tmp_path.iterdir())
        expected = sorted([f"{n}.png" for n in wp.PLOTS]
                          + [f"sequence-{i}.png" for i in range(len(truth["connections"]))])
        assert names == expected
        for p in tmp_path.iterdir():
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class TestChoosingConnections:
    """Sequence diagrams: which connections get one is said, and chosen."""

    @pytest.fixture(scope="class")
    def busy(self, tmp_path_factory: pytest.TempPathFactory) -> Path:
        from golden.busy import busy_capture
        return busy_capture(tmp_path_factory.mktemp("busy") / "busy.pcap", 23, 2)

    def _run(self, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
        from wspcap.cli import main
        code = main(list(argv))
        return code, capsys.readouterr().err

    def test_default_cut_is_said(self, busy: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
        code, err = self._run(capsys, "plot", str(busy), "-o", str(tmp_path))
        assert code == 0
        seqs = sorted(p.name for p in tmp_path.glob("sequence-*.png"))
        assert seqs == sorted(f"sequence-{i}.png" for i in range(wp.MAX_SEQUENCES))
        note = "sequence diagrams for 20 of 23 connections (0-19); left out: 20-22"
        assert note in err
        assert note in (tmp_path / wp.LEFT_OUT_FILE).read_text(encoding="utf-8")

    def test_conn_picks_connections(self, busy: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
        (tmp_path / wp.LEFT_OUT_FILE).write_text("from an earlier run")
        code, err = self._run(capsys, "plot", str(busy), "-o", str(tmp_path), "--conn", "22,3")
        assert code == 0
        assert sorted(p.name for p in tmp_path.glob("sequence-*.png")) == [
            "sequence-22.png", "sequence-3.png"]
        assert "sequence diagrams for 2 of 23 connections (3, 22); left out: 0-2, 4-21" in err

    def test_max_conns(self, busy: Path, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
        code, _ = self._run(capsys, "plot", str(busy), "-o", str(tmp_path / "a"),
                            "--max-conns", "2")
        assert code == 0 and len(list((tmp_path / "a").glob("sequence-*.png"))) == 2
        code, err = self._run(capsys, "plot", str(busy), "-o", str(tmp_path / "b"),
                              "--max-conns", "30", "-q")
        assert code == 0 and len(list((tmp_path / "b").glob("sequence-*.png"))) == 23
        assert err == "" and not (tmp_path / "b" / wp.LEFT_OUT_FILE).exists()

    def test_unknown_conn_is_one_line(self, busy: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
        code, err = self._run(capsys, "plot", str(busy), "-o", str(tmp_path), "--conn", "5,99")
        assert code == 2
        assert err.strip().splitlines() == [
            ("wspcap: error: option --conn: no connection 99 in this capture (it has 23: "
             "ids 0-22)")]

    def test_documented(self, repo_root: Path) -> None:
        from wspcap.cli import _parser
        sub = _parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
        for command in ("plot", "report"):
            text = sub[command].format_help()
            assert "--conn ID,ID,..." in text and "--max-conns N" in text, command
        readme = (repo_root / "README.md").read_text(encoding="utf-8")
        assert "--conn" in readme and "--max-conns" in readme
