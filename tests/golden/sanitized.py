"""A copy of the repository whose compiled kernels are built with
AddressSanitizer and UndefinedBehaviorSanitizer (gcc's), and the environment
that runs Python there: for ``tests/test_sanitized.py`` and ``python -m
tests.fuzz --sanitize``.

The six ``wspcap/*/_speedups.c`` read wire bytes that anyone can shape: a
read past a buffer, a use after free or a signed overflow there would not
raise an exception but corrupt the process, or go unseen. The copy (package,
tests, samples) lives in a folder of the caller's: the installed kernels are
never touched. Python's own allocator is turned off there
(``PYTHONMALLOC=malloc``): it keeps small objects in arenas of its own, out
of ASan's sight.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KERNELS = ("ws", "decode", "tls", "sources", "tables", "app")


def runtimes() -> list[str] | None:
    """gcc's ASan and UBSan runtimes (to preload), or None where gcc or one
    of them is missing."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    found = []
    for name in ("libasan.so", "libubsan.so"):
        path = subprocess.run([gcc, f"-print-file-name={name}"], capture_output=True,
                              text=True, check=False).stdout.strip()
        if not (os.path.isabs(path) and os.path.exists(path)):
            return None  # (gcc prints the bare name back when it has none)
        found.append(path)
    return found


def build_copy(to: Path) -> None:
    """The package's sources, the tests and the samples copied into ``to``,
    and the kernels built there with the sanitizers."""
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.pyd", "node_modules")
    for name in ("wspcap", "tests", "samples"):
        shutil.copytree(ROOT / name, to / name, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", to / "pyproject.toml")
    include = sysconfig.get_paths()["include"]
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    for name in KERNELS:
        source = to / "wspcap" / name / "_speedups.c"
        subprocess.run(["gcc", "-O1", "-g", "-fno-omit-frame-pointer",
                        "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                        "-shared", "-fPIC", f"-I{include}", f"-I{to / 'wspcap'}",
                        str(source), "-o", str(source.with_name(f"_speedups{suffix}"))],
                       check=True, capture_output=True)


def environment(copy: Path, reports: Path, preload: list[str]) -> dict[str, str]:
    """The environment of a Python run in ``copy``: the runtimes preloaded,
    each report written into the folder ``reports``, the copy's package first
    on the path, the kernels on."""
    env = {**os.environ, "LD_PRELOAD": ":".join(preload),
           "ASAN_OPTIONS": f"detect_leaks=0:allocator_may_return_null=1:"
                           f"log_path={reports / 'asan'}",
           "UBSAN_OPTIONS": f"print_stacktrace=1:log_path={reports / 'ubsan'}",
           "PYTHONMALLOC": "malloc", "PYTHONPATH": str(copy)}
    env.pop("WSPCAP_NO_SPEEDUPS", None)
    return env


def kernel_files(copy: Path, env: dict[str, str]) -> list[str]:
    """Where the copy's Python finds each kernel (all in the copy, or the
    sanitized build is not what runs)."""
    show = "; ".join(f"import wspcap.{name}._speedups as m{i}; print(m{i}.__file__)"
                     for i, name in enumerate(KERNELS))
    where = subprocess.run([sys.executable, "-c", show], cwd=copy, env=env,
                           capture_output=True, text=True, timeout=60, check=True)
    return where.stdout.split()


def reports_in(folder: Path) -> str:
    """The sanitizers' reports written into ``folder``, joined ('' for none)."""
    return "\n".join(p.read_text(errors="replace") for p in sorted(folder.iterdir()))
