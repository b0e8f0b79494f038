"""The anomaly catalog: every code wspcap can report, declared once.

Codes are snake_case with their layer as prefix (``capture_``, ``tcp_``,
``http_``, ``sec_``, ``ws_``, ``pmd_``, ``res_``). A code is never renamed
or reused; a retired code stays here with a dated comment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["Rule", "RULES", "SEVERITIES", "Anomaly", "severity_of", "register"]

#: Severities, lowest first.
SEVERITIES = ("info", "warning", "error")


@dataclass(frozen=True, slots=True)
class Rule:
    """One anomaly code and what it means.

    Attributes:
        code: the stable code.
        severity: ``info``, ``warning`` or ``error``.
        reference: the RFC section or other reference.
        summary: one line saying what was seen.
        meaning: what an analyst should make of it.
        peers: the equivalent in Zeek, Wireshark or Suricata, where one exists.
    """

    code: str
    severity: str
    reference: str
    summary: str
    meaning: str = ""
    peers: str = ""


class Anomaly(NamedTuple):
    """One row of the anomalies table (conn_id and direction may be None)."""

    conn_id: int | None
    ts: int
    direction: str | None
    frame_index: int | None
    code: str
    severity: str
    detail: str
    packet: int | None
    stream_offset: int | None


RULES: dict[str, Rule] = {}


def register(code: str, severity: str, reference: str, summary: str, meaning: str = "",
             peers: str = "") -> Rule:
    """Declare a code. Declaring one twice is a programming error."""
    if code in RULES:
        raise ValueError(f"anomaly code {code} declared twice")
    if severity not in SEVERITIES:
        raise ValueError(f"bad severity {severity!r} for {code}")
    RULES[code] = rule = Rule(code, severity, reference, summary, meaning, peers)
    return rule


def severity_of(code: str) -> str:
    """The severity of a declared code."""
    return RULES[code].severity


# -- capture and TCP ------------------------------------------------------------
register("capture_truncated", "warning", "pcap/pcapng formats",
         "the snap length cut packets, or the file ends mid-packet",
         "Bytes the capture did not keep; frames that span them are incomplete.")
register("capture_ip_fragment", "warning", "RFC 791 section 2.3, RFC 8200 section 4.5",
         "an IP fragment carried TCP; fragments are not reassembled",
         "Fragmented TCP is rare and a classic IDS evasion; the bytes in it are missing "
         "from the stream (reported as a gap).")
register("tcp_gap", "warning", "RFC 9293 section 3.10.7",
         "bytes of the stream are missing from the capture",
         "Packet loss at the capture point; frames spanning the gap are incomplete.",
         "Zeek: content_gap; Wireshark: tcp.analysis.lost_segment")
register("tcp_overlap_conflict", "error", "RFC 9293 section 3.10.7.4",
         "a retransmitted or overlapping segment carries different bytes",
         "Two copies of the same stream bytes differ: injection or IDS evasion "
         "(the receiver's choice decides what it saw; wspcap keeps the first copy).",
         "Zeek: TCP_ack_underflow_or_misorder / rexmit_inconsistency")
register("tcp_midstream", "info", "RFC 9293 section 3.5",
         "the connection's start (SYN) was not captured",
         "The capture began while the connection was open; the handshake may be missing.")
register("tcp_reset", "info", "RFC 9293 section 3.10.7.3",
         "the connection was reset (RST)",
         "An abrupt end: crash, timeout, policy, or a forged reset.")

# -- HTTP upgrade ------------------------------------------------------------------
register("http_handshake_missing", "info", "RFC 6455 section 4",
         "WebSocket frames with no captured opening handshake",
         "Captured mid-connection: negotiated extensions and subprotocol are unknown.")
register("http_status_not_101", "info", "RFC 6455 section 4.2.2",
         "the server answered the upgrade with a status other than 101",
         "The upgrade was refused (authentication, origin policy, wrong path...).")
register("http_accept_mismatch", "error", "RFC 6455 section 4.2.2",
         "Sec-WebSocket-Accept does not match the key",
         "A client must fail the connection; a proxy or a broken server answered.",
         "Zeek: websocket_wrong_accept_header")
register("http_accept_missing", "error", "RFC 6455 section 4.2.2",
         "a 101 answer without Sec-WebSocket-Accept", "",
         "Zeek: websocket_missing_accept_header")
register("http_key_missing", "error", "RFC 6455 section 4.1",
         "an upgrade request without Sec-WebSocket-Key", "",
         "Zeek: websocket_missing_key_header")
register("http_data_with_101", "info", "RFC 6455 section 4.2.2",
         "frames in the same segment as the 101 answer",
         "Legal, but a parser that stops at the HTTP head misses them.",
         "Zeek: protocol_data_with_HTTP_upgrade_reply")
register("http_head_too_large", "warning", "RFC 9112 section 2",
         "an HTTP head larger than the parser follows",
         "Header flooding, or not HTTP at all.")

# -- WebSocket framing (RFC 6455) ----------------------------------------------------
register("ws_client_unmasked", "error", "RFC 6455 section 5.1",
         "a client frame is not masked",
         "A server must close the connection; some tunnels (wstunnel) skip masking.")
register("ws_server_masked", "error", "RFC 6455 section 5.1",
         "a server frame is masked", "A client must close the connection.")
register("ws_rsv_unnegotiated", "error", "RFC 6455 section 5.2",
         "an RSV bit is set that no negotiated extension defines",
         "Covert channel, fingerprinting, or an extension used without negotiation.")
register("ws_reserved_opcode", "error", "RFC 6455 section 5.2",
         "a frame uses a reserved opcode", "")
register("ws_nonminimal_length", "warning", "RFC 6455 section 5.2",
         "a payload length sent in a longer form than needed",
         "Parsers that disagree on such lengths can be evaded.")
register("ws_length_msb_set", "error", "RFC 6455 section 5.2",
         "a 64-bit payload length with its most significant bit set", "")
register("ws_control_too_long", "error", "RFC 6455 section 5.5",
         "a control frame with more than 125 payload bytes", "",
         "Zeek: websocket_control_frame_size_exceeded")
register("ws_control_fragmented", "error", "RFC 6455 section 5.5",
         "a control frame without FIN", "")
register("ws_orphan_continuation", "error", "RFC 6455 section 5.4",
         "a continuation frame with no message to continue", "")
register("ws_message_interleaved", "error", "RFC 6455 section 5.4",
         "a new data frame while a fragmented message is open", "")
register("ws_message_incomplete", "warning", "RFC 6455 section 5.4",
         "the stream ended inside a fragmented message", "")
register("ws_invalid_utf8", "error", "RFC 6455 section 8.1",
         "a text message is not valid UTF-8", "An endpoint must fail the connection (1007).")
register("ws_close_1_byte", "error", "RFC 6455 section 5.5.1",
         "a close frame with a 1-byte payload", "")
register("ws_close_code_invalid", "error", "RFC 6455 section 7.4",
         "a close code that may not be sent on the wire", "")
register("ws_close_reason_invalid_utf8", "error", "RFC 6455 section 5.5.1",
         "a close reason that is not valid UTF-8", "")
register("ws_truncated_frame", "warning", "RFC 6455 section 5.2",
         "a frame's declared length runs past the captured data",
         "Loss, a connection cut mid-frame, or a client declaring more than it sends.")
register("ws_desync", "warning", "RFC 6455 section 5.2",
         "frame boundaries lost after a gap; bytes passed over until they were found", "")
register("ws_payload_cut", "warning", "wspcap limit max_payload",
         "a frame larger than the kept-payload limit; only its start is kept", "")

# -- permessage-deflate (RFC 7692) ----------------------------------------------------
register("pmd_rsv1_on_control", "error", "RFC 7692 section 6.1",
         "RSV1 set on a control frame", "")
register("pmd_rsv1_on_continuation", "error", "RFC 7692 section 6.1",
         "RSV1 set on a continuation frame", "")
register("pmd_inflate_failed", "error", "RFC 7692 section 7.2.2",
         "a compressed message does not inflate", "",
         "Wireshark: websocket.decompression.failed.expert")
register("pmd_params_invalid", "error", "RFC 7692 section 7.1",
         "the accepted permessage-deflate parameters are invalid", "")
register("pmd_window_bits_exceeded", "error", "RFC 7692 section 7.1.2",
         "a message refers back further than the negotiated window", "")
register("pmd_ratio_excessive", "warning", "RFC 7692 section 8.1",
         "a message inflates past the size limit; inflation was cut",
         "A decompression bomb, or a legitimately huge message.")
register("pmd_context_lost", "warning", "RFC 7692 section 7.2.3",
         "a compressed message needs an earlier window that is unknown",
         "Capture started mid-connection, or an earlier message was lost or cut.")
