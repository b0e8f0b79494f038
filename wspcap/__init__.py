"""wspcap: every WebSocket conversation in a capture, exactly.

>>> import wspcap
>>> cap = wspcap.read("samples/plain.pcap")          # doctest: +SKIP
>>> cap.connections, cap.frames, cap.messages, cap.anomalies  # doctest: +SKIP
>>> wspcap.catalog()  # the anomaly codes: severity, reference, meaning  # doctest: +SKIP

Layers, each knowing only the one below it: capture sources
(:mod:`wspcap.sources`) -> packet decoding (:mod:`wspcap.decode`) -> TCP
reassembly (:mod:`wspcap.tcp`) -> HTTP upgrade (:mod:`wspcap.http`) -> frames
and messages (:mod:`wspcap.ws`) -> anomaly rules (:mod:`wspcap.rules`), joined
by the driver (:mod:`wspcap.pipeline`) -> tables and exports
(:mod:`wspcap.tables`, :mod:`wspcap.export`) -> CLI (:mod:`wspcap.cli`).
"""

from typing import TYPE_CHECKING, Any

from wspcap.errors import CaptureFormatError, ConfigError, WspcapError

if TYPE_CHECKING:
    from wspcap.capture import Capture, CaptureInfo, from_packets, read
    from wspcap.monitor import live, replay, sniff
    from wspcap.parallel import read_many
    from wspcap.pipeline import Options
    from wspcap.rules.thresholds import Thresholds
    from wspcap.tables import catalog

#: The public API, imported on first use (PEP 562): importing a sans-I/O layer
#: such as ``wspcap.ws`` runs this file, and must not load pandas through it.
#: Add new top-level names here, not as imports above.
_LAZY = {
    "Capture": "wspcap.capture", "CaptureInfo": "wspcap.capture",
    "from_packets": "wspcap.capture", "read": "wspcap.capture",
    "analyze_to": "wspcap.capture", "Written": "wspcap.capture",
    "Options": "wspcap.pipeline", "Thresholds": "wspcap.rules.thresholds",
    "live": "wspcap.monitor", "replay": "wspcap.monitor", "sniff": "wspcap.monitor",
    "read_many": "wspcap.parallel", "catalog": "wspcap.tables",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'wspcap' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public API only (not ``Any``, ``TYPE_CHECKING`` or loaded submodules)."""
    return sorted(__all__)

__version__ = "0.1.0"

__all__ = [
    "Capture",
    "CaptureFormatError",
    "CaptureInfo",
    "ConfigError",
    "Options",
    "Thresholds",
    "Written",
    "WspcapError",
    "__version__",
    "analyze_to",
    "catalog",
    "from_packets",
    "live",
    "read",
    "read_many",
    "replay",
    "sniff",
]
