"""wspcap.tables.schema and wspcap.tables.build: the declared schemas, and the
tables built from crafted records, as Arrow tables and as DataFrames."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wspcap.app.base import NO_ANSWER
from wspcap.app.fields import Coded
from wspcap.rules.registry import RULES, Anomaly
from wspcap.tables import build
from wspcap.tables.arrays import numeric
from wspcap.tables.build import (
    SHARED_MIN,
    RunningIndex,
    anomaly_part,
    arrow_table,
    catalog,
    chunks_array,
    connection_part,
    data_frame,
    empty_table,
    frame_part,
    message_part,
    part_from_values,
)
from wspcap.tables.schema import (
    ANOMALIES,
    APP,
    APP_KIND,
    CATALOG,
    CONNECTIONS,
    DIRECTION,
    FRAMES,
    MESSAGE_TYPE,
    MESSAGES,
    TABLES,
    Column,
    TableSchema,
)
from wspcap.timestamps import TS_NULL
from wspcap.ws.frames import Frame, opcode_name
from wspcap.ws.messages import Message
from wspcap.ws.records import FRAME_PACKING, MESSAGE_PACKING, to_columns

T0 = 1_700_000_000_000_000_000  # a time, ns


def frame(ts: int = T0, payload: bytes = b"hi", mask_key: int | None = 0x01020304,
          opcode: int = 1, offset: int = 0) -> Frame:
    start = ts if ts == TS_NULL else ts - 5
    return Frame(offset, ts, 7, start, True, False, False, False, opcode, mask_key is not None,
                 mask_key, 7, len(payload), 6, payload, 0)


def message(payload: bytes = b"hi", text: str | None = "hi", kind: str = "text",
            opcode: int = 1, inflated: bool | None = None, close_code: int | None = None,
            ts: int = T0) -> Message:
    return Message(kind, opcode, 1, len(payload), len(payload), payload, text,
                   inflated is not None, inflated, ts, ts + 1, 3, 4, 0, 0, close_code,
                   "bye" if close_code else None, True)


def frame_columns(frames: list[Frame], keys: list[int]) -> Any:
    return to_columns(frames, FRAME_PACKING), np.asarray(keys, np.int64)


def message_columns(messages: list[Message], keys: list[int]) -> Any:
    return to_columns(messages, MESSAGE_PACKING), np.asarray(keys, np.int64)


def check_schema(schema: TableSchema, table: pa.Table, df: pd.DataFrame) -> None:
    """The built table carries its schema: Arrow types and pandas dtypes."""
    assert table.schema.equals(schema.arrow, check_metadata=True)
    assert list(df.columns) == schema.names
    for c in schema.columns:
        assert df[c.name].dtype == c.dtype, c.name


# -- the schema ------------------------------------------------------------------------------

class TestSchema:
    @pytest.mark.parametrize(("column", "dtype"), [
        (Column("a", pa.int64(), ""), np.dtype("int64")),
        (Column("a", pa.int64(), "", nullable=True), pd.Int64Dtype()),
        (Column("a", pa.uint16(), "", nullable=True), pd.UInt16Dtype()),
        (Column("a", pa.uint8(), ""), np.dtype("uint8")),
        (Column("a", pa.duration("ns"), "", nullable=True), np.dtype("timedelta64[ns]")),
        (Column("a", pa.bool_(), ""), np.dtype("bool")),
        (Column("a", pa.bool_(), "", nullable=True), pd.BooleanDtype()),
        (Column("a", pa.large_string(), "", nullable=True), pd.StringDtype()),
        (Column("a", pa.timestamp("ns", "UTC"), "", nullable=True),
         pd.DatetimeTZDtype("ns", "UTC")),
        (Column("a", pa.binary(), ""), np.dtype("O")),
    ])
    def test_dtype_follows_type_and_nullability(self, column: Column, dtype: Any) -> None:
        assert column.dtype == dtype

    def test_categorical_columns_take_their_categories(self) -> None:
        assert FRAMES["direction"].dtype == DIRECTION
        assert MESSAGES["type"].dtype == MESSAGE_TYPE
        assert ANOMALIES["severity"].dtype.ordered
        assert pa.types.is_dictionary(ANOMALIES["code"].type)
        assert ANOMALIES["severity"].type.ordered

    @pytest.mark.parametrize("schema", [*TABLES, CATALOG], ids=lambda s: s.name)
    def test_arrow_schema_is_the_columns(self, schema: TableSchema) -> None:
        arrow = schema.arrow
        assert arrow.names == schema.names
        assert [f.type for f in arrow] == [c.type for c in schema.columns]
        assert all(c.meaning for c in schema.columns)
        assert len(set(schema.names)) == len(schema.names)

    @pytest.mark.parametrize("schema", TABLES, ids=lambda s: s.name)
    def test_pandas_metadata_gives_the_dtypes_back(self, schema: TableSchema) -> None:
        # What pd.read_parquet does with a written file: Arrow -> pandas with the metadata.
        back = schema.arrow.empty_table().to_pandas()
        for c in schema.columns:
            if c.categories is None:  # (categories travel with the values, see README)
                assert back[c.name].dtype == c.dtype, c.name

    @pytest.mark.parametrize("schema", [*TABLES, CATALOG], ids=lambda s: s.name)
    def test_pandas_metadata_is_pyarrows_own(self, schema: TableSchema) -> None:
        # The schema's pandas metadata is made without pandas (so that
        # analyze -o never imports it): it must be what pyarrow writes for the
        # empty DataFrame of the table, byte for byte, with the pandas and
        # pyarrow installed.
        empty = pd.DataFrame({c.name: pd.Series([], dtype=c.dtype) for c in schema.columns})
        theirs = pa.Schema.from_pandas(empty, preserve_index=False).metadata
        assert schema.arrow.metadata == theirs

    def test_message_types_cover_every_opcode(self) -> None:
        assert len(MESSAGE_TYPE.categories) == 16
        assert {"text", "binary", "close", "ping", "pong", "unknown-0x3"} <= set(
            MESSAGE_TYPE.categories)


# -- frames ----------------------------------------------------------------------------------

class TestFrames:
    def test_columns_from_records(self) -> None:
        frames = [frame(payload=b"a"), frame(payload=b"bc", mask_key=None, opcode=2, offset=9),
                  frame(ts=TS_NULL, payload=b"")]
        keys = [2 * 5, 2 * 5 + 1, 2 * 3]  # conn 5 c2s, conn 5 s2c, conn 3 c2s
        part = frame_part(frame_columns(frames, keys))
        table, df = arrow_table(FRAMES, part), data_frame(FRAMES, part)
        check_schema(FRAMES, table, df)
        assert df.conn_id.tolist() == [5, 5, 3]
        assert df.direction.tolist() == ["c2s", "s2c", "c2s"]
        assert df.frame_index.tolist() == [0, 1, 0]
        assert df.payload.tolist() == [b"a", b"bc", b""]
        assert df.stream_offset.tolist() == [0, 9, 0]
        assert df.mask_key.isna().tolist() == [False, True, False]
        assert df.mask_key[0] == 0x01020304
        assert df.ts[0] == pd.Timestamp(T0, unit="ns", tz="UTC")
        assert pd.isna(df.ts[2])  # TS_NULL: NaT in pandas ...
        assert table.column("ts").null_count == 1  # ... null in Arrow
        assert table.column("payload").to_pylist() == [b"a", b"bc", b""]

    def test_running_index_goes_on_across_parts(self) -> None:
        running = RunningIndex()
        first = frame_part(frame_columns([frame(), frame()], [2, 4]), running)
        second = frame_part(frame_columns([frame(), frame(), frame()], [4, 2, 0]), running)
        assert first["frame_index"].to_pylist() == [0, 0]
        assert second["frame_index"].to_pylist() == [1, 1, 0]

    def test_empty(self) -> None:
        part = frame_part(frame_columns([], []))
        table, df = arrow_table(FRAMES, part), data_frame(FRAMES, part)
        check_schema(FRAMES, table, df)
        assert len(df) == 0 and table.num_rows == 0


# -- messages --------------------------------------------------------------------------------

class TestMessages:
    def test_columns_from_records(self) -> None:
        messages = [message(), message(b"\x00\xff", None, "binary", 2, inflated=True),
                    message(b"\x03\xe8bye", None, "close", 8, close_code=1000),
                    message(b"?", None, "unknown-0x3", 3, inflated=False)]
        part = message_part(message_columns(messages, [0, 2, 2, 0]))  # conn 0, 1, 1, 0
        table, df = arrow_table(MESSAGES, part), data_frame(MESSAGES, part)
        check_schema(MESSAGES, table, df)
        assert df.type.tolist() == ["text", "binary", "close", "unknown-0x3"]
        assert df.text[0] == "hi" and df.text[1:].isna().all()
        assert df.inflated.isna().tolist() == [True, False, True, False]
        assert df.inflated[1] and not df.inflated[3]
        assert df.close_code.isna().tolist() == [True, True, False, True]
        assert df.close_code[2] == 1000
        assert df.close_reason[2] == "bye"
        assert df.msg_index.tolist() == [0, 0, 1, 1]
        assert table.column("type").to_pylist() == df.type.tolist()
        assert table.column("inflated").to_pylist() == [None, True, None, False]

    def test_type_is_the_opcode_name_for_every_opcode(self) -> None:
        # (the column is made from the opcodes, not from the records' names)
        messages = [message(b"", None, opcode_name(op), op) for op in range(16)]
        df = data_frame(MESSAGES, message_part(message_columns(messages, [0] * 16)))
        assert df.type.tolist() == [opcode_name(op) for op in range(16)]
        assert df.type.dtype == MESSAGES["type"].dtype

    def test_large_payloads_are_shared_not_copied(self) -> None:
        big = bytes(range(256)) * (SHARED_MIN // 256 + 1)
        text = "x" * (SHARED_MIN + 10)
        messages = [message(b"a", "a"), message(big, None, "binary", 2),
                    message(text.encode(), text), message(b"b", "b")]
        table = arrow_table(MESSAGES, message_part(message_columns(messages, [0, 0, 0, 0])))
        payload, texts = table.column("payload"), table.column("text")
        assert payload.to_pylist() == [b"a", big, text.encode(), b"b"]
        assert texts.to_pylist() == ["a", None, text, "b"]
        assert payload.num_chunks == 4  # small, big alone, big alone, small
        # The text is made over the payload's buffers, chunk for chunk (the
        # binary message's bytes under a null): not a copy.
        assert texts.num_chunks == 4
        for i in range(4):
            assert texts.chunk(i).buffers()[2].address == payload.chunk(i).buffers()[2].address

    def test_mutable_payloads_are_copied(self) -> None:
        big = bytearray(SHARED_MIN)
        table = arrow_table(MESSAGES, message_part(message_columns(
            [message(big, None, "binary", 2)], [0])))  # type: ignore[arg-type]
        big[0] = 1
        assert table.column("payload")[0].as_py() == bytes(SHARED_MIN)

    def test_the_dataframe_keeps_the_payload_objects(self) -> None:
        payload = b"kept as it is"
        df = data_frame(MESSAGES, message_part(message_columns([message(payload, None,
                                                                        "binary", 2)], [0])))
        assert df.payload[0] is payload


# -- connections and anomalies ---------------------------------------------------------------

def connection_row(conn_id: int, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for c in CONNECTIONS.columns:
        if pa.types.is_boolean(c.type):
            row[c.name] = None if c.nullable else False
        elif pa.types.is_integer(c.type):
            row[c.name] = None if c.nullable else 0
        elif pa.types.is_timestamp(c.type):
            row[c.name] = T0
        else:
            row[c.name] = None
    row["conn_id"] = conn_id
    row.update(values)
    return row


class TestConnections:
    def test_columns_from_records(self) -> None:
        rows = [connection_row(0, client_ip="10.0.0.1", client_port=50000, status=101,
                               cookie=True, ts_end=TS_NULL),
                connection_row(1, uri="/chat", close_code_c2s=1000, handshake=True)]
        col = SimpleNamespace(sessions=[SimpleNamespace(record=lambda r=r: r) for r in rows])
        part = connection_part(col)  # type: ignore[arg-type]
        table, df = arrow_table(CONNECTIONS, part), data_frame(CONNECTIONS, part)
        check_schema(CONNECTIONS, table, df)
        assert df.conn_id.tolist() == [0, 1]
        assert df.client_ip[0] == "10.0.0.1" and pd.isna(df.client_ip[1])
        assert df.client_port[0] == 50000 and pd.isna(df.client_port[1])
        assert df.cookie[0] and pd.isna(df.cookie[1])
        assert pd.isna(df.ts_end[0]) and df.ts_end[1] == pd.Timestamp(T0, tz="UTC")
        assert df.handshake.tolist() == [False, True]
        assert df.close_code_c2s[1] == 1000

    def test_empty(self) -> None:
        part = connection_part(SimpleNamespace(sessions=[]))  # type: ignore[arg-type]
        check_schema(CONNECTIONS, arrow_table(CONNECTIONS, part), data_frame(CONNECTIONS, part))


def anomaly(ts: int, code: str, conn_id: int | None = 0,
            direction: str | None = "c2s") -> Anomaly:
    return Anomaly(conn_id, ts, direction, None if conn_id is None else 3, code,
                   RULES[code].severity, f"at {ts}", None, None)


class TestAnomalies:
    def test_sorted_by_time_stably_null_times_last(self) -> None:
        codes = sorted(RULES)
        found = [anomaly(T0 + 5, codes[0]), anomaly(TS_NULL, codes[1], None, None),
                 anomaly(T0, codes[2]), anomaly(T0 + 5, codes[3]), anomaly(T0, codes[4])]
        part = anomaly_part(SimpleNamespace(anomalies=found))  # type: ignore[arg-type]
        table, df = arrow_table(ANOMALIES, part), data_frame(ANOMALIES, part)
        check_schema(ANOMALIES, table, df)
        assert df.code.tolist() == [codes[2], codes[4], codes[0], codes[3], codes[1]]
        assert pd.isna(df.ts[4]) and pd.isna(df.conn_id[4]) and pd.isna(df.direction[4])
        assert df.severity.tolist() == [RULES[c].severity for c in df.code]
        assert df.frame_index.tolist()[:4] == [3, 3, 3, 3]
        assert df.packet.isna().all()

    def test_empty(self) -> None:
        part = anomaly_part(SimpleNamespace(anomalies=[]))  # type: ignore[arg-type]
        check_schema(ANOMALIES, arrow_table(ANOMALIES, part), data_frame(ANOMALIES, part))


# -- Arrow -> pandas -------------------------------------------------------------------------

class TestDataFrame:
    def test_nulls_categoricals_and_timestamps_survive(self) -> None:
        schema = ANOMALIES
        direction = pa.DictionaryArray.from_arrays(
            pa.array([1, None, 0], pa.int32()), pa.array(["c2s", "s2c"], pa.large_string()))
        code = build._dictionary(["tcp_gap", "tcp_gap", "no_such_code"], schema["code"])
        part = {
            "conn_id": pa.array([1, None, 3], pa.int64()),
            "ts": pa.array([T0, None, T0 + 1], pa.timestamp("ns", "UTC")),
            "direction": direction, "frame_index": pa.array([None] * 3, pa.int64()),
            "packet": pa.array([1, 2, 3], pa.int64()),
            "stream_offset": pa.array([None, 5, None], pa.int64()), "code": code,
            "severity": build._dictionary(["error", "info", None], schema["severity"]),
            "detail": pa.array(["x", None, ""], pa.large_string()),
        }
        df = data_frame(schema, part)
        assert list(df.dtypes) == [c.dtype for c in schema.columns]
        assert df.conn_id.isna().tolist() == [False, True, False]
        assert pd.isna(df.ts[1]) and df.ts[2] == pd.Timestamp(T0 + 1, unit="ns", tz="UTC")
        assert df.direction.tolist()[0] == "s2c" and pd.isna(df.direction[1])
        assert df.code.tolist()[:2] == ["tcp_gap", "tcp_gap"] and pd.isna(df.code[2])
        assert df.severity.max() == "error"  # ordered: info < error (not as strings)
        assert df.detail.tolist()[0] == "x" and pd.isna(df.detail[1]) and df.detail[2] == ""

    @pytest.mark.parametrize("schema", [*TABLES, CATALOG], ids=lambda s: s.name)
    def test_empty_frame_has_the_dtypes(self, schema: TableSchema) -> None:
        df = data_frame(schema, empty_table(schema))
        assert len(df) == 0
        assert dict(df.dtypes) == schema.dtypes


# -- app ---------------------------------------------------------------------------------------

def app_values(protocol: list[str], kind: list[str]) -> dict[str, Any]:
    """An app table's columns: a request, then its answer 1 ms later."""
    return {
        "conn_id": [0, 0], "msg_index": [3, 4], "part": [0, 0], "first_frame": [3, 4],
        "last_frame": [3, 4], "packet_start": [9, 11], "packet_end": [9, 11],
        "ts": [T0, TS_NULL], "direction": ["c2s", "s2c"], "protocol": protocol, "kind": kind,
        "channel": ["sum", None], "id": ["1", "1"], "request_msg": [None, 3],
        "latency": [None, 10**6], "fields": ["{}", '{"result":3}'],
    }


class TestApp:
    def test_columns_from_values(self) -> None:
        part = part_from_values(APP, app_values(["jsonrpc"] * 2, ["request", "response"]))
        table, df = arrow_table(APP, part), data_frame(APP, part)
        check_schema(APP, table, df)
        assert df.latency.isna().tolist() == [True, False]
        assert df.latency[1] == pd.Timedelta("1ms") and df.request_msg.tolist()[1] == 3
        assert pd.isna(df.request_msg[0]) and pd.isna(df.ts[1]) and pd.isna(df.channel[1])
        pd.testing.assert_frame_equal(data_frame(APP, table), df)

    def test_protocol_and_kind_categories(self) -> None:
        from wspcap.app.registry import DECODERS
        assert list(APP["protocol"].dtype.categories) == sorted(DECODERS)
        assert APP["kind"].dtype == APP_KIND
        assert APP["protocol"].open and APP["kind"].open and not APP["direction"].open
        assert pa.types.is_duration(APP["latency"].type)

    @pytest.mark.parametrize("bounds", [[(0, 1), (1, 2)], [(0, 0), (0, 2)],
                                        [(0, 1), (1, 1), (1, 2)], [(0, 2)]])
    def test_columns_from_chunks(self, bounds: list[tuple[int, int]]) -> None:
        """chunks_array (the app table's columns kept in parts) makes what
        the values whole make, however they are cut (an empty chunk too)."""
        values = app_values(["acme", "jsonrpc"], ["zap", "request"])
        values["direction"] = ["c2s", None]
        whole = part_from_values(APP, values)
        parts = {c.name: chunks_array([values[c.name][i:j] for i, j in bounds], c)
                 for c in APP.columns if c.name != "ts"}
        chunked = part_from_values(APP, {**values, **parts})
        for c in APP.columns:
            assert chunked[c.name].equals(whole[c.name]), c.name
        pd.testing.assert_frame_equal(data_frame(APP, chunked), data_frame(APP, whole))

    def test_open_categories_gain_what_the_table_holds(self) -> None:
        # A third-party decoder's name and kind: categories of their own, sorted in.
        part = part_from_values(APP, app_values(["acme", "jsonrpc"], ["zap", "request"]))
        table, df = arrow_table(APP, part), data_frame(APP, part)
        assert table.schema.equals(APP.arrow, check_metadata=True)
        protocols = list(df.protocol.cat.categories)
        assert protocols == sorted([*APP["protocol"].dtype.categories, "acme"])
        assert list(df.kind.cat.categories) == sorted([*APP_KIND.categories, "zap"])
        assert df.protocol.tolist() == ["acme", "jsonrpc"] and df.kind.tolist()[0] == "zap"
        assert APP.matches(df) and df.protocol.dtype != APP["protocol"].dtype
        back = data_frame(APP, table)
        assert list(back.protocol.cat.categories) == protocols
        pd.testing.assert_frame_equal(back, df)


def test_catalog_is_every_rule() -> None:
    rules = catalog()
    assert list(rules.code) == list(RULES)
    assert dict(rules.dtypes) == CATALOG.dtypes
    assert rules.close_code.notna().sum() == sum(r.close_code is not None
                                                 for r in RULES.values())


_NAMES = st.sampled_from(["request", "response", "c2s", "s2c", "zap", "acme", "", None])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_NAMES, max_size=6), max_size=5), st.sampled_from(["kind", "direction"]),
       st.lists(st.booleans(), min_size=5, max_size=5))
def test_dictionary_chunks_are_the_names_whole(chunks: list[list[str | None]], name: str,
                                               coded: list[bool]) -> None:
    # The codes made chunk by chunk (an open column's categories widened by
    # the names it does not declare, looked for among the uncoded ones) are
    # those of the names whole, by the rule itself: an open column gains
    # every name it holds, sorted in; a fixed one holds null for the others.
    # A chunk may come as its names' codes (a compiled loop's Coded, names
    # of none but its own, in any order).
    column = APP[name]
    flat = [n for chunk in chunks for n in chunk]
    given: list[Any] = []
    for chunk, as_codes in zip(chunks, coded):
        names = sorted({n for n in chunk if n is not None}, reverse=True)
        given.append(Coded(np.array([names.index(str(n)) for n in chunk], np.uint8), names)
                     if as_codes and None not in chunk else chunk)
    got = chunks_array(given, column)
    declared = list(column.declared.names)
    seen = {n for n in flat if n is not None}
    names = sorted(set(declared) | seen) if column.open and not seen <= set(declared) \
        else declared
    assert got.dictionary.to_pylist() == names
    assert got.to_pylist() == [n if n in names else None for n in flat]


def _app_part(rows: int) -> dict[str, Any]:
    """An ``app`` part of ``rows`` rows, its numbers fresh NumPy arrays (as
    the table side makes them), its ts and latency with a null."""
    n = np.arange(rows, dtype=np.int64)
    ts = n * 1_000_000 + 1_700_000_000 * 10**9
    ts[-1] = TS_NULL
    return part_from_values(APP, {
        "conn_id": n // 2, "msg_index": n.copy(), "part": np.zeros(rows, np.int64),
        "first_frame": n + 1, "last_frame": n + 2, "packet_start": n + 3, "packet_end": n + 4,
        "ts": ts, "direction": ["c2s", "s2c"] * (rows // 2), "protocol": ["jsonrpc"] * rows,
        "kind": ["request", "response"] * (rows // 2),
        "channel": [f"m{i}" for i in range(rows)], "id": [str(i) for i in range(rows)],
        # (as the table side makes them: NO_ANSWER, the int64 minimum, for null)
        **{name: numeric(values, APP[name].type, values == NO_ANSWER) for name, values in (
            ("request_msg", np.array([NO_ANSWER, 0] * (rows // 2), np.int64)),
            ("latency", np.array([NO_ANSWER, 5] * (rows // 2), np.int64)))},
        "fields": ["{}"] * rows})


@pytest.mark.parametrize("owned", [False, True])
def test_an_owned_part_is_taken_as_it_is_and_stays_writable(owned: bool) -> None:
    part = _app_part(6)
    table = arrow_table(APP, part)
    df = data_frame(APP, table, owned=owned)
    assert df.equals(data_frame(APP, table))
    # Owned, the numbers are the part's buffers (no copy), nullable ones too
    # (their nulls a mask, or NaT); not owned, copies.
    for name, values in (("first_frame", df["first_frame"].to_numpy()),
                         ("request_msg", df["request_msg"].array._data),
                         ("latency", df["latency"].to_numpy())):
        buffer = np.frombuffer(table.column(name).chunk(0).buffers()[1], np.int64)
        assert np.shares_memory(values, buffer) is owned, name
    assert df["request_msg"].isna().tolist() == df["latency"].isna().tolist() == [
        True, False] * 3
    # Every column takes a value, as any DataFrame's would (none is a
    # read-only view of an Arrow buffer: pandas would refuse it).
    want = df.iloc[[1, 1]].reset_index(drop=True)
    for name in APP.names:
        df.loc[0, name] = df.loc[1, name]
    pd.testing.assert_frame_equal(df.iloc[:2].reset_index(drop=True), want)
