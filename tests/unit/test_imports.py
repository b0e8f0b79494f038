"""Imports go down the floors only, and no module imports itself back.

Every import of the package is read from the source (``ast``), type-only
imports included: a type is a dependency too. A module may import from its
own floor or the ones below it, never from a floor above; and the graph of
modules has no circle (modules importing each other through any path).
"""

from __future__ import annotations

import ast
from pathlib import Path

import wspcap

PACKAGE = Path(wspcap.__file__).parent

#: The floors, lowest first. A module is on the floor of the longest prefix
#: of its dotted name listed here.
ORDER = [
    "wspcap.errors", "wspcap.timestamps", "wspcap.constants",  # foundations
    "wspcap.sources",   # capture sources: files, live, key logs
    "wspcap.decode",    # link, IP and TCP headers
    "wspcap.tcp",       # TCP reassembly
    "wspcap.proxy",     # proxy tunnels: SOCKS
    "wspcap.tls",       # TLS records and decryption
    "wspcap.http",      # the HTTP/1.1 upgrade
    "wspcap.ws",        # frames, messages, permessage-deflate, record columns
    "wspcap.app",       # application-protocol decoders
    "wspcap.rules",     # anomaly catalog and checks
    "wspcap.engine",    # the driver that joins the layers
    "wspcap.tables",    # tables and their writers
    "wspcap.views",     # summary, plots, report, live view
    "wspcap.api",       # read, analyze_to, live, many
    "wspcap.cli",       # the command line
    "wspcap.__main__",
]
TOP = "wspcap"  # the package's __init__: lazy re-exports of the API, above all


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path) -> set[str]:
    """The package's modules that ``name`` imports (at run time or for types)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith(TOP)}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            if not base.startswith(TOP):
                continue
            for alias in node.names:  # `from wspcap.x import y`: y may be a module
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in ALL else base)
    return {m for m in out if m != name}


ALL = modules()


def floor(name: str) -> int:
    best = max((p for p in ORDER if name == p or name.startswith(p + ".")), key=len,
               default=None)
    assert best is not None, f"{name} is on no floor: add it to ORDER"
    return ORDER.index(best)


def test_every_module_has_a_floor() -> None:
    for name in ALL:
        if name != TOP:
            floor(name)


def test_imports_only_go_down() -> None:
    upward = []
    for name, path in sorted(ALL.items()):
        if name == TOP:
            continue
        for target in imports(name, path):
            if target == TOP:
                upward.append(f"{name} imports the package's __init__")
            elif floor(target) > floor(name):
                upward.append(f"{name} -> {target}")
    assert not upward, "imports going up the floors:\n" + "\n".join(upward)


def test_no_circles() -> None:
    graph = {name: imports(name, path) & ALL.keys() for name, path in ALL.items()}
    # A package imports its __init__ when one of its modules is imported: an
    # edge from a module to its own package's __init__ is not a circle by itself.
    state: dict[str, int] = {}
    circles: list[str] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(" -> ".join([*trail[trail.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not circles, "import circles:\n" + "\n".join(circles)
