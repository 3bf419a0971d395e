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
   ID range of the host's VMs;
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
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from ..audit import Reporter
from ..config import Config
from ..errors import OnedActionRefused, OnedError, OnedLocked, OnedNotFound, OneHooksError
from ..oned.model import Host, HostState, LcmState, Vm, VmState
from .carry import Bounds, Progress, Step, carry_seconds, next_step
from .evidence import Judgement, Snapshot, Verdict, judge
from .ledger import Attempts, Ledger
from .policy import Action, Decision, Settings, decide, is_failed_resume, is_outage_state, lock_hint, plan
from .report import Outcome, Report, VmResult

__all__ = ["Engine", "Timing", "build_engine", "id_range", "PICKUP_GRACE"]

#: Seconds a resume may show no sign of being run before it is sent again
#: (doubling each time). oned ran resumes 0.3-1.1 s + 25-56 ms per resume in
#: its queue after accepting them, 10.4 s at worst with 170 in flight, on both
#: real versions (rig-findings); the simulated storm of 2,000 VMs queues for
#: ~80 s. A resume oned dropped without a trace is rare (the usual drop shows:
#: the VM is POWEROFF by the monitor, and is sent again at once), so the grace
#: errs long: a needless re-send costs a "resumed twice" in the audit trail.
PICKUP_GRACE = 60.0


@dataclass(frozen=True)
class Timing:
    """Bounds and pacing of one recovery run (seconds unless said otherwise)."""

    max_parallel: int = 8
    wait_running: float = 300.0
    tier_timeout: float = 300.0
    settle_seconds: float = 0.0
    settle_interval: float = 10.0
    poll_interval: float = 1.0
    call_retries: int = 4
    call_retry_delay: float = 1.0
    lock_timeout: float = 600.0
    attempts: int = 3
    retry_delay: float = 10.0
    pickup_grace: float = PICKUP_GRACE

    @classmethod
    def from_config(cls, config: Config, settle: bool = False) -> "Timing":
        """Timing from ``[recovery]`` and ``[oned]``; ``settle`` only for host-reconnect."""
        r = config.recovery
        return cls(
            max_parallel=r.max_parallel, wait_running=r.wait_running, tier_timeout=r.tier_timeout,
            settle_seconds=r.settle_seconds if settle else 0.0, settle_interval=r.settle_interval,
            # Looks for RUNNING: often enough to pace tiers, rare enough to keep oned idle.
            poll_interval=min(1.0, max(0.25, r.settle_interval / 4)),
            call_retries=config.oned.retries, call_retry_delay=config.oned.retry_delay,
            lock_timeout=max(60.0, r.wait_running + r.tier_timeout),
            attempts=r.attempts, retry_delay=r.retry_delay)

    @property
    def bounds(self) -> Bounds:
        """The limits of carrying one VM."""
        return Bounds(self.attempts, self.retry_delay, self.wait_running, self.pickup_grace)

    @property
    def carry_seconds(self) -> float:
        """The longest one VM may be carried: every attempt's wait and every retry delay."""
        return carry_seconds(self.attempts, self.wait_running, self.retry_delay)


@dataclass
class _Carried:
    """A VM this run resumed and carries to a final outcome."""

    decision: Decision
    before: Snapshot
    progress: Progress
    #: order of the last accepted resume among this run's events (see Engine._look)
    seq: int = 0
    #: this run saw it BOOT_* or RUNNING since the last call (its own evidence of a pick-up)
    seen: bool = False
    sends_total: int = 1


class Engine:
    """One recovery run (a hook process or one ``one-hooks recover``)."""

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
            return True
        self.out.line(f"host {host.name}: checking iSCSI sessions before any resume")
        try:
            verdict = self.gate.wait_healthy(host.name)
        except OneHooksError as exc:  # node unreachable etc.: unknown, never healthy
            self.out.error(f"host {host.name}: iSCSI gate UNKNOWN: {exc}")
            self.report.problems.append(f"{host.name}: iSCSI gate UNKNOWN: {exc}")
            return False
        status = str(getattr(verdict.status, "name", verdict.status))
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

    def _adopt(self, host: Host, d: Decision, vm: Vm, record: Attempts, before: Snapshot) -> _Carried:
        """Carry on the recovery a process that died left half done: judge its last call first."""
        self._claim(vm.id)
        ago = max(0.0, self.wall() - before.called)
        now = self.clock()
        self.out.line(f"VM {vm.id} ({vm.name}): carrying on from {record.by or 'an earlier run'} "
                      f"(no longer running), whose resume was accepted {ago:.0f} s ago")
        return _Carried(d, before, Progress(record.applied, 1, now - ago, now - ago), 0,
                        sends_total=record.sent)

    def _claim(self, vm_id: int) -> None:
        self.ledger.carry(vm_id, self.who, self.wall() + self.timing.carry_seconds + 60)
        with self._lock:
            self._carrying.add(vm_id)

    def _resume(self, host: Host, d: Decision, vm: Vm, progress: Progress,
                carried: Optional[_Carried] = None) -> Optional[_Carried]:
        """Send one resume; the carried VM, or None if its recovery ended here.

        A transient error, or a refusal while the VM is still a candidate (oned
        refuses a VM caught in SHUTDOWN_POWEROFF, and a busy oned's database can
        answer "Error getting virtual machine" for a VM that exists: both seen
        on the real rigs), is retried after a re-read, ``call_retries`` times.
        """
        for k in range(self.timing.call_retries + 1):
            self._same_second_guard(vm)
            before = Snapshot.of(vm, self.wall())
            try:
                self.oned.vm_action("resume", vm.id)
                return self._accepted(d, vm, before, progress, carried)
            except OnedLocked:
                self._end(d, host, Outcome.LOCKED, lock_hint(vm), vm, carried, clear=True)
                return None
            except OnedError as exc:
                refused = isinstance(exc, (OnedActionRefused, OnedNotFound))
                what = f"oned refused resume: {exc.message}" if refused else f"resume failed: {exc}"
                if not (refused or exc.transient) or k == self.timing.call_retries:
                    return self._refused(host, d, before, progress, carried, what)
                delay = self.timing.call_retry_delay * 2 ** k
                if not refused:
                    self.out.warning(f"VM {vm.id}: resume: {exc}; retrying in {delay:g} s")
                self.sleep(delay)
                # The call may have reached oned before the answer was lost, or the VM moved on.
                moved, again = self._after_refusal(host, d, vm, before, progress, carried)
                if again is None:
                    return moved
                vm = again
        raise AssertionError("unreachable")  # pragma: no cover

    def _after_refusal(self, host: Host, d: Decision, last: Vm, before: Snapshot, progress: Progress,
                       carried: Optional[_Carried]) -> Tuple[Optional[_Carried], Optional[Vm]]:
        """Re-read after a refused or lost call: (carried or None, None) if that settled it,
        else (None, the VM to try again with)."""
        try:
            vm = self.oned.vm_info(d.vm_id)
        except OnedNotFound:
            self._end(d, host, Outcome.HANDLED, "VM no longer exists", None, carried, clear=True)
            return None, None
        except OnedError:
            return None, last  # oned is struggling: the next call tells
        if vm.state == VmState.ACTIVE and vm.lcm_state in (LcmState.BOOT_UNKNOWN, LcmState.BOOT_POWEROFF):
            return self._accepted(d, vm, before, progress, carried), None
        if vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.SHUTDOWN_POWEROFF:
            return None, vm  # the monitor is powering it off this instant: POWEROFF next
        fresh = decide(vm, host, self.settings, carrying=True)
        if fresh.action == Action.RESUME:
            return None, vm
        if fresh.action == Action.LOCKED:
            self._end(d, host, Outcome.LOCKED, fresh.reason, vm, carried, clear=True)
        else:
            self._end(d, host, Outcome.HANDLED, f"state moved on: {fresh.reason}", vm, carried, clear=True)
        return None, None

    def _accepted(self, d: Decision, vm: Vm, before: Snapshot, progress: Progress,
                  carried: Optional[_Carried]) -> _Carried:
        """Record an accepted call: ledger, claim, and the carried VM's new state."""
        now = self.clock()
        record = self.ledger.sent(vm.id, self._by, before)
        if vm.id not in self._carrying:
            self._claim(vm.id)
        sends = progress.sends + 1
        attempt = progress.applied + 1
        more = f", sent again ({sends})" if sends > 1 else ""
        self.out.line(f"VM {vm.id} ({vm.name}): resume accepted (attempt {attempt}{more})")
        started = now if sends == 1 else progress.attempt_started
        new = Progress(progress.applied, sends, started, now)
        if carried is None:
            return _Carried(d, before, new, next(self._events), sends_total=record.sent)
        carried.before, carried.progress, carried.seq, carried.seen = before, new, next(self._events), False
        carried.sends_total = record.sent
        return carried

    def _refused(self, host: Host, d: Decision, before: Snapshot, progress: Progress,
                 carried: Optional[_Carried], why: str) -> Optional[_Carried]:
        """The call failed for good: did the resume go through anyway, or the VM move on?"""
        try:
            vm = self.oned.vm_info(d.vm_id)
        except OnedError as exc:
            self._end(d, host, Outcome.FAILED, f"{why}; re-read failed: {exc}", None, carried)
            return None
        if vm.state == VmState.ACTIVE and vm.lcm_state in (LcmState.BOOT_UNKNOWN, LcmState.BOOT_POWEROFF):
            return self._accepted(d, vm, before, progress, carried)
        if not (is_outage_state(vm) or is_failed_resume(vm)):
            self._end(d, host, Outcome.HANDLED, f"state moved on to {vm.state_name} ({why})", vm,
                      carried, clear=True)
        else:
            self._end(d, host, Outcome.FAILED, why, vm, carried)
        return None

    def _same_second_guard(self, vm: Vm) -> None:
        """Never resume in the second of the VM's last RETIME: oned's times have 1 s resolution,
        and a failure in that same second would leave no new mark to judge by."""
        retime = vm.history.retime if vm.history else 0
        now = self.wall()
        if retime and int(now) <= retime:
            self.sleep(min(1.0, retime + 1 - now))

    # --- carrying resumed VMs to an outcome -----------------------------------

    def _carry(self, host: Host, carried: List[_Carried], barrier: float) -> List[_Carried]:
        """Look at the carried VMs until each has an outcome or ``barrier`` passes; the rest."""
        bounds = self.timing.bounds
        while carried:
            # A resumed VM is not RUNNING before oned's queue and the deploy have run:
            # a look right after sending the resumes costs oned a call and shows nothing.
            self.sleep(self.timing.poll_interval)
            taken, seen = self._look(host, [c.decision.vm_id for c in carried])
            now = self.clock()
            still: List[_Carried] = []
            again: List[Tuple[_Carried, Step]] = []
            for c in carried:
                vm_id = c.decision.vm_id
                if taken <= c.seq:
                    # No look since the last call (or the look failed): only time can tell.
                    step, why = next_step(c.progress, Judgement(Verdict.IN_PROGRESS, "no look since the call"),
                                          now, bounds)
                    vm: Optional[Vm] = None
                elif vm_id not in seen:
                    self._end(c.decision, host, Outcome.HANDLED, "VM no longer exists", None, c, clear=True)
                    continue
                else:
                    vm = seen[vm_id]
                    if vm.state == VmState.ACTIVE and (vm.lcm_state == LcmState.RUNNING
                                                       or vm.lcm_state.name.startswith("BOOT")):
                        c.seen = True
                    judgement = judge(c.before, vm, c.seen)
                    step, why = next_step(c.progress, judgement, now, bounds)
                if self._step(host, c, step, why, vm, now, again):
                    still.append(c)
            if again:
                still += self._send_again(host, again)
            carried = still
            if not carried or self.clock() >= barrier:
                break
        return carried

    def _step(self, host: Host, c: _Carried, step: Step, why: str, vm: Optional[Vm], now: float,
              again: List[Tuple[_Carried, Step]]) -> bool:
        """Carry out a step; True while the VM is still carried here (a re-send goes to ``again``)."""
        d, p = c.decision, c.progress
        if step == Step.WAIT:
            return True
        if step == Step.DONE:
            self._end(d, host, Outcome.RUNNING, "resumed, RUNNING", vm, c, clear=True)
            return False
        if step == Step.STOP:
            self._end(d, host, Outcome.HANDLED, why, vm, c, clear=True)
            return False
        if step == Step.TIMEOUT:
            self._end(d, host, Outcome.TIMEOUT, f"{why}; see its log (onevm show {d.vm_id}), then "
                      f"'onevm resume {d.vm_id}' once the cause is fixed", vm, c, final="timeout")
            return False
        if step == Step.GIVE_UP:
            self.ledger.applied(d.vm_id)
            c.progress = replace(p, applied=p.applied + 1)
            self._end(d, host, Outcome.GAVE_UP, f"{why}; fix host {host.name}, then "
                      f"'onevm resume {d.vm_id}' (or 'one-hooks recover --host {host.name}')",
                      vm, c, final="gave up")
            return False
        if step == Step.RETRY_LATER:
            # The failure is counted; from now on evidence is judged against the VM as it is.
            assert vm is not None
            refreshed = Snapshot.of(vm, c.before.called)
            self.ledger.applied(d.vm_id, refreshed)
            delay = self.timing.retry_delay * (2 ** p.applied)
            c.before, c.seen = refreshed, False
            c.progress = replace(p, applied=p.applied + 1, retry_at=now + delay)
            self.out.warning(f"VM {d.vm_id} ({d.vm_name}): {why}")
            return True
        if step == Step.RETRY and p.retry_at is None:
            # Bounced back after it ran: counted, and resumed again at once.
            self.ledger.applied(d.vm_id)
            c.progress = replace(p, applied=p.applied + 1)
            self.out.line(f"VM {d.vm_id} ({d.vm_name}): {why}")
        elif step == Step.RESEND:
            self.out.line(f"VM {d.vm_id} ({d.vm_name}): {why}")
        again.append((c, step))  # carried on by _send_again
        return False

    def _send_again(self, host: Host, again: List[Tuple[_Carried, Step]]) -> List[_Carried]:
        """Resume carried VMs again, under the host lock, each re-read and re-decided first."""
        try:
            fresh_host = self.oned.host_info(host.id)
        except OnedError as exc:
            self.out.warning(f"host {host.name}: cannot read it before resuming again ({exc}); "
                             "trying at the next look")
            return [c for c, _ in again]
        with self.ledger.host_lock(host.id, self.timing.lock_timeout):
            fresh = self._reread(fresh_host, [c for c, _ in again])
            futures = [self._workers.submit(self._again, fresh_host, c, step, fresh.get(c.decision.vm_id))
                       for c, step in again]
            return [c for c in (f.result() for f in futures) if c is not None]

    def _again(self, host: Host, c: _Carried, step: Step, known: Optional[Vm]) -> Optional[_Carried]:
        """One re-send (same attempt) or retry (new attempt) of a carried VM; None if it ended."""
        d = c.decision
        try:
            vm = known if known is not None else self.oned.vm_info(d.vm_id)
        except OnedNotFound:
            self._end(d, host, Outcome.HANDLED, "VM no longer exists", None, c, clear=True)
            return None
        except OnedError as exc:
            self.out.warning(f"VM {d.vm_id}: cannot re-read it before resuming again ({exc})")
            return c
        fresh = decide(vm, host, self.settings, carrying=True)
        if fresh.action == Action.LOCKED:
            self._end(d, host, Outcome.LOCKED, fresh.reason, vm, c, clear=True)
            return None
        if fresh.action == Action.SKIP:
            if host.state != HostState.MONITORED:
                # Not ours to force: host-reconnect takes over (with the attempts left) when it is back.
                self._end(d, host, Outcome.HANDLED, f"{fresh.reason}; stopped carrying it", vm, c)
                return None
            if vm.state == VmState.ACTIVE and vm.lcm_state != LcmState.UNKNOWN:
                return c  # RUNNING or booting since the look: the next look judges it
            self._end(d, host, Outcome.SKIPPED, f"not resumed again: {fresh.reason}", vm, c, clear=True)
            return None
        latest = judge(c.before, vm, c.seen).verdict
        if step == Step.RESEND and latest in (Verdict.DEPLOY_FAILED, Verdict.BOUNCED):
            return c  # news since the look: judged at the next one
        if step == Step.RETRY:
            progress = Progress(c.progress.applied, 0, self.clock(), self.clock())
        else:
            progress = c.progress
        return self._resume(host, fresh, vm, progress, c)

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

    def _end(self, d: Decision, host: Host, outcome: Outcome, reason: str, vm: Optional[Vm],
             carried: Optional[_Carried], clear: bool = False, final: str = "") -> None:
        """A carried (or about to be) VM's final outcome: ledger, claim, line, result."""
        if clear:
            self.ledger.clear(d.vm_id)
        elif final:
            self.ledger.finish(d.vm_id, final)
        else:
            self.ledger.release(d.vm_id)
        with self._lock:
            self._carrying.discard(d.vm_id)
        attempts, seconds = 0, 0.0
        if carried is not None:
            attempts = carried.progress.applied + (0 if outcome == Outcome.GAVE_UP else 1)
            seconds = self.clock() - carried.progress.attempt_started
        self._finish(d, host, outcome, reason, vm, attempts, seconds)

    def _finish(self, d: Decision, host: Host, outcome: Outcome, reason: str,
                vm: Optional[Vm] = None, attempts: int = 0, seconds: float = 0.0,
                quiet: bool = False) -> None:
        """Record a final outcome and say it (``quiet``: the caller has said it)."""
        with self._lock:
            self._settled += 1
            progress = f"[{self._settled}/{max(self._to_settle, self._settled)}] "
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
