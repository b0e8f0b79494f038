"""Fresh captures: run ``samples/make_samples.py`` on loopback, then check wspcap
against the truth it writes.

Each run picks new ports, keys, masking keys and TCP segmentation, so this
checks more than the committed samples do. Needs root and tcpdump (the
generator's own requirements); skipped otherwise. The generator bounds every
wait itself; the whole run is bounded here too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any

import pytest
from golden import truth as T
from golden.paths import SAMPLES_DIR

import wspcap

pytestmark = pytest.mark.network

#: Scenarios regenerated (a couple of seconds each); see samples/README.md.
SCENARIOS = ["plain", "fragmented", "wss", "wss-tls12"]
TIMEOUT = 120


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, dict[str, Any]]]:
    """scenario -> (capture, truth), freshly captured."""
    if os.geteuid() != 0:
        pytest.skip("capturing on loopback needs root")
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed")
    out = tmp_path_factory.mktemp("fresh-samples")
    cmd = [sys.executable, str(SAMPLES_DIR / "make_samples.py"), "--out", str(out)]
    for name in SCENARIOS:
        cmd += ["--only", name]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT,
                              check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"make_samples.py took over {TIMEOUT} s")
    assert done.returncode == 0, done.stderr
    result = {}
    for name in SCENARIOS:
        truth = T.load(out / f"{name}.truth.json")
        result[name] = (wspcap.read(out / truth["file"]), truth)
    return result


@pytest.mark.parametrize("name", SCENARIOS)
def test_fresh_capture(name: str, fresh: dict[str, tuple[Any, dict[str, Any]]]) -> None:
    capture, truth = fresh[name]
    assert capture.info.packets == truth["capture"]["packets_captured"]
    rows = T.connection_rows(capture, truth)
    assert len(capture.connections) == len(truth["connections"])
    for tc in truth["connections"]:
        conn_id = int(rows[tc["id"]].conn_id)
        assert T.actual_connection(rows[tc["id"]]) == T.expected_connection(tc)
        for d in T.DIRECTIONS:
            assert T.actual_frames(capture, conn_id, d) == T.expected_frames(tc, d)
            assert T.actual_messages(capture, conn_id, d) == T.expected_messages(tc, d)
    a = capture.anomalies
    bad = a[a.severity.isin(["warning", "error"])]
    assert bad.empty, bad[["code", "detail"]].to_string()
