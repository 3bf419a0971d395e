"""The iSCSI gate: may VMs start on this host? Asked over the node door.

One look (:meth:`Gate.check_once`) runs ``iscsiadm -m session -P 3``, and as
configured ``iscsiadm -m node``, ``find /dev/disk/by-path -xtype l`` (it
lists only dangling links) and ``multipath -ll`` on the node, then lets
:func:`one_hooks.node.iscsi.evaluate` decide. :meth:`Gate.wait_healthy` looks again
with growing waits until ``[iscsi] deadline``: after a power cut the kernel
keeps sessions FAILED for up to ``replacement_timeout`` before they return.

Verdicts are shared through a small JSON file per host in ``state_dir``.
While one process asks the node, the others for the same host wait on an
fcntl lock and then take its verdict, whatever it says, so 500 VM hooks for
one host make one look, not 500. Later, only a HEALTHY verdict is reused, and
only for ``cache_ttl`` seconds; anything else is asked again.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import time
from typing import Any, Callable, List, Optional, Sequence

from .. import fsio
from ..config import IscsiSection
from ..errors import NodeError, NodePermissionDenied, UsageError
from .iscsi import (Status, Verdict, evaluate, no_objects, parse_by_path, parse_multipath,
                    parse_node_records, parse_session_detail, unknown)
from .runner import ANY_CODE, Node, first_line

#: Gate re-checks wait ``retry_interval``, doubling, never more than this.
MAX_WAIT = 30.0

BY_PATH_DIR = "/dev/disk/by-path"


def verdict_path(state_dir: str, host: str) -> str:
    """The file of ``host``'s last verdict under ``state_dir`` (name hashed: host names are oned data)."""
    digest = hashlib.sha256(host.encode("utf-8")).hexdigest()[:24]
    return os.path.join(state_dir, f"iscsi-verdict-{digest}.json")


def stored_verdict(state_dir: str, host: str) -> Optional[Verdict]:
    """``host``'s last verdict as stored by a gate, however old; None if there is none readable.

    Read only: no lock, no directory made (``one-hooks status`` reads it).
    """
    try:
        with open(verdict_path(state_dir, host), encoding="utf-8") as fh:
            verdict = Verdict.from_dict(json.load(fh))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return verdict if verdict.host == host else None


class Gate:
    """The iSCSI gate for the hosts of one run.

    ``iscsiadm`` is ``[iscsi] iscsiadm`` as argv (``multipath`` runs with the
    same prefix, e.g. ``sudo -n``); ``state_dir`` holds the shared verdicts and
    their lock files. ``clock``/``sleep`` drive the waits and ``wall`` dates
    the verdicts: tests pass fakes. ``by_path_dir`` is where the node keeps
    its by-path links (tests point it at a directory of real symlinks).
    """

    def __init__(self, node: Node, section: IscsiSection, iscsiadm: List[str], state_dir: str,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 wall: Callable[[], float] = time.time, *, by_path_dir: str = BY_PATH_DIR) -> None:
        self.node = node
        self.section = section
        self.iscsiadm = list(iscsiadm)
        self.state_dir = state_dir
        self.clock = clock
        self.sleep = sleep
        self.wall = wall
        self.by_path_dir = by_path_dir

    # --- the cache ------------------------------------------------------------

    def cache_path(self, host: str) -> str:
        """The verdict file for ``host`` (name hashed: host names are oned data)."""
        return verdict_path(self.state_dir, host)

    def _cached(self, host: str, asked_at: float) -> Optional[Verdict]:
        """A verdict this look may reuse: HEALTHY within ``cache_ttl``, or any
        verdict completed after ``asked_at`` (another process answered the very
        question this one was waiting to ask)."""
        verdict = stored_verdict(self.state_dir, host)
        if verdict is None:
            return None
        age = self.wall() - verdict.checked_at
        if verdict.checked_at > asked_at:
            note = "verdict shared from a check another process finished while this one waited"
        elif verdict.status is Status.HEALTHY and 0 <= age <= self.section.cache_ttl:
            note = f"verdict shared from a check {age:.0f} s ago (cache_ttl {self.section.cache_ttl:g} s)"
        else:
            return None
        return Verdict(host, verdict.status, verdict.problems, verdict.notes + (note,),
                       verdict.targets, verdict.checked_at)

    def _store(self, verdict: Verdict) -> None:
        data = json.dumps(verdict.to_dict(), sort_keys=True).encode("utf-8")
        try:
            fsio.atomic_write(self.cache_path(verdict.host), data, fsio.FileMeta(0o640, os.getuid(), os.getgid()))
        except OSError:
            pass  # a cache that cannot be written costs ssh sessions, not correctness

    # --- looking --------------------------------------------------------------

    def check_once(self, host: str) -> Verdict:
        """One look at ``host``'s iSCSI state, or a verdict shared by another process.

        Shared: a HEALTHY verdict younger than ``cache_ttl``, or any verdict
        another process completed while this one waited for the host's lock.
        """
        if not self.section.check:
            return Verdict(host, Status.HEALTHY, (), ("iSCSI gate is off ([iscsi] check = no)",),
                           checked_at=self.wall())
        if self.section.cache_ttl <= 0:
            return self._ask(host)
        asked_at = self.wall()
        lock = self._lock(host)
        if lock is None:
            verdict = self._ask(host)
            return Verdict(host, verdict.status, verdict.problems,
                           verdict.notes + (f"verdict not shared: state_dir {self.state_dir} is not writable",),
                           verdict.targets, verdict.checked_at)
        try:
            cached = self._cached(host, asked_at)
            if cached is not None:
                return cached
            verdict = self._ask(host)
            self._store(verdict)
            return verdict
        finally:
            os.close(lock)  # closing the descriptor releases the flock

    def _lock(self, host: str) -> Optional[int]:
        """Hold the per-host lock (waits for a process that is asking the node)."""
        path = self.cache_path(host)[:-len(".json")] + ".lock"
        try:
            fsio.make_dirs(self.state_dir, 0o750)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
        except OSError:
            return None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # the holder's node commands all have timeouts
                return fd
            except OSError as exc:
                if exc.errno != errno.EINTR:
                    os.close(fd)
                    return None

    def _ask(self, host: str) -> Verdict:
        """Ask the node; map every node trouble to an UNKNOWN verdict with its reason.

        ``checked_at`` is when the answer was complete.
        """
        try:
            return self._look(host)
        except NodePermissionDenied as exc:
            return unknown(host, f"permission denied: {exc}", self.wall())
        except NodeError as exc:
            return unknown(host, f"cannot tell: {exc}", self.wall())
        except UsageError as exc:
            return unknown(host, f"cannot ask: {exc}", self.wall())

    def _iscsiadm(self, host: str, args: List[str], parse: Callable[[str], List[Any]]) -> List[Any]:
        """``iscsiadm ARGS`` on the node, parsed; exit 21 ("no objects") is an empty list."""
        result = self.node.run(host, self.iscsiadm + args, ok_codes=ANY_CODE)
        if no_objects(result.returncode, result.stderr):
            return []
        if result.returncode != 0:
            raise NodeError(f"iscsiadm {' '.join(args)} exited {result.returncode}: "
                            f"{first_line(result.stderr) or 'no output'}", host)
        return parse(result.stdout)

    def _look(self, host: str) -> Verdict:
        section = self.section
        notes = []
        sessions = self._iscsiadm(host, ["-m", "session", "-P", "3"], parse_session_detail)
        records = None
        if section.require_node_records:
            records = self._iscsiadm(host, ["-m", "node"], parse_node_records)
        dangling = None
        if section.check_by_path:
            # find -xtype l lists only links whose target is gone; filtered here, not
            # with -name '*-iscsi-*', because ssh hands the words to the node's shell.
            result = self.node.run(host, ["find", self.by_path_dir, "-xtype", "l"], ok_codes=(0, 1))
            if result.returncode == 1 and "No such file or directory" not in result.stderr:
                raise NodeError(f"find {self.by_path_dir}: {first_line(result.stderr)}", host)
            dangling = parse_by_path(result.stdout if result.returncode == 0 else "")
        paths = None
        if section.check_multipath != "no":
            argv = self.iscsiadm[:-1] + ["multipath", "-ll"]
            result = self.node.run(host, argv, ok_codes=ANY_CODE)
            if result.returncode == 0:
                paths = parse_multipath(result.stdout)
            elif section.check_multipath == "yes":
                raise NodeError(f"multipath -ll exited {result.returncode}: "
                                f"{first_line(result.stderr) or 'no output'}", host)
            else:
                notes.append(f"multipath not checked (not in use here: {first_line(result.stderr)[:120]})")
        verdict = evaluate(sessions, records, section.required_targets, section.require_node_records,
                           dangling, paths, host=host)
        return Verdict(host, verdict.status, verdict.problems, verdict.notes + tuple(notes),
                       verdict.targets, self.wall())

    def wait_healthy(self, host: str) -> Verdict:
        """Look until HEALTHY or ``[iscsi] deadline``; return the last verdict.

        Waits start at ``retry_interval`` and double up to 30 s, the last one
        cut to end at the deadline. A permission error or a refused host name
        is not waited on: neither fixes itself.
        """
        start = self.clock()
        wait = self.section.retry_interval
        looks = 0
        while True:
            verdict = self.check_once(host)
            looks += 1
            if verdict.healthy or _will_not_change(verdict):
                return verdict
            remaining = self.section.deadline - (self.clock() - start)
            if remaining <= 0:
                note = (f"still {verdict.status.value} after {self.clock() - start:.0f} s "
                        f"and {looks} look(s) ([iscsi] deadline {self.section.deadline:g} s)")
                return Verdict(host, verdict.status, verdict.problems, verdict.notes + (note,),
                               verdict.targets, verdict.checked_at)
            self.sleep(min(wait, remaining))
            wait = min(wait * 2, MAX_WAIT)


def _will_not_change(verdict: Verdict) -> bool:
    """Refused by sudo, or a host name we refuse to pass to ssh: waiting cannot help."""
    return verdict.status is Status.UNKNOWN and any(
        p.startswith(("permission denied", "cannot ask")) for p in verdict.problems)


def describe(verdict: Verdict) -> Sequence[str]:
    """Human lines for a verdict: the status, each target, each problem and note."""
    lines = [f"host {verdict.host}: iSCSI {verdict.status.value}"]
    for check in verdict.targets:
        if check.ok:
            lines.append(f"  ok      {check.target} at {check.portal}: {check.detail}")
    lines += [f"  problem {p}" for p in verdict.problems]
    lines += [f"  note    {n}" for n in verdict.notes]
    return lines
