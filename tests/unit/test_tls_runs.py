"""The TLS layer's runs read what :meth:`TLSSession.receive_data` reads.

:func:`wspcap.tls.runs.scan_runs` (the block path's way in, see
:mod:`wspcap.engine.runs`) reads the records of many directions' runs of
segments at once, a NumPy pass over their headers and one ``decrypt`` call a
record. Generated TLS 1.3 records (sealed by the test's own writer, apart from
wspcap's: padded ones, empty ones, ones with no content type, handshake and
alert records, forged ones, odd headers), cut into segments anywhere and laid
in one buffer with bytes between them, must give, run then commit then
:meth:`~TLSSession.receive_data` for the rest, exactly the events that
:meth:`~TLSSession.receive_data` gives for all of them.
"""

from __future__ import annotations

import itertools
import struct
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from golden.paths import anomaly_generator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wspcap.tls import KeyLog, Plaintext, TLSSession
from wspcap.tls.protection import inner_spans
from wspcap.tls.records import HEADER_LEN
from wspcap.tls.runs import _heads, scan_runs

DIRS = ("c2s", "s2c")

#: (content size, content type, padding, forged, outer type, legacy version minor)
Record = tuple[int, int, int, bool, int, int]

PLAIN: Record = (0, 23, 0, False, 23, 3)
record = st.one_of(
    st.tuples(st.integers(0, 300), st.just(23), st.just(0), st.just(False), st.just(23),
              st.just(3)),  # plain application data, most records
    st.tuples(st.integers(0, 40), st.sampled_from((23, 22, 21, 0)), st.integers(0, 20),
              st.booleans(), st.sampled_from((23, 23, 23, 22)), st.sampled_from((3, 3, 1))),
)


def handshaken() -> tuple[Any, TLSSession, TLSSession]:
    """A TLS 1.3 connection past its handshake, read by two sessions alike."""
    gen = anomaly_generator()
    tls = gen.Tls13(gen.Scenario("runs", ""))
    hello, flight = tls.client_hello(), tls.server_flight()
    finished = tls.client_finished()
    sessions = []
    for _ in range(2):
        session = TLSSession(KeyLog(tls.keylog))
        events = session.receive_data(0, hello) + session.receive_data(1, flight)
        events += session.receive_data(0, finished)
        assert not events and session.run_ready(0) and session.run_ready(1)
        sessions.append(session)
    return tls, sessions[0], sessions[1]


def seal(tls: Any, d: str, rec: Record, n: int) -> bytes:
    """One record of direction ``d`` (the test's own writer)."""
    size, kind, pad, forged, outer, minor = rec
    key, iv = tls.keys[d]
    nonce = (int.from_bytes(iv, "big") ^ tls.seq[d]).to_bytes(12, "big")
    tls.seq[d] += 1
    content = bytes((n * 31 + i) & 0xFF for i in range(size)) if kind else bytes(size)
    inner = content + (bytes((kind,)) if kind else b"") + bytes(pad)
    header = struct.pack(">BBBH", outer, 3, minor, len(inner) + 16)
    sealed = AESGCM(key).encrypt(nonce, inner, header)
    if forged:
        sealed = sealed[:-1] + bytes((sealed[-1] ^ 1,))
    return header + sealed


def cut(wire: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({0, len(wire), *(p % (len(wire) + 1) for p in points)})
    return [wire[a:b] for a, b in itertools.pairwise(edges) if b > a]


direction_case = st.tuples(st.lists(record, min_size=1, max_size=25),
                           st.lists(st.integers(0, 1 << 16), max_size=30),
                           st.integers(0, 1 << 16))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases=st.tuples(direction_case, direction_case), one_record_segments=st.booleans(),
       gap=st.integers(0, 60))
def test_runs_read_what_receive_data_reads(cases: tuple[Any, Any], one_record_segments: bool,
                                           gap: int) -> None:
    tls, ref, fast = handshaken()
    segs: list[list[bytes]] = []
    for d, (records, points, _take) in enumerate(cases):
        wires = [seal(tls, DIRS[d], r, n) for n, r in enumerate(records)]
        segs.append(wires if one_record_segments else cut(b"".join(wires), points))
    # Both directions' segments in one buffer, with bytes between them (the
    # packets' headers in a block).
    buf = bytearray()
    where: list[tuple[np.ndarray, np.ndarray]] = []
    for d in (0, 1):
        ps, pe = [], []
        for seg in segs[d]:
            buf += b"\x17\x03" * (gap // 2) + b"\x00" * (gap % 2)
            ps.append(len(buf))
            buf += seg
            pe.append(len(buf))
        where.append((np.array(ps, np.int64), np.array(pe, np.int64)))
    data = bytes(buf)
    runs = scan_runs(data, [(fast, d, len(where[d][0])) for d in (0, 1)],
                     np.concatenate([w[0] for w in where]), np.concatenate([w[1] for w in where]))
    assert [r.ends.tolist() for r in runs] == [fast.scan_run(d, data, *where[d]).ends.tolist()
                                               for d in (0, 1)]
    want: list[Any] = []
    got: list[Any] = []
    for d in (0, 1):
        want += ref.receive_data(d, b"".join(segs[d]))
        run = runs[d]
        single = fast.scan_run(d, data, *where[d])  # one run alone reads the same
        assert (single.plain[single.begin[0]:single.end[-1]] if len(single.begin) else b"") \
            == (run.plain[run.begin[0]:run.end[-1]] if len(run.begin) else b"")
        assert single.cut == run.cut and np.array_equal(single.starts, run.starts)
        taken = cases[d][2] % (run.cut + 1)  # the caller may take fewer segments
        records = run.records_before(taken)
        for i in range(records):
            if run.end[i] > run.begin[i]:
                got.append(Plaintext(d, run.plain[run.begin[i]:run.end[i]],
                                     run.offset + int(run.starts[i])))
        fast.commit_run(d, run, taken, run.tail(taken))
        got += fast.receive_data(d, b"".join(segs[d][taken:]))
    for d in (0, 1):
        want += ref.receive_eof(d)
        got += fast.receive_eof(d)
    assert got == want
    assert ref.info == fast.info


def test_inner_spans() -> None:
    """Content, type and padding of TLS 1.3 inner plaintexts (RFC 8446 section
    5.2), read once for many; all zeros is no content type (0)."""
    inners = [b"abc\x17", b"de\x16\x00\x00", b"\x00\x00", b"\x15", b"fg\x17\x00"]
    plain = b"".join(inners)
    begin, end, ctype = inner_spans(plain, np.array([len(i) for i in inners]))
    assert [plain[b:e] for b, e in zip(begin.tolist(), end.tolist(), strict=True)] == [
        b"abc", b"de", b"", b"", b"fg"]
    assert ctype.tolist() == [23, 22, 0, 21, 23]
    begin, end, ctype = inner_spans(b"", np.zeros(0, np.int64))
    assert not len(begin) and not len(end) and not len(ctype)


@given(buf=st.binary(max_size=40), data=st.data())
def test_record_heads_read_past_the_end_as_zeros(buf: bytes, data: st.DataObject) -> None:
    """The NumPy read of the 5-byte headers at many positions (the runs'
    first step) is each position's 5 bytes, those past the end of the buffer
    zeros, read as a signed 40-bit number: near the end too, where it no
    longer copies the buffer to pad it."""
    if not buf:
        return
    ps = data.draw(st.lists(st.integers(0, len(buf) - 1), min_size=1, max_size=8))
    padded = buf + bytes(HEADER_LEN)
    want = [int.from_bytes(padded[p:p + HEADER_LEN], "big", signed=True) for p in ps]
    assert _heads(buf, np.array(ps, np.int64)).tolist() == want
