"""One TCP connection (:class:`Session`): its two directions
(:mod:`wspcap.engine.direction`), its opening (:mod:`wspcap.engine.upgrade`),
its TLS layer, and what the tables and the rules read of it.

A session joins the pieces: it names the connection once it turns out to be
WebSocket, reports what was found before that, routes what the TLS layer
makes of the bytes to the direction it belongs to, and ends the pieces in
order at the end of input. Each piece keeps its own state; the session
reads it for the connection's row (:meth:`Session.record`) and the rules'
read-only view (:meth:`Session.facts`).

A connection that speaks HTTP/2 hands its bytes to :class:`~wspcap.engine.h2.
H2Streams`, which opens a session of its own for each WebSocket stream
(:meth:`Session.open_stream`): the same pieces, fed the stream's DATA as
in-order bytes (the ``stream_*`` methods), its row the stream's.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any

from wspcap.constants import C2S, S2C
from wspcap.decode.packet import TCP_FIN, TCP_SYN
from wspcap.engine.collector import Shared
from wspcap.engine.direction import Direction
from wspcap.engine.h2 import H2Streams
from wspcap.engine.upgrade import Upgrade
from wspcap.http.upgrade import HttpHead
from wspcap.rules.context import ConnFacts
from wspcap.tcp.reassembly import SEQ_MASK
from wspcap.tls import Lost, Plaintext, TLSAnomaly, TLSSession

__all__ = ["Session"]


class Session:
    """One TCP connection, and the WebSocket conversation in it if there is one;
    or one WebSocket stream of an HTTP/2 connection (:attr:`carrier`).

    Direction 0 is the sender of the first packet seen (of a stream: the
    client); :attr:`client` says which direction is the client once known.
    """

    def __init__(self, shared: Shared, tcp_stream: int, src: bytes, dst: bytes,
                 sport: int, dport: int, ts: int) -> None:
        self.shared = shared
        self.collector = shared.collector
        self.options = shared.options
        self.tcp_stream = tcp_stream
        self.addrs = (src, dst)
        self.ports = (sport, dport)
        self.ts_start = ts
        self.ts_end = ts
        self.last_packet = 0
        self.conn_id: int | None = None
        self.client: int | None = None
        self.ignored = False
        self.nframes = 0
        self.nmessages = 0
        self.acks = [0, 0]
        #: Overlap conflicts found before the connection had a conn_id.
        self.early_conflicts: list[tuple[int, int, int, int, int]] = []
        #: The TLS layer, when the connection starts with a ClientHello.
        self.tls: TLSSession | None = None
        #: The direction that sent the ClientHello.
        self.tls_client = 0
        #: Findings made before the connection had a conn_id (TLS, proxy).
        self.early_findings: list[tuple[int, int, int, str, str, int]] = []
        #: The WebSocket streams, when the connection speaks HTTP/2 (RFC 8441).
        self.h2: H2Streams | None = None
        #: For a WebSocket stream of an HTTP/2 connection: that connection,
        #: and the stream's id.
        self.carrier: Session | None = None
        self.h2_stream: int | None = None
        #: The stream was reset (RST_STREAM): no more of its DATA is read.
        self.h2_reset = False
        #: How each direction of the stream ended: END_STREAM, RST_STREAM, or the
        #: carrying connection's FIN or RST.
        self.h2_ends: dict[str, str] = {}
        max_pending = self.options.max_pending
        self.dirs = (Direction(self, 0, self.collector, max_pending),
                     Direction(self, 1, self.collector, max_pending))
        self.reasm = (self.dirs[0].reasm, self.dirs[1].reasm)
        self.upgrade = Upgrade(self, self.dirs, shared)

    @property
    def established(self) -> bool:
        """Frames are parsed (after a 101, or mid-stream)."""
        return self.upgrade.established

    # -- what the pieces ask of the connection -------------------------------------

    def report(self, ts: int, direction: str | None, frame_index: int | None, code: str,
               detail: str, packet: int | None, offset: int | None = None) -> None:
        self.collector.anomaly(self.conn_id, ts, direction, frame_index, code, detail,
                               packet, offset)

    def become_websocket(self, client: int) -> None:
        """Give the connection a conn_id, name its directions, and report what
        was found before."""
        self.client = client
        c = self.collector
        self.conn_id = len(c.sessions)
        c.sessions.append(self)
        for d in self.dirs:
            d.named(d.d == client, self.conn_id)
        for conflict in self.early_conflicts:
            self._report_conflict(*conflict)
        self.early_conflicts = []
        for ts, side, offset, code, detail, packet in self.early_findings:
            self.report(ts, self.dirs[side].name, None, code, detail, packet, offset)
        self.early_findings = []
        if self.upgrade.request_gap is not None:
            ts, offset, size, packet = self.upgrade.request_gap
            self.report(ts, C2S, None, "tcp_gap",
                        f"{size} bytes missing at stream offset {offset}", packet, offset)

    def report_early(self, ts: int, d: int, offset: int, code: str, detail: str,
                     packet: int) -> None:
        """A finding of direction ``d`` that may come before the connection is
        WebSocket (a proxy's handshake): reported once it is, if it ever is."""
        if self.conn_id is not None:
            self.report(ts, self.dirs[d].name or None, None, code, detail, packet, offset)
        else:
            self.early_findings.append((ts, d, offset, code, detail, packet))

    def conflict(self, ts: int, d: int, offset: int, size: int, packet: int) -> None:
        """A retransmitted or overlapping copy whose bytes differ (first copy kept):
        reported once the connection turns out to be WebSocket."""
        if self.conn_id is not None:
            self._report_conflict(ts, d, offset, size, packet)
        else:
            self.early_conflicts.append((ts, d, offset, size, packet))

    def _report_conflict(self, ts: int, d: int, offset: int, size: int, packet: int) -> None:
        self.report(ts, self.dirs[d].name, None, "tcp_overlap_conflict",
                    f"{size} bytes at stream offset {offset} differ from the first copy "
                    "(first copy kept)", packet, offset)

    def head_lost(self, dr: Direction, offset: int, size: int, ts: int, packet: int) -> None:
        """Bytes of ``dr`` were lost before its frames: the opening's to judge
        (or, over HTTP/2, the streams')."""
        if self.h2 is not None:
            self.h2.lose(dr.d, size, ts, packet)
        else:
            self.upgrade.head_lost(dr, offset, size, ts, packet)

    def saw(self, packet: int, ts: int) -> None:
        """Packet number ``packet``, at ``ts``, is the connection's latest."""
        self.ts_end = ts
        self.last_packet = packet

    def acked(self, d: int, ack: int) -> None:
        """Direction ``d`` acknowledged the other's bytes up to ``ack``."""
        self.acks[d] = ack

    def count_frame(self) -> int:
        """A frame was made: its frame_index in the connection."""
        index = self.nframes
        self.nframes = index + 1
        return index

    def count_frames(self, n: int) -> int:
        """``n`` frames were made (a run's): the frame_index of the first."""
        index = self.nframes
        self.nframes = index + n
        return index

    def count_message(self) -> None:
        """A message was made."""
        self.nmessages += 1

    def count_messages(self, n: int) -> None:
        """``n`` messages were made (a run's)."""
        self.nmessages += n

    def leave(self) -> None:
        """Another shard's connection: its packets are passed over from the start."""
        self.ignored = True

    def give_up(self) -> None:
        """Not WebSocket (or no longer): stop following the connection."""
        self.ignored = True
        for d in self.dirs:
            d.ignore(drop=True)

    # -- TLS -----------------------------------------------------------------------

    def start_tls(self, client: int) -> None:
        """The connection starts with a ClientHello from ``client``: its bytes go
        through the TLS layer, and what it decrypts goes where the bytes went."""
        self.tls_client = client
        self.tls = TLSSession(self.shared.keylog, self.options.tls_hold,
                              self.shared.tls_budget)
        for d in self.dirs:
            d.start_tls()

    def tls_events(self, events: list[Plaintext | Lost | TLSAnomaly], ts: int,
                   packet: int) -> None:
        """Plaintext and holes to their direction, findings reported."""
        for event in events:
            dr = self.dirs[event.direction]
            if isinstance(event, Plaintext):
                # (the events after it are given the plaintext's segment)
                ts, packet = dr.receive_plain(event.data, event.offset, ts, packet)
            elif isinstance(event, Lost):
                plain = event.plain
                size = event.size if plain is None else plain
                if self.h2 is not None:
                    self.h2.lose(dr.d, size, ts, packet)
                else:
                    dr.lose_plain(size, plain is not None, ts, packet)
            else:
                self.report_early(ts, dr.d, event.offset, event.code, event.detail, packet)
                if event.code == "tls_alpn_h2" and self.conn_id is None and self.h2 is None:
                    # Its WebSockets, if any, ride HTTP/2 streams: read once decrypted
                    # (without keys, the connection gets a row of its own at the end).
                    self.start_h2(self.tls_client)

    def took_tls_run(self, d: int, plain: int, marks: list[tuple[int, int, int]]) -> None:
        """The block path gave direction ``d``'s parser ``plain`` decrypted
        bytes; ``marks`` (TCP offset, packet, ts) are the segments of the
        record the TLS layer holds a part of, if any."""
        self.dirs[d].took_tls_run(plain, marks)

    # -- HTTP/2 (RFC 8441) ----------------------------------------------------------

    def start_h2(self, client: int) -> None:
        """The connection speaks HTTP/2 (``client``: its client's direction): its
        WebSockets are streams, each a connection of its own (:meth:`open_stream`)."""
        self.h2 = H2Streams(self, client)
        self.upgrade.hand_to_h2(self.h2.receive)

    def open_stream(self, stream: int, head: HttpHead, allowed: bool, ts: int,
                    packet: int) -> Session:
        """A connection for WebSocket stream ``stream`` of this HTTP/2 connection,
        opened by the extended CONNECT ``head`` (``allowed``: after the server's
        SETTINGS_ENABLE_CONNECT_PROTOCOL): its direction 0 is the client's."""
        assert self.h2 is not None
        c = self.h2.client
        child = Session(self.shared, self.tcp_stream, self.addrs[c], self.addrs[1 - c],
                        self.ports[c], self.ports[1 - c], ts)
        child.carrier, child.h2_stream = self, stream
        child.saw(packet, ts)
        for dr in child.dirs:  # (its offsets count from the stream's first byte)
            dr.reasm.receive_segment(SEQ_MASK, TCP_SYN, b"", 0, ts, packet)
        child.upgrade.h2_opened(head, ts, packet)
        if not allowed:
            child.report(ts, C2S, None, "h2_connect_not_enabled",
                         "extended CONNECT (:protocol websocket) before the server sent "
                         "SETTINGS_ENABLE_CONNECT_PROTOCOL = 1", packet)
        return child

    def stream_answer(self, head: HttpHead, end_stream: bool, ts: int, packet: int) -> None:
        """(A stream's connection) the server's answer to its extended CONNECT."""
        self.saw(packet, ts)
        self.upgrade.h2_answered(head, ts, packet)
        if end_stream:
            self.stream_data(False, b"", True, ts, packet)

    def stream_data(self, client: bool, data: bytes, end_stream: bool, ts: int,
                    packet: int) -> None:
        """(A stream's connection) DATA from the client or the server, in order;
        END_STREAM is the direction's FIN."""
        self.saw(packet, ts)
        if not self.h2_reset and self._feed(client, data, end_stream, ts, packet) and end_stream:
            self.h2_ends.setdefault(C2S if client else S2C, "END_STREAM")

    def _feed(self, client: bool, data: bytes, fin: bool, ts: int, packet: int) -> bool:
        """(A stream's connection) the client's or the server's next bytes, and
        its end (``fin``), where that direction still takes them (it has not
        ended): whether it did."""
        r = self.dirs[0 if client else 1].reasm
        if r.fin_offset is not None or r.next_seq is None:
            return False
        r.receive_segment(r.next_seq, TCP_FIN if fin else 0, data, 0, ts, packet)
        return True

    def stream_carrier_end(self, client: bool, reset: bool, ts: int, packet: int) -> None:
        """(A stream's connection) the carrying connection's FIN (or RST) in the
        client's or the server's direction: that direction of the stream ends
        with it, if it had not."""
        name = C2S if client else S2C
        if name in self.h2_ends or self.h2_reset:
            return
        self.h2_ends[name] = "TCP RST" if reset else "TCP FIN"
        if reset:
            self.dirs[0 if client else 1].stream_reset(ts)
        else:
            self._feed(client, b"", True, ts, packet)

    def stream_reset(self, client: bool, code: int, ts: int, packet: int) -> None:
        """(A stream's connection) RST_STREAM: the stream ends both ways, reset by
        the sender as a TCP RST resets a connection."""
        self.saw(packet, ts)
        name = C2S if client else S2C
        self.report(ts, name, None, "h2_stream_reset",
                    f"RST_STREAM {_h2_error(code)} from the {'client' if client else 'server'}",
                    packet)
        if not self.h2_reset:
            self.h2_reset = True
            self.h2_ends.setdefault(name, "RST_STREAM")
            self.dirs[0 if client else 1].stream_reset(ts)

    def stream_problem(self, client: bool, code: str, detail: str, ts: int,
                       packet: int) -> None:
        """(A stream's connection) its HTTP/2 connection could not be read further
        in one direction."""
        self.report(ts, C2S if client else S2C, None, code, f"HTTP/2 connection: {detail}",
                    packet)

    # -- blocks and end ------------------------------------------------------------

    def bulk_ready(self) -> bool:
        """Both directions are between WebSocket frames and messages with no byte
        held back (and, over TLS, between records under known keys): the block
        path (:mod:`wspcap.engine.runs`) may take over."""
        if self.ignored or self.conn_id is None:
            return False
        return self.dirs[0].run_ready() and self.dirs[1].run_ready()

    def keyless_ready(self) -> bool:
        """Over TLS, both directions between records whose keys are missing
        (and nothing decrypted): the block path may pass over them."""
        return (not self.ignored and self.tls is not None and self.dirs[0].keyless_ready()
                and self.dirs[1].keyless_ready())

    def ended_quietly(self) -> bool:
        """Nothing more can come of this connection: both FINs were delivered,
        no byte is held out of order and no frame or message is half-parsed."""
        return self.dirs[0].ended_quietly() and self.dirs[1].ended_quietly()

    def finish(self) -> None:
        """End of input: flush reassembly, then TLS, the opening and the parsers."""
        ts, packet = self.ts_end, self.last_packet
        for d in self.dirs:
            d.flush(self.acks[1 - d.d], ts, packet)
        if self.tls is not None:
            for d in self.dirs:
                self.tls_events(self.tls.receive_eof(d.d), ts, packet)
            if self.conn_id is None and not self.ignored and (
                    not self.tls.info.decrypted
                    or (self.h2 is not None and any(self.h2.given) and not any(self.h2.read))):
                # Not decrypted (or HTTP/2 whose data records all stayed shut): it
                # may carry WebSockets, so it gets a row of its own.
                self.become_websocket(self.tls_client)
        self.upgrade.finish()
        for d in self.dirs:
            d.receive_eof(ts, packet)
        if self.h2 is not None:
            self.h2.finish([(d.fin_seen, d.rst_seen, d.end_ts) for d in self.dirs],
                           self.last_packet)
        if self.conn_id is not None and self.syn_missing:
            self.report(self.ts_start, None, None, "tcp_midstream",
                        "the connection's SYN was not captured", None)

    # -- what the tables and the rules read ----------------------------------------

    @property
    def syn_missing(self) -> bool:
        """The start of the connection (a SYN) was not captured."""
        return self.reasm[0].midstream or self.reasm[1].midstream

    def endpoints(self) -> tuple[str, int, str, int]:
        """``(client_ip, client_port, server_ip, server_port)``."""
        c = self.client if self.client is not None else 0
        return (_ip_text(self.addrs[c]), self.ports[c],
                _ip_text(self.addrs[1 - c]), self.ports[1 - c])

    def _sides(self) -> tuple[Direction, Direction]:
        """The client's direction and the server's (0 and 1 while unknown)."""
        c = self.client if self.client is not None else 0
        return self.dirs[c], self.dirs[1 - c]

    def facts(self) -> ConnFacts:
        """What the cross-record rules read of this connection (read-only)."""
        assert self.conn_id is not None
        cd, sd = self._sides()
        up = self.upgrade
        client_ip, _, server_ip, server_port = self.endpoints()
        return ConnFacts(
            conn_id=self.conn_id, handshake=up.handshake, established=up.established,
            midstream=up.midstream, tls=(self.carrier or self).tls is not None,
            client_ip=client_ip,
            server_ip=server_ip, server_port=server_port, ts_start=self.ts_start,
            ts_end=self.ts_end, ts_request=up.ts_request, request_packet=up.request_packet,
            ts_response=up.ts_response, response_packet=up.response_packet,
            request_first_ts=up.first_ts(cd.d),
            fin={C2S: cd.fin_seen, S2C: sd.fin_seen},
            rst={C2S: cd.reset_first, S2C: sd.reset_first},
            end_ts={C2S: cd.end_ts, S2C: sd.end_ts},
            gap_bytes={C2S: cd.reasm.gap_bytes, S2C: sd.reasm.gap_bytes},
            deflate=up.deflate, h2=self.h2_stream is not None, h2_ends=self.h2_ends)

    def record(self) -> dict[str, Any]:
        """The connection's row for the connections table."""
        cd, sd = self._sides()
        client_ip, client_port, server_ip, server_port = self.endpoints()
        return {
            "conn_id": self.conn_id,
            "tcp_stream": self.tcp_stream,
            "client_ip": client_ip,
            "client_port": client_port,
            "server_ip": server_ip,
            "server_port": server_port,
            "ts_start": self.ts_start,
            "ts_end": self.ts_end,
            "midstream": self.syn_missing,
            **self.upgrade.columns(),
            "close_code_c2s": cd.close_code,
            "close_reason_c2s": cd.close_reason,
            "close_code_s2c": sd.close_code,
            "close_reason_s2c": sd.close_reason,
            "frames": self.nframes,
            "frames_c2s": cd.frames,
            "frames_s2c": sd.frames,
            "messages": self.nmessages,
            "bytes_c2s": cd.reasm.delivered,
            "bytes_s2c": sd.reasm.delivered,
            "gap_bytes": self.reasm[0].gap_bytes + self.reasm[1].gap_bytes,
            "fin_c2s": cd.fin_seen,
            "fin_s2c": sd.fin_seen,
            "rst": cd.rst_seen or sd.rst_seen,
            "h2_stream": self.h2_stream,
            **(self.carrier or self).tls_record(),
        }

    def tls_record(self) -> dict[str, Any]:
        """The connection's TLS columns (from the clear hellos, with or without keys)."""
        if self.tls is None:
            return {"tls": False, "tls_version": None, "tls_cipher": None, "sni": None,
                    "alpn": None, "decrypted": False}
        info = self.tls.info
        return {"tls": True, "tls_version": info.version_name, "tls_cipher": info.suite_name,
                "sni": info.sni, "alpn": info.alpn, "decrypted": info.decrypted}


#: HTTP/2 error codes (RFC 9113 section 7).
_H2_ERRORS = ("NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
              "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM",
              "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
              "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED")


def _h2_error(code: int) -> str:
    """An HTTP/2 error code's name (and number)."""
    name = _H2_ERRORS[code] if 0 <= code < len(_H2_ERRORS) else "unknown"
    return f"{name} ({code})"


@functools.lru_cache(maxsize=1 << 12)
def _ip_text(addr: bytes) -> str:
    """An address (4 or 16 bytes) as text. The connections of a capture share
    a few addresses, and each is written as text for the rules' facts and the
    connections table: 2,000 connections took 26 ms of ``ipaddress`` calls."""
    return str(ipaddress.ip_address(addr))
