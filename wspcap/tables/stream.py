"""Writing the tables while the engine reads: the same code for ``analyze -o``
and for live capture into a directory."""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import pyarrow as pa

from wspcap.engine import Pipeline
from wspcap.tables.app import AppDecoding, facts_of_row, record_columns, tls_of
from wspcap.tables.build import (
    RunningIndex,
    anomaly_part,
    arrow_table,
    connection_part,
    data_frame,
)
from wspcap.tables.capture import CaptureInfo
from wspcap.tables.export import PayloadSpool, TableStream
from wspcap.tables.schema import ANOMALIES, CONNECTIONS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LOOK_BYTES", "SPILL_BYTES", "TablesWriter", "Written"]

#: :func:`~wspcap.api.reading.analyze_to` writes when this many file bytes were
#: read, or this much message payload collected, since it last wrote.
SPILL_BYTES = 4 << 20
#: ... which it looks at every time this many more file bytes were read.
LOOK_BYTES = 1 << 20


@dataclass
class Written:
    """What :func:`analyze_to` wrote, and the small tables it kept.

    Writing needs no pandas (the CLI's ``analyze -o`` never imports it): the
    small tables are kept as Arrow tables, and made DataFrames when first
    asked for.

    Attributes:
        paths: the files, in the order connections, frames, messages,
            anomalies, app (:data:`~wspcap.tables.schema.TABLES`).
        arrow: the connections and anomalies tables as Arrow tables, by name.
        info: a :class:`CaptureInfo`.
    """

    paths: list[str]
    arrow: dict[str, pa.Table] = field(repr=False)
    info: CaptureInfo

    @cached_property
    def connections(self) -> pd.DataFrame:
        """The connections table."""
        return data_frame(CONNECTIONS, self.arrow["connections"])

    @cached_property
    def anomalies(self) -> pd.DataFrame:
        """The anomalies table."""
        return data_frame(ANOMALIES, self.arrow["anomalies"])


class TablesWriter:
    """Writes a pipeline's frames and messages while it runs (for
    :func:`analyze_to`, and live capture into a directory), so that memory
    holds neither every payload nor every record.

    Call :meth:`look` after feeding the pipeline, and :meth:`close` after
    ``pipeline.finish(check=False)``.

    Args:
        pipeline: the pipeline whose collector is written.
        directory: where the tables go (created if missing).
        fmt: ``parquet`` (row groups), ``csv`` or ``jsonl``.
        spill_bytes: bytes of input, or of message payload, between two
            writes (looked at every LOOK_BYTES of input; 0 writes every time;
            SPILL_BYTES by default).
        spool: put large inflated payloads aside in a temporary file in
            ``directory`` until they are written
            (:class:`~wspcap.tables.export.PayloadSpool`), so that they do not wait
            in memory for the end of the block of input that made them; for
            a caller that reads no payload from the collector meanwhile.

    Attributes:
        writes: how many times the records were written and packed so far
            (each time, the collector's unpacked record lists start empty).

    Raises:
        ConfigError: an unknown format.
    """

    def __init__(self, pipeline: Pipeline, directory: str | os.PathLike[str],
                 fmt: str = "parquet", spill_bytes: int | None = None,
                 spool: bool = False) -> None:
        self.pipeline = pipeline
        # -- application decoding (issue 18): fed each part before it is packed --
        options = pipeline.options
        sessions = pipeline.collector.sessions
        self.app = AppDecoding(lambda conn_id: facts_of_row(sessions[conn_id].record()),
                               options.decoder, options.decoders)
        running = RunningIndex()
        payloads = PayloadSpool(directory) if spool else None
        self.stream = TableStream(
            directory, fmt, payloads,
            lambda columns: self.app.feed(record_columns(columns, running)))
        if payloads is not None:
            pipeline.collector.keep_with(payloads)
        self.spill_bytes = SPILL_BYTES if spill_bytes is None else spill_bytes
        self.writes = 0
        self._written_at = 0  # input position at the last write
        self._next_look = 0

    def look(self, position: int) -> bool:
        """After input up to ``position`` bytes: write the records gathered
        since the last write, when ``spill_bytes`` of input or of message
        payload (inflation can make more of the second) came since; then run
        the checks of the connections that have ended and let go of their
        records. Returns True when it looked (every LOOK_BYTES of input)."""
        if position < self._next_look:
            return False
        self._next_look = position + min(LOOK_BYTES, self.spill_bytes)
        col = self.pipeline.collector
        if (position - self._written_at >= self.spill_bytes
                or self.stream.unwritten_bytes(col) >= self.spill_bytes):
            self.pipeline.release_inflated(self.stream.spill(col))
            self.pipeline.check_ended()
            gc.collect(0)  # what building the part's tables left behind
            self._written_at = position
            self.writes += 1
        return True

    def close(self, info: CaptureInfo) -> Written:
        """Write what is left, run the remaining checks (a group of
        connections at a time), and write the connections and anomalies."""
        col = self.pipeline.collector
        self.pipeline.release_inflated(self.stream.spill(col))
        self.writes += 1
        self.pipeline.check_packed()
        connections = arrow_table(CONNECTIONS, connection_part(col))
        # -- application decoding (issue 18) --
        result = self.app.finish(tls_of(connections))
        connections = result.connection_columns(connections)
        anomalies = arrow_table(ANOMALIES, anomaly_part(col, result.anomalies))
        paths = self.stream.close(connections, anomalies, result.table)
        return Written(paths, {"connections": connections, "anomalies": anomalies}, info)
