"""Records of a run: one TLS direction's in-order segments read a block at a time.

Design note
-----------
A direction in its steady state (:meth:`TLSSession.run_ready
<wspcap.tls.session.TLSSession.run_ready>`) can also be read a run of
segments at a time: :func:`scan_runs` reads the runs of every wss direction
of a block of packets in one call, and changes nothing (:meth:`TLSSession.commit_run
<wspcap.tls.session.TLSSession.commit_run>` then says how far the caller
took them). What it costs a record is ``AESGCM.decrypt`` and as little
Python around it as we found:

- Segments that are one whole application data record each with the usual
  header (type 23, legacy version 0x0303: 246,062 of the chat benchmark's
  246,142) are found with NumPy over the block's buffer, for all runs at
  once, and opened where they are in the block's buffer. Other runs are
  joined and walked header by header, taking stretches of such segments
  whole.
- The records of all the block's runs are opened by one call,
  :func:`wspcap.tls.protection.open_runs`, whose loop
  (:func:`wspcap.tls.protection.py_open_runs`, and its compiled mirror in
  ``wspcap/tls/_speedups.c``) makes each record's nonce, additional data
  (its header) and fragment, calls ``AESGCM.decrypt`` and copies what it
  gives into the block's joined plaintext; a record that does not open ends
  its run there. The plaintext of record ``i`` stays where it is in the
  joined bytes (the frames are read there, :class:`wspcap.ws.runs.FrameRun`);
  content types, padding and spans come from NumPy
  (:func:`wspcap.tls.protection.inner_spans`).

A direction whose keys are missing is passed over a run at a time the same
way (:func:`scan_keyless`, behind :meth:`TLSSession.pass_scan
<wspcap.tls.session.TLSSession.pass_scan>`).

This module reads a session only through :class:`RunSource` and never
changes it: the session's state moves through its own methods
(``commit_run``, ``pass_commit``). It sits below :mod:`wspcap.tls.session`,
which imports it.

Measured on the chat benchmark over TLS 1.3 (AES-256-GCM, 246,062 records
read by runs, CPU time in one process, 2026-12-03, the machine shared): the
AEAD alone, a loop of ``AESGCM.decrypt`` over the same records, 0.125-0.155
s; :func:`scan_runs` 0.29-0.34 s; before it (a Python loop a record, then the
plaintexts listed again for the frames) 0.54 s for the loop and 1.14 s for
the block path's whole TLS part, now 0.65 s. Making each record's fragment
slice and nonce in Python cost about 0.1 us each: the compiled loop took
the run's records from 0.82 us a record to about 0.65 us, the AEAD call
included (``benchmarks/tls_floor.py`` times the AEAD alone: 0.52 us). One
call for the block's runs, the plaintexts copied into one buffer there (not
listed and joined after), a header object reused for the records with the
same header (a block's records have few), and the segments' ends kept as an
array (not listed for every segment of the block) took the block path's TLS
part (:func:`wspcap.engine.runs._tls_scans`, :func:`scan_runs` and the spans
it is given) from 0.24 to 0.18-0.19 s, of which the compiled loop 0.14 s (the
AEAD alone 0.13 s); chat-tls then read in 1.27x chat's time (1.33x before;
medians of 8 fresh processes, each alternating both reads).
``decrypt_into`` a preallocated buffer was slower (a memoryview a record),
as were memoryview fragments. ``tests/unit/test_tls_runs.py`` checks runs
against :meth:`TLSSession.receive_data
<wspcap.tls.session.TLSSession.receive_data>`.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from typing import NamedTuple, Protocol

import numpy as np

from wspcap.tls.protection import RecordProtection, inner_spans, open_runs
from wspcap.tls.records import APPLICATION_DATA, HEADER_LEN

__all__ = ["KeylessRun", "RunSource", "TLSRun", "scan_keyless", "scan_runs"]

_NONE = np.zeros(0, np.int64)
#: The usual header of an application data record, but for its length:
#: type 23, legacy version 0x0303, as a 40-bit number.
_USUAL = APPLICATION_DATA << 32 | 0x0303 << 16
#: 0, 1, 2...: the segment of each record of a run whose records are its segments.
_COUNT = np.arange(1 << 16)
_COUNT.flags.writeable = False


class RunSource(Protocol):
    """What :func:`scan_runs` reads of a session
    (:class:`~wspcap.tls.session.TLSSession` is one)."""

    def run_start(self, direction: int) -> tuple[RecordProtection, int, int]:
        """A :meth:`~wspcap.tls.session.TLSSession.run_ready` direction's
        protection (its next sequence number included), the stream offset
        where its next run starts, and the longest record fragment allowed."""
        ...


class KeylessRun(NamedTuple):
    """What a direction without keys passes over of a run of segments
    (:func:`scan_keyless`, :meth:`TLSSession.pass_scan
    <wspcap.tls.session.TLSSession.pass_scan>`).

    Attributes:
        segments: how many of the run's first segments it passes over.
        size: their bytes.
        tail: the bytes of the direction kept after them: the start of a record
            (with those it kept before, if its record goes on).
        tail_from: the first of those segments that holds a byte of ``tail``
            (``segments`` if none does).
        offset: the TCP stream offset of the first segment.
    """

    segments: int
    size: int
    tail: bytes
    tail_from: int
    offset: int


class TLSRun:
    """Records of a run of one direction's segments (:func:`scan_runs`,
    :meth:`TLSSession.scan_run <wspcap.tls.session.TLSSession.scan_run>`).

    Positions are in the run's stream: the segments one after the other, 0
    where the first starts.

    Attributes:
        seq: the sequence number of the first record.
        offset: the stream offset of the first segment.
        buf, ps, pe: segment ``j`` is ``buf[ps[j]:pe[j]]``.
        ends: where each segment ends in the run's stream (int64).
        starts, stops: where each record read starts and ends.
        plain, begin, end: each record's plaintext is ``plain[begin[i]:end[i]]``
            (the spans need not touch: a TLS 1.3 record's content type and
            padding follow its span).
        emitted: each record's segment where it ends (where
            :meth:`~wspcap.tls.session.TLSSession.receive_data` would give it
            out); ``marked``: the segment where it starts (the packet its
            frames are said to come in, see
            :meth:`wspcap.engine.session.Session.tls_events`).
        one_to_one: record ``i`` is segment ``i`` (``emitted`` and ``marked``
            are ``0, 1, 2...``), as in most runs.
        hollow: some record read has no plaintext (an empty span).
        cut: the first segment the run cannot take whole: the one where the
            first record it did not read starts (len(ends) if none).
    """

    __slots__ = ("_data", "begin", "buf", "cut", "emitted", "end", "ends", "hollow", "marked",
                 "offset", "one_to_one", "pe", "plain", "ps", "seq", "starts", "stops")

    def __init__(self, seq: int, offset: int, buf: bytes, ps: np.ndarray, pe: np.ndarray,
                 ends: np.ndarray) -> None:
        self.seq = seq
        self.offset = offset
        self.buf, self.ps, self.pe = buf, ps, pe
        self.ends = ends
        self._data: bytes | None = None
        self.plain = b""
        self.starts = self.stops = self.begin = self.end = _NONE
        self.emitted = self.marked = _NONE
        self.cut = len(ends)
        self.one_to_one = self.hollow = False

    @property
    def data(self) -> bytes:
        """The run's stream: its segments joined (made when first asked for)."""
        if self._data is None:
            self._data = b"".join(self.segments(0, len(self.ends)))
        return self._data

    def segments(self, lo: int, hi: int) -> list[bytes]:
        """Segments ``lo`` to ``hi``'s bytes."""
        buf = self.buf
        return [buf[x:y] for x, y in zip(self.ps[lo:hi].tolist(), self.pe[lo:hi].tolist(),
                                         strict=True)]

    def read(self, starts: np.ndarray, stops: np.ndarray, plain: bytes, begin: np.ndarray,
             end: np.ndarray, segments: bool = False, hollow: bool = False) -> None:
        """The records read: where they are, their plaintext, their segments
        (``segments``: record ``i`` is segment ``i``); ``hollow``: some has
        no plaintext."""
        self.starts, self.stops = starts, stops
        self.plain, self.begin, self.end = plain, begin, end
        self.hollow = hollow
        if segments:
            n = len(starts)
            self.marked = self.emitted = _COUNT[:n] if n <= len(_COUNT) else np.arange(n)
            self.one_to_one = True
            return
        self.marked = np.searchsorted(self.ends, starts, "right")
        self.emitted = np.searchsorted(self.ends, stops, "left")

    def stop_at(self, pos: int) -> None:
        """A record starts at ``pos`` that the run does not read: from the
        segment it starts in, the segments are :meth:`TLSSession.receive_data
        <wspcap.tls.session.TLSSession.receive_data>`'s."""
        self.cut = int(np.searchsorted(self.ends, pos, "right"))

    def records_before(self, segments: int) -> int:
        """How many records end within the first ``segments`` segments."""
        if self.one_to_one:
            return min(segments, len(self.starts))
        return int(np.searchsorted(self.emitted, segments, "left"))

    def tail(self, segments: int) -> bytes:
        """The bytes of the first ``segments`` segments after their last whole record."""
        records = self.records_before(segments)
        start = int(self.stops[records - 1]) if records else 0
        stop = int(self.ends[segments - 1])
        return self.data[start:stop] if start < stop else b""


def scan_runs(buf: bytes, runs: Sequence[tuple[RunSource, int, int]], ps: np.ndarray,
              pe: np.ndarray) -> list[TLSRun]:
    """:meth:`TLSSession.scan_run <wspcap.tls.session.TLSSession.scan_run>`
    for each ``(session, direction, count)`` of ``runs``, whose segments are
    the next ``count`` of ``buf[ps[j]:pe[j]]`` (one buffer, a block's), in
    one pass: the NumPy steps are taken once for all of them (see the design
    note). Changes nothing."""
    counts = [count for _s, _d, count in runs]
    sizes = pe - ps
    cum = np.cumsum(sizes)
    firsts = list(itertools.accumulate(counts, initial=0))
    first = np.array(firsts[:-1], np.int64)
    ends = cum - np.repeat(cum[first] - sizes[first], counts)  # in each run's stream
    begins = ends - sizes
    starts_at = [session.run_start(direction) for session, direction, _n in runs]
    limits = [limit for _p, _o, limit in starts_at]
    # Segments that are one whole application data record each, with the
    # usual header (type 23, legacy version 0x0303): most are.
    length = sizes - HEADER_LEN
    one = ((_heads(buf, ps) == _USUAL + length) & (length >= 0)
           & (length <= (limits[0] if min(limits) == max(limits)
                         else np.repeat(limits, counts))))
    all_one = np.logical_and.reduceat(one, first).tolist()
    out: list[TLSRun] = []
    todo: list[tuple[RecordProtection, bytes, int, int]] = []  # each run's records to open
    read: list[tuple[np.ndarray, np.ndarray, int, bool]] = []
    walked = not all(all_one)
    for r, (protection, offset, limit) in enumerate(starts_at):
        lo, hi = firsts[r], firsts[r + 1]
        run = TLSRun(protection.seq, offset, buf, ps[lo:hi], pe[lo:hi], ends[lo:hi])
        out.append(run)
        if all_one[r]:  # the records are the segments: take them where they are
            todo.append((protection, buf, protection.seq, hi - lo))
            read.append((begins[lo:hi], run.ends, int(ends[hi - 1]), False))
        else:
            src = run.data
            read.append(_walk(src, one[lo:hi], begins[lo:hi], run.ends, run.ends.tolist(),
                              limit))
            todo.append((protection, src, protection.seq, len(read[-1][0])))
    if walked:  # where each run's records are in its buffer
        at = [(ps[firsts[r]:firsts[r + 1]], pe[firsts[r]:firsts[r + 1]]) if all_one[r]
              else read[r][:2] for r in range(len(runs))]
        plain, lengths = open_runs(todo, np.concatenate([a[0] for a in at]),
                                   np.concatenate([a[1] for a in at]))
        bounds = np.cumsum([0] + [len(a[0]) for a in at])
    else:
        plain, lengths = open_runs(todo, ps, pe)
        bounds = np.array(firsts, np.int64)
    ok = lengths >= 0
    done = np.concatenate(([0], np.cumsum(ok)))
    opened = (done[bounds[1:]] - done[bounds[:-1]]).tolist()  # records opened, by run
    begin, end, ctype = inner_spans(plain, lengths if ok.all() else lengths[ok])
    # Reading stops at the first record that did not open as application data.
    other = np.append(np.flatnonzero(ctype != APPLICATION_DATA), len(ctype)).tolist()
    hollow = np.flatnonzero(end <= begin).tolist()  # records with no plaintext (rare)
    o = 0
    for r, run in enumerate(out):
        starts, stops, pos, whole = read[r]
        n = min(opened[r], other[bisect.bisect_left(other, o)] - o)
        if n < len(starts):
            pos, whole = int(starts[n]), True
        run.read(starts[:n], stops[:n], plain, begin[o:o + n], end[o:o + n], all_one[r],
                 bool(hollow) and bisect.bisect_left(hollow, o) < bisect.bisect_left(hollow, o + n))
        if whole:
            run.stop_at(pos)
        o += opened[r]
    return out


def scan_keyless(kept: bytes | bytearray, offset: int, held: int, limit: int, buf: bytes,
                 ps: np.ndarray, pe: np.ndarray) -> KeylessRun:
    """:meth:`TLSSession.pass_scan <wspcap.tls.session.TLSSession.pass_scan>`
    for a direction that keeps ``kept`` (the start of a record, at stream
    ``offset``), passes over records longer than ``held`` and allows none
    longer than ``limit``: the segments ``buf[ps[j]:pe[j]]`` (its next
    in-order TCP payloads, at least one) up to the first record that is not
    application data longer than ``held``. Changes nothing."""
    length = pe - ps - HEADER_LEN
    one = (_heads(buf, ps) == _USUAL + length) & (length > held) & (length <= limit)
    n = len(ps)
    if not kept and one.all():  # a record a segment: most runs
        return KeylessRun(n, int(length.sum()) + HEADER_LEN * n, b"", n, offset)
    # Otherwise the records are walked header by header, the segments joined
    # after the start of a record the direction keeps.
    x, y = ps.tolist(), pe.tolist()
    data = b"".join([kept, *(buf[i:j] for i, j in zip(x, y, strict=True))])
    ends = np.cumsum(pe - ps) + len(kept)
    end = len(data)
    pos, stop = 0, end  # stop: where a record that is not passed over starts
    stops = [0]
    while end - pos >= HEADER_LEN:
        size = (data[pos + 3] << 8) | data[pos + 4]
        if data[pos] != APPLICATION_DATA or data[pos + 1] != 3 or not held < size <= limit:
            stop = pos
            break
        if pos + HEADER_LEN + size > end:
            break
        pos += HEADER_LEN + size
        stops.append(pos)
    # The segments that end before that record starts are passed over.
    k = int(np.searchsorted(ends, stop, "right"))
    if not k:
        return KeylessRun(0, 0, b"", 0, offset + len(kept))
    last = int(ends[k - 1])
    whole = stops[bisect.bisect_right(stops, last) - 1]  # where their last whole record ends
    return KeylessRun(k, last - len(kept), data[whole:last],
                      int(np.searchsorted(ends, whole, "right")), offset + len(kept))


def _walk(data: bytes, one: np.ndarray, begins: np.ndarray, ends: np.ndarray, ends_at: list[int],
          limit: int) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """The application data records whole in ``data`` (segments
    ``data[begins[j]:ends[j]]`` joined, those where ``one`` holds a whole
    record each; none longer than ``limit``), from its start on: ``(starts,
    stops, pos, whole)``, where each starts and ends, where the walk stopped
    and whether it stopped at a record that is not plain application data
    (rather than at the end of what is whole). Runs of ``one`` segments are
    taken as they are, the other records read header by header."""
    end = len(data)
    m = len(ends)
    odd = np.append(np.flatnonzero(~one), m)
    after = odd[np.searchsorted(odd, np.arange(m))].tolist()  # next segment not one record
    one_at = one.tolist()
    starts: list[np.ndarray] = []
    stops: list[np.ndarray] = []
    walked: list[int] = []  # records read one by one since the last run of segments
    walked_stops: list[int] = []
    pos, j, whole = 0, 0, True  # j: the segment that starts at pos (-1: none)
    while True:
        if 0 <= j < m and one_at[j]:  # segments j .. after[j] - 1 are a record each
            if walked:
                starts.append(np.array(walked, np.int64))
                stops.append(np.array(walked_stops, np.int64))
                walked, walked_stops = [], []
            r = after[j]
            starts.append(begins[j:r])
            stops.append(ends[j:r])
            pos, j = ends_at[r - 1], r
            continue
        if end - pos < HEADER_LEN:
            whole = False
            break
        length = (data[pos + 3] << 8) | data[pos + 4]
        stop = pos + HEADER_LEN + length
        if data[pos] != APPLICATION_DATA or data[pos + 1] != 3 or length > limit:
            break
        if stop > end:
            whole = False
            break
        walked.append(pos)
        walked_stops.append(stop)
        pos = stop
        i = bisect.bisect_left(ends_at, pos)
        j = i + 1 if i < m and ends_at[i] == pos else -1
    starts.append(np.array(walked, np.int64))
    stops.append(np.array(walked_stops, np.int64))
    return np.concatenate(starts), np.concatenate(stops), pos, whole


def _heads(buf: bytes, ps: np.ndarray) -> np.ndarray:
    """The first 5 bytes at each of ``ps`` in ``buf``, as big-endian numbers
    (each position's first 8 bytes read as one, the header its top 5; the
    bytes past the end of ``buf`` read as zeros)."""
    n = len(buf)
    if n < 8:
        buf, n = buf + bytes(8), n + 8
    view = np.ndarray((n - 7,), ">i8", buf, 0, (1,))
    near = ps > n - 8
    if not near.any():
        heads: np.ndarray = view[ps] >> 24
        return heads
    # (the last positions, near the end: most blocks end in a run, and copying
    # the block's buffer to pad it cost 0.5 ms a block)
    heads = view[np.minimum(ps, n - 8)] >> 24
    for i in np.flatnonzero(near).tolist():
        at = int(ps[i])
        heads[i] = int.from_bytes(buf[at:at + HEADER_LEN].ljust(HEADER_LEN, b"\0"), "big",
                                  signed=True)
    return heads
