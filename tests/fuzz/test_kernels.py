"""Fuzz the compiled kernels (``wspcap/*/_speedups.c``) with the bytes of
real captures, mutated, against their pure-Python references.

The seeds are the bundled samples' pcap files, read as raw bytes (record
headers and all), with bytes flipped and stretches cut; each kernel is then
called over that buffer at random positions (the ones its callers could
pass: inside the buffer), and must give what its reference gives, or refuse
with the same kind of error. A crash here would be a crash of the process:
this is what ``python -m tests.fuzz`` (mutated captures through
``wspcap.read``) would find slowly. Seeded, bounded in time. Skips where the
kernels are not built and no C compiler is installed (as
``tests/unit/test_speedups.py`` does).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from golden.kernels import kernel as _kernel
from golden.kernels import same_headers, same_whole_frames

from wspcap.decode.batch import LINK_MODES, py_headers
from wspcap.decode.link import AF_INET, AF_INET6
from wspcap.sources.files import pcap_records
from wspcap.tls.protection import py_open_runs
from wspcap.ws.mask import py_frame_payloads, py_unmask
from wspcap.ws.runs import py_whole_frames

SEED = 10_16  #: issue 16
CASES = 3000
BUDGET_S = 10.0
SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _corpus() -> list[bytes]:
    return [p.read_bytes() for p in sorted(SAMPLES.glob("*.pcap"))]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data[:rng.randrange(1, min(len(data), 1 << 16) + 1)])
    for _ in range(rng.randrange(0, 8)):
        buf[rng.randrange(len(buf))] = rng.randrange(256)
    if rng.random() < 0.3 and len(buf) > 2:
        a = rng.randrange(len(buf))
        del buf[a:a + rng.randrange(1, 64)]
    return bytes(buf) or b"\0"


def _positions(rng: random.Random, size: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Starts and lengths of ``n`` stretches inside a buffer of ``size`` bytes."""
    starts = np.array([rng.randrange(size + 1) for _ in range(n)], np.int64)
    lengths = np.array([rng.randrange(size - int(s) + 1) for s in starts], np.int64)
    return starts, lengths


def test_kernels_on_mutated_captures() -> None:
    ws = _kernel("wspcap.ws._speedups")
    decode = _kernel("wspcap.decode._speedups")
    sources = _kernel("wspcap.sources._speedups")
    tls = _kernel("wspcap.tls._speedups")
    aead = AESGCM(b"k" * 16)
    corpus = _corpus()
    assert corpus, "the bundled samples are the seeds"
    rng = random.Random(SEED)
    deadline = time.monotonic() + BUDGET_S
    cases = 0
    while cases < CASES and time.monotonic() < deadline:
        buf = _mutate(rng, rng.choice(corpus))
        size = len(buf)
        pos = rng.randrange(size + 1)
        big = rng.random() < 0.5
        assert sources.pcap_records(buf, pos, big) == pcap_records(buf, pos, big)

        n = rng.randrange(0, 12)
        starts, lengths = _positions(rng, size, n)
        starts = np.maximum(starts, 4)
        lengths = np.minimum(lengths, np.maximum(size - starts, 0))
        keep = starts <= size
        starts, lengths = starts[keep], lengths[keep]
        masked = np.array([rng.random() < 0.5 for _ in range(len(starts))], np.bool_)
        assert ws.frame_payloads(buf, starts, lengths, masked) \
            == py_frame_payloads(buf, starts, lengths, masked)

        ps, sizes = _positions(rng, size, n)
        if not n or int(ps.max()) + 1 < size:  # a header's second byte is in the buffer
            assert same_whole_frames(ws.whole_frames(buf, ps, sizes),
                                     py_whole_frames(buf, ps, sizes))

        at = rng.randrange(size + 1)
        key = buf[:4].ljust(4, b"\0")
        assert ws.unmask(buf[at:], key, at) == py_unmask(buf[at:], key, at)

        mode, off, etype_at = LINK_MODES[rng.choice(sorted(LINK_MODES))]
        st, cl = _positions(rng, size, n)
        assert same_headers(decode.headers(buf, st, cl, mode, off, etype_at, AF_INET, AF_INET6),
                            py_headers(buf, st, cl, mode, off, etype_at))

        # mutated bytes as TLS records: none opens, and both say so alike
        st, cl = st[cl >= 5], cl[cl >= 5]
        seq = rng.randrange(1 << 64 - n)
        iv = buf[:12].ljust(12, b"\0")
        cut = rng.randrange(len(st) + 1)  # (two runs)
        runs = [(aead.decrypt, iv, seq, buf, cut), (aead.decrypt, iv, seq, buf, len(st) - cut)]
        plain, lengths = tls.open_runs(runs, st, st + cl, InvalidTag)
        want, want_lengths = py_open_runs(runs, st, st + cl, InvalidTag)
        assert plain == want == b""
        assert np.frombuffer(lengths, np.int64).tolist() == want_lengths.tolist() == [-1] * len(st)
        cases += 1
    if cases < 100:
        pytest.fail(f"only {cases} cases in {BUDGET_S} s")
