"""The simulated oned's state machine: hosts and VMs through an outage.

Follows DESIGN.md §1, OpenNebula's LCM source (6.10.5 and 7.4.0) and the
recordings of real oneds:

- host MONITORED -> ERROR moves its RUNNING VMs (only those) to UNKNOWN;
- host ERROR -> MONITORED touches no VM; the host's VM report comes later and
  goes through the LCM queue (:mod:`one_hooks.sim.lcm`) per VM: found running
  -> RUNNING (a POWEROFF VM: "found again", on a new history record), gone ->
  SHUTDOWN_POWEROFF (ACTION 44 on the current record) and, on the
  DispatchManager's thread, POWEROFF with RETIME set. 7.4 ignores explicit
  reports while RETIME or RSTIME of the current record is under 30 s old;
  6.10.5 only a RUNNING report for a POWEROFF VM with RETIME under 30 s old;
  the "missing" VMs of a full sync report are never ignored;
- actions (resume, poweroff, terminate) are accepted when the state allows,
  then applied by the LCM queue, which reads the state again and drops the
  action when it is wrong ("restart_action, VM in a wrong state"): resume
  from UNKNOWN -> BOOT_UNKNOWN (no history change), from POWEROFF ->
  BOOT_POWEROFF on a new record (SEQ + 1, STIME = RSTIME = now, ACTION 11);
  the deploy's answer goes through the queue too: success -> RUNNING with
  ACTION 0 and ETIME = RETIME = 0; failure -> back to UNKNOWN or POWEROFF,
  RETIME = now, ``USER_TEMPLATE/ERROR = "<ctime>: DEPLOY: <message>"``;
- every change of state fires the matching state hooks with a payload whose
  PREV_* hold the state before the change.

All changes happen under one lock; delayed work runs on a :class:`Timeline`.
Refusals raise :class:`Refused` with oned's codes.
"""
from __future__ import annotations

import functools
import random
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Set, Tuple

from ..oned.model import HistoryAction, HostState, LcmState, VmState
from .actions import VmActions
from .faults import NO_EXISTS, Refused
from .lcm import INSTANT, LcmQueue, OnedTiming
from .objects import SimCluster, SimHistory, SimHost, SimVm, Tables, del_attr, log_time, set_attr
from .timeline import Timeline
from .tmpl import Attr
from . import xmlout

#: oned 7.x ignores a VM's state reports this long after its current record's RSTIME or RETIME.
IGNORE_WINDOW = 30


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
        timing: OnedTiming = INSTANT,
        clock: Callable[[], float] = time.monotonic,
        late_poweroff: float = 0.0,
        late_poweroff_after: float = 2.0,
        seed: int = 0,
    ) -> None:
        self.lock = threading.RLock()
        self.tables = Tables()
        self.boot_seconds = boot_seconds
        self.shutdown_seconds = boot_seconds if shutdown_seconds is None else shutdown_seconds
        self.now = now
        self.timeline = Timeline(clock)
        self.timing = timing
        self.lcm = LcmQueue(self.timeline, timing, clock)
        # The late monitor report race: after this share of successful deploys a
        # report taken before the deploy powers the VM off again (0: never).
        self.late_poweroff = late_poweroff
        self.late_poweroff_after = late_poweroff_after
        #: VMs a late report powered off since their host last returned (it happens once per return)
        self.bounced: Set[int] = set()
        self.random = random.Random(seed)
        #: VM log lines oned writes but puts nowhere in the XML (dropped actions, ignored reports).
        self.vm_log: Dict[int, List[str]] = {}
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
            self.bounced -= {vm.id for vm in self.host_vms(host_id)}
            self._set_host(host, HostState.MONITORED)

    def host_state(self, host_id: int, state: HostState) -> None:
        """Any other host state change (DISABLED, OFFLINE...), firing hooks."""
        with self.lock:
            self._set_host(self.get_host(host_id), HostState(state))

    def reconcile(self, host_id: int, running: Set[int], sync: bool = False, wait: bool = True) -> None:
        """A VM state report from the host: VMs in ``running`` run, the others are gone.

        ``sync``: a full sync report, where gone VMs are "missing" (never
        ignored, in 6.10.5 and 7.4 alike); otherwise they are reported
        POWEROFF explicitly. Each VM's change goes through the LCM queue;
        ``wait`` blocks until they are applied (not from the timeline's thread).
        """
        with self.lock:
            now = self._ts()
            for vm in sorted(self.host_vms(host_id), key=lambda v: v.id):
                found = vm.id in running
                if (found or not sync) and self._ignores_report(vm, found, now):
                    self.log_vm(vm.id, "Ignoring VM state update")
                    continue
                apply = self._monitor_poweron if found else self._monitor_poweroff
                self.lcm.enqueue(functools.partial(apply, vm.id))
        if wait:
            self.wait_lcm()

    def _ignores_report(self, vm: SimVm, found: bool, now: int) -> bool:
        """oned's guard against reports taken before its own last change of the VM."""
        if vm.last is None:
            return False
        if self.v7:  # InformationManager::test_and_trigger (B #7058)
            return now - vm.last.retime < IGNORE_WINDOW or now - vm.last.rstime < IGNORE_WINDOW
        # 6.10: LifeCycleManager::trigger_monitor_poweron only
        return (found and vm.state in (VmState.POWEROFF, VmState.SUSPENDED)
                and now - vm.last.retime < IGNORE_WINDOW)

    def late_report(self, vm_id: int, wait: bool = True) -> None:
        """A "missing" report taken before the VM's deploy arrives now (never ignored): POWEROFF if RUNNING."""
        self.lcm.enqueue(lambda: self._monitor_poweroff(vm_id))
        if wait:
            self.wait_lcm()

    def wait_lcm(self, timeout: float = 30.0) -> None:
        """Block until everything queued on the LCM so far (and its DispatchManager steps) is applied."""
        done = threading.Event()
        self.lcm.enqueue(lambda: self.lcm.after_dm(done.set))
        if not done.wait(timeout):
            raise RuntimeError(f"simulated oned: LCM queue not applied within {timeout:g} s")

    def _monitor_poweroff(self, vm_id: int) -> None:
        """LCM: the monitor says the VM is off: SHUTDOWN_POWEROFF (ACTION 44), then POWEROFF on the DM thread."""
        with self.lock:
            vm = self.tables.vms.get(vm_id)
            if vm is None or vm.state != VmState.ACTIVE or vm.lcm_state not in (LcmState.RUNNING,
                                                                                 LcmState.UNKNOWN):
                return
            assert vm.last is not None
            self.log_vm(vm_id, "VM running but monitor state is POWEROFF")
            vm.last.action = HistoryAction.MONITOR
            self._set_vm(vm, VmState.ACTIVE, LcmState.SHUTDOWN_POWEROFF)

        def dm_poweroff() -> None:
            with self.lock:
                current = self.tables.vms.get(vm_id)
                if current is None or current.lcm_state != LcmState.SHUTDOWN_POWEROFF:
                    return
                assert current.last is not None
                current.last.retime = self._ts()
                self._set_vm(current, VmState.POWEROFF, LcmState.LCM_INIT)

        self.lcm.after_dm(dm_poweroff)

    def _monitor_poweron(self, vm_id: int) -> None:
        """LCM: the monitor found the VM running."""
        with self.lock:
            vm = self.tables.vms.get(vm_id)
            if vm is None or vm.last is None:
                return
            now = self._ts()
            if vm.state == VmState.ACTIVE and vm.lcm_state in (LcmState.BOOT_UNKNOWN, LcmState.BOOT_POWEROFF):
                self.log_vm(vm_id, "VM reported RUNNING by the drivers")
                self._deploy_success(vm, now)
            elif vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.UNKNOWN:
                vm.last_poll = now
                self._set_vm(vm, VmState.ACTIVE, LcmState.RUNNING)
            elif vm.state == VmState.POWEROFF:
                self.log_vm(vm_id, "VM found again by the drivers")
                old = vm.last
                old.etime = now
                vm.history.append(SimHistory(old.seq + 1, old.host_id, old.hostname, old.cluster_id,
                                             stime=now, vm_mad=old.vm_mad, tm_mad=old.tm_mad,
                                             ds_id=old.ds_id, rstime=now))
                vm.last_poll = now
                self._set_vm(vm, VmState.ACTIVE, LcmState.RUNNING)

    def log_vm(self, vm_id: int, line: str) -> None:
        """A line of the VM's log (``/var/log/one/<ID>.log``) that nothing in the XML shows."""
        with self.lock:
            self.vm_log.setdefault(vm_id, []).append(f"{log_time(self.now())}: {line}")

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
