"""Resource and denial-of-service checks (RFC 6455 section 10.4).

Sans-I/O: performs no I/O. Sizes, rates and times are compared with
:class:`~wspcap.rules.thresholds.Thresholds`. Each rule reports once per
connection and direction (the first place the threshold was passed, with a
count of the others), so a flood gives one row, not a flood of rows.
"""

from __future__ import annotations

import heapq
import math
from itertools import compress, count, islice, repeat
from operator import le, sub
from typing import TYPE_CHECKING

import numpy as np

from wspcap.rules.context import C2S, NO_POSITIONS, S2C, Conn, Context, check, over
from wspcap.timestamps import TS_NULL
from wspcap.ws.records import group_positions

if TYPE_CHECKING:
    from wspcap.ws.frames import Frame

__all__ = ["fragments", "many_connections", "rates", "sizes", "slow_frames", "slow_handshake"]

_NS = 1_000_000_000


@check("res")
def sizes(ctx: Context) -> None:
    """Declared frame lengths and message sizes over the thresholds."""
    th = ctx.thresholds
    huge, big = th.huge_declared_length, th.oversized_message
    for pos in over(ctx.array("payload_len"), huge):
        conn, index, d, f = ctx.frame_at(pos)
        ctx.report_frame(conn, index, d, f, "res_huge_declared_length",
                         f"declared {f.payload_len} bytes, {f.payload_len - f.missing} captured "
                         f"(threshold {huge})")
    for pos in over(ctx.message_array("length"), big):
        conn, d, m = ctx.message_at(pos)
        ctx.report(conn.conn_id, m.ts_end, d, m.first_frame, "res_oversized_message",
                   f"{m.length} bytes in {m.frames} frame{'' if m.frames == 1 else 's'} "
                   f"(threshold {big})", m.packet_end)


def _first_burst(times: np.ndarray, window: int, limit: float) -> tuple[int, int] | None:
    """The first item at which more than ``limit`` items fall within ``window`` ns.

    Returns ``(item, count)`` or None. "More than ``limit`` within the window"
    means some ``times[j] - times[j - m + 1] <= window`` with ``m`` the least
    count over the limit; the first such ``j`` is where the threshold was
    passed (and ``m`` the count there). NumPy over the whole array.
    """
    m = math.floor(limit) + 1
    if len(times) < m:
        return None
    if not _differences_fit(times, times):  # hostile times: Python's unbounded ints
        t = times.tolist()
        spans = map(sub, islice(t, m - 1, None), t)
        first = next(compress(count(m - 1), map(le, spans, repeat(window))), None)
        return None if first is None else (first, m)
    hits = np.flatnonzero(times[m - 1:] - times[:len(times) - m + 1] <= window)
    return None if not len(hits) else (int(hits[0]) + m - 1, m)


def _differences_fit(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether every ``a[i] - b[j]`` fits in int64 (times from a capture can
    be anywhere in int64's range)."""
    if not len(a) or not len(b):
        return True
    hi, lo = int(a.max()) - int(b.min()), int(a.min()) - int(b.max())
    return -(1 << 63) <= lo and hi < (1 << 63)


@check("res")
def rates(ctx: Context) -> None:
    """Frames, and pings, per second on one direction (``res_frame_flood``, ``res_ping_flood``)."""
    th = ctx.thresholds
    window = int(th.rate_window * _NS)
    frame_limit = th.frame_flood_rate * th.rate_window
    ping_limit = th.ping_flood_rate * th.rate_window
    ts = ctx.array("ts")
    ping_at = np.flatnonzero(ctx.array("opcode") == 9)
    pings = {key: ping_at[pos] for key, pos in group_positions(ctx.frame_keys[ping_at]).items()}

    def flood(conn: Conn, d: str, at: np.ndarray, limit: float, code: str, what: str,
              rate: float) -> None:
        """Report the first burst of more than ``limit`` of ``at`` within the window."""
        if len(at) <= limit:
            return
        times = ts[at]
        known = times != TS_NULL
        if not known.all():  # times unknown: left out of the count
            at, times = at[known], times[known]
        hit = _first_burst(times, window, limit)
        if hit is not None:
            item, n = hit
            _, index, _, f = ctx.frame_at(int(at[item]))
            ctx.report_frame(conn, index, d, f, code, f"{n} {what} within "
                             f"{th.rate_window:g} s (threshold {rate:g}/s)")

    for conn in ctx.conns:
        for d in (C2S, S2C):
            flood(conn, d, ctx.positions(conn, d), frame_limit, "res_frame_flood", "frames",
                  th.frame_flood_rate)
            flood(conn, d, pings.get(conn.conn_id * 2 + (d == S2C), NO_POSITIONS), ping_limit,
                  "res_ping_flood", "pings", th.ping_flood_rate)


@check("res")
def fragments(ctx: Context) -> None:
    """Messages split into very many tiny fragments (``res_tiny_fragments``)."""
    th = ctx.thresholds
    least, size = th.tiny_fragments_count, th.tiny_fragment_size
    for pos in over(ctx.message_array("frames"), least - 1):
        conn, d, m = ctx.message_at(pos)
        if m.wire_length / m.frames < size:
            ctx.report(conn.conn_id, m.ts_end, d, m.first_frame, "res_tiny_fragments",
                       f"{m.frames} fragments of {m.wire_length / m.frames:.1f} bytes on "
                       f"average (thresholds {least} fragments, {size} bytes)", m.packet_end)


@check("res")
def slow_handshake(ctx: Context) -> None:
    """An upgrade request head that trickled in (Slowloris)."""
    limit = ctx.thresholds.slow_handshake
    for conn in ctx.conns:
        hs = conn.handshake
        if (hs is None or hs.request is None or conn.ts_request is None
                or conn.request_first_ts is None
                or TS_NULL in (conn.ts_request, conn.request_first_ts)):  # times unknown
            continue
        took = (conn.ts_request - conn.request_first_ts) / _NS
        if took > limit:
            ctx.report(conn.conn_id, conn.ts_request, C2S, None, "res_slow_handshake",
                       f"request head took {took:.1f} s to arrive ({hs.request.size} bytes; "
                       f"threshold {limit:g} s)", conn.request_packet)


@check("res")
def slow_frames(ctx: Context) -> None:
    """Frames whose bytes trickled in (slower than ``slow_frame_rate`` for ``slow_frame`` s)."""
    th = ctx.thresholds
    limit = int(th.slow_frame * _NS)
    ends, starts = ctx.array("ts"), ctx.array("ts_start")
    unknown = (ends == TS_NULL) | (starts == TS_NULL)  # unknown times: not slow
    known_ends, known_starts = ends[~unknown], starts[~unknown]
    took: np.ndarray | list[int]
    if _differences_fit(known_ends, known_starts):
        took = ends - starts
        took[unknown] = 0
    else:  # hostile times: Python's unbounded ints
        took = [0 if u else e - b for e, b, u in zip(ends.tolist(), starts.tolist(),
                                                      unknown.tolist(), strict=True)]
    slow: dict[tuple[int, str], list[tuple[Conn, int, Frame, float]]] = {}
    for pos in over(took, limit):
        conn, index, d, f = ctx.frame_at(pos)
        rate = (f.header_len + f.payload_len - f.missing) / (int(took[pos]) / _NS)
        if rate < th.slow_frame_rate:
            slow.setdefault((conn.conn_id, d), []).append((conn, index, f, rate))
    for (_, d), found in slow.items():
        conn, index, f, rate = found[0]
        size = f.header_len + f.payload_len - f.missing
        ctx.report_frame(conn, index, d, f, "res_slow_frame",
                         f"frame took {(f.ts - f.ts_start) / _NS:.1f} s to arrive "
                         f"({size} bytes, {rate:.1f} B/s; threshold {th.slow_frame:g} s"
                         f" under {th.slow_frame_rate:g} B/s); "
                         f"{len(found)} slow frame" + ("s" if len(found) > 1 else ""))


@check("res", scope="capture")
def many_connections(ctx: Context) -> None:
    """One client address holding many concurrent WebSocket connections to one
    server. A TLS connection that was not decrypted (no handshake read, no
    frame) is not known to be WebSocket: a pool of HTTPS connections is not
    counted."""
    limit = ctx.thresholds.many_connections
    groups: dict[tuple[str, str, int], list[Conn]] = {}
    for conn in ctx.conns:
        if conn.tls and conn.handshake is None and not conn.established:
            continue
        groups.setdefault((conn.client_ip, conn.server_ip, conn.server_port), []).append(conn)
    for (client, server, port), conns in groups.items():
        if len(conns) <= limit:
            continue
        ends: list[int] = []  # a heap of the end times of the connections open now
        for c in sorted(conns, key=lambda c: (c.ts_start, c.conn_id)):
            while ends and ends[0] < c.ts_start:
                heapq.heappop(ends)
            heapq.heappush(ends, c.ts_end)
            if len(ends) > limit:
                ctx.report(c.conn_id, c.ts_start, None, None, "res_many_connections",
                           f"{len(ends)} concurrent connections from {client} to "
                           f"{server}:{port} (threshold {limit})", None)
                break
