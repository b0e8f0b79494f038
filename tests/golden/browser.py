"""Headless Chromium for the tests: where it is, and the flags it runs with here.

The flags keep it off the network it would otherwise reach for (updates, sync,
background requests), as this machine has none, and let it run as root.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

__all__ = ["chromium", "chromium_args"]


def chromium() -> str:
    """The browser's executable, or skip the test with a reason."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        exe = shutil.which(name)
        if exe:
            return exe
    pytest.skip("chromium is not installed (apt-get install chromium)")


def chromium_args(profile: Path) -> list[str]:
    """Headless, no sandbox (root), no background networking, a fresh profile."""
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}"]
