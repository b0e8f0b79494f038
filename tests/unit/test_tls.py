"""The TLS layer on real TLS conversations (OpenSSL through Python's ``ssl``).

Each conversation is made in memory by :mod:`golden.tls`: the bytes each side
wrote, the key log the client's context wrote, and the messages each side
sent (the ground truth). The session must give back exactly those messages,
and say what it could not decrypt.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from golden.tls import Conversation, converse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wspcap.tls import (
    KeyLog,
    Lost,
    Plaintext,
    TLSAnomaly,
    TLSSession,
    looks_like_client_hello,
    maybe_client_hello,
)
from wspcap.tls.protection import hkdf_expand_label, tls12_prf
from wspcap.tls.records import parse_client_hello

TESTS = Path(__file__).resolve().parents[1]
MESSAGES = [(0, b"GET /chat HTTP/1.1\r\n\r\n"), (1, b"x" * 40_000), (0, b"hello"),
            (1, bytes(range(256)) * 3), (0, b"")]
MESSAGES = [m for m in MESSAGES if m[1]]


def run(conv: Conversation, keylog: KeyLog | str | None = None,
        session: TLSSession | None = None) -> tuple[list[bytes], list[object], TLSSession]:
    """Feed the conversation in write order; the plaintext per direction and the other events."""
    if session is None:
        keys = keylog if isinstance(keylog, KeyLog) else KeyLog(conv.keylog if keylog is None
                                                                 else keylog)
        session = TLSSession(keys)
    out = [b"", b""]
    events: list[object] = []
    for direction, data in conv.wire:
        events += session.receive_data(direction, data)
    events += session.receive_eof(0) + session.receive_eof(1)
    for event in events:
        if isinstance(event, Plaintext):
            out[event.direction] += event.data
    return out, [e for e in events if not isinstance(e, Plaintext)], session


def sent(conv: Conversation, direction: int) -> bytes:
    return b"".join(conv.sent[direction])


def codes(events: list[object]) -> list[str]:
    return [e.code for e in events if isinstance(e, TLSAnomaly)]


TLS12_SUITES = [
    ("ec", "ECDHE-ECDSA-AES128-GCM-SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
    ("ec", "ECDHE-ECDSA-AES256-GCM-SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
    ("ec", "ECDHE-ECDSA-CHACHA20-POLY1305", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
    ("rsa", "ECDHE-RSA-AES128-GCM-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
    ("rsa", "ECDHE-RSA-AES256-GCM-SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
    ("rsa", "DHE-RSA-AES256-GCM-SHA384", "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"),
    ("rsa", "DHE-RSA-CHACHA20-POLY1305", "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    ("rsa", "DHE-RSA-AES128-SHA256", "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256"),
    ("ec", "ECDHE-ECDSA-AES128-SHA", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"),
    ("ec", "ECDHE-ECDSA-AES256-SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384"),
    ("rsa", "ECDHE-RSA-AES128-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"),
]


@pytest.mark.parametrize(("cert", "openssl_name", "iana_name"), TLS12_SUITES,
                         ids=[s[1] for s in TLS12_SUITES])
def test_tls12_suites(cert: str, openssl_name: str, iana_name: str) -> None:
    conv = converse(MESSAGES, version="1.2", ciphers=openssl_name, cert=cert)
    assert conv.cipher == openssl_name
    out, events, session = run(conv)
    assert out == [sent(conv, 0), sent(conv, 1)]
    assert codes(events) == []
    assert session.info.version_name == "TLS 1.2"
    assert session.info.suite_name == iana_name
    assert session.info.sni == "localhost"
    assert session.info.decrypted


@pytest.mark.parametrize("etm", [True, False])
def test_tls12_cbc_with_and_without_encrypt_then_mac(etm: bool) -> None:
    no_etm = 0 if etm else 0x00080000  # SSL_OP_NO_ENCRYPT_THEN_MAC
    conv = converse(MESSAGES, version="1.2", ciphers="ECDHE-ECDSA-AES128-SHA256",
                    options=no_etm)
    out, _events, session = run(conv)
    assert session.info.encrypt_then_mac is etm
    assert out == [sent(conv, 0), sent(conv, 1)]


def test_tls12_without_forward_secrecy_is_flagged() -> None:
    conv = converse(MESSAGES, version="1.2", ciphers="AES128-GCM-SHA256", cert="rsa")
    out, events, _session = run(conv)
    assert out == [sent(conv, 0), sent(conv, 1)]
    assert codes(events) == ["tls_weak"]
    assert "TLS_RSA_WITH_AES_128_GCM_SHA256" in events[0].detail  # type: ignore[attr-defined]


TLS13_SUITES = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_CCM_SHA256"]


def _converse_with_suite(suite: str, tmp_path: Path) -> Conversation:
    """OpenSSL picks TLS 1.3 suites from its configuration only: a child process with one."""
    conf = tmp_path / "openssl.cnf"
    conf.write_text("openssl_conf = c\n[c]\nssl_conf = s\n[s]\nsystem_default = d\n"
                    f"[d]\nCiphersuites = {suite}\n")
    code = ("import json, sys\nfrom golden.tls import converse\n"
            f"c = converse({MESSAGES!r})\n"
            "print(json.dumps({'wire': [[d, b.hex()] for d, b in c.wire], 'keylog': c.keylog,"
            " 'sent': [[b.hex() for b in s] for s in c.sent], 'cipher': c.cipher}))\n")
    env = dict(os.environ, OPENSSL_CONF=str(conf),
               PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=60, check=True)
    got = json.loads(result.stdout)
    return Conversation(wire=[(d, bytes.fromhex(h)) for d, h in got["wire"]],
                        keylog=got["keylog"],
                        sent=[[bytes.fromhex(h) for h in s] for s in got["sent"]],
                        cipher=got["cipher"])


@pytest.mark.parametrize("suite", TLS13_SUITES)
def test_tls13_suites(suite: str, tmp_path: Path) -> None:
    conv = _converse_with_suite(suite, tmp_path)
    assert conv.cipher == suite
    out, events, session = run(conv)
    assert out == [sent(conv, 0), sent(conv, 1)]
    assert codes(events) == []
    assert session.info.version_name == "TLS 1.3"
    assert session.info.suite_name == suite


@pytest.fixture(scope="module")
def tls13() -> Conversation:
    return converse(MESSAGES, alpn=["http/1.1"])


def test_tls13_default(tls13: Conversation) -> None:
    out, events, session = run(tls13)
    assert out == [sent(tls13, 0), sent(tls13, 1)]
    assert codes(events) == []
    assert session.info.alpn == "http/1.1"  # read from the encrypted EncryptedExtensions
    assert session.info.alpn_offered == ["http/1.1"]


def test_alpn_h2_is_flagged() -> None:
    conv = converse(MESSAGES, alpn=["h2"])
    _out, events, session = run(conv)
    assert session.info.alpn == "h2"
    assert codes(events) == ["tls_alpn_h2"]


def _only(keylog: str, *labels: str) -> str:
    return "".join(line + "\n" for line in keylog.splitlines()
                   if line.split() and line.split()[0] in labels)


def test_tls13_with_only_the_traffic_secrets(tls13: Conversation) -> None:
    keys = _only(tls13.keylog, "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0")
    out, events, _ = run(tls13, keys)
    assert out == [sent(tls13, 0), sent(tls13, 1)]
    assert codes(events) == []


def test_tls13_with_only_the_handshake_secrets(tls13: Conversation) -> None:
    keys = _only(tls13.keylog, "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                 "SERVER_HANDSHAKE_TRAFFIC_SECRET")
    out, events, session = run(tls13, keys)
    assert out == [b"", b""]
    assert session.info.alpn == "http/1.1"  # the handshake itself was decrypted
    assert sorted(codes(events)) == ["tls_keys_missing", "tls_keys_missing"]


def test_tls13_with_one_direction_s_secret(tls13: Conversation) -> None:
    keys = _only(tls13.keylog, "CLIENT_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0")
    out, events, _ = run(tls13, keys)
    assert out == [sent(tls13, 0), b""]
    assert codes(events) == ["tls_keys_missing"]
    assert [e.direction for e in events if isinstance(e, TLSAnomaly)] == [1]


def test_wrong_keys_fail_to_authenticate(tls13: Conversation) -> None:
    wrong = "".join(f"{label} {random} {'00' * (len(secret) // 2)}\n"
                    for label, random, secret in (line.split()
                                                  for line in tls13.keylog.splitlines()
                                                  if not line.startswith("#")))
    out, events, session = run(tls13, wrong)
    assert out == [b"", b""]
    assert sorted(codes(events)) == ["tls_decrypt_failed", "tls_decrypt_failed"]
    assert session.info.records_failed[1] > 1
    assert any(isinstance(e, Lost) for e in events)


def test_other_connections_keys_then_the_right_ones_arrive(tls13: Conversation) -> None:
    other = converse([(0, b"unrelated")])
    keys = KeyLog(other.keylog)
    session = TLSSession(keys)
    out = [b"", b""]
    for direction, data in tls13.wire:
        for event in session.receive_data(direction, data):
            assert not isinstance(event, Plaintext)
    assert not session.info.decrypted
    keys.feed(tls13.keylog, final=True)  # the key log grew, as a browser appends to it
    for event in session.keys_added():
        if isinstance(event, Plaintext):
            out[event.direction] += event.data
    assert out == [sent(tls13, 0), sent(tls13, 1)]


def test_held_records_are_bounded(tls13: Conversation) -> None:
    session = TLSSession(KeyLog(), max_held=10_000)
    _, events, _ = run(tls13, session=session)
    assert "tls_keys_late" in codes(events)
    assert "tls_keys_missing" in codes(events)


def test_a_lost_record_loses_only_itself() -> None:
    messages = [(1, bytes([i]) * 3000) for i in range(8)]
    conv = converse(messages)
    # Drop the server's fourth application write: a hole in the capture.
    writes = [i for i, (d, _) in enumerate(conv.wire) if d == 1]
    dropped = writes[-5]
    session = TLSSession(KeyLog(conv.keylog))
    out = b""
    lost = []
    for i, (direction, data) in enumerate(conv.wire):
        events = (session.receive_gap(direction, len(data)) if i == dropped
                  else session.receive_data(direction, data))
        for event in events:
            if isinstance(event, Plaintext):
                out += event.data
            elif isinstance(event, Lost):
                lost.append(event)
    missing = conv.wire[dropped][1]
    assert len(lost) == 1 and lost[0].size == len(missing)
    expected = [m for _, m in messages]
    # Exactly one message is missing, every other one is there, in order.
    assert any(out == b"".join(expected[:k] + expected[k + 1:]) for k in range(len(expected)))


def test_a_hole_inside_a_record_resyncs() -> None:
    messages = [(1, bytes([i]) * 3000) for i in range(6)]
    conv = converse(messages)
    stream = conv.stream(1)
    session = TLSSession(KeyLog(conv.keylog))
    for direction, data in conv.wire:
        if direction == 0:
            session.receive_data(0, data)
    cut, size = len(stream) - 9000, 100  # inside the fourth-from-last record
    out = b""
    for event in (session.receive_data(1, stream[:cut]) + session.receive_gap(1, size)
                  + session.receive_data(1, stream[cut + size:])):
        if isinstance(event, Plaintext):
            out += event.data
    expected = [m for _, m in messages]
    assert out.endswith(b"".join(expected[-2:]))
    assert out.startswith(b"".join(expected[:2]))


def test_truncated_record_at_the_end(tls13: Conversation) -> None:
    session = TLSSession(KeyLog(tls13.keylog))
    stream = tls13.stream(1)
    events = session.receive_data(0, tls13.stream(0)) + session.receive_data(1, stream[:-10])
    events += session.receive_eof(1)
    lost = [e for e in events if isinstance(e, Lost)]
    assert len(lost) == 1 and lost[0].reason == "record cut at the end"


def test_fatal_alert_in_the_clear() -> None:
    conv = converse([(0, b"x")])
    hello = conv.stream(0)[:conv.wire[0][1].__len__()]
    session = TLSSession()
    session.receive_data(0, hello)
    events = session.receive_data(1, bytes.fromhex("15030300020228"))  # handshake_failure
    assert codes(events) == ["tls_alert_fatal"]
    assert "handshake_failure" in events[0].detail  # type: ignore[attr-defined]


def test_record_too_long() -> None:
    session = TLSSession()
    events = session.receive_data(1, b"\x17\x03\x03" + (20000).to_bytes(2, "big") + b"\0" * 50)
    assert "tls_record_too_long" in codes(events)


def test_clear_hello_facts_without_keys(tls13: Conversation) -> None:
    _, _, session = run(tls13, KeyLog())
    info = session.info
    assert (info.version_name, info.sni, info.alpn_offered) == ("TLS 1.3", "localhost",
                                                                ["http/1.1"])
    assert info.suite_name == "TLS_AES_256_GCM_SHA384" and not info.decrypted
    assert looks_like_client_hello(tls13.stream(0))
    assert parse_client_hello(tls13.stream(0)[9:]).sni == "localhost"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_split_gives_the_same_plaintext(data: st.DataObject) -> None:
    conv = _SPLIT_CONV
    streams = [conv.stream(0), conv.stream(1)]
    session = TLSSession(KeyLog(conv.keylog))
    out = [b"", b""]
    pos = [0, 0]
    # The client's hello and the server's hello come first, as on the wire.
    order = [d for d, _ in conv.wire]
    for direction in order:
        stream = streams[direction]
        if pos[direction] >= len(stream):
            continue
        step = data.draw(st.integers(1, 5000))
        chunk = stream[pos[direction]:pos[direction] + step]
        pos[direction] += len(chunk)
        for event in session.receive_data(direction, chunk):
            if isinstance(event, Plaintext):
                out[event.direction] += event.data
    for direction in (0, 1):
        for event in session.receive_data(direction, streams[direction][pos[direction]:]):
            if isinstance(event, Plaintext):
                out[event.direction] += event.data
    assert out == [sent(conv, 0), sent(conv, 1)]


_SPLIT_CONV = converse([(0, b"a" * 100), (1, b"b" * 5000), (0, b"c"), (1, b"d" * 20000)],
                       version="1.2", ciphers="ECDHE-ECDSA-AES128-SHA")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.binary(max_size=300)), max_size=12))
def test_random_bytes_never_raise(chunks: list[tuple[int, bytes]]) -> None:
    session = TLSSession(KeyLog())
    for direction, chunk in chunks:
        session.receive_data(direction, chunk)
    session.receive_gap(0, 10)
    session.receive_eof(0)
    session.receive_eof(1)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400), st.integers(0, 399), st.integers(0, 255))
def test_mutated_hellos_never_raise(extra: bytes, where: int, value: int) -> None:
    hello = bytearray(_HELLO + extra)
    if where < len(hello):
        hello[where] = value
    session = TLSSession(KeyLog())
    session.receive_data(0, bytes(hello))
    session.receive_eof(0)


_HELLO = converse([(0, b"x")]).wire[0][1]


def test_keylog_format() -> None:
    random, secret = "ab" * 32, "cd" * 48
    text = (f"# comment\nCLIENT_RANDOM {random} {secret}\nnot a line\n"
            f"CLIENT_RANDOM zz {secret}\nCLIENT_TRAFFIC_SECRET_0 {random} {secret[:64]}")
    log = KeyLog()
    assert log.feed(text[:-10]) == 1  # the last line is not whole yet
    assert log.feed(text[-10:], final=True) == 1
    assert log.bad_lines == 2
    assert set(log.secrets(bytes.fromhex(random))) == {"CLIENT_RANDOM",
                                                       "CLIENT_TRAFFIC_SECRET_0"}
    assert KeyLog(log.lines()).secrets(bytes.fromhex(random)) == log.secrets(
        bytes.fromhex(random))


def test_modp_group_is_rfc_3526s() -> None:
    """The DHE tests' prime: RFC 3526's 2048-bit group (its first and last words)."""
    from golden.tls import modp_2048
    p = modp_2048()
    assert p.bit_length() == 2048
    assert f"{p:X}".startswith("FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1")
    assert f"{p:X}".endswith("15728E5A8AACAA68FFFFFFFFFFFFFFFF")


def test_key_schedules_against_rfc_vectors() -> None:
    # RFC 8448 section 3: the server handshake traffic secret and its write key and IV.
    secret = bytes.fromhex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
    assert hkdf_expand_label("sha256", secret, "key", b"", 16) == bytes.fromhex(
        "3fce516009c21727d0f2e4e86ee403bc")
    assert hkdf_expand_label("sha256", secret, "iv", b"", 12) == bytes.fromhex(
        "5d313eb2671276ee13000b30")
    # The TLS 1.2 PRF (P_SHA256) test vector widely used to check implementations.
    out = tls12_prf("sha256", bytes.fromhex("9bbe436ba940f017b17652849a71db35"), b"test label",
                    bytes.fromhex("a0ba9f936cda311827a6f796ffd5198c"), 100)
    assert out[:16] == bytes.fromhex("e3f229ba727be17b8d122620557cd453")


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_resumed_session(version: str) -> None:
    """A resumed session (TLS 1.2 by session ticket or id, TLS 1.3 by PSK) is read
    with the key log lines of its own client random."""
    first = converse(MESSAGES, version=version)
    second = converse([(0, b"again"), (1, b"resumed " * 100)], version=version, resume=first)
    assert second.resumed
    out, events, session = run(second)
    assert out == [sent(second, 0), sent(second, 1)]
    assert codes(events) == []
    assert session.info.decrypted


def test_hello_retry_request() -> None:
    """OpenSSL's server takes only P-384, the client's first key share is X25519:
    a HelloRetryRequest, the client's compatibility ChangeCipherSpec, a second
    ClientHello in the clear, then the handshake."""
    conv = converse(MESSAGES, server_curve="secp384r1")
    out, events, session = run(conv)
    assert session.info.retried
    assert out == [sent(conv, 0), sent(conv, 1)]
    assert codes(events) == []


def _generator():  # type: ignore[no-untyped-def]
    """The crafted captures' generator, whose TLS 1.3 writer is written apart from
    wspcap's (its own HKDF-Expand-Label and AES-GCM sealing)."""
    from golden.paths import anomaly_generator
    return anomaly_generator()


def test_key_update() -> None:
    """A KeyUpdate moves a direction to the next application secret (RFC 8446
    section 7.2); records before and after it are both read."""
    gen = _generator()
    tls = gen.Tls13(gen.Scenario("key-update", ""))
    server = tls.client_hello(), tls.server_flight()
    finished = tls.client_finished()
    before = tls.seal("s2c", b"before the update")
    update = tls.seal("s2c", gen.handshake(24, b"\x00"), 22)  # update_not_requested
    secret = gen.hkdf_label(tls.secrets["SERVER_TRAFFIC_SECRET_0"], "traffic upd", 32)
    tls.keys["s2c"] = (gen.hkdf_label(secret, "key", 16), gen.hkdf_label(secret, "iv", 12))
    tls.seq["s2c"] = 0
    after = tls.seal("s2c", b"after the update")
    session = TLSSession(KeyLog(tls.keylog))
    events = session.receive_data(0, server[0]) + session.receive_data(1, server[1])
    events += session.receive_data(0, finished)
    events += session.receive_data(1, before + update + after)
    plain = b"".join(e.data for e in events if isinstance(e, Plaintext))
    assert plain == b"before the update" + b"after the update"
    assert codes(events) == []


def test_a_client_hello_is_told_from_its_first_bytes(tls13: Conversation) -> None:
    """Every prefix of a ClientHello shorter than six bytes may still be one; the
    sixth byte decides; a byte that cannot start one decides at once."""
    hello = tls13.stream(0)
    assert [maybe_client_hello(hello[:n]) for n in range(1, 7)] == [None] * 5 + [True]
    assert maybe_client_hello(b"GET / HTTP/1.1") is False
    assert maybe_client_hello(b"\x16\x99") is False
    assert maybe_client_hello(hello[:5] + b"\x02") is False  # a ServerHello


# -- one direction's keys late (a key log being written as the capture runs) -------------

PINGPONG = [(d, bytes([65 + i]) * (300 + i)) for i, d in enumerate([0, 1] * 6)]


def _fed(session: TLSSession, conv: Conversation, late: str | None = None, at: int = 0,
         ask: Callable[[], bool] = lambda: True) -> list[object]:
    """The session's events for the conversation fed write by write (the key
    log given ``late`` before write ``at``, or after the last;
    :meth:`TLSSession.keys_added` before each where ``ask()`` says), then
    both ends."""
    events: list[object] = []
    for i, (direction, data) in enumerate([*conv.wire, (None, b"")]):
        if late is not None and i == at:
            session.keylog.feed(late, final=True)
        # (the key log grows for other connections too: each time, the
        # engine asks every session to open what it can)
        if ask():
            events += session.keys_added()
        if direction is not None:
            events += session.receive_data(direction, data)
    return events + session.receive_eof(0) + session.receive_eof(1)


def _runs(events: list[object]) -> list[tuple[int, bytes]]:
    """The plaintext, a run of one direction after another, as the events give it."""
    out: list[tuple[int, bytes]] = []
    for event in events:
        if isinstance(event, Plaintext):
            if out and out[-1][0] == event.direction:
                out[-1] = (event.direction, out[-1][1] + event.data)
            else:
                out.append((event.direction, event.data))
    return out


def _late(keylog: str, *prefixes: str) -> tuple[str, str]:
    """The key log without the lines that begin with ``prefixes``, and those lines."""
    lines = keylog.splitlines(keepends=True)
    late = "".join(line for line in lines if line.startswith(prefixes))
    return "".join(line for line in lines if line not in late), late


@pytest.fixture(scope="module")
def pingpong() -> Conversation:
    return converse(PINGPONG)


@pytest.mark.parametrize("side", ["CLIENT", "SERVER"])
def test_records_of_both_directions_open_in_order_when_one_s_keys_come_late(
        pingpong: Conversation, side: str) -> None:
    # The key log names one direction's secret 0 before the other's: while
    # one direction's records wait for their keys, the other's wait with
    # them, and all open in the order they came, whenever the key comes.
    first, late = _late(pingpong.keylog, f"{side}_TRAFFIC_SECRET_0")
    want = [(d, m) for d, m in PINGPONG]
    assert _runs(_fed(TLSSession(KeyLog(pingpong.keylog)), pingpong)) == want
    for at in range(len(pingpong.wire) + 1):
        session = TLSSession(KeyLog(first), max_held=1 << 20)
        assert _runs(_fed(session, pingpong, late, at)) == want, at


def test_records_held_for_order_alone_are_opened_not_lost(pingpong: Conversation) -> None:
    # The server's secret 0 never comes: the client's records, held while the
    # server's wait, open at their bound, at the end, and when the server's
    # give up; none of them is lost, and only the server's keys are said missing.
    keys, _ = _late(pingpong.keylog, "SERVER_TRAFFIC_SECRET_0")
    client = [(0, m) for d, m in PINGPONG if d == 0]
    for max_held in (1 << 20, 700, 2000):
        session = TLSSession(KeyLog(keys), max_held=max_held)
        out = _runs(_fed(session, pingpong))
        assert [(0, b"".join(m for _, m in out))] == [(0, b"".join(m for _, m in client))]
        _, events, _ = run(pingpong, session=TLSSession(KeyLog(keys), max_held=max_held))
        assert {e.direction for e in events if isinstance(e, Lost | TLSAnomaly)} == {1}
        assert "tls_keys_missing" in codes(events)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["CLIENT", "SERVER", "BOTH", "NONE"]), st.data(),
       st.sampled_from([0, 400, 2000, 1 << 20]))
def test_late_keys_lose_or_reorder_nothing_they_need_not(pingpong: Conversation, side: str,
                                                          data: st.DataObject,
                                                          max_held: int) -> None:
    # Any side's secret 0 (or both, or none) at any write, under any bound:
    # a direction's plaintext is what it sent, or the records said lost are
    # the ones missing from it; where nothing was lost, both directions'
    # plaintexts come in the order they were sent.
    prefixes = {"CLIENT": ("CLIENT_TRAFFIC",), "SERVER": ("SERVER_TRAFFIC",),
                "BOTH": ("CLIENT_TRAFFIC", "SERVER_TRAFFIC"), "NONE": ()}[side]
    first, late = _late(pingpong.keylog, *prefixes)
    at = data.draw(st.integers(0, len(pingpong.wire)))
    events = _fed(TLSSession(KeyLog(first), max_held=max_held), pingpong, late, at,
                  lambda: data.draw(st.booleans()))
    lost = {e.direction for e in events if isinstance(e, Lost)}
    out = [b"".join(e.data for e in events if isinstance(e, Plaintext) and e.direction == d)
           for d in (0, 1)]
    for d in (0, 1):
        if d not in lost:
            assert out[d] == sent(pingpong, d)
        else:  # (what came out is what was sent, less whole records: in order)
            assert len(out[d]) < len(sent(pingpong, d))
    if not lost and not any(isinstance(e, TLSAnomaly) for e in events):
        assert [d for d, _ in _runs(events)] == [d for d, _ in PINGPONG]
