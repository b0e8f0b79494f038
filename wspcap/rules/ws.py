"""Checks of the conversation's control flow (RFC 6455 sections 5.5 and 7).

Sans-I/O: performs no I/O. Frame- and message-level rules that need only one
frame are checked by the parsers (:mod:`wspcap.ws`); the rules here follow a
connection's frames in both directions, in capture order: the closing
handshake, pings and their pongs, frames sent after a close.

Evidence, not guesses: a ping counts as unanswered only when the peer visibly
went on without answering (it closed, ended TCP, or kept sending for longer
than ``pong_timeout``), and never when the capture missed bytes of the
peer's direction; a close counts as unanswered only once TCP ended.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from wspcap.rules.context import C2S, NO_POSITIONS, S2C, Conn, Context, check, preview
from wspcap.ws.frames import opcode_name
from wspcap.ws.records import group_positions

if TYPE_CHECKING:
    from wspcap.ws.frames import Frame

__all__ = ["control_flow"]

_OTHER = {C2S: S2C, S2C: C2S}
_DIRS = (C2S, S2C)
_WHO = {C2S: "client", S2C: "server"}
_CLOSE, _PING, _PONG = 8, 9, 10


def _close_code(frame: Frame) -> int | None:
    p = frame.payload
    return int.from_bytes(p[:2], "big") if len(p) >= 2 else None


def _close_text(frame: Frame) -> str:
    code = _close_code(frame)
    return f"close {code}" if code is not None else "close (no code)"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


@check("ws")
def control_flow(ctx: Context) -> None:
    """Closing handshake, ping/pong and data after close, per connection.

    RFC 6455 section 5.5.1: "If an endpoint receives a Close frame and did not
    previously send a Close frame, the endpoint MUST send a Close frame in
    response"; "The application MUST NOT send any more data frames after
    sending a Close frame." Section 5.5.2: "Upon receipt of a Ping frame, an
    endpoint MUST send a Pong frame in response, unless it already received a
    Close frame" (it "MAY elect to send a Pong frame for only the most
    recently processed Ping frame"). Section 5.5.3: the pong "MUST have
    identical Application data" to the ping's; an unsolicited pong is allowed.
    """
    timeout = int(ctx.thresholds.pong_timeout * 1e9)
    control = np.flatnonzero(ctx.array("opcode") >= _CLOSE)  # every connection's at once
    of_conn = group_positions(ctx.frame_keys[control] >> 1)
    for conn in ctx.conns:
        if conn.established:
            _control_flow(ctx, conn, timeout, control[of_conn.get(conn.conn_id, NO_POSITIONS)])


def _control_flow(ctx: Context, conn: Conn, timeout: int, control: np.ndarray) -> None:
    """``control``: the positions of the connection's control frames, in order."""
    frames = ctx.frames
    indexes = conn.frame_pos.searchsorted(control)
    close: dict[str, tuple[int, Frame] | None] = {C2S: None, S2C: None}
    close_pos = {C2S: -1, S2C: -1}
    pings: dict[str, list[tuple[int, Frame]]] = {C2S: [], S2C: []}
    mismatched: dict[str, list[tuple[int, Frame, Frame | None]]] = {C2S: [], S2C: []}
    # in capture order, both directions
    for index, pos, side in zip(indexes.tolist(), control.tolist(),
                                (ctx.frame_keys[control] & 1).tolist(), strict=True):
        d = _DIRS[side]
        if close[d] is not None:
            continue  # after its own close: ws_data_after_close, below
        frame = frames[pos]
        op = frame.opcode
        if op == _CLOSE:
            close[d] = (index, frame)
            close_pos[d] = pos
        elif op == _PING:
            if close[_OTHER[d]] is None and not frame.missing:
                pings[d].append((index, frame))
        elif op == _PONG:
            outstanding = pings[_OTHER[d]]
            for j in range(len(outstanding) - 1, -1, -1):
                if outstanding[j][1].payload == frame.payload:
                    del outstanding[:j + 1]  # it answers this ping and those before
                    break
            else:
                if outstanding and not frame.missing:
                    mismatched[d].append((index, frame, outstanding[-1][1]))
    for d in (C2S, S2C):
        if close[d] is not None:
            mine = ctx.positions(conn, d)
            after = mine[int(mine.searchsorted(close_pos[d], "right")):]
            if len(after):
                _, index, _, frame = ctx.frame_at(int(after[0]))
                ctx.report_frame(conn, index, d, frame, "ws_data_after_close",
                                 f"{opcode_name(frame.opcode)} frame after this side's close "
                                 f"(frame {close[d][0]}); "  # type: ignore[index]
                                 f"{_plural(len(after), 'frame')} after it in all")
        for index, frame, ping in mismatched[d]:  # one row per pong: count = pongs
            ctx.report_frame(conn, index, d, frame, "ws_pong_mismatch",
                             f"pong {preview(frame.payload)} matches no outstanding ping "
                             f"(latest {preview(ping.payload) if ping else 'none'})")
    if conn.accept_failed:
        return  # a conforming client fails such a connection: no pongs or closes owed
    for d in (C2S, S2C):
        peer = _OTHER[d]
        if conn.gap_bytes[peer] or not pings[d]:
            continue
        error_at = ctx.first_error(conn, d)
        theirs = ctx.array("ts")[ctx.positions(conn, peer)]
        last_ts = int(theirs.max()) if len(theirs) else -1
        peer_close = close[peer]
        failed_at = (peer_close[0] if peer_close is not None
                     and _close_code(peer_close[1]) not in (None, 1000, 1001) else None)
        unanswered = []
        for index, frame in pings[d]:
            if error_at is not None and error_at <= index:
                break  # the peer had to fail the connection: no pong owed from here on
            if failed_at is not None and failed_at > index:
                continue  # the peer failed the connection (for this ping, maybe)
            why = _went_on(conn, peer, index, frame, peer_close, last_ts, timeout)
            if why:
                unanswered.append((index, frame, why))
        for index, frame, why in unanswered:  # one row per ping: count = pings
            ctx.report_frame(conn, index, d, frame, "ws_ping_unanswered",
                             f"ping {preview(frame.payload)} got no pong ({why})")
    _closing(ctx, conn, close)


def _went_on(conn: Conn, peer: str, index: int, ping: Frame,
             peer_close: tuple[int, Frame] | None, peer_last_ts: int, timeout: int) -> str:
    """Why the peer clearly owed a pong, or ``""`` when the capture cannot tell."""
    who = _WHO[peer]
    if peer_close is not None and peer_close[0] > index:
        return f"the {who} closed without answering"
    end = conn.end_ts[peer]
    if end is not None and end >= ping.ts:
        return f"the {who} ended TCP without answering"
    if peer_last_ts > ping.ts + timeout:
        return f"the {who} went on sending for {(peer_last_ts - ping.ts) / 1e9:.1f} s"
    return ""


def _closing(ctx: Context, conn: Conn, close: dict[str, tuple[int, Frame] | None]) -> None:
    if not conn.ended:
        return  # the capture stopped first: the answer may still come
    sent = [d for d in (C2S, S2C) if close[d] is not None]
    if len(sent) == 1:
        d = sent[0]
        peer = _OTHER[d]
        if conn.gap_bytes[peer]:
            return
        index, frame = close[d]  # type: ignore[misc]
        error_at = ctx.first_error(conn, d)
        if error_at is not None and error_at <= index:
            return  # the peer had to fail the connection: no close echo owed
        carrier = "the stream" if conn.h2 else "TCP"
        how = ("reset " + ("the stream" if conn.h2 else "the connection") if conn.rst[peer]
               else f"ended {carrier}" if conn.fin[peer]
               else f"got {carrier} ended by the {_WHO[d]}")
        ctx.report_frame(conn, index, d, frame, "ws_close_unanswered",
                         f"{_close_text(frame)} from the {_WHO[d]} got no close in reply "
                         f"(the {_WHO[peer]} {how})")
    elif not sent:
        ends = sorted((ts, d) for d, ts in conn.end_ts.items() if ts is not None)
        if ends:
            ts, d = ends[0]
            if conn.h2:
                what, how = "the HTTP/2 stream", conn.h2_ends.get(
                    d, "RST_STREAM" if conn.rst[d] else "END_STREAM")
            else:
                what, how = "TCP", "RST" if conn.rst[d] else "FIN"
            ctx.report(conn.conn_id, ts, d, None, "ws_no_close",
                       f"{what} ended ({how} from the {_WHO[d]}) without a close frame")
        else:
            ctx.report(conn.conn_id, conn.ts_end, None, None, "ws_no_close",
                       f"{'the HTTP/2 stream' if conn.h2 else 'TCP'} ended without a close "
                       "frame")
