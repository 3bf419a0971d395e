"""The audit trail: one line per decision, to stdout and to the log file.

Hook stdout lands in ``onehook show`` (oned keeps it in the hook's execution
log); the log file keeps the history across runs. Both get the same line.
Credentials never reach this module: callers pass IDs, names and reasons.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Callable, Optional, TextIO

from .config import LogSection
from .logline import DATE_FORMAT, log_format, one_line

LOGGER_NAME = "one_hooks"
#: log record attribute: the line was printed already (by a Reporter)
ECHOED = "one_hooks_echoed"


def setup(section: LogSection, program: str) -> logging.Logger:
    """Configure the package logger once, from ``[log]``.

    A log file that cannot be opened does not stop a recovery: lines then go
    to stderr. Quietly when its directory does not exist (a machine without
    ``/var/log/one``: ``one-hooks-install --check`` says so, once), and
    without the lines a :class:`Reporter` has already printed; with one
    warning when the directory is there but refuses the file (an
    installation problem: the hooks, as oneadmin, cannot log either).
    """
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers.clear()
    logger.setLevel(section.level.upper())
    logger.propagate = False
    fmt = logging.Formatter(log_format(program), DATE_FORMAT)
    handler: logging.Handler
    problem = ""
    if section.file == "-":
        handler = logging.StreamHandler(sys.stderr)
    elif not os.path.isdir(os.path.dirname(os.path.abspath(section.file))):
        handler = logging.StreamHandler(sys.stderr)
        handler.addFilter(lambda record: not getattr(record, ECHOED, False))
    else:
        try:
            if os.getuid() == 0:
                # Root (the installer, a manual recover) must not leave a root-owned
                # log behind that the hooks, run as oneadmin, then cannot append to.
                from . import fsio

                fsio.create_like_directory(section.file)
            handler = logging.FileHandler(section.file, encoding="utf-8", delay=False)
        except OSError as exc:
            problem = f"cannot open log file {section.file}: {exc.strerror}; logging to stderr"
            handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(fmt)
    logger.addHandler(handler)
    if problem:
        logger.warning(problem)
    return logger


def stderr_notice(program: str) -> Callable[[str], None]:
    """What a command says on stderr while it waits (e.g. oned's ``on_retry``): ``PROGRAM: text``.

    Not a decision, so not logged: it tells a person at the terminal that the
    command is alive and what it waits for.
    """
    def notice(text: str) -> None:
        print(f"{program}: {one_line(text)}", file=sys.stderr, flush=True)
    return notice


class Reporter:
    """Writes each decision line to ``out`` (stdout by default) and to the log."""

    def __init__(self, out: Optional[TextIO] = None, logger: Optional[logging.Logger] = None,
                 echo: bool = True) -> None:
        self.out = out if out is not None else sys.stdout
        self.logger = logger or logging.getLogger(LOGGER_NAME)
        self.echo = echo
        self.lines: list = []
        # The engine's workers report from several threads (hosts recovered side by side); print()
        # writes a line and its newline separately, so two lines could come out spliced. Re-entrant:
        # a subclass drawing more on ``out`` (a live counter) holds it around its own writes too.
        self._out_lock = threading.RLock()

    def line(self, text: str, level: int = logging.INFO) -> None:
        """Record one decision (safe from several threads: each line is written whole)."""
        text = one_line(text)
        self.lines.append(text)
        if self.echo:
            self._write([text])
        self.logger.log(level, text, extra={ECHOED: self.echo})

    def progress(self, done: int, total: int, outcome: str) -> None:
        """One more VM settled (``outcome``), ``done`` of ``total``: shown by reporters that draw a counter."""

    def show(self, lines: "list[str]") -> None:
        """Print detail lines (a dry run's diff) to ``out`` only: they are no decision to log."""
        if self.echo:
            self._write([one_line(text) for text in lines])

    def _write(self, lines: "list[str]") -> None:
        with self._out_lock:
            self.out.write("".join(text + "\n" for text in lines))
            self.out.flush()

    def warning(self, text: str) -> None:
        """Record a decision that needs an operator's attention."""
        self.line(text, logging.WARNING)

    def error(self, text: str) -> None:
        """Record a failure."""
        self.line(text, logging.ERROR)
