"""Which VMs of a dead host to restart elsewhere, on which host, and why (pure).

A host that stays in ERROR is evacuated with ``one.vm.migrate(vm, target,
live=false)`` from ACTIVE/UNKNOWN: oned then goes PROLOG_MIGRATE_UNKNOWN ->
BOOT -> RUNNING on the target, keeps the VM's ID and history, runs nothing on
the dead host, and uses the disks where they are (the transfer drivers' ``mv``
moves nothing in that state). So it is only right for a VM whose disks every
host of the cluster reaches: its system datastore shared (``SHARED=YES``,
which oned derives from ``TM_MAD_CONF``: ``ssh`` and 7.x ``local`` say NO), and
every image disk placed in its (shared by nature) image datastore or in that
system datastore. oned itself does not refuse the rest: on the real 6.10.5
and 7.4.0 rigs a VM on an ``ssh`` system datastore was migrated from UNKNOWN
and booted on the target without its files (``/work/notes/h12-evacuation-findings.md``).

The rules are those of the resume policy (:mod:`one_hooks.recovery.policy`:
last placed on this host, never a user's poweroff, opt-in/opt-out, priority
tiers, locks reported with the command to run) plus the storage rule and a
target per VM: another MONITORED host of the same cluster whose iSCSI gate
passed (the caller runs the gate and passes the healthy ones), the one with
the most free memory once the VMs planned before are counted (fewest VMs,
then lowest ID on a tie). Each rule gives a reason a person can read: the
log lines and the ``--dry-run`` output.

A VM POWEROFF by the outage (last action ``monitor``) is not moved: a
migration of a powered-off VM is not a restart (it ends POWEROFF on the
target) and its transfer runs the normal path, which needs the source host.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..oned.model import Datastore, Host, HostState, LcmState, Vm, VmState
from .policy import LOCK_LEVELS, Settings, is_outage_state, opted_out, not_opted_in, placed_elsewhere
from .policy import tier_of, user_powered_off

__all__ = ["Fate", "Placement", "EvacuationPlan", "LOCAL_TMS", "host_down", "storage_problem",
           "eligible_targets", "plan", "decide_vm"]

#: Transfer drivers whose system datastore lives on each host's own disks (SHARED=NO in TM_MAD_CONF).
LOCAL_TMS = frozenset({"ssh", "local"})

#: Host states of a host that is not running its VMs (DISABLED: an operator or an evacuation
#: disabled it; its VMs went UNKNOWN without an ERROR state; OFFLINE: not monitored at all).
DOWN_STATES = (HostState.ERROR, HostState.DISABLED, HostState.OFFLINE)


class Fate(str, enum.Enum):
    """What an evacuation does with a VM of the dead host."""

    MOVE = "move"
    SKIP = "skip"        # not the evacuation's business (elsewhere, a user's poweroff, opted out...)
    LOCKED = "locked"    # reported with the command to run, never touched
    STAYS = "stays"      # should run but cannot be moved: local disks, no room, powered off


@dataclass(frozen=True)
class Placement:
    """One VM's fate in an evacuation plan, with the reason a person can read."""

    vm_id: int
    vm_name: str
    state: str
    fate: Fate
    reason: str
    tier: int = 0
    target_id: int = -1
    target_name: str = ""

    def line(self) -> str:
        """The log line for this placement."""
        if self.fate == Fate.MOVE:
            head = f"move tier {self.tier} to {self.target_name} (ID {self.target_id})"
        else:
            head = {Fate.SKIP: "skip", Fate.LOCKED: "LOCKED", Fate.STAYS: "NOT MOVED"}[self.fate]
        return f"VM {self.vm_id} ({self.vm_name}) {self.state}: {head}: {self.reason}"


@dataclass(frozen=True)
class EvacuationPlan:
    """Placements for the VMs of one dead host (VM ID order) and the plan's own problems."""

    host_id: int
    host_name: str
    placements: Tuple[Placement, ...]
    problems: Tuple[str, ...] = ()

    @property
    def moves(self) -> List[Placement]:
        """VMs to move, highest tier first, then by ID."""
        return sorted((p for p in self.placements if p.fate == Fate.MOVE), key=lambda p: (-p.tier, p.vm_id))

    @property
    def tiers(self) -> List[List[Placement]]:
        """Moves grouped by tier, highest tier first."""
        groups: Dict[int, List[Placement]] = {}
        for p in self.moves:
            groups.setdefault(p.tier, []).append(p)
        return [groups[t] for t in sorted(groups, reverse=True)]

    def of(self, fate: Fate) -> List[Placement]:
        """The placements with that fate, in VM ID order."""
        return [p for p in self.placements if p.fate == fate]


# --- the host ------------------------------------------------------------------


def host_down(host: Host) -> Optional[str]:
    """Why ``host`` cannot be evacuated (None: it is down, it may be)."""
    if host.state in DOWN_STATES:
        return None
    return (f"host {host.name} (ID {host.id}) is {host.state.name}: its VMs run there, nothing to "
            "evacuate (to empty a working host use 'onehost flush')")


# --- storage -------------------------------------------------------------------


def _ds_words(ds: Datastore) -> str:
    shared = {True: "YES", False: "NO", None: "unset"}[ds.shared]
    return f"datastore {ds.id} ({ds.name}, TM {ds.tm_mad or '-'}, SHARED={shared})"


def storage_problem(vm: Vm, datastores: Mapping[int, Datastore]) -> Optional[str]:
    """Why the VM's disks cannot follow it to another host (None: they all can).

    The system datastore (``HISTORY/DS_ID``) holds the VM's directory: its
    context, its volatile disks and every disk placed ``SYSTEM``. It must be
    shared. An image disk placed ``SELF`` or ``NONE`` lives in its image
    datastore, which must be known and not one of the host-local drivers.
    """
    if vm.history is None:
        return "never deployed"
    system = datastores.get(vm.history.ds_id)
    if system is None:
        return (f"its system datastore {vm.history.ds_id} is not in oned's datastore pool: "
                "cannot tell where its disks are")
    if system.shared is not True or system.tm_mad in LOCAL_TMS:
        return (f"local storage: system {_ds_words(system)} keeps its files on {vm.hostname}'s own disks; "
                "moving it would boot it without them")
    for disk in vm.disks:
        if disk.image_id < 0 or disk.target in ("", "SYSTEM"):
            continue  # in the system datastore's directory: shared, checked above
        image = datastores.get(disk.datastore_id)
        if image is None:
            return (f"disk {disk.disk_id}: image datastore {disk.datastore_id} is not in oned's "
                    "datastore pool: cannot tell where it is")
        if image.tm_mad in LOCAL_TMS:
            return f"disk {disk.disk_id}: local storage: image {_ds_words(image)}"
    return None


def storage_words(vm: Vm, datastores: Mapping[int, Datastore]) -> str:
    """Where a movable VM's disks are, in a few words."""
    system = datastores[vm.history.ds_id] if vm.history is not None else None
    if system is None:
        return "shared storage"
    in_images = sorted({d.datastore_id for d in vm.disks if d.image_id >= 0 and d.target not in ("", "SYSTEM")})
    extra = f", image datastore(s) {', '.join(map(str, in_images))}" if in_images else ""
    return f"shared storage (system {_ds_words(system)}{extra})"


# --- the VM --------------------------------------------------------------------


def powered_off_by_outage(vm: Vm) -> Optional[str]:
    """A VM the outage powered off earlier has nothing running to restart."""
    if vm.state == VmState.POWEROFF and is_outage_state(vm):
        return ("powered off by an earlier outage (last action monitor): not moved (a migration of a "
                f"powered-off VM needs its host); resume it once the host is back, or 'onevm migrate {vm.id}'")
    return None


def not_unknown(vm: Vm) -> Optional[str]:
    """Only ACTIVE/UNKNOWN is a VM the dead host took down with it."""
    if vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.UNKNOWN:
        return None
    return f"{vm.state_name}: not left UNKNOWN by the host's failure"


def lock_hint(vm: Vm, host_name: str) -> str:
    """What the operator should do about a locked VM of a dead host."""
    level = LOCK_LEVELS.get(vm.lock or 0, str(vm.lock))
    return (f"locked (level {level}): not moved; run 'onevm unlock {vm.id}' then "
            f"'one-hooks evacuate {host_name}'")


def decide_vm(vm: Vm, host: Host, datastores: Mapping[int, Datastore],
              settings: Settings) -> Tuple[Fate, str, int]:
    """(fate, reason, tier) of one VM before a target is chosen (MOVE means: movable)."""
    skip = (placed_elsewhere(vm, host, settings) or user_powered_off(vm, host, settings))
    if skip:
        return Fate.SKIP, skip, 0
    stays = powered_off_by_outage(vm)
    if stays:
        return Fate.STAYS, stays, 0
    skip = not_unknown(vm) or opted_out(vm, host, settings) or not_opted_in(vm, host, settings)
    if skip:
        return Fate.SKIP, skip, 0
    if vm.lock:
        return Fate.LOCKED, lock_hint(vm, host.name), 0
    tier, note = tier_of(vm, settings)
    local = storage_problem(vm, datastores)
    if local:
        return Fate.STAYS, f"{local}; it stays on {host.name} until the host is back", tier
    why = f"left UNKNOWN by {host.name}'s failure, {storage_words(vm, datastores)}"
    if settings.policy == "opt-in":
        why += ", opted in"
    if note:
        why += f"; {note}"
    return Fate.MOVE, why, tier


# --- targets -------------------------------------------------------------------


def eligible_targets(dead: Host, hosts: Iterable[Host]) -> Tuple[List[Host], List[str]]:
    """Hosts that may receive the dead host's VMs, and why each other one may not.

    Same cluster (its datastores and networks), MONITORED (a DISABLED host
    takes no new VM, one in ERROR would fail the boot), never the dead host.
    """
    chosen: List[Host] = []
    refused: List[str] = []
    for h in sorted(hosts, key=lambda h: h.id):
        if h.id == dead.id:
            continue
        if h.cluster_id != dead.cluster_id:
            continue  # another cluster: not a candidate at all, not worth a line
        if h.state != HostState.MONITORED:
            refused.append(f"host {h.name} (ID {h.id}) is {h.state.name}: not a target")
        elif h.share is None:
            refused.append(f"host {h.name} (ID {h.id}): oned shows no capacity: not a target")
        else:
            chosen.append(h)
    return chosen, refused


@dataclass
class _Room:
    host: Host
    free_cpu: int
    free_mem: int
    vms: int


def _need(vm: Vm) -> Tuple[int, int]:
    """What the VM takes of a host's share: CPU in percent of a core, memory in KB (oned's units)."""
    return int(round(vm.cpu * 100)), int(vm.memory_mb) * 1024


def _pick(rooms: Sequence[_Room], vm: Vm) -> Optional[_Room]:
    cpu, mem = _need(vm)
    fitting = [r for r in rooms if r.free_cpu >= cpu and r.free_mem >= mem]
    if not fitting:
        return None
    return min(fitting, key=lambda r: (-r.free_mem, r.vms, r.host.id))


def plan(dead: Host, vms: Iterable[Vm], datastores: Mapping[int, Datastore], targets: Sequence[Host],
         settings: Settings, refused_targets: Sequence[str] = ()) -> EvacuationPlan:
    """One placement per VM of ``dead`` (VM ID order); ``targets``: hosts whose gate passed."""
    problems: List[str] = list(refused_targets)
    down = host_down(dead)
    if down:
        return EvacuationPlan(dead.id, dead.name, (), (down,))
    decided = [(vm, *decide_vm(vm, dead, datastores, settings)) for vm in sorted(vms, key=lambda v: v.id)]
    rooms = [_Room(h, h.share.free_cpu, h.share.free_mem, h.share.running_vms)
             for h in targets if h.share is not None]
    if not rooms and any(fate == Fate.MOVE for _, fate, _, _ in decided):
        problems.append(f"no MONITORED host of cluster {dead.cluster or dead.cluster_id} with a passing "
                        "iSCSI gate to restart its VMs on")
    chosen: Dict[int, Placement] = {}
    # Highest tier first, so that the most important VMs get the room if there is not enough.
    for vm, fate, reason, tier in sorted(decided, key=lambda d: (-d[3], d[0].id)):
        if fate != Fate.MOVE:
            chosen[vm.id] = Placement(vm.id, vm.name, vm.state_name, fate, reason, tier)
            continue
        room = _pick(rooms, vm)
        if room is None:
            cpu, mem = _need(vm)
            chosen[vm.id] = Placement(vm.id, vm.name, vm.state_name, Fate.STAYS,
                                      f"no target has room (needs CPU {cpu / 100:g}, {mem // 1024} MB; "
                                      f"{len(rooms)} candidate host(s)); it stays on {dead.name}", tier)
            continue
        why = (f"{reason}; target: most free memory of {len(rooms)} candidate(s) "
               f"({room.free_mem // 1024} MB free, {room.vms} VMs)")
        cpu, mem = _need(vm)
        room.free_cpu -= cpu
        room.free_mem -= mem
        room.vms += 1
        chosen[vm.id] = Placement(vm.id, vm.name, vm.state_name, Fate.MOVE, why, tier,
                                  room.host.id, room.host.name)
    return EvacuationPlan(dead.id, dead.name, tuple(chosen[i] for i in sorted(chosen)), tuple(problems))
