"""What the last recovery of each host did, kept for ``one-hooks status``: one small JSON file per host.

``<state_dir>/reports/host-<ID>.json`` holds one *episode*: when it began and
was last added to, who took part (``host-reconnect``, its settle watcher, the
VM hooks, ``recover``), the iSCSI gate's verdict, and each VM's last outcome
with its reason. host-reconnect and ``one-hooks recover`` begin a new episode
(keeping what others recorded while they ran); the watcher and the VM hooks
add to the current one (the last word on a VM wins, except that "skipped" or
"already handled" never hides another outcome) unless it is older than the
episode window, as the attempt records of
:mod:`~one_hooks.recovery.ledger` are. A run that tried nothing on the host
(no gate asked, every VM skipped or handled elsewhere) leaves the record as
it was.

Written by the entry points after a run (never from inside the engine),
through :mod:`one_hooks.fsio` (atomic), under a lock file (VM hooks of one
host run in parallel). Bounded: at most :data:`MAX_VMS` VMs are listed, the
problems first (what the operator must see), then the rest; ``counts``
covers every VM of the episode. Outcomes are stored by their
:class:`~one_hooks.recovery.report.Outcome` member name.
"""
from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .. import fsio
from ..audit import Reporter
from ..config import RecoverySection
from .ledger import episode_seconds
from .report import PROBLEMS, Outcome, Report, VmResult

REPORTS_DIR = "reports"
#: VMs listed per host record (a record stays under ~100 KB); counts cover the rest.
MAX_VMS = 500
#: Reasons and gate problems are cut to this many characters.
MAX_TEXT = 300
#: Gate problems kept per record.
MAX_GATE_PROBLEMS = 5

#: Outcomes that leave a VM listed first when a record must drop some.
_KEEP_FIRST = frozenset(PROBLEMS | {Outcome.SKIPPED})
#: Outcomes that say another process has the VM, or that nothing was tried on it.
_WEAK = frozenset({Outcome.SKIPPED, Outcome.HANDLED})


@dataclass(frozen=True)
class VmEntry:
    """One VM's last outcome in the episode (wall time ``at``)."""

    vm_id: int
    name: str
    outcome: str  # an Outcome member name; kept as text if a newer version wrote one this one lacks
    reason: str
    attempts: int = 0
    at: float = 0.0

    @property
    def known(self) -> Optional[Outcome]:
        """The outcome as this version knows it, or None."""
        return Outcome.__members__.get(self.outcome)

    @property
    def problem(self) -> bool:
        """An outcome that needs the operator's attention while the VM is not RUNNING."""
        return self.known in PROBLEMS

    def label(self) -> str:
        """The outcome as the tables word it ("gave up", "running", ...)."""
        return outcome_label(self.outcome)


def outcome_label(name: str) -> str:
    """An Outcome member name as the tables word it (``GAVE_UP`` -> "gave up")."""
    known = Outcome.__members__.get(name)
    return known.value if known is not None else name.lower().replace("_", " ")


@dataclass(frozen=True)
class HostRecord:
    """The last recovery episode of one host."""

    host_id: int
    host: str
    started: float
    updated: float
    by: Tuple[str, ...] = ()
    gate: str = ""  # HEALTHY, BROKEN, UNKNOWN, off; "" when no run of the episode asked it
    gate_problems: Tuple[str, ...] = ()
    vms: Tuple[VmEntry, ...] = ()
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def gate_failed(self) -> bool:
        """The episode's last gate verdict forbade resumes on the host."""
        return self.gate in ("BROKEN", "UNKNOWN")

    def to_dict(self) -> Dict[str, Any]:
        """The file's content."""
        return {"version": 1, "host_id": self.host_id, "host": self.host, "started": self.started,
                "updated": self.updated, "by": list(self.by), "gate": self.gate,
                "gate_problems": list(self.gate_problems), "counts": dict(self.counts),
                "vms": [{"id": v.vm_id, "name": v.name, "outcome": v.outcome, "reason": v.reason,
                         "attempts": v.attempts, "at": v.at} for v in self.vms]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "HostRecord":
        """The inverse of :meth:`to_dict`; KeyError/ValueError/TypeError on a damaged file."""
        return cls(int(data["host_id"]), str(data["host"]), float(data["started"]), float(data["updated"]),
                   tuple(str(b) for b in data.get("by", ())), str(data.get("gate", "")),
                   tuple(str(p) for p in data.get("gate_problems", ())),
                   tuple(VmEntry(int(v["id"]), str(v["name"]), str(v["outcome"]), str(v["reason"]),
                                 int(v.get("attempts", 0)), float(v.get("at", 0.0))) for v in data["vms"]),
                   {str(k): int(n) for k, n in dict(data.get("counts", {})).items()})


def _gate_problem(text: str) -> str:
    """A gate problem as the engine words it for one host, without its "iSCSI BROKEN: " head."""
    return text.split(": ", 1)[1] if text.startswith("iSCSI ") and ": " in text else text


def record_path(state_dir: str, host_id: int) -> str:
    """Where the record of ``host_id`` lives."""
    return os.path.join(state_dir, REPORTS_DIR, f"host-{int(host_id)}.json")


def read(state_dir: str, host_id: int) -> Optional[HostRecord]:
    """The host's record, or None (none yet, or unreadable: a damaged record is no record)."""
    try:
        return HostRecord.from_dict(json.loads(fsio.read_bytes(record_path(state_dir, host_id))))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_all(state_dir: str) -> Dict[int, HostRecord]:
    """Every readable record under ``state_dir``, by host ID (read only: nothing is created)."""
    try:
        names = os.listdir(os.path.join(state_dir, REPORTS_DIR))
    except OSError:
        return {}
    found: Dict[int, HostRecord] = {}
    for name in names:
        if name.startswith("host-") and name.endswith(".json") and name[5:-5].isdigit():
            record = read(state_dir, int(name[5:-5]))
            if record is not None:
                found[record.host_id] = record
    return found


# --- building a record (pure) ------------------------------------------------------


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 3] + "..."


def entries(results: Iterable[VmResult], at: float) -> List[VmEntry]:
    """A run's results as record entries (dry-run plans are no outcome: left out)."""
    return [VmEntry(r.vm_id, r.name, r.outcome.name, _cut(r.reason), r.attempts, at)
            for r in results if r.outcome != Outcome.PLANNED]


def combine(previous: Optional[HostRecord], host_id: int, host: str, by: str, new: Sequence[VmEntry],
            gate: str, gate_problems: Sequence[str], now: float, begun: Optional[float],
            episode: float) -> HostRecord:
    """The record after a run: ``previous`` with this run's outcomes added, or a new episode.

    ``begun`` is when a run that begins a new episode (host-reconnect,
    ``recover``) started: what others recorded since then (VM hooks running
    meanwhile) stays, anything older goes. None: the run adds to the current
    episode, unless that is over (older than ``episode`` seconds).

    The last word on a VM wins, but "skipped" or "already handled" never
    replaces an outcome of the episode: another process acted on that VM, and
    its word says more.
    """
    current = previous
    if current is None or current.host_id != host_id or (begun is None and now - current.updated > episode):
        current = HostRecord(host_id, host, now, now)
    elif begun is not None:
        since = tuple(v for v in current.vms if v.at >= begun)
        current = HostRecord(host_id, host, begun, now, current.by if since else (), "", (), since,
                             _count(since))
    vms: Dict[int, VmEntry] = {v.vm_id: v for v in current.vms}
    counts = dict(current.counts)
    for entry in new:
        old = vms.get(entry.vm_id)
        if old is not None and entry.known in _WEAK and old.known not in _WEAK:
            continue
        if old is not None:
            counts[old.outcome] = counts.get(old.outcome, 0) - 1
        counts[entry.outcome] = counts.get(entry.outcome, 0) + 1
        vms[entry.vm_id] = entry
    # problems and skips first, the newest first within each; the list stops at MAX_VMS
    ordered = sorted(vms.values(), key=lambda v: (v.known not in _KEEP_FIRST, -v.at, v.vm_id))[:MAX_VMS]
    return HostRecord(
        host_id, host or current.host, current.started, now,
        current.by + ((by,) if by not in current.by else ()),
        gate or current.gate,
        tuple(_cut(p) for p in gate_problems[:MAX_GATE_PROBLEMS]) if gate else current.gate_problems,
        tuple(sorted(ordered, key=lambda v: v.vm_id)),
        {k: n for k, n in sorted(counts.items()) if n > 0})


def _count(vms: Iterable[VmEntry]) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for v in vms:
        counts[v.outcome] = counts.get(v.outcome, 0) + 1
    return counts


# --- writing (the entry points) ------------------------------------------------------


def save(state_dir: str, host_id: int, host: str, report: Report, by: str, now: float,
         begun: Optional[float], episode: float) -> Optional[str]:
    """Record what ``report`` did on ``host``; None when written, else why not (never raises OSError).

    A record that cannot be written costs ``one-hooks status`` its view of
    this run, never the run itself: callers log the reason and go on.
    """
    results = [r for r in report.results.values() if r.host == host and r.outcome != Outcome.PLANNED]
    gate = report.gates.get(host, "")
    if not gate and all(r.outcome in (Outcome.SKIPPED, Outcome.HANDLED) for r in results):
        # Nothing was tried on this host (e.g. it was not MONITORED, or another process
        # had its VMs): its last recovery stays the one on record.
        return None
    gate_problems = [_gate_problem(p[len(host) + 2:]) for p in report.problems if p.startswith(f"{host}: ")]
    path = record_path(state_dir, host_id)
    try:
        fsio.make_dirs(os.path.dirname(path), 0o750)
        lock = os.open(path[:-len(".json")] + ".lock", os.O_RDWR | os.O_CREAT, 0o640)
    except OSError as exc:
        return f"cannot write {path}: {exc.strerror}"
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held for a read and a write: milliseconds
        record = combine(read(state_dir, host_id), host_id, host, by, entries(results, now), gate,
                         gate_problems, now, begun, episode)
        data = (json.dumps(record.to_dict(), sort_keys=True) + "\n").encode("utf-8")
        fsio.atomic_write(path, data, fsio.FileMeta(0o640, os.getuid(), os.getgid()))
    except OSError as exc:
        return f"cannot write {path}: {exc.strerror}"
    finally:
        os.close(lock)  # closing releases the flock
    return None


def keep(section: RecoverySection, host_id: int, host_name: str, report: Report, by: str, now: float,
         out: Reporter, begun: Optional[float] = None) -> None:
    """:func:`save` for an entry point: the episode window from ``[recovery]``; a failure is said once.

    host-reconnect and ``recover`` begin a new episode (``begun``: when their
    run started); the watcher and the VM hooks add to the current one.
    """
    why = save(section.state_dir, host_id, host_name, report, by, now, begun, episode_seconds(section))
    if why:
        out.warning(f"{by}: host {host_name}: this run is not on record for one-hooks status: {why}")
