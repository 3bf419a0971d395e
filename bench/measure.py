"""Timing one child process: its wall time and its own CPU (from wait4), nothing else."""
from __future__ import annotations

import os
import shutil
import statistics
import time
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence


@dataclass(frozen=True)
class Run:
    """One finished process."""

    wall_s: float
    cpu_s: float
    code: int


def spawn_wait(argv: Sequence[str], env: Optional[Mapping[str, str]] = None,
               stdin: bytes = b"") -> Run:
    """Run ``argv`` to the end via posix_spawn + wait4.

    ``wait4`` gives the rusage of exactly this child (with the children it
    waited for), so other work on the machine does not leak into its CPU
    figure. Output goes to /dev/null; ``stdin`` (under a pipe's 64 KiB) is
    written before waiting.
    """
    program = argv[0] if os.sep in argv[0] else (shutil.which(argv[0]) or argv[0])
    devnull = os.open(os.devnull, os.O_RDWR)
    read_end, write_end = os.pipe()
    try:
        start = time.perf_counter()
        pid = os.posix_spawn(program, list(argv), dict(env if env is not None else os.environ),
                             file_actions=[(os.POSIX_SPAWN_DUP2, read_end, 0),
                                           (os.POSIX_SPAWN_DUP2, devnull, 1),
                                           (os.POSIX_SPAWN_DUP2, devnull, 2),
                                           (os.POSIX_SPAWN_CLOSE, write_end)])
        os.close(read_end)
        read_end = -1
        if stdin:
            os.write(write_end, stdin)
        os.close(write_end)
        write_end = -1
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - start
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)
        os.close(devnull)
    return Run(wall, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status))


def median(values: Sequence[float]) -> float:
    """The median (0.0 for no values)."""
    return statistics.median(values) if values else 0.0
