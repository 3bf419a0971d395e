"""``one-hooks status [--json]``: the operator's view during or after an outage.

Our hooks (registered, matching their templates, their last runs), each
host (its state, whether host-reconnect's watcher watches it and until when,
how many of its VMs the process that resumed them carries now, its last
recovery: when, by whom, the iSCSI gate's verdict, the outcomes, and the
gate's stored verdict), each host's last evacuation (issue 12's host-error
watcher or ``one-hooks evacuate``: its stage, fence, whether the host was
disabled, its outcome, a watcher still at it), the VMs an outage left down
that are still not running and why, and what needs the operator. Exit 0 when nothing does,
1 when something does (each said as one line with what to do), 2 bad input.

Read only: oned is asked with read calls alone, one of each kind (the
version, the hook pool, each of our hooks' execution logs, the host pool and
the VM pool: never one call per VM), and the state directory is only read
(no lock taken, no directory made, no settings snapshot left). The
decisions are :mod:`one_hooks.recovery.overview` (pure); this module
gathers the facts, words the hooks' part and renders text or JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..config import Config
from ..errors import EXIT_FAILED, EXIT_OK
from ..install import hook_templates as ht
from ..oned.model import Hook, HookExecution
from ..recovery import claims, records
from ..recovery.overview import DownVm, HostView, Overview, evacuation_attention, overview
from ..recovery.policy import Settings

#: Hook executions shown per hook (oned keeps 20).
RUNS_SHOWN = 3
#: Rows of the VM table and lines of the attention list in the text output (--json has them all).
ROWS_SHOWN = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``one-hooks status``."""
    parser.add_argument("--json", action="store_true", help="print everything as one JSON object")
    parser.epilog = ("exit codes: 0 nothing needs the operator; 1 something does (each said with what to do: "
                     "a hook missing, differing or whose last run failed, a VM still down, failed, given up "
                     "or locked, a host whose iSCSI gate failed, an evacuation that failed or a host it "
                     "fenced and disabled); 2 bad arguments or configuration.")


@dataclass(frozen=True)
class HookView:
    """One of our hooks: registered (ID) or not, matching or why not, its newest runs."""

    name: str
    hook_id: Optional[int]
    state: str  # matching, differs, missing, duplicated
    problem: str
    runs: Tuple[HookExecution, ...]


@dataclass(frozen=True)
class Facts:
    """What ``status`` read, decided: when, which oned, the hosts and VMs (the hooks are apart)."""

    now: float
    endpoint: str
    version: str
    view: Overview
    evacuations: Tuple[Dict[str, Any], ...] = ()  #: each host's last evacuation record (see evacuator.evacuations)


def hook_views(pool: Sequence[Hook], logs: Dict[int, Sequence[HookExecution]], config: Config) -> List[HookView]:
    """Our three hooks as the installer's plan sees them (pure)."""
    views = []
    for action in ht.plan_install(pool, config).actions:
        name = action.spec.name
        if action.kind == "allocate":
            views.append(HookView(name, None, "missing", "not registered", ()))
            continue
        # newest first: oned dates a record when its result arrives, and numbers it then too
        runs = tuple(sorted(logs.get(action.hook_id, ()), key=lambda r: (r.timestamp, r.execution_id),
                            reverse=True)[:RUNS_SHOWN])
        if action.kind == "update":
            views.append(HookView(name, action.hook_id, "differs", "differs: " + "; ".join(action.reasons), runs))
        elif action.kind == "delete":
            views.append(HookView(name, action.hook_id, "duplicated", action.reasons[0], runs))
        else:
            views.append(HookView(name, action.hook_id, "matching", "", runs))
    return views


def hook_attention(views: Sequence[HookView], when: Callable[[float], str]) -> List[str]:
    """What needs the operator about our hooks (pure)."""
    lines = []
    for v in views:
        where = f"hook {v.name}" + (f" (ID {v.hook_id})" if v.hook_id is not None else "")
        if v.state != "matching":
            lines.append(f"{where}: {v.problem}: run 'one-hooks-install' ('--check' names every difference)")
        if v.runs and v.runs[0].code != 0:
            last = v.runs[0]
            lines.append(f"{where}: its last run (execution {last.execution_id}, {when(last.timestamp)}) exited "
                         f"{last.code}: 'onehook show {v.hook_id}' shows its output")
    return lines


# --- gathering (the doors; read only) -------------------------------------------------


def gather(config: Config, oned: Any, now: float) -> Tuple[Facts, List[HookView]]:
    """Read oned and the state directory once."""
    from ..node.gate import stored_verdict
    from ..recovery.evacuator import evacuations

    version = oned.version()
    pool = tuple(oned.hook_pool())
    ours = tuple(oned.hook_info(h.id) for h in pool if h.name in ht.NAMES)
    hosts = oned.host_pool()
    vms = oned.vm_pool()
    state_dir = config.recovery.state_dir
    live = {h.id: found for h in hosts
            if (found := claims.live_claim(state_dir, h.id, now)) is not None}
    verdicts = {h.id: stored_verdict(state_dir, h.name) for h in hosts}
    view = overview(hosts, vms, records.read_all(state_dir), live, verdicts,
                    Settings.from_section(config.recovery), claims.live_carriers(state_dir, now))
    facts = Facts(now, oned.safe_endpoint, version, view, tuple(evacuations(state_dir, now)))
    return facts, hook_views(pool, {h.id: h.log for h in ours}, config)


# --- rendering (pure) -----------------------------------------------------------------


def clock(now: float) -> Callable[[float], str]:
    """Times as a person reads them: the time of day if today, else the date too."""
    today = time.localtime(now)[:3]

    def when(ts: float) -> str:
        local = time.localtime(ts)
        return time.strftime("%H:%M:%S" if local[:3] == today else "%Y-%m-%d %H:%M", local)
    return when


def _table(rows: Sequence[Sequence[str]]) -> List[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  " + ("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1]).rstrip() for r in rows]


def _outcomes(record: Optional[records.HostRecord]) -> str:
    if record is None:
        return "-"
    return ", ".join(f"{n} {records.outcome_label(name)}" for name, n in sorted(record.counts.items())) or "no VMs"


def _gate(view: HostView, when: Callable[[float], str]) -> Tuple[str, str]:
    record_gate = view.record.gate if view.record and view.record.gate else "-"
    verdict = view.verdict
    cached = f"{verdict.status.value} at {when(verdict.checked_at)}" if verdict else "-"
    return record_gate, cached


def render(facts: Facts, hooks: Sequence[HookView], attention: Sequence[str]) -> List[str]:
    """The text report."""
    when = clock(facts.now)
    view = facts.view
    lines = [f"one-hooks status at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(facts.now))}: "
             f"oned {facts.version} at {facts.endpoint}; {len(view.hosts)} host(s), "
             f"{len(view.down)} VM(s) down", "", "hooks:"]
    rows: List[Tuple[str, ...]] = [("NAME", "ID", "STATE", "LAST RUNS (newest first)")]
    for h in hooks:
        runs = ", ".join(f"{when(r.timestamp)} exit {r.code}" for r in h.runs) or "none kept"
        rows.append((h.name, str(h.hook_id) if h.hook_id is not None else "-", h.state, runs))
    lines += _table(rows)
    lines += ["", "hosts:"]
    rows = [("ID", "HOST", "STATE", "WATCHED UNTIL", "CARRIED", "LAST RECOVERY", "GATE", "STORED VERDICT",
             "VMS DOWN", "OUTCOMES")]
    for v in view.hosts:
        record = v.record
        last = f"{when(record.updated)} by {'+'.join(record.by)}" if record else "-"
        gate, cached = _gate(v, when)
        rows.append((str(v.host.id), v.host.name, v.host.state.name,
                     when(v.watched_until) if v.watched_until else "-", str(len(v.carried)), last, gate, cached,
                     str(v.down), _outcomes(record)))
    lines += _table(rows)
    if facts.evacuations:
        lines += ["", "evacuations (the last per host):"]
        rows = [("HOST", "STAGE", "UPDATED", "WATCHER", "FENCED", "DISABLED", "EXIT", "SUMMARY")]
        for evac in facts.evacuations:
            rows.append((str(evac.get("host", f"#{evac['host_id']}")), str(evac.get("stage", "-")),
                         when(float(evac["updated_at"])) if evac.get("updated_at") else "-",
                         f"pid {evac['watcher']}" if evac.get("watcher") is not None else "-",
                         when(float(evac["fenced_at"])) if evac.get("fenced_at") else "-",
                         "yes" if evac.get("disabled") else "no", str(evac.get("exit_code", "-")),
                         str(evac.get("summary", "-"))))
        lines += _table(rows)
    skipped = [(v.host.name, e) for v in view.hosts if v.record for e in v.record.vms
               if e.outcome == "SKIPPED"]
    if skipped:
        lines += ["", "skipped in the last recoveries:"]
        groups: Dict[Tuple[str, str], List[int]] = {}
        for host, e in skipped:
            groups.setdefault((host, e.reason), []).append(e.vm_id)
        for (host, reason), ids in sorted(groups.items()):
            shown = ", ".join(map(str, ids[:10])) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
            lines.append(f"  {host}: VM {shown}: {reason}")
    listed = [d for d in view.down if d.attention or d.why.startswith("left down on purpose")]
    if view.down:
        waiting = len(view.down) - len(listed)
        lines += ["", "VMs down" + (f" ({waiting} more wait for their host, its watcher or the process "
                                    "carrying them: see hosts)" if waiting else "") + ":"]
        if listed:
            rows = [("VM", "NAME", "HOST", "STATE", "LAST OUTCOME", "WHY")]
            rows.extend((str(d.vm.id), d.vm.name, d.host, d.vm.state_name, d.last.label() if d.last else "-", d.why)
                     for d in listed[:ROWS_SHOWN])
            lines += _table(rows)
            if len(listed) > ROWS_SHOWN:
                lines.append(f"  ... and {len(listed) - ROWS_SHOWN} more (--json lists every one)")
    lines.append("")
    if attention:
        lines.append(f"needs the operator ({len(attention)}):")
        lines += [f"  - {a}" for a in attention[:ROWS_SHOWN]]
        if len(attention) > ROWS_SHOWN:
            lines.append(f"  ... and {len(attention) - ROWS_SHOWN} more (--json lists every one)")
    else:
        lines.append("nothing needs the operator")
    return lines


def _down(d: DownVm) -> Dict[str, Any]:
    return {"id": d.vm.id, "name": d.vm.name, "host": d.host, "state": d.vm.state_name, "why": d.why,
            "attention": d.attention, "last_outcome": d.last.label() if d.last else None,
            "last_reason": d.last.reason if d.last else None, "last_at": d.last.at if d.last else None}


def as_dict(facts: Facts, hooks: Sequence[HookView], attention: Sequence[str]) -> Dict[str, Any]:
    """The JSON report (times are seconds since the epoch)."""
    return {
        "time": facts.now, "oned": {"endpoint": facts.endpoint, "version": facts.version},
        "hooks": [{"name": h.name, "id": h.hook_id, "state": h.state, "problem": h.problem,
                   "runs": [{"execution": r.execution_id, "time": r.timestamp, "code": r.code} for r in h.runs]}
                  for h in hooks],
        "hosts": [{"id": v.host.id, "name": v.host.name, "state": v.host.state.name,
                   "watched_until": v.watched_until, "watcher_pid": v.watcher_pid, "vms_down": v.down,
                   "carried": [{"vm_id": c.vm_id, "pid": c.pid, "who": c.who, "until": c.until}
                               for c in v.carried],
                   "last_recovery": v.record.to_dict() if v.record else None,
                   "stored_verdict": v.verdict.to_dict() if v.verdict else None} for v in facts.view.hosts],
        "vms_down": [_down(d) for d in facts.view.down],
        "evacuations": list(facts.evacuations),
        "attention": list(attention),
        "exit_code": EXIT_FAILED if attention else EXIT_OK,
    }


def run(args: argparse.Namespace, config: Config, oned: Any = None,
        wall: Callable[[], float] = time.time) -> int:
    """Gather, decide, print; exit 1 when something needs the operator."""
    if oned is None:
        from ..audit import stderr_notice
        from ..oned.client import Oned

        oned = Oned.from_config(config.oned, on_retry=stderr_notice("one-hooks"))
    now = wall()
    facts, hooks = gather(config, oned, now)
    attention = (hook_attention(hooks, clock(now)) + list(facts.view.attention)
                 + evacuation_attention(facts.evacuations, [v.host for v in facts.view.hosts], clock(now)))
    if args.json:
        json.dump(as_dict(facts, hooks, attention), sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        print("\n".join(render(facts, hooks, attention)))
    return EXIT_FAILED if attention else EXIT_OK
