#!/usr/bin/env python3
"""The floor of reading wss: ``cryptography`` alone opening the capture's records.

Issue 17 asks that the chat traffic over TLS 1.3 read within 1.3x of the
same traffic over ws, and faster than tshark decrypting it by the ratio the
ws path has. What decryption must cost at the least is one AEAD call per
record: this script takes every application data record that ``wspcap.read``
opens in a TLS capture (their nonces, additional data and fragments,
gathered before the clock) and times ``cryptography`` alone opening them,
in the cheapest loop Python has (``map`` over the prepared arguments), then
times ``wspcap.read`` on the capture and on its ws twin, in the same
process, alternating. The difference between the two reads, less the
floor, is what wspcap's TLS layer costs beyond the AEAD.

Usage::

    python benchmarks/tls_floor.py                       # chat-tls against chat
    python benchmarks/tls_floor.py bulk-tls bulk --repeat 5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def records(path: Path, keys: Path) -> list[tuple[Any, list[bytes], list[bytes], list[bytes]]]:
    """Each run's ``(decrypt, nonces, fragments, headers)`` as ``wspcap.read``
    opened them (records opened one by one are not counted)."""
    from wspcap.tls import protection

    runs: list[tuple[Any, list[bytes], list[bytes], list[bytes]]] = []
    kernel = protection._open_runs

    def gather(todo: list[Any], starts: Any, stops: Any, refused: type[BaseException]
               ) -> tuple[bytes, Any]:
        plain, lengths = kernel(todo, starts, stops, refused)
        x, z, n, at = starts.tolist(), stops.tolist(), lengths.tolist(), 0
        for decrypt, iv, seq, src, count in todo:
            opened = [i for i in range(at, at + count) if n[i] >= 0]
            base = int.from_bytes(iv, "big")
            runs.append((decrypt, [(base ^ (seq + i - at)).to_bytes(12, "big") for i in opened],
                         [src[x[i] + 5:z[i]] for i in opened], [src[x[i]:x[i] + 5] for i in opened]))
            at += count
        return plain, lengths

    protection._open_runs = gather
    try:
        import wspcap
        wspcap.read(path, keylog=keys)
    finally:
        protection._open_runs = kernel
    return runs


def floor(runs: list[tuple[Any, list[bytes], list[bytes], list[bytes]]]) -> float:
    start = time.perf_counter()
    for decrypt, nonces, fragments, headers in runs:
        list(map(decrypt, nonces, fragments, headers))
    return time.perf_counter() - start


def read(path: Path, keys: Path | None) -> float:
    import wspcap

    start = time.perf_counter()
    capture = wspcap.read(path, keylog=keys)
    capture.frames, capture.messages  # noqa: B018 (a lazy result is consumed)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tls", nargs="?", default="chat-tls", help="the TLS capture [%(default)s]")
    ap.add_argument("ws", nargs="?", default="chat", help="its ws twin [%(default)s]")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each, best kept [%(default)s]")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE.parent))
    tls = HERE / "data" / f"{args.tls}.pcap"
    ws = HERE / "data" / f"{args.ws}.pcap"
    keys = tls.with_suffix(".keys")
    for p in (tls, ws, keys):
        if not p.is_file():
            ap.error(f"{p} is missing: make it with benchmarks/make_captures.py")
    from wspcap.constants import SPEEDUPS

    runs = records(tls, keys)
    n = sum(len(r[1]) for r in runs)
    best_floor = min(floor(runs) for _ in range(args.repeat))
    best_ws = best_tls = float("inf")
    for _ in range(args.repeat):
        best_ws = min(best_ws, read(ws, None))
        best_tls = min(best_tls, read(tls, keys))
    extra = best_tls - best_ws
    print(f"{tls.name}: {n:,} records opened in runs (kernels {'on' if SPEEDUPS else 'off'})")
    print(f"  AEAD alone (map over prepared arguments)  {best_floor:7.3f} s "
          f"({best_floor / n * 1e6:.2f} us a record)")
    print(f"  wspcap.read {ws.name:<28} {best_ws:7.3f} s")
    print(f"  wspcap.read {tls.name:<28} {best_tls:7.3f} s  ({best_tls / best_ws:.2f}x)")
    print(f"  TLS beyond ws                             {extra:7.3f} s, of which the AEAD "
          f"floor {best_floor / extra:.0%}" if extra > 0 else "")
    print(f"  ratio at the floor (ws + AEAD alone)      {(best_ws + best_floor) / best_ws:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
