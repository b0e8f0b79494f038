"""The block path over decrypted TLS reads what the per-packet path reads.

A wss:// connection's records are read a run at a time
(:meth:`wspcap.tls.TLSSession.scan_run`) and their plaintext framed like a ws
run (:class:`wspcap.ws.runs.FrameRun`). Generated TLS 1.3 conversations
(records sealed with AES-128-GCM by ``samples/anomalies/make_anomalies.py``'s
writer, with the key log) are cut into TCP segments anywhere: records split
over segments, several records a segment, segments lost, repeated or
swapped, a record that does not authenticate, a KeyUpdate-like handshake
record in the middle; blocks are cut at random and every connection takes the
block path from its first packets on. Every table must be the same as packet
by packet.
"""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.golden.paths import SAMPLES_DIR, anomaly_generator
from tests.golden.tls import pcapng_secrets
from tests.test_blocks import TABLES, assert_same, batched, per_packet
from wspcap.engine import Options, direction
from wspcap.engine import runs as blocks
from wspcap.tls import KeyLog

C2S, S2C = "c2s", "s2c"


_make = anomaly_generator


TROUBLE = ("", "", "", "", "lose", "repeat", "swap", "forge", "handshake")


def conversation(path: Path, steps: list[tuple[str, int, int, str]], seed: int) -> str:
    """A wss:// conversation: messages of ``steps`` (direction, size, pieces,
    trouble) sealed in records and cut into segments; returns the key log."""
    m = _make()
    sc = m.Scenario("tls-run", "generated")
    tls = m.Tls13(sc)
    c = sc.conn(server_port=443)
    c.tls_open(tls)
    c.upgrade_after_tls()
    rng = random.Random(seed)
    for d, size, pieces, trouble in steps:
        body = bytes((i * 7 + size) & 0x7F for i in range(size))
        key = sc.key() if d == C2S else None
        wire = b"".join(tls.seal(d, m.frame(m.TEXT, body[i:i + 90], key=key))
                        for i in range(0, max(size, 1), 90))  # a record per 90 bytes
        if trouble == "forge":
            wire = wire[:-1] + bytes([wire[-1] ^ 1])  # the last record will not authenticate
        elif trouble == "handshake":
            wire += tls.seal(d, b"\x18\x00\x00\x01\x00", 22)  # a KeyUpdate-shaped message
        cuts = sorted(rng.sample(range(1, len(wire)), min(pieces - 1, len(wire) - 1)))
        segments = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
        numbers = []
        for seg in segments:
            numbers.append(c.packet(d, "PA", seg))
        records = sc.pcap.records  # (ts, bytes, wire length), in capture order
        if trouble == "lose" and len(numbers) > 1:
            del records[numbers[len(numbers) // 2] - 1]  # a hole inside the message
        elif trouble == "repeat":
            c.packet(d, "PA", segments[0], seq=c.seq[d] - len(wire))
        elif trouble == "swap" and len(numbers) > 1:
            a, b = numbers[-2] - 1, numbers[-1] - 1
            records[a], records[b] = (records[b][0], *records[a][1:]), (records[a][0],
                                                                         *records[b][1:])
        c.packet(S2C if d == C2S else C2S, "A")
    c.shutdown(C2S)
    sc.pcap.write(path)
    return tls.keylog


step = st.tuples(st.sampled_from((C2S, S2C)), st.integers(0, 400), st.integers(1, 5),
                 st.sampled_from(TROUBLE))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=40), seed=st.integers(0, 2**16),
       most=st.integers(1, 60))
def test_generated_tls_conversations(tmp_path_factory: pytest.TempPathFactory,
                                     monkeypatch: pytest.MonkeyPatch,
                                     steps: list[tuple[str, int, int, str]], seed: int,
                                     most: int) -> None:
    path = tmp_path_factory.mktemp("tls") / "gen.pcap"
    keys = conversation(path, steps, seed)
    log = KeyLog()
    log.feed(keys, final=True)
    options = Options(keylog=log)
    want, _ = per_packet(path, options)
    assert want.connections.decrypted.all()
    monkeypatch.setattr(blocks, "MIN_PACKETS", 1)
    monkeypatch.setattr(blocks, "HANDOFF", 1)
    taken = 0
    for s in (seed, seed + 1):
        got, p = batched(path, s, most, options=options)
        taken += p.block_frames
        for name in TABLES:
            pd.testing.assert_frame_equal(getattr(got, name), getattr(want, name),
                                          obj=f"seed={s} {name}")


def test_the_block_path_reads_tls_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a plain conversation the TLS connection does take the block path."""
    path = tmp_path / "gen.pcap"
    keys = conversation(path, [(C2S if i % 2 else S2C, 50 + i, 1, "") for i in range(80)], 1)
    log = KeyLog()
    log.feed(keys, final=True)
    options = Options(keylog=log)
    want, _ = per_packet(path, options)
    monkeypatch.setattr(blocks, "MIN_PACKETS", 1)
    got, p = batched(path, None, options=options)
    assert p.block_frames >= 70
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(got, name), getattr(want, name), obj=name)


TLS_SAMPLES = sorted([*SAMPLES_DIR.glob("wss*.pcapng"),
                      *(SAMPLES_DIR / "anomalies").glob("tls-*.pcapng"),
                      *(SAMPLES_DIR / "anomalies").glob("app-credentials-in-clear.pcapng")])


@pytest.mark.parametrize("path", TLS_SAMPLES, ids=lambda p: p.name)
def test_tls_samples_with_their_keys(path: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The bundled wss captures (TLS 1.3 and 1.2, a record that does not
    authenticate, one that is not a record, one too long...), decrypted with
    their embedded keys, read the same by blocks cut anywhere as packet by
    packet; the real ones do take the block path."""
    bare, keys = pcapng_secrets(path.read_bytes())
    assert keys
    (tmp_path / path.name).write_bytes(bare)
    log = KeyLog()
    log.feed(keys.decode(), final=True)
    monkeypatch.setattr(blocks, "MIN_PACKETS", 1)
    monkeypatch.setattr(blocks, "HANDOFF", 1)
    taken = assert_same(tmp_path / path.name, seeds=(None, 1, 2, 3, 4),
                        options=Options(keylog=log))
    if path.name.startswith("wss") and path.name != "wss-h2.pcapng":
        assert taken > 0  # (WebSockets over HTTP/2 are read packet by packet)


class _Passes:
    """Counts the packets the block path passed over without keys."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.packets = 0
        keyless = blocks._keyless

        def counted(*args: object) -> object:
            used = keyless(*args)  # type: ignore[arg-type]
            self.packets += len(used)
            return used
        monkeypatch.setattr(blocks, "_keyless", counted)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=40), seed=st.integers(0, 2**16),
       most=st.integers(1, 60), hold=st.sampled_from((0, 0, 100)))
def test_generated_tls_conversations_without_keys(
        tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
        steps: list[tuple[str, int, int, str]], seed: int, most: int, hold: int) -> None:
    """Without the keys, the records the block path passes over leave every
    table as packet by packet leaves it (``hold``: bytes held for keys that
    may come, as a live capture holds them)."""
    path = tmp_path_factory.mktemp("tls") / "gen.pcap"
    conversation(path, steps, seed)
    options = Options(tls_hold=hold)
    want, _ = per_packet(path, options)
    assert not want.connections.decrypted.any()
    monkeypatch.setattr(blocks, "MIN_PACKETS", 1)
    monkeypatch.setattr(blocks, "HANDOFF", 1)
    for s in (seed, seed + 1):
        got, _p = batched(path, s, most, options=options)
        for name in TABLES:
            pd.testing.assert_frame_equal(getattr(got, name), getattr(want, name),
                                          obj=f"seed={s} {name}")


def test_the_block_path_passes_over_records_without_keys(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without keys a plain conversation's records are passed over by the
    block path, a direction's marks of where its bytes came from stay few
    packet by packet, and both paths give the same tables."""
    path = tmp_path / "gen.pcap"
    conversation(path, [(C2S if i % 2 else S2C, 30 + i, 1 + i % 3, "") for i in range(400)], 1)
    want, p = per_packet(path)
    marks = [len(d.tls_marks) for s in p.collector.sessions for d in s.dirs]
    assert marks and max(marks) <= direction.MARKS + 1
    assert want.connections.tls.all() and not want.connections.decrypted.any()
    assert (want.anomalies.code == "tls_keys_missing").sum() == 2
    monkeypatch.setattr(blocks, "MIN_PACKETS", 1)
    passes = _Passes(monkeypatch)
    got, _p = batched(path, None)
    assert passes.packets >= 400
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(got, name), getattr(want, name), obj=name)


@pytest.mark.parametrize("path", TLS_SAMPLES, ids=lambda p: p.name)
def test_tls_samples_without_their_keys(path: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The bundled wss captures without their embedded keys read the same by
    blocks cut anywhere as packet by packet; the real ones' records are
    passed over by the block path."""
    bare, _keys = pcapng_secrets(path.read_bytes())
    (tmp_path / path.name).write_bytes(bare)
    monkeypatch.setattr(blocks, "MIN_PACKETS", 1)
    monkeypatch.setattr(blocks, "HANDOFF", 1)
    passes = _Passes(monkeypatch)
    assert_same(tmp_path / path.name, seeds=(None, 1, 2, 3, 4))
    if path.name.startswith("wss"):
        assert passes.packets > 0
