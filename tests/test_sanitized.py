"""The compiled kernels under AddressSanitizer and UndefinedBehaviorSanitizer.

The tests that compare the kernels with their pure-Python references
(``tests/unit/test_speedups.py``, ``tests/fuzz/test_kernels.py``, the
JSON-RPC loop's, the TLS runs', the block path's) only see wrong answers;
here they run again over a copy of the repository whose kernels are built
with ``-fsanitize=address,undefined`` (:mod:`golden.sanitized`), followed by
half a minute of the fuzz harness (mutated captures through ``wspcap.read``
and ``analyze_to``), and any error the sanitizers report fails the test
with its report.

Needs gcc with libasan and libubsan (skips otherwise); about two minutes on
two cores.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from golden.sanitized import KERNELS, build_copy, environment, kernel_files, reports_in, runtimes

#: The tests that call the kernels, over every kind of input they take.
TESTS = ("tests/unit/test_speedups.py", "tests/fuzz/test_kernels.py",
         "tests/unit/app/test_jsonrpc_kernel.py", "tests/unit/test_tls_runs.py",
         "tests/test_blocks.py", "tests/test_blocks_tls.py")
TIMEOUT_S = 900
FUZZ_MINUTES = 0.5
FUZZ_SEED = 20_16  #: the twentieth session, issue 16


def test_kernels_under_sanitizers(tmp_path: Path) -> None:
    preload = runtimes()
    if preload is None:
        pytest.skip("gcc or its libasan and libubsan are missing (Debian's gcc brings them)")
    copy, reports = tmp_path / "copy", tmp_path / "reports"
    copy.mkdir()
    reports.mkdir()
    build_copy(copy)
    env = environment(copy, reports, preload)
    # The sanitized kernels are the ones the tests get, not the installed ones.
    assert [Path(p).is_relative_to(copy) for p in kernel_files(copy, env)] == \
        [True] * len(KERNELS)
    # (--capture=sys: a sanitizer's report, written to the process's stderr
    # where the runtime does not honour log_path, is not captured by pytest
    # and lost when the sanitizer ends the process; it reaches run.stderr)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                          "--capture=sys", *TESTS], cwd=copy, env=env, capture_output=True,
                         text=True, timeout=TIMEOUT_S, check=False)
    found = reports_in(reports)
    assert not found, found[-6000:]
    assert run.returncode == 0, run.stdout[-1500:] + run.stderr[:4000]  # (a report's head)
    assert " passed" in run.stdout, run.stdout[-2000:]
    fuzz = subprocess.run([sys.executable, "-m", "tests.fuzz", "--minutes", str(FUZZ_MINUTES),
                           "--seed", str(FUZZ_SEED), "--rss-limit-mb", "2000",
                           "--out", str(tmp_path / "findings")], cwd=copy, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    found = reports_in(reports)
    assert not found, found[-6000:]
    assert fuzz.returncode == 0, (fuzz.stdout + fuzz.stderr)[-4000:]
    assert " cases in " in fuzz.stdout, fuzz.stdout[-2000:]
