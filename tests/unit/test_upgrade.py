"""Tests of :mod:`wspcap.http.upgrade` (RFC 6455 section 4, the opening handshake)."""

from __future__ import annotations

import base64
import hashlib
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wspcap.http.upgrade import (
    ACCEPT_GUID,
    Handshake,
    HeadParser,
    HttpHead,
    accept_for,
    looks_like_request,
    looks_like_response,
    parse_extensions,
)

# RFC 6455 section 1.2/1.3: the handshake example.
REQUEST = (b"GET /chat HTTP/1.1\r\n"
           b"Host: server.example.com\r\n"
           b"Upgrade: websocket\r\n"
           b"Connection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Origin: http://example.com\r\n"
           b"Sec-WebSocket-Protocol: chat, superchat\r\n"
           b"Sec-WebSocket-Version: 13\r\n"
           b"\r\n")
RESPONSE = (b"HTTP/1.1 101 Switching Protocols\r\n"
            b"Upgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            b"Sec-WebSocket-Protocol: chat\r\n"
            b"\r\n")
# RFC 6455 section 5.7: a frame that may follow the 101 in the same segment.
HELLO = bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])


def feed(*chunks: bytes) -> tuple[HttpHead | None, HeadParser, int]:
    """Feed chunks; return the head, the parser and the call that completed it."""
    parser = HeadParser()
    for i, chunk in enumerate(chunks):
        head = parser.receive_data(chunk)
        if head is not None:
            return head, parser, i
    return None, parser, -1


def splits(data: bytes):
    yield [data]
    yield [data[i:i + 1] for i in range(len(data))]
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]


class TestAccept:
    """RFC 6455 section 4.2.2, step 5.4: the accept value."""

    @pytest.mark.parametrize("key, accept", [
        ("dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),  # RFC 6455 section 1.3
        ("CjYoQD+BXC718rj3aiExxw==", "c4RVZSknSoEHizZu6BKl3v+xUuI="),
    ])
    def test_known_pairs(self, key: str, accept: str) -> None:
        assert accept_for(key) == accept
        assert accept_for(f"  {key} ") == accept

    def test_guid(self) -> None:
        assert ACCEPT_GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def test_against_hashlib(self) -> None:
        key = base64.b64encode(bytes(range(16))).decode()
        digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        assert accept_for(key) == base64.b64encode(digest).decode()


class TestHeadParser:
    """Collecting the head incrementally, and handing over what follows it."""

    def test_request(self) -> None:
        head, parser, _ = feed(REQUEST)
        assert head is not None
        assert (head.method, head.target, head.version) == ("GET", "/chat", "HTTP/1.1")
        assert head.start_line == "GET /chat HTTP/1.1"
        assert head.size == len(REQUEST)
        assert head.get("host") == "server.example.com"
        assert head.get("SEC-WEBSOCKET-KEY") == "dGhlIHNhbXBsZSBub25jZQ=="
        assert head.get("X-Missing") is None
        assert head.tokens("Sec-WebSocket-Protocol") == ["chat", "superchat"]
        assert parser.trailing == b""

    def test_response(self) -> None:
        head, _, _ = feed(RESPONSE)
        assert head is not None
        assert (head.status, head.reason, head.version) == (101, "Switching Protocols",
                                                            "HTTP/1.1")

    def test_status_without_reason(self) -> None:
        head, _, _ = feed(b"HTTP/1.1 101\r\n\r\n")
        assert head is not None and (head.status, head.reason) == (101, "")

    def test_trailing_frame(self) -> None:
        head, parser, _ = feed(RESPONSE + HELLO)
        assert head is not None and head.size == len(RESPONSE)
        assert parser.trailing == HELLO

    def test_split_everywhere(self) -> None:
        data = RESPONSE + HELLO
        expected, parser, _ = feed(data)
        for chunks in splits(data):
            head, parser, i = feed(*chunks)
            assert head == expected
            assert parser.trailing + b"".join(chunks[i + 1:]) == HELLO

    def test_incomplete(self) -> None:
        head, parser, _ = feed(REQUEST[:-2])
        assert head is None and not parser.too_large

    def test_lf_only(self) -> None:
        data = REQUEST.replace(b"\r\n", b"\n")
        for chunks in splits(data + HELLO):
            head, parser, i = feed(*chunks)
            assert head is not None and head.size == len(data)
            assert head.get("Sec-WebSocket-Version") == "13"
            assert parser.trailing + b"".join(chunks[i + 1:]) == HELLO

    def test_lf_only_with_crlf_in_trailing_data(self) -> None:
        """The first blank line ends the head, whichever line ending it uses."""
        data = b"HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\n\n"
        trailing = bytes([0x82, 0x04]) + b"\r\n\r\n"
        for chunks in splits(data + trailing):
            head, parser, i = feed(*chunks)
            assert head is not None and head.size == len(data), chunks
            assert parser.trailing + b"".join(chunks[i + 1:]) == trailing

    def test_duplicate_headers_kept(self) -> None:
        data = (b"GET / HTTP/1.1\r\nSec-WebSocket-Key: one\r\nSec-WebSocket-Key: two\r\n"
                b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
                b"Sec-WebSocket-Extensions: x-foo\r\n\r\n")
        head, _, _ = feed(data)
        assert head is not None
        assert head.get_all("sec-websocket-key") == ["one", "two"]
        assert head.get("Sec-WebSocket-Key") == "one"
        assert [k for k, _ in head.headers].count("Sec-WebSocket-Key") == 2
        hs = Handshake.from_request(head)
        assert hs.extensions_offered == "permessage-deflate, x-foo"

    def test_many_headers(self) -> None:
        data = (b"GET / HTTP/1.1\r\n"
                + b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(300)) + b"\r\n")
        head, _, _ = feed(data)
        assert head is not None and len(head.headers) == 300

    def test_long_header_line(self) -> None:
        data = b"GET / HTTP/1.1\r\nCookie: " + b"a" * 70_000 + b"\r\n\r\n"
        head, _, _ = feed(data)  # arrives whole: parsed, however long
        assert head is not None and len(head.get("Cookie") or "") == 70_000

    def test_too_large(self) -> None:
        parser = HeadParser(max_size=1000)
        for _ in range(20):
            assert parser.receive_data(b"X-Filler: " + b"a" * 90 + b"\r\n") is None
        assert parser.too_large
        assert parser.receive_data(b"\r\n") is None

    def test_non_ascii_header_value(self) -> None:
        head, _, _ = feed(b"GET / HTTP/1.1\r\nX-Name: caf\xe9\r\n\r\n")
        assert head is not None and head.get("X-Name") == "caf\xe9"

    @pytest.mark.parametrize("data, request_, response", [
        (b"GET /chat HTTP/1.1\r\n", True, False),
        (b"OPTIONS * HTTP/1.1", True, False),
        (b"HTTP/1.1 101 ", False, True),
        (b"\x81\x05Hello", False, False),
        (b"get / HTTP/1.1", False, False),
    ])
    def test_looks_like(self, data: bytes, request_: bool, response: bool) -> None:
        assert looks_like_request(data) is request_
        assert looks_like_response(data) is response


class TestHandshake:
    """RFC 6455 sections 4.1 and 4.2: what the request and answer say."""

    def test_rfc_example(self) -> None:
        req, _, _ = feed(REQUEST)
        resp, _, _ = feed(RESPONSE)
        assert req is not None and resp is not None
        hs = Handshake.from_request(req)
        assert (hs.method, hs.uri, hs.http_version, hs.host) == (
            "GET", "/chat", "HTTP/1.1", "server.example.com")
        assert (hs.origin, hs.version, hs.key) == ("http://example.com", "13",
                                                   "dGhlIHNhbXBsZSBub25jZQ==")
        assert hs.protocols_offered == ["chat", "superchat"]
        assert hs.upgrade_websocket and hs.connection_upgrade and hs.key_is_valid()
        assert hs.accept_expected == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        assert not hs.upgraded
        hs.answer(resp)
        assert hs.upgraded and hs.status == 101 and hs.accept_valid is True
        assert hs.subprotocol == "chat" and hs.extensions is None

    def test_wrong_accept(self) -> None:
        req, _, _ = feed(REQUEST)
        resp, _, _ = feed(RESPONSE.replace(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
                                           b"c4RVZSknSoEHizZu6BKl3v+xUuI="))
        hs = Handshake.from_request(req)  # type: ignore[arg-type]
        hs.answer(resp)  # type: ignore[arg-type]
        assert hs.accept_valid is False

    def test_missing_accept_on_101(self) -> None:
        req, _, _ = feed(REQUEST)
        resp, _, _ = feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
        hs = Handshake.from_request(req)  # type: ignore[arg-type]
        hs.answer(resp)  # type: ignore[arg-type]
        assert hs.accept is None and hs.accept_valid is False

    def test_refused(self) -> None:
        req, _, _ = feed(REQUEST)
        resp, _, _ = feed(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        hs = Handshake.from_request(req)  # type: ignore[arg-type]
        hs.answer(resp)  # type: ignore[arg-type]
        assert not hs.upgraded and hs.status == 403 and hs.reason == "Forbidden"
        assert hs.accept_valid is None

    def test_tokens_case_and_lists(self) -> None:
        req, _, _ = feed(b"GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n"
                         b"Upgrade: WebSocket\r\nCookie: a=b\r\nAuthorization: x\r\n\r\n")
        hs = Handshake.from_request(req)  # type: ignore[arg-type]
        assert hs.connection_upgrade and hs.upgrade_websocket
        assert hs.cookie and hs.authorization
        assert hs.key is None and not hs.key_is_valid() and hs.accept_expected is None

    @pytest.mark.parametrize("key, valid", [
        ("dGhlIHNhbXBsZSBub25jZQ==", True),
        (base64.b64encode(bytes(15)).decode(), False),
        (base64.b64encode(bytes(17)).decode(), False),
        ("not base64!", False),
        ("", False),
    ])
    def test_key_is_valid(self, key: str, valid: bool) -> None:
        assert Handshake(key=key).key_is_valid() is valid


class TestExtensions:
    """RFC 6455 section 9.1: the Sec-WebSocket-Extensions grammar."""

    def test_empty(self) -> None:
        assert parse_extensions(None) == []
        assert parse_extensions("") == []
        assert parse_extensions(" , ") == []

    def test_offer(self) -> None:
        assert parse_extensions(
            "permessage-deflate; client_max_window_bits, x-webkit-deflate-frame") == [
            ("permessage-deflate", [("client_max_window_bits", None)]),
            ("x-webkit-deflate-frame", []),
        ]

    def test_values_quotes_case(self) -> None:
        assert parse_extensions('Permessage-Deflate; Server_Max_Window_Bits="10" ;'
                                ' client_no_context_takeover;') == [
            ("permessage-deflate", [("server_max_window_bits", "10"),
                                    ("client_no_context_takeover", None)]),
        ]


# -- properties ----------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=80) | st.sampled_from([b"\r\n", b"\n", b"\r\n\r\n",
                                                           b"\n\n", b": ", b"HTTP/1.1 "]),
                max_size=30))
def test_garbage_never_raises(chunks: list[bytes]) -> None:
    parser = HeadParser(max_size=200)
    for chunk in chunks:
        head = parser.receive_data(chunk)
        if head is not None:
            head.status, head.method, head.target, head.version, head.reason  # noqa: B018
            Handshake.from_request(head).answer(head)
            break


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,15}", fullmatch=True),
                          st.from_regex(r"[!-~]([ !-~]{0,30}[!-~])?", fullmatch=True)),
                max_size=12),
       st.binary(max_size=30), st.lists(st.integers(0, 2000), max_size=5),
       st.sampled_from([b"\r\n", b"\n"]))
def test_head_roundtrip_any_split(headers: list[tuple[str, str]], trailing: bytes,
                                  points: list[int], eol: bytes) -> None:
    data = b"HTTP/1.1 101 Switching Protocols" + eol
    data += b"".join(f"{k}: {v}".encode() + eol for k, v in headers) + eol
    stream = data + trailing
    bounds = sorted({p % (len(stream) + 1) for p in points} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    head, parser, i = feed(*chunks)
    assert head is not None and head.size == len(data)
    assert list(head.headers) == headers
    assert parser.trailing + b"".join(chunks[i + 1:]) == trailing
