"""onehem-like execution of hook commands: processes, timeouts, concurrency.

As OpenNebula's hook execution manager does: at most 10 hooks at once, in no
particular order; each command in its own process group; on TIMEOUT the whole
group gets SIGTERM and the execution's code is 255. Every subprocess is an
argv list (never a shell line).
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence, Set

from .timeline import wait_while

#: onehem's concurrency cap.
MAX_PARALLEL = 10
#: The code onehem records for a hook killed at its TIMEOUT.
TIMEOUT_CODE = 255
#: Grace period after SIGTERM before the group is killed outright.
KILL_GRACE = 5.0


@dataclass(frozen=True)
class HookJob:
    """One execution to run: what onehem gets from oned for a matching hook."""

    hook_id: int
    command: str
    argv: Sequence[str]
    stdin: Optional[bytes]
    arguments: str
    timeout: Optional[float] = None
    retry: bool = False


@dataclass(frozen=True)
class HookResult:
    """What one execution gave."""

    stdout: bytes
    stderr: bytes
    code: int
    timestamp: int


def run_job(job: HookJob, env: Mapping[str, str],
            started_proc: Callable[[subprocess.Popen], None] = lambda proc: None) -> HookResult:
    """Run one hook command in its own process group and collect its output.

    ``started_proc`` is told the process as soon as it exists (so a stopping
    runner can end it).
    """
    started = int(time.time())
    try:
        proc = subprocess.Popen(
            list(job.argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=dict(env), start_new_session=True)
    except OSError as error:
        # onehem reports a command it cannot start as a failed execution.
        return HookResult(b"", f"{job.command}: {error.strerror}\n".encode(), 127, started)
    started_proc(proc)
    try:
        out, err = proc.communicate(job.stdin or b"", timeout=job.timeout)
        return HookResult(out, err, proc.returncode, started)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=KILL_GRACE)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        return HookResult(out, err, TIMEOUT_CODE, started)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


class HookRunner:
    """A pool of at most ``max_parallel`` running hooks; results go to ``on_done``."""

    def __init__(
        self,
        env: Mapping[str, str],
        on_done: Callable[[HookJob, HookResult], None],
        max_parallel: int = MAX_PARALLEL,
    ) -> None:
        self.env = dict(env)
        self.on_done = on_done
        self._pool = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="onehem")
        self._cond = threading.Condition()
        self._queued = 0
        self._active = 0
        #: Highest number of hooks seen running at the same time.
        self.max_active = 0
        self.started = 0
        self._procs: Set[subprocess.Popen] = set()
        self._stopping = False

    def submit(self, job: HookJob) -> None:
        """Queue one execution (never blocks the caller)."""
        with self._cond:
            self._queued += 1
        self._pool.submit(self._run, job)

    def _run(self, job: HookJob) -> None:
        with self._cond:
            self._active += 1
            self.started += 1
            self.max_active = max(self.max_active, self._active)
        try:
            if self._stopping:
                return
            result = run_job(job, self.env, self._track)
            self.on_done(job, result)
        finally:
            with self._cond:
                self._procs = {p for p in self._procs if p.poll() is None}
                self._active -= 1
                self._queued -= 1
                self._cond.notify_all()

    def _track(self, proc: subprocess.Popen) -> None:
        with self._cond:
            self._procs.add(proc)

    def busy(self) -> int:
        """Executions queued or running."""
        with self._cond:
            return self._queued

    def wait_idle(self, timeout: float) -> bool:
        """Block until no execution is queued or running; False on timeout."""
        return wait_while(self._cond, lambda: bool(self._queued), timeout)

    def stop(self) -> None:
        """Drop queued executions and end running ones (SIGTERM to their groups)."""
        with self._cond:
            self._stopping = True
            running = list(self._procs)
        for proc in running:
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
        self._pool.shutdown(wait=True)
