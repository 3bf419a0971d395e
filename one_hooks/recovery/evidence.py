"""How a resume turned out, judged from what oned records (pure).

oned answers ``one.vm.action resume`` at once and applies it later, from its
LCM's single FIFO queue (``LifeCycleManager::trigger_restart``, OpenNebula
6.10.5 and 7.4.0 alike). Under load a VM stays in the state it was resumed
from for seconds after the accepted call: 0.3-1.1 s plus 25-56 ms per resume
still in the queue, up to 10.4 s with 170 in flight, measured on both real
versions (``/work/notes/rig-findings.md``, rig runs of 270 VMs). So a VM still
UNKNOWN or POWEROFF after our call has *not been picked up yet*; it has not
failed. When the queued resume runs, oned re-reads the state:

- ACTIVE/UNKNOWN -> BOOT_UNKNOWN, with no change to the history record;
- POWEROFF -> BOOT_POWEROFF, the old record closed (ETIME) and a new one
  opened: SEQ + 1, STIME = RSTIME = now, ACTION 11 (resume);
- any other state (RUNNING, BOOT_*, SHUTDOWN_POWEROFF...) -> the resume is
  dropped; only the VM's log says so, the XML shows nothing.

A deploy that fails sends BOOT_UNKNOWN back to UNKNOWN and BOOT_POWEROFF back
to POWEROFF, sets RETIME on the current record and, when the driver said
something, ``USER_TEMPLATE/ERROR = "<ctime>: DEPLOY: <message>"`` (never
cleared: only a change means something). A deploy that succeeds leaves
RUNNING with ACTION 0 and RETIME 0. A monitor report taken before the deploy
can still power a RUNNING VM off seconds later (SHUTDOWN_POWEROFF -> POWEROFF,
ACTION 44 and RETIME on the current record): seen on 4 of 29 VMs of a real
6.10.5 storm. A monitor poweroff queued just before our resume makes the LCM
drop it (``restart_action, VM in a wrong state``: VM 81 of a real 7.4.0 storm).

So the evidence is compared with a :class:`Snapshot` of the same fields read
just before the call. :func:`judge` runs named rules in order; the first that
applies gives the :class:`Judgement` and its human reason. It never calls a
VM failed without a mark oned leaves only when a deploy ran and failed.
Nothing here talks to oned; :mod:`one_hooks.recovery.carry` decides what to do
about a judgement.
"""
from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Optional, Tuple

from ..oned.model import HistoryAction, LcmState, Vm, VmState

__all__ = ["Snapshot", "Verdict", "Judgement", "judge", "RULES", "deploy_message"]


@dataclass(frozen=True)
class Snapshot:
    """A VM's evidence as read just before a resume call, and the call's wall time."""

    state: VmState
    lcm_state: LcmState
    seq: int
    host_id: int
    action: HistoryAction
    retime: int
    rstime: int
    error: str
    called: float

    @classmethod
    def of(cls, vm: Vm, called: float) -> "Snapshot":
        """The evidence of ``vm`` (as read before the call made at wall time ``called``)."""
        h = vm.history
        return cls(vm.state, vm.lcm_state, h.seq if h else -1, h.host_id if h else -1,
                   h.action if h else HistoryAction.NONE, h.retime if h else 0,
                   h.rstime if h else 0, vm.error, called)

    def as_dict(self) -> dict:
        """A JSON-ready form (the ledger keeps it, so another process can carry on)."""
        data = asdict(self)
        data.update(state=int(self.state), lcm_state=int(self.lcm_state), action=int(self.action))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Snapshot":
        """The inverse of :meth:`as_dict`; ValueError/KeyError/TypeError on a damaged one."""
        return cls(VmState(int(data["state"])), LcmState(int(data["lcm_state"])), int(data["seq"]),
                   int(data["host_id"]), HistoryAction(int(data["action"])), int(data["retime"]),
                   int(data["rstime"]), str(data["error"]), float(data["called"]))

    @property
    def state_name(self) -> str:
        """``STATE`` or ``ACTIVE/LCM_STATE``, as :attr:`Vm.state_name`."""
        return f"ACTIVE/{self.lcm_state.name}" if self.state == VmState.ACTIVE else self.state.name


class Verdict(str, enum.Enum):
    """What became of a resume, as far as oned shows."""

    RUNNING = "running"
    IN_PROGRESS = "in progress"
    NOT_PICKED_UP = "not picked up yet"
    DEPLOY_FAILED = "deploy failed"
    BOUNCED = "bounced back"
    DROPPED = "possibly dropped"
    MOVED_ON = "moved on"


@dataclass(frozen=True)
class Judgement:
    """A verdict with its reason; ``applied``: oned ran this resume (an attempt to count)."""

    verdict: Verdict
    reason: str
    applied: bool = False


Rule = Callable[[Snapshot, Vm, bool], Optional[Judgement]]


def deploy_message(error: str) -> str:
    """The driver's words in an ERROR value, without oned's ctime prefix."""
    _, sep, rest = error.partition(": DEPLOY")
    return ("DEPLOY" + rest) if sep else error


def _active(vm: Vm, *lcm: LcmState) -> bool:
    return vm.state == VmState.ACTIVE and vm.lcm_state in lcm


def _seq(vm: Vm) -> int:
    return vm.history.seq if vm.history else -1


def _action(vm: Vm) -> HistoryAction:
    return vm.history.action if vm.history else HistoryAction.NONE


def _retime(vm: Vm) -> int:
    return vm.history.retime if vm.history else 0


def _new_deploy_error(before: Snapshot, vm: Vm) -> bool:
    # Other writers of ERROR exist (transfers, scheduled actions): only a deploy's counts.
    return vm.error != before.error and "DEPLOY" in vm.error


def _failure_words(before: Snapshot, vm: Vm) -> str:
    return f": {deploy_message(vm.error)}" if _new_deploy_error(before, vm) else " (no message from the driver)"


# --- the rules, in the order they are asked ------------------------------------


def running(before: Snapshot, vm: Vm, seen: bool) -> Optional[Judgement]:
    """RUNNING is the goal, whoever or whatever brought it there."""
    if _active(vm, LcmState.RUNNING):
        return Judgement(Verdict.RUNNING, "RUNNING")
    return None


def moved_to_another_host(before: Snapshot, vm: Vm, seen: bool) -> Optional[Judgement]:
    """A VM placed on another host since (migrated, rescheduled) is not this recovery's."""
    if vm.history is not None and before.host_id >= 0 and vm.history.host_id != before.host_id:
        return Judgement(Verdict.MOVED_ON, f"now placed on host {vm.hostname or vm.history.host_id}, "
                                           "not the one it was resumed on")
    return None


def powered_off_by_a_user(before: Snapshot, vm: Vm, seen: bool) -> Optional[Judgement]:
    """A user's poweroff (ACTION 19/20 on the current record) is a wish: never undone."""
    if vm.state == VmState.POWEROFF and _action(vm) in (HistoryAction.POWEROFF, HistoryAction.POWEROFF_HARD):
        return Judgement(Verdict.MOVED_ON, f"powered off by a user meanwhile (last action "
                                           f"{_action(vm).name.lower()})")
    return None


def in_a_failure_state(before: Snapshot, vm: Vm, seen: bool) -> Optional[Judgement]:
    """``*_FAILURE`` LCM states wait for an operator (``onevm recover``); no resume leads there."""
    if vm.state == VmState.ACTIVE and vm.lcm_state.name.endswith("_FAILURE"):
        return Judgement(Verdict.MOVED_ON, f"in {vm.state_name}: needs 'onevm recover {vm.id}'")
    return None


def being_worked_on(before: Snapshot, vm: Vm, seen: bool) -> Optional[Judgement]:
    """BOOT_*, SHUTDOWN_POWEROFF, PROLOG...: oned is in the middle of something; wait."""
    if vm.state == VmState.ACTIVE and vm.lcm_state not in (LcmState.UNKNOWN, LcmState.RUNNING):
        if vm.lcm_state.name.startswith("BOOT"):
            return Judgement(Verdict.IN_PROGRESS, f"{vm.state_name}: oned is deploying it")
        return Judgement(Verdict.IN_PROGRESS, f"{vm.state_name}: oned is busy with it")
    return None


def deploy_failed_back_in_unknown(before: Snapshot, vm: Vm, seen: bool) -> Optional[Judgement]:
    """Back in UNKNOWN on the same record with a new RETIME (or a new DEPLOY error)."""
    if not _active(vm, LcmState.UNKNOWN) or _seq(vm) != before.seq:
        return None
    if (_retime(vm) and _retime(vm) != before.retime) or _new_deploy_error(before, vm):
        return Judgement(Verdict.DEPLOY_FAILED, f"deploy failed, back in ACTIVE/UNKNOWN"
                                                f"{_failure_words(before, vm)}", applied=True)
    return None


def unknown_after_a_new_record(before: Snapshot, vm: Vm, seen: bool) -> Optional[Judgement]:
    """UNKNOWN on a newer record: the resume ran from POWEROFF, then the host failed again."""
    if _active(vm, LcmState.UNKNOWN) and _seq(vm) > before.seq:
        return Judgement(Verdict.BOUNCED, "the resume ran (new history record), then the VM went "
                                          "UNKNOWN again", applied=True)
    return None


def deploy_failed_back_in_poweroff(before: Snapshot, vm: Vm, seen: bool) -> Optional[Judgement]:
    """POWEROFF on a newer record whose ACTION is still 11: a resume from POWEROFF whose deploy failed."""
    if vm.state == VmState.POWEROFF and _seq(vm) > before.seq and _action(vm) == HistoryAction.RESUME:
        return Judgement(Verdict.DEPLOY_FAILED, f"deploy failed, back in POWEROFF"
                                                f"{_failure_words(before, vm)}", applied=True)
    return None


def powered_off_after_running(before: Snapshot, vm: Vm, seen: bool) -> Optional[Judgement]:
    """POWEROFF by the monitor after the resume ran: a report taken before the deploy came late."""
    if vm.state != VmState.POWEROFF or _action(vm) != HistoryAction.MONITOR:
        return None
    if _seq(vm) > before.seq or (seen and _retime(vm) != before.retime):
        return Judgement(Verdict.BOUNCED, "the resume ran, then a late monitor report powered the VM "
                                          "off again (last action monitor)", applied=True)
    return None


def powered_off_before_pickup(before: Snapshot, vm: Vm, seen: bool) -> Optional[Judgement]:
    """Powered off by the monitor after our call with no sign of a deploy: oned may have dropped it."""
    if vm.state != VmState.POWEROFF or _action(vm) != HistoryAction.MONITOR or _seq(vm) != before.seq:
        return None
    if before.state != VmState.POWEROFF or _retime(vm) != before.retime:
        return Judgement(Verdict.DROPPED, f"went {before.state_name} -> POWEROFF (monitor) before oned "
                                          "ran the resume: it may have dropped it")
    return None


def still_where_it_was(before: Snapshot, vm: Vm, seen: bool) -> Optional[Judgement]:
    """Same outage state, same record, no new mark: the resume is still in oned's queue."""
    if _active(vm, LcmState.UNKNOWN) or (vm.state == VmState.POWEROFF and _seq(vm) == before.seq):
        return Judgement(Verdict.NOT_PICKED_UP, f"still {vm.state_name}, no sign yet that oned has run "
                                                "the resume")
    return None


def anything_else(before: Snapshot, vm: Vm, seen: bool) -> Optional[Judgement]:
    """STOPPED, UNDEPLOYED, DONE, POWEROFF by something else...: someone else's business now."""
    if vm.state == VmState.POWEROFF:
        return Judgement(Verdict.MOVED_ON, f"POWEROFF, last action {_action(vm).name.lower()}: "
                                           "not by the outage")
    return Judgement(Verdict.MOVED_ON, f"state moved on to {vm.state_name}")


RULES: Tuple[Rule, ...] = (
    running, moved_to_another_host, powered_off_by_a_user, in_a_failure_state, being_worked_on,
    deploy_failed_back_in_unknown, unknown_after_a_new_record, deploy_failed_back_in_poweroff,
    powered_off_after_running, powered_off_before_pickup, still_where_it_was, anything_else,
)


def judge(before: Snapshot, vm: Vm, seen_progress: bool = False) -> Judgement:
    """What became of the resume made after ``before``, seeing ``vm`` now.

    ``seen_progress``: the caller itself saw the VM in BOOT_* or RUNNING since
    the call (its own evidence that the resume ran, which the XML may no
    longer show once a monitor report has powered the VM off again).
    """
    for rule in RULES:
        found = rule(before, vm, seen_progress)
        if found is not None:
            return found
    raise AssertionError("anything_else always answers")  # pragma: no cover
