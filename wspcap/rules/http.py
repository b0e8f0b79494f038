"""Checks of the opening handshake (RFC 6455 section 4, RFC 7692 section 7.1).

Sans-I/O: performs no I/O. The parser already reports what it sees while
reading the heads (``http_key_missing``, ``http_accept_*``,
``http_data_with_101``, ``http_frames_*_101``); the rules here compare the
fields of the request and the answer, and handshakes across connections.
"""

from __future__ import annotations

import base64
import binascii

from wspcap.http.upgrade import HttpHead, parse_extensions
from wspcap.rules.context import C2S, S2C, Conn, Context, check, preview

__all__ = ["answer_fields", "key_reuse", "request_fields"]

#: RFC 6455 section 11.3 and RFC 9112 section 3.2: fields a request may carry once.
ONCE_IN_REQUEST = ("Host", "Sec-WebSocket-Key", "Sec-WebSocket-Version")
#: RFC 6455 section 11.3: fields an answer may carry once.
ONCE_IN_RESPONSE = ("Sec-WebSocket-Accept", "Sec-WebSocket-Protocol")


def _request_report(ctx: Context, conn: Conn, code: str, detail: str) -> None:
    ctx.report(conn.conn_id, conn.ts_request, C2S, None, code, detail, conn.request_packet)


def _answer_report(ctx: Context, conn: Conn, code: str, detail: str) -> None:
    ctx.report(conn.conn_id, conn.ts_response, S2C, None, code, detail, conn.response_packet)


@check("http")
def request_fields(ctx: Context) -> None:
    """RFC 6455 section 4.1: what the client's opening handshake must hold.

    "The method of the request MUST be GET", "The request MUST contain a
    |Host| header field", "|Upgrade| header field whose value MUST include the
    'websocket' keyword", "|Connection| header field whose value MUST include
    the 'Upgrade' token", "|Sec-WebSocket-Key| ... a base64-encoded value
    that, when decoded, is 16 bytes in length", "|Sec-WebSocket-Version| ...
    MUST be 13".

    Over HTTP/2 (RFC 8441 section 5) the request is a CONNECT whose
    ``:protocol`` is ``websocket``: the key and the accept are "superseded
    by the :protocol pseudo-header field", and Upgrade and Connection are
    fields HTTP/2 forbids (RFC 9113 section 8.2.2), so neither is looked for;
    the version, the Host (``:authority``) and the fields sent once still are.
    """
    for conn in ctx.conns:
        hs = conn.handshake
        if hs is None or hs.request is None:
            continue
        req = hs.request
        if not hs.h2 and hs.method != "GET":
            _request_report(ctx, conn, "http_method_not_get", f"method {hs.method}")
        if not hs.host:
            _request_report(ctx, conn, "http_host_missing",
                            "the upgrade request has no Host header")
        versions = req.get_all("Sec-WebSocket-Version")
        if not versions:
            _request_report(ctx, conn, "http_version_not_13",
                            "the upgrade request has no Sec-WebSocket-Version")
        elif any(v.strip() != "13" for v in versions):
            _request_report(ctx, conn, "http_version_not_13",
                            f"Sec-WebSocket-Version: {', '.join(versions)}")
        if hs.key is None and hs.status != 101 and not hs.h2:
            # (with a 101 the parser reports it, next to the accept check)
            _request_report(ctx, conn, "http_key_missing",
                            "the upgrade request has no Sec-WebSocket-Key")
        if hs.key is not None and not hs.key_is_valid():
            _request_report(ctx, conn, "http_key_invalid", _key_problem(hs.key))
        for code, detail in _head_findings(req, ONCE_IN_REQUEST, "upgrade request",
                                           "request", "Connection: Upgrade", hs.h2):
            _request_report(ctx, conn, code, detail)


def _head_findings(head: HttpHead, once: tuple[str, ...], what: str, where: str,
                   connection: str, h2: bool = False) -> list[tuple[str, str]]:
    """Upgrade tokens missing (not over HTTP/2: ``h2``) and fields repeated
    that may appear once, in a head.

    Args:
        head: the request or the answer.
        once: the fields RFC 6455 allows once in it.
        what: how the head is named in "the ... lacks".
        where: how it is named in "appears N times in the ...".
        connection: the Connection token as the detail spells it.
    """
    found = []
    missing = []
    if "websocket" not in head.tokens("Upgrade"):
        missing.append("Upgrade: websocket")
    if "upgrade" not in head.tokens("Connection"):
        missing.append(connection)
    if missing and not h2:
        found.append(("http_upgrade_tokens_missing", f"the {what} lacks {' and '.join(missing)}"))
    for name in once:
        values = head.get_all(name)
        if len(values) > 1:
            found.append(("http_duplicate_header",
                          f"{name} appears {len(values)} times in the {where}: "
                          + ", ".join(preview(v) for v in values)))
    return found


def _key_problem(key: str) -> str:
    try:
        raw = base64.b64decode(key.strip(), validate=True)
    except (binascii.Error, ValueError):
        return f"key {preview(key, 40)} is not base64"
    return f"key {preview(key, 40)} decodes to {len(raw)} bytes, not 16"


@check("http")
def answer_fields(ctx: Context) -> None:
    """RFC 6455 section 4.2.2 and 4.1: what a 101 answer may say.

    The client "MUST _Fail the WebSocket Connection_" if the answer lacks
    Upgrade/Connection, if it selects a subprotocol "that was not present in
    the client's handshake", or if it accepts an extension "not present in the
    client's handshake". RFC 7692 section 7.1.2.2: a ``client_max_window_bits``
    answer to an offer without it is invalid.
    """
    for conn in ctx.conns:
        hs = conn.handshake
        if hs is None or hs.response is None or not hs.accepted:
            continue
        resp = hs.response
        for code, detail in _head_findings(resp, ONCE_IN_RESPONSE, "101 answer", "answer",
                                           "Connection: upgrade", hs.h2):
            _answer_report(ctx, conn, code, detail)
        selected = (hs.subprotocol or "").strip()
        if selected and selected not in hs.protocols_offered:  # case-sensitive, as sent
            offered = ", ".join(hs.protocols_offered)
            _answer_report(ctx, conn, "http_subprotocol_not_offered",
                           f"server selected {preview(selected, 40)}; client offered "
                           + (repr(offered) if offered else "none"))
        offers = parse_extensions(hs.extensions_offered)
        offered_names = {name for name, _ in offers}
        for name, params in parse_extensions(hs.extensions):
            if name not in offered_names:
                _answer_report(ctx, conn, "http_extension_not_offered",
                               f"server accepted {name!r}; client offered "
                               + (repr(", ".join(sorted(offered_names))) if offered_names
                                  else "none"))
            elif name == "permessage-deflate":
                _deflate_answer(ctx, conn, params, offers)


def _deflate_answer(ctx: Context, conn: Conn, params: list[tuple[str, str | None]],
                    offers: list[tuple[str, list[tuple[str, str | None]]]]) -> None:
    """RFC 7692 section 7.1.2.2: "If a received extension negotiation response
    includes the "client_max_window_bits" extension parameter and the
    corresponding extension negotiation offer doesn't include it, the client
    MUST _Fail the WebSocket Connection_"."""
    answered = {p for p, _ in params}
    if "client_max_window_bits" not in answered:
        return
    for name, oparams in offers:
        if name == "permessage-deflate" and any(p == "client_max_window_bits"
                                                for p, _ in oparams):
            return
    _answer_report(ctx, conn, "pmd_params_invalid",
                   "client_max_window_bits in the answer, but the client did not offer it")


@check("http", scope="capture")
def key_reuse(ctx: Context) -> None:
    """RFC 6455 section 4.1: the key "MUST be selected randomly for each connection"."""
    first: dict[str, int] = {}
    for conn in ctx.conns:
        hs = conn.handshake
        if hs is None or hs.key is None:
            continue
        key = hs.key.strip()
        earlier = first.setdefault(key, conn.conn_id)
        if earlier != conn.conn_id:
            _request_report(ctx, conn, "http_key_reused",
                            f"key {key!r} also sent on conn {earlier}")
