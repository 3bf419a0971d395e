"""End to end: outages in the simulated oned, healed by the real hooks.

The simulated oned serves XML-RPC on loopback; its onehem-like runner starts
the real shims (``remotes/hooks/one-hooks/*`` with the interpreter filled in,
as one-hooks-install does) as separate processes with the base64 payload on
stdin; those run ``python -m one_hooks hook ...``, talk XML-RPC back, and
check iSCSI through ``[node] command`` on the node stand-in, which replays
real ``iscsiadm`` captures. The hooks are registered from the same templates
one-hooks-install uses. Nothing in the hook path is replaced or patched.
"""
from __future__ import annotations

import base64
import dataclasses
import os
import subprocess
from collections import Counter
from typing import Dict, Iterator, List, Sequence

import pytest

from one_hooks.install.hook_templates import HOOKS
from one_hooks.oned.model import LcmState, VmState
from one_hooks.sim.demo import Pace, Stage
from one_hooks.sim.lcm import INSTANT, OnedTiming
from one_hooks.sim.server import NO_LATENCY

PACE = Pace(boot=0.1, settle=1.0, settle_interval=0.5, deadline=2.0, retry_interval=0.3,
            retry_delay=0.3, poll=0.2, pickup_grace=3.0)
HEALTHY = ["* session-P3 session-P3-healthy", "* node node-healthy"]


class Cloud:
    """A staged front-end with a started simulated oned and our three hooks registered."""

    def __init__(self, workdir: str, scenario: Sequence[str], pace: Pace = PACE,
                 attempts: int = 3, **sim: object) -> None:
        self.stage = Stage(workdir)
        self.config = self.stage.write_config(pace, attempts=attempts)
        self.stage.install_shims()
        self.stage.write_scenario(list(scenario) + HEALTHY)
        self.sim = self.stage.start_sim(latency=NO_LATENCY, boot_seconds=pace.boot, **sim)
        self.hook_ids = dict(zip((h.shim for h in HOOKS), self.stage.register_hooks(self.sim, self.config)))

    def settle(self) -> None:
        """Hooks done, and host-reconnect's detached settle watchers too."""
        assert self.sim.settle(120), "hooks still running after 120 s"
        assert self.stage.wait_watchers(60), "settle watchers still running after 60 s"

    def outage(self, host_ids: Sequence[int], gone: Sequence[int] = ()) -> None:
        """Power cut and return; hosts in ``gone`` report their VMs gone (POWEROFF/monitor)."""
        self.settle()  # the hosts' first MONITORED (and its settle watcher) is over
        for host_id in host_ids:
            self.sim.host_error(host_id)
        self.settle()
        for host_id in host_ids:
            self.sim.host_monitored(host_id)
            if host_id in gone:
                self.sim.reconcile(host_id, running=set())
        self.settle()

    def state(self, vm_id: int) -> str:
        return self.sim.vm(vm_id).state_name

    def running(self, vm_id: int) -> bool:
        vm = self.sim.vm(vm_id)
        return vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.RUNNING

    def resumes(self) -> Counter:
        return Counter(vm_id for _, vm_id, action, _ in self.sim.action_log if action == "resume")

    def runs(self, shim: str) -> List:
        return list(self.sim.hook_executions(self.hook_ids[shim]))

    def codes(self) -> Counter:
        """Exit codes of every hook execution kept."""
        return Counter(r.code for shim in self.hook_ids for r in self.runs(shim))

    def errors_logged(self) -> List[str]:
        """ERROR lines of the hooks' log."""
        with open(self.stage.log) as log:
            return [line for line in log if " ERROR " in line]

    def reconnects(self) -> List:
        """host-reconnect runs for hosts coming back from ERROR (not their first MONITORED)."""
        return [r for r in self.runs("host-reconnect") if "was ERROR" in r.stdout]

    def stop(self) -> None:
        self.stage.stop_watchers()
        self.sim.stop()


@pytest.fixture()
def make_cloud(tmp_path) -> Iterator:
    made: List[Cloud] = []

    def make(scenario: Sequence[str] = (), **kw: object) -> Cloud:
        cloud = Cloud(str(tmp_path / f"front-end{len(made)}"), scenario, **kw)  # type: ignore[arg-type]
        made.append(cloud)
        return cloud

    yield make
    for cloud in made:
        cloud.stop()


def test_outage_healed_vms_end_running(make_cloud) -> None:
    c = make_cloud()
    h1, h2 = c.sim.add_host("node-1"), c.sim.add_host("node-2")
    vms = [c.sim.add_vm(f"vm{i}", (h1, h2)[i % 2], {"ONE_HOOKS_PRIORITY": str(i % 3)}) for i in range(6)]
    c.outage([h1, h2], gone=[h2])          # node-2's VMs come back as POWEROFF (monitor)
    assert all(c.running(v) for v in vms), [c.state(v) for v in vms]
    assert set(c.resumes().values()) == {1} and sorted(c.resumes()) == vms
    reconnects = c.reconnects()
    assert len(reconnects) == 2 and {r.code for r in reconnects} == {0}
    # During the outage every VM hook said it leaves the work to host-reconnect.
    unknown = c.runs("vm-unknown")
    assert len(unknown) == 6 and all("left to host-reconnect" in r.stdout for r in unknown)
    assert len(c.runs("vm-poweroff")) == 3  # node-2's three VMs
    log = open(c.stage.log).read()
    assert "iSCSI gate HEALTHY" in log and c.sim.session.split(":")[1] not in log


def test_broken_iscsi_blocks_the_host(make_cloud) -> None:
    c = make_cloud(["node-bad session-P3 session-P1-failed"])
    good, bad = c.sim.add_host("node-good"), c.sim.add_host("node-bad")
    on_good = [c.sim.add_vm(f"g{i}", good) for i in range(2)]
    on_bad = [c.sim.add_vm(f"b{i}", bad) for i in range(2)]
    c.outage([good, bad])
    assert all(c.running(v) for v in on_good)
    assert all(c.state(v) == "ACTIVE/UNKNOWN" for v in on_bad)
    assert not any(v in c.resumes() for v in on_bad)
    [bad_run] = [r for r in c.reconnects() if "node-bad" in r.stdout]
    assert bad_run.code == 1
    assert "iqn.2000-01.example:tgt0" in bad_run.stdout          # the FAILED session's target
    assert "iqn.1992-04.com.emc:cx.apm00191923511.a4" in bad_run.stdout  # the node record without a session


def test_sessions_back_within_the_deadline(make_cloud) -> None:
    c = make_cloud(["node-slow session-P3 session-P1-failed 2 session-P3-healthy"])
    host = c.sim.add_host("node-slow")
    vms = [c.sim.add_vm(f"s{i}", host) for i in range(3)]
    c.outage([host])
    assert all(c.running(v) for v in vms)
    [run] = c.reconnects()
    assert run.code == 0 and "iSCSI gate HEALTHY" in run.stdout


def test_user_poweroff_opt_out_and_locked(make_cloud) -> None:
    c = make_cloud()
    host = c.sim.add_host("node-1")
    normal = c.sim.add_vm("normal", host)
    user_off = c.sim.add_vm("user-off", host)
    opted_out = c.sim.add_vm("opted-out", host, {"ONE_HOOKS_RECOVER": "NO"})
    locked = c.sim.add_vm("locked", host)
    c.sim.user_poweroff(user_off)
    c.settle()
    c.sim.host_error(host)
    c.settle()
    c.sim.lock_vm(locked, 2)
    c.sim.host_monitored(host)
    c.sim.reconcile(host, running=set())
    c.settle()
    assert c.running(normal)
    assert c.state(user_off) == "POWEROFF" and c.state(opted_out) == "POWEROFF"
    assert c.state(locked) == "POWEROFF"
    assert list(c.resumes()) == [normal]
    [run] = c.reconnects()
    assert run.code == 1 and f"onevm unlock {locked}" in run.stdout
    poweroff_runs = {r.code for r in c.runs("vm-poweroff")}
    assert poweroff_runs <= {0, 1}
    # The user's poweroff fired the POWEROFF hook too: it read the last action and did nothing.
    assert any("last action poweroff, not monitor" in r.stdout for r in c.runs("vm-poweroff"))


def test_failed_deploy_retry_bound(make_cloud) -> None:
    """host-reconnect, which resumed the VM, retries its failed deploy itself and gives up after
    [recovery] attempts with one line; the vm-unknown events of those failures leave it to it."""
    c = make_cloud(attempts=2)
    host = c.sim.add_host("node-1")
    vm = c.sim.add_vm("doomed", host)
    c.sim.fail_deploys(100, vm_id=vm)
    c.outage([host])
    assert c.state(vm) == "ACTIVE/UNKNOWN"
    assert c.resumes()[vm] == 2                    # [recovery] attempts = 2, then it stops
    [run] = c.reconnects()
    assert run.code == 1 and run.stdout.count(": gave up: ") == 1 and f"onevm resume {vm}" in run.stdout
    retries = [r for r in c.runs("vm-unknown") if r.code == 0 and "which resumed it" in r.stdout]
    assert retries, [r.stdout for r in c.runs("vm-unknown")]
    assert all(r.code == 0 for r in c.runs("vm-unknown"))
    assert len(c.errors_logged()) == 1


def test_a_failed_deploy_retried_to_running_is_no_failure(make_cloud) -> None:
    c = make_cloud()
    host = c.sim.add_host("node-1")
    vms = [c.sim.add_vm(f"vm{i}", host) for i in range(3)]
    c.sim.fail_deploys(1, vm_id=vms[1])
    c.outage([host])
    assert all(c.running(v) for v in vms)
    assert c.resumes() == Counter({vms[0]: 1, vms[1]: 2, vms[2]: 1})
    assert set(c.codes()) == {0}, [(r.code, r.stdout) for s in c.hook_ids for r in c.runs(s)]
    assert c.errors_logged() == []


def test_resumes_held_in_oneds_queue_are_waited_for(make_cloud) -> None:
    """oned's LCM takes 3 s to pick each resume up: the VMs stay UNKNOWN after the accepted
    call, and that is no failure (the old engine logged half of a real storm 'failed' so)."""
    c = make_cloud(pace=dataclasses.replace(PACE, pickup_grace=10.0),  # longer than the hold
                   timing=OnedTiming(lcm_base=3.0, lcm_service=0.05))
    host = c.sim.add_host("node-1")
    vms = [c.sim.add_vm(f"vm{i}", host) for i in range(4)]
    c.outage([host])
    assert all(c.running(v) for v in vms)
    assert c.resumes() == Counter({v: 1 for v in vms})
    assert set(c.codes()) == {0} and c.errors_logged() == []


def test_a_dropped_resume_is_sent_again(make_cloud) -> None:
    """7.4.0's VM 81: the host's first VM report (a full sync: gone) is in oned's LCM queue
    before the resume; the LCM runs the resume while the VM is SHUTDOWN_POWEROFF and drops it
    (only the VM's log says so). The VM ends RUNNING, every hook exits 0."""
    # The DM step is slow here (10 s) so that the resume, however late the hook starts on a
    # loaded machine, is run by the LCM between SHUTDOWN_POWEROFF and POWEROFF.
    c = make_cloud(timing=OnedTiming(lcm_base=1.0, lcm_service=0.05, dm_delay=10.0), version="7.4.0")
    host = c.sim.add_host("node-1")
    vm = c.sim.add_vm("vm81", host)
    c.settle()
    c.sim.host_error(host)
    c.settle()
    c.sim.host_monitored(host)
    c.sim.reconcile(host, running=set(), sync=True, wait=False)  # queued before any resume
    c.settle()
    assert any("restart_action, VM in a wrong state." in line for line in c.sim.vm_log(vm))
    assert c.running(vm) and c.resumes()[vm] == 2
    assert set(c.codes()) == {0} and c.errors_logged() == []
    assert any("left to host-reconnect" in r.stdout and "which resumed it" in r.stdout
               for r in c.runs("vm-poweroff"))


def test_powered_off_by_a_late_report_after_running_is_resumed_again(make_cloud) -> None:
    """A monitor report taken before the deploy powers each VM off again after RUNNING (seen on
    4 of 29 VMs of a real 6.10.5 storm): resumed again, all end RUNNING, no failure."""
    c = make_cloud(late_poweroff=1.0, late_poweroff_after=0.5)
    host = c.sim.add_host("node-1")
    vms = [c.sim.add_vm(f"vm{i}", host) for i in range(3)]
    c.outage([host])
    assert all(c.running(v) for v in vms), [c.state(v) for v in vms]
    assert c.resumes() == Counter({v: 2 for v in vms})
    assert all(any("monitor state is POWEROFF" in line for line in c.sim.vm_log(v)) for v in vms)
    assert set(c.codes()) == {0} and c.errors_logged() == []


@pytest.mark.parametrize("timing", [INSTANT, OnedTiming(lcm_base=2.0)], ids=["instant", "lcm-2s"])
def test_two_host_hooks_at_once_resume_each_vm_once(make_cloud, timing: OnedTiming) -> None:
    """With oned's queue holding the resumes, the other runs see the VMs still UNKNOWN: they
    must leave them to the run that resumed them (re-reading alone would resume them again)."""
    c = make_cloud(timing=timing)
    host = c.sim.add_host("node-1")
    vms = [c.sim.add_vm(f"vm{i}", host) for i in range(8)]
    c.sim.host_error(host)
    c.settle()
    c.sim.host_monitored(host)  # fires host-reconnect once...
    # ...and an operator re-runs the same hook twice while it runs (onehook retry).
    shim = os.path.join(c.stage.remotes, "hooks", "one-hooks", "host-reconnect")
    env = dict(os.environ, **c.stage.hook_env(c.sim))
    host_payload = c.sim.events[-1].payload
    extra = [subprocess.Popen([shim], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
             for _ in range(2)]
    for proc in extra:
        proc.communicate(base64.b64encode(host_payload.encode()), timeout=120)
    c.settle()
    assert all(c.running(v) for v in vms)
    assert c.resumes() == Counter({v: 1 for v in vms})
    assert all(p.returncode == 0 for p in extra)
    assert set(c.codes()) == {0} and c.errors_logged() == []


def test_bad_payloads_reach_nothing(make_cloud) -> None:
    c = make_cloud()
    host = c.sim.add_host("node-1")
    c.sim.add_vm("vm", host)
    c.sim.host_error(host)
    c.settle()
    calls_before = dict(c.sim.calls)
    env = dict(os.environ, **c.stage.hook_env(c.sim))
    good = base64.b64encode(c.sim.events[-1].payload.encode())
    bad: Dict[str, bytes] = {
        "garbage": b"\x00\x01\xff", "truncated": good[: len(good) // 3], "non-base64": b"%%%%",
        "non-xml": base64.b64encode(b"{\"VM\": 1}"), "oversized": b"QUFB" * (1024 * 1024 + 1),
    }
    for kind, data in bad.items():
        shim = os.path.join(c.stage.remotes, "hooks", "one-hooks", "vm-unknown")
        result = subprocess.run([shim], input=data, capture_output=True, env=env, timeout=60)
        assert result.returncode == 2, (kind, result.stdout, result.stderr)
        assert len(result.stdout.splitlines()) == 1, kind
    shim = os.path.join(c.stage.remotes, "hooks", "one-hooks", "host-reconnect")
    result = subprocess.run([shim], input=good, capture_output=True, env=env, timeout=60)
    assert result.returncode == 2 and b"expected a HOST document" in result.stdout
    assert c.sim.action_log == []
    assert dict(c.sim.calls) == calls_before  # not one call reached oned


def test_settle_window_runs_detached_and_recovers_late_candidates(make_cloud) -> None:
    """host-reconnect returns after its first pass (its onehem slot is free); the detached
    watcher recovers a VM that becomes a candidate later in the window."""
    from one_hooks.hooks.entry import running_watchers
    from one_hooks.oned.client import Oned

    pace = Pace(boot=0.1, settle=6.0, settle_interval=0.3, deadline=2.0, retry_interval=0.3,
                retry_delay=0.3, poll=0.2)
    c = make_cloud(pace=pace)
    host = c.sim.add_host("node-1")
    vm = c.sim.add_vm("late", host)
    oned = Oned(c.sim.endpoint, c.sim.session)
    for shim in ("vm-unknown", "vm-poweroff"):  # only the watcher may resume it
        oned.hook_delete(c.hook_ids[shim])
    c.sim.host_error(host)
    assert c.sim.settle(60)
    c.sim.lock_vm(vm, 2)  # the first pass must leave it alone
    c.sim.host_monitored(host)
    assert c.sim.settle(60)  # the host hook has exited...
    back = c.reconnects()
    assert back and "watching its VMs for 6 s in the background" in back[-1].stdout
    assert not c.running(vm) and c.resumes() == Counter()
    assert running_watchers(c.stage.conf), "the settle watcher is not running"  # ...its window has not
    c.sim.unlock_vm(vm)
    assert c.stage.wait_watchers(30)
    assert c.running(vm) and c.resumes() == Counter({vm: 1})
    with open(c.stage.log) as log:
        assert "host-reconnect watch: host" in log.read()


def test_vm_hooks_leave_a_watched_host_to_host_reconnect(make_cloud) -> None:
    """VM hooks of a host that host-reconnect watches exit at once (no recovery of their
    own); every VM still ends RUNNING, resumed once."""
    import time

    from one_hooks.recovery.ledger import Ledger

    pace = Pace(boot=0.1, settle=4.0, settle_interval=0.3, deadline=5.0, retry_interval=0.3,
                retry_delay=0.3, poll=0.2)
    # The host's sessions come back on the 3rd look: host-reconnect is still at its gate
    # when oned reconciles the VMs (POWEROFF, last action monitor).
    c = make_cloud(["node-1 session-P3 session-P1-failed 3 session-P3-healthy"], pace=pace)
    host = c.sim.add_host("node-1")
    vms = [c.sim.add_vm(f"vm{i}", host) for i in range(4)]
    c.sim.host_error(host)
    c.settle()
    ledger = Ledger(c.stage.state)
    c.sim.host_monitored(host)
    deadline = time.monotonic() + 30
    while ledger.watcher_of(host) is None:
        assert time.monotonic() < deadline, "host-reconnect never claimed the host"
        time.sleep(0.02)
    c.sim.reconcile(host, running=set())
    c.settle()
    assert all(c.running(v) for v in vms), [c.state(v) for v in vms]
    assert c.resumes() == Counter({v: 1 for v in vms})
    poweroff_runs = c.runs("vm-poweroff")
    assert len(poweroff_runs) == len(vms)
    assert all(r.code == 0 and "left to it" in r.stdout for r in poweroff_runs), \
        [r.stdout for r in poweroff_runs]
