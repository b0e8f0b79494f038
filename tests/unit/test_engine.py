"""The engine's own pieces: the driver fed packet by packet, what a session
shows the rules (its facts), the collector's record storage, and the layer
methods the block path drives (in order, commit a run).

Packets are crafted with scapy (tests/golden/crafted.py); every message each
side sent is the ground truth.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scapy.all import raw

from tests.golden.crafted import Conversation
from tests.golden.rfc6455 import BINARY, TEXT
from wspcap.engine import Collector, Options, Pipeline
from wspcap.rules.context import ConnFacts
from wspcap.rules.registry import Anomaly
from wspcap.tcp.reassembly import SEQ_MASK, StreamReassembler
from wspcap.ws.frames import FrameParser
from wspcap.ws.messages import Message

LINKTYPE_ETHERNET = 1


def conversation(messages: int = 6) -> Conversation:
    conv = Conversation()
    conv.open()
    conv.upgrade()
    for i in range(messages):
        d = "c2s" if i % 2 == 0 else "s2c"
        conv.exchange(d, TEXT if i % 3 else BINARY, f"message {i}".encode() * (i + 1))
    conv.closing_handshake()
    conv.close()
    return conv


def feed(conv: Conversation, options: Options | None = None) -> Pipeline:
    p = Pipeline(options)
    for n, pkt in enumerate(conv.packets, 1):
        p.receive_packet(n, 1_700_000_000_000_000_000 + n * 1_000_000, LINKTYPE_ETHERNET,
                         raw(pkt))
    p.finish()
    return p


def test_packets_in_messages_out() -> None:
    """Fed packet by packet, the driver gives every message each side sent,
    in order, and one connection whose facts say how it went."""
    conv = conversation()
    p = feed(conv)
    c = p.collector
    keys = c.all_message_keys().tolist()
    got = {"c2s": [], "s2c": []}
    for key, m in zip(keys, c.message_view(), strict=True):
        got["s2c" if key & 1 else "c2s"].append((m.type, m.payload))
    for d in ("c2s", "s2c"):
        assert got[d] == conv.sent[d]
    (session,) = c.sessions
    facts = session.facts()
    assert facts.conn_id == 0 and facts.established and not facts.midstream
    assert facts.fin == {"c2s": True, "s2c": True}
    assert facts.handshake is not None and facts.handshake.uri == "/chat"
    assert facts.server_port == 80 and facts.client_ip == "10.0.0.1"


def test_facts_are_read_only() -> None:
    """The rules get a frozen view: they cannot change the engine's state."""
    (session,) = feed(conversation(2)).collector.sessions
    facts = session.facts()
    assert isinstance(facts, ConnFacts)
    with pytest.raises(dataclasses.FrozenInstanceError):
        facts.established = False  # type: ignore[misc]


def test_record_and_facts_agree() -> None:
    """The connections row and the facts the rules read say the same."""
    (session,) = feed(conversation(3)).collector.sessions
    row, facts = session.record(), session.facts()
    assert row["conn_id"] == facts.conn_id
    assert (row["client_ip"], row["server_ip"], row["server_port"]) == (
        facts.client_ip, facts.server_ip, facts.server_port)
    assert (row["fin_c2s"], row["fin_s2c"]) == (facts.fin["c2s"], facts.fin["s2c"])
    assert row["gap_bytes"] == sum(facts.gap_bytes.values()) == 0


def test_checks_wait_for_packed_records() -> None:
    """check_ended needs every record packed first (it reads packed columns)."""
    conv = conversation(2)
    p = Pipeline()
    for n, pkt in enumerate(conv.packets, 1):
        p.receive_packet(n, n, LINKTYPE_ETHERNET, raw(pkt))
    with pytest.raises(ValueError, match="packed"):
        p.check_ended()
    p.collector.pack()
    p.check_ended()  # both FINs delivered: checked now, and let go of
    assert p.unchecked == []


def test_collector_diverts_and_restores() -> None:
    """Records added while diverted go to the caller's lists, and the
    collector's own lists come back, even after an exception."""
    c = Collector()
    mine: list[Message] = []
    keys: list[int] = []
    anomalies: list[Anomaly] = []
    with pytest.raises(RuntimeError), c.diverted(mine, keys, anomalies):
        c.anomaly(0, 1, "c2s", None, "ws_no_close", "x", 1)
        raise RuntimeError
    assert len(anomalies) == 1 and c.anomalies == []
    c.anomaly(0, 1, "c2s", None, "ws_no_close", "y", 1)
    assert len(c.anomalies) == 1


class _Sink:
    def data(self, *a: object) -> None: ...
    gap = conflict = data_after_fin = fin = rst = data


def test_reassembler_says_which_segments_are_in_order() -> None:
    """in_order counts the segments that each start where the one before
    ended, across the sequence-number wrap."""
    r = StreamReassembler(_Sink())  # type: ignore[arg-type]
    start = SEQ_MASK - 5
    r.receive_segment(start, 0x02, b"", 0, 0, 1)  # SYN
    sizes = np.array([4, 4, 4, 4], np.int64)
    seqs = (start + 1 + np.cumsum(sizes) - sizes) & SEQ_MASK
    assert r.in_order(seqs, sizes) == 4
    seqs[2] += 1
    assert r.in_order(seqs, sizes) == 2


class _Frames:
    def __init__(self) -> None:
        self.frames: list[object] = []

    def frame(self, frame: object) -> None:
        self.frames.append(frame)

    def anomaly_at_offset(self, *a: object) -> None:
        raise AssertionError(a)


def test_commit_run_leaves_the_parser_as_receive_data_would() -> None:
    """A run taken up to the middle of a frame: the parser holds the rest and
    finishes that frame from the next bytes, as if it had been fed them."""
    from tests.golden.rfc6455 import frame

    wires = [frame(TEXT, b"a" * n) for n in (3, 200, 10)]
    stream = b"".join(wires)
    cut = len(wires[0]) + 50  # inside the second frame
    sink = _Frames()
    parser = FrameParser(sink)  # type: ignore[arg-type]
    _s, starts, _h, _l = parser.scan(stream[:cut])
    assert starts == [0]
    parser.commit_run(1, stream[:cut], len(wires[0]), cut, 7)
    assert parser.frames == 1 and parser.base == len(wires[0]) and parser.holding == 50
    parser.receive_data(stream[cut:], 8, 2)
    assert [f.payload for f in sink.frames] == [b"a" * 200, b"a" * 10]  # type: ignore[attr-defined]
    assert sink.frames[0].ts_start == 7  # type: ignore[attr-defined]
