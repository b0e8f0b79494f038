"""wspcap against the peers' expected outputs (Zeek baselines, Suricata tests).

Every expectation here is read from the peers' own files (``websocket.log``,
``weird.log``, the ``print`` output of Zeek's event handlers, Suricata's
``test.yaml`` + ``test.rules``) or from tshark's output stored next to each
capture; see ``peers/README.md`` and the NOTES files for what they mean.

Where wspcap and a peer disagree on purpose it is said next to the check:

- Zeek reports a close frame with an empty payload as status 0 with an empty
  reason; wspcap leaves ``close_code`` / ``close_reason`` missing (there is no
  status on the wire). The comparison maps missing to (0, "").
- Zeek caps close reasons at 123 bytes by default; wspcap keeps the whole
  payload (Zeek's "uncapped" run is the one compared with).
- Zeek and Suricata raise nothing for unmasked client frames (wstunnel,
  websocket-ping); wspcap reports ``ws_client_unmasked`` (RFC 6455 section 5.1
  says a server MUST close such a connection).
- wspcap's other findings that Zeek does not check (``sec_``, ``res_``,
  ``ws_ping_unanswered``, ...) are left out of the comparison with Zeek's
  weird.log: only codes whose registry entry names a Zeek weird are compared.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from golden.paths import peers_location
from golden.peers import (
    SuricataRule,
    content_bytes,
    read_rules,
    read_tshark_tsv,
    read_zeek_events,
    read_zeek_log,
)

from wspcap.rules.registry import RULES
from wspcap.sources import open_capture

ZEEK_BASE = "zeek/baselines/"
ZEEK_TRACES = "zeek/traces/"
OPCODE_NAMES = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}

#: Which trace each Zeek btest ran on (from the btests; see zeek/NOTES.md).
BTEST_TRACE = {
    "scripts.base.protocols.http.101-switching-protocols": "http-websocket.pcap",
    "scripts.base.protocols.http.upgrade-to-tcp": "http-docker-http-upgrade.pcap",
    "scripts.base.protocols.websocket.broker-websocket": "broker-websocket.pcap",
    "scripts.base.protocols.websocket.close-too-large": "oversized-close-frame.pcapng",
    "scripts.base.protocols.websocket.fragmented-http-reply": "fragmented-http-reply.pcap",
    "scripts.base.protocols.websocket.jupyter-websocket": "jupyter-websocket.pcap",
    "scripts.base.protocols.websocket.key-accept-wrong": "wrong-accept-header.pcap",
    "scripts.base.protocols.websocket.wstunnel-http": "wstunnel-http.pcap",
    "scripts.base.protocols.websocket.wstunnel-https": "wstunnel-https.pcap",
    "scripts.base.protocols.websocket.wstunnel-ssh": "wstunnel-ssh.pcap",
    "scripts.base.protocols.websocket.wstunnel-ssh-configure": "wstunnel-ssh.pcap",
    "scripts.base.protocols.websocket.wstunnel-ssh-configure-wrong": "wstunnel-ssh.pcap",
    "scripts.base.protocols.websocket.wstunnel-ssh-configure-break": "wstunnel-ssh.pcap",
}
#: btests whose conn.log reflects the WebSocket analyzer as shipped (the
#: -break/-disabled/-spicy variants remove or swap it on purpose).
CONN_LOG_BTESTS = [
    "scripts.base.protocols.websocket.broker-websocket",
    "scripts.base.protocols.websocket.jupyter-websocket",
    "scripts.base.protocols.websocket.wstunnel-http",
    "scripts.base.protocols.websocket.wstunnel-https",
    "scripts.base.protocols.websocket.wstunnel-ssh",
    "scripts.base.protocols.websocket.wstunnel-ssh-configure",
    "scripts.base.protocols.websocket.wstunnel-ssh-configure-wrong",
]
#: Traces whose btests assert that Zeek logs no weird at all.
ZEEK_CLEAN = [
    "broker-websocket.pcap", "fragmented-http-reply.pcap", "http-websocket.pcap",
    "jupyter-websocket.pcap", "message-too-big-status.pcap", "reply-ping-separate.pcap",
    "two-binary-fragments.pcap", "wstunnel-http.pcap", "wstunnel-https.pcap",
    "wstunnel-ssh.pcap",
]


def test_peer_corpus_is_bundled_with_its_licenses() -> None:
    """A fresh clone has the peers' captures, expectations and license texts."""
    from golden.paths import PEERS_DIR
    captures = [p for p in PEERS_DIR.rglob("*") if p.suffix in (".pcap", ".pcapng")]
    assert len(captures) >= 17, "the peers' captures are part of the test data"
    assert (PEERS_DIR / "zeek" / "COPYING").read_text().startswith("Copyright (c) 1995-now")
    assert "MIT" in (PEERS_DIR / "README.md").read_text()
    assert "Permission is hereby granted" in (PEERS_DIR / "suricata" / "LICENSE.txt").read_text()
    assert (PEERS_DIR / "zeek" / "baselines").is_dir() and list(PEERS_DIR.rglob("test.yaml"))


def _found(rel_paths: list[str]) -> list[Any]:
    """Parameters, or one skipped parameter when the corpus is missing."""
    if rel_paths:
        return rel_paths
    return [pytest.param(None, marks=pytest.mark.skip(
        reason=f"peers' corpus not found at {peers_location()} (set WSPCAP_PEERS)"))]


def _glob(pattern: str) -> list[str]:
    root = peers_location()
    if not root.is_dir():
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.glob(pattern))


@pytest.fixture
def peer(peers_dir: Path, read_capture: Any) -> Any:
    """``peer("zeek/traces/x.pcap")``: the capture, read once."""
    def read(rel: str) -> Any:
        return read_capture(peers_dir / rel)
    return read


def _na(value: Any) -> Any:
    """Missing values as None, numpy scalars as Python ones."""
    if value is None or pd.isna(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _one_conn(capture: Any) -> pd.Series:
    assert len(capture.connections) == 1
    return capture.connections.iloc[0]


def _conn_by_tuple(capture: Any, orig_h: str, orig_p: str, resp_h: str,
                   resp_p: str) -> pd.Series:
    c = capture.connections
    hits = c[(c.client_ip == orig_h) & (c.client_port == int(orig_p))
             & (c.server_ip == resp_h) & (c.server_port == int(resp_p))]
    assert len(hits) == 1, f"{orig_h}:{orig_p} -> {resp_h}:{resp_p}: {len(hits)} rows"
    return hits.iloc[0]


def _list(value: Any) -> list[str] | None:
    """One of our comma-joined header values as a list (Zeek splits on commas only)."""
    value = _na(value)
    return None if value is None else [v.strip() for v in value.split(",")]


def _anomalies(capture: Any, code: str) -> pd.DataFrame:
    a = capture.anomalies
    return a[a.code == code]


# -- Zeek: websocket.log and conn.log -------------------------------------------------------

def _zeek_list(value: str) -> list[str] | None:
    if value == "-":
        return None
    return [] if value == "(empty)" else value.split(",")


@pytest.mark.parametrize("log", _found(_glob(ZEEK_BASE + "*/**/websocket.log")))
def test_zeek_websocket_log(log: str, peers_dir: Path, peer: Any) -> None:
    """Every websocket.log row has our connection row (matched on the 4-tuple) with the
    same handshake fields."""
    btest = log[len(ZEEK_BASE):].split("/")[0]
    capture = peer(ZEEK_TRACES + BTEST_TRACE[btest])
    rows = read_zeek_log(peers_dir / log)
    assert rows
    assert len(capture.connections) == len(rows)
    for z in rows:
        ours = _conn_by_tuple(capture, z["id.orig_h"], z["id.orig_p"], z["id.resp_h"],
                              z["id.resp_p"])
        unset = lambda v: None if v == "-" else v
        assert _na(ours.host) == unset(z["host"])
        assert _na(ours.uri) == unset(z["uri"])
        assert _na(ours.user_agent) == unset(z["user_agent"])
        assert _na(ours.subprotocol) == unset(z["subprotocol"])
        assert _list(ours.protocols_offered) == _zeek_list(z["client_protocols"])
        assert _list(ours.extensions) == _zeek_list(z["server_extensions"])
        assert _list(ours.extensions_offered) == _zeek_list(z["client_extensions"])
        assert ours.established


@pytest.mark.parametrize("btest", CONN_LOG_BTESTS)
def test_zeek_conn_log_websocket_service(btest: str, peers_dir: Path, peer: Any) -> None:
    """As many established WebSocket connections as conn.log rows with service websocket."""
    rows = read_zeek_log(peers_dir / ZEEK_BASE / btest / "conn.log")
    capture = peer(ZEEK_TRACES + BTEST_TRACE[btest])
    expected = sum("websocket" in r["service"].split(",") for r in rows)
    assert expected
    assert int(capture.connections.established.sum()) == expected


# -- Zeek: per-frame events ------------------------------------------------------------------

def _events_sections() -> list[str]:
    path = peers_location() / ZEEK_BASE / "scripts.base.protocols.websocket.events" / "out"
    return sorted(read_zeek_events(path)) if path.is_file() else []


def _check_frames_against_zeek(capture: Any, zeek: Any) -> None:
    """Zeek's websocket_frame(_data) and websocket_close events, per direction, in order."""
    f = capture.frames
    for is_orig, direction in ((True, "c2s"), (False, "s2c")):
        theirs = [z for z in zeek.frames if z.is_orig == is_orig]
        ours = f[f.direction == direction]
        assert len(ours) == len(theirs), direction
        for n, (o, z) in enumerate(zip(ours.itertuples(index=False), theirs)):
            rsv = (int(o.rsv1) << 2) | (int(o.rsv2) << 1) | int(o.rsv3)
            assert (bool(o.fin), rsv, OPCODE_NAMES.get(int(o.opcode)), int(o.payload_len)) == (
                z.fin, z.rsv, z.opcode, z.payload_len), (direction, n)
            if z.data is not None:
                assert z.data_len == z.payload_len
                assert len(z.data) == min(120, z.payload_len)
                assert bytes(o.payload)[:len(z.data)] == z.data, (direction, n)
            else:
                assert z.payload_len == 0
        m = capture.messages
        closes = m[(m.direction == direction) & (m.type == "close")]
        ours_closes = [(int(_na(c.close_code) or 0), _na(c.close_reason) or "")
                       for c in closes.itertuples(index=False)]
        assert ours_closes == [(s, r) for o, s, r in zeek.closes if o == is_orig]


@pytest.mark.parametrize("trace", _found(_events_sections()))
def test_zeek_events(trace: str, peers_dir: Path, peer: Any) -> None:
    """The main per-frame oracle (btest websocket.events)."""
    zeek = read_zeek_events(
        peers_dir / ZEEK_BASE / "scripts.base.protocols.websocket.events" / "out")[trace]
    capture = peer(ZEEK_TRACES + trace)
    row = _one_conn(capture)
    est = zeek.established
    assert est, "no websocket_established record"
    assert _na(row.host) == est["host"]
    assert _na(row.uri) == est["uri"]
    assert _na(row.user_agent) == est["user_agent"]
    assert _na(row.subprotocol) == est["subprotocol"]
    assert _list(row.protocols_offered) == est["client_protocols"]
    assert _list(row.extensions) == est["server_extensions"]
    assert _list(row.extensions_offered) == est["client_extensions"]
    assert row.key == est["client_key"]
    assert row.accept == est["server_accept"]
    assert bool(row.accept_valid)
    _check_frames_against_zeek(capture, zeek)
    # websocket_message fires once per message, control frames included.
    m = capture.messages
    for is_orig, direction in ((True, "c2s"), (False, "s2c")):
        assert m[m.direction == direction].type.astype(str).tolist() == [
            op for o, op in zeek.messages if o == is_orig]
    assert m.complete.all()


# -- Zeek: close-too-large ---------------------------------------------------------------------

def test_zeek_close_too_large(peers_dir: Path, peer: Any) -> None:
    """A 258-byte close: whole 256-byte reason kept (Zeek's uncapped run), flagged like
    Zeek's websocket_control_frame_size_exceeded."""
    base = peers_dir / ZEEK_BASE / "scripts.base.protocols.websocket.close-too-large"
    capture = peer(ZEEK_TRACES + "oversized-close-frame.pcapng")
    for name in ("weird-pac.log", "weird-spicy.log"):
        (weird,) = read_zeek_log(base / name)
        assert weird["name"] == "websocket_control_frame_size_exceeded"
        length, limit = (int(x) for x in re.fullmatch(r"(\d+) > (\d+)", weird["addl"]).groups())
        row = _conn_by_tuple(capture, weird["id.orig_h"], weird["id.orig_p"],
                             weird["id.resp_h"], weird["id.resp_p"])
        (frame,) = capture.frames[capture.frames.conn_id == row.conn_id].itertuples(index=False)
        assert (int(frame.opcode), int(frame.payload_len)) == (8, length)
        flagged = _anomalies(capture, "ws_control_too_long")
        assert len(flagged) == 1
        assert flagged.iloc[0].frame_index == frame.frame_index
        assert flagged.iloc[0].detail.startswith(f"{length} > {limit}")
    for name in ("out-pac-uncapped", "out-spicy-uncapped"):
        text = (base / name).read_text(encoding="utf-8")
        reason_len = int(re.search(r"Close length: (\d+)", text).group(1))
        (close,) = capture.messages.itertuples(index=False)
        assert close.type == "close"
        assert len(close.close_reason.encode("utf-8")) == reason_len
        assert close.length == reason_len + 2
        assert int(close.close_code) == int.from_bytes(bytes(close.payload)[:2], "big")


# -- Zeek: key-accept-wrong ----------------------------------------------------------------------

def test_zeek_wrong_accept(peers_dir: Path, peer: Any) -> None:
    base = peers_dir / ZEEK_BASE / "scripts.base.protocols.websocket.key-accept-wrong"
    (weird,) = read_zeek_log(base / "weird.log")
    assert weird["name"] == "websocket_wrong_accept_header"
    capture = peer(ZEEK_TRACES + "wrong-accept-header.pcap")
    row = _conn_by_tuple(capture, weird["id.orig_h"], weird["id.orig_p"], weird["id.resp_h"],
                         weird["id.resp_p"])
    flagged = _anomalies(capture, "http_accept_mismatch")
    assert flagged.detail.tolist() == [weird["addl"]]
    found = re.search(r"found=(\S+)$", weird["addl"]).group(1)
    assert row.accept == found
    assert _na(row.accept_valid) is False
    # like Zeek, the connection is still logged and its frames still read
    assert row.established and len(capture.frames) > 0


# -- Zeek: coalesced-reply-ping -------------------------------------------------------------------

def test_zeek_coalesced_reply_ping(peers_dir: Path, peer: Any) -> None:
    """Data in the 101's segment: flagged on the coalesced trace only; frames identical."""
    base = peers_dir / ZEEK_BASE / "scripts.base.protocols.websocket.coalesced-reply-ping"
    both = {}
    for trace, out in (("reply-ping-coalesced.pcap", "out-coalesced"),
                       ("reply-ping-separate.pcap", "out-separate")):
        capture = peer(ZEEK_TRACES + trace)
        _check_frames_against_zeek(capture, read_zeek_events(base / out, trace)[trace])
        both[trace] = [(r.direction, r.fin, r.rsv1, r.opcode, r.masked, r.payload_len,
                        bytes(r.payload)) for r in capture.frames.itertuples(index=False)]
    assert both["reply-ping-coalesced.pcap"] == both["reply-ping-separate.pcap"]

    (weird,) = read_zeek_log(base / "weird.log")
    assert weird["name"] == "protocol_data_with_HTTP_upgrade_reply"
    coalesced = peer(ZEEK_TRACES + "reply-ping-coalesced.pcap")
    row = _conn_by_tuple(coalesced, weird["id.orig_h"], weird["id.orig_p"],
                         weird["id.resp_h"], weird["id.resp_p"])
    flagged = _anomalies(coalesced, "http_data_with_101")
    assert len(flagged) == 1
    assert flagged.iloc[0].conn_id == row.conn_id
    assert re.match(r"(\d+) bytes", flagged.iloc[0].detail).group(1) == weird["addl"]
    f = coalesced.frames
    first_s2c = f[f.direction == "s2c"].iloc[0]
    assert flagged.iloc[0].packet == first_s2c.packet
    assert _anomalies(peer(ZEEK_TRACES + "reply-ping-separate.pcap"),
                      "http_data_with_101").empty


# -- Zeek: fragmented-http-reply --------------------------------------------------------------------

def _http_head(data: bytes) -> tuple[str, dict[str, str]]:
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().upper()] = value.strip()
    return head[0], headers


def test_zeek_fragmented_http_reply(peers_dir: Path, peer: Any) -> None:
    """The server's fragmented message reassembles to an HTTP response Zeek can parse."""
    out = peers_dir / ZEEK_BASE / "scripts.base.protocols.websocket.fragmented-http-reply" / "out"
    expected: dict[bool, dict[str, str]] = {True: {}, False: {}}
    for line in out.read_text(encoding="utf-8").splitlines():
        if line.startswith("http_header, "):
            _e, orig, name, value = line.split(", ", 3)
            expected[orig == "T"][name] = value
    assert expected[True] and expected[False]
    trace = "fragmented-http-reply.pcap"
    capture = peer(ZEEK_TRACES + trace)
    m = capture.messages
    (request,) = m[(m.direction == "c2s") & (m.type == "binary")].itertuples(index=False)
    (response,) = m[(m.direction == "s2c") & (m.type == "binary")].itertuples(index=False)
    start, headers = _http_head(bytes(request.payload))
    assert start.split()[-1].startswith("HTTP/1.")
    assert expected[True].items() <= headers.items()
    start, headers = _http_head(bytes(response.payload))
    assert start.startswith("HTTP/1.")
    assert expected[False].items() <= headers.items()
    # the reassembly matches tshark's (stored next to the trace)
    tsv = read_tshark_tsv(peers_dir / ZEEK_TRACES / f"{trace}.tshark-ext.tsv")
    (row,) = [r for r in tsv if r["websocket.reassembled.length"] and r["websocket.mask"]
              and r["websocket.mask"][0] == "0"]
    assert response.length == int(row["websocket.reassembled.length"][0])
    assert response.frames == len(row["websocket.opcode"])
    assert response.complete


# -- Zeek: negative control and cleanliness ------------------------------------------------------------

def test_zeek_upgrade_to_tcp_is_not_websocket(peers_dir: Path, peer: Any) -> None:
    """A 101 upgrade to ``tcp`` (Docker attach) is no WebSocket connection."""
    out = peers_dir / ZEEK_BASE / "scripts.base.protocols.http.upgrade-to-tcp" / "out"
    upgrades = re.findall(r"Connection upgraded to (\S+)",
                          out.read_text(encoding="utf-8"))
    assert upgrades and "websocket" not in upgrades
    http = read_zeek_log(peers_dir / ZEEK_BASE / "scripts.base.protocols.http.upgrade-to-tcp"
                         / "http.log.cut")
    assert any(r["status_code"] == "101" for r in http)
    capture = peer(ZEEK_TRACES + "http-docker-http-upgrade.pcap")
    assert len(capture.connections) == 0
    assert len(capture.frames) == 0 and len(capture.messages) == 0
    assert capture.info.tcp_connections == len({r["uid"] for r in http})


def _zeek_equivalents() -> dict[str, str]:
    """Zeek weird name -> our code, from the registry's ``peers`` notes."""
    out = {}
    for rule in RULES.values():
        for part in rule.peers.split(";"):
            part = part.strip()
            if not part.startswith("Zeek:"):
                continue
            for name in part[len("Zeek:"):].split("/"):
                name = name.strip()
                if re.fullmatch(r"[A-Za-z][A-Za-z_]*", name):
                    out[name] = rule.code
    return out


def _zeek_weirds(peers_dir: Path, trace: str) -> set[str]:
    """The weirds Zeek logged on a trace (none for the traces in ZEEK_CLEAN)."""
    if trace in ZEEK_CLEAN:
        return set()
    logs = {"reply-ping-coalesced.pcap": "coalesced-reply-ping/weird.log",
            "wrong-accept-header.pcap": "key-accept-wrong/weird.log",
            "oversized-close-frame.pcapng": "close-too-large/weird-pac.log"}
    rows = read_zeek_log(peers_dir / ZEEK_BASE /
                         f"scripts.base.protocols.websocket.{logs[trace]}")
    return {r["name"] for r in rows}


@pytest.mark.parametrize("trace", ZEEK_CLEAN + [
    "reply-ping-coalesced.pcap", "wrong-accept-header.pcap", "oversized-close-frame.pcapng"])
def test_zeek_weird_equivalents(trace: str, peers_dir: Path, peer: Any) -> None:
    """Our codes that have a Zeek weird (per the registry) are exactly Zeek's weirds.

    Codes Zeek does not check (``ws_client_unmasked``, the ``sec_``/``res_``
    findings, ...) are left out: Zeek says nothing about them either way.
    """
    equivalents = _zeek_equivalents()
    assert "websocket_wrong_accept_header" in equivalents
    ours_as_zeek = {name for name, code in equivalents.items()
                    if code in set(peer(ZEEK_TRACES + trace).anomalies.code.astype(str))}
    theirs = _zeek_weirds(peers_dir, trace)
    assert theirs <= set(equivalents), "a Zeek weird with no code of ours"
    assert ours_as_zeek == theirs


def test_unmasked_client_frames_flagged(peer_capture: str, peer: Any) -> None:
    """RFC 6455 section 5.1: one ws_client_unmasked per unmasked client frame, pointing
    at it (Zeek and Suricata do not check this; tshark shows the MASK bit)."""
    capture = peer(peer_capture)
    a = capture.anomalies
    flagged = a[a.code == "ws_client_unmasked"]
    f = capture.frames
    unmasked = f[(f.direction == "c2s") & ~f.masked]
    assert sorted(zip(flagged.conn_id.astype(int), flagged.frame_index.astype(int))) == sorted(
        zip(unmasked.conn_id.astype(int), unmasked.frame_index.astype(int)))
    assert (flagged.direction == "c2s").all()


def test_resets_are_real(peer_capture: str, peer: Any) -> None:
    """Every tcp_reset belongs to a connection whose row says it was reset."""
    capture = peer(peer_capture)
    a = capture.anomalies
    conns = capture.connections.set_index("conn_id")
    for r in a[a.code == "tcp_reset"].itertuples(index=False):
        assert conns.loc[r.conn_id].rst


# -- Suricata ------------------------------------------------------------------------------------------

SURICATA_TESTS = [p.split("/")[1] for p in _glob("suricata/*/test.yaml")]


def _suricata_pcap(peers_dir: Path, test: str) -> Path:
    (pcap,) = [p for p in (peers_dir / "suricata" / test).iterdir() if p.suffix == ".pcap"]
    return pcap


def _mask(payload: bytes, key: int) -> bytes:
    k = key.to_bytes(4, "big")
    return bytes(b ^ k[i % 4] for i, b in enumerate(payload))


def _header(f: Any) -> bytes:
    """The frame's header bytes, rebuilt from its fields (RFC 6455 section 5.2)."""
    b0 = (0x80 if f.fin else 0) | (int(f.rsv1) << 6) | (int(f.rsv2) << 5) | (
        int(f.rsv3) << 4) | int(f.opcode)
    n = int(f.payload_len)
    enc = int(f.length_encoding)
    mbit = 0x80 if f.masked else 0
    if enc == 7:
        head = bytes([b0, mbit | n])
    elif enc == 16:
        head = bytes([b0, mbit | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, mbit | 127]) + n.to_bytes(8, "big")
    if f.masked:
        head += int(f.mask_key).to_bytes(4, "big")
    return head


def _units(capture: Any, level: str) -> list[dict[str, Any]]:
    """Suricata's inspection units: frames (PDUs) or messages (websocket.payload)."""
    units = []
    if level == "frame":
        for f in capture.frames.itertuples(index=False):
            payload = bytes(f.payload)
            wire = _mask(payload, int(f.mask_key)) if f.masked else payload
            units.append({
                "direction": f.direction, "opcode": OPCODE_NAMES.get(int(f.opcode)),
                "mask": None if pd.isna(f.mask_key) else int(f.mask_key), "fin": bool(f.fin),
                "comp": bool(f.rsv1), "pcap_cnt": int(f.packet),
                "websocket.header": _header(f), "websocket.pdu": _header(f) + wire,
                "websocket.data": wire, "websocket.payload": payload})
    else:
        for m in capture.messages.itertuples(index=False):
            units.append({
                "direction": m.direction, "opcode": str(m.type), "pcap_cnt": int(m.packet_end),
                "websocket.payload": bytes(m.payload)})
    return units


def _compare(value: int, spec: str) -> bool:
    m = re.fullmatch(r"\s*(>=|<=|>|<|!=|=)?\s*(\d+)\s*", spec)
    assert m, spec
    op, n = m.group(1) or "=", int(m.group(2))
    return {"=": value == n, "!=": value != n, ">": value > n, "<": value < n,
            ">=": value >= n, "<=": value <= n}[op]


def _rule_matches(rule: SuricataRule, unit: dict[str, Any]) -> bool:
    """Evaluate the websocket keywords these tests use on one unit."""
    buffer: bytes | None = None
    last: tuple[bytes, int] | None = None  # (content, where it matched)
    for key, value in rule.options:
        if key in ("msg", "sid", "rev"):
            continue
        if key == "flow":
            flags = value.split(",")  # type: ignore[union-attr]
            if "to_server" in flags and unit["direction"] != "c2s":
                return False
            if "to_client" in flags and unit["direction"] != "s2c":
                return False
        elif key == "frame":
            buffer = unit[value]  # type: ignore[index]
        elif key == "websocket.payload":
            buffer = unit["websocket.payload"]
        elif key == "content":
            assert buffer is not None, f"sid {rule.sid}: content without a buffer"
            needle = content_bytes(value)  # type: ignore[arg-type]
            at = buffer.find(needle)
            if at < 0:
                return False
            last = (needle, at)
        elif key == "startswith":
            assert last is not None
            if not buffer.startswith(last[0]):  # type: ignore[union-attr]
                return False
        elif key == "endswith":
            assert last is not None
            if not buffer.endswith(last[0]):  # type: ignore[union-attr]
                return False
        elif key == "websocket.opcode":
            want = value.lstrip("!")  # type: ignore[union-attr]
            if (unit["opcode"] == want) == value.startswith("!"):  # type: ignore[union-attr]
                return False
        elif key == "websocket.mask":
            if unit.get("mask") is None or not _compare(unit["mask"], value):  # type: ignore
                return False
        elif key == "websocket.flags":
            for flag in value.split(","):  # type: ignore[union-attr]
                if not unit[flag.strip()]:
                    return False
        else:
            raise AssertionError(f"sid {rule.sid}: keyword {key} not understood by this test")
    return True


def _event_matches(unit: dict[str, Any], match: dict[str, Any]) -> bool:
    for key, value in match.items():
        if key in ("event_type", "alert.signature_id"):
            continue
        if key == "websocket.opcode" and unit["opcode"] != value:
            return False
        if key == "websocket.mask" and unit.get("mask") != value:
            return False
        if key == "pcap_cnt" and unit["pcap_cnt"] != value:
            return False
        if key not in ("websocket.opcode", "websocket.mask", "pcap_cnt"):
            raise AssertionError(f"match key {key} not understood by this test")
    return True


@pytest.mark.parametrize("test", _found(SURICATA_TESTS))
def test_suricata_expectations(test: str, peers_dir: Path, peer: Any) -> None:
    """Each test.yaml check, counted over our frames/messages with its test.rules.

    Alerts count one per inspected unit: a frame (PDU) for header, mask, flag and
    opcode keywords, a message (reassembled, inflated) for ``websocket.payload``.
    Checks on non-WebSocket rules (plain HTTP) are not ours and are passed over.
    """
    spec = yaml.safe_load((peers_dir / "suricata" / test / "test.yaml").read_text())
    rules = read_rules(peers_dir / "suricata" / test / "test.rules")
    capture = peer(_suricata_pcap(peers_dir, test).relative_to(peers_dir).as_posix())
    checked = 0
    for check in spec["checks"]:
        match = check["filter"]["match"]
        expected = check["filter"]["count"]
        if match["event_type"] == "websocket":
            units = _units(capture, "frame")
            count = sum(_event_matches(u, match) for u in units)
        elif match["event_type"] == "alert":
            rule = rules[match["alert.signature_id"]]
            if rule.proto != "websocket":
                continue
            level = "message" if any(k == "websocket.payload" for k, _ in rule.options) \
                else "frame"
            count = sum(_rule_matches(rule, u) and _event_matches(u, match)
                        for u in _units(capture, level))
        else:
            raise AssertionError(f"event_type {match['event_type']} not understood")
        assert count == expected, match
        checked += 1
    if any(r.proto == "websocket" for r in rules.values()):
        assert checked


def test_suricata_compressed_context_takeover(peers_dir: Path, peer: Any) -> None:
    """permessage-deflate with context takeover: every server message inflates, the
    ones that need the kept window included; the rule's content is in the last."""
    test = "websocket-compressed"
    pcap = _suricata_pcap(peers_dir, test)
    capture = peer(pcap.relative_to(peers_dir).as_posix())
    row = _one_conn(capture)
    assert row.permessage_deflate
    tsv = read_tshark_tsv(pcap.with_name(pcap.name + ".tshark-ext.tsv"))
    tshark_compressed = sum(v == "1" for r in tsv for v in r["websocket.pmc"])
    m = capture.messages
    s2c = m[m.direction == "s2c"]
    assert len(s2c) == tshark_compressed
    assert s2c.compressed.all() and s2c.inflated.eq(True).all()
    assert s2c.text.notna().all()
    assert not capture.anomalies.code.astype(str).str.startswith("pmd_").any()
    (content,) = [content_bytes(v) for r in read_rules(peers_dir / "suricata" / test /
                                                        "test.rules").values()
                  for k, v in r.options if k == "content"]
    hits = [n for n, p in enumerate(s2c.payload) if content in bytes(p)]
    assert hits == [len(s2c) - 1]
    # Each message alone (a fresh raw inflater, RFC 7692 section 7.2.2 tail added):
    # some cannot be inflated, so the window was really carried across messages.
    f = capture.frames
    alone = []
    for p in f[f.direction == "s2c"].payload:
        try:
            alone.append(zlib.decompressobj(-15).decompress(bytes(p) + b"\x00\x00\xff\xff"))
        except zlib.error:
            alone.append(None)
    assert any(a is None or a != bytes(q) for a, q in zip(alone, s2c.payload))


def test_suricata_control_frame_between_fragments(peers_dir: Path, peer: Any) -> None:
    """RFC 6455 section 5.4: a ping between two fragments is not part of the message."""
    test = "websocket-control-frag"
    pcap = _suricata_pcap(peers_dir, test)
    capture = peer(pcap.relative_to(peers_dir).as_posix())
    (content,) = [content_bytes(v) for r in read_rules(peers_dir / "suricata" / test /
                                                        "test.rules").values()
                  for k, v in r.options if k == "content"]
    m = capture.messages
    c2s = m[m.direction == "c2s"]
    (msg,) = [r for r in c2s.itertuples(index=False) if content in bytes(r.payload)]
    (ping,) = c2s[c2s.type == "ping"].itertuples(index=False)
    tsv = read_tshark_tsv(pcap.with_name(pcap.name + ".tshark-ext.tsv"))
    reassembled = [int(v) for r in tsv for v in r["websocket.reassembled.length"]]
    assert msg.type == "text" and msg.complete
    assert msg.frames == 2
    assert [msg.length] == reassembled
    assert msg.packet_start < ping.packet_end < msg.packet_end
    assert bytes(ping.payload) not in bytes(msg.payload)


def test_suricata_ping_on_linux_sll(peers_dir: Path, peer: Any) -> None:
    """Linux cooked capture; the client's ping is unmasked (flagged by us, not Suricata)."""
    pcap = _suricata_pcap(peers_dir, "websocket-ping")
    with open_capture(pcap) as cap:
        linktypes = {r.linktype for r in cap}
    assert linktypes == {113}  # LINKTYPE_LINUX_SLL
    capture = peer(pcap.relative_to(peers_dir).as_posix())
    f = capture.frames
    (ping,) = f[f.opcode == 9].itertuples(index=False)
    assert ping.direction == "c2s" and not ping.masked
    flagged = _anomalies(capture, "ws_client_unmasked")
    assert flagged.frame_index.tolist() == [ping.frame_index]


def test_suricata_basic_coalesced_101(peers_dir: Path, peer: Any) -> None:
    """The 101 and the server's first frame share a segment."""
    pcap = _suricata_pcap(peers_dir, "websocket")
    capture = peer(pcap.relative_to(peers_dir).as_posix())
    f = capture.frames
    flagged = _anomalies(capture, "http_data_with_101")
    assert flagged.packet.tolist() == [f[f.direction == "s2c"].packet.iloc[0]]
    assert f[f.direction == "c2s"].masked.all()


def test_suricata_upgrade_without_answer(peers_dir: Path, peer: Any) -> None:
    """Negative control: an upgrade request the server never answers.

    wspcap keeps a row for the attempt (handshake seen, no status, not
    established) and finds no frame.
    """
    test = "http-request-header-multi"
    capture = peer(_suricata_pcap(peers_dir, test).relative_to(peers_dir).as_posix())
    assert int(capture.connections.established.sum()) == 0
    assert len(capture.frames) == 0 and len(capture.messages) == 0
    assert len(capture.connections) == 1
    row = capture.connections.iloc[0]
    assert row.handshake and _na(row.status) is None
    # the request the rules look at: http.uri ends with their content
    rules = read_rules(peers_dir / "suricata" / test / "test.rules")
    for rule in rules.values():
        keys = [k for k, _ in rule.options]
        at = keys.index("http.uri")
        assert rule.options[at + 1][0] == "content" and rule.options[at + 2][0] == "endswith"
        assert row.uri.endswith(content_bytes(rule.options[at + 1][1]).decode())
