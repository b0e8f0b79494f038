"""wspcap.tables.export: the writers, Parquet, CSV and JSON lines, in parts
and whole, and the payload spool."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wspcap.errors import ConfigError
from wspcap.tables import export
from wspcap.tables.build import arrow_table, data_frame, message_part, part_from_values
from wspcap.tables.export import (
    PayloadSpool,
    SpooledBytes,
    TableStream,
    TableWriter,
    textual,
    write_table,
)
from wspcap.tables.schema import APP, MESSAGES, TABLES
from wspcap.ws.messages import Message
from wspcap.ws.records import MESSAGE_PACKING, to_columns

T0 = 1_700_000_000_123_456_789


def message(payload: bytes, text: str | None, ts: int = T0) -> Message:
    kind, opcode = ("text", 1) if text is not None else ("binary", 2)
    return Message(kind, opcode, 1, len(payload), len(payload), payload, text, False, None,
                   ts, ts, 1, 1, 0, 0, None, None, True)


def messages_table(messages: list[Message], keys: list[int] | None = None) -> pa.Table:
    keys = keys if keys is not None else [0] * len(messages)
    cols = to_columns(messages, MESSAGE_PACKING), np.asarray(keys, np.int64)
    return arrow_table(MESSAGES, message_part(cols))


def check_written(schema: pa.Schema, declared: Any) -> None:
    """A file's schema, read back, is the declared one (Parquet gives dictionary
    values back as ``string``, not ``large_string``), pandas' metadata included."""
    def read_back(t: pa.DataType) -> pa.DataType:
        return (pa.dictionary(t.index_type, pa.string(), t.ordered)
                if pa.types.is_dictionary(t) else t)
    assert schema.names == declared.names
    assert list(schema.types) == [read_back(f.type) for f in declared.arrow]
    assert schema.metadata[b"pandas"] == declared.arrow.metadata[b"pandas"]


SOME = [message(b"hello", "hello"), message(b"\x00\x01\xfe", None),
        message("héllo".encode(), "héllo", T0 + 10**9)]


class TestTableWriter:
    def test_parquet_parts_append_and_read_back(self, tmp_path: Path) -> None:
        path = str(tmp_path / "m.parquet")
        writer = TableWriter(path, "parquet", MESSAGES)
        writer.write(messages_table(SOME[:2]))
        writer.write(messages_table(SOME[2:]))
        writer.close()
        back = pq.read_table(path)
        check_written(back.schema, MESSAGES)
        assert back.column("payload").to_pylist() == [m.payload for m in SOME]
        # pandas reads the declared dtypes back (categories come with the values).
        df = pd.read_parquet(path)
        for c in MESSAGES.columns:
            if c.categories is None:
                assert df[c.name].dtype == c.dtype, c.name

    def test_parquet_row_groups_follow_the_payload_size(self, tmp_path: Path,
                                                        monkeypatch: Any) -> None:
        monkeypatch.setattr(export, "SLICE_BYTES", 1000)
        rows = [message(bytes(400), None) for _ in range(200)]  # 80,000 payload bytes
        path = str(tmp_path / "m.parquet")
        writer = TableWriter(path, "parquet", MESSAGES)
        writer.write(messages_table(rows))
        writer.close()
        meta = pq.ParquetFile(path).metadata
        assert meta.num_rows == 200
        assert meta.num_row_groups == 4  # at least 64 rows a group: 64, 64, 64, 8

    def test_a_writer_given_nothing_writes_an_empty_table(self, tmp_path: Path) -> None:
        for fmt in export.FORMATS:
            path = str(tmp_path / f"m.{fmt}")
            TableWriter(path, fmt, MESSAGES).close()
            assert Path(path).exists()
        check_written(pq.read_table(tmp_path / "m.parquet").schema, MESSAGES)
        assert pd.read_csv(tmp_path / "m.csv").columns.tolist() == MESSAGES.names
        assert (tmp_path / "m.jsonl").read_text() == ""

    def test_csv_and_jsonl_parts_append(self, tmp_path: Path) -> None:
        for fmt in ("csv", "jsonl"):
            path = str(tmp_path / f"m.{fmt}")
            writer = TableWriter(path, fmt, MESSAGES)
            writer.write(messages_table(SOME[:1]))
            writer.write(messages_table(SOME[1:]))
            writer.close()
        csv = pd.read_csv(tmp_path / "m.csv")
        assert csv.payload.tolist() == [m.payload.hex() for m in SOME]
        assert csv.ts_start.tolist()[2] == "2023-11-14T22:13:21.123456Z"
        lines = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
        assert [r["text"] for r in lines] == ["hello", None, "héllo"]
        assert [r["payload"] for r in lines] == [m.payload.hex() for m in SOME]

    def test_spooled_payloads_are_read_back(self, tmp_path: Path) -> None:
        spool = PayloadSpool(tmp_path, min_size=10)
        big_text = "t" * 50
        rows = [spool(m) for m in (message(b"small", "small"), message(bytes(range(40)), None),
                                   message(big_text.encode(), big_text))]
        assert isinstance(rows[1].payload, SpooledBytes) and rows[1].payload == b""
        table = messages_table(rows)
        spooled = export._spooled_rows(table.column("payload").to_pylist(), [
            m.text for m in rows])
        assert spooled == []  # (Arrow holds plain bytes: the markers are found in the records)
        cols = to_columns(rows, MESSAGE_PACKING)
        spooled = export._spooled_rows(cols[0]["payload"], cols[0]["text"])
        assert [(row, is_text) for row, _m, is_text in spooled] == [(1, False), (2, True)]
        for fmt in ("parquet", "jsonl"):
            path = str(tmp_path / f"m.{fmt}")
            writer = TableWriter(path, fmt, MESSAGES)
            writer.write(table, spooled)
            writer.close()
        back = pq.read_table(tmp_path / "m.parquet")
        assert back.column("payload").to_pylist() == [b"small", bytes(range(40)),
                                                      big_text.encode()]
        assert back.column("text").to_pylist() == ["small", None, big_text]
        lines = (tmp_path / "m.jsonl").read_text().splitlines()
        assert json.loads(lines[2])["text"] == big_text


class TestWriteTable:
    def df(self) -> pd.DataFrame:
        return data_frame(MESSAGES, messages_table(SOME, [0, 1, 2]))

    def test_a_declared_table_is_written_with_its_schema(self, tmp_path: Path) -> None:
        df = self.df()
        path = write_table(df, str(tmp_path / "m.parquet"), "parquet", MESSAGES)
        check_written(pq.read_table(path).schema, MESSAGES)
        pd.testing.assert_frame_equal(pd.read_parquet(path), df, check_categorical=False)

    def test_another_table_gets_an_inferred_schema(self, tmp_path: Path) -> None:
        df = self.df()
        df.insert(0, "capture", pd.Categorical(["a.pcap"] * len(df)))
        df["nothing"] = None
        path = write_table(df, str(tmp_path / "m.parquet"), "parquet", MESSAGES)
        schema = pq.read_schema(path)
        assert schema.names == ["capture", *MESSAGES.names, "nothing"]
        written = pq.ParquetFile(path).schema_arrow
        assert written.field("capture").type.index_type == pa.int32()
        assert written.field("nothing").type == pa.large_string()
        assert written.field("payload").type == pa.binary()

    def test_text_formats(self, tmp_path: Path) -> None:
        df = self.df()
        write_table(df, str(tmp_path / "m.csv"), "csv")
        write_table(df, str(tmp_path / "m.jsonl"), "jsonl")
        write_table(df.iloc[:0], str(tmp_path / "e.jsonl"), "jsonl")
        assert pd.read_csv(tmp_path / "m.csv").payload.tolist() == [m.payload.hex()
                                                                   for m in SOME]
        assert len((tmp_path / "m.jsonl").read_text().splitlines()) == 3
        assert (tmp_path / "e.jsonl").read_text() == ""

    def test_textual_leaves_the_table_alone(self) -> None:
        df = self.df()
        text = textual(df)
        assert text.payload.tolist() == [m.payload.hex() for m in SOME]
        assert text.ts_end[0] == "2023-11-14T22:13:20.123456Z"
        assert df.payload.tolist() == [m.payload for m in SOME]


def test_unknown_format_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        TableStream(tmp_path, "xlsx")


def test_stream_writes_every_table_even_with_no_rows(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from wspcap.tables.build import anomaly_part, connection_part
    from wspcap.tables.schema import ANOMALIES, CONNECTIONS

    stream = TableStream(tmp_path, "parquet")
    empty = SimpleNamespace(sessions=[], anomalies=[])
    paths = stream.close(arrow_table(CONNECTIONS, connection_part(empty)),  # type: ignore[arg-type]
                         arrow_table(ANOMALIES, anomaly_part(empty)))  # type: ignore[arg-type]
    # app too (not given: empty), with the declared schema as the others.
    assert [Path(p).name for p in paths] == [f"{t.name}.parquet" for t in TABLES]
    assert TABLES[-1].name == "app"
    for path, schema in zip(paths, TABLES, strict=True):
        back = pq.read_table(path)
        assert back.num_rows == 0
        check_written(back.schema, schema)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_a_table_replaces_an_old_file_by_a_new_one(tmp_path: Path, fmt: str) -> None:
    """An old output is removed, not truncated (ext4 flushes a truncated
    file's new blocks when it is closed): a hard link to it keeps the old
    bytes, and the new file has the new rows. A symbolic link is written
    through, as before."""
    old = tmp_path / f"messages.{fmt}"
    old.write_bytes(b"old table")
    (tmp_path / "kept").hardlink_to(old)
    writer = TableWriter(str(old), fmt, MESSAGES)
    writer.write(messages_table(SOME))
    writer.close()
    assert (tmp_path / "kept").read_bytes() == b"old table"
    assert old.stat().st_nlink == 1
    df = (pd.read_parquet(old) if fmt == "parquet" else
          pd.read_csv(old) if fmt == "csv" else pd.read_json(old, lines=True))
    assert df.length.tolist() == [5, 3, 6]

    target = tmp_path / "target"
    target.write_bytes(b"old table")
    link = tmp_path / f"link.{fmt}"
    link.symlink_to(target)
    write_table(data_frame(MESSAGES, messages_table(SOME)), str(link), fmt, MESSAGES)
    assert link.is_symlink() and target.read_bytes() != b"old table"


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_failed_read_leaves_the_old_tables(tmp_path: Path, fmt: str) -> None:
    """Old tables are removed only when their new file is written: a read
    that fails before (not a capture) leaves them as they were."""
    from wspcap.api.reading import analyze_to
    from wspcap.errors import CaptureFormatError

    out = tmp_path / "out"
    out.mkdir()
    for t in TABLES:
        (out / f"{t.name}.{fmt}").write_bytes(b"old " + t.name.encode())
    bad = tmp_path / "notes.txt"
    bad.write_text("not a capture")
    with pytest.raises(CaptureFormatError):
        analyze_to(bad, out, fmt)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {
        f"{t.name}.{fmt}": b"old " + t.name.encode() for t in TABLES}


@pytest.mark.parametrize("protocol", ["jsonrpc", "acme"])  # acme: a third-party decoder's
def test_app_is_written_with_its_declared_schema(tmp_path: Path, protocol: str) -> None:
    app = data_frame(APP, part_from_values(APP, {
        "conn_id": [0], "msg_index": [4], "part": [0], "first_frame": [4], "last_frame": [4],
        "packet_start": [11], "packet_end": [11], "ts": [10**18], "direction": ["s2c"],
        "protocol": [protocol], "kind": ["response"], "channel": ["sum"], "id": ["1"],
        "request_msg": [3], "latency": [10**6], "fields": ["{}"]}))
    paths = {fmt: write_table(app, str(tmp_path / f"app.{fmt}"), fmt, APP)
             for fmt in ("parquet", "csv")}
    check_written(pq.read_schema(paths["parquet"]), APP)
    back = pd.read_parquet(paths["parquet"])
    assert back.protocol.tolist() == [protocol] and back.latency.tolist() == app.latency.tolist()
    assert pd.read_csv(paths["csv"]).latency.tolist() == [0.001]  # durations in seconds
