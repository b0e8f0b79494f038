"""STOMP decoder: frames from the STOMP 1.2 specification's examples, split/packed, escaping, content-length."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.app.framed_samples import (
    CONVERSATIONS,
    STOMP,
    STOMP_FACTS,
    decode,
    events,
    findings,
    msgs,
)
from wspcap.app.base import AppEvent, AppFinding, AppMessage, ConnFacts
from wspcap.app.stomp import StompDecoder


def run(facts: ConnFacts, messages: list[AppMessage]) -> list[AppEvent | AppFinding]:
    return decode(StompDecoder, facts, messages)


def test_sample_conversation() -> None:
    out = run(STOMP_FACTS, STOMP)
    ev = events(out)
    assert [(e.kind, e.channel, e.id) for e in ev] == [
        ("connect", "broker", None), ("connected", None, None), ("subscribe", "/topic/prices", "0"),
        ("publish", "/queue/a", "r1"), ("receipt", None, "r1"), ("message", "/topic/prices", "m1"),
        ("ping", None, None), ("disconnect", None, "r2")]
    assert ev[3].fields["body"] == "hello" and ["content-type", "text/plain"] in ev[3].fields["headers"]
    assert [(f.code, f.msg_index) for f in findings(out)] == [("app_credentials_in_clear", 0)]
    assert "login bob" in findings(out)[0].detail
    json.dumps([e.fields for e in ev])


def test_packed_split_crlf_and_content_length() -> None:
    body = b"\xff\0b\n\nc"
    frame = b"SEND\r\ndestination:/queue/bin\r\ncontent-length:6\r\n\r\n" + body + b"\0"
    stream = b"\n".join(m.payload for m in STOMP if m.direction == "c2s" and m.payload.strip()) + b"\n" + frame
    whole = [(e.kind, e.channel) for e in events(run(STOMP_FACTS, msgs(("c2s", stream))))]
    assert whole == [("connect", "broker"), ("subscribe", "/topic/prices"), ("publish", "/queue/a"),
                     ("disconnect", None), ("publish", "/queue/bin")]
    for size in (1, 3, 17):
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
        got = run(STOMP_FACTS, msgs(*[("c2s", c) for c in chunks]))
        assert [(e.kind, e.channel) for e in events(got) if e.kind != "ping"] == whole
        assert [f.code for f in findings(got)] == ["app_credentials_in_clear"]
    last = events(run(STOMP_FACTS, msgs(("c2s", stream))))[-1]
    assert last.fields["body_hex"] == body.hex()
    assert [e.part for e in events(run(STOMP_FACTS, msgs(("c2s", stream))))] == [0, 1, 2, 3, 4]


def test_header_escaping_by_version() -> None:
    frame = "MESSAGE\ndestination:/a\\cb\nmessage-id:x\\ny\nsubscription:0\n\n\0"
    v12 = events(run(STOMP_FACTS, msgs(("s2c", frame))))
    assert v12[0].channel == "/a:b" and v12[0].id == "x\ny"
    v10 = events(run(ConnFacts(subprotocol="v10.stomp"), msgs(("s2c", frame))))
    assert v10[0].channel == "/a\\cb"
    bad = run(STOMP_FACTS, msgs(("s2c", "MESSAGE\ndestination:/a\\t\n\n\0"), ("s2c", "RECEIPT\nreceipt-id:1\n\n\0")))
    assert [f.code for f in findings(bad)] == ["app_parse_failed"] and [e.kind for e in events(bad)] == ["receipt"]


def test_other_frames_and_violations() -> None:
    items = msgs(("c2s", "STOMP\naccept-version:1.1,1.2\nhost:h\n\n\0"), ("c2s", "ACK\nid:a1\n\n\0"),
                 ("c2s", "NACK\nid:a2\n\n\0"), ("c2s", "BEGIN\ntransaction:t\n\n\0"), ("c2s", "COMMIT\ntransaction:t\n\n\0"),
                 ("c2s", "ABORT\ntransaction:t\n\n\0"), ("c2s", "UNSUBSCRIBE\nid:0\n\n\0"),
                 ("s2c", "ERROR\nmessage:bad\nreceipt-id:9\n\noops\0"), ("c2s", "SEND\n\nno destination\0"),
                 ("s2c", "SEND\ndestination:/x\n\n\0"))
    out = run(STOMP_FACTS, items)
    assert [(e.kind, e.id) for e in events(out)] == [
        ("connect", None), ("ack", "a1"), ("nack", "a2"), ("transaction", None), ("transaction", None),
        ("transaction", None), ("unsubscribe", "0"), ("error", "9"), ("publish", None), ("publish", None)]
    assert [f.code for f in findings(out)] == ["app_protocol_violation", "app_protocol_violation"]
    assert [f.code for f in findings(run(STOMP_FACTS, msgs(("c2s", "HELLO\n\n\0"))))] == ["app_parse_failed"]
    assert not findings(run(ConnFacts(), msgs(("c2s", "HELLO\n\n\0"))))
    cut = run(STOMP_FACTS, msgs(("c2s", "SEND\ndestination:/x\n\nno end")))
    assert [f.code for f in findings(cut)] == ["app_parse_failed"]


def test_recognize() -> None:
    assert StompDecoder.recognize(STOMP_FACTS, []) == 1.0
    assert StompDecoder.recognize(ConnFacts(subprotocol="v10.stomp"), []) == 1.0
    assert StompDecoder.recognize(ConnFacts(), STOMP) == 0.7
    assert StompDecoder.recognize(ConnFacts(), msgs(("c2s", "CONNECT\nlogin:x\n"))) == 0.5
    for name, (facts, conv) in CONVERSATIONS.items():
        if name != "stomp":
            assert StompDecoder.recognize(facts, conv) == 0.0, name


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["c2s", "s2c"]), st.one_of(
    st.binary(max_size=40),
    st.text(alphabet="SENDMCOTABUR\n\r:\\\0-lgth0123 ", max_size=60).map(str.encode),
)), max_size=12), st.booleans())
def test_random_never_raise(items: list[tuple[str, bytes]], claimed: bool) -> None:
    facts = STOMP_FACTS if claimed else ConnFacts()
    messages = [AppMessage(i, d, "text", p, ts=i) for i, (d, p) in enumerate(items)]
    out = run(facts, messages)
    assert not [f for f in findings(out) if "decoder error" in f.detail]
    json.dumps([e.fields for e in events(out)])
    StompDecoder.recognize(facts, messages)


def test_repeated_header_first_wins_and_heartbeats() -> None:
    frame = "MESSAGE\ndestination:/first\ndestination:/second\nmessage-id:1\nsubscription:0\n\n\0"
    ev = events(run(STOMP_FACTS, msgs(("s2c", frame), ("s2c", "\r\n"), ("c2s", "\n\n"))))
    assert ev[0].channel == "/first"
    assert ev[0].fields["headers"][:2] == [["destination", "/first"], ["destination", "/second"]]
    assert [(e.kind, e.direction) for e in ev[1:]] == [("ping", "s2c"), ("ping", "c2s")]


def test_frame_spanning_messages_reported_where_it_ends() -> None:
    frame = b"SEND\ndestination:/q\n\nhello\0"
    ev = events(run(STOMP_FACTS, msgs(("c2s", frame[:7]), ("c2s", frame[7:20]), ("c2s", frame[20:]))))
    assert [(e.msg_index, e.fields.get("start_msg"), e.fields["body"]) for e in ev] == [(2, 0, "hello")]


def test_oversize_content_length_skipped() -> None:
    from wspcap.app.stomp import MAX_FRAME

    body = b"z" * (MAX_FRAME + 5)
    frame = b"SEND\ndestination:/big\ncontent-length:%d\n\n" % len(body) + body + b"\0"
    tail = b"SEND\ndestination:/after\n\n\0"
    chunks = [frame[i : i + 300_000] for i in range(0, len(frame), 300_000)]
    split = run(STOMP_FACTS, msgs(*[("c2s", c) for c in chunks], ("c2s", tail)))
    assert [f.code for f in findings(split)] == ["app_buffer_limit"]
    assert [e.channel for e in events(split)] == ["/after"]
    whole = run(STOMP_FACTS, msgs(("c2s", frame + tail)))
    assert [f.code for f in findings(whole)] == ["app_buffer_limit"]
    assert [e.channel for e in events(whole)] == ["/after"]


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4),
                    max_leaves=12), st.booleans())
def test_random_json_never_raise(value: object, claimed: bool) -> None:
    text = json.dumps(value).encode()
    facts = STOMP_FACTS if claimed else ConnFacts()
    out = run(facts, [AppMessage(0, "c2s", "text", text), AppMessage(1, "s2c", "text", text + b"\0")])
    assert not [f for f in findings(out) if "decoder error" in f.detail]
    assert not events(out)
    assert StompDecoder.recognize(ConnFacts(), [AppMessage(0, "c2s", "text", text)]) == 0.0


_FRAMES = st.lists(st.one_of(
    st.tuples(st.sampled_from(["SEND", "MESSAGE", "SUBSCRIBE", "ACK", "RECEIPT"]),
              st.sampled_from([b"\n", b"\r\n"]),
              st.lists(st.tuples(st.sampled_from(["destination", "id", "receipt", "x"]),
                                 st.text(alphabet="ab/:0", max_size=6)), max_size=3),
              st.binary(max_size=24), st.booleans()),
    st.sampled_from([b"\n", b"\r\n", b"\n\n"])), min_size=1, max_size=6)


def _stream(frames: list[object]) -> bytes:
    out = b""
    for item in frames:
        if isinstance(item, bytes):  # heart-beats
            out += item
            continue
        command, eol, headers, body, sized = item  # type: ignore[misc]
        if not sized:
            body = body.replace(b"\0", b"")
        head = [command.encode()] + [f"{k}:{v}".encode() for k, v in headers]
        if sized:
            head.append(f"content-length:{len(body)}".encode())
        out += eol.join(head) + eol + eol + body + b"\0"
    return out


@settings(max_examples=300, deadline=None)
@given(_FRAMES, st.lists(st.integers(1, 400), max_size=8))
def test_any_split_gives_the_same_frames(frames: list[object], cuts: list[int]) -> None:
    """The frames of a byte stream cut into messages anywhere are those of the
    stream in one message: a frame's end (an EOL pair, an EOL-CRLF, its NUL)
    found across any cut, the bytes looked through before not looked through
    again wrongly."""
    stream = _stream(frames)
    at = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    pieces = [stream[a:b] for a, b in itertools.pairwise(at) if b > a]

    def frames_of(out: list[AppEvent | AppFinding]) -> list[object]:
        return [(e.kind, e.channel, e.id, json.dumps(e.fields.get("headers")),
                 e.fields.get("body"), e.fields.get("body_hex"))
                for e in events(out) if e.kind != "ping"]

    whole = run(STOMP_FACTS, msgs(("c2s", stream)))
    split = run(STOMP_FACTS, msgs(*[("c2s", p) for p in pieces]))
    assert frames_of(split) == frames_of(whole)
    assert [f.code for f in findings(split)] == [f.code for f in findings(whole)]


def test_text_that_is_not_stomp_is_looked_through_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chat messages given to STOMP (``--decoder stomp`` on the wrong
    traffic) that start as a command could (JSON texts do not, and are
    passed over) wait for a frame's end in a buffer that grows to MAX_FRAME:
    each message's bytes are searched once, not the whole buffer again at
    each message (a quadratic walk: 44 s on the chat benchmark before)."""
    from wspcap.app import stomp

    searched: list[int] = []
    real = stomp._maybe_frame

    def counting(buf: bytearray, version: str | None, since: int = 0) -> object:
        searched.append(len(buf) - since)
        return real(buf, version, since)

    monkeypatch.setattr(stomp, "_maybe_frame", counting)
    message = b'MESSAGE from user-1 to room-1, seq 1: hello there, and no line end'
    count = stomp.MAX_FRAME // len(message) + 100  # (past the cap: dropped up to a NUL)
    decoder = StompDecoder(ConnFacts())
    for i in range(count):
        decoder.receive(AppMessage(i, "c2s", "text", message, ts=i))
    assert len(searched) > stomp.MAX_FRAME // len(message)
    assert sum(searched) <= count * len(message)
    assert not decoder.finish()


def test_what_starts_no_frame_is_passed_over_until_the_conversation_is_stomp() -> None:
    # Not known to be STOMP: a JSON text cannot start a frame, so it is not
    # buffered (where it made one frame with the CONNECT after it, dropped up
    # to its NUL); a message after EOLs, and a partial frame's rest, are read.
    chat = msgs(("c2s", '{"type":"hello"}'), ("s2c", '["json"]'),
                ("c2s", "\nCONNECT\naccept-version:1.2\nhost:h\n\n\0"),
                ("s2c", "CONNECTED\nversion:1.2\n\n\0"),
                ("c2s", "SEND\ndestination:/q\n\n{not"), ("c2s", ' json}\0'))
    assert [(e.kind, e.msg_index) for e in events(run(ConnFacts(), chat))] == [
        ("connect", 2), ("connected", 3), ("publish", 5)]
    assert run(ConnFacts(), chat[:2]) == []
    # Known to be STOMP, the same text is a frame that cannot be read.
    out = run(STOMP_FACTS, chat[:1] + [msgs(("c2s", "\0"))[0]])
    assert [f.code for f in findings(out)] == ["app_parse_failed"]


def test_a_run_of_what_starts_no_frame_still_ends_a_pending_frame() -> None:
    # Run by run (the table's way): a run none of whose messages starts as a
    # frame may is passed over whole, but not while a frame is pending in a
    # buffer, a frame over the cap is being skipped or dropped.
    from wspcap.app.base import MessageRun

    def runs(*parts: list[AppMessage]) -> list[AppEvent | AppFinding]:
        decoder = StompDecoder(ConnFacts())
        out: list[AppEvent | AppFinding] = []
        for part in parts:
            run = MessageRun([m.msg_index for m in part], [m.direction for m in part],
                             [m.type for m in part], [m.payload for m in part],
                             [m.ts for m in part], [m.complete for m in part])
            out += [item for _, got in decoder.receive_run(run) for item in got]
        return out

    sent = msgs(("c2s", "SEND\ndestination:/q\n\n{not"), ("c2s", " json}\0"), ("c2s", "{a}"))
    got = runs(sent[:1], sent[1:])
    assert [(e.kind, e.msg_index) for e in events(got)] == [("publish", 1)]
    assert got == run(ConnFacts(), sent)
    assert runs(sent[2:]) == []
