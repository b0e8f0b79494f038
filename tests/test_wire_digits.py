"""Numbers read from the wire take ASCII digits only (issue 15 item 2).

RFC 5234 appendix B.1: ``DIGIT = %x30-39``. Python's ``str.isdigit`` also
says yes to "²" (a Latin-1 byte, 0xB2, so it reaches us in any head) and to
other scripts' digits, which ``int`` then refuses (``ValueError``) or reads
as a number the RFC does not allow. Every number wspcap parses from
handshake text (the status code, permessage-deflate window sizes) goes
through an ASCII-only check, a malformed one is flagged, and no header value
makes the engine raise.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from golden import crafted as C
from golden.rfc6455 import TEXT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wspcap
from wspcap.http.upgrade import Handshake, HttpHead
from wspcap.ws.deflate import negotiate

OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"


def _read(request: bytes, response: bytes, folder: Path) -> Any:
    """A conversation with these heads, one message each way, read back."""
    conv = C.Conversation()
    conv.open()
    conv.upgrade(request, response)
    conv.exchange("c2s", TEXT, b"hello")
    conv.exchange("s2c", TEXT, b"world")
    conv.close()
    path = conv.crafted("digits").write(folder / "digits.pcap")
    return wspcap.read(path)


def _answer(*extra: str) -> bytes:
    """A 101 whose header lines are written as Latin-1 (one byte a character)."""
    return C.response_head(extra=["X-Placeholder: 1"]).replace(
        b"X-Placeholder: 1", "\r\n".join(extra).encode("latin-1"))


def _anomalies(capture: Any, code: str) -> list[str]:
    a = capture.anomalies
    return [str(d) for d in a[a.code == code].detail]


# -- the status code -------------------------------------------------------------------

@pytest.mark.parametrize(("text", "status"), [
    ("101", 101), ("426", 426), ("1\u00b21", None), ("\u00b9\u00b2\u00b3", None),
    ("\u0661\u0660\u0661", None),  # Arabic-Indic 101: int() reads it, RFC 9112 does not
    ("10", None), ("1010", None), ("+11", None), (" 101", None), ("", None)])
def test_status_code_is_three_ascii_digits(text: str, status: int | None) -> None:
    head = HttpHead(f"HTTP/1.1 {text} Switching Protocols", (), 0)
    assert head.status == status


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=12))
def test_any_status_text_never_raises(text: str) -> None:
    head = HttpHead.parse(f"HTTP/1.1 {text} Reason\r\n\r\n".encode())
    status = head.status
    if status is not None:
        code = head.start_line.split(" ", 2)[1]
        assert len(code) == 3 and code.isascii() and code.isdigit()
        assert status == int(code)


def test_superscript_status_is_flagged(tmp_path: Path) -> None:
    """``HTTP/1.1 1²1``: today a ValueError out of wspcap.read; now the answer is
    unreadable (status null), flagged, and the connection is kept."""
    response = C.response_head().replace(b"101", b"1\xb21", 1)
    capture = _read(C.request_head(), response, tmp_path)
    assert len(capture.connections) == 1
    row = capture.connections.iloc[0]
    assert pd.isna(row.status)
    assert not row.established
    assert row.key == C.RFC_KEY and row.uri == "/chat"
    assert _anomalies(capture, "http_status_invalid") == [
        "status line 'HTTP/1.1 1\u00b21 Switching Protocols' has no three-digit status code"]
    assert not _anomalies(capture, "http_status_not_101")
    # the frames sent anyway are what a refused upgrade's are
    assert _anomalies(capture, "http_frames_without_101")


# -- permessage-deflate window sizes ---------------------------------------------------

@pytest.mark.parametrize(("value", "bits"), [
    ("8", 8), ("15", 15), ('"10"', 10), ("\u00b2", None), ("1\u00b2", None),
    ("\u00b95", None), ("\u0661\u0665", None), ("08", None), ("015", None), ("16", None),
    ("7", None), ("", None), ("9" * 5000, None)])
def test_window_bits_are_ascii_without_leading_zero(value: str, bits: int | None) -> None:
    params, problems = negotiate(f"permessage-deflate; client_max_window_bits={value}")
    assert params is not None
    if bits is None:
        shown = value.strip('"')
        assert problems == [f"client_max_window_bits={shown} is not a value from 8 to 15"]
        assert params.client_max_window_bits == 15
    else:
        assert problems == []
        assert params.client_max_window_bits == bits


_PARAM_TEXT = st.text(alphabet=st.sampled_from(
    list("0123456789\u00b2\u00b3\u00b9\u0661;=,\" \tabcdefgklmnoprstuvwxz_-")), max_size=60)


@settings(max_examples=300, deadline=None)
@given(_PARAM_TEXT | st.text(max_size=60))
def test_any_extension_text_never_raises(text: str) -> None:
    for value in (text, "permessage-deflate; " + text,
                  "permessage-deflate; server_max_window_bits=" + text):
        params, _problems = negotiate(value)
        if params is not None:
            for bits in (params.client_max_window_bits, params.server_max_window_bits):
                assert 8 <= bits <= 15


@pytest.mark.parametrize("value", ["\u00b2", "1\u00b2", "08"])
@pytest.mark.parametrize("param", ["client_max_window_bits", "server_max_window_bits"])
def test_malformed_window_bits_are_flagged(param: str, value: str, tmp_path: Path) -> None:
    capture = _read(C.request_head(extra=[OFFER]),
                    _answer(f"Sec-WebSocket-Extensions: permessage-deflate; {param}={value}"),
                    tmp_path)
    row = capture.connections.iloc[0]
    assert row.established and row.permessage_deflate
    assert _anomalies(capture, "pmd_params_invalid") == [
        f"{param}={value} is not a value from 8 to 15"]
    assert [bytes(p) for p in capture.messages.payload] == [b"hello", b"world"]


# -- other numbers in the handshake ----------------------------------------------------

def test_superscript_version_is_not_13(tmp_path: Path) -> None:
    request = C.request_head().replace(b"Version: 13", b"Version: \xb9\xb3")
    capture = _read(request, C.response_head(), tmp_path)
    assert capture.connections.iloc[0].version == "\u00b9\u00b3"
    assert _anomalies(capture, "http_version_not_13") == [
        "Sec-WebSocket-Version: \u00b9\u00b3"]


def test_superscript_host_port_is_not_a_port(tmp_path: Path) -> None:
    """``Host: name:8²`` is not ``scheme://host[:port]``: the Origin check says the
    two differ (and does not raise, as the URL parser's ASCII check makes it)."""
    request = C.request_head(extra=["Origin: http://server.example.com:82"]).replace(
        b"Host: server.example.com", b"Host: server.example.com:8\xb2")
    capture = _read(request, C.response_head(), tmp_path)
    assert capture.connections.iloc[0].host == "server.example.com:8\u00b2"
    assert _anomalies(capture, "sec_origin_cross_site")


# -- any header value, end to end -------------------------------------------------------

_LATIN1 = st.text(alphabet=st.characters(max_codepoint=255, blacklist_characters="\r\n"),
                  max_size=40)
#: Header values as bytes on the wire (heads are read as Latin-1: 0xB2 is "²").
_WIRE = (_LATIN1.map(lambda t: t.encode("latin-1"))
         | _PARAM_TEXT.map(lambda t: t.encode("utf-8"))
         | st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")))
_REQUEST_FIELDS = (b"Sec-WebSocket-Version", b"Sec-WebSocket-Extensions", b"Sec-WebSocket-Key",
                   b"Sec-WebSocket-Protocol", b"Host", b"Origin", b"Content-Length",
                   b"User-Agent")
_ANSWER_FIELDS = (b"Sec-WebSocket-Extensions", b"Sec-WebSocket-Accept",
                  b"Sec-WebSocket-Protocol", b"Content-Length")


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(request_field=st.sampled_from(_REQUEST_FIELDS), request_value=_WIRE,
       answer_field=st.sampled_from(_ANSWER_FIELDS), answer_value=_WIRE,
       status=st.sampled_from([b"101", b"1\xb21", b"\xb9\xb9", b"426"]) | _WIRE)
def test_any_header_value_never_raises(request_field: bytes, request_value: bytes,
                                       answer_field: bytes, answer_value: bytes,
                                       status: bytes) -> None:
    """Whatever a handshake field holds, wspcap.read gives its tables."""
    request = C.request_head(extra=[OFFER]).replace(
        b"Upgrade: websocket", request_field + b": " + request_value + b"\r\nUpgrade: websocket")
    answer = C.response_head().replace(
        b"Upgrade: websocket", answer_field + b": " + answer_value + b"\r\nUpgrade: websocket"
    ).replace(b"101", status, 1)
    # (Handshake reads the same heads without raising, whatever they hold)
    hs = Handshake.from_request(HttpHead.parse(request))
    hs.answer(HttpHead.parse(answer))
    with tempfile.TemporaryDirectory() as folder:
        capture = _read(request, answer, Path(folder))
    assert len(capture.connections) == 1
    row = capture.connections.iloc[0]
    if status in (b"101", b"426"):
        assert row.status == int(status)
    elif not (len(status) == 3 and status.isdigit()):
        assert pd.isna(row.status)
