"""``python -m wspcap``: the command-line interface."""

from wspcap.cli import run

run()
