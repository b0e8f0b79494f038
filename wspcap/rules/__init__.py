"""Anomaly rules: one registry of stable codes, and the checks that use it."""

from wspcap.rules.registry import RULES, SEVERITIES, Anomaly, Rule, severity_of

__all__ = ["RULES", "SEVERITIES", "Anomaly", "Rule", "severity_of"]
