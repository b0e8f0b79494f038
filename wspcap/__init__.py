"""wspcap: every WebSocket conversation in a capture, exactly.

>>> import wspcap
>>> cap = wspcap.read("samples/plain.pcap")          # doctest: +SKIP
>>> cap.connections, cap.frames, cap.messages, cap.anomalies  # doctest: +SKIP
>>> wspcap.catalog()  # the anomaly codes: severity, reference, meaning  # doctest: +SKIP

Layers, each knowing only the one below it (``tests/test_imports.py`` holds
the order): capture sources (:mod:`wspcap.sources`) -> packet decoding
(:mod:`wspcap.decode`) -> TCP reassembly (:mod:`wspcap.tcp`) -> TLS
(:mod:`wspcap.tls`) -> HTTP upgrade (:mod:`wspcap.http`) -> frames and
messages (:mod:`wspcap.ws`) -> application decoders (:mod:`wspcap.app`) ->
anomaly rules (:mod:`wspcap.rules`). Above them, three floors: the engine that
joins the layers (:mod:`wspcap.engine`), the tables and their writers
(:mod:`wspcap.tables`), the views (:mod:`wspcap.views`: summary, plots,
report, live view); then the API's functions (:mod:`wspcap.api`) and the CLI
(:mod:`wspcap.cli`).
"""

from typing import TYPE_CHECKING, Any

from wspcap.constants import __version__
from wspcap.errors import CaptureFormatError, ConfigError, WspcapError

if TYPE_CHECKING:
    from wspcap.api.live import live, replay, sniff
    from wspcap.api.many import read_many
    from wspcap.api.reading import analyze_to, from_packets, read
    from wspcap.engine import Options
    from wspcap.rules.thresholds import Thresholds
    from wspcap.tables.build import catalog
    from wspcap.tables.capture import Capture, CaptureInfo
    from wspcap.tables.stream import Written
    from wspcap.views import plot

#: The public API, imported on first use (PEP 562): importing a sans-I/O layer
#: such as ``wspcap.ws`` runs this file, and must not load pandas through it.
#: Add new top-level names here, not as imports above.
_LAZY = {
    "Capture": "wspcap.tables.capture", "CaptureInfo": "wspcap.tables.capture",
    "from_packets": "wspcap.api.reading", "read": "wspcap.api.reading",
    "analyze_to": "wspcap.api.reading", "Written": "wspcap.tables.stream",
    "Options": "wspcap.engine", "Thresholds": "wspcap.rules.thresholds",
    "live": "wspcap.api.live", "replay": "wspcap.api.live", "sniff": "wspcap.api.live",
    "read_many": "wspcap.api.many", "catalog": "wspcap.tables.build",
    "plot": "wspcap.views",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'wspcap' has no attribute {name!r}")
    import importlib

    value = (importlib.import_module(f"{module}.{name}") if module == "wspcap.views"
             else getattr(importlib.import_module(module), name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public API only (not ``Any``, ``TYPE_CHECKING`` or loaded submodules)."""
    return sorted(__all__)


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
    "plot",
    "read",
    "read_many",
    "replay",
    "sniff",
]
