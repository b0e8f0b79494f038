"""The application decoders on real traffic, against each side's own record.

``samples/make_app_samples.py`` runs real servers and clients on loopback
(python-socketio, Mosquitto with paho-mqtt, JSON-RPC over ``websockets``,
strawberry with ``gql``) under tcpdump and writes what each side's
application sent (``<name>.truth.json``). Here the capture is read with
:func:`wspcap.read` and its ``app`` table (each row an event, read back by
:func:`golden.app.from_table`), its ``app_*`` anomalies and the connection's
``app_protocol`` are compared with that truth, event by event; the pairing
of answers with their requests (``request_msg``, ``latency``) with the ids
each side sent; and the table with the decoders run test-side
(:func:`golden.app.decode`):

- the bundled samples (``samples/socketio.pcapng``, ``samples/mqtt.pcapng``);
- tshark's MQTT dissector on ``samples/mqtt.pcapng`` (tshark 4.0 hands the
  ``mqtt`` subprotocol to it only when told to, by a line of Lua);
- fresh captures of every scenario (marked ``network``: needs root, tcpdump
  and editcap, and the scenario's peers; skipped with the reason otherwise).

WAMP, STOMP and ActionCable are not here: their peers are programs of their own. The WAMP
decoder is tested on autobahn's encoders in tests/unit/app, and on a live
crossbar router with autobahn clients in tests/test_app_wamp_live.py
(crossbar in a virtual environment of its own, ``WSPCAP_CROSSBAR``); STOMP on
a private RabbitMQ node with @stomp/stompjs in tests/test_app_stomp_live.py;
ActionCable on Rails' own server with @rails/actioncable in
tests/test_app_actioncable_live.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from golden.app import Decoded, decode, from_table
from golden.paths import SAMPLES_DIR, app_sample_names

import wspcap

#: Findings that real, well-behaved peers must never cause.
NEVER = {"app_parse_failed", "app_protocol_violation", "app_buffer_limit", "app_keepalive_missed"}
GENERATOR = SAMPLES_DIR / "make_app_samples.py"
TIMEOUT = 90  # one fresh scenario, generator included


def load(folder: Path, name: str) -> tuple[wspcap.Capture, dict[str, Any]]:
    truth = json.loads((folder / f"{name}.truth.json").read_text(encoding="utf-8"))
    return wspcap.read(folder / truth["file"]), truth


def only_connection(capture: wspcap.Capture, truth: dict[str, Any]) -> Decoded:
    """The capture's one connection as its ``app`` table has it; its handshake
    checked against the truth."""
    (tc,) = truth["connections"]
    (row,) = capture.connections.itertuples()
    assert row.established and row.uri.startswith(tc["uri_path"])
    assert bool(row.permessage_deflate) == tc["permessage_deflate"]
    assert (row.subprotocol if isinstance(row.subprotocol, str) else None) == tc["subprotocol"]
    decoded = from_table(capture, int(row.conn_id))
    assert decoded.decoder == truth["protocol"]
    assert set(capture.app["protocol"].astype(str)) == {truth["protocol"]}
    bad = [f for f in decoded.findings if f.code in NEVER]
    assert not bad, bad
    return decoded


def credentials(capture: wspcap.Capture) -> str:
    """The code credentials in clear get: an error on plain ws://."""
    return "app_credentials_in_clear" if capture.connections.tls.iloc[0] else \
        "app_credentials_plaintext"


def answered(capture: wspcap.Capture) -> list[tuple[Any, Any]]:
    """(answer, request) rows of the app table paired by ``request_msg``."""
    app = capture.app
    by_msg = {int(r.msg_index): r for r in app.itertuples()}
    pairs = []
    for r in app[app.request_msg.notna()].itertuples():
        asked = by_msg[int(r.request_msg)]
        since = r.ts - asked.ts
        # (a Socket.IO binary event too: its row and its wait are timed by its
        # header message, where the event starts)
        assert r.latency == since > pd.Timedelta(0)
        pairs.append((r, asked))
    assert app.latency.notna().sum() == len(pairs)
    return pairs


def sent(truth: dict[str, Any], direction: str, *kinds: str) -> list[dict[str, Any]]:
    """The truth's records of one direction (and of these kinds), in the sender's order."""
    return [e for e in truth["connections"][0]["sent"]
            if e["direction"] == direction and (not kinds or e["kind"] in kinds)]


# -- Socket.IO ------------------------------------------------------------------


def check_socketio(capture: wspcap.Capture, truth: dict[str, Any]) -> None:
    d = only_connection(capture, truth)
    for direction in ("c2s", "s2c"):
        # events (name, args, ack id), acks (id, args) and disconnects, in order
        want = [(e["kind"], e["namespace"], e.get("event"), e.get("args"), e.get("ack_id"))
                for e in sent(truth, direction, "event", "ack", "disconnect")]
        got = [(e.kind, e.fields["namespace"], e.channel if e.kind == "event" else None,
                e.fields.get("args"), int(e.id) if e.id is not None else None)
               for e in d.of(direction, "event", "ack", "disconnect")]
        assert got == want, direction
    connects = sent(truth, "c2s", "connect")
    assert [(e.fields["namespace"], e.fields.get("data")) for e in d.of("c2s", "connect")] == \
        [(e["namespace"], e["auth"]) for e in connects]
    assert [e.fields["namespace"] for e in d.of("s2c", "connected")] == \
        [e["namespace"] for e in connects]
    # every ack answers an event of the other side with the same id, in the same namespace
    for direction, other in (("c2s", "s2c"), ("s2c", "c2s")):
        asked = {(e.fields["namespace"], e.id) for e in d.of(other, "event") if e.id is not None}
        assert {(e.fields["namespace"], e.id) for e in d.of(direction, "ack")} <= asked
    assert sum(f.code == credentials(capture) for f in d.findings) == len(connects)
    # the table pairs each ack with the event that asked for it (same id, other side)
    pairs = answered(capture)
    assert sorted((str(r.direction), int(r.id)) for r, _ in pairs) == sorted(
        (direction, e["ack_id"]) for other, direction in (("c2s", "s2c"), ("s2c", "c2s"))
        for e in sent(truth, other, "event") if e.get("ack_id") is not None)
    for ack, event in pairs:
        assert (ack.kind, event.kind, event.id) == ("ack", "event", ack.id)
        assert ack.direction != event.direction


# -- MQTT -----------------------------------------------------------------------


def _payload_hex(fields: Any) -> str:
    return str(fields["payload_hex"]) if "payload_hex" in fields else fields["payload"].encode().hex()


def check_mqtt(capture: wspcap.Capture, truth: dict[str, Any]) -> None:
    d = only_connection(capture, truth)
    assert d.confidence == 1.0  # by subprotocol
    packets = truth["connections"][0]["packets"]  # paho's log of what it sent and received
    for direction in ("c2s", "s2c"):
        assert [e.fields["type"] for e in d.of(direction)] == packets[direction], direction
        want = [(p["topic"], p["payload_hex"], p["qos"], p["retain"], p["mid"])
                for p in sent(truth, direction, "publish")]
        got = [(e.channel, _payload_hex(e.fields), e.fields["qos"], e.fields["retain"],
                int(e.id) if e.id is not None else None) for e in d.of(direction, "publish")]
        assert got == want, direction
    (want_connect,) = sent(truth, "c2s", "connect")
    (connect,) = d.of("c2s", "connect")
    will = want_connect["will"]
    assert {k: connect.fields.get(k) for k in ("client_id", "username", "password", "keep_alive",
                                                "clean_session")} == \
        {k: want_connect[k] for k in ("client_id", "username", "password", "keep_alive",
                                      "clean_session")}
    assert (connect.fields["will_topic"], connect.fields["will_payload"].encode().hex(),
            connect.fields["will_qos"], connect.fields["will_retain"]) == \
        (will["topic"], will["payload_hex"], will["qos"], will["retain"])
    (sub,) = sent(truth, "c2s", "subscribe")
    (subscribe,) = d.of("c2s", "subscribe")
    assert [[t["topic"], t["qos"]] for t in subscribe.fields["topics"]] == sub["topics"]
    assert int(subscribe.id) == sub["mid"]
    (unsub,) = sent(truth, "c2s", "unsubscribe")
    (unsubscribe,) = d.of("c2s", "unsubscribe")
    assert [t["topic"] for t in unsubscribe.fields["topics"]] == unsub["topics"]
    assert int(unsubscribe.id) == unsub["mid"]
    # QoS flows: each publish's packet id comes back in the acks its QoS calls for
    flows = {1: [("PUBACK", 1)], 2: [("PUBREC", 1), ("PUBREL", 0), ("PUBCOMP", 1)]}
    for direction, other in (("c2s", "s2c"), ("s2c", "c2s")):
        acks = {(e.direction, e.fields["type"], int(e.id)) for e in d.events if e.kind == "ack"}
        for p in sent(truth, direction, "publish"):
            for packet, by_other in flows.get(p["qos"], []):
                assert (other if by_other else direction, packet, p["mid"]) in acks, (p, packet)
    creds = [f for f in d.findings if f.code == credentials(capture)]
    assert len(creds) == 1 and want_connect["username"] in creds[0].detail
    # the table pairs each PUBLISH (QoS 1, 2), SUBSCRIBE and UNSUBSCRIBE with its
    # first ack (PUBACK, PUBREC, SUBACK, UNSUBACK): same packet id, other side
    pairs = answered(capture)
    want_pairs = sorted((d_, "PUBLISH", p["mid"]) for d_ in ("c2s", "s2c")
                        for p in sent(truth, d_, "publish") if p["qos"] > 0)
    want_pairs += [("c2s", "SUBSCRIBE", sub["mid"]), ("c2s", "UNSUBSCRIBE", unsub["mid"])]
    assert sorted((str(q.direction), json.loads(q.fields)["type"], int(q.id))
                  for _, q in pairs) == sorted(want_pairs)
    for ack, asked in pairs:
        assert ack.kind == "ack" and ack.id == asked.id and ack.direction != asked.direction


# -- JSON-RPC -------------------------------------------------------------------


def check_jsonrpc(capture: wspcap.Capture, truth: dict[str, Any]) -> None:
    d = only_connection(capture, truth)
    methods: dict[tuple[str, str], str] = {}  # (requesting direction, id) -> method: what a response answers
    for record in sent(truth, "c2s") + sent(truth, "s2c"):
        items = record["message"] if isinstance(record["message"], list) else [record["message"]]
        methods.update({(record["direction"], json.dumps(i["id"])): i["method"]
                        for i in items if "method" in i and "id" in i})
    other = {"c2s": "s2c", "s2c": "c2s"}
    for direction in ("c2s", "s2c"):
        want = []
        for record in sent(truth, direction):
            message = record["message"]
            for part, item in enumerate(message if isinstance(message, list) else [message]):
                if "method" in item:
                    kind = "request" if "id" in item else "notification"
                    want.append((kind, item["method"], item.get("id"), item.get("params"), part))
                else:
                    kind = "error" if "error" in item else "response"
                    method = methods[(other[direction], json.dumps(item["id"]))]
                    want.append((kind, method, item["id"], item.get("result", item.get("error")),
                                 part))
        # fields["id"] is the id as JSON had it (the event's id is its text)
        got = [(e.kind, e.channel, e.fields.get("id"), e.fields.get("params", e.fields.get(
                    "result", e.fields.get("error"))), e.part) for e in d.of(direction)]
        assert got == want, direction
    assert not d.findings  # every request answered, no credentials


# -- GraphQL --------------------------------------------------------------------


def check_graphql(capture: wspcap.Capture, truth: dict[str, Any]) -> None:
    d = only_connection(capture, truth)
    assert d.confidence == 1.0  # by subprotocol
    ops = sent(truth, "c2s")
    got_ops = d.of("c2s", "request", "subscribe")
    assert [(e.kind, e.channel, e.fields["variables"]) for e in got_ops] ==         [(o["kind"], o["operation_name"], o["variables"]) for o in ops]
    # the query text as sent (gql prints the parsed document: compare it without whitespace)
    assert ["".join(e.fields["query"].split()) for e in got_ops] == \
        ["".join(o["query"].split()) for o in ops]
    answers = d.of("s2c", "response", "event")
    assert [(e.kind, e.channel, e.fields["payload"]["data"]) for e in answers] == \
        [(r["kind"], r["operation_name"], r["data"]) for r in sent(truth, "s2c")]
    # each answer and each complete carries the id of its operation
    ids = {e.channel: e.id for e in got_ops}
    assert len(set(ids.values())) == len(ops)
    for e in d.of("s2c", "response", "event", "complete"):
        assert e.id == ids[e.channel]
    assert [e.channel for e in d.of("s2c", "complete")] == [o["operation_name"] for o in ops]
    assert len(d.of("c2s", "connect")) == len(d.of("s2c", "ack")) == 1
    assert not d.findings


CHECKS = {"socketio": check_socketio, "mqtt": check_mqtt, "jsonrpc": check_jsonrpc,
          "graphql": check_graphql}


# -- the bundled samples ----------------------------------------------------------


@pytest.mark.parametrize("name", app_sample_names())
def test_bundled_sample(name: str) -> None:
    capture, truth = load(SAMPLES_DIR, name)
    CHECKS[truth["protocol"]](capture, truth)


@pytest.mark.parametrize("name", app_sample_names())
def test_table_is_the_decoders_own(name: str) -> None:
    """The engine's table holds what the decoder run test-side says, event for
    event, and each row points at its message (frames, packets, time)."""
    capture, _truth = load(SAMPLES_DIR, name)
    table, direct = from_table(capture, 0), decode(capture, 0)
    assert (table.decoder, table.confidence) == (direct.decoder, direct.confidence)
    assert table.events == direct.events
    assert [(f.direction, f.detail) for f in table.findings] == \
        [(f.direction, f.detail) for f in direct.findings]
    assert {f.code for f in direct.findings} == {"app_credentials_in_clear"}
    where = ["first_frame", "last_frame", "packet_start", "packet_end"]
    joined = capture.app.merge(capture.messages, on=["conn_id", "msg_index"],
                               suffixes=("", "_msg"), validate="many_to_one")
    assert len(joined) == len(capture.app)
    for column in where:
        assert (joined[column] == joined[f"{column}_msg"]).all(), column
    assert (joined["ts"] == joined["ts_end"]).all()
    assert joined["type"].astype(str).isin(["text", "binary"]).all()


def test_bundled_samples_present() -> None:
    assert app_sample_names() == ["mqtt", "socketio"]


#: tshark 4.0 looks a subprotocol up in the "ws.protocol" table; MQTT is not registered there.
MQTT_LUA = 'DissectorTable.get("ws.protocol"):add("mqtt", Dissector.get("mqtt"))\n'


@pytest.mark.tshark
def test_tshark_mqtt_agrees(tmp_path: Path) -> None:
    """tshark's MQTT dissector and ours: the same packets, topics and payloads, in order."""
    exe = shutil.which("tshark")
    if exe is None:
        pytest.skip("tshark is not installed")
    lua = tmp_path / "mqtt-ws.lua"
    lua.write_text(MQTT_LUA, encoding="utf-8")
    capture, truth = load(SAMPLES_DIR, "mqtt")
    fields = ["tcp.srcport", "mqtt.msgtype", "mqtt.topic", "mqtt.msg"]
    done = subprocess.run(
        [exe, "-n", "-r", str(SAMPLES_DIR / truth["file"]), "-X", f"lua_script:{lua}", "-Y", "mqtt",
         "-T", "json", *(a for f in fields for a in ("-e", f))],
        capture_output=True, text=True, timeout=60, check=True)
    server_port = truth["server"]["port"]
    theirs: list[tuple[str, int, str | None, str | None]] = []
    for packet in json.loads(done.stdout):
        layer = packet["_source"]["layers"]
        direction = "s2c" if int(layer["tcp.srcport"][0]) == server_port else "c2s"
        types = [int(t) for t in layer["mqtt.msgtype"]]
        topics, messages = iter(layer.get("mqtt.topic", [])), iter(layer.get("mqtt.msg", []))
        for t in types:  # topic and message belong to the PUBLISH packets of the frame
            publish = t == 3
            theirs.append((direction, t, next(topics) if publish else None,
                           next(messages).replace(":", "") if publish else None))
    assert len(theirs) >= 20
    ours = from_table(capture, 0)
    names = {v: k for k, v in {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK",
                               5: "PUBREC", 6: "PUBREL", 7: "PUBCOMP", 8: "SUBSCRIBE",
                               9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK", 12: "PINGREQ",
                               13: "PINGRESP", 14: "DISCONNECT"}.items()}
    mine = [(e.direction, names[e.fields["type"]], e.channel if e.kind == "publish" else None,
             _payload_hex(e.fields) if e.kind == "publish" else None)
            for e in ours.events]
    # tshark reports a packet on the TCP segment that carries it: sort both by direction only
    for direction in ("c2s", "s2c"):
        assert [x for x in mine if x[0] == direction] == [x for x in theirs if x[0] == direction]


# -- fresh captures -----------------------------------------------------------------

#: scenario -> (modules its peers need, programs it needs)
LIVE = {
    "socketio": (["socketio", "aiohttp"], []),
    "socketio-deflate": (["socketio", "aiohttp"], []),
    "mqtt": (["paho.mqtt"], ["mosquitto"]),
    "jsonrpc": (["websockets"], []),
    "jsonrpc-deflate": (["websockets"], []),
    "graphql-transport-ws": (["strawberry", "gql", "aiohttp"], []),
    "graphql-ws": (["strawberry", "gql", "aiohttp"], []),
}


def _program(name: str) -> bool:
    return shutil.which(name) is not None or Path("/usr/sbin", name).exists()


@pytest.mark.network
@pytest.mark.parametrize("scenario", sorted(LIVE))
def test_fresh_capture(scenario: str, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("capturing on loopback needs root")
    modules, programs = LIVE[scenario]
    for program in ("tcpdump", "editcap", *programs):
        if not _program(program):
            pytest.skip(f"{program} is not installed")
    for module in modules:
        if importlib.util.find_spec(module.split(".")[0]) is None:
            pytest.skip(f"python module {module} is not installed")
    try:
        done = subprocess.run([sys.executable, str(GENERATOR), "--out", str(tmp_path),
                               "--only", scenario], capture_output=True, text=True,
                              timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"make_app_samples.py --only {scenario} took over {TIMEOUT} s")
    assert done.returncode == 0, done.stderr[-3000:]
    stem = next(tmp_path.glob("*.truth.json")).name[:-len(".truth.json")]
    capture, truth = load(tmp_path, stem)
    assert truth["scenario"] == scenario
    CHECKS[truth["protocol"]](capture, truth)
