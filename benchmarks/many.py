#!/usr/bin/env python3
"""Many captures at once: one process against a local Dask cluster, by work size.

``wspcap analyze FILE...`` (several inputs) reads them in this process when
the work is small and starts a local cluster of worker processes when that
pays (:func:`wspcap.api.many.choose_scheduler`, threshold
:func:`wspcap.api.many.cluster_min_bytes`). This script shows where that crossover lies on this
machine: for N files of size S it times, each in its own child process, as a
user runs it,

  in-process     python -m wspcap analyze FILES -q --scheduler sync
  cluster        python -m wspcap analyze FILES -q --workers W   (W: one per core)
  auto           python -m wspcap analyze FILES -q               (what wspcap chooses)

and prints the best of ``--repeat`` runs of each (wall time, and the CPU time
of every process of the run, which a busy machine disturbs less), with which
path auto took.

The files are made here, without root: copies of the repository's Ethernet
samples (real loopback traffic), each copy's client ports renumbered and its
timestamps shifted so that every copy is a connection of its own, up to S
bytes per file. Checksums are not recomputed (wspcap does not check them).
"""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
#: Real captures with an Ethernet link layer, IPv4 and IPv6.
SOURCES = ("deflate.pcap", "fragmented.pcap", "deflate-no-context.pcap", "ipv6.pcap",
           "plain.pcap")
PCAP_HEADER = struct.Struct("<IHHiIII")
RECORD = struct.Struct("<IIII")
ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD

# The grid: files x size (bytes) of each.
DEFAULT_COUNTS = (4, 20)
DEFAULT_SIZES = (16 << 10, 256 << 10, 2 << 20, 8 << 20)


def _records(path: Path) -> list[tuple[int, bytes]]:
    """(timestamp in us, packet bytes) of a little-endian microsecond pcap."""
    data = path.read_bytes()
    magic, *_rest, linktype = PCAP_HEADER.unpack_from(data)
    assert magic == 0xA1B2C3D4 and linktype == 1, path
    out, pos = [], PCAP_HEADER.size
    while pos + RECORD.size <= len(data):
        sec, usec, caplen, _ = RECORD.unpack_from(data, pos)
        pos += RECORD.size
        out.append((sec * 1_000_000 + usec, data[pos:pos + caplen]))
        pos += caplen
    return out


def _tcp_offset(packet: bytes) -> int | None:
    """Where the TCP header starts in an Ethernet frame (None if not TCP)."""
    ethertype = struct.unpack_from("!H", packet, 12)[0]
    if ethertype == ETH_IPV4 and packet[23] == 6:
        return 14 + (packet[14] & 0x0F) * 4
    if ethertype == ETH_IPV6 and packet[20] == 6:
        return 14 + 40
    return None


def make_file(path: Path, size: int, first_port: int) -> int:
    """Write copies of the samples into ``path`` until ``size`` bytes; returns the
    number of connections written."""
    samples = [_records(REPO / "samples" / name) for name in SOURCES]
    out = bytearray(PCAP_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
    t = 1_700_000_000 * 1_000_000
    port = first_port
    conns = 0
    while len(out) < size:
        for records in samples:
            clients = {}  # original client port -> new one
            base = records[0][0]
            for ts, packet in records:
                off = _tcp_offset(packet)
                pkt = bytearray(packet)
                if off is not None:
                    sport, dport = struct.unpack_from("!HH", pkt, off)
                    flags = pkt[off + 13]
                    if flags & 0x12 == 0x02:  # SYN without ACK: the client's port
                        clients[sport] = 1024 + port % 64000
                        port += 1
                    if sport in clients:
                        struct.pack_into("!H", pkt, off, clients[sport])
                    elif dport in clients:
                        struct.pack_into("!H", pkt, off + 2, clients[dport])
                stamp = t + ts - base
                out += RECORD.pack(stamp // 1_000_000, stamp % 1_000_000, len(pkt), len(pkt))
                out += pkt
            conns += len(clients)
            t += records[-1][0] - base + 1000
            if len(out) >= size:
                break
    path.write_bytes(bytes(out))
    return conns


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system, the worker processes included:
    each is waited for by its parent) of one ``wspcap`` run."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "wspcap", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"wspcap {' '.join(args[:3])}... failed: {err.decode()}")
    return elapsed, usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", type=int, nargs="+", default=DEFAULT_COUNTS, metavar="N",
                    help="numbers of files [%(default)s]")
    ap.add_argument("--sizes", type=float, nargs="+", metavar="MB",
                    default=[s / (1 << 20) for s in DEFAULT_SIZES],
                    help="size of each file in MiB [%(default)s]")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each, best kept")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="workers of the local cluster [one per core: %(default)s]")
    args = ap.parse_args(argv)

    from wspcap.api.many import SYNC, choose_scheduler, cluster_min_bytes

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    print(f"{os.cpu_count()} cores; cluster of {args.workers} workers; "
          f"auto threshold {cluster_min_bytes(os.cpu_count() or 1) / (1 << 20):.0f} MiB; "
          f"best of {args.repeat}")
    print("wall time (CPU time of every process) of the best run of each")
    print(f"{'files':>5} {'each':>9} {'total':>10} {'in-process':>15} {'cluster':>15} "
          f"{'auto':>15}  auto took")
    with tempfile.TemporaryDirectory(prefix="wspcap-many-") as tmp:
        for size_mb in args.sizes:
            size = int(size_mb * (1 << 20))
            one = Path(tmp) / "one.pcap"
            make_file(one, size, 0)
            for count in args.counts:
                files = []
                for i in range(count):
                    path = Path(tmp) / f"cap-{size}-{i:04d}.pcap"
                    if not path.exists():
                        path.write_bytes(one.read_bytes())
                    files.append(str(path))
                total = sum(os.path.getsize(f) for f in files)
                chosen = choose_scheduler(files, None, None)
                runs: dict[str, list[tuple[float, float]]] = {"sync": [], "cluster": [],
                                                               "auto": []}
                for _ in range(args.repeat):
                    runs["sync"].append(timed([*["analyze", *files], "-q", "--scheduler",
                                               SYNC], env))
                    runs["cluster"].append(timed([*["analyze", *files], "-q", "--workers",
                                                  str(args.workers)], env))
                    runs["auto"].append(timed([*["analyze", *files], "-q"], env))
                best = {k: min(v) for k, v in runs.items()}
                print(f"{count:>5} {_mib(total // count):>9} {_mib(total):>10} "
                      + " ".join(f"{best[k][0]:>6.2f}s ({best[k][1]:5.1f})"
                                 for k in ("sync", "cluster", "auto"))
                      + f"  {'in-process' if chosen == SYNC else 'cluster'}", flush=True)
    return 0


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.2f} MiB"


if __name__ == "__main__":
    sys.exit(main())
