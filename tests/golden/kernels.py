"""The compiled kernels (``wspcap/*/_speedups.c``) for the tests that compare
them with their pure-Python references."""

from __future__ import annotations

import importlib
import shutil
import sysconfig
from types import ModuleType

import pytest


def compiler() -> str | None:
    """A C compiler on the path, or None."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc) or shutil.which("cc") or shutil.which("gcc")


def kernel(name: str) -> ModuleType:
    """The built kernel ``name``. Where a C compiler is at hand it must have
    been built (an install that silently fell back to the references would
    hide a broken build); where none is, the test skips."""
    try:
        return importlib.import_module(name)
    except ImportError:
        if compiler() is None:
            pytest.skip(f"{name} is not built and no C compiler is installed")
        pytest.fail(f"{name} is not built though a C compiler is installed "
                    "(pip install -e . builds it)")
