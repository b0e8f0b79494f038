"""Busy captures for the views (plots, report): many connections, or many
messages, built with the crafted-conversation helpers and written as pcap."""

from __future__ import annotations

from pathlib import Path

from scapy.utils import wrpcap

from golden.crafted import T0, Conversation, request_head
from golden.rfc6455 import TEXT


def busy_capture(path: Path, connections: int, messages: int) -> Path:
    """``connections`` WebSocket connections one after the other, each with
    ``messages`` text messages (alternately from the client and the server,
    ``message N of connection C`` as payload), opened and closed cleanly."""
    packets = []
    for c in range(connections):
        conv = Conversation(client=("10.0.0.1", 40001 + c))
        conv.open()
        conv.upgrade(request_head())
        for n in range(messages):
            d = "c2s" if n % 2 == 0 else "s2c"
            conv.exchange(d, TEXT, f"message {n} of connection {c}".encode(), ack=False)
        conv.closing_handshake()
        conv.close()
        packets += conv.packets
    for n, pkt in enumerate(packets):
        pkt.time = T0 + n / 1000
    wrpcap(str(path), packets)
    return path
