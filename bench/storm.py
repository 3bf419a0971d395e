"""Benchmark 1: the recovery storm, its two baselines, and the simulator's lower bound.

Storm: ``hosts`` x ``vms_per_host`` RUNNING VMs; every host goes ERROR (the
VMs go UNKNOWN and onehem fires a vm-unknown hook for each), then every host
comes back MONITORED; on half of them the VM report follows and says the VMs
are gone (UNKNOWN -> POWEROFF with last action monitor, firing vm-poweroff
hooks), on the other half the VMs stay UNKNOWN (stock dummy monitoring,
recordings run1/run2). The real hooks (shims installed by
``one-hooks-install``) do the rest, at most 10 at once, as onehem runs them.
Measured from the first host's return until every VM is RUNNING.

The simulated oned keeps a real oned's timing (``one_hooks.sim.lcm.REAL_TIMING``,
measured on the real 6.10.5 and 7.4.0 rigs): resumes are applied by one LCM
queue (0.3 s + 20 ms per queued event), hosts come back spread over 6 s, each
host's VM report 0.2-1.8 s after it.

Baselines, each against a fresh simulated oned with the same latencies and
the same outage (no hooks registered), started once every host is back and
reported (so they do not wait for the hosts' spread, one-hooks does):
(a) the old procedure: one process per VM, one ``resume`` through the official
    binding (``pyone``), one after another. 2,000 such processes would take
    about 8 minutes, so a sample is timed and extrapolated per VM (said so).
(b) OpenNebula's ``autostart/host`` approach: per host, ``host.info`` then
    ``vm.info`` + ``resume`` per VM, serially within the host, hosts handled as
    onehem would run their hooks (10 at once); in-process, over XML-RPC.
Lower bound, the fastest any recovery could be on this oned (the longest of):
every VM needs one ``resume`` and the simulator serialises the ``serial`` part
of every call under its core lock, so the last resume cannot be accepted
before ``N x serial + parallel``, then applied, booted and answered; oned's
LCM runs, one after another on its one thread, two items per VM (the
restart, the deploy's answer) *and* one per VM a host's report says is gone
(the monitor's poweroff: oned's own work, whatever a recovery does; a real
oned queues the monitor's events on the same thread, ``one_hooks.sim.lcm``);
the last restart is applied, then that VM boots and its answer
is applied; nothing starts before its host is back.
"""
from __future__ import annotations

import resource
import subprocess
import threading
import time
import xmlrpc.client
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set

from cloud import BenchCloud, production_python

from one_hooks import config as config_mod
from one_hooks.sim.lcm import INSTANT, OnedTiming
from one_hooks.sim.server import Latency

#: onehem runs at most this many hooks at once (DESIGN.md section 2).
ONEHEM_PARALLEL = 10


def children_cpu() -> float:
    """CPU seconds (user + system) of every waited-for descendant so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class StormResult:
    """What one storm measured."""

    hosts: int
    vms: int
    wall_s: float
    hook_runs: int
    hook_cpu_s: float
    outage_hook_runs: int
    outage_hook_cpu_s: float
    calls: Dict[str, int]
    calls_recovery: int
    node_sessions_max: int
    node_sessions_mean: float
    resumed_twice: List[int]
    not_running: int
    settle_seconds: float
    last_return_s: float = 0.0
    reported_vms: int = 0  # VMs whose host's report said gone: one monitor item each on oned's LCM
    lcm_items: int = 0  # items oned's LCM queued from power-back until every VM was RUNNING

    @property
    def cpu_per_event(self) -> float:
        """Hook CPU seconds per hook execution (both phases)."""
        runs = self.hook_runs + self.outage_hook_runs
        return (self.hook_cpu_s + self.outage_hook_cpu_s) / runs if runs else 0.0


@dataclass
class BaselineResult:
    """A baseline's wall time (measured or extrapolated) and how it was obtained."""

    name: str
    vms: int
    wall_s: float
    measured_vms: int
    measured_wall_s: float
    extrapolated: bool
    calls: int = 0
    notes: List[str] = field(default_factory=list)


def lower_bound(vms: int, latency: Latency, boot_seconds: float, timing: OnedTiming = INSTANT,
                last_return: float = 0.0, reported_vms: int = 0) -> float:
    """The fastest the simulator allows any recovery of ``vms`` VMs (module docstring).

    ``reported_vms``: VMs whose host's report says they are gone; each is one
    monitor item on oned's LCM queue, in the same FIFO as the resumes.
    """
    applied = timing.lcm_base + timing.lcm_service  # an accepted action, applied by the LCM
    answered = boot_seconds + timing.lcm_service  # the deploy, then its answer applied
    last_accepted = vms * latency.serial + latency.parallel + applied + answered
    last_restart = timing.lcm_base + vms * timing.lcm_service + answered
    whole_queue = timing.lcm_base + (2 * vms + reported_vms) * timing.lcm_service
    last_host = last_return + applied + answered
    return max(last_accepted, last_restart, whole_queue, last_host)


def _outage(cloud: BenchCloud, layout: Dict[int, List[int]]) -> None:
    for host_id in layout:
        cloud.sim.host_error(host_id)


def _gone_hosts(layout: Dict[int, List[int]]) -> Dict[int, Set[int]]:
    """Every other host reports its VMs gone (an empty list of running VMs)."""
    return {host_id: set() for index, host_id in enumerate(layout) if index % 2 == 1}


def reported_vms(layout: Dict[int, List[int]]) -> int:
    """VMs whose host's report says they are gone: oned's monitor puts one LCM item each."""
    return sum(len(layout[host_id]) for host_id in _gone_hosts(layout))


def _come_back(cloud: BenchCloud, layout: Dict[int, List[int]]) -> float:
    """Hosts return; on every other host the VM report follows: the VMs are gone.

    With the simulator's host spread, hosts come back over seconds and each
    report follows its host (``SimOned.hosts_return``); the last return, in
    seconds from now.
    """
    gone = _gone_hosts(layout)
    if cloud.sim.cloud.timing.host_spread > 0:
        return max(cloud.sim.hosts_return(list(layout), reports=gone).values())
    for host_id in layout:
        cloud.sim.host_monitored(host_id)
        if host_id in gone:
            # As in recording run4: the VM state report arrives ~70 ms after the host's.
            cloud.sim.reconcile(host_id, set())
    return 0.0


def run_storm(hosts: int, vms_per_host: int, latency: Latency, boot_seconds: float,
              timeout: float = 1800.0, vm_hooks: bool = True, timing: OnedTiming = INSTANT) -> StormResult:
    """The storm with the real hooks; see the module docstring.

    ``vm_hooks=False`` registers only host-reconnect: what the VM hooks cost.
    """
    cloud = BenchCloud(latency, boot_seconds, install=False, timing=timing)
    try:
        layout = cloud.populate(hosts, vms_per_host)
        cloud.install()
        if not vm_hooks:
            cloud.drop_vm_hooks()
        vm_ids = [v for ids in layout.values() for v in ids]
        cloud.sim.settle(timeout)  # hooks fired by the hosts' first MONITORED
        runs0, cpu0 = cloud.hook_runs(), children_cpu()
        _outage(cloud, layout)
        cloud.sim.settle(timeout)
        runs1, cpu1 = cloud.hook_runs(), children_cpu()
        calls_before = dict(cloud.sim.calls)
        sessions_before = cloud.node_sessions()
        items_before = cloud.sim.cloud.lcm.items
        start = time.monotonic()
        last_return = _come_back(cloud, layout)
        done = cloud.wait_running(vm_ids, timeout)
        wall = (done or time.monotonic()) - start
        lcm_items = cloud.sim.cloud.lcm.items - items_before
        cloud.sim.settle(timeout)
        runs2, cpu2 = cloud.hook_runs(), children_cpu() + cloud.watchers_cpu()
        calls = {m: n - calls_before.get(m, 0) for m, n in cloud.sim.calls.items()
                 if n > calls_before.get(m, 0)}  # the recovery's calls, not the install's or outage's
        sessions = cloud.node_sessions() - sessions_before
        per_host = [sessions.get(f"node-{h:03d}", 0) for h in range(hosts)]
        resumes = cloud.resumes()
        return StormResult(
            hosts=hosts, vms=len(vm_ids), wall_s=wall,
            hook_runs=runs2 - runs1, hook_cpu_s=cpu2 - cpu1,
            outage_hook_runs=runs1 - runs0, outage_hook_cpu_s=cpu1 - cpu0,
            calls=calls, calls_recovery=sum(calls.values()),
            node_sessions_max=max(per_host) if per_host else 0,
            node_sessions_mean=sum(per_host) / len(per_host) if per_host else 0.0,
            resumed_twice=sorted(v for v, n in resumes.items() if n > 1),
            not_running=0 if done else sum(1 for v in vm_ids if not cloud.all_running([v])),
            settle_seconds=config_mod.load(cloud.config, environ={}).recovery.settle_seconds,
            last_return_s=last_return, reported_vms=reported_vms(layout), lcm_items=lcm_items)
    finally:
        cloud.close()


def _plain_cloud(hosts: int, vms_per_host: int, latency: Latency, boot_seconds: float,
                 timing: OnedTiming = INSTANT):
    """A fresh sim, no hooks, after the same outage (VMs UNKNOWN or POWEROFF), every host back."""
    cloud = BenchCloud(latency, boot_seconds, install=False, timing=timing)
    layout = cloud.populate(hosts, vms_per_host)
    _outage(cloud, layout)
    _come_back(cloud, layout)
    cloud.sim.settle(120)
    return cloud, layout


PYONE_RESUME = (
    "import sys, pyone\n"
    "pyone.OneServer(sys.argv[1], session=sys.argv[2]).vm.action('resume', int(sys.argv[3]))\n")


def run_serial_pyone(total_vms: int, sample_vms: int, latency: Latency,
                     boot_seconds: float, timeout: float = 1800.0,
                     timing: OnedTiming = INSTANT) -> BaselineResult:
    """Baseline (a): one pyone process per VM, serially; extrapolated from a sample."""
    sample = min(sample_vms, total_vms)
    per_host = min(40, sample)
    hosts = -(-sample // per_host)  # enough hosts to hold the whole sample
    cloud, layout = _plain_cloud(hosts, per_host, latency, boot_seconds, timing)
    try:
        vm_ids = [v for ids in layout.values() for v in ids][:sample]
        python = production_python()  # made before the clock starts: not part of a VM's cost
        start = time.monotonic()
        for vm_id in vm_ids:
            subprocess.run([python, "-c", PYONE_RESUME, cloud.sim.endpoint,
                            cloud.sim.session, str(vm_id)], check=True, capture_output=True,
                           timeout=120)
        wall = _until_running(cloud, vm_ids, timeout, "baseline (a)") - start
        per_vm = max(wall - boot_seconds, 0.0) / len(vm_ids)
        estimate = per_vm * total_vms + boot_seconds
        return BaselineResult("serial pyone process per VM (old procedure)", total_vms, estimate,
                              len(vm_ids), wall, len(vm_ids) < total_vms,
                              sum(cloud.sim.calls.values()),
                              [f"{per_vm:.3f} s per VM process"])
    finally:
        cloud.close()


def run_autostart(hosts: int, vms_per_host: int, latency: Latency, boot_seconds: float,
                  timeout: float = 1800.0, timing: OnedTiming = INSTANT) -> BaselineResult:
    """Baseline (b): OpenNebula's autostart/host way, per host serial info + resume per VM."""
    cloud, layout = _plain_cloud(hosts, vms_per_host, latency, boot_seconds, timing)
    local = threading.local()

    def proxy() -> xmlrpc.client.ServerProxy:
        if not hasattr(local, "proxy"):
            local.proxy = xmlrpc.client.ServerProxy(cloud.sim.endpoint)
        return local.proxy

    session = cloud.sim.session

    def one_host(host_id: int) -> None:
        server = proxy()
        ok, body, _ = server.one.host.info(session, host_id, False)
        assert ok, body
        for vm_id in layout[host_id]:
            server.one.vm.info(session, vm_id, False)
            ok, body, _ = server.one.vm.action(session, "resume", vm_id)
            assert ok, body

    try:
        vm_ids = [v for ids in layout.values() for v in ids]
        calls_before = sum(cloud.sim.calls.values())
        start = time.monotonic()
        with ThreadPoolExecutor(ONEHEM_PARALLEL) as pool:
            list(pool.map(one_host, list(layout)))
        wall = _until_running(cloud, vm_ids, timeout, "baseline (b)") - start
        return BaselineResult("autostart/host: per host serial info + resume", len(vm_ids), wall,
                              len(vm_ids), wall, False, sum(cloud.sim.calls.values()) - calls_before,
                              [f"hosts handled {ONEHEM_PARALLEL} at once, as onehem runs hooks"])
    finally:
        cloud.close()


def _until_running(cloud: BenchCloud, vm_ids: List[int], timeout: float, what: str) -> float:
    """When every VM was RUNNING; a baseline that never gets there is an error, not a slow result."""
    done = cloud.wait_running(vm_ids, timeout)
    if done is None:
        raise RuntimeError(f"{what}: VMs not RUNNING after {timeout:g} s")
    return done


def ratio(a: float, b: float) -> Optional[float]:
    """a / b, or None when b is 0."""
    return a / b if b else None
