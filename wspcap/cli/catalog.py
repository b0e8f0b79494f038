"""``wspcap rules`` and ``wspcap decoders``: what wspcap knows, listed as a
table or JSON: the anomaly codes and thresholds, the application decoders."""

from __future__ import annotations

import argparse
import sys

from wspcap.cli.common import thresholds_of
from wspcap.errors import ConfigError

__all__ = ["decoders", "rules"]


def _binary_size(value: float) -> str:
    """``16 MiB`` for 16777216: a byte count as people read it."""
    size, unit = float(value), "bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024:
            break
    return f"{size:g} {unit}"


def rules(args: argparse.Namespace) -> int:
    """``wspcap rules``: print the anomaly catalog and thresholds."""
    import json

    from wspcap.rules.registry import RULES
    from wspcap.rules.thresholds import Thresholds

    selected = [r for r in RULES.values()
                if not args.code or any(r.code == c or r.code.startswith(c) for c in args.code)]
    if not selected:
        raise ConfigError("code", f"no anomaly code matches {' '.join(args.code)}")
    thresholds = thresholds_of(args) or Thresholds()
    if args.format == "json":
        json.dump({"rules": [r.as_dict() for r in selected],
                   "thresholds": thresholds.as_dict(), "threshold_units": Thresholds.units()},
                  sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    styles = {"info": "cyan", "warning": "yellow", "error": "bold red"}
    from wspcap.views.summary import console_width, plural

    console = Console(width=console_width())
    table = Table(title=f"Anomaly catalog ({plural(len(selected), 'code')})", title_justify="left",
                  show_lines=True)
    table.add_column("code", no_wrap=True)
    table.add_column("severity")
    table.add_column("what was seen / what it means", ratio=3)
    table.add_column("reference", ratio=1)
    table.add_column("peers", ratio=1)
    for r in selected:
        style = styles[r.severity]
        text = f"[bold]{escape(r.summary)}[/bold]"
        if r.meaning:
            text += f"\n{escape(r.meaning)}"
        if r.detail:
            text += f"\n[dim]e.g. {escape(r.detail)}[/dim]"
        table.add_row(r.code, f"[{style}]{r.severity}[/{style}]", text, escape(r.reference),
                      escape(r.peers))
    console.print(table)
    limits = Table(title="Thresholds", title_justify="left")
    limits.add_column("name")
    limits.add_column("value", justify="right")
    limits.add_column("unit")
    units = Thresholds.units()
    for name, value in thresholds.as_dict().items():
        limits.add_row(name, f"{value:g}" if isinstance(value, float) else str(value),
                       units[name] + (f" ({_binary_size(value)})" if units[name] == "bytes"
                                      and value >= 1024 else ""))
    console.print(limits)
    return 0


def decoders(args: argparse.Namespace) -> int:
    """``wspcap decoders``: print the application decoders installed."""
    import json

    from wspcap.app.registry import BROKEN, installed

    rows = installed()
    if args.format == "json":
        json.dump({"decoders": rows, "broken": BROKEN}, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from wspcap.views.summary import console_width

    table = Table(title=f"Application decoders ({len(rows)})", title_justify="left")
    for column in ("name", "subprotocols", "recognizes by", "module"):
        table.add_column(column, no_wrap=column == "name")
    for row in rows:
        table.add_row(row["name"], escape(row["subprotocols"]), escape(row["recognition"]),
                      escape(row["module"]))
    console = Console(width=console_width())
    console.print(table)
    for entry, why in BROKEN.items():
        console.print(f"[yellow]not loaded[/yellow]: {escape(entry)} ({escape(why)})")
    return 0
