"""SimOned: the simulated oned as tests, the demo and the benchmarks drive it.

One object holds the cloud (state machine), the hook pool and its runner,
and the XML-RPC server. The scenario methods (``host_error``,
``reconcile``...) play the part of oned's monitor; clients act through the
XML-RPC endpoint exactly as they would against a real oned.

    with SimOned(users={"oneadmin": "pw"}, boot_seconds=0) as sim:
        host = sim.add_host("node1")
        vm = sim.add_vm("web", host)
        sim.host_error(host)          # vm -> UNKNOWN, hooks fire
        ... client calls sim.endpoint ...
        sim.settle()
"""
from __future__ import annotations

import functools
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from ..oned.model import History, HookExecution, Host, HostState, LcmState, Vm, VmState
from .api import build_methods
from .cloud import Change, Cloud
from .faults import NO_EXISTS, Refused
from .hookrun import MAX_PARALLEL, HookJob, HookResult, HookRunner
from .hooks import HookRegistry
from .lcm import INSTANT, REAL_TIMING, OnedTiming
from .objects import SimCluster, SimHost, SimVm
from .server import Latency, RpcCore, RpcServer
from .tmpl import Attr

#: The demo's and benchmarks' default: a real oned's cost per call.
REAL_LATENCY = Latency()


@dataclass(frozen=True)
class HookEvent:
    """A state change as delivered to onehem, and which hooks it started."""

    resource: str
    id: int
    state: str
    lcm_state: str
    prev_state: str
    prev_lcm_state: str
    payload: str
    hook_ids: Tuple[int, ...]


def _attrs(values: Optional[Mapping[str, str]]) -> List[Attr]:
    return [(key.upper(), str(value)) for key, value in (values or {}).items()]


class SimOned:
    """A simulated oned (6.10.5 or 7.4.0) serving XML-RPC on 127.0.0.1.

    ``latency``: cost of each call (default: a real oned's; tests pass
    ``NO_LATENCY``). ``timing``: how long oned takes to apply what it accepted
    (its LCM queue, hosts returning; :mod:`one_hooks.sim.lcm`: ``INSTANT`` by
    default, ``REAL_TIMING`` as measured). ``boot_seconds``/``shutdown_seconds``:
    how long the driver's deploy or shutdown takes. ``users``: name -> password
    accepted as sessions. ``remotes_dir``: relative hook COMMANDs run from
    ``<remotes_dir>/hooks``. ``hook_env``: added to the environment of hook
    processes. ``sleep``: the clock used by the latency model.
    ``deploy_needs_host=False`` mimics OpenNebula's dummy driver (deploys
    succeed on a host in ERROR), as in the recordings. ``version``: what
    ``one.system.version`` answers, and whose behaviour: 7.x adds the XML
    elements oned 7 added and ignores a VM's state reports for 30 s after its
    current history record's RSTIME or RETIME. ``late_poweroff``: the share of
    successful deploys that a monitor report taken before them powers off
    again ``late_poweroff_after`` seconds later (seen on 4 of 29 VMs of a
    real 6.10.5 storm; 0 by default). ``seed``: for that and host spreads.
    """

    def __init__(
        self,
        latency: Latency = REAL_LATENCY,
        boot_seconds: float = 1.0,
        users: Optional[Mapping[str, str]] = None,
        remotes_dir: str = "/var/lib/one/remotes",
        hook_env: Optional[Mapping[str, str]] = None,
        port: int = 0,
        sleep: Callable[[float], None] = time.sleep,
        max_parallel_hooks: int = MAX_PARALLEL,
        shutdown_seconds: Optional[float] = None,
        deploy_needs_host: bool = True,
        version: str = "6.10.5",
        timing: OnedTiming = INSTANT,
        late_poweroff: float = 0.0,
        late_poweroff_after: float = 2.0,
        seed: int = 0,
    ) -> None:
        self.users = dict(users or {"oneadmin": "opennebula"})
        self.cloud = Cloud(boot_seconds=boot_seconds, shutdown_seconds=shutdown_seconds,
                           emit=self._emit, deploy_needs_host=deploy_needs_host,
                           v7=not version.startswith(("5.", "6.")), timing=timing,
                           late_poweroff=late_poweroff, late_poweroff_after=late_poweroff_after,
                           seed=seed)
        #: What one.system.version answers; 7.x also changes a few XML elements.
        self.version = version
        self.hooks = HookRegistry(self.cloud.tables, remotes_dir)
        env = dict(os.environ)
        env.update(hook_env or {})
        self.runner = HookRunner(env, self._hook_done, max_parallel_hooks)
        self.rpc = RpcCore(build_methods(self), self.users, latency, sleep)
        self._port = port
        self._server: Optional[RpcServer] = None
        self.events: List[HookEvent] = []
        self._events_lock = threading.Lock()

    # --- lifecycle ------------------------------------------------------------

    def start(self) -> str:
        """Start serving; the endpoint ``http://127.0.0.1:PORT/RPC2``."""
        self._server = RpcServer(self.rpc, self._port)
        return self._server.start()

    def stop(self) -> None:
        """Stop serving and the timeline; wait for running hooks."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        self.cloud.timeline.stop()
        self.runner.stop()

    def __enter__(self) -> "SimOned":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """The XML-RPC endpoint (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("SimOned is not started")
        return self._server.endpoint

    def set_hook_env(self, env: Mapping[str, str]) -> None:
        """Add variables to the environment hooks run with (e.g. ONE_XMLRPC once started)."""
        self.runner.env.update(env)

    @property
    def session(self) -> str:
        """``user:password`` of the first user: what ONE_AUTH would hold."""
        user, password = next(iter(self.users.items()))
        return f"{user}:{password}"

    # --- building the cloud -----------------------------------------------------

    def add_cluster(self, name: str, template: Optional[Mapping[str, str]] = None) -> int:
        """A new cluster; its ID."""
        with self.cloud.lock:
            cluster_id = max(self.cloud.tables.clusters, default=-1) + 1
            self.cloud.tables.clusters[cluster_id] = SimCluster(cluster_id, name, _attrs(template))
            return cluster_id

    def get_cluster(self, cluster_id: int, method: str) -> SimCluster:
        """The cluster, or NO_EXISTS."""
        cluster = self.cloud.tables.clusters.get(cluster_id)
        if cluster is None:
            raise Refused(NO_EXISTS, f"[{method}] Error getting cluster [{cluster_id}].")
        return cluster

    def add_host(self, name: str, cluster_id: int = 0,
                 template: Optional[Mapping[str, str]] = None) -> int:
        """A new MONITORED host; its ID."""
        return self.cloud.add_host(name, cluster_id, _attrs(template))

    def add_vm(self, name: str, host_id: int, user_template: Optional[Mapping[str, str]] = None,
               memory_mb: int = 64) -> int:
        """A new VM RUNNING on ``host_id``; its ID."""
        return self.cloud.add_vm(name, host_id, _attrs(user_template), memory_mb=memory_mb)

    def add_hook(self, template: str) -> int:
        """Register a hook from OpenNebula template text (as ``onehook create``)."""
        with self.cloud.lock:
            return self.hooks.allocate(template)

    # --- the monitor's part -----------------------------------------------------

    def host_error(self, host_id: int) -> None:
        """Host -> ERROR; its RUNNING VMs -> UNKNOWN."""
        self.cloud.host_error(host_id)

    def host_monitored(self, host_id: int) -> None:
        """Host -> MONITORED (PREV_STATE=3 in the payload); VMs untouched."""
        self.cloud.host_monitored(host_id)

    def host_state(self, host_id: int, state: HostState) -> None:
        """Any other host state (DISABLED, OFFLINE...)."""
        self.cloud.host_state(host_id, state)

    def reconcile(self, host_id: int, running: Set[int] = frozenset(),  # type: ignore[assignment]
                  sync: bool = False, wait: bool = True) -> None:
        """VM report from the host: ``running`` VMs run, the others -> POWEROFF (monitor).

        ``sync``: a full sync ("missing" VMs, never ignored); ``wait``: until the LCM applied it.
        """
        self.cloud.reconcile(host_id, set(running), sync=sync, wait=wait)

    def late_report(self, vm_id: int, wait: bool = True) -> None:
        """A monitor report taken before the VM's last deploy arrives now: a RUNNING VM goes POWEROFF."""
        self.cloud.late_report(vm_id, wait=wait)

    def hosts_return(self, host_ids: Sequence[int], reports: Optional[Mapping[int, Set[int]]] = None,
                     sync: bool = False) -> Dict[int, float]:
        """Hosts whose outage ended together come back, spread over ``timing.host_spread`` seconds.

        Each goes MONITORED at its own moment (the first at once); a host in
        ``reports`` sends its VM report (its running VMs) ``timing.reconcile_after``
        seconds later; the others' VMs stay as they are (stock dummy
        monitoring). Returns when each host is due back (seconds from now);
        the returns run on the simulator's timeline.
        """
        timing = self.cloud.timing
        rng = self.cloud.random
        order = list(host_ids)
        offsets = {h: (0.0 if i == 0 else rng.uniform(0.0, timing.host_spread)) for i, h in enumerate(order)}
        for host_id, offset in offsets.items():
            self.cloud.timeline.after(offset, functools.partial(self.host_monitored, host_id))
            if reports is not None and host_id in reports:
                low, high = timing.reconcile_after
                report = functools.partial(self.reconcile, host_id, set(reports[host_id]), sync, False)
                self.cloud.timeline.after(offset + rng.uniform(low, high), report)
        return offsets

    def vm_log(self, vm_id: int) -> List[str]:
        """The VM's log lines that nothing in its XML shows (dropped actions, ignored reports)."""
        with self.cloud.lock:
            return list(self.cloud.vm_log.get(vm_id, []))

    def user_poweroff(self, vm_id: int, hard: bool = False) -> None:
        """A user's ``onevm poweroff`` (history ACTION 19, 20 if hard)."""
        self.cloud.action("poweroff-hard" if hard else "poweroff", vm_id)

    def lock_vm(self, vm_id: int, level: int = 1) -> None:
        """``onevm lock`` (1 USE, the CLI default; 2 MANAGE; 3 ADMIN; 4 ALL)."""
        self.cloud.lock_vm(vm_id, level)

    def unlock_vm(self, vm_id: int) -> None:
        """``onevm unlock``."""
        self.cloud.unlock_vm(vm_id)

    def fail_deploys(self, count: int, vm_id: Optional[int] = None,
                     host_id: Optional[int] = None) -> None:
        """The next ``count`` deploys of that VM, or on that host, fail."""
        self.cloud.fail_deploys(count, vm_id=vm_id, host_id=host_id)

    def inject(self, method: str, kind: str = "error", code: int = 0x2000, count: int = 1,
               message: str = "", hang: float = 60.0) -> None:
        """Fault injection for the next ``count`` calls of ``method`` (``*``: any)."""
        self.rpc.inject(method, kind, code, count, message, hang)

    # --- looking --------------------------------------------------------------

    def vm(self, vm_id: int) -> Vm:
        """A snapshot of the VM, as the project's model."""
        with self.cloud.lock:
            return _vm_model(self.cloud.get_vm(vm_id))

    def host(self, host_id: int) -> Host:
        """A snapshot of the host, as the project's model."""
        with self.cloud.lock:
            host = self.cloud.get_host(host_id)
            return _host_model(host, [vm.id for vm in self.cloud.host_vms(host_id)])

    def hook_executions(self, hook_id: int) -> Tuple[HookExecution, ...]:
        """The hook's execution log (last 20), oldest first."""
        with self.cloud.lock:
            hook = self.hooks.get(hook_id, "one.hook.info")
            return tuple(HookExecution(r.execution_id, r.timestamp, r.code,
                                       r.stdout.decode(errors="replace"),
                                       r.stderr.decode(errors="replace"), r.arguments)
                         for r in hook.log)

    @property
    def action_log(self) -> List[Tuple[float, int, str, str]]:
        """Every accepted ``one.vm.action``: (time, vm_id, action, state before)."""
        return list(self.cloud.action_log)

    @property
    def changes(self) -> List[Change]:
        """Every state change, in order (like the recordings' states.jsonl)."""
        return list(self.cloud.changes)

    @property
    def calls(self) -> Dict[str, int]:
        """XML-RPC calls received, per method."""
        return dict(self.rpc.calls)

    def settle(self, timeout: float = 30.0) -> bool:
        """Wait until no delayed transition and no hook is pending (hooks may act again)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = deadline - time.monotonic()
            if not self.cloud.timeline.wait_idle(left) or not self.runner.wait_idle(left):
                return False
            if self.cloud.timeline.pending() == 0 and self.runner.busy() == 0:
                return True
        return False

    def wait_hooks_idle(self, timeout: float = 30.0) -> bool:
        """Alias of :meth:`settle`: hooks and what they started are done."""
        return self.settle(timeout)

    # --- hook plumbing --------------------------------------------------------

    def _emit(self, resource: str, obj: object, prev: tuple, payload: str) -> None:
        # Called by the cloud under its lock, for every state change.
        hooks = self.hooks.matching(resource, obj)
        if resource == "VM":
            vm: SimVm = obj  # type: ignore[assignment]
            event = HookEvent("VM", vm.id, vm.state.name, vm.lcm_state.name,
                              VmState(prev[0]).name, LcmState(prev[1]).name, payload,
                              tuple(h.id for h in hooks))
        else:
            host: SimHost = obj  # type: ignore[assignment]
            event = HookEvent("HOST", host.id, host.state.name, "-", HostState(prev[0]).name, "-",
                              payload, tuple(h.id for h in hooks))
        with self._events_lock:
            self.events.append(event)
        for hook in hooks:
            self.runner.submit(self.hooks.job(hook, payload))

    def _hook_done(self, job: HookJob, result: HookResult) -> None:
        with self.cloud.lock:
            self.hooks.record(job, result.stdout, result.stderr, result.code, result.timestamp)


def _singles(attrs: Sequence[Attr]) -> Dict[str, str]:
    return {key: value for key, value in attrs if isinstance(value, str)}


def _vm_model(vm: SimVm) -> Vm:
    last = vm.last
    history = (History(last.seq, last.host_id, last.hostname, last.action, last.stime, last.etime)
               if last else None)
    return Vm(vm.id, vm.name, vm.state, vm.lcm_state, vm.state, vm.lcm_state, owner=vm.uname,
              history=history, user_template=_singles(vm.user_template), lock=vm.lock)


def _host_model(host: SimHost, vm_ids: Sequence[int]) -> Host:
    return Host(host.id, host.name, host.state, host.state, host.cluster_id, host.cluster,
                tuple(sorted(vm_ids)), _singles(host.template))


__all__ = ["SimOned", "HookEvent", "Latency", "REAL_LATENCY", "OnedTiming", "INSTANT", "REAL_TIMING"]
