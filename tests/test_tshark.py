"""Every frame wspcap finds, compared with tshark's WebSocket dissector.

For every sample and every capture of the peers' corpus, tshark is run with

    tshark -n -r FILE -Y websocket -T fields -E occurrence=a -E aggregator='|'
        -e frame.number -e tcp.stream -e tcp.srcport -e tcp.dstport
        -e websocket.fin -e websocket.rsv -e websocket.opcode -e websocket.mask
        -e websocket.payload_length -e websocket.payload_length_ext_16
        -e websocket.payload_length_ext_64 -e websocket.masking_key

and its frames are compared, one by one and in order, with our frames table:
packet number, direction (from the ports), FIN, the three RSV bits, opcode,
MASK, the real payload length and the masking key.

How tshark lists frames (checked on these captures, tshark 4.0):

- one output line per *packet*; a packet carrying several frames has
  ``|``-joined values, one per frame, in stream order;
- ``websocket.payload_length`` is the 7-bit field; the real length is in
  ``payload_length_ext_16`` / ``_ext_64``, which list only the frames that use
  them (likewise ``masking_key`` lists only masked frames), so they are
  consumed in order while walking the frames of a line;
- a frame that spans several TCP segments is reported on the packet whose
  segment *completes* it (TCP reassembly hands the PDU over there). Our
  ``packet`` column is defined the same way (the packet that completed the
  frame; ``ts_start`` is when its first byte arrived), so packet numbers are
  compared as they are, with no systematic offset. :func:`test_spanning_frames`
  pins this on the 64-bit-length frames of plain.pcap.

tshark finds the WebSocket handshake on any port when it sees the upgrade, so
no ``-o``/``-d`` option is needed for these captures.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from golden.paths import GOLDEN_DIR, SAMPLES_DIR, peer_captures, peers_location, sample_captures

pytestmark = pytest.mark.tshark

FIELDS = ["frame.number", "tcp.stream", "tcp.srcport", "tcp.dstport",
          "websocket.fin", "websocket.rsv", "websocket.opcode", "websocket.mask",
          "websocket.payload_length", "websocket.payload_length_ext_16",
          "websocket.payload_length_ext_64", "websocket.masking_key"]
TIMEOUT = 120

#: (packet, src port, dst port, fin, rsv bits, opcode, masked, payload length, key)
Row = tuple[int, int, int, bool, int, int, bool, int, "int | None"]

#: tshark runs at a time (each is single-threaded; this machine class has 2 cores).
PARALLEL = 3
#: Options for captures tshark cannot read with its defaults.
DECODE_AS = {"midstream.pcap": ("-d", "tcp.port==8080,websocket")}  # no handshake captured

_pool: ThreadPoolExecutor | None = None
_jobs: dict[tuple[str, tuple[str, ...]], Future[subprocess.CompletedProcess[str]]] = {}


def _run(exe: str, path: Path, options: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    cmd = [exe, "-n", *options, "-r", str(path), "-Y", "websocket", "-T", "fields",
           "-E", "occurrence=a", "-E", "aggregator=|"]
    for field in FIELDS:
        cmd += ["-e", field]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, check=False)


def _submit(exe: str, path: Path, options: tuple[str, ...]) -> None:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(PARALLEL)
    key = (str(path), options)
    if key not in _jobs:
        _jobs[key] = _pool.submit(_run, exe, path, options)


def _default_options(path: Path) -> tuple[str, ...]:
    return DECODE_AS.get(path.name, ())


def _all_captures() -> list[Path]:
    return (sample_captures() + [peers_location() / p for p in peer_captures()]
            + sorted(GOLDEN_DIR.glob("*.pcap")))


def tshark_output(exe: str, path: Path, options: tuple[str, ...] | None = None) -> str:
    """tshark's field output for ``path`` (with ``options``, or the defaults).

    The first call queues every capture (run PARALLEL at a time, each bounded
    by TIMEOUT); later calls collect the one asked for.
    """
    if options is None:
        options = _default_options(path)
    if not _jobs:
        for other in _all_captures():
            _submit(exe, other, _default_options(other))
    _submit(exe, path, options)
    try:
        done = _jobs[(str(path), options)].result()
    except subprocess.TimeoutExpired:
        pytest.fail(f"tshark took over {TIMEOUT} s on {path.name}")
    if done.returncode:
        pytest.fail(f"tshark failed on {path.name}: {done.stderr.strip()}")
    return done.stdout


def _split(value: str) -> list[str]:
    return value.split("|") if value else []


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true")


def parse_tshark(text: str) -> list[Row]:
    """tshark's lines as one row per WebSocket frame, in file order."""
    rows: list[Row] = []
    for line in text.splitlines():
        cols = line.split("\t")
        number, sport, dport = int(cols[0]), int(cols[2]), int(cols[3])
        fin, rsv, opcode, mask, plen, ext16, ext64, keys = (_split(c) for c in cols[4:12])
        assert len({len(fin), len(rsv), len(opcode), len(mask), len(plen)}) == 1, line
        for i in range(len(opcode)):
            length = int(plen[i])
            if length == 126:
                length = int(ext16.pop(0))
            elif length == 127:
                length = int(ext64.pop(0))
            masked = _flag(mask[i])
            key = int(keys.pop(0).replace(":", ""), 16) if masked else None
            rows.append((number, sport, dport, _flag(fin[i]), int(rsv[i], 16),
                         int(opcode[i]), masked, length, key))
        assert not ext16 and not ext64 and not keys, f"unconsumed fields in {line!r}"
    return rows


def our_rows(capture: Any) -> list[Row]:
    """Our frames table in the same shape, in table (completion) order."""
    conns = capture.connections.set_index("conn_id")
    rows: list[Row] = []
    for f in capture.frames.itertuples(index=False):
        c = conns.loc[f.conn_id]
        client, server = int(c.client_port), int(c.server_port)
        sport, dport = (client, server) if f.direction == "c2s" else (server, client)
        rsv = (int(f.rsv1) << 2) | (int(f.rsv2) << 1) | int(f.rsv3)
        key = None if pd.isna(f.mask_key) else int(f.mask_key)
        rows.append((int(f.packet), sport, dport, bool(f.fin), rsv, int(f.opcode),
                     bool(f.masked), int(f.payload_len), key))
    return rows


def _by_flow(rows: list[Row]) -> dict[tuple[int, int], list[Row]]:
    """Rows per direction of each TCP connection, i.e. per (src port, dst port)."""
    flows: dict[tuple[int, int], list[Row]] = {}
    for row in rows:
        flows.setdefault((row[1], row[2]), []).append(row)
    return flows


def _compare(exe: str, path: Path, read_capture: Any) -> tuple[list[Row], list[Row]]:
    theirs = parse_tshark(tshark_output(exe, path))
    ours = our_rows(read_capture(path))
    return ours, theirs


def _check(ours: list[Row], theirs: list[Row]) -> None:
    assert len(ours) == len(theirs)
    # Per direction the order must be identical: stream order. Across the two
    # directions of a connection our table need not be in packet order (for a
    # connection found midstream, frames held while probing are released one
    # direction at a time), so the interleaving is compared by packet below.
    mine, other = _by_flow(ours), _by_flow(theirs)
    assert sorted(mine) == sorted(other)
    for flow in other:
        assert mine[flow] == other[flow], flow
    # Across connections only the packet order is common ground.
    assert sorted(ours, key=lambda r: r[0]) == theirs


#: Samples whose WebSocket frames ride HTTP/2 DATA: tshark 4.0 decodes the HTTP/2
#: frames, not the WebSocket frames inside them (test_h2_sample_matches_tshark).
H2_SAMPLES = ("wss-h2.pcapng",)


@pytest.mark.parametrize("sample_file", [p.name for p in sample_captures()
                                         if p.name not in H2_SAMPLES])
def test_sample_frames_match_tshark(sample_file: str, tshark: str, read_capture: Any) -> None:
    ours, theirs = _compare(tshark, SAMPLES_DIR / sample_file, read_capture)
    assert theirs, "tshark decoded no WebSocket frame"
    _check(ours, theirs)


def test_peer_frames_match_tshark(peer_capture: str, peers_dir: Path, tshark: str,
                                  read_capture: Any) -> None:
    ours, theirs = _compare(tshark, peers_dir / peer_capture, read_capture)
    _check(ours, theirs)


def test_spanning_frames(tshark: str, read_capture: Any) -> None:
    """A frame over several segments is on the packet that completes it, in both tools."""
    path = SAMPLES_DIR / "plain.pcap"
    capture = read_capture(path)
    f = capture.frames
    spanning = f[f.ts_start < f.ts]
    assert len(spanning) >= 2, "plain.pcap should have frames spanning segments"
    theirs = {(r[0], r[7]) for r in parse_tshark(tshark_output(tshark, path))}
    for row in spanning.itertuples(index=False):
        assert (int(row.packet), int(row.payload_len)) in theirs


# -- crafted captures (tests/golden) ----------------------------------------------------

#: Crafted captures tshark reads exactly like we do (midstream with "decode as").
CRAFTED_EXACT = ["ipv6_hop_by_hop", "lost_segment", "midstream", "nonstandard_port",
                 "overlap_conflict", "qinq", "seq_wraparound", "snaplen_cut",
                 "split_handshake", "vlan", "keepalive", "vxlan"]
#: Crafted captures where tshark, with its default preferences, drops frames:
#: out-of-order segments are not reassembled (tcp.reassemble_out_of_order is off)
#: and a frame with a hole in it is never handed to the WebSocket dissector.
CRAFTED_TSHARK_LOSES = ["lost_mid_frame", "out_of_order", "overlap_conflict_pending"]


@pytest.mark.parametrize("name", CRAFTED_EXACT)
def test_crafted_frames_match_tshark(name: str, tshark: str, read_capture: Any) -> None:
    ours, theirs = _compare(tshark, GOLDEN_DIR / f"{name}.pcap", read_capture)
    assert theirs, "tshark decoded no WebSocket frame"
    _check(ours, theirs)


@pytest.mark.parametrize("name", CRAFTED_TSHARK_LOSES)
def test_crafted_tshark_finds_fewer(name: str, tshark: str, read_capture: Any) -> None:
    """Every frame tshark finds we find, identically; we find the ones it drops too.

    Packet numbers are left out of this comparison: with its default preferences
    tshark dissects an out-of-order segment on its own, in the packet that
    carried it, whereas wspcap (like tshark with tcp.reassemble_out_of_order on,
    see the test below) delivers those bytes when the hole before them is
    filled. Everything else about each frame must agree.
    """
    ours, theirs = _compare(tshark, GOLDEN_DIR / f"{name}.pcap", read_capture)
    assert theirs
    mine = Counter(r[1:] for r in ours)
    assert not Counter(r[1:] for r in theirs) - mine
    assert len(theirs) < len(ours)


def test_out_of_order_reassembled_by_both(tshark: str, read_capture: Any) -> None:
    """With tshark's out-of-order reassembly on, both tools find the same frames.

    Packet numbers agree too: for a frame whose bytes arrived before the hole
    in front of them was filled, both name the packet that filled the hole
    (when the bytes became readable in order).
    """
    path = GOLDEN_DIR / "out_of_order.pcap"
    theirs = parse_tshark(tshark_output(tshark, path, ("-o", "tcp.reassemble_out_of_order:TRUE")))
    ours = our_rows(read_capture(path))
    assert len(ours) == len(theirs)
    mine, other = _by_flow(ours), _by_flow(theirs)
    assert sorted(mine) == sorted(other)
    for flow in other:
        assert mine[flow] == other[flow], flow


@pytest.fixture(scope="module", autouse=True)
def _stop_pool() -> Any:
    """Drop queued tshark runs when the module is done (e.g. with -k)."""
    yield
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=True, cancel_futures=True)
        _pool = None
    _jobs.clear()


@pytest.mark.parametrize("sample_file", H2_SAMPLES)
def test_h2_sample_matches_tshark(sample_file: str, tshark: str, read_capture: Any) -> None:
    """A WebSocket over HTTP/2 (RFC 8441): tshark's HTTP/2 dissector (keys
    embedded) finds the extended CONNECT on the stream ours names, with the
    same path, and the stream's DATA frames carry, each way, the bytes our row
    counts; where tshark decodes WebSocket frames inside them (newer versions),
    they are ours."""
    path = SAMPLES_DIR / sample_file
    out = subprocess.run(
        [tshark, "-r", str(path), "-n", "-Y", "http2", "-T", "fields", "-E", "occurrence=a",
         "-E", "aggregator=\x1f", "-e", "tcp.srcport", "-e", "http2.streamid", "-e",
         "http2.type", "-e", "http2.length", "-e", "http2.header.name", "-e",
         "http2.header.value"], capture_output=True, text=True, timeout=TIMEOUT, check=True)
    cap = read_capture(path)
    (row,) = cap.connections.itertuples()
    connect = None
    data = Counter()
    for line in out.stdout.splitlines():
        port, streams, types, lengths, names, values = (line.split("\t") + [""] * 6)[:6]
        headers = dict(zip(names.split("\x1f"), values.split("\x1f"), strict=False))
        for stream, kind, length in zip(streams.split("\x1f"), types.split("\x1f"),
                                        lengths.split("\x1f"), strict=False):
            if kind == "1" and headers.get(":protocol") == "websocket":
                connect = (int(stream), headers.get(":path"))
            if kind == "0" and connect and int(stream) == connect[0]:
                data["c2s" if int(port) == row.client_port else "s2c"] += int(length)
    assert connect == (row.h2_stream, row.uri)
    assert data == {"c2s": row.bytes_c2s, "s2c": row.bytes_s2c}
    theirs = parse_tshark(tshark_output(tshark, path))
    if theirs:
        _check(our_rows(cap), theirs)
