"""Real TLS conversations made in memory by Python's ``ssl`` (OpenSSL), with key logs.

A client and a server :class:`ssl.SSLObject` talk through memory BIOs; the
bytes each side writes are the two directions of a TCP stream, in the order
they were sent. The client's context writes the NSS key log (the same
``keylog_filename`` a user sets), so the tests get what a capture and a key
log would hold, without a network.
"""

from __future__ import annotations

import datetime
import decimal
import ssl
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dh, ec, rsa
from cryptography.x509.oid import NameOID

__all__ = ["Conversation", "contexts", "converse", "dh_params", "modp_2048", "pcapng_secrets",
           "self_signed"]


@dataclass
class Conversation:
    """What went over the wire, the key log, and what each side sent."""

    #: (direction, bytes) in the order they were written; 0 = client to server.
    wire: list[tuple[int, bytes]] = field(default_factory=list)
    keylog: str = ""
    sent: list[list[bytes]] = field(default_factory=lambda: [[], []])
    version: str = ""
    cipher: str = ""
    #: The client's session (to resume it: ``converse(..., resume=conv)``).
    session: ssl.SSLSession | None = None
    resumed: bool = False
    contexts: tuple[ssl.SSLContext, ssl.SSLContext] | None = None

    def stream(self, direction: int) -> bytes:
        """One direction's bytes, whole."""
        return b"".join(data for d, data in self.wire if d == direction)


def self_signed(folder: Path, kind: str = "ec") -> tuple[Path, Path]:
    """A self-signed certificate and its key for ``localhost``, as PEM files."""
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    key = (ec.generate_private_key(ec.SECP256R1()) if kind == "ec"
           else rsa.generate_private_key(public_exponent=65537, key_size=2048))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / f"cert-{kind}.pem", folder / f"key-{kind}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def pcapng_secrets(data: bytes) -> tuple[bytes, bytes]:
    """A little-endian pcapng without its Decryption Secrets Blocks, and the TLS key
    log they held (``(data, b"")`` for anything else, or a block that runs past
    the end)."""
    if data[:4] != b"\x0a\x0d\x0d\x0a" or data[8:12] != b"\x4d\x3c\x2b\x1a":
        return data, b""
    kept = bytearray()
    keys = b""
    pos = 0
    while pos + 12 <= len(data):
        kind, length = struct.unpack_from("<II", data, pos)
        if length < 12:
            break
        if kind == 0x0000000A and pos + 16 <= len(data):
            size = struct.unpack_from("<I", data, pos + 12)[0]
            keys += data[pos + 16:pos + 16 + size]
        else:
            kept += data[pos:pos + length]
        pos += length
    kept += data[pos:]
    return bytes(kept), keys


def modp_2048() -> int:
    """The 2048-bit MODP group's prime (RFC 3526 section 3), from its defining
    formula: 2^2048 - 2^1984 - 1 + 2^64 * (floor(2^1918 * pi) + 124476)."""
    with decimal.localcontext() as ctx:
        ctx.prec = 720
        one = decimal.Decimal(1)

        def arctan_inv(x: int) -> decimal.Decimal:  # Machin's series for atan(1/x)
            term = one / x
            total, n, sign = term, 1, -1
            while True:
                term /= x * x
                n += 2
                if term / n < decimal.Decimal(10) ** -705:
                    return total
                total += sign * term / n
                sign = -sign
        pi = 16 * arctan_inv(5) - 4 * arctan_inv(239)
        floor = int(decimal.Decimal(2) ** 1918 * pi)
    return 2**2048 - 2**1984 - 1 + 2**64 * (floor + 124476)


def dh_params(folder: Path) -> Path:
    """PEM DH parameters (the MODP 2048 group, generator 2) for a DHE server."""
    params = dh.DHParameterNumbers(modp_2048(), 2).parameters()
    path = folder / "dh.pem"
    path.write_bytes(params.parameter_bytes(serialization.Encoding.PEM,
                                            serialization.ParameterFormat.PKCS3))
    return path


def contexts(folder: Path, version: str = "1.3", keylog: Path | None = None,
             cert: str = "ec") -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh self-signed certificate for ``localhost``, and a
    client context that trusts anything and writes its key log to ``keylog`` (what
    ``SSLKEYLOGFILE`` does); TLS 1.3 only, or at most TLS 1.2."""
    cert_path, key_path = self_signed(folder, cert)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    server.load_dh_params(dh_params(folder))  # for the DHE suites
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    if keylog is not None:
        client.keylog_filename = str(keylog)
    for ctx in (server, client):
        if version == "1.2":
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        else:
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return server, client


def _pump(conv: Conversation, client: ssl.SSLObject, server: ssl.SSLObject,
          c_out: ssl.MemoryBIO, s_out: ssl.MemoryBIO, s_in: ssl.MemoryBIO,
          c_in: ssl.MemoryBIO) -> None:
    while True:
        moved = False
        data = c_out.read()
        if data:
            conv.wire.append((0, data))
            s_in.write(data)
            moved = True
        data = s_out.read()
        if data:
            conv.wire.append((1, data))
            c_in.write(data)
            moved = True
        if not moved:
            return


def _read_all(obj: ssl.SSLObject) -> bytes:
    out = b""
    while True:
        try:
            chunk = obj.read(1 << 16)
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            return out
        if not chunk:
            return out
        out += chunk


def converse(messages: list[tuple[int, bytes]], *, version: str = "1.3",
             ciphers: str | None = None, cert: str = "ec", options: int = 0,
             alpn: list[str] | None = None, sni: str = "localhost",
             resume: Conversation | None = None,
             server_curve: str | None = None) -> Conversation:
    """Run a TLS conversation in memory: the handshake, then ``messages`` in order.

    Each message is (0 client-to-server | 1 server-to-client, bytes); each
    goes out as one ``write`` (records of up to 16 KiB). ``resume``: an
    earlier conversation whose session the client resumes (same contexts).
    ``server_curve``: the only group the server takes (the client's first key
    share being another, TLS 1.3 answers with a HelloRetryRequest).
    """
    conv = Conversation()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        keylog = folder / "keys.log"
        if resume is not None and resume.contexts is not None:
            sctx, cctx = resume.contexts
            cctx.keylog_filename = str(keylog)
            fresh: tuple[ssl.SSLContext, ...] = ()
        else:
            sctx, cctx = fresh = contexts(folder, version, keylog, cert)
        conv.contexts = (sctx, cctx)
        if server_curve is not None:
            sctx.set_ecdh_curve(server_curve)
        for ctx in fresh:
            ctx.options |= options
            if ciphers:
                ctx.set_ciphers(ciphers)
            if alpn:
                ctx.set_alpn_protocols(alpn)
        c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
        client = cctx.wrap_bio(c_in, c_out, server_hostname=sni,
                               session=resume.session if resume is not None else None)
        server = sctx.wrap_bio(s_in, s_out, server_side=True)
        done = [False, False]
        for _ in range(20):
            for i, side in enumerate((client, server)):
                if not done[i]:
                    try:
                        side.do_handshake()
                        done[i] = True
                    except ssl.SSLWantReadError:
                        pass
            _pump(conv, client, server, c_out, s_out, s_in, c_in)
            if all(done):
                break
        assert all(done), "the TLS handshake did not finish"
        for direction, data in messages:
            sender, receiver = (client, server) if direction == 0 else (server, client)
            sender.write(data)
            _pump(conv, client, server, c_out, s_out, s_in, c_in)
            got = _read_all(receiver)
            _pump(conv, client, server, c_out, s_out, s_in, c_in)
            assert got == data
            conv.sent[direction].append(data)
        conv.version = client.version() or ""
        conv.cipher = (client.cipher() or ("", "", 0))[0]
        conv.keylog = keylog.read_text()
        conv.session = client.session
        conv.resumed = client.session_reused
    return conv
