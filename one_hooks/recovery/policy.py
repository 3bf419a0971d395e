"""Which VMs an outage left down, and what to do with each (pure).

Every rule is a small named function of (VM, host, settings) that returns a
human reason when it applies, ``None`` otherwise. :func:`plan` runs the
rules in order for each VM and turns the first one that applies into a
:class:`Decision`; the reasons are the hook's log lines and the ``--dry-run``
output. Nothing here talks to oned or to a node.

The facts behind the rules (DESIGN.md section 1): an outage leaves a VM in
ACTIVE/UNKNOWN, or (when the host came back without it) in POWEROFF with the
last history ACTION ``monitor`` (44). A user's poweroff leaves ACTION 19/20.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from ..config import RecoverySection
from ..oned.model import HistoryAction, Host, HostState, LcmState, Vm, VmState

LOCK_LEVELS: Dict[int, str] = {1: "USE", 2: "MANAGE", 3: "ADMIN", 4: "ALL"}


class Action(str, enum.Enum):
    """What the engine does with a VM."""

    RESUME = "resume"
    SKIP = "skip"
    LOCKED = "locked"


@dataclass(frozen=True)
class Settings:
    """The ``[recovery]`` values the rules read."""

    policy: str = "all"
    opt_attribute: str = "ONE_HOOKS_RECOVER"
    priority_attribute: str = "ONE_HOOKS_PRIORITY"

    @classmethod
    def from_section(cls, section: RecoverySection) -> "Settings":
        """The rule settings of a validated ``[recovery]`` section."""
        return cls(section.policy, section.opt_attribute, section.priority_attribute)


@dataclass(frozen=True)
class Decision:
    """One VM's fate in a plan, with the reason a person can read."""

    vm_id: int
    vm_name: str
    state: str
    action: Action
    reason: str
    tier: int = 0

    def line(self) -> str:
        """The log line for this decision."""
        verb = {Action.RESUME: "resume", Action.SKIP: "skip", Action.LOCKED: "LOCKED"}[self.action]
        tier = f" tier {self.tier}" if self.action == Action.RESUME else ""
        return f"VM {self.vm_id} ({self.vm_name}) {self.state}: {verb}{tier}: {self.reason}"


@dataclass(frozen=True)
class Plan:
    """Decisions for the VMs of one host, in VM ID order."""

    host_id: int
    host_name: str
    decisions: Tuple[Decision, ...]

    @property
    def to_resume(self) -> List[Decision]:
        """VMs to resume, highest tier first, then by ID."""
        chosen = [d for d in self.decisions if d.action == Action.RESUME]
        return sorted(chosen, key=lambda d: (-d.tier, d.vm_id))

    @property
    def tiers(self) -> List[List[Decision]]:
        """VMs to resume grouped by tier, highest tier first."""
        groups: Dict[int, List[Decision]] = {}
        for decision in self.to_resume:
            groups.setdefault(decision.tier, []).append(decision)
        return [groups[t] for t in sorted(groups, reverse=True)]

    @property
    def locked(self) -> List[Decision]:
        """Candidates that carry a lock: reported, never acted on."""
        return [d for d in self.decisions if d.action == Action.LOCKED]


Rule = Callable[[Vm, Host, Settings], Optional[str]]


# --- the rules, in the order they are asked -----------------------------------


def host_not_monitored(vm: Vm, host: Host, settings: Settings) -> Optional[str]:
    """A host that is not MONITORED may still be down: resuming there fails and loops."""
    if host.state != HostState.MONITORED:
        return f"host {host.name} is {host.state.name}, not MONITORED: left to host-reconnect"
    return None


def placed_elsewhere(vm: Vm, host: Host, settings: Settings) -> Optional[str]:
    """Only the host of the last history record may restart a VM."""
    if vm.host_id is None:
        return "never deployed"
    if vm.host_id != host.id:
        return f"last placed on host {vm.hostname or vm.host_id} (ID {vm.host_id}), not this one"
    return None


def user_powered_off(vm: Vm, host: Host, settings: Settings) -> Optional[str]:
    """A user's poweroff (ACTION 19/20) is a wish, not damage."""
    if vm.state == VmState.POWEROFF and vm.history is not None and vm.history.action in (
            HistoryAction.POWEROFF, HistoryAction.POWEROFF_HARD):
        return f"powered off by a user (last action {vm.history.action.name.lower()})"
    return None


def not_left_down(vm: Vm, host: Host, settings: Settings) -> Optional[str]:
    """Only ACTIVE/UNKNOWN and POWEROFF-by-monitor (or on its way there) are the marks an outage leaves."""
    if is_outage_state(vm) or monitor_powering_off(vm):
        return None
    if vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.RUNNING:
        return "already RUNNING"
    if vm.state == VmState.ACTIVE and vm.lcm_state.name.startswith("BOOT"):
        return f"already booting ({vm.lcm_state.name})"
    if vm.state in (VmState.STOPPED, VmState.UNDEPLOYED, VmState.SUSPENDED):
        return f"{vm.state.name.lower()} by a user"
    if vm.state == VmState.POWEROFF:
        action = vm.history.action.name.lower() if vm.history else "none"
        return f"powered off, last action {action}: not by the outage"
    return f"{vm.state_name} is not what an outage leaves"


def opted_out(vm: Vm, host: Host, settings: Settings) -> Optional[str]:
    """``<opt_attribute>=NO`` excludes a VM whatever the policy."""
    if vm.user_attr(settings.opt_attribute).strip().upper() == "NO":
        return f"opted out ({settings.opt_attribute}=NO)"
    return None


def not_opted_in(vm: Vm, host: Host, settings: Settings) -> Optional[str]:
    """Under ``policy = opt-in`` a VM needs ``<opt_attribute>=YES`` or ``AUTOSTART=YES``."""
    if settings.policy != "opt-in":
        return None
    if vm.user_attr(settings.opt_attribute).strip().upper() == "YES":
        return None
    if vm.user_attr("AUTOSTART").strip().upper() == "YES":
        return None
    return f"policy is opt-in and neither {settings.opt_attribute}=YES nor AUTOSTART=YES"


def not_left_down_or_failed_resume(vm: Vm, host: Host, settings: Settings) -> Optional[str]:
    """For the process carrying the VM only: also POWEROFF after its own failed resume (ACTION 11).

    A resume from POWEROFF whose deploy fails leaves the VM POWEROFF with the
    new record's ACTION still ``resume``: the mark of our attempt, not of a
    user, and only the process that resumed it may try again.
    """
    if is_failed_resume(vm):
        return None
    return not_left_down(vm, host, settings)


RULES: Tuple[Rule, ...] = (
    host_not_monitored, placed_elsewhere, user_powered_off, not_left_down, opted_out, not_opted_in)

#: The rules for the process that carries the VM's recovery (it resumed it before).
CARRYING_RULES: Tuple[Rule, ...] = tuple(
    not_left_down_or_failed_resume if rule is not_left_down else rule for rule in RULES)


def is_outage_state(vm: Vm) -> bool:
    """ACTIVE/UNKNOWN, or POWEROFF whose last history ACTION is ``monitor``."""
    if vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.UNKNOWN:
        return True
    return (vm.state == VmState.POWEROFF and vm.history is not None
            and vm.history.action == HistoryAction.MONITOR)


def in_transit(vm: Vm) -> bool:
    """ACTIVE/SHUTDOWN_POWEROFF: half-way through a poweroff (the monitor's or a user's); POWEROFF next."""
    return vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.SHUTDOWN_POWEROFF


def monitor_powering_off(vm: Vm) -> bool:
    """ACTIVE/SHUTDOWN_POWEROFF with the monitor's mark (last history ACTION 44): the monitor found the
    domain gone and oned is half-way to POWEROFF (its LCM thread set this state, its DispatchManager sets
    POWEROFF next). Seen on the real 6.10.5 and 7.4.0 for most VMs of a host whose domains were gone; a
    user's poweroff in progress carries ACTION poweroff instead."""
    return (in_transit(vm) and vm.history is not None
            and vm.history.action == HistoryAction.MONITOR)


def is_failed_resume(vm: Vm) -> bool:
    """POWEROFF whose last history ACTION is ``resume``: a resume from POWEROFF whose deploy failed."""
    return (vm.state == VmState.POWEROFF and vm.history is not None
            and vm.history.action == HistoryAction.RESUME)


def is_candidate(vm: Vm, host: Host, settings: Settings) -> bool:
    """True when no rule excludes the VM (it may still be locked)."""
    return all(rule(vm, host, settings) is None for rule in RULES)


def tier_of(vm: Vm, settings: Settings) -> Tuple[int, str]:
    """The VM's priority tier and, for a value that is not an integer, why it is 0."""
    raw = vm.user_attr(settings.priority_attribute).strip()
    if not raw:
        return 0, ""
    try:
        return int(raw), ""
    except ValueError:
        return 0, f"{settings.priority_attribute}={raw!r} is not an integer, tier 0"


def lock_hint(vm: Vm) -> str:
    """What the operator should do about a locked VM."""
    level = LOCK_LEVELS.get(vm.lock or 0, str(vm.lock))
    return f"locked (level {level}): not resumed; run 'onevm unlock {vm.id}' then 'onevm resume {vm.id}'"


def decide(vm: Vm, host: Host, settings: Settings, carrying: bool = False) -> Decision:
    """The decision for one VM: the first rule that applies, else resume (or locked).

    ``carrying``: asked by the process that carries the VM's recovery, which
    may also resume a VM its own failed resume left POWEROFF.
    """
    for rule in CARRYING_RULES if carrying else RULES:
        reason = rule(vm, host, settings)
        if reason is not None:
            return Decision(vm.id, vm.name, vm.state_name, Action.SKIP, reason)
    if vm.lock:
        return Decision(vm.id, vm.name, vm.state_name, Action.LOCKED, lock_hint(vm))
    tier, note = tier_of(vm, settings)
    if monitor_powering_off(vm):
        why = "being powered off by the monitor after the outage (resumed once POWEROFF)"
    elif vm.state == VmState.ACTIVE:
        why = "left UNKNOWN by the outage"
    elif is_failed_resume(vm):
        why = "back in POWEROFF after a failed deploy (last action resume)"
    else:
        why = "powered off by the outage (last action monitor)"
    if settings.policy == "opt-in":
        why += ", opted in"
    if note:
        why += f"; {note}"
    return Decision(vm.id, vm.name, vm.state_name, Action.RESUME, why, tier)


def plan(host: Host, vms: Iterable[Vm], settings: Settings,
         carried: Iterable[int] = ()) -> Plan:
    """One decision per VM (VM ID order) for recovering ``host``.

    ``carried``: IDs of VMs whose recovery this run may carry on (an earlier
    resume of theirs is recorded and nobody alive carries it).
    """
    ours = set(carried)
    decisions = tuple(decide(vm, host, settings, vm.id in ours) for vm in sorted(vms, key=lambda v: v.id))
    return Plan(host.id, host.name, decisions)
