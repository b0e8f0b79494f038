"""The driver's block path: a block of packets at a time, for file readers.

Design note
-----------
:meth:`Pipeline.receive_packet <wspcap.engine.Pipeline.receive_packet>`
costs about 10 us a small WebSocket frame in CPython: a decode, a dict lookup,
the reassembler, the frame parser, the message assembler and two records, one
packet and one frame at a time. Most packets of a real capture are the
steady state of established connections: in-order segments carrying frames.
:func:`receive_batch` takes a block of packets (a :class:`wspcap.sources.Batch`)
and does that steady state a connection at a time: headers decoded by NumPy
gathers (:func:`wspcap.decode.batch.decode_batch`), frame headers read with
NumPy where each segment of a direction is one whole frame (as senders write
most messages; :func:`_whole_frames`), otherwise the segments joined into one
buffer and frame boundaries walked with a lean loop
(:meth:`FrameParser.scan <wspcap.ws.FrameParser.scan>`), payloads taken out
and client ones unmasked in one pass (:func:`wspcap.ws.mask.frame_payloads`),
and the frames kept as columns (NumPy arrays, one per field; only payloads
are Python objects), as are the messages of plain frames (final, no RSV
bit, masked as they should be, data or ping or pong, text that is UTF-8).
The columns are made once per block, for all its connections together
(:func:`_emit`): made a connection at a time, their few dozen array
operations cost more than the frames of a short run.
Every other frame goes to the direction's own
:class:`~wspcap.ws.MessageAssembler`, one by one, so fragments, close codes,
inflation and their anomalies are the assembler's as always. A block's
records reach the :class:`~wspcap.engine.Collector` as one column chunk,
which the tables and the rules read without a tuple per record: in CPython
making those tuples, and taking them apart again for the tables, cost more
than parsing.

Everything else goes through the per-packet path, unchanged, so the records
are the same as feeding the packets one by one (``tests/test_blocks.py``
compares the two on every sample and peer capture, and on generated
conversations cut into blocks at random):

- A connection takes the block path only while it is :meth:`bulk_ready
  <wspcap.engine.Session.bulk_ready>` (both directions between frames and
  messages, nothing held out of order) and only for its packets before the
  first one that is not plain: not simply decoded, a SYN, FIN or RST, a
  segment out of order or retransmitted, or the start of a frame that breaks
  a framing rule (a non-minimal length, a payload over ``max_payload``). That
  packet goes the per-packet way, with the parser and reassembler left as
  the per-packet path would have left them; then, where the connection is
  ready again, its following packets take the block path again (up to
  RESUMES times a block: a capture's retransmissions would otherwise send
  the rest of each block they fall in the slow way), the rest per packet.
  The packets of a connection are always taken in their order; those of
  different connections may not be, which changes nothing, as no packet of
  an established connection bears on another (a SYN, which may open one,
  stops the resuming).
- Connections are independent, so a connection's block part can run before
  the other connections' per-packet parts. Record order is kept by merging:
  each frame, message and anomaly is placed by the packet whose processing
  emitted it, as with the per-packet path (a frame comes out with the packet
  that completes it).
- Packets of connections already ignored (not WebSocket, or another shard's)
  are passed over, as the per-packet path does after its lookup.
- The block path has a set-up cost per connection and block (a few dozen
  array operations), so a connection with fewer than MIN_PACKETS plain
  packets in the block goes the per-packet way.
- A connection that is not ready at the start of a block (new, or in its
  handshake) would send all its packets in that block the per-packet way,
  which costs most where blocks are large and connections few. So a block
  where such connections have many packets is cut in two after their first
  few (:func:`_handoff`), and the parts are taken in turn: the first mostly
  per packet, the second by the block path. Records do not depend on where
  blocks are cut, so this changes only the cost.

Decrypted wss:// connections take the same path: their TLS layer reads the
records whole in each direction's segments and the frames are found in the
records' plaintext. The records of all the block's wss directions are read
in one call (:func:`_tls_scans`, :func:`wspcap.tls.runs.scan_runs`):
made a direction at a time, the TLS layer's NumPy steps cost more than the
records of a short run (chat over TLS 1.3: 1,920 runs of 128 records). So a
block's connections are first planned (:func:`_in_order`: in-order segments
and the cut they give), then read, then framed one by one; each direction is
read up to the cut known before either direction's frames, and its commit
takes only what comes before the final cut.

A TLS connection whose keys are missing (most wss:// captures: keys are
rarely at hand) is read by the block path too, once both directions are
past their handshake and the missing keys are said (:meth:`Session.keyless_ready
<wspcap.engine.Session.keyless_ready>`): packet by packet each record only
gives a :class:`~wspcap.tls.Lost` event that a direction with no plaintext
ignores, so :func:`_keyless` passes the records over a run at a time
(:meth:`TLSSession.pass_scan <wspcap.tls.TLSSession.pass_scan>`) and leaves
the reassembler and the TLS layer where the per-packet path would. The chat
benchmark over TLS 1.3 without its key log read in 2.3 s packet by packet,
0.3 s so (with its keys: 0.9 s).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

from wspcap.decode import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, PacketDecoder, Segment
from wspcap.decode.batch import DecodedBatch, decode_batch
from wspcap.engine.collector import Collector
from wspcap.engine.options import Options
from wspcap.engine.session import Session
from wspcap.tcp.reassembly import HISTORY
from wspcap.tls.runs import KeylessRun, TLSRun, scan_runs
from wspcap.tls.session import TLSSession
from wspcap.ws.frames import Frame
from wspcap.ws.messages import Message, MessageAssembler, plain_frames, plain_messages
from wspcap.ws.records import (
    FRAME_PACKING,
    MESSAGE_PACKING,
    Columns,
    concat_columns,
    take_columns,
    to_columns,
)
from wspcap.ws.runs import NEVER, FrameRun, frame_columns, per_frame

if TYPE_CHECKING:
    from wspcap.rules.registry import Anomaly
    from wspcap.sources.files import Batch

__all__ = ["Pipeline", "receive_batch"]


class Pipeline(Protocol):
    """What the block path uses of the driver
    (:class:`wspcap.engine.driver.Pipeline`)."""

    options: Options
    collector: Collector
    decoder: PacketDecoder
    flows: dict[bytes, tuple[Session, int]]

    def block_done(self, last: int, ts: int) -> None: ...

    def receive_segment(self, number: int, ts: int, seg: Segment | str | None) -> None: ...

# tuple.__new__ bound to the class (NamedTuple._make checks the length, in Python).
_make_frame = partial(tuple.__new__, Frame)
_ENDS = TCP_FIN | TCP_SYN | TCP_RST
#: A connection takes the block path for a run of at least this many plain
#: packets: below, the per-packet path costs less than the array set-up.
MIN_PACKETS = 64
#: A flow waiting for the block path (new, or in its handshake) is taken to be
#: ready after about this many of its packets (see _handoff).
HANDOFF = 8
#: How deep a block may be cut in two for flows waiting at its start
#: (at most 2 ** SPLITS parts).
SPLITS = 4
#: How many times in a block a connection stopped by a packet the block path
#: does not take (a retransmission, say) may take the block path again after it.
RESUMES = 16
_EMPTY = np.zeros(0, np.int64)


class _Records:
    """Records made by the block path: frames and messages as column parts
    with their keys, anomalies as tuples; each record with the batch index of
    the packet whose processing emitted it."""

    def __init__(self) -> None:
        self.frames: list[Columns] = []
        self.frame_keys: list[np.ndarray] = []
        self.frame_at: list[np.ndarray] = []
        self.nframes = 0
        self.messages: list[Columns] = []
        self.message_keys: list[np.ndarray] = []
        self.message_at: list[np.ndarray] = []
        # What the assemblers emit, as the per-packet path would (see _session).
        self.tuples: list[Message] = []
        self.tuple_keys: list[int] = []
        self.anomalies: list[Anomaly] = []
        self.anomaly_at: list[int] = []
        #: the directions whose frames the block path keeps, in block order
        self.sides: list[_Side] = []


def receive_batch(p: Pipeline, batch: Batch) -> int:
    """Feed ``batch`` to ``p``: the same as ``p.receive_packet`` for each of its
    packets in turn. Returns how many frames the block path made (the others
    the per-packet path did)."""
    first, linktype, buf, starts, caplens, stamps, _wirelens = batch
    dec = decode_batch(linktype, buf, starts, caplens)
    if dec is None:
        decode = p.decoder.decode  # (receive_packet would count bad stamps again)
        for i in range(len(starts)):
            p.receive_segment(first + i, stamps[i], decode(linktype, buf, starts[i], caplens[i]))
        return 0
    return _receive(p, batch, dec, SPLITS)


def _receive(p: Pipeline, batch: Batch, dec: DecodedBatch, splits: int) -> int:
    """The block ``batch``, decoded as ``dec``, cut in two (see :func:`_handoff`)
    up to ``splits`` times deep; returns the frames the block path made."""
    first, linktype, buf, starts, caplens, stamps, _wirelens = batch
    n = len(starts)
    flows = p.flows
    sessions, where, flow_sess, flow_dir = _connections(flows, dec)
    ready = np.array([s.bulk_ready() or s.keyless_ready() for s in sessions] + [False])
    dropping = np.array([s.ignored for s in sessions] + [False])
    sess = flow_sess[dec.flow]
    if splits and n > HANDOFF + MIN_PACKETS:
        cut = _handoff(dec.flow, ~(ready | dropping)[sess])
        if cut:
            return sum(_receive(p, _part(batch, lo, hi), _part_decoded(dec, lo, hi), splits - 1)
                       for lo, hi in ((0, cut), (cut, n)))
    if not (ready.any() or dropping.any()):
        _per_packet(p, batch, np.arange(n), {}, None)
        return 0
    pdir = flow_dir[dec.flow]
    flags = dec.flags
    # Packets not simply decoded are decoded once here, to find their connection.
    decoded: dict[int, Any] = {}
    for i in np.flatnonzero(~dec.simple).tolist():
        seg = p.decoder.decode(linktype, buf, starts[i], caplens[i])
        decoded[i] = seg
        if isinstance(seg, tuple):
            entry = flows.get(seg[0])
            if entry is not None and id(entry[0]) in where:
                sess[i] = where[id(entry[0])]
    # A connection's block part ends at its first packet that is not plain.
    plain = dec.simple & np.where(dropping[sess], flags & TCP_SYN == 0, flags & _ENDS == 0)
    order = np.argsort(sess, kind="stable")
    bounds = np.searchsorted(sess[order], np.arange(len(sessions) + 1))
    taken = np.zeros(n, bool)
    out = _Records()
    # Connections with too few packets here go per packet (each one taken here
    # costs a few array operations, which a flood of short flows would multiply).
    worth = (ready | dropping)[:-1] & (np.diff(bounds) >= MIN_PACKETS)
    plans: list[_Plan] = []
    mine: list[tuple[Session, np.ndarray]] = []  # each plan's connection's packets
    for sid in np.flatnonzero(worth).tolist():
        session = sessions[sid]
        pk = order[bounds[sid]:bounds[sid + 1]]
        if dropping[sid]:
            bad = np.flatnonzero(~plain[pk])
            taken[pk[:bad[0]] if len(bad) else pk] = True
        elif (plan := _plan(session, dec, pk, plain, pdir, n)) is not None:
            plans.append(plan)
            mine.append((session, pk))
    stamps_arr = np.asarray(stamps, np.int64)
    _block_parts(p, plans, batch, stamps_arr, dec, pdir, taken, out)
    rest = np.flatnonzero(~taken)
    # A connection stopped by a packet the block path does not take (most
    # often a retransmission) takes it per packet, then the block path again
    # for the rest of the block (up to RESUMES times): its later packets wait
    # out the per-packet pass before.
    later = _stopped(mine, taken, dec)
    if not out.nframes and not later:
        _per_packet(p, batch, rest, decoded, None)
    else:
        _rest(p, batch, _Block(dec, pdir, plain, stamps_arr, decoded, taken), rest, later, out)
    p.block_done(first + n - 1, stamps[-1])
    return out.nframes


class _Block(NamedTuple):
    """What the per-packet passes of a block and its resumed parts share."""

    dec: DecodedBatch
    pdir: np.ndarray
    plain: np.ndarray
    stamps: np.ndarray
    decoded: dict[int, Any]
    taken: np.ndarray


def _rest(p: Pipeline, batch: Batch, b: _Block, rest: np.ndarray,
          later: list[tuple[Session, np.ndarray]], out: _Records) -> None:
    """The packets ``rest`` that no block part took, per packet, and the block's
    records merged: the connections ``later`` stopped wait out the first pass
    with their packets after their stop, then take the block path again where
    they are ready (up to RESUMES times), the rest per packet."""
    dec, pdir, plain, decoded, taken = b.dec, b.pdir, b.plain, b.decoded, b.taken
    n = len(batch.starts)
    c = p.collector
    counts: list[tuple[int, int, int]] = []
    marks = (len(c.frames), len(c.messages), len(c.anomalies))
    waiting = np.zeros(n, bool)
    for _s, idx in later:
        waiting[idx] = True
    passes = [rest[~waiting[rest]]]
    _per_packet(p, batch, passes[0], decoded, counts)
    for _ in range(RESUMES):
        if not later:
            break
        again = [(s, idx, plan) for s, idx in later if s.bulk_ready() or s.keyless_ready()
                 for plan in [_plan(s, dec, idx, plain, pdir, n)] if plan is not None]
        done = counts[-1] if counts else marks
        _block_parts(p, [plan for _s, _idx, plan in again], batch, b.stamps, dec, pdir,
                     taken, out)
        assert (len(c.frames), len(c.messages), len(c.anomalies)) == done
        still = _stopped([(s, idx) for s, idx, _p in again], taken, dec)
        waiting[:] = False
        for _s, idx in still:
            waiting[idx] = True
        left = np.sort(np.concatenate([idx for _s, idx in later]))
        passes.append(left[~(taken | waiting)[left]])
        _per_packet(p, batch, passes[-1], decoded, counts)
        later = still
    if later:  # (RESUMES reached)
        left = np.sort(np.concatenate([idx for _s, idx in later]))
        passes.append(left[~taken[left]])
        _per_packet(p, batch, passes[-1], decoded, counts)
    _merge(c, marks, np.concatenate(passes), counts, out, len(passes) > 1)


def _plan(s: Session, dec: DecodedBatch, pk: np.ndarray, plain: np.ndarray, pdir: np.ndarray,
          n: int) -> _Plan | None:
    """The block part of a ready connection whose next packets in the block
    are ``pk``: its plain ones up to the first that is not (:func:`_in_order`),
    or None where they are fewer than MIN_PACKETS (per packet then)."""
    bad = np.flatnonzero(~plain[pk])
    k = int(bad[0]) if len(bad) else len(pk)
    if k < MIN_PACKETS:
        return None
    return _in_order(s, dec, pk[:k], pdir, int(pk[k]) if k < len(pk) else n)


def _stopped(stopped: list[tuple[Session, np.ndarray]], taken: np.ndarray,
             dec: DecodedBatch) -> list[tuple[Session, np.ndarray]]:
    """Of the connections ``stopped`` (each with its packets), those the block
    path stopped with more than MIN_PACKETS of their packets left, and each
    one's packets after the one it stopped at (none of them a SYN: a new
    connection on the same ports is numbered in capture order, so its packets
    are not put off)."""
    out = []
    for s, pk in stopped:
        left = pk[~taken[pk]]
        if len(left) > MIN_PACKETS and not (dec.flags[left] & TCP_SYN).any():
            out.append((s, left[1:]))
    return out


def _block_parts(p: Pipeline, plans: list[_Plan], batch: Batch, stamps: np.ndarray,
                 dec: DecodedBatch, pdir: np.ndarray, taken: np.ndarray, out: _Records) -> None:
    """The block parts of ``plans`` (their packets marked in ``taken``), their
    records made into ``out``."""
    if not plans:
        return
    if any(plan.keyless for plan in plans):
        for plan in plans:
            if plan.keyless:
                taken[_keyless(plan, batch, dec, pdir)] = True
        plans = [plan for plan in plans if not plan.keyless]
    _tls_scans(plans, batch, dec)
    out.sides = []
    for plan in plans:
        taken[_session(p, plan, batch, stamps, dec, pdir, out)] = True
    if out.sides:
        _emit(p, out, batch, stamps)


def _connections(flows: dict[bytes, tuple[Session, int]], dec: DecodedBatch
                 ) -> tuple[list[Session], dict[int, int], np.ndarray, np.ndarray]:
    """Each flow's connection as it stands at the start of the block:
    ``(sessions, where, flow_sess, flow_dir)``, the connections in order of
    first packet, their positions by ``id``, and each flow's connection
    position (-1: none, and last: packets not simply decoded) and direction."""
    sessions: list[Session] = []
    where: dict[int, int] = {}
    flow_sess = np.full(len(dec.keys) + 1, -1, np.int64)
    flow_dir = np.zeros(len(dec.keys) + 1, np.int64)
    for f, key in enumerate(dec.keys):
        entry = flows.get(key)
        if entry is not None:
            session, d = entry
            sid = where.get(id(session))
            if sid is None:
                sid = where[id(session)] = len(sessions)
                sessions.append(session)
            flow_sess[f] = sid
            flow_dir[f] = d
    return sessions, where, flow_sess, flow_dir


def _handoff(flow: np.ndarray, waiting: np.ndarray) -> int:
    """Where to cut a block in two so that flows waiting at its start
    (``waiting``: new, or in their handshake) take the block path in the second
    part; 0 for no cut.

    A waiting flow is taken to be ready after its HANDOFF-th packet. The cut
    is the one, among those points, after which most packets of flows then
    ready remain (counting only flows with at least MIN_PACKETS of them).
    """
    idx = np.flatnonzero(waiting & (flow >= 0))
    if len(idx) < HANDOFF + MIN_PACKETS:
        return 0
    order = np.argsort(flow[idx], kind="stable")
    pos = idx[order]  # grouped by flow, in order within each
    fl = flow[pos]
    heads = np.flatnonzero(np.r_[True, fl[1:] != fl[:-1]])
    counts = np.diff(np.r_[heads, len(fl)])
    heads = heads[counts >= HANDOFF + MIN_PACKETS]
    if not len(heads):
        return 0
    ready_at = pos[heads + HANDOFF - 1] + 1
    cuts = np.unique(ready_at)
    # left[i, j]: packets of flow j from cut i on (positions are below len(flow))
    span = len(flow)
    keyed = fl * span + pos
    ends = np.searchsorted(keyed, fl[heads] * span + span)
    left = ends[None, :] - np.searchsorted(keyed, fl[heads][None, :] * span + cuts[:, None])
    gain = np.where((ready_at[None, :] <= cuts[:, None]) & (left >= MIN_PACKETS), left, 0)
    total = gain.sum(axis=1)
    best = int(np.argmax(total))
    return int(cuts[best]) if total[best] else 0


def _part_decoded(dec: DecodedBatch, lo: int, hi: int) -> DecodedBatch:
    """Packets ``lo`` to ``hi`` of a decoded block (flows keep their keys)."""
    return DecodedBatch(dec.simple[lo:hi], dec.flow[lo:hi], dec.keys, dec.seq[lo:hi],
                        dec.ack[lo:hi], dec.flags[lo:hi], dec.pstart[lo:hi], dec.pend[lo:hi])


def _part(batch: Batch, lo: int, hi: int) -> Batch:
    """Packets ``lo`` to ``hi`` of ``batch``."""
    first, linktype, buf, starts, caplens, stamps, wirelens = batch
    return type(batch)(first + lo, linktype, buf, starts[lo:hi], caplens[lo:hi],
                       stamps[lo:hi], wirelens[lo:hi])


def _per_packet(p: Pipeline, batch: Batch, idx: np.ndarray, decoded: dict[int, Any],
                counts: list[tuple[int, int, int]] | None) -> None:
    """The per-packet path for the packets ``idx`` of the batch, in order;
    ``counts`` gets how many frames, messages and anomalies the collector
    holds after each."""
    first, linktype, buf, starts, caplens, stamps, _w = batch
    receive = p.receive_segment
    decode = p.decoder.decode
    c = p.collector
    for i in idx.tolist():
        seg = decoded[i] if i in decoded else decode(linktype, buf, starts[i], caplens[i])
        receive(first + i, stamps[i], seg)
        if counts is not None:
            counts.append((len(c.frames), len(c.messages), len(c.anomalies)))


def _merge(c: Collector, marks: tuple[int, int, int], rest: np.ndarray,
           counts: list[tuple[int, int, int]], out: _Records, passes: bool = False) -> None:
    """Put the block path's records among the per-packet path's, in the order
    the per-packet path alone would have made them (by emitting packet).
    ``rest`` is the packets taken per packet, in the order they were
    (``passes``: in more than one pass, so that their records too may be out
    of order).

    Frames and messages end up as one column chunk for the block (see
    :meth:`Collector.add_columns <wspcap.engine.Collector.add_columns>`).
    """
    ends = np.array(counts, np.int64).reshape(-1, 3)

    def block(column: int, records: list[Any], keys: list[int], parts: list[Columns],
              part_keys: list[np.ndarray], part_at: list[np.ndarray], packing: dict[str, str]
              ) -> tuple[Columns, np.ndarray] | None:
        if not parts and not passes:
            return None
        mark = marks[column]
        slow_at = np.repeat(rest, np.diff(ends[:, column], prepend=mark))
        order = np.argsort(np.concatenate([slow_at, *part_at]), kind="stable")
        # (most blocks have no per-packet record: their one part is taken as it is)
        slow = [to_columns(records[mark:], packing)] if len(records) > mark or not parts else []
        cols = concat_columns([*slow, *parts])
        every_key = np.concatenate([np.asarray(keys[mark:], np.int64), *part_keys])
        return take_columns(cols, order), every_key[order]

    frames = block(0, c.frames, c.frame_keys, out.frames, out.frame_keys, out.frame_at,
                   FRAME_PACKING)
    messages = block(1, c.messages, c.message_keys, out.messages, out.message_keys,
                     out.message_at, MESSAGE_PACKING)
    c.add_columns(frames, messages, marks[0], marks[1])
    if out.anomalies or passes:
        mark = marks[2]
        slow_at = np.repeat(rest, np.diff(ends[:, 2], prepend=mark))
        perm = np.argsort(np.concatenate(
            [slow_at, np.asarray(out.anomaly_at, np.int64)]), kind="stable").tolist()
        every = c.anomalies[mark:] + out.anomalies
        c.anomalies[mark:] = [every[i] for i in perm]


class _Side(NamedTuple):
    """One direction of a connection taking the block path, and its frames.

    Attributes:
        session, d: the connection and direction.
        run: its frames (over TLS: in the plaintext of its records).
        data: its TCP data segments (batch indices), in order.
        cut: the packet from which it must go per packet.
        tls: over TLS, the records read (``run`` frames their plaintext).
    """

    session: Session
    d: int
    run: FrameRun
    data: np.ndarray
    cut: int
    tls: TLSRun | None = None


def _clear_side(p: Pipeline, s: Session, d: int, batch: Batch, stamps: np.ndarray,
                data: np.ndarray, dec: DecodedBatch) -> _Side:
    """A direction of a ws:// connection: frames in its TCP segments."""
    run = FrameRun(s.dirs[d].parser, batch.buf, data,  # type: ignore[arg-type]
                   dec.pstart[data], dec.pend[data], stamps, p.options.max_payload)
    return _Side(s, d, run, data, run.cut)


def _tls_side(p: Pipeline, s: Session, d: int, stamps: np.ndarray, data: np.ndarray,
              records: TLSRun) -> _Side:
    """A direction of a decrypted wss:// connection: the TLS layer read the
    ``records`` whole in its TCP segments ``data``, and the frames are found in
    their plaintext, each record's plaintext a segment of its own (given out
    with the packet that completes the record, said to come in the packet
    where the record starts, as :meth:`Session.tls_events` does)."""
    begin, end, emitted, marked = records.begin, records.end, records.emitted, records.marked
    if not records.hollow:
        # Record i in segment i (the common case): its packets, without a gather.
        done, said = ((data[:len(begin)],) * 2 if records.one_to_one
                      else (data[emitted], data[marked]))
    else:  # records with no plaintext have no frames
        keep = end > begin
        begin, end = begin[keep], end[keep]
        done, said = data[emitted[keep]], data[marked[keep]]
    run = FrameRun(s.dirs[d].parser, records.plain, done, begin,  # type: ignore[arg-type]
                   end, stamps, p.options.max_payload, said)
    cut = int(data[records.cut]) if records.cut < len(data) else NEVER
    return _Side(s, d, run, data, min(cut, run.cut), records)


def _commit(s: Session, side: _Side, batch: Batch, cut: int) -> None:
    """Leave the direction's layers as the per-packet path would have, after
    its packets before ``cut``."""
    run, d = side.run, side.d
    m, fed = run.fed(cut)
    stream, stop, start_ts = run.rest(m, fed) if m else (b"", 0, 0)
    s.dirs[d].parser.commit_run(run.k, stream, stop, fed, start_ts)  # type: ignore[union-attr]
    data = side.data
    taken = int(np.searchsorted(data, cut, "left"))  # TCP segments before cut
    if side.tls is None:
        if m:
            s.reasm[d].took_in_order(fed - run.held, run.segments(max(0, m - HISTORY), m))
        return
    if not taken:
        return
    records = side.tls
    tail = records.tail(taken)
    assert s.tls is not None
    s.tls.commit_run(d, records, taken, tail)
    ends = records.ends
    # The segments of the record the TLS layer holds the start of, for the marks.
    last = int(ends[taken - 1])
    first = int(np.searchsorted(ends, last - len(tail), "right")) if tail else taken
    marks = [(records.offset + (int(ends[j - 1]) if j else 0), batch.first + int(data[j]),
              batch.stamps[int(data[j])]) for j in range(first, taken)]
    s.took_tls_run(d, fed - run.held if m else 0, marks)
    s.reasm[d].took_in_order(last, records.segments(max(0, taken - HISTORY), taken))


class _Plan(NamedTuple):
    """A ready connection's plain packets in a block, before its frames are read.

    Attributes:
        session: the connection.
        pk: its plain packets (batch indices, in order, all before ``cut``).
        chunks: each direction's in-order data segments (batch indices).
        cut: the packet from which it must go per packet, as far as known.
        tls: over TLS, each direction's records in its segments before
            ``cut`` (None where it has none), read for all connections of
            the block at once (:func:`_tls_scans`).
        keyless: over TLS without keys (:meth:`Session.keyless_ready`): the
            records are passed over (:func:`_keyless`).
    """

    session: Session
    pk: np.ndarray
    chunks: list[np.ndarray]
    cut: int
    tls: list[TLSRun | None]
    keyless: bool


def _in_order(s: Session, dec: DecodedBatch, pk: np.ndarray, pdir: np.ndarray, cut: int
              ) -> _Plan:
    """A connection's in-order data segments, up to ``cut`` (the reassembler says which)."""
    pstart, pend = dec.pstart, dec.pend
    chunks: list[np.ndarray] = []
    for d in (0, 1):
        mine = pk[pdir[pk] == d]
        data = mine[pend[mine] > pstart[mine]]
        if len(data):
            n = s.reasm[d].in_order(dec.seq[data], pend[data] - pstart[data])
            if n < len(data):
                cut = min(cut, int(data[n]))
        chunks.append(data)
    return _Plan(s, pk, chunks, cut, [None, None], not s.bulk_ready())


def _tls_scans(plans: list[_Plan], batch: Batch, dec: DecodedBatch) -> None:
    """The records of every wss:// direction of the block's plans, read and
    decrypted by the TLS layer in one call (:func:`wspcap.tls.runs.scan_runs`:
    its NumPy steps once a block, not once a direction)."""
    wanted: list[tuple[TLSSession, int, int]] = []
    where: list[tuple[list[TLSRun | None], int]] = []
    segments: list[np.ndarray] = []
    for plan in plans:
        tls = plan.session.tls
        if tls is None:
            continue
        for d in (0, 1):
            data = plan.chunks[d]
            data = data[:data.searchsorted(plan.cut)]  # (in order)
            if len(data):
                wanted.append((tls, d, len(data)))
                where.append((plan.tls, d))
                segments.append(data)
                plan.chunks[d] = data
    if wanted:
        at = np.concatenate(segments)
        for (runs, d), run in zip(where, scan_runs(batch.buf, wanted, dec.pstart[at],
                                                   dec.pend[at]), strict=True):
            runs[d] = run


def _keyless(plan: _Plan, batch: Batch, dec: DecodedBatch, pdir: np.ndarray) -> np.ndarray:
    """The block part of a TLS connection whose keys are missing: the records
    in each direction's segments are passed over
    (:meth:`TLSSession.pass_scan <wspcap.tls.TLSSession.pass_scan>`), with the
    layers left as the per-packet path leaves them (it would give only
    :class:`Lost <wspcap.tls.Lost>` events, which tell a direction with no
    plaintext nothing); returns the packets taken."""
    s, pk, cut = plan.session, plan.pk, plan.cut
    tls = s.tls
    assert tls is not None
    buf, pstart, pend = batch.buf, dec.pstart, dec.pend
    runs: list[tuple[np.ndarray, KeylessRun | None]] = []
    for d in (0, 1):
        data = plan.chunks[d]
        data = data[data < cut]
        run = tls.pass_scan(d, buf, pstart[data], pend[data]) if len(data) else None
        if run is not None and run.segments < len(data):
            cut = int(data[run.segments])
        runs.append((data, run))
    used = pk[pk < cut]
    if not len(used):
        return used
    for d, (data, run) in enumerate(runs):
        if run is None:
            continue
        data = data[data < cut]
        if len(data) < run.segments:  # (the other direction stopped first)
            run = tls.pass_scan(d, buf, pstart[data], pend[data])
        data = data[:run.segments]
        if not len(data):
            continue
        dr = s.dirs[d]
        tls.pass_commit(d, run)
        # Where the segments holding the record the TLS layer keeps came from.
        sizes = pend[data] - pstart[data]
        marked = data[run.tail_from:].tolist()
        dr.passed_tls_run(list(zip((run.offset + np.cumsum(sizes) - sizes)[run.tail_from:].tolist(),
                                   [batch.first + i for i in marked],
                                   [batch.stamps[i] for i in marked], strict=True)))
        history = data[-HISTORY:]
        s.reasm[d].took_in_order(run.size, [buf[x:y] for x, y in zip(
            pstart[history].tolist(), pend[history].tolist(), strict=True)])
    _acked(s, used, dec, pdir)
    last = int(used[-1])
    s.saw(batch.first + last, batch.stamps[last])
    return used


def _acked(s: Session, used: np.ndarray, dec: DecodedBatch, pdir: np.ndarray) -> None:
    """What the packets ``used`` of ``s`` acknowledged, each direction's last."""
    for d in (0, 1):
        mine = used[pdir[used] == d]
        acked = mine[dec.flags[mine] & TCP_ACK != 0]
        if len(acked):
            s.acked(d, int(dec.ack[acked[-1]]))


def _session(p: Pipeline, plan: _Plan, batch: Batch, stamps: np.ndarray, dec: DecodedBatch,
             pdir: np.ndarray, out: _Records) -> np.ndarray:
    """The block part of one ready connection, from its plain packets
    (:func:`_in_order`, and over TLS :func:`_tls_scans`); returns the packets taken."""
    s, pk, chunks, cut = plan.session, plan.pk, plan.chunks, plan.cut
    if not len(pk):
        return pk
    # 2. Each direction's frames (over TLS: of the plaintext of its records), up
    # to the first that breaks a framing rule.
    sides: list[_Side] = []
    for d in (0, 1):
        records = plan.tls[d]
        if records is not None:  # (read up to the cut as it was before either direction)
            side = _tls_side(p, s, d, stamps, chunks[d], records)
        else:
            data = chunks[d][chunks[d] < cut]
            if not len(data):
                continue
            side = _clear_side(p, s, d, batch, stamps, data, dec)
        sides.append(side)
        cut = min(cut, side.cut)
    used = pk[pk < cut]
    if not len(used):
        return used
    # 3. Frame indices follow the emitting packets, both directions merged. The
    # records are made later, for every connection of the block at once (_emit).
    for side in sides:
        side.run.keep(cut)
    at = (np.concatenate([side.run.end_at[:side.run.k] for side in sides]) if sides
          else _EMPTY)
    order = np.argsort(at, kind="stable")
    index = np.empty(len(order), np.int64)
    first = s.count_frames(len(order))
    index[order] = np.arange(first, first + len(order))
    lo = 0
    for side in sides:
        run = side.run
        if run.k:
            run.take(index[lo:lo + run.k])
            s.dirs[side.d].took_frames(run.k, run.last_offset, int(run.indices[-1]))
            out.sides.append(side)
        lo += run.k
    # 4. The layers' state, as the per-packet path would have left it.
    for side in sides:
        _commit(s, side, batch, cut)
    _acked(s, used, dec, pdir)
    last = int(used[-1])
    s.saw(batch.first + last, batch.stamps[last])
    return used


class _Frames(NamedTuple):
    """The frames of a block's runs, as columns, and what the messages need of them."""

    columns: dict[str, np.ndarray]
    keys: np.ndarray
    payloads: list[bytes]
    end_at: np.ndarray
    indices: np.ndarray
    first: np.ndarray
    ks: np.ndarray


def _frames(out: _Records, batch: Batch, stamps: np.ndarray) -> _Frames:
    """The frames every direction in ``out.sides`` took, as the frames
    table's columns (one chunk for the whole block)."""
    sides = out.sides
    runs = [side.run for side in sides]
    ks = np.array([run.k for run in runs], np.int64)
    total = int(ks.sum())

    def each(values: list[Any]) -> np.ndarray:
        return np.repeat(np.array(values, np.int64), ks)

    fc = frame_columns(runs)
    end_mark = per_frame(runs, "end_mark")
    held = per_frame(runs, "start_chunk") < 0
    payloads: list[bytes] = []
    for run in runs:
        payloads += run.payloads
    payload = np.empty(total, dtype=object)
    payload[:] = payloads
    fc["ts"] = stamps[end_mark]
    fc["packet"] = batch.first + end_mark
    fc["ts_start"] = np.where(held, each([run.held_since for run in runs]),
                              stamps[per_frame(runs, "start_at")])
    fc["payload"] = payload
    fc["missing"] = np.zeros(total, np.uint64)
    fc = {name: fc[name] for name in Frame._fields}  # the records' field order
    keys = each([side.session.dirs[side.d].key for side in sides])
    return _Frames(fc, keys, payloads, per_frame(runs, "end_at"), per_frame(runs, "indices"),
                   np.cumsum(ks) - ks, ks)


def _emit(p: Pipeline, out: _Records, batch: Batch, stamps: np.ndarray) -> None:
    """The records of the frames every direction in ``out.sides`` took: frames
    as columns, and messages, those of plain frames as columns and the others
    from the direction's assembler, one by one (its messages and anomalies go
    to ``out``, as the per-packet path's would to the collector)."""
    sides = out.sides
    fc, keys, payloads, end_at, indices, first, ks = _frames(out, batch, stamps)
    total = len(payloads)
    masked = fc["masked"]
    out.frames.append((fc, {"mask_key": ~masked}))
    out.frame_keys.append(keys)
    out.frame_at.append(end_at)
    out.nframes += total

    # Messages: plain frames while their assembler is idle are messages of
    # their own (wspcap.ws.messages.plain_frames); every other frame goes to
    # the direction's assembler.
    lengths = fc["payload_len"]
    plain, texts = plain_frames(
        fc["fin"], fc["rsv1"] | fc["rsv2"] | fc["rsv3"], fc["opcode"], masked,
        np.repeat([side.d == side.session.client for side in sides], ks), lengths, payloads)
    odd = np.add.reduceat(~plain, first) if total else ks
    bulk = plain.copy()
    made_at: list[int] = []  # frame of each message an assembler made
    made: list[Message] = []
    frame = None
    # The assemblers' messages and anomalies go to out (see _merge).
    with p.collector.diverted(out.tuples, out.tuple_keys, out.anomalies):
        for i, side in enumerate(sides):
            lo, k = int(first[i]), side.run.k
            assembler = side.session.dirs[side.d].assembler
            assert assembler is not None
            if not odd[i] and assembler.idle:
                n = k
            else:
                if frame is None:
                    frame = _FrameMaker(fc, payloads, int(odd.sum()) > total // 8)
                n = _assemble(assembler, lo, k, plain, bulk, frame, out, made, made_at, end_at,
                              indices)
            assembler.took_plain(n)
            side.session.count_messages(n)
    pos = np.flatnonzero(bulk)
    messages = plain_messages(fc, pos, texts, indices)
    if made:
        # In frame order: a frame's messages come out as it is taken.
        at = np.concatenate([pos, np.asarray(made_at, np.int64)])
        order = np.argsort(at, kind="stable")
        messages = take_columns(concat_columns([messages, to_columns(made, MESSAGE_PACKING)]),
                                order)
        pos = at[order]
    out.messages.append(messages)
    out.message_keys.append(keys[pos])
    out.message_at.append(end_at[pos])


class _FrameMaker:
    """Frame records, one at a time, from frame columns (for the assembler)."""

    def __init__(self, fc: dict[str, np.ndarray], payloads: list[bytes], many: bool) -> None:
        self.fc = fc
        self.payloads = payloads
        self.lists: list[list[Any]] | None = None
        if many:  # one conversion per column beats one per value
            self.lists = [fc[name].tolist() for name in Frame._fields[:-2]]

    def __call__(self, j: int) -> Frame:
        if self.lists is not None:
            head = [col[j] for col in self.lists]
        else:
            head = [self.fc[name][j].item() for name in Frame._fields[:-2]]
        if not head[9]:  # masked
            head[10] = None  # mask_key
        return _make_frame((*head, self.payloads[j], 0))


def _assemble(assembler: MessageAssembler, lo: int, k: int, plain: np.ndarray,
              bulk: np.ndarray, frame: _FrameMaker, out: _Records, made: list[Message],
              made_at: list[int], end_at: np.ndarray, indices: np.ndarray) -> int:
    """One direction's frames ``lo`` to ``lo + k`` (block positions): runs of
    plain frames while the assembler is idle stay in ``bulk``, each other
    frame goes to the assembler, whose messages go to ``made`` (with their
    frame in ``made_at``); returns how many stayed in ``bulk``."""
    odd = [*(np.flatnonzero(~plain[lo:lo + k]) + lo).tolist(), lo + k]
    plain_at = plain.tolist()
    stays = 0
    j, run_end, stop = lo, 0, lo + k
    while j < stop:
        while odd[run_end] < j:
            run_end += 1
        if plain_at[j] and assembler.idle:
            # Frames j .. odd[run_end] - 1 are plain and the assembler stays idle.
            stays += odd[run_end] - j
            j = odd[run_end]
        else:  # as for one packet
            bulk[j] = False
            nm, na = len(out.tuples), len(out.anomalies)
            assembler.receive_frame(frame(j), int(indices[j]))
            made += out.tuples[nm:]
            made_at += [j] * (len(out.tuples) - nm)
            del out.tuples[nm:], out.tuple_keys[nm:]
            out.anomaly_at += [int(end_at[j])] * (len(out.anomalies) - na)
            j += 1
    return stays
