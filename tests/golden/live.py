"""Helpers of the live tests that run real servers on loopback.

- :func:`listening`: whether something accepts TCP connections on a port of
  127.0.0.1 (a server that has started);
- :func:`stop_group`: stop a server started with ``start_new_session=True``,
  its helpers included (its whole process group);
- :func:`node_peer`: what a test of a Node.js client (``tests/node``) needs,
  capture rights included: the ``node`` command, or the test skips.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

__all__ = ["NODE_DIR", "listening", "node_peer", "stop_group"]

#: The Node.js peers' folder (their package.json; ``npm install --prefix`` it).
NODE_DIR = Path(__file__).resolve().parents[1] / "node"


def node_peer(*packages: str) -> str:
    """The ``node`` command for a live test whose client is a script of
    ``tests/node`` using ``packages`` (and ``ws``), captured with tcpdump:
    skips the test with the reason where root, tcpdump, node or a package
    is missing."""
    if shutil.which("tcpdump") is None or os.geteuid() != 0:
        pytest.skip("needs root and tcpdump")
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    for package in ("ws", *packages):
        if not (NODE_DIR / "node_modules" / package).is_dir():
            pytest.skip(f"the {package} package is not installed (npm install --prefix tests/node)")
    return node


def listening(port: int) -> bool:
    """Whether 127.0.0.1:``port`` accepts a TCP connection (within half a second)."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def stop_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM to the process group, ``grace`` seconds to exit, then SIGKILL to the group.

    The process must lead its own group (``start_new_session=True``); helpers it
    left behind in the group (an Erlang node's ``erl_child_setup``, say) go too.
    """
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        except ProcessLookupError:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
