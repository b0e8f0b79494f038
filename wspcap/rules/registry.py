"""The anomaly catalog: every code wspcap can report, declared once.

Codes are snake_case with their layer as prefix (``capture_``, ``tcp_``,
``tls_``, ``http_``, ``sec_``, ``ws_``, ``pmd_``, ``res_``, ``app_``). A code is never renamed
or reused; a retired code stays here with a dated comment.

Severities
----------
- ``error``: a rule that obliges the receiving endpoint to fail the
  connection (RFC 6455 "MUST _Fail the WebSocket Connection_") was broken,
  or the bytes cannot be read as intended (injection, undecodable data).
- ``warning``: suspicious, malformed or risky, but a conforming endpoint may
  carry on (or should have refused and the capture shows whether it did);
  resource abuse past a threshold; bytes missing from the capture.
- ``info``: a fact worth knowing (plaintext, a refused upgrade, a reset).

Peers
-----
Each rule names its equivalent in Zeek (weird), Wireshark (expert field) or
Suricata (app-layer or stream event) where one exists. ``Zeek: not checked``
marks the violations Zeek's WebSocket analyzer does not look for: Zeek's
clean traces may show them without a weird (see :func:`not_checked_by_zeek`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "RULES",
    "SEVERITIES",
    "ZEEK_NOT_CHECKED",
    "Anomaly",
    "Rule",
    "not_checked_by_zeek",
    "register",
    "severity_of",
    "severity_rank",
]

#: Severities, lowest first.
SEVERITIES = ("info", "warning", "error")
#: The text :attr:`Rule.peers` starts with when Zeek has no equivalent check.
ZEEK_NOT_CHECKED = "Zeek: not checked"


@dataclass(frozen=True, slots=True)
class Rule:
    """One anomaly code and what it means.

    Attributes:
        code: the stable code.
        severity: ``info``, ``warning`` or ``error``.
        reference: the RFC section or other reference.
        summary: one line saying what was seen.
        meaning: what an analyst should make of it.
        peers: the equivalent in Zeek, Wireshark or Suricata, where one exists
            (``Zeek: not checked`` when Zeek does not look for it).
        detail: an example of the row's detail text.
        close_code: the close code a conforming endpoint would send, if any.
    """

    code: str
    severity: str
    reference: str
    summary: str
    meaning: str = ""
    peers: str = ""
    detail: str = ""
    close_code: int | None = None

    @property
    def zeek_checks(self) -> bool:
        """Whether Zeek reports this violation (a weird) too."""
        return "Zeek: " in self.peers and not self.peers.startswith(ZEEK_NOT_CHECKED)

    def as_dict(self) -> dict[str, object]:
        """The rule as a plain dict (for JSON)."""
        return {"code": self.code, "severity": self.severity, "reference": self.reference,
                "summary": self.summary, "meaning": self.meaning, "peers": self.peers,
                "detail": self.detail, "close_code": self.close_code,
                "zeek_checks": self.zeek_checks}


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
             peers: str = "", detail: str = "", close_code: int | None = None) -> Rule:
    """Declare a code. Declaring one twice is a programming error."""
    if code in RULES:
        raise ValueError(f"anomaly code {code} declared twice")
    if severity not in SEVERITIES:
        raise ValueError(f"bad severity {severity!r} for {code}")
    RULES[code] = rule = Rule(code, severity, reference, summary, meaning, peers, detail,
                              close_code)
    return rule


def severity_of(code: str) -> str:
    """The severity of a declared code."""
    return RULES[code].severity


def severity_rank(severity: str) -> int:
    """0 for info, 1 for warning, 2 for error."""
    return SEVERITIES.index(severity)


def not_checked_by_zeek() -> list[str]:
    """Codes for violations Zeek's WebSocket analyzer does not look for."""
    return [r.code for r in RULES.values() if r.peers.startswith(ZEEK_NOT_CHECKED)]


_NC = ZEEK_NOT_CHECKED

# -- capture and TCP ------------------------------------------------------------
register("capture_truncated", "warning", "pcap/pcapng formats",
         "the snap length cut packets, or the file (or its gzip stream) ends mid-packet",
         "Bytes the capture did not keep; frames that span them are incomplete. Capture "
         "again with a larger snap length (-s 0) if the payloads matter.",
         "Zeek: truncated_IP (snap length)",
         "37 packets were cut by the snap length")
register("capture_corrupt", "warning", "pcap/pcapng formats, RFC 1952 section 2.3",
         "the capture file is damaged: reading stopped at the damage",
         "A record header that cannot be right (an absurd length, an unknown interface), "
         "corrupt gzip data, or a gzip CRC-32 or length that does not match the data. "
         "Every packet before the damage is kept; after a checksum mismatch they all are, "
         "but their bytes may be wrong. Copy the file again from its source if you can.",
         "Wireshark: 'The file appears to be damaged or corrupt'; gzip -t: crc error",
         "corrupt gzip data after 169 bytes of capture data (invalid distance too far back)")
register("capture_timestamp_invalid", "warning", "pcapng if_tsresol/if_tsoffset, numpy "
         "datetime64[ns]",
         "packet timestamps past what nanoseconds since 1970 hold (years 1677 to 2262)",
         "A timestamp resolution, offset or value that puts packets outside int64 "
         "nanoseconds (for example a 64-bit count read as seconds). The packets are kept "
         "and decoded; their ts, and the times of what they carry, are null (NaT), and "
         "time-based checks on them are unreliable. One row per capture: the detail "
         "counts them and its packet is the first.", "",
         "3 packets have a timestamp outside int64 nanoseconds (years 1677 to 2262); "
         "their ts is null (first: packet 5)")
register("capture_ip_fragment", "warning", "RFC 791 section 2.3, RFC 8200 section 4.5",
         "an IP fragment carried TCP; fragments are not reassembled",
         "Fragmented TCP is rare and a classic IDS evasion; the bytes in it are missing "
         "from the stream (reported as a gap).", "",
         "packet 12 is an IP fragment")
register("tcp_gap", "warning", "RFC 9293 section 3.10.7",
         "bytes of the stream are missing from the capture",
         "Packet loss at the capture point (or a capture that began late); frames spanning "
         "the gap are incomplete and checks that need them are skipped.",
         "Zeek: content_gap; Wireshark: tcp.analysis.lost_segment; "
         "Suricata: stream.reassembly_seq_gap",
         "120 bytes missing at stream offset 4096")
register("tcp_overlap_conflict", "error", "RFC 9293 section 3.10.7.4",
         "a retransmitted or overlapping segment carries different bytes",
         "Two copies of the same stream bytes differ: injection or IDS evasion (the "
         "receiver's choice decides what it saw; wspcap keeps the first copy).",
         "Zeek: rexmit_inconsistency; Wireshark: tcp.segment.overlap.conflict; "
         "Suricata: stream.reassembly_overlap_different_data",
         "6 bytes at stream offset 210 differ from the first copy (first copy kept)")
register("tcp_data_after_fin", "warning", "RFC 9293 section 3.10.7.4",
         "bytes sent at or beyond the sequence number of the sender's FIN",
         "After a FIN there is no more data: the receiver ignores these bytes, so an "
         "analyzer that reads them sees what the endpoint never did (injection or IDS "
         "evasion). wspcap drops them: they are in no frame or message.",
         _NC + " (no TCP weird; FIN_advanced_last_seq only for a later FIN); Wireshark: no "
         "expert info (4.0 dissects the bytes as frames); Suricata: no stream event "
         "(data from the closing side is checked only against the window)",
         "20 bytes at stream offset 215 after the FIN at stream offset 214 (not delivered)")
register("tcp_midstream", "info", "RFC 9293 section 3.5",
         "the connection's start (SYN) was not captured",
         "The capture began while the connection was open; the handshake may be missing, "
         "and with it the negotiated extensions and subprotocol.",
         "Zeek: no weird (conn.log history without S)",
         "the connection's SYN was not captured")
register("tcp_reset", "info", "RFC 9293 section 3.10.7.3",
         "the connection was reset (RST)",
         "An abrupt end: crash, timeout, policy, or a forged reset (look at who sent it "
         "and whether its sequence number fits).",
         "Wireshark: tcp.connection.rst; Zeek: conn_state RSTO/RSTR (no weird)",
         "RST after 243 stream bytes")

# -- TLS (wss://) -------------------------------------------------------------------
register("tls_keys_missing", "info", "RFC 8446 section 7, NSS key log format",
         "a TLS connection whose secrets are not in the key log",
         "Its handshake facts (SNI, ALPN, version, suite) are in the connections table, "
         "its content is not: give wspcap the key log the client wrote (SSLKEYLOGFILE, "
         "--keylog) to read it.", _NC + "; Wireshark: no equivalent (it shows records)",
         "client_random=3f2a...")
register("tls_keys_late", "warning", "NSS key log format",
         "records waiting for their keys went past the bound held per direction, or "
         "for all connections together",
         "The key log had not caught up with the capture (a live capture following a key "
         "log); records past the bound were not kept and are not decrypted.", _NC,
         "held 4194304 bytes waiting for keys; later records not kept")
register("tls_decrypt_failed", "error", "RFC 8446 section 5.2, RFC 5246 section 6.2.3",
         "a TLS record does not authenticate under the logged keys",
         "Wrong or stale keys in the key log, or a record changed on the way (corruption or "
         "injection): the record's plaintext is lost; decryption goes on with the next.",
         _NC + "; Wireshark: ssl.decrypt failures in the debug log only",
         "record of 1044 bytes, seq=3: record does not authenticate", None)
register("tls_record_too_long", "error", "RFC 8446 section 5.2, RFC 5246 section 6.2.3",
         "a TLS record declares more bytes than TLS allows",
         "An endpoint MUST answer with record_overflow: a malformed or hostile peer, or a "
         "stream that is not TLS after all.", _NC + "; Wireshark: tls.record.length.invalid",
         "length=40000 > 16640")
register("tls_record_invalid", "error", "RFC 8446 section 5.1",
         "bytes where a TLS record header should be are not one",
         "The TLS stream lost its framing (unknown content type or version): what follows "
         "is read again from the next plausible record.", _NC,
         "type=99, version=0x0303")
register("tls_handshake_invalid", "warning", "RFC 8446 section 4",
         "a TLS handshake message does not parse",
         "A malformed hello or extension: a fuzzer, a broken client, or an evasion attempt.",
         _NC, "message type 1: 4 bytes needed, 2 left")
register("tls_alert_fatal", "warning", "RFC 8446 section 6",
         "a fatal TLS alert",
         "The connection was torn down by TLS itself (a failed handshake, a bad certificate, "
         "a decryption error at the peer).", _NC + "; Wireshark: tls.alert_message",
         "description=handshake_failure (40)")
register("tls_weak", "warning", "RFC 8996, RFC 9325 section 4",
         "TLS older than 1.2, or a suite without forward secrecy",
         "Deprecated TLS versions, or static-RSA key exchange whose recorded traffic any "
         "holder of the server key can decrypt later.", _NC,
         "suite=TLS_RSA_WITH_AES_128_GCM_SHA256 (no forward secrecy)")
register("tls_alpn_h2", "info", "RFC 8441, RFC 7301",
         "the server chose HTTP/2 by ALPN, and the connection was not decrypted",
         "A WebSocket in this connection would ride an HTTP/2 stream (RFC 8441 extended "
         "CONNECT): with the key log, each one is read as a connection of its own.", _NC,
         "alpn=h2")

# -- HTTP/2 (RFC 8441) ---------------------------------------------------------------
register("h2_stream_reset", "info", "RFC 9113 section 6.4, RFC 8441 section 6",
         "RST_STREAM ended the WebSocket's HTTP/2 stream",
         "The HTTP/2 counterpart of a TCP RST for a WebSocket over HTTP/2: browsers "
         "reset the stream when a page goes away; an error code other than CANCEL or "
         "NO_ERROR tells of a failure.",
         "Wireshark: http2.rst_stream.error", "RST_STREAM CANCEL (8) from the client")
register("h2_connect_not_enabled", "warning", "RFC 8441 section 3 and 4",
         "an extended CONNECT the server had not allowed",
         "A client may open a WebSocket over HTTP/2 only after the server's "
         "SETTINGS_ENABLE_CONNECT_PROTOCOL = 1; a client that does not wait for it is "
         "broken or probing (a server that never allows it answers with an error).", _NC,
         "extended CONNECT (:protocol websocket) before the server sent "
         "SETTINGS_ENABLE_CONNECT_PROTOCOL = 1")
register("h2_malformed", "error", "RFC 9113 section 4 and 5.5",
         "the HTTP/2 connection carrying the WebSocket cannot be read further",
         "A frame that breaks HTTP/2 framing, or bytes lost in the capture: HTTP/2 has no "
         "marker to find the next frame by, so the rest of that direction is lost to the "
         "WebSocket streams it carries.", _NC,
         "HTTP/2 connection: 1200 bytes lost: the frames after them cannot be found")
register("h2_headers_unreadable", "warning", "RFC 7541 section 2.3, RFC 9113 section 4.3",
         "an HTTP/2 header block could not be decoded (HPACK)",
         "HPACK's dynamic table changes with every header block: once one cannot be "
         "decoded, the later ones of that direction cannot be either, so WebSocket streams "
         "opened after it are not seen.", _NC,
         "HTTP/2 connection: header block on stream 5: HPACKDecodingError; the "
         "direction's later header blocks cannot be read")

# -- HTTP upgrade ------------------------------------------------------------------
register("http_handshake_missing", "info", "RFC 6455 section 4",
         "WebSocket frames with no captured opening handshake",
         "Captured mid-connection: negotiated extensions and subprotocol are unknown "
         "(RSV1 messages are inflated as permessage-deflate on a guess).", "",
         "frames seen without the opening handshake")
register("http_status_not_101", "info", "RFC 6455 section 4.2.2",
         "the server answered the upgrade with a status other than 101",
         "The upgrade was refused (authentication, origin policy, wrong path, version "
         "426...). Watch for frames that follow anyway (http_frames_without_101).", "",
         "status 403 Forbidden")
register("http_status_invalid", "error", "RFC 9112 section 4",
         "the answer's status line has no three-digit status code",
         "The status code is three ASCII digits (DIGIT is 0-9 only: not '²' nor other "
         "scripts' digits). A client cannot read such an answer and fails the upgrade; "
         "wspcap treats it as a refusal (status null) and watches for frames that follow "
         "anyway (http_frames_without_101).", "",
         "status line 'HTTP/1.1 1²1 Switching Protocols' has no three-digit status code")
register("http_accept_mismatch", "error", "RFC 6455 section 4.2.2",
         "Sec-WebSocket-Accept does not match the key",
         "A client must fail the connection; a proxy, a broken server or a forged answer "
         "replied. Frames that follow were not accepted by a conforming client.",
         "Zeek: websocket_wrong_accept_header",
         "expected=s3pPLMBiTxaQ9kYGzzhZRbK+xOo=, found=xyz", 1002)
register("http_accept_missing", "error", "RFC 6455 section 4.2.2",
         "a 101 answer without Sec-WebSocket-Accept",
         "The server (or something in front of it) did not prove it read the key: a "
         "client must fail the connection.",
         "Zeek: websocket_missing_accept_header",
         "the 101 answer has no Sec-WebSocket-Accept", 1002)
register("http_key_missing", "error", "RFC 6455 section 4.1",
         "an upgrade request without Sec-WebSocket-Key",
         "Not a WebSocket client (or a hand-written one); a conforming server refuses it.",
         "Zeek: websocket_missing_key_header",
         "the upgrade request has no Sec-WebSocket-Key")
register("http_key_invalid", "warning", "RFC 6455 section 4.1",
         "Sec-WebSocket-Key is not the base64 of 16 bytes",
         "A hand-made or non-conforming client (a conforming server answers 400). The key "
         "is a nonce: one that is not 16 random bytes suggests a script or a fuzzer.",
         _NC, "key 'c3VyaWNhdGEtdGVzdC1rZXkh' decodes to 18 bytes, not 16")
register("http_key_reused", "warning", "RFC 6455 section 4.1",
         "the same Sec-WebSocket-Key on several connections",
         "The key must be chosen at random for each connection; a repeated one means a "
         "scripted client, a replayed handshake, or a broken random source.",
         _NC, "key 'dGhlIHNhbXBsZSBub25jZQ==' also sent on conn 0")
register("http_version_not_13", "warning", "RFC 6455 section 4.1, 4.4",
         "Sec-WebSocket-Version is missing or not 13",
         "An old draft (hybi-00..17) or a version probe; a server must answer 426 with the "
         "versions it speaks. Accepted with 101, the two ends may disagree on framing.",
         _NC, "Sec-WebSocket-Version: 8")
register("http_method_not_get", "warning", "RFC 6455 section 4.1",
         "the upgrade request's method is not GET",
         "Not a browser: a tool, a tunnel, or an attempt to reach a handler that accepts "
         "upgrades on any method (request smuggling through proxies).",
         _NC, "method POST")
register("http_host_missing", "warning", "RFC 6455 section 4.1, RFC 9112 section 3.2",
         "the upgrade request has no Host header",
         "HTTP/1.1 requires Host; its absence points at a hand-written client, and Origin "
         "checks that compare with Host cannot work.", _NC,
         "the upgrade request has no Host header")
register("http_upgrade_tokens_missing", "warning", "RFC 6455 sections 4.1, 4.2.2",
         "Upgrade: websocket or Connection: Upgrade is missing",
         "On the request: proxies may not forward the upgrade (or forward it differently "
         "from the server's view). On a 101 answer: a client must fail the connection.",
         _NC, "the 101 answer lacks Connection: upgrade")
register("http_duplicate_header", "warning", "RFC 6455 section 11.3",
         "Host, Sec-WebSocket-Key, -Accept, -Version or -Protocol repeated where allowed "
         "once",
         "Two values for a field that may appear once: an intermediary and the endpoint "
         "may each pick a different one (desync, filter evasion).",
         "Zeek: websocket_multiple_key_headers / websocket_multiple_accept_headers / "
         "websocket_multiple_protocol_headers",
         "Sec-WebSocket-Key appears 2 times in the request")
register("http_subprotocol_not_offered", "error", "RFC 6455 section 4.2.2, 4.1",
         "the server selected a subprotocol the client did not offer",
         "A client must fail the connection; the two ends may not agree on what the "
         "messages mean.", _NC,
         "server selected 'chat.v3'; client offered 'chat.v1, chat.v2'", 1002)
register("http_extension_not_offered", "error", "RFC 6455 section 9.1",
         "the server accepted an extension the client did not offer",
         "A client must fail the connection; RSV bits and payloads may be read "
         "differently by the two ends.", _NC,
         "server accepted 'permessage-deflate'; client offered none", 1010)
register("http_data_with_101", "info", "RFC 6455 section 4.2.2",
         "frames in the same segment as the 101 answer",
         "Legal, but a parser that stops at the HTTP head misses them (wspcap reads them).",
         "Zeek: protocol_data_with_HTTP_upgrade_reply",
         "6 bytes after the 101 head in the same segment")
register("http_frames_before_101", "warning", "RFC 6455 section 4.1",
         "the client sent frames before the server's answer",
         "A client must wait for the 101. Frames sent ahead reach whatever answers, even "
         "when the upgrade is refused: an attempt to get bytes past a proxy.", _NC,
         "15 bytes (1 frame) sent by the client before the answer")
register("http_frames_without_101", "error", "RFC 6455 section 4.1, 4.2.2",
         "WebSocket frames on a connection whose upgrade was refused",
         "The smuggling pattern: a proxy that believes the upgrade succeeded tunnels raw "
         "bytes to a back end that said no (or the reverse).", _NC,
         "c2s bytes frame as WebSocket after status 426")
register("http_head_too_large", "warning", "RFC 9112 section 2",
         "an HTTP head larger than the parser follows",
         "Header flooding, or not HTTP at all.", "",
         "response head over 64 KiB")

# -- Security (what a sniffer or an attacker learns) --------------------------------
register("sec_plaintext_ws", "info", "RFC 6455 section 10.6",
         "an unencrypted ws:// connection",
         "Anyone who can sniff the path reads (and can alter) the handshake, cookies and "
         "every message; use wss://.", _NC,
         "ws://example.com/chat: handshake and frames in cleartext")
register("sec_origin_missing", "warning", "RFC 6455 section 10.2, 4.1",
         "a browser User-Agent but no Origin header",
         "Browsers always send Origin on a WebSocket upgrade: this is a tool posing as a "
         "browser, or an intermediary that strips Origin (and disables origin checks).",
         _NC, "browser User-Agent 'Mozilla/5.0 (...) Chrome/120' but no Origin")
register("sec_origin_null", "warning", "RFC 6454 section 7.1, RFC 6455 section 10.2",
         "Origin: null",
         "A sandboxed iframe, a file:// page, a data: URL or a redirect chain: the server "
         "cannot tell which site opened the connection. Attackers use it to pass naive "
         "allow-lists.", _NC, "Origin: null")
register("sec_origin_cross_site", "info", "RFC 6455 section 10.2, RFC 6454",
         "Origin names another host than Host",
         "A page of another site opened the connection. Normal for public APIs; a risk "
         "when the server trusts cookies (see sec_cswsh_risk).", _NC,
         "Origin 'https://evil.example' is not Host 'bank.example'")
register("sec_cswsh_risk", "warning", "RFC 6455 section 10.2",
         "a cross-site or null Origin accepted with ambient credentials",
         "Cross-site WebSocket hijacking: the browser attached Cookie or Authorization, "
         "the server answered 101 to another site's page, and no token in the URL or "
         "subprotocol proves the page's intent. That page can act as the user.", _NC,
         "Cookie sent, Origin 'https://evil.example' is cross-site for Host "
         "'bank.example', accepted with 101, no token in the URL or subprotocol")
register("sec_credentials_in_url", "warning", "RFC 6455 section 10.6, OWASP ASVS 3.1.1",
         "a token, password or key in the request target of a plaintext connection",
         "Sniffable, and also written to proxy and server access logs.", _NC,
         "query parameter 'access_token' (37 chars, 'eyJh'...) in the request target")
register("sec_credentials_in_subprotocol", "warning", "RFC 6455 sections 10.5, 11.3.4",
         "a token or password offered as a subprotocol on a plaintext connection",
         "A common way to pass a bearer token (browsers cannot set Authorization): in "
         "cleartext anyone on the path can replay it.", _NC,
         "offered subprotocol 'authorization.bearer.eyJ0...' (412 chars) carries a "
         "credential")
register("sec_credentials_in_header", "warning", "RFC 6455 section 10.6, RFC 7617 section 4",
         "a password or token in a header field of a plaintext upgrade request",
         "Authorization Basic (a user and password), a bearer token, or a field named like "
         "a secret (X-Api-Key, X-Auth-Token): anyone on the path reads and replays it; "
         "use wss://.", _NC,
         "Authorization Basic: user 'bob', a password of 7 characters in cleartext")
register("sec_proxy_credentials", "warning", "RFC 1929 section 4, RFC 7617 section 4",
         "a user and password given to a proxy in cleartext",
         "The connection went through a SOCKS 5 proxy with username/password "
         "authentication, or an HTTP proxy with Proxy-Authorization Basic: anyone on the "
         "path between the client and the proxy reads the password (even when the tunnel "
         "then carries wss://).", _NC,
         "SOCKS 5 username/password: user 'bob', a password of 7 bytes")
register("sec_mask_zero", "warning", "RFC 6455 sections 5.3, 10.3",
         "a client frame masked with the all-zero key",
         "Masking with 0 leaves the payload as is: the protection masking gives "
         "intermediaries (cache poisoning, RFC 6455 section 10.3) is gone.", _NC,
         "masking key 0x00000000 on 3 client frames")
register("sec_mask_predictable", "warning", "RFC 6455 sections 5.3, 10.3",
         "repeated, constant or sequential masking keys within a connection",
         "Keys must come from a strong random source so a page cannot choose the bytes "
         "that appear on the wire; predictable keys mean a weak client or a crafted "
         "stream.", _NC, "masking key 0x12345678 used by all 3 client frames")

# -- WebSocket framing (RFC 6455) ----------------------------------------------------
register("ws_client_unmasked", "error", "RFC 6455 section 5.1",
         "a client frame is not masked",
         "A server must close the connection; some tunnels (wstunnel) and hand-written "
         "clients skip masking. Intermediaries can be poisoned by unmasked payloads.",
         _NC, "client frame sent without a mask", 1002)
register("ws_server_masked", "error", "RFC 6455 section 5.1",
         "a server frame is masked", "A client must close the connection.", _NC,
         "server frame masked with key 0x01020304", 1002)
register("ws_rsv_unnegotiated", "error", "RFC 6455 section 5.2",
         "an RSV bit is set that no negotiated extension defines",
         "Covert channel, fingerprinting, or an extension used without negotiation.", _NC,
         "RSV bits 0x4 set but no negotiated extension defines them", 1002)
register("ws_reserved_opcode", "error", "RFC 6455 section 5.2",
         "a frame uses a reserved opcode",
         "An endpoint must fail the connection; a fuzzer, a covert channel or an "
         "unknown extension.",
         "Zeek: not checked; Wireshark: websocket.payload.unknown.expert",
         "reserved opcode 0x3", 1002)
register("ws_nonminimal_length", "warning", "RFC 6455 section 5.2",
         "a payload length sent in a longer form than needed",
         "Parsers that disagree on such lengths can be evaded; strict endpoints (wsproto) "
         "fail the connection.", _NC, "19 sent in the 16-bit form", 1002)
register("ws_length_msb_set", "error", "RFC 6455 section 5.2",
         "a 64-bit payload length with its most significant bit set",
         "Signed/unsigned confusion bait for parsers.", _NC,
         "64-bit length 0x8000000000000010 has its most significant bit set", 1002)
register("ws_control_too_long", "error", "RFC 6455 section 5.5",
         "a control frame with more than 125 payload bytes",
         "An endpoint must fail the connection; parsers with fixed control buffers may "
         "overflow or cut.", "Zeek: websocket_control_frame_size_exceeded",
         "258 > 125 bytes in a close frame", 1002)
register("ws_control_fragmented", "error", "RFC 6455 section 5.5",
         "a control frame without FIN",
         "Control frames must not be fragmented: an endpoint must fail the connection.",
         _NC, "ping frame without FIN", 1002)
register("ws_orphan_continuation", "error", "RFC 6455 section 5.4",
         "a continuation frame with no message to continue",
         "Lost frames, or bytes injected to confuse message reassembly.", _NC,
         "continuation frame with no message to continue", 1002)
register("ws_message_interleaved", "error", "RFC 6455 section 5.4",
         "a new data frame while a fragmented message is open",
         "Messages must not be interleaved (without an extension that allows it): "
         "reassemblers that differ here see different content.", _NC,
         "new text frame while a fragmented binary message of 2 frames is open", 1002)
register("ws_message_incomplete", "warning", "RFC 6455 section 5.4",
         "a fragmented message lacks fragments or bytes",
         "The connection or capture stopped before the final fragment, or the capture lost "
         "bytes inside the message (a gap swallowed fragments or part of one; the detail "
         "names the stream offsets). The message's complete is False and, if compressed, "
         "it is not inflated (inflated is False, the payload stays compressed).", "",
         "fragmented text message of 4 frames from stream offset 173 lacks 308 stream "
         "bytes no captured frame holds (stream offsets 789-1097)")
register("ws_invalid_utf8", "error", "RFC 6455 section 8.1",
         "a text message is not valid UTF-8",
         "An endpoint must fail the connection (1007). Binary data in a text message, or "
         "bait for decoders that disagree.", _NC,
         "text message is not valid UTF-8 at byte 5 (invalid start byte)", 1007)
register("ws_close_1_byte", "error", "RFC 6455 section 5.5.1",
         "a close frame with a 1-byte payload",
         "A close body is empty or starts with a 2-byte code.", _NC,
         "close frame with a 1-byte payload", 1002)
register("ws_close_code_invalid", "error", "RFC 6455 section 7.4",
         "a close code that may not be sent on the wire",
         "1005, 1006 and 1015 are local-only, 1004 and unassigned codes below 3000 are "
         "reserved, below 1000 and from 5000 up are not used.", _NC,
         "close code 1005 may not be sent", 1002)
register("ws_close_reason_invalid_utf8", "error", "RFC 6455 section 5.5.1",
         "a close reason that is not valid UTF-8",
         "An endpoint must fail the connection (1007); binary bait in a field logs and "
         "dashboards print as text.", _NC,
         "close reason is not valid UTF-8", 1007)
register("ws_data_after_close", "warning", "RFC 6455 section 5.5.1",
         "a frame sent after its sender's own close frame",
         "After sending a close an endpoint must not send data; the receiver discards "
         "it, so what it carries was not delivered (or is meant for a lax parser).", _NC,
         "text frame after this side's close (frame 4); 1 frame after it in all")
register("ws_close_unanswered", "warning", "RFC 6455 section 5.5.1",
         "a close frame got no close in reply before the connection ended",
         "The peer must echo the close; it crashed, timed out, or just dropped TCP. The "
         "closing handshake did not complete.", _NC,
         "close 1000 from the client got no close in reply (the server ended TCP)")
register("ws_no_close", "info", "RFC 6455 section 7.1.1",
         "the connection ended without any close frame",
         "TCP was closed or reset with no closing handshake: a crash, a kill, a timeout "
         "or a refused handshake.", _NC,
         "TCP ended (FIN from the client) without a close frame")
register("ws_ping_unanswered", "warning", "RFC 6455 section 5.5.2",
         "a ping got no pong while the peer went on or closed",
         "The peer must answer pings; it is hung, non-conforming, or the ping was never "
         "delivered (a middlebox ate it). One row per unanswered ping.", _NC,
         "ping 'are you there' got no pong (the server closed without answering)")
register("ws_pong_mismatch", "warning", "RFC 6455 section 5.5.3",
         "a pong whose payload matches no outstanding ping",
         "A pong must echo the ping's payload; a mismatch means a broken peer or frames "
         "crafted by something else on the path. One row per such pong.", _NC,
         "pong 'something else' matches no outstanding ping (latest 'ping-1')")
register("ws_truncated_frame", "warning", "RFC 6455 section 5.2",
         "a frame's declared length runs past the captured data",
         "Loss, a connection cut mid-frame, or a client declaring far more than it sends "
         "to tie up buffers.", _NC + "; Suricata: websocket.skip_end_of_payload (partly)",
         "declared 2147483648 bytes, 12 captured before the end of the stream")
register("ws_desync", "warning", "RFC 6455 section 5.2",
         "frame boundaries lost after a gap; bytes passed over until they were found",
         "The capture missed bytes where a frame header was; frames in the passed-over "
         "bytes (the gap's size is counted in) are not in the tables.", "",
         "1200 bytes after a gap passed over until a frame boundary was found")
register("ws_payload_cut", "warning", "wspcap limit max_payload",
         "a frame larger than the kept-payload limit; only its start is kept",
         "The payload is too large to keep whole (Options.max_payload); its message is "
         "incomplete in the tables.",
         "Suricata: websocket.skip_end_of_payload",
         "declared 300000000 bytes; kept the first 268435456, 0 not captured")

# -- permessage-deflate (RFC 7692) ----------------------------------------------------
register("pmd_rsv1_on_control", "error", "RFC 7692 section 6.1",
         "RSV1 set on a control frame",
         "Control frames are never compressed: an endpoint must fail the connection.", _NC,
         "RSV1 set on a ping frame", 1002)
register("pmd_rsv1_on_continuation", "error", "RFC 7692 section 6.1",
         "RSV1 set on a continuation frame",
         "Only a message's first frame carries RSV1.", _NC,
         "RSV1 set on a continuation frame", 1002)
register("pmd_inflate_failed", "error", "RFC 7692 section 7.2.2",
         "a compressed message does not inflate",
         "Corrupt or hostile compressed data (the receiver must fail the connection).",
         "Zeek: not checked (no inflation); Wireshark: websocket.decompression.failed.expert",
         "inflate failed: Error -3 while decompressing data: invalid block type", 1007)
register("pmd_params_invalid", "error", "RFC 7692 section 7.1",
         "the accepted permessage-deflate parameters are invalid",
         "Unknown or repeated parameters, bad window sizes, or a parameter the client did "
         "not offer: the client must fail the connection.", _NC,
         "client_max_window_bits in the answer, but the client did not offer it", 1010)
register("pmd_context_takeover_violated", "error", "RFC 7692 section 7.1.1",
         "a message needs the previous window although no_context_takeover was agreed",
         "The sender kept its LZ77 window against the agreement; a receiver that resets "
         "cannot decode it (wspcap recovers it with the kept window).", _NC,
         "message refers to the previous message's window although no_context_takeover was "
         "agreed",
         1007)
register("pmd_window_bits_exceeded", "error", "RFC 7692 section 7.1.2",
         "a message refers back further than the negotiated window",
         "The sender uses a larger LZ77 window than it agreed to: a receiver with the "
         "agreed buffer cannot decode it.", _NC,
         "the sender refers back further than its window of 2**10 bytes", 1007)
register("pmd_ratio_excessive", "warning", "RFC 7692 section 8.1",
         "a message inflates past the size limit or the ratio threshold",
         "A decompression bomb, or a legitimately huge, very repetitive message; past the "
         "engine limit the inflation is cut.", _NC,
         "4194304 bytes inflated from 4120 (ratio 1018, threshold 100)", 1009)
register("pmd_context_lost", "warning", "RFC 7692 section 7.2.3",
         "a compressed message needs an earlier window that is unknown",
         "Capture started mid-connection, or an earlier message was lost or cut: this "
         "message cannot be inflated exactly.", _NC,
         "compressed message refers to a window from before the capture")

# -- Resources and denial of service ----------------------------------------------------
register("res_huge_declared_length", "warning", "RFC 6455 section 10.4",
         "a frame declares a payload length over the threshold",
         "Buffers sized from the header can be exhausted before a byte arrives; compare "
         "with what was captured.", _NC + "; Suricata: websocket.skip_end_of_payload (partly)",
         "declared 2147483648 bytes, 12 captured (threshold 16777216)", 1009)
register("res_oversized_message", "warning", "RFC 6455 section 10.4",
         "a message larger than the threshold",
         "Memory pressure on the receiver; most libraries refuse far smaller messages "
         "(websockets: 1 MiB by default).", _NC + "; Suricata: websocket.reassembly_limit_reached",
         "20000000 bytes in 3 frames (threshold 16777216)", 1009)
register("res_inflate_budget_exceeded", "warning", "RFC 7692 section 8.1",
         "compressed messages inflate past the connection's or the capture's budget",
         "Many messages that each stay under the per-message cut add up to a decompression "
         "bomb (or a connection moves more data than the budget allows); from this message "
         "on, the direction's compressed messages are kept compressed (inflated=False). "
         "Thresholds inflate_budget_connection and inflate_budget_capture.", _NC,
         "the connection's inflation budget of 268435456 bytes is used up (251658240 "
         "inflated): this message (62470 compressed bytes) and the later compressed ones in "
         "this direction are kept compressed", 1009)
register("res_frame_flood", "warning", "RFC 6455 section 10.4",
         "frames per second on one direction over the threshold",
         "A flood that ties up the receiver's per-frame work (market-data feeds may "
         "legitimately need a higher threshold).", _NC,
         "1001 frames within 1 s (threshold 1000/s)")
register("res_ping_flood", "warning", "RFC 6455 sections 5.5.2, 10.4",
         "pings per second on one direction over the threshold",
         "Each ping forces a pong: a cheap way to load the peer (and the path).", _NC,
         "11 pings within 1 s (threshold 10/s)")
register("res_tiny_fragments", "warning", "RFC 6455 sections 5.4, 10.4",
         "a message split into very many tiny fragments",
         "Per-frame overhead used as a lever, or IDS evasion by spreading a pattern over "
         "fragments.", _NC,
         "200 fragments of 1.0 bytes on average (thresholds 100 fragments, 16 bytes)")
register("res_slow_handshake", "warning", "RFC 6455 section 10.4",
         "the upgrade request's head trickled in over more than the threshold",
         "Slowloris: holding server slots by sending headers slowly.", _NC,
         "request head took 30.0 s to arrive (183 bytes; threshold 10 s)")
register("res_slow_frame", "warning", "RFC 6455 section 10.4",
         "a frame's bytes trickled in over more than the threshold",
         "A slow sender holding the receiver's frame buffer (slow-read/slow-post style).",
         _NC, "frame took 36.0 s to arrive (100 bytes, 2.8 B/s; threshold 10 s under 1024 B/s); "
         "1 slow frame")
register("res_many_connections", "warning", "RFC 6455 section 10.4, 4.1",
         "one client holds many concurrent WebSocket connections to one server",
         "Connection exhaustion, or a client that leaks connections (or many users "
         "behind one NAT address: raise the threshold there). TLS connections that were "
         "not decrypted are not counted: they may as well be a pool of HTTPS connections.",
         _NC,
         "33 concurrent connections from 10.0.0.1 to 10.0.0.2:80 (threshold 32)")

# -- Application protocols (wspcap.app decoders, issue 18) -------------------------------
# Reported by the decoders of wspcap.app through wspcap.tables.app, located at the first
# frame of the message they are about. app_credentials_in_clear has two codes, because a
# code has one severity: over plain ws:// anyone on the path reads the secret (error),
# over a wss:// connection that wspcap decrypted only holders of the keys do (warning).
register("app_parse_failed", "warning", "the application protocol's specification",
         "a message of a recognized application protocol cannot be read as that protocol",
         "A peer speaking a different version or dialect, a corrupted or cut message, or a "
         "decoder chosen by content that is wrong about the conversation (force one with "
         "--decoder, or turn decoding off with --no-decoders).", _NC,
         "JSON-RPC message is not valid JSON")
register("app_protocol_violation", "warning", "the application protocol's specification",
         "a message of a recognized application protocol breaks a rule of that protocol",
         "A buggy or hostile peer (MQTT reserved flags, a Socket.IO EVENT without a name, "
         "a STOMP frame without its NUL): endpoints may drop the connection.", _NC,
         "MQTT SUBSCRIBE to 'a/b' with QoS 3")
register("app_buffer_limit", "warning", "wspcap's decoder limits",
         "an application packet larger than the decoder buffers",
         "The decoder skipped it (by its declared length where it has one) and went on; "
         "a huge application packet is itself worth a look (memory exhaustion).", _NC,
         "MQTT packet of 2097152 bytes over the 1048576 byte cap, skipped")
register("app_credentials_in_clear", "warning", "OWASP ASVS V9 (communication security)",
         "application messages of a decrypted wss:// connection carry a password or token",
         "Safe on the wire, but the secret is in every proxy log, key-log capture and "
         "debugging tool that sees the messages; prefer the handshake's own authentication "
         "(cookies, tokens exchanged once) and short-lived tokens.", _NC,
         "MQTT CONNECT password for user 'bob'")
register("app_credentials_plaintext", "error", "OWASP ASVS V9 (communication security)",
         "application messages of a plain ws:// connection carry a password or token",
         "Anyone on the path reads the secret (this capture did): rotate it, and move the "
         "connection to wss://.", _NC,
         "MQTT CONNECT password for user 'bob'")
register("app_graphql_introspection", "info", "GraphQL specification section 4 (Introspection)",
         "a GraphQL operation queries the schema (__schema or __type)",
         "Developer tools do this; in production it maps the whole API for an attacker, "
         "and many servers turn it off.", _NC,
         "GraphQL introspection query (operation IntrospectionQuery)")
register("app_keepalive_missed", "warning", "MQTT 3.1.1 section 3.1.2.10; Engine.IO protocol",
         "an application keep-alive (MQTT PINGREQ, Engine.IO ping) came later than agreed",
         "The peer would have dropped the connection: a stalled client, a congested path, "
         "or a capture that missed packets.", _NC,
         "no client packet for 95.0 s (keep-alive 60 s)")
register("app_request_unanswered", "warning", "the application protocol's specification",
         "an application request that obliges an answer got none before the connection ended",
         "A server that failed or dropped the request, a call still pending when the capture "
         "stopped, or answers lost from the capture.", _NC,
         "JSON-RPC request 'sum' id 7 never answered")
