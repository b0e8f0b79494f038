"""Checks across records: pure functions over what the pipeline collected.

Sans-I/O: performs no I/O.

Design note
-----------
Goal: rules that need more than one record (the handshake against the
frames, a ping against its pong, the keys of a connection's frames, rates,
several connections) live here, away from the per-packet hot path, and run
exactly once per connection: when the pipeline has finished
(:func:`run_checks`, called by :meth:`wspcap.engine.Pipeline.finish`), or
earlier for a connection that has ended (:func:`check_connections`, so that
a caller streaming the tables out can let go of its records).

Plan. Each check is a function ``check(ctx)`` registered with
``@check("layer")`` in one of the ``wspcap.rules`` modules (``http``,
``sec``, ``ws``, ``pmd``, ``res``). A check looks at one connection at a
time (scope ``connection``), or compares connections (scope ``capture``:
those run once, at the end, over every connection; they read no frame).
:class:`Context` gives a check the connections (:class:`Conn`: the
session's handshake and facts, and the positions of its frames and
messages among the records it was given) and the thresholds, and takes its
findings (:meth:`Context.report`). Findings join the collector's anomalies
at the end, after the parsers' own, ordered by check (registration order),
then by connection, then as reported: the same order whether a connection
was checked early or at the end.

Invariants:
- Checks only read records; they never change them.
- A ``connection`` check's findings about a connection depend only on that
  connection's records, facts and parser anomalies.
- ``frame_index`` is the position of a frame among its connection's frames
  in collector order (what the frames table shows), so the k-th entry of
  :attr:`Conn.frame_pos` has frame_index k.
- A check never reports the same (connection, direction, frame, code) as a
  parser did already (codes that both may emit are listed in
  :data:`DEDUPLICATED`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from wspcap.rules.context import CHECKS, ConnFacts, Context, Finding
from wspcap.rules.registry import Anomaly
from wspcap.rules.thresholds import DEFAULT_THRESHOLDS, Thresholds

__all__ = ["CHECK_MODULES", "check_connections", "run_checks"]


def check_connections(records: Any, connections: Sequence[ConnFacts],
                      thresholds: Thresholds | None = None,
                      layers: frozenset[str] | None = None) -> list[Finding]:
    """Run every ``connection`` check once over ``connections``.

    Args:
        records: holds every frame and message of ``connections`` (see
            :class:`Context`).
        connections: the facts of the connections (``Session.facts``).
        thresholds: the thresholds in force (defaults if None).
        layers: run only the checks of these layers (all if None).

    Returns:
        The findings, for :func:`run_checks` (its ``earlier``).
    """
    return _run(Context(records, thresholds or DEFAULT_THRESHOLDS, connections),
                "connection", layers)


def run_checks(collector: Any, unchecked: Sequence[ConnFacts], every: Sequence[ConnFacts],
               earlier: Sequence[Finding] = (), thresholds: Thresholds | None = None,
               layers: frozenset[str] | None = None) -> list[Anomaly]:
    """Finish checking a collector's records: every finding, as anomalies.

    The ``connection`` checks run over ``unchecked`` (the others' findings
    are ``earlier``, see :func:`check_connections`), the ``capture`` checks
    over ``every`` connection.

    Args:
        collector: the pipeline's records, finished.
        unchecked: the facts of the connections not checked yet.
        every: the facts of every connection.
        earlier: what :func:`check_connections` found before.
        thresholds: the thresholds in force (defaults if None).
        layers: run only the checks of these layers (all if None).

    Returns:
        The anomalies found, earlier ones included, in the order that the
        collector's anomalies take them (see the design note); the checks
        change nothing of the collector.
    """
    thresholds = thresholds or DEFAULT_THRESHOLDS
    findings = list(earlier)
    if every:
        findings += _run(Context(collector, thresholds, unchecked), "connection", layers)
        findings += _run(Context(_NoRecords(), thresholds, every), "capture", layers)
    findings.sort(key=lambda f: (f[0], -1 if f[1].conn_id is None else f[1].conn_id))
    return [a for _, a in findings]


def _run(ctx: Context, scope: str, layers: frozenset[str] | None) -> list[Finding]:
    """Run the checks of ``scope`` in ``ctx``."""
    _load_checks()
    for rank, (layer, fn, in_scope) in enumerate(CHECKS):
        if in_scope == scope and (layers is None or layer in layers):
            ctx.run(rank, fn)
    return ctx.findings


class _NoRecords:
    """What ``capture`` checks are given: connections, but no frame or message."""

    anomalies: tuple[Anomaly, ...] = ()

    @staticmethod
    def frame_view() -> list[Any]:
        return []

    message_view = all_frame_keys = all_message_keys = frame_view


#: The rule modules, in the order their checks run (and their findings of one
#: instant are listed), whatever order they were imported in.
CHECK_MODULES = ("http", "pmd", "res", "sec", "ws")


def _load_checks() -> None:
    """Import the modules that register checks, and put the checks in
    :data:`CHECK_MODULES` order (a module's own in the order it declares them)."""
    from wspcap.rules import http, pmd, res, sec, ws  # noqa: F401
    order = {f"wspcap.rules.{name}": i for i, name in enumerate(CHECK_MODULES)}
    CHECKS.sort(key=lambda c: order.get(c[1].__module__, len(order)))
