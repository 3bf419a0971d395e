"""What recoveries remember between hook processes: host locks and resume attempts.

Several hook processes run for the same host at once (onehem runs up to 10
hooks in parallel: the host hook plus one UNKNOWN hook per VM). Two things
keep a VM from being resumed twice:

* a per-host lock (``fcntl.flock`` on ``<state_dir>/locks/host-<ID>.lock``),
  held while VMs are re-read and resumed, so the second process re-reads a
  VM only after the first one's ``resume`` has moved it on;
* a per-VM record of resume attempts (``<state_dir>/attempts/vm-<ID>.json``),
  because a failed deploy puts the VM back in UNKNOWN, where a re-read alone
  cannot tell "never resumed" from "resumed and failed". The record also
  bounds the retries of the UNKNOWN hook (``PREV_LCM_STATE=19`` loop).

A record older than the episode window is stale: a later outage starts from
zero. A record is removed once the VM is seen RUNNING.

A third file, ``<state_dir>/watch/host-<ID>.claim`` (:mod:`one_hooks.recovery.claims`), says that a host-reconnect
process is watching the host until a given time: VM hooks of that host then
leave the VM to it instead of each starting a recovery of their own.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from .. import fsio
from ..config import RecoverySection
from ..errors import ConfigError, LockBusy
from . import claims


@dataclass(frozen=True)
class Watch:
    """A live host-reconnect process watching a host until ``until`` (wall time)."""

    host_id: int
    pid: int
    until: float


@dataclass(frozen=True)
class Attempts:
    """Resume attempts made on one VM during the current episode."""

    vm_id: int
    count: int = 0
    first: float = 0.0
    last: float = 0.0
    by: str = ""

    def next_due(self, base_delay: float) -> float:
        """Wall time before which another attempt should not start (doubling delay)."""
        if self.count == 0:
            return 0.0
        return self.last + base_delay * (2 ** (self.count - 1))


class Ledger:
    """Locks and attempt records under ``state_dir``.

    ``wall`` gives the wall-clock time (records are shared between processes,
    so a monotonic clock would not do); ``episode`` is how long a record
    stays meaningful after its last attempt.
    """

    def __init__(self, state_dir: str, episode: float = 900.0,
                 wall: Callable[[], float] = time.time) -> None:
        self.state_dir = state_dir
        self.episode = episode
        self.wall = wall

    def _path(self, kind: str, name: str) -> str:
        directory = os.path.join(self.state_dir, kind)
        try:
            fsio.make_dirs(directory, 0o750)
        except OSError as exc:
            raise _unusable(directory, exc) from None
        return os.path.join(directory, name)

    # --- attempts ---------------------------------------------------------

    def get(self, vm_id: int) -> Attempts:
        """The VM's attempts in the current episode (zero if none or stale)."""
        path = self._path("attempts", f"vm-{int(vm_id)}.json")
        try:
            data = json.loads(fsio.read_bytes(path).decode("utf-8"))
            found = Attempts(int(vm_id), int(data["count"]), float(data["first"]),
                             float(data["last"]), str(data.get("by", "")))
        except FileNotFoundError:
            return Attempts(int(vm_id))
        except (OSError, ValueError, KeyError, TypeError):
            # A damaged record must not block recovery forever: start over.
            return Attempts(int(vm_id))
        if self.wall() - found.last > self.episode:
            return Attempts(int(vm_id))
        return found

    def record(self, vm_id: int, by: str) -> Attempts:
        """Count one more resume attempt on the VM, made by ``by``."""
        now = self.wall()
        before = self.get(vm_id)
        after = Attempts(int(vm_id), before.count + 1, before.first or now, now, by)
        body = {"count": after.count, "first": after.first, "last": after.last, "by": by}
        path = self._path("attempts", f"vm-{int(vm_id)}.json")
        try:
            fsio.atomic_write(path, json.dumps(body).encode("utf-8"),
                              fsio.FileMeta(0o640, os.getuid(), os.getgid()))
        except OSError as exc:
            raise _unusable(path, exc) from None
        return after

    def clear(self, vm_id: int) -> None:
        """Forget the VM's attempts (it was seen RUNNING)."""
        fsio.remove(self._path("attempts", f"vm-{int(vm_id)}.json"))

    # --- host watches ----------------------------------------------------

    def claim_watch(self, host_id: int, until: float) -> None:
        """Say that this process watches ``host_id`` until wall time ``until``."""
        self.claim_watch_for(host_id, os.getpid(), until)

    def claim_watch_for(self, host_id: int, pid: int, until: float) -> None:
        """Say that process ``pid`` watches ``host_id`` until wall time ``until``."""
        path = self._path(claims.WATCH_DIR, claims.claim_name(host_id))
        try:
            fsio.atomic_write(path, claims.encode(pid, until),
                              fsio.FileMeta(0o640, os.getuid(), os.getgid()))
        except OSError as exc:
            raise _unusable(path, exc) from None

    def watcher_of(self, host_id: int) -> "Watch | None":
        """The live process watching the host now, if any.

        A claim whose process is gone or whose time is over counts as none: a
        crashed watcher must never leave VMs unattended.
        """
        found = claims.live_claim(self.state_dir, host_id, self.wall())
        return Watch(int(host_id), *found) if found is not None else None

    # --- host locks -------------------------------------------------------

    @contextlib.contextmanager
    def host_lock(self, host_id: int, timeout: float,
                  clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep,
                  poll: float = 0.05) -> Iterator[None]:
        """Hold the host's lock; raise :class:`LockBusy` after ``timeout`` seconds.

        flock locks belong to an open file description, so two threads of one
        process taking the same host lock exclude each other too.
        """
        path = self._path("locks", f"host-{int(host_id)}.lock")
        # The lock file carries no content, only the lock: opening it for
        # writing is not a content write, so it does not go through fsio.
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
        except OSError as exc:
            raise _unusable(path, exc) from None
        try:
            deadline = clock() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise
                if clock() >= deadline:
                    raise LockBusy(f"host {host_id}: another recovery holds {path} "
                                   f"for more than {timeout:g} s")
                sleep(poll)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def episode_seconds(section: RecoverySection) -> float:
    """How long after its last attempt a recovery stays the same episode (attempts, host records).

    As long as the UNKNOWN hook may still retry a failed deploy: the settle
    window, the wait for RUNNING, and every retry delay.
    """
    return section.settle_seconds + section.wait_running + section.retry_delay * (2 ** section.attempts)


def _unusable(path: str, exc: OSError) -> ConfigError:
    """A state directory we cannot write: an installation problem, said in one line."""
    return ConfigError(f"{path}: {exc.strerror} (is [recovery] state_dir writable by oneadmin?)",
                       key="recovery")
