"""Fault injection on the hook path: real hook processes, run by the simulator's onehem, while oned fails.

The hooks are installed by the real ``one-hooks-install`` and fired by the
simulated oned as onehem would (base64 payload on stdin, at most 10 at once).
Right when the hosts come back, the next calls to oned fail (an error
answer, a dropped connection, or a hang past the client's timeout). Some
hook executions may then fail with exit 1; the operator's remedy is
``onehook retry``, done here through ``one.hook.retry`` on every failed
execution. Afterwards every outage VM is RUNNING, none was resumed twice, and
the VM its user powered off was never started.
"""
from __future__ import annotations

import os
import subprocess
import sys
import xmlrpc.client
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest

from one_hooks.oned.model import LcmState, VmState
from one_hooks.sim.faults import INTERNAL

REPO = Path(__file__).resolve().parent.parent


def _setup(tmp: Path, sim: Any) -> Dict[str, Any]:
    config = tmp / "one-hooks.conf"
    config.write_text(
        f"[oned]\nendpoint = {sim.endpoint}\nauth_file = {sim.auth_file}\ntimeout = 0.5\n"
        "retries = 1\nretry_delay = 0\n"
        "[iscsi]\ncheck = no\n"
        f"[recovery]\nstate_dir = {tmp / 'state'}\nsettle_seconds = 0\nsettle_interval = 0.5\n"
        "wait_running = 10\nretry_delay = 0\n"
        f"[log]\nfile = {tmp / 'one-hooks.log'}\n")
    env = sim.env(config, PYTHONPATH=str(REPO))
    sim.set_hook_env({"ONE_HOOKS_CONFIG": str(config), "PYTHONPATH": str(REPO)})
    a, b = sim.add_host("node-a"), sim.add_host("node-b")
    vms = [sim.add_vm("a0", a), sim.add_vm("a1", a), sim.add_vm("b0", b), sim.add_vm("b1", b)]
    user_off = sim.add_vm("b-user-off", b)
    sim.user_poweroff(user_off)
    proc = subprocess.run([sys.executable, "-m", "one_hooks.install", "--remotes", str(tmp / "remotes"),
                           "--config", str(config), "--python", sys.executable],
                          env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sim.settle(30)
    return {"hosts": (a, b), "vms": vms, "user_off": user_off}


def _resumes(sim: Any) -> Dict[int, int]:
    counts: Dict[int, int] = {}
    for _, vm_id, action, _ in sim.action_log:
        if action == "resume":
            counts[vm_id] = counts.get(vm_id, 0) + 1
    return counts


def _failed_executions(sim: Any) -> List[tuple]:
    """(hook_id, execution_id) of every execution whose latest run did not exit 0."""
    failed = []
    for hook_id in sorted(sim.cloud.tables.hooks):
        latest: Dict[str, Any] = {}
        for execution in sim.hook_executions(hook_id):
            latest[execution.arguments] = execution  # a retry re-runs the same arguments
        failed += [(hook_id, e.execution_id) for e in latest.values() if e.code != 0]
    return failed


@pytest.mark.parametrize("kind, count", [("error", 6), ("drop", 6), ("timeout", 3)])
def test_hooks_under_oned_faults_then_onehook_retry(tmp_path: Path, make_sim: Callable[..., Any],
                                                    kind: str, count: int) -> None:
    sim = make_sim(boot_seconds=0.05)
    world = _setup(tmp_path, sim)
    a, b = world["hosts"]
    for host in (a, b):
        sim.host_error(host)
    assert sim.settle(60)  # vm-unknown hooks: host in ERROR, left to host-reconnect
    assert sim.action_log[-1][2] == "poweroff" and _resumes(sim) == {}
    sim.inject("*", kind, code=INTERNAL, count=count, hang=1.5)
    sim.host_monitored(a)
    sim.host_monitored(b)
    sim.reconcile(b, set())
    assert sim.settle(120)
    proxy = xmlrpc.client.ServerProxy(sim.endpoint)
    # Every injected fault was spent on the hooks' calls: a probe now goes through.
    assert proxy.one.system.version(sim.session)[0] is True
    failed = _failed_executions(sim)  # e.g. [(0, 0), (2, 0), (2, 1)] for "error" here
    for _round in range(3):
        for hook_id, execution_id in failed:
            ok, body, _ = proxy.one.hook.retry(sim.session, hook_id, execution_id)
            assert ok, body
        assert sim.settle(120)
        failed = _failed_executions(sim)
        if not failed:
            break
    assert failed == []
    for vm_id in world["vms"]:
        vm = sim.vm(vm_id)
        assert (vm.state, vm.lcm_state) == (VmState.ACTIVE, LcmState.RUNNING), vm
    assert all(n == 1 for n in _resumes(sim).values()), sim.action_log
    assert [act for _, v, act, _ in sim.action_log if v == world["user_off"]] == ["poweroff"]
    assert sim.vm(world["user_off"]).state == VmState.POWEROFF
    assert "Traceback" not in (tmp_path / "one-hooks.log").read_text()
    for hook_id in sim.cloud.tables.hooks:
        for execution in sim.hook_executions(hook_id):
            assert "Traceback" not in execution.stderr + execution.stdout
    assert os.path.isdir(tmp_path / "state")
