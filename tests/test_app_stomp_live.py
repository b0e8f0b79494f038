"""STOMP on real traffic: a RabbitMQ broker and the @stomp/stompjs client on loopback.

The test starts a private RabbitMQ node of its own (Debian's
``rabbitmq-server``: own node name, own epmd on its own port, database, logs,
plugins file and config in the test's temporary folder, every listener on
127.0.0.1) with the ``rabbitmq_web_stomp`` plugin, which serves STOMP over
WebSocket on ``/ws``. tcpdump records the plugin's port while
``tests/node/stomp_client.js`` (@stomp/stompjs over Node's ``ws``) has a
conversation: CONNECT with login and passcode, SUBSCRIBE (client-individual
acks, a receipt), three SENDs (one with headers and a JSON body, one with a
receipt), the three MESSAGEs back, each ACKed, a quiet spell of heart-beats,
UNSUBSCRIBE, DISCONNECT; once as RabbitMQ comes (permessage-deflate, text
frames), once without compression and with binary frames from the broker (RabbitMQ 3.10 answers it by closing the WebSocket,
1000 "STOMP died", without the RECEIPT stompjs asked for). The client logs every WebSocket message it sent and
received, raw, and each frame as stompjs parsed it: the truth the capture's
``app`` table is held to, event by event, with the credentials finding.

Needs root and tcpdump (capture), Node.js with the packages of
``tests/node/package.json`` and RabbitMQ (``.ci/run`` installs them); skipped
with the reason otherwise. ``WSPCAP_RABBITMQ`` may name the broker's start
script (Debian's ``/usr/sbin/rabbitmq-server`` switches to the ``rabbitmq``
user, so the test runs the script that one wraps).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from golden.live import NODE_DIR, listening, node_peer, stop_group

import wspcap
from wspcap.app.runner import PAIRING

ROOT = Path(__file__).resolve().parent.parent
STEP = 20.0  # seconds for any one step (a conversation, a stop)
BOOT = 60.0  # seconds for the broker to listen (about 6 s here)
#: Debian's package puts the unwrapped start script here.
RABBITMQ_SCRIPT = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
LOGIN, PASSCODE = "wspcap", "not-a-secret"
DESTINATION = "/queue/wspcap"
SENDS: list[dict[str, Any]] = [
    {"headers": {}, "body": "hello 1"},
    # over 1 KiB: the size from which Node's ws compresses (permessage-deflate)
    {"headers": {"content-type": "application/json", "x-trace": "t-1"},
     "body": json.dumps({"pair": "EUR/USD", "note": "héllo ✓",
                         "prices": [round(1.25 + i / 1000, 4) for i in range(150)]})},
    {"headers": {"receipt": "receipt-send-3"}, "body": "hello 3"},
]
PLAN = {
    "login": LOGIN, "passcode": PASSCODE, "host": "/", "destination": DESTINATION,
    "heartbeat_ms": 200,  # RabbitMQ answers 1000,1000: one heart-beat a second each way
    "idle_ms": 2500,
    "timeout_ms": int(STEP * 1000),
    "sends": SENDS,
}

pytestmark = pytest.mark.network


def _rabbitmq() -> Path | None:
    named = os.environ.get("WSPCAP_RABBITMQ")
    if named is not None:
        return Path(named) if Path(named).is_file() else None
    return RABBITMQ_SCRIPT if RABBITMQ_SCRIPT.is_file() else None


class Broker:
    """A RabbitMQ node in ``base``, with its own epmd, started and stopped by this test only."""

    def __init__(self, script: Path, base: Path, ports: dict[str, int], deflate: bool) -> None:
        self.base, self.ports = base, ports
        for sub in ("home", "mnesia", "log"):
            (base / sub).mkdir(parents=True)
        config = base / "rabbitmq.conf"
        config.write_text("\n".join([
            f"listeners.tcp.default = 127.0.0.1:{ports['amqp']}",
            f"stomp.listeners.tcp.1 = 127.0.0.1:{ports['stomp']}",
            f"web_stomp.tcp.port = {ports['web_stomp']}",
            "web_stomp.tcp.ip = 127.0.0.1",
            f"default_user = {LOGIN}",
            f"default_pass = {PASSCODE}",
            # RabbitMQ accepts permessage-deflate by default; or, without it, binary
            # frames rather than text
            *([] if deflate else ["web_stomp.ws_opts.compress = false",
                                  "web_stomp.ws_frame = binary"]),
            "",
        ]))
        (base / "enabled_plugins").write_text("[rabbitmq_web_stomp].\n")
        env = {**os.environ,
               "HOME": str(base / "home"),  # the node's own Erlang cookie
               "RABBITMQ_NODENAME": f"wspcap{ports['web_stomp']}@localhost",
               "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
               "RABBITMQ_LOG_BASE": str(base / "log"),
               "RABBITMQ_LOGS": "-",
               "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
               "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
               "RABBITMQ_CONFIG_FILE": str(config),
               "RABBITMQ_DIST_PORT": str(ports["dist"]),
               "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
               "ERL_EPMD_PORT": str(ports["epmd"]),
               "ERL_EPMD_ADDRESS": "127.0.0.1"}
        self.log = open(base / "broker.log", "wb")  # noqa: SIM115  (closed by stop())
        epmd = shutil.which("epmd") or "epmd"
        self.epmd = subprocess.Popen([epmd, "-port", str(ports["epmd"]), "-address", "127.0.0.1"],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            self.proc = subprocess.Popen([str(script)], stdin=subprocess.DEVNULL, stdout=self.log,
                                         stderr=subprocess.STDOUT, env=env, cwd=base,
                                         start_new_session=True)
        except BaseException:
            stop_group(self.epmd, STEP)
            self.log.close()
            raise

    def wait(self) -> None:
        deadline = time.monotonic() + BOOT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if listening(self.ports["web_stomp"]):
                return
            time.sleep(0.2)
        tail = (self.base / "broker.log").read_bytes()[-2000:].decode("utf-8", "replace")
        code = self.proc.poll()
        why = f"exited with {code}" if code is not None else f"did not listen within {BOOT:.0f} s"
        raise RuntimeError(f"RabbitMQ {why}: {tail}")

    def stop(self) -> None:
        try:
            stop_group(self.proc, STEP)
        finally:
            stop_group(self.epmd, STEP)
            self.log.close()


def _record(tmp_path: Path, deflate: bool) -> tuple[Path, dict[str, Any]]:
    node = node_peer("@stomp/stompjs")
    script = _rabbitmq()
    if script is None or shutil.which("epmd") is None:
        pytest.skip("RabbitMQ is not installed (Debian's rabbitmq-server, or WSPCAP_RABBITMQ)")
    sys.path.insert(0, str(ROOT / "samples"))
    from make_samples import Tcpdump, pick_port

    ports: dict[str, int] = {}
    for name in ("web_stomp", "amqp", "stomp", "dist", "epmd"):
        port = pick_port("127.0.0.1")
        while port in ports.values():
            port = pick_port("127.0.0.1")
        ports[name] = port
    broker = Broker(script, tmp_path / "rabbitmq", ports, deflate)
    try:
        broker.wait()
        pcap = tmp_path / "stomp.pcap"
        tcpdump = Tcpdump("lo", ports["web_stomp"], pcap)
        tcpdump.start()
        try:
            done = subprocess.run(
                [node, str(NODE_DIR / "stomp_client.js"),
                 f"ws://127.0.0.1:{ports['web_stomp']}/ws", json.dumps(PLAN)],
                capture_output=True, text=True, timeout=2 * STEP, check=False, cwd=NODE_DIR)
        finally:
            time.sleep(0.5)
            tcpdump.stop()
    finally:
        broker.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    return pcap, json.loads(done.stdout)


# -- a STOMP frame written back, for the comparison with the wire (tests only) --

#: STOMP 1.2 "Value Encoding", the other way round (not applied to CONNECT/CONNECTED).
ESCAPE = str.maketrans({"\\": "\\\\", "\r": "\\r", "\n": "\\n", ":": "\\c"})


def serialize(fields: dict[str, Any]) -> str:
    """The frame a decoded event's ``fields`` describe, NUL included."""
    command = fields["type"]
    escape = command not in ("CONNECT", "CONNECTED", "STOMP")
    lines = [command] + [f"{k.translate(ESCAPE)}:{v.translate(ESCAPE)}" if escape else f"{k}:{v}"
                         for k, v in fields["headers"]]
    body = fields.get("body", bytes.fromhex(fields.get("body_hex", "")).decode("latin-1"))
    return "\n".join(lines) + "\n\n" + str(body) + "\0"


def _events(cap: wspcap.Capture, direction: str) -> list[Any]:
    app = cap.app
    return list(app[app.direction == direction].itertuples())


def _none(value: Any) -> Any:
    return None if pd.isna(value) else value


@pytest.mark.parametrize("deflate", [True, False], ids=["deflate-text", "plain-binary"])
def test_rabbitmq_web_stomp_with_stompjs(tmp_path: Path, deflate: bool) -> None:
    """RabbitMQ as it comes (it accepts ws's permessage-deflate offer, sends text
    frames); or without compression, sending binary frames
    (``web_stomp.ws_opts.compress``, ``web_stomp.ws_frame``)."""
    pcap, truth = _record(tmp_path, deflate)
    cap = wspcap.read(pcap)
    (conn,) = cap.connections.itertuples()
    assert conn.established and conn.uri == "/ws" and conn.subprotocol == "v12.stomp"
    assert bool(conn.permessage_deflate) == deflate
    assert (conn.app_protocol, conn.app_confidence) == ("stomp", 1.0)
    app = cap.app
    assert len(app) and set(app.protocol.astype(str)) == {"stomp"}
    data = cap.messages[cap.messages.type.astype(str).isin(["text", "binary"])]
    # the frames' types, as each side sent them (ws sends stompjs' strings as text)
    assert set(data[data.direction == "c2s"].type.astype(str)) == {"text"}
    assert set(data[data.direction == "s2c"].type.astype(str)) == \
        {"text" if deflate else "binary"}
    assert [bool(w["binary"]) for w in truth["wire"] if w["direction"] == "s2c"] == \
        [not deflate] * int((data.direction == "s2c").sum())
    if deflate:  # compressed both ways: every broker frame, the client's over 1 KiB
        assert data[data.direction == "s2c"].compressed.all()
        assert data[data.direction == "c2s"].compressed.any()
    else:
        assert not data.compressed.any()

    # Every WebSocket message each side sent, in order: one event each, the frame
    # it carries written back from the decoded fields gives the message's text
    # (RabbitMQ ends its frames with an EOL after the NUL, 1.2's optional
    # heart-beat; a message of EOLs only is a heart-beat, the event a ping).
    for direction in ("c2s", "s2c"):
        wire = [w["text"] for w in truth["wire"] if w["direction"] == direction]
        events = _events(cap, direction)
        msgs = data[data.direction == direction].msg_index.tolist()
        assert [int(e.msg_index) for e in events] == msgs, direction
        assert len(events) == len(wire), direction
        for event, text in zip(events, wire, strict=True):
            fields = json.loads(event.fields)
            if event.kind == "ping":
                assert text.strip("\r\n") == "" and fields["type"] == "heart-beat"
                continue
            assert serialize(fields) == text.rstrip("\r\n"), (direction, text)
            assert event.part == 0
    # heart-beats went both ways during the quiet spell
    for direction in ("c2s", "s2c"):
        assert (app[app.direction == direction].kind == "ping").sum() >= 1, direction

    # What stompjs was asked to send, frame by frame, is what the client's rows say.
    frames = [e for e in _events(cap, "c2s") if e.kind != "ping"]
    assert [json.loads(e.fields)["type"] for e in frames] == [a["command"] for a in truth["asked"]]
    for event, asked in zip(frames, truth["asked"], strict=True):
        fields = json.loads(event.fields)
        headers = dict(fields["headers"])
        assert asked["headers"].items() <= headers.items(), asked
        assert fields.get("body") == asked.get("body"), asked
        want_channel = {"CONNECT": asked["headers"].get("host"),
                        "SEND": DESTINATION, "SUBSCRIBE": DESTINATION}.get(asked["command"])
        assert _none(event.channel) == want_channel, asked
        # the id: the receipt asked for, else the frame's own id (subscription, ack)
        assert _none(event.id) == headers.get("receipt", headers.get("id")), asked
    kinds = [e.kind for e in frames]
    assert kinds == ["connect", "subscribe", "publish", "publish", "publish", "ack", "ack", "ack",
                     "unsubscribe", "disconnect"]

    # What stompjs received, frame by frame as it parsed them, is what the server's rows say.
    replies = [e for e in _events(cap, "s2c") if e.kind != "ping"]
    assert [(json.loads(e.fields)["type"], dict(json.loads(e.fields)["headers"]),
             json.loads(e.fields).get("body", "")) for e in replies] == \
        [(g["command"], g["headers"], g["body"]) for g in truth["got"]]
    messages = [e for e in replies if e.kind == "message"]
    assert [(e.channel, e.id) for e in messages] == \
        [(DESTINATION, g["headers"]["message-id"]) for g in truth["got"]
         if g["command"] == "MESSAGE"]
    assert [json.loads(e.fields)["body"] for e in messages] == [s["body"] for s in SENDS]
    # each ACK names the message it acknowledges (client-individual: the ack header)
    assert [e.id for e in frames if e.kind == "ack"] == \
        [dict(json.loads(m.fields)["headers"])["ack"] for m in messages]
    # each RECEIPT's id is the receipt a client frame asked for, earlier
    receipts = [e for e in replies if e.kind == "receipt"]
    asked_for = {e.id: e for e in frames if "receipt" in dict(json.loads(e.fields)["headers"])}
    assert receipts and {e.id for e in receipts} <= set(asked_for)
    for r in receipts:
        assert r.ts > asked_for[r.id].ts
    if "stomp" in PAIRING:  # the table pairs them too
        assert [(int(r.request_msg), r.latency) for r in receipts] == \
            [(int(asked_for[r.id].msg_index), r.ts - asked_for[r.id].ts) for r in receipts]
    else:
        assert app.request_msg.isna().all() and app.latency.isna().all()

    # The passcode in clear, over ws://: one error, on the CONNECT; nothing else app_*.
    found = cap.anomalies[cap.anomalies.code.astype(str).str.startswith("app_")]
    assert found.code.astype(str).tolist() == ["app_credentials_plaintext"]
    assert (found.severity.astype(str) == "error").all()
    assert found.direction.astype(str).tolist() == ["c2s"]
    assert f"login {LOGIN}" in found.detail.iloc[0]
    # and nothing at the WebSocket level but ws:// itself; RabbitMQ resets the TCP
    # connection once it has closed the WebSocket
    codes = cap.anomalies.code.astype(str)
    assert "sec_plaintext_ws" in set(codes)
    assert set(codes) <= {"sec_plaintext_ws", "app_credentials_plaintext", "tcp_reset"}, \
        cap.anomalies[["direction", "code", "detail"]].to_string()
