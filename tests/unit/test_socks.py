"""The SOCKS handshake (:mod:`wspcap.proxy.socks`), from RFC 1928, RFC 1929 and SOCKS 4/4a.

Handshakes are written here from the documents (SOCKS 5 with and without
username/password, IPv4, domain name and IPv6 targets, an optimistic client
that sends its request with its greeting; SOCKS 4 and 4a), then fed cut
anywhere and interleaved in any order that keeps each direction's own:
the handshake must be granted with the right target and user, and the bytes
after it in each direction given back whole.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wspcap.proxy.socks import MAX_SOCKS, SocksHandshake, looks_like_socks

TARGETS = [(1, "10.1.2.3", 443), (3, "chat.example.com", 80), (4, "::1", 8443)]


def _address(atyp: int, host: str) -> bytes:
    if atyp == 1:
        return bytes([1, *map(int, host.split("."))])
    if atyp == 3:
        return bytes([3, len(host)]) + host.encode()
    return bytes([4]) + bytes(15) + b"\x01"


def socks5(atyp: int, host: str, port: int, user: str | None, optimistic: bool
           ) -> tuple[list[bytes], list[bytes]]:
    """The client's and the proxy's messages, in order."""
    methods = [0, 2] if user else [0]
    client = [bytes([5, len(methods), *methods])]
    server = [bytes([5, 2 if user else 0])]
    if user:
        name = user.encode()
        client.append(bytes([1, len(name)]) + name + bytes([3]) + b"pwd")
        server.append(b"\x01\x00")
    request = bytes([5, 1, 0]) + _address(atyp, host) + port.to_bytes(2, "big")
    if optimistic and not user:
        client[0] += request
    else:
        client.append(request)
    server.append(b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00")
    return client, server


def socks4(host: str, port: int, user: str) -> tuple[list[bytes], list[bytes]]:
    if host[0].isdigit():
        ip, name = bytes(map(int, host.split("."))), b""
    else:  # 4a
        ip, name = b"\0\0\0\x07", host.encode() + b"\0"
    return ([b"\x04\x01" + port.to_bytes(2, "big") + ip + user.encode() + b"\0" + name],
            [b"\x00\x5a" + bytes(6)])


def _pieces(data: bytes, rng: random.Random) -> list[bytes]:
    if not data:
        return []
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 5))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def run(client: bytes, server: bytes, seed: int) -> tuple[SocksHandshake, bytes, bytes]:
    """Feed both directions cut and interleaved at random until the handshake
    is done; the bytes each direction gives after it (rest and those not fed)."""
    rng = random.Random(seed)
    queues = {"c": _pieces(client, rng), "s": _pieces(server, rng)}
    hs = SocksHandshake()
    while not hs.done and (queues["c"] or queues["s"]):
        side = rng.choice([k for k in queues if queues[k]])
        piece = queues[side].pop(0)
        (hs.receive_client if side == "c" else hs.receive_server)(piece)
    return hs, hs.client_rest + b"".join(queues["c"]), hs.server_rest + b"".join(queues["s"])


@given(target=st.sampled_from(TARGETS), user=st.sampled_from([None, "bob", "ünïcode"]),
       optimistic=st.booleans(), after_c=st.binary(max_size=40), after_s=st.binary(max_size=40),
       seed=st.integers(0, 2**32))
def test_socks5_granted(target: tuple[int, str, int], user: str | None, optimistic: bool,
                        after_c: bytes, after_s: bytes, seed: int) -> None:
    atyp, host, port = target
    client, server = socks5(atyp, host, port, user, optimistic)
    hs, c_rest, s_rest = run(b"".join(client) + after_c, b"".join(server) + after_s, seed)
    assert hs.granted and hs.failed is None and hs.version == 5
    assert (c_rest, s_rest) == (after_c, after_s)
    want = "[0000:0000:0000:0000:0000:0000:0000:0001]" if atyp == 4 else host
    assert hs.target == f"{want}:{port}"
    assert hs.user == (user.encode().decode("latin-1") if user else None)


@given(host=st.sampled_from(["10.0.0.9", "chat.example.com"]), user=st.sampled_from(["", "u"]),
       after_c=st.binary(max_size=20), after_s=st.binary(max_size=20),
       seed=st.integers(0, 2**32))
def test_socks4_granted(host: str, user: str, after_c: bytes, after_s: bytes,
                        seed: int) -> None:
    client, server = socks4(host, 8080, user)
    hs, c_rest, s_rest = run(b"".join(client) + after_c, b"".join(server) + after_s, seed)
    assert hs.granted and hs.version == 4 and hs.target == f"{host}:8080"
    assert hs.user == (user or None)
    assert (c_rest, s_rest) == (after_c, after_s)


@pytest.mark.parametrize(("client", "server", "why"), [
    (b"\x05\x01\x00", b"\x05\xff", "METHOD=255"),
    (b"\x05\x01\x02\x01\x03bob\x03pwd", b"\x05\x02\x01\x01", "authentication failed"),
    (b"\x05\x01\x00\x05\x02\x00\x01\x01\x02\x03\x04\x00\x50", b"\x05\x00", "not a CONNECT"),
    (b"\x05\x01\x00\x05\x01\x00\x09\x01\x02\x03\x04\x00\x50", b"\x05\x00", "not a CONNECT"),
    (b"\x05\x01\x00\x05\x01\x00\x01\x01\x02\x03\x04\x00\x50",
     b"\x05\x00\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00", "REP=5"),
    (b"\x04\x01\x00\x50\x01\x02\x03\x04\x00", b"\x00\x5b" + bytes(6), "CD=91"),
    (b"\x05\x01\x01", b"\x05\x01", "method 1"),
])
def test_refusals_fail(client: bytes, server: bytes, why: str) -> None:
    hs, _c, _s = run(client, server, 1)
    assert not hs.granted and hs.failed is not None and why in hs.failed


def test_a_handshake_never_ends_within_its_bound() -> None:
    hs = SocksHandshake()
    hs.receive_client(b"\x04\x01\x00\x50\x01\x02\x03\x04" + b"u" * MAX_SOCKS)
    assert hs.failed == "handshake too long"


@pytest.mark.parametrize(("data", "want"), [
    (b"", None), (b"\x05", None), (b"\x05\x02\x00", None), (b"\x05\x02\x00\x02", True),
    (b"\x05\x01\xff", False), (b"\x05\x00", False), (b"\x05\x40" + bytes(64), False),
    (b"\x04\x01\x00\x50\x01\x02\x03\x04\x00", True), (b"\x04\x01\x00\x50", None),
    (b"\x04\x02\x00\x50\x01\x02\x03\x04\x00", False), (b"\x04\x01\x00\x50\x01\x02\x03\x04u", None),
    (b"GET / HTTP/1.1\r\n", False), (b"\x16\x03\x01", False), (b"\x81\x05hello", False),
])
def test_looks_like_socks(data: bytes, want: bool | None) -> None:
    assert looks_like_socks(data) is want


@given(client=st.binary(max_size=300), server=st.binary(max_size=300),
       seed=st.integers(0, 2**32), first=st.sampled_from([b"\x05", b"\x04\x01", b""]))
def test_any_bytes_are_read_without_an_exception(client: bytes, server: bytes, seed: int,
                                                 first: bytes) -> None:
    """Garbage after a SOCKS-looking start: granted, failed or waiting, never
    an exception, never more held than the bound and a piece."""
    hs, c_rest, s_rest = run(first + client, server, seed)
    assert not (hs.granted and hs.failed)
    assert len(hs._client) <= MAX_SOCKS + 300 and len(hs._server) <= MAX_SOCKS + 300
    if hs.granted:
        assert (first + client).endswith(c_rest) and server.endswith(s_rest)
