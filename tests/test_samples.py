"""The sample captures against their ground truth (``samples/*.truth.json``).

The truth is the sender's own record of every message and frame (see
``samples/README.md``), so everything here is checked against what was really
sent: messages byte for byte and in order per direction, every frame's header
bits and lengths, the handshake, permessage-deflate, link types and formats.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from pathlib import Path
from typing import Any

import pytest
from golden import truth as T

from wspcap.sources import open_capture
from wspcap.ws.deflate import negotiate

#: RFC 6455 section 1.3: the GUID appended to the key to compute the accept.
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@pytest.fixture
def sample(sample_name: str, samples_dir: Path, read_capture: Any) -> tuple[Any, dict[str, Any]]:
    """(capture, truth) of one sample."""
    truth = T.load(samples_dir / f"{sample_name}.truth.json")
    return read_capture(samples_dir / truth["file"]), truth


def _each_direction(truth: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    return [(tc, d) for tc in truth["connections"] for d in T.DIRECTIONS]


class TestCapture:
    """Format, link type, connection count, cleanliness."""

    def test_format_and_link_type(self, sample: tuple[Any, dict[str, Any]],
                                  samples_dir: Path) -> None:
        capture, truth = sample
        assert capture.info.format == truth["format"]
        with open_capture(samples_dir / truth["file"]) as cap:
            linktypes = {rec.linktype for rec in cap}
            assert cap.truncated is None
        assert linktypes == {truth["linktype"]}
        assert capture.info.truncated is None

    def test_packets_counted(self, sample: tuple[Any, dict[str, Any]]) -> None:
        capture, truth = sample
        assert capture.info.packets == truth["capture"]["packets_captured"]

    def test_one_row_per_connection(self, sample: tuple[Any, dict[str, Any]]) -> None:
        capture, truth = sample
        assert len(capture.connections) == len(truth["connections"])
        assert sorted(capture.connections.client_port.tolist()) == sorted(
            tc["client"]["port"] for tc in truth["connections"])
        assert capture.connections.conn_id.is_unique

    def test_no_warning_or_error(self, sample: tuple[Any, dict[str, Any]]) -> None:
        capture, _truth = sample
        a = capture.anomalies
        bad = a[a.severity.isin(["warning", "error"])]
        assert bad.empty, bad[["code", "detail"]].to_string()

    def test_ip_version(self, sample: tuple[Any, dict[str, Any]]) -> None:
        capture, truth = sample
        for row in T.connection_rows(capture, truth).values():
            assert (":" in row.client_ip) == (truth["ip_version"] == 6)
            assert row.server_ip == truth["server"]["ip"]


class TestHandshake:
    """RFC 6455 section 4: the opening handshake, as each side sent it."""

    def test_connection_fields(self, sample: tuple[Any, dict[str, Any]]) -> None:
        capture, truth = sample
        rows = T.connection_rows(capture, truth)
        for tc in truth["connections"]:
            assert T.actual_connection(rows[tc["id"]]) == T.expected_connection(tc), tc["label"]

    def test_accept_matches_key(self, sample: tuple[Any, dict[str, Any]]) -> None:
        """RFC 6455 section 4.2.2: accept = base64(SHA-1(key + GUID))."""
        capture, truth = sample
        for row in T.connection_rows(capture, truth).values():
            digest = hashlib.sha1((row.key + WS_GUID).encode("ascii")).digest()
            assert row.accept == base64.b64encode(digest).decode("ascii")
            assert T._na(row.accept_valid) is True

    def test_deflate_parameters(self, sample: tuple[Any, dict[str, Any]]) -> None:
        """RFC 7692 section 7.1: the negotiated parameters the truth says were in effect."""
        capture, truth = sample
        rows = T.connection_rows(capture, truth)
        for tc in truth["connections"]:
            params, problems = negotiate(T._na(rows[tc["id"]].extensions))
            assert problems == []
            if tc["deflate_params"] is None:
                assert params is None
                continue
            assert params is not None
            for name, value in tc["deflate_params"].items():
                assert getattr(params, name) == value, name


class TestFrames:
    """RFC 6455 section 5.2: every frame's header, per direction, in order."""

    def test_frame_headers(self, sample: tuple[Any, dict[str, Any]]) -> None:
        capture, truth = sample
        rows = T.connection_rows(capture, truth)
        for tc, d in _each_direction(truth):
            conn_id = int(rows[tc["id"]].conn_id)
            assert T.actual_frames(capture, conn_id, d) == T.expected_frames(tc, d), (
                tc["label"], d)

    def test_frame_payloads(self, sample: tuple[Any, dict[str, Any]]) -> None:
        """Unmasked payload of every frame of every uncompressed message."""
        capture, truth = sample
        rows = T.connection_rows(capture, truth)
        for tc, d in _each_direction(truth):
            conn_id = int(rows[tc["id"]].conn_id)
            assert (T.actual_fragment_payloads(capture, conn_id, d, tc)
                    == T.expected_fragment_payloads(tc, d)), (tc["label"], d)

    def test_mask_keys(self, sample: tuple[Any, dict[str, Any]]) -> None:
        """A key for every masked frame, none for the others; no frame is incomplete."""
        capture = sample[0]
        f = capture.frames
        assert (f.mask_key.notna() == f.masked).all()
        assert (f.missing == 0).all()
        assert (f.payload.map(len) == f.payload_len.astype("int64")).all()

    def test_length_encoding(self, sample: tuple[Any, dict[str, Any]]) -> None:
        """The length field's width follows from the header length (2/4/10 bytes + key)."""
        capture = sample[0]
        f = capture.frames
        base = f.header_len.astype(int) - 4 * f.masked.astype(int)
        width = base.map({2: 7, 4: 16, 10: 64})
        assert (width == f.length_encoding.astype(int)).all()

    def test_frame_order_per_connection(self, sample: tuple[Any, dict[str, Any]]) -> None:
        """The interleaving of both directions matches the order frames were written."""
        capture, truth = sample
        rows = T.connection_rows(capture, truth)
        for tc in truth["connections"]:
            f = capture.frames[capture.frames.conn_id == rows[tc["id"]].conn_id]
            assert f.frame_index.tolist() == list(range(len(f)))
            assert f.direction.tolist() == [w["direction"] for w in tc["wire_frames"]]


class TestMessages:
    """Messages byte-exact and in order per direction (RFC 6455 section 5.4, RFC 7692)."""

    def test_messages(self, sample: tuple[Any, dict[str, Any]]) -> None:
        capture, truth = sample
        rows = T.connection_rows(capture, truth)
        for tc, d in _each_direction(truth):
            conn_id = int(rows[tc["id"]].conn_id)
            ours = T.actual_messages(capture, conn_id, d)
            expected = T.expected_messages(tc, d)
            assert len(ours) == len(expected), (tc["label"], d)
            for n, (a, e) in enumerate(zip(ours, expected)):
                assert a == e, (tc["label"], d, n)

    def test_sha256(self, sample: tuple[Any, dict[str, Any]]) -> None:
        """Digests from the truth file, as a check independent of its payload field."""
        capture, truth = sample
        rows = T.connection_rows(capture, truth)
        m = capture.messages
        for tc, d in _each_direction(truth):
            ours = m[(m.conn_id == rows[tc["id"]].conn_id) & (m.direction == d)]
            theirs = sorted((x for x in tc["messages"] if x["direction"] == d),
                            key=lambda x: x["frames"][-1])
            assert [hashlib.sha256(bytes(p)).hexdigest() for p in ours.payload] == [
                x["sha256"] for x in theirs]

    def test_compressed_messages_inflated(self, sample: tuple[Any, dict[str, Any]]) -> None:
        capture, truth = sample
        m = capture.messages
        compressed = m[m.compressed]
        expected = sum(x["compressed"] for tc in truth["connections"] for x in tc["messages"])
        assert len(compressed) == expected
        assert compressed.inflated.eq(True).all()
        assert m[~m.compressed].inflated.isna().all()

    def test_counts(self, sample: tuple[Any, dict[str, Any]]) -> None:
        capture, truth = sample
        rows = T.connection_rows(capture, truth)
        m = capture.messages
        for tc, d in _each_direction(truth):
            ours = m[(m.conn_id == rows[tc["id"]].conn_id) & (m.direction == d)]
            counts = tc["counts"][d]
            assert len(ours) == counts["messages"]
            assert ours.type.isin(["text", "binary"]).sum() == counts["data_messages"]
            assert ours.type.isin(["ping", "pong", "close"]).sum() == counts["control_frames"]


@pytest.mark.parametrize("name", ["deflate", "deflate-no-context"])
def test_context_takeover_needed(name: str, samples_dir: Path, read_capture: Any) -> None:
    """With context takeover (deflate) the same tick compresses smaller the second
    time; without it (deflate-no-context) both copies compress to the same bytes."""
    truth = T.load(samples_dir / f"{name}.truth.json")
    tc = truth["connections"][0]
    capture = read_capture(samples_dir / truth["file"])
    texts = [x for x in tc["messages"] if x["direction"] == "c2s" and x["type"] == "text"]
    # the repeated tick: two consecutive c2s texts with the same payload
    pairs = [(a, b) for a, b in itertools.pairwise(texts) if a["payload"] == b["payload"]]
    assert len(pairs) == 1
    first, second = pairs[0]
    f = capture.frames
    wire = f[(f.direction == "c2s")].payload.tolist()
    dir_pos = T._dir_positions(tc)
    one, two = wire[dir_pos[first["frames"][0]]], wire[dir_pos[second["frames"][0]]]
    no_context = tc["deflate_params"]["client_no_context_takeover"]
    assert (one == two) is no_context
    m = capture.messages
    assert (m[m.direction == "c2s"].text == first["payload"]).sum() == 2
