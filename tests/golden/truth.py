"""Compare what wspcap found with a sample's ground truth (``.truth.json``).

The truth file is written by the sender (see ``samples/README.md``): every
message and frame each side put on the wire. The functions here put both
sides into the same plain shape (lists of tuples and dicts) so a test can
``assert ours == theirs`` and get a readable diff.

Ordering: the truth lists messages by their *first* frame; wspcap emits a
message when its *last* frame arrives, so a ping sent between two fragments
comes before the message it interrupted. Expected messages are therefore
sorted by their last frame, which is the order a correct analyzer emits them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

DIRECTIONS = ("c2s", "s2c")


def load(path: Path) -> dict[str, Any]:
    """A truth file as a dict."""
    return json.loads(path.read_text(encoding="utf-8"))


def _na(value: Any) -> Any:
    """pandas' missing values as None, numpy scalars as Python ones."""
    if value is None or value is pd.NA:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value.item() if hasattr(value, "item") else value


# -- connections -------------------------------------------------------------------

def connection_rows(capture: Any, truth: dict[str, Any]) -> dict[int, pd.Series]:
    """Our connection row for each truth connection id, matched by client port.

    Raises:
        AssertionError: a truth connection has no row, or several.
    """
    conns = capture.connections
    rows = {}
    for tc in truth["connections"]:
        hits = conns[(conns.client_port == tc["client"]["port"])
                     & (conns.server_port == tc["server"]["port"])]
        assert len(hits) == 1, (
            f"connection {tc['id']} ({tc['label']}, client port {tc['client']['port']}): "
            f"{len(hits)} rows")
        rows[tc["id"]] = hits.iloc[0]
    return rows


def expected_connection(tc: dict[str, Any]) -> dict[str, Any]:
    """The connection row fields the truth determines."""
    hs = tc["handshake"]
    close = tc["close"]
    return {
        "client_ip": tc["client"]["ip"], "client_port": tc["client"]["port"],
        "server_ip": tc["server"]["ip"], "server_port": tc["server"]["port"],
        "handshake": True, "established": True, "midstream": False,
        "method": hs["method"], "uri": hs["path"], "host": hs["host"],
        "origin": hs["origin"], "user_agent": hs["user_agent"],
        "key": hs["sec_websocket_key"], "accept": hs["sec_websocket_accept"],
        "accept_valid": True, "status": hs["response_status"],
        "subprotocol": hs["subprotocol"],
        "protocols_offered": hs["subprotocols_offered"] or None,
        "extensions_offered": hs["extensions_offered"],
        "extensions": hs["extensions_accepted"],
        "permessage_deflate": tc["permessage_deflate"],
        "close_code_c2s": close["c2s"]["code"] if close["c2s"] else None,
        "close_reason_c2s": close["c2s"]["reason"] if close["c2s"] else None,
        "close_code_s2c": close["s2c"]["code"] if close["s2c"] else None,
        "close_reason_s2c": close["s2c"]["reason"] if close["s2c"] else None,
        "frames_c2s": tc["counts"]["c2s"]["frames"],
        "frames_s2c": tc["counts"]["s2c"]["frames"],
        "messages": tc["counts"]["c2s"]["messages"] + tc["counts"]["s2c"]["messages"],
        "gap_bytes": 0,
    }


def actual_connection(row: pd.Series) -> dict[str, Any]:
    """The same fields from our connection row."""
    out = {name: _na(row[name]) for name in (
        "client_ip", "client_port", "server_ip", "server_port", "handshake", "established",
        "midstream", "method", "uri", "host", "origin", "user_agent", "key", "accept",
        "accept_valid", "status", "subprotocol", "extensions_offered", "extensions",
        "permessage_deflate", "close_code_c2s", "close_reason_c2s", "close_code_s2c",
        "close_reason_s2c", "frames_c2s", "frames_s2c", "messages", "gap_bytes")}
    offered = _na(row["protocols_offered"])
    out["protocols_offered"] = ([p.strip() for p in offered.split(",")]
                                if offered is not None else None)
    return out


# -- frames -----------------------------------------------------------------------

def expected_frames(tc: dict[str, Any], direction: str) -> list[tuple[Any, ...]]:
    """(fin, rsv1, rsv2, rsv3, opcode, masked, payload_len, header_len) per frame."""
    return [(f["fin"], f["rsv1"], f["rsv2"], f["rsv3"], f["opcode"], f["masked"],
             f["payload_length"], f["header_length"])
            for f in tc["wire_frames"] if f["direction"] == direction]


def frames_of(capture: Any, conn_id: int, direction: str) -> pd.DataFrame:
    """Our frames of one connection and direction, in table order."""
    f = capture.frames
    return f[(f.conn_id == conn_id) & (f.direction == direction)]


def actual_frames(capture: Any, conn_id: int, direction: str) -> list[tuple[Any, ...]]:
    """Our frames in the shape of :func:`expected_frames`."""
    f = frames_of(capture, conn_id, direction)
    return [(bool(r.fin), bool(r.rsv1), bool(r.rsv2), bool(r.rsv3), int(r.opcode),
             bool(r.masked), int(r.payload_len), int(r.header_len))
            for r in f.itertuples(index=False)]


# -- messages --------------------------------------------------------------------------

def _truth_payload(m: dict[str, Any]) -> bytes:
    if m["type"] == "text":
        return m["payload"].encode("utf-8")
    return bytes.fromhex(m["payload"])


def expected_messages(tc: dict[str, Any], direction: str) -> list[dict[str, Any]]:
    """Every message one side sent, in the order an analyzer completes them."""
    msgs = [m for m in tc["messages"] if m["direction"] == direction]
    msgs.sort(key=lambda m: m["frames"][-1])
    dir_pos = _dir_positions(tc)
    out = []
    for m in msgs:
        close = m["type"] == "close"
        out.append({
            "type": m["type"],
            "payload": _truth_payload(m),
            "text": m["payload"] if m["type"] == "text" else None,
            "length": m["length"],
            "close_code": m.get("code") if close else None,
            "close_reason": m.get("reason") if close else None,
            "frames": m["fragments"],
            "compressed": m["compressed"],
            "wire_length": m["wire_length"],
            "first": dir_pos[m["frames"][0]],
            "last": dir_pos[m["frames"][-1]],
            "complete": True,
        })
    return out


def _dir_positions(tc: dict[str, Any]) -> dict[int, int]:
    """wire_frames index -> position among its direction's frames."""
    return {f["index"]: f["dir_index"] for f in tc["wire_frames"]}


def actual_messages(capture: Any, conn_id: int, direction: str) -> list[dict[str, Any]]:
    """Our messages of one connection and direction, in table order."""
    frames = capture.frames
    conn_frames = frames[frames.conn_id == conn_id]
    # frame_index -> position among the direction's frames
    pos = {}
    for d in DIRECTIONS:
        idx = conn_frames[conn_frames.direction == d].frame_index.tolist()
        pos.update({int(i): n for n, i in enumerate(idx)})
    m = capture.messages
    m = m[(m.conn_id == conn_id) & (m.direction == direction)]
    out = []
    for r in m.itertuples(index=False):
        out.append({
            "type": str(r.type),
            "payload": bytes(r.payload),
            "text": _na(r.text),
            "length": int(r.length),
            "close_code": _na(r.close_code),
            "close_reason": _na(r.close_reason),
            "frames": int(r.frames),
            "compressed": bool(r.compressed),
            "wire_length": int(r.wire_length),
            "first": pos.get(int(r.first_frame)),
            "last": pos.get(int(r.last_frame)),
            "complete": bool(r.complete),
        })
    return out


def expected_fragment_payloads(tc: dict[str, Any], direction: str) -> list[bytes]:
    """The payload of every frame of uncompressed messages, in frame order.

    Compressed messages are left out: the truth holds their fragments
    uncompressed, while a frame carries its compressed bytes.
    """
    frame_payload: dict[int, bytes] = {}
    for m in tc["messages"]:
        if m["direction"] != direction or m["compressed"]:
            continue
        if m["fragments"] == 1:
            frame_payload[m["frames"][0]] = _truth_payload(m)
        else:
            for index, part in zip(m["frames"], m["fragment_payloads"], strict=True):
                frame_payload[index] = (part.encode("utf-8") if m["type"] == "text"
                                        else bytes.fromhex(part))
    return [frame_payload[i] for i in sorted(frame_payload)]


def actual_fragment_payloads(capture: Any, conn_id: int, direction: str,
                             tc: dict[str, Any]) -> list[bytes]:
    """Our frame payloads for the frames :func:`expected_fragment_payloads` covers."""
    compressed_frames = {i for m in tc["messages"]
                         if m["direction"] == direction and m["compressed"]
                         for i in m["frames"]}
    dir_frames = [f["index"] for f in tc["wire_frames"] if f["direction"] == direction]
    ours = frames_of(capture, conn_id, direction).payload.tolist()
    assert len(ours) == len(dir_frames), "frame counts differ"
    return [bytes(p) for index, p in zip(dir_frames, ours)
            if index not in compressed_frames]
