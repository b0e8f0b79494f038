"""Every committed reproducer holds the contract, and what its finding needs.

``reproducers/`` holds the failing inputs of issue 15 (items 1-9, built by
``make_reproducers.py``) and those the fuzzer found since (see the folder's
README.md). Each runs under the contract of :mod:`fuzz.contract` (forked,
time and memory limits, read(), the block path and analyze_to), then, for the
findings where more than "no exception" must hold, the checks in
:data:`EXPECT` run on ``wspcap.read(path)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

import wspcap
from wspcap.tables.capture import Capture

from .contract import run_case
from .make_reproducers import BUILDERS, REPRODUCERS_DIR, inflation_bomb


@dataclass(frozen=True)
class Open:
    """A finding not fixed on this branch.

    Attributes:
        reason: the issue item and the branch that fixes it.
        escapes: ``(exception type or status, wspcap file)`` the finding gives
            under the contract, which the seeded fuzz run (``test_fuzz.py``)
            lets pass while the finding is open; None if it escapes nothing.
    """

    reason: str
    escapes: tuple[str, str] | None = None


#: Findings still open on this branch (their reproducer tests are strict
#: xfails). The lead empties this when merging the fixes: then every
#: reproducer must pass and the seeded fuzz run tolerates nothing.
OPEN_FINDINGS: dict[str, Open] = {
}

Check = Callable[[Capture], bool]


def _codes(cap: Capture) -> set[str]:
    return set(cap.anomalies["code"].astype(str))


def _truncated_but_kept(packets: int | None) -> list[tuple[str, Check]]:
    """The packets before the fault are kept (``packets``, or at least one),
    and the capture is flagged as truncated."""
    kept: Check = ((lambda c: c.info.packets == packets) if packets is not None
                   else (lambda c: c.info.packets > 0))
    return [(f"the packets before the fault are kept ({packets or 'some'})", kept),
            ("CaptureInfo.truncated says why", lambda c: bool(c.info.truncated)),
            ("a capture_truncated or capture_corrupt anomaly",
             lambda c: bool(_codes(c) & {"capture_truncated", "capture_corrupt"}))]


def _timestamps(null_frames: Callable[[pd.Series], bool]) -> list[tuple[str, Check]]:
    return [("every packet kept", lambda c: c.info.packets == 12),
            ("the connection is found", lambda c: len(c.connections) == 1),
            ("the frames' timestamps past int64 ns are null (NaT)",
             lambda c: null_frames(c.frames["ts"])),
            ("flagged by a capture_* anomaly other than capture_truncated",
             lambda c: any(k.startswith("capture_") and k != "capture_truncated"
                           for k in _codes(c)))]


def _found(frames: int) -> list[tuple[str, Check]]:
    return [("one connection, its handshake found",
             lambda c: len(c.connections) == 1 and bool(c.connections["handshake"].iloc[0])),
            (f"all {frames} frames", lambda c: len(c.frames) == frames),
            (f"all {frames} messages, complete",
             lambda c: len(c.messages) == frames and bool(c.messages["complete"].all()))]


def _first(cap: Capture, direction: str) -> pd.Series:
    m = cap.messages
    return m[m["direction"] == direction].iloc[0]


def _is_false(value: object) -> bool:
    return not pd.isna(value) and not bool(value)


def _big_frame_start(cap: Capture) -> bool:
    f = cap.frames
    big = f[f["payload_len"] > 256 << 20]
    # The big frame's header arrives in the packet that ends frame 0.
    return len(big) == 1 and big["ts_start"].iloc[0] == f["ts"].iloc[0]


#: What must hold beyond the contract, per reproducer: (what, check) pairs.
EXPECT: dict[str, list[tuple[str, Check]]] = {
    "item01-gzip-cut.pcap.gz": _truncated_but_kept(None),
    "item01-gzip-bad-crc.pcap.gz": _truncated_but_kept(16),
    "item01-gzip-corrupt-body.pcap.gz": _truncated_but_kept(None),
    "item01-pcap-cut-in-record-header.pcap": _truncated_but_kept(10),
    "item01-pcapng-cut-in-block-header.pcapng": _truncated_but_kept(10),
    "item02-window-bits-superscript.pcap": [
        ("the connection is found", lambda c: len(c.connections) == 1),
        ("pmd_params_invalid flags the parameter", lambda c: "pmd_params_invalid" in _codes(c)),
    ],
    "item02-status-superscript.pcap": [
        ("the connection is found", lambda c: len(c.connections) == 1),
        ("the status is null, not 121", lambda c: pd.isna(c.connections["status"].iloc[0])),
        ("an http_* anomaly flags it", lambda c: any(k.startswith("http_") for k in _codes(c))),
    ],
    "item03-tsresol-seconds.pcapng": _timestamps(lambda ts: bool(ts.isna().all())),
    "item03-tsoffset-huge.pcapng": _timestamps(lambda ts: bool(ts.isna().all())),
    "item03-one-absurd-timestamp.pcapng": _timestamps(lambda ts: int(ts.isna().sum()) == 1),
    "item04-first-segment-1-byte.pcap": _found(8),
    "item04-first-segment-2-bytes.pcap": _found(8),
    "item04-first-segment-3-bytes.pcap": _found(8),
    "item05-response-before-request.pcap": [
        *_found(7),
        ("read as an upgrade, not mid-stream",
         lambda c: not c.connections["midstream"].iloc[0]
         and c.connections["status"].iloc[0] == 101),
        ("no handshake or framing anomaly",
         lambda c: not _codes(c) & {"http_handshake_missing", "ws_reserved_opcode",
                                    "ws_client_unmasked", "ws_truncated_frame", "ws_desync",
                                    "http_frames_before_101", "http_frames_without_101"}),
    ],
    "item06-lost-middle-fragment.pcap": [
        ("the message that lost its middle fragment is not complete",
         lambda c: not _first(c, "c2s")["complete"]),
    ],
    "item06-lost-part-of-fragment.pcap": [
        ("the message that lost part of a fragment is not complete",
         lambda c: not _first(c, "c2s")["complete"]),
    ],
    "item06-lost-deflate-fragment.pcap": [
        ("the deflated message missing a fragment is not complete",
         lambda c: not _first(c, "s2c")["complete"]),
        ("nor inflated (inflated is False)",
         lambda c: _is_false(_first(c, "s2c")["inflated"])),
        ("the next message inflates", lambda c: c.messages["payload"].iloc[1] == b"after"),
    ],
    "item07-orphan-continuation.pcap": [
        ("two orphan messages, not complete",
         lambda c: int((c.messages["type"] == "continuation").sum()) == 2
         and not c.messages.loc[c.messages["type"] == "continuation", "complete"].any()),
        ("the whole message after them is complete",
         lambda c: bool(c.messages.loc[c.messages["type"] == "text", "complete"].all())),
    ],
    "item08-big-frame-ts.pcap": [
        ("the >256 MiB frame's ts_start is its header's packet's time", _big_frame_start),
    ],
}


def _reproducers() -> list[str]:
    return sorted(p.name for p in REPRODUCERS_DIR.iterdir()
                  if p.is_file() and p.suffix != ".md")


def _param(name: str) -> object:
    open_ = OPEN_FINDINGS.get(name)
    marks = [pytest.mark.xfail(strict=True, reason=open_.reason)] if open_ else []
    return pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", [_param(n) for n in _reproducers()])
def test_reproducer(name: str, tmp_path: Path) -> None:
    path = REPRODUCERS_DIR / name
    outcome = run_case(path, tmp_path / "tables")
    assert not outcome.failed, (f"{name}: {outcome.status} {outcome.error} {outcome.where}\n"
                                f"{outcome.detail}")
    checks = EXPECT.get(name, [])
    if checks:
        cap = wspcap.read(path)
        failed = [what for what, check in checks if not check(cap)]
        assert not failed, f"{name}: these do not hold: {failed}"


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Item 9's capture: 30 messages that each inflate to 60 MiB (1.9 MB)."""
    return inflation_bomb(tmp_path_factory.mktemp("bomb") / "inflation-bomb.pcap")


@pytest.mark.parametrize("entry, rss_mib", [
    pytest.param("read", 1024, id="read-under-1GiB",
                 marks=[pytest.mark.xfail(strict=True, reason=OPEN_FINDINGS[
                     "item09-inflation-bomb (generated)"].reason)]
                 if "item09-inflation-bomb (generated)" in OPEN_FINDINGS else []),
    pytest.param("analyze_to", 300, id="analyze-to-under-300MiB",
                 marks=[pytest.mark.xfail(strict=True, reason=OPEN_FINDINGS[
                     "item09-inflation-bomb (generated)"].reason)]
                 if "item09-inflation-bomb (generated)" in OPEN_FINDINGS else []),
])
def test_inflation_bomb(bomb: Path, tmp_path: Path, entry: str, rss_mib: int) -> None:
    """Item 9: memory stays bounded across messages, not only within one
    (read() and the block path under 1 GiB over the start; analyze_to alone,
    which streams its tables, under 300 MiB over the start); every message
    is kept."""
    outcome = run_case(bomb, tmp_path / "tables" if entry == "analyze_to" else None,
                       rss_limit=rss_mib << 20, time_limit=120, read=entry == "read")
    assert not outcome.failed, f"{outcome.status} {outcome.error} {outcome.detail}"
    if entry == "read":
        cap = wspcap.read(bomb)
        assert int((cap.messages["type"] == "binary").sum()) == 30


def test_every_reproducer_is_documented() -> None:
    """The folder's README lists every file, and OPEN_FINDINGS names no file
    that is gone."""
    readme = (REPRODUCERS_DIR / "README.md").read_text(encoding="utf-8")
    missing = [n for n in _reproducers() if n not in readme]
    assert not missing, f"not in reproducers/README.md: {missing}"
    stale = [n for n in OPEN_FINDINGS if n not in _reproducers() and "(generated)" not in n]
    assert not stale, f"OPEN_FINDINGS names files that do not exist: {stale}"
    assert set(EXPECT) <= set(_reproducers())


def test_reproducers_are_up_to_date(tmp_path: Path) -> None:
    """The committed issue reproducers are what make_reproducers.py builds."""
    differ = []
    for name, build in BUILDERS.items():
        build(tmp_path / name)
        if (tmp_path / name).read_bytes() != (REPRODUCERS_DIR / name).read_bytes():
            differ.append(name)
    assert not differ, f"regenerate with python -m tests.fuzz.make_reproducers: {differ}"
