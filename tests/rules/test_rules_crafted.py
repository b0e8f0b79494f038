"""Each code fires on its crafted capture, in the right place, and nothing else fires.

The captures in ``samples/anomalies/`` are made by ``make_anomalies.py`` with
scapy, frames laid out by hand per RFC 6455; next to each, ``NAME.expect.json``
is what the script (the sender) put there: the complete set of codes, and
each expected row with its connection, direction, frame index, packet and a
piece of its detail.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest

import wspcap
from wspcap.rules.registry import RULES

ANOMALIES_DIR = Path(__file__).resolve().parents[2] / "samples" / "anomalies"
EXPECT_FILES = sorted(ANOMALIES_DIR.glob("*.expect.json"))


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _read(expect: dict[str, Any]) -> wspcap.Capture:
    return _read_file(expect["file"], json.dumps(expect["options"]),
                      json.dumps(expect["thresholds"]))


@cache
def _read_file(file: str, options_json: str, thresholds_json: str) -> wspcap.Capture:
    """Read once per test session (the tests only look at the tables)."""
    expect = {"file": file, "options": json.loads(options_json),
              "thresholds": json.loads(thresholds_json)}
    options = wspcap.Options(**expect["options"]) if expect["options"] else None
    return wspcap.read(ANOMALIES_DIR / expect["file"], options=options,
                       thresholds=expect["thresholds"] or None)


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_anomalies",
                                                  ANOMALIES_DIR / "make_anomalies.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_anomalies"] = module
    spec.loader.exec_module(module)
    return module


def _matches(a: pd.DataFrame, row: dict[str, Any]) -> pd.Series:
    def eq(col: str, value: Any) -> pd.Series:
        s = a[col]
        return s.isna() if value is None else (s == value).fillna(False).astype(bool)
    mask = (a.code == row["code"]) & eq("conn_id", row["conn_id"]) \
        & eq("direction", row["direction"]) & eq("frame_index", row["frame_index"])
    if "packet" in row:
        mask &= eq("packet", row["packet"])
    return mask & a.detail.str.contains(row["detail"], regex=False).fillna(False).astype(bool)


def test_there_are_crafted_captures() -> None:
    assert len(EXPECT_FILES) >= 60


@pytest.mark.parametrize("expect_file", EXPECT_FILES, ids=lambda p: p.name[:-12])
def test_codes_fire_where_the_sender_put_them(expect_file: Path) -> None:
    expect = _load(expect_file)
    capture = _read(expect)
    a = capture.anomalies
    fired = set(a.code.astype(str))
    assert fired == set(expect["codes"]), a[["code", "detail"]].to_string()
    for row in expect["anomalies"]:
        assert _matches(a, row).any(), (row, a.drop(columns=["ts"]).to_string())
    for code in expect["codes"]:
        rows = sum(r["code"] == code for r in expect["anomalies"])
        assert int((a.code == code).sum()) == rows, code


@pytest.mark.parametrize("expect_file", EXPECT_FILES, ids=lambda p: p.name[:-12])
def test_rows_join_back(expect_file: Path) -> None:
    """Every row's frame_index is a frame of its connection, in its direction."""
    capture = _read(_load(expect_file))
    f = capture.frames.set_index(["conn_id", "frame_index"])
    for r in capture.anomalies.dropna(subset=["frame_index"]).itertuples(index=False):
        frame = f.loc[(int(r.conn_id), int(r.frame_index))]
        assert frame.direction == r.direction
    conns = set(capture.connections.conn_id)
    assert set(capture.anomalies.conn_id.dropna().astype(int)) <= conns


def test_every_code_has_a_crafted_capture() -> None:
    covered = {c for p in EXPECT_FILES for c in _load(p)["codes"]}
    assert set(RULES) <= covered, sorted(set(RULES) - covered)


def test_clean_capture_fires_only_plaintext() -> None:
    expect = _load(ANOMALIES_DIR / "clean.expect.json")
    assert expect["codes"] == ["sec_plaintext_ws"]


def test_frame_after_fin_is_not_delivered() -> None:
    """RFC 9293 section 3.10.7.4: the frame sent past the client's FIN is flagged and is
    in neither the frames nor the messages table (the receiver never took it)."""
    expect = _load(ANOMALIES_DIR / "tcp-data-after-fin.expect.json")
    (row,) = [r for r in expect["anomalies"] if r["code"] == "tcp_data_after_fin"]
    capture = _read(expect)
    payloads = [bytes(p) for p in capture.frames.payload]
    assert b"before the FIN" in payloads and b"sent after FIN" not in payloads
    assert (capture.frames.packet < row["packet"]).all()
    assert b"sent after FIN" not in [bytes(p) for p in capture.messages.payload]


def test_readme_has_a_line_per_capture() -> None:
    readme = (ANOMALIES_DIR / "README.md").read_text(encoding="utf-8")
    for p in EXPECT_FILES:
        assert f"| `{_load(p)['file']}` |" in readme


def test_generator_reproduces_the_committed_captures(tmp_path: Path) -> None:
    """The script and the binaries agree: regenerating gives the same bytes."""
    pytest.importorskip("scapy")
    gen = _generator()
    assert gen.main(["--out", str(tmp_path)]) == 0
    made = sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(p.name for p in ANOMALIES_DIR.iterdir()
                       if p.name.endswith((".pcap", ".pcapng", ".pcap.gz", ".expect.json")))
    assert made == committed
    for name in made:
        assert (tmp_path / name).read_bytes() == (ANOMALIES_DIR / name).read_bytes(), name


def test_readme_table_is_the_generated_one() -> None:
    gen = _generator()
    readme = (ANOMALIES_DIR / "README.md").read_text(encoding="utf-8")
    assert f"{gen.README_START}\n{gen.readme_table()}\n{gen.README_END}" in readme


def test_generator_frames_follow_rfc6455() -> None:
    """The script's frame builder against RFC 6455 section 5.7's examples."""
    gen = _generator()
    assert gen.frame(gen.TEXT, b"Hello") == bytes.fromhex("810548656c6c6f")
    assert gen.frame(gen.TEXT, b"Hello", key=bytes.fromhex("37fa213d")) == bytes.fromhex(
        "818537fa213d7f9f4d5158")
    assert gen.frame(gen.TEXT, b"Hel", fin=False) == bytes.fromhex("010348656c")
    assert gen.frame(gen.CONT, b"lo") == bytes.fromhex("80026c6f")
    assert gen.frame(gen.PING, b"Hello") == bytes.fromhex("890548656c6c6f")
    assert gen.frame(gen.BINARY, bytes(256))[:4] == bytes.fromhex("827e0100")
    assert gen.frame(gen.BINARY, bytes(65536))[:10] == bytes.fromhex("827f0000000000010000")
    # RFC 6455 section 1.3's handshake example.
    assert gen.accept_for("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
