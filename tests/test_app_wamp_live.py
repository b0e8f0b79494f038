"""WAMP on real traffic: a Crossbar.io router and autobahn clients on loopback.

A crossbar router (realm ``realm1``, JSON serializer, anonymous role allowed
everything) listens on 127.0.0.1 while tcpdump records its port. Two
autobahn (asyncio) sessions join: the callee registers ``com.example.add2``
and subscribes to ``com.example.news``; the caller calls ``add2(2, 3)`` and
publishes to ``com.example.news`` with an acknowledgement; both leave. The
capture's ``app`` table must say what each side did, in WAMP terms, with
each answer paired with its request.

Crossbar is a heavy install with its own pins (Twisted, web3...), so it is
not a dependency: the test runs when ``WSPCAP_CROSSBAR`` names its program
(``.ci/run`` installs it in a virtual environment of its own, ``.ci/.crossbar``,
and sets it) or ``crossbar`` is on the path, and needs root and tcpdump; it is
skipped otherwise, with the reason.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import wspcap

ROOT = Path(__file__).resolve().parent.parent
REALM = "realm1"
STEP = 20.0  # seconds for any one step (router start, session join, call)

pytestmark = pytest.mark.network


def _crossbar() -> str | None:
    named = os.environ.get("WSPCAP_CROSSBAR")
    if named:
        return named if os.access(named, os.X_OK) else None
    return shutil.which("crossbar")


def _config(port: int) -> dict[str, Any]:
    allow = {"call": True, "register": True, "publish": True, "subscribe": True}
    return {"version": 2, "controller": {}, "workers": [{
        "type": "router",
        "realms": [{"name": REALM, "roles": [{"name": "anonymous", "permissions": [
            {"uri": "", "match": "prefix", "allow": allow,
             "disclose": {"caller": False, "publisher": False}, "cache": True}]}]}],
        "transports": [{"type": "websocket", "serializers": ["json"],
                        "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": port}}],
    }]}


class Router:
    """A crossbar node in ``cbdir``, started and stopped by this test only."""

    def __init__(self, program: str, cbdir: Path, port: int) -> None:
        cbdir.mkdir(parents=True)
        (cbdir / "config.json").write_text(json.dumps(_config(port)))
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.proc = subprocess.Popen([program, "start", "--cbdir", str(cbdir)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if "configuration ran successfully" in line:
                self.ready.set()

    def wait(self) -> None:
        if not self.ready.wait(STEP):
            raise RuntimeError("crossbar did not start: " + " | ".join(self.lines[-10:]))

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 2)  # SIGINT to the node and its workers
            try:
                self.proc.wait(STEP)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(5)


async def _traffic(port: int) -> dict[str, Any]:
    """The callee and the caller sessions; what each saw."""
    import txaio

    txaio.use_asyncio()
    from autobahn.asyncio.wamp import ApplicationSession
    from autobahn.asyncio.websocket import WampWebSocketClientFactory
    from autobahn.wamp.serializer import JsonSerializer
    from autobahn.wamp.types import ComponentConfig, PublishOptions

    loop = asyncio.get_running_loop()
    seen: dict[str, Any] = {}
    ready, news, done = loop.create_future(), loop.create_future(), loop.create_future()

    class Callee(ApplicationSession):  # type: ignore[misc]
        async def onJoin(self, details: Any) -> None:
            await self.register(lambda a, b: a + b, "com.example.add2")
            await self.subscribe(lambda text: news.set_result(text), "com.example.news")
            ready.set_result(True)
            await done
            self.leave()

        def onDisconnect(self) -> None:
            seen["callee_left"] = True

    class Caller(ApplicationSession):  # type: ignore[misc]
        async def onJoin(self, details: Any) -> None:
            seen["sum"] = await self.call("com.example.add2", 2, 3)
            await self.publish("com.example.news", "hello",
                               options=PublishOptions(acknowledge=True))
            seen["news"] = await asyncio.wait_for(news, STEP)
            done.set_result(True)
            self.leave()

        def onDisconnect(self) -> None:
            seen["caller_left"] = True

    async def join(cls: type) -> None:
        factory = WampWebSocketClientFactory(lambda: cls(ComponentConfig(REALM)),
                                             url=f"ws://127.0.0.1:{port}/ws",
                                             serializers=[JsonSerializer()])
        await loop.create_connection(factory, "127.0.0.1", port)

    await join(Callee)
    await asyncio.wait_for(ready, STEP)
    await join(Caller)
    await asyncio.wait_for(done, STEP)
    for _ in range(int(STEP * 10)):  # both sessions say goodbye and close
        if seen.get("callee_left") and seen.get("caller_left"):
            break
        await asyncio.sleep(0.1)
    return seen


def _record(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    program = _crossbar()
    if program is None:
        pytest.skip("crossbar not found (WSPCAP_CROSSBAR or on the path)")
    if shutil.which("tcpdump") is None or os.geteuid() != 0:
        pytest.skip("needs root and tcpdump")
    pytest.importorskip("autobahn")
    sys.path.insert(0, str(ROOT / "samples"))
    from make_samples import Tcpdump, pick_port

    port = pick_port("127.0.0.1")
    router = Router(program, tmp_path / "node" / ".crossbar", port)
    try:
        router.wait()
        pcap = tmp_path / "wamp.pcap"
        tcpdump = Tcpdump("lo", port, pcap)
        tcpdump.start()
        try:
            seen = asyncio.run(asyncio.wait_for(_traffic(port), 3 * STEP))
        finally:
            time.sleep(0.5)
            tcpdump.stop()
    finally:
        router.stop()
    return pcap, seen


def test_crossbar_call_and_publish(tmp_path: Path) -> None:
    pcap, seen = _record(tmp_path)
    assert seen["sum"] == 5 and seen["news"] == "hello"
    cap = wspcap.read(pcap)
    conns = cap.connections
    assert len(conns) == 2 and set(conns.subprotocol) == {"wamp.2.json"}
    assert set(conns.app_protocol) == {"wamp"} and (conns.app_confidence == 1.0).all()
    app = cap.app
    assert set(app.protocol.astype(str)) == {"wamp"}
    rows = {(int(r.conn_id), r.direction, r.kind, None if pd.isna(r.channel) else r.channel): r
            for r in app.itertuples()}
    callee, caller = sorted(conns.conn_id.tolist())  # the callee joined first

    def row(conn: int, direction: str, kind: str, channel: str | None) -> Any:
        return rows[(conn, direction, kind, channel)]

    session = {}
    for conn in (callee, caller):
        assert json.loads(row(conn, "c2s", "connect", REALM).fields)["type"] == "HELLO"
        session[conn] = row(conn, "s2c", "ack", None).id  # WELCOME: the session id
        goodbyes = app[(app.conn_id == conn) & (app.kind == "disconnect")]
        assert sorted(goodbyes.direction.astype(str)) == ["c2s", "s2c"]
        assert set(goodbyes.channel) == {"wamp.close.normal"}
    # The callee's REGISTER and SUBSCRIBE, answered.
    for kind in ("register", "subscribe"):
        asked = row(callee, "c2s", kind, "com.example." + ("add2" if kind == "register"
                                                            else "news"))
        (answer,) = app[(app.conn_id == callee) & (app.direction == "s2c") & (app.kind == "ack")
                        & (app.request_msg == asked.msg_index)].itertuples()
        assert answer.latency > pd.Timedelta(0)
    # The call: CALL -> INVOCATION -> YIELD -> RESULT, each answer paired.
    call = row(caller, "c2s", "request", "com.example.add2")
    result = row(caller, "s2c", "response", "com.example.add2")
    assert result.request_msg == call.msg_index and json.loads(result.fields)["args"] == [5]
    assert str(json.loads(result.fields)["details"]["callee"]) == session[callee]
    invocation = row(callee, "s2c", "request", "com.example.add2")
    yielded = row(callee, "c2s", "response", "com.example.add2")
    assert yielded.request_msg == invocation.msg_index
    assert json.loads(invocation.fields)["args"] == [2, 3]
    # The publication: PUBLISH (acknowledged) -> PUBLISHED; EVENT to the subscriber.
    publish = row(caller, "c2s", "publish", "com.example.news")
    published = app[(app.conn_id == caller) & (app.kind == "ack")
                     & (app.request_msg == publish.msg_index)]
    assert len(published) == 1
    event = row(callee, "s2c", "event", "com.example.news")
    assert json.loads(event.fields)["args"] == ["hello"]
    assert event.id == str(json.loads(published.fields.iloc[0])["publication"])
    assert not cap.anomalies.code.astype(str).str.startswith("app_").any()
