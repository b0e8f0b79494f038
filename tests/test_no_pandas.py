"""``wspcap analyze CAPTURE -o DIR`` (Parquet) never imports pandas.

pandas costs 0.25-0.3 s of a process's start, more than the rest of the
CLI's fixed cost: the Parquet path builds its Arrow tables from buffers
(:mod:`wspcap.tables.arrays`), keeps the connections and anomalies in Arrow,
and prints its summary from them. A ``pa.array`` or a ``to_numpy`` on that
path would bring pandas back (pyarrow's pandas shim imports it); these tests
catch that, on captures that take every builder: inflated, fragmented and
control messages, TLS, app rows, anomalies of every layer. (CSV and JSON
lines are written with pandas' writers, and ``read()`` gives DataFrames.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from wspcap.tables.schema import TABLES

SAMPLES = Path(__file__).resolve().parent.parent / "samples"

RUN = """
import json, sys
from wspcap.cli import main
status = main(sys.argv[1:])
print(json.dumps({"status": status,
                  "pandas": sorted(m for m in sys.modules if m.split(".")[0] == "pandas")}))
"""


def analyze(capture: Path, out: Path, *options: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", RUN, "analyze", str(capture), "-o", str(out),
                           *options], capture_output=True, text=True, timeout=120, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("name", [
    "deflate.pcap", "fragmented.pcap", "multi.pcapng", "socketio.pcapng", "mqtt.pcapng",
    "wss.pcapng", "wss-tls12.pcapng", "anomalies/tcp-gap.pcap",
    "anomalies/pmd-inflate-failed.pcap", "anomalies/http-key-invalid.pcap",
    "anomalies/app-parse-failed.pcap", "anomalies/app-credentials-in-clear.pcapng",
    "anomalies/capture-truncated.pcap", "anomalies/tcp-overlap-conflict.pcap",
])
def test_analyze_to_parquet_imports_no_pandas(name: str, tmp_path: Path) -> None:
    capture = SAMPLES / name
    if not capture.exists():
        pytest.fail(f"{name}: the sample is missing")
    result = analyze(capture, tmp_path / "out", "--fail-on", "warning")
    assert result["pandas"] == [], f"{name}: pandas imported"
    # ... and what it wrote is whole: every table, the rows read() finds
    import wspcap
    cap = wspcap.read(str(capture))
    for schema in TABLES:
        table = pq.read_table(tmp_path / "out" / f"{schema.name}.parquet")
        assert table.num_rows == len(getattr(cap, schema.name)), schema.name
    worse = cap.anomalies.severity.isin(["warning", "error"]).any()
    assert result["status"] == (3 if worse else 0)


def test_the_test_sees_pandas_when_it_is_imported(tmp_path: Path) -> None:
    # CSV goes through pandas' writer: the check above would see it.
    result = analyze(SAMPLES / "plain.pcap", tmp_path / "out", "--format", "csv")
    assert result["pandas"], "the subprocess check does not see pandas"
