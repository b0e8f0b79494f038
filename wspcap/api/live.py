"""Events as they happen: live sniffing, and replaying a capture the same way.

Design note
-----------
Goal: ``for event in wspcap.live(iface="lo")`` and ``wspcap.sniff(...) ->
Capture`` on the engine that reads files, with nothing added to that engine.

Plan: :class:`Monitor` is sans-I/O: it takes packets
(:meth:`Monitor.receive_packet`), drives a :class:`~wspcap.engine.Pipeline`
and turns what the pipeline's :class:`~wspcap.engine.Collector` gained since
the previous packet into events (:class:`ConnectionEvent`,
:class:`MessageEvent`, :class:`AnomalyEvent`). The collector's lists only ever
grow, so "what is new" is a slice from the last index seen. :class:`Sniffer`
is the I/O driver: a :class:`~wspcap.sources.live.LiveSource` (or any iterable
of packet records, such as a file: see :func:`replay`), an optional pcap
writer, and the stop conditions (packet count, duration, :meth:`Sniffer.stop`
from another thread or a signal handler).

Invariants: events come in the order the pipeline produced their records; a
connection's ``open`` event comes before its messages; every message and
anomaly of the finished :class:`~wspcap.tables.capture.Capture` was given out as an
event exactly once (those flushed at the end of input come last).

Warnings: the records stay in the collector (memory grows with the
traffic), because the cross-record checks (:mod:`wspcap.rules.checks`: the
handshake against the frames, pings against pongs, security notes) read them
all when the pipeline finishes; so the anomalies those checks find are given
out at the end of the capture, after the last message, while the parsers'
own anomalies come out as they happen.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from wspcap.engine import Options, Pipeline, Session
from wspcap.sources.files import PacketRecord
from wspcap.tables.events import (
    AnomalyEvent,
    ConnectionEvent,
    Event,
    MessageEvent,
    iso_ts,
    payload_field,
)

if TYPE_CHECKING:
    from wspcap.sources.keys import KeyLogFollower
    from wspcap.sources.live import LiveSource, PcapngWriter, PcapWriter
    from wspcap.tables.capture import Capture, CaptureInfo
    from wspcap.tables.stream import TablesWriter, Written

__all__ = [
    "AnomalyEvent",
    "ConnectionEvent",
    "Event",
    "MessageEvent",
    "Monitor",
    "Sniffer",
    "iso_ts",
    "live",
    "payload_field",
    "replay",
    "sniff",
]

#: Seconds of capture time between two looks at open connections (to notice closes).
SWEEP_NS = 500_000_000
#: Longest wait for a packet before the stop conditions are checked again.
POLL_SECONDS = 0.1
#: Packets already queued in the kernel that are still read after a stop.
DRAIN_MAX = 100_000


def _endpoint(record: dict[str, Any], side: str) -> str:
    ip = record[f"{side}_ip"]
    return f"[{ip}]:{record[f'{side}_port']}" if ":" in ip else f"{ip}:{record[f'{side}_port']}"


def _connection_event(kind: str, session: Session, ts: int) -> ConnectionEvent:
    r = session.record()
    return ConnectionEvent(kind, r["conn_id"], ts, _endpoint(r, "client"), _endpoint(r, "server"),
                           r["uri"], r["status"], r["subprotocol"], r["permessage_deflate"],
                           r["close_code_c2s"] if kind == "closed" else None,
                           r["close_code_s2c"] if kind == "closed" else None)


class Monitor:
    """The pipeline, with the records it produces given out as events.

    Sans-I/O: performs no I/O. Call :meth:`receive_packet` for each packet
    and :meth:`finish` once at the end; each returns the events it caused.

    Args:
        options: engine limits.

    Attributes:
        pipeline: the :class:`~wspcap.engine.Pipeline` driven.
        messages: messages given out so far.
        anomalies: anomalies given out so far.
    """

    def __init__(self, options: Options | None = None) -> None:
        self.pipeline = Pipeline(options)
        self.messages = 0
        self.anomalies = 0
        self._mi = 0
        self._ai = 0
        self._si = 0
        self._msg_index: dict[int, int] = {}
        self._waiting: list[Session] = []  # open, not yet established or refused
        self._open: list[Session] = []     # not yet closed
        self._next_sweep = 0
        self._finished = False

    @property
    def frames(self) -> int:
        """Frames seen so far, in every connection."""
        return sum(s.nframes for s in self.pipeline.collector.sessions)

    def receive_secrets(self, secrets: list[bytes]) -> None:
        """TLS key log text (taken: the list is emptied)."""
        for text in secrets:
            self.pipeline.receive_secrets(text)
        secrets.clear()

    def receive_packet(self, number: int, ts: int, linktype: int,
                       data: bytes) -> list[Event]:
        """Take one captured packet; return the events it caused."""
        self.pipeline.receive_packet(number, ts, linktype, data)
        return self._collect(ts)

    def _collect(self, ts: int) -> list[Event]:
        c = self.pipeline.collector
        if (len(c.sessions) == self._si and len(c.messages) == self._mi
                and len(c.anomalies) == self._ai and not self._waiting
                and ts < self._next_sweep):
            return []
        events: list[Event] = []
        while self._si < len(c.sessions):
            session = cast(Session, c.sessions[self._si])  # (the engine's own)
            self._si += 1
            events.append(_connection_event("open", session, ts))
            self._waiting.append(session)
            self._open.append(session)
        if self._waiting:
            self._check_waiting(events, ts)
        if len(c.anomalies) > self._ai:
            for a in c.anomalies[self._ai:]:
                events.append(AnomalyEvent(a.conn_id, a.direction, a.ts, a.code, a.severity,
                                           a.detail, a.frame_index, a.packet, a.stream_offset))
            self.anomalies += len(c.anomalies) - self._ai
            self._ai = len(c.anomalies)
        if len(c.messages) > self._mi:
            counters = self._msg_index
            for m, key in zip(c.messages[self._mi:], c.message_keys[self._mi:]):
                conn_id = key >> 1
                index = counters.get(conn_id, 0)
                counters[conn_id] = index + 1
                events.append(MessageEvent(conn_id, "s2c" if key & 1 else "c2s", index,
                                           m.ts_end, m.type, m.opcode, m.length, m.wire_length,
                                           m.payload, m.text, m.compressed, m.frames,
                                           m.close_code, m.close_reason, m.complete))
            self.messages += len(c.messages) - self._mi
            self._mi = len(c.messages)
        if ts >= self._next_sweep:
            self._next_sweep = ts + SWEEP_NS
            self._sweep(events, ts)
        return events

    def _check_waiting(self, events: list[Event], ts: int) -> None:
        still = []
        for s in self._waiting:
            if s.established:
                events.append(_connection_event("established", s, ts))
            elif s.ignored:
                events.append(_connection_event("refused", s, ts))
            else:
                still.append(s)
        self._waiting = still

    def _sweep(self, events: list[Event], ts: int) -> None:
        """Connections whose both directions ended (FIN or RST) are closed."""
        still = []
        for s in self._open:
            ended = [d.fin_seen or d.rst_seen for d in s.dirs]
            if all(ended) or s.ignored:
                events.append(_connection_event("closed", s, ts))
            else:
                still.append(s)
        self._open = still

    def finish(self, truncated: str | None = None,
               write: Callable[[], None] | None = None, corrupt: bool = False) -> list[Event]:
        """End of input: flush the pipeline; return the last events (every
        connection still open is ``closed`` at the time of the last packet).

        ``write``, for a caller that writes the tables while capturing (see
        :class:`wspcap.tables.stream.TablesWriter`), is called once the last
        records are given out as events; the anomalies of the checks it runs
        come out before the connections close, as without it.
        """
        if self._finished:
            return []
        self._finished = True
        last = self.pipeline.last_ts
        if write is None:
            self.pipeline.finish(truncated, corrupt=corrupt)
            self._next_sweep = last
            events = self._collect(last)
        else:
            self.pipeline.finish(truncated, check=False, corrupt=corrupt)
            self._next_sweep = last + 1  # no connection closes before the checks ran
            first = self._collect(last)  # before write() packs the messages
            write()
            self.records_written()
            self._next_sweep = last
            then = self._collect(last)  # the checks' anomalies, connections closed
            # In the order of one _collect after the checks: anomalies, messages, closes.
            events = [e for e in first if not isinstance(e, MessageEvent)]
            events += [e for e in then if isinstance(e, AnomalyEvent)]
            events += [e for e in first if isinstance(e, MessageEvent)]
            events += [e for e in then if not isinstance(e, AnomalyEvent)]
        for s in self._open:
            events.append(_connection_event("closed", s, last))
        self._open = []
        return events

    def records_written(self) -> None:
        """The collector's records were written and packed (by a
        :class:`~wspcap.tables.stream.TablesWriter`) after the last events: its
        lists of records start again from empty."""
        self._mi = 0

    def info(self, source: str, fmt: str = "live", counters: dict[str, int] | None = None
             ) -> CaptureInfo:
        """What :attr:`Capture.info <wspcap.tables.capture.Capture.info>` holds, so far."""
        from wspcap.tables.capture import CaptureInfo
        p = self.pipeline
        d = p.decoder
        return CaptureInfo(source, fmt, p.packets, p.sessions_seen, None,
                           {"not_tcp": d.not_tcp, "malformed": d.malformed,
                            "ip_fragments": d.fragments, "snap_length_cut": p.snap_cut,
                            **(counters or {})})

    def capture(self, source: str, fmt: str = "live", counters: dict[str, int] | None = None
                ) -> Capture:
        """The tables, after :meth:`finish`."""
        from wspcap.tables.capture import Capture
        return Capture.from_collector(self.pipeline.collector, self.info(source, fmt, counters),
                                      self.pipeline.options)


class Sniffer:
    """Capture from an interface (or replay packet records) as events.

    Iterate over it for events; afterwards :meth:`capture` gives the tables
    and :attr:`kernel_received` / :attr:`kernel_dropped` the kernel's counts
    (:attr:`copies_skipped`: the outgoing copies of loopback packets that
    ``kernel_received`` counts but the capture leaves out).

    Args:
        iface: interface name, ``"any"``, or None for scapy's default.
        bpf: BPF filter expression (tcpdump syntax).
        count: stop after this many packets.
        timeout: stop after this many seconds.
        write: also write every packet to this pcap file (nanosecond timestamps).
        options: engine limits.
        source: read these packet records instead of opening ``iface``
            (a :class:`~wspcap.sources.live.LiveSource`, or any iterable of
            :class:`~wspcap.sources.PacketRecord`, e.g. an open capture file).
        output: write the four tables into this directory while capturing
            (as ``wspcap analyze -o`` does), so that memory holds neither
            every payload nor every record however long the capture runs;
            afterwards :attr:`written` tells what was written, and
            :meth:`capture` is not available.
        fmt: the tables' format with ``output``: ``parquet``, ``csv`` or
            ``jsonl``.
        keylog: TLS key log file(s) to decrypt wss:// with, followed as they
            grow (a browser appends a line per connection): records whose keys
            are not there yet are held (``Options.tls_hold``, 4 MiB a
            direction by default here, and ``Options.tls_hold_total``, 64 MiB
            for all connections together) and decrypted when they arrive. With
            ``write``, the file is pcapng and carries the keys it used.

    Attributes:
        written: with ``output``, once the capture ended: a
            :class:`~wspcap.tables.stream.Written`.

    Raises:
        LiveCaptureError: (when iterating starts) the capture cannot be opened.
    """

    def __init__(self, iface: str | None = None, bpf: str | None = None, *,
                 count: int | None = None, timeout: float | None = None,
                 write: str | os.PathLike[str] | BinaryIO | None = None,
                 options: Options | None = None,
                 source: LiveSource | Iterable[PacketRecord] | None = None,
                 output: str | os.PathLike[str] | None = None, fmt: str = "parquet",
                 keylog: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None = None
                 ) -> None:
        from wspcap.errors import ConfigError
        if count is not None and count < 0:
            raise ConfigError("count", "must be 0 or more")
        if timeout is not None and timeout < 0:
            raise ConfigError("timeout", "must be 0 or more seconds")
        self.iface = iface
        self.bpf = bpf
        self.count = count
        self.timeout = timeout
        self.write = write
        self.keys: KeyLogFollower | None = None
        if keylog is not None:
            from wspcap.sources.keys import KeyLogFollower
            from wspcap.tls.session import MAX_HELD
            self.keys = KeyLogFollower(keylog)
            options = options or Options()
            if not options.tls_hold:
                options = replace(options, tls_hold=MAX_HELD)
        self.monitor = Monitor(options)
        self.source = source
        self.output = output
        self.fmt = fmt
        self.written: Written | None = None
        self.packets = 0
        self.kernel_received: int | None = None
        self.kernel_dropped: int | None = None
        self.copies_skipped = 0
        self.started: float | None = None
        self.elapsed = 0.0
        self.stopped_by = ""
        self.linktype: int | None = None
        self._stop = threading.Event()
        self._done = False

    def stop(self) -> None:
        """Ask the capture to end (thread-safe; usable from a signal handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()

    def open(self) -> LiveSource | Iterable[PacketRecord]:
        """Open the interface now (errors show before any output); idempotent."""
        if self.source is None:
            from wspcap.sources.live import LiveSource
            self.source = LiveSource(self.iface, self.bpf)
            self.iface = self.source.iface
        return self.source

    def __iter__(self) -> Iterator[Event]:
        return self.events()

    def events(self) -> Iterator[Event]:
        """Run the capture, yielding events until a stop condition; the
        events flushed at the end come last. This is a generator."""
        # The loop over packets stays here, on locals (no call or generator
        # more per packet): the helpers are the steps of the start and the
        # end, and the rare branches (new keys, the -w file opened).
        if self._done:
            return
        from wspcap.sources.live import LiveSource
        keys = self.keys
        keys_seen = self._new_keys(None) if keys is not None else ""  # every line so far, for -w
        next_poll = time.monotonic() + POLL_SECONDS
        tables = self._tables_writer()
        source = self.open()
        live_source = source if isinstance(source, LiveSource) else None
        writer: PcapWriter | PcapngWriter | None = None
        receive = self.monitor.receive_packet
        captured = 0  # bytes, for the tables' writes
        stop = self._stop
        count = self.count
        self.started = time.monotonic()
        deadline = None if self.timeout is None else self.started + self.timeout
        self.stopped_by = "end of input"
        try:
            if live_source is not None:
                writer = self._live_writer(live_source)
                self._write_keys(writer, keys_seen)
            packets = self._packets(source, live_source, deadline)
            secrets: list[bytes] | None = getattr(source, "secrets", None)
            for number, ts, linktype, data, wirelen in packets:
                if secrets:  # TLS keys embedded in a pcapng being replayed
                    self.monitor.receive_secrets(secrets)
                if keys is not None and time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + POLL_SECONDS
                    keys_seen += self._new_keys(writer)
                if writer is None and self.write is not None:
                    self.linktype = linktype
                    writer = self._open_writer(linktype)
                    self._write_keys(writer, keys_seen)
                if writer is not None:
                    writer.write(ts, data, wirelen)
                self.packets += 1
                events = receive(self.packets, ts, linktype, data)
                if events:
                    yield from events
                if tables is not None:
                    captured += len(data)
                    writes = tables.writes
                    tables.look(captured)
                    if tables.writes != writes:
                        self.monitor.records_written()
                if count is not None and self.packets >= count:
                    self.stopped_by = "count"
                    break
                if live_source is not None:
                    continue  # _live_packets checks the stop flag and the deadline
                if stop.is_set():
                    self.stopped_by = "stop requested"
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    self.stopped_by = "duration"
                    break
        except KeyboardInterrupt:
            self.stopped_by = "interrupted"
        finally:
            self._end_capture(writer, live_source)
        yield from self._last_events(tables)

    def _tables_writer(self) -> TablesWriter | None:
        """With ``output``: what writes the tables while capturing."""
        if self.output is None:
            return None
        from wspcap.tables.stream import TablesWriter
        return TablesWriter(self.monitor.pipeline, self.output, self.fmt)

    def _packets(self, source: LiveSource | Iterable[PacketRecord], live_source: LiveSource | None,
                 deadline: float | None) -> Iterator[PacketRecord]:
        """The packets to read (none with ``count=0``)."""
        if live_source is not None:
            packets = self._live_packets(live_source, deadline)
        else:
            packets = iter(source)
        if self.count == 0:
            self.stopped_by = "count"
            return iter(())
        return packets

    def _new_keys(self, writer: PcapWriter | PcapngWriter | None) -> str:
        """The key log lines added since the last look (with ``keylog``),
        given to the pipeline and to a pcapng ``writer``."""
        assert self.keys is not None
        more = self.keys.poll()
        if more:
            self.monitor.pipeline.receive_secrets(more)
            self._write_keys(writer, more)
        return more

    def _live_writer(self, source: LiveSource) -> PcapWriter | PcapngWriter | None:
        """A live capture's link type, and the writer of ``write`` opened
        before any packet (the file exists even if none comes)."""
        self.linktype = source.linktype
        if self.write is None:
            return None
        return self._open_writer(source.linktype, source.snaplen)

    def _open_writer(self, linktype: int, snaplen: int | None = None
                     ) -> PcapWriter | PcapngWriter:
        """The writer of ``write``: pcapng with ``keylog``, to carry the keys
        (the caller writes those seen so far, once it holds the writer: it
        closes the writer whatever happens next)."""
        from wspcap.sources.live import PcapngWriter, PcapWriter
        assert self.write is not None
        writer_class = PcapngWriter if self.keys is not None else PcapWriter
        if snaplen is None:  # (the writer's default snap length)
            return writer_class(self.write, linktype)
        return writer_class(self.write, linktype, snaplen)

    @staticmethod
    def _write_keys(writer: PcapWriter | PcapngWriter | None, text: str) -> None:
        """Key log lines into the capture file, when it is a pcapng."""
        from wspcap.sources.live import PcapngWriter
        if isinstance(writer, PcapngWriter):
            writer.write_secrets(text)

    def _end_capture(self, writer: PcapWriter | PcapngWriter | None,
                     live_source: LiveSource | None) -> None:
        """However the capture ended: the keys that came after the last
        packet, the time it took, the file and the interface closed, the
        kernel's counts."""
        if self.keys is not None:  # keys that came after the last packet
            self._new_keys(writer)
        assert self.started is not None
        self.elapsed = time.monotonic() - self.started
        if writer is not None:
            writer.close()
        if live_source is not None:
            live_source.close()
            self.kernel_received, self.kernel_dropped = live_source.stats()
            self.copies_skipped = live_source.copies_skipped
        self._done = True

    def _last_events(self, tables: TablesWriter | None) -> list[Event]:
        """The events flushed at the end of input; with ``output``, the
        tables are written meanwhile (see :meth:`Monitor.finish`)."""
        if tables is None:
            return self.monitor.finish()

        def write() -> None:
            self.written = tables.close(self.monitor.info(*self._source_info()))
        return self.monitor.finish(write=write)

    def _live_packets(self, source: LiveSource, deadline: float | None
                      ) -> Iterator[PacketRecord]:
        recv = source.recv
        stop = self._stop
        while not stop.is_set():
            wait = POLL_SECONDS
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.stopped_by = "duration"
                    return
                wait = min(wait, left)
            record = recv(wait)
            if record is not None:
                yield record
        self.stopped_by = "stop requested"
        # What the kernel already queued was captured: take it (boundedly).
        for _ in range(DRAIN_MAX):
            record = recv(0)
            if record is None:
                break
            yield record

    def capture(self) -> Capture:
        """The four tables (after iteration ended; runs it first if needed).

        Raises:
            ConfigError: the tables were written to ``output`` (see
                :attr:`written`) rather than kept.
        """
        if self.output is not None:
            from wspcap.errors import ConfigError
            raise ConfigError("output", f"the tables were written to {os.fspath(self.output)}; "
                                        "read them from there")
        if not self._done:
            for _ in self.events():
                pass
        return self.monitor.capture(*self._source_info())

    def _source_info(self) -> tuple[str, str, dict[str, int]]:
        """The source's name, format and counters, for :class:`CaptureInfo`."""
        counters = {}
        if self.kernel_dropped is not None:
            counters["kernel_received"] = self.kernel_received or 0
            counters["kernel_dropped"] = self.kernel_dropped
        name = self.iface if self.iface is not None else "(packets)"
        fmt = "live" if self.kernel_dropped is not None else "packets"
        return str(name), fmt, counters


def sniff(iface: str | None = None, bpf: str | None = None, count: int | None = None,
          timeout: float | None = None, *, write: str | os.PathLike[str] | None = None,
          options: Options | None = None) -> Capture:
    """Capture live traffic into the same :class:`~wspcap.tables.capture.Capture` as
    :func:`wspcap.read`.

    Stops after ``count`` packets, after ``timeout`` seconds, or on Ctrl-C
    (the tables of what was captured are returned). Needs root or
    CAP_NET_RAW, Linux, and scapy (``pip install 'wspcap[live]'``).

    Args:
        iface: interface name, ``"any"``, or None for scapy's default.
        bpf: BPF filter expression, e.g. ``"tcp port 8765"``.
        count: packets to capture.
        timeout: seconds to capture.
        write: also write the packets to this pcap file.
        options: engine limits.

    Raises:
        LiveCaptureError: no right to capture, unknown interface or bad filter.

    Example:
        >>> cap = wspcap.sniff("lo", "tcp port 8765", timeout=10)  # doctest: +SKIP
        >>> cap.messages[["direction", "type", "text"]]            # doctest: +SKIP
    """
    return Sniffer(iface, bpf, count=count, timeout=timeout, write=write,
                   options=options).capture()


def live(iface: str | None = None, bpf: str | None = None, count: int | None = None,
         timeout: float | None = None, *, write: str | os.PathLike[str] | None = None,
         options: Options | None = None) -> Sniffer:
    """Live events: ``for event in wspcap.live("lo", "tcp port 8765"): ...``.

    The returned :class:`Sniffer` is iterable (events) and, once iteration
    ends, gives :meth:`Sniffer.capture`. The interface is opened right away,
    so errors are raised here. Arguments as for :func:`sniff`.

    Raises:
        LiveCaptureError: no right to capture, unknown interface or bad filter.
    """
    sniffer = Sniffer(iface, bpf, count=count, timeout=timeout, write=write,
                      options=options)
    sniffer.open()
    return sniffer


def replay(path: str | os.PathLike[str], options: Options | None = None
           ) -> Iterator[Event]:
    """The events a live capture would have given, from a capture file.

    Lets notebooks and tests use the live API on a file. This is a generator.

    Args:
        path: a pcap or pcapng file.
        options: engine limits.
    """
    from wspcap.sources import open_capture
    monitor = Monitor(options)
    with open_capture(path) as cap:
        for number, ts, linktype, data, _wirelen in cap:
            if cap.secrets:  # TLS keys embedded in a pcapng
                monitor.receive_secrets(cap.secrets)
            events = monitor.receive_packet(number, ts, linktype, data)
            if events:
                yield from events
        truncated, corrupt = cap.truncated, cap.corrupt
    yield from monitor.finish(truncated, corrupt=corrupt)
