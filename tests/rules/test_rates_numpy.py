"""The NumPy forms of the rate and time checks against plain Python over
the same values, times anywhere in int64's range (a capture may say so)."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from wspcap.rules.res import _differences_fit, _first_burst
from wspcap.rules.sec import _suspects

INT64 = st.integers(-(1 << 63) + 1, (1 << 63) - 1)


def _first_burst_reference(times: list[int], window: int, limit: float) -> tuple[int, int] | None:
    m = math.floor(limit) + 1
    for j in range(m - 1, len(times)):
        if times[j] - times[j - m + 1] <= window:
            return j, m
    return None


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(INT64, st.integers(0, 50)), max_size=40), st.integers(0, 30),
       st.floats(0, 6))
def test_first_burst(times: list[int], window: int, limit: float) -> None:
    assert _first_burst(np.array(times, np.int64), window, limit) \
        == _first_burst_reference(times, window, limit)


@given(st.lists(INT64, max_size=10), st.lists(INT64, max_size=10))
def test_differences_fit(a: list[int], b: list[int]) -> None:
    fits = all(-(1 << 63) <= x - y < (1 << 63) for x in a for y in b)
    assert _differences_fit(np.array(a, np.int64), np.array(b, np.int64)) == fits


@st.composite
def keys(draw: st.DrawFn) -> list[int]:
    """Random keys, sometimes with a run of keys a constant step apart."""
    out = draw(st.lists(st.integers(1, (1 << 32) - 1), max_size=8))
    if draw(st.booleans()):
        start, step = draw(st.integers(1, (1 << 32) - 1)), draw(st.integers(0, (1 << 32) - 1))
        run = [(start + i * step) & 0xFFFFFFFF or 1 for i in range(draw(st.integers(2, 6)))]
        at = draw(st.integers(0, len(out)))
        out[at:at] = run
    return out


def _suspect_reference(keys: list[int]) -> bool:
    steps = [(b - a) & 0xFFFFFFFF for a, b in pairwise(keys)]
    even = any(steps[i] == steps[i + 1] == steps[i + 2] for i in range(len(steps) - 2))
    return len(keys) - len(set(keys)) >= 2 or even


@settings(max_examples=300)
@given(st.lists(keys() | st.lists(st.integers(1, 4), max_size=6), max_size=5))
def test_suspects(owned: list[list[int]]) -> None:
    """Every connection's masking keys at once: the same connections picked
    out as when each one's keys are looked at on their own (repeats, even
    steps, and nothing across two connections' keys)."""
    flat = np.array([k for keys in owned for k in keys], np.int64)
    owner = np.repeat(np.arange(len(owned)), [len(keys) for keys in owned])
    got = _suspects(flat, owner, len(owned)).tolist()
    assert got == [_suspect_reference(keys) for keys in owned]
