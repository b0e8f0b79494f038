"""Thresholds of the resource and abuse rules (sizes, rates, times).

Every threshold has a unit (:meth:`Thresholds.units`: bytes, seconds,
per second...) and a default chosen so that ordinary traffic of real
applications stays below it (see each field); all can be changed from Python
(``wspcap.read(path, thresholds=Thresholds(frame_flood_rate=500))`` or a
mapping), from a TOML file (:meth:`Thresholds.from_toml`) and from
``name=value`` strings (:meth:`Thresholds.with_settings`, the CLI's ``--set``).
Values are checked when the object is made: a bad one raises
:class:`~wspcap.errors.ConfigError` naming the threshold.

Sans-I/O: nothing here opens a file; the CLI reads the TOML text.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wspcap.errors import ConfigError

__all__ = ["DEFAULT_THRESHOLDS", "Thresholds"]

_MIB = 1 << 20


def _unit(default: Any, unit: str) -> Any:
    """A threshold field: its default and its unit (``Thresholds.units()``),
    e.g. ``"bytes"``, ``"seconds"``, ``"frames/s"``. Every threshold has one."""
    return dataclasses.field(default=default, metadata={"unit": unit})


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Limits past which the ``res_*`` (and a few other) rules fire.

    Rates are counted per connection and direction over a sliding window of
    ``rate_window`` seconds; "over the threshold" means strictly more than it.

    Attributes:
        frame_flood_rate: frames per second on one direction
            (``res_frame_flood``). Chat and trading feeds stay in the hundreds.
        ping_flood_rate: pings per second on one direction
            (``res_ping_flood``). Keepalives are one every few seconds.
        rate_window: seconds of the sliding window rates are measured over.
        tiny_fragments_count: fragments in one message before it is looked at
            for ``res_tiny_fragments``.
        tiny_fragment_size: mean fragment payload (bytes) under which such a
            message is "split into tiny fragments".
        slow_handshake: seconds from the first to the last byte of the upgrade
            request's head (``res_slow_handshake``); a head normally arrives
            in one segment.
        slow_frame: seconds from a frame's first to its last byte
            (``res_slow_frame``).
        slow_frame_rate: bytes per second under which such a frame is slow
            (a large frame on a slow link is not an attack).
        many_connections: concurrent WebSocket connections from one client
            address to one server address and port (``res_many_connections``);
            browsers open a handful per page.
        huge_declared_length: declared payload length of one frame, bytes
            (``res_huge_declared_length``).
        oversized_message: size of one (inflated) message, bytes
            (``res_oversized_message``).
        inflate_ratio: inflated size over compressed size of one message
            (``pmd_ratio_excessive``); text compresses 3-20 times.
        inflate_ratio_min: inflated bytes a message must reach before its ratio
            counts (small repetitive messages compress very well).
        pong_timeout: seconds the peer may go on sending without answering a
            ping before ``ws_ping_unanswered`` (closing without answering counts
            at once).
        inflate_budget_connection: inflated bytes one connection's compressed
            messages may make in all, both directions together
            (``res_inflate_budget_exceeded``). Unlike the other thresholds this
            one acts: a message that would go past it is not inflated (its
            payload stays the compressed bytes, ``inflated`` False), nor are the
            connection's later compressed messages. The per-message cut
            (``Options.max_inflated``, 64 MiB) bounds one message; this bounds
            many. 256 MiB: four times the per-message cut, and some 10,000 times
            the mean inflated message of the benchmarks' compressed traffic.
        inflate_budget_capture: inflated bytes the compressed messages of a
            whole capture (of each reader, when one is shared among workers)
            may make in all, as ``inflate_budget_connection`` does for one
            connection. 1 GiB: ``wspcap.read`` keeps every payload in memory,
            so this bounds what decompression adds to it.
    """

    frame_flood_rate: float = _unit(1000.0, "frames/s")
    ping_flood_rate: float = _unit(10.0, "pings/s")
    rate_window: float = _unit(1.0, "seconds")
    tiny_fragments_count: int = _unit(100, "fragments")
    tiny_fragment_size: int = _unit(16, "bytes")
    slow_handshake: float = _unit(10.0, "seconds")
    slow_frame: float = _unit(10.0, "seconds")
    slow_frame_rate: float = _unit(1024.0, "bytes/s")
    many_connections: int = _unit(32, "connections")
    huge_declared_length: int = _unit(16 * _MIB, "bytes")
    oversized_message: int = _unit(16 * _MIB, "bytes")
    inflate_ratio: float = _unit(100.0, "inflated/compressed")
    inflate_ratio_min: int = _unit(1 * _MIB, "bytes")
    pong_timeout: float = _unit(10.0, "seconds")
    inflate_budget_connection: int = _unit(256 * _MIB, "bytes")
    inflate_budget_capture: int = _unit(1024 * _MIB, "bytes")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            name = f"thresholds.{f.name}"
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(name, f"{value!r} is not a number")
            if f.type == "int" and not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    object.__setattr__(self, f.name, int(value))
                else:
                    raise ConfigError(name, f"{value!r} is not a whole number")
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(name, f"{value!r} is not a finite number")
            if value <= 0:
                raise ConfigError(name, f"{value!r} must be greater than 0")

    @classmethod
    def names(cls) -> list[str]:
        """Every threshold's name."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def units(cls) -> dict[str, str]:
        """``{name: unit}`` for every threshold, e.g. ``"bytes"``, ``"seconds"``, ``"frames/s"``."""
        return {f.name: f.metadata.get("unit", "") for f in dataclasses.fields(cls)}

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], base: Thresholds | None = None
                     ) -> Thresholds:
        """Thresholds from ``{name: value}``; names not given keep ``base``'s values.

        Raises:
            ConfigError: an unknown name or a bad value.
        """
        known = cls.names()
        for name in values:
            if name not in known:
                raise ConfigError(f"thresholds.{name}",
                                  f"unknown threshold; known: {', '.join(known)}")
        return dataclasses.replace(base or cls(), **dict(values))

    @classmethod
    def coerce(cls, value: Thresholds | Mapping[str, Any]) -> Thresholds:
        """A :class:`Thresholds` as is, or one made from a ``{name: value}`` mapping.

        Raises:
            ConfigError: not thresholds, or an unknown name or a bad value.
        """
        if isinstance(value, Thresholds):
            return value
        if isinstance(value, Mapping):
            return cls.from_mapping(value)
        raise ConfigError("thresholds", f"{value!r} is neither Thresholds nor a mapping")

    @classmethod
    def from_toml(cls, text: str, base: Thresholds | None = None) -> Thresholds:
        """Thresholds from TOML text: keys at the top level or in ``[thresholds]``.

        Raises:
            ConfigError: the text is not TOML, or a name or value is bad.
        """
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("thresholds", f"not valid TOML: {exc}") from None
        table = data.get("thresholds", data)
        if not isinstance(table, dict):
            raise ConfigError("thresholds", "[thresholds] must be a table")
        return cls.from_mapping(table, base)

    def with_settings(self, settings: Iterable[str]) -> Thresholds:
        """A copy with ``name=value`` strings applied (the CLI's ``--set``).

        Raises:
            ConfigError: a string is not ``name=value``, or a name or value is bad.
        """
        values: dict[str, Any] = {}
        types = {f.name: f.type for f in dataclasses.fields(self)}
        for item in settings:
            name, eq, text = item.partition("=")
            name = name.strip()
            if not eq:
                raise ConfigError("--set", f"{item!r} is not name=value")
            if name not in types:
                raise ConfigError(f"thresholds.{name}",
                                  f"unknown threshold; known: {', '.join(types)}")
            text = text.strip().replace("_", "")
            try:
                values[name] = int(text) if types[name] == "int" else float(text)
            except ValueError:
                raise ConfigError(f"thresholds.{name}",
                                  f"{text!r} is not a {types[name]}") from None
        return self.from_mapping(values, self)

    def as_dict(self) -> dict[str, int | float]:
        """``{name: value}`` for every threshold."""
        return {name: getattr(self, name) for name in self.names()}


#: The defaults.
DEFAULT_THRESHOLDS = Thresholds()
