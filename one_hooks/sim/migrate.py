"""What ``one.vm.migrate`` and ``one.host.status`` do in the simulated oned (a part of :class:`cloud.Cloud`).

As OpenNebula 6.10.5 and 7.4.0 do them (``VirtualMachineMigrate::request_execute``,
``LifeCycleManager::trigger_migrate``, ``trigger_prolog_success``, ``HostStatus``),
and as the real rigs showed (``/work/notes/h12-evacuation-findings.md``):

- the request checks the VM's state (POWEROFF, SUSPENDED, ACTIVE RUNNING or
  UNKNOWN), the target (exists, not OFFLINE, not the same host and datastore;
  its capacity only with ``enforce``), then **adds the new history record on
  the target itself** (SEQ + 1, same system datastore, ACTION 0) and answers:
  the VM still reads UNKNOWN, on its new record;
- the LCM queue gets to it: from UNKNOWN, PROLOG_MIGRATE_UNKNOWN (the old
  record closed: ETIME = RETIME = now, ACTION 1; the new one ACTION 1,
  PSTIME = now); the transfer (``prolog_seconds``, nothing on the dead host)
  then BOOT, the deploy (``boot_seconds``) then RUNNING with ACTION 0.
  From POWEROFF: PROLOG_MIGRATE_POWEROFF, then POWEROFF on the target. In any
  other state by then the LCM drops it ("migrate_action, VM in a wrong
  state."), the new record staying;
- a failed transfer leaves PROLOG_MIGRATE_UNKNOWN_FAILURE (61) (or
  PROLOG_MIGRATE_POWEROFF_FAILURE), a failed boot BOOT_FAILURE (36);
- ``one.host.status`` 0/1/2 enables, disables, offlines a host, touching no
  VM. A DISABLED host is still monitored: its failure moves its RUNNING VMs to
  UNKNOWN without an ERROR state, and its return leaves it DISABLED (so no
  MONITORED hook); enabling it makes it MONITORED.

Live migration and the cold migration of a RUNNING VM (SAVE_MIGRATE on the
source) are not simulated: refused as such. So are ``resched`` (a scheduler
picks the host) and ``one.vm.recover``: one-hooks never calls them.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable, Dict, List, Tuple

from ..oned.model import HistoryAction, HostState, LcmState, VmState
from .actions import refuse_if_locked
from .faults import ACTION, INTERNAL, NO_EXISTS, XML_RPC_API, Refused
from .objects import SimHistory, SimVm, log_time, set_attr

if TYPE_CHECKING:  # annotations only
    from .lcm import LcmQueue
    from .objects import SimHost, Tables
    from .timeline import Timeline

_FAILURE = {LcmState.PROLOG_MIGRATE_UNKNOWN: LcmState.PROLOG_MIGRATE_UNKNOWN_FAILURE,
            LcmState.PROLOG_MIGRATE_POWEROFF: LcmState.PROLOG_MIGRATE_POWEROFF_FAILURE}


class VmMigrations:
    """Migrations and host status of the cloud; relies on Cloud's tables, lock, timeline and LCM queue."""

    lock: threading.RLock
    tables: Tables
    timeline: Timeline
    lcm: LcmQueue
    boot_seconds: float
    prolog_seconds: float
    now: Callable[[], float]
    action_log: List[Tuple[float, int, str, str]]
    _fail_transfer: Dict[int, int]

    if TYPE_CHECKING:  # Cloud's methods; only declared for type checkers, Cloud defines them
        def get_vm(self, vm_id: int, method: str = ...) -> SimVm: ...

        def get_host(self, host_id: int, method: str = ...) -> SimHost: ...

        def _set_vm(self, vm: SimVm, state: VmState, lcm: LcmState) -> None: ...

        def _set_host(self, host: SimHost, state: HostState) -> None: ...

        def _ts(self) -> int: ...

        def log_vm(self, vm_id: int, line: str) -> None: ...

        def _deploy_fails(self, vm: SimVm) -> bool: ...

        def _deploy_success(self, vm: SimVm, now: int) -> None: ...

        def host_vms(self, host_id: int) -> List[SimVm]: ...

    # --- one.vm.migrate ---------------------------------------------------------

    def migrate(self, vm_id: int, host_id: int, live: bool = False, enforce: bool = False,
                ds_id: int = -1, kind: int = 0) -> None:
        """``one.vm.migrate``: checks, the new history record, then the LCM's part queued."""
        method = "one.vm.migrate"
        with self.lock:
            vm = self.get_vm(vm_id, method)
            refuse_if_locked(vm, method)
            unknown = vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.UNKNOWN
            running = vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.RUNNING
            if not (unknown or running or vm.state in (VmState.POWEROFF, VmState.SUSPENDED)):
                shown = vm.lcm_state.name if vm.state == VmState.ACTIVE else vm.state.name
                raise Refused(ACTION, f"[{method}] Migrate action is not available for state {shown}")
            host = self.tables.hosts.get(host_id)
            if host is None:
                raise Refused(NO_EXISTS, f"[{method}] Error getting host [{host_id}].")
            if host.state == HostState.OFFLINE:
                raise Refused(ACTION, f"[{method}] Host is offline, cannot use it to deploy VM")
            assert vm.last is not None
            target_ds = vm.last.ds_id if ds_id < 0 else ds_id
            if vm.last.host_id == host_id and vm.last.ds_id == target_ds:
                raise Refused(ACTION, f"[{method}] VM is already running on host [{host_id}] and datastore "
                                      f"[{target_ds}]")
            if enforce and not self._fits(vm, host):
                raise Refused(ACTION, f"[{method}] VM [{vm_id}] does not fit in HOST [{host_id}].")
            if running or live or vm.state == VmState.SUSPENDED:
                raise Refused(XML_RPC_API, f"[{method}] migration from {vm.state_name} is not simulated")
            now = self._ts()
            old = vm.last
            vm.history.append(SimHistory(old.seq + 1, host.id, host.name, host.cluster_id, stime=now,
                                         vm_mad=host.vm_mad, tm_mad=old.tm_mad, ds_id=target_ds))
            self.action_log.append((self.now(), vm_id, "migrate", vm.state_name))
            self.lcm.enqueue(lambda: self._migrate_applied(vm_id))

    def _fits(self, vm: SimVm, host: "SimHost") -> bool:
        """Host::test_capacity against the share the sim's hosts render (8 CPUs, 16 GB)."""
        def need(v: SimVm, name: str) -> float:
            value = next((val for key, val in v.template if key == name and isinstance(val, str)), "0")
            return float(value)
        used = [v for v in self.host_vms(host.id) if v.id != vm.id]
        cpu = sum(need(v, "CPU") for v in used) + need(vm, "CPU")
        mem = sum(need(v, "MEMORY") for v in used) + need(vm, "MEMORY")
        return cpu <= 8 and mem <= 16 * 1024

    def _migrate_applied(self, vm_id: int) -> None:
        """LifeCycleManager::trigger_migrate, from UNKNOWN or POWEROFF; anything else is dropped."""
        with self.lock:
            vm = self.tables.vms.get(vm_id)
            if vm is None or len(vm.history) < 2:
                return
            if vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.UNKNOWN:
                during = LcmState.PROLOG_MIGRATE_UNKNOWN
            elif vm.state == VmState.POWEROFF:
                during = LcmState.PROLOG_MIGRATE_POWEROFF
            else:
                self.log_vm(vm_id, "migrate_action, VM in a wrong state.")
                return
            now = self._ts()
            previous, current = vm.history[-2], vm.history[-1]
            previous.etime = previous.retime = now
            previous.action = HistoryAction.MIGRATE
            current.action = HistoryAction.MIGRATE
            current.stime = current.pstime = now
            self._set_vm(vm, VmState.ACTIVE, during)
        self.timeline.after(self.prolog_seconds,
                            lambda: self.lcm.enqueue(lambda: self._prolog_done(vm_id, during)))

    def _prolog_done(self, vm_id: int, during: LcmState) -> None:
        with self.lock:
            vm = self.tables.vms.get(vm_id)
            if vm is None or vm.state != VmState.ACTIVE or vm.lcm_state != during:
                return
            assert vm.last is not None
            now = self._ts()
            if self._fail_transfer.get(vm_id, 0) > 0:
                self._fail_transfer[vm_id] -= 1
                self.log_vm(vm_id, "Error executing image transfer script")
                self._set_vm(vm, VmState.ACTIVE, _FAILURE[during])
                return
            vm.last.petime = now
            if during == LcmState.PROLOG_MIGRATE_POWEROFF:
                self._set_vm(vm, VmState.POWEROFF, LcmState.LCM_INIT)
                return
            vm.last.rstime = now
            self._set_vm(vm, VmState.ACTIVE, LcmState.BOOT)
        self.timeline.after(self.boot_seconds, lambda: self.lcm.enqueue(lambda: self._booted(vm_id)))

    def _booted(self, vm_id: int) -> None:
        with self.lock:
            vm = self.tables.vms.get(vm_id)
            if vm is None or vm.state != VmState.ACTIVE or vm.lcm_state != LcmState.BOOT:
                return
            assert vm.last is not None
            now = self._ts()
            if self._deploy_fails(vm):
                message = f"could not deploy {vm.deploy_id} on {vm.last.hostname}"
                set_attr(vm.user_template, "ERROR", f"{log_time(now)}: DEPLOY: {message}")
                self.log_vm(vm_id, f"DEPLOY: {message}")
                vm.last.retime = now
                self._set_vm(vm, VmState.ACTIVE, LcmState.BOOT_FAILURE)
                return
            self._deploy_success(vm, now)

    def fail_transfers(self, count: int, vm_id: int) -> None:
        """The next ``count`` migration transfers of that VM fail (PROLOG_MIGRATE_*_FAILURE)."""
        with self.lock:
            self._fail_transfer[vm_id] = count

    # --- one.host.status --------------------------------------------------------

    def host_status(self, host_id: int, status: int) -> None:
        """``one.host.status``: 0 enable, 1 disable, 2 offline; the VMs are not touched."""
        method = "one.host.status"
        with self.lock:
            host = self.get_host(host_id, method)
            if status == 0:
                if host.state in (HostState.DISABLED, HostState.OFFLINE):
                    # Host::enable: a disabled host with capacity goes MONITORED; an offline one INIT,
                    # then MONITORED with its first report (at once here).
                    if host.state == HostState.OFFLINE:
                        self._set_host(host, HostState.INIT)
                    self._set_host(host, HostState.MONITORED)
            elif status == 1:
                self._set_host(host, HostState.DISABLED)
            elif status == 2:
                self._set_host(host, HostState.OFFLINE)
            else:
                raise Refused(INTERNAL, f"[{method}] Wrong status code")
