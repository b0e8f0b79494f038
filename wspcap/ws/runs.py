"""Frames of a run: one direction's in-order segments read a block at a time.

Design note
-----------
:meth:`FrameParser.receive_data <wspcap.ws.frames.FrameParser.receive_data>`
turns one segment into frames, one Python loop turn a frame. Most segments of
a real capture belong to established connections and arrive in order, and
most of them hold exactly one whole frame (a sender writes a message a frame
at a time). A :class:`FrameRun` takes a run of such segments of one
direction (positions in a block's buffer) and finds its frames with NumPy
where each segment is one whole frame (:func:`whole_frames`), otherwise by
the parser's own lean walk over the joined bytes
(:meth:`FrameParser.scan <wspcap.ws.frames.FrameParser.scan>`). Payloads are
taken out and unmasked in one pass (:func:`wspcap.ws.mask.frame_payloads`).

A run changes nothing by itself: the parser's state moves only through
:meth:`FrameParser.commit_run <wspcap.ws.frames.FrameParser.commit_run>`, once
the driver knows how far the run is taken (a run stops at the first frame
that breaks a framing rule, and at whatever stops the other direction or the
reassembler: that frame and the rest go the per-packet way).

Compiled kernels
----------------
Each layer's hot loop sits behind one function whose arguments are a buffer
and NumPy arrays. Four of them have a compiled mirror in C, in the way of
websockets' ``speedups.c``: built optionally by setuptools where a C
compiler is at hand (``pyproject.toml``), used when built (unless
``WSPCAP_NO_SPEEDUPS=1``), with the pure-Python function as the reference
that ``tests/unit/test_speedups.py`` compares it with on generated input:

- :func:`wspcap.ws.mask.frame_payloads` (take out and unmask a run's
  payloads) and :func:`wspcap.ws.mask.unmask` (one large payload);
- :func:`whole_frames` (whether each segment of a run is one whole frame,
  and its header and payload lengths);
- :func:`wspcap.sources.files.pcap_records` (the walk over pcap record
  headers, one turn a packet);
- :func:`wspcap.decode.batch.headers` (a block's link, IP and TCP header
  fields, about twenty NumPy gathers in the reference).

Measured under cProfile on the chat benchmark (250,520 small frames,
``analyze_to`` in-process): ``frame_payloads`` went from 0.24 s to 0.014 s,
the pcap walk from 0.19 s to 0.09 s, ``whole_frames`` from 0.08 s to about
0.02 s; a block's header fields from 0.16-0.21 s to 0.10 s (what is left
there is NumPy's ``unique`` over the flow keys). The rules' checks at the
end, which compare whole columns with NumPy now, went from 0.35 s to 0.14 s.
What remains is spread: NumPy's fixed cost per call on each connection's
run in each block (about 0.5 ms a connection a block: the frames of a run,
reassembly bookkeeping, emitting rows), turning payload lists into Arrow
arrays (0.08 s), sorting the records of ended connections into groups for
the checks. The next step would decide a block's runs for all its
connections at once rather than one connection at a time.

The length rule of RFC 6455 section 5.2 is decoded by
:func:`wspcap.ws.frames.frame_length`; :func:`frame_lengths` is its NumPy
mirror for headers known to be whole (``tests/unit/test_frames.py`` compares
the two).
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from wspcap.constants import SPEEDUPS
from wspcap.ws.frames import FIN, LEN7, MASKED, OPCODE, RSV1, RSV2, RSV3
from wspcap.ws.mask import frame_payloads

_kernel: ModuleType | None = None
if SPEEDUPS:
    try:
        from wspcap.ws import _speedups as _kernel
    except ImportError:  # not built: the NumPy reference
        pass

if TYPE_CHECKING:
    from collections.abc import Sequence

    from wspcap.ws.frames import FrameParser

__all__ = ["FrameRun", "frame_columns", "frame_lengths", "joined", "per_frame", "py_whole_frames",
           "whole_frames"]

_EMPTY = np.zeros(0, np.int64)
#: No packet: a run that nothing stops.
NEVER = 1 << 62
_FOUR = np.arange(4)


def frame_lengths(view: np.ndarray, starts: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`~wspcap.ws.frames.frame_length` for the frame headers at
    ``view[starts]`` (``view``: the bytes as ``uint8``), each whole in
    ``view``: header lengths before any masking key, payload lengths, and
    encodings (7, 16, 64). A 64-bit length comes back without its most
    significant bit (which RFC 6455 forbids; int64 cannot hold it)."""
    b1 = view[starts + 1].astype(np.int64)
    length = b1 & LEN7
    enc = np.where(length == 126, 16, np.where(length == 127, 64, 7))
    hl = np.where(enc == 7, 2, np.where(enc == 16, 4, 10))
    top = len(view) - 1
    if (enc == 16).any():
        wide = (view[np.minimum(starts + 2, top)].astype(np.int64) << 8) \
            | view[np.minimum(starts + 3, top)]
        length = np.where(enc == 16, wide, length)
    if (enc == 64).any():
        for i in np.flatnonzero(enc == 64).tolist():  # rare: one by one, as uint64
            at = int(starts[i]) + 2
            length[i] = int.from_bytes(view[at:at + 8].tobytes(), "big") & ((1 << 63) - 1)
    return hl, length, enc


def whole_frames(buf: bytes, ps: np.ndarray, sizes: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray] | None:
    """Header and payload lengths of the frames in ``buf[ps[i]:ps[i] + sizes[i]]``
    when each of these segments is exactly one whole frame with a 7- or 16-bit
    length, as most segments of real traffic are; None when one is not:
    :func:`py_whole_frames`, or its compiled mirror where that is built."""
    if _kernel is None:
        return py_whole_frames(buf, ps, sizes)
    got = _kernel.whole_frames(buf, np.ascontiguousarray(ps, np.int64),
                               np.ascontiguousarray(sizes, np.int64))
    if got is None:
        return None
    return np.frombuffer(got[0], np.int64), np.frombuffer(got[1], np.int64)


def py_whole_frames(buf: bytes, ps: np.ndarray, sizes: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`whole_frames` in NumPy (the reference of its compiled mirror)."""
    if not len(ps) or int(sizes.min()) < 2:
        return None
    view = np.frombuffer(buf, np.uint8)
    if (view[ps + 1] & LEN7 == 127).any():
        return None
    hl, length, _enc = frame_lengths(view, ps)  # (a header cut short fails the test below)
    hl = hl + np.where(view[ps + 1] & MASKED, 4, 0)
    if not np.array_equal(hl + length, sizes):
        return None
    return hl, length


def joined(buf: bytes, ps: np.ndarray, pe: np.ndarray) -> bytes:
    """The segments ``buf[ps[i]:pe[i]]`` one after the other."""
    return b"".join([buf[x:y] for x, y in zip(ps.tolist(), pe.tolist(), strict=True)])


class FrameRun:
    """One direction's frames in a run of its in-order segments.

    Args:
        parser: the direction's parser (read here, changed only by its
            :meth:`~wspcap.ws.frames.FrameParser.commit_run`).
        buf: the block's buffer; ``ps``, ``pe``: where the segments' payloads
            are in it; ``chunks``: each segment's packet (block index), in order.
        stamps: the block's timestamps by block index.
        max_payload: frames longer than this are left to the per-packet path.
        marks: the packet each segment is said to come in, when not the one
            that brought it (decrypted TLS: the packet where the segment's
            record starts; ``chunks`` then are the packets that complete the
            records, where the per-packet path gives their plaintext out).

    Attributes:
        starts, hls, lengths: each frame's start (in the run's stream, whose
            offset 0 is the parser's :attr:`~wspcap.ws.frames.FrameParser.base`),
            header length and payload length.
        end_at: the packet that completes each frame; ``end_mark``: the
            packet it is said to come in (the same but for decrypted TLS).
        cut: the packet from which this direction must go per packet
            (its first frame that breaks a framing rule), or NEVER.
        k: how many frames are taken (see :meth:`keep`).
    """

    def __init__(self, parser: FrameParser, buf: bytes, chunks: np.ndarray, ps: np.ndarray,
                 pe: np.ndarray, stamps: np.ndarray, max_payload: int,
                 marks: np.ndarray | None = None) -> None:
        self.buf = buf
        self.chunks = chunks
        self.marks = chunks if marks is None else marks
        self.ps, self.pe = ps, pe
        self.stamps = stamps
        self.base = parser.base
        self.held_since = parser.held_since
        sizes = pe - ps
        whole = None if parser.holding else whole_frames(buf, ps, sizes)
        if whole is not None:
            # Each segment is one whole frame: no need to join them to find the
            # frames, which are taken from the block's buffer where they are.
            self._stream: bytes | None = None
            self.held = 0
            self.cum_end = np.cumsum(sizes)
            self.src, self.src_starts = buf, ps
            fs = self.starts = self.cum_end - sizes
            hl, plen = whole
            # Frame i is segment i: it starts and ends in chunk i.
            end_chunk = start_chunk = np.arange(len(ps))
        else:
            data = joined(buf, ps, pe)
            stream, starts, hls, lengths = parser.scan(data)
            self._stream = stream
            self.held = len(stream) - len(data)  # bytes the parser held before the run
            self.cum_end = self.held + np.cumsum(sizes)  # stream end after each chunk
            fs = self.starts = np.asarray(starts, np.int64)
            hl = np.asarray(hls, np.int64)
            plen = np.asarray(lengths, np.int64)
            self.src, self.src_starts = stream, fs
            # The chunk that completes each frame, and the chunk that brought its
            # first byte (-1: the bytes held from before).
            end_chunk = np.searchsorted(self.cum_end, fs + hl + plen, "left")
            start_chunk = np.where(fs < self.held, -1,
                                   np.searchsorted(self.cum_end, fs, "right"))
        self.hls, self.lengths = hl, plen
        self.end_at = chunks[end_chunk] if len(fs) else _EMPTY
        self.end_mark = self.marks[end_chunk] if len(fs) else _EMPTY
        self.start_chunk = start_chunk
        head = np.frombuffer(self.src, np.uint8)
        self.b0 = head[self.src_starts].astype(np.int64)
        masked = (head[self.src_starts + 1] & MASKED) != 0
        self.masked = masked
        base = hl - np.where(masked, 4, 0)
        self.enc = np.where(base == 2, 7, np.where(base == 4, 16, 64))
        framed = (plen <= max_payload) & ~(((self.enc == 16) & (plen < 126))
                                            | ((self.enc == 64) & (plen < 0x10000)))
        bad = np.flatnonzero(~framed)
        self.framed = int(bad[0]) if len(bad) else len(fs)  # frames before the first bad one
        self.cut = self._start_packet(self.framed) if len(bad) else NEVER
        self.k = 0

    def _start_packet(self, j: int) -> int:
        """Block index of the packet from which frame ``j`` goes per packet."""
        return int(self.chunks[max(int(self.start_chunk[j]), 0)])

    def keep(self, cut: int) -> None:
        """Take the frames completed before packet ``cut`` (and before the
        first that breaks a framing rule)."""
        self.k = min(self.framed, int(np.searchsorted(self.end_at, cut, "left")))

    def take(self, indices: np.ndarray) -> None:
        """Read the taken frames' payloads; ``indices`` are their frame_index."""
        k = self.k
        self.indices = indices
        at = self.src_starts[:k] + self.hls[:k]
        self.payloads = frame_payloads(self.src, at, self.lengths[:k], self.masked[:k])
        # Each frame's 4 bytes before its payload: the masking key where it is masked.
        self.key_bytes = np.frombuffer(self.src, np.uint8)[(at - 4)[:, None] + _FOUR]
        sc = self.start_chunk[:k]
        self.start_at = self.marks[np.maximum(sc, 0)]  # packet that brought the first byte

    @property
    def last_offset(self) -> int:
        """Stream offset of the last frame taken."""
        return int(self.starts[self.k - 1]) + self.base

    def fed(self, cut: int) -> tuple[int, int]:
        """``(segments, stream end)``: how many of the run's segments come
        before packet ``cut``, and where they end in the run's stream."""
        m = int(np.searchsorted(self.chunks, cut, "left"))
        return m, int(self.cum_end[m - 1]) if m else 0

    def rest(self, m: int, used: int) -> tuple[bytes, int, int]:
        """What the parser keeps after the taken frames when it was fed the
        first ``m`` segments (``used``: their end in the run's stream):
        ``(stream, stop, start_ts)``, the bytes from ``stream[stop:used]`` on
        being the start of the next frame, brought at ``start_ts``."""
        k = self.k
        stop = int(self.starts[k - 1] + self.hls[k - 1] + self.lengths[k - 1]) if k else 0
        if stop < used and stop >= self.held:  # the next frame's first byte came in a chunk
            start_ts = int(self.stamps[int(self.marks[np.searchsorted(self.cum_end, stop,
                                                                       "right")])])
        else:
            start_ts = self.held_since
        if self._stream is None and stop < used:
            self._stream = joined(self.buf, self.ps, self.pe)
        return self._stream or b"", stop, start_ts

    def segments(self, lo: int, m: int) -> list[bytes]:
        """The payloads of segments ``lo`` to ``m``."""
        return [self.buf[x:y] for x, y in zip(self.ps[lo:m].tolist(), self.pe[lo:m].tolist(),
                                              strict=True)]


def per_frame(runs: Sequence[FrameRun], name: str) -> np.ndarray:
    """Per-frame attribute ``name`` of the frames ``runs`` took, one run after the other."""
    return np.concatenate([getattr(run, name)[:run.k] for run in runs])


def frame_columns(runs: Sequence[FrameRun]) -> dict[str, np.ndarray]:
    """The frames that ``runs`` took, one run after the other, as columns of
    their header fields (the frames table's own, but for the times and
    packets, which the driver adds). Made once for a block's runs: the same
    dozen NumPy calls for each of a block's ~80 runs were 4% of chat's
    ``analyze -o``."""
    b0, masked = per_frame(runs, "b0"), per_frame(runs, "masked")
    kb = np.concatenate([run.key_bytes for run in runs]).astype(np.uint32)
    return {
        "offset": np.concatenate([run.starts[:run.k] + run.base for run in runs]),
        "fin": (b0 & FIN) != 0,
        "rsv1": (b0 & RSV1) != 0,
        "rsv2": (b0 & RSV2) != 0,
        "rsv3": (b0 & RSV3) != 0,
        "opcode": (b0 & OPCODE).astype(np.uint8),
        "masked": masked,
        "mask_key": np.where(masked, (kb[:, 0] << 24) | (kb[:, 1] << 16)
                             | (kb[:, 2] << 8) | kb[:, 3], 0).astype(np.uint32),
        "length_encoding": per_frame(runs, "enc").astype(np.uint8),
        "payload_len": per_frame(runs, "lengths").astype(np.uint64),
        "header_len": per_frame(runs, "hls").astype(np.uint8),
    }
