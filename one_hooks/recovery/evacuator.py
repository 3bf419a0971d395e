"""Carry out an evacuation: plan, fence, disable, move in tiers, carry each VM to RUNNING.

The doors come as parameters, as for the resume engine
(:mod:`one_hooks.recovery.engine`): ``oned`` (anything with ``host_info``,
``host_pool``, ``host_status``, ``vm_info``, ``vm_pool``, ``vm_migrate``,
``datastore_pool``, like :class:`one_hooks.oned.client.Oned`), ``fence``
(:class:`one_hooks.node.fence.Fence`), ``gate`` (anything with
``check_once(host_name)``, like :class:`one_hooks.node.gate.Gate`; None when
``[iscsi] check = no``), a :class:`~one_hooks.recovery.ledger.Ledger`, a
:class:`~one_hooks.audit.Reporter`, the clocks and sleep. Decisions come
from :mod:`~one_hooks.recovery.evacuation` (which VMs, where) and
:mod:`~one_hooks.recovery.migration` (what became of a move).

Order, and what stops it:

1. the dead host must be down (ERROR, DISABLED or OFFLINE);
2. plan from one read each of its VMs, the datastores and the hosts; the
   candidate targets' iSCSI gates are asked once (in parallel); every
   decision is logged with its reason. A dry run stops here;
3. nothing to move: stop (nothing fenced, nothing disabled);
4. fence: ``[evacuate] fence`` then ``fence_check`` until it says off. Not
   configured, failed or not confirmed: no VM is moved, exit 1;
5. disable the host in oned (``one.host.status`` 1): nothing is scheduled
   there, and when it comes back it stays DISABLED (no MONITORED, so no
   host-reconnect) until an operator enables it. Refused: no VM is moved;
6. per priority tier, under the host's lock: re-read the tier's VMs, decide
   again, leave a VM another live process carries, migrate the others
   (``max_parallel`` at once; cold, from UNKNOWN, with ``enforce`` so that
   oned checks the target's capacity again at the call) with the evidence
   read just before each call in the ledger and a carry claim; then carry the
   tier (``tier_timeout``) judging oned's evidence at each look, and go on to
   the next tier;
7. the outcome of every VM, and the host's record, in
   ``<state_dir>/evacuate/host-<ID>.json`` (what ``one-hooks status`` reads).

A VM is moved once: after an accepted migrate its last history record is on
the target, so neither this run nor any hook sees it as the dead host's any
more; between a read and the call, the host lock and the carry claim keep
others off it.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from .. import fsio
from ..audit import Reporter
from ..config import Config
from ..errors import FenceFailed, OnedError, OnedLocked, OnedNotFound, OneHooksError
from ..oned.model import Datastore, Host, HostState, Vm
from . import claims
from .engine import Timing, id_range
from .evacuation import EvacuationPlan, Fate, Placement, decide_vm, eligible_targets, host_down, lock_hint, plan
from .evidence import Snapshot, Verdict
from .ledger import Ledger, Watch
from .migration import judge
from .policy import Settings
from .report import Outcome, Report, VmResult

__all__ = ["Evacuator", "build_evacuator", "wait_out_grace", "claim_host", "release_host", "record_path",
           "HOST_DISABLE"]

#: ``one.host.status`` code for "disabled" (0 enable, 1 disable, 2 offline).
HOST_DISABLE = 1


@dataclass
class _Moving:
    """A VM whose migration oned accepted, carried to an outcome."""

    placement: Placement
    before: Snapshot
    started: float


def record_path(state_dir: str, host_id: int) -> str:
    """Where the last evacuation of ``host_id`` is recorded."""
    return os.path.join(state_dir, claims.EVACUATE_DIR, f"host-{int(host_id)}.json")


def evacuations(state_dir: str, now: float) -> List[Dict[str, Any]]:
    """What ``one-hooks status`` shows of evacuations: each host's last record, and its live watcher.

    One dict per host with a record or a claim: the record's fields (``host``,
    ``stage``: nothing to move, not fenced, moving, done; ``exit_code``,
    ``summary``, ``vms``, ``problems``, ``fenced_at``, ``disabled``...) and
    ``watcher``: the PID of the live host-error watcher (waiting out the grace,
    or evacuating), None if there is none. An unreadable record is skipped.
    """
    folder = os.path.join(state_dir, claims.EVACUATE_DIR)
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    hosts = sorted({int(n[5:].split(".")[0]) for n in names
                    if n.startswith("host-") and n.split(".")[0][5:].isdigit()})
    found: List[Dict[str, Any]] = []
    for host_id in hosts:
        body: Dict[str, Any] = {"host_id": host_id}
        try:
            loaded = json.loads(fsio.read_bytes(record_path(state_dir, host_id)).decode("utf-8"))
            if isinstance(loaded, dict):
                body.update(loaded)
        except (OSError, ValueError):
            pass
        live = claims.live_claim(state_dir, host_id, now, claims.EVACUATE_DIR)
        body["watcher"] = live[0] if live else None
        if len(body) > 2 or body["watcher"] is not None:
            found.append(body)
    return found


class Evacuator:
    """One evacuation run (host-error's watcher, or ``one-hooks evacuate``)."""

    def __init__(self, oned: Any, settings: Settings, timing: Timing, ledger: Ledger, reporter: Reporter,
                 fence: Any, gate: Any = None, *, who: str = "evacuate", dry_run: bool = False,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 wall: Callable[[], float] = time.time,
                 keepalive: Optional[Callable[[float], None]] = None) -> None:
        self.oned = oned
        #: told, once the plan is made, how many seconds the rest may take (the watcher's claim)
        self.keepalive = keepalive
        self.settings = settings
        self.timing = timing
        self.ledger = ledger
        self.out = reporter
        self.fence = fence
        self.gate = gate
        self.who = who
        self.dry_run = dry_run
        self.clock = clock
        self.sleep = sleep
        self.wall = wall
        self.report = Report()
        self.plan: Optional[EvacuationPlan] = None
        self._by = f"{who}[{os.getpid()}]"
        self._lock = threading.Lock()
        self._datastores: Dict[int, Datastore] = {}
        self._record: Dict[str, Any] = {}
        self._workers = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, timing.max_parallel), thread_name_prefix="move")

    def close(self) -> None:
        """Stop the worker threads; this run's carry claims no longer count."""
        self._workers.shutdown(wait=True)
        self.ledger.close()

    def __enter__(self) -> "Evacuator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the run ----------------------------------------------------------------

    def evacuate(self, host_id: int, known_host: Optional[Host] = None) -> Report:
        """Evacuate host ``host_id`` (``known_host``: a record the caller has just read)."""
        host = known_host if known_host is not None else self.oned.host_info(host_id)
        down = host_down(host)
        if down:
            self.out.error(down)
            self.report.problems.append(down)
            return self.report
        self.plan = self._plan(host)
        for line in self.plan.problems:
            self.out.warning(f"host {host.name}: {line}")
        for p in self.plan.placements:
            self._say(p)
            self._placed(host, p)
        moves = self.plan.moves
        if not moves:
            self.out.line(f"host {host.name}: nothing to move: not fenced, not disabled")
            if not self.dry_run:
                self._save(host, "nothing to move")
            return self.report
        if self.dry_run:
            for p in moves:
                self._result(p, host, Outcome.WOULD_MOVE, f"dry run: {p.reason}")
            self.out.line(f"host {host.name}: dry run: nothing fenced, disabled or moved")
            return self.report
        if self.keepalive is not None:
            self.keepalive(self.fence_seconds + len(self.plan.tiers) * self.timing.tier_timeout
                           + self.timing.wait_running + 60.0)
        if not self._fence_and_disable(host, moves):
            self._save(host, "not fenced")
            return self.report
        self._save(host, "moving")
        waiting: List[_Moving] = []
        tiers = self.plan.tiers
        for tier in tiers:
            tier_start = self.clock()
            with self.ledger.host_lock(host.id, self.timing.lock_timeout):
                fresh = self._reread(tier)
                futures = [self._workers.submit(self._move, host, p, fresh.get(p.vm_id)) for p in tier]
                sent = [m for m in (f.result() for f in futures) if m is not None]
            waiting = self._carry(host, waiting + sent, tier_start + self.timing.tier_timeout)
            if waiting and tier is not tiers[-1]:
                self.out.warning(f"host {host.name}: tier {tier[0].tier} not all RUNNING after "
                                 f"{self.timing.tier_timeout:g} s; starting the next tier")
        self._carry(host, waiting, float("inf"))
        self._save(host, "done")
        return self.report

    @property
    def fence_seconds(self) -> float:
        """The longest fencing may take (the fence command, then fence_check's looks)."""
        if self.fence is None:
            return 0.0
        return float(self.fence.timeout) * 2 + float(self.fence.confirm_timeout)

    # --- planning ---------------------------------------------------------------

    def _plan(self, host: Host) -> EvacuationPlan:
        vms = list(self.oned.vm_pool(host_id=host.id, id_range=id_range(host))) if host.vm_ids else []
        # One read of the datastores serves the whole run (they do not change in an outage).
        self._datastores = {ds.id: ds for ds in self.oned.datastore_pool()}
        movable = [vm for vm in vms if decide_vm(vm, host, self._datastores, self.settings)[0] == Fate.MOVE]
        targets: List[Host] = []
        refused: List[str] = []
        if movable:
            candidates, refused = eligible_targets(host, self.oned.host_pool())
            targets, failed = self._gated(candidates)
            refused += failed
        return plan(host, vms, self._datastores, targets, self.settings, refused)

    def _gated(self, candidates: Sequence[Host]) -> Tuple[List[Host], List[str]]:
        """The candidates whose iSCSI gate is HEALTHY now (one look each, in parallel), and the others' reasons."""
        if self.gate is None or not candidates:
            return list(candidates), []

        def ask(host: Host) -> Tuple[Host, bool, str]:
            try:
                verdict = self.gate.check_once(host.name)
            except OneHooksError as exc:
                return host, False, f"UNKNOWN: {exc}"
            status = str(getattr(verdict.status, "name", verdict.status))
            problems = "; ".join(getattr(verdict, "problems", ())) or "no detail"
            return host, bool(verdict.healthy), f"{status}: {problems}"

        with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, len(candidates))) as pool:
            answers = list(pool.map(ask, candidates))
        healthy = [h for h, ok, _ in answers if ok]
        refused = [f"host {h.name} (ID {h.id}): iSCSI gate {why}: not a target" for h, ok, why in answers if not ok]
        return healthy, refused

    def _say(self, p: Placement) -> None:
        if p.fate in (Fate.MOVE, Fate.SKIP):
            self.out.line(p.line())
        else:
            self.out.warning(p.line())

    def _placed(self, host: Host, p: Placement) -> None:
        outcome = {Fate.SKIP: Outcome.SKIPPED, Fate.LOCKED: Outcome.LOCKED, Fate.STAYS: Outcome.STAYS}.get(p.fate)
        if outcome is not None:
            self._result(p, host, outcome, p.reason)

    # --- fencing ----------------------------------------------------------------

    def _fence_and_disable(self, host: Host, moves: Sequence[Placement]) -> bool:
        """Fence, confirm, disable; on any failure the moves are reported not moved and False."""
        self.out.line(f"host {host.name}: {len(moves)} VM(s) to move: fencing it first")
        try:
            if self.fence is None:
                raise FenceFailed("no fence configured ([evacuate] fence and fence_check): its VMs are not "
                                  f"moved; set both, then 'one-hooks evacuate {host.name}'", host.name)
            fenced = self.fence.power_off(host.name)
        except FenceFailed as exc:
            return self._not_moved(host, moves, f"host not fenced: {exc}")
        self._record.update(fenced_at=self.wall(), fence_evidence=fenced.evidence)
        self.out.line(f"host {host.name}: fenced (fence_check: {fenced.evidence!r})")
        try:
            self.oned.host_status(host.id, HOST_DISABLE)
        except OnedError as exc:
            return self._not_moved(host, moves, f"host fenced but not disabled in oned ({exc}): nothing moved; "
                                                f"'onehost disable {host.name}', then 'one-hooks evacuate "
                                                f"{host.name}'")
        self._record.update(disabled=True)
        self.out.line(f"host {host.name}: disabled in oned: nothing is scheduled there, and it stays disabled "
                      f"when it comes back until 'onehost enable {host.name}'")
        return True

    def _not_moved(self, host: Host, moves: Sequence[Placement], why: str) -> bool:
        self.out.error(f"host {host.name}: {why}")
        self.report.problems.append(f"{host.name}: {why}")
        for p in moves:
            self._result(p, host, Outcome.STAYS, why.split(": ", 1)[0])
        return False

    # --- moving -----------------------------------------------------------------

    def _reread(self, tier: Sequence[Placement]) -> Dict[int, Vm]:
        """The tier's VMs as oned has them now: one pool read over their ID range ({}: one by one)."""
        if len(tier) < 4:
            return {}
        ids = [p.vm_id for p in tier]
        try:
            return {vm.id: vm for vm in self.oned.vm_pool(id_range=(min(ids), max(ids)))}
        except OnedError as exc:
            self.out.warning(f"pool re-read failed ({exc}); reading VMs one by one")
            return {}

    def _move(self, host: Host, p: Placement, known: Optional[Vm]) -> Optional[_Moving]:
        """Re-decide on a fresh read, then migrate once. Runs under the host lock."""
        try:
            vm = known if known is not None else self.oned.vm_info(p.vm_id)
        except OnedNotFound:
            self._finish(p, host, Outcome.HANDLED, "VM no longer exists")
            return None
        except OnedError as exc:
            self._finish(p, host, Outcome.FAILED, f"cannot re-read before the move: {exc}")
            return None
        carrier = self.ledger.carrier_of(vm.id)
        if carrier is not None and carrier.token != self.ledger.token:
            self._finish(p, host, Outcome.HANDLED, f"left to {carrier.who} (pid {carrier.pid}), which acts on it",
                         vm)
            return None
        fate, reason, _ = decide_vm(vm, host, self._datastores, self.settings)
        if fate != Fate.MOVE:
            outcome = {Fate.LOCKED: Outcome.LOCKED, Fate.STAYS: Outcome.STAYS}.get(fate, Outcome.HANDLED)
            self._finish(p, host, outcome, f"state moved on: {reason}", vm)
            return None
        for k in range(self.timing.call_retries + 1):
            before = Snapshot.of(vm, self.wall())
            try:
                self.oned.vm_migrate(vm.id, p.target_id, enforce=True)
                return self._accepted(p, vm, before)
            except OnedLocked:
                self._finish(p, host, Outcome.LOCKED, lock_hint(vm, host.name), vm)
                return None
            except OnedError as exc:
                # The call may have reached oned before the answer was lost: the record tells.
                again = self._reread_one(vm.id)
                if again is not None and again.history is not None and before.seq < again.history.seq \
                        and again.history.host_id == p.target_id:
                    return self._accepted(p, again, before)
                if not exc.worth_asking_again or k == self.timing.call_retries:
                    self._finish(p, host, Outcome.FAILED, f"oned refused the move to {p.target_name}: "
                                 f"{exc.message}", again or vm)
                    return None
                self.sleep(self.timing.call_retry_delay * 2 ** k)
                vm = again or vm
        raise AssertionError("unreachable")  # pragma: no cover

    def _reread_one(self, vm_id: int) -> Optional[Vm]:
        try:
            return self.oned.vm_info(vm_id)
        except OnedError:
            return None

    def _accepted(self, p: Placement, vm: Vm, before: Snapshot) -> _Moving:
        self.ledger.sent(vm.id, self._by, before)
        self.ledger.carry(vm.id, self.who, self.wall() + self.timing.wait_running + self.timing.tier_timeout + 60)
        self.out.line(f"VM {vm.id} ({vm.name}): move to {p.target_name} accepted")
        return _Moving(p, before, self.clock())

    def _carry(self, host: Host, moving: List[_Moving], barrier: float) -> List[_Moving]:
        """Look at the moving VMs until each has an outcome or ``barrier`` passes; the rest."""
        while moving:
            self.sleep(self.timing.poll_interval)
            ids = [m.placement.vm_id for m in moving]
            try:
                seen = {vm.id: vm for vm in self.oned.vm_pool(id_range=(min(ids), max(ids)))}
            except OnedError as exc:
                self.out.warning(f"cannot read the moving VMs: {exc}")
                seen = None
            now = self.clock()
            still: List[_Moving] = []
            for m in moving:
                p = m.placement
                if seen is not None and p.vm_id not in seen:
                    self._end(p, host, Outcome.HANDLED, "VM no longer exists", None, m)
                    continue
                vm = seen.get(p.vm_id) if seen is not None else None
                if vm is not None:
                    j = judge(m.before, p.target_id, vm)
                    if j.verdict == Verdict.RUNNING:
                        self._end(p, host, Outcome.RUNNING, f"moved, {j.reason}", vm, m)
                        continue
                    if j.verdict == Verdict.MOVED_ON:
                        self._end(p, host, Outcome.HANDLED, j.reason, vm, m)
                        continue
                    if j.verdict in (Verdict.DEPLOY_FAILED, Verdict.BOUNCED):
                        self._end(p, host, Outcome.FAILED, j.reason, vm, m, final="evacuation failed")
                        continue
                if now - m.started >= self.timing.wait_running:
                    state = vm.state_name if vm is not None else "unknown state"
                    self._end(p, host, Outcome.TIMEOUT, f"not RUNNING on {p.target_name} "
                              f"{self.timing.wait_running:g} s after the move ({state}); see "
                              f"'onevm show {p.vm_id}'", vm, m, final="timeout")
                    continue
                still.append(m)
            moving = still
            if not moving or self.clock() >= barrier:
                break
        return moving

    # --- results ----------------------------------------------------------------

    def _end(self, p: Placement, host: Host, outcome: Outcome, reason: str, vm: Optional[Vm], m: _Moving,
             final: str = "") -> None:
        if final:
            self.ledger.finish(p.vm_id, final)
        else:
            self.ledger.clear(p.vm_id)
        self._finish(p, host, outcome, reason, vm, 1, self.clock() - m.started)

    def _finish(self, p: Placement, host: Host, outcome: Outcome, reason: str, vm: Optional[Vm] = None,
                attempts: int = 0, seconds: float = 0.0) -> None:
        text = f"VM {p.vm_id} ({p.vm_name}): {outcome.value}: {reason}"
        if outcome in (Outcome.RUNNING, Outcome.HANDLED, Outcome.SKIPPED):
            self.out.line(text)
        elif outcome == Outcome.LOCKED:
            self.out.warning(text)
        else:
            self.out.error(text)
        self._result(p, host, outcome, reason, vm.state_name if vm else "", attempts, seconds)

    def _result(self, p: Placement, host: Host, outcome: Outcome, reason: str, after: str = "",
                attempts: int = 0, seconds: float = 0.0) -> None:
        where = f"{host.name}->{p.target_name}" if p.fate == Fate.MOVE else host.name
        with self._lock:
            self.report.add(VmResult(p.vm_id, p.vm_name, where, p.state, after or p.state, outcome, reason,
                                     attempts, round(seconds, 3), p.tier))

    def _save(self, host: Host, stage: str) -> None:
        """The host's evacuation record (never fatal: the log has it all)."""
        body = dict(self._record, host_id=host.id, host=host.name, stage=stage, by=self._by,
                    updated_at=self.wall(), exit_code=self.report.exit_code, summary=self.report.summary(),
                    vms=self.report.as_dict()["vms"], problems=list(self.report.problems))
        path = record_path(self.ledger.state_dir, host.id)
        try:
            fsio.make_dirs(os.path.dirname(path), 0o750)
            fsio.atomic_write(path, json.dumps(body, indent=1).encode("utf-8"),
                              fsio.FileMeta(0o640, os.getuid(), os.getgid()))
        except OSError as exc:
            self.out.warning(f"cannot write {path}: {exc.strerror}")


# --- the grace, and one watcher per host -------------------------------------------


def wait_out_grace(oned: Any, host_id: int, grace: float, interval: float, out: Reporter,
                   clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep, already: float = 0.0) -> Optional[Host]:
    """The host once it has stayed in ERROR for ``grace`` seconds; None if it left ERROR meanwhile.

    ``already``: seconds of the grace gone before this call (the hook that
    saw the host go ERROR started this watcher that long ago).

    Looked at every ``interval`` seconds. A host MONITORED again is
    host-reconnect's; one an operator disabled or set offline is the
    operator's (``one-hooks evacuate`` does it by hand). A failing look is
    only a warning: oned may be busy; the last look must succeed.

    A host that fails again after coming back fires another host-error hook,
    which starts a watcher of its own if this one has ended. A return this
    watcher does not see (shorter than ``interval``) cannot happen in
    production, where oned says ERROR minutes after the host went silent.
    """
    started = clock() - max(0.0, already)
    while True:
        left = started + grace - clock()
        if left > 0:
            sleep(min(interval, left))
            try:
                host = oned.host_info(host_id)
            except OnedError as exc:
                out.warning(f"host {host_id}: cannot read it during the grace: {exc}")
                continue
        else:
            host = oned.host_info(host_id)
        if host.state != HostState.ERROR:
            after = clock() - started
            why = ("host-reconnect recovers its VMs" if host.state == HostState.MONITORED
                   else f"'one-hooks evacuate {host.name}' evacuates it by hand")
            out.line(f"host {host.name} is {host.state.name} after {after:.0f} s of grace: nothing evacuated; {why}")
            return None
        if left <= 0:
            out.line(f"host {host.name} still in ERROR after {grace:g} s of grace: evacuating it")
            return host


def claim_host(ledger: Ledger, host_id: int, until: float) -> Optional[Watch]:
    """Become the evacuation watcher of ``host_id`` until wall time ``until``; the live one if there is one.

    Checking and writing the claim happen under a lock of their own, so two
    host-error hooks fired for the same host at once start one watcher.
    """
    with ledger.host_lock(host_id, 30.0, kind="evacuate"):
        held = ledger.watcher_of(host_id, kind=claims.EVACUATE_DIR)
        if held is not None and held.pid != os.getpid():
            return held
        ledger.claim_watch(host_id, until, kind=claims.EVACUATE_DIR)
        return None


def release_host(ledger: Ledger, host_id: int) -> None:
    """This process no longer watches ``host_id`` (the claim ends now)."""
    ledger.claim_watch(host_id, ledger.wall(), kind=claims.EVACUATE_DIR)


@contextlib.contextmanager
def watching(ledger: Ledger, host_id: int, until: float) -> Iterator[Optional[Watch]]:
    """Hold the evacuation claim on ``host_id`` for a block; yields the other live watcher instead, if any."""
    held = claim_host(ledger, host_id, until)
    try:
        yield held
    finally:
        if held is None:
            release_host(ledger, host_id)


def evacuation_budget(config: Config) -> float:
    """Seconds an evacuation's planning and first tier may take once the grace is over (the watcher's
    claim until the plan is made, when :attr:`Evacuator.keepalive` says how long the rest may take)."""
    ev, r = config.evacuate, config.recovery
    return ev.fence_timeout * 2 + ev.confirm_timeout + r.wait_running + r.tier_timeout + 60.0


def build_evacuator(config: Config, out: Reporter, *, oned: Any = None, gate: Any = None, fence: Any = None,
                    who: str = "evacuate", dry_run: bool = False,
                    clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep,
                    wall: Callable[[], float] = time.time,
                    keepalive: Optional[Callable[[float], None]] = None) -> Evacuator:
    """An evacuator wired from the configuration; doors given as arguments win."""
    if oned is None:
        from ..oned.client import Oned
        oned = Oned.from_config(config.oned)
    if gate is None and config.iscsi.check:
        from ..node.gate import Gate
        from ..node.runner import Node
        gate = Gate(Node.from_config(config), config.iscsi, config.iscsiadm_argv(),
                    config.recovery.state_dir, clock=clock, sleep=sleep, wall=wall)
    if fence is None and config.evacuate.fence and config.evacuate.fence_check:
        from ..node.fence import Fence
        fence = Fence.from_section(config.evacuate, clock=clock, sleep=sleep)
    r = config.recovery
    return Evacuator(oned, Settings.from_section(r), Timing.from_config(config), Ledger.from_section(r, wall=wall),
                     out, fence, gate if config.iscsi.check else None, who=who, dry_run=dry_run, clock=clock,
                     sleep=sleep, wall=wall, keepalive=keepalive)
