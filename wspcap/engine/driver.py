"""The driver: the one module that connects the layers.

capture records -> :class:`~wspcap.decode.PacketDecoder` -> per-connection
:class:`~wspcap.tcp.StreamReassembler` (one a direction) -> HTTP upgrade
(:class:`~wspcap.http.HeadParser`) -> :class:`~wspcap.ws.FrameParser` ->
:class:`~wspcap.ws.MessageAssembler` -> a :class:`Collector` of records, from
which :mod:`wspcap.tables.build` builds DataFrames.

Everything here is fed packet by packet (:meth:`Pipeline.receive_packet`), so
files, live capture and tests all drive the same engine; nothing here reads a
file or a socket.

Design note
-----------
Connections are found by a dict keyed on the bytes ``src + dst + ports`` of
each direction. A connection is WebSocket when its client sends an HTTP
request with ``Upgrade: websocket`` (on any port), or, when the start of the
connection was not captured, when its bytes frame as WebSocket frames (see
:mod:`wspcap.engine.upgrade`). Every other TCP connection is ignored after
its first payload bytes: from then on its packets cost a decode and a dict
lookup. Each direction is told by its own first bytes, in TCP sequence
order, not by what the capture shows first: a request whose first segment is
``G`` waits for its next bytes, and an answer captured before its request
(two taps merged, clock skew) waits for the request.

Where a rule is broken the layers report an anomaly code (see
:mod:`wspcap.rules.registry`) and carry on; exceptions are never used for
protocol violations.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, cast

from wspcap.decode import FRAGMENT, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, PacketDecoder, Segment
from wspcap.engine.collector import Collector, Shared
from wspcap.engine.options import Options, snap_detail
from wspcap.engine.runs import receive_batch
from wspcap.engine.session import Session
from wspcap.rules.checks import check_connections, run_checks
from wspcap.rules.thresholds import DEFAULT_THRESHOLDS
from wspcap.timestamps import TS_MAX, TS_MIN, TS_NULL
from wspcap.tls import KeyLog
from wspcap.tls.session import HoldBudget
from wspcap.ws.deflate import InflateBudget
from wspcap.ws.records import (
    Packed,
)

if TYPE_CHECKING:
    from wspcap.sources.files import Batch

__all__ = ["Pipeline"]

class Pipeline:
    """Feed packets in, get records out.

    Sans-I/O: performs no I/O. Call :meth:`receive_packet` for each packet in
    capture order, then :meth:`finish` once.

    Args:
        options: engine limits (defaults if None).
    """

    def __init__(self, options: Options | None = None) -> None:
        self.options = options or Options()
        #: The TLS secrets every connection decrypts with (it may grow: :meth:`receive_secrets`).
        self.keylog = self.options.keylog if self.options.keylog is not None else KeyLog()
        self.collector = Collector()
        self.decoder = PacketDecoder()
        self.flows: dict[bytes, tuple[Session, int]] = {}
        self.sessions_seen = 0
        self.packets = 0
        self.snap_cut = 0
        self.last_ts = 0
        #: Packets whose timestamp int64 nanoseconds cannot hold, and the first.
        self.bad_ts = 0
        self.first_bad_ts = 0
        self._all: list[Session] = []
        #: WebSocket sessions whose cross-record checks have not run yet.
        self.unchecked: list[Session] = []
        self._known = 0  # how many of the collector's sessions are in unchecked
        #: Frames that :meth:`receive_batch` made on its block path.
        self.block_frames = 0
        th = self.options.thresholds or DEFAULT_THRESHOLDS
        #: Inflated bytes the capture's compressed messages may still make
        #: (shared by every connection's inflaters); a caller that writes
        #: messages out and lets go of their payloads gives their bytes back
        #: (see :meth:`release_inflated`).
        self.inflate_budget = InflateBudget(th.inflate_budget_capture, "capture")
        self.shared = Shared(self.options, self.collector, self.keylog, self.inflate_budget,
                             HoldBudget(self.options.tls_hold_total))

    def _new_websockets(self) -> None:
        """The sessions that became WebSocket since last asked join :attr:`unchecked`."""
        sessions = self.collector.sessions
        self.unchecked += cast("list[Session]", sessions[self._known:])
        self._known = len(sessions)

    def receive_secrets(self, text: str | bytes) -> None:
        """More TLS key log lines (a key log being written, or a pcapng's secrets
        block): connections holding records for want of keys open them now."""
        if self.keylog.feed(text, final=True):
            for session in self._all:
                if session.tls is not None and not session.ignored:
                    session.tls_events(session.tls.keys_added(), self.last_ts, self.packets)

    def receive_packet(self, number: int, ts: int, linktype: int, data: bytes) -> None:
        """Take one captured packet (``number`` is its 1-based position).

        A ``ts`` outside int64 nanoseconds (or :data:`~wspcap.timestamps.TS_NULL`)
        is taken as :data:`~wspcap.timestamps.TS_NULL` and flagged.
        """
        if not TS_MIN <= ts <= TS_MAX:
            ts = self._bad_stamps(number, 1)
        self.receive_segment(number, ts, self.decoder.decode(linktype, data))

    def receive_batch(self, batch: Batch) -> None:
        """Take a block of packets in capture order, as a file reader gives them.

        The same records as :meth:`receive_packet` for each packet in turn
        (see :mod:`wspcap.engine.runs`), at a fraction of the cost for the frames
        of established WebSocket connections.
        """
        stamps = batch.stamps
        if TS_NULL in stamps:  # the file's reader gives these for what int64 cannot hold
            self._bad_stamps(batch.first + stamps.index(TS_NULL), stamps.count(TS_NULL))
        self.block_frames += receive_batch(self, batch)

    def block_done(self, last: int, ts: int) -> None:
        """The block path took every packet of a block, the last of them
        number ``last`` at ``ts``."""
        self.packets = last
        self.last_ts = ts

    def _bad_stamps(self, first: int, count: int) -> int:
        """Count ``count`` packets without a valid timestamp, from packet ``first``."""
        if not self.bad_ts:
            self.first_bad_ts = first
        self.bad_ts += count
        return TS_NULL

    def receive_segment(self, number: int, ts: int, seg: Segment | str | None) -> None:
        """Take one packet that :class:`~wspcap.decode.PacketDecoder` decoded."""
        self.packets = number
        self.last_ts = ts
        if seg is None:
            return
        if seg is FRAGMENT:
            self.collector.anomaly(None, ts, None, None, "capture_ip_fragment",
                                   f"packet {number} is an IP fragment", number)
            return
        # mypy does not narrow on `seg is FRAGMENT`; the local annotations (never
        # evaluated at run time) give the Segment field types without adding a call.
        key: bytes
        src: bytes
        dst: bytes
        sport: int
        dport: int
        seq: int
        ack: int
        flags: int
        payload: bytes
        missing: int
        key, src, dst, sport, dport, seq, ack, flags, payload, missing = (
            seg)  # type: ignore[str-unpack, assignment]
        entry = self.flows.get(key)
        if entry is None or (flags & TCP_SYN and not flags & TCP_ACK
                             and entry[0].reasm[entry[1]].syn_seen
                             and (entry[0].reasm[entry[1]].next_seq is None or
                                  _new_isn(entry[0], entry[1], seq))):
            entry = self._new_session(key, src, dst, sport, dport, ts, entry)
        session, d = entry
        if session.ignored:
            return
        session.saw(number, ts)
        if missing:
            self.snap_cut += 1
        if payload or missing or flags & (TCP_SYN | TCP_FIN | TCP_RST):
            session.reasm[d].receive_segment(seq, flags, payload, missing, ts, number)
        if flags & TCP_ACK:
            session.acked(d, ack)
            other = session.reasm[1 - d]
            if other._pending:
                other.receive_ack(ack, ts, number)

    def _new_session(self, key: bytes, src: bytes, dst: bytes, sport: int, dport: int,
                     ts: int, old: tuple[Session, int] | None) -> tuple[Session, int]:
        if old is not None:  # the 4-tuple is reused by a new connection
            old[0].finish()
        session = Session(self.shared, self.sessions_seen, src, dst, sport, dport, ts)
        self.sessions_seen += 1
        self._all.append(session)
        entry = (session, 0)
        self.flows[key] = entry
        rkey = dst + src + key[-2:] + key[-4:-2]
        self.flows[rkey] = (session, 1)
        shard = self.options.shard
        if shard is not None and zlib.crc32(min(key, rkey)) % shard[1] != shard[0]:
            # Another shard's connection (the hash is of the canonical 4-tuple, so
            # both directions agree): from now on its packets cost a decode and a lookup.
            session.leave()
        return entry

    def release_inflated(self, size: int) -> None:
        """``size`` inflated bytes were written out and are no longer held: they
        no longer count against the capture's inflation budget (the
        connections' budgets count every byte, wherever it went)."""
        self.inflate_budget.release(size)

    def check_ended(self) -> None:
        """Run the cross-record checks of the connections that have ended, and let
        go of their records.

        For a caller that writes the tables while it reads (see
        :class:`wspcap.tables.export.TableStream`), right after
        :meth:`Collector.pack`: every record is packed then. A connection
        that has ended quietly (:meth:`Session.ended_quietly`) cannot get
        another frame, message or parser anomaly that the checks read, so its
        findings are those the end of input would give.
        """
        self._need_packed("check_ended")
        self._new_websockets()
        ended: list[Session] = []
        still: list[Session] = []
        for s in self.unchecked:
            (ended if s.ended_quietly() else still).append(s)
        if not ended:
            return
        self.unchecked = still
        ids = {s.conn_id for s in ended if s.conn_id is not None}  # (all have one)
        c = self.collector
        self._check_group(ended, c.packed_frames.take(ids), c.packed_messages.take(ids))

    def _need_packed(self, name: str) -> None:
        if self.collector.unpacked:
            raise ValueError(f"{name}() needs every record packed (Collector.pack)")

    def _check_group(self, group: list[Session], frames: Packed, messages: Packed) -> None:
        """The per-connection checks of ``group``, over its packed records."""
        # (the checks pick their connections' own anomalies)
        part = Collector.part(frames, messages, self.collector.anomalies)
        self.collector.found(check_connections(part, [s.facts() for s in group],
                                               self.options.thresholds))

    def check_packed(self, records: int = 1 << 16) -> None:
        """Run the cross-record checks of every connection not checked yet, a
        group of connections at a time, and let go of the packed records.

        For a caller that packed every record (see :meth:`check_ended`) after
        :meth:`finish` with ``check=False``: the checks then hold the arrays
        they build (keys, positions, the columns they compare) for about
        ``records`` frames and messages at once rather than for the whole
        capture. (One group for all of chat's 500,000 records would save a
        quarter of the checks' time, 17 ms, but raise the peak memory of
        ``analyze -o`` by 10 MB.) Ends with the capture-wide checks, as
        :meth:`finish` does.
        """
        self._need_packed("check_packed")
        self._new_websockets()
        c = self.collector
        groups: list[list[Session]] = [[]]
        size = 0
        for s in self.unchecked:
            if size >= records:
                groups.append([])
                size = 0
            groups[-1].append(s)
            size += s.nframes + s.nmessages
        ids = [{s.conn_id for s in group if s.conn_id is not None} for group in groups]
        # (split leaves the collector's packed records empty)
        parts = zip(groups, c.packed_frames.split(ids), c.packed_messages.split(ids),
                    strict=True)
        self.unchecked = []
        for group, frames, messages in parts:
            if group:
                self._check_group(group, frames, messages)
        c.concluded(run_checks(c, [], [s.facts() for s in c.sessions], c.findings,
                               self.options.thresholds))

    def finish(self, truncated: str | None = None, check: bool = True,
               corrupt: bool = False) -> Collector:
        """End of input: flush every connection and return the records.

        ``truncated`` says why the input stopped early (``corrupt``: the file
        is damaged there, rather than cut short). With ``check=False`` the
        cross-record checks are left to :meth:`check_packed`.
        """
        for session in self._all:
            if not session.ignored or session.conn_id is not None:
                session.finish()
        c = self.collector
        if truncated:
            c.anomaly(None, self.last_ts, None, None,
                      "capture_corrupt" if corrupt else "capture_truncated", truncated, None)
        if self.bad_ts:
            c.anomaly(None, TS_NULL, None, None, "capture_timestamp_invalid",
                      f"{self.bad_ts} packets have a timestamp outside int64 nanoseconds "
                      f"(years 1677 to 2262); their ts is null (first: packet "
                      f"{self.first_bad_ts})", self.first_bad_ts)
        if self.snap_cut:
            c.anomaly(None, self.last_ts, None, None, "capture_truncated",
                      snap_detail(self.snap_cut), None)
        self._new_websockets()
        if check:  # the cross-record rules, once per connection
            c.concluded(run_checks(c, [s.facts() for s in self.unchecked],
                                   [s.facts() for s in c.sessions], c.findings,
                                   self.options.thresholds))
            self.unchecked = []
        self.flows = {}
        self._all = []
        return c


def _new_isn(session: Session, d: int, seq: int) -> bool:
    """A SYN whose sequence number is not the one this connection started with."""
    r = session.reasm[d]
    return r.offset > 0 or r.fin_done or r.rst_seen or session.reasm[1 - d].fin_done
