"""The operator's view of recoveries (``one-hooks status``), decided from parsed facts (pure).

Given what oned says now (hosts, one read of the VM pool), what the state
directory says (each host's last recovery, :mod:`~one_hooks.recovery.records`;
the live watch and carry claims, :mod:`~one_hooks.recovery.claims`; the
gate's stored verdicts) and the policy's settings, it tells for each host how
its last recovery went, which VMs an outage left down (or a failed resume
left POWEROFF) and why they are still down, and what needs the operator,
each as one line saying what to do.

What needs the operator (``status`` exits 1): a VM on a MONITORED host that
nobody watches or carries and that is still down although the policy would
resume it (or it is locked); a VM whose last outcome was a problem (failed,
gave up, locked, not running in time, gate failed) and that is still not
running (a VM that was not running in time counts while it is still
booting: its deploy is stuck); a VM whose host is gone from oned. Not
counted: VMs on a host that is down (host-reconnect recovers them when it
returns), carried by the live process that resumed them (it takes them to
an outcome), on a watched host (the watcher does), or left down on purpose
(opted out, a user's poweroff). The VMs a failed iSCSI gate held back are
named in their host's one line. Evacuations (:func:`evacuation_attention`): a
finished one that did not exit 0, and a host one fenced and disabled that is
still DISABLED.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import EXIT_OK
from ..node.iscsi import Verdict
from ..oned.model import HistoryAction, Host, HostState, LcmState, Vm, VmState
from .policy import Action, Settings, decide, is_failed_resume, is_outage_state
from .records import HostRecord, VmEntry
from .report import Outcome


@dataclass(frozen=True)
class Carried:
    """A VM the live process that resumed it carries to an outcome (a carry claim)."""

    vm_id: int
    pid: int
    who: str
    until: float


@dataclass(frozen=True)
class HostView:
    """One host: its state, who watches it, its last recovery, its stored gate verdict, its carried VMs."""

    host: Host
    watched_until: Optional[float]
    watcher_pid: Optional[int]
    record: Optional[HostRecord]
    verdict: Optional[Verdict]
    down: int  # VMs of this host in the down list
    carried: Tuple[Carried, ...] = ()


@dataclass(frozen=True)
class DownVm:
    """A VM an outage left down (or whose recovery had a problem) that is not running now."""

    vm: Vm
    host: str
    why: str
    last: Optional[VmEntry]
    attention: bool


@dataclass(frozen=True)
class Overview:
    """Everything ``status`` shows besides the hooks; ``attention`` lines need the operator."""

    hosts: Tuple[HostView, ...]
    down: Tuple[DownVm, ...]
    attention: Tuple[str, ...]


def _running_or_booting(vm: Vm) -> bool:
    if vm.state != VmState.ACTIVE:
        return False
    name = vm.lcm_state.name
    return vm.lcm_state == LcmState.RUNNING or (name.startswith("BOOT") and "FAILURE" not in name)


def _left_by_a_user(vm: Vm) -> bool:
    """Down on purpose: powered off, stopped, undeployed or suspended by someone, or gone."""
    if vm.state in (VmState.STOPPED, VmState.UNDEPLOYED, VmState.SUSPENDED, VmState.DONE):
        return True
    return (vm.state == VmState.POWEROFF and vm.history is not None
            and vm.history.action in (HistoryAction.POWEROFF, HistoryAction.POWEROFF_HARD))


def _recover_hint(host: str) -> str:
    return f"run 'one-hooks recover --host {host}'"


def _still_a_problem(vm: Vm, last: Optional[VmEntry]) -> bool:
    """The VM's last outcome was a problem and it is still not running (nor booting, unless it was
    not running in time: then booting is where its deploy is stuck)."""
    if last is None or not last.problem or _left_by_a_user(vm):
        return False
    if vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.RUNNING:
        return False
    return last.known == Outcome.TIMEOUT or not _running_or_booting(vm)


def classify(vm: Vm, host: Optional[Host], last: Optional[VmEntry], watched_until: Optional[float],
             settings: Settings, carrier: Optional[Carried] = None) -> Optional[DownVm]:
    """Whether ``vm`` belongs in the down list, why it is down, and whether the operator must act.

    ``carrier``: the live process carrying the VM's recovery, if any.
    """
    failed_resume = is_failed_resume(vm)  # POWEROFF by a failed resume from POWEROFF: our attempt's mark
    outage = is_outage_state(vm) or failed_resume
    problem_left = _still_a_problem(vm, last)
    if not outage and not problem_left:
        return None
    if host is None:
        return DownVm(vm, vm.hostname or "-", f"its host (ID {vm.host_id}) is not in oned any more: "
                                               "reschedule or recover the VM by hand", last, True)
    if host.state != HostState.MONITORED:
        return DownVm(vm, host.name, f"waiting for host {host.name} ({host.state.name}): host-reconnect "
                                     "recovers it when the host is back", last, False)
    if carrier is not None:
        return DownVm(vm, host.name, f"being carried by {carrier.who} (pid {carrier.pid}), which resumed it",
                      last, False)
    if watched_until is not None and outage:
        return DownVm(vm, host.name, "host-reconnect's watcher of the host recovers it", last, False)
    decision = decide(vm, host, settings, carrying=failed_resume)
    if decision.action == Action.LOCKED:
        return DownVm(vm, host.name, decision.reason, last, True)
    if outage and decision.action == Action.SKIP and not problem_left:
        return DownVm(vm, host.name, f"left down on purpose: {decision.reason}", last, False)
    if last is not None and last.problem:
        why = f"{last.label()}: {last.reason}"
    else:
        why = f"still down: {decision.reason}"
    return DownVm(vm, host.name, f"{why}; when fixed, {_recover_hint(host.name)}", last, True)


def overview(hosts: Sequence[Host], vms: Sequence[Vm], records: Mapping[int, HostRecord],
             claims: Mapping[int, Tuple[int, float]], verdicts: Mapping[int, Optional[Verdict]],
             settings: Settings, carriers: Optional[Mapping[int, Tuple[int, str, float]]] = None) -> Overview:
    """The hosts, the down VMs and what needs the operator, from one look at everything.

    ``claims``: host ID -> ``(pid, until)`` of its live watcher; ``carriers``:
    VM ID -> ``(pid, who, until)`` of the live process carrying it.
    """
    by_id = {h.id: h for h in hosts}
    carried = {vm_id: Carried(vm_id, *found) for vm_id, found in (carriers or {}).items()}
    carried_on: Dict[int, List[Carried]] = {}
    last_of: Dict[int, VmEntry] = {}
    for kept in records.values():
        if kept.host_id in by_id:
            for entry in kept.vms:
                last_of[entry.vm_id] = entry
    down: List[DownVm] = []
    for vm in sorted(vms, key=lambda v: v.id):
        if vm.host_id is None:
            continue
        if vm.id in carried:
            carried_on.setdefault(vm.host_id, []).append(carried[vm.id])
        claim = claims.get(vm.host_id)
        found = classify(vm, by_id.get(vm.host_id), last_of.get(vm.id),
                         claim[1] if claim else None, settings, carried.get(vm.id))
        if found is not None:
            down.append(found)
    count: Dict[str, int] = {}
    for d in down:
        count[d.host] = count.get(d.host, 0) + 1
    views = tuple(HostView(h, claims[h.id][1] if h.id in claims else None,
                           claims[h.id][0] if h.id in claims else None, records.get(h.id),
                           verdicts.get(h.id), count.get(h.name, 0), tuple(carried_on.get(h.id, ())))
                  for h in sorted(hosts, key=lambda h: h.id))
    # A host whose gate failed is one line naming its VMs held back, not one line per VM.
    gated = {v.host.name: v.record for v in views if v.record is not None and v.record.gate_failed}
    held: Dict[str, List[int]] = {}
    attention = []
    for d in down:
        if d.attention and d.host in gated and d.last is not None and d.last.known == Outcome.GATE:
            held.setdefault(d.host, []).append(d.vm.id)
        elif d.attention:
            attention.append(f"VM {d.vm.id} ({d.vm.name}) on {d.host}: {d.vm.state_name}: {d.why}")
    for name, record in gated.items():
        ids = held.get(name, [])
        if ids:
            problem = record.gate_problems[0] if record.gate_problems else "no detail"
            shown = ", ".join(map(str, ids[:10])) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
            attention.append(f"host {name}: its last iSCSI gate said {record.gate} ({problem}); VMs held back: "
                             f"{shown}: fix the storage, then {_recover_hint(name)}")
    return Overview(views, tuple(down), tuple(attention))


def evacuation_attention(evacuations: Sequence[Dict[str, Any]], hosts: Sequence[Host],
                         when: Callable[[float], str]) -> List[str]:
    """What needs the operator about evacuations (pure): a finished one that did not exit 0, and a host
    that one fenced and disabled and that is still DISABLED (nothing runs there until a person enables it)."""
    state = {h.id: h.state for h in hosts}
    lines = []
    for e in evacuations:
        name = str(e.get("host", f"#{e['host_id']}"))
        if e.get("watcher") is not None:  # still waiting out the grace, or moving: not finished
            continue
        code = e.get("exit_code")
        if code not in (None, EXIT_OK):
            problems = e.get("problems") or [e.get("summary", "")]
            lines.append(f"host {name}: its last evacuation ({e.get('stage', '?')}, "
                         f"{when(float(e.get('updated_at', 0)))}) exited {code}: {problems[0]}; "
                         f"'one-hooks evacuate {name} --dry-run' shows what it would do now")
        if e.get("disabled") and state.get(int(e["host_id"])) == HostState.DISABLED:
            fenced = f" at {when(float(e['fenced_at']))}" if e.get("fenced_at") else ""
            lines.append(f"host {name}: fenced{fenced} and disabled by an evacuation: repair it, then "
                         f"'onehost enable {name}' (the VMs moved away stay where they run)")
    return lines
