"""The simulated oned's state machine: hosts and VMs through an outage.

Follows DESIGN.md §1 and the recordings of a real oned 6.10.5:

- host MONITORED -> ERROR moves its RUNNING VMs (only those) to UNKNOWN;
- host ERROR -> MONITORED touches no VM; reconciliation comes later, per VM:
  found running -> RUNNING, gone -> SHUTDOWN_POWEROFF -> POWEROFF with the
  last history record's ACTION set to 44 (monitor);
- resume: UNKNOWN -> BOOT_UNKNOWN -> RUNNING (same history record), or
  POWEROFF -> BOOT_POWEROFF -> RUNNING (new record); a deploy on a host in
  ERROR fails and the VM falls back to UNKNOWN (or POWEROFF);
- every change of state fires the matching state hooks with a payload whose
  PREV_* hold the state before the change.

All changes happen under one lock; delayed halves (deploy, shutdown) run on a
:class:`Timeline`. Refusals raise :class:`Refused` with oned's codes.
"""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Set, Tuple

from ..oned.model import HistoryAction, HostState, LcmState, VmState
from .actions import VmActions
from .faults import NO_EXISTS, Refused
from .objects import SimCluster, SimHistory, SimHost, SimVm, Tables, del_attr, log_time, set_attr
from .timeline import Timeline
from .tmpl import Attr
from . import xmlout



@dataclass(frozen=True)
class Change:
    """One state change, as the recordings' states.jsonl lists them."""

    time: float
    kind: str  # "host" or "vm"
    id: int
    before: str
    after: str


class Cloud(VmActions):
    """Hosts, VMs, hooks and the rules that move them."""

    def __init__(
        self,
        boot_seconds: float = 0.0,
        shutdown_seconds: Optional[float] = None,
        now: Callable[[], float] = time.time,
        emit: Optional[Callable[[str, object, tuple, str], None]] = None,
        deploy_needs_host: bool = True,
        v7: bool = False,
    ) -> None:
        self.lock = threading.RLock()
        self.tables = Tables()
        self.boot_seconds = boot_seconds
        self.shutdown_seconds = boot_seconds if shutdown_seconds is None else shutdown_seconds
        self.now = now
        self.timeline = Timeline()
        self.emit = emit
        # KVM deploys over ssh and fails on a host in ERROR; OpenNebula's dummy
        # driver (used for the recordings) never contacts the host.
        self.deploy_needs_host = deploy_needs_host
        self.v7 = v7
        self.changes: List[Change] = []
        self.action_log: List[Tuple[float, int, str, str]] = []
        self._fail_vm: Dict[int, int] = {}
        self._fail_host: Dict[int, int] = {}
        self.tables.clusters[0] = SimCluster(0, "default")

    # --- helpers --------------------------------------------------------------

    def _ts(self) -> int:
        return int(self.now())

    def get_vm(self, vm_id: int, method: str = "one.vm.info") -> SimVm:
        """The VM, or NO_EXISTS as oned words it."""
        vm = self.tables.vms.get(vm_id)
        if vm is None:
            raise Refused(NO_EXISTS, f"[{method}] Error getting virtual machine [{vm_id}].")
        return vm

    def get_host(self, host_id: int, method: str = "one.host.info") -> SimHost:
        """The host, or NO_EXISTS as oned words it."""
        host = self.tables.hosts.get(host_id)
        if host is None:
            raise Refused(NO_EXISTS, f"[{method}] Error getting host [{host_id}].")
        return host

    def host_vms(self, host_id: int) -> List[SimVm]:
        """VMs placed on the host (last history record there), DONE ones excluded."""
        return [vm for vm in self.tables.vms.values()
                if vm.last and vm.last.host_id == host_id and vm.state != VmState.DONE]

    def _set_host(self, host: SimHost, state: HostState) -> None:
        before = host.state
        if before == state:
            return
        host.state = state
        self.changes.append(Change(self.now(), "host", host.id, before.name, state.name))
        if self.emit:
            payload = xmlout.pretty(xmlout.host_element(
                host, self.host_vms(host.id), prev_state=before, payload=True))
            self.emit("HOST", host, (before,), payload)

    def _set_vm(self, vm: SimVm, state: VmState, lcm: LcmState) -> None:
        before = (vm.state, vm.lcm_state)
        if before == (state, lcm):
            return
        old_name = vm.state_name
        vm.state, vm.lcm_state = state, lcm
        self.changes.append(Change(self.now(), "vm", vm.id, old_name, vm.state_name))
        if self.emit:
            payload = xmlout.pretty(xmlout.vm_element(vm, prev=before, payload=True, v7=self.v7))
            self.emit("VM", vm, before, payload)

    # --- building the cloud ---------------------------------------------------

    def add_host(self, name: str, cluster_id: int = 0, template: Optional[List[Attr]] = None,
                 im_mad: str = "kvm", vm_mad: str = "kvm") -> int:
        """A new host; it goes INIT -> MONITORED at once, as after its first report."""
        with self.lock:
            cluster = self.tables.clusters.get(cluster_id)
            if cluster is None:
                raise Refused(NO_EXISTS, f"[one.host.allocate] Error getting cluster [{cluster_id}].")
            host_id = max(self.tables.hosts, default=-1) + 1
            attrs: List[Attr] = [("ARCH", "x86_64"), ("CPUSPEED", "3200"), ("HOSTNAME", name),
                                 ("HYPERVISOR", vm_mad), ("IM_MAD", im_mad), ("VM_MAD", vm_mad),
                                 ("RESERVED_CPU", ""), ("RESERVED_MEM", "")]
            for key, value in template or []:
                set_attr(attrs, key, value)
            host = SimHost(host_id, name, HostState.INIT, cluster_id, cluster.name,
                           im_mad=im_mad, vm_mad=vm_mad, template=attrs)
            self.tables.hosts[host_id] = host
            self.changes.append(Change(self.now(), "host", host_id, "-", "INIT"))
            host.last_monitored = self._ts()
            self._set_host(host, HostState.MONITORED)
            return host_id

    def add_vm(self, name: str, host_id: int, user_template: Optional[List[Attr]] = None,
               memory_mb: int = 64, cpu: float = 0.1) -> int:
        """A VM deployed on ``host_id`` and RUNNING (its last step BOOT -> RUNNING fires hooks)."""
        with self.lock:
            host = self.get_host(host_id, "one.vm.deploy")
            vm_id = max(self.tables.vms, default=-1) + 1
            now = self._ts()
            vm = SimVm(vm_id, name, VmState.ACTIVE, LcmState.BOOT, stime=now,
                       deploy_id=f"one-{vm_id}", last_poll=now)
            vm.template = [
                ("AUTOMATIC_REQUIREMENTS", "!(PUBLIC_CLOUD = YES) & !(PIN_POLICY = PINNED)"),
                ("CPU", str(cpu)), ("MEMORY", str(memory_mb)),
                ("OS", [("UUID", str(uuid.UUID(int=vm_id + 1)))]),
                ("TEMPLATE_ID", "0"), ("TM_MAD_SYSTEM", "ssh"), ("VCPU", "1"), ("VMID", str(vm_id)),
            ]
            vm.user_template = list(user_template or [])
            vm.history.append(SimHistory(0, host.id, host.name, host.cluster_id, stime=now,
                                         vm_mad=host.vm_mad, pstime=now, petime=now, rstime=now))
            self.tables.vms[vm_id] = vm
            self.changes.append(Change(self.now(), "vm", vm_id, "-", vm.state_name))
            self._set_vm(vm, VmState.ACTIVE, LcmState.RUNNING)
            return vm_id

    # --- what the monitor does ------------------------------------------------

    def host_error(self, host_id: int) -> None:
        """Monitoring failed: host -> ERROR, its RUNNING VMs -> UNKNOWN."""
        with self.lock:
            host = self.get_host(host_id)
            set_attr(host.template, "ERROR",
                     f"{log_time(self.now())} : Error monitoring Host {host.name} ({host.id}): ")
            self._set_host(host, HostState.ERROR)
            for vm in self.host_vms(host_id):
                if vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.RUNNING:
                    self._set_vm(vm, VmState.ACTIVE, LcmState.UNKNOWN)

    def host_monitored(self, host_id: int) -> None:
        """The host answers again: -> MONITORED; its VMs are reconciled later."""
        with self.lock:
            host = self.get_host(host_id)
            del_attr(host.template, "ERROR")
            host.last_monitored = self._ts()
            self._set_host(host, HostState.MONITORED)

    def host_state(self, host_id: int, state: HostState) -> None:
        """Any other host state change (DISABLED, OFFLINE...), firing hooks."""
        with self.lock:
            self._set_host(self.get_host(host_id), HostState(state))

    def reconcile(self, host_id: int, running: Set[int]) -> None:
        """A VM state report from the host: VMs in ``running`` run, the others are gone."""
        with self.lock:
            now = self._ts()
            for vm in sorted(self.host_vms(host_id), key=lambda v: v.id):
                if vm.state != VmState.ACTIVE or vm.lcm_state not in (LcmState.RUNNING, LcmState.UNKNOWN):
                    continue
                if vm.id in running:
                    vm.last_poll = now
                    self._set_vm(vm, VmState.ACTIVE, LcmState.RUNNING)
                    continue
                self._set_vm(vm, VmState.ACTIVE, LcmState.SHUTDOWN_POWEROFF)
                assert vm.last is not None
                vm.last.retime = now
                vm.last.action = HistoryAction.MONITOR
                self._set_vm(vm, VmState.POWEROFF, LcmState.LCM_INIT)

    def fail_deploys(self, count: int, vm_id: Optional[int] = None,
                     host_id: Optional[int] = None) -> None:
        """The next ``count`` deploys of that VM (or on that host) fail in the driver."""
        with self.lock:
            if vm_id is not None:
                self._fail_vm[vm_id] = count
            if host_id is not None:
                self._fail_host[host_id] = count

    # --- locks ----------------------------------------------------------------

    def lock_vm(self, vm_id: int, level: int) -> None:
        """``one.vm.lock``: 1 USE, 2 MANAGE, 3 ADMIN, 4 ALL."""
        with self.lock:
            vm = self.get_vm(vm_id, "one.vm.lock")
            vm.lock, vm.lock_time = int(level), self._ts()

    def unlock_vm(self, vm_id: int) -> None:
        """``one.vm.unlock``."""
        with self.lock:
            vm = self.get_vm(vm_id, "one.vm.unlock")
            vm.lock = None
