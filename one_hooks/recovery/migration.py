"""How a cold migration from UNKNOWN turned out, judged from what oned records (pure).

The evacuation's counterpart of :mod:`one_hooks.recovery.evidence`, with its
:class:`~one_hooks.recovery.evidence.Snapshot`, verdicts and judgements. What
oned does with ``one.vm.migrate(vm, target, live=false)`` on an ACTIVE/UNKNOWN
VM (``VirtualMachineMigrate::request_execute`` and
``LifeCycleManager::trigger_migrate``, OpenNebula 6.10.5 and 7.4.0 alike, seen
on both real rigs):

- the request itself adds the new history record on the target (SEQ + 1,
  ACTION 0) and answers; the VM still reads ACTIVE/UNKNOWN: accepted, queued;
- the LCM gets to it: PROLOG_MIGRATE_UNKNOWN (60), the old record closed with
  ACTION 1 (migrate), then BOOT (2) on the target, then RUNNING with the
  record's ACTION cleared: 1.7-2.2 s for one VM on the idle rigs;
- a failed transfer leaves PROLOG_MIGRATE_UNKNOWN_FAILURE (61), a failed
  boot BOOT_FAILURE (36): an operator's ``onevm recover --retry``;
- if the VM is in any other state when the LCM gets to it, oned drops the
  migration (``migrate_action, VM in a wrong state``) and the new record
  stays: only the state tells.

:func:`judge` runs named rules in order, as ``evidence.judge`` does.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

from ..oned.model import LcmState, Vm, VmState
from .evidence import Judgement, Snapshot, Verdict, anything_else, powered_off_by_a_user

__all__ = ["judge", "RULES"]

Rule = Callable[[Snapshot, int, Vm], Optional[Judgement]]


def _on(vm: Vm, host_id: int) -> bool:
    return vm.history is not None and vm.history.host_id == host_id


def arrived(before: Snapshot, target: int, vm: Vm) -> Optional[Judgement]:
    """RUNNING on the target: done."""
    if vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.RUNNING and _on(vm, target):
        return Judgement(Verdict.RUNNING, f"RUNNING on {vm.hostname}")
    return None


def running_elsewhere(before: Snapshot, target: int, vm: Vm) -> Optional[Judgement]:
    """RUNNING anywhere else: someone or something else placed it."""
    if vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.RUNNING:
        return Judgement(Verdict.MOVED_ON, f"RUNNING on {vm.hostname or vm.host_id}, not on the target")
    return None


def powered_off_by_user(before: Snapshot, target: int, vm: Vm) -> Optional[Judgement]:
    """A user's poweroff meanwhile is a wish (evidence's rule, same words)."""
    return powered_off_by_a_user(before, vm, False)


def failed(before: Snapshot, target: int, vm: Vm) -> Optional[Judgement]:
    """``*_FAILURE`` after our call: the transfer or the boot on the target failed; oned waits for an operator."""
    if vm.state == VmState.ACTIVE and vm.lcm_state.name.endswith("_FAILURE") and vm.history is not None \
            and vm.history.seq > before.seq:
        return Judgement(Verdict.DEPLOY_FAILED,
                         f"the move failed in {vm.state_name} on {vm.hostname}: see 'onevm show {vm.id}', "
                         f"then 'onevm recover --retry {vm.id}'", applied=True)
    return None


def moving(before: Snapshot, target: int, vm: Vm) -> Optional[Judgement]:
    """PROLOG_MIGRATE_UNKNOWN, BOOT...: oned is moving it to the target."""
    if vm.state == VmState.ACTIVE and vm.lcm_state not in (LcmState.UNKNOWN, LcmState.RUNNING) \
            and _on(vm, target):
        return Judgement(Verdict.IN_PROGRESS, f"{vm.state_name} on {vm.hostname}: oned is moving it")
    return None


def queued(before: Snapshot, target: int, vm: Vm) -> Optional[Judgement]:
    """Still UNKNOWN, already with its new record on the target: accepted, not started yet."""
    if vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.UNKNOWN and _on(vm, target) \
            and vm.history is not None and vm.history.seq > before.seq:
        return Judgement(Verdict.NOT_PICKED_UP, "still UNKNOWN with its new record on the target: "
                                                "oned has not started the move yet")
    return None


def bounced(before: Snapshot, target: int, vm: Vm) -> Optional[Judgement]:
    """POWEROFF on the target after the move ran (a monitor report): it needs a resume."""
    if vm.state == VmState.POWEROFF and _on(vm, target):
        return Judgement(Verdict.BOUNCED, f"POWEROFF on {vm.hostname} after the move: "
                                          f"'onevm resume {vm.id}'", applied=True)
    return None


def not_moved(before: Snapshot, target: int, vm: Vm) -> Optional[Judgement]:
    """Still UNKNOWN on the record it had: no sign of the move (a lost answer, or not yet)."""
    if vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.UNKNOWN and vm.history is not None \
            and vm.history.seq == before.seq:
        return Judgement(Verdict.NOT_PICKED_UP, f"still UNKNOWN on {vm.hostname}: no sign of the move yet")
    return None


def something_else(before: Snapshot, target: int, vm: Vm) -> Optional[Judgement]:
    """Anything else is someone else's business now (evidence's words)."""
    return anything_else(before, vm, False)


RULES: Tuple[Rule, ...] = (arrived, running_elsewhere, powered_off_by_user, failed, moving, queued,
                           bounced, not_moved, something_else)


def judge(before: Snapshot, target: int, vm: Vm) -> Judgement:
    """What became of the migration to host ``target`` made after ``before``, seeing ``vm`` now."""
    for rule in RULES:
        found = rule(before, target, vm)
        if found is not None:
            return found
    raise AssertionError("something_else always answers")  # pragma: no cover
