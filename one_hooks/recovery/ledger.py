"""What recoveries remember between hook processes: host locks, resume attempts, carriers.

Several hook processes run for the same host at once (onehem runs up to 10
hooks in parallel: the host hook plus one VM hook per VM event). Three things
keep a VM from being resumed twice:

* a per-host lock (``fcntl.flock`` on ``<state_dir>/locks/host-<ID>.lock``),
  held while VMs are re-read and resumed, so the second process re-reads a
  VM only after the first one's ``resume`` has been accepted;
* a per-VM record of the recovery (``<state_dir>/attempts/vm-<ID>.json``):
  accepted calls, *applied* attempts (oned ran the resume and it did not end
  RUNNING: a failed deploy, or a bounce back by a late monitor report), and
  the VM's evidence as read just before the last call
  (:class:`~one_hooks.recovery.evidence.Snapshot`), so that another process
  can judge that call's outcome if the first one dies. oned answers a resume
  at once and runs it seconds later, so a re-read alone cannot tell "never
  resumed" from "resumed, not run yet" or "resumed and failed";
* a carry claim (``<state_dir>/carry/vm-<ID>.claim``, :mod:`one_hooks.recovery.claims`):
  the live process that resumed the VM carries it to a final outcome, and
  every other process leaves the VM to it; if it dies, the next one takes
  over within the attempts left.

A record older than the episode window is stale: a later outage starts from
zero. A record is removed once the VM is seen RUNNING (or moved on); one that
ended without RUNNING keeps its ``final`` word ("gave up", "timeout"), so
hooks fired later do not start over.

A watch claim, ``<state_dir>/watch/host-<ID>.claim``, says that a host-reconnect
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
from typing import Callable, Iterator, Optional, Set

from .. import fsio
from ..config import RecoverySection
from ..errors import ConfigError, LockBusy
from . import claims
from .carry import carry_seconds
from .evidence import Snapshot

#: Tokens of the carriers (engines) alive in this process: a carry claim with
#: this process's PID counts only while its token is here.
_LIVE_TOKENS: Set[str] = set()


@dataclass(frozen=True)
class Watch:
    """A live host-reconnect process watching a host until ``until`` (wall time)."""

    host_id: int
    pid: int
    until: float


@dataclass(frozen=True)
class Carrier:
    """The live process carrying a VM's recovery."""

    vm_id: int
    pid: int
    token: str
    who: str


@dataclass(frozen=True)
class Attempts:
    """One VM's recovery in the current episode.

    ``sent``: resume calls oned accepted; ``applied``: attempts oned ran that
    did not end RUNNING; ``before``: the evidence read just before the last
    call (None if no call yet); ``final``: how a process ended it without
    RUNNING ("gave up", "timeout"), "" while it is being carried.
    """

    vm_id: int
    sent: int = 0
    applied: int = 0
    first: float = 0.0
    last: float = 0.0
    by: str = ""
    final: str = ""
    before: Optional[Snapshot] = None


class Ledger:
    """Locks, recovery records and claims under ``state_dir``.

    ``wall`` gives the wall-clock time (records are shared between processes,
    so a monotonic clock would not do); ``episode`` is how long a record
    stays meaningful after its last change. Each ledger is one carrier (its
    engine): :meth:`close` when the engine is done.
    """

    def __init__(self, state_dir: str, episode: float = 900.0,
                 wall: Callable[[], float] = time.time) -> None:
        self.state_dir = state_dir
        self.episode = episode
        self.wall = wall
        self._token = os.urandom(6).hex()
        _LIVE_TOKENS.add(self._token)

    @classmethod
    def from_section(cls, section: RecoverySection, wall: Callable[[], float] = time.time) -> "Ledger":
        """A ledger for ``[recovery]``: records stay meaningful while some process may still carry a VM."""
        return cls(section.state_dir, episode=episode_seconds(section), wall=wall)

    def _path(self, kind: str, name: str) -> str:
        directory = os.path.join(self.state_dir, kind)
        try:
            fsio.make_dirs(directory, 0o750)
        except OSError as exc:
            raise _unusable(directory, exc) from None
        return os.path.join(directory, name)

    # --- attempts ---------------------------------------------------------

    def _record_path(self, vm_id: int) -> str:
        return self._path("attempts", f"vm-{int(vm_id)}.json")

    def get(self, vm_id: int) -> Attempts:
        """The VM's record in the current episode (empty if none or stale)."""
        path = self._record_path(vm_id)
        try:
            data = json.loads(fsio.read_bytes(path).decode("utf-8"))
            before = data.get("before")
            found = Attempts(int(vm_id), int(data["sent"]), int(data["applied"]), float(data["first"]),
                             float(data["last"]), str(data.get("by", "")), str(data.get("final", "")),
                             Snapshot.from_dict(before) if before else None)
        except FileNotFoundError:
            return Attempts(int(vm_id))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            # A damaged (or older-format) record must not block recovery forever: start over.
            return Attempts(int(vm_id))
        if self.wall() - found.last > self.episode:
            return Attempts(int(vm_id))
        return found

    def _put(self, record: Attempts) -> Attempts:
        body = {"sent": record.sent, "applied": record.applied, "first": record.first,
                "last": record.last, "by": record.by, "final": record.final,
                "before": record.before.as_dict() if record.before else None}
        path = self._record_path(record.vm_id)
        try:
            fsio.atomic_write(path, json.dumps(body).encode("utf-8"),
                              fsio.FileMeta(0o640, os.getuid(), os.getgid()))
        except OSError as exc:
            raise _unusable(path, exc) from None
        return record

    def sent(self, vm_id: int, by: str, before: Snapshot) -> Attempts:
        """Count one more accepted resume call, made by ``by`` after reading ``before``."""
        now = self.wall()
        old = self.get(vm_id)
        return self._put(Attempts(int(vm_id), old.sent + 1, old.applied, old.first or now, now, by,
                                  "", before))

    def applied(self, vm_id: int, before: Optional[Snapshot] = None) -> Attempts:
        """Count one applied attempt that did not end RUNNING; ``before``: the evidence to judge from now on."""
        old = self.get(vm_id)
        now = self.wall()
        return self._put(Attempts(int(vm_id), old.sent, old.applied + 1, old.first or now, now,
                                  old.by, old.final, before or old.before))

    def finish(self, vm_id: int, final: str) -> Attempts:
        """End the VM's recovery without RUNNING (``final``: "gave up", "timeout"); no carrier after."""
        old = self.get(vm_id)
        record = self._put(Attempts(int(vm_id), old.sent, old.applied, old.first or self.wall(),
                                    self.wall(), old.by, final, old.before))
        self.release(vm_id)
        return record

    def clear(self, vm_id: int) -> None:
        """Forget the VM's recovery (it was seen RUNNING, or moved on) and its carrier."""
        fsio.remove(self._record_path(vm_id))
        self.release(vm_id)

    # --- carriers ---------------------------------------------------------

    @property
    def token(self) -> str:
        """This ledger's carrier token (one per engine)."""
        return self._token

    def carry(self, vm_id: int, who: str, until: float) -> None:
        """Say that this process (this ledger's engine) carries ``vm_id`` until wall time ``until``."""
        path = self._path(claims.CARRY_DIR, claims.carry_name(vm_id))
        start = claims.start_time(os.getpid()) or 0
        try:
            fsio.atomic_write(path, claims.encode_carry(os.getpid(), start, self._token, until, who),
                              fsio.FileMeta(0o640, os.getuid(), os.getgid()))
        except OSError as exc:
            raise _unusable(path, exc) from None

    def carrier_of(self, vm_id: int) -> Optional[Carrier]:
        """The live process carrying ``vm_id``, if any (this ledger's engine included)."""
        found = claims.live_carrier(self.state_dir, vm_id, self.wall(), _LIVE_TOKENS)
        return Carrier(int(vm_id), *found) if found is not None else None

    def release(self, vm_id: int) -> None:
        """Stop carrying ``vm_id`` (only the claim goes; the record stays)."""
        fsio.remove(claims.carry_path(self.state_dir, vm_id))

    def close(self) -> None:
        """This ledger's engine is done: its carry claims no longer count in this process."""
        _LIVE_TOKENS.discard(self._token)

    # --- host watches ----------------------------------------------------

    def claim_watch(self, host_id: int, until: float, kind: str = claims.WATCH_DIR) -> None:
        """Say that this process watches ``host_id`` until wall time ``until``."""
        self.claim_watch_for(host_id, os.getpid(), until, kind)

    def claim_watch_for(self, host_id: int, pid: int, until: float, kind: str = claims.WATCH_DIR) -> None:
        """Say that process ``pid`` watches ``host_id`` until wall time ``until``.

        ``kind``: whose watch (``claims.WATCH_DIR``: host-reconnect's settle
        window; ``claims.EVACUATE_DIR``: host-error's grace and evacuation).
        """
        path = self._path(kind, claims.claim_name(host_id))
        try:
            fsio.atomic_write(path, claims.encode(pid, until),
                              fsio.FileMeta(0o640, os.getuid(), os.getgid()))
        except OSError as exc:
            raise _unusable(path, exc) from None

    def watcher_of(self, host_id: int, kind: str = claims.WATCH_DIR) -> "Watch | None":
        """The live process watching the host now, if any.

        A claim whose process is gone or whose time is over counts as none: a
        crashed watcher must never leave VMs unattended.
        """
        found = claims.live_claim(self.state_dir, host_id, self.wall(), kind)
        return Watch(int(host_id), *found) if found is not None else None

    # --- host locks -------------------------------------------------------

    @contextlib.contextmanager
    def host_lock(self, host_id: int, timeout: float,
                  clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep,
                  poll: float = 0.05, kind: str = "host") -> Iterator[None]:
        """Hold the host's lock; raise :class:`LockBusy` after ``timeout`` seconds.

        flock locks belong to an open file description, so two threads of one
        process taking the same host lock exclude each other too. ``kind``
        names another lock of the same host (``evacuate``: taking the
        evacuation claim), so holding one never waits for the other.
        """
        path = self._path("locks", f"{kind}-{int(host_id)}.lock")
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
    """How long after its last change a recovery stays the same episode (attempt records, host records).

    As long as some process may still carry a VM of it: the settle window, a
    retry delay, and the longest carry (every attempt's wait and the delays
    between them).
    """
    return (section.settle_seconds + section.retry_delay
            + carry_seconds(section.attempts, section.wait_running, section.retry_delay))


def _unusable(path: str, exc: OSError) -> ConfigError:
    """A state directory we cannot write: an installation problem, said in one line."""
    return ConfigError(f"{path}: {exc.strerror} (is [recovery] state_dir writable by oneadmin?)",
                       key="recovery")
