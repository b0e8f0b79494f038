"""The decisions behind the sec_, ws_ and pmd_ rules, on hand-made inputs."""

from __future__ import annotations

import random
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wspcap.http.upgrade import HeadParser, HttpHead
from wspcap.rules.context import preview
from wspcap.rules.sec import (
    _has_intent_token,
    _header_secrets,
    _predictable,
    _shown,
    _token_like,
    credential_name,
    is_browser,
    origin_cross_site,
)
from wspcap.ws.deflate import Inflater


class TestOrigin:
    """RFC 6454 origins against the Host header (RFC 6455 section 10.2)."""

    @pytest.mark.parametrize("origin, host", [
        ("https://websocketstest.com", "websocketstest.com"),  # Suricata's browser capture
        ("http://192.168.122.182", "192.168.122.182"),  # Zeek's Jupyter capture
        ("http://Example.COM", "example.com"),
        ("http://example.com:8080", "example.com:8080"),
        ("http://example.com", "example.com:80"),
        ("https://example.com", "example.com"),  # TLS ended before the capture point
        ("http://[::1]:9000", "[::1]:9000"),
    ])
    def test_same_host(self, origin: str, host: str) -> None:
        assert origin_cross_site(origin, host) is False

    @pytest.mark.parametrize("origin, host", [
        ("http://kaazing.org", "sandbox.kaazing.net"),  # Zeek's Kaazing capture
        ("https://evil.example", "bank.example"),
        ("http://example.com:8080", "example.com:9090"),
        ("https://example.com", "example.com:80"),
        ("not a url", "example.com"),
        ("http://", "example.com"),
    ])
    def test_cross_site(self, origin: str, host: str) -> None:
        assert origin_cross_site(origin, host) is True

    def test_no_host(self) -> None:
        assert origin_cross_site("http://a.example", None) is None


@pytest.mark.parametrize("ua, browser", [
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10.12; rv:54.0) Gecko/20100101 Firefox/54.0",
     True),
    (("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/88.0.4324.150 Safari/537.36 Edg/88.0.705.68"), True),
    ("Python/3.11 websockets/17.4", False),
    ("Go-http-client/1.1", False),
    ("curl/8.0", False),
    (None, False),
])
def test_browser_user_agents(ua: str | None, browser: bool) -> None:
    assert is_browser(ua) is browser


@pytest.mark.parametrize("name, secret", [
    ("token", True), ("access_token", True), ("accessToken", True), ("api_key", True),
    ("apikey", True), ("key", True), ("password", True), ("auth", True), ("sig", True),
    ("session_id", False), ("room", False), ("author", False), ("keyboard", False),
    (".kl", False), ("monkey", False),
])
def test_credential_names(name: str, secret: bool) -> None:
    assert credential_name(name) is secret


def _head(*fields: str) -> HttpHead:
    head = HeadParser().receive_data(
        "".join(f"{line}\r\n" for line in ("GET /chat HTTP/1.1", *fields, "")).encode())
    assert head is not None
    return head


@pytest.mark.parametrize("fields, found", [
    (["Authorization: Basic Ym9iOmh1bnRlcjI="],
     ["Authorization Basic: user 'bob', a password of 7 characters"]),
    (["Authorization: Basic !!!"], ["Authorization Basic: an undecodable token"]),
    (["Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"],
     ["Authorization Bearer (28 chars, 'eyJh'...)"]),
    (["Authorization: Digest username=\"bob\", response=\"6629fae4\""], []),
    (["Authorization: Negotiate YIIJvwYGKwYBBQUCoIIJszCCCa"], []),
    (["X-Auth-Token: abcdef0123456789"], ["header 'X-Auth-Token' (16 chars, 'abcd'...)"]),
    (["Api-Key: k1"], ["header 'Api-Key' (2 chars)"]),
    (["Key: 6a5c"], []),                       # a bare "Key" names many things
    (["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="], []),
    (["Cookie: session=abc", "Proxy-Authorization: Basic Ym9iOmh1bnRlcjI="], []),
    (["X-Requested-With: XMLHttpRequest", "Host: a"], []),
])
def test_header_secrets(fields: list[str], found: list[str]) -> None:
    assert _header_secrets(_head(*fields)) == found


@pytest.mark.parametrize("value, token", [
    ("authorization.bearer.eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpZCI6IjAxOGNmZWFi", True),
    ("base64url.bearer.authorization.k8s.io.ZXlKaGJHY2lPaUpTVXpJMU5pSXNJbXRwWkNJNkluUlRh", True),
    ("v1.kernel.websocket.jupyter.org", False),  # Zeek's Jupyter capture
    ("x-kaazing-handshake", False),
    ("chat.v2", False),
    ("graphql-transport-ws", False),
    ("a3f9c2e17b6d4e0f8a1b2c3d4e5f6a7b", True),  # 32 hex characters: an opaque secret
])
def test_token_like_subprotocols(value: str, token: bool) -> None:
    assert _token_like(value) is token


def test_intent_tokens() -> None:
    """CSWSH needs a request without anything a cross-site page could not know."""
    assert _has_intent_token("/ws?csrf=abc123", [])
    assert _has_intent_token("/ws?access_token=abc", [])
    assert _has_intent_token("/ws", ["bearer.abcdef"])
    assert not _has_intent_token("/ws?room=1", ["chat"])
    assert not _has_intent_token("/ws?csrf=", [])


class TestMaskingKeys:
    """RFC 6455 sections 5.3 and 10.3: keys must be unpredictable."""

    def test_constant(self) -> None:
        found = _predictable([(i, 0x12345678) for i in range(3)])
        assert found == (1, "masking key 0x12345678 used by all 3 client frames")

    def test_two_equal_keys_are_not_enough(self) -> None:
        assert _predictable([(0, 7), (1, 7)]) is None

    def test_sequential(self) -> None:
        found = _predictable([(i, 1000 + 3 * i) for i in range(4)])
        assert found is not None and found[0] == 3 and "+3 per frame" in found[1]
        assert _predictable([(i, 1000 + 3 * i) for i in range(3)]) is None

    def test_sequential_wraps_around(self) -> None:
        """A counter that wraps at 2**32 (0xfffffff0, 0xfffffff7, 0xfffffffe, 0x5, ...)."""
        found = _predictable([(i, (0xFFFFFFF0 + 7 * i) & 0xFFFFFFFF) for i in range(5)])
        assert found is not None and "+7 per frame" in found[1]

    def test_repeated_among_random(self) -> None:
        rng = random.Random(1)
        keys = [rng.getrandbits(32) | 1 for _ in range(50)]
        keys[20] = keys[3]
        keys[30] = keys[4]
        found = _predictable(list(enumerate(keys)))
        assert found is not None and found[0] == 20 and "2 of 50" in found[1]

    @settings(max_examples=25, deadline=None)
    @given(seed=st.integers(0, 2**64 - 1), n=st.integers(2, 20000))
    def test_random_keys_are_not_flagged(self, seed: int, n: int) -> None:
        """Keys from a random source: repeats by chance stay below the bar (the
        birthday bound is accounted for), so the rule does not fire."""
        rng = random.Random(seed)
        keys = [rng.getrandbits(32) or 1 for _ in range(n)]
        assert _predictable(list(enumerate(keys))) is None


def _deflate(comp: zlib._Compress, data: bytes) -> bytes:
    out = comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4]  # RFC 7692 section 7.2.1: the 00 00 ff ff tail removed


class TestInflaterFindings:
    """RFC 7692 sections 7.1.1 and 7.2.3: what the inflater reports, and recovers."""

    TEXT = b'{"ticker": "ACME", "price": 1234.5, "volume": 1000}'

    def test_context_takeover_violated(self) -> None:
        comp = zlib.compressobj(9, zlib.DEFLATED, -15)
        inflater = Inflater(15, no_context_takeover=True)
        assert inflater.inflate(_deflate(comp, self.TEXT)) == (self.TEXT, None, "")
        out, problem, detail = inflater.inflate(_deflate(comp, self.TEXT))
        assert problem == "pmd_context_takeover_violated"
        assert out == self.TEXT  # recovered with the window the sender kept
        assert "no_context_takeover" in detail

    def test_no_context_takeover_honoured(self) -> None:
        inflater = Inflater(15, no_context_takeover=True)
        for _ in range(3):
            comp = zlib.compressobj(9, zlib.DEFLATED, -15)
            assert inflater.inflate(_deflate(comp, self.TEXT)) == (self.TEXT, None, "")

    def test_context_lost_after_a_failure(self) -> None:
        comp = zlib.compressobj(9, zlib.DEFLATED, -15)
        first = _deflate(comp, self.TEXT)
        second = _deflate(comp, self.TEXT)
        inflater = Inflater(15)
        out, problem, _ = inflater.inflate(b"\xff" + first[1:])  # damaged on the way
        assert problem == "pmd_inflate_failed" and out is None
        out, problem, detail = inflater.inflate(second)
        assert problem == "pmd_context_lost"
        assert "could not be inflated" in detail


@pytest.mark.parametrize(("uri", "shown"), [
    ("/chat?x=1", "/chat?x=1"),
    ("/c?access_token=eyJhbGciOi&room=1", "/c?access_token=...&room=1"),
    ("/c?room=1&token=zzz#f", "/c?room=1&token=...#f"),
    ("ws://u:pw@h/x?password=1", "ws://u:...@h/x?password=..."),
    ("/a?token", "/a?token"),
    ("/bad[uri?token=1", "/bad[uri?token=..."),
])
def test_details_do_not_repeat_credentials(uri: str, shown: str) -> None:
    """sec_plaintext_ws names the request target without the secrets that
    sec_credentials_in_url reports (as a preview)."""
    assert _shown(uri) == shown


def test_preview() -> None:
    assert preview(b"hello") == "'hello'"
    assert preview(b"\xff\x00") == "0xff00"
    assert preview("x" * 30, 10) == repr("x" * 10 + "...")
    assert preview(b"") == "''"
