"""The simulated oned keeps oned's timing: its LCM queue, the 7.4 ignore window, hosts returning apart.

What a real oned 6.10.5 / 7.4.0 does (OpenNebula's LCM source; rig runs in
``/work/notes/rig-findings.md``): an action is accepted at once and applied
later by one FIFO worker, which reads the state again and drops the action if
it is wrong; a monitor poweroff is SHUTDOWN_POWEROFF on that worker, POWEROFF
on the DispatchManager's thread. These tests run the cloud on a fake clock
(``tests.test_recovery.FakeClock``): the delays are exact and cost no time.
"""
from __future__ import annotations

from typing import Dict, Iterator, List

import pytest

from one_hooks.oned.model import HistoryAction, HostState, LcmState, VmState
from one_hooks.sim.cloud import Cloud
from one_hooks.sim.lcm import REAL_TIMING, OnedTiming

from .test_recovery import FakeClock, fake_cloud


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def make(clock: FakeClock) -> Iterator:
    made: List[Cloud] = []

    def build(**kwargs: object) -> Cloud:
        cloud = fake_cloud(clock, **kwargs)
        made.append(cloud)
        return cloud

    yield build
    for cloud in made:
        cloud.timeline.stop()
        assert not cloud.timeline.errors, cloud.timeline.errors


def _advance(clock: FakeClock, seconds: float, step: float = 0.01) -> None:
    for _ in range(int(round(seconds / step))):
        clock.sleep(step)


def _outage(cloud: Cloud, n: int) -> List[int]:
    host = cloud.add_host("node-1")
    vms = [cloud.add_vm(f"vm{i}", host) for i in range(n)]
    cloud.host_error(host)
    cloud.host_monitored(host)
    return vms


def _first_change(cloud: Cloud, vm_id: int, after: str, since: float = 0.0) -> float:
    return next(c.time for c in cloud.changes
                if c.kind == "vm" and c.id == vm_id and c.after == after and c.time > since)


def test_a_resume_is_accepted_at_once_and_applied_when_the_lcm_gets_to_it(make, clock) -> None:
    cloud = make(timing=OnedTiming(lcm_base=0.3, lcm_service=0.05))
    vms = _outage(cloud, 20)
    accepted = clock()
    for vm in vms:
        cloud.action("resume", vm)
    assert all(cloud.tables.vms[v].state_name == "ACTIVE/UNKNOWN" for v in vms)  # the answer came first
    _advance(clock, 0.3)
    assert all(cloud.tables.vms[v].state_name == "ACTIVE/UNKNOWN" for v in vms)  # nothing before the base
    _advance(clock, 5.0)
    picked = [_first_change(cloud, v, "ACTIVE/BOOT_UNKNOWN") - accepted for v in vms]
    # One FIFO worker: the k-th resume waits for the k-1 before it (0.3 s + 50 ms each).
    assert picked == sorted(picked)
    assert picked[0] == pytest.approx(0.35, abs=0.02) and picked[-1] == pytest.approx(0.3 + 20 * 0.05, abs=0.02)
    assert all(cloud.tables.vms[v].state_name == "ACTIVE/RUNNING" for v in vms)


def test_the_deploys_answer_waits_its_turn_too(make, clock) -> None:
    """The driver's answer is an LCM event: with resumes queued, RUNNING comes after them."""
    cloud = make(timing=OnedTiming(lcm_service=0.1), boot_seconds=0.0)
    vms = _outage(cloud, 5)
    accepted = clock()
    for vm in vms:
        cloud.action("resume", vm)
    _advance(clock, 2.0)
    running = [_first_change(cloud, v, "ACTIVE/RUNNING", since=accepted) for v in vms]
    booted = [_first_change(cloud, v, "ACTIVE/BOOT_UNKNOWN") for v in vms]
    assert running[0] > booted[-1]  # the first deploy's answer queued behind the other four resumes


def test_a_queued_resume_finding_the_vm_running_is_dropped(make, clock) -> None:
    cloud = make(timing=OnedTiming(lcm_base=1.0))
    [vm] = _outage(cloud, 1)
    cloud.reconcile(0, running={vm}, wait=False)  # the host's report: found running
    cloud.action("resume", vm)                    # accepted: still UNKNOWN when the call came
    _advance(clock, 2.0)
    assert cloud.tables.vms[vm].state_name == "ACTIVE/RUNNING"
    assert not any(c.after == "ACTIVE/BOOT_UNKNOWN" for c in cloud.changes if c.id == vm)
    assert cloud.vm_log[vm][-1].endswith("restart_action, VM in a wrong state.")


@pytest.mark.parametrize("dm_delay, dropped", [(0.0, False), (0.5, True)])
def test_unknown_then_poweroff_before_pickup(make, clock, dm_delay: float, dropped: bool) -> None:
    """The monitor's POWEROFF is queued first. If the DispatchManager has set POWEROFF when the
    resume runs, it is a resume from POWEROFF (new record, ACTION 11); if the VM is still
    SHUTDOWN_POWEROFF, the LCM drops it (7.4.0's VM 81, 6.10.5's VMs 305 and 522)."""
    cloud = make(timing=OnedTiming(lcm_base=1.0, lcm_service=0.1, dm_delay=dm_delay))
    [vm] = _outage(cloud, 1)
    cloud.reconcile(0, running=set(), wait=False)
    cloud.action("resume", vm)
    _advance(clock, 3.0)
    sim_vm = cloud.tables.vms[vm]
    if dropped:
        assert sim_vm.state_name == "POWEROFF/LCM_INIT" and len(sim_vm.history) == 1
        assert sim_vm.last.action == HistoryAction.MONITOR and sim_vm.last.retime
        assert cloud.vm_log[vm][-1].endswith("restart_action, VM in a wrong state.")
    else:
        assert sim_vm.state_name == "ACTIVE/RUNNING" and len(sim_vm.history) == 2
        assert any(c.after == "ACTIVE/BOOT_POWEROFF" for c in cloud.changes if c.id == vm)
        assert sim_vm.last.action == HistoryAction.NONE  # cleared by the deploy's success


def test_a_failed_deploy_leaves_retime_and_error_a_success_clears_retime_only(make, clock) -> None:
    cloud = make(timing=OnedTiming(lcm_base=0.5))
    [vm] = _outage(cloud, 1)
    cloud.fail_deploys(1, vm_id=vm)
    cloud.action("resume", vm)
    _advance(clock, 1.5)  # the restart, then the deploy's answer: each waits the LCM's 0.5 s
    failed = cloud.tables.vms[vm]
    assert failed.state_name == "ACTIVE/UNKNOWN" and failed.last.retime == int(clock())
    error = dict(failed.user_template)["ERROR"]
    assert ": DEPLOY: could not deploy one-0 on node-1" in error
    clock.sleep(1.0)
    cloud.action("resume", vm)
    _advance(clock, 1.5)
    ok = cloud.tables.vms[vm]
    assert ok.state_name == "ACTIVE/RUNNING" and ok.last.retime == 0 and len(ok.history) == 1
    assert dict(ok.user_template)["ERROR"] == error  # oned never clears it


def test_7_4_ignores_explicit_reports_30_s_after_rstime_or_retime(make, clock) -> None:
    cloud = make(v7=True)
    [vm] = _outage(cloud, 1)  # deployed just now: RSTIME = now
    cloud.reconcile(0, running=set())
    assert cloud.tables.vms[vm].state_name == "ACTIVE/UNKNOWN"
    assert cloud.vm_log[vm][-1].endswith("Ignoring VM state update")
    cloud.reconcile(0, running=set(), sync=True)  # a full sync's "missing" VM is never ignored
    assert cloud.tables.vms[vm].state_name == "POWEROFF/LCM_INIT"
    # POWEROFF sets RETIME: a RUNNING report within 30 s is ignored, after it "found again"
    cloud.reconcile(0, running={vm})
    assert cloud.tables.vms[vm].state_name == "POWEROFF/LCM_INIT"
    clock.sleep(31)
    cloud.reconcile(0, running={vm})
    found = cloud.tables.vms[vm]
    assert found.state_name == "ACTIVE/RUNNING" and len(found.history) == 2  # a new record


def test_6_10_guards_only_a_running_report_on_a_poweroff_vm(make, clock) -> None:
    cloud = make()
    [vm] = _outage(cloud, 1)
    cloud.reconcile(0, running=set())  # explicit POWEROFF seconds after the deploy: applied
    assert cloud.tables.vms[vm].state_name == "POWEROFF/LCM_INIT"
    cloud.reconcile(0, running={vm})
    assert cloud.tables.vms[vm].state_name == "POWEROFF/LCM_INIT"  # RETIME under 30 s old
    clock.sleep(30)
    cloud.reconcile(0, running={vm})
    assert cloud.tables.vms[vm].state_name == "ACTIVE/RUNNING"


def test_a_late_report_powers_a_just_booted_vm_off_once_per_return(make, clock) -> None:
    cloud = make(late_poweroff=1.0, late_poweroff_after=2.0)
    [vm] = _outage(cloud, 1)
    cloud.action("resume", vm)
    _advance(clock, 1.0)
    assert cloud.tables.vms[vm].state_name == "ACTIVE/RUNNING"
    _advance(clock, 1.5)
    bounced = cloud.tables.vms[vm]
    assert bounced.state_name == "POWEROFF/LCM_INIT" and len(bounced.history) == 1
    assert bounced.last.action == HistoryAction.MONITOR and bounced.last.retime
    assert any("monitor state is POWEROFF" in line for line in cloud.vm_log[vm])
    cloud.action("resume", vm)  # resumed again: that stale report is spent
    _advance(clock, 4.0)
    assert cloud.tables.vms[vm].state_name == "ACTIVE/RUNNING"


def test_hosts_return_spread_and_report_later(make_sim) -> None:
    """Hosts whose outage ended together come back seconds apart (1.3-5.3 s over 3 hosts on
    6.10.5, 1.6-4.5 s on 7.4.0), each VM report 0.2-1.8 s after its host."""
    timing = OnedTiming(host_spread=1.0, reconcile_after=(0.2, 0.4))
    sim = make_sim(timing=timing, seed=3)
    hosts = [sim.add_host(f"node-{i}") for i in range(4)]
    vms = {h: sim.add_vm(f"vm{h}", h) for h in hosts}
    for h in hosts:
        sim.host_error(h)
    offsets = sim.hosts_return(hosts, reports={h: set() for h in hosts[:2]})
    assert offsets[hosts[0]] == 0.0 and all(0.0 <= o <= 1.0 for o in offsets.values())
    assert len(set(offsets.values())) == 4
    assert sim.settle(10)
    back: Dict[int, float] = {c.id: c.time for c in sim.changes if c.kind == "host" and c.after == "MONITORED"
                              and c.before == "ERROR"}
    assert sorted(back) == hosts
    for h in hosts[:2]:
        off = next(c.time for c in sim.changes if c.kind == "vm" and c.id == vms[h] and c.after == "POWEROFF/LCM_INIT")
        assert 0.2 <= off - back[h] < 1.5
    assert all(sim.vm(vms[h]).lcm_state == LcmState.UNKNOWN for h in hosts[2:])  # no report: stay UNKNOWN
    assert all(sim.host(h).state == HostState.MONITORED for h in hosts)
    assert sim.vm(vms[hosts[0]]).state == VmState.POWEROFF


def test_real_timing_is_the_measured_one() -> None:
    """The figures the benchmarks use (rig-findings, lcm module docstring)."""
    assert 0.1 <= REAL_TIMING.lcm_base <= 1.1
    assert 0.025 <= 2 * REAL_TIMING.lcm_service <= 0.056  # per resume: its restart and its deploy answer
    assert REAL_TIMING.reconcile_after == (0.2, 1.8)
    assert 4.0 <= REAL_TIMING.host_spread <= 9.0
