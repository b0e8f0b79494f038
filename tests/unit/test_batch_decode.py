"""decode_batch agrees with PacketDecoder on every packet it calls simple."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from golden.paths import SAMPLES_DIR
from hypothesis import given, settings
from hypothesis import strategies as st

from wspcap.decode import PacketDecoder, batch
from wspcap.decode.batch import decode_batch
from wspcap.sources import open_capture


def _packets() -> list[tuple[int, bytes]]:
    out = []
    golden = Path(__file__).resolve().parent.parent / "golden"
    for path in sorted([*SAMPLES_DIR.rglob("*.pcap*"), *golden.glob("*.pcap")]):
        with open_capture(path) as cap:
            out += [(linktype, data) for _n, _ts, linktype, data, _w in cap]
    return out


PACKETS = _packets()
LINKTYPES = sorted({lt for lt, _ in PACKETS})


def check(linktype: int, datas: list[bytes]) -> int:
    """Decode ``datas`` both ways; returns how many were simple."""
    buf = b"".join(datas)
    starts, pos = [], 0
    for d in datas:
        starts.append(pos)
        pos += len(d)
    dec = decode_batch(linktype, buf, starts, [len(d) for d in datas])
    if dec is None:
        return 0
    ref = PacketDecoder()
    for i, data in enumerate(datas):
        if not dec.simple[i]:
            continue
        seg = ref.decode(linktype, data)
        assert isinstance(seg, tuple), (i, data.hex())
        key, _src, _dst, _sport, _dport, seq, ack, flags, payload, missing = seg
        assert missing == 0
        assert dec.keys[dec.flow[i]] == key
        assert (dec.seq[i], dec.ack[i], dec.flags[i]) == (seq, ack, flags)
        assert buf[dec.pstart[i]:dec.pend[i]] == payload
    return int(dec.simple.sum())


@pytest.mark.parametrize("linktype", LINKTYPES)
def test_sample_packets(linktype: int) -> None:
    datas = [d for lt, d in PACKETS if lt == linktype]
    assert check(linktype, datas) > 0


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(PACKETS) - 1), st.lists(st.tuples(st.integers(0, 80),
                                                            st.integers(0, 255)), max_size=4),
       st.integers(0, 120))
def test_damaged_packets(which: int, flips: list[tuple[int, int]], cut: int) -> None:
    """Headers with bytes changed and packets cut short: whatever is called
    simple decodes the same as the reference decoder."""
    linktype, data = PACKETS[which]
    b = bytearray(data)
    for pos, value in flips:
        if pos < len(b):
            b[pos] = value
    rng = random.Random(which)
    neighbours = [d for lt, d in rng.sample(PACKETS, 5) if lt == linktype]
    check(linktype, [bytes(b[:len(b) - cut] if cut < len(b) else b), *neighbours])


# -- flow keys: grouped by hash, as np.unique groups them ----------------------------------

def _unique(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, inverse = np.unique(raw.view(f"V{raw.shape[1]}").ravel(), return_inverse=True)
    return uniq, inverse.ravel()


@settings(max_examples=200, deadline=None)
@given(width=st.sampled_from([12, 36]), distinct=st.integers(1, 60),
       picks=st.lists(st.integers(0, 59), min_size=1, max_size=400), seed=st.integers(0, 2**32))
def test_flow_keys_are_np_uniques(width: int, distinct: int, picks: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 256, size=(distinct, width), dtype=np.uint8)
    keys[rng.integers(0, distinct, distinct // 2)] = 0  # equal keys, and zero words
    raw = np.ascontiguousarray(keys[[p % distinct for p in picks]])
    got, want = batch.flow_keys(raw), _unique(raw)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def test_flow_keys_sharing_a_hash_are_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every key hashes to 0: the hash groups would merge different flows.
    monkeypatch.setattr(batch, "_SPREAD", (np.uint64(0), np.uint64(0)))
    raw = np.ascontiguousarray(np.array([[1] * 12, [2] * 12, [1] * 12, [3] * 12], np.uint8))
    got, want = batch.flow_keys(raw), _unique(raw)
    assert np.array_equal(got[0], want[0]) and got[1].tolist() == [0, 1, 0, 2]
