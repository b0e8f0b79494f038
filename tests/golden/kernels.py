"""The compiled kernels (``wspcap/*/_speedups.c``) for the tests that compare
them with their pure-Python references."""

from __future__ import annotations

import importlib
import shutil
import sysconfig
from collections.abc import Sequence
from types import ModuleType

import numpy as np
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


def same_whole_frames(got: tuple[bytearray, bytearray] | None,
                      want: tuple[np.ndarray, np.ndarray] | None) -> bool:
    """Whether ``whole_frames``'s kernel result equals its reference's."""
    if got is None or want is None:
        return got is None and want is None
    return [np.frombuffer(g, np.int64).tolist() for g in got] == [w.tolist() for w in want]


def same_headers(got: Sequence[bytearray], want: Sequence[np.ndarray]) -> bool:
    """Whether ``headers``'s kernel result (two bool columns, five int64)
    equals its reference's, every column."""
    dtypes = [np.bool_] * 2 + [np.int64] * 5
    return len(got) == len(want) == len(dtypes) and all(
        np.frombuffer(g, dt).tolist() == w.astype(dt).tolist()
        for g, w, dt in zip(got, want, dtypes, strict=True))
