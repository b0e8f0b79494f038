"""Capture sources: the only layer that touches files and sockets.

Every source yields :class:`PacketRecord` tuples ``(number, ts_ns, linktype,
data, wirelen)``: the 1-based packet number as Wireshark counts it, the
timestamp in integer nanoseconds since the epoch (``wspcap.timestamps.TS_NULL``,
NumPy's NaT, for a time int64 nanoseconds cannot hold), the link type of the
packet's interface, the captured bytes and the length the packet had on the
wire (larger than ``len(data)`` when the snap length cut it).
"""

from wspcap.sources.files import Batch, CaptureFile, PacketRecord, open_capture

__all__ = ["Batch", "CaptureFile", "PacketRecord", "open_capture"]
