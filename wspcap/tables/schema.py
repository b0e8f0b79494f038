"""The tables' schemas: every column's name, Arrow type and meaning, declared once.

Design note
-----------
A table is declared here as a :class:`TableSchema`, a tuple of
:class:`Column`\\ s, and nowhere else. Everything else is derived from it:

- the Arrow schema (:attr:`TableSchema.arrow`) of the Arrow tables that
  :mod:`wspcap.tables.build` makes and :mod:`wspcap.tables.export` writes,
  with pandas' metadata so that ``pd.read_parquet`` gives the DataFrame's
  dtypes back;
- each column's pandas dtype (:attr:`Column.dtype`), from its Arrow type and
  whether it may be null: integers and booleans are NumPy's when they are
  never null and pandas' nullable ones (``Int64``, ``UInt16``, ``boolean``)
  when they may be; strings are pandas' ``string``; timestamps are UTC
  ``datetime64[ns]`` (null: NaT); dictionary columns are categoricals of
  fixed categories (:data:`DIRECTION`, :data:`MESSAGE_TYPE`, :data:`CODE`,
  :data:`SEVERITY`), the same for every capture, so the tables of several
  captures concatenate with ``pd.concat`` and stay categorical; binary
  columns (payloads) are Python ``bytes`` objects; durations (Arrow
  ``duration('ns')``) are ``timedelta64[ns]`` (null: NaT).

Open categories. Two columns of the ``app`` table name what decoders report,
and third-party decoders (entry points, :mod:`wspcap.app.registry`) may add
names: ``protocol`` (the decoder) and ``kind`` (the event's kind). Their
:class:`Column` is *open*: its categories are the declared ones
(:data:`APP_KIND`; for ``protocol``, the decoders registered when the table
is made, read by a function) and the values the table holds, sorted
(:meth:`Column.dtype_for`). So a capture no third-party decoder touched gets
the same categories as every other on the same installation, and one that a
plugin decoded keeps its names as categories. Their Arrow type is the same
``dictionary(int32, large_string)`` as every dictionary column: the Arrow
schema (and the Parquet files') does not depend on the plugins installed
(its pandas metadata counts the categories of the first table made).

Invariant: a table's Arrow tables and its DataFrame carry exactly these
columns, in this order, with these types (the unit tests check every table
against its schema).

Adding a table (as the ``app`` table of application-protocol events was):

1. declare ``NAME = TableSchema("name", (Column(...), ...))`` here and add
   it to :data:`TABLES` (the tables a capture has and ``analyze -o`` writes,
   in file order: the engine's four, then ``app``);
2. write its builder: records -> a dict of Arrow arrays (or NumPy object
   arrays of ``bytes`` for binary columns; :func:`~wspcap.tables.build.
   part_from_values` makes one from Python values), then
   :func:`~wspcap.tables.build.arrow_table` and
   :func:`~wspcap.tables.build.data_frame` make the Arrow table and the
   DataFrame (the four are built in :mod:`wspcap.tables.build`, ``app`` in
   :mod:`wspcap.tables.app`, from the decoders' rows);
3. give :class:`~wspcap.tables.capture.Capture` the attribute, and
   :class:`~wspcap.tables.export.TableStream` (which opens a writer for
   every table of :data:`TABLES`) the Arrow table to write.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from wspcap.app.registry import DECODERS
from wspcap.rules.registry import RULES, SEVERITIES
from wspcap.ws.frames import opcode_name

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ANOMALIES",
    "APP",
    "APP_KIND",  # noqa: F822 (made by __getattr__, see _DTYPES)
    "APP_KINDS",
    "CATALOG",
    "CODE",  # noqa: F822 (made by __getattr__, see _DTYPES)
    "CODES",
    "CONNECTIONS",
    "DIRECTION",  # noqa: F822 (made by __getattr__, see _DTYPES)
    "DIRECTIONS",
    "FRAMES",
    "KINDS",
    "MESSAGES",
    "MESSAGE_TYPE",  # noqa: F822 (made by __getattr__, see _DTYPES)
    "MESSAGE_TYPES",
    "SEVERITY",  # noqa: F822 (made by __getattr__, see _DTYPES)
    "SEVERITY_LEVELS",
    "TABLES",
    "Categories",
    "Column",
    "TableSchema",
]


@dataclass(frozen=True)
class Categories:
    """A dictionary column's categories: their names, in order, and whether
    they are ordered. Plain data, so that writing the tables (``analyze -o``)
    needs no pandas; :attr:`dtype` is pandas' categorical dtype of them."""

    names: tuple[str, ...]
    ordered: bool = False

    @property
    def dtype(self) -> pd.CategoricalDtype:
        """pandas' categorical dtype of these categories."""
        import pandas as pd

        return pd.CategoricalDtype(list(self.names), self.ordered)


#: ``direction``: client to server, server to client.
DIRECTIONS = Categories(("c2s", "s2c"))
#: ``severity``, ordered (``info < warning < error``), so ``max()`` is the worst.
SEVERITY_LEVELS = Categories(tuple(SEVERITIES), ordered=True)
#: ``code``: every code of the catalog, sorted (see :func:`wspcap.catalog`).
CODES = Categories(tuple(sorted(RULES)))
_KNOWN_TYPES = ("text", "binary", "close", "ping", "pong", "continuation")
#: ``type`` of a message: the known types, then ``unknown-0xN`` for the
#: reserved opcodes 3-7 and 11-15 (RFC 6455 section 5.2).
MESSAGE_TYPES = Categories(
    _KNOWN_TYPES + tuple(name for name in map(opcode_name, range(16))
                         if name not in _KNOWN_TYPES))
#: ``kind`` of an app event: the kinds the bundled decoders report, sorted
#: (an open column: kinds a third-party decoder adds join a table's categories).
KINDS = sorted({
    "ack", "auth", "cancel", "challenge", "close", "complete", "connect", "connected",
    "disconnect", "error", "event", "message", "noop", "notification", "open", "ping", "pong",
    "publish", "register", "request", "response", "sequence", "subscribe", "unregister",
    "unsubscribe", "upgrade",
})
APP_KINDS = Categories(tuple(KINDS))

#: The pandas dtypes of the fixed categories, made when first asked for (so
#: that importing this module does not import pandas): ``DIRECTION``,
#: ``SEVERITY``, ``CODE``, ``MESSAGE_TYPE``, ``APP_KIND``.
_DTYPES = {"DIRECTION": DIRECTIONS, "SEVERITY": SEVERITY_LEVELS, "CODE": CODES,
           "MESSAGE_TYPE": MESSAGE_TYPES, "APP_KIND": APP_KINDS}


def __getattr__(name: str) -> Any:
    if name in _DTYPES:
        return _DTYPES[name].dtype
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _decoders() -> Categories:
    """``protocol`` of an app event: the decoders registered now, sorted (an
    open column: names a table holds that are not registered join it)."""
    return Categories(tuple(sorted(DECODERS)))


#: Arrow types of the columns.
TS = pa.timestamp("ns", "UTC")
STRING = pa.large_string()
#: Dictionary columns: int32 indices, whatever the number of categories, so
#: that every row group and every part of a dataset shares one schema.
CATEGORY = pa.dictionary(pa.int32(), pa.large_string())
ORDERED_CATEGORY = pa.dictionary(pa.int32(), pa.large_string(), ordered=True)

DURATION = pa.duration("ns")

#: pandas' nullable dtype of each Arrow integer or boolean type.
_NULLABLE = {pa.int64(): "Int64", pa.uint16(): "UInt16", pa.uint32(): "UInt32",
             pa.uint64(): "UInt64", pa.uint8(): "UInt8", pa.bool_(): "boolean",
             pa.float64(): "Float64"}


@dataclass(frozen=True)
class Column:
    """One column of a table.

    Attributes:
        name: the column's name.
        type: its Arrow type.
        meaning: what it holds, in a line.
        nullable: it may be null (missing): integers and booleans then take
            pandas' nullable dtypes.
        categories: for a dictionary column, its :class:`Categories`: fixed,
            or a function that gives them when a table is made.
        open: the categories are the declared ones and the values a table
            holds (see the module's note on open categories).
    """

    name: str
    type: pa.DataType
    meaning: str
    nullable: bool = False
    categories: Categories | Callable[[], Categories] | None = field(
        default=None, compare=False)
    open: bool = False

    @property
    def declared(self) -> Categories | None:
        """A dictionary column's declared categories (an open column's: for a
        table that holds no other), else None."""
        return self.categories() if callable(self.categories) else self.categories

    def categories_for(self, values: Iterable[Any]) -> Categories:
        """The categories of a table whose (dictionary) column holds
        ``values``: an open column's gain those not declared (sorted
        together); a fixed column's are the declared ones."""
        declared = self.declared
        assert declared is not None, f"{self.name} is not a dictionary column"
        if not self.open:
            return declared
        seen = {v for v in values if isinstance(v, str)}
        if seen <= set(declared.names):
            return declared
        return Categories(tuple(sorted(set(declared.names) | seen)), declared.ordered)

    @property
    def dtype(self) -> Any:
        """The column's pandas dtype (see the module's design note); an open
        column's, for a table that holds none but the declared categories."""
        import pandas as pd

        t = self.type
        declared = self.declared
        if declared is not None:
            return declared.dtype
        if pa.types.is_timestamp(t):
            return pd.DatetimeTZDtype("ns", "UTC")
        if pa.types.is_duration(t):
            return np.dtype("timedelta64[ns]")
        if pa.types.is_large_string(t) or pa.types.is_string(t):
            return pd.StringDtype()
        if pa.types.is_binary(t):
            return "object"
        if self.nullable:
            return pd.api.types.pandas_dtype(_NULLABLE[t])
        return np.dtype(t.to_pandas_dtype())

    def dtype_for(self, values: Iterable[Any]) -> Any:
        """The pandas dtype of a table whose column holds ``values`` (see
        :meth:`categories_for`); a column that is not a dictionary's: :attr:`dtype`."""
        if self.categories is None:
            return self.dtype
        return self.categories_for(values).dtype

    def holds(self, dtype: Any) -> bool:
        """A column of ``dtype`` is of this column's type: its dtype, or for
        an open column any categorical as ordered as it is (its categories
        depend on the table, and on the decoders registered when it was made)."""
        import pandas as pd

        if not self.open:
            return bool(dtype == self.dtype)
        return isinstance(dtype, pd.CategoricalDtype) and dtype.ordered == self.dtype.ordered

    def pandas_metadata(self, pandas_major: int) -> dict[str, Any]:
        """This column's entry in pandas' metadata of an Arrow schema: what
        pyarrow writes for an empty column of :attr:`dtype` (made without
        pandas: see :meth:`TableSchema.arrow`)."""
        t, declared = self.type, self.declared
        meta: dict[str, Any] | None = None
        if declared is not None:
            logical, numpy_type = "categorical", _codes_dtype(len(declared.names))
            meta = {"num_categories": len(declared.names), "ordered": declared.ordered}
        elif pa.types.is_timestamp(t):
            logical, numpy_type, meta = "datetimetz", "datetime64[ns]", {"timezone": "UTC"}
        elif pa.types.is_large_string(t) or pa.types.is_string(t):
            # pandas 3's strings are Arrow's large strings (pyarrow names no
            # logical type for them), pandas 2's its own, made Arrow strings.
            logical, numpy_type = "object" if pandas_major >= 3 else "unicode", "string"
        elif pa.types.is_binary(t):  # an empty object column: Arrow's null type
            logical, numpy_type = "empty", "object"
        elif pa.types.is_duration(t):
            logical, numpy_type = "object", "timedelta64[ns]"
        else:
            logical = str(np.dtype(t.to_pandas_dtype()))  # int64, uint16, bool, float64
            numpy_type = _NULLABLE[t] if self.nullable else logical
        return {"name": self.name, "field_name": self.name, "pandas_type": logical,
                "numpy_type": numpy_type, "metadata": meta}


def _codes_dtype(n: int) -> str:
    """The NumPy type of pandas' codes for ``n`` categories (the smallest
    signed integer whose maximum exceeds ``n``)."""
    for kind in ("int8", "int16", "int32"):
        if n < np.iinfo(kind).max:
            return kind
    return "int64"


def _version(package: str, default: str) -> str:
    """An installed package's version, without importing it."""
    module = sys.modules.get(package)
    if module is not None:
        return str(module.__version__)
    try:
        return version(package)
    except PackageNotFoundError:
        return default


def _cat(name: str, categories: Categories | Callable[[], Categories],
         meaning: str, nullable: bool = False, open: bool = False) -> Column:
    ordered = (categories() if callable(categories) else categories).ordered
    kind = ORDERED_CATEGORY if ordered else CATEGORY
    return Column(name, kind, meaning, nullable, categories, open)


@dataclass(frozen=True)
class TableSchema:
    """A table's columns, in order.

    Attributes:
        name: the table's name (its attribute of a Capture, its file's name).
        columns: the columns.
    """

    name: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        """The column names, in order."""
        return [c.name for c in self.columns]

    def __getitem__(self, name: str) -> Column:
        return self._by_name[name]

    @cached_property
    def _by_name(self) -> dict[str, Column]:
        return {c.name: c for c in self.columns}

    @property
    def dtypes(self) -> dict[str, Any]:
        """Column name -> pandas dtype (an open column's: the declared categories)."""
        return {c.name: c.dtype for c in self.columns}

    def matches(self, df: pd.DataFrame) -> bool:
        """``df`` has these columns, in order, of these types."""
        return list(df.columns) == self.names and all(
            c.holds(df[c.name].dtype) for c in self.columns)

    @cached_property
    def arrow(self) -> pa.Schema:
        """The Arrow schema, with the pandas metadata that ``pd.read_parquet``
        reads to give the declared dtypes back: what pyarrow writes for the
        empty DataFrame of the table, made without importing pandas (writing
        the tables needs no pandas; the unit tests compare it, byte for
        byte, with pyarrow's own)."""
        pandas_version = _version("pandas", "0")
        major = int(pandas_version.split(".")[0] or 0)
        metadata: dict[str, Any] = {
            "index_columns": [],
            "column_indexes": [],
            "columns": [c.pandas_metadata(major) for c in self.columns],
        }
        if int(pa.__version__.split(".")[0]) >= 22:  # DataFrame.attrs, since pyarrow 22
            metadata["attributes"] = {}
        metadata["creator"] = {"library": "pyarrow", "version": pa.__version__}
        metadata["pandas_version"] = pandas_version
        return pa.schema([pa.field(c.name, c.type) for c in self.columns],
                         metadata={b"pandas": json.dumps(metadata).encode()})


_I64, _U8, _U16, _U32, _U64 = pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()
_BOOL, _BIN = pa.bool_(), pa.binary()

CONNECTIONS = TableSchema("connections", (
    Column("conn_id", _I64, "the connection's id, 0, 1, 2, ... in order of first packet"),
    Column("tcp_stream", _I64, "the TCP stream number, as Wireshark numbers them"),
    Column("client_ip", STRING, "the client's address", True),
    Column("client_port", _U16, "the client's port", True),
    Column("server_ip", STRING, "the server's address", True),
    Column("server_port", _U16, "the server's port", True),
    Column("ts_start", TS, "time of the connection's first packet", True),
    Column("ts_end", TS, "time of its last packet", True),
    Column("handshake", _BOOL, "the upgrade request was captured"),
    Column("established", _BOOL, "the server answered 101 (or frames were found)"),
    Column("midstream", _BOOL, "the capture began after the TCP handshake"),
    Column("method", STRING, "the upgrade request's method", True),
    Column("uri", STRING, "the upgrade request's URI", True),
    Column("host", STRING, "its Host header", True),
    Column("origin", STRING, "its Origin header", True),
    Column("user_agent", STRING, "its User-Agent header", True),
    Column("cookie", _BOOL, "it had a Cookie header", True),
    Column("authorization", _BOOL, "it had an Authorization header", True),
    Column("key", STRING, "its Sec-WebSocket-Key", True),
    Column("version", STRING, "its Sec-WebSocket-Version", True),
    Column("protocols_offered", STRING, "the subprotocols it offered, comma-joined", True),
    Column("extensions_offered", STRING, "the extensions it offered", True),
    Column("status", _U16, "the response's status code", True),
    Column("reason", STRING, "the response's reason phrase", True),
    Column("accept", STRING, "the response's Sec-WebSocket-Accept", True),
    Column("accept_valid", _BOOL, "the accept matches the key (RFC 6455 4.2.2)", True),
    Column("subprotocol", STRING, "the subprotocol the server chose", True),
    Column("extensions", STRING, "the extensions the server chose", True),
    Column("permessage_deflate", _BOOL, "permessage-deflate was negotiated"),
    Column("close_code_c2s", _U16, "the client's close code", True),
    Column("close_reason_c2s", STRING, "the client's close reason", True),
    Column("close_code_s2c", _U16, "the server's close code", True),
    Column("close_reason_s2c", STRING, "the server's close reason", True),
    Column("frames", _I64, "frames, both ways"),
    Column("frames_c2s", _I64, "frames from the client"),
    Column("frames_s2c", _I64, "frames from the server"),
    Column("messages", _I64, "messages, both ways, control frames included"),
    Column("bytes_c2s", _I64, "TCP payload bytes delivered from the client"),
    Column("bytes_s2c", _I64, "TCP payload bytes delivered from the server"),
    Column("gap_bytes", _I64, "bytes lost to gaps in the capture, both ways"),
    Column("fin_c2s", _BOOL, "the client sent a FIN (over HTTP/2: ended its stream)"),
    Column("fin_s2c", _BOOL, "the server sent a FIN (over HTTP/2: ended its stream)"),
    Column("rst", _BOOL, "either side sent a RST (over HTTP/2: RST_STREAM)"),
    Column("proxy", STRING, "the proxy tunnel the connection went through and the target "
           "the client asked it for: 'CONNECT host:port' (an HTTP proxy), 'SOCKS5 host:port'",
           True),
    Column("h2_stream", _I64, "the HTTP/2 stream that carries the WebSocket (RFC 8441 "
           "extended CONNECT; its frames, bytes, FIN and times are the stream's); null "
           "for a WebSocket with a TCP connection of its own", True),
    Column("tls", _BOOL, "the connection is TLS (wss://)"),
    Column("tls_version", STRING, "the TLS version", True),
    Column("tls_cipher", STRING, "the TLS cipher suite", True),
    Column("sni", STRING, "the server name the client asked for", True),
    Column("alpn", STRING, "the application protocol (ALPN) chosen", True),
    Column("decrypted", _BOOL, "the TLS records were decrypted"),
    Column("app_protocol", STRING, "the application protocol decoded in the messages "
           "(wspcap.app), if any", True),
    Column("app_confidence", pa.float64(), "how sure its decoder is, 0 to 1", True),
))

FRAMES = TableSchema("frames", (
    Column("conn_id", _I64, "the connection"),
    Column("frame_index", _I64, "0, 1, 2, ... within the connection, both ways"),
    Column("packet", _I64, "the packet that completed the frame, from 1 as in Wireshark"),
    Column("ts", TS, "time of that packet", True),
    _cat("direction", DIRECTIONS, "c2s or s2c"),
    Column("fin", _BOOL, "the FIN bit"),
    Column("rsv1", _BOOL, "the RSV1 bit (permessage-deflate: compressed)"),
    Column("rsv2", _BOOL, "the RSV2 bit"),
    Column("rsv3", _BOOL, "the RSV3 bit"),
    Column("opcode", _U8, "the opcode, 0-15"),
    Column("masked", _BOOL, "the MASK bit"),
    Column("mask_key", _U32, "the masking key, big-endian", True),
    Column("length_encoding", _U8, "width of the length field: 7, 16 or 64 bits"),
    Column("payload_len", _U64, "the payload length, as declared"),
    Column("header_len", _U8, "the header's bytes"),
    Column("payload", _BIN, "the payload, unmasked, as captured"),
    Column("stream_offset", _U64, "where the frame starts in its direction's TCP stream"),
    Column("ts_start", TS, "time of the frame's first packet", True),
    Column("missing", _U64, "payload bytes lost to gaps"),
))

MESSAGES = TableSchema("messages", (
    Column("conn_id", _I64, "the connection"),
    Column("msg_index", _I64, "0, 1, 2, ... within the connection, both ways"),
    _cat("direction", DIRECTIONS, "c2s or s2c"),
    _cat("type", MESSAGE_TYPES, "text, binary, close, ping, pong, ... or unknown-0xN"),
    Column("opcode", _U8, "the first frame's opcode"),
    Column("frames", _I64, "its frames"),
    Column("length", _I64, "payload bytes (inflated, when it was compressed)"),
    Column("wire_length", _I64, "payload bytes on the wire"),
    Column("payload", _BIN, "the payload: unmasked, joined, inflated"),
    Column("text", STRING, "the payload decoded, for a text message that is UTF-8", True),
    Column("compressed", _BOOL, "sent compressed (RSV1, permessage-deflate)"),
    Column("inflated", _BOOL, "compressed and all of it inflated", True),
    Column("ts_start", TS, "time of its first frame", True),
    Column("ts_end", TS, "time of its last frame", True),
    Column("packet_start", _I64, "the packet of its first frame"),
    Column("packet_end", _I64, "the packet of its last frame"),
    Column("first_frame", _I64, "frame_index of its first frame"),
    Column("last_frame", _I64, "frame_index of its last frame"),
    Column("close_code", _U16, "a close frame's code", True),
    Column("close_reason", STRING, "a close frame's reason", True),
    Column("complete", _BOOL, "every byte of every frame was captured"),
))

ANOMALIES = TableSchema("anomalies", (
    Column("conn_id", _I64, "the connection (missing: the capture's)", True),
    Column("ts", TS, "when", True),
    _cat("direction", DIRECTIONS, "c2s or s2c", True),
    Column("frame_index", _I64, "the frame it is about", True),
    Column("packet", _I64, "the packet it is about", True),
    Column("stream_offset", _I64, "where in the direction's TCP stream", True),
    _cat("code", CODES, "the anomaly's code (see the catalog)"),
    _cat("severity", SEVERITY_LEVELS, "info, warning or error"),
    Column("detail", STRING, "what was seen", True),
))

CATALOG = TableSchema("catalog", (
    _cat("code", CODES, "the anomaly's code"),
    _cat("severity", SEVERITY_LEVELS, "info, warning or error"),
    Column("reference", STRING, "the RFC section", True),
    Column("summary", STRING, "what was seen", True),
    Column("meaning", STRING, "what to make of it", True),
    Column("peers", STRING, "the equivalent in Zeek, Wireshark or Suricata", True),
    Column("detail", STRING, "an example of the detail text", True),
    Column("close_code", _U16, "what a conforming endpoint would send", True),
))

APP = TableSchema("app", (
    Column("conn_id", _I64, "the connection"),
    Column("msg_index", _I64, "the message the event was decoded from (its msg_index)"),
    Column("part", _I64, "0, 1, 2, ... among the events of that message"),
    Column("first_frame", _I64, "the message's first frame (frame_index)"),
    Column("last_frame", _I64, "the message's last frame"),
    Column("packet_start", _I64, "the packet of its first frame"),
    Column("packet_end", _I64, "the packet of its last frame"),
    Column("ts", TS, "when the message was complete (its ts_end)", True),
    _cat("direction", DIRECTIONS, "c2s or s2c"),
    _cat("protocol", _decoders, "the decoder (wspcap.app) that reported it", open=True),
    _cat("kind", APP_KINDS, "request, response, event, subscribe, ...", open=True),
    Column("channel", STRING, "the method, topic, event or destination", True),
    Column("id", STRING, "the request's id, that its answer carries too", True),
    Column("request_msg", _I64, "an answer's request: its msg_index", True),
    Column("latency", DURATION, "an answer's time since its request", True),
    Column("fields", STRING, "what else the decoder read, as JSON", True),
))

#: The tables of a capture, in the order they are written: the engine's
#: four, then the application events.
TABLES = (CONNECTIONS, FRAMES, MESSAGES, ANOMALIES, APP)
