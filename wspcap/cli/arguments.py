"""The command line's grammar: every command's arguments and help texts (the
parser that ``--help`` prints), and the types that check an option's value.

The commands' own modules are not imported here: building the parser, which
every run does, loads none of them.
"""

from __future__ import annotations

import argparse

from wspcap.constants import __version__

__all__ = ["build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The ``wspcap`` parser, with every command's arguments."""
    parser = argparse.ArgumentParser(
        prog="wspcap",
        description="Every WebSocket conversation in a capture, exactly: TCP reassembly, "
                    "the HTTP upgrade, RFC 6455 frames, permessage-deflate, anomalies.")
    parser.add_argument("--version", action="version", version=f"wspcap {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    analyze = sub.add_parser(
        "analyze", help="summarize a capture and optionally write its tables",
        description="Read a pcap or pcapng capture, print a summary of every WebSocket "
                    "connection in it and, with -o, write the connections, frames, "
                    "messages and anomalies tables.")
    analyze.add_argument("capture", nargs="+",
                         help="pcap or pcapng file (may be gzip-compressed); several files, "
                              "directories or glob patterns are read in parallel with Dask")
    analyze.add_argument("-o", "--output", metavar="DIR",
                         help="write the four tables into DIR")
    analyze.add_argument("--format", choices=("parquet", "csv", "jsonl"), default="parquet",
                         help="table format with -o (default: parquet)")
    analyze.add_argument("--max-rows", type=int, default=50, metavar="N",
                         help="connections shown in the summary (default: 50)")
    analyze.add_argument("-q", "--quiet", action="store_true",
                         help="print no summary (with -o: only write the tables)")
    _add_keylog_option(analyze)
    _add_decoder_options(analyze)
    _add_rule_options(analyze)
    scale = analyze.add_argument_group(
        "several captures (Dask)", "With several inputs, each table is written as a dataset "
        "DIR/<table>/part-NNNNN.<format> with a 'capture' column and conn_id unique across "
        "captures. Needs the 'dask' extra: pip install 'wspcap[dask]'.")
    scale.add_argument("--scheduler", metavar="ADDR",
                       help="a running dask.distributed scheduler, e.g. tcp://HOST:8786, or "
                            "'sync' to read in this process (default: chosen by work size: "
                            "this process, or a local cluster of worker processes where "
                            "it pays: from about 270 MiB of input on 4 cores, 170 MiB on "
                            "8, never on 2)")
    scale.add_argument("--workers", type=_positive_int, metavar="N",
                       help="worker processes of a local cluster (default: one per core); "
                            "a lone capture is shared among them by flow; 1 reads in this "
                            "process")
    scale.add_argument("--split-large", type=_size, metavar="BYTES",
                       help="share captures of at least BYTES (e.g. 500M, 2G) among the "
                            "workers by flow")
    _add_view_parsers(sub)
    _add_rules_parser(sub)
    _add_decoders_parser(sub)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _size(text: str) -> int:
    """Bytes, with an optional K, M, G or T suffix (powers of 1024)."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    number, unit = text.rstrip("BbIi"), ""
    if number[-1:].upper() in units:
        number, unit = number[:-1], number[-1:].upper()
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 500M") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive size")
    return int(value)


def _add_view_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    live = sub.add_parser(
        "live", help="watch WebSocket traffic on an interface as it happens",
        description="Capture from a network interface (needs root or CAP_NET_RAW), show "
                    "connections, message rates and the latest messages and anomalies, or "
                    "stream them as JSON lines. Ctrl-C or SIGTERM stops cleanly with a "
                    "summary. Records are kept in memory for the final summary and tables.")
    live.add_argument("-i", "--interface", metavar="IFACE",
                      help="interface to capture on, 'any' for all (default: the default "
                           "route's)")
    live.add_argument("-f", "--filter", metavar="BPF",
                      help="BPF capture filter, e.g. 'tcp port 8765'")
    live.add_argument("-c", "--count", type=int, metavar="N", help="stop after N packets")
    live.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    live.add_argument("-w", "--write", metavar="FILE.pcap",
                      help="also write the packets to a pcap file (analyze reads it back)")
    live.add_argument("-o", "--output", metavar="DIR",
                      help="write the four tables into DIR while capturing (memory stays flat)")
    live.add_argument("--format", choices=("parquet", "csv", "jsonl"), default="parquet",
                      help="table format with -o (default: parquet)")
    live.add_argument("--jsonl", metavar="PATH|-",
                      help="write one JSON object per connection event, message and anomaly "
                           "('-' for stdout: no terminal view)")
    live.add_argument("-q", "--quiet", action="store_true",
                      help="no terminal view and no final summary")
    _add_keylog_option(live, follow=True)
    _add_decoder_options(live)

    plot = sub.add_parser("plot", help="draw a capture's plots as PNG files",
                          description="Read a capture and write its plots (connection "
                                      "timeline, sizes, throughput, opcodes, ping RTT, "
                                      "anomalies, a sequence diagram for each of the "
                                      "first 20 connections or those --conn names) as PNG "
                                      "files into DIR.")
    plot.add_argument("capture", help="pcap or pcapng file")
    plot.add_argument("-o", "--output", metavar="DIR", required=True, help="folder for the PNGs")
    plot.add_argument("--dpi", type=int, default=100, help="resolution (default: 100)")
    _add_conn_options(plot, "a sequence diagram", 20)
    _add_keylog_option(plot)
    _add_decoder_options(plot)

    report = sub.add_parser("report", help="write a self-contained HTML report of a capture",
                            description="Read a capture and write one HTML page (plots "
                                        "embedded, no external resources): summary, "
                                        "connections, messages, anomalies explained. It "
                                        "shows summaries and samples (the first connections "
                                        "and anomaly rows, the first and last messages of "
                                        "each connection shown), says how many rows it left "
                                        "out, and stays small on any capture; 'wspcap "
                                        "analyze -o' writes every row.")
    report.add_argument("capture", help="pcap or pcapng file")
    report.add_argument("-o", "--output", metavar="FILE.html", required=True,
                        help="the HTML file to write")
    report.add_argument("--max-messages", type=int, default=200, metavar="N",
                        help="messages listed per connection: the first N/2 and the last "
                             "N/2 (default: 200)")
    _add_conn_options(report, "a section (handshake, sequence diagram, messages)", 10)
    _add_keylog_option(report)
    _add_decoder_options(report)


def _add_keylog_option(parser: argparse.ArgumentParser, follow: bool = False) -> None:
    more = (" It is followed as it grows (a browser appends a line per connection), and "
            "-w then writes pcapng carrying the keys used." if follow else
            " Keys embedded in a pcapng (editcap --inject-secrets) need no option.")
    parser.add_argument("--keylog", action="append", default=[], metavar="FILE",
                        help="TLS key log (NSS format, as SSLKEYLOGFILE writes it) to "
                             "decrypt wss:// with; repeatable." + more)


def _add_conn_options(parser: argparse.ArgumentParser, what: str, default: int) -> None:
    parser.add_argument("--conn", type=_conn_ids, metavar="ID,ID,...",
                        help=f"the connections that get {what}, by conn_id (as 'wspcap "
                             "analyze' lists them), e.g. --conn 3,7")
    parser.add_argument("--max-conns", type=_count, default=default, metavar="N",
                        help=f"without --conn: the first N connections get {what} "
                             f"(default: {default}); the others are named on stderr and "
                             "in the output")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bar and no messages but warnings and errors")


def _conn_ids(text: str) -> list[int]:
    """``3,7,12``: connection ids."""
    try:
        ids = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of connection ids such "
                                         "as 3,7") from None
    if not ids or min(ids) < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of connection ids such "
                                         "as 3,7")
    return ids


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (0 or more)")
    return value


def _add_rule_options(parser: argparse.ArgumentParser) -> None:
    rules = parser.add_argument_group(
        "anomaly rules", "See 'wspcap rules' for the codes, severities and thresholds.")
    rules.add_argument("--fail-on", choices=("warning", "error"), metavar="SEVERITY",
                       help="exit with status 3 when an anomaly of this severity or above "
                            "(warning or error) is found, for CI pipelines and scripts")
    rules.add_argument("--thresholds", metavar="FILE.toml",
                       help="thresholds of the resource rules, as name = value lines (at the "
                            "top level or under [thresholds])")
    rules.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       dest="settings",
                       help="set one threshold, e.g. --set frame_flood_rate=500 (repeatable; "
                            "applied after --thresholds)")



def _add_rules_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    rules = sub.add_parser(
        "rules", help="print the anomaly catalog",
        description="Print every anomaly code wspcap reports: severity, reference, what it "
                    "means, and the equivalent in Zeek, Wireshark or Suricata ('Zeek: not "
                    "checked' marks what Zeek does not look for); then the thresholds.")
    rules.add_argument("code", nargs="*", help="only these codes (or code prefixes, e.g. sec_)")
    rules.add_argument("--format", choices=("table", "json"), default="table",
                       help="a table (default) or JSON")
    rules.add_argument("--thresholds", metavar="FILE.toml",
                       help="show these thresholds rather than the defaults")
    rules.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       dest="settings", help="show the thresholds with this one changed")


def _add_decoder_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "application decoders", "What the messages say (the app table): each connection's "
        "protocol is chosen by subprotocol, URI or the first messages; 'wspcap decoders' "
        "lists them.")
    choice = group.add_mutually_exclusive_group()
    choice.add_argument("--decoder", metavar="NAME",
                        help="decode every connection with this decoder (e.g. jsonrpc)")
    choice.add_argument("--no-decoders", action="store_true",
                        help="decode no application protocol (no app rows)")


def _add_decoders_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    decoders = sub.add_parser(
        "decoders", help="list the application-protocol decoders installed",
        description="List every application decoder: its name (for --decoder), the "
                    "subprotocols it owns, how it recognizes a conversation, and its module. "
                    "Third-party decoders come from the 'wspcap.decoders' entry-point group.")
    decoders.add_argument("--format", choices=("table", "json"), default="table",
                          help="a table (default) or JSON")
