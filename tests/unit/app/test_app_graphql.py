"""GraphQL over graphql-transport-ws and graphql-ws: operations, names, findings."""

from __future__ import annotations

from app_samples import GRAPHQL, GRAPHQL_LEGACY, conversation, j, run, summary

from wspcap.app import ConnFacts
from wspcap.app.graphql import GraphQLDecoder, operation_of


def test_transport_ws_conversation() -> None:
    events, findings = run(GraphQLDecoder, GRAPHQL.facts, GRAPHQL.messages)
    assert summary(events) == GRAPHQL.expected
    sub = events[2].fields
    assert sub["operation_type"] == "subscription" and sub["operation_name"] == "OnPrice"
    assert sub["variables"] == {"s": "EURUSD"} and "price(symbol: $s)" in sub["query"]
    assert events[3].fields["payload"] == {"data": {"price": 1.08}}
    assert [(f.code, f.msg_index) for f in findings] == [("app_credentials_in_clear", 0)]
    assert "authToken" in findings[0].detail
    assert events[0].fields["payload"] == {"authToken": "s3cr3t"}  # kept for the analyst


def test_legacy_conversation() -> None:
    events, findings = run(GraphQLDecoder, GRAPHQL_LEGACY.facts, GRAPHQL_LEGACY.messages)
    assert summary(events) == GRAPHQL_LEGACY.expected
    assert events[3].fields["operation_type"] == "subscription"
    assert all(e.fields["subprotocol"] == "graphql-ws" for e in events)
    assert findings == []


def test_flavour_guessed_from_content() -> None:
    events, _ = run(GraphQLDecoder, ConnFacts(), GRAPHQL_LEGACY.messages)
    assert events[-1].fields["subprotocol"] == "graphql-ws"


def test_introspection_and_nested_credentials() -> None:
    msgs = conversation(
        ("c2s", j({"type": "connection_init", "payload": {"headers": {"Authorization": "Bearer x"}}})),
        ("c2s", j({"id": "1", "type": "subscribe", "payload": {
            "query": "query IntrospectionQuery { __schema { types { name } } }"}})),
        ("c2s", j({"id": "2", "type": "subscribe", "payload": {
            "query": "{ me { __typename name } }"}})),
        ("c2s", j({"id": "3", "type": "subscribe", "payload": {
            "query": "query { __type(name: \"User\") { name } }"}})),
    )
    events, findings = run(GraphQLDecoder, GRAPHQL.facts, msgs)
    assert [(f.code, f.msg_index) for f in findings] == [
        ("app_credentials_in_clear", 0), ("app_graphql_introspection", 1),
        ("app_graphql_introspection", 3)]
    assert "headers.Authorization" in findings[0].detail
    assert events[1].channel == "IntrospectionQuery" and events[2].channel is None
    assert events[2].kind == "request"


def test_operation_of() -> None:
    assert operation_of("mutation AddUser($n: String) { add(n: $n) }") == ("mutation", "AddUser")
    assert operation_of("# comment query Fake\nsubscription S { x }") == ("subscription", "S")
    assert operation_of("  { hero { name } }") == ("query", None)
    assert operation_of("query { x }") == ("query", None)
    assert operation_of(None) == (None, None)
    assert operation_of("fragment F on T { subscriptionId }") == (None, None)


def test_bad_messages() -> None:
    msgs = conversation(("c2s", "nope"), ("c2s", j({"type": "bogus"})), ("c2s", j([1])))
    _, findings = run(GraphQLDecoder, GRAPHQL.facts, msgs)
    assert [f.msg_index for f in findings] == [0, 1, 2]
    assert run(GraphQLDecoder, ConnFacts(), msgs) == ([], [])


def test_recognize() -> None:
    assert GraphQLDecoder.recognize(ConnFacts(subprotocol="graphql-ws"), []) == 1.0
    assert GraphQLDecoder.recognize(ConnFacts(subprotocol="graphql-transport-ws"), []) == 1.0
    assert GraphQLDecoder.recognize(ConnFacts(), GRAPHQL.messages[:2]) == 0.7
    assert GraphQLDecoder.recognize(ConnFacts(), GRAPHQL.messages[1:2]) == 0.5
    assert GraphQLDecoder.recognize(ConnFacts(), conversation(("c2s", j({"type": "x"})))) == 0


def test_operation_of_agrees_with_graphql_core() -> None:
    """The regex names the same first operation as graphql-core's parser."""
    import pytest

    graphql = pytest.importorskip("graphql")
    queries = [
        "query Me { me { name } }",
        "mutation Add($x: Int) { add(x: $x) }",
        "subscription OnPrice { price }",
        "{ hero { name } }",
        "query { a }",
        "# leading comment\nquery  Named\n($v: ID) { node(id: $v) { id } }",
        "fragment F on User { name }\nquery UsesF { me { ...F } }",
        "query IntrospectionQuery { __schema { queryType { name } } }",
    ]
    for text in queries:
        doc = graphql.parse(text)
        op = next(d for d in doc.definitions if isinstance(d, graphql.OperationDefinitionNode))
        expected = (op.operation.value, op.name.value if op.name else None)
        assert operation_of(text) == expected, text
