"""Shared fixtures of the end-to-end tests.

Where things are:

- the repository root is the parent of this folder; ``samples/`` holds real
  captures with ``.truth.json`` ground truth (see ``samples/README.md``);
- the peers' corpus (Zeek and Suricata captures with their expected outputs
  and licenses) is in ``tests/data/peers``; the environment variable
  ``WSPCAP_PEERS`` points elsewhere;
- ``tests/golden/`` holds the helpers of these tests (truth comparison, an
  RFC 6455 frame builder written for the tests, scapy-crafted captures).

Parametrization: a test that takes ``sample_name`` runs once per sample; one
that takes ``peer_capture`` once per capture of the peers' corpus (relative
path, e.g. ``zeek/traces/jupyter-websocket.pcap``).
"""

from __future__ import annotations

import os
import shutil
import sys
from functools import cache
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent

# The helpers in tests/golden are imported as the package ``golden``.
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from golden.paths import REPO_ROOT, SAMPLES_DIR, peer_captures, peers_location, sample_names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sample_name" in metafunc.fixturenames:
        metafunc.parametrize("sample_name", sample_names())
    if "peer_capture" in metafunc.fixturenames:
        names = peer_captures()
        if names:
            metafunc.parametrize("peer_capture", names)
        else:
            metafunc.parametrize("peer_capture", [pytest.param(
                None, marks=pytest.mark.skip(
                    reason=f"peers' corpus not found at {peers_location()} "
                           "(set WSPCAP_PEERS)"))])


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The ``samples/`` folder (real captures with ground truth)."""
    return SAMPLES_DIR


@pytest.fixture(scope="session")
def peers_dir() -> Path:
    """The peers' corpus; the test is skipped when it is missing."""
    root = peers_location()
    if not root.is_dir():
        pytest.skip(f"peers' corpus not found at {root} (set WSPCAP_PEERS)")
    return root


@pytest.fixture(scope="session")
def tshark() -> str:
    """The tshark executable; the test is skipped when it is not installed."""
    exe = shutil.which("tshark")
    if exe is None:
        pytest.skip("tshark is not installed")
    return exe


@cache
def _read(path: str):  # type: ignore[no-untyped-def]
    import wspcap
    return wspcap.read(path)


@pytest.fixture(scope="session")
def read_capture():  # type: ignore[no-untyped-def]
    """``read_capture(path)``: ``wspcap.read(path)``, read once per path per session.

    The returned Capture is shared: tests must not modify its tables.
    """
    def read(path: str | os.PathLike[str]):  # type: ignore[no-untyped-def]
        return _read(str(Path(path).resolve()))
    return read
