"""Inflation budgets: memory stays bounded across messages, not only within one.

Each compressed message is cut at ``Options.max_inflated`` (64 MiB); many
messages under that cut add up, so a connection and a capture each have a
budget of inflated bytes (thresholds ``inflate_budget_connection`` and
``inflate_budget_capture``). A message that would go past one is kept
compressed (payload = the bytes on the wire, ``inflated`` False), flagged
``res_inflate_budget_exceeded`` once per direction, and so are that
direction's later compressed messages; everything else stays as it was.

``wspcap analyze -o`` puts large inflated payloads aside in a spool file
until they are written, so its memory does not hold the messages of a whole
block of input: a child process analyzing a bomb stays under a bound.

The captures are built here with the crafted-capture helpers of
``samples/anomalies/make_anomalies.py`` (scapy packets, real zlib raw
deflate with the trailing ``00 00 ff ff`` removed as RFC 7692 section 7.2.1
says).
"""

from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from golden.paths import anomaly_generator

import wspcap
from wspcap.api.reading import analyze_to
from wspcap.engine import Options, Pipeline
from wspcap.sources.files import open_capture
from wspcap.tables.export import TABLES, write_tables
from wspcap.tables.stream import TablesWriter

C2S, S2C = "c2s", "s2c"


_make = anomaly_generator


def _text(n: int, size: int) -> bytes:
    """``size`` bytes of JSON-like text that compress well but not absurdly."""
    rows, total, i = [], 0, 0
    while total < size:
        row = f'{{"msg":{n},"row":{i},"sq":{(i * i * 7919 + n) % 100003}}},'
        rows.append(row)
        total += len(row)
        i += 1
    return "".join(rows).encode()[:size]


class Sent:
    """What a crafted conversation sent: per connection and direction, each
    message's plain bytes and its compressed payload on the wire."""

    def __init__(self) -> None:
        self.messages: dict[tuple[int, str], list[tuple[bytes, bytes]]] = {}


def _conversation(sc: Any, sent: Sent, plan: dict[str, list[int]],
                  binary_zeros: bool = False) -> None:
    """One permessage-deflate connection; ``plan`` gives each direction's
    message sizes, sent in turn (all of c2s's after all of s2c's)."""
    m = _make()
    c = m._pmd_conn(sc)
    for d in (S2C, C2S):
        comp = zlib.compressobj(9, zlib.DEFLATED, -15)
        for k, size in enumerate(plan.get(d, [])):
            plain = bytes(size) if binary_zeros and k % 2 else _text(k, size)
            wire = m.deflate_message(plain, comp)
            opcode = m.BINARY if binary_zeros and k % 2 else m.TEXT
            data = m.frame(opcode, wire, rsv=m.RSV1, key=sc.key() if d == C2S else None)
            c.frames += 1
            for i in range(0, len(data), 60_000):  # segments under 64 KiB
                c.send(d, data[i:i + 60_000])
            sent.messages.setdefault((c.conn_id, d), []).append((plain, wire))
    c.close(C2S)


def _capture(tmp_path: Path, plans: list[dict[str, list[int]]],
             binary_zeros: bool = False) -> tuple[Path, Sent]:
    sc = _make().Scenario("budget", "inflation budgets")
    sent = Sent()
    for plan in plans:
        _conversation(sc, sent, plan, binary_zeros)
    path = tmp_path / "budget.pcap"
    sc.pcap.write(path)
    return path, sent


def _data(cap: wspcap.Capture, conn: int, d: str) -> pd.DataFrame:
    m = cap.messages
    return m[(m.conn_id == conn) & (m.direction == d)
             & m.type.isin(["text", "binary"])].reset_index(drop=True)


def _budget_rows(cap: wspcap.Capture) -> pd.DataFrame:
    a = cap.anomalies
    return a[a.code == "res_inflate_budget_exceeded"].reset_index(drop=True)


def _check(rows: pd.DataFrame, sent: list[tuple[bytes, bytes]], inflated: int) -> None:
    """The first ``inflated`` messages inflated exactly, the rest kept compressed."""
    assert len(rows) == len(sent)
    for i, ((plain, wire), row) in enumerate(zip(sent, rows.itertuples(), strict=True)):
        assert row.complete
        assert row.compressed
        if i < inflated:
            assert row.inflated == True, i
            assert bytes(row.payload) == plain, i
            assert row.length == len(plain)
        else:
            assert row.inflated == False, i
            assert bytes(row.payload) == wire, i  # the compressed bytes, as on the wire
            assert row.length == len(wire) == row.wire_length
            assert pd.isna(row.text)


class TestConnectionBudget:
    """RFC 7692 section 8.1: the connection's budget, shared by both directions."""

    def test_cut_kept_compressed_and_flagged(self, tmp_path: Path) -> None:
        # conn 0: the server sends 4 x 30,000 bytes, then the client 2 x 10,000;
        # the budget of 70,000 takes the server's first two (60,000), the
        # client's first (70,000 exactly), and no more. conn 1 is untouched.
        path, sent = _capture(tmp_path, [{S2C: [30_000] * 4, C2S: [10_000] * 2},
                                         {S2C: [30_000] * 3, C2S: [10_000]}])
        cap = wspcap.read(path, thresholds={"inflate_budget_connection": 70_000})
        _check(_data(cap, 0, S2C), sent.messages[(0, S2C)], 2)
        _check(_data(cap, 0, C2S), sent.messages[(0, C2S)], 1)
        _check(_data(cap, 1, S2C), sent.messages[(1, S2C)], 2)
        _check(_data(cap, 1, C2S), sent.messages[(1, C2S)], 1)
        rows = _budget_rows(cap)
        # once per direction that met the end of its budget, at its first message kept
        # compressed (frame indexes: the server's 4 frames come first on each connection)
        got = sorted(zip(rows.conn_id, rows.direction.astype(str), rows.frame_index))
        assert got == [(0, C2S, 5), (0, S2C, 2), (1, S2C, 2)]
        assert rows.severity.astype(str).eq("warning").all()
        assert rows.detail.str.contains(
            "the connection's inflation budget of 70000 bytes is used up").all()
        assert set(cap.anomalies.code.astype(str)) == {"res_inflate_budget_exceeded",
                                                       "sec_plaintext_ws"}

    def test_defaults_inflate_everything(self, tmp_path: Path) -> None:
        path, sent = _capture(tmp_path, [{S2C: [30_000] * 4, C2S: [10_000] * 2}])
        cap = wspcap.read(path)
        _check(_data(cap, 0, S2C), sent.messages[(0, S2C)], 4)
        _check(_data(cap, 0, C2S), sent.messages[(0, C2S)], 2)
        assert _budget_rows(cap).empty

    def test_set_from_the_command_line(self, tmp_path: Path) -> None:
        path, _sent = _capture(tmp_path, [{S2C: [30_000] * 4}])
        out = subprocess.run(
            [sys.executable, "-m", "wspcap", "analyze", str(path), "--set",
             "inflate_budget_connection=70_000", "-o", str(tmp_path / "out")],
            capture_output=True, text=True, timeout=120, check=True)
        assert "res_inflate_budget_exceeded" in out.stdout
        m = pd.read_parquet(tmp_path / "out" / "messages.parquet")
        assert m[m.type == "text"].inflated.tolist() == [True, True, False, False]


class TestCaptureBudget:
    """The capture's budget, shared by every connection."""

    def test_later_connections_kept_compressed(self, tmp_path: Path) -> None:
        path, sent = _capture(tmp_path, [{S2C: [30_000] * 2}, {S2C: [30_000] * 2},
                                         {S2C: [30_000]}])
        cap = wspcap.read(path, thresholds={"inflate_budget_capture": 100_000})
        _check(_data(cap, 0, S2C), sent.messages[(0, S2C)], 2)
        _check(_data(cap, 1, S2C), sent.messages[(1, S2C)], 1)
        _check(_data(cap, 2, S2C), sent.messages[(2, S2C)], 0)
        rows = _budget_rows(cap)
        assert rows.conn_id.tolist() == [1, 2]
        assert rows.frame_index.tolist() == [1, 0]
        assert rows.detail.str.contains(
            "the capture's inflation budget of 100000 bytes is used up").all()

    def test_written_bytes_are_given_back(self, tmp_path: Path) -> None:
        """A writer that streams the tables holds the messages it wrote no
        longer, so they no longer count against the capture's budget (the
        connection's counts every byte): analyzing into files packet by packet
        (as ``wspcap live -o`` does) inflates all, where ``read`` cuts."""
        path, _sent = _capture(tmp_path, [{S2C: [30_000] * 2}, {S2C: [30_000] * 2},
                                          {S2C: [30_000]}])
        th = wspcap.Thresholds(inflate_budget_capture=100_000)
        pipeline = Pipeline(Options(thresholds=th))
        tables = TablesWriter(pipeline, tmp_path / "out", "parquet", spill_bytes=0)
        with open_capture(path) as cap:
            for number, ts, linktype, data, _wirelen in cap:
                pipeline.receive_packet(number, ts, linktype, data)
                tables.look(number)
        pipeline.finish(check=False)
        tables.close(wspcap.CaptureInfo())
        m = pd.read_parquet(tmp_path / "out" / "messages.parquet")
        assert m[m.type == "text"].inflated.tolist() == [True] * 5
        assert m[m.type == "text"].length.tolist() == [30_000] * 5


class TestSpool:
    """`analyze -o` puts inflated payloads of 1 MiB and more aside until written;
    the files are still those of ``read``, row for row."""

    @pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
    def test_same_tables_as_read(self, tmp_path: Path, fmt: str) -> None:
        # text and binary messages of 2 MiB (the binary ones zeros), some small ones
        path, sent = _capture(tmp_path, [{S2C: [2 << 20, 2 << 20, 500, 2 << 20],
                                          C2S: [300, 3 << 20]}], binary_zeros=True)
        streamed, whole = tmp_path / "streamed", tmp_path / "whole"
        analyze_to(path, streamed, fmt, spill_bytes=1 << 20)
        cap = wspcap.read(path)
        write_tables(cap, whole, fmt)
        for name in TABLES:
            if fmt == "parquet":
                pd.testing.assert_frame_equal(pd.read_parquet(streamed / f"{name}.parquet"),
                                              pd.read_parquet(whole / f"{name}.parquet"),
                                              obj=name)
            else:
                assert (streamed / f"{name}.{fmt}").read_bytes() == \
                    (whole / f"{name}.{fmt}").read_bytes(), name
        _check(_data(cap, 0, S2C), sent.messages[(0, S2C)], 4)
        assert list(streamed.iterdir()) and not [p for p in streamed.iterdir()
                                                 if p.suffix != f".{fmt}"]


# A decompression bomb spread over many messages (issue 15 item 9): 16
# messages that each inflate to 32 MiB of zeros, 512 MiB in all, from a
# 520 KB capture. The connection's budget (256 MiB) takes the first 8; those
# would still take memory past the bound without the spool.
BOMB_MESSAGES = 16
BOMB_SIZE = 32 << 20
#: Peak RSS allowed over the same command on a small capture: a few copies of
#: one message (zlib's output buffers while inflating, Parquet's page buffers
#: while writing), nothing that grows with the number of messages. Before the
#: spool, analyze -o held every message of the block, more than once.
BOMB_ALLOWANCE = 200 << 20

_CHILD = """
import os, sys
pid = os.posix_spawn(sys.executable, [sys.executable, "-m", "wspcap"] + sys.argv[1:],
                     os.environ, file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull,
                                                os.O_WRONLY, 0)])
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def _peak_rss(args: list[str], cwd: Path) -> int:
    """Peak RSS (bytes) of ``python -m wspcap ARGS``, read with wait4 by a
    fresh small parent (a forked child inherits its parent's peak)."""
    out = subprocess.run([sys.executable, "-S", "-c", _CHILD, *args], capture_output=True,
                         text=True, timeout=300, check=True, cwd=cwd)
    status, maxrss = out.stdout.split()
    assert status == "0", out.stderr
    return int(maxrss) * (1 if sys.platform == "darwin" else 1024)


def test_analyze_o_memory_bounded_on_a_bomb(tmp_path: Path, samples_dir: Path) -> None:
    sc = _make().Scenario("bomb", "bomb")
    c = _make()._pmd_conn(sc)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(BOMB_SIZE)
    for _ in range(BOMB_MESSAGES):
        data = _make().frame(_make().BINARY, _make().deflate_message(zeros, comp),
                             rsv=_make().RSV1)
        c.send(S2C, data)
    c.close(C2S)
    del zeros
    bomb = tmp_path / "bomb.pcap"
    sc.pcap.write(bomb)
    assert bomb.stat().st_size < 1 << 20
    small = _peak_rss(["analyze", str(samples_dir / "deflate.pcap"), "-o",
                       str(tmp_path / "small")], tmp_path)
    peak = _peak_rss(["analyze", str(bomb), "-o", str(tmp_path / "out")], tmp_path)
    assert peak - small < BOMB_ALLOWANCE, (
        f"analyze -o peaked at {peak >> 20} MiB, {(peak - small) >> 20} MiB over "
        f"{small >> 20} MiB on a small capture")
    m = pd.read_parquet(tmp_path / "out" / "messages.parquet", columns=["length", "inflated"])
    m = m[m.inflated.notna()]
    assert m.inflated.tolist() == [True] * 8 + [False] * 8
    assert (m.length[:8] == BOMB_SIZE).all()  # inflated, written, and read back whole
