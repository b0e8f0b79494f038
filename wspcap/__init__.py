"""wspcap: every WebSocket conversation in a capture, exactly.

>>> import wspcap
>>> cap = wspcap.read("samples/plain.pcap")          # doctest: +SKIP
>>> cap.connections, cap.frames, cap.messages, cap.anomalies  # doctest: +SKIP

Layers, each knowing only the one below it: capture sources
(:mod:`wspcap.sources`) -> packet decoding (:mod:`wspcap.decode`) -> TCP
reassembly (:mod:`wspcap.tcp`) -> HTTP upgrade (:mod:`wspcap.http`) -> frames
and messages (:mod:`wspcap.ws`) -> anomaly rules (:mod:`wspcap.rules`), joined
by the driver (:mod:`wspcap.pipeline`) -> tables and exports
(:mod:`wspcap.tables`, :mod:`wspcap.export`) -> CLI (:mod:`wspcap.cli`).
"""

from wspcap.capture import Capture, CaptureInfo, from_packets, read
from wspcap.errors import CaptureFormatError, ConfigError, WspcapError
from wspcap.pipeline import Options

__version__ = "0.1.0"

__all__ = [
    "Capture", "CaptureFormatError", "CaptureInfo", "ConfigError", "Options", "WspcapError",
    "from_packets", "read", "__version__",
]
