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
import threading
from typing import Callable, Dict, List, Optional, Tuple

import pytest

from one_hooks.oned import xmlparse
from one_hooks.audit import Reporter
from one_hooks.errors import (
    ConfigError, OnedNotFound, OnedUnreachable,
)
from one_hooks.node.iscsi import Status, Verdict
from one_hooks.recovery.ledger import Ledger
from one_hooks.oned.model import Host, Vm
from one_hooks.recovery.policy import Settings
from one_hooks.recovery.engine import Engine, Timing
from one_hooks.recovery.report import Outcome
from one_hooks.sim import xmlout
from one_hooks.sim.cloud import Cloud
from one_hooks.oned.client import error_class
from one_hooks.sim.faults import NO_EXISTS, Refused


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
        return xmlparse.parse_vm(self._do("one.vm.info", lambda: xmlout.compact(
            xmlout.vm_element(self.cloud.get_vm(vm_id)))))

    def vm_pool(self, host_id: Optional[int] = None,
                id_range: Optional[Tuple[int, int]] = None) -> List[Vm]:
        c = self.cloud
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
    """Monotonic time that moves only when someone sleeps."""

    def __init__(self, cloud: Cloud) -> None:
        self.now = 1000.0
        self.cloud = cloud
        self.sleeps: List[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds
        self.cloud.timeline.wait_idle(10)


class GateStandIn:
    """A gate whose verdicts are given per host, as the real Gate returns them."""

    def __init__(self, verdicts: Optional[Dict[str, Verdict]] = None) -> None:
        self.verdicts = verdicts or {}
        self.asked: List[str] = []

    def wait_healthy(self, host: str) -> Verdict:
        self.asked.append(host)
        return self.verdicts.get(host, Verdict(host, Status.HEALTHY))


@pytest.fixture()
def cloud():
    c = Cloud()
    yield c
    c.timeline.stop()


class World:
    """A cloud, its door, a clock, a state dir: what one test needs to build engines."""

    def __init__(self, cloud: Cloud, state_dir: str) -> None:
        self.cloud = cloud
        self.door = CloudDoor(cloud)
        self.clock = FakeClock(cloud)
        self.state_dir = state_dir
        self.gate = GateStandIn()
        self.out = io.StringIO()

    def engine(self, timing: Optional[Timing] = None, settings: Settings = Settings(),
               **kw: object) -> Engine:
        t = timing or Timing(max_parallel=4, wait_running=60, tier_timeout=30, poll_interval=1,
                             call_retries=2, call_retry_delay=1, lock_timeout=30)
        reporter = Reporter(out=self.out)
        return Engine(self.door, settings, t, Ledger(self.state_dir, wall=self.clock), reporter,
                      kw.pop("gate", self.gate), clock=self.clock, sleep=self.clock.sleep, **kw)

    def outage(self, host_id: int) -> None:
        self.cloud.host_error(host_id)
        self.cloud.host_monitored(host_id)

    def resumes(self) -> List[int]:
        return [vm_id for _, vm_id, name, _ in self.cloud.action_log if name == "resume"]

    def state(self, vm_id: int) -> str:
        return self.cloud.tables.vms[vm_id].state_name


@pytest.fixture()
def world(cloud: Cloud, tmp_path) -> World:
    return World(cloud, str(tmp_path / "state"))


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
    world.cloud.action("poweroff", 2)          # a user's poweroff, before the outage
    world.cloud.timeline.wait_idle(5)
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


def test_failed_deploy_recorded_then_retry_path(world: World) -> None:
    host = _host_with_vms(world, 2)
    world.outage(host)
    world.cloud.fail_deploys(1, vm_id=1)
    with world.engine() as engine:
        first = engine.recover_host(host)
    assert first.results[1].outcome == Outcome.FAILED and "back in ACTIVE/UNKNOWN" in first.results[1].reason
    assert first.exit_code == 1
    # Another hook for the same host must not resume it again: that is vm-unknown's job.
    with world.engine() as engine:
        second = engine.recover_host(host)
    assert second.results[1].outcome == Outcome.HANDLED
    assert world.resumes() == [0, 1] or sorted(world.resumes()) == [0, 1]
    # The UNKNOWN hook's retry goes through and counts attempt 2.
    with world.engine() as engine:
        third = engine.recover_host(host, only=[1], retry=True)
    assert third.results[1].outcome == Outcome.RUNNING and third.results[1].attempts == 2
    assert sorted(world.resumes()) == [0, 1, 1]


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
    slow = Cloud(boot_seconds=3600)
    try:
        w = World(slow, world.state_dir)
        host = _host_with_vms(w, 1)
        w.outage(host)
        w.clock.sleep = lambda s: setattr(w.clock, "now", w.clock.now + s)  # type: ignore[method-assign]
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
        if len(looks) == 2:
            # The next full sync says VM 1 is gone after all.
            world.cloud.reconcile(host, running={0})
        world.cloud.timeline.wait_idle(5)

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
        ledger.record(1, "test")
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
        if len(looks) in (2, 4):  # VM 1 vanishes, is brought back, then vanishes again
            world.cloud.reconcile(host, running={0})
        world.cloud.timeline.wait_idle(5)

    world.clock.sleep = late  # type: ignore[method-assign]
    timing = Timing(settle_seconds=60, settle_interval=10, poll_interval=1)
    with world.engine(timing) as engine:
        report = engine.recover_host(host, settle=True)
    assert world.resumes() == [1, 1], (looks, world.out.getvalue())
    assert report.results[1].outcome == Outcome.RUNNING
    assert world.state(1) == "ACTIVE/RUNNING"
