"""The HTML report: self-contained, escaped, and readable in a real browser.

The expected content comes from the samples' truth files (connections, client
ports, messages) and from a hostile conversation built here with the tests'
own RFC 6455 frame builder (``golden.crafted``), whose every string is markup
that must come out as text. A headless Chromium loads the report and the DOM
it builds is checked (skipped when Chromium is not installed).
"""

from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from golden import truth as T
from golden.browser import chromium, chromium_args

import wspcap
from wspcap.views.report import render_report, write_report

pytest.importorskip("matplotlib")

HOSTILE_URI = '/chat?q="><script>alert(1)</script>'
HOSTILE_ORIGIN = "https://x.example\"><img src=x onerror=alert(2)>"
HOSTILE_TEXT = "<script>alert('text')</script> & <b>bold</b>"
HOSTILE_REASON = "</td></tr><script>alert(3)</script>"
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3",
                "p", "main", "nav", "a", "div", "dl", "dt", "dd", "table", "thead", "tbody",
                "tr", "th", "td", "span", "figure", "img", "figcaption", "details", "summary",
                "section", "b", "code", "em"}


class Page(HTMLParser):
    """Tags, attributes, text, and the cells of each table with an id."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "style":
            self._in_style = True
        if tag == "table" and a.get("id"):
            self._table = a["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if not self._in_style:
            self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


def hostile_capture() -> Any:
    """A conversation whose URI, Origin, message and close reason are markup."""
    from golden.crafted import Conversation, request_head
    from golden.rfc6455 import BINARY, CLOSE, TEXT, close_payload
    conv = Conversation()
    conv.open()
    conv.upgrade(request_head(path=HOSTILE_URI, extra=[f"Origin: {HOSTILE_ORIGIN}"]))
    conv.exchange("c2s", TEXT, HOSTILE_TEXT.encode())
    conv.exchange("s2c", BINARY, b"<script>\x00\xff")
    conv.exchange("c2s", CLOSE, close_payload(1000, HOSTILE_REASON))
    conv.exchange("s2c", CLOSE, close_payload(1000, HOSTILE_REASON))
    conv.close()
    crafted = conv.crafted("hostile")
    records = [(n, round(float(p.time) * 1e9), 1, bytes(p), len(bytes(p)))
               for n, p in enumerate(crafted.packets, 1)]
    return wspcap.from_packets(records, source="hostile<script>.pcap")


class TestContent:
    def test_connections_and_messages(self, samples_dir: Path) -> None:
        truth = T.load(samples_dir / "multi.truth.json")
        cap = wspcap.read(samples_dir / truth["file"])
        page = parse(render_report(cap))
        rows = page.tables["connections"][1:]
        assert len(rows) == len(truth["connections"])
        clients = sorted(r[1] for r in rows)
        assert clients == sorted(f"{tc['client']['ip']}:{tc['client']['port']}"
                                 for tc in truth["connections"])
        uris = sorted(r[3] for r in rows)
        assert uris == sorted(tc["handshake"]["path"] for tc in truth["connections"])
        text = "".join(page.text)
        for tc in truth["connections"]:
            for m in tc["messages"]:
                if m["type"] == "text":
                    assert m["payload"] in text
                elif m["type"] == "binary":  # hex, first bytes
                    assert bytes.fromhex(m["payload"])[:8].hex(" ") in text

    def test_self_contained(self, samples_dir: Path) -> None:
        html = render_report(wspcap.read(samples_dir / "plain.pcap"))
        page = parse(html)
        for tag, attrs in page.tags:
            for name in ("src", "href"):
                value = attrs.get(name)
                if value is not None:
                    assert value.startswith(("data:image/png;base64,", "#")), (tag, value)
            assert tag not in ("script", "link", "iframe", "object")
        imgs = [a for t, a in page.tags if t == "img"]
        assert len(imgs) == 7  # six capture plots and one sequence diagram

    def test_anomalies_explained(self, samples_dir: Path) -> None:
        from wspcap.rules.registry import RULES
        cap = wspcap.read(samples_dir / "plain.pcap")
        text = "".join(parse(render_report(cap)).text)
        for code in set(cap.anomalies.code.astype(str)):
            assert code in text and RULES[code].summary in text

    def test_empty_capture(self) -> None:
        page = parse(render_report(wspcap.from_packets([])))
        assert "No WebSocket connection in this capture." in "".join(page.text)

    def test_cli(self, samples_dir: Path, tmp_path: Path) -> None:
        from wspcap.cli import main
        out = tmp_path / "r.html"
        assert main(["report", str(samples_dir / "fragmented.pcap"), "-o", str(out)]) == 0
        assert len(parse(out.read_text(encoding="utf-8")).tables["connections"]) == 3


class TestEscaping:
    """Capture contents are attacker-controlled: they must stay text."""

    def test_hostile_strings_stay_text(self) -> None:
        cap = hostile_capture()
        assert len(cap.connections) == 1 and cap.connections.uri[0] == HOSTILE_URI
        html = render_report(cap)
        page = parse(html)
        assert {t for t, _ in page.tags} <= ALLOWED_TAGS
        assert not re.search(r"<script", html, re.IGNORECASE)
        for _tag, attrs in page.tags:
            assert not [a for a in attrs if a.startswith("on")]
        text = "".join(page.text)
        for hostile in (HOSTILE_URI, HOSTILE_ORIGIN, HOSTILE_TEXT, HOSTILE_REASON):
            assert hostile in text
        assert "hostile<script>.pcap" in text
        assert "3c 73 63 72 69 70 74 3e 00 ff" in text  # the binary, as hex


class TestInBrowser:
    def test_chromium_renders_connections(self, samples_dir: Path, tmp_path: Path) -> None:
        exe = chromium()
        truth = T.load(samples_dir / "multi.truth.json")
        report = tmp_path / "report.html"
        write_report(wspcap.read(samples_dir / truth["file"]), report)
        done = subprocess.run([exe, *chromium_args(tmp_path / "profile"), "--dump-dom",
                               report.as_uri()], capture_output=True, text=True, timeout=90,
                              check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        page = parse(done.stdout)
        rows = page.tables["connections"][1:]
        assert sorted(r[1] for r in rows) == sorted(
            f"{tc['client']['ip']}:{tc['client']['port']}" for tc in truth["connections"])
        assert "WebSocket report: multi.pcapng" in "".join(page.text)

    def test_chromium_keeps_hostile_strings_as_text(self, tmp_path: Path) -> None:
        """The DOM a browser builds from a hostile capture has no script, no event
        handler, and the hostile strings as text."""
        exe = chromium()
        report = tmp_path / "report.html"
        write_report(hostile_capture(), report)
        done = subprocess.run([exe, *chromium_args(tmp_path / "profile"), "--dump-dom",
                               report.as_uri()], capture_output=True, text=True, timeout=90,
                              check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        page = parse(done.stdout)
        assert {t for t, _ in page.tags} <= ALLOWED_TAGS
        for _tag, attrs in page.tags:
            assert not [a for a in attrs if a.startswith("on")]
        text = "".join(page.text)
        for hostile in (HOSTILE_URI, HOSTILE_ORIGIN, HOSTILE_TEXT, HOSTILE_REASON):
            assert hostile in text


class TestNotebookHelpers:
    """``Capture.conversation`` and ``Capture._repr_html_`` (what notebooks show)."""

    def test_conversation_lists_every_message(self, samples_dir: Path) -> None:
        truth = T.load(samples_dir / "plain.truth.json")
        cap = wspcap.read(samples_dir / truth["file"])
        lines = cap.conversation(0).splitlines()
        messages = truth["connections"][0]["messages"]
        assert len(lines) == 1 + len(messages)
        assert truth["connections"][0]["handshake"]["path"] in lines[0]
        for m in messages:
            if m["type"] == "text" and 0 < len(m["payload"]) <= 80:
                assert any(repr(m["payload"]) in line for line in lines), m["payload"]
            if m["type"] in ("ping", "pong"):  # the samples' pings carry ASCII words
                word = bytes.fromhex(m["payload"]).decode()
                assert any(repr(word) in line for line in lines), word

    def test_conversation_without_handshake(self, repo_root: Path) -> None:
        path = repo_root / "tests" / "golden" / "midstream.pcap"
        if not path.is_file():
            pytest.skip("the crafted midstream capture is missing")
        cap = wspcap.read(path)
        assert "(handshake not captured)" in cap.conversation(0).splitlines()[0]
        with pytest.raises(KeyError):
            cap.conversation(99)

    def test_repr_html_escapes(self) -> None:
        html = hostile_capture()._repr_html_()
        assert not re.search(r"<script", html, re.IGNORECASE)
        page = parse(html)
        assert HOSTILE_URI in "".join(page.text)
        assert "hostile<script>.pcap" in "".join(page.text)


class TestBigCaptures:
    """The report shows summaries and samples: its size does not grow with the
    capture, and every cut says how many rows it left out and where they are."""

    @pytest.fixture(scope="class")
    def busy(self, tmp_path_factory: pytest.TempPathFactory) -> Path:
        from golden.busy import busy_capture
        # 105 connections of 30 messages and a closing handshake each
        folder = tmp_path_factory.mktemp("busy")
        return busy_capture(folder / "busy.pcap", 105, 30)

    def test_size_bound_and_cuts_said(self, busy: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
        from wspcap.cli import main
        out = tmp_path / "r.html"
        assert main(["report", str(busy), "-o", str(out), "--max-messages", "10"]) == 0
        err = capsys.readouterr().err
        assert "sections for 10 of 105 connections (0-9); left out: 10-104" in err
        html = out.read_text(encoding="utf-8")
        assert len(html.encode()) < 1_500_000
        page = parse(html)
        text = " ".join("".join(page.text).split())
        # the connections table: the first 100, and how many more
        assert len(page.tables["connections"]) == 1 + 100
        assert "… 5 more connections not listed here: wspcap analyze busy.pcap -o DIR" in text
        # a section for each of the first 10, each with its first and last messages
        sections = [a["id"] for t, a in page.tags if t == "section"]
        assert sections == [f"conn-{i}" for i in range(10)]
        assert "sections for 10 of 105 connections (0-9); left out: 10-104" in text
        assert text.count("the first 5 and the last 5 listed") == 10
        assert text.count("… 22 more messages not listed here") == 10  # 32 with the closes
        for n in (0, 4, 27, 29):  # first and last messages of a connection shown
            assert f"message {n} of connection 9" in text
        assert "message 5 of connection 9" not in text
        # anomaly rows: the first of each code, and how many more
        codes = wspcap.read(busy).anomalies.code.astype(str).value_counts()
        assert codes.max() > 10
        for code, n in codes.items():
            if n > 10:
                assert f"… {n - 10} more {code} rows not listed here" in text

    def test_chosen_connections(self, busy: Path, tmp_path: Path) -> None:
        from wspcap.cli import main
        out = tmp_path / "r.html"
        assert main(["report", str(busy), "-o", str(out), "--conn", "104,7", "-q"]) == 0
        page = parse(out.read_text(encoding="utf-8"))
        assert [a["id"] for t, a in page.tags if t == "section"] == ["conn-104", "conn-7"]
        ids = [row[0] for row in page.tables["connections"][1:]]
        assert "104" in ids  # a chosen connection past the first 100 is listed too
        assert sum(1 for t, a in page.tags if t == "a" and a.get("href") == "#conn-104") == 1


class TestApplication:
    """What the messages say: the app table's section, checked against the
    application samples' truth (what each side's application sent)."""

    @staticmethod
    def _truth(samples_dir: Path, name: str) -> dict[str, Any]:
        import json
        return json.loads((samples_dir / f"{name}.truth.json").read_text(encoding="utf-8"))

    @staticmethod
    def _row(page: Page) -> dict[str, str]:
        head, *rows = page.tables["app"]
        assert len(rows) == 1
        return dict(zip(head, rows[0]))

    def test_mqtt(self, samples_dir: Path) -> None:
        truth = self._truth(samples_dir, "mqtt")
        cap = wspcap.read(samples_dir / truth["file"])
        html = render_report(cap)
        page = parse(html)
        row = self._row(page)
        sent = truth["connections"][0]["sent"]
        packets = truth["connections"][0]["packets"]
        assert row["protocol"] == "mqtt" and row["confidence"] == "1.0"
        assert int(row["events"]) == len(packets["c2s"]) + len(packets["s2c"])
        publishes = [e for e in sent if e["kind"] == "publish"]
        assert f"publish\xa0×{len(publishes)}" in row["kinds"]
        assert "sensors/temp\xa0×2" in row["channels"]  # sent, then delivered back
        # answered: every QoS 1/2 PUBLISH (both ways), the SUBSCRIBE and the UNSUBSCRIBE
        asked = sum(e["qos"] > 0 for e in publishes) + sum(
            e["kind"] in ("subscribe", "unsubscribe") for e in sent)
        assert int(row["answers"]) == asked == 8
        latency = cap.app["latency"].dropna()
        assert row["latency median"].endswith(("µs", "ms")) and row["latency max"]
        assert latency.max() < pd.Timedelta(1, "s")
        (connect,) = (e for e in sent if e["kind"] == "connect")
        (cred,) = page.tables["app-anomalies"][1:]
        assert cred[2] == "app_credentials_plaintext" and connect["username"] in cred[6]
        assert '<a href="#application">' in html

    def test_socketio_acks(self, samples_dir: Path) -> None:
        truth = self._truth(samples_dir, "socketio")
        page = parse(render_report(wspcap.read(samples_dir / truth["file"])))
        row = self._row(page)
        sent = truth["connections"][0]["sent"]
        assert row["protocol"] == "socketio" and row["confidence"] == "0.9"  # by URI
        assert int(row["answers"]) == sum(e.get("ack_id") is not None
                                          for e in sent if e["kind"] == "event") == 4
        events = sum(e["kind"] == "event" for e in sent)
        assert f"event\xa0×{events}" in row["kinds"]
        creds = page.tables["app-anomalies"][1:]
        assert len(creds) == sum(e["kind"] == "connect" for e in sent)

    def test_nothing_without_app_rows(self, samples_dir: Path) -> None:
        cap = wspcap.read(samples_dir / "multi.pcapng")
        assert cap.app.empty
        html = render_report(cap)
        assert 'id="application"' not in html and "#application" not in html
        assert "app" not in parse(html).tables

    def test_hostile_channels_stay_text(self, samples_dir: Path) -> None:
        cap = wspcap.read(samples_dir / "mqtt.pcapng")
        cap.app["channel"] = pd.array([HOSTILE_TEXT] * len(cap.app), dtype="string")
        page = parse(render_report(cap))
        assert {t for t, _ in page.tags} <= ALLOWED_TAGS
        assert f"{HOSTILE_TEXT}\xa0×{len(cap.app)}" in self._row(page)["channels"]
