"""Resuming VMs and carrying them to an outcome: the part of :class:`~one_hooks.recovery.engine.Engine` that acts.

:class:`Resumer` is a mixin of the engine (as ``sim.actions`` is of the
simulated cloud): it sends one ``resume`` (a transient error or a refusal
while the VM is still a candidate is retried after a re-read), records the
call in the ledger with the VM's evidence read just before it
(:class:`~one_hooks.recovery.evidence.Snapshot`) and claims the VM, then looks
at the VMs it carries until each has an outcome: every look judges each VM
(:func:`~one_hooks.recovery.evidence.judge`) and asks
:func:`~one_hooks.recovery.carry.next_step` what to do; a re-send or a retry
happens under the host lock, after a re-read and a fresh policy decision.

oned's LCM runs queued actions first in, first out: once a look shows that
oned ran a resume this run sent, every resume answered before that one was
sent has run too, so one that left no mark was dropped (``_overtaking``).
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from ..audit import Reporter
from ..config import Config
from ..errors import OnedActionRefused, OnedError, OnedLocked, OnedNotFound
from ..oned.model import Host, HostState, LcmState, Vm, VmState
from .carry import Bounds, Progress, Step, carry_seconds, next_step
from .evidence import Judgement, Snapshot, Verdict, judge
from .ledger import Attempts, Ledger
from .policy import Action, Decision, Settings, decide, in_transit, is_failed_resume, is_outage_state, lock_hint
from .report import Outcome

__all__ = ["Resumer", "Timing", "PICKUP_GRACE"]

#: ``[recovery] pickup_grace``'s default: seconds a resume may show no sign of
#: being run before it is sent again (doubling each time). oned ran resumes
#: 0.3-1.1 s + 25-56 ms per resume in its queue after accepting them, 7-10 s at
#: worst in 270-VM storms, 30-40 s when its queue also held the monitor's
#: reports, on both real versions (rig-findings). A dropped resume looks like
#: one still queued, and most are caught sooner by the queue's order (a resume
#: sent later has run), so the grace errs long: a needless re-send costs a
#: "resumed twice" in the audit trail.
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
            attempts=r.attempts, retry_delay=r.retry_delay, pickup_grace=r.pickup_grace)

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
    #: the last call's place among the run's events when it was sent (``seq``: when answered)
    sent: int = 0
    #: oned has visibly run the last call (BOOT_* seen, or a failure's marks)
    picked: bool = False


class Resumer:
    """Sends resumes and carries the resumed VMs to an outcome; relies on the engine's doors and state."""

    # Provided by Engine (declared here, without values, so type checkers know them).
    oned: Any
    settings: Settings
    timing: "Timing"
    ledger: Ledger
    out: Reporter
    who: str
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    wall: Callable[[], float]
    _by: str
    _events: "itertools.count[int]"
    _lock: threading.Lock
    _carrying: Set[int]
    _runs_seen: List[Tuple[int, int]]
    _workers: Any

    if TYPE_CHECKING:  # Engine's methods; only declared for type checkers, Engine defines them
        def _look(self, host: Host, vm_ids: Sequence[int]) -> Tuple[int, Dict[int, Vm]]: ...

        def _reread(self, host: Host, tier: Sequence[Any]) -> Dict[int, Vm]: ...

        def _finish(self, d: Decision, host: Host, outcome: Outcome, reason: str,
                    vm: Optional[Vm] = ..., attempts: int = ..., seconds: float = ...,
                    quiet: bool = ...) -> None: ...

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
            sent = next(self._events)
            try:
                self.oned.vm_action("resume", vm.id)
                return self._accepted(d, vm, before, progress, carried, sent)
            except OnedLocked:
                self._end(d, host, Outcome.LOCKED, lock_hint(vm), vm, carried, clear=True)
                return None
            except OnedError as exc:
                refused = isinstance(exc, (OnedActionRefused, OnedNotFound))
                what = f"oned refused resume: {exc.message}" if refused else f"resume failed: {exc}"
                if not (refused or exc.worth_asking_again) or k == self.timing.call_retries:
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
        if in_transit(vm):
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
                  carried: Optional[_Carried], sent: int = 0) -> _Carried:
        """Record an accepted call: ledger, claim, and the carried VM's new state.

        ``sent``: the call's place among the run's events when it was sent (0:
        unknown, after a lost answer: then it overtakes nothing).
        """
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
            carried = _Carried(d, before, new, next(self._events))
        else:
            carried.before, carried.progress, carried.seq = before, new, next(self._events)
        carried.seen, carried.picked = False, False
        carried.sends_total, carried.sent = record.sent, sent
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
            mark = self._overtaking(taken)
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
                    booting = vm.state == VmState.ACTIVE and vm.lcm_state.name.startswith("BOOT")
                    if booting or (vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.RUNNING):
                        c.seen = True
                    judgement = judge(c.before, vm, c.seen)
                    if not c.picked and (booting or judgement.applied):
                        self._ran(c, taken)
                    step, why = next_step(c.progress, judgement, now, bounds, overtaken=c.seq < mark)
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

    def _ran(self, c: _Carried, look: int) -> None:
        """Look ``look`` shows oned ran ``c``'s last call: every call answered before it was sent ran too."""
        c.picked = True
        if c.sent:
            with self._lock:
                self._runs_seen.append((look, c.sent))

    def _overtaking(self, look: int) -> int:
        """The latest send (in the run's order of events) of a call seen run by a look older than ``look``.

        A call answered before that one was sent is out of oned's queue (first
        in, first out) by the time ``look`` began: if it shows no mark, oned
        dropped it. Only older looks count: one pool read is not one instant.
        """
        with self._lock:
            return max((sent for taken, sent in self._runs_seen if taken < look), default=0)

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
