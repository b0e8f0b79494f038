"""The opening of a connection (wspcap.engine.upgrade): each direction told by
its own first bytes, the HTTP upgrade in either capture order, a refused
upgrade, frames mid-stream, bytes lost in the request head; fed to a
:class:`~wspcap.engine.Session` segment by segment through its reassemblers
(no packets to decode)."""

from __future__ import annotations

import zlib

from tests.golden.crafted import request_head, response_head
from tests.golden.rfc6455 import BINARY, TEXT, frame
from wspcap.engine import Collector, Options, Session
from wspcap.engine.collector import Shared
from wspcap.engine.options import PROBE_CHUNKS
from wspcap.tables.schema import CONNECTIONS
from wspcap.tls import KeyLog
from wspcap.ws.deflate import InflateBudget

SYN, ACK = 0x02, 0x10
MASK = b"\x0a\x0b\x0c\x0d"
C, S = 0, 1  # the client sends the first packet in these tests, unless told


class Wire:
    """One session, its directions fed in order from their SYN."""

    def __init__(self, **options: object) -> None:
        self.collector = Collector()
        shared = Shared(Options(**options), self.collector, KeyLog(),  # type: ignore[arg-type]
                        InflateBudget(1 << 30, "capture"))
        self.session = Session(shared, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]),
                               40000, 80, 0)
        self.seq = [1000, 9000]
        self.packet = 0
        for d in (C, S):
            self.session.reasm[d].receive_segment(self.seq[d] - 1, SYN, b"", 0, 0, 0)

    def send(self, d: int, data: bytes) -> int:
        """``data`` as the next segment of direction ``d``; its packet number."""
        self.packet += 1
        self.session.reasm[d].receive_segment(self.seq[d], ACK, data, 0, self.packet * 1000,
                                              self.packet)
        self.seq[d] += len(data)
        return self.packet

    def skip(self, d: int, size: int) -> None:
        """``size`` bytes of ``d`` that the capture missed."""
        self.seq[d] += size

    @property
    def codes(self) -> list[str]:
        return [a.code for a in self.collector.anomalies]

    def messages(self) -> list[tuple[str, bytes]]:
        return [("s2c" if key & 1 else "c2s", m.payload)
                for key, m in zip(self.collector.message_keys, self.collector.messages,
                                  strict=True)]


def c_frame(payload: bytes) -> bytes:
    return frame(TEXT, payload, mask=MASK)


def s_frame(payload: bytes) -> bytes:
    return frame(TEXT, payload)


class TestUpgrade:
    """RFC 6455 section 4: the opening handshake, then frames."""

    def test_request_then_101(self) -> None:
        w = Wire()
        w.send(C, request_head())
        w.send(S, response_head())
        w.send(C, c_frame(b"hi"))
        w.send(S, s_frame(b"hello"))
        up = w.session.upgrade
        assert up.established and not up.midstream and w.session.conn_id == 0
        assert up.handshake is not None and up.handshake.uri == "/chat"
        assert (up.request_packet, up.response_packet) == (1, 2)
        assert (up.ts_request, up.ts_response) == (1000, 2000)
        assert w.session.client == C and w.messages() == [("c2s", b"hi"), ("s2c", b"hello")]
        assert w.codes == []

    def test_a_request_cut_after_its_first_byte_waits(self) -> None:
        head = request_head()
        w = Wire()
        w.send(C, head[:1])
        assert w.session.conn_id is None and not w.session.ignored
        w.send(C, head[1:])
        w.send(S, response_head() + s_frame(b"x"))  # a frame in the 101's segment
        assert w.session.upgrade.established
        assert w.codes == ["http_data_with_101"] and w.messages() == [("s2c", b"x")]

    def test_the_answer_captured_before_its_request(self) -> None:
        """Request and answer are paired by each direction's sequence, not by
        capture order: the answer and the frames after it wait for the request."""
        w = Wire()
        w.send(S, response_head())
        w.send(S, s_frame(b"early"))
        assert w.session.conn_id is None
        w.send(C, request_head())
        w.send(C, c_frame(b"later"))
        up = w.session.upgrade
        assert up.established and not up.midstream and up.response_packet == 1
        assert w.session.client == C and w.codes == []
        assert w.messages() == [("s2c", b"early"), ("c2s", b"later")]

    def test_frames_sent_before_the_answer(self) -> None:
        w = Wire()
        w.send(C, request_head())
        w.send(C, c_frame(b"eager"))
        w.send(S, response_head())
        assert w.codes == ["http_frames_before_101"]
        (a,) = w.collector.anomalies
        assert a.frame_index == 0 and a.packet == 2 and a.stream_offset == len(request_head())
        assert w.messages() == [("c2s", b"eager")]

    def test_an_interim_answer_then_the_101(self) -> None:
        w = Wire()
        w.send(C, request_head())
        w.send(S, b"HTTP/1.1 100 Continue\r\n\r\n" + response_head())
        w.send(S, s_frame(b"ok"))
        assert w.session.upgrade.established and w.codes == []

    def test_permessage_deflate_inflates_each_side(self) -> None:
        def deflated(text: bytes) -> bytes:
            z = zlib.compressobj(wbits=-15)
            return (z.compress(text) + z.flush(zlib.Z_SYNC_FLUSH))[:-4]

        ext = ["Sec-WebSocket-Extensions: permessage-deflate"]
        w = Wire()
        w.send(C, request_head(extra=ext))
        w.send(S, response_head(extra=ext))
        w.send(C, frame(TEXT, deflated(b"up" * 50), rsv=4, mask=MASK))
        w.send(S, frame(BINARY, deflated(b"down" * 50), rsv=4))
        assert w.session.upgrade.deflate is not None and w.codes == []
        assert w.messages() == [("c2s", b"up" * 50), ("s2c", b"down" * 50)]
        assert w.session.record()["permessage_deflate"]


class TestNotWebSocket:
    def test_plain_http_is_followed_until_it_cannot_be(self) -> None:
        """A plain request may be followed by an upgrade on the same connection
        (keep-alive); an answer whose body ends with the connection ends that."""
        w = Wire()
        w.send(C, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert not w.session.ignored and w.session.conn_id is None
        w.send(S, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        assert not w.session.ignored and w.session.upgrade.answered == 1
        w.send(C, b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
        w.send(S, b"HTTP/1.1 200 OK\r\n\r\nthe rest of the connection")
        assert w.session.ignored and w.session.conn_id is None
        assert all(d.ignored and not d.pending for d in w.session.dirs)

    def test_other_bytes_are_given_up(self) -> None:
        w = Wire(midstream=False)
        w.send(S, s_frame(b"a") + s_frame(b"b"))  # frames, but mid-stream is off
        assert w.session.ignored and w.collector.sessions == []

    def test_a_refused_upgrade_then_frames(self) -> None:
        """Frames after a refusal are the smuggling pattern; then nothing is
        followed."""
        w = Wire()
        w.send(C, request_head())
        w.send(S, response_head(403, "Forbidden"))
        w.send(C, c_frame(b"smuggled"))
        assert w.codes == ["http_status_not_101", "http_frames_without_101"]
        assert not w.session.upgrade.established and w.messages() == []
        assert w.session.dirs[C].ignored and not w.session.ignored
        for _ in range(PROBE_CHUNKS):
            w.send(S, b"HTTP/1.1 200 OK\r\n\r\n")
        assert w.session.ignored
        assert w.session.record()["status"] == 403


class TestMidstream:
    def test_frames_without_a_handshake(self) -> None:
        """Two frames in one segment: the connection is WebSocket, its client the
        side that masks (here not the side seen first)."""
        w = Wire()
        w.send(S, s_frame(b"a") + s_frame(b"b"))
        w.send(C, c_frame(b"c"))
        up = w.session.upgrade
        assert up.midstream and up.established and up.handshake is None
        assert w.session.client == C
        assert w.codes == ["http_handshake_missing"]
        assert w.messages() == [("s2c", b"a"), ("s2c", b"b"), ("c2s", b"c")]
        cols = up.columns()
        assert cols["handshake"] is False and cols["method"] is None and cols["cookie"] is None

    def test_bytes_lost_in_the_request_head(self) -> None:
        """The head's fields are lost, not the conversation: frames follow its
        end; the gap is told once the connection is WebSocket."""
        head = request_head()
        w = Wire()
        w.send(C, head[:20])
        w.skip(C, 10)
        w.send(C, head[30:])
        w.session.reasm[C].receive_ack(w.seq[C], 0, 0)  # the server has it all: a gap
        w.send(S, response_head())
        w.send(C, c_frame(b"after"))
        up = w.session.upgrade
        assert up.request_gap is not None and up.request_gap[1:3] == (20, 10)
        assert up.midstream and up.established and up.request_end == len(head)
        assert w.codes == ["tcp_gap", "http_handshake_missing"]
        assert w.messages() == [("c2s", b"after")]

    def test_bytes_lost_before_the_roles_are_known(self) -> None:
        w = Wire()
        w.send(S, b"HTTP/1.1 1")
        w.skip(S, 10)
        w.send(S, b"rest")
        w.session.reasm[S].receive_ack(w.seq[S], 0, 0)
        assert w.session.dirs[S].ignored and not w.session.dirs[C].ignored


def test_the_columns_are_the_tables() -> None:
    """Every column the opening fills is a column of the connections table."""
    w = Wire()
    w.send(C, request_head())
    w.send(S, response_head())
    cols = w.session.upgrade.columns()
    assert set(cols) <= set(CONNECTIONS.names)
    assert set(w.session.record()) <= set(CONNECTIONS.names)
    assert cols["accept_valid"] is True and cols["status"] == 101
