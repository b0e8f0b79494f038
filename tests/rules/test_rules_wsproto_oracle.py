"""Differential test: wsproto's frame parser as an oracle on the crafted captures.

Each direction's bytes are rebuilt here independently of wspcap (dpkt, TCP
segments in sequence order, first copy wins, stopping at the first hole),
the HTTP heads are cut off, and the rest goes through wsproto's
``FrameProtocol`` (with its permessage-deflate when the 101 accepted it).
Wherever wsproto fails the connection (``ParseFailed``), wspcap must have
flagged the matching code on that connection and direction.
"""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path
from typing import Any

import dpkt
import pytest

import wspcap

wsproto = pytest.importorskip("wsproto")
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import FrameProtocol, ParseFailed

ANOMALIES_DIR = Path(__file__).resolve().parents[2] / "samples" / "anomalies"
#: The crafted captures in the clear (the oracle reads TCP payloads as frames, so the
#: wss:// ``tls-`` captures are not for it).
EXPECT_FILES = sorted(p for p in ANOMALIES_DIR.glob("*.expect.json")
                      if not p.name.startswith("tls-"))

#: wsproto's failure messages (frame_protocol.py) and the codes that say the same.
ORACLE = [
    ("Invalid opcode", {"ws_reserved_opcode"}),
    ("Invalid attempt to fragment control frame", {"ws_control_fragmented"}),
    ("Control frame with payload len > 125", {"ws_control_too_long"}),
    ("Payload length used", {"ws_nonminimal_length"}),
    ("8-byte payload length with non-zero MSB", {"ws_length_msb_set"}),
    ("Reserved bit set unexpectedly", {"ws_rsv_unnegotiated"}),
    ("client received unexpected masked frame", {"ws_server_masked"}),
    ("server received unexpected unmasked frame", {"ws_client_unmasked"}),
    ("unexpected CONTINUATION", {"ws_orphan_continuation"}),
    ("expected CONTINUATION", {"ws_message_interleaved"}),
    ("CLOSE with 1 byte payload", {"ws_close_1_byte"}),
    ("CLOSE with invalid code", {"ws_close_code_invalid"}),
    ("remote CLOSE with local-only reason", {"ws_close_code_invalid"}),
    ("CLOSE with unknown reserved code", {"ws_close_code_invalid"}),
    ("Error decoding CLOSE reason", {"ws_close_reason_invalid_utf8"}),
]
#: permessage-deflate failures, by the close code wsproto gives.
PMD_ORACLE = {
    1002: {"pmd_rsv1_on_control", "pmd_rsv1_on_continuation"},
    1007: {"pmd_inflate_failed", "pmd_window_bits_exceeded", "pmd_context_takeover_violated",
           "pmd_context_lost", "pmd_ratio_excessive"},
}


def expected_codes(exc: ParseFailed) -> set[str]:
    """The wspcap codes that match one wsproto failure."""
    text = str(exc)
    if text == "error in extension":
        return PMD_ORACLE[int(exc.code)]
    for prefix, codes in ORACLE:
        if text.startswith(prefix):
            return codes
    if int(exc.code) == 1007:  # the UTF-8 decoder's own message
        return {"ws_invalid_utf8"}
    raise AssertionError(f"a wsproto failure this test does not know: {text!r}")


def streams(path: Path) -> dict[tuple[bytes, int, bytes, int], bytes]:
    """Each TCP direction's bytes: in sequence order, first copy wins, up to a hole."""
    segments: dict[tuple[bytes, int, bytes, int], list[tuple[int, bytes]]] = {}
    starts: dict[tuple[bytes, int, bytes, int], int] = {}
    data = path.read_bytes()
    if path.suffix == ".gz":  # raw deflate after the 10-byte header: its CRC is not checked
        data = zlib.decompressobj(-zlib.MAX_WBITS).decompress(data[10:])
    reader = dpkt.pcapng.Reader if path.suffix == ".pcapng" else dpkt.pcap.Reader
    with io.BytesIO(data) as f:
        for _ts, buf in reader(f):
            try:
                ip = dpkt.ethernet.Ethernet(buf).data
            except (dpkt.UnpackError, dpkt.NeedData):
                continue
            if not isinstance(ip, dpkt.ip.IP) or ip.mf or ip.offset:
                continue  # IP fragments are not reassembled (a hole)
            tcp = ip.data
            if not isinstance(tcp, dpkt.tcp.TCP) or len(buf) - 14 < ip.len:
                continue  # not TCP, or cut by the snap length (a hole)
            key = (ip.src, tcp.sport, ip.dst, tcp.dport)
            if tcp.flags & dpkt.tcp.TH_SYN:
                starts[key] = tcp.seq + 1
            if tcp.data:
                segments.setdefault(key, []).append((tcp.seq, bytes(tcp.data)))
    out = {}
    for key, segs in segments.items():
        seq = starts.get(key, min(s for s, _ in segs))
        data = bytearray()
        for s, payload in sorted(segs, key=lambda x: x[0]):
            if s > seq:
                break  # a hole: stop there
            data += payload[seq - s:]
            seq = max(seq, s + len(payload))
        out[key] = bytes(data)
    return out


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    end = data.find(b"\r\n\r\n")
    return (data[:end + 4], data[end + 4:]) if end >= 0 else (b"", data)


def _conversations(path: Path) -> list[dict[str, Any]]:
    """Per connection (in conn_id order): frames bytes per direction and the 101's
    extensions. Refused upgrades are left out."""
    flows = streams(path)
    convs = []
    for key, data in flows.items():
        other = flows.get((key[2], key[3], key[0], key[1]), b"")
        if data.startswith((b"GET ", b"POST ")):
            _request, c2s = _split_head(data)
            response, s2c = _split_head(other)
            if b" 101 " not in response.split(b"\r\n", 1)[0]:
                continue
            ext = None
            for line in response.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"sec-websocket-extensions":
                    ext = value.strip().decode()
            convs.append({"order": key[1], "c2s": c2s, "s2c": s2c, "extensions": ext})
        elif not data.startswith(b"HTTP/") and not other.startswith((b"GET ", b"HTTP/")) \
                and len(data) > 1 and data[1] & 0x80:  # mid-stream: the masking side
            convs.append({"order": key[1], "c2s": data, "s2c": other, "extensions": None})
    return sorted(convs, key=lambda c: c["order"])


def _wsproto_failure(data: bytes, client: bool, extensions: str | None,
                     midstream: bool) -> ParseFailed | None:
    exts = []
    if extensions and "permessage-deflate" in extensions:
        pmd = PerMessageDeflate()
        try:
            pmd.finalize(extensions)
        except ValueError:
            pass  # parameters wsproto cannot take (wspcap: pmd_params_invalid)
        else:
            exts.append(pmd)
    elif midstream:
        exts.append(PerMessageDeflate())
        exts[0]._enabled = True  # RSV1 means compressed, as wspcap assumes mid-stream
    proto = FrameProtocol(client=client, extensions=exts)
    proto.receive_bytes(data)
    try:
        for _ in proto.received_frames():
            pass
    except ParseFailed as exc:
        return exc
    return None


@pytest.mark.parametrize("expect_file", EXPECT_FILES, ids=lambda p: p.name[:-12])
def test_wspcap_flags_what_wsproto_rejects(expect_file: Path) -> None:
    expect = json.loads(expect_file.read_text(encoding="utf-8"))
    options = wspcap.Options(**expect["options"]) if expect["options"] else None
    capture = wspcap.read(ANOMALIES_DIR / expect["file"], options=options)
    conns = capture.connections.set_index("client_port")
    a = capture.anomalies
    for conv in _conversations(ANOMALIES_DIR / expect["file"]):
        conn = conns.loc[conv["order"]]
        conn_id, midstream = int(conn.conn_id), bool(conn.midstream)
        for direction in ("c2s", "s2c"):
            exc = _wsproto_failure(conv[direction], client=direction == "s2c",
                                   extensions=conv["extensions"], midstream=midstream)
            if exc is None:
                continue
            flagged = set(a[(a.conn_id == conn_id) & (a.direction == direction)]
                          .code.astype(str))
            assert flagged & expected_codes(exc), (direction, str(exc), sorted(flagged))


def test_oracle_fails_where_the_framing_codes_are() -> None:
    """The oracle is not vacuous: it rejects the captures crafted to break framing."""
    rejected = set()
    for expect_file in EXPECT_FILES:
        path = ANOMALIES_DIR / json.loads(expect_file.read_text())["file"]
        for conv in _conversations(path):
            for direction in ("c2s", "s2c"):
                exc = _wsproto_failure(conv[direction], direction == "s2c",
                                       conv["extensions"], False)
                if exc is not None:
                    rejected |= expected_codes(exc)
    assert {"ws_reserved_opcode", "ws_control_fragmented", "ws_control_too_long",
            "ws_nonminimal_length", "ws_length_msb_set", "ws_rsv_unnegotiated",
            "ws_server_masked", "ws_client_unmasked", "ws_orphan_continuation",
            "ws_message_interleaved", "ws_close_1_byte", "ws_close_code_invalid",
            "ws_close_reason_invalid_utf8", "ws_invalid_utf8"} <= rejected
