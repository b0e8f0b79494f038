"""TLS key log files: the text of the files a user names (``--keylog``).

The text is parsed by :class:`wspcap.tls.KeyLog`; this module only reads it,
so that files stay the business of the sources layer.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from wspcap.errors import ConfigError

__all__ = ["read_key_logs"]


def read_key_logs(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> str:
    """The text of every key log named, one after the other.

    Raises:
        ConfigError: a file is missing or cannot be read (one line that names it).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    parts = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise ConfigError("keylog", f"{os.fspath(path)}: {exc.strerror or exc}") from None
        parts.append(data.decode("ascii", "replace"))
        if parts[-1] and not parts[-1].endswith("\n"):
            parts.append("\n")
    return "".join(parts)
