"""What ``one.vm.action`` does in the simulated oned (a part of :class:`cloud.Cloud`).

Each simulated action has a ``_do_<name>`` method called with
``probe=True`` to ask whether the VM's state allows it: when the call
arrives (oned's DispatchManager check, then the answer), and again when the
LCM queue gets to it (``one_hooks.sim.lcm``), which drops the action if the
state is no longer right, as oned's LCM does. Then it is started
(``probe=False``); the driver's part (deploy, shutdown) takes its time on the
timeline, and its answer is queued on the LCM again.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable, Dict, List, Set, Tuple

from ..oned.model import HistoryAction, HostState, LcmState, VmState
from .faults import ACTION, LOCKED, XML_RPC_API, Refused
from .objects import SimHistory, SimVm, log_time, set_attr

if TYPE_CHECKING:  # annotations only
    import random

    from .lcm import LcmQueue
    from .objects import Tables
    from .timeline import Timeline

#: vm.action names oned knows (VMActions); the ones not simulated are refused.
KNOWN_ACTIONS = {
    "terminate-hard", "terminate", "undeploy-hard", "undeploy", "hold", "release", "stop",
    "suspend", "resume", "reboot-hard", "reboot", "poweroff-hard", "poweroff", "resched",
    "unresched",
}
#: Lock levels that block MANAGE operations (resume, poweroff, terminate...): USE, MANAGE, ALL.
MANAGE_BLOCKING_LOCKS = {1, 2, 4}


class VmActions:
    """The VM life-cycle half of the cloud; relies on Cloud's tables, lock and timeline."""

    # Provided by Cloud (declared here, without values, so type checkers know them).
    lock: threading.RLock
    tables: Tables
    timeline: Timeline
    lcm: LcmQueue
    random: random.Random
    late_poweroff: float
    late_poweroff_after: float
    bounced: Set[int]
    boot_seconds: float
    shutdown_seconds: float
    deploy_needs_host: bool
    now: Callable[[], float]
    action_log: List[Tuple[float, int, str, str]]
    _fail_vm: Dict[int, int]
    _fail_host: Dict[int, int]

    if TYPE_CHECKING:  # Cloud's methods; only declared for type checkers, Cloud defines them
        def get_vm(self, vm_id: int, method: str = ...) -> SimVm: ...

        def _set_vm(self, vm: SimVm, state: VmState, lcm: LcmState) -> None: ...

        def _ts(self) -> int: ...

        def log_vm(self, vm_id: int, line: str) -> None: ...

        def late_report(self, vm_id: int, wait: bool = ...) -> None: ...

    def action(self, name: str, vm_id: int) -> None:
        """``one.vm.action``: accept and start the action, or refuse it as oned does."""
        method = "one.vm.action"
        with self.lock:
            vm = self.get_vm(vm_id, method)
            if name not in KNOWN_ACTIONS:
                raise Refused(ACTION, f"[{method}] Invalid action \"{name}\".")
            if vm.lock in MANAGE_BLOCKING_LOCKS:
                raise Refused(LOCKED, f"[{method}] User [0] : Not authorized to perform "
                                      f"MANAGE VM [{vm_id}], it is locked.")
            handler = getattr(self, "_do_" + name.replace("-", "_"), None)
            state = vm.state_name
            if handler is None or not handler(vm, probe=True):
                if handler is not None or not self._state_allows_unsimulated(name, vm):
                    shown = vm.lcm_state.name if vm.state == VmState.ACTIVE else vm.state.name
                    raise Refused(ACTION, f"[{method}] Error performing action \"{name}\": "
                                          f"This action is not available for state {shown}")
                raise Refused(XML_RPC_API, f"[{method}] Action \"{name}\" is not simulated.")
            self.action_log.append((self.now(), vm_id, name, state))
            self.lcm.enqueue(lambda: self._apply(name, vm_id))

    def _apply(self, name: str, vm_id: int) -> None:
        """The LCM gets to an accepted action: do it if the VM's state still allows, else drop it."""
        with self.lock:
            vm = self.tables.vms.get(vm_id)
            if vm is None:
                return
            handler = getattr(self, "_do_" + name.replace("-", "_"))
            if not handler(vm, probe=True):
                verb = {"resume": "restart"}.get(name, name.replace("-", "_"))
                self.log_vm(vm_id, f"{verb}_action, VM in a wrong state.")
                return
            handler(vm, probe=False)

    @staticmethod
    def _state_allows_unsimulated(name: str, vm: SimVm) -> bool:
        running = vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.RUNNING
        unknown = vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.UNKNOWN
        if name in ("stop", "suspend"):
            return running
        if name in ("undeploy", "undeploy-hard"):
            return running or unknown or vm.state == VmState.POWEROFF
        if name in ("resched", "unresched"):
            return running or unknown
        return False  # hold (PENDING only), release (HOLD only)

    def _do_resume(self, vm: SimVm, probe: bool) -> bool:
        from_unknown = vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.UNKNOWN
        if probe:
            return from_unknown or vm.state == VmState.POWEROFF
        assert vm.last is not None
        if from_unknown:
            # LifeCycleManager::trigger_restart: no history change at all.
            self._set_vm(vm, VmState.ACTIVE, LcmState.BOOT_UNKNOWN)
            fallback = (VmState.ACTIVE, LcmState.UNKNOWN)
        else:
            now = self._ts()
            old = vm.last
            old.etime = now
            vm.history.append(SimHistory(old.seq + 1, old.host_id, old.hostname, old.cluster_id,
                                         stime=now, vm_mad=old.vm_mad, tm_mad=old.tm_mad,
                                         ds_id=old.ds_id, rstime=now, action=HistoryAction.RESUME))
            self._set_vm(vm, VmState.ACTIVE, LcmState.BOOT_POWEROFF)
            fallback = (VmState.POWEROFF, LcmState.LCM_INIT)
        vm_id = vm.id
        # The driver deploys (boot_seconds), then its answer waits its turn on the LCM.
        self.timeline.after(self.boot_seconds,
                            lambda: self.lcm.enqueue(lambda: self._deployed(vm_id, fallback)))
        return True

    def _deploy_fails(self, vm: SimVm) -> bool:
        assert vm.last is not None
        host = self.tables.hosts.get(vm.last.host_id)
        for table, key in ((self._fail_vm, vm.id), (self._fail_host, vm.last.host_id)):
            if table.get(key, 0) > 0:
                table[key] -= 1
                return True
        if not self.deploy_needs_host:
            return False
        return host is None or host.state in (HostState.ERROR, HostState.OFFLINE)

    def _deployed(self, vm_id: int, fallback: Tuple[VmState, LcmState]) -> None:
        with self.lock:
            vm = self.tables.vms.get(vm_id)
            if vm is None or vm.lcm_state not in (LcmState.BOOT_UNKNOWN, LcmState.BOOT_POWEROFF):
                return
            assert vm.last is not None
            now = self._ts()
            if self._deploy_fails(vm):
                set_attr(vm.user_template, "ERROR",
                         f"{log_time(now)}: DEPLOY: could not deploy {vm.deploy_id} "
                         f"on {vm.last.hostname}")
                self.log_vm(vm_id, f"DEPLOY: could not deploy {vm.deploy_id} on {vm.last.hostname}")
                vm.last.retime = now
                self._set_vm(vm, *fallback)
                return
            self._deploy_success(vm, now)
        if self.late_poweroff and vm_id not in self.bounced and self.random.random() < self.late_poweroff:
            # A monitor report taken before this deploy is processed now (rig: 4 of 29, 9 of 30
            # VMs of real 6.10.5 storms). Such a report exists once per return of the host.
            self.bounced.add(vm_id)
            self.timeline.after(self.late_poweroff_after, lambda: self.late_report(vm_id, wait=False))

    def _deploy_success(self, vm: SimVm, now: int) -> None:
        """LifeCycleManager::trigger_deploy_success: RUNNING, the record's ACTION and end times cleared."""
        assert vm.last is not None
        vm.last.action = HistoryAction.NONE
        vm.last.etime = 0
        vm.last.retime = 0
        vm.last_poll = now
        self._set_vm(vm, VmState.ACTIVE, LcmState.RUNNING)

    def _shutdown(self, vm: SimVm, action: HistoryAction, during: LcmState,
                  final: Tuple[VmState, LcmState]) -> None:
        before = (vm.state, vm.lcm_state)
        vm_id = vm.id

        def finish() -> None:
            with self.lock:
                current = self.tables.vms.get(vm_id)
                if current is None or current.lcm_state != during:
                    return
                assert current.last is not None
                host = self.tables.hosts.get(current.last.host_id)
                if host is not None and host.state in (HostState.ERROR, HostState.OFFLINE):
                    self._set_vm(current, *before)  # the driver could not reach the host
                    return
                now = self._ts()
                current.last.action = action
                current.last.retime = now
                if final[0] == VmState.DONE:
                    current.last.etime = current.etime = now
                self._set_vm(current, *final)

        self._set_vm(vm, VmState.ACTIVE, during)
        self.timeline.after(self.shutdown_seconds, lambda: self.lcm.enqueue(finish))

    def _running_or_unknown(self, vm: SimVm) -> bool:
        return vm.state == VmState.ACTIVE and vm.lcm_state in (LcmState.RUNNING, LcmState.UNKNOWN)

    def _do_poweroff(self, vm: SimVm, probe: bool, hard: bool = False) -> bool:
        if probe:
            return self._running_or_unknown(vm)
        action = HistoryAction.POWEROFF_HARD if hard else HistoryAction.POWEROFF
        self._shutdown(vm, action, LcmState.SHUTDOWN_POWEROFF, (VmState.POWEROFF, LcmState.LCM_INIT))
        return True

    def _do_poweroff_hard(self, vm: SimVm, probe: bool) -> bool:
        return self._do_poweroff(vm, probe, hard=True)

    def _do_terminate(self, vm: SimVm, probe: bool, hard: bool = False) -> bool:
        if probe:
            return self._running_or_unknown(vm) or vm.state == VmState.POWEROFF
        action = HistoryAction.TERMINATE_HARD if hard else HistoryAction.TERMINATE
        if vm.state == VmState.POWEROFF:
            during = LcmState.EPILOG
        else:
            during = LcmState.CANCEL if hard else LcmState.SHUTDOWN
        self._shutdown(vm, action, during, (VmState.DONE, LcmState.LCM_INIT))
        return True

    def _do_terminate_hard(self, vm: SimVm, probe: bool) -> bool:
        return self._do_terminate(vm, probe, hard=True)

    def _do_reboot(self, vm: SimVm, probe: bool) -> bool:
        # Only from RUNNING: oned refuses reboot in UNKNOWN (DESIGN.md §1).
        return vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.RUNNING

    _do_reboot_hard = _do_reboot

