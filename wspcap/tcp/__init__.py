"""TCP reassembly: one byte stream per direction, rebuilt by sequence number."""

from wspcap.tcp.reassembly import StreamReassembler, StreamSink

__all__ = ["StreamReassembler", "StreamSink"]
