"""Live capture: raw packets from a network interface, as :class:`PacketRecord`.

Design note
-----------
Goal: feed the same engine that reads files (:class:`wspcap.engine.Pipeline`)
from a live interface, fast enough to keep up with busy WebSocket traffic.

Plan: scapy opens the socket (interface lookup, BPF compilation through
libpcap, attaching the filter, binding): that is the part worth reusing. The
hot path does not use scapy at all: no packet is dissected, not even scapy's
``recv_raw`` (which returns microsecond float timestamps and, on a listening
socket, every loopback packet twice). It reads the socket's file descriptor
with ``recvmsg_into`` into one preallocated buffer, takes the kernel's
nanosecond timestamp (``SO_TIMESTAMPNS``, which scapy turns on) and the
``PACKET_AUXDATA`` (wire length, VLAN tag) from the ancillary data, and hands
out ``bytes``.

Link types: on Linux a named interface is read with its own link-layer header
(``lo`` and Ethernet give Ethernet headers: LINKTYPE_ETHERNET). ``any``, and an
interface whose header we do not decode, are read in "cooked" mode like
libpcap does: a ``SOCK_DGRAM`` packet socket, a BPF program compiled for raw
IP, and a Linux cooked (SLL, LINKTYPE_LINUX_SLL) header built from the socket
address, so ``--write`` gives the same kind of file ``tcpdump -i any`` writes.

Invariants and warnings:

- Only this module imports scapy, and only when a live capture is opened
  (the optional extra ``wspcap[live]``).
- Outgoing copies of loopback packets are dropped, as libpcap does: on ``lo``
  the kernel shows each packet twice (once leaving, once arriving).
- Kernel drop counts come from ``PACKET_STATISTICS``, which resets on each
  read; :meth:`LiveSource.stats` accumulates them.
- Linux only (packet sockets); elsewhere opening fails with one clear line.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import struct
import sys
from collections.abc import Iterator
from typing import Any, BinaryIO, Self

from wspcap.errors import WspcapError
from wspcap.sources.files import PacketRecord
from wspcap.sources.linktypes import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_RAW

__all__ = ["LIVE_SNAPLEN", "LiveCaptureError", "LiveSource", "PcapWriter", "PcapngWriter",
           "default_interface"]

#: Bytes kept of each packet (tcpdump's default). Loopback with GSO/GRO can
#: hand over packets of 64 KiB and more.
LIVE_SNAPLEN = 262144
#: Socket receive buffer asked for (SO_RCVBUFFORCE when root): how much the
#: kernel holds while we are busy, before it drops.
DEFAULT_BUFFER = 32 << 20

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33
SO_ATTACH_FILTER = 26
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
ARPHRD_NONE = 0xFFFE
#: Hardware types read with their own header, and the LINKTYPE that header is.
LINKTYPE_OF_ARPHRD = {ARPHRD_ETHER: LINKTYPE_ETHERNET, ARPHRD_LOOPBACK: LINKTYPE_ETHERNET,
                      ARPHRD_NONE: LINKTYPE_RAW}
#: libpcap's DLT_RAW on Linux: the BPF program of a cooked socket sees the IP header first.
DLT_RAW = 12
DLT_EN10MB = 1
DLT_OF_ARPHRD = {ARPHRD_ETHER: DLT_EN10MB, ARPHRD_LOOPBACK: DLT_EN10MB, ARPHRD_NONE: DLT_RAW}
#: BPF "return constant" (BPF_RET | BPF_K): its constant is the bytes kept.
BPF_RET_K = 0x06
_BPF_INSN = struct.Struct("=HBBI")
_SOCK_FPROG = struct.Struct("@HP")  # unsigned short len; struct sock_filter *filter (native)

_AUXDATA = struct.Struct("=IIIHHHH")  # tp_status, tp_len, tp_snaplen, tp_mac, tp_net, tci, tpid
_TIMESPEC = struct.Struct("=qq")
_STATS = struct.Struct("=II")  # tp_packets, tp_drops
_SLL = struct.Struct("!HHH8sH")
_CMSG_SPACE = socket.CMSG_SPACE(_AUXDATA.size) + socket.CMSG_SPACE(_TIMESPEC.size) + 64


class LiveCaptureError(WspcapError):
    """A live capture cannot be opened (or read).

    Args:
        iface: the interface asked for.
        reason: what is wrong, in a few words.
    """

    def __init__(self, iface: str, reason: str) -> None:
        super().__init__(iface, reason)
        self.iface = iface
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot capture on {self.iface}: {self.reason}"


def _scapy() -> Any:
    """Import the parts of scapy we use (not ``scapy.all``: 1 s saved)."""
    logging.getLogger("scapy").setLevel(logging.ERROR)  # the "Unable to guess type" warning
    try:
        import scapy.arch
        import scapy.route  # noqa: F401  (fills conf.iface)
        from scapy.config import conf
    except ImportError as exc:
        raise LiveCaptureError("-", "scapy is not installed (pip install 'wspcap[live]')") \
            from exc
    return conf


def default_interface() -> str:
    """The interface scapy captures on by default (the one of the default route)."""
    conf = _scapy()
    return str(conf.iface) if conf.iface is not None else "lo"


class LiveSource:
    """Packets from a live interface, without dissection.

    Iterating gives :class:`PacketRecord` objects forever; :meth:`recv` gives
    one packet or ``None`` after a timeout, so callers can check a deadline or
    a stop flag in between.

    Args:
        iface: interface name, ``"any"`` for all, or None for scapy's default.
        bpf: a BPF filter expression (tcpdump syntax), or None.
        snaplen: bytes kept of each packet.
        buffer_size: kernel receive buffer in bytes.
        promisc: put the interface in promiscuous mode.

    Raises:
        LiveCaptureError: no right to capture, unknown interface, bad filter,
            scapy missing, or not Linux.

    Attributes:
        iface: the interface name.
        linktype: the LINKTYPE of the packets' headers.
        packets: packets handed out so far.
        copies_skipped: outgoing copies of loopback packets left out (the
            kernel shows each loopback packet twice, leaving and arriving, and
            counts both in :meth:`stats`' ``received``).
    """

    def __init__(self, iface: str | None = None, bpf: str | None = None,
                 snaplen: int = LIVE_SNAPLEN, buffer_size: int = DEFAULT_BUFFER,
                 promisc: bool = False) -> None:
        self.iface = iface or "(default)"
        self.bpf = bpf
        self.snaplen = snaplen
        self.packets = 0
        self.snap_cut = 0
        self.copies_skipped = 0
        self._received = 0
        self._dropped = 0
        self._sock: socket.socket | None = None
        self._scapy_sock: Any = None
        self._cooked = False
        if not sys.platform.startswith("linux"):
            raise LiveCaptureError(self.iface, "live capture needs Linux packet sockets")
        conf = _scapy()
        if iface is None:
            iface = str(conf.iface) if conf.iface is not None else "lo"
            self.iface = iface
        self.linktype = LINKTYPE_ETHERNET
        if iface == "any":
            self._open_cooked("", bpf)
        else:
            self._open_l2(iface, bpf, promisc)
        sock = self._sock
        assert sock is not None
        self._buf: bytearray = bytearray(snaplen)
        self._view: memoryview = memoryview(self._buf)
        for option, value in ((SO_RCVBUFFORCE, buffer_size),
                              (socket.SO_RCVBUF, buffer_size)):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, value)
                break
            except OSError:
                continue
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        # The kernel counters also saw the moments before the filter was attached
        # (every packet on every interface, dropped by a zero-size buffer): reset.
        self.stats()
        self._received = self._dropped = 0

    # -- opening ---------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> LiveCaptureError:
        if isinstance(exc, PermissionError):
            reason = "no permission to capture (run as root or grant CAP_NET_RAW)"
        elif isinstance(exc, ValueError) and "not found" in str(exc) or isinstance(exc, OSError) and exc.errno == 19:
            reason = "no such interface"
        elif "filter" in str(exc).lower():
            reason = f"bad BPF filter {self.bpf!r}: {_filter_reason(str(exc))}"
        else:
            reason = str(exc) or type(exc).__name__
        return LiveCaptureError(self.iface, reason)

    def _open_l2(self, iface: str, bpf: str | None, promisc: bool) -> None:
        from scapy.arch.linux import L2ListenSocket
        program = self._compile(bpf, None) if bpf else None  # syntax errors first
        try:
            s = L2ListenSocket(iface=iface, filter=None, promisc=promisc)
        except Exception as exc:  # scapy raises ValueError, OSError, Scapy_Exception
            raise self._fail(exc) from exc
        hatype = s.ins.getsockname()[3]
        if hatype not in LINKTYPE_OF_ARPHRD:
            # A header we do not decode (e.g. IPoIB, CAN): read it cooked.
            s.close()
            self._open_cooked(iface, bpf)
            return
        if bpf:
            # Compiled for this interface's link type this time; scapy is not asked
            # to attach it, because its program would cut packets at 65535 bytes.
            try:
                program = self._compile(bpf, DLT_OF_ARPHRD[hatype])
                s.ins.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, program)
            except LiveCaptureError:
                s.close()
                raise
            _flush(s.ins)
        self._scapy_sock = s
        self._sock = s.ins
        self.linktype = LINKTYPE_OF_ARPHRD[hatype]
        self._drop_outgoing = hatype == ARPHRD_LOOPBACK

    def _open_cooked(self, iface: str, bpf: str | None) -> None:
        """A SOCK_DGRAM packet socket; each packet gets a Linux cooked header."""
        try:
            if iface:
                from scapy.interfaces import resolve_iface
                resolve_iface(iface).index  # noqa: B018  (raises on unknown names)
            s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        except Exception as exc:
            raise self._fail(exc) from exc
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 0)
            if bpf:
                s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, self._compile(bpf, DLT_RAW))
            if iface:  # unbound, a packet socket hears every interface
                s.bind((iface, ETH_P_ALL))
            _flush(s)
        except LiveCaptureError:
            s.close()
            raise
        except Exception as exc:
            s.close()
            raise self._fail(exc) from exc
        self._sock = s
        self._cooked = True
        self.linktype = LINKTYPE_LINUX_SLL
        self._drop_outgoing = False

    def _compile(self, bpf: str, dlt: int | None) -> bytes:
        """The filter as a ``struct sock_fprog`` with its instructions inline.

        libpcap (through scapy, compiled for a "dead" handle of snap length
        65535) ends accepting paths with ``ret #65535``: the kernel would cut
        every packet there, and loopback segments are up to 64 KiB of payload
        plus headers. Those returns are raised to our snap length.
        """
        import ctypes

        from scapy.arch.common import compile_filter, free_filter
        try:
            prog = compile_filter(bpf, linktype=dlt if dlt is not None else DLT_EN10MB)
        except Exception as exc:
            raise self._fail(Exception(f"Cannot set filter: {exc}")) from exc
        try:
            insns = []
            for i in range(prog.bf_len):
                insn = prog.bf_insns[i]
                k = insn.k & 0xFFFFFFFF
                if insn.code == BPF_RET_K and k >= 0xFFFF:
                    k = self.snaplen
                insns.append(_BPF_INSN.pack(insn.code, insn.jt, insn.jf, k))
        finally:
            free_filter(prog)
        code = b"".join(insns)
        self._filter_code = ctypes.create_string_buffer(code, len(code))  # kept alive
        return _SOCK_FPROG.pack(len(insns), ctypes.addressof(self._filter_code))

    # -- reading ---------------------------------------------------------------------

    def fileno(self) -> int:
        """The socket's file descriptor (for ``select``)."""
        assert self._sock is not None
        return self._sock.fileno()

    def recv(self, timeout: float | None = None) -> PacketRecord | None:
        """The next packet, or None when ``timeout`` seconds pass without one.

        Args:
            timeout: seconds to wait; None waits forever, 0 only takes what is there.
        """
        sock = self._sock
        if sock is None:
            raise LiveCaptureError(self.iface, "the capture is closed")
        buf, view = self._buf, self._view
        while True:
            try:
                n, anc, flags, addr = sock.recvmsg_into([buf], _CMSG_SPACE, socket.MSG_DONTWAIT)
            except BlockingIOError:
                if timeout is not None and timeout <= 0:
                    return None
                ready, _, _ = select.select([sock], [], [], timeout)
                if not ready:
                    return None
                continue
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                continue
            pkttype = addr[2]
            if pkttype == PACKET_OUTGOING and (self._drop_outgoing or addr[3] == ARPHRD_LOOPBACK):
                self.copies_skipped += 1
                continue
            ts = 0
            wirelen = n
            tci: int | None = None
            tpid = 0x8100
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack_from(cdata)
                    ts = sec * 1_000_000_000 + nsec
                elif level == SOL_PACKET and kind == PACKET_AUXDATA:
                    status, tp_len, _snap, _mac, _net, vtci, vtpid = _AUXDATA.unpack_from(cdata)
                    wirelen = tp_len
                    if status & TP_STATUS_VLAN_VALID:
                        tci = vtci
                        if status & TP_STATUS_VLAN_TPID_VALID:
                            tpid = vtpid
            if self._cooked:
                data = _SLL.pack(pkttype, addr[3], len(addr[4]), addr[4][:8].ljust(8, b"\0"),
                                 addr[1]) + bytes(view[:n])
                wirelen += _SLL.size
            elif tci is not None and self.linktype == LINKTYPE_ETHERNET and n >= 12:
                # The kernel strips the 802.1Q tag into the auxdata: put it back.
                data = bytes(view[:12]) + struct.pack("!HH", tpid, tci) + bytes(view[12:n])
                wirelen += 4
            else:
                data = bytes(view[:n])
            if flags & socket.MSG_TRUNC or wirelen > len(data):
                self.snap_cut += 1
            if not ts:
                ts = _now_ns()
            self.packets += 1
            return PacketRecord(self.packets, ts, self.linktype, data, wirelen)

    def __iter__(self) -> Iterator[PacketRecord]:
        while True:
            record = self.recv(None)
            if record is not None:
                yield record

    def stats(self) -> tuple[int, int]:
        """Kernel counts since the capture opened: ``(received, dropped)``.

        ``received`` counts what passed the filter, both copies of each
        loopback packet included (see :attr:`copies_skipped`); ``dropped`` counts packets the kernel threw
        away because the socket buffer was full.
        """
        if self._sock is not None:
            try:
                raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS.size)
                received, dropped = _STATS.unpack(raw)
                self._received += received
                self._dropped += dropped
            except OSError:
                pass
        return self._received, self._dropped

    def close(self) -> None:
        """Close the socket (the kernel counters are read one last time)."""
        if self._sock is None:
            return
        self.stats()
        if self._scapy_sock is not None:
            self._scapy_sock.close()
        else:
            self._sock.close()
        self._sock = None
        self._scapy_sock = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _flush(sock: socket.socket) -> None:
    """Drop what arrived before the filter was attached."""
    while True:
        try:
            sock.recv(65536, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return


def _now_ns() -> int:
    import time
    return time.time_ns()


def _filter_reason(text: str) -> str:
    """libpcap's reason out of scapy's wrapped message."""
    if "(" in text and text.endswith(")"):
        return text[text.rindex("(") + 1:-1]
    return text.removeprefix("Cannot set filter: ")


class PcapWriter:
    """Writes packets to a classic pcap file with nanosecond timestamps.

    Args:
        path: the file to create (or a binary file object).
        linktype: the LINKTYPE of every packet.
        snaplen: the snap length written in the header.
    """

    def __init__(self, path: str | os.PathLike[str] | BinaryIO, linktype: int,
                 snaplen: int = LIVE_SNAPLEN) -> None:
        if isinstance(path, (str, os.PathLike)):
            self._file: BinaryIO = open(path, "wb")  # noqa: SIM115
            self._own = True
        else:
            self._file = path
            self._own = False
        self._record = struct.Struct("<IIII")
        self.packets = 0
        self._header(linktype, snaplen)

    def _header(self, linktype: int, snaplen: int) -> None:
        # magic (nanosecond), version 2.4, thiszone, sigfigs, snaplen, linktype
        self._file.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, snaplen, linktype))

    def write(self, ts_ns: int, data: bytes, wirelen: int | None = None) -> None:
        """Write one packet."""
        sec, nsec = divmod(ts_ns, 1_000_000_000)
        self._file.write(self._record.pack(sec, nsec, len(data),
                                           len(data) if wirelen is None else wirelen))
        self._file.write(data)
        self.packets += 1

    def flush(self) -> None:
        """Push buffered packets to the file."""
        self._file.flush()

    def close(self) -> None:
        """Flush and close (a file object passed in is only flushed)."""
        if self._own:
            self._file.close()
        else:
            self._file.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PcapngWriter(PcapWriter):
    """Writes packets to a pcapng file, with TLS key log lines in Decryption Secrets
    Blocks placed before the packets they decrypt (as ``editcap --inject-secrets``
    does), so that the capture carries its own keys.

    Args: as :class:`PcapWriter`'s.
    """

    def _header(self, linktype: int, snaplen: int) -> None:
        self._block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
        # if_tsresol (option 9) = 9: nanoseconds; then opt_endofopt.
        self._block(1, struct.pack("<HHI", linktype, 0, snaplen)
                    + struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0))

    def _block(self, kind: int, body: bytes) -> None:
        body += bytes(-len(body) % 4)
        size = len(body) + 12
        self._file.write(struct.pack("<II", kind, size) + body + struct.pack("<I", size))

    def write_secrets(self, keylog: str) -> None:
        """TLS key log lines for the packets written from now on."""
        data = keylog.encode("ascii", "replace")
        if data:
            self._block(0x0000000A, struct.pack("<II", 0x544C534B, len(data)) + data)

    def write(self, ts_ns: int, data: bytes, wirelen: int | None = None) -> None:
        """Write one packet."""
        self._block(6, struct.pack("<IIIII", 0, ts_ns >> 32, ts_ns & 0xFFFFFFFF, len(data),
                                   len(data) if wirelen is None else wirelen) + data)
        self.packets += 1
