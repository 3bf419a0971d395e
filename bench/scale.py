"""Benchmark 4: how hook cost and storm time grow with the size of the cloud.

For each size N (VMs), a cloud of ``HOSTS`` hosts with N / ``HOSTS`` VMs
each, with the simulator's latencies and its LCM queue's delays divided by
``LATENCY_DIVISOR`` so that 10,000 resumes do not take minutes of pure
waiting (the lower bound is scaled the same way, so ratios stay meaningful):

* storm: every host ERROR then back MONITORED, VMs left UNKNOWN; only the
  host-reconnect hook is registered (the VM hooks would mean 1.5 x N hook
  processes: 15,000 at the largest size, hours of CPU on a small machine);
  wall time until every VM is RUNNING;
* hook cost: CPU of a sample of hook processes that find nothing to do, run
  one at a time once the storm is over: ``vm-unknown`` (its host is still
  watched by host-reconnect's settle watcher, so the first look leaves the VM
  to it without asking oned: the cost of a VM event during the settle window)
  and ``host-reconnect`` (reads its host and its host's VMs).

:func:`run_scale_by_hosts` grows the cloud the other way, adding hosts of
``VMS_PER_HOST`` VMs each.

The growth exponent between the smallest and the largest size is
log(t2 / t1) / log(N2 / N1): 1.0 is linear, 2.0 quadratic; 0 for hook cost
means a flat cost per event.
"""
from __future__ import annotations

import base64
import math
import os
import time
import xmlrpc.client
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from cloud import BenchCloud
from measure import median, spawn_wait
from storm import lower_bound

from one_hooks.sim.lcm import INSTANT, OnedTiming
from one_hooks.sim.server import Latency

#: Fixed, so the number of hook processes stays the same and only the cloud grows.
HOSTS = 10
#: For :func:`run_scale_by_hosts`: the cloud grows by adding hosts of this size.
VMS_PER_HOST = 100
LATENCY_DIVISOR = 10.0
SAMPLE_HOOKS = 5
#: a storm that is not over after this long is reported as "> limit"
STORM_LIMIT_S = 600.0


@dataclass
class ScaleRow:
    """One size."""

    vms: int
    hosts: int
    storm_wall_s: Optional[float]
    bound_s: float
    calls: int
    vm_hook_cpu_s: float
    host_hook_cpu_s: float

    def as_dict(self) -> Dict[str, object]:
        """JSON-friendly."""
        return {"vms": self.vms, "hosts": self.hosts,
                "storm_wall_s": None if self.storm_wall_s is None else round(self.storm_wall_s, 3),
                "lower_bound_s": round(self.bound_s, 3), "xmlrpc_calls": self.calls,
                "vm_hook_cpu_s": round(self.vm_hook_cpu_s, 4),
                "host_hook_cpu_s": round(self.host_hook_cpu_s, 4)}


@dataclass
class ScaleResult:
    """All sizes, and the growth between the first and the last."""

    rows: List[ScaleRow]
    latency_divisor: float
    note: str = field(default=f"{HOSTS} hosts; VM hooks not registered in the storm, one host-reconnect hook per host")

    @staticmethod
    def _exponent(n1: int, t1: Optional[float], n2: int, t2: Optional[float]) -> Optional[float]:
        if not t1 or not t2 or n1 == n2:
            return None
        return math.log(t2 / t1) / math.log(n2 / n1)

    @property
    def storm_exponent(self) -> Optional[float]:
        """Growth of storm time per VM count."""
        a, b = self.rows[0], self.rows[-1]
        return self._exponent(a.vms, a.storm_wall_s, b.vms, b.storm_wall_s)

    @property
    def hook_exponent(self) -> Optional[float]:
        """Growth of the host-reconnect hook's CPU per event."""
        a, b = self.rows[0], self.rows[-1]
        return self._exponent(a.vms, a.host_hook_cpu_s, b.vms, b.host_hook_cpu_s)

    def table(self) -> str:
        """Markdown."""
        lines = ["| VMs | hosts | storm wall | lower bound | wall / bound | XML-RPC calls | "
                 "vm-unknown hook CPU (host watched) | host-reconnect hook CPU |", "|---|---|---|---|---|---|---|---|"]
        for r in self.rows:
            wall = f"{r.storm_wall_s:.2f} s" if r.storm_wall_s is not None else f"> {STORM_LIMIT_S:g} s"
            per = f"{r.storm_wall_s / r.bound_s:.2f}" if r.storm_wall_s else "-"
            lines.append(f"| {r.vms} | {r.hosts} | {wall} | {r.bound_s:.2f} s | {per} | {r.calls} | "
                         f"{r.vm_hook_cpu_s * 1000:.0f} ms | {r.host_hook_cpu_s * 1000:.0f} ms |")
        return "\n".join(lines)


def _unknown_payload(cloud: BenchCloud, vm_id: int) -> bytes:
    """What onehem would send for this VM going UNKNOWN (its XML, states set, base64)."""
    server = xmlrpc.client.ServerProxy(cloud.sim.endpoint)
    ok, body, _ = server.one.vm.info(cloud.sim.session, vm_id, False)
    assert ok, body
    text = body.replace("<LCM_STATE>3</LCM_STATE>", "<LCM_STATE>16</LCM_STATE>", 1)
    return base64.b64encode(text.encode())


def _host_payload(cloud: BenchCloud, host_id: int) -> bytes:
    server = xmlrpc.client.ServerProxy(cloud.sim.endpoint)
    ok, body, _ = server.one.host.info(cloud.sim.session, host_id, False)
    assert ok, body
    return base64.b64encode(body.encode())


def run_size(vms: int, latency: Latency, boot_seconds: float, hosts: int = HOSTS,
             timing: OnedTiming = INSTANT) -> ScaleRow:
    """Storm and hook cost at one size, on ``hosts`` hosts."""
    hosts = min(hosts, vms)
    cloud = BenchCloud(latency, boot_seconds, install=False, timing=timing)
    try:
        layout = cloud.populate(hosts, vms // hosts)
        vm_ids = [v for ids in layout.values() for v in ids]
        cloud.install()
        cloud.drop_vm_hooks()
        for host_id in layout:
            cloud.sim.host_error(host_id)
        cloud.sim.settle(STORM_LIMIT_S)
        calls0 = sum(cloud.sim.calls.values())
        start = time.monotonic()
        for host_id in layout:
            cloud.sim.host_monitored(host_id)
        done = cloud.wait_running(vm_ids, STORM_LIMIT_S)
        wall = done - start if done else None
        cloud.sim.settle(STORM_LIMIT_S * 2)
        calls = sum(cloud.sim.calls.values()) - calls0
        shims = os.path.join(cloud.remotes, "hooks", "one-hooks")
        first_host = next(iter(layout))
        vm_cpu = [spawn_wait([os.path.join(shims, "vm-unknown")], cloud.env,
                             _unknown_payload(cloud, layout[first_host][i % len(layout[first_host])])).cpu_s
                  for i in range(SAMPLE_HOOKS)]
        host_payload = _host_payload(cloud, first_host)
        host_cpu = [spawn_wait([os.path.join(shims, "host-reconnect")], cloud.env, host_payload).cpu_s
                    for _ in range(SAMPLE_HOOKS)]
        return ScaleRow(len(vm_ids), hosts, wall, lower_bound(len(vm_ids), latency, boot_seconds, timing),
                        calls, median(vm_cpu), median(host_cpu))
    finally:
        cloud.close()


def scaled_timing(timing: OnedTiming) -> OnedTiming:
    """oned's LCM delays divided like its call latency (the hosts return together here)."""
    return OnedTiming(lcm_base=timing.lcm_base / LATENCY_DIVISOR, lcm_service=timing.lcm_service / LATENCY_DIVISOR,
                      dm_delay=timing.dm_delay / LATENCY_DIVISOR)


def run_scale(sizes: Sequence[int], latency: Latency, boot_seconds: float,
              timing: OnedTiming = INSTANT) -> ScaleResult:
    """Every size on HOSTS hosts, latency and LCM delays divided by LATENCY_DIVISOR."""
    scaled = Latency(latency.serial / LATENCY_DIVISOR, latency.parallel / LATENCY_DIVISOR)
    return ScaleResult([run_size(n, scaled, boot_seconds, timing=scaled_timing(timing)) for n in sizes],
                       LATENCY_DIVISOR)


def run_scale_by_hosts(host_counts: Sequence[int], latency: Latency, boot_seconds: float,
                       timing: OnedTiming = INSTANT) -> ScaleResult:
    """The other way clouds grow: VMS_PER_HOST VMs on each of more and more hosts.

    More hosts mean more host-reconnect hooks, run 10 at a time by onehem, and
    each of them reads the whole VM pool: this is where growth can turn
    superlinear.
    """
    scaled = Latency(latency.serial / LATENCY_DIVISOR, latency.parallel / LATENCY_DIVISOR)
    rows = [run_size(h * VMS_PER_HOST, scaled, boot_seconds, hosts=h, timing=scaled_timing(timing))
            for h in host_counts]
    return ScaleResult(rows, LATENCY_DIVISOR,
                       f"{VMS_PER_HOST} VMs per host; VM hooks not registered, one host-reconnect hook per host")
