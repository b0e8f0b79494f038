"""ActionCable on real traffic: Rails' own server and the official JS client on loopback.

The server is ActionCable itself (Debian's ``ruby-actioncable``, the Rails
gem), run standalone by Puma from a ``config.ru`` the test writes: the
``async`` subscription adapter, a ``Connection`` that identifies the user
from the query string (and refuses a connection without one), and a
``ChatChannel`` that streams from its room, rejects the room ``forbidden``,
answers ``speak`` with a ``transmit`` to the speaker and a broadcast to the
room, and answers ``leave`` by closing the connection. The server records
every message its connections transmitted (welcome, pings, confirmations,
rejections, transmits, streamed broadcasts, disconnects) and every command
it received.

The client is ``@rails/actioncable`` from npm on Node with the ``ws``
package (``tests/node/cable_client.js``): a refused consumer, then bob (a
token in his cable URL, as API clients authenticate, another in his
subscription's identifier) and alice, who speaks, is rejected once, idles
through a server ping, unsubscribes and disconnects; then the server closes
bob. The client records every WebSocket message it sent and received and
what its subscriptions' callbacks saw.

tcpdump records the server's port; the capture's ``app`` table is held to
both records, message by message, in both directions.

Needs root and tcpdump (capture), Ruby with ActionCable and Puma, and Node.js
with the packages of ``tests/node/package.json`` (``.ci/run`` installs them);
skipped with the reason otherwise.
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
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
from golden.live import NODE_DIR, listening, node_peer, stop_group

import wspcap

ROOT = Path(__file__).resolve().parent.parent
STEP = 20.0  # seconds for any one step (a conversation, a stop)
BOOT = 30.0  # seconds for Puma to listen (about 1 s here)
ROOM = "lobby"
TOKEN = "s3cr3t-t0k3n"
URL_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJl"
PLAN = {
    "room": ROOM,
    "says": ["hello 1", "héllo ✓ 2", "x" * 2000],
    "token": TOKEN,
    "url_token": URL_TOKEN,
    "idle_ms": 4000,  # ActionCable pings every 3 s
    "timeout_ms": int(STEP * 1000),
}
#: The consumers of tests/node/cable_client.js, by the tag in their URL's query.
TAGS = ("anon", "bob", "alice")

#: A standalone ActionCable server (Rack), recording what it sends and receives.
CONFIG_RU = """\
require "json"
require "logger"
require "monitor"
require "action_cable"

# One JSON line per message a connection transmitted or received, in order.
module Record
  FILE = File.open(ENV.fetch("CABLE_RECORD"), "a")
  FILE.sync = true
  LOCK = Monitor.new

  def self.write(entry)
    LOCK.synchronize { FILE.puts(JSON.generate(entry)) }
  end

  # Threads transmit (workers, the heart-beat): each send and its line go together.
  def self.sending(tag, message)
    LOCK.synchronize do
      sent = yield
      write({ "tag" => tag, "direction" => "s2c", "message" => message }) if sent
      sent
    end
  end
end
Record.write({ "versions" => { "actioncable" => ActionCable::VERSION::STRING,
                               "puma" => defined?(Puma::Const) ? Puma::Const::PUMA_VERSION : nil,
                               "ruby" => RUBY_VERSION } })

module ApplicationCable
  class Connection < ActionCable::Connection::Base
    identified_by :current_user

    def connect
      user = request.params["user"].to_s
      reject_unauthorized_connection if user.empty?
      self.current_user = user
    end

    # Every message to the client goes through here; recorded once sent.
    def transmit(cable_message)
      Record.sending(tag, cable_message) { super }
    end

    # Each message from the client, in the order the socket read them (the
    # worker pool then handles them).
    def receive(websocket_message)
      Record.write({ "tag" => tag, "direction" => "c2s", "text" => websocket_message })
      super
    end

    private

    def tag
      request.params["tag"]
    end
  end
end

class ChatChannel < ActionCable::Channel::Base
  def subscribed
    return reject if params[:room] == "forbidden"
    stream_from "chat_#{params[:room]}"
  end

  def speak(data)
    transmit({ "echo" => data["body"], "to" => current_user })
    ActionCable.server.broadcast("chat_#{params[:room]}",
                                 { "body" => data["body"], "from" => current_user })
  end

  def leave(_data)
    connection.close(reason: "remote", reconnect: false)
  end
end

config = ActionCable.server.config
config.cable = { "adapter" => "async" }
config.connection_class = -> { ApplicationCable::Connection }
config.disable_request_forgery_protection = true
config.logger = Logger.new($stderr, level: Logger::INFO)
config.worker_pool_size = 2

map("/cable") { run ActionCable.server }
"""

#: The decoder's kinds for the client's commands and the server's types.
COMMAND_KINDS = {"subscribe": "subscribe", "unsubscribe": "unsubscribe", "message": "publish"}
TYPE_KINDS = {"welcome": "connect", "ping": "ping", "confirm_subscription": "ack",
              "reject_subscription": "error", "disconnect": "disconnect"}
#: What the client library's subscription callbacks call each server event.
CALLBACKS = {"ack": "connected", "error": "rejected", "event": "received"}

pytestmark = pytest.mark.network


def _ruby_ready() -> str | None:
    """Why ActionCable cannot run here, or None."""
    ruby, puma = shutil.which("ruby"), shutil.which("puma")
    if ruby is None or puma is None:
        return "ruby and puma are needed (Debian's ruby-actioncable and puma)"
    probe = subprocess.run([ruby, "-e", 'require "action_cable"'], capture_output=True,
                           timeout=STEP, check=False)
    if probe.returncode != 0:
        return "ActionCable does not load (Debian's ruby-actioncable)"
    return None


def _record(tmp_path: Path) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    node = node_peer("@rails/actioncable")
    why = _ruby_ready()
    if why is not None:
        pytest.skip(why)
    sys.path.insert(0, str(ROOT / "samples"))
    from make_samples import Tcpdump, pick_port

    port = pick_port("127.0.0.1")
    (tmp_path / "config.ru").write_text(CONFIG_RU)
    record = tmp_path / "server.jsonl"
    log = open(tmp_path / "puma.log", "wb")  # noqa: SIM115  (closed below)
    try:
        server = subprocess.Popen(
            [str(shutil.which("puma")), "--bind", f"tcp://127.0.0.1:{port}", "--threads", "1:4",
             "--environment", "test", str(tmp_path / "config.ru")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
            env={**os.environ, "CABLE_RECORD": str(record)}, start_new_session=True)
        try:
            deadline = time.monotonic() + BOOT
            while not listening(port):
                if server.poll() is not None or time.monotonic() > deadline:
                    tail = (tmp_path / "puma.log").read_bytes()[-2000:].decode("utf-8", "replace")
                    raise RuntimeError(f"Puma did not listen: {tail}")
                time.sleep(0.2)
            pcap = tmp_path / "cable.pcap"
            tcpdump = Tcpdump("lo", port, pcap)
            tcpdump.start()
            try:
                done = subprocess.run(
                    [node, str(NODE_DIR / "cable_client.js"), f"ws://127.0.0.1:{port}/cable",
                     json.dumps(PLAN)],
                    capture_output=True, text=True, timeout=2 * STEP, check=False, cwd=NODE_DIR)
            finally:
                time.sleep(0.5)
                tcpdump.stop()
        finally:
            stop_group(server, STEP)
    finally:
        log.close()
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in record.read_text("utf-8").splitlines()]
    server_side: dict[str, Any] = {"versions": lines[0]["versions"],
                                   "wire": {tag: [] for tag in TAGS}}
    for line in lines[1:]:
        server_side["wire"][line["tag"]].append(line)
    return pcap, json.loads(done.stdout), server_side


def _none(value: Any) -> Any:
    return None if pd.isna(value) else value


def _check_event(event: Any, sent: dict[str, Any]) -> None:
    """One ``app`` row against the JSON object that was sent, as its sender wrote it."""
    fields = json.loads(event.fields)
    identifier = sent.get("identifier")
    if identifier is None:
        assert _none(event.channel) is None and "identifier" not in fields
    else:
        params = json.loads(identifier)
        assert fields["identifier"] == identifier
        assert event.channel == params.pop("channel")
        assert fields["params"] == params
    # ActionCable has no message ids: a subscription's identifier stands for one
    assert _none(event.id) == identifier
    if "command" in sent:
        assert event.direction == "c2s"
        assert event.kind == COMMAND_KINDS[sent["command"]]
        assert fields["command"] == sent["command"]
        if "data" in sent:
            data = json.loads(sent["data"])
            assert fields["data"] == data
            assert fields.get("action") == data.get("action")
        else:
            assert "data" not in fields
    elif "type" in sent:
        assert event.direction == "s2c"
        assert event.kind == TYPE_KINDS[sent["type"]]
        rest = {k: v for k, v in sent.items() if k != "identifier"}
        assert {k: v for k, v in fields.items() if k not in ("identifier", "params")} == rest
    else:  # a transmit or a broadcast to a subscription
        assert event.direction == "s2c"
        assert event.kind == "event"
        assert fields["message"] == sent["message"]
        assert set(fields) == {"identifier", "params", "message"}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any],
                                                                dict[str, Any]]:
    """The capture, the client's record and the server's, made once for the module."""
    return _record(tmp_path_factory.mktemp("cable"))


def test_actioncable_rails_server_and_js_client(
        recorded: tuple[Path, dict[str, Any], dict[str, Any]]) -> None:
    pcap, client, server = recorded
    cap = wspcap.read(pcap)
    conns = {parse_qs(urlsplit(str(c.uri)).query)["tag"][0]: c
             for c in cap.connections.itertuples()}
    assert sorted(conns) == sorted(TAGS)
    for tag, conn in conns.items():
        opened = client["opened"][tag]
        assert conn.established and urlsplit(str(conn.uri)).path == "/cable"
        assert conn.subprotocol == opened["protocol"] == "actioncable-v1-json"
        assert bool(conn.permessage_deflate) == ("permessage-deflate" in opened["extensions"])
        assert (conn.app_protocol, conn.app_confidence) == ("actioncable", 1.0)
        # the server closed each with the code the client got
        assert int(conn.close_code_s2c) == client["closes"][tag]["code"], tag
    app = cap.app
    assert len(app) and set(app.protocol.astype(str)) == {"actioncable"}

    data = cap.messages[cap.messages.type.astype(str).isin(["text", "binary"])]
    for tag, conn in conns.items():
        wire = client["wire"][tag]
        assert not any(w.get("binary") for w in wire)
        for direction in ("c2s", "s2c"):
            texts = [w["text"] for w in wire if w["direction"] == direction]
            msgs = data[(data.conn_id == conn.conn_id) & (data.direction == direction)]
            # what the client sent and got is what the capture holds, and what
            # the server recorded it received and transmitted
            assert msgs.text.tolist() == texts, (tag, direction)
            if direction == "c2s":
                assert [s["text"] for s in server["wire"][tag] if s["direction"] == "c2s"] \
                    == texts, tag
            else:
                assert [s["message"] for s in server["wire"][tag] if s["direction"] == "s2c"] \
                    == [json.loads(t) for t in texts], tag
            # one event per message, each saying what its sender sent
            events = list(app[(app.conn_id == conn.conn_id)
                              & (app.direction == direction)].itertuples())
            assert [int(e.msg_index) for e in events] == msgs.msg_index.tolist(), (tag, direction)
            for event, text in zip(events, texts, strict=True):
                assert event.part == 0
                _check_event(event, json.loads(text))
        # what the subscriptions' callbacks saw: confirmations, rejections and
        # messages, each for the identifier the row names
        seen = [(c["callback"], json.dumps(c["params"], separators=(",", ":")), c.get("data"))
                for c in client["callbacks"][tag] if c["callback"] != "disconnected"]
        rows = app[(app.conn_id == conn.conn_id) & app.kind.isin(list(CALLBACKS))]
        assert [(CALLBACKS[r.kind], json.loads(r.fields)["identifier"],
                 json.loads(r.fields).get("message")) for r in rows.itertuples()] == seen, tag

    # Each confirmation or rejection answers a subscribe to its identifier:
    # the subscription's latency (between the two rows' times).
    times = app.set_index(["conn_id", "msg_index"]).ts
    answers = app[app.kind.isin(["ack", "error"])]
    assert len(answers) >= 3
    for r in answers.itertuples():
        asked = app[(app.conn_id == r.conn_id) & (app.kind == "subscribe") & (app.id == r.id)
                    & (app.msg_index < r.msg_index)]
        assert int(r.request_msg) in asked.msg_index.tolist(), r
        waited = times[(r.conn_id, r.msg_index)] - times[(r.conn_id, int(r.request_msg))]
        assert r.latency == waited, r

    # The conversation as planned: each side's kinds, in order, per consumer
    def kinds(tag: str, direction: str) -> list[str]:
        rows = app[(app.conn_id == conns[tag].conn_id) & (app.direction == direction)]
        return [k for k in rows.kind.tolist() if k != "ping"]

    says = len(PLAN["says"])
    assert kinds("anon", "c2s") == [] and kinds("anon", "s2c") == ["disconnect"]
    assert kinds("alice", "c2s")[-(says + 1):] == ["publish"] * says + ["unsubscribe"]
    assert kinds("alice", "s2c")[-2 * says:] == ["event"] * 2 * says
    assert {"connect", "ack", "error"} <= set(kinds("alice", "s2c"))
    assert kinds("bob", "s2c")[-(says + 1):] == ["event"] * says + ["disconnect"]
    # the server's heart-beat reached the two that stayed, during the quiet spell
    for tag in ("alice", "bob"):
        pings = app[(app.conn_id == conns[tag].conn_id) & (app.kind == "ping")]
        assert len(pings) >= 1 and (pings.direction == "s2c").all(), tag
    reasons = {tag: json.loads(r.fields)["reason"] for tag in TAGS
               for r in app[(app.conn_id == conns[tag].conn_id)
                            & (app.kind == "disconnect")].itertuples()}
    assert reasons == {"anon": "unauthorized", "bob": "remote"}

    # Bob's token in clear in his subscription's identifier, over ws:// (an
    # error there): one finding per subscribe of his; nothing else at the
    # application level (ActionCable has no keep-alive rule: the pings are the
    # server's, the client only watches them).
    found = cap.anomalies[cap.anomalies.code.astype(str).str.startswith("app_")]
    subscribes = app[(app.conn_id == conns["bob"].conn_id) & (app.kind == "subscribe")]
    assert len(subscribes) >= 1
    assert found.code.astype(str).tolist() == ["app_credentials_plaintext"] * len(subscribes)
    assert (found.severity.astype(str) == "error").all()
    assert found.conn_id.tolist() == [conns["bob"].conn_id] * len(subscribes)
    assert found.frame_index.tolist() == subscribes.first_frame.tolist()
    assert "token" in found.detail.iloc[0] and "ChatChannel" in found.detail.iloc[0]
    # and his URL's token, at the WebSocket level
    in_url = cap.anomalies[cap.anomalies.code.astype(str) == "sec_credentials_in_url"]
    assert in_url.conn_id.tolist() == [conns["bob"].conn_id]
    assert "'token'" in in_url.detail.iloc[0] and URL_TOKEN not in in_url.detail.iloc[0]
    codes = set(cap.anomalies.code.astype(str))
    assert codes <= {"sec_plaintext_ws", "sec_credentials_in_url", "app_credentials_plaintext"}, \
        cap.anomalies[["conn_id", "direction", "code", "detail"]].to_string()


def test_actioncable_listener_midstream(
        recorded: tuple[Path, dict[str, Any], dict[str, Any]], tmp_path: Path) -> None:
    """Bob's connection while he only listened, as a capture started late holds
    it (no handshake, no welcome, no command): the broadcasts and the server's
    pings still say ActionCable, by their content, and decode as in full."""
    from scapy.layers.inet import TCP
    from scapy.utils import rdpcap, wrpcap

    pcap, client, _ = recorded
    cap = wspcap.read(pcap)
    (bob,) = [c for c in cap.connections.itertuples()
              if parse_qs(urlsplit(str(c.uri)).query)["tag"] == ["bob"]]
    app = cap.app[cap.app.conn_id == bob.conn_id]
    heard = app[(app.direction == "s2c") & app.kind.isin(["event", "ping"])]
    first, last = int(heard.packet_start.min()), int(heard.packet_end.max())
    ports = {int(bob.client_port), int(bob.server_port)}
    late = tmp_path / "late.pcap"
    wrpcap(str(late), [p for n, p in enumerate(rdpcap(str(pcap)), 1)  # packets count from 1
                       if first <= n <= last and TCP in p
                       and {p[TCP].sport, p[TCP].dport} == ports])
    cut = wspcap.read(late)
    (conn,) = cut.connections.itertuples()
    assert conn.midstream and pd.isna(conn.subprotocol)
    assert str(conn.app_protocol) == "actioncable" and float(conn.app_confidence) == 0.7
    # what bob received between his confirmation and his last ping, as he recorded it
    wire = [w["text"] for w in client["wire"]["bob"] if w["direction"] == "s2c"]
    start = 1 + next(i for i, t in enumerate(wire)
                     if json.loads(t).get("type") == "confirm_subscription")
    end = max(i for i, t in enumerate(wire) if json.loads(t).get("type") in (None, "ping"))
    assert cut.messages.text.tolist() == wire[start:end + 1]
    rows = cut.app[["direction", "kind", "channel", "fields"]]
    assert rows.astype(str).values.tolist() == \
        heard[["direction", "kind", "channel", "fields"]].astype(str).values.tolist()
    for event, text in zip(cut.app.itertuples(), wire[start:end + 1], strict=True):
        _check_event(event, json.loads(text))
    assert not cut.anomalies.code.astype(str).str.startswith("app_").any()
