"""The anomaly catalog (issue 3): every code named, declared once, documented.

The expected names are copied from the issue that defines the catalog, so a
rename (codes are never renamed) or a missing code fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from wspcap.rules.registry import (
    RULES,
    SEVERITIES,
    ZEEK_NOT_CHECKED,
    not_checked_by_zeek,
    register,
    severity_of,
)

#: Every code the issue lists, with these exact names.
ISSUE_CODES = """
tcp_gap tcp_overlap_conflict tcp_midstream tcp_reset capture_truncated
http_accept_mismatch http_accept_missing http_key_missing http_key_invalid http_key_reused
http_version_not_13 http_method_not_get http_host_missing http_upgrade_tokens_missing
http_duplicate_header http_subprotocol_not_offered http_extension_not_offered
http_data_with_101 http_frames_before_101 http_frames_without_101
sec_plaintext_ws sec_origin_missing sec_origin_null sec_origin_cross_site sec_cswsh_risk
sec_credentials_in_url sec_credentials_in_subprotocol sec_mask_zero sec_mask_predictable
ws_client_unmasked ws_server_masked ws_rsv_unnegotiated ws_reserved_opcode
ws_nonminimal_length ws_length_msb_set ws_control_too_long ws_control_fragmented
ws_orphan_continuation ws_message_interleaved ws_invalid_utf8 ws_close_1_byte
ws_close_code_invalid ws_close_reason_invalid_utf8 ws_data_after_close ws_close_unanswered
ws_no_close ws_ping_unanswered ws_pong_mismatch ws_truncated_frame
pmd_rsv1_on_control pmd_rsv1_on_continuation pmd_inflate_failed pmd_params_invalid
pmd_context_takeover_violated pmd_window_bits_exceeded pmd_ratio_excessive pmd_context_lost
res_huge_declared_length res_oversized_message res_frame_flood res_ping_flood
res_tiny_fragments res_slow_handshake res_slow_frame res_many_connections
""".split()

#: Codes the core pipeline had before the catalog was completed: they stay.
EARLIER_CODES = ["ws_desync", "ws_payload_cut", "ws_message_incomplete",
                 "http_handshake_missing", "http_status_not_101", "http_head_too_large",
                 "capture_ip_fragment"]

#: Severities the issue gives explicitly.
ISSUE_SEVERITIES = {"http_data_with_101": "info", "sec_plaintext_ws": "info",
                    "sec_origin_missing": "warning"}

PREFIXES = ("capture_", "tcp_", "tls_", "h2_", "http_", "sec_", "ws_", "pmd_", "res_", "app_")


def test_every_issue_code_is_declared() -> None:
    missing = [c for c in ISSUE_CODES + EARLIER_CODES if c not in RULES]
    assert not missing


def test_issue_severities() -> None:
    for code, severity in ISSUE_SEVERITIES.items():
        assert severity_of(code) == severity


@pytest.mark.parametrize("code", sorted(RULES))
def test_rule_is_documented(code: str) -> None:
    """Code, severity, reference, summary, meaning: all there for every rule."""
    rule = RULES[code]
    assert rule.code == code
    assert re.fullmatch(r"[a-z][a-z0-9_]*", code)
    assert code.startswith(PREFIXES)
    assert rule.severity in SEVERITIES
    assert rule.reference
    assert rule.summary and not rule.summary.endswith(".")
    assert rule.meaning.endswith((".", ")")), "what an analyst should make of it"
    assert rule.detail, "an example of the detail text"
    assert rule.as_dict()["code"] == code


def test_declaring_twice_is_refused() -> None:
    with pytest.raises(ValueError):
        register("ws_client_unmasked", "error", "x", "y")
    with pytest.raises(ValueError):
        register("ws_new_code_with_bad_severity", "fatal", "x", "y")
    assert "ws_new_code_with_bad_severity" not in RULES


def test_zeek_column() -> None:
    """The catalog says which violations Zeek does not look for, and names Zeek's weird
    where there is one (the three seen in Zeek's baselines among them)."""
    assert RULES["http_accept_mismatch"].peers.startswith("Zeek: websocket_wrong_accept_header")
    assert "websocket_control_frame_size_exceeded" in RULES["ws_control_too_long"].peers
    assert "protocol_data_with_HTTP_upgrade_reply" in RULES["http_data_with_101"].peers
    unchecked = set(not_checked_by_zeek())
    # Zeek's clean traces show these without a weird (peers/zeek/NOTES.md).
    assert {"ws_client_unmasked", "ws_ping_unanswered", "ws_nonminimal_length"} <= unchecked
    for code in unchecked:
        assert not RULES[code].zeek_checks
        assert RULES[code].peers.startswith(ZEEK_NOT_CHECKED)
    assert RULES["http_accept_mismatch"].zeek_checks


def test_close_codes_are_those_of_rfc6455() -> None:
    """The close code an endpoint would send, where there is one (RFC 6455 section 7.4.1)."""
    assert RULES["ws_invalid_utf8"].close_code == 1007
    assert RULES["ws_client_unmasked"].close_code == 1002
    assert RULES["res_oversized_message"].close_code == 1009
    for rule in RULES.values():
        assert rule.close_code in (None, 1002, 1007, 1009, 1010)


def _looks_reported(package: Path) -> set[str]:
    """Literals used as the code argument of report()/anomaly() calls."""
    found: set[str] = set()
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in (
                    "report", "anomaly", "report_frame"):
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) \
                            and arg.value.startswith(PREFIXES):
                        found.add(arg.value)
    return found


def test_reported_literals_are_declared() -> None:
    package = Path(__file__).resolve().parents[2] / "wspcap"
    reported = _looks_reported(package)
    assert reported, "the scan found the report calls"
    assert reported <= set(RULES), sorted(reported - set(RULES))


def test_rules_layer_imports_no_pandas_scapy_or_matplotlib() -> None:
    """The rules layer stays pure: no pandas, matplotlib or scapy. (NumPy, as
    in the ws layer's record columns below it, is plain computation over
    arrays: the checks compare whole columns with it.)"""
    rules_dir = Path(__file__).resolve().parents[2] / "wspcap" / "rules"
    banned = ("pandas", "matplotlib", "scapy")
    for path in rules_dir.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in banned, f"{path.name} imports {name}"


def test_findings_order_does_not_depend_on_import_order() -> None:
    """Findings of one instant come in the rule modules' fixed order, whichever rule
    module a program imported first (a full test run imports them in another order
    than one test file)."""
    import subprocess
    import sys
    sample = Path(__file__).resolve().parents[2] / "samples" / "anomalies" / \
        "http-method-not-get.pcap"
    outputs = []
    for first in ("", "import wspcap.rules.sec, wspcap.rules.ws\n"):
        code = (f"{first}import wspcap\n"
                f"c = wspcap.read({str(sample)!r})\n"
                "print(list(c.anomalies.code.astype(str)))")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120, check=True)
        outputs.append(done.stdout.strip())
    assert outputs[0] == outputs[1] == "['http_method_not_get', 'sec_plaintext_ws']"
