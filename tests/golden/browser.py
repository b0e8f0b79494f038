"""Headless Chromium for the tests: where it is, and the flags it runs with here.

The flags keep it off the network it would otherwise reach for (updates, sync,
background requests), as this machine has none, and let it run as root.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

__all__ = ["chromium", "chromium_args", "page"]


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


_PAGE = """<!doctype html><html><head><title>wss</title></head><body>
<script>
const ws = new WebSocket(%(url)s);
ws.binaryType = "arraybuffer";
const texts = %(texts)s;
let got = 0;
ws.onopen = () => {
  for (const t of texts) ws.send(t);
  ws.send(new Uint8Array([0, 1, 2, 253, 254, 255]));
};
ws.onmessage = () => { got += 1; if (got === texts.length + 1) ws.close(1000, "bye"); };
</script>
<img src=%(image)s alt="">
</body></html>
"""


def page(url: str, texts: list[str], image: str) -> str:
    """A page that opens the WebSocket ``url``, sends ``texts`` and a 6-byte
    binary message, and closes with 1000 ``bye`` once each has its answer.
    ``image`` is a URL whose answer is to wait for that close: the page does
    not finish loading before it, so ``--dump-dom`` returns only then."""
    return _PAGE % {"url": json.dumps(url), "texts": json.dumps(texts),
                    "image": json.dumps(image)}
