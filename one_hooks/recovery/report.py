"""What a recovery run did: one result per VM, the exit code, the final table.

The engine (``recovery.engine``) fills a :class:`Report`; the hooks print its summary,
``one-hooks recover`` its table or its JSON.
"""
from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, TextIO

__all__ = ["Outcome", "Report", "VmResult", "PROBLEMS"]


class Outcome(str, enum.Enum):
    """What became of one VM in a run."""

    RUNNING = "running"
    HANDLED = "already handled"
    SKIPPED = "skipped"
    LOCKED = "locked"
    GATE = "gate failed"
    FAILED = "failed"
    TIMEOUT = "not running in time"
    GAVE_UP = "gave up"
    PLANNED = "would resume"
    #: evacuation (issue 12): a VM of a dead host that cannot be restarted elsewhere (local disks,
    #: no room, host not fenced); and a dry run's move
    STAYS = "not moved"
    WOULD_MOVE = "would move"


#: Outcomes that make a run exit 1 (``onehook retry`` may help).
PROBLEMS = frozenset({Outcome.LOCKED, Outcome.GATE, Outcome.FAILED, Outcome.TIMEOUT, Outcome.GAVE_UP,
                      Outcome.STAYS})


@dataclass(frozen=True)
class VmResult:
    """One VM's line of the final table."""

    vm_id: int
    name: str
    host: str
    before: str
    after: str
    outcome: Outcome
    reason: str
    attempts: int = 0
    seconds: float = 0.0
    tier: int = 0


@dataclass
class Report:
    """Everything a run decided and did; the last word on each VM wins."""

    results: Dict[int, VmResult] = field(default_factory=dict)
    problems: List[str] = field(default_factory=list)
    #: host NAME -> the iSCSI gate's verdict in this run (HEALTHY, BROKEN, UNKNOWN; "off" when not checked)
    gates: Dict[str, str] = field(default_factory=dict)

    def add(self, result: VmResult) -> None:
        """Record (or replace) a VM's result."""
        self.results[result.vm_id] = result

    @property
    def exit_code(self) -> int:
        """0 when nothing needs attention, 1 otherwise."""
        bad = self.problems or any(r.outcome in PROBLEMS for r in self.results.values())
        return 1 if bad else 0

    def table(self) -> List[str]:
        """The final table, one line per VM, plus the gate problems."""
        rows = [("VM", "NAME", "HOST", "BEFORE", "AFTER", "OUTCOME", "TRIES", "SECS", "REASON")]
        for r in sorted(self.results.values(), key=lambda r: (r.host, r.vm_id)):
            rows.append((str(r.vm_id), r.name, r.host, r.before, r.after, r.outcome.value,
                         str(r.attempts), f"{r.seconds:.1f}", r.reason))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1] for row in rows]
        return [line.rstrip() for line in lines] + [f"problem: {p}" for p in self.problems]

    def summary(self) -> str:
        """One line counting outcomes."""
        counts: Dict[str, int] = {}
        for r in self.results.values():
            counts[r.outcome.value] = counts.get(r.outcome.value, 0) + 1
        body = ", ".join(f"{n} {name}" for name, n in sorted(counts.items())) or "no VMs"
        return f"{body}; exit {self.exit_code}"

    def write(self, stream: TextIO, as_json: bool) -> None:
        """The final table (or, ``as_json``, the JSON form) on ``stream``: what the commands print last."""
        if as_json:
            json.dump(self.as_dict(), stream, indent=2)
            stream.write("\n")
        else:
            for line in self.table():
                stream.write(line + "\n")

    def as_dict(self) -> Dict[str, Any]:
        """A JSON-ready form (``--json``)."""
        return {
            "exit_code": self.exit_code,
            "problems": list(self.problems),
            "gates": dict(self.gates),
            "vms": [dict(vars(r), outcome=r.outcome.value)
                    for r in sorted(self.results.values(), key=lambda r: r.vm_id)],
        }
