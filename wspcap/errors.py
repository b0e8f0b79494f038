"""Exceptions raised by wspcap.

A protocol violation in the traffic is never an exception: it is an anomaly
record (see :mod:`wspcap.rules`). Exceptions are for the tool's own inputs::

    WspcapError
    ├── CaptureFormatError   the file is missing, not a capture, or unreadable
    └── ConfigError          an option or threshold has a bad value

Each exception builds its one-line message in ``__str__`` from its fields, so
the CLI can print it as is.
"""

from __future__ import annotations

__all__ = ["CaptureFormatError", "ConfigError", "WspcapError"]


class WspcapError(Exception):
    """Base class of every exception wspcap raises on purpose."""


class CaptureFormatError(WspcapError):
    """The capture cannot be read at all.

    Args:
        path: the file in question.
        reason: what is wrong with it, in a few words.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class ConfigError(WspcapError):
    """An option has a value wspcap cannot use.

    Args:
        option: the option's name.
        reason: why the value is refused.
    """

    def __init__(self, option: str, reason: str) -> None:
        super().__init__(option, reason)
        self.option = option
        self.reason = reason

    def __str__(self) -> str:
        return f"option {self.option}: {self.reason}"
