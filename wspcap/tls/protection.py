"""Key schedules and record protection of TLS 1.2 and 1.3, on `cryptography`.

Every primitive (AEAD ciphers, AES-CBC, HMAC, HKDF-Expand) is the
``cryptography`` package's; this module only lays out the bytes the RFCs
say go into them:

- TLS 1.3 (`RFC 8446 section 7
  <https://www.rfc-editor.org/rfc/rfc8446#section-7>`_): a traffic secret
  gives the record key and IV through HKDF-Expand-Label; the nonce is the IV
  XOR the 64-bit record sequence number; the additional data is the record
  header; the inner plaintext ends with its real content type and zero
  padding. KeyUpdate replaces the secret with
  HKDF-Expand-Label(secret, "traffic upd", "", Hash.length).
- TLS 1.2 (RFC 5246 sections 5, 6.2.3 and 6.3): the master secret and both
  randoms give the key block through the PRF (P_SHA256, or P_SHA384 for
  SHA-384 suites); AES-GCM records carry an 8-byte explicit nonce after a
  4-byte implicit salt (RFC 5288), ChaCha20-Poly1305 records none (RFC 7905);
  AES-CBC records carry their IV, then the data, its HMAC and padding, or
  with encrypt-then-MAC (RFC 7366) the HMAC after the ciphertext.

A record that does not authenticate raises :class:`DecryptError`.
:func:`open_runs` opens many runs of records at once, with one ``decrypt``
call a TLS 1.3 record and nothing else in Python a record (see the design
note of :mod:`wspcap.tls.runs`).
"""

from __future__ import annotations

import hmac as std_hmac
import struct
from collections.abc import Callable
from itertools import groupby

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from wspcap.constants import SPEEDUPS
from wspcap.tls.records import HEADER_LEN
from wspcap.tls.suites import Suite

__all__ = [
    "DecryptError",
    "RecordProtection",
    "hkdf_expand_label",
    "inner_spans",
    "open_runs",
    "py_open_runs",
    "tls12_key_block",
    "tls12_prf",
    "tls12_protections",
    "tls13_next_secret",
    "tls13_protection",
]

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384}
_SEQ = struct.Struct(">Q")
_SEQ_MAX = (1 << 64) - 1
TAG_LEN = 16


class DecryptError(ValueError):
    """A record did not authenticate (wrong key, wrong sequence number, or corrupt)."""


def _hash(name: str) -> hashes.HashAlgorithm:
    return _HASHES[name]()


def hkdf_expand_label(hash_name: str, secret: bytes, label: str, context: bytes,
                      length: int) -> bytes:
    """HKDF-Expand-Label (RFC 8446 section 7.1)."""
    full = b"tls13 " + label.encode("ascii")
    info = struct.pack(">HB", length, len(full)) + full + bytes([len(context)]) + context
    return HKDFExpand(_hash(hash_name), length, info).derive(secret)


def tls13_next_secret(hash_name: str, secret: bytes) -> bytes:
    """The traffic secret after a KeyUpdate (RFC 8446 section 7.2)."""
    return hkdf_expand_label(hash_name, secret, "traffic upd", b"", len(secret))


def _hmac(hash_name: str, key: bytes, data: bytes) -> bytes:
    mac = crypto_hmac.HMAC(key, _hash(hash_name))
    mac.update(data)
    return mac.finalize()


def tls12_prf(hash_name: str, secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """PRF(secret, label, seed) = P_hash(secret, label + seed) (RFC 5246 section 5)."""
    seed = label + seed
    out = b""
    a = seed
    while len(out) < length:
        a = _hmac(hash_name, secret, a)
        out += _hmac(hash_name, secret, a + seed)
    return out[:length]


def tls12_key_block(suite: Suite, master: bytes, client_random: bytes,
                    server_random: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes, bytes]:
    """Client and server MAC keys, write keys and IVs (RFC 5246 section 6.3)."""
    sizes = (suite.mac_len, suite.mac_len, suite.key_len, suite.key_len,
             suite.fixed_iv_len, suite.fixed_iv_len)
    block = tls12_prf(suite.hash, master, b"key expansion", server_random + client_random,
                      sum(sizes))
    parts = []
    pos = 0
    for size in sizes:
        parts.append(block[pos:pos + size])
        pos += size
    return parts[0], parts[1], parts[2], parts[3], parts[4], parts[5]


def _aead(suite: Suite, key: bytes) -> AESGCM | ChaCha20Poly1305 | AESCCM:
    if suite.cipher == "aes-gcm":
        return AESGCM(key)
    if suite.cipher == "chacha20-poly1305":
        return ChaCha20Poly1305(key)
    return AESCCM(key)


class RecordProtection:
    """Decrypts one direction's records under one key; counts its sequence number.

    Args:
        suite: the negotiated suite.
        key: the write key.
        iv: the fixed IV (TLS 1.3: 12 bytes; TLS 1.2 GCM: the 4-byte salt;
            ChaCha20: 12 bytes; CBC: empty).
        tls13: TLS 1.3 record layout.
        mac_key: the MAC key (TLS 1.2 CBC suites).
        encrypt_then_mac: RFC 7366 was negotiated (TLS 1.2 CBC suites).
        secret: the TLS 1.3 traffic secret (kept for KeyUpdate).
    """

    __slots__ = (
        "_aead",
        "_iv_int",
        "etm",
        "iv",
        "key",
        "mac_key",
        "secret",
        "seq",
        "suite",
        "tls13",
    )

    def __init__(self, suite: Suite, key: bytes, iv: bytes, tls13: bool, mac_key: bytes = b"",
                 encrypt_then_mac: bool = False, secret: bytes = b"") -> None:
        self.suite = suite
        self.key = key
        self.iv = iv
        self.tls13 = tls13
        self.mac_key = mac_key
        self.etm = encrypt_then_mac
        self.secret = secret
        #: The sequence number of the next record.
        self.seq = 0
        self._aead = None if suite.cipher == "aes-cbc" else _aead(suite, key)
        self._iv_int = int.from_bytes(iv, "big") if len(iv) == 12 else 0

    def decrypt(self, header: bytes, fragment: bytes, seq: int | None = None) -> tuple[int, bytes]:
        """The content type and plaintext of one record; the sequence number moves on.

        ``seq`` tries another sequence number (after records were lost); on
        success the count goes on from it.
        """
        n = self.seq if seq is None else seq
        if self.tls13:
            result = self._open13(header, fragment, n)
        elif self._aead is not None:
            result = self._open12_aead(header, fragment, n)
        else:
            result = self._open12_cbc(header, fragment, n)
        self.seq = n + 1
        return result

    def resume_at(self, seq: int) -> None:
        """The next record is number ``seq`` (records were read elsewhere, lost,
        or passed over unopened)."""
        self.seq = seq

    def open_each(self, src: bytes, starts: list[int], stops: list[int], seq: int
                  ) -> list[bytes]:
        """Open consecutive records, ``src[starts[i]:stops[i]]`` (each its
        5-byte header and its fragment), from sequence number ``seq`` on, up
        to the first that does not open, a :meth:`decrypt` call a record;
        :attr:`seq` stays where it is. Returns each record opened, as a TLS
        1.3 inner plaintext (its content, its content type: a TLS 1.2
        record's plaintext is given that form)."""
        saved = self.seq
        inners: list[bytes] = []
        try:
            for i, j in zip(starts, stops, strict=True):
                try:
                    ctype, plain = self.decrypt(src[i:i + HEADER_LEN], src[i + HEADER_LEN:j],
                                                seq + len(inners))
                except DecryptError:
                    break
                inners.append(plain + bytes((ctype,)))
        finally:
            self.seq = saved
        return inners

    def plaintext_size(self, fragment_len: int) -> int | None:
        """The plaintext a record of this length holds, where the layout says it
        exactly (TLS 1.2 AEAD records); None where padding hides it."""
        if self.tls13 or self._aead is None:
            return None
        overhead = TAG_LEN + (0 if self.suite.cipher == "chacha20-poly1305" else 8)
        return max(fragment_len - overhead, 0)

    def _nonce(self, seq: int) -> bytes:
        return (self._iv_int ^ seq).to_bytes(12, "big")

    def _open13(self, header: bytes, fragment: bytes, seq: int) -> tuple[int, bytes]:
        assert self._aead is not None
        try:
            inner = self._aead.decrypt(self._nonce(seq), fragment, header)
        except InvalidTag:
            raise DecryptError("record does not authenticate") from None
        end = len(inner.rstrip(b"\x00"))
        if end == 0:
            raise DecryptError("inner plaintext has no content type")
        return inner[end - 1], inner[:end - 1]

    def _open12_aead(self, header: bytes, fragment: bytes, seq: int) -> tuple[int, bytes]:
        assert self._aead is not None
        if self.suite.cipher == "chacha20-poly1305":
            nonce, body = self._nonce(seq), fragment
        else:
            nonce, body = self.iv + fragment[:8], fragment[8:]
        if len(body) < TAG_LEN:
            raise DecryptError("record shorter than its tag")
        aad = _SEQ.pack(seq) + header[:3] + struct.pack(">H", len(body) - TAG_LEN)
        try:
            return header[0], self._aead.decrypt(nonce, body, aad)
        except InvalidTag:
            raise DecryptError("record does not authenticate") from None

    def _open12_cbc(self, header: bytes, fragment: bytes, seq: int) -> tuple[int, bytes]:
        mac_len = self.suite.mac_len
        prefix = _SEQ.pack(seq) + header[:3]
        if self.etm:
            if len(fragment) < 32 + mac_len or (len(fragment) - mac_len) % 16:
                raise DecryptError("record length does not fit AES-CBC with its MAC")
            body, tag = fragment[:-mac_len], fragment[-mac_len:]
            want = _hmac(self.suite.mac, self.mac_key,
                         prefix + struct.pack(">H", len(body)) + body)
            if not std_hmac.compare_digest(want, tag):
                raise DecryptError("record MAC does not match")
            padded = self._cbc(body)
            data = self._unpad(padded)
            return header[0], data
        if len(fragment) < 16 + max(16, mac_len + 1) or len(fragment) % 16:
            raise DecryptError("record length does not fit AES-CBC")
        padded = self._cbc(fragment)
        plain = self._unpad(padded)
        if len(plain) < mac_len:
            raise DecryptError("record shorter than its MAC")
        data, tag = plain[:len(plain) - mac_len], plain[len(plain) - mac_len:]
        want = _hmac(self.suite.mac, self.mac_key, prefix + struct.pack(">H", len(data)) + data)
        if not std_hmac.compare_digest(want, tag):
            raise DecryptError("record MAC does not match")
        return header[0], data

    def _cbc(self, body: bytes) -> bytes:
        decryptor = Cipher(algorithms.AES(self.key), modes.CBC(body[:16])).decryptor()
        return decryptor.update(body[16:]) + decryptor.finalize()

    @staticmethod
    def _unpad(padded: bytes) -> bytes:
        if not padded:
            raise DecryptError("empty CBC record")
        pad = padded[-1]
        if pad + 1 > len(padded) or padded[-pad - 1:] != bytes([pad]) * (pad + 1):
            raise DecryptError("bad CBC padding")
        return padded[:-pad - 1]


#: A run of records to open: ``(decrypt, iv, seq, src, count)`` (see :func:`py_open_runs`).
KernelRun = tuple[Callable[[bytes, bytes, bytes], bytes], bytes, int, bytes, int]


def open_runs(runs: list[tuple[RecordProtection, bytes, int, int]], starts: np.ndarray,
              stops: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Open the records of many runs at once: run ``r``, ``(protection, src,
    seq, count)``, is the next ``count`` records ``src[starts[i]:stops[i]]``
    (each its 5-byte header and its fragment), opened under ``protection``
    from sequence number ``seq`` on, up to the first that does not open;
    the protections' :attr:`~RecordProtection.seq` stay where they are.

    Returns:
        ``(plain, lengths)``: every record opened, in order, as a TLS 1.3
        inner plaintext (its content, its content type, zero padding: a TLS
        1.2 record's plaintext is given that form), joined; and each record's
        length in ``plain``, -1 for a record not opened. See
        :func:`inner_spans`.

    TLS 1.3 AEAD runs (all of them, most often) are opened by one call of
    :func:`py_open_runs` or its compiled mirror: nothing in Python a record
    but the decrypt call (see the design note of :mod:`wspcap.tls.runs`).
    """
    starts = np.ascontiguousarray(starts, np.int64)
    stops = np.ascontiguousarray(stops, np.int64)
    parts: list[bytes] = []
    lengths: list[np.ndarray] = []
    lo = 0
    # Consecutive TLS 1.3 AEAD runs in one call, any other run a record at a time.
    for aead, group in groupby(runs, lambda run: run[0].tls13 and run[0]._aead is not None):
        these = list(group)
        hi = lo + sum(count for _p, _src, _seq, count in these)
        if aead:
            plain, sizes = _open_runs([_kernel_run(*run) for run in these], starts[lo:hi],
                                      stops[lo:hi], InvalidTag)
            parts.append(plain)
            lengths.append(sizes)
        else:
            at = lo
            for protection, src, seq, count in these:
                inners = protection.open_each(src, starts[at:at + count].tolist(),
                                              stops[at:at + count].tolist(), seq)
                parts.append(b"".join(inners))
                sizes = np.full(count, -1, np.int64)
                sizes[:len(inners)] = [len(inner) for inner in inners]
                lengths.append(sizes)
                at += count
        lo = hi
    if len(parts) == 1:  # (one call for the block: the common case)
        return parts[0], lengths[0]
    return b"".join(parts), (np.concatenate(lengths) if lengths else np.zeros(0, np.int64))


def _kernel_run(protection: RecordProtection, src: bytes, seq: int, count: int) -> KernelRun:
    """A TLS 1.3 AEAD run as :func:`py_open_runs` takes it."""
    assert protection._aead is not None
    return protection._aead.decrypt, protection.iv, seq, src, count


def py_open_runs(runs: list[KernelRun], starts: np.ndarray, stops: np.ndarray,
                 refused: type[BaseException]) -> tuple[bytes, np.ndarray]:
    """Open the TLS 1.3 records of ``runs``, each ``(decrypt, iv, seq, src,
    count)``: its records are the next ``count`` spans ``src[starts[i]:stops[i]]``
    (each its 5-byte header, the additional data, then its fragment), opened
    from sequence number ``seq`` on with ``decrypt(nonce, fragment, header)``,
    the nonce being ``iv`` XOR the sequence number (`RFC 8446 section 5.3
    <https://www.rfc-editor.org/rfc/rfc8446#section-5.3>`_), up to the first
    whose ``decrypt`` raises ``refused`` (the rest of that run is not opened).

    Returns:
        ``(plain, lengths)``: what opened, joined, and each record's
        plaintext length (-1: not opened).

    Raises:
        TypeError: a run is not such a tuple, ``iv`` or ``src`` is not bytes,
            or ``decrypt`` gives something else than bytes.
        ValueError: an ``iv`` is not 12 bytes, ``starts`` and ``stops`` differ
            in length, the counts do not add up to them, a record is not within
            its ``src`` or shorter than a header, or a sequence number would
            pass 2**64 - 1 (every run is checked before any record is opened).

    This loop turns once per record; ``wspcap/tls/_speedups.c`` is its
    compiled mirror, used where it is built (see :data:`wspcap.constants.SPEEDUPS`).
    """
    x, z = starts.tolist(), stops.tolist()
    if len(x) != len(z):
        raise ValueError("starts and stops differ in length")
    at = 0
    for run in runs:
        if not isinstance(run, tuple) or len(run) != 5:
            raise TypeError("runs: (decrypt, iv, seq, src, count) tuples expected")
        _decrypt, iv, seq, src, count = run
        if not isinstance(iv, bytes) or not isinstance(src, bytes):
            raise TypeError("iv and src: bytes expected")
        if len(iv) != 12:
            raise ValueError("iv: 12 bytes expected")
        if not 0 <= seq <= _SEQ_MAX:
            raise OverflowError("seq: out of range")
        if count < 0:
            raise ValueError("count: not negative expected")
        if count > len(x) - at:
            raise ValueError("the runs' counts do not add up to the records")
        if count and seq + count - 1 > _SEQ_MAX:
            raise ValueError("sequence number past 2**64 - 1")
        for i in range(at, at + count):
            if x[i] < 0 or z[i] < x[i] + HEADER_LEN or z[i] > len(src):
                raise ValueError(f"record {i} out of the buffer")
        at += count
    if at != len(x):
        raise ValueError("the runs' counts do not add up to the records")
    lengths = np.full(len(x), -1, np.int64)
    parts: list[bytes] = []
    at = 0
    for decrypt, iv, seq, src, count in runs:
        base = int.from_bytes(iv, "big")
        for i in range(count):
            j, k = x[at + i], z[at + i]
            nonce = (base ^ (seq + i)).to_bytes(12, "big")
            try:
                inner = decrypt(nonce, src[j + HEADER_LEN:k], src[j:j + HEADER_LEN])
            except refused:
                break
            if not isinstance(inner, bytes):
                raise TypeError("decrypt: bytes expected")
            parts.append(inner)
            lengths[at + i] = len(inner)
        at += count
    return b"".join(parts), lengths


def _kernel_open_runs(runs: list[KernelRun], starts: np.ndarray, stops: np.ndarray,
                      refused: type[BaseException]) -> tuple[bytes, np.ndarray]:
    """:func:`py_open_runs` by its compiled mirror."""
    plain, lengths = _compiled(runs, starts, stops, refused)
    return plain, np.frombuffer(lengths, np.int64)


_open_runs = py_open_runs
if SPEEDUPS:
    try:
        from wspcap.tls._speedups import open_runs as _compiled
    except ImportError:  # not built: the reference above
        pass
    else:
        _open_runs = _kernel_open_runs


def inner_spans(plain: bytes, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TLS 1.3 inner plaintexts (`RFC 8446 section 5.2
    <https://www.rfc-editor.org/rfc/rfc8446#section-5.2>`_: the content, its
    content type, zero padding) one after the other in ``plain``, ``lengths``
    their lengths: ``(begin, end, ctype)``, record ``i``'s content being
    ``plain[begin[i]:end[i]]`` and its type ``ctype[i]``; 0 for a record whose
    inner plaintext is all zeros ("no non-zero octets in the cleartext":
    it does not open)."""
    k = len(lengths)
    end = np.cumsum(lengths)
    begin = end - lengths
    if k and lengths.all():
        ctype = np.frombuffer(plain, np.uint8)[end - 1]
        if ctype.all():  # no padding: the common case
            return begin, end - 1, ctype
    else:
        ctype = np.zeros(k, np.uint8)
    for i in np.flatnonzero(ctype == 0).tolist():  # padded (rare): strip it
        content = len(plain[begin[i]:end[i]].rstrip(b"\x00"))
        if content:
            end[i] = begin[i] + content
            ctype[i] = plain[begin[i] + content - 1]
        else:
            end[i] = begin[i] + 1  # (an empty span)
    return begin, end - 1, ctype


def tls13_protection(suite: Suite, secret: bytes) -> RecordProtection:
    """The record protection of a TLS 1.3 traffic secret (RFC 8446 section 7.3)."""
    key = hkdf_expand_label(suite.hash, secret, "key", b"", suite.key_len)
    iv = hkdf_expand_label(suite.hash, secret, "iv", b"", 12)
    return RecordProtection(suite, key, iv, True, secret=secret)


def tls12_protections(suite: Suite, master: bytes, client_random: bytes, server_random: bytes,
                      encrypt_then_mac: bool = False) -> tuple[RecordProtection,
                                                               RecordProtection]:
    """The client's and the server's record protection for a TLS 1.2 session."""
    c_mac, s_mac, c_key, s_key, c_iv, s_iv = tls12_key_block(suite, master, client_random,
                                                            server_random)
    etm = encrypt_then_mac and suite.cipher == "aes-cbc"
    return (RecordProtection(suite, c_key, c_iv, False, c_mac, etm),
            RecordProtection(suite, s_key, s_iv, False, s_mac, etm))
