"""The HTTP/1.1 Upgrade handshake that opens a WebSocket connection."""

from wspcap.http.upgrade import (
    ACCEPT_GUID,
    Handshake,
    HeadParser,
    HttpHead,
    accept_for,
    looks_like_request,
    looks_like_response,
    maybe_head_kind,
    parse_extensions,
)

__all__ = [
    "ACCEPT_GUID", "Handshake", "HeadParser", "HttpHead", "accept_for",
    "looks_like_request", "looks_like_response", "maybe_head_kind", "parse_extensions",
]
