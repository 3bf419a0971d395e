"""Benchmark 2: what one hook process costs when it finds nothing to do.

The hook is the installed ``vm-unknown`` shim, fed the real payload onehem
sent in recording run2 (VM 0 on host 0, UNKNOWN), while the simulated oned
says that VM is already RUNNING again: the hook reads the host, re-reads the
VM, says "already handled" and exits 0. Compared, median of N runs each and
interleaved so that machine noise hits all three alike, with
``python3 -c pass`` and ``python3 -c "import pyone"`` (what every hook built
on the official binding pays before doing anything).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List

from cloud import REPO, BenchCloud, production_python
from measure import median, spawn_wait

from one_hooks.sim import Latency

PAYLOAD = os.path.join(REPO, "tests", "data", "fuzz", "vm-unknown-prev-running.b64")


@dataclass
class StartupResult:
    """Medians over ``runs`` runs."""

    runs: int
    hook_cpu_s: float
    hook_wall_s: float
    pass_cpu_s: float
    pass_wall_s: float
    pyone_cpu_s: float
    pyone_wall_s: float
    hook_codes: List[int]
    actions_sent: int


def run_startup(runs: int, latency: Latency) -> StartupResult:
    """Time the no-op hook against bare python and ``import pyone``."""
    cloud = BenchCloud(latency, boot_seconds=0.0)
    try:
        host = cloud.sim.add_host("dummy-host-1")
        vm = cloud.sim.add_vm("vm-outage-test", host)
        assert (host, vm) == (0, 0), "the recorded payload names host 0 and VM 0"
        cloud.sim.settle(60)
        actions_before = len(cloud.sim.action_log)
        shim = os.path.join(cloud.remotes, "hooks", "one-hooks", "vm-unknown")
        with open(PAYLOAD, "rb") as fh:
            payload = fh.read()
        samples: Dict[str, List] = {"hook": [], "pass": [], "pyone": []}
        for _ in range(runs):
            samples["hook"].append(spawn_wait([shim], cloud.env, payload))
            samples["pass"].append(spawn_wait([production_python(), "-c", "pass"], cloud.env))
            samples["pyone"].append(spawn_wait([production_python(), "-c", "import pyone"], cloud.env))
        return StartupResult(
            runs=runs,
            hook_cpu_s=median([r.cpu_s for r in samples["hook"]]),
            hook_wall_s=median([r.wall_s for r in samples["hook"]]),
            pass_cpu_s=median([r.cpu_s for r in samples["pass"]]),
            pass_wall_s=median([r.wall_s for r in samples["pass"]]),
            pyone_cpu_s=median([r.cpu_s for r in samples["pyone"]]),
            pyone_wall_s=median([r.wall_s for r in samples["pyone"]]),
            hook_codes=sorted({r.code for r in samples["hook"]}),
            actions_sent=len(cloud.sim.action_log) - actions_before)
    finally:
        cloud.close()
