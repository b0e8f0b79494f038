"""Messages say exactly what they hold (issue 15 items 6, 7 and 8).

Captures from :mod:`golden.lossy` (scapy): fragmented messages with a whole
fragment, part of one, the first or the last lost in a TCP gap, also under
permessage-deflate; frames over the per-frame payload cap. A message is
``complete`` only when every byte of every one of its frames was captured,
``inflated`` only when the whole compressed message was inflated, and
``ws_message_incomplete`` names the stream offsets that are missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from golden import lossy

import wspcap

ANOMALIES_DIR = Path(__file__).resolve().parents[1] / "samples" / "anomalies"
GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def _read(crafted: Any, tmp_path: Path, options: wspcap.Options | None = None) -> Any:
    return wspcap.read(crafted.write(tmp_path / f"{crafted.name}.pcap"), options=options)


def _codes(capture: Any) -> list[str]:
    return sorted(str(c) for c in capture.anomalies.code if not str(c).startswith("sec_"))


def _incomplete_rows(capture: Any) -> pd.DataFrame:
    a = capture.anomalies
    return a[a.code == "ws_message_incomplete"]


def assert_consistent(capture: Any) -> None:
    """Each data message is ``complete`` exactly when the frames table says all of
    it is there: its first frame opens it, its last is final, no frame of it
    misses a byte, and its direction's frames from its first to its last follow
    each other with no stream byte between them."""
    f = capture.frames
    for m in capture.messages.itertuples(index=False):
        if m.compressed and not m.complete:
            assert m.inflated is not pd.NA and not m.inflated, m
        if m.type not in ("text", "binary", "continuation"):
            continue
        mine = f[(f.conn_id == m.conn_id) & (f.direction == m.direction)
                 & (f.frame_index >= m.first_frame) & (f.frame_index <= m.last_frame)]
        mine = mine.sort_values("frame_index")
        data = mine[mine.opcode < 8]
        ends = (mine.stream_offset + mine.header_len + mine.payload_len).to_numpy()[:-1]
        contiguous = bool((ends == mine.stream_offset.to_numpy()[1:]).all())
        whole = (bool(data.fin.iloc[-1]) and (data.missing == 0).all() and contiguous
                 and int(data.opcode.iloc[0]) != 0)
        assert bool(m.complete) == whole, m


# -- item 6: a fragment lost, whole or in part ----------------------------------------------

#: case -> (the lost stream range as indexes into notes["frames_at"] + [notes["end"]],
#: the frame whose payload misses bytes: (index into frames_at, bytes missing) or None)
CASES: dict[str, tuple[tuple[int, int] | None, tuple[int, int] | None]] = {
    "whole": ((2, 3), None),  # the third frame's segment is that frame exactly
    "head": ((2, 3), None),  # its header lost, the rest of it cannot be framed
    "middle": (None, (2, 100)),  # 100 bytes inside its payload (zero-filled)
    "across": ((2, 3), (1, 50)),  # the second's tail and the third's header
    "last": ((4, 5), None),  # the final fragment: the next message opens meanwhile
}


@pytest.mark.parametrize("d", ["c2s", "s2c"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_lost_fragment_makes_the_message_incomplete(case: str, d: str, tmp_path: Path) -> None:
    crafted = lossy.fragments_lost(case, d)
    capture = _read(crafted, tmp_path)
    m = capture.messages
    m = m[m.direction == d]
    assert list(m.type) == ["text", "text", "text", "close"]
    before, broken, after = (m.iloc[i] for i in range(3))
    assert (before.text, before.complete) == ("before", True)
    assert (after.text, after.complete) == ("after", True)
    assert not broken.complete
    assert broken.first_frame == before.first_frame + 1
    # what is there is in its place
    parts = crafted.notes["parts"]
    assert bytes(broken.payload)[:300] == parts[0]
    (row,) = _incomplete_rows(capture).itertuples(index=False)
    assert (row.direction, row.frame_index) == (d, broken.first_frame)
    at = [*crafted.notes["frames_at"], crafted.notes["end"]]
    lost, cut = CASES[case]
    if lost is not None:
        lo, hi = at[lost[0]], at[lost[1]]
        assert f"{hi - lo} stream bytes no captured frame holds (stream offsets {lo}-{hi})" \
            in row.detail
    if cut is not None:
        assert f"{cut[1]} of 300 in the frame at stream offset {at[cut[0]]}" in row.detail
    # the sender interleaved nothing: its final fragment was lost
    assert "ws_message_interleaved" not in _codes(capture)
    assert "tcp_gap" in _codes(capture)
    assert_consistent(capture)


def test_lost_fragment_is_in_the_frames_table(tmp_path: Path) -> None:
    """The frames table has no row for a fragment lost whole, and the message
    names its stream range: together they account for every byte sent."""
    crafted = lossy.fragments_lost("whole", "c2s")
    capture = _read(crafted, tmp_path)
    f = capture.frames
    at = crafted.notes["frames_at"]
    assert at[2] not in set(f.stream_offset)
    assert {at[0], at[1], at[3], at[4]} <= set(f.stream_offset)
    ((offset, size),) = crafted.notes["lost"]
    gap = capture.anomalies[capture.anomalies.code == "tcp_gap"].iloc[0]
    assert gap.detail == f"{size} bytes missing at stream offset {offset}"


def test_nothing_lost_nothing_flagged(tmp_path: Path) -> None:
    """The same conversation with nothing lost: every message complete, no flag."""
    capture = _read(lossy.deflate_lost_fragment(None), tmp_path)
    assert capture.messages.complete.all()
    assert capture.messages[capture.messages.compressed].inflated.eq(True).all()
    assert _codes(capture) == []
    assert_consistent(capture)


# -- item 6 under permessage-deflate ------------------------------------------------------------

@pytest.mark.parametrize("level", [0, 6])
def test_compressed_message_missing_a_fragment_is_not_inflated(level: int,
                                                              tmp_path: Path) -> None:
    """5 fragments, the third lost: not inflated (level 0 made stored blocks, which
    zlib inflates from 4 of the 5 fragments without a word), payload compressed."""
    crafted = lossy.deflate_lost_fragment(2, level)
    capture = _read(crafted, tmp_path)
    m = capture.messages[capture.messages.direction == "s2c"]
    first, broken = m.iloc[0], m.iloc[1]
    assert (first.text, first.inflated, first.complete) == (
        crafted.notes["first"].decode(), True, True)
    assert (broken.compressed, broken.inflated, broken.complete) == (True, False, False)
    data = crafted.notes["compressed"]
    size = -(-len(data) // 5)
    assert bytes(broken.payload) == data[:2 * size] + data[3 * size:]
    assert pd.isna(broken.text)
    (row,) = _incomplete_rows(capture).itertuples(index=False)
    assert row.detail.endswith("; not inflated")
    at = crafted.notes["frames_at"]
    assert f"stream offsets {at[2]}-{at[3]}" in row.detail
    codes = _codes(capture)
    # inflating what is left is not the sender's failure, nor bad UTF-8
    assert "pmd_inflate_failed" not in codes and "ws_invalid_utf8" not in codes
    assert_consistent(capture)


def test_message_after_a_lost_compressed_one(tmp_path: Path) -> None:
    """The next message refers back to the lost one's text: its window is unknown,
    so it is reported (pmd_context_lost), not inflated against a wrong window."""
    crafted = lossy.deflate_lost_fragment(4, 6)  # the final fragment lost
    capture = _read(crafted, tmp_path)
    m = capture.messages[capture.messages.direction == "s2c"]
    broken, after = m.iloc[1], m.iloc[2]
    assert (broken.inflated, broken.complete) == (False, False)
    assert (after.compressed, after.inflated, after.complete) == (True, False, True)
    codes = _codes(capture)
    assert "pmd_context_lost" in codes and "ws_message_interleaved" not in codes
    a = capture.anomalies
    assert a[a.code == "pmd_context_lost"].frame_index.tolist() == [after.first_frame]


def test_stored_blocks_after_a_lost_message_still_inflate(tmp_path: Path) -> None:
    """A message that does not refer back inflates as before."""
    crafted = lossy.deflate_lost_fragment(2, 0)
    capture = _read(crafted, tmp_path)
    after = capture.messages[capture.messages.direction == "s2c"].iloc[2]
    assert (after.text, after.inflated) == (crafted.notes["after"].decode(), True)


# -- item 7: orphan continuation frames ----------------------------------------------------------

def test_orphan_continuations_after_a_gap_are_incomplete(tmp_path: Path) -> None:
    capture = _read(lossy.fragments_lost("first", "s2c"), tmp_path)
    m = capture.messages[capture.messages.direction == "s2c"]
    orphans = m[m.type == "continuation"]
    assert len(orphans) == 4
    assert not orphans.complete.any()
    assert m[m.type == "text"].complete.all()
    assert _codes(capture).count("ws_orphan_continuation") == 4
    assert_consistent(capture)


def test_orphan_continuation_sample_is_incomplete() -> None:
    """samples/anomalies: a continuation frame with no message to continue (no gap)."""
    capture = wspcap.read(ANOMALIES_DIR / "ws-orphan-continuation.pcap")
    m = capture.messages
    assert (m.type == "continuation").sum() == 1
    assert not m[m.type == "continuation"].complete.any()
    assert_consistent(capture)


# -- the frames table and the messages table agree on every capture at hand ----------------------

@pytest.mark.parametrize("path", sorted(ANOMALIES_DIR.glob("*.pcap"))
                         + [GOLDEN_DIR / "lost_segment.pcap", GOLDEN_DIR / "lost_mid_frame.pcap",
                            GOLDEN_DIR / "snaplen_cut.pcap"], ids=lambda p: p.name)
def test_complete_agrees_with_the_frames(path: Path) -> None:
    assert_consistent(wspcap.read(path))


# -- item 8: the start time of a frame over the payload cap ---------------------------------------

@pytest.mark.parametrize(("size", "declared", "options"), [
    (3000, None, wspcap.Options(max_payload=1000)),  # over a small cap, whole
    (3000, 300 << 20, None),  # declares 300 MiB (over the default 256 MiB), 3000 sent
], ids=["small-cap", "declared-300MiB"])
def test_oversized_frame_starts_with_its_first_byte(size: int, declared: int | None,
                                                    options: wspcap.Options | None,
                                                    tmp_path: Path) -> None:
    """The big frame's header comes in the segment that completes the 200-byte frame
    before it (whose own first byte came a packet earlier): its ts_start is that
    segment's time, not an earlier frame's."""
    capture = _read(lossy.oversized_frame(size, declared), tmp_path, options)
    f = capture.frames[capture.frames.direction == "s2c"].reset_index(drop=True)
    assert list(f.payload_len[:5]) == [7, 7, 7, 200, declared or size]
    assert f.ts[:4].is_unique  # several frames before it, at distinct times
    split, big = f.iloc[3], f.iloc[4]
    assert split.ts_start < split.ts
    assert big.ts_start == split.ts
    assert big.missing > 0
    m = capture.messages
    (msg,) = m[m.first_frame == big.frame_index].itertuples(index=False)
    assert msg.ts_start == split.ts and not msg.complete
