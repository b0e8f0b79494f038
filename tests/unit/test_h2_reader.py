"""The HTTP/2 reader of WebSocket streams (wspcap.http.h2), byte for byte.

Frames are serialised by hyperframe and header blocks encoded by hpack here,
as an HTTP/2 endpoint would; the reader must find the extended CONNECT
streams, their answers and DATA, whatever the cuts of the byte streams, and
never raise on any bytes.
"""

from __future__ import annotations

from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from wspcap.http.h2 import (
    H2_HEADERS,
    H2_MALFORMED,
    PREFACE,
    H2Data,
    H2Problem,
    H2Reader,
    H2Request,
    H2Reset,
    H2Response,
    looks_like_settings,
)

CONNECT = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
           (":path", "/chat"), (":authority", "server.example.com"),
           ("sec-websocket-version", "13"), ("sec-websocket-protocol", "chat, superchat")]


def _conversation() -> tuple[bytes, bytes]:
    """(client bytes, server bytes) of a connection with a page and a WebSocket."""
    ce, se = Encoder(), Encoder()
    # (the client lets the server's encoder use a larger table, which it does)
    client = PREFACE + SettingsFrame(0, settings={SettingsFrame.HEADER_TABLE_SIZE: 8192}
                                     ).serialize()
    server = SettingsFrame(0, settings={SettingsFrame.ENABLE_CONNECT_PROTOCOL: 1}).serialize()
    se.header_table_size = 8192
    client += HeadersFrame(1, ce.encode([(":method", "GET"), (":path", "/"),
                                         (":scheme", "https"), (":authority", "s")]),
                           flags=["END_HEADERS", "END_STREAM"]).serialize()
    block = ce.encode(CONNECT)
    client += HeadersFrame(3, block[:10]).serialize()
    client += ContinuationFrame(3, block[10:], flags=["END_HEADERS"]).serialize()
    server += HeadersFrame(1, se.encode([(":status", "200"), ("x-pad", "y" * 300)]),
                           flags=["END_HEADERS"], ).serialize()
    server += PushPromiseFrame(1, promised_stream_id=2, data=se.encode(
        [(":method", "GET"), (":path", "/style.css"), (":scheme", "https"),
         (":authority", "s")]), flags=["END_HEADERS"]).serialize()
    server += DataFrame(1, b"<html>" * 100, flags=["END_STREAM"]).serialize()
    server += HeadersFrame(3, se.encode([(":status", "100")]), flags=["END_HEADERS"]).serialize()
    server += HeadersFrame(3, se.encode([(":status", "200"), ("sec-websocket-protocol", "chat")]),
                           flags=["END_HEADERS"]).serialize()
    padded = DataFrame(3, b"\x81\x05hello", flags=["PADDED"])
    padded.pad_length = 9
    server += padded.serialize() + PingFrame(0, b"12345678").serialize()
    server += WindowUpdateFrame(0, window_increment=1000).serialize()
    client += DataFrame(3, b"\x81\x82abcd\x00\x00").serialize()
    client += RstStreamFrame(3, error_code=8).serialize()
    client += GoAwayFrame(0, last_stream_id=3).serialize()
    return client, server


def _read(reader: H2Reader, chunks: list[tuple[int, bytes]]) -> list[object]:
    out: list[object] = []
    for d, data in chunks:
        out += reader.receive(d, data)
    return out


def test_websocket_stream_found_and_followed() -> None:
    client, server = _conversation()
    events = _read(H2Reader(0), [(0, client[:200]), (1, server), (0, client[200:])])
    request = next(e for e in events if isinstance(e, H2Request))
    assert request.stream == 3 and request.headers == tuple(CONNECT)
    (response,) = [e for e in events if isinstance(e, H2Response)]
    assert response.headers == ((":status", "200"), ("sec-websocket-protocol", "chat"))
    data = sorted((e for e in events if isinstance(e, H2Data)), key=lambda e: -e.d)
    assert [(e.d, e.stream, e.data) for e in data] == [(1, 3, b"\x81\x05hello"),
                                                        (0, 3, b"\x81\x82abcd\x00\x00")]
    # (offsets: where the data starts in its direction, past the frame header and pad length)
    assert server[data[0].offset:data[0].offset + 7] == b"\x81\x05hello"
    assert client[data[1].offset:data[1].offset + 8] == b"\x81\x82abcd\x00\x00"
    (reset,) = [e for e in events if isinstance(e, H2Reset)]
    assert (reset.d, reset.stream, reset.code) == (0, 3, 8)
    assert not [e for e in events if isinstance(e, H2Problem)]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_cut_gives_the_same_events(data: st.DataObject) -> None:
    client, server = _conversation()
    whole = _read(H2Reader(0), [(0, client), (1, server)])

    def cuts(b: bytes) -> list[bytes]:
        points = sorted(data.draw(st.sets(st.integers(1, max(1, len(b) - 1)), max_size=20)))
        return [b[i:j] for i, j in zip([0, *points], [*points, len(b)], strict=True)]

    # (each direction's order is kept; one direction entirely first, as the
    # whole read: HPACK tables are per direction)
    parts = [(0, c) for c in cuts(client)] + [(1, s) for s in cuts(server)]
    assert _read(H2Reader(0), parts) == whole


@settings(max_examples=200, deadline=None)
@given(client=st.binary(max_size=300), server=st.binary(max_size=300),
       start=st.booleans(), client_side=st.integers(0, 1))
def test_any_bytes_never_raise(client: bytes, server: bytes, start: bool,
                               client_side: int) -> None:
    reader = H2Reader(client_side)
    if start:
        client = PREFACE + client
    for d, b in ((client_side, client), (1 - client_side, server)):
        for event in reader.receive(d, b):
            assert isinstance(event, H2Request | H2Response | H2Data | H2Reset | H2Problem)
    reader.lose(0, 10)
    assert reader.receive(0, b"more") == []  # (a lost direction is read no further)


def test_not_a_preface() -> None:
    (problem,) = H2Reader(0).receive(0, b"GET / HTTP/1.1\r\n\r\n")
    assert isinstance(problem, H2Problem) and problem.code == H2_MALFORMED


def test_undecodable_block_stops_that_directions_headers_only() -> None:
    client, _server = _conversation()
    reader = H2Reader(0)
    bad = HeadersFrame(5, b"\xbf\xff\xff\x7f", flags=["END_HEADERS"]).serialize()
    events = reader.receive(0, PREFACE + bad + client[len(PREFACE):])
    problems = [e for e in events if isinstance(e, H2Problem)]
    assert [p.code for p in problems] == [H2_HEADERS]
    assert not [e for e in events if isinstance(e, H2Request)]  # (its table is unknown)


def test_frame_inside_a_header_block_is_malformed() -> None:
    frames = (PREFACE + HeadersFrame(3, b"\x82").serialize()
              + DataFrame(3, b"x").serialize())
    (problem,) = H2Reader(0).receive(0, frames)
    assert problem.code == H2_MALFORMED and "CONTINUATION expected" in problem.detail


def test_oversized_header_block() -> None:
    frames = PREFACE + HeadersFrame(3, b"\x00" * 16000).serialize()
    frames += b"".join(ContinuationFrame(3, b"\x00" * 16000).serialize() for _ in range(17))
    events = H2Reader(0).receive(0, frames)
    assert [e.code for e in events if isinstance(e, H2Problem)] == [H2_HEADERS]


def test_server_settings_look() -> None:
    _client, server = _conversation()
    assert looks_like_settings(server)
    assert not looks_like_settings(b"\x81\x05hello")
    assert not looks_like_settings(PREFACE)


def test_end_inside_a_frame_is_told() -> None:
    """Nothing held is dropped in silence: the end of input inside a frame, a
    header block or the preface is a problem of that direction."""
    client, server = _conversation()
    reader = H2Reader(0)
    reader.receive(0, client[:-5])
    reader.receive(1, server)
    frame = HeadersFrame(7, b"\x82")  # (no END_HEADERS: a block left open)
    reader.receive(1, frame.serialize())
    problems = reader.finish()
    assert [(p.d, p.code) for p in problems] == [(0, H2_MALFORMED), (1, H2_MALFORMED)]
    assert "inside a frame of 17 bytes (12 bytes held)" in problems[0].detail
    assert "header block of stream 7" in problems[1].detail
    assert reader.finish() == []
    short = H2Reader(0)
    short.receive(0, PREFACE[:10])
    (p,) = short.finish()
    assert "inside the client's preface" in p.detail


class _Reference(H2Reader):
    """Every frame read with hyperframe (the reference of the DATA fast path)."""

    fast = False


@settings(max_examples=150, deadline=None)
@given(data=st.data(), extra=st.lists(st.tuples(
    st.integers(0, 10), st.integers(0, 255), st.sampled_from([0, 1, 3, 5, 0x80000003]),
    st.binary(max_size=40)), max_size=8))
def test_fast_path_agrees_with_hyperframe(data: st.DataObject,
                                          extra: list[tuple[int, int, int, bytes]]) -> None:
    """The DATA fast path gives what hyperframe's reading gives, frame for frame,
    on the conversation cut anywhere with frames of any type, flags and stream
    (the reserved bit set too) put in at any place."""
    client, server = _conversation()
    frames = [len(body).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big")
              + body for kind, flags, stream, body in extra]
    at = data.draw(st.integers(len(PREFACE), len(client)))
    client = client[:at] + b"".join(frames) + client[at:]
    cut = data.draw(st.integers(0, len(client)))
    parts = [(0, client[:cut]), (1, server), (0, client[cut:])]
    fast, slow = H2Reader(0), _Reference(0)
    assert _read(fast, parts) + fast.finish() == _read(slow, parts) + slow.finish()


def test_incomplete_data_frame_on_stream_zero() -> None:
    """A DATA frame on stream 0 is refused at its header, whole or not (the
    fast path once waited for its body, where hyperframe refuses at once:
    found by test_fast_path_agrees_with_hyperframe)."""
    frame = (65536).to_bytes(3, "big") + b"\x00\x00" + (0).to_bytes(4, "big") + b"x" * 80
    for reader in (H2Reader(0), _Reference(0)):
        (problem,) = reader.receive(0, PREFACE + frame)
        assert problem.code == H2_MALFORMED
        assert problem.detail == "frame header: Stream ID must be non-zero for DataFrame"
