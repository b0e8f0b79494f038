"""Where an HTTP/1.1 body ends (:mod:`wspcap.http.messages`), from RFC 9112.

The chunked bodies here are written by the test's own encoder, from RFC 9112
section 7.1 (chunk sizes in either case of hex, with leading zeros, chunk
extensions, trailer fields, bare LF line ends), and fed to :class:`Body` cut
anywhere: it must give exactly the bytes after the body, once, at the end.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wspcap.http import messages
from wspcap.http.messages import Body, request_body, response_body
from wspcap.http.upgrade import HeadParser, HttpHead


def chunked(chunks: list[bytes], upper: bool, zeros: int, ext: bool, trailers: list[str],
            eol: bytes = b"\r\n") -> bytes:
    """RFC 9112 section 7.1's chunked-body."""
    out = b""
    for data in [*chunks, b""]:
        size = f"{len(data):0{zeros + 1}{'X' if upper else 'x'}}".encode()
        out += size + (b';name="v"' if ext else b"") + eol
        if data:
            out += data + eol
    for field in trailers:
        out += field.encode() + eol
    return out + eol


def feed(body: Body, data: bytes, cuts: list[int]) -> list[bytes | None]:
    """What ``body`` gives for ``data`` cut at ``cuts``, piece by piece, up to its end."""
    got: list[bytes | None] = []
    points = sorted({c % (len(data) + 1) for c in cuts})
    for a, b in zip([0, *points], [*points, len(data)], strict=True):
        got.append(body.receive_data(data[a:b]))
        if got[-1] is not None:
            break
    return got


@given(chunks=st.lists(st.binary(min_size=1, max_size=80), max_size=6), upper=st.booleans(),
       zeros=st.integers(0, 3), ext=st.booleans(), lf=st.booleans(),
       trailers=st.lists(st.sampled_from(["X-T: 1", "Expires: 0", "A:b"]), max_size=2),
       after=st.binary(max_size=30), cuts=st.lists(st.integers(0, 2000), max_size=8))
def test_a_chunked_body_ends_where_it_ends(chunks: list[bytes], upper: bool, zeros: int,
                                           ext: bool, lf: bool, trailers: list[str],
                                           after: bytes, cuts: list[int]) -> None:
    wire = chunked(chunks, upper, zeros, ext, trailers, b"\n" if lf else b"\r\n")
    body = Body(chunked=True)
    got = feed(body, wire + after, cuts)
    assert all(g is None for g in got[:-1]) and not body.failed
    # The end is found in the piece that holds the body's last byte, not before.
    ends = sorted({c % (len(wire + after) + 1) for c in cuts})
    stop = next((c for c in ends if c >= len(wire)), len(wire + after))
    assert got[-1] == (wire + after)[len(wire):stop]
    assert body.skipped == sum(map(len, chunks))


@given(length=st.integers(0, 300), after=st.binary(max_size=20),
       cuts=st.lists(st.integers(0, 400), max_size=6))
def test_a_length_body_ends_after_its_length(length: int, after: bytes, cuts: list[int]) -> None:
    data = bytes(length) + after
    got = feed(Body(length), data, cuts)
    ends = sorted({c % (len(data) + 1) for c in cuts})
    stop = next((c for c in ends if c >= length), len(data))
    assert got[-1] == data[length:stop]
    assert all(g is None for g in got[:-1])


@pytest.mark.parametrize("wire", [
    b"zz\r\nhello\r\n0\r\n\r\n",          # not hex
    b"\r\nhello\r\n0\r\n\r\n",            # no size
    b"5\r\nhelloXX0\r\n\r\n",             # no CRLF after the data
    b"-5\r\nhello\r\n0\r\n\r\n",          # a sign
    b"11111111111111111\r\n",             # 17 hex digits
    b"5" + b";e" * 5000 + b"\r\n",        # a chunk-size line over MAX_LINE
])
def test_broken_chunks_fail(wire: bytes) -> None:
    body = Body(chunked=True)
    assert body.receive_data(wire) is None
    assert body.failed
    assert body.receive_data(b"0\r\n\r\n") is None  # (and stay failed)


def test_a_body_past_its_limit_is_not_followed() -> None:
    body = Body(chunked=True, limit=100)
    assert body.receive_data(b"40\r\n" + bytes(64) + b"\r\n") is None and not body.failed
    assert body.receive_data(b"40\r\n") is None and body.failed
    assert Body(chunked=True).limit == messages.MAX_BODY


def head(text: str) -> HttpHead:
    got = HeadParser().receive_data(text.replace("\n", "\r\n").encode() + b"\r\n")
    assert got is not None
    return got


def framing(body: Body | None) -> tuple[str, int] | None:
    return None if body is None else ("chunked", 0) if body.chunked else ("length", body.left)


@pytest.mark.parametrize(("text", "want"), [
    ("GET / HTTP/1.1\nHost: a\n", ("length", 0)),
    ("POST / HTTP/1.1\nContent-Length: 12\n", ("length", 12)),
    ("POST / HTTP/1.1\nContent-Length: 12, 12\nContent-Length: 12\n", ("length", 12)),
    ("POST / HTTP/1.1\nContent-Length: 12\nContent-Length: 13\n", None),
    ("POST / HTTP/1.1\nContent-Length: +12\n", None),
    ("POST / HTTP/1.1\nContent-Length: \u0661\u0662\n", None),  # Arabic-Indic digits
    ("POST / HTTP/1.1\nTransfer-Encoding: gzip, Chunked\nContent-Length: 3\n", ("chunked", 0)),
    ("POST / HTTP/1.1\nTransfer-Encoding: chunked, gzip\n", None),
])
def test_request_bodies(text: str, want: tuple[str, int] | None) -> None:
    assert framing(request_body(head(text))) == want


@pytest.mark.parametrize(("text", "method", "want"), [
    ("HTTP/1.1 200 OK\nContent-Length: 5\n", "GET", ("length", 5)),
    ("HTTP/1.1 200 OK\nContent-Length: 5\n", "HEAD", ("length", 0)),
    ("HTTP/1.1 304 Not Modified\nContent-Length: 5\n", "GET", ("length", 0)),
    ("HTTP/1.1 204 No Content\nTransfer-Encoding: chunked\n", "GET", ("length", 0)),
    ("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n", "GET", ("chunked", 0)),
    ("HTTP/1.1 200 OK\n", "GET", None),                     # ends with the connection
    ("HTTP/1.1 200 OK\nTransfer-Encoding: gzip\n", "GET", None),
    ("HTTP/1.1 200 Connection established\n", "CONNECT", None),  # a tunnel
    ("HTTP/1.1 2OO OK\nContent-Length: 0\n", "GET", None),   # no status code
    (f"HTTP/1.1 200 OK\nContent-Length: {messages.MAX_BODY + 1}\n", "GET", None),
    (f"HTTP/1.1 200 OK\nContent-Length: {messages.MAX_BODY}\n", "GET",
     ("length", messages.MAX_BODY)),
])
def test_response_bodies(text: str, method: str, want: tuple[str, int] | None) -> None:
    assert framing(response_body(head(text), method)) == want
