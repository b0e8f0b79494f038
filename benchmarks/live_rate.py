#!/usr/bin/env python3
"""How many WebSocket frames per second the live path keeps up with on loopback.

Not a test: a measurement. Needs root (or CAP_NET_RAW) and Linux.

A sender process (this script with ``--_send``) opens a real WebSocket
connection over 127.0.0.1 (HTTP upgrade with a valid key and accept), then the
client sends masked text frames of ``--size`` payload bytes, one frame per TCP
segment (TCP_NODELAY, one ``send`` per frame), paced to a target rate; the
server side reads and discards. Meanwhile this process runs the live path
exactly as ``wspcap live -q`` does: :class:`wspcap.sources.live.LiveSource`
on ``lo`` with a port filter, feeding :class:`wspcap.api.live.Monitor` (events
made and dropped by the caller).

For each rate in ``--rates`` it prints: the rate offered, the rate the sender
really reached, the frames wspcap decoded, the packets it read (and per
second of sending: at high rates TCP puts several frames in one segment), how
long after the sender stopped wspcap was still catching up (``lag``: the
kernel buffer absorbed what it could not follow in real time) and the
kernel's drop count (``PACKET_STATISTICS``). The highest rate with zero drops
and every frame decoded is the figure to quote.

    sudo python3 benchmarks/live_rate.py
    sudo python3 benchmarks/live_rate.py --rates 5000,20000,80000 --seconds 3 --size 64
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# -- the sender (its own process, so it never competes with the sniffer for the GIL) --

def _serve(listener: socket.socket) -> None:
    conn, _ = listener.accept()
    head = b""
    while b"\r\n\r\n" not in head:
        head += conn.recv(4096)
    key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
               if line.lower().startswith(b"sec-websocket-key:"))
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    while conn.recv(1 << 20):
        pass
    conn.close()


def _frame(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    head = bytes([0x81, 0x80 | n]) if n < 126 else bytes([0x81, 0xFE]) + struct.pack("!H", n)
    masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
    return head + mask + masked


def send(port: int, rate: int, seconds: float, size: int) -> None:
    """Sender process: upgrade, then ``rate`` frames/s for ``seconds``; prints what it sent."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1)
    server = threading.Thread(target=_serve, args=(listener,), daemon=True)
    server.start()
    client = socket.create_connection(("127.0.0.1", port))
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16))
    client.sendall(b"GET /bench HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                   b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
                   b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += client.recv(4096)
    frame = _frame(b"x" * size, os.urandom(4))
    sendall = client.sendall
    sent = 0
    start = time.perf_counter()
    end = start + seconds
    tick = 0.001  # pace in 1 ms slices
    per_tick = rate * tick
    due = 0.0
    now = start
    while now < end:
        due += per_tick
        while sent < due:
            sendall(frame)
            sent += 1
        now = time.perf_counter()
        ahead = start + (sent / rate) - now
        if ahead > 0:
            time.sleep(ahead)
            now = time.perf_counter()
    took = time.perf_counter() - start
    client.sendall(b"\x88\x82" + b"\0\0\0\0" + struct.pack("!H", 1000))
    client.shutdown(socket.SHUT_WR)
    server.join(5)
    client.close()
    print(f"{sent} {took:.6f}", flush=True)


# -- the measurement ----------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(rate: int, seconds: float, size: int, buffer_size: int) -> dict[str, float]:
    """One run at ``rate`` frames/s; the figures of the live path."""
    from wspcap.api.live import Monitor
    from wspcap.sources.live import LiveSource

    port = _free_port()
    source = LiveSource("lo", f"tcp port {port}", buffer_size=buffer_size)
    monitor = Monitor()
    receive = monitor.receive_packet
    recv = source.recv
    sender = subprocess.Popen([sys.executable, __file__, "--_send", str(port), str(rate),
                               str(seconds), str(size)], stdout=subprocess.PIPE, text=True)
    packets = 0
    start = time.perf_counter()
    idle_since = None
    deadline = start + seconds + 30
    while time.perf_counter() < deadline:
        record = recv(0.2)
        if record is None:
            if sender.poll() is not None:
                if idle_since is None:
                    idle_since = time.perf_counter()
                elif time.perf_counter() - idle_since > 0.5:
                    break
            continue
        idle_since = None
        packets += 1
        receive(packets, record.ts_ns, record.linktype, record.data)
    done = time.perf_counter() - (0.5 if idle_since is not None else 0.0)
    out, _ = sender.communicate(timeout=30)
    monitor.finish()
    received, dropped = source.stats()
    source.close()
    sent_frames, took = out.split()
    return {"rate": rate, "sent": int(sent_frames), "achieved": int(sent_frames) / float(took),
            "frames": monitor.frames, "packets": packets, "kernel_received": received,
            "dropped": dropped, "pps": packets / float(took),
            "lag": max(0.0, done - start - float(took))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="2000,5000,10000,20000,30000,40000,60000,80000",
                        help="frames per second to try, comma-separated")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per rate")
    parser.add_argument("--size", type=int, default=100, help="payload bytes per frame")
    parser.add_argument("--buffer", type=int, default=32 << 20,
                        help="kernel socket buffer in bytes (default: 32 MiB)")
    parser.add_argument("--_send", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._send:
        port, rate, seconds, size = args._send
        send(int(port), int(rate), float(seconds), int(size))
        return 0
    if os.geteuid() != 0:
        print("live_rate.py: needs root (or CAP_NET_RAW) to capture", file=sys.stderr)
        return 2
    print(f"live path on lo: {args.size}-byte masked text frames, one per segment, "
          f"{args.seconds:g} s per rate, socket buffer {args.buffer >> 20} MiB, "
          f"{os.cpu_count()} CPUs")
    print(f"{'offered/s':>10} {'sent/s':>10} {'sent':>8} {'decoded':>8} {'packets':>8} "
          f"{'pkts/s':>8} {'lag s':>6} {'drops':>7}  verdict")
    best = 0.0
    for rate in (int(r) for r in args.rates.split(",")):
        r = measure(rate, args.seconds, args.size, args.buffer)
        ok = r["dropped"] == 0 and r["frames"] == r["sent"] + 1  # + the close frame
        if ok:
            best = max(best, r["achieved"])
        print(f"{rate:>10} {r['achieved']:>10.0f} {r['sent']:>8} {r['frames']:>8} "
              f"{r['packets']:>8} {r['pps']:>8.0f} {r['lag']:>6.2f} {r['dropped']:>7}  "
              f"{'kept up' if ok else 'DROPS'}",
              flush=True)
    print(f"highest rate kept up with (no kernel drops, every frame decoded): "
          f"{best:.0f} frames/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
