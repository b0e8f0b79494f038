#!/usr/bin/env python3
"""Time wspcap against a bare packet walk and tshark on large WebSocket captures.

For each capture (default: every capture in benchmarks/data, making the
standard ones with make_captures.py when they are missing) this runs, one
after the other, and prints side by side:

  bare pass      a minimal struct walk over the pcap record headers in Python,
                 reading every packet once: the floor for a Python tool
  wspcap CLI     python -m wspcap analyze FILE -o TMPDIR --format parquet
  wspcap.read    wspcap.read(FILE) timed inside a Python process
  tshark         tshark -r FILE -Y websocket -T fields -e ...

Every tool runs in its own child process, started by a tiny wrapper process
that times it and reads its own peak RSS with os.wait4() (exact per child,
unlike RUSAGE_CHILDREN, a maximum over all children ever waited for).
With --no-keys, wss:// captures are read without the key log beside them
(NAME.keys), by wspcap and tshark alike: the truth is their connections and
no frame.

Frame counts are checked against each other and against the ground truth that
make_captures.py wrote next to the capture (NAME.json); differences are
printed as MISMATCH.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = HERE / "data"
MAKE = HERE / "make_captures.py"
STANDARD = ("chat", "chat-deflate", "chat-churn", "bulk", "bulk-deflate", "bomb", "chat-tls",
            "bulk-tls")

TSHARK_FIELDS = ["frame.number", "tcp.stream", "websocket.fin", "websocket.opcode",
                 "websocket.mask", "websocket.payload_length", "websocket.masking_key"]
# websocket.payload_length is the 7-bit field (126/127 mean "see the extended
# length"); these two make the payload byte sum exact. They cost next to nothing.
TSHARK_EXTRA = ["websocket.payload_length_ext_16", "websocket.payload_length_ext_64"]

WSPCAP_TABLES = ("connections", "frames", "messages", "anomalies")


# ---------------------------------------------------------------------------
# Child-process workers (run as `run.py --_bare FILE` / `run.py --_read FILE`).

def bare_walk(path: str) -> dict[str, Any]:
    """Read every packet record once; nothing else. pcap and pcapng."""
    t0 = time.perf_counter()
    packets = nbytes = 0
    with open(path, "rb", buffering=1 << 20) as f:
        read = f.read
        head = read(24)
        magic = head[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1",
                     b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            endian = "<" if magic[0] in (0xD4, 0x4D) else ">"
            unpack = struct.Struct(endian + "IIII").unpack
            while True:
                rec = read(16)
                if len(rec) < 16:
                    break
                _, _, incl, _ = unpack(rec)
                data = read(incl)
                packets += 1
                nbytes += len(data)
        elif magic == b"\x0a\x0d\x0d\x0a":
            endian = "<" if head[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
            u32 = struct.Struct(endian + "I").unpack
            f.seek(0)
            while True:
                bh = read(8)
                if len(bh) < 8:
                    break
                btype, blen = struct.unpack(endian + "II", bh)
                body = read(blen - 8)
                if btype == 6:  # enhanced packet block
                    packets += 1
                    nbytes += u32(body[12:16])[0]
                elif btype == 3:  # simple packet block
                    packets += 1
                    nbytes += len(body) - 8
        else:
            raise SystemExit(f"{path}: not a pcap or pcapng file")
    return {"packets": packets, "bytes": nbytes, "seconds": time.perf_counter() - t0}


def _rows(obj: Any) -> int | None:
    if obj is None:
        return None
    if callable(obj) and not hasattr(obj, "__len__"):
        obj = obj()
    for attr in ("num_rows",):
        if hasattr(obj, attr):
            return int(getattr(obj, attr))
    if hasattr(obj, "shape"):
        return int(obj.shape[0])
    if hasattr(obj, "__len__"):
        return len(obj)
    if hasattr(obj, "__iter__"):
        return sum(1 for _ in obj)
    return None


def count_frames(result: Any) -> int | None:
    """Frames in whatever wspcap.read returned (an object with .frames, a
    mapping with "frames", or an iterable of frames)."""
    if isinstance(result, dict):
        return _rows(result.get("frames"))
    if hasattr(result, "frames"):
        return _rows(result.frames)
    if hasattr(result, "__iter__") and not isinstance(result, (str, bytes)):
        return _rows(result)
    return None


#: Set (to anything) by --no-keys, for this process and its children: the TLS
#: captures are read without their key logs, by wspcap and tshark alike.
NO_KEYS = "WSPCAP_BENCH_NO_KEYS"


def keylog_of(path: Path | str, given: bool = False) -> Path | None:
    """The TLS key log written next to a capture (NAME.keys), if there is one
    and it is to be given (``given``: whether or not --no-keys is set)."""
    keys = Path(path).with_suffix(".keys")
    if not keys.is_file() or (os.environ.get(NO_KEYS) and not given):
        return None
    return keys


def read_worker(path: str) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    t0 = time.perf_counter()
    # wspcap imports lazily: load what read() uses (pandas, NumPy) before the
    # clock starts, or its first call would be timed with 0.5 s of imports.
    # (pandas by name: since analyze -o stopped needing it, importing
    # wspcap.api.reading no longer loads it.)
    import pandas  # noqa: F401

    import wspcap
    import wspcap.api.reading

    t1 = time.perf_counter()
    result = wspcap.read(path, keylog=keylog_of(path))
    frames = count_frames(result)  # part of the timing: a lazy result is consumed here
    t2 = time.perf_counter()
    return {"seconds": t2 - t1, "import_seconds": t1 - t0, "frames": frames,
            "type": type(result).__name__, "module": getattr(wspcap, "__file__", None)}


# ---------------------------------------------------------------------------
# Measuring a child.

@dataclass
class Run:
    seconds: float
    maxrss_mb: float
    returncode: int
    stderr: str
    timed_out: bool = False


# The measured command runs under this tiny wrapper, a fresh `python -S`
# process: it spawns the command, waits for it with os.wait4() and writes the
# child's wall time and its own ru_maxrss. Measuring straight from this
# process would be wrong: Linux carries the parent's peak RSS into a
# (v)forked child at exec, and RUSAGE_CHILDREN is a maximum over all children.
# The wrapper's ~8 MB is then the floor of any figure.
WRAPPER = r"""
import json, os, signal, sys, time
out, timeout, cmd = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
killed = []
t0 = time.perf_counter()
pid = os.posix_spawnp(cmd[0], cmd, os.environ)
def on_alarm(*_):
    killed.append(1)
    os.kill(pid, signal.SIGKILL)
signal.signal(signal.SIGALRM, on_alarm)
signal.setitimer(signal.ITIMER_REAL, timeout)
_, status, usage = os.wait4(pid, 0)
t1 = time.perf_counter()
signal.setitimer(signal.ITIMER_REAL, 0)
with open(out, "w") as f:
    json.dump({"seconds": t1 - t0, "maxrss": usage.ru_maxrss,
               "returncode": os.waitstatus_to_exitcode(status), "timed_out": bool(killed)}, f)
"""


def measure(cmd: list[str], *, timeout: float, stdout: Path | None = None,
            env: dict[str, str] | None = None) -> Run:
    """Run cmd; its wall time and its own peak RSS.

    The disk is synced first, for every tool alike: what the run before wrote
    and deleted (the CLI's hundreds of MB of Parquet) is otherwise written
    back and discarded during this run, which added up to 1 s to some bulk
    runs.
    """
    if hasattr(os, "sync"):
        os.sync()
    with tempfile.TemporaryDirectory(prefix="wspcap-bench-m-") as tmp:
        res = Path(tmp) / "rusage.json"
        err = Path(tmp) / "stderr"
        with open(err, "wb") as ef, (open(stdout, "wb") if stdout else
                                     open(os.devnull, "wb")) as of:
            try:
                subprocess.run([sys.executable, "-S", "-c", WRAPPER, str(res), str(timeout)]
                               + cmd, stdin=subprocess.DEVNULL, stdout=of, stderr=ef, env=env,
                               timeout=timeout + 60, check=False)
            except subprocess.TimeoutExpired:
                return Run(timeout, 0.0, -9, "wrapper timed out", True)
        stderr = err.read_text(errors="replace")
        if not res.exists():
            return Run(0.0, 0.0, 127, stderr or "could not start " + cmd[0])
        info = json.loads(res.read_text())
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    rss = info["maxrss"] / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return Run(info["seconds"], rss, info["returncode"], stderr, info["timed_out"])


# ---------------------------------------------------------------------------
# Results.

@dataclass
class Row:
    tool: str
    seconds: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    frames: int | None = None
    packets: int | None = None
    payload_bytes: int | None = None
    note: str = ""
    error: str | None = None  # "not available (...)" / "FAILED (...)"
    #: A fixed cost (no packets read): no rates.
    fixed: bool = False

    @property
    def best(self) -> float | None:
        return min(self.seconds) if self.seconds else None

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    @property
    def rss(self) -> float | None:
        return max(self.rss_mb) if self.rss_mb else None


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    return env


def run_bare(path: Path, repeat: int, timeout: float) -> Row:
    row = Row("bare pass")
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="wspcap-bench-") as tmp:
            out = Path(tmp) / "bare.json"
            r = measure([sys.executable, str(Path(__file__).resolve()), "--_bare", str(path)],
                        timeout=timeout, stdout=out)
            if r.timed_out or r.returncode != 0:
                row.error = (f"FAILED (timed out after {timeout:.0f}s)" if r.timed_out
                             else f"FAILED (exit {r.returncode}: {last_line(r.stderr)})")
                return row
            info = json.loads(out.read_text())
        row.seconds.append(r.seconds)
        row.rss_mb.append(r.maxrss_mb)
        row.packets = info["packets"]
        row.note = f"walk {info['seconds']:.3f}s in-process"
    return row


def parquet_summary(outdir: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    info: dict[str, Any] = {}
    for table in WSPCAP_TABLES:
        p = outdir / f"{table}.parquet"
        info[table] = pq.ParquetFile(p).metadata.num_rows if p.exists() else None
    frames = outdir / "frames.parquet"
    info["payload_bytes"] = None
    if frames.exists():
        names = pq.ParquetFile(frames).schema_arrow.names
        for col in ("payload_len", "payload_length"):
            if col in names:
                import pyarrow.compute as pc

                column = pq.read_table(frames, columns=[col]).column(col)
                info["payload_bytes"] = int(pc.sum(column).as_py() or 0)
                info["payload_column"] = col
                break
    return info


def run_wspcap_cli(path: Path, repeat: int, timeout: float,
                   name: str = "wspcap CLI") -> tuple[Row, dict[str, Any]]:
    row = Row(name)
    info: dict[str, Any] = {}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="wspcap-bench-") as tmp:
            outdir = Path(tmp) / "out"
            cmd = [sys.executable, "-m", "wspcap", "analyze", str(path), "-o", str(outdir),
                   "--format", "parquet"]
            keys = keylog_of(path)
            if keys is not None:
                cmd += ["--keylog", str(keys)]
            r = measure(cmd, timeout=timeout, env=child_env())
            if r.timed_out:
                row.error = f"FAILED (timed out after {timeout:.0f}s)"
                return row, info
            if r.returncode != 0:
                msg = last_line(r.stderr)
                missing = ("No module named" in r.stderr and "wspcap" in r.stderr) or \
                    "cannot be directly executed" in r.stderr
                row.error = (f"not available ({msg})" if missing
                             else f"FAILED (exit {r.returncode}: {msg})")
                return row, info
            row.seconds.append(r.seconds)
            row.rss_mb.append(r.maxrss_mb)
            try:
                info = parquet_summary(outdir)
            except Exception as exc:  # noqa: BLE001
                row.error = f"FAILED (reading its Parquet output: {exc!r})"
                return row, info
    row.frames = info.get("frames")
    row.payload_bytes = info.get("payload_bytes")
    parts = []
    for t in ("connections", "messages", "anomalies"):
        if info.get(t) is not None:
            parts.append(f"{info[t]:,} {t}")
    if info.get("frames") is None:
        parts.append("no frames.parquet")
    row.note = ", ".join(parts)
    return row, info


def empty_capture(folder: Path) -> Path:
    """A pcap file with no packet (its file header only)."""
    path = folder / "empty.pcap"
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    return path


def run_wspcap_start(repeat: int, timeout: float) -> Row:
    """The CLI's fixed cost: the same command on a capture with no packet
    (interpreter, imports, five empty tables written, the summary)."""
    with tempfile.TemporaryDirectory(prefix="wspcap-bench-") as tmp:
        row, _info = run_wspcap_cli(empty_capture(Path(tmp)), repeat, timeout,
                                    "wspcap CLI, no packets")
    row.fixed = True
    row.frames = None
    row.note = "the fixed cost: interpreter, imports, empty tables, summary"
    return row


def run_wspcap_read(path: Path, repeat: int, timeout: float) -> Row:
    row = Row("wspcap.read")
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="wspcap-bench-") as tmp:
            out = Path(tmp) / "read.json"
            r = measure([sys.executable, str(Path(__file__).resolve()), "--_read", str(path)],
                        timeout=timeout, stdout=out, env=child_env())
            if r.timed_out:
                row.error = f"FAILED (timed out after {timeout:.0f}s)"
                return row
            if r.returncode != 0:
                msg = last_line(r.stderr)
                missing = ("No module named 'wspcap'" in r.stderr
                           or "has no attribute 'read'" in r.stderr)
                row.error = (f"not available ({msg})" if missing
                             else f"FAILED (exit {r.returncode}: {msg})")
                return row
            info = json.loads(out.read_text())
        row.seconds.append(info["seconds"])
        row.rss_mb.append(r.maxrss_mb)
        row.frames = info["frames"]
        row.note = (f"in-process time; returns {info['type']}; "
                    f"process wall {r.seconds:.2f}s")
    return row


def parse_tshark(tsv: Path) -> dict[str, Any]:
    """One line per packet; several frames in a packet come comma-joined."""
    frames = masked = payload = lines = 0
    opcodes: Counter[str] = Counter()
    streams: set[str] = set()
    n_fields = len(TSHARK_FIELDS) + len(TSHARK_EXTRA)
    with open(tsv, encoding="utf-8", errors="replace") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) < n_fields:
                cols += [""] * (n_fields - len(cols))
            _, stream, fin, opcode, mask, plen, _, ext16, ext64 = cols[:n_fields]
            lines += 1
            if fin:
                frames += fin.count(",") + 1
            streams.add(stream)
            for op in opcode.split(","):
                if op:
                    opcodes[op] += 1
            masked += sum(1 for m in mask.split(",") if m in ("1", "True", "true"))
            payload += sum(int(x) for x in plen.split(",") if x and int(x) < 126)
            payload += sum(int(x) for x in ext16.split(",") if x)
            payload += sum(int(x) for x in ext64.split(",") if x)
    return {"frames": frames, "masked_frames": masked, "payload_bytes": payload,
            "lines": lines, "streams": len(streams - {""}), "opcodes": dict(opcodes)}


def run_tshark(path: Path, ports: list[int], repeat: int, timeout: float) -> tuple[Row, dict]:
    row = Row("tshark")
    info: dict[str, Any] = {}
    exe = shutil.which("tshark")
    if exe is None:
        row.error = "not available (tshark not found)"
        return row, info
    cmd = [exe, "-r", str(path)]
    keys = keylog_of(path)
    if keys is not None:  # wss://: decrypted with the same key log
        cmd += ["-o", f"tls.keylog_file:{keys}"]
    for port in ports:  # HTTP on a port tshark would not guess; the upgrade does the rest
        # (for wss://, TLS on that port: tshark finds the HTTP inside it)
        cmd += ["-d", f"tcp.port=={port},{'tls' if keylog_of(path, given=True) else 'http'}"]
    cmd += ["-Y", "websocket", "-T", "fields"]
    for name in TSHARK_FIELDS + TSHARK_EXTRA:
        cmd += ["-e", name]
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="wspcap-bench-") as tmp:
            tsv = Path(tmp) / "tshark.tsv"
            r = measure(cmd, timeout=timeout, stdout=tsv)
            if r.timed_out or r.returncode != 0:
                row.error = (f"FAILED (timed out after {timeout:.0f}s)" if r.timed_out
                             else f"FAILED (exit {r.returncode}: {last_line(r.stderr)})")
                return row, info
            info = parse_tshark(tsv)
        row.seconds.append(r.seconds)
        row.rss_mb.append(r.maxrss_mb)
    row.frames = info["frames"]
    row.payload_bytes = info["payload_bytes"]
    row.note = f"{info['lines']:,} lines, {info['streams']:,} streams"
    return row, info


# ---------------------------------------------------------------------------

def iter_packets(path: Path):  # type: ignore[no-untyped-def]
    """(linktype, packet bytes) for each packet of a pcap or pcapng file."""
    with open(path, "rb", buffering=1 << 20) as f:
        head = f.read(24)
        magic = head[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1",
                     b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            endian = "<" if magic[0] in (0xD4, 0x4D) else ">"
            linktype = struct.unpack(endian + "I", head[20:24])[0] & 0x0FFFFFFF
            rec = struct.Struct(endian + "IIII")
            while len(hdr := f.read(16)) == 16:
                yield linktype, f.read(rec.unpack(hdr)[2])
        elif magic == b"\x0a\x0d\x0d\x0a":
            f.seek(0)
            endian = "<"
            links: list[int] = []
            while len(bh := f.read(8)) == 8:
                btype = struct.unpack(endian + "I", bh[:4])[0]
                if btype == 0x0A0D0D0A:  # section header: byte order, interfaces reset
                    bom = f.read(4)
                    endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
                    blen = struct.unpack(endian + "I", bh[4:])[0]
                    f.read(blen - 12)
                    links = []
                    continue
                blen = struct.unpack(endian + "I", bh[4:])[0]
                body = f.read(blen - 8)
                if btype == 1:  # interface description
                    links.append(struct.unpack(endian + "H", body[:2])[0])
                elif btype == 6 and links:  # enhanced packet
                    iface, _, _, cap = struct.unpack(endian + "IIII", body[:16])[:4]
                    yield links[iface], body[20: 20 + cap]


def detect_ws_ports(path: Path, max_packets: int = 200_000) -> list[int]:
    """Server ports of WebSocket upgrade requests (for captures without truth)."""
    ports: set[int] = set()
    link_lens = {1: 14, 113: 16, 276: 20, 0: 4, 101: 0}
    for n, (linktype, pkt) in enumerate(iter_packets(path)):
        if n >= max_packets:
            break
        ip = link_lens.get(linktype)
        if ip is None or len(pkt) <= ip + 20:
            continue
        version = pkt[ip] >> 4
        if version == 4:
            if pkt[ip + 9] != 6:
                continue
            tcp = ip + (pkt[ip] & 0x0F) * 4
        elif version == 6:
            if pkt[ip + 6] != 6:
                continue
            tcp = ip + 40
        else:
            continue
        if tcp + 20 > len(pkt):
            continue
        payload = pkt[tcp + (pkt[tcp + 12] >> 4) * 4:]
        if payload.startswith(b"GET ") and b"websocket" in payload[:4096].lower():
            ports.add(struct.unpack("!H", pkt[tcp + 2: tcp + 4])[0])
    return sorted(ports)


def resolve_captures(args: argparse.Namespace) -> list[Path]:
    data = args.data
    wanted: list[Path] = []
    if args.captures:
        for item in args.captures:
            p = Path(item)
            if p.exists():
                wanted.append(p.resolve())
            elif item in STANDARD:
                wanted.append(data / f"{item}.pcap")
            elif (data / item).exists():
                wanted.append(data / item)
            else:
                raise SystemExit(f"no such capture: {item}")
    else:
        wanted = [data / f"{n}.pcap" for n in STANDARD]
        if data.exists():
            extra = sorted(p for p in data.iterdir()
                           if p.suffix in (".pcap", ".pcapng") and p not in wanted)
            wanted += extra
    missing = [p for p in wanted if not p.exists() and p.stem in STANDARD
               and p.parent == data]
    if missing:
        if args.no_generate:
            print("missing (not generated, --no-generate): "
                  + ", ".join(p.name for p in missing))
            wanted = [p for p in wanted if p not in missing]
        else:
            names = ",".join(p.stem for p in missing)
            print(f"making missing captures: {names}", flush=True)
            subprocess.run([sys.executable, str(MAKE), "--only", names, "--out", str(data)],
                           check=True, timeout=len(missing) * 900)
    return [p for p in wanted if p.exists()]


def warm_cache(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(8 << 20):
            pass


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_table(rows: list[Row], ref_frames: int | None, payload: int | None,
                repeat: int) -> None:
    head = ["tool", "best s" if repeat > 1 else "seconds"]
    if repeat > 1:
        head.append("median s")
    head += ["packets", "frames", "frames/s", "payload MB/s", "peak RSS MB", "note"]
    table = [head]
    for row in rows:
        if row.error:
            table.append([row.tool] + [""] * (len(head) - 2) + [row.error.split(" (")[0]])
            continue
        secs = row.best
        cells = [row.tool, fmt(secs, ".3f")]
        if repeat > 1:
            cells.append(fmt(row.median, ".3f"))
        frames_rate = (row.frames if row.frames is not None else ref_frames)
        rated = secs if not row.fixed else None
        cells += [
            fmt(row.packets, ",d"),
            fmt(row.frames, ",d"),
            fmt(frames_rate / rated if frames_rate is not None and rated else None, ",.0f"),
            fmt(payload / 1e6 / rated if payload is not None and rated else None, ",.1f"),
            fmt(row.rss, ",.1f"),
            row.note,
        ]
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(head) - 1)]
    for i, r in enumerate(table):
        line = "  ".join(c.rjust(w) if 0 < j else c.ljust(w)
                         for j, (c, w) in enumerate(zip(r[:-1], widths, strict=True)))
        print("  " + line + "  " + r[-1])
        if i == 0:
            print("  " + "-" * (sum(widths) + 2 * len(widths) + 4))


def check(label: str, got: int | None, want: int | None, problems: list[str]) -> str:
    if got is None or want is None:
        return f"{label}: -"
    if got == want:
        return f"{label}: {got:,} OK"
    problems.append(f"{label}: {got:,} != {want:,}")
    return f"{label}: MISMATCH {got:,} != {want:,} (diff {got - want:+,})"


def profile_read(path: Path) -> None:
    import cProfile
    import pstats

    sys.path.insert(0, str(REPO))
    try:
        import wspcap

        read = wspcap.read
    except Exception as exc:  # noqa: BLE001
        print(f"  profile: wspcap not available ({exc!r})")
        return
    prof = cProfile.Profile()
    prof.enable()
    result = read(str(path))
    count_frames(result)
    prof.disable()
    print(f"\n  cProfile of wspcap.read({path.name}), top 25 by tottime:")
    stats = pstats.Stats(prof, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(25)


def bench_one(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    truth_path = path.with_suffix(".json")
    truth = json.loads(truth_path.read_text()) if truth_path.exists() else None
    if truth and args.no_keys and keylog_of(path, given=True):
        # Without its keys, a wss:// capture's connections are there, its frames are not.
        truth["total"].update(frames=0, messages=0, wire_payload_bytes=0)
        truth["client"]["frames"] = 0
        print(f"\n(--no-keys: {path.name} is read without {path.with_suffix('.keys').name})")
    ports = [truth["port"]] if truth and truth.get("port") else detect_ws_ports(path)
    size = path.stat().st_size
    print(f"\n== {path.name}: {size / 1e6:,.1f} MB"
          + (f", truth: {truth['total']['frames']:,} frames, "
             f"{truth['total']['messages']:,} messages, {truth['connections']} connections, "
             f"{truth['total']['wire_payload_bytes'] / 1e6:,.1f} MB wire payload"
             if truth else ", no ground truth json")
          + (f", ws port(s) {ports}" if ports else ""), flush=True)
    warm_cache(path)

    tools = set(args.tools.split(","))
    rows: list[Row] = []
    wsinfo: dict[str, Any] = {}
    tsinfo: dict[str, Any] = {}
    if "bare" in tools:
        rows.append(run_bare(path, args.repeat, args.timeout))
    if "wspcap" in tools:
        row, wsinfo = run_wspcap_cli(path, args.repeat, args.timeout)
        rows.append(row)
        rows.append(run_wspcap_start(args.repeat, args.timeout))
    if "read" in tools:
        rows.append(run_wspcap_read(path, args.repeat, args.timeout))
    if "tshark" in tools:
        row, tsinfo = run_tshark(path, ports, args.repeat, args.timeout)
        rows.append(row)

    by = {r.tool: r for r in rows}
    tshark_row = by.get("tshark")
    cli_row = by.get("wspcap CLI")
    read_row = by.get("wspcap.read")
    ref_frames = truth["total"]["frames"] if truth else (
        tshark_row.frames if tshark_row and not tshark_row.error else None)
    payload = truth["total"]["wire_payload_bytes"] if truth else None
    if payload is None:
        for r in (cli_row, tshark_row):
            if r and not r.error and r.payload_bytes is not None:
                payload = r.payload_bytes
                break
    bare = by.get("bare pass")
    if bare and bare.frames is None and not bare.error:
        bare.note += "; frames/s uses the reference count"

    print_table(rows, ref_frames, payload, args.repeat)
    for r in rows:
        if r.error:
            name = "wspcap" if r.tool == "wspcap CLI" else r.tool
            print(f"  {name}: {r.error}")

    ratios = []
    for r in (cli_row, read_row):
        if tshark_row and r and not tshark_row.error and not r.error and r.best:
            ratio = tshark_row.best / r.best
            ratios.append((r.tool, ratio))
            print(f"  tshark / {r.tool} time: {ratio:.2f}x"
                  f" ({'wspcap faster' if ratio > 1 else 'tshark faster'})")
    start = by.get("wspcap CLI, no packets")
    if start and cli_row and not start.error and not cli_row.error and start.best \
            and cli_row.best:
        print(f"  wspcap CLI: {start.best:.2f} s before the first packet, "
              f"{cli_row.best - start.best:.2f} s reading and writing the capture")
        if tshark_row and not tshark_row.error and tshark_row.best:
            print(f"  5x tshark would be {tshark_row.best / 5:.2f} s for the CLI: "
                  f"{tshark_row.best / 5 - start.best:.2f} s after its fixed cost")
    if bare and not bare.error:
        for r in (cli_row, read_row, tshark_row):
            if r and not r.error and r.best and bare.best:
                print(f"  {r.tool} / bare pass time: {r.best / bare.best:.1f}x")

    problems: list[str] = []
    checks = []
    if truth:
        tt = truth["total"]
        if bare and not bare.error and truth["capture"].get("captured") is not None:
            checks.append(check("bare packets vs tcpdump", bare.packets,
                                truth["capture"]["captured"], problems))
        if tshark_row and not tshark_row.error:
            checks.append(check("tshark frames vs truth", tshark_row.frames, tt["frames"],
                                problems))
            checks.append(check("tshark client->server (masked) frames vs truth",
                                tsinfo.get("masked_frames"), truth["client"]["frames"],
                                problems))
            checks.append(check("tshark payload bytes vs truth", tshark_row.payload_bytes,
                                tt["wire_payload_bytes"], problems))
        if cli_row and not cli_row.error:
            checks.append(check("wspcap frames vs truth", cli_row.frames, tt["frames"],
                                problems))
            checks.append(check("wspcap payload bytes vs truth", cli_row.payload_bytes,
                                tt["wire_payload_bytes"], problems))
            checks.append(check("wspcap connections vs truth", wsinfo.get("connections"),
                                truth["connections"], problems))
            # wspcap's messages table counts each control frame as a one-frame
            # message; the truth's "messages" are data messages only.
            got = wsinfo.get("messages")
            if got is not None and got == tt["messages"]:
                checks.append(f"wspcap messages vs truth: {got:,} OK (data messages only)")
            else:
                checks.append(check("wspcap messages (data + control) vs truth", got,
                                    tt["messages"] + tt["control_frames"], problems))
        if read_row and not read_row.error:
            checks.append(check("wspcap.read frames vs truth", read_row.frames, tt["frames"],
                                problems))
    if cli_row and tshark_row and not cli_row.error and not tshark_row.error:
        checks.append(check("wspcap frames vs tshark", cli_row.frames, tshark_row.frames,
                            problems))
    if cli_row and not cli_row.error and wsinfo.get("anomalies"):
        checks.append(f"note: wspcap reported {wsinfo['anomalies']:,} anomalies "
                      f"on clean traffic")
    for line in checks:
        print("  " + line)
    if problems:
        print(f"  MISMATCH in {path.name}: " + "; ".join(problems))

    if args.profile:
        profile_read(path)

    return {
        "capture": path.name,
        "file_mb": round(size / 1e6, 2),
        "truth_frames": truth["total"]["frames"] if truth else None,
        "payload_bytes": payload,
        "rows": [{"tool": r.tool, "best_s": r.best, "median_s": r.median,
                  "runs_s": r.seconds, "peak_rss_mb": r.rss, "frames": r.frames,
                  "packets": r.packets, "payload_bytes": r.payload_bytes,
                  "error": r.error, "note": r.note} for r in rows],
        "tshark_over": {tool: ratio for tool, ratio in ratios},
        "mismatches": problems,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_bare"]:
        print(json.dumps(bare_walk(argv[1])))
        return 0
    if argv[:1] == ["--_read"]:
        print(json.dumps(read_worker(argv[1])))
        return 0

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("captures", nargs="*",
                    help="capture files or standard names (chat, chat-deflate, bulk, "
                         "bulk-deflate); default: all of benchmarks/data")
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs [%(default)s]")
    ap.add_argument("--tools", default="bare,wspcap,read,tshark",
                    help="comma-separated subset of bare,wspcap,read,tshark [%(default)s]")
    ap.add_argument("--profile", action="store_true",
                    help="also run wspcap.read under cProfile and print the top 25 by tottime")
    ap.add_argument("--data", type=Path, default=DATA, help="capture directory [benchmarks/data]")
    ap.add_argument("--no-generate", action="store_true",
                    help="do not make missing standard captures")
    ap.add_argument("--timeout", type=float, default=900.0,
                    help="seconds allowed per tool run [%(default)s]")
    ap.add_argument("--json", type=Path, help="also write the results here as JSON")
    ap.add_argument("--no-keys", action="store_true",
                    help="read the TLS captures without their key logs (NAME.keys), "
                         "by wspcap and tshark alike")
    args = ap.parse_args(argv)
    if args.no_keys:
        os.environ[NO_KEYS] = "1"
    args.data = args.data.resolve()
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")

    captures = resolve_captures(args)
    if not captures:
        print("no captures to run")
        return 1
    tshark_version = ""
    if shutil.which("tshark"):
        out = subprocess.run(["tshark", "--version"], capture_output=True, text=True,
                             timeout=60, check=False).stdout
        tshark_version = ", " + (out.splitlines() or ["tshark ?"])[0]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
          f"repeat {args.repeat}{tshark_version}")
    # The CLI runs wspcap from this checkout. An installed package has its
    # bytecode compiled (pip does it); without it (a fresh checkout, or
    # PYTHONDONTWRITEBYTECODE set) every run would compile every module,
    # about 0.3 s here. Compile once, as an install would.
    compiled = compileall.compile_dir(REPO / "wspcap", quiet=1)
    print(f"wspcap bytecode compiled before timing: {'yes' if compiled else 'FAILED'}")
    # The optional compiled kernels (wspcap/*/_speedups.c): say whether these
    # figures have them (WSPCAP_NO_SPEEDUPS=1 times the pure-Python references).
    kernels = sorted({p.parent.name for p in (REPO / "wspcap").glob("*/_speedups*.so")})
    if os.environ.get("WSPCAP_NO_SPEEDUPS"):
        print("compiled kernels: off (WSPCAP_NO_SPEEDUPS)")
    else:
        print(f"compiled kernels: {', '.join(kernels) if kernels else 'not built'}")
    results = [bench_one(p, args) for p in captures]

    print("\n== summary (best seconds)")
    for res in results:
        cells = []
        for r in res["rows"]:
            cells.append(f"{r['tool']} " + (f"{r['best_s']:.2f}s" if r["best_s"] is not None
                                             else "n/a"))
        ratio = "; ".join(f"tshark/{k} {v:.2f}x" for k, v in res["tshark_over"].items())
        flag = "  MISMATCH" if res["mismatches"] else ""
        print(f"  {res['capture']:<20} " + ", ".join(cells) + (f"; {ratio}" if ratio else "")
              + flag)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if any(r["mismatches"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
