"""``one-hooks recover``: the manual command, run as a process against the simulated oned."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from typing import Iterator, List

import pytest

from one_hooks.oned.model import LcmState, VmState
from one_hooks.sim.demo import Pace, Stage
from one_hooks.sim.server import NO_LATENCY

PACE = Pace(boot=0.05, settle=1.0, settle_interval=0.5, deadline=1.0, retry_interval=0.3,
            retry_delay=0.3, poll=0.2)


class Front:
    """A front-end with a simulated oned: two hosts after an outage, hooks not installed."""

    def __init__(self, workdir: str, scenario: List[str]) -> None:
        self.stage = Stage(workdir)
        self.stage.write_config(PACE)
        self.stage.write_scenario(scenario + ["* session-P3 session-P3-healthy", "* node node-healthy"])
        self.sim = self.stage.start_sim(latency=NO_LATENCY, boot_seconds=PACE.boot)
        self.hosts = [self.sim.add_host("node-1"), self.sim.add_host("node 2; rm -rf /")]
        self.vms = [self.sim.add_vm(f"vm{i}", self.hosts[i % 2],
                                    {"ONE_HOOKS_PRIORITY": str(i)}) for i in range(6)]
        for host in self.hosts:
            self.sim.host_error(host)
        for host in self.hosts:
            self.sim.host_monitored(host)

    def recover(self, *args: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, **self.stage.hook_env(self.sim))
        return subprocess.run([sys.executable, "-m", "one_hooks", "recover", *args],
                              capture_output=True, text=True, env=env, timeout=120)

    def resumes(self) -> Counter:
        return Counter(v for _, v, action, _ in self.sim.action_log if action == "resume")

    def running(self) -> List[int]:
        out = []
        for vm_id in self.vms:
            vm = self.sim.vm(vm_id)
            if vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.RUNNING:
                out.append(vm_id)
        return out


@pytest.fixture()
def front(tmp_path) -> Iterator[Front]:
    f = Front(str(tmp_path / "fe"), [])
    yield f
    f.sim.stop()


def test_dry_run_shows_the_plan_and_changes_nothing(front: Front) -> None:
    result = front.recover("--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert front.sim.action_log == []
    assert "dry run" in result.stdout
    assert result.stdout.count("  would resume  ") == 6 and "recover: 6 would resume" in result.stdout
    assert "resume tier 5" in result.stdout          # the plan, with each VM's reason
    assert not os.path.exists(os.path.join(front.stage.state, "reports")), "a dry run leaves no record"


def test_recover_all_resumes_in_priority_order(front: Front) -> None:
    result = front.recover()
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(front.running()) == front.vms
    assert front.resumes() == Counter({v: 1 for v in front.vms})
    # Per host, higher priority first: node-1 holds VMs 0, 2, 4 (priorities 0, 2, 4).
    order = [v for _, v, action, _ in front.sim.action_log if v in (0, 2, 4)]
    assert order == [4, 2, 0]
    assert result.stdout.splitlines()[-1].startswith("recover: 6 running")
    assert any(line.startswith("VM ") and "OUTCOME" in line for line in result.stdout.splitlines())


def test_host_by_name_with_shell_metacharacters(front: Front) -> None:
    result = front.recover("--host", "node 2; rm -rf /", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert [v["vm_id"] for v in report["vms"]] == [1, 3, 5]
    assert {v["outcome"] for v in report["vms"]} == {"running"}
    assert report["exit_code"] == 0


def test_host_by_id_and_bad_arguments(front: Front) -> None:
    assert front.recover("--host", "0", "--dry-run").returncode == 0
    missing = front.recover("--host", "no-such-host")
    assert missing.returncode == 2 and "no-such-host" in missing.stderr
    both = front.recover("--host", "0", "--all")
    assert both.returncode == 2
    assert front.sim.action_log == []


def test_oned_unreachable_mid_run_then_rerun_completes(front: Front) -> None:
    # Every resume call (first try and the two retries [oned] retries allows) is dropped:
    # the reads before it worked, so this is oned going away in the middle of the run.
    front.sim.inject("one.vm.action", kind="drop", count=6 * 3)
    first = front.recover()
    assert first.returncode == 1
    assert front.sim.action_log == []
    assert "resume failed" in first.stdout
    second = front.recover()
    assert second.returncode == 0, second.stdout + second.stderr
    assert front.resumes() == Counter({v: 1 for v in front.vms})


def test_broken_gate_exit_1_names_targets(tmp_path) -> None:
    f = Front(str(tmp_path / "fe2"), ["node-1 session-P3 session-P1-failed"])
    try:
        result = f.recover()
        assert result.returncode == 1
        assert "iqn.2000-01.example:tgt0" in result.stdout
        assert sorted(f.resumes()) == [1, 3, 5]        # only the other host's VMs
        assert "gate failed" in result.stdout
    finally:
        f.sim.stop()


def test_progress_a_line_per_tier_and_plain_lines_off_a_terminal(front: Front) -> None:
    result = front.recover()
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    # node-1 holds VMs 0, 2, 4 (priorities 0, 2, 4): three tiers, each announced before its resumes
    for tier in (4, 2, 0):
        assert f"host node-1: tier {tier}: resuming 1 VM(s)" in lines
    assert lines.index("host node-1: tier 4: resuming 1 VM(s)") < lines.index("host node-1: tier 2: resuming 1 VM(s)")
    assert "\r" not in result.stdout and "\x1b" not in result.stdout


def test_progress_on_a_terminal_is_a_live_counter(front: Front) -> None:
    import pty

    env = dict(os.environ, **front.stage.hook_env(front.sim))
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "one_hooks", "recover"], stdout=child, stderr=child,
                            env=env)
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    assert proc.wait(timeout=120) == 0
    out = b"".join(chunks).decode()
    counters = [part.split("\r")[-1] for part in out.split("\x1b[K") if "settled" in part]
    assert counters, out
    assert "recover: 6/6 VMs settled" in out and "(6 running)" in out
    # the counter is redrawn in place (carriage return, erase line), never left between decision lines
    assert out.count("\x1b[K") >= 6
    final = [line for line in out.replace("\r\n", "\n").split("\n") if line.strip()]
    assert final[-1].startswith("recover: 6 running")
