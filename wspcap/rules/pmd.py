"""Checks of permessage-deflate messages (RFC 7692) across records.

Sans-I/O: performs no I/O. Inflation itself, and what it finds
(``pmd_inflate_failed``, ``pmd_window_bits_exceeded``,
``pmd_context_takeover_violated``, ``pmd_context_lost`` and the engine's hard
cut ``pmd_ratio_excessive``), happens in :mod:`wspcap.ws.deflate`; the
negotiation is checked in :mod:`wspcap.rules.http`.
"""

from __future__ import annotations

from wspcap.rules.context import Context, check, over

__all__ = ["inflation_ratio"]


@check("pmd")
def inflation_ratio(ctx: Context) -> None:
    """RFC 7692 section 8.1 (decompression bombs): messages that inflate too much.

    A message counts when it inflated to at least ``inflate_ratio_min`` bytes
    and its inflated size is over ``inflate_ratio`` times its compressed size.
    """
    th = ctx.thresholds
    ratio, minimum = th.inflate_ratio, th.inflate_ratio_min
    for pos in over(ctx.message_array("length"), minimum - 1):
        conn, d, m = ctx.message_at(pos)
        if not m.compressed:
            continue
        r = m.length / max(m.wire_length, 1)
        if r > ratio:
            ctx.report(conn.conn_id, m.ts_end, d, m.first_frame, "pmd_ratio_excessive",
                       f"{m.length} bytes inflated from {m.wire_length} (ratio {r:.0f}, "
                       f"threshold {ratio:g})", m.packet_end)
