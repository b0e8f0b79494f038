"""The engine: one driver that joins the layers below it.

Packets go in (:meth:`Pipeline.receive_packet`, or a block of them at a time
with :meth:`Pipeline.receive_batch`), records come out in a :class:`Collector`.
Nothing here reads a file or a socket.

- :mod:`~wspcap.engine.options`: the engine's limits.
- :mod:`~wspcap.engine.collector`: record storage, and what sessions share.
- :mod:`~wspcap.engine.direction`: one direction of a connection: its layers.
- :mod:`~wspcap.engine.upgrade`: the opening of a connection: TLS, the HTTP
  upgrade, or frames mid-stream, until its frames are parsed.
- :mod:`~wspcap.engine.session`: one TCP connection, joining the two.
- :mod:`~wspcap.engine.runs`: a run of packets of one connection at a time.
- :mod:`~wspcap.engine.driver`: the :class:`Pipeline`, which joins them.
"""

from wspcap.engine.collector import Collector
from wspcap.engine.driver import Pipeline
from wspcap.engine.options import Options, snap_detail
from wspcap.engine.session import Session

__all__ = ["Collector", "Options", "Pipeline", "Session", "snap_detail"]
