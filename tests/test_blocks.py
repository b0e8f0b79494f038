"""The block path (``Pipeline.receive_batch``) gives the per-packet path's records.

:mod:`wspcap.engine.runs` takes the steady state of established connections a
block of packets at a time and leaves everything else to the per-packet path;
the records must not depend on which path made them, nor on where the blocks
are cut. Each test here reads a capture packet by packet and in batches (cut
at seeded random places) and compares the four tables.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from golden import lossy
from golden.crafted import Conversation
from golden.paths import SAMPLES_DIR, peers_location
from golden.rfc6455 import BINARY, CLOSE, CONT, PING, PONG, TEXT, close_payload, frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.utils import wrpcap

from wspcap.api.reading import _finish_records, analyze_to, read
from wspcap.engine import Options, Pipeline
from wspcap.engine import runs as blocks
from wspcap.sources import Batch, files, open_capture
from wspcap.tables.capture import Capture, CaptureInfo
from wspcap.ws.frames import FrameParser
from wspcap.ws.runs import FrameRun, whole_frames

TABLES = ("connections", "frames", "messages", "anomalies")
#: the module's own threshold (the fixture below lowers it for every test)
MIN_PACKETS = blocks.MIN_PACKETS


@pytest.fixture(autouse=True)
def _every_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The block path for runs of any length, so that small captures cut into
    small blocks exercise it (by default short runs go per packet, which
    costs less)."""
    monkeypatch.setattr(blocks, "MIN_PACKETS", 1)


def per_packet(path: Path, options: Options | None = None) -> tuple[Capture, Pipeline]:
    p = Pipeline(options)
    with open_capture(path) as cap:
        for number, ts, linktype, data, _wirelen in cap:
            p.receive_packet(number, ts, linktype, data)
        info = CaptureInfo(str(path), cap.format)
        return Capture.from_collector(*_finish_records(p, info, cap.truncated)), p


def split(batch: Batch, rng: random.Random | None, most: int) -> Iterator[Batch]:
    """``batch`` cut into batches of 1 to ``most`` packets (whole if no ``rng``)."""
    if rng is None:
        yield batch
        return
    i, n = 0, len(batch.starts)
    while i < n:
        k = rng.randint(1, most)
        yield Batch(batch.first + i, batch.linktype, batch.buf, batch.starts[i:i + k],
                    batch.caplens[i:i + k], batch.stamps[i:i + k], batch.wirelens[i:i + k])
        i += k


def batched(path: Path, seed: int | None, most: int = 16,
            options: Options | None = None) -> tuple[Capture, Pipeline]:
    rng = random.Random(seed) if seed is not None else None
    p = Pipeline(options)
    with open_capture(path) as cap:
        for batch in cap.batches():
            for part in split(batch, rng, most):
                p.receive_batch(part)
        info = CaptureInfo(str(path), cap.format)
        return Capture.from_collector(*_finish_records(p, info, cap.truncated)), p


def assert_same(path: Path, seeds: tuple[int | None, ...] = (None, 1, 2),
                options: Options | None = None) -> int:
    """Compare the paths; returns the frames the block path made (over the seeds)."""
    want, _ = per_packet(path, options)
    taken = 0
    for seed in seeds:
        got, p = batched(path, seed, options=options)
        taken += p.block_frames
        for name in TABLES:
            pd.testing.assert_frame_equal(getattr(got, name), getattr(want, name),
                                          obj=f"{path.name} seed={seed} {name}")
    return taken


@pytest.mark.parametrize("path", sorted(SAMPLES_DIR.rglob("*.pcap*")), ids=lambda p: p.name)
def test_samples(path: Path) -> None:
    assert_same(path)


def _peer_captures() -> list[Path]:
    root = peers_location()
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.suffix in (".pcap", ".pcapng"))


@pytest.mark.parametrize("path", _peer_captures(), ids=lambda p: p.name)
def test_peer_captures(path: Path) -> None:
    assert_same(path)


@pytest.mark.parametrize("name", sorted(lossy.BUILDERS))
def test_lossy_captures(name: str, tmp_path: Path) -> None:
    """Fragmented messages with bytes lost, also compressed; a frame declaring more
    than the payload cap (issue 15 items 6 to 8)."""
    assert_same(lossy.BUILDERS[name]().write(tmp_path / f"{name}.pcap"))


def test_frame_over_a_small_cap(tmp_path: Path) -> None:
    """A frame over ``max_payload`` whose header comes with the end of the frame before."""
    path = lossy.oversized_frame(3000).write(tmp_path / "oversized.pcap")
    assert_same(path, options=Options(max_payload=1000))


def _steady(tmp_path: Path) -> Path:
    """A plain conversation, with frames cut across segments and several
    frames in one segment."""
    return _steady_conversation(Conversation()).crafted("steady").write(
        tmp_path / "steady.pcap")


def _steady_conversation(conv: Conversation) -> Conversation:
    conv.open()
    conv.upgrade()
    rng = random.Random(7)
    for n in range(200):
        d = "c2s" if n % 3 else "s2c"
        wire = b"".join(conv.message(d, TEXT if n % 2 else BINARY,
                                     bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
                                     if n % 2 == 0 else f"message {n} ✓".encode())
                        for _ in range(rng.randint(1, 3)))
        cuts = sorted(rng.sample(range(1, len(wire)), min(2, len(wire) - 1)))
        sizes = [b - a for a, b in zip([0, *cuts], [*cuts, len(wire)])]
        conv.send(d, wire, sizes)
    conv.closing_handshake()
    conv.close()
    return conv


def test_block_path_takes_the_steady_state(tmp_path: Path) -> None:
    """A plain conversation goes mostly through the block path (so the tests
    above compare something)."""
    path = _steady(tmp_path)
    want, _ = per_packet(path)
    got, p = batched(path, 3, most=64)
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(got, name), getattr(want, name), obj=name)
    assert p.block_frames > 0.8 * len(want.frames)


def _in_one_block(path: Path) -> tuple[Capture, Pipeline]:
    """Read ``path`` (a capture of one file block) as one batch; its tables
    must be the per-packet path's. Returns them and the pipeline."""
    want, _ = per_packet(path)
    got, p = batched(path, None)
    with open_capture(path) as cap:
        assert len(list(cap.batches())) == 1
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(got, name), getattr(want, name), obj=name)
    return want, p


@pytest.mark.parametrize("splits", [0, blocks.SPLITS])
def test_block_cut_after_the_handshake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       splits: int) -> None:
    """A whole conversation in one block, handshake included: the connection
    is not ready at the block's start, so without a cut every packet goes per
    packet; with the cut after its first packets, the rest takes the block
    path. The records are the same either way."""
    monkeypatch.setattr(blocks, "MIN_PACKETS", MIN_PACKETS)
    monkeypatch.setattr(blocks, "SPLITS", splits)
    path = _steady(tmp_path)
    want, p = _in_one_block(path)
    if splits:
        assert p.block_frames > 0.8 * len(want.frames)
    else:
        assert p.block_frames == 0


@pytest.mark.parametrize("splits", [0, blocks.SPLITS])
def test_block_cuts_for_connections_starting_in_the_block(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, splits: int) -> None:
    """Four conversations in one block, each starting a while after the one
    before (a capture where connections come and go): the cuts, taken again
    in each part, put nearly all their frames on the block path (one level
    of cuts alone puts 69% there), and the records are the per-packet
    path's. Without cuts, none is ready at the block's start."""
    monkeypatch.setattr(blocks, "MIN_PACKETS", MIN_PACKETS)
    monkeypatch.setattr(blocks, "SPLITS", splits)
    convs = [_steady_conversation(Conversation(client=("10.0.0.1", 40001 + i)))
             for i in range(4)]
    # Conversation i starts after the first 150 * i packets of the others.
    timeline = sorted((150 * i + n, i, pkt) for i, conv in enumerate(convs)
                      for n, pkt in enumerate(conv.packets))
    packets = []
    for n, (_at, _i, pkt) in enumerate(timeline):
        copy = pkt.copy()
        copy.time = 1_700_000_000 + n / 1000
        packets.append(copy)
    path = tmp_path / "staggered.pcap"
    wrpcap(str(path), packets)
    want, p = _in_one_block(path)
    assert len(want.connections) == 4
    if splits:
        assert p.block_frames > 0.9 * len(want.frames), (p.block_frames, len(want.frames))
    else:
        assert p.block_frames == 0


@pytest.mark.parametrize("resumes", [0, blocks.RESUMES])
def test_block_path_resumes_after_retransmissions(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  resumes: int) -> None:
    """A steady conversation in one block, with a segment sent twice at three
    places (as a sender that timed out too early does): each copy goes per
    packet, and the block path takes the connection again after it, so that
    nearly every frame is still the block path's, and the records are the
    per-packet path's. Without resuming, a connection's frames after its
    first retransmission in a block all went per packet (``RESUMES`` 0: 24%
    of them were the block path's here)."""
    monkeypatch.setattr(blocks, "MIN_PACKETS", MIN_PACKETS)
    monkeypatch.setattr(blocks, "RESUMES", resumes)
    conv = Conversation()
    conv.open()
    conv.upgrade()
    for n in range(600):
        d = "c2s" if n % 2 else "s2c"
        segs = conv.send(d, conv.message(d, TEXT, f"message {n}".encode()), keep=False)
        conv.packets += segs
        if n in (150, 300, 450):
            conv.packets.append(segs[0])  # the same segment again
        conv.segment("s2c" if d == "c2s" else "c2s", flags="A")
    conv.closing_handshake()
    conv.close()
    path = conv.crafted("retransmitted").write(tmp_path / "retransmitted.pcap")
    # the first part of the block is cut where the connection is ready (see above)
    want, p = _in_one_block(path)
    if resumes:
        assert p.block_frames > 0.95 * len(want.frames), (p.block_frames, len(want.frames))
    else:
        assert p.block_frames < 0.3 * len(want.frames), (p.block_frames, len(want.frames))


# -- generated conversations ---------------------------------------------------------------

#: what one step of a generated conversation sends
KINDS = ("text", "binary", "ping", "pong", "empty", "long", "bad_utf8", "unmasked",
         "rsv", "fragmented", "nonminimal", "close")


def _wire(conv: Conversation, d: str, kind: str, size: int) -> bytes:
    body = bytes((i * 7 + size) & 0x7F for i in range(size))  # ASCII: valid UTF-8
    mask = conv.next_mask() if d == "c2s" else None
    if kind == "unmasked":
        mask = None if d == "c2s" else conv.next_mask()
    if kind in ("text", "binary", "ping", "pong", "empty", "long", "unmasked"):
        op = {"binary": BINARY, "ping": PING, "pong": PONG}.get(kind, TEXT)
        payload = b"" if kind == "empty" else body * (40 if kind == "long" else 1)
        return frame(op, payload[:125] if op in (PING, PONG) else payload, mask=mask)
    if kind == "bad_utf8":
        return frame(TEXT, body + b"\xff\xfe", mask=mask)
    if kind == "rsv":
        return frame(BINARY, body, rsv=2, mask=mask)
    if kind == "nonminimal":
        return frame(BINARY, body[:100], width=16, mask=mask)
    if kind == "close":
        return frame(CLOSE, close_payload(1000, "bye"), mask=mask)
    half = size // 2  # fragmented
    return (frame(TEXT, body[:half], fin=False, mask=mask)
            + frame(CONT, body[half:], mask=conv.next_mask() if d == "c2s" else None))


step = st.tuples(st.integers(0, 2), st.sampled_from(("c2s", "s2c")), st.sampled_from(KINDS),
                 st.integers(0, 300), st.integers(1, 3), st.sampled_from(
                     ("", "", "", "retransmit", "swap", "lose")))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=30), seed=st.integers(0, 2**16),
       most=st.integers(1, 40))
def test_generated_conversations(tmp_path_factory: pytest.TempPathFactory,
                                 steps: list[tuple[int, str, str, int, int, str]],
                                 seed: int, most: int) -> None:
    """Interleaved connections sending every kind of frame, cut anywhere, with
    retransmitted, reordered and lost segments: same records either way."""
    convs = [Conversation(client=("10.0.0.1", 40001 + i)) for i in range(3)]
    for conv in convs:
        conv.open()
        conv.upgrade()
    for c, d, kind, size, pieces, trouble in steps:
        conv = convs[c]
        wire = _wire(conv, d, kind, size)
        cuts = sorted(random.Random(seed + size).sample(range(1, len(wire)),
                                                         min(pieces - 1, len(wire) - 1)))
        sizes = [b - a for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
        segs = conv.send(d, wire, sizes, ack=False, keep=False)
        if trouble == "retransmit":
            segs = [*segs, segs[0]]
        elif trouble == "swap" and len(segs) > 1:
            segs = [segs[1], segs[0], *segs[2:]]
        elif trouble == "lose" and len(segs) > 1:
            segs = segs[1:]
        conv.packets += segs
        conv.segment("s2c" if d == "c2s" else "c2s", flags="A")
    rng = random.Random(seed)
    queues = [list(conv.packets) for conv in convs]
    packets = []
    while any(queues):  # interleave the connections, each in its own order
        packets.append(rng.choice([q for q in queues if q]).pop(0))
    for i, pkt in enumerate(packets):
        pkt.time = 1_700_000_000 + i / 1000
    path = tmp_path_factory.mktemp("gen") / "gen.pcap"
    wrpcap(str(path), packets)
    want, _ = per_packet(path)
    for s in (seed, seed + 1):
        got, _p = batched(path, s, most)
        for name in TABLES:
            pd.testing.assert_frame_equal(getattr(got, name), getattr(want, name),
                                          obj=f"seed={s} {name}")


class _NoSink:
    def frame(self, frame: object) -> None:
        raise AssertionError("scan emits nothing")

    def anomaly_at_offset(self, *args: object) -> None:
        raise AssertionError("scan reports nothing")


#: payload lengths, with those where a wrong reading of the length fields could
#: still add up (119 + a 64-bit header is 2 + 127) and the width boundaries
payload_len = st.one_of(st.integers(0, 300), st.integers(0, 70_000),
                        st.sampled_from((119, 125, 126, 127, 0xFFFF, 0x10000)))
wire_frame = st.tuples(payload_len, st.booleans(), st.sampled_from((None, 16, 64)))


@settings(max_examples=150, deadline=None)
@given(frames=st.lists(wire_frame, min_size=1, max_size=6),
       cuts=st.lists(st.integers(1, 140_000), max_size=3), gaps=st.lists(st.integers(0, 9)),
       recut=st.booleans())
def test_whole_frames_are_what_the_parser_scans(frames: list[tuple[int, bool, int | None]],
                                                cuts: list[int], gaps: list[int],
                                                recut: bool) -> None:
    """Segments laid out in a block's buffer (other bytes between them): when
    each is one whole frame with a 7- or 16-bit length, _whole_frames gives the
    header and payload lengths FrameParser.scan finds; otherwise None."""
    wires = []
    for n, masked, width in frames:
        if width == 16 and n > 0xFFFF:
            width = 64
        wires.append(frame(BINARY, bytes(n), mask=b"\x01\x02\x03\x04" if masked else None,
                           width=width))
    joined = b"".join(wires)
    segments = wires
    if recut:  # the same bytes cut elsewhere
        bounds = sorted({c for c in cuts if c < len(joined)} | {0, len(joined)})
        segments = [joined[a:b] for a, b in pairwise(bounds)]
    buf = bytearray()
    ps = []
    for i, seg in enumerate(segments):
        buf += b"\xff" * (gaps[i] if i < len(gaps) else 3)  # a packet's headers
        ps.append(len(buf))
        buf += seg
    starts = np.array(ps, np.int64)
    sizes = np.array([len(seg) for seg in segments], np.int64)
    got = whole_frames(bytes(buf), starts, sizes)
    _stream, fs, hls, lengths = FrameParser(_NoSink()).scan(joined)
    one_each = fs == list(np.cumsum(sizes) - sizes) and len(fs) == len(segments)
    if one_each and all(hl - 4 * (b & 0x80 != 0) < 10 for hl, b in
                        zip(hls, (joined[x + 1] for x in fs), strict=True)):
        assert got is not None
        assert got[0].tolist() == hls and got[1].tolist() == lengths
    else:
        assert got is None


@pytest.mark.parametrize("spill_bytes", [0, 4096])
@pytest.mark.parametrize("name", ["plain.pcap", "deflate.pcap", "fragmented.pcap",
                                  "anomalies/ws-close-code-invalid.pcap"])
def test_written_in_parts_from_blocks(tmp_path: Path, name: str, spill_bytes: int,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """analyze_to over the block path (records as column chunks, packed from
    the tables written, checked as connections end) writes read()'s tables."""
    path = SAMPLES_DIR / name
    want = read(path)
    emitted = []
    take = FrameRun.take
    monkeypatch.setattr(files, "BLOCK_SIZE", 700)  # small blocks: most after the handshake
    monkeypatch.setattr(FrameRun, "take",
                        lambda self, *a: emitted.append(self.k) or take(self, *a))
    analyze_to(path, tmp_path / "parts", spill_bytes=spill_bytes)
    assert sum(emitted) > 0  # the block path made some of the records
    for table in TABLES:
        got = pd.read_parquet(tmp_path / "parts" / f"{table}.parquet")
        expected = getattr(want, table)
        pd.testing.assert_frame_equal(got, expected.astype(got.dtypes.to_dict()), obj=table)


def test_pack_and_views_with_column_chunks() -> None:
    """Records added as columns, then tuples: views, keys and packing see them
    all, in order."""
    path = SAMPLES_DIR / "plain.pcap"
    want, _ = per_packet(path)
    p = Pipeline()
    with open_capture(path) as cap:
        for batch in cap.batches():
            for part in split(batch, random.Random(5), 3):
                p.receive_batch(part)
    c = p.collector
    assert p.block_frames and len(c.frame_chunks)
    frames = list(c.frame_view())
    keys = c.all_frame_keys().tolist()
    assert len(frames) == len(want.frames) == len(keys)
    assert [f.payload for f in frames] == list(want.frames["payload"])
    c.pack()
    assert not c.unpacked
    packed = list(c.frame_view())
    assert [f._replace(payload=b"") for f in frames if f.opcode < 8] == \
        [f for f in packed if f.opcode < 8]
    assert c.all_frame_keys().tolist() == keys
