"""The compiled kernels under AddressSanitizer and UndefinedBehaviorSanitizer.

The six ``wspcap/*/_speedups.c`` read wire bytes that anyone can shape: a
read past a buffer, a use after free or a signed overflow there would not
raise an exception but corrupt the process, or go unseen. The tests that
compare the kernels with their pure-Python references
(``tests/unit/test_speedups.py``, ``tests/fuzz/test_kernels.py``, the
JSON-RPC loop's, the TLS runs') only see wrong answers; here they run again
over a copy of the package whose kernels are built with
``-fsanitize=address,undefined``, and any error the sanitizers report
fails the test with its report.

Needs gcc with libasan and libubsan (skips otherwise); about a minute and a
half on two cores. The copy (package, tests, samples) lives in a temporary
folder: the installed kernels are never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ("ws", "decode", "tls", "sources", "tables", "app")
#: The tests that call the kernels, over every kind of input they take.
TESTS = ("tests/unit/test_speedups.py", "tests/fuzz/test_kernels.py",
         "tests/unit/app/test_jsonrpc_kernel.py", "tests/unit/test_tls_runs.py",
         "tests/test_blocks.py", "tests/test_blocks_tls.py")
TIMEOUT_S = 900


def _runtime(gcc: str, name: str) -> str | None:
    """The path of gcc's sanitizer runtime ``name``, or None (gcc prints the
    bare name back when it has none)."""
    path = subprocess.run([gcc, f"-print-file-name={name}"], capture_output=True,
                          text=True, check=False).stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


def _copy(to: Path) -> None:
    """The package's sources (no built kernel), the tests and the samples."""
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.pyd")
    for name in ("wspcap", "tests", "samples"):
        shutil.copytree(ROOT / name, to / name, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", to / "pyproject.toml")


def _build(gcc: str, to: Path) -> None:
    include = sysconfig.get_paths()["include"]
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    for name in KERNELS:
        source = to / "wspcap" / name / "_speedups.c"
        subprocess.run([gcc, "-O1", "-g", "-fno-omit-frame-pointer",
                        "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                        "-shared", "-fPIC", f"-I{include}", f"-I{to / 'wspcap'}",
                        str(source), "-o", str(source.with_name(f"_speedups{suffix}"))],
                       check=True, capture_output=True)


def test_kernels_under_sanitizers(tmp_path: Path) -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    runtimes = [_runtime(gcc, "libasan.so"), _runtime(gcc, "libubsan.so")]
    if None in runtimes:
        pytest.skip("gcc has no libasan or libubsan (apt-get install libasan8 libubsan1)")
    _copy(tmp_path)
    _build(gcc, tmp_path)
    logs = tmp_path / "reports"
    logs.mkdir()
    env = {**os.environ, "LD_PRELOAD": ":".join(str(r) for r in runtimes),
           "ASAN_OPTIONS": f"detect_leaks=0:allocator_may_return_null=1:"
                           f"log_path={logs / 'asan'}",
           "UBSAN_OPTIONS": f"print_stacktrace=1:log_path={logs / 'ubsan'}",
           # (pymalloc keeps small objects in its own arenas, out of ASan's
           # sight: every allocation through malloc)
           "PYTHONMALLOC": "malloc", "PYTHONPATH": str(tmp_path)}
    env.pop("WSPCAP_NO_SPEEDUPS", None)
    # The sanitized kernels are the ones the tests get, not the installed ones.
    show = "; ".join(f"import wspcap.{name}._speedups as m{i}; print(m{i}.__file__)"
                     for i, name in enumerate(KERNELS))
    where = subprocess.run([sys.executable, "-c", show], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60, check=False)
    assert where.returncode == 0, where.stderr[-2000:]
    assert [Path(p).is_relative_to(tmp_path) for p in where.stdout.split()] == \
        [True] * len(KERNELS), where.stdout
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                          *TESTS], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=TIMEOUT_S, check=False)
    reports = "\n".join(p.read_text(errors="replace") for p in sorted(logs.iterdir()))
    assert not reports, reports[-6000:]
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    assert " passed" in run.stdout, run.stdout[-2000:]
