"""TLS: the plaintext of wss:// connections, decrypted with a key log (sans-I/O).

The layer between TCP reassembly and the HTTP upgrade: it takes each
direction's reassembled bytes and gives back each direction's plaintext.
:class:`KeyLog` holds the secrets of an NSS key log; :class:`TLSSession`
decrypts one connection. Every cryptographic primitive is the
``cryptography`` package's.
"""

from wspcap.tls.keylog import KeyLog
from wspcap.tls.records import looks_like_client_hello, maybe_client_hello
from wspcap.tls.session import Lost, Plaintext, TLSAnomaly, TLSInfo, TLSSession

__all__ = ["KeyLog", "Lost", "Plaintext", "TLSAnomaly", "TLSInfo", "TLSSession",
           "looks_like_client_hello", "maybe_client_hello"]
