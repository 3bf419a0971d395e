"""Benchmark 5: ``one-hooks status`` on a cloud of 1,000 and 10,000 VMs, against reading the VM pool alone.

The cloud is the simulated oned with a real oned's latencies, 20 hosts
sharing the VMs, one-hooks installed by the real installer, and the picture
``status`` exists for: two hosts still down (their VMs UNKNOWN), the other
18 recovered, each with its record in the state directory as host-reconnect
leaves it. ``status`` must read the pool once and decide in memory, so its
cost is compared with the least any such command pays: a process that loads
the configuration and makes the one ``one.vmpool.infoextended`` call, parsed
(the baseline), measured in the same run, interleaved, median of N each.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Sequence

from cloud import BenchCloud, production_python
from measure import Run, median, spawn_wait

from one_hooks.recovery import records
from one_hooks.recovery.report import Outcome, Report, VmResult
from one_hooks.sim.server import Latency

HOSTS = 20
DOWN_HOSTS = 2

#: The baseline process: the configuration, then one pool read, parsed into VMs.
BASELINE = ("from one_hooks.config import load\n"
            "from one_hooks.oned.client import Oned\n"
            "vms = Oned.from_config(load().oned).vm_pool()\n"
            "assert len(vms) > 0\n")


@dataclass
class StatusRow:
    """Medians for one cloud size."""

    vms: int
    runs: int
    wall_s: float
    cpu_s: float
    baseline_wall_s: float
    baseline_cpu_s: float
    exit_codes: List[int]
    pool_calls_per_run: float

    @property
    def wall_ratio(self) -> float:
        """status wall / baseline wall."""
        return self.wall_s / self.baseline_wall_s if self.baseline_wall_s else 0.0

    @property
    def cpu_ratio(self) -> float:
        """status CPU / baseline CPU."""
        return self.cpu_s / self.baseline_cpu_s if self.baseline_cpu_s else 0.0

    def as_dict(self) -> Dict[str, Any]:
        """JSON-ready, with the ratios."""
        return dict(asdict(self), wall_ratio=round(self.wall_ratio, 2), cpu_ratio=round(self.cpu_ratio, 2))


def _cloud(vms: int, latency: Latency) -> BenchCloud:
    """The cloud after an outage: most hosts recovered (with their records), two still down."""
    cloud = BenchCloud(latency, boot_seconds=0.0, install=False)
    layout = cloud.populate(HOSTS, vms // HOSTS)
    now = time.time()
    for index, (host_id, vm_ids) in enumerate(layout.items()):
        name = f"node-{index:03d}"
        if index < DOWN_HOSTS:
            cloud.sim.host_error(host_id)
            continue
        report = Report()
        report.gates[name] = "HEALTHY"
        for vm_id in vm_ids:
            report.add(VmResult(vm_id, f"vm-{index:03d}-{vm_id}", name, "ACTIVE/UNKNOWN", "ACTIVE/RUNNING",
                                Outcome.RUNNING, "resumed, RUNNING", 1, 2.0))
        why = records.save(cloud.state_dir, host_id, name, report, "host-reconnect", now, now - 60, 3600.0)
        if why:
            raise RuntimeError(why)
    cloud.install()  # after the outage: no hook runs here, status finds them registered
    return cloud


def run_status(sizes: Sequence[int], latency: Latency, runs: int) -> List[StatusRow]:
    """``one-hooks status`` and the baseline, interleaved, ``runs`` times per size."""
    python = production_python()
    rows = []
    for vms in sizes:
        cloud = _cloud(vms, latency)
        try:
            status: List[Run] = []
            baseline: List[Run] = []
            calls0 = cloud.sim.calls.get("one.vmpool.infoextended", 0)
            for _ in range(runs):
                baseline.append(spawn_wait([python, "-c", BASELINE], cloud.env))
                status.append(spawn_wait([python, "-m", "one_hooks", "status"], cloud.env))
            if any(r.code != 0 for r in baseline) or any(r.code not in (0, 1) for r in status):
                raise RuntimeError(f"status bench: a run failed (baseline {[r.code for r in baseline]}, "
                                   f"status {[r.code for r in status]})")
            pool_calls = cloud.sim.calls.get("one.vmpool.infoextended", 0) - calls0
            rows.append(StatusRow(vms, runs, median([r.wall_s for r in status]), median([r.cpu_s for r in status]),
                                  median([r.wall_s for r in baseline]), median([r.cpu_s for r in baseline]),
                                  sorted({r.code for r in status}), (pool_calls - runs) / runs))
        finally:
            cloud.close()
    return rows


def table(rows: Sequence[StatusRow]) -> str:
    """The Markdown table of the rows."""
    lines = ["| VMs | status wall | status CPU | baseline wall (one pool read) | baseline CPU | ratio wall | "
             "ratio CPU | pool reads per status |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.vms:,} | {r.wall_s:.2f} s | {r.cpu_s:.2f} s | {r.baseline_wall_s:.2f} s | "
                     f"{r.baseline_cpu_s:.2f} s | {r.wall_ratio:.2f} | {r.cpu_ratio:.2f} | "
                     f"{r.pool_calls_per_run:g} |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    import sys

    from one_hooks.sim.oned import REAL_LATENCY

    sizes = [int(a) for a in sys.argv[1:]] or [1000, 10000]
    print(table(run_status(sizes, REAL_LATENCY, 3)))
