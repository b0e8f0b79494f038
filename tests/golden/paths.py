"""Where the test data lives, relative to this repository.

- ``samples/``: real captures with ``.truth.json`` ground truth: WebSocket-level
  truth (``make_samples.py``) or, naming a ``protocol``, application-level truth
  (``make_app_samples.py``);
- the peers' corpus: ``tests/data/peers`` (Zeek's and Suricata's captures and
  expected outputs, with their licenses), or the folder named by the
  environment variable ``WSPCAP_PEERS``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

__all__ = [
    "CAPTURE_SUFFIXES",
    "GOLDEN_DIR",
    "PEERS_DIR",
    "REPO_ROOT",
    "SAMPLES_DIR",
    "TESTS_DIR",
    "app_sample_names",
    "peer_captures",
    "peers_location",
    "sample_captures",
    "sample_names",
]

GOLDEN_DIR = Path(__file__).resolve().parent
TESTS_DIR = GOLDEN_DIR.parent
REPO_ROOT = TESTS_DIR.parent
SAMPLES_DIR = REPO_ROOT / "samples"
PEERS_DIR = TESTS_DIR / "data" / "peers"
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz")


def peers_location() -> Path:
    """Where the peers' corpus should be (it may not exist)."""
    env = os.environ.get("WSPCAP_PEERS")
    if env:
        return Path(env).expanduser().resolve()
    return PEERS_DIR


def _truth_names(app: bool) -> list[str]:
    names = []
    for path in SAMPLES_DIR.glob("*.truth.json"):
        truth = json.loads(path.read_text(encoding="utf-8"))
        if ("protocol" in truth) == app:  # application truth names its protocol
            names.append(path.name[:-len(".truth.json")])
    return sorted(names)


def sample_names() -> list[str]:
    """Every sample with a WebSocket-level truth file (the truth file's stem)."""
    return _truth_names(app=False)


def app_sample_names() -> list[str]:
    """Every sample with an application-level truth file (``make_app_samples.py``)."""
    return _truth_names(app=True)


def sample_captures() -> list[Path]:
    """Every capture file in ``samples/``."""
    return sorted(p for p in SAMPLES_DIR.iterdir() if p.name.endswith(CAPTURE_SUFFIXES))


def peer_captures() -> list[str]:
    """Every capture of the peers' corpus, as a path relative to its root."""
    root = peers_location()
    if not root.is_dir():
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.name.endswith(CAPTURE_SUFFIXES))


def anomaly_generator() -> ModuleType:
    """``samples/anomalies/make_anomalies.py`` as a module (loaded once): its
    scapy scenario writer and its TLS 1.3 writer, apart from wspcap's own."""
    loaded = sys.modules.get("make_anomalies")
    if loaded is not None:
        return loaded
    path = SAMPLES_DIR / "anomalies" / "make_anomalies.py"
    spec = importlib.util.spec_from_file_location("make_anomalies", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_anomalies"] = module
    spec.loader.exec_module(module)
    return module
