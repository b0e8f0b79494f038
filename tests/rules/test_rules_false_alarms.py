"""Zero false alarms: clean real traffic gives no warning or error.

- ``samples/``: real ``websockets`` 17 server and client on loopback, with and
  without permessage-deflate (ground truth in the ``.truth.json`` files): not
  one ``warning`` or ``error``.
- The peers' captures (``tests/data/peers``): Zeek's expected weirds (its btest
  ``weird.log`` baselines) come out under our codes, with the same detail;
  where Zeek's baseline has no weird, the only warnings and errors are the
  violations Zeek does not look for, listed below with the reason each is real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wspcap.rules.registry import RULES, not_checked_by_zeek

SAMPLES_DIR = Path(__file__).resolve().parents[2] / "samples"
REAL_SAMPLES = sorted(p for p in SAMPLES_DIR.iterdir()
                      if p.is_file() and p.name.endswith((".pcap", ".pcapng")))

#: Real findings on the application samples (made by samples/make_app_samples.py
#: with real peers that send credentials in clear over ws://, on purpose).
SAMPLE_FINDINGS: dict[str, dict[str, str]] = {
    "mqtt.pcapng": {
        "app_credentials_plaintext": "paho-mqtt's CONNECT carries user and password "
                                     "over plain ws://",
    },
    "socketio.pcapng": {
        "app_credentials_plaintext": "python-socketio's CONNECT packets carry an auth "
                                     "token over plain ws://",
    },
}

#: Zeek btest baselines holding a weird.log, by the trace they run on.
ZEEK_WEIRD_LOGS = {
    "zeek/traces/oversized-close-frame.pcapng":
        "scripts.base.protocols.websocket.close-too-large/weird-pac.log",
    "zeek/traces/reply-ping-coalesced.pcap":
        "scripts.base.protocols.websocket.coalesced-reply-ping/weird.log",
    "zeek/traces/wrong-accept-header.pcap":
        "scripts.base.protocols.websocket.key-accept-wrong/weird.log",
}

_WSTUNNEL_JWT = ("wstunnel sends its JWT as 'authorization.bearer.<jwt>' in "
                 "Sec-WebSocket-Protocol of a plaintext upgrade")

#: Warnings and errors on the peers' captures that Zeek does not look for, with why
#: each is a real finding (see peers/zeek/NOTES.md and peers/suricata/NOTES.md).
EXPECTED_EXCEPTIONS: dict[str, dict[str, str]] = {
    "suricata/websocket-control-frag/input.pcap": {
        "http_key_invalid": "the crafted Sec-WebSocket-Key decodes to the 18 bytes "
                            "'suricata-test-key!', not 16",
        "sec_mask_predictable": "the crafting script masks every client frame with the "
                                "fixed key 0x12345678",
    },
    "suricata/websocket-ping/input.pcap": {
        "ws_client_unmasked": "the client's ping is sent unmasked",
    },
    "zeek/traces/broker-websocket.pcap": {
        "ws_close_unanswered": "the Broker server ends TCP without echoing the client's "
                               "close 1000",
    },
    "zeek/traces/oversized-close-frame.pcapng": {
        "ws_nonminimal_length": "the 258-byte close uses the 64-bit length form where 16 "
                                "bits suffice",
    },
    "zeek/traces/wstunnel-http.pcap": {
        "ws_client_unmasked": "wstunnel's client does not mask its frames",
        "sec_credentials_in_subprotocol": _WSTUNNEL_JWT,
    },
    "zeek/traces/wstunnel-https.pcap": {
        "sec_credentials_in_subprotocol": _WSTUNNEL_JWT,
    },
    "zeek/traces/wstunnel-ssh.pcap": {
        "sec_credentials_in_subprotocol": _WSTUNNEL_JWT,
        "ws_ping_unanswered": "the client's pings get no pong (7 in all; Zeek's notes "
                              "say so too)",
    },
}


def _serious(capture: Any) -> Any:
    a = capture.anomalies
    return a[a.severity.astype(str).isin(["warning", "error"])]


def test_there_are_real_samples() -> None:
    assert len(REAL_SAMPLES) >= 7


@pytest.mark.parametrize("path", REAL_SAMPLES, ids=lambda p: p.name)
def test_real_websockets_traffic_raises_no_warning(path: Path, read_capture: Any) -> None:
    capture = read_capture(path)
    bad = _serious(capture)
    expected = SAMPLE_FINDINGS.get(path.name, {})
    assert set(bad.code.astype(str)) == set(expected), bad[["code", "detail"]].to_string()
    # Every plain ws:// connection says so (info); a wss:// one does not.
    a = capture.anomalies
    plaintext = a[a.code == "sec_plaintext_ws"]
    conns = capture.connections
    assert sorted(plaintext.conn_id.astype(int)) == sorted(conns.conn_id[~conns.tls])


def test_false_alarm_count_on_real_samples(read_capture: Any) -> None:
    """The closing note's number: warnings and errors on all real samples together,
    but for the credentials the application samples send in clear on purpose."""
    found = 0
    for p in REAL_SAMPLES:
        bad = _serious(read_capture(p))
        found += int((~bad.code.astype(str).isin(SAMPLE_FINDINGS.get(p.name, {}))).sum())
    assert found == 0


def _zeek_weirds(peers_dir: Path, trace: str) -> list[tuple[str, str]]:
    """``(name, addl)`` of each row of the trace's Zeek weird.log baseline."""
    log = ZEEK_WEIRD_LOGS.get(trace)
    if log is None:
        return []
    rows, fields = [], None
    for line in (peers_dir / "zeek" / "baselines" / log).read_text().splitlines():
        if line.startswith("#fields\t"):
            fields = line.split("\t")[1:]
        elif line.startswith("ts\t"):
            fields = line.split("\t")
        elif line and not line.startswith("#") and fields:
            values = dict(zip(fields, line.split("\t"), strict=True))
            rows.append((values["name"], values["addl"]))
    return rows


def _code_for_weird(name: str) -> str:
    (code,) = [c for c, r in RULES.items() if r.zeek_checks and name in r.peers]
    return code


def test_exceptions_are_what_zeek_does_not_check() -> None:
    unchecked = set(not_checked_by_zeek())
    for trace, codes in EXPECTED_EXCEPTIONS.items():
        for code, reason in codes.items():
            assert code in unchecked, (trace, code)
            assert RULES[code].severity in ("warning", "error")
            assert reason


def test_peer_captures(peer_capture: str, peers_dir: Path, read_capture: Any) -> None:
    """Zeek's weirds under our codes; otherwise only the listed Zeek-unchecked findings."""
    capture = read_capture(peers_dir / peer_capture)
    a = capture.anomalies
    weirds = _zeek_weirds(peers_dir, peer_capture)
    for name, addl in weirds:
        code = _code_for_weird(name)
        rows = a[a.code == code]
        assert len(rows) == 1, (name, code)
        assert addl in rows.detail.iloc[0], (addl, rows.detail.iloc[0])
    zeek_codes = {_code_for_weird(name) for name, _ in weirds}
    serious = set(_serious(capture).code.astype(str))
    expected = {c for c in zeek_codes if RULES[c].severity != "info"}
    expected |= set(EXPECTED_EXCEPTIONS.get(peer_capture, {}))
    assert serious == expected, _serious(capture)[["code", "detail"]].to_string()


def test_zeek_weirds_found(peers_dir: Path) -> None:
    """The three weirds of Zeek's baselines map to three of our codes."""
    names = {name for trace in ZEEK_WEIRD_LOGS for name, _ in _zeek_weirds(peers_dir, trace)}
    assert names == {"websocket_control_frame_size_exceeded",
                     "protocol_data_with_HTTP_upgrade_reply", "websocket_wrong_accept_header"}
    assert {_code_for_weird(n) for n in names} == {
        "ws_control_too_long", "http_data_with_101", "http_accept_mismatch"}
