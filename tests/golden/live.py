"""Helpers of the live tests that run real servers on loopback.

- :func:`listening`: whether something accepts TCP connections on a port of
  127.0.0.1 (a server that has started);
- :func:`stop_group`: stop a server started with ``start_new_session=True``,
  its helpers included (its whole process group).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess

__all__ = ["listening", "stop_group"]


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
