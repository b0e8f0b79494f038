"""MQTT decoder: paho-mqtt's own packet builders as ground truth, spec-built server packets, split/packed streams."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.app.framed_samples import (
    CONVERSATIONS,
    MQTT,
    MQTT_FACTS,
    decode,
    events,
    findings,
    msgs,
)
from wspcap.app.base import AppEvent, AppFinding, AppMessage, ConnFacts
from wspcap.app.mqtt import MAX_PACKET, MqttDecoder

mqtt = pytest.importorskip("paho.mqtt.client")


class _Sock:
    def close(self) -> None:
        pass


def paho_packets(protocol: int, build: Any) -> list[bytes]:
    """Bytes paho-mqtt's client would write, captured at its send queue (no socket, no broker)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="dev-1", protocol=protocol)
    out: list[bytes] = []

    def queue(command: int, packet: bytes, mid: int, qos: int, info: object = None) -> int:
        out.append(bytes(packet))
        return 0

    client._packet_queue = queue
    client._sock = _Sock()
    build(client)
    client._sock = None
    return out


def run(facts: ConnFacts, messages: list[AppMessage]) -> list[AppEvent | AppFinding]:
    return decode(MqttDecoder, facts, messages)


def client_v311(c: Any) -> None:
    c.username_pw_set("bob", "s3cret")
    c.will_set("status/dev-1", b"gone", qos=1, retain=True)
    c._send_connect(30)
    c._send_publish(7, b"prices/EUR", b"1.08", qos=1, retain=True)
    c._send_publish(8, b"raw", b"\xff\x00", qos=2, dup=True)
    c._send_subscribe(False, [(b"prices/#", 1), (b"news", 0)])
    c._send_unsubscribe(False, [b"news"])
    c._send_command_with_mid(mqtt.PUBREL | 2, 8, False)  # as paho itself sends it
    c._send_simple_command(mqtt.PINGREQ)
    c._send_disconnect()


def test_paho_v311_ground_truth() -> None:
    packets = paho_packets(mqtt.MQTTv311, client_v311)
    out = run(MQTT_FACTS, msgs(*[("c2s", p) for p in packets]))
    ev = events(out)
    assert [(e.kind, e.fields["type"]) for e in ev] == [
        ("connect", "CONNECT"), ("publish", "PUBLISH"), ("publish", "PUBLISH"), ("subscribe", "SUBSCRIBE"),
        ("unsubscribe", "UNSUBSCRIBE"), ("ack", "PUBREL"), ("ping", "PINGREQ"), ("disconnect", "DISCONNECT")]
    conn = ev[0].fields
    assert conn["client_id"] == "dev-1" and conn["username"] == "bob" and conn["password"] == "s3cret"
    assert conn["keep_alive"] == 30 and conn["protocol_level"] == 4 and conn["clean_session"] is True
    assert conn["will_topic"] == "status/dev-1" and conn["will_qos"] == 1 and conn["will_payload"] == "gone"
    assert (ev[1].channel, ev[1].id, ev[1].fields["payload"], ev[1].fields["retain"]) == ("prices/EUR", "7", "1.08", True)
    assert (ev[2].fields["payload_hex"], ev[2].fields["qos"], ev[2].fields["dup"]) == ("ff00", 2, True)
    assert ev[3].channel == "prices/#,news" and ev[3].fields["topics"][0] == {"topic": "prices/#", "qos": 1}
    assert ev[4].fields["topics"] == [{"topic": "news"}] and ev[5].id == "8"
    cred = [f for f in findings(out) if f.code == "app_credentials_in_clear"]
    assert len(cred) == 1 and "user bob" in cred[0].detail and cred[0].msg_index == 0
    assert [f.code for f in findings(out)] == ["app_credentials_in_clear"]
    json.dumps([e.fields for e in ev])


def client_v5(c: Any) -> None:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    c.username_pw_set("alice", "pw")
    connect = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    connect.SessionExpiryInterval = 120
    c._connect_properties = connect
    c._send_connect(10)
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.TopicAlias = 3
    props.UserProperty = ("k", "v")
    props.CorrelationData = b"\x01\x02"
    c._send_publish(9, b"a/b", b"first", qos=1, properties=props)
    c._send_publish(0, b"", b"second", qos=0, properties=props)
    c._send_subscribe(False, [(b"x/+", mqtt.SubscribeOptions(qos=2, noLocal=True))])
    c._send_disconnect()


def test_paho_v5_properties_and_topic_alias() -> None:
    packets = paho_packets(mqtt.MQTTv5, client_v5)
    out = run(MQTT_FACTS, msgs(*[("c2s", p) for p in packets]))
    ev = events(out)
    assert [e.fields["type"] for e in ev] == ["CONNECT", "PUBLISH", "PUBLISH", "SUBSCRIBE", "DISCONNECT"]
    assert ev[0].fields["protocol_level"] == 5 and ev[0].fields["properties"]["session_expiry_interval"] == 120
    assert ev[0].fields["username"] == "alice"
    assert ev[1].channel == "a/b" and ev[1].fields["payload"] == "first" and ev[1].id == "9"
    assert ev[1].fields["properties"]["user_property"] == [["k", "v"]]
    assert ev[1].fields["properties"]["correlation_data"] == "0102"
    assert ev[2].channel == "a/b" and ev[2].fields["topic_from_alias"] is True and ev[2].id is None
    assert ev[3].fields["topics"] == [{"topic": "x/+", "qos": 2, "no_local": True, "retain_as_published": False,
                                       "retain_handling": 0}]
    assert [f.code for f in findings(out)] == ["app_credentials_in_clear"]


def test_server_packets_from_spec() -> None:
    ev = events(run(MQTT_FACTS, MQTT))
    assert [(e.direction, e.kind) for e in ev] == [
        ("c2s", "connect"), ("s2c", "connected"), ("c2s", "subscribe"), ("s2c", "ack"), ("s2c", "publish"),
        ("c2s", "ping"), ("s2c", "pong")]
    assert ev[3].id == "1" and ev[3].fields["codes"] == [1]
    assert ev[4].channel == "prices" and ev[4].fields["payload"] == "1.08"
    refused = events(run(MQTT_FACTS, msgs(("s2c", bytes.fromhex("20020005")))))
    assert refused[0].kind == "error" and refused[0].fields["code"] == 5


def test_split_and_packed_same_events() -> None:
    stream = b"".join(m.payload for m in MQTT if m.direction == "c2s")
    whole = [(e.kind, e.channel, e.id) for e in events(run(MQTT_FACTS, [m for m in MQTT if m.direction == "c2s"]))]
    packed = [(e.kind, e.channel, e.id) for e in events(run(MQTT_FACTS, msgs(("c2s", stream))))]
    bytewise = run(MQTT_FACTS, msgs(*[("c2s", stream[i : i + 1]) for i in range(len(stream))]))
    assert packed == whole
    assert [(e.kind, e.channel, e.id) for e in events(bytewise)] == whole
    assert not findings(bytewise)
    assert [e.part for e in events(run(MQTT_FACTS, msgs(("c2s", stream))))] == list(range(len(whole)))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
def test_random_split(cuts: list[int]) -> None:
    stream = b"".join(m.payload for m in MQTT if m.direction == "c2s")
    chunks, pos = [], 0
    for n in cuts:
        chunks.append(stream[pos : pos + n])
        pos += n
    chunks.append(stream[pos:])
    got = run(MQTT_FACTS, msgs(*[("c2s", c) for c in chunks if c]))
    assert [e.kind for e in events(got)] == ["connect", "subscribe", "ping"]
    assert not findings(got)


def test_violations() -> None:
    long_len = msgs(("c2s", b"\x30\xff\xff\xff\xff\x01"))
    assert [f.code for f in findings(run(MQTT_FACTS, long_len))] == ["app_protocol_violation"]
    qos3 = msgs(("c2s", bytes.fromhex("3606000174000141")))
    codes = [f.code for f in findings(run(MQTT_FACTS, qos3))]
    assert codes == ["app_protocol_violation"]
    bad_flags = msgs(("c2s", bytes.fromhex("8006000100017400")))
    assert "app_protocol_violation" in [f.code for f in findings(run(MQTT_FACTS, bad_flags))]
    text = [AppMessage(0, "c2s", "text", b"\xc0\x00")]
    assert [f.code for f in findings(run(MQTT_FACTS, text))] == ["app_protocol_violation"]
    garbage = msgs(("c2s", bytes.fromhex("1005000141")))
    assert [f.code for f in findings(run(MQTT_FACTS, garbage))] == ["app_parse_failed"]


def test_text_is_not_read_as_mqtt_until_the_conversation_is() -> None:
    # MQTT goes in binary messages (section 6): forced on JSON text (no
    # subprotocol, no CONNECT), nothing; a `{"` would read as a PUBCOMP.
    chat = [AppMessage(i, "c2s" if i % 2 else "s2c", "text", b'{"type":"msg","n":%d}' % i, 10 + i)
            for i in range(6)]
    assert run(ConnFacts(), chat) == []
    connect, publish = paho_packets(mqtt.MQTTv311, lambda c: (c._send_connect(30),
                                                              c._send_publish(7, b"t", b"x", qos=1)))
    # A CONNECT sent as text is read (and flagged): the conversation is MQTT
    # from then on, and the text after it is read and flagged too.
    sent = [*chat[:2], AppMessage(2, "c2s", "text", connect, 20),
            AppMessage(3, "c2s", "text", publish, 21)]
    out = run(ConnFacts(), sent)
    assert [e.kind for e in events(out)] == ["connect", "publish"]
    assert [(f.code, f.msg_index) for f in findings(out)] == [
        ("app_protocol_violation", 2), ("app_protocol_violation", 3)]
    # A binary CONNECT after text: the same, the text before it passed over.
    out = run(ConnFacts(), [*chat[:2], AppMessage(2, "c2s", "binary", connect, 20),
                            AppMessage(3, "c2s", "text", publish, 21)])
    assert [e.kind for e in events(out)] == ["connect", "publish"]
    assert [(f.code, f.msg_index) for f in findings(out)] == [("app_protocol_violation", 3)]
    # Claimed by its subprotocol: text is read and flagged from the start.
    out = run(MQTT_FACTS, chat[:1])
    assert (findings(out)[0].code, findings(out)[0].msg_index) == ("app_protocol_violation", 0)


def test_oversize_packet_skipped_and_stream_kept() -> None:
    size = MAX_PACKET + 10
    header = bytes([0x30]) + bytes([(size & 0x7F) | 0x80, ((size >> 7) & 0x7F) | 0x80, size >> 14])
    body = b"\x00\x01t" + b"x" * (size - 3)
    stream = header + body + bytes.fromhex("c000")
    chunks = [stream[i : i + 65536] for i in range(0, len(stream), 65536)]
    out = run(MQTT_FACTS, msgs(*[("c2s", c) for c in chunks]))
    assert [f.code for f in findings(out)] == ["app_buffer_limit"]
    assert [e.kind for e in events(out)] == ["ping"]


def test_keepalive_missed() -> None:
    connect = bytes.fromhex("100c00044d5154540402000a0000")  # keep-alive 10 s
    ping = bytes.fromhex("c000")
    ok = [AppMessage(0, "c2s", "binary", connect, ts=0), AppMessage(1, "c2s", "binary", ping, ts=14 * 10**9)]
    assert not findings(run(MQTT_FACTS, ok))
    late = [AppMessage(0, "c2s", "binary", connect, ts=1), AppMessage(1, "c2s", "binary", ping, ts=16 * 10**9)]
    got = findings(run(MQTT_FACTS, late))
    assert [(f.code, f.msg_index) for f in got] == [("app_keepalive_missed", 1)]
    silent = [AppMessage(0, "c2s", "binary", connect, ts=1), AppMessage(1, "s2c", "binary", b"\x20\x02\x00\x00",
                                                                         ts=20 * 10**9)]
    assert [f.code for f in findings(run(MQTT_FACTS, silent))] == ["app_keepalive_missed"]


def test_recognize() -> None:
    assert MqttDecoder.recognize(MQTT_FACTS, []) == 1.0
    assert MqttDecoder.recognize(ConnFacts(subprotocol="mqttv3.1"), []) == 1.0
    assert MqttDecoder.recognize(ConnFacts(), MQTT) == 0.7
    assert MqttDecoder.recognize(ConnFacts(), msgs(("c2s", bytes.fromhex("100f00064d51497364700304")))) == 0.7
    assert MqttDecoder.recognize(ConnFacts(), msgs(("c2s", bytes.fromhex("100f0004414d51500304")))) == 0.0
    for name, (facts, conv) in CONVERSATIONS.items():
        if name != "mqtt":
            assert MqttDecoder.recognize(facts, conv) == 0.0, name


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["c2s", "s2c"]), st.binary(max_size=64)), max_size=12),
       st.booleans())
def test_random_bytes_never_raise(items: list[tuple[str, bytes]], claimed: bool) -> None:
    facts = MQTT_FACTS if claimed else ConnFacts()
    out = run(facts, [AppMessage(i, d, "binary", p, ts=i) for i, (d, p) in enumerate(items)])
    assert not [f for f in findings(out) if "decoder error" in f.detail]
    json.dumps([e.fields for e in events(out)])
    MqttDecoder.recognize(facts, [AppMessage(i, d, "binary", p) for i, (d, p) in enumerate(items)])


def test_packet_spanning_messages_reported_where_it_ends() -> None:
    publish = bytes.fromhex("300c0006707269636573") + b"1.08"
    got = events(run(MQTT_FACTS, msgs(("s2c", publish[:1]), ("s2c", publish[1:5]), ("s2c", publish[5:] + b"\xd0\x00"))))
    assert [(e.kind, e.msg_index, e.fields.get("start_msg"), e.part) for e in got] == [
        ("publish", 2, 0, 0), ("pong", 2, None, 1)]


def test_oversize_packet_inside_one_message() -> None:
    size = MAX_PACKET + 10
    header = bytes([0x30]) + bytes([(size & 0x7F) | 0x80, ((size >> 7) & 0x7F) | 0x80, size >> 14])
    stream = header + b"\x00\x01t" + b"x" * (size - 3) + bytes.fromhex("c000")
    out = run(MQTT_FACTS, msgs(("c2s", stream), ("c2s", bytes.fromhex("e000"))))
    assert [f.code for f in findings(out)] == ["app_buffer_limit"]
    assert [e.kind for e in events(out)] == ["ping", "disconnect"]


def test_no_keepalive_finding_after_disconnect() -> None:
    connect = bytes.fromhex("100c00044d5154540402000a0000")
    items = [AppMessage(0, "c2s", "binary", connect, ts=1), AppMessage(1, "c2s", "binary", b"\xe0\x00", ts=2),
             AppMessage(2, "s2c", "binary", b"\xd0\x00", ts=60 * 10**9)]
    assert not findings(run(MQTT_FACTS, items))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _packet(first: int, body: bytes) -> bytes:
    """A control packet built by hand from MQTT 5.0 section 2.1 (fixed header) and 2.2.2 (properties)."""
    return bytes([first]) + _varint(len(body)) + body


def _props(raw: bytes) -> bytes:
    return _varint(len(raw)) + raw


def test_v5_server_packets_by_hand() -> None:
    connect = paho_packets(mqtt.MQTTv5, lambda c: c._send_connect(10))[0]
    connack = _packet(0x20, b"\x00\x00" + _props(b"\x13\x00\x14" + b"\x12\x00\x03abc" + b"\x26\x00\x01a\x00\x01b"))
    suback = _packet(0x90, b"\x00\x05" + _props(b"\x1f\x00\x02ok") + b"\x01\x80")
    puback = _packet(0x40, b"\x00\x09\x10" + _props(b""))
    auth = _packet(0xF0, b"\x18" + _props(b"\x15\x00\x05SCRAM"))
    disconnect = _packet(0xE0, b"\x8e" + _props(b"\x1f\x00\x03bye"))
    out = run(MQTT_FACTS, msgs(("c2s", connect), ("s2c", connack + suback), ("s2c", puback), ("s2c", auth),
                               ("s2c", disconnect)))
    ev = events(out)
    assert [(e.kind, e.id) for e in ev] == [("connect", None), ("connected", None), ("ack", "5"), ("ack", "9"),
                                            ("auth", None), ("disconnect", None)]
    assert ev[1].fields["properties"] == {"server_keep_alive": 20, "assigned_client_identifier": "abc",
                                          "user_property": [["a", "b"]]}
    assert ev[2].fields["codes"] == [1, 0x80] and ev[2].fields["properties"] == {"reason_string": "ok"}
    assert ev[3].fields["code"] == 0x10 and ev[4].fields["properties"]["authentication_method"] == "SCRAM"
    assert ev[5].fields["code"] == 0x8E and ev[2].part == 1
    assert not findings(out)
    unknown = _packet(0x40, b"\x00\x01\x00" + _props(b"\x7f\x01\x02"))
    got = events(run(MQTT_FACTS, msgs(("c2s", connect), ("s2c", unknown), ("s2c", b"\xd0\x00"))))
    assert got[1].fields["properties"] == {"unknown_property": 0x7F} and got[2].kind == "pong"


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4),
                    max_leaves=12), st.booleans())
def test_random_json_never_raise(value: object, claimed: bool) -> None:
    text = json.dumps(value).encode()
    facts = MQTT_FACTS if claimed else ConnFacts()
    out = run(facts, [AppMessage(0, "c2s", "text", text), AppMessage(1, "s2c", "binary", text)])
    assert not [f for f in findings(out) if "decoder error" in f.detail]
    assert MqttDecoder.recognize(ConnFacts(), [AppMessage(0, "c2s", "text", text)]) == 0.0


def test_a_message_of_a_million_packets_is_bounded() -> None:
    """One message packing 200,000 PINGREQs: the first MAX_PACKETS_PER_MESSAGE
    are decoded, the rest passed over with one app_buffer_limit finding."""
    from wspcap.app.mqtt import MAX_PACKETS_PER_MESSAGE

    out = run(MQTT_FACTS, msgs(("c2s", b"\xc0\x00" * 200_000)))
    events = [e for e in out if isinstance(e, AppEvent)]
    limits = [f for f in out if isinstance(f, AppFinding) and f.code == "app_buffer_limit"]
    assert len(events) == MAX_PACKETS_PER_MESSAGE and len(limits) == 1


def test_a_reserved_type_drops_the_rest_of_the_message() -> None:
    """Zeros are reserved packets: one finding, not one per two bytes."""
    out = run(MQTT_FACTS, msgs(("c2s", bytes(1 << 20))))
    found = [f for f in out if isinstance(f, AppFinding)]
    assert [f.code for f in found] == ["app_protocol_violation"]
    assert "reserved packet type 0" in found[0].detail
