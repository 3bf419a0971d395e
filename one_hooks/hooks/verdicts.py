"""The VM hooks' "left to ..." verdicts: pure, shared by the first look and the full hook.

Three endings cover nearly every VM event of an outage: the VM is carried by
the live process that resumed it (:func:`left_to_carrier`: the events its
resume causes), the VM's host is watched by host-reconnect
(:func:`left_to_watcher`), or the host is not MONITORED yet and
host-reconnect will fire when it is (:func:`left_to_host_hook`). The first look (:mod:`one_hooks.hooks.triage`)
reaches them from the payload and one cheap call; the full hook
(:mod:`one_hooks.hooks.entry`) words them with these same functions, so the
two cannot drift apart.

Both import this module and nothing here imports either of them: the first
look hands what it cannot settle to the full hook, and the full hook needs
only the verdicts. It is on the first look's path, so it imports nothing
(not even ``typing``: annotations are strings).
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs every hook ~8 ms
    from typing import Optional, Tuple

# OpenNebula's numbers the verdicts decide on (the tests hold them equal to
# the enums of one_hooks.oned.model, which this module must not import).
VM_STATE_POWEROFF = 8
HISTORY_ACTION_RESUME = 11
HISTORY_ACTION_MONITOR = 44
HOST_MONITORED = 2
HOST_STATE_NAMES = {
    0: "INIT", 1: "MONITORING_MONITORED", 2: "MONITORED", 3: "ERROR", 4: "DISABLED",
    5: "MONITORING_ERROR", 6: "MONITORING_INIT", 7: "MONITORING_DISABLED", 8: "OFFLINE",
}


class VmFacts:
    """What the verdicts read of a VM (the first look fills it from the payload, the full hook from its Vm)."""

    __slots__ = ("id", "name", "state", "lcm_state", "prev_lcm_state", "host_id", "hostname",
                 "action")

    def __init__(self, id: int, name: str, state: int, lcm_state: int, prev_lcm_state: int,
                 host_id: "Optional[int]", hostname: str, action: int) -> None:
        self.id = id
        self.name = name
        self.state = state
        self.lcm_state = lcm_state
        self.prev_lcm_state = prev_lcm_state
        self.host_id = host_id
        self.hostname = hostname
        self.action = action


def left_to_carrier(event: str, vm: VmFacts, carrier: "Optional[Tuple[int, str, str]]") -> "Optional[str]":
    """The line saying the VM is left to the live process that resumed it, or None.

    ``carrier`` is ``(pid, token, who)`` of a live carry claim
    (:func:`one_hooks.recovery.claims.live_carrier`). Its failed deploys fire
    vm-unknown (``PREV_LCM_STATE=BOOT_UNKNOWN``) or vm-poweroff (last action
    resume), a late monitor report vm-poweroff: that process deals with them.
    """
    if carrier is None or vm.host_id is None:
        return None
    if event == "vm-poweroff" and not (vm.state == VM_STATE_POWEROFF
                                       and vm.action in (HISTORY_ACTION_MONITOR, HISTORY_ACTION_RESUME)):
        return None
    pid, _, who = carrier
    return f"{event}: VM {vm.id} ({vm.name}): left to {who} (pid {pid}), which resumed it"


def left_to_watcher(event: str, vm: VmFacts, now: float, settle_interval: float,
                    claim: "Optional[Tuple[int, float]]") -> "Optional[str]":
    """The line saying the VM is left to the host's watcher, or None (look further).

    As the full hook: a ``vm-poweroff`` the monitor did not cause and a VM
    never deployed are not the watcher's; a claim ending within one look is
    not trusted. A failed deploy's event is (when the process that resumed
    the VM is gone, the watcher carries on within the attempts left).
    """
    if not may_be_left(event, vm) or claim is None:
        return None
    pid, until = claim
    if until <= now + settle_interval:
        return None
    return (f"{event}: VM {vm.id} ({vm.name}): host-reconnect (pid {pid}) watches host "
            f"{vm.hostname or vm.host_id} for {until - now:.0f} s more: left to it")


def left_to_host_hook(event: str, vm: VmFacts, host_name: str, host_state: int) -> "Optional[str]":
    """The line saying the VM waits for host-reconnect (host not MONITORED), or None."""
    if not may_be_left(event, vm) or host_state == HOST_MONITORED:
        return None
    state = HOST_STATE_NAMES.get(host_state, f"UNKNOWN_{host_state}")
    return f"{event}: VM {vm.id} ({vm.name}): host {host_name} is {state}: left to host-reconnect"


def may_be_left(event: str, vm: VmFacts) -> bool:
    """Whether the VM is one host-reconnect may take over at all.

    Not a VM never deployed, nor a ``vm-poweroff`` the monitor did not cause
    (the full hook says "nothing to do" for those).
    """
    if vm.host_id is None:
        return False
    if event == "vm-poweroff":
        return vm.state == VM_STATE_POWEROFF and vm.action == HISTORY_ACTION_MONITOR
    return True
