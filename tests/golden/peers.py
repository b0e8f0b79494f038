"""Readers for the peers' expected outputs (Zeek baselines, Suricata tests, tshark TSV).

Everything here parses files written by other tools; nothing computes an
expectation by itself. See ``peers/zeek/NOTES.md`` and ``peers/suricata/NOTES.md``
for what the files mean.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "SuricataRule",
    "ZeekFrame",
    "ZeekTrace",
    "content_bytes",
    "read_rules",
    "read_tshark_tsv",
    "read_zeek_events",
    "read_zeek_log",
    "zeek_unescape",
]

BANNER = "### BTest baseline data"


# -- Zeek logs ---------------------------------------------------------------------------

def read_zeek_log(path: Path) -> list[dict[str, str]]:
    """Rows of a Zeek log baseline, full (``#fields``) or cut (one header line).

    Values are as written: ``-`` means unset and ``(empty)`` an empty set.
    """
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines()
             if ln and not ln.startswith(BANNER)]
    names: list[str] | None = None
    rows = []
    for line in lines:
        if line.startswith("#"):
            if line.startswith("#fields\t"):
                names = line.split("\t")[1:]
            continue
        if names is None:
            names = line.split("\t")
            continue
        rows.append(dict(zip(names, line.split("\t"), strict=True)))
    return rows


def zeek_unescape(text: str) -> bytes:
    r"""Undo Zeek's escaping of bytes in printed strings (``\xNN``, ``\\``)."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and text[i + 1:i + 2] == "x" and re.fullmatch(
                "[0-9a-fA-F]{2}", text[i + 2:i + 4]):
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
        elif c == "\\" and text[i + 1:i + 2] == "\\":
            out.append(0x5C)
            i += 2
        else:
            out += c.encode("utf-8")
            i += 1
    return bytes(out)


@dataclass
class ZeekFrame:
    """One ``websocket_frame`` event (and its ``websocket_frame_data``, if any)."""

    is_orig: bool
    fin: bool
    rsv: int
    opcode: str
    payload_len: int
    data_len: int | None = None
    data: bytes | None = None  #: at most the first 120 payload bytes


@dataclass
class ZeekTrace:
    """The events Zeek printed for one trace."""

    established: dict[str, Any] | None = None
    frames: list[ZeekFrame] = field(default_factory=list)
    messages: list[tuple[bool, str]] = field(default_factory=list)  #: (is_orig, opcode)
    closes: list[tuple[bool, int, str]] = field(default_factory=list)  #: (is_orig, status, reason)


_RECORD_KEYS = ("host", "uri", "user_agent", "subprotocol", "client_protocols",
                "server_extensions", "client_extensions", "client_key", "server_accept")
_RECORD = re.compile(", ".join(f"{k}=(?P<{k}>.*?)" for k in _RECORD_KEYS) + r"\]$")


def _zeek_value(value: str) -> Any:
    if value == "<uninitialized>":
        return None
    if value.startswith("[") and value.endswith("]"):
        return [v for v in value[1:-1].split(", ")] if value != "[]" else []
    return value


def _fields(line: str, n: int) -> list[str]:
    """The first n comma-separated fields; the last keeps any ", " it holds."""
    parts = line.split(", ", n - 1)
    if len(parts) == n - 1 and parts[-1].endswith(","):  # empty last field
        parts[-1] = parts[-1][:-1]
        parts.append("")
    assert len(parts) == n, line
    return parts


def read_zeek_events(path: Path, default_trace: str = "") -> dict[str, ZeekTrace]:
    """The ``print`` output of Zeek's WebSocket event handlers, by trace name.

    A line holding only a file name (``x.pcap``) starts that trace's section;
    a file without such lines is one section named ``default_trace``.
    """
    traces: dict[str, ZeekTrace] = {}
    current = traces.setdefault(default_trace, ZeekTrace()) if default_trace else None
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith(BANNER):
            continue
        if re.fullmatch(r"[\w.-]+\.pcap(ng)?", line):
            current = traces.setdefault(line, ZeekTrace())
            continue
        event = line.split(", ", 1)[0]
        assert current is not None, f"event before any trace name in {path}"
        if event == "websocket_established":
            m = _RECORD.search(line)
            current.established = ({k: _zeek_value(v) for k, v in m.groupdict().items()}
                                   if m else {})
        elif event == "websocket_frame":
            p = line.split(", ")
            assert p[3::2][:4] == ["fin", "rsv", "opcode", "payload_len"], line
            current.frames.append(ZeekFrame(p[2] == "T", p[4] == "T", int(p[6]), p[8],
                                            int(p[10])))
        elif event == "websocket_frame_data":
            _name, _uid, orig, _len, n, _data, data = _fields(line, 7)
            frame = current.frames[-1]
            assert frame.is_orig == (orig == "T") and frame.data is None, line
            frame.data_len = int(n)
            frame.data = zeek_unescape(data)
        elif event == "websocket_message":
            p = line.split(", ")
            current.messages.append((p[2] == "T", p[4]))
        elif event == "websocket_close":
            _name, _uid, orig, _s, status, _r, reason = _fields(line, 7)
            current.closes.append((orig == "T", int(status), reason))
    return traces


# -- tshark TSV (ours, kept next to each peer capture) -----------------------------------

def read_tshark_tsv(path: Path) -> list[dict[str, list[str]]]:
    """Rows of a ``.tshark-ext.tsv`` file; each value split on ``|`` (one per frame)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    names = lines[0].split("\t")
    return [{n: (v.split("|") if v else []) for n, v in zip(names, line.split("\t"))}
            for line in lines[1:] if line]


# -- Suricata rules ----------------------------------------------------------------------

@dataclass
class SuricataRule:
    """One rule: its protocol and its options, in order (keyword, value or None)."""

    action: str
    proto: str
    sid: int
    options: list[tuple[str, str | None]]


def _split_options(body: str) -> list[str]:
    out, cur, quoted, escaped = [], "", False, False
    for c in body:
        if escaped:
            cur += c
            escaped = False
        elif c == "\\":
            cur += c
            escaped = True
        elif c == '"':
            cur += c
            quoted = not quoted
        elif c == ";" and not quoted:
            out.append(cur.strip())
            cur = ""
        else:
            cur += c
    if cur.strip():
        out.append(cur.strip())
    return out


def read_rules(path: Path) -> dict[int, SuricataRule]:
    """The rules of a ``test.rules`` file, by sid."""
    rules = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        head, body = line.split("(", 1)
        action, proto = head.split()[:2]
        options: list[tuple[str, str | None]] = []
        for opt in _split_options(body.rstrip().rstrip(")")):
            key, sep, value = opt.partition(":")
            options.append((key.strip(), value.strip() if sep else None))
        sid = int(next(v for k, v in options if k == "sid"))  # type: ignore[arg-type]
        rules[sid] = SuricataRule(action, proto, sid, options)
    return rules


def content_bytes(value: str) -> bytes:
    """A ``content:"..."`` value as bytes (``|hex hex|`` parts decoded)."""
    value = value.strip()
    assert value.startswith('"') and value.endswith('"'), value
    text = value[1:-1]
    out = bytearray()
    for n, part in enumerate(text.split("|")):
        if n % 2:
            out += bytes.fromhex(part)
        else:
            out += part.replace('\\"', '"').replace("\\;", ";").replace(
                "\\\\", "\\").encode("utf-8")
    return bytes(out)
