"""The ``wspcap`` command line: thin wrappers over the library.

Every error a user can cause (missing file, not a capture, bad option) ends
with one line on stderr and a non-zero exit status, never a traceback:

- 0: done (a truncated capture is a warning, not a failure);
- 1: an unexpected internal error (a bug: please report it);
- 2: bad usage or an unreadable input;
- 3: ``analyze --fail-on SEVERITY`` found an anomaly at or above SEVERITY;
- 130: interrupted.

The commands live in modules of their own, loaded only when their command
runs: :mod:`~wspcap.cli.arguments` (the parser), :mod:`~wspcap.cli.common`
(progress bar, input and output checks), :mod:`~wspcap.cli.analyze`,
:mod:`~wspcap.cli.live`, :mod:`~wspcap.cli.views` (plot, report) and
:mod:`~wspcap.cli.catalog` (rules, decoders).
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from wspcap.cli.arguments import build_parser as _parser
from wspcap.cli.common import BadInputs
from wspcap.cli.common import check_output as check_output
from wspcap.errors import WspcapError

if TYPE_CHECKING:
    from wspcap.cli.live import stop_line as stop_line

__all__ = ["main", "run"]

#: Each command's function, in the module imported when it runs.
_COMMANDS = {
    "analyze": ("wspcap.cli.analyze", "analyze"),
    "live": ("wspcap.cli.live", "live"),
    "plot": ("wspcap.cli.views", "plot"),
    "report": ("wspcap.cli.views", "report"),
    "rules": ("wspcap.cli.catalog", "rules"),
    "decoders": ("wspcap.cli.catalog", "decoders"),
}


def run() -> None:
    """The ``wspcap`` program: :func:`main`, then exit with its status.

    Exits without tearing the interpreter down: freeing the modules of
    pandas, pyarrow and NumPy object by object takes about 0.15 s, for
    nothing, at the end of every command. What an exit must still do is
    done first: flush the standard streams and run the exit handlers (every
    file wspcap writes is closed before :func:`main` returns).

    NumPy's OpenBLAS is told to start no thread of its own (unless the
    environment says otherwise): wspcap does no linear algebra, and the
    thread OpenBLAS starts on import spins for a while, 0.1-0.18 s of CPU
    per command on the benchmarks, taken from the parsing and writing
    threads on a small machine (and from the other processes of
    ``--workers``, which inherit the setting).
    """
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe: nothing more can be said
        pass
    atexit._run_exitfuncs()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command in _COMMANDS:
            module, function = _COMMANDS[args.command]
            command: Callable[[argparse.Namespace], int] = getattr(
                importlib.import_module(module), function)
            return command(args)
    except BadInputs as exc:
        print(exc, file=sys.stderr)
        return 2
    except WspcapError as exc:
        print(f"wspcap: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wspcap: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except MemoryError:
        print("wspcap: error: out of memory", file=sys.stderr)
        return 1
    parser.error(f"unknown command {args.command}")
    return 2


def __getattr__(name: str) -> Any:
    """``stop_line``, from :mod:`wspcap.cli.live` on first use (PEP 562): the
    module of a command loads only when that command runs."""
    if name == "stop_line":
        from wspcap.cli.live import stop_line
        return stop_line
    raise AttributeError(f"module 'wspcap.cli' has no attribute {name!r}")
