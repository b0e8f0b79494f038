"""Tests of :mod:`wspcap.decode`: from a link-layer frame to a TCP segment.

Packets are built with scapy, and every decoded field is compared with
scapy's own dissection of the same bytes.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

import pytest

scapy_all = pytest.importorskip("scapy.all")
from scapy.all import (
    ARP,
    IP,
    TCP,
    UDP,
    CookedLinux,
    CookedLinuxV2,
    Dot1AD,
    Dot1Q,
    Ether,
    IPOption_NOP,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    Loopback,
    LoopbackOpenBSD,
    Padding,
    Raw,
)

from wspcap.decode import FRAGMENT, PacketDecoder

# LINKTYPE_* values from tcpdump.org's link-layer header types list.
NULL, ETHERNET, RAW, LOOP, SLL, IPV4, IPV6, SLL2 = 0, 1, 101, 108, 113, 228, 229, 276

PAYLOAD = b"\x81\x05Hello" * 3


def eth() -> object:
    """An Ethernet header with both addresses set (scapy would look them up)."""
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def v4_tcp(payload: bytes = PAYLOAD, **tcp: object) -> object:
    return (IP(src="192.0.2.1", dst="198.51.100.7")
            / TCP(sport=51000, dport=80, seq=123456789, ack=987654321, flags="PA", **tcp)
            / Raw(payload))


def v6_tcp(payload: bytes = PAYLOAD) -> object:
    return (IPv6(src="2001:db8::1", dst="2001:db8::2")
            / TCP(sport=443, dport=60000, seq=2**32 - 5, ack=7, flags="A") / Raw(payload))


def scapy_view(data: bytes, layer: Callable[[bytes], object]) -> tuple:
    """What scapy dissects from the same bytes, in Segment order (without the key)."""
    pkt = layer(data)
    ip = pkt[IP] if IP in pkt else pkt[IPv6]
    family = socket.AF_INET if IP in pkt else socket.AF_INET6
    tcp = pkt[TCP]
    payload = bytes(tcp.payload)
    if Padding in tcp:
        payload = payload[:len(payload) - len(tcp[Padding])]
    return (socket.inet_pton(family, ip.src), socket.inet_pton(family, ip.dst), tcp.sport,
            tcp.dport, tcp.seq, tcp.ack, int(tcp.flags), payload, 0)


def check(linktype: int, pkt: object, layer: Callable[[bytes], object]) -> tuple:
    data = bytes(pkt)
    decoder = PacketDecoder()
    seg = decoder.decode(linktype, data)
    assert isinstance(seg, tuple), seg
    expected = scapy_view(data, layer)
    assert seg[1:] == expected
    src, dst, sport, dport = expected[:4]
    assert seg[0] == src + dst + struct.pack("!HH", sport, dport)
    assert (decoder.not_tcp, decoder.malformed, decoder.fragments) == (0, 0, 0)
    # The same frame read in place in a larger buffer (a capture file's block).
    assert decoder.decode(linktype, b"\xee" * 7 + data + b"\xdd" * 300, 7, len(data)) == seg
    return seg


class TestLinkLayers:
    """Every supported link type around IPv4 and IPv6."""

    def test_ethernet_ipv4(self) -> None:
        seg = check(ETHERNET, eth() / v4_tcp(), Ether)
        assert seg[8] == PAYLOAD

    def test_ethernet_ipv6(self) -> None:
        check(ETHERNET, eth() / v6_tcp(), Ether)

    def test_vlan(self) -> None:
        check(ETHERNET, eth() / Dot1Q(vlan=42) / v4_tcp(), Ether)
        check(ETHERNET, eth() / Dot1Q(vlan=42) / v6_tcp(), Ether)

    def test_qinq(self) -> None:
        check(ETHERNET, eth() / Dot1AD(vlan=7) / Dot1Q(vlan=42) / v4_tcp(), Ether)

    def test_ethernet_padding_not_payload(self) -> None:
        pkt = eth() / v4_tcp(b"") / Padding(b"\x00" * 6)
        seg = check(ETHERNET, pkt, Ether)
        assert seg[8] == b""

    def test_sll(self) -> None:
        check(SLL, CookedLinux(proto=0x0800) / v4_tcp(), CookedLinux)
        check(SLL, CookedLinux(proto=0x86DD) / v6_tcp(), CookedLinux)

    def test_sll2(self) -> None:
        check(SLL2, CookedLinuxV2(proto=0x0800) / v4_tcp(), CookedLinuxV2)
        check(SLL2, CookedLinuxV2(proto=0x86DD) / v6_tcp(), CookedLinuxV2)

    def test_null(self) -> None:
        check(NULL, Loopback(type=2) / v4_tcp(), Loopback)
        for family in (24, 28, 30):  # AF_INET6 on the BSDs and Darwin
            check(NULL, Loopback(type=family) / v6_tcp(), lambda data: IPv6(data[4:]))

    def test_null_big_endian_writer(self) -> None:
        data = struct.pack(">I", 2) + bytes(v4_tcp())
        seg = PacketDecoder().decode(NULL, data)
        assert isinstance(seg, tuple) and seg[1:] == scapy_view(bytes(v4_tcp()), IP)

    def test_loop(self) -> None:
        check(LOOP, LoopbackOpenBSD() / v4_tcp(), LoopbackOpenBSD)
        check(LOOP, LoopbackOpenBSD() / v6_tcp(), LoopbackOpenBSD)

    def test_raw(self) -> None:
        check(RAW, v4_tcp(), IP)
        check(RAW, v6_tcp(), IPv6)
        check(IPV4, v4_tcp(), IP)
        check(IPV6, v6_tcp(), IPv6)


class TestNetworkLayer:
    def test_ipv4_options_and_tcp_options(self) -> None:
        pkt = (IP(src="192.0.2.1", dst="192.0.2.2", options=[IPOption_NOP()] * 4)
               / TCP(sport=1, dport=2, options=[("MSS", 1460), ("NOP", None),
                                                 ("WScale", 7), ("SAckOK", b"")])
               / Raw(PAYLOAD))
        seg = check(RAW, pkt, IP)
        assert seg[8] == PAYLOAD

    @pytest.mark.parametrize("ext", [
        [IPv6ExtHdrHopByHop()],
        [IPv6ExtHdrDestOpt()],
        [IPv6ExtHdrRouting()],
        [IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt()],
    ], ids=["hop-by-hop", "dest-opts", "routing", "hop-by-hop+dest-opts"])
    def test_ipv6_extension_headers(self, ext: list) -> None:
        pkt = IPv6(src="2001:db8::1", dst="2001:db8::2")
        for header in ext:
            pkt = pkt / header
        pkt = pkt / TCP(sport=443, dport=60000, seq=5, flags="PA") / Raw(PAYLOAD)
        seg = check(ETHERNET, eth() / pkt, Ether)
        assert seg[8] == PAYLOAD

    def test_ipv4_fragments(self) -> None:
        decoder = PacketDecoder()
        first = IP(src="192.0.2.1", dst="192.0.2.2", flags="MF") / TCP() / Raw(b"x" * 16)
        later = IP(src="192.0.2.1", dst="192.0.2.2", frag=3, proto=6) / Raw(b"y" * 16)
        assert decoder.decode(RAW, bytes(first)) == FRAGMENT
        assert decoder.decode(ETHERNET, bytes(eth() / later)) == FRAGMENT
        assert decoder.fragments == 2

    def test_ipv6_fragment(self) -> None:
        decoder = PacketDecoder()
        pkt = IPv6() / IPv6ExtHdrFragment(m=1) / TCP() / Raw(b"x" * 16)
        assert decoder.decode(RAW, bytes(pkt)) == FRAGMENT
        assert decoder.fragments == 1

    @pytest.mark.parametrize("linktype, pkt", [
        (ETHERNET, eth() / IP() / UDP() / Raw(b"x")),
        (ETHERNET, eth() / ARP()),
        (RAW, IPv6() / UDP()),
        (RAW, IPv6() / IPv6ExtHdrHopByHop() / UDP()),
        (RAW, IPv6(nh=50) / Raw(bytes(24))),  # ESP ends the header chain
        (RAW, IPv6() / IPv6ExtHdrHopByHop(nh=50) / Raw(bytes(24))),
        (NULL, Loopback(type=99) / IP() / TCP()),
        (SLL, CookedLinux(proto=0x0806) / ARP()),
        (1234, eth() / IP() / TCP()),
    ])
    def test_not_tcp(self, linktype: int, pkt: object) -> None:
        decoder = PacketDecoder()
        assert decoder.decode(linktype, bytes(pkt)) is None
        assert (decoder.not_tcp, decoder.malformed) == (1, 0)

    @pytest.mark.parametrize("linktype, data", [
        (ETHERNET, bytes(eth() / v4_tcp())[:30]),  # IP header cut
        (ETHERNET, bytes(eth() / v4_tcp())[:40]),  # TCP header cut
        (RAW, bytes(v6_tcp())[:30]),
        # TCP, total length 0 (trust the capture), but no room for a TCP header
        (RAW, bytes([0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6, 0, 0]) + bytes(8) + b"x"),
        (RAW, bytes(IP(ihl=2) / TCP())),
    ])
    def test_malformed(self, linktype: int, data: bytes) -> None:
        decoder = PacketDecoder()
        assert decoder.decode(linktype, data) is None
        assert decoder.malformed == 1

    @pytest.mark.parametrize("keep", [54, 60, 65])
    def test_snap_length(self, keep: int) -> None:
        """A packet cut by the snap length: the bytes it lacks are ``missing``."""
        full = bytes(eth() / v4_tcp())
        expected = scapy_view(full, Ether)
        seg = PacketDecoder().decode(ETHERNET, full[:keep])
        assert isinstance(seg, tuple)
        captured = max(0, keep - 54)
        assert seg[8] == expected[7][:captured]
        assert seg[9] == len(PAYLOAD) - captured
        assert seg[1:8] == expected[:7]


def test_garbage_never_raises() -> None:
    import random

    rng = random.Random(1)
    decoder = PacketDecoder()
    before = (0, 0, 0)
    base = [bytes(eth() / v4_tcp()), bytes(eth() / v6_tcp()),
            bytes(eth() / IPv6() / IPv6ExtHdrHopByHop() / TCP())]
    for _ in range(3000):
        data = bytearray(rng.choice(base))
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = data[:rng.randint(0, len(data))]
        for linktype in (ETHERNET, RAW, NULL, SLL, SLL2):
            result = decoder.decode(linktype, bytes(data))
            assert result is None or result == FRAGMENT or isinstance(result, tuple)
            # Read in place, between other bytes: the same result and counts
            # (nothing read past the frame's captured length).
            counts = (decoder.not_tcp, decoder.malformed, decoder.fragments)
            in_place = PacketDecoder()
            around = bytes(rng.randrange(256) for _ in range(rng.randint(0, 20)))
            assert in_place.decode(linktype, around + data + around * 3, len(around),
                                   len(data)) == result
            assert (in_place.not_tcp, in_place.malformed, in_place.fragments) == tuple(
                c - p for c, p in zip(counts, before, strict=True))
            before = counts
