"""GraphQL over WebSocket: ``graphql-transport-ws`` and the legacy ``graphql-ws``.

Own parser: both protocols are small JSON envelopes ``{"type", "id",
"payload"}``; the Python packages that speak them (gql, strawberry,
ariadne, graphql-ws) are clients or servers, not passive readers. The
operation name is taken from ``operationName`` or, failing that, from the
first ``query|mutation|subscription Name`` of the query text (a regex, not
a GraphQL parser: graphql-core would be a runtime dependency).

``graphql-transport-ws`` (The Guild's graphql-ws library, PROTOCOL.md):
connection_init -> ``connect``, connection_ack -> ``ack``, ping/pong,
subscribe -> ``subscribe`` (subscription operations) or ``request``
(query/mutation), next -> ``event`` / ``response``, error -> ``error``,
complete -> ``complete`` (server) / ``unsubscribe`` (client).

Legacy ``graphql-ws`` (Apollo subscriptions-transport-ws): connection_init,
connection_ack, connection_error -> ``error``, ka -> ``ping``,
connection_terminate -> ``disconnect``, start -> as subscribe, data -> as
next, error, complete, stop -> ``unsubscribe``.

Channel: the operation name (kept per id for the answers, bounded); id:
the operation id. Fields: ``type``, ``operation_type``,
``operation_name``, ``query``, ``variables``, ``payload``.

Findings: a ``connection_init`` payload carrying tokens, passwords or
authorization -> ``app_credentials_in_clear`` (the keys named);
``__schema``/``__type`` in a query -> ``app_graphql_introspection``.
"""

from __future__ import annotations

import re
from typing import Any

from ._json import MAX_OPEN, NOT_JSON, JsonDecoder, credential_paths, loads
from .base import AppEvent, AppFinding, AppMessage, ConnFacts
from .registry import register

__all__ = ["GraphQLDecoder"]

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"

_OPERATION = re.compile(r"(?<![\w$])(query|mutation|subscription)\b\s*([_A-Za-z][_0-9A-Za-z]*)?")
_INTROSPECTION = re.compile(r"\b__(schema|type)\b")
_COMMENT = re.compile(r"#[^\n\r]*")

#: type -> kind, for both protocols (legacy-only types included).
_KINDS = {
    "connection_init": "connect",
    "connection_ack": "ack",
    "connection_error": "error",
    "connection_terminate": "disconnect",
    "ka": "ping",
    "ping": "ping",
    "pong": "pong",
    "subscribe": "subscribe",
    "start": "subscribe",
    "next": "event",
    "data": "event",
    "error": "error",
    "complete": "complete",
    "stop": "unsubscribe",
}
_TRANSPORT_ONLY = {"subscribe", "next", "ping", "pong"}
_LEGACY_ONLY = {"start", "data", "stop", "ka", "connection_terminate", "connection_error"}


def operation_of(query: Any) -> tuple[str | None, str | None]:
    """(operation type, operation name) of the first operation in ``query``."""
    if not isinstance(query, str):
        return None, None
    text = _COMMENT.sub("", query[:65536]).lstrip()
    if text.startswith("{"):
        return "query", None  # the query shorthand
    match = _OPERATION.search(text)
    if match is None:
        return None, None
    return match.group(1), match.group(2)


@register
class GraphQLDecoder(JsonDecoder):
    """GraphQL subscriptions and operations over both WebSocket protocols."""

    name = "graphql"
    recognition = "subprotocol graphql-transport-ws or graphql-ws; content (connection_init, subscribe with a query)"
    label = "GraphQL"
    subprotocols = (TRANSPORT_WS, LEGACY_WS)
    #: Every GraphQL message is an object with a ``type`` (see gives_nothing).
    marks = (b'"type"',)

    @classmethod
    def content_score(cls, value: Any) -> float:
        if not isinstance(value, dict) or not isinstance(value.get("type"), str):
            return 0.0
        kind = value["type"]
        payload = value.get("payload")
        operation = kind in ("subscribe", "start") and isinstance(payload, dict)
        if kind == "connection_init" or (operation and "query" in (payload or {})):
            return 0.7
        return 0.5 if kind in ("connection_ack", "ka") else 0.0

    def __init__(self, facts: ConnFacts) -> None:
        super().__init__(facts)
        self.flavour: str | None = facts.subprotocol if facts.subprotocol in self.subprotocols else None
        # operation id -> (operation type, operation name)
        self.operations: dict[str, tuple[str | None, str | None]] = {}

    def gives_nothing(self, msg_type: str, payload: bytes) -> bool:
        """Not an object with a known ``type``: :meth:`decode` gives nothing
        for it, unclaimed, and changes nothing."""
        value = loads(payload)
        if not isinstance(value, dict):
            return True
        mtype = value.get("type")
        return not (isinstance(mtype, str) and mtype in _KINDS)

    def decode(self, message: AppMessage) -> list[AppEvent | AppFinding]:
        value = loads(message.payload)
        if not isinstance(value, dict) or not isinstance(value.get("type"), str):
            what = "not JSON" if value is NOT_JSON else "not a GraphQL message object"
            return self.parse_failed(message, f"GraphQL over WebSocket message is {what}")
        mtype: str = value["type"]
        if self.flavour is None:
            if mtype in _TRANSPORT_ONLY:
                self.flavour = TRANSPORT_WS
            elif mtype in _LEGACY_ONLY:
                self.flavour = LEGACY_WS
        kind = _KINDS.get(mtype)
        if kind is None:
            return self.parse_failed(message, f"unknown GraphQL message type {mtype[:40]!r}")
        op_id = value.get("id")
        op_key = op_id if isinstance(op_id, str) else None
        payload = value.get("payload")
        fields: dict[str, Any] = {"type": mtype}
        if payload is not None:
            fields["payload"] = payload
        out: list[AppEvent | AppFinding] = []
        channel: str | None = None
        if mtype in ("subscribe", "start"):
            query = payload.get("query") if isinstance(payload, dict) else None
            op_type, parsed_name = operation_of(query)
            op_name = payload.get("operationName") if isinstance(payload, dict) else None
            if not isinstance(op_name, str) or not op_name:
                op_name = parsed_name
            channel = op_name
            kind = "subscribe" if op_type == "subscription" else "request"
            fields.update(operation_type=op_type, operation_name=op_name, query=query)
            if isinstance(payload, dict) and "variables" in payload:
                fields["variables"] = payload["variables"]
            if op_key is not None and (op_key in self.operations or len(self.operations) < MAX_OPEN):
                self.operations[op_key] = (op_type, op_name)
            if isinstance(query, str) and _INTROSPECTION.search(query):
                out.append(
                    self.finding(
                        message,
                        "app_graphql_introspection",
                        f"GraphQL introspection query (operation {op_name or op_id!s})",
                    )
                )
        elif op_key is not None and op_key in self.operations:
            op_type, channel = self.operations[op_key]
            if mtype in ("next", "data"):
                kind = "event" if op_type == "subscription" else "response"
            if mtype in ("complete", "stop", "error"):
                del self.operations[op_key]
        if mtype == "complete" and message.direction == "c2s":
            kind = "unsubscribe"
        if mtype == "connection_init" and payload is not None:
            paths = credential_paths(payload)
            if paths:
                out.append(
                    self.finding(
                        message,
                        "app_credentials_in_clear",
                        f"GraphQL connection_init payload carries {', '.join(paths[:5])}",
                    )
                )
        if self.flavour is not None:
            fields["subprotocol"] = self.flavour
        out.insert(0, self.event(message, kind, channel, op_id, fields))
        return out
