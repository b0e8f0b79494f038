"""What the commands share: the progress bar, the checks of inputs and outputs
made before any work starts, and the options that become library settings
(thresholds, decoders)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from wspcap.errors import ConfigError, WspcapError

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["PROGRESS_AFTER", "BadInputs", "ProgressBar", "check_input", "check_inputs",
           "check_output", "decoding_of", "thresholds_of"]

#: A command shows its progress bar once it has worked this long (seconds),
#: when stderr is a terminal and -q is not given: quick runs stay silent.
PROGRESS_AFTER = 1.0


def _stderr_console() -> Console:
    """Where progress bars go (tests give a console of their own): stderr, a
    terminal only when it is one (rich would also take FORCE_COLOR for one)."""
    from rich.console import Console

    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):  # no stderr, or a closed one
        tty = False
    return Console(stderr=True, force_terminal=tty)


class ProgressBar:
    """The progress bar of a command that works on a file: the bytes of the
    file read, then the steps after it (plots drawn, ...), on one line of
    stderr that goes away at the end.

    Nothing is shown when stderr is not a terminal or ``quiet`` is set, nor
    before the command has worked PROGRESS_AFTER seconds. The callbacks it
    hands out are what the readers call once per block of the file.
    """

    def __init__(self, quiet: bool) -> None:
        self.console = None if quiet else _stderr_console()
        self.enabled = self.console is not None and self.console.is_terminal
        self._start_at = time.monotonic() + PROGRESS_AFTER
        self._bar: Any = None
        self._task: Any = None
        self._what = ""
        self._total = 0
        self._unit = ""

    def reading(self, path: str) -> Callable[[int], None] | None:
        """A callback for the bytes of ``path`` read (None when not shown)."""
        if not self.enabled:
            return None
        try:
            size = os.path.getsize(path)
        except OSError:
            size = 0
        self._stage("reading", size, "MB")
        return self._update

    def steps(self, what: str) -> Callable[[int, int], None] | None:
        """A callback for (steps done, steps) of the next stage, e.g. "drawing"."""
        if not self.enabled:
            return None

        def update(done: int, total: int) -> None:
            if self._what != what or self._total != total:
                self._stage(what, total, "")
            self._update(done)
        return update

    def _stage(self, what: str, total: int, unit: str) -> None:
        self._what, self._total, self._unit = what, total, unit
        if self._bar is not None:
            self._bar.reset(self._task, total=total or None, description=what,
                            amount=self._amount(0))

    def _amount(self, done: int) -> str:
        if self._unit == "MB":
            return f"{done / 1e6:.1f}/{self._total / 1e6:.1f} MB"
        return f"{done}/{self._total}"

    def _update(self, done: int) -> None:
        if self._bar is None:
            if time.monotonic() < self._start_at:
                return
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[amount]}"), TimeRemainingColumn(),
                                 console=self.console, transient=True)
            self._task = self._bar.add_task(self._what, total=self._total or None,
                                            amount=self._amount(0))
            self._bar.start()
        self._bar.update(self._task, completed=done, amount=self._amount(done))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


# -- where output goes, what input comes: checked before any work starts ----------------

def check_output(path: str, option: str, folder: bool) -> None:
    """Make sure ``path`` can be written, before any work starts.

    Missing parent folders are created (``mkdir -p``), and so is ``path``
    itself when it is to be a folder. An existing file given as a file output
    is replaced (as ``tcpdump -w`` does); an existing file where a folder is
    wanted, or a folder where a file is wanted, is refused. Writing is tried
    for real (a temporary file in the folder; an existing file opened for
    update, not truncated), so a read-only file system or a ``/proc`` path
    is caught even for root.

    Args:
        path: the folder (``folder=True``) or file to write.
        option: the option that named it, for the message (``-o``, ``-w``).
        folder: whether ``path`` is a folder to write files into.

    Raises:
        ConfigError: one line saying what is wrong.
    """
    import tempfile

    def refuse(reason: str) -> ConfigError:
        return ConfigError(option, f"{path}: {reason}")

    if not path:
        raise ConfigError(option, "an empty path")
    if folder:
        if os.path.exists(path) and not os.path.isdir(path):
            raise refuse("is a file, not a folder (give a folder name for the output)")
        target = path
    else:
        if os.path.isdir(path):
            raise refuse("is a folder, not a file (give a file name in it)")
        target = os.path.dirname(path) or os.curdir
    try:
        os.makedirs(target, exist_ok=True)
    except FileExistsError:
        raise refuse(f"cannot create the folder {target}: a file of that name is in "
                     "the way") from None
    except NotADirectoryError:
        raise refuse(f"cannot create the folder {target}: a file is in the way "
                     "(a part of the path is a file)") from None
    except OSError as exc:
        raise refuse(f"cannot create the folder {target}: {exc.strerror or exc}") from None
    try:
        if not folder and os.path.exists(path):
            with open(path, "r+b"):
                pass
        else:
            with tempfile.TemporaryFile(dir=target, prefix=".wspcap-"):
                pass
    except OSError as exc:
        raise refuse(f"cannot write in {target}: {exc.strerror or exc}") from None


def check_input(path: str) -> None:
    """Raise the one-line CaptureFormatError of an input that cannot be read."""
    from wspcap.sources.files import open_capture

    open_capture(path).close()


def check_inputs(inputs: Sequence[str]) -> list[str]:
    """The capture files named by ``inputs`` (files, folders, patterns), each
    opened once to check it, before any work starts.

    Raises:
        BadInputs: one line per input that is missing, unreadable or not a
            capture (every input is checked, not only up to the first).
    """
    from wspcap.api.many import expand_inputs

    files: list[str] = []
    problems: list[str] = []
    for item in inputs:
        try:
            found = expand_inputs([item])
        except WspcapError as exc:
            problems.append(str(exc))
            continue
        for path in found:
            if path in files:
                continue
            try:
                check_input(path)
            except WspcapError as exc:
                problems.append(str(exc))
                continue
            files.append(path)
    if problems:
        raise BadInputs(problems)
    return files


class BadInputs(WspcapError):
    """Several inputs that cannot be read: one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(f"wspcap: error: {p}" for p in self.problems)


# -- options that become library settings: thresholds, decoders -------------------------

def thresholds_of(args: argparse.Namespace) -> Any:
    """The thresholds the options ask for, or None for the defaults (ConfigError if bad)."""
    from wspcap.rules.thresholds import Thresholds

    path = getattr(args, "thresholds", None)
    settings = getattr(args, "settings", None) or []
    if path is None and not settings:
        return None
    thresholds = Thresholds()
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError("--thresholds", f"cannot read {path}: {exc}") from None
        thresholds = Thresholds.from_toml(text)
    return thresholds.with_settings(settings)


def decoding_of(args: argparse.Namespace) -> Any:
    """The Options of ``--decoder``/``--no-decoders``, or None for the defaults
    (ConfigError for a decoder that is not installed)."""
    decoder, off = getattr(args, "decoder", None), getattr(args, "no_decoders", False)
    if decoder is None and not off:
        return None
    from wspcap.engine import Options
    from wspcap.tables.app import check_decoder
    return Options(decoder=check_decoder(decoder), decoders=not off)
