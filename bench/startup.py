"""Benchmark 2: what one vm-unknown hook process costs when it finds nothing to do.

The hook is the installed ``vm-unknown`` shim, fed the real payload onehem
sent in recording run2 (VM 0 on host 0, UNKNOWN), in the two situations
that make up nearly all of an outage's VM events:

* **host down**: host 0 is in ERROR; the hook asks oned once
  (``one.host.info``) and leaves the VM to host-reconnect;
* **host watched**: host-reconnect's settle watcher claims host 0; the hook
  leaves the VM to it without asking oned anything.

Both are settled by the hook's first look (``one_hooks.hooks.triage``). The full
hook (``python -m one_hooks hook vm-unknown``), which the first look hands
anything else to, is timed on the host-down case as a reference. Compared,
median of N runs each and interleaved so that machine noise hits all alike,
with ``python3 -c pass`` and ``python3 -c "import pyone"`` (what every hook
built on the official binding pays before doing anything).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, List

from cloud import REPO, BenchCloud, production_python
from measure import Run, median, spawn_wait

from one_hooks.hooks.entry import stop_watchers
from one_hooks.recovery import claims
from one_hooks.sim.server import Latency

PAYLOAD = os.path.join(REPO, "tests", "data", "fuzz", "vm-unknown-prev-running.b64")


@dataclass
class StartupResult:
    """Medians over ``runs`` runs."""

    runs: int
    hook_cpu_s: float          # first look, host down (one oned call)
    hook_wall_s: float
    watched_cpu_s: float       # first look, host watched (no oned call)
    watched_wall_s: float
    full_cpu_s: float          # the full hook, host down
    full_wall_s: float
    pass_cpu_s: float
    pass_wall_s: float
    pyone_cpu_s: float
    pyone_wall_s: float
    hook_codes: List[int]
    host_info_calls: int
    actions_sent: int


def run_startup(runs: int, latency: Latency) -> StartupResult:
    """Time the no-op hook (both first-look cases, and the full hook) against the baselines."""
    cloud = BenchCloud(latency, boot_seconds=0.0)
    try:
        host = cloud.sim.add_host("dummy-host-1")
        vm = cloud.sim.add_vm("vm-outage-test", host)
        assert (host, vm) == (0, 0), "the recorded payload names host 0 and VM 0"
        cloud.sim.settle(60)
        stop_watchers(cloud.config)  # the host's first MONITORED started one: not this case
        cloud.sim.host_error(host)
        cloud.sim.settle(60)
        shim = os.path.join(cloud.remotes, "hooks", "one-hooks", "vm-unknown")
        full = [production_python(), "-m", "one_hooks", "hook", "vm-unknown"]
        with open(PAYLOAD, "rb") as fh:
            payload = fh.read()
        spawn_wait(full, cloud.env, payload)  # leaves the settings snapshot, as any full run does
        actions_before = len(cloud.sim.action_log)
        calls_before = cloud.sim.calls["one.host.info"]
        samples: Dict[str, List[Run]] = {k: [] for k in ("down", "watched", "full", "pass", "pyone")}
        watcher = subprocess.Popen([production_python(), "-c", "import one_hooks, time; time.sleep(3600)"],
                                   env=cloud.env)
        claim = claims.claim_path(cloud.state_dir, host)
        try:
            for _ in range(runs):
                samples["down"].append(spawn_wait([shim], cloud.env, payload))
                samples["full"].append(spawn_wait(full, cloud.env, payload))
                with open(claim, "wb") as fh:
                    fh.write(claims.encode(watcher.pid, time.time() + 600))
                samples["watched"].append(spawn_wait([shim], cloud.env, payload))
                os.unlink(claim)
                samples["pass"].append(spawn_wait([production_python(), "-c", "pass"], cloud.env))
                samples["pyone"].append(spawn_wait([production_python(), "-c", "import pyone"], cloud.env))
        finally:
            watcher.kill()
            watcher.wait()

        def cpu(kind: str) -> float:
            return median([r.cpu_s for r in samples[kind]])

        def wall(kind: str) -> float:
            return median([r.wall_s for r in samples[kind]])

        return StartupResult(
            runs=runs, hook_cpu_s=cpu("down"), hook_wall_s=wall("down"),
            watched_cpu_s=cpu("watched"), watched_wall_s=wall("watched"),
            full_cpu_s=cpu("full"), full_wall_s=wall("full"),
            pass_cpu_s=cpu("pass"), pass_wall_s=wall("pass"),
            pyone_cpu_s=cpu("pyone"), pyone_wall_s=wall("pyone"),
            hook_codes=sorted({r.code for k in ("down", "watched", "full") for r in samples[k]}),
            host_info_calls=cloud.sim.calls["one.host.info"] - calls_before,
            actions_sent=len(cloud.sim.action_log) - actions_before)
    finally:
        cloud.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run bench/run.py")
