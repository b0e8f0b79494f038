"""TLS key logs in the NSS format that browsers and TLS libraries write.

Sans-I/O: :class:`KeyLog` takes the text of a key log (all of it, or what was
appended since, through :meth:`KeyLog.feed`) and answers, for a connection's
client random, the secrets logged for it.

The format (`NSS Key Log Format
<https://udn.realityripple.com/docs/Mozilla/Projects/NSS/Key_Log_Format>`_,
and draft-ietf-tls-keylogfile): one secret a line, ``LABEL CLIENT_RANDOM
SECRET``, the two values in hexadecimal; ``#`` starts a comment. TLS 1.2 logs
``CLIENT_RANDOM`` (the 48-byte master secret); TLS 1.3 logs one line per
traffic secret (``CLIENT_HANDSHAKE_TRAFFIC_SECRET``,
``SERVER_HANDSHAKE_TRAFFIC_SECRET``, ``CLIENT_TRAFFIC_SECRET_0``,
``SERVER_TRAFFIC_SECRET_0``, ...). A line that does not parse is counted in
:attr:`KeyLog.bad_lines` and passed over: a key log is often appended to by
several programs at once.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable

__all__ = ["KNOWN_LABELS", "KeyLog"]

#: Labels wspcap uses; other labels (``EXPORTER_SECRET``, early traffic) are kept too.
KNOWN_LABELS = frozenset({
    "CLIENT_RANDOM",
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "SERVER_TRAFFIC_SECRET_0",
})
#: A client random is 32 bytes (RFC 8446 section 4.1.2, RFC 5246 section 7.4.1.2).
RANDOM_LEN = 32
#: The longest secret a line may carry (SHA-384 secrets are 48 bytes).
MAX_SECRET_LEN = 64


class KeyLog:
    """The secrets of a key log, by client random.

    Lines may come in pieces (:meth:`feed` keeps an unfinished last line until
    its end arrives), so a key log that a browser is still appending to can be
    followed.
    """

    def __init__(self, text: str | bytes | Iterable[str] = "") -> None:
        self._secrets: dict[bytes, dict[str, bytes]] = {}
        self._partial = ""
        #: Lines passed over because they do not parse.
        self.bad_lines = 0
        if isinstance(text, (str, bytes)):
            self.feed(text, final=True)
        else:
            for line in text:
                self._line(line)

    def feed(self, text: str | bytes, final: bool = False) -> int:
        """Take more of the key log; return how many secrets it added.

        ``final`` says the text ends with a whole line even without a newline.
        """
        if isinstance(text, bytes):
            text = text.decode("ascii", "replace")
        text = self._partial + text
        lines = text.split("\n")
        self._partial = "" if final else lines.pop()
        before = len(self)
        for line in lines:
            self._line(line)
        return len(self) - before

    def _line(self, line: str) -> None:
        line = line.strip()
        if not line or line.startswith("#"):
            return
        parts = line.split()
        if len(parts) != 3:
            self.bad_lines += 1
            return
        label, random_hex, secret_hex = parts
        try:
            random = binascii.unhexlify(random_hex)
            secret = binascii.unhexlify(secret_hex)
        except (binascii.Error, ValueError):
            self.bad_lines += 1
            return
        if len(random) != RANDOM_LEN or not 0 < len(secret) <= MAX_SECRET_LEN \
                or not label.isascii():
            self.bad_lines += 1
            return
        self._secrets.setdefault(random, {})[label] = secret

    def secrets(self, client_random: bytes) -> dict[str, bytes]:
        """The secrets logged for ``client_random``, by label (empty when none)."""
        return self._secrets.get(client_random, {})

    def __contains__(self, client_random: object) -> bool:
        return client_random in self._secrets

    def __len__(self) -> int:
        return sum(len(s) for s in self._secrets.values())

    def update(self, other: KeyLog) -> None:
        """Add every secret of ``other`` (a later line for a label wins)."""
        for random, secrets in other._secrets.items():
            self._secrets.setdefault(random, {}).update(secrets)
        self.bad_lines += other.bad_lines

    def lines(self) -> str:
        """The key log as text again (for writing into a capture)."""
        out = []
        for random, secrets in self._secrets.items():
            for label, secret in secrets.items():
                out.append(f"{label} {random.hex()} {secret.hex()}\n")
        return "".join(out)
