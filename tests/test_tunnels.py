"""Captures taken outside a tunnel: VXLAN, GENEVE, GRE, ERSPAN, IP-in-IP.

Traffic mirrored from a cloud network arrives in VXLAN (AWS VPC Traffic
Mirroring, Azure virtual network TAP) or GENEVE; a switch's remote SPAN in
GRE with an ERSPAN header; routed traffic in GRE or IP-in-IP. Each packet of
crafted conversations (:mod:`golden.crafted`) is wrapped here with scapy's
own layers, and the tables must be those of the bare capture, packet for
packet; tunnels inside tunnels too, up to the decoder's bound.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from golden import crafted as C
from hypothesis import given
from hypothesis import strategies as st
from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III, ERSPAN_PlatformSpecific
from scapy.contrib.geneve import GENEVE
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

import wspcap
from wspcap.decode import packet as packet_module
from wspcap.decode.packet import PacketDecoder
from wspcap.sources.linktypes import LINKTYPE_ETHERNET

TABLES = ("connections", "frames", "messages", "anomalies")


def _outer(v6: bool = False) -> Packet:
    net = (IPv6(src="fd00::1", dst="fd00::2") if v6
           else IP(src="172.16.0.1", dst="172.16.0.2"))
    return Ether(src="02:00:00:00:00:aa", dst="02:00:00:00:00:bb") / net


WRAPS: dict[str, Callable[[Packet], Packet]] = {
    "vxlan": lambda p: _outer() / UDP(sport=50000, dport=4789) / VXLAN(vni=42) / p,
    "vxlan-over-ipv6": lambda p: _outer(True) / UDP(sport=50000, dport=4789) / VXLAN(vni=7) / p,
    "geneve": lambda p: _outer() / UDP(sport=50000, dport=6081) / GENEVE(
        proto=0x6558, vni=9, optionlen=2, options=b"\x01\x02\x03\x04\x05\x06\x07\x08") / p,
    "gre-ethernet": lambda p: _outer() / GRE(proto=0x6558) / p,
    "gre-ipv4": lambda p: _outer() / GRE(proto=0x0800) / p[IP],
    "gre-checksum-key-sequence": lambda p: _outer() / GRE(
        proto=0x6558, chksum_present=1, key_present=1, key=7, seqnum_present=1,
        seqence_number=3) / p,
    "erspan-ii": lambda p: _outer() / GRE(proto=0x88BE, seqnum_present=1) / ERSPAN_II(
        session_id=5) / p,
    "erspan-iii": lambda p: _outer() / GRE(proto=0x22EB) / ERSPAN_III(session_id=5) / p,
    "erspan-iii-platform": lambda p: _outer() / GRE(proto=0x22EB) / ERSPAN_III(o=1) /
    ERSPAN_PlatformSpecific() / p,
    "ipip": lambda p: _outer() / p[IP],
    "ipv4-in-ipv6": lambda p: _outer(True) / p[IP],
    "vxlan-in-gre": lambda p: _outer() / GRE(proto=0x0800) / IP(src="172.17.0.1",
                                                                dst="172.17.0.2") /
    UDP(dport=4789) / VXLAN(vni=1) / p,
}


def _wrapped(name: str, scenario: str, tmp_path: Path) -> tuple[Path, Path]:
    crafted = C.build(scenario)
    bare = crafted.write(tmp_path / "bare.pcap")
    out = []
    for p in crafted.packets:
        w = WRAPS[name](p)
        w.time = p.time
        out.append(w)
    wrpcap(str(tmp_path / f"{name}.pcap"), out)
    return bare, tmp_path / f"{name}.pcap"


@pytest.mark.parametrize("scenario", ["nonstandard_port", "out_of_order", "lost_segment"])
@pytest.mark.parametrize("name", sorted(WRAPS))
def test_a_tunneled_capture_reads_as_the_bare_one(name: str, scenario: str,
                                                  tmp_path: Path) -> None:
    bare, tunneled = _wrapped(name, scenario, tmp_path)
    want, got = wspcap.read(bare), wspcap.read(tunneled)
    assert len(got.frames) > 0
    for table in TABLES:
        pd.testing.assert_frame_equal(getattr(got, table), getattr(want, table), obj=table)


def test_tunnels_are_opened_up_to_a_bound(tmp_path: Path) -> None:
    crafted = C.build("nonstandard_port")
    for depth, want in ((packet_module.MAX_NESTING, 1), (packet_module.MAX_NESTING + 1, 0)):
        out = []
        for p in crafted.packets:
            w = p
            for _ in range(depth):
                w = _outer() / UDP(dport=4789) / VXLAN(vni=1) / w
            w.time = p.time
            out.append(w)
        wrpcap(str(tmp_path / f"d{depth}.pcap"), out)
        assert len(wspcap.read(tmp_path / f"d{depth}.pcap").connections) == want, depth


@pytest.mark.parametrize("outer", [
    _outer() / UDP(dport=4789) / VXLAN(flags=0),    # VXLAN without its I flag
    _outer() / UDP(dport=4790) / VXLAN(vni=1),      # another port
    _outer() / GRE(proto=0x6558, version=1),        # GRE version 1 (PPTP)
    _outer() / UDP(dport=6081) / GENEVE(proto=0x0800),  # GENEVE carrying no Ethernet
], ids=["vxlan-no-i-flag", "other-port", "gre-version-1", "geneve-not-ethernet"])
def test_what_is_not_a_tunnel_we_open_is_not_read(outer: Packet) -> None:
    inner = C.build("nonstandard_port").packets[3]
    decoder = PacketDecoder()
    assert decoder.decode(LINKTYPE_ETHERNET, bytes(outer / inner)) is None
    assert decoder.not_tcp == 1


@given(chain=st.lists(st.sampled_from(sorted(WRAPS)), max_size=3), cut=st.integers(0, 200))
def test_a_tunneled_segment_decodes_as_the_bare_one(chain: list[str], cut: int) -> None:
    """Any chain of tunnels: the same segment as the bare packet; cut short
    anywhere, the decoder says so without an exception."""
    inner = C.build("nonstandard_port").packets[5]
    p = inner
    for name in chain:
        p = WRAPS[name](p)
    data = bytes(p)
    depth = sum(2 if name == "vxlan-in-gre" else 1 for name in chain)
    want = (PacketDecoder().decode(LINKTYPE_ETHERNET, bytes(inner))
            if depth <= packet_module.MAX_NESTING else None)
    assert PacketDecoder().decode(LINKTYPE_ETHERNET, data) == want
    short = PacketDecoder().decode(LINKTYPE_ETHERNET, data[:max(0, len(data) - cut)])
    assert short is None or want is not None and short[:8] == want[:8]


@given(body=st.binary(max_size=80), proto=st.sampled_from(["vxlan", "geneve", "gre"]))
def test_garbage_in_a_tunnel_is_passed_over(body: bytes, proto: str) -> None:
    head = {"vxlan": UDP(dport=4789) / VXLAN(vni=1), "geneve": UDP(dport=6081) / GENEVE(
        proto=0x6558), "gre": GRE(proto=0x6558)}[proto]
    got = PacketDecoder().decode(LINKTYPE_ETHERNET, bytes(_outer() / head / Raw(body)))
    assert got is None or isinstance(got, tuple | str)


def test_tshark_reads_the_vxlan_capture_alike(tmp_path: Path) -> None:
    exe = shutil.which("tshark")
    if exe is None:
        pytest.skip("tshark is not installed")
    _bare, tunneled = _wrapped("vxlan", "nonstandard_port", tmp_path)
    out = subprocess.run([exe, "-r", str(tunneled), "-d", "tcp.port==31337,http", "-Y",
                          "websocket", "-T", "fields", "-e", "frame.number",
                          "-e", "websocket.payload_length",
                          "-e", "websocket.payload_length_ext_16",
                          "-e", "websocket.payload_length_ext_64"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    theirs = []
    for line in filter(None, out.splitlines()):
        number, short, ext16, ext64 = line.split("\t")
        # (the 7-bit length field says 126 or 127 where an extended length follows)
        theirs.append((int(number), int(ext16 or ext64 or short)))
    frames = wspcap.read(tunneled).frames
    assert theirs == list(zip(frames.packet.astype(int), frames.payload_len.astype(int),
                              strict=True))


@pytest.mark.parametrize("name", ["vxlan", "geneve", "gre-ethernet", "vxlan-over-ipv6"])
@pytest.mark.parametrize("scenario", ["nonstandard_port", "out_of_order"])
def test_the_block_path_reads_tunneled_frames_alike(name: str, scenario: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The block path opens VXLAN and GENEVE over IPv4 for a whole block at
    once (``decode.batch.opened``), the others per packet: every table is
    the same as packet by packet, and as the bare capture's, blocks cut
    anywhere."""
    from test_blocks import assert_same

    from wspcap.engine import runs

    monkeypatch.setattr(runs, "MIN_PACKETS", 1)
    monkeypatch.setattr(runs, "HANDOFF", 1)
    bare, tunneled = _wrapped(name, scenario, tmp_path)
    taken = assert_same(tunneled, seeds=(None, 1, 2, 3))
    assert taken == assert_same(bare, seeds=(None, 1, 2, 3)) or name not in ("vxlan", "geneve")
    if name in ("vxlan", "geneve"):
        assert taken > 0


@given(prefix=st.binary(min_size=0, max_size=70), cl_cut=st.integers(0, 80))
def test_opened_moves_only_what_it_can_read(prefix: bytes, cl_cut: int) -> None:
    """Packets that are no VXLAN or GENEVE over IPv4 keep their place; one that
    is has its inner frame's, within its captured length."""
    import numpy as np

    from wspcap.decode.batch import opened

    inner = bytes(C.build("nonstandard_port").packets[5])
    wrapped = bytes(WRAPS["vxlan"](Ether(inner)))
    buf = prefix + wrapped
    st = np.array([0, len(prefix)], np.int64)
    cl = np.array([len(prefix), max(len(wrapped) - cl_cut, 0)], np.int64)
    got_st, got_cl = opened(buf, st, cl)
    assert got_st[0] == 0 or bytes(buf[:len(prefix)])[23:24] == b"\x11"
    assert 0 <= got_cl[1] <= cl[1]
    if got_st[1] != st[1]:
        assert buf[got_st[1]:got_st[1] + len(inner)].startswith(inner[:got_cl[1]])
