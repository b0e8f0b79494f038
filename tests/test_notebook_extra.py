"""``pip install ".[notebook]"`` is enough to run the notebooks headless (issue 15 item 18).

What the notebooks import is read from the ``.ipynb`` files (their code
cells, parsed with :mod:`ast`), what the project declares from
``pyproject.toml`` (:mod:`tomllib`):

- every package a notebook imports is a dependency of wspcap or is in the
  ``notebook`` extra;
- a part of wspcap they use that has an extra of its own (``wspcap.views.plot``:
  ``plot``) has that extra's requirements in the notebook extra;
- what an IPython magic they use loads (``%matplotlib inline``:
  matplotlib-inline) comes with the extra;
- what executing them headless needs (nbclient, nbformat, an ipykernel
  kernel) is in the extra, and so is the program the README runs them with.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: Executing a notebook headless: nbclient drives a kernel (ipykernel), on
#: notebooks read and written by nbformat.
EXECUTION = ("nbclient", "nbformat", "ipykernel")
#: The README's command that runs the notebooks headless.
HEADLESS = "jupyter execute"
#: Modules an IPython line magic loads, by magic.
MAGICS = {"matplotlib": ("matplotlib_inline",)}
#: Parts of wspcap that need an extra of their own, and that extra.
PARTS = {"wspcap.views.plot": "plot", "wspcap.api.many": "dask", "wspcap.read_many": "dask",
         "wspcap.sources.live": "live", "wspcap.live": "live", "wspcap.sniff": "live"}


def _name(requirement: str) -> str:
    """The canonical distribution name of a requirement string."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def _project() -> dict[str, object]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]  # type: ignore[no-any-return]


def _declared() -> tuple[set[str], set[str]]:
    """Names of wspcap's dependencies, and of the ``notebook`` extra's."""
    project = _project()
    base = {_name(r) for r in project["dependencies"]}  # type: ignore[attr-defined]
    extra = {_name(r) for r in project["optional-dependencies"]["notebook"]}  # type: ignore[index]
    return base, extra


def _code_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """Modules imported by a notebook's code cells (full dotted names), and
    the IPython line magics it uses (``%matplotlib inline`` -> ``matplotlib``)."""
    modules: set[str] = set()
    magics: set[str] = set()
    for source in _code_cells(path):
        python = []
        for line in source.splitlines():
            if line.lstrip().startswith(("%", "!")):
                magics.add(line.lstrip()[1:].split()[0])
                python.append("")
            else:
                python.append(line)
        for node in ast.walk(ast.parse("\n".join(python))):
            if isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module)
    return modules, magics


def _all_imports() -> tuple[set[str], set[str]]:
    modules: set[str] = set()
    magics: set[str] = set()
    for path in NOTEBOOKS:
        m, g = _imports(path)
        modules |= m
        magics |= g
    return modules, magics


def _third_party(modules: set[str]) -> set[str]:
    """Top-level names that are neither the standard library nor wspcap."""
    return {m.split(".")[0] for m in modules} - set(sys.stdlib_module_names) - {"wspcap"}


def _distributions(top_level: set[str]) -> dict[str, set[str]]:
    """The installed distributions providing each top-level module."""
    providers = md.packages_distributions()
    out = {}
    for name in sorted(top_level):
        if name not in providers:
            pytest.skip(f"{name} is not installed (pip install -e '.[notebook]')")
        out[name] = {_name(d) for d in providers[name]}
    return out


def _closure(names: set[str]) -> set[str]:
    """``names`` and every distribution they require, as installed (markers
    that ask for an extra are left out, the others are evaluated)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for requirement in requires:
            spec, _, marker = requirement.partition(";")
            if "extra" in marker:
                continue
            if marker.strip() and not _marker_holds(marker):
                continue
            todo.append(_name(spec))
    return seen


def _marker_holds(marker: str) -> bool:
    try:
        from packaging.markers import Marker
    except ImportError:  # pragma: no cover - packaging comes with pip's world
        return True
    return bool(Marker(marker.strip()).evaluate())


def test_notebooks_are_found() -> None:
    assert len(NOTEBOOKS) >= 2
    modules, magics = _all_imports()
    assert {"pandas", "wspcap", "wspcap.views.plot", "matplotlib.pyplot"} <= modules
    assert "matplotlib" in magics


def test_what_the_notebooks_import_is_declared() -> None:
    """A package imported by a notebook is a dependency or in the extra."""
    base, extra = _declared()
    modules, _magics = _all_imports()
    for module, dists in _distributions(_third_party(modules)).items():
        assert dists & (base | extra), f"{module} ({', '.join(dists)}) is not declared"


def test_execution_needs_are_in_the_extra() -> None:
    _base, extra = _declared()
    missing = [name for name in EXECUTION if name not in extra]
    assert not missing, f"the notebook extra lacks {missing}"


def test_the_readme_command_comes_with_the_extra() -> None:
    """The README says how to run them headless, with a program that the
    extra installs (``jupyter execute`` is nbclient's ``jupyter-execute``)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert 'pip install -e ".[notebook]"' in readme
    assert f"{HEADLESS} notebooks/" in readme
    program = HEADLESS.replace(" ", "-")
    scripts = [ep for ep in md.entry_points(group="console_scripts") if ep.name == program]
    if not scripts:
        pytest.skip(f"{program} is not installed (pip install -e '.[notebook]')")
    base, extra = _declared()
    owners = {_name(ep.dist.name) for ep in scripts if ep.dist is not None}
    assert owners & _closure(base | extra), owners


def test_the_extras_of_what_they_use_are_in_it() -> None:
    """A notebook that uses a part of wspcap with an extra of its own (plots,
    Dask, live capture) gets that extra's requirements from the notebook extra."""
    extras = _project()["optional-dependencies"]
    _base, extra = _declared()
    modules, _magics = _all_imports()
    used = modules | _wspcap_attributes()
    for part, name in PARTS.items():
        if part in used:
            wanted = {_name(r) for r in extras[name]}  # type: ignore[index]
            assert wanted <= extra, f"{part} needs the {name} extra: {wanted - extra}"
    assert "wspcap.views.plot" in used  # the check above is not idle


def _wspcap_attributes() -> set[str]:
    """``wspcap.NAME`` as used in the notebooks' code (``wspcap.read_many(...)``)."""
    used = set()
    for path in NOTEBOOKS:
        for source in _code_cells(path):
            python = "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                               for line in source.splitlines())
            for node in ast.walk(ast.parse(python)):
                if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                        and node.value.id == "wspcap"):
                    used.add(f"wspcap.{node.attr}")
    return used


def test_what_their_magics_load_comes_with_the_extra() -> None:
    """``%matplotlib inline`` loads matplotlib-inline, which ipykernel requires."""
    base, extra = _declared()
    _modules, magics = _all_imports()
    loaded = {m for g in magics for m in MAGICS.get(g, ())}
    assert loaded  # the notebooks use %matplotlib inline
    brought = _closure(base | extra)
    for module, dists in _distributions(loaded).items():
        assert dists & brought, f"%{module} needs {dists}, not brought in by the extra"
