"""recovery: the engine against the simulated oned's state machine.

The engine gets its doors as parameters. ``CloudDoor`` is the oned door cut
at the network boundary: it answers with the simulated oned's own XML
(``sim.xmlout``), parsed by the real parser, and turns the simulator's
refusals into the same errors the XML-RPC adapter raises. ``down`` makes it
behave like an oned that refuses connections. The clock is fake: each sleep
advances it and lets the simulator finish what is due (deploys).
"""
from __future__ import annotations

import io
import logging
import os
import subprocess
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

from one_hooks.oned import xmlparse
from one_hooks.audit import Reporter
from one_hooks.errors import (
    ConfigError, OnedAuthError, OnedNotFound, OnedUnreachable,
)
from one_hooks.node.iscsi import Status, Verdict
from one_hooks.recovery import claims
from one_hooks.recovery.evidence import Snapshot
from one_hooks.recovery.ledger import Attempts, Ledger
from one_hooks.oned.model import HistoryAction, Host, LcmState, Vm, VmState
from one_hooks.recovery.policy import Settings, decide
from one_hooks.recovery import engine as engine_module
from one_hooks.recovery.engine import Engine, Timing
from one_hooks.recovery.report import Outcome
from one_hooks.sim import xmlout
from one_hooks.sim.cloud import Cloud
from one_hooks.oned.client import error_class
from one_hooks.sim.faults import NO_EXISTS, Refused
from one_hooks.sim.lcm import OnedTiming
from one_hooks.sim.timeline import Timeline


class CloudDoor:
    """The oned door over a simulated cloud, without the HTTP in between."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.down = False
        self.calls: List[str] = []
        #: the id_range of every pool read
        self.ranges: List[Optional[Tuple[int, int]]] = []
        #: called before each vm_action is forwarded (to let "someone else" act first)
        self.before_action: Optional[Callable[[int], None]] = None
        #: after this many more accepted actions, oned goes down
        self.down_after: Optional[int] = None
        #: called before each pool read (and VM read, with look_by_info) (a test's "meanwhile")
        self.before_look: Optional[Callable[[], None]] = None
        self.look_by_info = True

    def _enter(self, method: str) -> None:
        self.calls.append(method)
        if self.down:
            raise OnedUnreachable("connection refused", method)

    def _do(self, method: str, work: Callable[[], str]) -> str:
        self._enter(method)
        try:
            with self.cloud.lock:
                return work()
        except Refused as exc:
            raise error_class(exc.code, exc.message)(exc.message, method, exc.code) from None

    def host_info(self, host_id: int) -> Host:
        c = self.cloud
        return xmlparse.parse_host(self._do("one.host.info", lambda: xmlout.compact(
            xmlout.host_element(c.get_host(host_id), c.host_vms(host_id)))))

    def vm_info(self, vm_id: int) -> Vm:
        if self.before_look and self.look_by_info:
            self.before_look()
        return xmlparse.parse_vm(self._do("one.vm.info", lambda: xmlout.compact(
            xmlout.vm_element(self.cloud.get_vm(vm_id)))))

    def vm_pool(self, host_id: Optional[int] = None,
                id_range: Optional[Tuple[int, int]] = None) -> List[Vm]:
        c = self.cloud
        if self.before_look:
            self.before_look()
        self.ranges.append(id_range)
        low, high = id_range if id_range is not None else (-1, 1 << 62)
        text = self._do("one.vmpool.infoextended", lambda: xmlout.compact(xmlout.pool(
            "VM_POOL", [xmlout.vm_element(vm, history="last") for vm in c.tables.vms.values()
                        if low <= vm.id <= high or id_range is None])))
        vms = xmlparse.parse_vm_pool(text)
        return vms if host_id is None else [vm for vm in vms if vm.host_id == host_id]

    def vm_action(self, action: str, vm_id: int) -> None:
        if self.before_action:
            self.before_action(vm_id)
        self._do("one.vm.action", lambda: self.cloud.action(action, vm_id) or "")
        if self.down_after is not None:
            self.down_after -= 1
            if self.down_after <= 0:
                self.down = True


class FakeClock:
    """Time (monotonic and wall alike) that moves only when someone sleeps.

    The simulated cloud runs on it too (its timeline and its timestamps): a
    sleep lets everything due by the new time happen, so oned's delays
    (its LCM queue, deploys) cost the test no real time.
    """

    def __init__(self) -> None:
        self.now = 1000.0
        self.timeline: Optional[Timeline] = None
        self.sleeps: List[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds
        self.settle()

    def settle(self) -> None:
        """Let the cloud do everything due by now."""
        assert self.timeline is not None
        self.timeline.poke()
        assert self.timeline.wait_due(10), "the simulated cloud did not catch up"


def fake_cloud(clock: FakeClock, **kwargs: Any) -> Cloud:
    """A simulated cloud living on ``clock``."""
    cloud = Cloud(now=clock, clock=clock, **kwargs)
    clock.timeline = cloud.timeline
    return cloud


class GateStandIn:
    """A gate whose verdicts are given per host, as the real Gate returns them."""

    def __init__(self, verdicts: Optional[Dict[str, Verdict]] = None) -> None:
        self.verdicts = verdicts or {}
        self.asked: List[str] = []

    def wait_healthy(self, host: str) -> Verdict:
        self.asked.append(host)
        return self.verdicts.get(host, Verdict(host, Status.HEALTHY))


class _ListLogger(logging.Logger):
    """A logger keeping (level, line) pairs, so tests can count ERROR lines."""

    def __init__(self, into: List[Tuple[int, str]]) -> None:
        super().__init__("test-world")
        self.into = into

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        self.into.append((level, str(msg)))


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def cloud(clock: FakeClock):
    c = fake_cloud(clock)
    yield c
    c.timeline.stop()
    assert not c.timeline.errors, c.timeline.errors


class World:
    """A cloud, its door, a clock, a state dir: what one test needs to build engines."""

    def __init__(self, cloud: Cloud, clock: FakeClock, state_dir: str) -> None:
        self.cloud = cloud
        self.door = CloudDoor(cloud)
        self.clock = clock
        self.state_dir = state_dir
        self.gate = GateStandIn()
        self.out = io.StringIO()
        self.logged: List[Tuple[int, str]] = []

    def engine(self, timing: Optional[Timing] = None, settings: Settings = Settings(),
               **kw: object) -> Engine:
        t = timing or Timing(max_parallel=4, wait_running=60, tier_timeout=30, poll_interval=1,
                             call_retries=2, call_retry_delay=1, lock_timeout=30)
        reporter = Reporter(out=self.out, logger=_ListLogger(self.logged))
        return Engine(self.door, settings, t, Ledger(self.state_dir, wall=self.clock), reporter,
                      kw.pop("gate", self.gate), clock=self.clock, sleep=self.clock.sleep,
                      wall=self.clock, **kw)

    def outage(self, host_id: int) -> None:
        self.cloud.host_error(host_id)
        self.cloud.host_monitored(host_id)

    def act(self, action: str, vm_id: int) -> None:
        """A user's (or the monitor's) action, applied before the test goes on."""
        self.cloud.action(action, vm_id)
        self.clock.settle()

    def deploy_failed(self, vm_id: int) -> bool:
        """The VM's deploy failed (it is UNKNOWN with a DEPLOY error)."""
        vm = self.cloud.tables.vms[vm_id]
        return vm.state_name == "ACTIVE/UNKNOWN" and any(k == "ERROR" for k, _ in vm.user_template)

    def lines(self, level: int) -> List[str]:
        """What the runs logged at exactly ``level``."""
        return [text for lvl, text in self.logged if lvl == level]

    def resumes(self) -> List[int]:
        return [vm_id for _, vm_id, name, _ in self.cloud.action_log if name == "resume"]

    def state(self, vm_id: int) -> str:
        return self.cloud.tables.vms[vm_id].state_name


@pytest.fixture()
def world(cloud: Cloud, clock: FakeClock, tmp_path) -> World:
    return World(cloud, clock, str(tmp_path / "state"))


def _host_with_vms(w: World, n: int, name: str = "node1", **templates: list) -> int:
    host = w.cloud.add_host(name)
    for i in range(n):
        w.cloud.add_vm(f"{name}-vm{i}", host, templates.get(f"vm{i}"))
    return host


def test_healthy_host_all_vms_running(world: World) -> None:
    host = _host_with_vms(world, 5)
    world.outage(host)
    with world.engine() as engine:
        report = engine.recover_host(host)
    assert report.exit_code == 0
    assert sorted(world.resumes()) == [0, 1, 2, 3, 4]
    assert all(world.state(i) == "ACTIVE/RUNNING" for i in range(5))
    assert [r.outcome for r in report.results.values()] == [Outcome.RUNNING] * 5
    assert world.gate.asked == ["node1"]


def test_poweroff_by_monitor_resumed_user_poweroff_left(world: World) -> None:
    host = _host_with_vms(world, 3)
    world.act("poweroff", 2)                   # a user's poweroff, before the outage
    world.outage(host)
    world.cloud.reconcile(host, running=set())  # VM 0 and 1 vanished: POWEROFF, action monitor
    assert world.state(0) == "POWEROFF/LCM_INIT"
    with world.engine() as engine:
        report = engine.recover_host(host)
    assert sorted(world.resumes()) == [0, 1]
    assert world.state(2) == "POWEROFF/LCM_INIT"
    assert report.results[2].outcome == Outcome.SKIPPED and "user" in report.results[2].reason
    assert report.exit_code == 0


def test_tiers_in_order_higher_first(world: World) -> None:
    host = _host_with_vms(world, 4, vm1=[("ONE_HOOKS_PRIORITY", "5")],
                          vm3=[("ONE_HOOKS_PRIORITY", "9")], vm2=[("ONE_HOOKS_PRIORITY", "x")])
    world.outage(host)
    with world.engine() as engine:
        assert engine.recover_host(host).exit_code == 0
    order = world.resumes()
    assert order[:2] == [3, 1] and sorted(order[2:]) == [0, 2]
    assert "not an integer" in world.out.getvalue()


def test_broken_gate_blocks_every_resume(world: World) -> None:
    host = _host_with_vms(world, 3)
    world.outage(host)
    problem = "iqn.2024-01.example:lun1 at 10.0.0.5:3260: session FAILED"
    gate = GateStandIn({"node1": Verdict("node1", Status.BROKEN, (problem,))})
    with world.engine(gate=gate) as engine:
        report = engine.recover_host(host)
    assert world.resumes() == []
    assert report.exit_code == 1
    assert {r.outcome for r in report.results.values()} == {Outcome.GATE}
    assert any("iqn.2024-01.example:lun1" in p for p in report.problems)
    assert "iqn.2024-01.example:lun1" in world.out.getvalue()


def test_gate_not_asked_when_nothing_to_resume(world: World) -> None:
    host = _host_with_vms(world, 2)
    with world.engine() as engine:
        report = engine.recover_host(host)
    assert world.gate.asked == [] and world.resumes() == []
    assert report.exit_code == 0


def test_gate_off_says_so(world: World) -> None:
    host = _host_with_vms(world, 1)
    world.outage(host)
    with world.engine(gate=None) as engine:
        engine.recover_host(host)
    assert "iSCSI gate off" in world.out.getvalue()
    assert world.resumes() == [0]


def test_opt_out_and_locked(world: World) -> None:
    host = _host_with_vms(world, 3, vm1=[("ONE_HOOKS_RECOVER", "NO")])
    world.outage(host)
    world.cloud.lock_vm(2, 2)
    with world.engine() as engine:
        report = engine.recover_host(host)
    assert world.resumes() == [0]
    assert report.results[1].outcome == Outcome.SKIPPED and "opted out" in report.results[1].reason
    assert report.results[2].outcome == Outcome.LOCKED
    assert "onevm unlock 2" in report.results[2].reason
    assert report.exit_code == 1


def test_dry_run_changes_nothing(world: World) -> None:
    host = _host_with_vms(world, 2)
    world.outage(host)
    with world.engine(dry_run=True) as engine:
        report = engine.recover_host(host)
    assert world.resumes() == []
    assert [r.outcome for r in report.results.values()] == [Outcome.PLANNED] * 2
    assert world.state(0) == "ACTIVE/UNKNOWN"


def test_host_still_in_error_resumes_nothing(world: World) -> None:
    host = _host_with_vms(world, 2)
    world.cloud.host_error(host)
    with world.engine() as engine:
        report = engine.recover_host(host)
    assert world.resumes() == [] and world.gate.asked == []
    assert "left to host-reconnect" in report.results[0].reason


def test_failed_deploy_retried_by_the_run_that_resumed_it(world: World) -> None:
    """The old engine called this VM failed (exit 1) and left the retry to the vm-unknown hook,
    which never fires for a POWEROFF VM; now the run that resumed it retries it itself."""
    host = _host_with_vms(world, 2)
    world.outage(host)
    world.cloud.fail_deploys(1, vm_id=1)
    with world.engine(Timing(poll_interval=1, retry_delay=10, attempts=3)) as engine:
        report = engine.recover_host(host)
    assert report.exit_code == 0, world.out.getvalue()
    assert sorted(world.resumes()) == [0, 1, 1]
    assert report.results[1].outcome == Outcome.RUNNING and report.results[1].attempts == 2
    assert world.state(1) == "ACTIVE/RUNNING"
    warnings = world.lines(logging.WARNING)
    assert any("VM 1 (node1-vm1): deploy failed, back in ACTIVE/UNKNOWN: DEPLOY: could not deploy" in w
               and "(attempt 1 of 3); next attempt in 10 s" in w for w in warnings), warnings
    assert world.lines(logging.ERROR) == []
    # The retry waited the delay (the fake clock moved at least 10 s between the two resumes).
    times = [t for t, vm_id, name, _ in world.cloud.action_log if name == "resume" and vm_id == 1]
    assert times[1] - times[0] >= 10
    assert Ledger(world.state_dir, wall=world.clock).get(1) == Attempts(1)  # RUNNING: forgotten


def test_gives_up_after_attempts_with_one_error_line(world: World) -> None:
    host = _host_with_vms(world, 1)
    world.outage(host)
    world.cloud.fail_deploys(5, vm_id=0)
    with world.engine(Timing(poll_interval=1, retry_delay=10, attempts=3)) as engine:
        report = engine.recover_host(host)
    assert world.resumes() == [0, 0, 0]
    result = report.results[0]
    assert result.outcome == Outcome.GAVE_UP and report.exit_code == 1
    errors = world.lines(logging.ERROR)
    assert len(errors) == 1 and "gave up" in errors[0] and "onevm resume 0" in errors[0], errors
    assert "attempt 3 of 3, none left" in errors[0]
    assert len(world.lines(logging.WARNING)) == 2  # attempts 1 and 2 failed, retried
    times = [t for t, _, name, _ in world.cloud.action_log if name == "resume"]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert 10 <= gaps[0] < 20 <= gaps[1] < 40, gaps  # retry_delay, doubling (plus a look's pace)
    record = Ledger(world.state_dir, wall=world.clock).get(0)
    assert record.final == "gave up" and record.applied == 3 and record.sent == 3
    # A hook fired later (the last failed deploy's vm-unknown) does not start over, nor cry again.
    with world.engine() as engine:
        again = engine.recover_host(host)
    assert world.resumes() == [0, 0, 0]
    assert again.exit_code == 0 and again.results[0].outcome == Outcome.SKIPPED
    assert len(world.lines(logging.ERROR)) == 1
    # An operator's 'one-hooks recover' does start over.
    world.cloud.fail_deploys(0, vm_id=0)
    with world.engine(honour_ledger=False) as engine:
        assert engine.recover_host(host).exit_code == 0
    assert world.resumes() == [0, 0, 0, 0] and world.state(0) == "ACTIVE/RUNNING"


def test_a_resume_not_picked_up_yet_is_waited_for(clock: FakeClock, tmp_path) -> None:
    """oned's LCM queue holds the resume 8 s: the VM stays UNKNOWN, and that is not a failure."""
    w = World(fake_cloud(clock, timing=OnedTiming(lcm_base=8.0)), clock, str(tmp_path / "state"))
    try:
        host = _host_with_vms(w, 3)
        w.outage(host)
        seen: List[str] = []
        w.door.before_look = lambda: seen.append(w.state(0))
        with w.engine(Timing(poll_interval=1, pickup_grace=20)) as engine:
            report = engine.recover_host(host)
        assert report.exit_code == 0 and w.lines(logging.ERROR) == [] and w.lines(logging.WARNING) == []
        assert sorted(w.resumes()) == [0, 1, 2]  # each once: 8 s is within the pick-up grace
        assert seen.count("ACTIVE/UNKNOWN") >= 7  # looked at it UNKNOWN for 7+ s after the resume
        assert all(r.outcome == Outcome.RUNNING for r in report.results.values())
    finally:
        w.cloud.timeline.stop()


def test_a_resume_held_past_the_grace_is_sent_again_harmlessly(clock: FakeClock, tmp_path) -> None:
    w = World(fake_cloud(clock, timing=OnedTiming(lcm_base=30.0)), clock, str(tmp_path / "state"))
    try:
        host = _host_with_vms(w, 1)
        w.outage(host)
        with w.engine(Timing(poll_interval=1, pickup_grace=20)) as engine:
            report = engine.recover_host(host)
        assert report.exit_code == 0 and w.lines(logging.ERROR) == []
        assert w.resumes() == [0, 0] and w.state(0) == "ACTIVE/RUNNING"
        # oned ran the first, and dropped the second as a duplicate: nothing applied twice.
        assert any("restart_action, VM in a wrong state." in line for line in w.cloud.vm_log[0])
        assert report.results[0].attempts == 1
    finally:
        w.cloud.timeline.stop()


def test_a_dropped_resume_is_sent_again(clock: FakeClock, tmp_path) -> None:
    """7.4.0's VM 81: resume accepted while UNKNOWN, the host's first (full sync) report queued
    just before it powers the VM off, the LCM runs the resume in SHUTDOWN_POWEROFF and drops it."""
    timing = OnedTiming(lcm_base=2.0, lcm_service=0.1, dm_delay=0.5)
    w = World(fake_cloud(clock, timing=timing, v7=True), clock, str(tmp_path / "state"))
    try:
        host = _host_with_vms(w, 1)
        w.outage(host)
        w.cloud.reconcile(host, running=set(), sync=True, wait=False)  # queued before our resume
        with w.engine(Timing(poll_interval=1, pickup_grace=60)) as engine:
            report = engine.recover_host(host)
        assert any("restart_action, VM in a wrong state." in line for line in w.cloud.vm_log[0])
        assert w.resumes() == [0, 0]
        assert report.exit_code == 0 and w.lines(logging.ERROR) == []
        assert w.state(0) == "ACTIVE/RUNNING"
        [again] = [line for line in w.lines(logging.INFO) if "sending the resume again" in line]
        assert "may have dropped it" in again and "s after the call" in again  # alone: after pickup_grace
    finally:
        w.cloud.timeline.stop()


def test_a_dropped_resume_is_known_once_a_later_one_has_run(clock: FakeClock, tmp_path) -> None:
    """oned's LCM queue is first in, first out: once a resume sent after VM 0's was accepted has
    run (VM 1 seen booting), VM 0's has run too; still no mark of it: dropped. Sent again at once,
    not after pickup_grace."""
    timing = OnedTiming(lcm_base=2.0, lcm_service=0.1, dm_delay=0.5)
    w = World(fake_cloud(clock, timing=timing), clock, str(tmp_path / "state"))
    try:
        host = _host_with_vms(w, 2)
        w.outage(host)
        w.cloud.late_report(0, wait=False)  # the monitor's POWEROFF for VM 0, queued first
        with w.engine(Timing(max_parallel=1, poll_interval=1, pickup_grace=60)) as engine:
            report = engine.recover_host(host)
        assert report.exit_code == 0 and w.lines(logging.ERROR) == []
        assert w.cloud.vm_log[0][-1].endswith("restart_action, VM in a wrong state.") or any(
            "wrong state" in line for line in w.cloud.vm_log[0])
        times = [t for t, vm_id, name, _ in w.cloud.action_log if name == "resume" and vm_id == 0]
        assert len(times) == 2 and times[1] - times[0] < 10, times
        assert any("oned has run a resume sent after it: dropped" in line for line in w.lines(logging.INFO))
        assert [t for t, vm_id, name, _ in w.cloud.action_log if name == "resume" and vm_id == 1] \
            and w.resumes().count(1) == 1
        assert w.state(0) == w.state(1) == "ACTIVE/RUNNING"
    finally:
        w.cloud.timeline.stop()


def test_powered_off_again_by_a_late_report_is_resumed_again(world: World) -> None:
    """A monitor report taken before the deploy lands after it: RUNNING -> POWEROFF (monitor).
    From POWEROFF the resume opened a new record, so oned shows it ran: one attempt spent."""
    host = _host_with_vms(world, 1)
    world.outage(host)
    world.cloud.reconcile(host, running=set())  # gone: POWEROFF (monitor)
    bounced: List[int] = []

    def look() -> None:
        if world.state(0) == "ACTIVE/RUNNING" and not bounced:
            bounced.append(0)
            world.cloud.late_report(0)

    world.door.before_look = look
    with world.engine(Timing(poll_interval=1)) as engine:
        report = engine.recover_host(host)
    assert bounced and world.resumes() == [0, 0]
    assert report.exit_code == 0 and world.lines(logging.ERROR) == []
    assert report.results[0].outcome == Outcome.RUNNING and report.results[0].attempts == 2
    assert any("late monitor report powered the VM off again" in line for line in world.lines(logging.INFO))


@pytest.mark.parametrize("change, outcome", [
    ("user-poweroff", Outcome.HANDLED), ("opt-out", Outcome.SKIPPED), ("lock", Outcome.LOCKED),
    ("host-error", Outcome.HANDLED)])
def test_the_policy_is_asked_again_before_a_retry(world: World, change: str, outcome: Outcome) -> None:
    """A VM a user powers off, opts out or locks during the retry delay is never resumed again."""
    host = _host_with_vms(world, 1)
    world.outage(host)
    world.cloud.fail_deploys(1, vm_id=0)
    looks = []

    def meanwhile() -> None:
        if world.deploy_failed(0) and not looks:  # during the retry delay
            looks.append(1)
            if change == "user-poweroff":
                world.act("poweroff", 0)
                return
            with world.cloud.lock:
                if change == "opt-out":
                    world.cloud.tables.vms[0].user_template.append(("ONE_HOOKS_RECOVER", "NO"))
                elif change == "lock":
                    world.cloud.tables.vms[0].lock = 2
                else:
                    world.cloud.host_error(host)

    world.door.before_look = meanwhile
    with world.engine(Timing(poll_interval=1, retry_delay=10)) as engine:
        report = engine.recover_host(host)
    assert world.resumes() == [0]
    assert report.results[0].outcome == outcome, report.results[0]
    if change == "user-poweroff":
        assert world.state(0) == "POWEROFF/LCM_INIT" and "user" in report.results[0].reason
    record = Ledger(world.state_dir, wall=world.clock).get(0)
    if change == "host-error":
        # Left to host-reconnect, with the attempt it made counted: it carries on when the host is back.
        assert "stopped carrying it" in report.results[0].reason
        assert record.applied == 1 and record.before is not None and not record.final
    else:
        assert record == Attempts(0)


def _resumed_by_a_dead_process(world: World, vm_id: int, who: str) -> None:
    """The ledger's record and carry claim of a resume made by a process that then died."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    ledger = Ledger(world.state_dir, wall=world.clock)
    ledger.sent(vm_id, f"{who}[{dead.pid}]", Snapshot.of(world.door.vm_info(vm_id), world.clock()))
    (Path(world.state_dir) / "carry").mkdir(exist_ok=True)
    (Path(world.state_dir) / "carry" / f"vm-{vm_id}.claim").write_bytes(
        claims.encode_carry(dead.pid, 1, "gone", world.clock() + 1000, who))


def test_a_run_takes_over_from_one_that_died(world: World) -> None:
    """The process that resumed the VM was killed (onehem's TIMEOUT, OOM): the next one judges
    its last resume from the ledger's evidence and carries on within the attempts left."""
    host = _host_with_vms(world, 1)
    world.outage(host)
    world.cloud.fail_deploys(1, vm_id=0)
    _resumed_by_a_dead_process(world, 0, "vm-unknown")
    world.cloud.action("resume", 0)  # the dead process's resume: its deploy fails
    world.clock.settle()
    assert world.state(0) == "ACTIVE/UNKNOWN"
    with world.engine(Timing(poll_interval=1, retry_delay=10)) as engine:
        report = engine.recover_host(host)
    assert report.exit_code == 0 and world.lines(logging.ERROR) == []
    assert world.resumes() == [0, 0] and world.state(0) == "ACTIVE/RUNNING"
    assert report.results[0].attempts == 2
    assert "carrying on from vm-unknown[" in world.out.getvalue()


def test_a_vm_carried_by_another_live_run_is_left_to_it(clock: FakeClock, tmp_path) -> None:
    w = World(fake_cloud(clock, timing=OnedTiming(lcm_base=5.0)), clock, str(tmp_path / "state"))
    try:
        host = _host_with_vms(w, 1)
        w.outage(host)
        first = w.engine(Timing(poll_interval=1))
        host_now = w.door.host_info(host)
        decision = decide(w.door.vm_info(0), host_now, Settings())
        carried = first._act(host_now, decision)  # resumed, not run yet: `first` carries it
        assert carried is not None and w.resumes() == [0]
        with w.engine(Timing(poll_interval=1)) as second:
            report = second.recover_host(host)
        assert report.results[0].outcome == Outcome.HANDLED
        assert f"left to recover (pid {os.getpid()}), which resumed it" in report.results[0].reason
        assert w.resumes() == [0] and report.exit_code == 0
        first.close()
    finally:
        w.cloud.timeline.stop()


def test_two_runs_at_once_resume_each_vm_once(world: World) -> None:
    host = _host_with_vms(world, 12)
    world.outage(host)
    reports = []

    def run() -> None:
        with world.engine() as engine:
            reports.append(engine.recover_host(host))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(world.resumes()) == list(range(12))
    assert all(world.state(i) == "ACTIVE/RUNNING" for i in range(12))
    assert all(r.exit_code == 0 for r in reports) and len(reports) == 3


def test_oned_down_mid_run_then_rerun_completes(world: World) -> None:
    host = _host_with_vms(world, 6)
    world.outage(host)
    world.door.down_after = 2
    with world.engine(Timing(max_parallel=1, call_retries=1, call_retry_delay=1, wait_running=5,
                             tier_timeout=5, lock_timeout=5)) as engine:
        first = engine.recover_host(host)
    assert first.exit_code == 1
    assert len(world.resumes()) == 2
    world.door.down = False
    world.door.down_after = None
    with world.engine() as engine:
        second = engine.recover_host(host)
    assert second.exit_code == 0
    assert sorted(world.resumes()) == list(range(6))  # each exactly once
    assert all(world.state(i) == "ACTIVE/RUNNING" for i in range(6))


def test_transient_error_retried_with_backoff(world: World) -> None:
    host = _host_with_vms(world, 1)
    world.outage(host)
    failures = [OnedUnreachable("connection reset", "one.vm.action")]

    def flaky(vm_id: int) -> None:
        if failures:
            raise failures.pop()

    world.door.before_action = flaky
    with world.engine(Timing(max_parallel=1, call_retries=3, call_retry_delay=2, poll_interval=1)) as engine:
        report = engine.recover_host(host)
    assert report.results[0].outcome == Outcome.RUNNING
    assert world.clock.sleeps[0] == 2  # first retry delay, before anything else
    assert world.resumes() == [0]


def test_action_refused_because_someone_else_acted(world: World) -> None:
    host = _host_with_vms(world, 2)
    world.outage(host)

    def someone_else(vm_id: int) -> None:
        if vm_id == 1:
            world.cloud.reconcile(host, running={0, 1})  # found running after all

    world.door.before_action = someone_else
    with world.engine() as engine:
        report = engine.recover_host(host)
    assert report.results[1].outcome == Outcome.HANDLED
    assert "RUNNING" in report.results[1].reason
    assert report.exit_code == 0


def test_not_running_in_time(world: World) -> None:
    clock = FakeClock()
    slow = fake_cloud(clock, boot_seconds=3600)
    try:
        w = World(slow, clock, world.state_dir)
        host = _host_with_vms(w, 1)
        w.outage(host)
        with w.engine(Timing(wait_running=10, tier_timeout=5, poll_interval=1)) as engine:
            report = engine.recover_host(host)
        assert report.results[0].outcome == Outcome.TIMEOUT
        assert "BOOT_UNKNOWN" in report.results[0].reason
        assert report.exit_code == 1
    finally:
        slow.timeline.stop()


def test_settle_window_picks_up_late_reconciliation(world: World) -> None:
    host = world.cloud.add_host("node1")
    for i in range(2):
        world.cloud.add_vm(f"vm{i}", host)
    world.cloud.host_error(host)
    world.cloud.host_monitored(host)
    world.cloud.reconcile(host, running={0, 1})  # both were found running at first
    looks = []

    def late(seconds: float) -> None:
        looks.append(seconds)
        world.clock.now += seconds
        world.clock.settle()
        if len(looks) == 2:
            # The next full sync says VM 1 is gone after all.
            world.cloud.reconcile(host, running={0})

    world.clock.sleep = late  # type: ignore[method-assign]
    timing = Timing(settle_seconds=30, settle_interval=10, poll_interval=1)
    with world.engine(timing) as engine:
        report = engine.recover_host(host, settle=True)
    assert world.resumes() == [1]
    assert report.results[1].outcome == Outcome.RUNNING
    assert looks[:3] == [10, 10, 1] or looks[:2] == [10, 10]
    assert "became candidates" in world.out.getvalue()


def test_vm_gone_before_acting(world: World) -> None:
    host = _host_with_vms(world, 1)
    world.outage(host)

    def gone(vm_id: int) -> Vm:
        # Terminated by someone between the plan (a pool call) and the re-read.
        raise OnedNotFound(f"[one.vm.info] Error getting virtual machine [{vm_id}].",
                           "one.vm.info", NO_EXISTS)

    world.door.vm_info = gone  # type: ignore[method-assign]
    with world.engine() as engine:
        report = engine.recover_host(host)
    assert report.results[0].outcome == Outcome.HANDLED and "no longer exists" in report.results[0].reason
    assert world.resumes() == []


def test_report_table_and_json(world: World) -> None:
    host = _host_with_vms(world, 2, vm1=[("ONE_HOOKS_RECOVER", "NO")])
    world.outage(host)
    with world.engine() as engine:
        report = engine.recover_host(host)
    table = report.table()
    assert table[0].split()[:3] == ["VM", "NAME", "HOST"]
    assert any(line.startswith("0 ") and "running" in line for line in table)
    data = report.as_dict()
    assert [v["outcome"] for v in data["vms"]] == ["running", "skipped"]
    assert data["exit_code"] == 0
    assert "1 running" in report.summary() and "1 skipped" in report.summary()


def test_one_host_failing_does_not_stop_the_others(world: World) -> None:
    good = _host_with_vms(world, 2, name="good")
    world.outage(good)
    with world.engine() as engine:
        report = engine.recover_hosts([good, 99])   # host 99 does not exist
    assert report.exit_code == 1
    assert any(p.startswith("host 99:") for p in report.problems)
    assert sorted(world.resumes()) == [0, 1]


def test_state_dir_not_writable_is_one_clear_error(world: World, tmp_path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory should be\n")
    ledger = Ledger(str(blocker / "state"))
    with pytest.raises(ConfigError, match="state_dir"):
        ledger.sent(1, "test", Snapshot(VmState.ACTIVE, LcmState.UNKNOWN, 0, 0, HistoryAction.NONE,
                                        0, 0, "", 1000.0))
    with pytest.raises(ConfigError, match="state_dir"):
        with ledger.host_lock(0, 1):
            pass


def test_a_host_run_reads_only_its_vms_id_range(world: World) -> None:
    """A hook recovering one host asks oned for its VMs' ID range, not the whole cloud;
    a run over several hosts shares whole-pool reads."""
    other = _host_with_vms(world, 4, "node0")     # VMs 0-3, on another host
    host = _host_with_vms(world, 5, "node1")      # VMs 4-8
    _host_with_vms(world, 3, "node2")             # VMs 9-11
    world.outage(host)
    with world.engine() as engine:
        report = engine.recover_host(host)
    assert report.exit_code == 0 and sorted(world.resumes()) == [4, 5, 6, 7, 8]
    assert world.door.ranges and set(world.door.ranges) == {(4, 8)}
    world.door.ranges.clear()
    world.outage(other)
    with world.engine() as engine:
        assert engine.recover_hosts([other, host]).exit_code == 0
    assert world.door.ranges and set(world.door.ranges) == {None}


def test_settle_window_resumes_a_vm_that_goes_down_again(world: World) -> None:
    """A VM the window already brought back that vanishes again is a new incident: its VM
    hook leaves it to the watching host-reconnect, which must resume it again."""
    host = world.cloud.add_host("node1")
    for i in range(2):
        world.cloud.add_vm(f"vm{i}", host)
    world.cloud.host_error(host)
    world.cloud.host_monitored(host)
    world.cloud.reconcile(host, running={0, 1})
    looks = []

    def late(seconds: float) -> None:
        looks.append(seconds)
        world.clock.now += seconds
        world.clock.settle()
        if len(looks) in (2, 4):  # VM 1 vanishes, is brought back, then vanishes again
            world.cloud.reconcile(host, running={0})

    world.clock.sleep = late  # type: ignore[method-assign]
    timing = Timing(settle_seconds=60, settle_interval=10, poll_interval=1)
    with world.engine(timing) as engine:
        report = engine.recover_host(host, settle=True)
    assert world.resumes() == [1, 1], (looks, world.out.getvalue())
    assert report.results[1].outcome == Outcome.RUNNING
    assert world.state(1) == "ACTIVE/RUNNING"


def test_the_settle_window_carries_on_a_resume_its_first_pass_left_behind(world: World) -> None:
    """7.4.0's VM 81: resumed while UNKNOWN, then POWEROFF (monitor) and its resume dropped. The
    watcher used to see a candidate 'already resumed 1 time(s)' every look and leave it down; now,
    the process that resumed it being gone, it judges that resume from the ledger and resumes again."""
    host = world.cloud.add_host("node1")
    vm = world.cloud.add_vm("vm81", host)
    world.outage(host)
    _resumed_by_a_dead_process(world, vm, "host-reconnect")
    world.cloud.late_report(vm)  # POWEROFF by the monitor; the resume never ran
    assert world.state(vm) == "POWEROFF/LCM_INIT"
    timing = Timing(settle_seconds=120, settle_interval=10, poll_interval=1, pickup_grace=60)
    with world.engine(timing) as engine:
        report = engine.watch_host(host)
    assert world.resumes() == [vm] and world.state(vm) == "ACTIVE/RUNNING"
    assert report.exit_code == 0 and report.results[vm].outcome == Outcome.RUNNING
    out = world.out.getvalue()
    assert "carrying on from host-reconnect[" in out and "already resumed" not in out


def test_a_vm_caught_half_way_through_the_monitors_poweroff_is_resumed_in_its_tier(clock: FakeClock,
                                                                                     tmp_path) -> None:
    """oned sets SHUTDOWN_POWEROFF (last action monitor) on its LCM thread and POWEROFF on its
    DispatchManager's a moment later; a plan read in between (seen on the real 6.10.5 and 7.4.0) must not
    skip the VM: it is a candidate of its tier, its worker waits for POWEROFF and resumes it before the lower
    tier starts, with no refused call."""
    cloud = fake_cloud(clock, timing=OnedTiming(dm_delay=3.0))
    try:
        w = World(cloud, clock, str(tmp_path / "state"))
        host = _host_with_vms(w, 3, vm0=[("ONE_HOOKS_PRIORITY", "10")])
        w.outage(host)
        cloud.reconcile(host, running=set(), wait=False)  # the domains are gone
        clock.settle()
        assert [w.state(i) for i in range(3)] == ["ACTIVE/SHUTDOWN_POWEROFF"] * 3
        with w.engine() as engine:
            report = engine.recover_host(host)
        assert report.exit_code == 0, w.out.getvalue()
        assert w.resumes()[0] == 0 and sorted(w.resumes()) == [0, 1, 2], w.out.getvalue()
        assert [report.results[i].outcome for i in range(3)] == [Outcome.RUNNING] * 3
        assert "VM 0 (node1-vm0): being powered off by the monitor this instant" in w.out.getvalue()
        assert "ACTIVE/SHUTDOWN_POWEROFF: resume tier 10: being powered off by the monitor" in w.out.getvalue()
        assert w.lines(logging.ERROR) == []
    finally:
        cloud.timeline.stop()


def test_a_vm_deleted_while_its_worker_waits_for_poweroff_is_not_waited_for(clock: FakeClock, tmp_path) -> None:
    """A VM terminated while its worker waits for the monitor's POWEROFF: the wait stops at the first read
    that finds it gone (not after IN_TRANSIT_WAIT), and the VM is reported gone, not failed."""
    cloud = fake_cloud(clock, timing=OnedTiming(dm_delay=60.0))  # POWEROFF would come after the wait
    try:
        w = World(cloud, clock, str(tmp_path / "state"))
        host = _host_with_vms(w, 1)
        w.outage(host)
        cloud.reconcile(host, running=set(), wait=False)  # the domain is gone
        clock.settle()
        assert w.state(0) == "ACTIVE/SHUTDOWN_POWEROFF"
        began: List[float] = []

        def terminated_meanwhile() -> None:
            if not began and "waiting for POWEROFF before the resume" in w.out.getvalue():
                began.append(clock.now)
                with cloud.lock:
                    del cloud.tables.vms[0]

        w.door.before_look = terminated_meanwhile
        with w.engine() as engine:
            report = engine.recover_host(host)
        assert began, w.out.getvalue()
        assert report.results[0].outcome == Outcome.HANDLED, w.out.getvalue()
        assert "VM no longer exists" in report.results[0].reason
        assert clock.now - began[0] < engine_module.IN_TRANSIT_WAIT, clock.now - began[0]
        assert w.resumes() == [] and w.lines(logging.ERROR) == []
    finally:
        cloud.timeline.stop()


def test_a_resume_refused_by_a_busy_oneds_authentication_is_sent_again(world: World) -> None:
    """oned on sqlite refuses calls with AUTHENTICATION while its database is locked (the real 6.10.5 and
    7.4.0 in a storm): the resume is re-read and sent again, not reported failed."""
    host = _host_with_vms(world, 1)
    world.outage(host)
    refusals: List[int] = []

    def busy(vm_id: int) -> None:
        if not refusals:
            refusals.append(vm_id)
            raise OnedAuthError("[one.vm.action] User couldn't be authenticated, aborting call.",
                                "one.vm.action", 0x100, (vm_id,))

    world.door.before_action = busy
    with world.engine() as engine:
        report = engine.recover_host(host)
    assert refusals == [0] and world.resumes() == [0]
    assert report.exit_code == 0 and report.results[0].outcome == Outcome.RUNNING
    assert world.lines(logging.ERROR) == []
