"""A third-party decoder installed for real, through the ``wspcap.decoders`` entry points.

The test lays out a tiny installed distribution in a temporary directory (a
module with a :class:`~wspcap.app.base.Decoder` subclass, and its
``.dist-info`` with ``METADATA`` and ``entry_points.txt``, as pip writes
them), puts that directory on the path of a fresh interpreter, and runs
``wspcap decoders`` and ``wspcap.read`` with the decoder forced there: the
entry points are read by :mod:`importlib.metadata`, as for any installed
package. A second entry point names a class that does not exist: it is
listed as broken, and the capture is read all the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "anomalies" / "app-request-unanswered.pcap"

PLUGIN = '''
"""A decoder from outside wspcap: one ``message`` event per data message."""

from wspcap.app.base import AppEvent, Decoder


class SizeDecoder(Decoder):
    name = "sizeplug"
    subprotocols = ("x-size",)
    recognition = "subprotocol x-size"

    def receive(self, message):
        return [AppEvent(message.msg_index, message.direction, self.name, "message",
                         channel="sizes", fields={"size": len(message.payload)})]
'''

ENTRY_POINTS = """\
[wspcap.decoders]
sizeplug = wspcap_sizeplug:SizeDecoder
missing = wspcap_sizeplug:NoSuchDecoder
"""

READ = """
import json, sys
import wspcap
cap = wspcap.read(sys.argv[1], options=wspcap.Options(decoder="sizeplug"))
sizes = cap.messages[cap.messages.type.astype(str).isin(["text", "binary"])]
print(json.dumps({
    "protocols": cap.app.protocol.astype(str).tolist(),
    "kinds": cap.app.kind.astype(str).tolist(),
    "fields": [json.loads(f) for f in cap.app.fields],
    "msg_index": cap.app.msg_index.tolist(),
    "message_sizes": [len(p) for p in sizes.payload],
    "message_index": sizes.msg_index.tolist(),
    "app_protocol": cap.connections.app_protocol.astype(str).tolist(),
}))
"""


def _install(site: Path) -> None:
    """The distribution ``wspcap-sizeplug`` 1.0, as pip would leave it in ``site``."""
    (site / "wspcap_sizeplug.py").write_text(PLUGIN)
    info = site / "wspcap_sizeplug-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wspcap-sizeplug\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    (info / "top_level.txt").write_text("wspcap_sizeplug\n")


def _run(site: Path, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_entry_point_decoder_is_listed_and_used(tmp_path: Path) -> None:
    _install(tmp_path)
    listed = json.loads(_run(tmp_path, "-m", "wspcap", "decoders", "--format", "json"))
    names = {row["name"]: row for row in listed["decoders"]}
    assert names["sizeplug"]["module"] == "wspcap_sizeplug"
    assert names["sizeplug"]["subprotocols"] == "x-size"
    assert "jsonrpc" in names  # the bundled ones are still there
    assert list(listed["broken"]) == ["missing = wspcap_sizeplug:NoSuchDecoder"]
    assert "AttributeError" in listed["broken"]["missing = wspcap_sizeplug:NoSuchDecoder"]

    got = json.loads(_run(tmp_path, "-c", READ, str(SAMPLE)))
    assert got["message_sizes"], "the sample has data messages"
    assert got["protocols"] == ["sizeplug"] * len(got["message_sizes"])
    assert got["kinds"] == ["message"] * len(got["message_sizes"])
    assert got["msg_index"] == got["message_index"]
    assert got["fields"] == [{"size": n} for n in got["message_sizes"]]
    assert set(got["app_protocol"]) == {"sizeplug"}


def test_without_the_distribution_the_name_is_unknown(tmp_path: Path) -> None:
    """The same commands without the distribution on the path: no such decoder."""
    listed = json.loads(_run(tmp_path, "-m", "wspcap", "decoders", "--format", "json"))
    assert "sizeplug" not in {row["name"] for row in listed["decoders"]}
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", READ, str(SAMPLE)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0 and "sizeplug" in done.stderr
