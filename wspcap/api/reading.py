"""Reading a capture: :func:`read` into a :class:`~wspcap.tables.capture.Capture`,
:func:`analyze_to` into files while it reads, :func:`from_packets` from records."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from wspcap.engine import Collector, Options, Pipeline
from wspcap.rules.thresholds import Thresholds
from wspcap.sources import CaptureFile, PacketRecord, open_capture
from wspcap.sources.keys import read_key_logs
from wspcap.tables.capture import Capture, CaptureInfo
from wspcap.tables.stream import SPILL_BYTES, TablesWriter, Written
from wspcap.tls import KeyLog

__all__ = ["analyze_to", "from_packets", "paused_gc", "read"]


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while records pile up.

    The records are tuples of bytes, ints and strings: they form no cycles,
    but every one is tracked, so the collector keeps re-walking millions of
    them. Measured on a 310,258-packet capture (250,520 frames): 5.3 s with
    the collector running, 3.1 s with it paused.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()



def from_packets(packets: Iterable[PacketRecord], source: str = "",
                 options: Options | None = None,
                 thresholds: Thresholds | Mapping[str, Any] | None = None) -> Capture:
    """Analyze packets from any source (a list, a live capture, a test).

    Args:
        packets: :class:`~wspcap.sources.PacketRecord` tuples in capture order.
        source: a name for :attr:`CaptureInfo.source`.
        options: engine limits.
        thresholds: limits of the anomaly rules, as in :func:`read`.
    """
    options = _with_thresholds(options, thresholds)
    pipeline = Pipeline(options)
    receive = pipeline.receive_packet
    with paused_gc():
        for number, ts, linktype, data, _wirelen in packets:
            receive(number, ts, linktype, data)
        return _finish(pipeline, CaptureInfo(source, "packets"), None)


def _take_secrets(cap: CaptureFile, pipeline: Pipeline) -> None:
    """TLS secrets embedded in the capture (pcapng Decryption Secrets Blocks)."""
    for secrets in cap.secrets:
        pipeline.receive_secrets(secrets)
    cap.secrets.clear()


#: What the ``keylog`` parameters take: key log file(s), or a KeyLog.
KeylogArg = str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | KeyLog | None


def _with_keylog(options: Options | None, keylog: KeylogArg) -> Options | None:
    """``options`` with the key log named added to the one they carry (ConfigError
    for a file that cannot be read)."""
    if keylog is None:
        return options
    log = keylog if isinstance(keylog, KeyLog) else KeyLog(read_key_logs(keylog))
    options = options or Options()
    if options.keylog is not None and options.keylog is not log:
        merged = KeyLog()
        merged.update(options.keylog)
        merged.update(log)
        log = merged
    return replace(options, keylog=log)


def _with_thresholds(options: Options | None,
                     thresholds: Thresholds | Mapping[str, Any] | None) -> Options | None:
    """``options`` with the anomaly thresholds set (checked: ConfigError)."""
    if thresholds is None:
        return options
    return replace(options or Options(), thresholds=Thresholds.coerce(thresholds))


def _check_decoding(options: Options | None) -> None:
    """A forced application decoder must be installed (ConfigError before reading)."""
    if options is not None and options.decoder is not None:
        from wspcap.tables.app import check_decoder
        check_decoder(options.decoder)


def _finish(pipeline: Pipeline, info: CaptureInfo, truncated: str | None,
            corrupt: bool = False) -> Capture:
    col, info = _finish_records(pipeline, info, truncated, corrupt=corrupt)
    return Capture.from_collector(col, info, pipeline.options, release=True)


def _finish_records(pipeline: Pipeline, info: CaptureInfo, truncated: str | None,
                    check: bool = True, corrupt: bool = False
                    ) -> tuple[Collector, CaptureInfo]:
    """End the pipeline; return the records and ``info`` completed (``corrupt``:
    the file is damaged where reading stopped, see :class:`CaptureFile`)."""
    col = pipeline.finish(truncated, check, corrupt)
    d = pipeline.decoder
    counters = {"not_tcp": d.not_tcp, "malformed": d.malformed,
                "ip_fragments": d.fragments, "snap_length_cut": pipeline.snap_cut}
    return col, replace(info, packets=pipeline.packets, tcp_connections=pipeline.sessions_seen,
                        truncated=truncated, counters=counters)


def read(path: str | os.PathLike[str], options: Options | None = None,
         progress: Callable[[int], None] | None = None,
         shard: tuple[int, int] | None = None,
         thresholds: Thresholds | Mapping[str, Any] | None = None,
         keylog: KeylogArg = None) -> Capture:
    """Read a pcap or pcapng file (optionally gzip-compressed) into tables.

    Args:
        path: the capture file.
        options: engine limits (:class:`~wspcap.engine.Options`).
        progress: called after each block of the file is read (never per
            packet) with the bytes of the file read so far, out of its size
            on disk (``os.path.getsize``; compressed bytes for a gzip file).
        shard: ``(i, n)`` keeps only the connections of shard ``i`` out of
            ``n`` (split by a stable hash of the 4-tuple), so ``n`` readers can
            share one file; see :func:`wspcap.read_many`.
        thresholds: limits of the anomaly rules
            (:class:`~wspcap.rules.thresholds.Thresholds`, or a mapping of
            threshold names to values); the defaults if None.
        keylog: TLS key log file(s) in the NSS format (``SSLKEYLOGFILE``), or
            a :class:`~wspcap.tls.KeyLog`, to decrypt wss:// connections.

    Returns:
        A :class:`Capture`. A file that ends mid-packet (or whose gzip stream
        is cut) still gives everything before that point;
        :attr:`CaptureInfo.truncated` says so and the anomalies table has a
        ``capture_truncated`` row. A damaged file (corrupt gzip data or
        checksum, an impossible record header) gives everything before the
        damage, with a ``capture_corrupt`` row. Packets whose timestamps
        int64 nanoseconds cannot hold are kept with a null ``ts`` and a
        ``capture_timestamp_invalid`` row.

    Raises:
        CaptureFormatError: the file is missing or is not a capture.
        ConfigError: ``shard`` is not ``(i, n)`` with ``0 <= i < n``.
    """
    if shard is not None:
        from wspcap.errors import ConfigError
        i, n = shard
        if not (isinstance(i, int) and isinstance(n, int) and 0 <= i < n):
            raise ConfigError("shard", f"{shard!r} is not (i, n) with 0 <= i < n")
        options = replace(options or Options(), shard=(i, n))
    pipeline = _pipeline(options, thresholds, keylog)
    with paused_gc():  # (the tables are built from the records, paused too)
        info, truncated, corrupt = _feed(path, pipeline, progress)
        return _finish(pipeline, info, truncated, corrupt)


def _pipeline(options: Options | None, thresholds: Thresholds | Mapping[str, Any] | None,
              keylog: KeylogArg) -> Pipeline:
    """The engine for reading, with the thresholds and key log given (a forced
    application decoder must exist: ConfigError before reading)."""
    options = _with_keylog(_with_thresholds(options, thresholds), keylog)
    _check_decoding(options)
    return Pipeline(options)


def _feed(path: str | os.PathLike[str], pipeline: Pipeline,
          progress: Callable[[int], None] | None,
          look: Callable[[int], object] | None = None) -> tuple[CaptureInfo, str | None, bool]:
    """Feed the capture file to ``pipeline`` a block at a time (``look``: told
    the file position after each); returns its info and how reading stopped
    (why it stopped early, and whether the file is damaged there). For a
    caller that paused the garbage collector (:func:`paused_gc`)."""
    with open_capture(path, progress) as cap:
        for batch in cap.batches():
            if cap.secrets:
                _take_secrets(cap, pipeline)
            pipeline.receive_batch(batch)
            if look is not None:
                look(cap.position)
        return CaptureInfo(os.fspath(path), cap.format), cap.truncated, cap.corrupt


def analyze_to(path: str | os.PathLike[str], directory: str | os.PathLike[str],
               fmt: str = "parquet", options: Options | None = None,
               progress: Callable[[int], None] | None = None,
               thresholds: Thresholds | Mapping[str, Any] | None = None,
               spill_bytes: int = SPILL_BYTES, keylog: KeylogArg = None) -> Written:
    """Read a capture and write its four tables, in memory that neither payload
    size nor the number of connections grows.

    The same tables as ``read(path)`` followed by writing them (same rows, same
    order), but frames and messages are written while the capture is read,
    every ``spill_bytes`` of file or of message payload (inflation can make
    more of the second). What stays in memory is, for the connections still
    open, a few dozen bytes per frame and message (packed into columns,
    without data payloads, for the cross-record rules); a connection that
    has ended is checked then and its records are let go of. The connections
    and anomalies tables are kept whole.

    Args:
        path: the capture file.
        directory: where the tables go (created if missing).
        fmt: ``parquet`` (row groups), ``csv`` or ``jsonl``.
        options, progress, thresholds, keylog: as for :func:`read`.
        spill_bytes: bytes of file, or of message payload, between two
            writes (looked at every LOOK_BYTES of file; 0 writes after every
            packet).

    Returns:
        A :class:`Written`.

    Raises:
        CaptureFormatError: the file is missing or is not a capture.
        ConfigError: an unknown format.
    """
    pipeline = _pipeline(options, thresholds, keylog)
    tables = TablesWriter(pipeline, directory, fmt, spill_bytes, spool=True)
    with paused_gc():
        info, truncated, corrupt = _feed(path, pipeline, progress, tables.look)
    _col, info = _finish_records(pipeline, info, truncated, check=False, corrupt=corrupt)
    return tables.close(info)
