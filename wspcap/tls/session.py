"""One TLS connection, both directions, from TCP bytes to plaintext.

Sans-I/O: performs no I/O. The driver feeds each direction's reassembled TCP
stream through :meth:`TLSSession.receive_data` (with the stream offset of the
bytes), reports holes through :meth:`TLSSession.receive_gap`, and gets back
events: :class:`Plaintext` (the decrypted application data of one record,
with the stream offset of that record's first byte), :class:`Lost`
(plaintext the session could not give: a hole in the capture, a record that
did not authenticate, records held past the bound) and :class:`TLSAnomaly`
(a finding with its catalog code). The clear facts of the handshake are in
:attr:`TLSSession.info` as soon as they are seen, with or without keys.

Design note
-----------
Records are cut from each direction's stream by their 5-byte header. Records
before the change to encryption are read in the clear: the ClientHello and
ServerHello give the randoms, the version and the suite. Keys come from a
:class:`~wspcap.tls.keylog.KeyLog` when the first protected record needs them:

- TLS 1.3: a direction starts under its handshake traffic secret and moves
  to application traffic secret 0 after its Finished; a KeyUpdate moves it
  to the next secret. When the handshake secret is missing from the key log
  but secret 0 is there, the encrypted handshake records are passed over
  (they are the only records that secret 0 does not open) and application
  data is read from the first record secret 0 opens.
- TLS 1.2: each direction is protected from its ChangeCipherSpec on, with
  the keys the PRF derives from the logged master secret and both randoms.

Records that need keys not (yet) in the key log are held, up to
``max_held`` bytes per direction, so a key log that is appended to while a
live capture runs can still open them (:meth:`TLSSession.keys_added`).
While one direction waits so, the other direction's records are held too
(its keys may be known: a key log names one direction's secret a line
before the other's), and both open together, in the order they came: a
request is not read after its answer, a ping after its pong. What is held
for order alone is opened in place rather than lost, at its bound, at the
end of either direction, or when the waiting direction gives up.

After a hole, record boundaries are lost: the session looks for the next
offset where a plausible record header starts and whose record opens under
the current key with one of the next :data:`MAX_SKIP` sequence numbers (the
records lost in the hole used theirs up), and goes on from there.

A direction in its steady state can also be read a run of segments at a
time, and a direction whose keys are missing passed over a run at a time:
the block path, in :mod:`wspcap.tls.runs`. A run changes nothing by itself:
the session's state moves only through its own methods
(:meth:`TLSSession.commit_run`, :meth:`TLSSession.pass_commit`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wspcap.tls.keylog import KeyLog
from wspcap.tls.protection import (
    DecryptError,
    RecordProtection,
    tls12_protections,
    tls13_next_secret,
    tls13_protection,
)
from wspcap.tls.records import (
    ALERT,
    ALERT_DESCRIPTIONS,
    APPLICATION_DATA,
    CHANGE_CIPHER_SPEC,
    CLIENT_HELLO,
    ENCRYPTED_EXTENSIONS,
    FINISHED,
    HANDSHAKE,
    HEADER_LEN,
    KEY_UPDATE,
    MAX_CIPHERTEXT_12,
    MAX_CIPHERTEXT_13,
    SERVER_HELLO,
    TLSParseError,
    parse_client_hello,
    parse_encrypted_extensions,
    parse_server_hello,
    version_name,
)
from wspcap.tls.runs import KeylessRun, TLSRun, scan_keyless, scan_runs
from wspcap.tls.suites import SUITES, suite_name

__all__ = ["C2S", "MAX_SKIP", "S2C", "HoldBudget", "Lost", "Plaintext", "TLSAnomaly",
           "TLSInfo", "TLSSession"]

C2S, S2C = 0, 1
#: Sequence numbers tried past the expected one when looking for the next
#: record after a hole.
MAX_SKIP = 64
#: Default bound on protected bytes held per direction while keys are missing.
MAX_HELD = 4 << 20
#: Default bound on those bytes for all connections together (see HoldBudget).
MAX_HELD_TOTAL = 64 << 20
#: Longest handshake message kept for parsing (a certificate chain fits).
MAX_HANDSHAKE = 1 << 20
TLS13 = 0x0304


@dataclass(frozen=True, slots=True)
class Plaintext:
    """Decrypted application data of one record."""

    direction: int
    data: bytes
    offset: int


@dataclass(frozen=True, slots=True)
class Lost:
    """Plaintext that will not come: ``size`` stream bytes at ``offset`` could not be read."""

    direction: int
    offset: int
    size: int
    reason: str
    #: The plaintext bytes lost, where the record layout tells them exactly.
    plain: int | None = None


@dataclass(frozen=True, slots=True)
class TLSAnomaly:
    """A finding, by its catalog code."""

    code: str
    direction: int
    offset: int
    detail: str


@dataclass(slots=True)
class TLSInfo:
    """The clear facts of a connection's handshake, and how decryption went."""

    client_random: bytes | None = None
    server_random: bytes | None = None
    sni: str | None = None
    alpn_offered: list[str] = field(default_factory=list)
    alpn: str | None = None
    version: int | None = None
    suite: int | None = None
    encrypt_then_mac: bool = False
    retried: bool = False
    #: Whether some record was decrypted.
    decrypted: bool = False
    #: Records decrypted and not, by direction.
    records_decrypted: list[int] = field(default_factory=lambda: [0, 0])
    records_failed: list[int] = field(default_factory=lambda: [0, 0])

    @property
    def version_name(self) -> str | None:
        """``TLS 1.3`` and the like."""
        return None if self.version is None else version_name(self.version)

    @property
    def suite_name(self) -> str | None:
        """IANA's name of the suite chosen."""
        return None if self.suite is None else suite_name(self.suite)


Event = Plaintext | Lost | TLSAnomaly


class _Direction:
    """One direction's record stream."""

    __slots__ = (
        "alert_fatal",
        "application",
        "arrivals",
        "buf",
        "encrypted",
        "failing",
        "handshake",
        "held",
        "held_bytes",
        "later",
        "missing_said",
        "offset",
        "protection",
        "resync",
    )

    def __init__(self) -> None:
        self.buf = bytearray()
        #: Stream offset of ``buf[0]``.
        self.offset = 0
        #: Records are protected from here on (TLS 1.2: after ChangeCipherSpec).
        self.encrypted = False
        self.protection: RecordProtection | None = None
        #: TLS 1.3: the protection after this stage's (secret 0 after the handshake's).
        self.later: RecordProtection | None = None
        #: Handshake bytes not yet cut into messages.
        self.handshake = bytearray()
        #: Protected records waiting for keys: (header, fragment, offset).
        self.held: list[tuple[bytes, bytes, int]] = []
        self.arrivals: list[int] = []
        self.held_bytes = 0
        self.resync = False
        self.missing_said = False
        #: Consecutive records that did not open.
        self.failing = 0
        self.alert_fatal = False
        #: TLS 1.3: the handshake is over, records are under the application secrets.
        self.application = False


class HoldBudget:
    """Protected bytes the TLS connections of a capture may hold for want of
    keys, all together: each direction's own bound (``max_held``) times many
    connections whose keys never come (a busy interface followed live) would
    be no bound at all.

    Args:
        limit: the bytes that may be held at once.
    """

    __slots__ = ("held", "limit")

    def __init__(self, limit: int = MAX_HELD_TOTAL) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> bool:
        """Hold ``size`` more bytes, if the budget allows; whether it did."""
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def give_back(self, size: int) -> None:
        """``size`` held bytes were let go (opened, or dropped)."""
        self.held -= size


class TLSSession:
    """A TLS connection's two directions, decrypted with a key log.

    Args:
        keylog: the secrets to decrypt with (may grow later: :meth:`keys_added`).
        max_held: protected bytes held per direction while their keys are missing.
        budget: the bytes held by all connections together (their own if None).
    """

    def __init__(self, keylog: KeyLog | None = None, max_held: int = MAX_HELD,
                 budget: HoldBudget | None = None) -> None:
        self.keylog = keylog if keylog is not None else KeyLog()
        self.max_held = max_held
        self.budget = budget if budget is not None else HoldBudget()
        self.info = TLSInfo()
        self._dirs = (_Direction(), _Direction())
        self._events: list[Event] = []
        #: The ServerHello was just read: records held for it may open now.
        self._replay = False
        #: Counts records held, to open them in the order they came.
        self._arrivals = 0

    # -- input ---------------------------------------------------------------------------

    def receive_data(self, direction: int, data: bytes, offset: int | None = None) -> list[Event]:
        """Take the next in-order bytes of a direction; ``offset`` is their stream offset."""
        d = self._dirs[direction]
        if d.buf:
            d.buf += data
            pos = self._cut(direction, d, d.buf)
            del d.buf[:pos]
        else:  # most segments end on a record boundary: walk them in place
            if offset is not None:
                d.offset = offset
            pos = self._cut(direction, d, data)
            if pos < len(data):
                d.buf += data[pos:]
        d.offset += pos
        return self._take()

    def receive_gap(self, direction: int, size: int) -> list[Event]:
        """``size`` bytes of a direction are missing from the capture, here."""
        d = self._dirs[direction]
        lost = len(d.buf) + size
        self._events.append(Lost(direction, d.offset, lost, "gap in the capture"))
        d.offset += lost
        d.buf.clear()
        d.handshake.clear()
        d.resync = True
        return self._take()

    def receive_eof(self, direction: int) -> list[Event]:
        """The direction ended; a record it cut short is lost."""
        d = self._dirs[direction]
        if d.buf:
            self._events.append(Lost(direction, d.offset, len(d.buf), "record cut at the end"))
            d.offset += len(d.buf)
            d.buf.clear()
        if self._waits(direction) and not d.missing_said:
            self._say_missing(direction, d, d.held[0][2])
        # (what either direction holds for order alone opens now: the
        # direction is over, so is the wait for its keys)
        self._open_held()
        return self._take()

    def keys_added(self) -> list[Event]:
        """The key log grew: open the records held for want of keys, once no
        direction still waits for its own (both open together, in order)."""
        if not (self._waits(0) or self._waits(1)):
            self._open_held()
        return self._take()

    def _waits(self, direction: int) -> bool:
        """The direction holds records for want of its keys."""
        d = self._dirs[direction]
        return bool(d.held) and not self._keys(direction, d)

    def _open_held(self) -> None:
        """Open the held records of every direction whose keys are known, in the
        order they arrived (so both directions' records interleave as captured)."""
        ready = [(arrival, direction, record)
                 for direction, d in enumerate(self._dirs) if d.held and self._keys(direction, d)
                 for arrival, record in zip(d.arrivals, d.held, strict=True)]
        for direction in {r[1] for r in ready}:
            d = self._dirs[direction]
            self.budget.give_back(d.held_bytes)
            d.held, d.arrivals, d.held_bytes = [], [], 0
        for _arrival, direction, (header, fragment, offset) in sorted(ready,
                                                                      key=lambda r: r[0]):
            self._open_record(direction, self._dirs[direction], header, fragment, offset)

    def _open_held_of(self, direction: int, d: _Direction) -> None:
        self.budget.give_back(d.held_bytes)
        held, d.held, d.arrivals, d.held_bytes = d.held, [], [], 0
        for header, fragment, offset in held:
            self._open_record(direction, d, header, fragment, offset)

    def _take(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    # -- runs (the block path: wspcap.tls.runs) -------------------------------------------

    def run_ready(self, direction: int) -> bool:
        """The direction is in its steady state: application data under known
        keys, nothing held, no partial record, no hole to resynchronize after:
        :meth:`scan_run` and :meth:`commit_run` may stand in for
        :meth:`receive_data` (see :mod:`wspcap.engine.runs`)."""
        d = self._dirs[direction]
        return (d.encrypted and d.protection is not None and d.later is None
                and not (d.buf or d.held or d.resync or d.failing or d.alert_fatal
                         or d.handshake or self._replay or self._dirs[1 - direction].held))

    def scan_run(self, direction: int, buf: bytes, ps: np.ndarray, pe: np.ndarray) -> TLSRun:
        """The records whole in the segments ``buf[ps[j]:pe[j]]`` (the
        direction's next in-order TCP payloads, at least one), decrypted, up
        to the first that is not plain application data under the current keys
        (a handshake message, an alert, one that does not authenticate, a
        header out of place): that one and what follows are left to
        :meth:`receive_data`. Changes nothing (see :meth:`commit_run`); for a
        direction that is :meth:`run_ready`. :func:`wspcap.tls.runs.scan_runs`
        does the same for many runs at once."""
        return scan_runs(buf, [(self, direction, len(ps))], ps, pe)[0]

    def run_start(self, direction: int) -> tuple[RecordProtection, int, int]:
        """What :func:`wspcap.tls.runs.scan_runs` reads of a :meth:`run_ready`
        direction: its protection (at the next record's sequence number), the
        stream offset of its next byte and the longest record fragment allowed."""
        d = self._dirs[direction]
        assert d.protection is not None
        return d.protection, d.offset, self._limit()

    def keyless_ready(self, direction: int) -> bool:
        """The direction is protected and its keys are not in the key log, its
        missing keys said, nothing held, no hole to resynchronize after: each
        application data record longer than :attr:`max_held` is then only a
        :class:`Lost` event (see :meth:`pass_scan`)."""
        d = self._dirs[direction]
        return (d.encrypted and d.protection is None and d.missing_said
                and not (d.held or d.resync or d.handshake or self._replay)
                and not self._keys(direction, d))

    def pass_scan(self, direction: int, buf: bytes, ps: np.ndarray, pe: np.ndarray
                  ) -> KeylessRun:
        """What :meth:`receive_data` would do with the segments ``buf[ps[j]:pe[j]]``
        (a :meth:`keyless_ready` direction's next in-order TCP payloads, at
        least one) up to the first record that is not application data
        longer than :attr:`max_held`: report each whole record lost for want
        of keys (a :class:`Lost` event each, which tells nothing to a
        direction that has had no plaintext) and keep the start of the next.
        Changes nothing (see :meth:`pass_commit`)."""
        d = self._dirs[direction]
        return scan_keyless(d.buf, d.offset, self.max_held, self._limit(), buf, ps, pe)

    def pass_commit(self, direction: int, run: KeylessRun) -> None:
        """After :meth:`pass_scan`: the caller took its segments."""
        d = self._dirs[direction]
        d.offset += len(d.buf) + run.size - len(run.tail)
        d.buf = bytearray(run.tail)

    def first_needed(self, direction: int) -> int:
        """The TCP stream offset of the direction's first byte whose record has
        not been given out yet (a held record's, or a partial record's): the
        caller may forget where the bytes before it came from."""
        d = self._dirs[direction]
        return d.held[0][2] if d.held else d.offset

    def commit_run(self, direction: int, run: TLSRun, segments: int, tail: bytes) -> None:
        """After :meth:`scan_run`: the caller took the first ``segments`` of
        its segments (and the plaintext of every record whole in them);
        ``tail`` is the bytes of those segments after the last such record."""
        if not segments:
            return
        d = self._dirs[direction]
        records = run.records_before(segments)
        protection = d.protection
        assert protection is not None
        protection.resume_at(run.seq + records)
        d.offset = run.offset + int(run.ends[segments - 1]) - len(tail)
        d.buf = bytearray(tail)
        if records:
            self.info.decrypted = True
            self.info.records_decrypted[direction] += records

    # -- records ---------------------------------------------------------------------------

    def _limit(self) -> int:
        return MAX_CIPHERTEXT_13 if self.info.version == TLS13 else MAX_CIPHERTEXT_12

    def _plausible(self, buf: bytes | bytearray, i: int) -> bool:
        return (buf[i] in (CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA)
                and buf[i + 1] == 3 and buf[i + 2] <= 4
                and int.from_bytes(buf[i + 3:i + 5], "big") <= self._limit())

    def _cut(self, direction: int, d: _Direction, buf: bytes | bytearray) -> int:
        """Read the whole records at the start of ``buf`` (whose first byte is at
        ``d.offset``); return how many bytes were consumed."""
        pos = 0
        limit = self._limit()
        while len(buf) - pos >= HEADER_LEN:
            if d.resync:
                found = self._find_record(direction, d, buf, pos)
                if found is None:
                    # Keep only what may still hold the start of a record.
                    keep = max(pos, len(buf) - HEADER_LEN - limit)
                    if keep > pos:
                        self._events.append(Lost(direction, d.offset + pos, keep - pos,
                                                 "looking for a record after a hole"))
                    pos = keep
                    break
                if found > pos:
                    self._events.append(Lost(direction, d.offset + pos, found - pos,
                                             "part of a record cut by a hole"))
                pos = found
                if d.resync:  # the header is there but its record is not whole yet
                    break
                continue
            ctype = buf[pos]
            length = int.from_bytes(buf[pos + 3:pos + 5], "big")
            if ctype not in (CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA) \
                    or buf[pos + 1] != 3:
                self._events.append(TLSAnomaly(
                    "tls_record_invalid", direction, d.offset + pos,
                    f"type={ctype}, version=0x{buf[pos + 1]:02x}{buf[pos + 2]:02x}"))
                d.resync = True
                continue
            if length > limit:
                self._events.append(TLSAnomaly(
                    "tls_record_too_long", direction, d.offset + pos,
                    f"length={length} > {limit}"))
                d.resync = True
                pos += 1
                continue
            end = pos + HEADER_LEN + length
            if end > len(buf):
                break
            header = bytes(buf[pos:pos + HEADER_LEN])
            fragment = bytes(buf[pos + HEADER_LEN:end])
            self._record(direction, d, header, fragment, d.offset + pos)
            pos = end
            if self._replay:
                self._replay = False
                self._open_held()
        return pos

    def _find_record(self, direction: int, d: _Direction, buf: bytes | bytearray,
                     start: int) -> int | None:
        """The position of the next record that opens (clears ``d.resync`` when whole)."""
        for i in range(start, len(buf) - HEADER_LEN + 1):
            if not self._plausible(buf, i):
                continue
            end = i + HEADER_LEN + int.from_bytes(buf[i + 3:i + 5], "big")
            if end > len(buf):
                return i  # wait for the rest of this candidate
            if d.protection is None or not d.encrypted:
                d.resync = False
                return i
            header = bytes(buf[i:i + HEADER_LEN])
            fragment = bytes(buf[i + HEADER_LEN:end])
            first = d.protection.seq
            for seq in range(first, first + MAX_SKIP):
                try:
                    d.protection.decrypt(header, fragment, seq)
                except DecryptError:
                    continue
                d.protection.resume_at(seq)  # read it again below, as the next record
                d.resync = False
                return i
        return None

    def _record(self, direction: int, d: _Direction, header: bytes, fragment: bytes,
                offset: int) -> None:
        ctype = header[0]
        tls13 = self.info.version == TLS13
        if ctype == CHANGE_CIPHER_SPEC:
            # TLS 1.2: protected from here on. TLS 1.3's compatibility
            # ChangeCipherSpec changes nothing: it comes where the records are
            # protected anyway, or (after a HelloRetryRequest) before the
            # client's second ClientHello, in the clear.
            if not tls13 and not self.info.retried:
                d.encrypted = True
            return
        if ctype == APPLICATION_DATA and (tls13 or self.info.version is None):
            d.encrypted = True
        if not d.encrypted:
            if ctype == HANDSHAKE:
                self._handshake_bytes(direction, d, fragment, offset)
            elif ctype == ALERT:
                self._alert(direction, d, fragment, offset)
            return
        self._protected(direction, d, header, fragment, offset)

    def _protected(self, direction: int, d: _Direction, header: bytes, fragment: bytes,
                   offset: int) -> None:
        keyed = self._keys(direction, d)
        waits = self._waits(1 - direction)  # (then this record waits with it, for order)
        if keyed and not waits and (d.held or self._dirs[1 - direction].held):
            self._open_held()  # in order: the held records come first
        if not keyed or waits:
            own = d.held_bytes + len(fragment) <= self.max_held
            if own and self.budget.take(len(fragment)):
                d.held.append((header, fragment, offset))
                d.arrivals.append(self._arrivals)
                self._arrivals += 1
                d.held_bytes += len(fragment)
                return
            if keyed:  # (held for order alone: opened in place, this one after them)
                self._open_held_of(direction, d)
            else:
                self._say_missing(direction, d, offset)
                self._events.append(Lost(direction, offset, HEADER_LEN + len(fragment),
                                         "no keys for this record"))
                if d.held:
                    bound = (f", all connections holding {self.budget.held} together"
                             if own else "")  # (past the budget, not this direction's bound)
                    self._events.append(TLSAnomaly(
                        "tls_keys_late", direction, offset,
                        f"held {d.held_bytes} bytes waiting for keys{bound}; later records "
                        "not kept"))
                    for h, f, o in d.held:
                        self._events.append(Lost(direction, o, HEADER_LEN + len(f),
                                                 "no keys for this record"))
                    self.budget.give_back(d.held_bytes)
                    d.held, d.arrivals, d.held_bytes = [], [], 0
                    self._open_held()  # (the other direction's, held for order)
                return
        self._open_record(direction, d, header, fragment, offset)

    def _open_record(self, direction: int, d: _Direction, header: bytes, fragment: bytes,
                     offset: int) -> None:
        """Decrypt a record of a direction whose keys were known."""
        if not self._keys(direction, d):
            # (they went meanwhile: the held records opened before it ended
            # the handshake, secret 0 not yet known; held again, as it came)
            self._protected(direction, d, header, fragment, offset)
            return
        protection = d.protection
        assert protection is not None
        try:
            ctype, plain = protection.decrypt(header, fragment)
        except DecryptError as exc:
            if d.later is not None:
                try:
                    ctype, plain = d.later.decrypt(header, fragment, 0)
                except DecryptError:
                    pass
                else:
                    d.protection, d.later = d.later, None
                    self._opened(direction, d, ctype, plain, offset)
                    return
                if d.later is not None and protection.secret == b"":
                    # Only secret 0 is known: this is an encrypted handshake record.
                    protection.resume_at(protection.seq + 1)
                    return
            self.info.records_failed[direction] += 1
            d.failing += 1
            if d.failing == 1:
                self._events.append(TLSAnomaly(
                    "tls_decrypt_failed", direction, offset,
                    f"record of {len(fragment)} bytes, seq={protection.seq}: {exc}"))
            self._events.append(Lost(direction, offset, HEADER_LEN + len(fragment),
                                     "record does not authenticate",
                                     protection.plaintext_size(len(fragment))))
            protection.resume_at(protection.seq + 1)
            return
        self._opened(direction, d, ctype, plain, offset)

    def _opened(self, direction: int, d: _Direction, ctype: int, plain: bytes,
                offset: int) -> None:
        d.failing = 0
        self.info.decrypted = True
        self.info.records_decrypted[direction] += 1
        if ctype == APPLICATION_DATA:
            if plain:
                self._events.append(Plaintext(direction, plain, offset))
        elif ctype == HANDSHAKE:
            self._handshake_bytes(direction, d, plain, offset)
        elif ctype == ALERT:
            self._alert(direction, d, plain, offset)

    def _alert(self, direction: int, d: _Direction, body: bytes, offset: int) -> None:
        if len(body) < 2:
            return
        level, description = body[0], body[1]
        if level == 2 and not d.alert_fatal:
            d.alert_fatal = True
            name = ALERT_DESCRIPTIONS.get(description, f"unknown-{description}")
            self._events.append(TLSAnomaly("tls_alert_fatal", direction, offset,
                                           f"description={name} ({description})"))

    # -- handshake -------------------------------------------------------------------------

    def _handshake_bytes(self, direction: int, d: _Direction, data: bytes, offset: int) -> None:
        hs = d.handshake
        hs += data
        while len(hs) >= 4:
            length = int.from_bytes(hs[1:4], "big")
            if length > MAX_HANDSHAKE:
                hs.clear()
                return
            if len(hs) < 4 + length:
                return
            kind = hs[0]
            body = bytes(hs[4:4 + length])
            del hs[:4 + length]
            try:
                self._message(direction, d, kind, body, offset)
            except TLSParseError as exc:
                self._events.append(TLSAnomaly("tls_handshake_invalid", direction, offset,
                                               f"message type {kind}: {exc}"))

    def _message(self, direction: int, d: _Direction, kind: int, body: bytes,
                 offset: int) -> None:
        info = self.info
        if kind == CLIENT_HELLO and direction == C2S:
            hello = parse_client_hello(body)
            info.client_random = hello.random
            info.sni = hello.sni
            info.alpn_offered = hello.alpn
            self._replay = True
        elif kind == SERVER_HELLO and direction == S2C:
            server = parse_server_hello(body)
            if server.retry:
                info.retried = True
                info.suite = server.suite
                return
            info.server_random = server.random
            info.version = server.version
            info.suite = server.suite
            info.encrypt_then_mac = server.encrypt_then_mac
            if server.alpn is not None:
                info.alpn = server.alpn
            self._hello_findings(offset)
            if server.version == TLS13:
                d.encrypted = True
            self._replay = True
        elif kind == ENCRYPTED_EXTENSIONS:
            alpn = parse_encrypted_extensions(body)
            if alpn is not None:
                info.alpn = alpn
                self._alpn_finding(offset)
        elif kind == FINISHED and info.version == TLS13 and not d.application:
            d.application = True
            d.protection, d.later = d.later, None
        elif kind == KEY_UPDATE and info.version == TLS13 and d.protection is not None:
            old = d.protection
            suite = old.suite
            if old.secret:
                d.protection = tls13_protection(suite, tls13_next_secret(suite.hash, old.secret))

    def _hello_findings(self, offset: int) -> None:
        info = self.info
        assert info.version is not None and info.suite is not None
        if info.version < 0x0303:
            self._events.append(TLSAnomaly("tls_weak", S2C, offset,
                                           f"version={version_name(info.version)}"))
        else:
            suite = SUITES.get(info.suite)
            if suite is not None and not suite.forward_secret:
                self._events.append(TLSAnomaly(
                    "tls_weak", S2C, offset, f"suite={suite.name} (no forward secrecy)"))
        if info.alpn is not None:
            self._alpn_finding(offset)

    def _alpn_finding(self, offset: int) -> None:
        if self.info.alpn == "h2":
            self._events.append(TLSAnomaly("tls_alpn_h2", S2C, offset, "alpn=h2"))

    # -- keys ------------------------------------------------------------------------------

    def _keys(self, direction: int, d: _Direction) -> bool:
        """Set up ``d``'s protection from the key log; whether it could be."""
        if d.protection is not None:
            return True
        info = self.info
        if info.client_random is None or info.suite is None or info.version is None:
            return False
        suite = SUITES.get(info.suite)
        if suite is None:
            return False
        secrets = self.keylog.secrets(info.client_random)
        if info.version == TLS13:
            side = "CLIENT" if direction == C2S else "SERVER"
            handshake = (None if d.application
                         else secrets.get(f"{side}_HANDSHAKE_TRAFFIC_SECRET"))
            traffic = secrets.get(f"{side}_TRAFFIC_SECRET_0")
            if handshake is None and traffic is None:
                return False
            if handshake is not None:
                d.protection = tls13_protection(suite, handshake)
                d.later = tls13_protection(suite, traffic) if traffic is not None else None
            else:
                assert traffic is not None
                d.later = tls13_protection(suite, traffic)
                if not d.application:
                    # Handshake records cannot be opened: pass them over (see the design note).
                    d.protection = _Skipper(d.later)
                else:
                    d.protection, d.later = d.later, None
            return True
        master = secrets.get("CLIENT_RANDOM")
        if master is None or info.server_random is None:
            return False
        client, server = tls12_protections(suite, master, info.client_random,
                                           info.server_random, info.encrypt_then_mac)
        d.protection = client if direction == C2S else server
        return True

    def _say_missing(self, direction: int, d: _Direction, offset: int) -> None:
        if d.missing_said:
            return
        d.missing_said = True
        random = self.info.client_random.hex() if self.info.client_random else "unknown"
        self._events.append(TLSAnomaly("tls_keys_missing", direction, offset,
                                       f"client_random={random}"))


class _Skipper(RecordProtection):
    """Stands for a TLS 1.3 handshake secret that the key log lacks: opens nothing."""

    def __init__(self, template: RecordProtection) -> None:
        super().__init__(template.suite, template.key, template.iv, True, secret=b"")

    def decrypt(self, header: bytes, fragment: bytes, seq: int | None = None) -> tuple[int, bytes]:
        raise DecryptError("handshake traffic secret not in the key log")
