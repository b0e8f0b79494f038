"""Thresholds: defaults, validation, TOML, ``name=value``, and their effect on the rules."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import pytest

import wspcap
from wspcap.errors import ConfigError
from wspcap.rules.thresholds import DEFAULT_THRESHOLDS, Thresholds

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
ANOMALIES = SAMPLES / "anomalies"


def test_defaults_are_positive_numbers() -> None:
    for name, value in DEFAULT_THRESHOLDS.as_dict().items():
        assert value > 0, name
    assert Thresholds() == DEFAULT_THRESHOLDS
    assert set(Thresholds.names()) == set(DEFAULT_THRESHOLDS.as_dict())


def test_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_THRESHOLDS.frame_flood_rate = 1  # type: ignore[misc]


@pytest.mark.parametrize("name, value", [
    ("frame_flood_rate", 0), ("frame_flood_rate", -5), ("ping_flood_rate", float("nan")),
    ("slow_frame", float("inf")), ("many_connections", 2.5), ("many_connections", "3"),
    ("huge_declared_length", True), ("rate_window", None),
])
def test_bad_values_are_refused_when_set(name: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        Thresholds(**{name: value})
    assert info.value.option == f"thresholds.{name}"
    with pytest.raises(ConfigError):
        Thresholds.from_mapping({name: value})


def test_whole_floats_become_ints() -> None:
    assert Thresholds(many_connections=4.0).many_connections == 4
    assert isinstance(Thresholds(many_connections=4.0).many_connections, int)


def test_unknown_name() -> None:
    with pytest.raises(ConfigError, match="unknown threshold"):
        Thresholds.from_mapping({"frame_flood": 5})
    with pytest.raises(ConfigError, match="unknown threshold"):
        DEFAULT_THRESHOLDS.with_settings(["nope=1"])


def test_toml_top_level_or_table() -> None:
    top = Thresholds.from_toml("frame_flood_rate = 50\nslow_frame = 2.5\n")
    table = Thresholds.from_toml("[thresholds]\nframe_flood_rate = 50\nslow_frame = 2.5\n")
    assert top == table == Thresholds(frame_flood_rate=50, slow_frame=2.5)
    assert top.ping_flood_rate == DEFAULT_THRESHOLDS.ping_flood_rate
    with pytest.raises(ConfigError, match="not valid TOML"):
        Thresholds.from_toml("frame_flood_rate = ")
    with pytest.raises(ConfigError):
        Thresholds.from_toml("thresholds = 3")


def test_settings() -> None:
    t = DEFAULT_THRESHOLDS.with_settings(["many_connections=3", " slow_frame = 1.5 ",
                                          "huge_declared_length=1_000"])
    assert (t.many_connections, t.slow_frame, t.huge_declared_length) == (3, 1.5, 1000)
    for bad in ("many_connections", "many_connections=x", "many_connections=1.5"):
        with pytest.raises(ConfigError):
            DEFAULT_THRESHOLDS.with_settings([bad])


def test_coerce() -> None:
    assert Thresholds.coerce(DEFAULT_THRESHOLDS) is DEFAULT_THRESHOLDS
    assert Thresholds.coerce({"ping_flood_rate": 2}).ping_flood_rate == 2
    with pytest.raises(ConfigError):
        Thresholds.coerce(5)  # type: ignore[arg-type]


def test_read_takes_thresholds() -> None:
    """A lower threshold makes the same real traffic cross it; defaults keep it quiet."""
    plain = SAMPLES / "plain.pcap"
    assert not (wspcap.read(plain).anomalies.code == "res_frame_flood").any()
    a = wspcap.read(plain, thresholds={"frame_flood_rate": 5}).anomalies
    flood = a[a.code == "res_frame_flood"]
    # plain.pcap: 13 c2s and 11 s2c frames within well under a second.
    assert sorted(flood.direction.astype(str)) == ["c2s", "s2c"]
    assert flood.detail.str.contains("6 frames within 1 s (threshold 5/s)", regex=False).all()
    with pytest.raises(ConfigError):
        wspcap.read(plain, thresholds={"frame_flood_rate": 0})


def test_from_packets_takes_thresholds() -> None:
    from wspcap.sources import open_capture
    with open_capture(ANOMALIES / "res-ping-flood.pcap") as cap:
        packets = list(cap)
    assert (wspcap.from_packets(packets).anomalies.code == "res_ping_flood").any()
    quiet = wspcap.from_packets(packets, thresholds=Thresholds(ping_flood_rate=100))
    assert not (quiet.anomalies.code == "res_ping_flood").any()


@pytest.mark.parametrize("capture, code, settings", [
    ("res-many-connections.pcap", "res_many_connections", {"many_connections": 33}),
    ("res-slow-handshake.pcap", "res_slow_handshake", {"slow_handshake": 31}),
    ("res-slow-frame.pcap", "res_slow_frame", {"slow_frame": 40}),
    ("res-slow-frame.pcap", "res_slow_frame", {"slow_frame_rate": 2}),
    ("res-tiny-fragments.pcap", "res_tiny_fragments", {"tiny_fragments_count": 201}),
    ("res-tiny-fragments.pcap", "res_tiny_fragments", {"tiny_fragment_size": 1}),
    # 1200 frames and the close: 1201 client frames within half a second.
    ("res-frame-flood.pcap", "res_frame_flood", {"frame_flood_rate": 1201}),
    ("ws-truncated-frame.pcap", "res_huge_declared_length", {"huge_declared_length": 1 << 31}),
    ("pmd-bomb.pcap", "res_oversized_message", {"oversized_message": 20 << 20}),
    ("pmd-bomb.pcap", "pmd_ratio_excessive", {"inflate_ratio": 2000}),
    ("pmd-bomb.pcap", "pmd_ratio_excessive", {"inflate_ratio_min": 21 << 20}),
    ("ws-ping-unanswered.pcap", "ws_ping_unanswered", None),
])
def test_threshold_edges(capture: str, code: str, settings: dict[str, Any] | None) -> None:
    """Each crafted capture sits just past its threshold: raising it silences the code."""
    assert (wspcap.read(ANOMALIES / capture).anomalies.code == code).any()
    if settings is not None:
        quiet = wspcap.read(ANOMALIES / capture, thresholds=settings).anomalies
        assert not (quiet.code == code).any()


def test_pong_timeout() -> None:
    """A ping the peer keeps talking past: unanswered only after pong_timeout."""
    from wspcap.rules.ws import _went_on  # the rule's decision, on hand-made facts

    class Conn:
        end_ts: ClassVar[dict[str, None]] = {"c2s": None, "s2c": None}

    class Ping:
        ts = 1_000_000_000

    timeout = int(DEFAULT_THRESHOLDS.pong_timeout * 1e9)
    assert _went_on(Conn(), "s2c", 3, Ping(), None, Ping.ts + timeout // 2, timeout) == ""  # type: ignore[arg-type]
    assert "went on sending" in _went_on(Conn(), "s2c", 3, Ping(), None,  # type: ignore[arg-type]
                                         Ping.ts + 2 * timeout, timeout)
