"""The sans-I/O layers stay free of heavy and optional dependencies.

STYLE.md section A: ``tcp``, ``proxy``, ``http``, ``ws`` and ``rules`` never import
pandas, matplotlib or scapy, not even indirectly through the package's
``__init__``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import wspcap

LAYERS = ("tcp", "proxy", "tls", "http", "ws", "app", "rules")
FORBIDDEN = ("pandas", "matplotlib", "scapy")


def test_importing_the_layers_loads_none_of_them() -> None:
    code = (
        "import json, sys\n"
        + "".join(f"import wspcap.{layer}\n" for layer in LAYERS)
        + f"print(json.dumps([m for m in {FORBIDDEN!r} if m in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_subprocess_check_can_fail() -> None:
    """The same check sees a forbidden module when one is imported."""
    pytest.importorskip("pandas")
    code = ("import json, sys, wspcap.ws, pandas\n"
            f"print(json.dumps([m for m in {FORBIDDEN!r} if m in sys.modules]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == ["pandas"]


@pytest.mark.parametrize("layer", LAYERS)
def test_no_forbidden_import_statements(layer: str) -> None:
    package = Path(wspcap.__file__).parent / layer
    sources = sorted(package.rglob("*.py"))
    assert sources
    for path in sources:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
