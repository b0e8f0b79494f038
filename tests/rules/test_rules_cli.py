"""The CLI pieces of the catalog: ``wspcap rules``, ``--fail-on``, thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wspcap.cli import main
from wspcap.rules.registry import RULES
from wspcap.rules.thresholds import DEFAULT_THRESHOLDS

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
ANOMALIES = SAMPLES / "anomalies"


def test_rules_json_is_the_whole_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["code"] for r in doc["rules"]] == list(RULES)
    for r in doc["rules"]:
        assert r == RULES[r["code"]].as_dict()
    assert doc["thresholds"] == DEFAULT_THRESHOLDS.as_dict()


def test_rules_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules"]) == 0
    out = capsys.readouterr().out
    for code in RULES:
        assert code in out
    assert "Zeek: not checked" in out
    assert "websocket_wrong_accept_header" in out
    assert "frame_flood_rate" in out


def test_rules_selects_codes_and_prefixes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "--format", "json", "sec_", "ws_no_close"]) == 0
    codes = [r["code"] for r in json.loads(capsys.readouterr().out)["rules"]]
    assert codes == [c for c in RULES if c.startswith("sec_")] + ["ws_no_close"]
    assert main(["rules", "nothing_like_this"]) == 2


def test_rules_shows_given_thresholds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "--format", "json", "--set", "ping_flood_rate=3", "tcp_gap"]) == 0
    assert json.loads(capsys.readouterr().out)["thresholds"]["ping_flood_rate"] == 3


@pytest.mark.parametrize("capture, level, status", [
    (SAMPLES / "plain.pcap", "warning", 0),  # only info (sec_plaintext_ws)
    (SAMPLES / "plain.pcap", "error", 0),
    (ANOMALIES / "ws-no-close.pcap", "warning", 0),  # ws_no_close is info
    (ANOMALIES / "ws-close-unanswered.pcap", "warning", 3),
    (ANOMALIES / "ws-close-unanswered.pcap", "error", 0),  # a warning only
    (ANOMALIES / "ws-client-unmasked.pcap", "error", 3),
    (ANOMALIES / "ws-client-unmasked.pcap", "warning", 3),
])
def test_fail_on(capture: Path, level: str, status: int,
                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(capture), "-q", "--fail-on", level]) == status
    err = capsys.readouterr().err
    assert (f"at or above {level}" in err) == (status == 3)


def test_without_fail_on_status_is_zero() -> None:
    assert main(["analyze", str(ANOMALIES / "ws-client-unmasked.pcap"), "-q"]) == 0


def test_thresholds_file_and_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = str(SAMPLES / "plain.pcap")
    toml = tmp_path / "t.toml"
    toml.write_text("[thresholds]\nframe_flood_rate = 5\n")
    assert main(["analyze", plain, "-q", "--fail-on", "warning", "--thresholds", str(toml)]) == 3
    assert "res_frame_flood" in capsys.readouterr().err
    # --set comes after the file.
    assert main(["analyze", plain, "-q", "--fail-on", "warning", "--thresholds", str(toml),
                 "--set", "frame_flood_rate=1000"]) == 0
    assert main(["analyze", plain, "-q", "--fail-on", "warning",
                 "--set", "frame_flood_rate=5"]) == 3


@pytest.mark.parametrize("args", [
    ["--set", "frame_flood_rate=0"], ["--set", "no_such=1"], ["--set", "frame_flood_rate"],
    ["--thresholds", "{tmp}/missing.toml"],
])
def test_bad_thresholds_exit_2(args: list[str], tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    args = [a.format(tmp=tmp_path) for a in args]
    assert main(["analyze", str(SAMPLES / "plain.pcap"), "-q", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wspcap: error:") and len(err.strip().splitlines()) == 1


def test_summary_groups_by_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(ANOMALIES / "ws-close-code-invalid.pcap")]) == 0
    out = capsys.readouterr().out
    assert "Anomalies by code" in out
    row = [line for line in out.splitlines() if "ws_close_code_invalid" in line]
    assert len(row) == 1 and "│ 6 " in row[0]  # six connections, one row
