"""The TLS cipher suites wspcap decrypts, declared once as a table.

Each suite says how its records are protected (:class:`Suite`): the bulk
cipher and its key length, the record protection scheme (``aead`` with an
implicit or explicit nonce, or ``cbc`` with an HMAC), and the hash that the
key schedule (TLS 1.3 HKDF, TLS 1.2 PRF) and the record MAC use. Names are
IANA's (`TLS Cipher Suites registry
<https://www.iana.org/assignments/tls-parameters/tls-parameters.xhtml#tls-parameters-4>`_).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SUITES", "Suite", "suite_name"]


@dataclass(frozen=True, slots=True)
class Suite:
    """How one cipher suite protects records.

    Attributes:
        code: the two-byte code point.
        name: IANA's name.
        tls13: a TLS 1.3 suite (key schedule by HKDF, no key exchange named).
        cipher: ``aes-gcm``, ``chacha20-poly1305``, ``aes-ccm`` or ``aes-cbc``.
        key_len: the bulk key's length in bytes.
        hash: the PRF/HKDF hash (``sha256`` or ``sha384``).
        mac: the record MAC's hash for CBC suites (``sha1``, ``sha256``, ``sha384``).
        forward_secret: the key exchange is ephemeral (ECDHE, DHE; every TLS 1.3 suite).
    """

    code: int
    name: str
    tls13: bool
    cipher: str
    key_len: int
    hash: str
    mac: str = ""
    forward_secret: bool = True

    @property
    def fixed_iv_len(self) -> int:
        """Bytes of IV taken from the key block (TLS 1.2) or the traffic secret (TLS 1.3)."""
        if self.tls13 or self.cipher == "chacha20-poly1305":
            return 12
        return 4 if self.cipher in ("aes-gcm", "aes-ccm") else 0

    @property
    def mac_len(self) -> int:
        """The CBC suites' MAC key and tag length (0 for AEAD suites)."""
        return {"sha1": 20, "sha256": 32, "sha384": 48}.get(self.mac, 0)


def _table() -> dict[int, Suite]:
    rows: list[Suite] = [
        Suite(0x1301, "TLS_AES_128_GCM_SHA256", True, "aes-gcm", 16, "sha256"),
        Suite(0x1302, "TLS_AES_256_GCM_SHA384", True, "aes-gcm", 32, "sha384"),
        Suite(0x1303, "TLS_CHACHA20_POLY1305_SHA256", True, "chacha20-poly1305", 32, "sha256"),
        Suite(0x1304, "TLS_AES_128_CCM_SHA256", True, "aes-ccm", 16, "sha256"),
    ]
    # TLS 1.2 AEAD suites: (code, key exchange, cipher, key length, hash).
    aead = [
        (0xC02B, "ECDHE_ECDSA", "AES_128_GCM", 16, "sha256"),
        (0xC02C, "ECDHE_ECDSA", "AES_256_GCM", 32, "sha384"),
        (0xC02F, "ECDHE_RSA", "AES_128_GCM", 16, "sha256"),
        (0xC030, "ECDHE_RSA", "AES_256_GCM", 32, "sha384"),
        (0x009E, "DHE_RSA", "AES_128_GCM", 16, "sha256"),
        (0x009F, "DHE_RSA", "AES_256_GCM", 32, "sha384"),
        (0x009C, "RSA", "AES_128_GCM", 16, "sha256"),
        (0x009D, "RSA", "AES_256_GCM", 32, "sha384"),
        (0xCCA8, "ECDHE_RSA", "CHACHA20_POLY1305", 32, "sha256"),
        (0xCCA9, "ECDHE_ECDSA", "CHACHA20_POLY1305", 32, "sha256"),
        (0xCCAA, "DHE_RSA", "CHACHA20_POLY1305", 32, "sha256"),
    ]
    for code, kx, cipher, key_len, hash_ in aead:
        rows.append(Suite(code, f"TLS_{kx}_WITH_{cipher}_{hash_.upper()}", False,
                          "chacha20-poly1305" if "CHACHA" in cipher else "aes-gcm",
                          key_len, hash_, forward_secret=kx != "RSA"))
    # TLS 1.2 CBC suites with an HMAC: (code, key exchange, key length, MAC hash).
    cbc = [
        (0xC009, "ECDHE_ECDSA", 16, "sha1"), (0xC00A, "ECDHE_ECDSA", 32, "sha1"),
        (0xC013, "ECDHE_RSA", 16, "sha1"), (0xC014, "ECDHE_RSA", 32, "sha1"),
        (0xC023, "ECDHE_ECDSA", 16, "sha256"), (0xC024, "ECDHE_ECDSA", 32, "sha384"),
        (0xC027, "ECDHE_RSA", 16, "sha256"), (0xC028, "ECDHE_RSA", 32, "sha384"),
        (0x0033, "DHE_RSA", 16, "sha1"), (0x0039, "DHE_RSA", 32, "sha1"),
        (0x0067, "DHE_RSA", 16, "sha256"), (0x006B, "DHE_RSA", 32, "sha256"),
        (0x002F, "RSA", 16, "sha1"), (0x0035, "RSA", 32, "sha1"),
        (0x003C, "RSA", 16, "sha256"), (0x003D, "RSA", 32, "sha256"),
    ]
    for code, kx, key_len, mac in cbc:
        suffix = "SHA" if mac == "sha1" else mac.upper()
        rows.append(Suite(code, f"TLS_{kx}_WITH_AES_{key_len * 8}_CBC_{suffix}", False,
                          "aes-cbc", key_len, "sha384" if mac == "sha384" else "sha256",
                          mac, forward_secret=kx != "RSA"))
    return {row.code: row for row in rows}


#: Every suite wspcap can decrypt, by code point.
SUITES: dict[int, Suite] = _table()


def suite_name(code: int) -> str:
    """IANA's name of a suite wspcap knows, else ``0xNNNN``."""
    suite = SUITES.get(code)
    return suite.name if suite else f"0x{code:04X}"
