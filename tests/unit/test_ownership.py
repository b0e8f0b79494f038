"""Each layer owns its state: no module writes the fields of another module's
objects (issue 16: "nothing outside a layer writes its fields").

A module may assign ``obj.name = ...`` (or ``+=``) only where ``name`` is a
field of one of its own classes (``self.name`` assigned in a method, a
``__slots__`` entry or a class-level annotation): that is a record type the
module made. Writing a field that only another module's classes have (the
session's ``ts_end`` from the driver, the budget's ``used`` from the
driver, a protection's ``seq`` from the TLS session...) goes through a
method of the owner instead. Fields of other libraries' objects (a rich
``Table``'s ``caption``) are not wspcap's and not looked at.
"""

from __future__ import annotations

import ast
from pathlib import Path

import wspcap

PACKAGE = Path(wspcap.__file__).parent


def _fields(tree: ast.Module) -> set[str]:
    """The fields that the classes of a module give themselves."""
    names: set[str] = set()
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for node in ast.walk(cls):
            if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                    and isinstance(node.value, ast.Name) and node.value.id == "self"):
                names.add(node.attr)
        for node in cls.body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id == "__slots__":
                        names.update(c.value for c in ast.walk(node.value)
                                     if isinstance(c, ast.Constant) and isinstance(c.value, str))
    return names


def _writes(tree: ast.Module) -> list[tuple[int, str, str]]:
    """``(line, target, field)`` of each write to a field of an object other
    than ``self`` or ``cls``."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        else:
            continue
        for target in targets:
            for e in ast.walk(target):
                if not (isinstance(e, ast.Attribute) and isinstance(e.ctx, ast.Store)):
                    continue
                if isinstance(e.value, ast.Name) and e.value.id in ("self", "cls"):
                    continue
                out.append((node.lineno, ast.unparse(e), e.attr))
    return out


def _violations(sources: dict[str, str]) -> list[str]:
    trees = {name: ast.parse(text) for name, text in sources.items()}
    fields = {name: _fields(tree) for name, tree in trees.items()}
    found = []
    for name, tree in trees.items():
        others = set().union(*(f for n, f in fields.items() if n != name))
        for line, target, attr in _writes(tree):
            if attr in others and attr not in fields[name]:
                found.append(f"{name}:{line}: {target}")
    return found


def test_no_module_writes_another_modules_fields() -> None:
    sources = {str(p.relative_to(PACKAGE)): p.read_text(encoding="utf-8")
               for p in sorted(PACKAGE.rglob("*.py"))}
    assert len(sources) > 50
    assert _violations(sources) == []


def test_the_check_sees_a_write_from_outside() -> None:
    """The check fails on the kind of write it is there to stop, and lets a
    module fill its own record type and other libraries' objects."""
    owner = ("class Session:\n"
             "    def __init__(self):\n"
             "        self.ts_end = 0\n")
    driver = ("def feed(session, ts, table):\n"
              "    session.ts_end = ts\n"
              "    table.caption = 'x'\n")
    record = ("class Info:\n"
              "    ts_end: int = 0\n"
              "def fill(info):\n"
              "    info.ts_end = 1\n")
    assert _violations({"session.py": owner, "driver.py": driver}) == [
        "driver.py:2: session.ts_end"]
    assert _violations({"session.py": owner, "record.py": record}) == []
