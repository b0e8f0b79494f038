"""Crafted captures (scapy) for TCP and link-layer cases real captures do not show.

Each capture is built by :mod:`golden.crafted` with frames from
:mod:`golden.rfc6455` (written from RFC 6455, sharing no code with wspcap) and
written into ``tmp_path``; what each side sent is known exactly, so messages
are compared byte for byte. Damaged captures assert the anomaly codes.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from golden import crafted as C
from golden.paths import GOLDEN_DIR
from golden.rfc6455 import RFC_ACCEPT, RFC_KEY

import wspcap

#: Scenarios with nothing wrong in them: every message, no anomaly at all.
CLEAN = ["nonstandard_port", "split_handshake", "out_of_order", "seq_wraparound", "vlan",
         "qinq", "ipv6_hop_by_hop", "keepalive", "vxlan"]


@pytest.fixture
def build(tmp_path: Path) -> Any:
    """``build(name)`` -> (Crafted, Capture): the scenario written and read back."""
    def run(name: str) -> tuple[C.Crafted, Any]:
        crafted = C.build(name)
        path = crafted.write(tmp_path / f"{name}.pcap")
        return crafted, wspcap.read(path)
    return run


def _sent(capture: Any, direction: str) -> list[tuple[str, bytes]]:
    m = capture.messages
    m = m[m.direction == direction]
    return [(str(t), bytes(p)) for t, p in zip(m.type, m.payload)]


#: The layers these scenarios exercise. Policy findings (``sec_``/``res_``, such
#: as ``sec_plaintext_ws`` on every ws:// connection) are not what is tested here.
LAYERS = ("capture_", "tcp_", "http_", "ws_", "pmd_")


def _codes(capture: Any) -> list[str]:
    """The anomaly codes of the protocol layers, sorted."""
    return sorted(c for c in capture.anomalies.code.astype(str) if c.startswith(LAYERS))


def _no_warning_or_error(capture: Any) -> None:
    a = capture.anomalies
    bad = a[a.severity.isin(["warning", "error"])]
    assert bad.empty, bad[["code", "detail"]].to_string()


def _conn(capture: Any) -> pd.Series:
    assert len(capture.connections) == 1
    return capture.connections.iloc[0]


def _check_endpoints(row: pd.Series, crafted: C.Crafted) -> None:
    assert (row.client_ip, int(row.client_port)) == crafted.client
    assert (row.server_ip, int(row.server_port)) == crafted.server


@pytest.mark.parametrize("name", CLEAN)
def test_clean(name: str, build: Any) -> None:
    crafted, capture = build(name)
    row = _conn(capture)
    _check_endpoints(row, crafted)
    assert row.established and row.handshake and not row.midstream
    assert (row.uri, row.key, row.accept) == ("/chat", RFC_KEY, RFC_ACCEPT)
    assert bool(row.accept_valid)
    for d in ("c2s", "s2c"):
        assert _sent(capture, d) == crafted.sent[d], d
    # every message is one frame here
    assert (int(row.frames_c2s), int(row.frames_s2c)) == (
        len(crafted.sent["c2s"]), len(crafted.sent["s2c"]))
    assert _codes(capture) == []
    _no_warning_or_error(capture)
    assert int(row.gap_bytes) == 0
    assert capture.messages.complete.all()
    assert (capture.frames.missing == 0).all()


def test_nonstandard_port(build: Any) -> None:
    """Found by its Upgrade request, not by port."""
    crafted, capture = build("nonstandard_port")
    assert int(_conn(capture).server_port) == 31337 == crafted.server[1]


def test_seq_wraparound_really_wraps(build: Any) -> None:
    """The scenario's sequence numbers do pass 2**32 in both directions."""
    crafted, _capture = build("seq_wraparound")
    from scapy.layers.inet import TCP
    seqs: dict[int, list[int]] = {}
    for pkt in crafted.packets:
        if len(pkt[TCP].payload):
            seqs.setdefault(pkt[TCP].sport, []).append(pkt[TCP].seq)
    for values in seqs.values():
        assert any(b < a for a, b in itertools.pairwise(values)), values


def test_split_handshake_heads(build: Any) -> None:
    """Heads spread over segments (one cut inside the blank line) are read whole."""
    _crafted, capture = build("split_handshake")
    row = _conn(capture)
    assert row.host == "server.example.com"
    assert int(row.status) == 101
    assert "http_data_with_101" not in _codes(capture)


@pytest.mark.parametrize("name", ["overlap_conflict", "overlap_conflict_pending"])
def test_overlap_conflict(name: str, build: Any) -> None:
    """RFC 9293 section 3.10.7.4: two copies of the same bytes differ -> flagged;
    the first copy is what the messages hold."""
    crafted, capture = build(name)
    assert _codes(capture) == ["tcp_overlap_conflict"]
    a = capture.anomalies
    (conflict,) = a[a.code == "tcp_overlap_conflict"].itertuples(index=False)
    assert conflict.direction == "c2s" and conflict.severity == "error"
    for d in ("c2s", "s2c"):
        assert _sent(capture, d) == crafted.sent[d], d


def test_lost_segment(build: Any) -> None:
    """A whole message lost: tcp_gap with its size; the messages after it are read."""
    crafted, capture = build("lost_segment")
    row = _conn(capture)
    codes = _codes(capture)
    assert "tcp_gap" in codes
    assert set(codes) <= {"tcp_gap", "ws_desync"}
    gap = capture.anomalies[capture.anomalies.code == "tcp_gap"].iloc[0]
    assert gap.direction == "c2s"
    assert gap.detail.startswith(f"{crafted.notes['lost_bytes']} bytes")
    assert int(row.gap_bytes) == crafted.notes["lost_bytes"]
    for d in ("c2s", "s2c"):
        assert _sent(capture, d) == crafted.sent[d], d
    assert crafted.notes["lost"] not in _sent(capture, "c2s")


def test_lost_mid_frame(build: Any) -> None:
    """A hole inside a frame's payload: the frame keeps its place (zero-filled where
    bytes are missing, counted in ``missing``) and the frames after it are read."""
    crafted, capture = build("lost_mid_frame")
    assert "tcp_gap" in _codes(capture)
    f = capture.frames
    big = f[f.payload_len == 3000]
    assert len(big) == 1
    lo, hi = crafted.notes["lost_range"]
    assert int(big.iloc[0].missing) == hi - lo
    payload = bytes(big.iloc[0].payload)
    sent = crafted.notes["payload"]
    assert payload[:lo] == sent[:lo] and payload[hi:] == sent[hi:]
    assert payload[lo:hi] == bytes(hi - lo)  # zero-filled, see wspcap.ws.frames
    m = capture.messages
    (msg,) = m[m.type == "binary"].itertuples(index=False)
    assert not msg.complete
    assert [(t, p) for t, p in _sent(capture, "c2s") if t == "text"] == [
        x for x in crafted.sent["c2s"] if x[0] == "text"]
    assert _sent(capture, "s2c") == crafted.sent["s2c"]


def test_midstream(build: Any) -> None:
    """No SYN, no handshake: frames are still found; the client is the masking side."""
    crafted, capture = build("midstream")
    row = _conn(capture)
    _check_endpoints(row, crafted)
    assert row.midstream and not row.handshake and row.established
    assert pd.isna(row.uri) and pd.isna(row.status)
    assert {"http_handshake_missing", "tcp_midstream"} <= set(_codes(capture))
    _no_warning_or_error(capture)
    for d in ("c2s", "s2c"):
        assert _sent(capture, d) == crafted.sent[d], d


def test_refused(build: Any) -> None:
    """A 403 answer: a row for the attempt, not established, no frames."""
    crafted, capture = build("refused")
    row = _conn(capture)
    _check_endpoints(row, crafted)
    assert int(row.status) == crafted.notes["status"]
    assert row.reason == crafted.notes["reason"]
    assert not row.established and row.handshake
    assert len(capture.frames) == 0 and len(capture.messages) == 0
    assert _codes(capture) == ["http_status_not_101"]


def test_snaplen_cut(build: Any) -> None:
    """Packets cut by the snap length: flagged, the cut frame is incomplete, and
    everything around it is read."""
    crafted, capture = build("snaplen_cut")
    codes = _codes(capture)
    assert "capture_truncated" in codes
    assert capture.info.counters["snap_length_cut"] == 1
    f = capture.frames
    (big,) = f[f.payload_len == 3000].itertuples(index=False)
    missing = int(big.missing)
    assert 0 < missing < 3000
    # what was captured is right; the rest is zero-filled and counted in missing
    kept = 3000 - missing
    payload, sent = bytes(big.payload), crafted.notes["payload"]
    assert payload[:kept] == sent[:kept]
    assert payload[kept:] == bytes(len(payload) - kept)
    for d in ("c2s", "s2c"):
        expected = [x for x in crafted.sent[d] if len(x[1]) != 3000]
        assert [x for x in _sent(capture, d) if len(x[1]) != 3000] == expected, d


def test_vlan_link_type(build: Any, tmp_path: Path) -> None:
    """The tagged captures really are tagged Ethernet (ethertype 0x8100 / 0x88a8)."""
    for name, tpid in (("vlan", b"\x81\x00"), ("qinq", b"\x88\xa8")):
        crafted, capture = build(name)
        assert bytes(crafted.packets[0])[12:14] == tpid
        assert len(capture.connections) == 1


@pytest.mark.parametrize("name", sorted(C.SCENARIOS))
def test_golden_copy_up_to_date(name: str, tmp_path: Path) -> None:
    """tests/golden/<name>.pcap is what the generator writes today (byte for byte).

    Regenerate with ``python tests/golden/crafted.py``.
    """
    golden = GOLDEN_DIR / f"{name}.pcap"
    assert golden.is_file(), "missing: run python tests/golden/crafted.py"
    fresh = C.build(name).write(tmp_path / f"{name}.pcap")
    assert fresh.read_bytes() == golden.read_bytes(), "stale: run python tests/golden/crafted.py"


def test_subprotocol_case_kept(tmp_path: Path) -> None:
    """Subprotocols are matched case-sensitively (RFC 6455 section 4.1, RFC 7936):
    the offer is kept as sent, and selecting an offered mixed-case name is fine."""
    offered = ["Chat.V2", "chat.v1", "authorization.bearer.eyJhbGciOi"]
    conv = C.Conversation()
    conv.open()
    conv.upgrade(C.request_head(extra=[f"Sec-WebSocket-Protocol: {', '.join(offered)}"]),
                 C.response_head(extra=[f"Sec-WebSocket-Protocol: {offered[0]}"]))
    conv.closing_handshake()
    conv.close()
    capture = wspcap.read(conv.crafted("subprotocol_case").write(tmp_path / "case.pcap"))
    row = _conn(capture)
    assert [p.strip() for p in row.protocols_offered.split(",")] == offered
    assert row.subprotocol == offered[0]
    assert "http_subprotocol_not_offered" not in _codes(capture)
