"""TLS key log files: the text of the files a user names (``--keylog``).

The text is parsed by :class:`wspcap.tls.KeyLog`; this module only reads it,
so that files stay the business of the sources layer.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from wspcap.errors import ConfigError

__all__ = ["KeyLogFollower", "read_key_logs"]


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


class KeyLogFollower:
    """Follows key log files as programs append to them (``wspcap live --keylog``).

    :meth:`poll` gives the text appended since the last call (all of it the
    first time); a file that shrank was rewritten and is read again from its
    start. A file that does not exist yet is waited for (a browser creates its
    key log when its first TLS connection starts).
    """

    def __init__(self, paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]
                 ) -> None:
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths = [os.fspath(p) for p in paths]
        self._done = dict.fromkeys(self.paths, 0)

    def poll(self) -> str:
        """The text appended to the key logs since the last call."""
        parts = []
        for path in self.paths:
            try:
                with open(path, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    if size < self._done[path]:
                        self._done[path] = 0  # rewritten
                    f.seek(self._done[path])
                    data = f.read(size - self._done[path])
            except OSError:
                continue
            end = data.rfind(b"\n") + 1  # whole lines only; the rest comes next time
            self._done[path] += end
            if end:
                parts.append(data[:end].decode("ascii", "replace"))
        return "".join(parts)
