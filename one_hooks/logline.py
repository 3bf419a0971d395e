"""The shape of one audit line: control characters escaped, the log file's format.

Shared by :mod:`one_hooks.audit` (the ``logging`` set-up of full runs) and the
hooks' first look (:mod:`one_hooks.hooks.triage`, which appends its line itself to
stay clear of ``logging``'s import cost), so both write the same lines.
"""
from __future__ import annotations

import os
import time

#: C0 control characters (and DEL) shown escaped, e.g. a newline as ``\\n``.
CONTROL_ESCAPES = {c: repr(chr(c))[1:-1] for c in (*range(0x20), 0x7F)}

#: ``logging`` format of a log file line, and its date format.
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


def one_line(text: str) -> str:
    """``text`` with control characters escaped.

    Names come from oned (a VM NAME may hold a newline): one decision stays
    one line, so a name cannot forge a second line in ``onehook show`` or the log.
    """
    return text.translate(CONTROL_ESCAPES)


def log_format(program: str) -> str:
    """The ``logging.Formatter`` format of ``program``'s log lines (this process)."""
    return f"%(asctime)s {program}[{os.getpid()}] %(levelname)s %(message)s"


def format_line(program: str, level: str, text: str, when: float) -> str:
    """One log file line, as ``logging`` with :func:`log_format` writes it."""
    stamp = time.strftime(DATE_FORMAT, time.localtime(when))
    return log_format(program) % {"asctime": stamp, "levelname": level, "message": one_line(text)}
