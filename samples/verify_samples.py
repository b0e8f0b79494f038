#!/usr/bin/env python3
"""Cross-check the sample captures against their truth files with tshark.

For every ``*.truth.json`` in the samples folder (or ``--dir``) this checks,
independently of wspcap:

* file format and link type (``capinfos``) match the truth;
* tcpdump reported no kernel drops and the file holds exactly the number of
  packets tcpdump said it captured;
* every connection has its TCP SYN, SYN/ACK and a FIN from both sides, the
  HTTP Upgrade request (GET with Upgrade: websocket) and the 101 response;
* tshark flags no lost/retransmitted/out-of-order TCP segments;
* the WebSocket frames tshark decodes, per connection and direction, have
  exactly the truth's (fin, rsv1, opcode, masked, payload length) sequence;
* the interleaving of both directions' frames matches ``wire_frames`` order;
* the close code/reason tshark decodes match the truth.

Exit status 0 if everything matches, 1 otherwise.  Needs tshark and capinfos
(Wireshark 4.0 was used).  Does not need root.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIMEOUT = 120


def tshark_fields(path: Path, display_filter: str, fields: list[str]) -> list[list[str]]:
    cmd = ["tshark", "-r", str(path), "-n", "-Y", display_filter, "-T", "fields",
           "-E", "occurrence=a", "-E", "aggregator=|"]
    for f in fields:
        cmd += ["-e", f]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, check=True)
    return [line.split("\t") for line in res.stdout.splitlines()]


def as_bool(v: str) -> bool:
    return v.strip().lower() in ("1", "true")


def split(v: str) -> list[str]:
    return [x for x in v.split("|")] if v != "" else []


def check_file(truth_path: Path) -> list[str]:
    truth = json.loads(truth_path.read_text(encoding="utf-8"))
    cap = truth_path.parent / truth["file"]
    errs: list[str] = []
    if not cap.exists():
        return [f"missing capture {cap.name}"]

    # -- format / link type / packet count ---------------------------------
    res = subprocess.run(["capinfos", "-t", "-E", "-c", "-M", str(cap)], capture_output=True,
                         text=True, timeout=TIMEOUT, check=True)
    info = {}
    for line in res.stdout.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            info[k.strip()] = v.strip()
    ftype = info.get("File type", "")
    if ("pcapng" in ftype.lower()) != (truth["format"] == "pcapng") or "pcap" not in ftype.lower():
        errs.append(f"file type {ftype!r}, truth says {truth['format']}")
    encap = info.get("File encapsulation", "")
    want_encap = {"EN10MB": "ether", "LINUX_SLL": "linux-sll", "LINUX_SLL2": "linux-sll2"}.get(
        truth["linktype_name"], truth["linktype_name"])
    if want_encap not in encap.lower():
        errs.append(f"encapsulation {encap!r}, truth says {truth['linktype_name']}")
    npk = int(info.get("Number of packets", "-1").split()[0])
    capstats = truth["capture"]
    if capstats.get("packets_dropped_by_kernel") != 0:
        errs.append(f"tcpdump reported drops: {capstats.get('packets_dropped_by_kernel')}")
    if capstats.get("packets_captured") != npk:
        errs.append(f"file has {npk} packets, tcpdump captured {capstats.get('packets_captured')}")

    sport = truth["server"]["port"]
    conns = {c["client"]["port"]: c for c in truth["connections"]}

    # -- TCP sanity --------------------------------------------------------
    bad = tshark_fields(cap, "tcp.analysis.lost_segment or tcp.analysis.ack_lost_segment or "
                        "tcp.analysis.retransmission or tcp.analysis.out_of_order or "
                        "tcp.analysis.duplicate_ack", ["frame.number"])
    if bad:
        errs.append(f"tshark TCP analysis flags on frames {[r[0] for r in bad]}")
    rows = tshark_fields(cap, "tcp.flags.syn==1 or tcp.flags.fin==1",
                         ["tcp.srcport", "tcp.dstport", "tcp.flags.syn", "tcp.flags.ack", "tcp.flags.fin"])
    seen = defaultdict(set)
    for src, dst, syn, ackf, fin in rows:
        src, dst = int(src), int(dst)
        cport = dst if src == sport else src
        if as_bool(syn):
            seen[cport].add("synack" if as_bool(ackf) else "syn")
        if as_bool(fin):
            seen[cport].add("fin_s" if src == sport else "fin_c")
    for cport, c in conns.items():
        missing = {"syn", "synack", "fin_c", "fin_s"} - seen[cport]
        if missing:
            errs.append(f"conn {c['id']} ({cport}): missing TCP {sorted(missing)}")

    # -- HTTP handshake ----------------------------------------------------
    rows = tshark_fields(cap, "http.request or http.response",
                         ["tcp.srcport", "tcp.dstport", "http.request.method", "http.request.uri",
                          "http.upgrade", "http.response.code"])
    hs = defaultdict(dict)
    for src, dst, method, uri, upgrade, code in rows:
        src, dst = int(src), int(dst)
        if src == sport:
            hs[dst]["code"] = code
        else:
            hs[src]["req"] = (method, uri, upgrade.lower())
    for cport, c in conns.items():
        h = hs.get(cport, {})
        want_req = ("GET", c["handshake"]["path"], "websocket")
        if h.get("req") != want_req:
            errs.append(f"conn {c['id']}: upgrade request {h.get('req')} != {want_req}")
        if h.get("code") != "101":
            errs.append(f"conn {c['id']}: response code {h.get('code')} != 101")

    # -- WebSocket frames --------------------------------------------------
    rows = tshark_fields(cap, "websocket", [
        "frame.number", "tcp.srcport", "tcp.dstport", "websocket.fin", "websocket.rsv",
        "websocket.opcode", "websocket.mask", "websocket.payload_length",
        "websocket.payload_length_ext_16", "websocket.payload_length_ext_64",
        "websocket.payload.close.status_code", "websocket.payload.close.reason"])
    got: dict[tuple[int, str], list[tuple]] = defaultdict(list)
    interleaved: dict[int, list[tuple[str, int]]] = defaultdict(list)
    got_close: dict[tuple[int, str], list[tuple]] = defaultdict(list)
    for (fno, src, dst, fin, rsv, op, mask, plen, e16, e64, ccode, creason) in rows:
        src, dst = int(src), int(dst)
        d = "s2c" if src == sport else "c2s"
        cport = dst if d == "s2c" else src
        fins, rsvs, ops, masks, plens = map(split, (fin, rsv, op, mask, plen))
        e16s, e64s = split(e16), split(e64)
        if not (len(fins) == len(rsvs) == len(ops) == len(masks) == len(plens)):
            errs.append(f"frame {fno}: cannot align multi-frame fields")
            continue
        for i in range(len(ops)):
            n = int(plens[i])
            if n == 126:
                n = int(e16s.pop(0))
            elif n == 127:
                n = int(e64s.pop(0))
            got[(cport, d)].append((as_bool(fins[i]), bool(int(rsvs[i], 16) & 0x4),
                                    int(ops[i]), as_bool(masks[i]), n))
            interleaved[cport].append((d, int(ops[i])))
        if ccode:
            reasons = split(creason)
            for j, code in enumerate(split(ccode)):
                got_close[(cport, d)].append((int(code), reasons[j] if j < len(reasons) else ""))

    summary = []
    for cport, c in conns.items():
        want_order = [(f["direction"], f["opcode"]) for f in c["wire_frames"]]
        if interleaved.get(cport, []) != want_order:
            errs.append(f"conn {c['id']}: order of frames across directions differs from wire_frames")
        for d in ("c2s", "s2c"):
            want = [(f["fin"], f["rsv1"], f["opcode"], f["masked"], f["payload_length"])
                    for f in c["wire_frames"] if f["direction"] == d]
            have = got.get((cport, d), [])
            if want != have:
                errs.append(f"conn {c['id']} {d}: tshark frames differ from truth\n"
                            f"    truth : {want}\n    tshark: {have}")
            cl = c["close"][d]
            want_close = [(cl["code"], cl["reason"])] if cl else []
            if got_close.get((cport, d), []) != want_close:
                errs.append(f"conn {c['id']} {d}: close {got_close.get((cport, d))} != {want_close}")
            summary.append(f"conn{c['id']}.{d}={len(have)}/{len(want)}")
    print(f"{truth['file']}: {npk} packets, {truth['format']}/{truth['linktype_name']}, "
          f"frames tshark/truth: {' '.join(summary)}")
    return errs


def main() -> int:
    ap = argparse.ArgumentParser(description="Check sample captures against truth with tshark.")
    ap.add_argument("--dir", type=Path, default=HERE, help="folder with captures and truth files")
    args = ap.parse_args()
    truths = sorted(args.dir.glob("*.truth.json"))
    if not truths:
        print("no truth files found", file=sys.stderr)
        return 1
    failed = False
    for t in truths:
        errs = check_file(t)
        for e in errs:
            print(f"  MISMATCH {t.name}: {e}")
        failed |= bool(errs)
    print("FAILED" if failed else "all captures match their truth files")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
