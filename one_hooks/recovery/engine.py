"""Carry out a recovery plan: lock, gate, re-check, resume in order, carry each VM to an outcome.

The engine receives its doors as parameters: ``oned`` (anything with
``host_info``, ``vm_info``, ``vm_pool``, ``vm_action``, like
:class:`one_hooks.oned.client.Oned`), ``gate`` (anything with
``wait_healthy(host_name)``, like :class:`one_hooks.node.gate.Gate`; ``None`` when
``[iscsi] check = no``), a :class:`~one_hooks.recovery.ledger.Ledger`, a
:class:`~one_hooks.audit.Reporter`, and the clocks and sleep. Decisions come
from :mod:`one_hooks.recovery.policy` (which VMs), :mod:`~one_hooks.recovery.evidence`
(what became of a resume) and :mod:`~one_hooks.recovery.carry` (what next);
this module sequences them.

Order of a host's recovery:

1. read the host (unless the caller just did); not MONITORED -> nothing is
   resumed there;
2. plan (one decision per VM, reasons logged) from a pool read limited to the
   ID range of the host's VMs; a VM caught half-way through the monitor's
   poweroff (ACTIVE/SHUTDOWN_POWEROFF, last action monitor: oned's LCM thread
   has set it, its DispatchManager sets POWEROFF a moment later) is a
   candidate of its tier, and its worker waits for POWEROFF (at most
   :data:`IN_TRANSIT_WAIT` seconds) before the resume, which oned would refuse
   in between;
3. iSCSI gate once per host and run; not HEALTHY -> no resume, exit 1;
4. per priority tier, under the host lock: re-read the tier's VMs (one VM
   info, or one pool read for several), decide again (oned is the source of
   truth), leave a VM another live process carries to it, resume the others,
   recording in the ledger the evidence read just before each call; the lock
   is released before waiting;
5. carry the tier's VMs (or ``tier_timeout``), then the next tier: each look
   judges every VM from oned's evidence against its snapshot. oned runs a
   resume seconds after accepting it (its LCM queue), so a VM still in the
   state it was resumed from is waited for, never called failed; a failed
   deploy (back with a new RETIME or DEPLOY error) is tried again after
   ``retry_delay`` (doubling) up to ``attempts``; a resume oned dropped or a VM
   a late monitor report powered off is resumed again; every re-send re-reads
   the VM and the host under the host lock and asks the policy again;
6. the settle window (``settle_seconds``): host-reconnect runs it in a
   detached watcher process (:meth:`Engine.watch_host`), or inline when asked.

Hosts recovered in one run share the ``max_parallel`` workers and one pool
snapshot. A lost answer is checked by re-reading, not by re-sending at once.
"""
from __future__ import annotations

import concurrent.futures
import itertools
import os
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from ..audit import Reporter
from ..config import Config
from ..errors import OnedError, OnedNotFound, OneHooksError
from ..oned.model import Host, HostState, Vm
from .carry import Progress
from .ledger import Attempts, Ledger
from .policy import (
    Action, Decision, Settings, decide, is_failed_resume, is_outage_state, monitor_powering_off, plan,
)
from .report import Outcome, Report, VmResult
from .resume import PICKUP_GRACE, Resumer, Timing, _Carried

__all__ = ["Engine", "Timing", "build_engine", "id_range", "PICKUP_GRACE", "IN_TRANSIT_WAIT"]

#: Seconds a worker waits for a VM caught half-way through the monitor's poweroff to reach POWEROFF
#: before resuming it. On the real 6.10.5 and 7.4.0 rigs most VMs of a host whose domains were gone
#: are seen in that state at power-back; once such a VM was skipped and a priority-10 VM was resumed
#: 41 s late, after the whole priority-0 tier, by the settle watcher's next look.
IN_TRANSIT_WAIT = 10.0


class Engine(Resumer):
    """One recovery run (a hook process or one ``one-hooks recover``).

    Planning, the gate, looking and the settle window are here; resuming and
    carrying the resumed VMs to an outcome are :class:`~one_hooks.recovery.resume.Resumer`'s.
    """

    def __init__(self, oned: Any, settings: Settings, timing: Timing, ledger: Ledger,
                 reporter: Reporter, gate: Any = None, *, who: str = "recover",
                 dry_run: bool = False, honour_ledger: bool = True,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 wall: Callable[[], float] = time.time) -> None:
        self.oned = oned
        self.settings = settings
        self.timing = timing
        self.ledger = ledger
        self.out = reporter
        self.gate = gate
        self.who = who
        self.dry_run = dry_run
        self.honour_ledger = honour_ledger
        self.clock = clock
        self.sleep = sleep
        self.wall = wall
        self.report = Report()
        self._by = f"{who}[{os.getpid()}]"
        self._gated: Dict[int, bool] = {}
        self._to_settle = 0  # VMs sent to act on in this run (progress: done/total)
        self._settled = 0
        self._lock = threading.Lock()
        self._snapshot_lock = threading.Lock()
        self._snapshot: Tuple[int, float, Optional[Dict[int, Vm]]] = (0, 0.0, None)
        self._fetch_cost = 0.0
        # Pool reads cover only this ID range when the run serves one host (a hook).
        self._range: Optional[Tuple[int, int]] = None
        self._many_hosts = False
        # Orders resumes and looks: a look begun before a resume proves nothing about it.
        self._events = itertools.count(1)
        # VMs this run carries (claimed in the ledger), and those left to others (said once).
        self._carrying: Set[int] = set()
        self._left: Set[int] = set()
        # oned's LCM runs resumes first in, first out: (look, sent) of calls seen run (_overtaking).
        self._runs_seen: List[Tuple[int, int]] = []
        self._workers = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, timing.max_parallel), thread_name_prefix="resume")

    def close(self) -> None:
        """Stop the worker threads; VMs still claimed are no longer carried by this run."""
        self._workers.shutdown(wait=True)
        for vm_id in sorted(self._carrying):
            self.ledger.release(vm_id)
        self._carrying.clear()
        self.ledger.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- entry points -------------------------------------------------------

    def recover_hosts(self, host_ids: Sequence[int],
                      known_hosts: Optional[Dict[int, Host]] = None) -> Report:
        """Recover several hosts at once; resumes share the ``max_parallel`` workers.

        ``known_hosts`` are host records the caller has just read (saves a call each).
        """
        known = known_hosts or {}
        if len(host_ids) <= 1:
            for host_id in host_ids:
                self.recover_host(host_id, known_host=known.get(host_id))
            return self.report
        self._many_hosts = True  # one pool snapshot serves every host: no ID range
        with concurrent.futures.ThreadPoolExecutor(
                max_workers=min(len(host_ids), 32), thread_name_prefix="host") as hosts:
            futures = {h: hosts.submit(self.recover_host, h, known_host=known.get(h)) for h in host_ids}
            for host_id, future in futures.items():
                try:
                    future.result()
                except OneHooksError as exc:
                    # One host's trouble (oned refusing its reads, a lock held too
                    # long) must not stop the others; the run still exits 1.
                    self.out.error(f"host {host_id}: not recovered: {exc}")
                    with self._lock:
                        self.report.problems.append(f"host {host_id}: {exc}")
        return self.report

    def recover_host(self, host_id: int, only: Optional[Iterable[int]] = None,
                     settle: bool = False, known_host: Optional[Host] = None) -> Report:
        """Recover the candidates of one host (or just the VMs in ``only``).

        ``known_host`` is a host record the caller has just read (saves a call).
        """
        started = self.clock()
        host = known_host if known_host is not None else self.oned.host_info(host_id)
        wanted = sorted(set(only)) if only is not None else None
        if not self._many_hosts:
            self._range = id_range(host)
        if wanted is not None:
            vms = [self.oned.vm_info(vm_id) for vm_id in wanted]
        else:
            # Any pool read of this run will do for the plan: each VM is read
            # again under the host lock right before it is acted on.
            vms = [vm for vm in self._pool_after(0).values() if vm.host_id == host.id]
        if host.state != HostState.MONITORED:
            self.out.line(f"host {host.id} ({host.name}) is {host.state.name}, not MONITORED: "
                          "nothing resumed there now, host-reconnect will run when it is back")
        self._pass(host, plan(host, vms, self.settings, self._adoptable(vms)), log_skips=True)
        if settle and self.timing.settle_seconds > 0 and host.state == HostState.MONITORED:
            self._settle(host.id, started + self.timing.settle_seconds)
        return self.report

    def watch_host(self, host_id: int) -> Report:
        """Only the settle window: recover VMs of a MONITORED host that become candidates.

        host-reconnect runs this in a detached process after its first pass,
        so the window does not hold one of onehem's hook slots.
        """
        # No read now: host-reconnect has just read the host, and the window's
        # first look reads it again (and stops if it is not MONITORED).
        self._settle(host_id, self.clock() + self.timing.settle_seconds)
        self.out.line(f"host {host_id}: settle window over")
        return self.report

    # --- one pass over a plan -----------------------------------------------

    def _pass(self, host: Host, host_plan: Any, log_skips: bool) -> None:
        for d in host_plan.decisions:
            if d.action == Action.SKIP:
                if log_skips:
                    self.out.line(d.line())
                self._result(d, host, Outcome.SKIPPED, d.reason)
            elif d.action == Action.LOCKED:
                self.out.warning(d.line())
                self._result(d, host, Outcome.LOCKED, d.reason)
            else:
                self.out.line(d.line())
        tiers = host_plan.tiers
        if not tiers or not self._gate_passes(host, [d for t in tiers for d in t]):
            return
        if self.dry_run:
            for d in host_plan.to_resume:
                self._result(d, host, Outcome.PLANNED, f"dry run: {d.reason}")
            return
        with self._lock:
            self._to_settle += len(host_plan.to_resume)
        waiting: List[_Carried] = []
        for tier in tiers:
            self.out.line(f"host {host.name}: tier {tier[0].tier}: resuming {len(tier)} VM(s)")
            tier_start = self.clock()
            # Waiting for another process: real time, whatever clock this run uses.
            with self.ledger.host_lock(host.id, self.timing.lock_timeout):
                # Re-read right before acting: one pool call for the tier, not one per VM.
                fresh = self._reread(host, tier)
                acts = [self._workers.submit(self._act, host, d, fresh.get(d.vm_id))
                        for d in tier]
                sent = [p for p in (f.result() for f in acts) if p is not None]
            waiting = self._carry(host, waiting + sent, tier_start + self.timing.tier_timeout)
            if waiting and tier is not tiers[-1]:
                self.out.warning(f"host {host.name}: tier {tier[0].tier} not all RUNNING after "
                                 f"{self.timing.tier_timeout:g} s; starting the next tier")
        self._carry(host, waiting, float("inf"))

    def _gate_passes(self, host: Host, targets: Sequence[Decision]) -> bool:
        """Run the iSCSI gate once per host and run; record the targets it blocks."""
        if host.id not in self._gated:
            self._gated[host.id] = self._run_gate(host)
        if self._gated[host.id]:
            return True
        for d in targets:
            self._result(d, host, Outcome.GATE, f"iSCSI gate did not pass on {host.name}")
        return False

    def _run_gate(self, host: Host) -> bool:
        if self.gate is None:
            self.out.line(f"host {host.name}: iSCSI gate off ([iscsi] check = no)")
            self.report.gates[host.name] = "off"
            return True
        self.out.line(f"host {host.name}: checking iSCSI sessions before any resume")
        try:
            verdict = self.gate.wait_healthy(host.name)
        except OneHooksError as exc:  # node unreachable etc.: unknown, never healthy
            self.out.error(f"host {host.name}: iSCSI gate UNKNOWN: {exc}")
            self.report.problems.append(f"{host.name}: iSCSI gate UNKNOWN: {exc}")
            self.report.gates[host.name] = "UNKNOWN"
            return False
        status = str(getattr(verdict.status, "name", verdict.status))
        self.report.gates[host.name] = status
        if verdict.healthy:
            self.out.line(f"host {host.name}: iSCSI gate HEALTHY")
            return True
        problems = list(getattr(verdict, "problems", ())) or ["no detail"]
        for problem in problems:
            self.out.error(f"host {host.name}: iSCSI gate {status}: {problem}")
            self.report.problems.append(f"{host.name}: iSCSI {status}: {problem}")
        return False

    # --- acting on one VM ---------------------------------------------------

    def _reread(self, host: Host, tier: Sequence[Any]) -> Dict[int, Vm]:
        """The tier's VMs as oned has them now ({}: read them one by one).

        A few VMs are cheaper to read one by one than the whole pool.
        """
        if len(tier) < 4:
            return {}
        try:
            return {vm.id: vm for vm in self._pool_after(next(self._events)).values()
                    if vm.host_id == host.id}
        except OnedError as exc:
            self.out.warning(f"host {host.name}: pool re-read failed ({exc}); reading VMs one by one")
            return {}

    def _adoptable(self, vms: Iterable[Vm]) -> List[int]:
        """VMs a failed resume of ours left POWEROFF (ACTION resume) whose recovery this run may carry on."""
        if not self.honour_ledger:
            return []
        found = []
        for vm in vms:
            if is_failed_resume(vm):
                record = self.ledger.get(vm.id)
                if record.before is not None and not record.final:
                    found.append(vm.id)
        return found

    def _act(self, host: Host, planned: Decision, known: Optional[Vm] = None) -> Optional[_Carried]:
        """Re-decide on a fresh read, then resume once or carry on an earlier resume. Under the host lock."""
        try:
            vm = known if known is not None else self.oned.vm_info(planned.vm_id)
        except OnedNotFound:
            self._finish(planned, host, Outcome.HANDLED, "VM no longer exists")
            return None
        except OnedError as exc:
            self._finish(planned, host, Outcome.FAILED, f"cannot re-read before resume: {exc}")
            return None
        carrier = self.ledger.carrier_of(vm.id)
        if carrier is not None and carrier.token != self.ledger.token:
            self._finish(planned, host, Outcome.HANDLED,
                         f"left to {carrier.who} (pid {carrier.pid}), which resumed it", vm)
            return None
        record = self.ledger.get(vm.id)
        if not self.honour_ledger and (record.sent or record.final):
            self.ledger.clear(vm.id)  # an operator's explicit request starts afresh
            record = Attempts(vm.id)
        pending = record.before is not None and not record.final
        if monitor_powering_off(vm):
            vm = self._past_poweroff(vm)
        fresh = decide(vm, host, self.settings, carrying=pending)
        if fresh.action == Action.LOCKED:
            self._finish(planned, host, Outcome.LOCKED, fresh.reason, vm)
            return None
        if fresh.action == Action.SKIP:
            outcome = Outcome.SKIPPED if is_outage_state(vm) else Outcome.HANDLED
            self._finish(planned, host, outcome, f"state moved on: {fresh.reason}", vm)
            return None
        if record.final:
            self.out.warning(f"VM {vm.id} ({vm.name}): {record.final} earlier ({record.by}, "
                             f"{record.applied} failed attempt(s)): not resumed again by a hook; "
                             f"fix its host, then 'onevm resume {vm.id}' or 'one-hooks recover'")
            self._finish(planned, host, Outcome.SKIPPED, f"{record.final} earlier by {record.by}", vm,
                         quiet=True)
            return None
        if pending and record.before is not None:
            return self._adopt(host, fresh, vm, record, record.before)
        return self._resume(host, fresh, vm, Progress(record.applied, 0, self.clock(), self.clock()))

    def _past_poweroff(self, vm: Vm) -> Vm:
        """``vm`` read again until the monitor's poweroff is done (POWEROFF), :data:`IN_TRANSIT_WAIT` at most.

        In a worker, so the tier's VMs wait side by side; whatever it became is decided on afresh.
        """
        self.out.line(f"VM {vm.id} ({vm.name}): being powered off by the monitor this instant "
                      "(ACTIVE/SHUTDOWN_POWEROFF): waiting for POWEROFF before the resume")
        deadline = self.clock() + IN_TRANSIT_WAIT
        while monitor_powering_off(vm) and self.clock() < deadline:
            self.sleep(min(self.timing.poll_interval, 0.5))
            try:
                vm = self.oned.vm_info(vm.id)
            except OnedNotFound:
                break  # gone: the resume's own handling tells, no need to wait the rest out
            except OnedError:
                continue  # unreadable this instant: the next look tells
        return vm

    # --- looking ----------------------------------------------------------------

    def _look(self, host: Host, vm_ids: Sequence[int]) -> Tuple[int, Dict[int, Vm]]:
        """The look's place in the run's order of events, and some VMs of a host as seen.

        One VM: one info call. More: one pool snapshot shared by every host of
        the run and reused within a poll interval, so polling 25 hosts does not
        cost 25 pool calls per look. A VM the look does not list no longer exists.
        """
        try:
            if len(vm_ids) == 1 and not self._many_hosts:
                taken = next(self._events)
                try:
                    return taken, {vm_ids[0]: self.oned.vm_info(vm_ids[0])}
                except OnedNotFound:
                    return taken, {}
            with self._snapshot_lock:
                taken, when, snapshot = self._snapshot
                # Polling must not crowd out the resumes: a pool call that took t
                # seconds is not repeated within 4 t (oned stays >= 80 % free).
                gap = max(self.timing.poll_interval, 4 * self._fetch_cost) * 0.9
                if snapshot is None or self.clock() - when >= gap:
                    taken, when, snapshot = self._fetch()
            return taken, {i: snapshot[i] for i in vm_ids if i in snapshot}
        except OnedError as exc:
            self.out.warning(f"host {host.name}: cannot read VM states: {exc}")
            return 0, {}

    def _pool_after(self, event: int) -> Dict[int, Vm]:
        """Every VM, as read by a pool call that began after ``event``.

        Hosts recovered together share such reads: one pool call can serve
        every host that asked before it began.
        """
        with self._snapshot_lock:
            taken, _, snapshot = self._snapshot
            if snapshot is None or taken <= event:
                taken, _, snapshot = self._fetch()
            return snapshot

    def _fetch(self) -> Tuple[int, float, Dict[int, Vm]]:
        """One pool call; caller holds the snapshot lock."""
        taken, when = next(self._events), self.clock()
        snapshot = {vm.id: vm for vm in (self.oned.vm_pool(id_range=self._range)
                                         if self._range else self.oned.vm_pool())}
        self._fetch_cost = max(0.0, self.clock() - when)
        self._snapshot = (taken, when, snapshot)
        return taken, when, snapshot

    # --- settle window ------------------------------------------------------

    def _settle(self, host_id: int, until: float) -> None:
        """Recover VMs that become candidates after the host came back."""
        self.out.line(f"host {host_id}: watching its VMs for "
                      f"{self.timing.settle_seconds:g} s (VM states arrive after the host's)")
        while self.clock() + self.timing.settle_interval <= until:
            self.sleep(self.timing.settle_interval)
            try:
                fresh_host = self.oned.host_info(host_id)
                span = id_range(fresh_host)
                if not self._many_hosts:
                    # The watcher's own pool reads (re-reads before acting, waits for
                    # RUNNING) then cover this host's VMs, not the whole cloud.
                    self._range = span
                vms = list(self.oned.vm_pool(host_id=host_id, id_range=span)) if span else []
            except OnedError as exc:
                self.out.warning(f"host {host_id}: settle look failed: {exc}")
                continue
            if fresh_host.state != HostState.MONITORED:
                self.out.warning(f"host {fresh_host.name} is {fresh_host.state.name}: stop watching")
                return
            # Not again what this window ended without RUNNING; a VM seen RUNNING that
            # is down again is a new incident: its VM hook left it to us.
            done = {r.vm_id for r in self.report.results.values()
                    if r.outcome in (Outcome.FAILED, Outcome.TIMEOUT, Outcome.GATE, Outcome.GAVE_UP)}
            adoptable = set(self._adoptable(vms))
            new = [vm for vm in vms if vm.id not in done
                   and decide(vm, fresh_host, self.settings, vm.id in adoptable).action == Action.RESUME
                   and not self._not_ours(vm)]
            if new:
                self.out.line(f"host {fresh_host.name}: {len(new)} more VM(s) became candidates")
                self._pass(fresh_host, plan(fresh_host, new, self.settings, adoptable), log_skips=False)

    def _not_ours(self, vm: Vm) -> bool:
        """A VM another live process carries, or one a process gave up on: said once, then left quietly."""
        carrier = self.ledger.carrier_of(vm.id)
        if carrier is not None and carrier.token != self.ledger.token:
            why = f"left to {carrier.who} (pid {carrier.pid}), which resumed it"
        else:
            record = self.ledger.get(vm.id) if self.honour_ledger else Attempts(vm.id)
            if not record.final:
                return False
            why = f"{record.final} earlier ({record.by}): not resumed again by a hook"
        if vm.id not in self._left:
            self._left.add(vm.id)
            self.out.line(f"VM {vm.id} ({vm.name}): {why}")
        return True

    # --- helpers --------------------------------------------------------------

    def _result(self, d: Decision, host: Host, outcome: Outcome, reason: str,
                after: str = "", attempts: int = 0, seconds: float = 0.0) -> None:
        with self._lock:
            self.report.add(VmResult(d.vm_id, d.vm_name, host.name, d.state, after or d.state,
                                     outcome, reason, attempts, round(seconds, 3), d.tier))

    def _finish(self, d: Decision, host: Host, outcome: Outcome, reason: str,
                vm: Optional[Vm] = None, attempts: int = 0, seconds: float = 0.0,
                quiet: bool = False) -> None:
        """Record a final outcome and say it (``quiet``: the caller has said it)."""
        with self._lock:
            self._settled += 1
            done, total = self._settled, max(self._to_settle, self._settled)
            progress = f"[{done}/{total}] "
        self.out.progress(done, total, outcome.value)
        text = f"{progress}VM {d.vm_id} ({d.vm_name}): {outcome.value}: {reason}"
        if quiet:
            pass
        elif outcome in (Outcome.RUNNING, Outcome.HANDLED, Outcome.SKIPPED):
            self.out.line(text)
        elif outcome == Outcome.LOCKED:
            self.out.warning(text)
        else:
            self.out.error(text)
        self._result(d, host, outcome, reason, vm.state_name if vm else "", attempts, seconds)


def id_range(host: Host) -> Optional[Tuple[int, int]]:
    """The smallest ID range holding every VM oned lists on ``host`` (None: no VM there).

    A host lists its VMs under ``HOST/VMS`` while they are allocated to it,
    in UNKNOWN and POWEROFF too: the VMs an outage leaves down are inside.
    """
    return (min(host.vm_ids), max(host.vm_ids)) if host.vm_ids else None


def build_engine(config: Config, out: Reporter, *, oned: Any = None, gate: Any = None,
                 who: str = "recover", settle: bool = False, dry_run: bool = False,
                 honour_ledger: bool = True,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 wall: Callable[[], float] = time.time) -> Engine:
    """An engine wired from the configuration; doors given as arguments win."""
    if oned is None:
        from ..oned.client import Oned
        oned = Oned.from_config(config.oned)
    state_dir = config.recovery.state_dir
    if gate is None and config.iscsi.check:
        from ..node.gate import Gate
        from ..node.runner import Node
        gate = Gate(Node.from_config(config), config.iscsi, config.iscsiadm_argv(),
                    state_dir, clock=clock, sleep=sleep, wall=wall)
    r = config.recovery
    ledger = Ledger.from_section(r, wall=wall)
    return Engine(oned, Settings.from_section(r), Timing.from_config(config, settle=settle),
                  ledger, out, gate if config.iscsi.check else None, who=who, dry_run=dry_run,
                  honour_ledger=honour_ledger, clock=clock, sleep=sleep, wall=wall)
