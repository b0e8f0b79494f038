"""The four tables, as pandas DataFrames with declared dtypes.

Each table's schema (column -> dtype) is declared once here. Tables are built
column-wise from the pipeline's records (one ``zip`` transposes them, NumPy
makes the columns), never row by row, and an empty capture gives empty tables
with the same columns and dtypes.

Timestamps are UTC ``datetime64[ns]`` (NaT for a packet whose time int64
nanoseconds cannot hold, see :data:`~wspcap.timestamps.TS_NULL`); ids, counts and lengths are integers
(nullable where a value may be missing); ``direction``, ``type``, ``code`` and
``severity`` are categoricals of one fixed dtype each (:data:`DIRECTION`,
:data:`MESSAGE_TYPE`, :data:`CODE`, :data:`SEVERITY`), the same for every
capture, so the tables of several captures concatenate with ``pd.concat``
and stay categorical.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from wspcap.rules.registry import RULES, SEVERITIES
from wspcap.timestamps import TS_NULL
from wspcap.ws.frames import opcode_name

if TYPE_CHECKING:
    from wspcap.engine import Collector
    from wspcap.ws.records import Columns

__all__ = [
    "ANOMALY_SCHEMA",
    "CATALOG_SCHEMA",
    "CODE",
    "CONNECTION_SCHEMA",
    "DIRECTION",
    "FRAME_SCHEMA",
    "MESSAGE_SCHEMA",
    "MESSAGE_TYPE",
    "SEVERITY",
    "RunningIndex",
    "anomalies_table",
    "catalog",
    "connections_table",
    "empty_table",
    "frame_arrays",
    "frames_table",
    "message_arrays",
    "messages_table",
]

TS = "datetime64[ns, UTC]"
#: ``direction``: client to server, server to client.
DIRECTION = pd.CategoricalDtype(["c2s", "s2c"])
#: ``severity``, ordered (``info < warning < error``), so ``max()`` is the worst.
SEVERITY = pd.CategoricalDtype(list(SEVERITIES), ordered=True)
#: ``code``: every code of the catalog, sorted (see :func:`catalog`).
CODE = pd.CategoricalDtype(sorted(RULES))
MESSAGE_TYPES = ["text", "binary", "close", "ping", "pong", "continuation"]
#: ``type`` of a message: the known types, then ``unknown-0xN`` for the
#: reserved opcodes 3-7 and 11-15 (RFC 6455 section 5.2).
MESSAGE_TYPE = pd.CategoricalDtype(
    MESSAGE_TYPES + [name for name in map(opcode_name, range(16)) if name not in MESSAGE_TYPES])

CONNECTION_SCHEMA: dict[str, Any] = {
    "conn_id": "int64", "tcp_stream": "int64",
    "client_ip": "string", "client_port": "UInt16", "server_ip": "string",
    "server_port": "UInt16", "ts_start": TS, "ts_end": TS,
    "handshake": "bool", "established": "bool", "midstream": "bool",
    "method": "string", "uri": "string", "host": "string", "origin": "string",
    "user_agent": "string", "cookie": "boolean", "authorization": "boolean",
    "key": "string", "version": "string", "protocols_offered": "string",
    "extensions_offered": "string", "status": "UInt16", "reason": "string",
    "accept": "string", "accept_valid": "boolean", "subprotocol": "string",
    "extensions": "string", "permessage_deflate": "bool",
    "close_code_c2s": "UInt16", "close_reason_c2s": "string",
    "close_code_s2c": "UInt16", "close_reason_s2c": "string",
    "frames": "int64", "frames_c2s": "int64", "frames_s2c": "int64", "messages": "int64",
    "bytes_c2s": "int64", "bytes_s2c": "int64", "gap_bytes": "int64",
    "fin_c2s": "bool", "fin_s2c": "bool", "rst": "bool",
    "tls": "bool", "tls_version": "string", "tls_cipher": "string", "sni": "string",
    "alpn": "string", "decrypted": "bool",
}

FRAME_SCHEMA: dict[str, Any] = {
    "conn_id": "int64", "frame_index": "int64", "packet": "int64", "ts": TS,
    "direction": DIRECTION, "fin": "bool", "rsv1": "bool", "rsv2": "bool", "rsv3": "bool",
    "opcode": "uint8", "masked": "bool", "mask_key": "UInt32", "length_encoding": "uint8",
    "payload_len": "uint64", "header_len": "uint8", "payload": "object",
    "stream_offset": "uint64", "ts_start": TS, "missing": "uint64",
}

MESSAGE_SCHEMA: dict[str, Any] = {
    "conn_id": "int64", "msg_index": "int64", "direction": DIRECTION, "type": MESSAGE_TYPE,
    "opcode": "uint8", "frames": "int64", "length": "int64", "wire_length": "int64",
    "payload": "object", "text": "string", "compressed": "bool", "inflated": "boolean",
    "ts_start": TS, "ts_end": TS, "packet_start": "int64", "packet_end": "int64",
    "first_frame": "int64", "last_frame": "int64", "close_code": "UInt16",
    "close_reason": "string", "complete": "bool",
}

ANOMALY_SCHEMA: dict[str, Any] = {
    "conn_id": "Int64", "ts": TS, "direction": DIRECTION, "frame_index": "Int64",
    "packet": "Int64", "stream_offset": "Int64", "code": CODE, "severity": SEVERITY,
    "detail": "string",
}

CATALOG_SCHEMA: dict[str, Any] = {
    "code": CODE, "severity": SEVERITY, "reference": "string", "summary": "string",
    "meaning": "string", "peers": "string", "detail": "string", "close_code": "UInt16",
}


def empty_table(schema: dict[str, Any]) -> pd.DataFrame:
    """A table with the columns and dtypes of ``schema`` and no rows."""
    return pd.DataFrame({name: pd.Series([], dtype=dtype) for name, dtype in schema.items()})


def _ts(values: Any) -> pd.DatetimeIndex:
    return pd.to_datetime(np.asarray(values, dtype=np.int64), unit="ns", utc=True)


def _split_keys(keys: Any) -> tuple[np.ndarray, pd.Categorical]:
    arr = np.asarray(keys, dtype=np.int64)
    conn = arr >> 1
    direction = pd.Categorical.from_codes((arr & 1).astype(np.int8), dtype=DIRECTION)
    return conn, direction


class RunningIndex:
    """Rows seen so far per conn_id, for a table made in parts."""

    def __init__(self) -> None:
        self.counts = np.zeros(0, dtype=np.int64)

    def advance(self, conn: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Shift a part's ``index`` by the rows of earlier parts; count this part's."""
        size = int(conn.max()) + 1
        if size > len(self.counts):
            self.counts = np.concatenate([self.counts,
                                          np.zeros(size - len(self.counts), dtype=np.int64)])
        index = index + self.counts[conn]
        self.counts += np.bincount(conn, minlength=len(self.counts))
        return index


def _index_within(conn: np.ndarray, running: RunningIndex | None = None) -> np.ndarray:
    """0, 1, 2, ... within each conn_id, in record order."""
    n = len(conn)
    if not n:
        return conn
    order = np.argsort(conn, kind="stable")
    grouped = conn[order]
    starts = np.flatnonzero(np.diff(grouped, prepend=grouped[0] - 1))
    index = np.empty(n, np.int64)
    index[order] = np.arange(n) - np.repeat(starts, np.diff(starts, append=n))
    return index if running is None else running.advance(conn, index)


def _strings(values: Any) -> Any:
    """A ``string`` array from a sequence of str and None.

    With pandas' Arrow-backed strings (the default since pandas 3), built by
    pyarrow straight from the list: 0.11 s for 250,000 texts where
    ``pd.array(..., dtype="string")`` takes 0.29 s.
    """
    dtype = pd.StringDtype()
    if dtype.storage == "pyarrow":
        import pyarrow as pa
        return pd.arrays.ArrowStringArray(pa.array(values, type=pa.large_string()))
    return pd.array(values, dtype=dtype)


def _nullable(values: Any, dtype: str) -> Any:
    """A nullable array from a sequence holding None for missing values.

    Built from a NumPy value array and a mask, which is about 20 times faster
    than ``pd.array`` on a list of 250,000 mostly-None values.
    """
    n = len(values)
    mask = np.fromiter((v is None for v in values), dtype=bool, count=n)
    if dtype == "boolean":
        data = np.fromiter((v is True for v in values), dtype=bool, count=n)
        return pd.arrays.BooleanArray(data, mask)
    np_dtype = pd.api.types.pandas_dtype(dtype).numpy_dtype
    data = np.fromiter((0 if v is None else v for v in values), dtype=np_dtype, count=n)
    return pd.arrays.IntegerArray(data, mask)


def frames_table(col: Collector, running: RunningIndex | None = None,
                 columns: tuple[Columns, np.ndarray] | None = None) -> pd.DataFrame:
    """One row per frame not packed yet in ``col``, in the order frames were completed.

    Args:
        col: the records.
        running: for tables made in parts (see
            :meth:`~wspcap.engine.Collector.pack`): counts the frames of the
            parts before, so that ``frame_index`` goes on where they ended.
        columns: ``col.frame_columns()``, when the caller has it already.
    """
    (c, nulls), keys = columns or col.frame_columns()
    if not len(keys):
        return empty_table(FRAME_SCHEMA)
    conn, direction = _split_keys(keys)
    return pd.DataFrame({
        "conn_id": conn,
        "frame_index": _index_within(conn, running),
        "packet": c["packet"],
        "ts": _ts(c["ts"]),
        "direction": direction,
        "fin": c["fin"],
        "rsv1": c["rsv1"],
        "rsv2": c["rsv2"],
        "rsv3": c["rsv3"],
        "opcode": c["opcode"],
        "masked": c["masked"],
        "mask_key": pd.arrays.IntegerArray(c["mask_key"], nulls["mask_key"]),
        "length_encoding": c["length_encoding"],
        "payload_len": c["payload_len"],
        "header_len": c["header_len"],
        "payload": c["payload"],
        "stream_offset": c["offset"].astype(np.uint64),
        "ts_start": _ts(c["ts_start"]),
        "missing": c["missing"],
    })


def messages_table(col: Collector, running: RunningIndex | None = None,
                   columns: tuple[Columns, np.ndarray] | None = None) -> pd.DataFrame:
    """One row per message not packed yet in ``col`` (control frames included),
    in completion order; ``running`` and ``columns`` as for :func:`frames_table`.
    """
    (c, _nulls), keys = columns or col.message_columns()
    if not len(keys):
        return empty_table(MESSAGE_SCHEMA)
    conn, direction = _split_keys(keys)
    return pd.DataFrame({
        "conn_id": conn,
        "msg_index": _index_within(conn, running),
        "direction": direction,
        "type": pd.Categorical(c["type"], dtype=MESSAGE_TYPE),
        "opcode": c["opcode"],
        "frames": c["frames"],
        "length": c["length"],
        "wire_length": c["wire_length"],
        "payload": c["payload"],
        "text": _strings(c["text"]),
        "compressed": c["compressed"],
        "inflated": _nullable(c["inflated"], "boolean"),
        "ts_start": _ts(c["ts_start"]),
        "ts_end": _ts(c["ts_end"]),
        "packet_start": c["packet_start"],
        "packet_end": c["packet_end"],
        "first_frame": c["first_frame"],
        "last_frame": c["last_frame"],
        "close_code": _nullable(c["close_code"], "UInt16"),
        "close_reason": _strings(c["close_reason"]),
        "complete": c["complete"],
    })


# The same tables as Arrow columns, for writing Parquet without a DataFrame in
# between: each column has the Arrow type pyarrow gives the pandas column
# (see wspcap.tables.export.arrow_schema), so the file reads back as the same table.

_DIRECTIONS = pa.array(list(DIRECTION.categories), pa.large_string())
_MESSAGE_TYPES = pa.array(list(MESSAGE_TYPE.categories), pa.large_string())


def _arrow_ts(values: np.ndarray) -> pa.Array:
    """Timestamps (ns) as Arrow's, :data:`~wspcap.timestamps.TS_NULL` as null
    (pandas reads that int64 as NaT; Arrow would read it as a time)."""
    arr = np.asarray(values, np.int64)
    null = arr == TS_NULL
    return pa.array(arr, mask=null if null.any() else None).view(pa.timestamp("ns", "UTC"))


def _arrow_keys(keys: np.ndarray) -> tuple[np.ndarray, pa.Array]:
    conn = keys >> 1
    return conn, pa.DictionaryArray.from_arrays((keys & 1).astype(np.int32), _DIRECTIONS)


def frame_arrays(columns: tuple[Columns, np.ndarray], running: RunningIndex | None = None,
                 pool: pa.MemoryPool | None = None) -> dict[str, pa.Array]:
    """The columns of :func:`frames_table` as Arrow arrays, from
    ``Collector.frame_columns()`` (not empty); what must be copied is
    allocated from ``pool``."""
    (c, nulls), keys = columns
    conn, direction = _arrow_keys(keys)
    made = {
        "conn_id": pa.array(conn),
        "frame_index": pa.array(_index_within(conn, running)),
        "ts": _arrow_ts(c["ts"]),
        "direction": direction,
        "mask_key": pa.array(c["mask_key"], mask=nulls["mask_key"]),
        "payload": pa.array(c["payload"], pa.binary(), memory_pool=pool),
        "stream_offset": pa.array(c["offset"].astype(np.uint64)),
        "ts_start": _arrow_ts(c["ts_start"]),
    }
    # Every other column is the record field of its name, in its NumPy dtype.
    return {name: made[name] if name in made else pa.array(c[name]) for name in FRAME_SCHEMA}


def message_arrays(columns: tuple[Columns, np.ndarray], running: RunningIndex | None = None,
                   pool: pa.MemoryPool | None = None) -> dict[str, pa.Array]:
    """The columns of :func:`messages_table` as Arrow arrays, from
    ``Collector.message_columns()`` (not empty); copies from ``pool``."""
    (c, _nulls), keys = columns
    conn, direction = _arrow_keys(keys)
    types = pa.array(c["type"], pa.large_string(), memory_pool=pool)
    made = {
        "conn_id": pa.array(conn),
        "msg_index": pa.array(_index_within(conn, running)),
        "direction": direction,
        "type": pa.DictionaryArray.from_arrays(
            pc.index_in(types, value_set=_MESSAGE_TYPES).cast(pa.int32()), _MESSAGE_TYPES),
        "payload": pa.array(c["payload"], pa.binary(), memory_pool=pool),
        "text": pa.array(c["text"], pa.large_string(), memory_pool=pool),
        "inflated": pa.array(c["inflated"], pa.bool_(), memory_pool=pool),
        "ts_start": _arrow_ts(c["ts_start"]),
        "ts_end": _arrow_ts(c["ts_end"]),
        "close_code": pa.array(c["close_code"], pa.uint16(), memory_pool=pool),
        "close_reason": pa.array(c["close_reason"], pa.large_string(), memory_pool=pool),
    }
    return {name: made[name] if name in made else pa.array(c[name]) for name in MESSAGE_SCHEMA}


def anomalies_table(col: Collector) -> pd.DataFrame:
    """One row per anomaly, sorted by time (stable: report order within a time)."""
    if not col.anomalies:
        return empty_table(ANOMALY_SCHEMA)
    conn, ts, direction, frame_index, code, severity, detail, packet, offset = zip(
        *col.anomalies)
    df = pd.DataFrame({
        "conn_id": _nullable(conn, "Int64"),
        "ts": _ts(ts),
        "direction": pd.Categorical(direction, dtype=DIRECTION),
        "frame_index": _nullable(frame_index, "Int64"),
        "packet": _nullable(packet, "Int64"),
        "stream_offset": _nullable(offset, "Int64"),
        "code": pd.Categorical(code, dtype=CODE),
        "severity": pd.Categorical(severity, dtype=SEVERITY),
        "detail": _strings(detail),
    })
    return df.sort_values(["ts"], kind="stable").reset_index(drop=True)


def connections_table(col: Collector) -> pd.DataFrame:
    """One row per WebSocket connection (or upgrade attempt), by conn_id."""
    if not col.sessions:
        return empty_table(CONNECTION_SCHEMA)
    rows = [s.record() for s in col.sessions]
    data = {name: [r[name] for r in rows] for name in CONNECTION_SCHEMA}
    df = pd.DataFrame({name: (_ts(values) if dtype == TS else pd.array(values, dtype=dtype))
                       for (name, dtype), values in zip(CONNECTION_SCHEMA.items(),
                                                        data.values())})
    return df


def catalog() -> pd.DataFrame:
    """The anomaly catalog: one row per code wspcap can report.

    Columns: ``code`` and ``severity`` (the dtypes of the anomalies table's
    columns, :data:`CODE` and :data:`SEVERITY`, so the two tables join on
    ``code``), ``reference`` (RFC section), ``summary`` (what was seen),
    ``meaning`` (what to make of it), ``peers`` (the equivalent in Zeek,
    Wireshark or Suricata), ``detail`` (an example of the anomaly's detail
    text) and ``close_code`` (what a conforming endpoint would send, or
    missing). Rows come in catalog order, by layer, as ``wspcap rules``
    lists them.

    >>> import wspcap
    >>> rules = wspcap.catalog()
    >>> rules.set_index("code").loc["tcp_gap", "severity"]
    'warning'
    """
    rules = list(RULES.values())
    return pd.DataFrame({
        name: pd.array([getattr(rule, name) for rule in rules], dtype=dtype)
        for name, dtype in CATALOG_SCHEMA.items()})
