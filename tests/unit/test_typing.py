"""The package type-checks under ``mypy --strict`` and passes ``ruff check``.

Both tools read their settings from ``pyproject.toml``, so they run from the
repository root. Each test skips when its tool is not installed (the ``test``
extra installs both).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "wspcap"


def _tool(name: str) -> list[str]:
    """The command that runs ``name``, or skip the test when it is missing."""
    if importlib.util.find_spec(name) is not None:
        return [sys.executable, "-m", name]
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return [path]


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    if not (PACKAGE / "__init__.py").is_file():
        pytest.skip("needs the source tree (wspcap/ next to tests/)")
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          check=False)


def test_mypy_strict() -> None:
    """``mypy --strict wspcap`` reports no error (unused ``type: ignore`` included)."""
    result = _run([*_tool("mypy"), "--strict", "wspcap"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_check() -> None:
    """``ruff check wspcap`` finds nothing."""
    result = _run([*_tool("ruff"), "check", "--no-cache", "wspcap"])
    assert result.returncode == 0, result.stdout + result.stderr
