"""``one-hooks status``: run as a process against the simulated oned, after outages healed by the real hooks.

The hooks are the real ones (the shims, ``python -m one_hooks ...``) run by
the simulator's onehem-like runner, so the records ``status`` reads are the
ones a real outage leaves. Each state the command must report is made to
happen: a VM resumed, one resumed again after a failed deploy, one locked
during the outage, one whose deploys keep failing (given up), one opted out,
a host whose iSCSI stays broken, a host still down, a host being watched, a
VM carried by the live process that resumed it, our hooks missing or
changed, a hook whose last run failed, a VM still down after its host's
recovery.

On the real rigs (the real-oned harness, branch issue9-rig) the same command
should be run after a real outage and assert the same things against a real
oned 6.10.5 and 7.4.0: the three hooks shown matching with the executions
``onehook show`` lists (same IDs, times and codes); each host's last
recovery by host-reconnect (and its watcher) with the gate verdict and the
outcomes the hooks printed; a VM locked with ``onevm lock`` during the
outage listed with ``onevm unlock ID``; a host left in ERROR counted as
waiting, not as needing the operator; exit 1 exactly when one of those
needs the operator; one ``one.vmpool.infoextended`` call per run and no call
that changes anything (oned's API log), and the state directory unchanged.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from one_hooks.install import hook_templates as ht
from one_hooks.oned.model import HostState, LcmState
from one_hooks.recovery import claims
from one_hooks.sim.demo import Pace, Stage
from one_hooks.sim.server import NO_LATENCY

PACE = Pace(boot=0.05, settle=1.0, settle_interval=0.3, deadline=1.0, retry_interval=0.3,
            retry_delay=0.2, poll=0.2)
WRITE_METHODS = ("one.vm.action", "one.hook.allocate", "one.hook.update", "one.hook.delete", "one.vm.lock",
                 "one.vm.unlock", "one.host.update", "one.cluster.update")


class Front:
    """A front-end with the simulated oned and one-hooks' hooks registered, as the demo sets them up."""

    def __init__(self, workdir: Path, scenario: List[str], hooks: bool = True) -> None:
        self.stage = Stage(str(workdir))
        self.config = self.stage.write_config(PACE)
        self.stage.install_shims()
        self.stage.write_scenario(scenario + ["* session-P3 session-P3-healthy", "* node node-healthy"])
        self.sim = self.stage.start_sim(latency=NO_LATENCY, boot_seconds=PACE.boot)
        self.hook_ids = self.stage.register_hooks(self.sim, self.config) if hooks else []

    def status(self, *args: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, **self.stage.hook_env(self.sim))
        return subprocess.run([sys.executable, "-m", "one_hooks", "status", *args], capture_output=True,
                              text=True, env=env, timeout=120)

    def report(self) -> Tuple[int, dict]:
        result = self.status("--json")
        assert result.returncode in (0, 1), result.stdout + result.stderr
        return result.returncode, json.loads(result.stdout)

    def outage_over(self, vm_name: str) -> Tuple[int, int]:
        """Host node-1 with one VM goes through an outage and comes back; (host, VM) IDs."""
        host = self.sim.add_host("node-1")
        vm = self.sim.add_vm(vm_name, host)
        self.sim.host_error(host)
        self.sim.host_monitored(host)
        assert self.sim.settle(30)
        return host, vm

    def quiet(self, timeout: float = 60) -> None:
        """Hooks and their detached settle watchers are done."""
        assert self.sim.settle(timeout) and self.stage.wait_watchers(timeout) and self.sim.settle(timeout)


def tree(path: Path) -> Dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(path.rglob("*"))}


@pytest.fixture
def outage(tmp_path: Path) -> Iterator[Tuple[Front, Dict[str, int]]]:
    """node-1 healthy, node-2's iSCSI broken, node-3 still down; the hooks did what they could."""
    front = Front(tmp_path / "fe", ["node-2 session-P3 session-P1-failed"])
    sim = front.sim
    hosts = {name: sim.add_host(name) for name in ("node-1", "node-2", "node-3")}
    vms = {"ok": sim.add_vm("ok", hosts["node-1"]), "locked": sim.add_vm("locked", hosts["node-1"]),
           "flaky": sim.add_vm("flaky", hosts["node-1"]),
           "batch": sim.add_vm("batch", hosts["node-1"], {"ONE_HOOKS_RECOVER": "NO"}),
           "stuck": sim.add_vm("stuck", hosts["node-2"]), "away": sim.add_vm("away", hosts["node-3"])}
    sim.fail_deploys(20, vm_id=vms["flaky"])
    for host in hosts.values():
        sim.host_error(host)
    front.quiet()
    sim.lock_vm(vms["locked"], 2)
    sim.host_monitored(hosts["node-1"])
    front.quiet()
    sim.host_monitored(hosts["node-2"])  # last: host-reconnect's last run is node-2's, which fails
    front.quiet()
    yield front, {**vms, **{f"host:{k}": v for k, v in hosts.items()}}
    front.stage.stop_watchers()
    sim.stop()


def test_after_an_outage_it_shows_each_outcome_and_what_needs_the_operator(outage) -> None:
    front, ids = outage
    sim = front.sim
    assert sim.vm(ids["ok"]).lcm_state == LcmState.RUNNING
    state = front.stage.state
    before = tree(Path(state))
    cache = Path(front.stage.hook_env(sim)["XDG_CACHE_HOME"])
    cache_before = tree(cache) if cache.exists() else {}
    calls = dict(sim.calls)
    result = front.status()
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    # read only: no call that changes anything, one pool read, nothing written anywhere
    spent = {m: n - calls.get(m, 0) for m, n in sim.calls.items() if n != calls.get(m, 0)}
    assert not any(m in spent for m in WRITE_METHODS), spent
    assert spent.get("one.vmpool.infoextended") == 1 and "one.vm.info" not in spent, spent
    assert spent.get("one.hook.info") == 3 and spent.get("one.hostpool.info") == 1, spent
    assert tree(Path(state)) == before
    assert (tree(cache) if cache.exists() else {}) == cache_before

    lines = out.splitlines()
    attention = lines[lines.index(next(x for x in lines if x.startswith("needs the operator"))) + 1:]
    locked, flaky, stuck = ids["locked"], ids["flaky"], ids["stuck"]
    assert any(f"VM {locked} (locked) on node-1" in a and f"onevm unlock {locked}" in a for a in attention)
    # host-reconnect resumed it and carried it through every attempt: its one word is "gave up"
    assert any(f"VM {flaky} (flaky) on node-1: ACTIVE/UNKNOWN: gave up: " in a and "attempt 3 of 3" in a
               for a in attention), attention
    assert any(a.startswith("  - host node-2: its last iSCSI gate said BROKEN") and f"VMs held back: {stuck}:" in a
               for a in attention)
    assert any("hook one-hooks-host-reconnect" in a and "exited 1" in a and "onehook show" in a
               for a in attention)
    assert not any("(ok)" in a or "(batch)" in a or "(away)" in a for a in attention)
    # the hosts: their last recovery, the gate, the verdict stored by the gate
    node1 = next(x for x in lines if x.split()[:2] == ["0", "node-1"])
    assert "MONITORED" in node1 and "HEALTHY" in node1
    assert "host-reconnect" in node1.split(" by ")[1].split()[0].split("+"), node1
    assert "1 running" in node1 and "1 locked" in node1 and "1 skipped" in node1
    assert "1 gave up" in node1 and "failed" not in node1.replace("gate failed", "")
    node2 = next(x for x in lines if x.split()[:2] == ["1", "node-2"])
    assert "BROKEN" in node2 and "1 gate failed" in node2
    node3 = next(x for x in lines if x.split()[:2] == ["2", "node-3"])
    assert "ERROR" in node3 and node3.split()[3:7] == ["-", "0", "-", "-"], node3
    assert f"node-1: VM {ids['batch']}: opted out (ONE_HOOKS_RECOVER=NO)" in out
    for name in ht.NAMES:
        assert any(x.split()[:1] == [name] and "matching" in x for x in lines)

    code, report = front.report()
    assert code == 1 and report["exit_code"] == 1
    down = {v["name"]: v for v in report["vms_down"]}
    assert set(down) == {"locked", "flaky", "batch", "stuck", "away"}
    assert down["away"]["attention"] is False and "waiting for host node-3 (ERROR)" in down["away"]["why"]
    assert down["batch"]["attention"] is False and down["batch"]["why"].startswith("left down on purpose")
    assert down["flaky"]["last_outcome"] == "gave up" and down["locked"]["last_outcome"] == "locked"
    hosts = {h["name"]: h for h in report["hosts"]}
    assert hosts["node-2"]["last_recovery"]["gate"] == "BROKEN"
    assert hosts["node-2"]["stored_verdict"]["status"] == "BROKEN"
    assert hosts["node-3"]["last_recovery"] is None and hosts["node-3"]["vms_down"] == 1


def test_when_the_operator_has_fixed_things_only_the_old_failed_run_is_left(outage) -> None:
    front, ids = outage
    sim = front.sim
    sim.unlock_vm(ids["locked"])
    front.stage.write_scenario(["* session-P3 session-P3-healthy", "* node node-healthy"])
    sim.fail_deploys(0, vm_id=ids["flaky"])
    env = dict(os.environ, **front.stage.hook_env(sim))
    recover = subprocess.run([sys.executable, "-m", "one_hooks", "recover", "--host", "node-1", "--host",
                              "node-2"], capture_output=True, text=True, env=env, timeout=120)
    assert recover.returncode == 0, recover.stdout + recover.stderr
    sim.host_state(ids["host:node-3"], HostState.DISABLED)  # the admin sets the dead host aside
    result = front.status()
    lines = result.stdout.splitlines()
    node1 = next(x for x in lines if x.split()[:2] == ["0", "node-1"])
    # recover began a new episode: the two it resumed, the one already running and the opted-out one skipped
    assert "by recover" in node1 and "2 running, 2 skipped" in node1, node1
    assert f"  node-1: VM {ids['ok']}: already RUNNING" in lines
    # node-3's VM still waits for its host: shown, not counted; host-reconnect's failed run is still its last
    # (the vm-unknown runs the flaky VM's failed deploys fired left it to host-reconnect, which carried it: exit 0)
    assert result.returncode == 1
    attention = [x for x in lines if x.startswith("  - ")]
    assert [a.split()[2] for a in attention] == ["one-hooks-host-reconnect"]
    assert all("exited 1" in a for a in attention)
    away = {d["name"]: d for d in front.report()[1]["vms_down"]}["away"]
    assert away["attention"] is False and "waiting for host node-3 (DISABLED)" in away["why"]


def test_no_hooks_a_changed_hook_and_a_host_recovered_by_nobody(tmp_path: Path) -> None:
    from one_hooks.oned.client import Oned

    front = Front(tmp_path / "fe", [], hooks=False)
    try:
        _, vm = front.outage_over("left")
        code, report = front.report()
        assert code == 1
        assert [h["state"] for h in report["hooks"]] == ["missing"] * 3
        assert f"hook {ht.HOST_RECONNECT.name}: not registered: run 'one-hooks-install' ('--check' names " \
               "every difference)" in report["attention"]
        down = report["vms_down"]
        assert [d["id"] for d in down] == [vm] and down[0]["attention"] is True
        assert down[0]["why"] == ("still down: left UNKNOWN by the outage; when fixed, run "
                                  "'one-hooks recover --host node-1'")
        # registered, then one changed by hand: named with its difference
        hook_ids = front.stage.register_hooks(front.sim, front.config)
        oned = Oned(front.sim.endpoint, front.sim.session)
        poweroff = next(h for h in oned.hook_pool() if h.name == ht.VM_POWEROFF.name)
        oned.hook_update(poweroff.id, ht.update_text(ht.VM_POWEROFF, front.config).replace(
            "one-hooks/vm-poweroff", "elsewhere/x"))
        code, report = front.report()
        assert code == 1 and [h["id"] for h in report["hooks"]] == hook_ids
        states = {h["name"]: (h["state"], h["problem"]) for h in report["hooks"]}
        assert states[ht.VM_POWEROFF.name] == ("differs", "differs: COMMAND is 'elsewhere/x', "
                                                          "want 'one-hooks/vm-poweroff'")
        assert states[ht.VM_UNKNOWN.name] == ("matching", "")
    finally:
        front.sim.stop()


def test_a_watched_host_is_left_to_its_watcher_while_it_lives(tmp_path: Path) -> None:
    front = Front(tmp_path / "fe", [], hooks=False)
    # a live process whose command line names one_hooks, as a watcher's does (claims.alive checks it)
    watcher = subprocess.Popen(["sh", "-c", "sleep 60", "one_hooks-watcher-stand-in"])
    try:
        host, vm = front.outage_over("vm")
        watch = Path(front.stage.state) / claims.WATCH_DIR
        watch.mkdir(parents=True)
        until = 4102444800.0  # 2100-01-01
        (watch / claims.claim_name(host)).write_bytes(claims.encode(watcher.pid, until))
        code, report = front.report()
        assert code == 1  # the hooks are not registered: that still needs the operator
        node = report["hosts"][0]
        assert (node["watched_until"], node["watcher_pid"], node["vms_down"]) == (until, watcher.pid, 1)
        down = report["vms_down"][0]
        assert down["id"] == vm and down["attention"] is False
        assert down["why"] == "host-reconnect's watcher of the host recovers it"
        watcher.kill()
        watcher.wait()
        code, report = front.report()  # a dead watcher watches nothing
        assert report["hosts"][0]["watched_until"] is None and report["vms_down"][0]["attention"] is True
    finally:
        watcher.kill()
        watcher.wait()
        front.sim.stop()


def test_a_vm_carried_by_the_live_process_that_resumed_it_is_left_to_it(tmp_path: Path) -> None:
    front = Front(tmp_path / "fe", [], hooks=False)
    # a live process, as a carrier is; the claim names its start time, which a recycled PID does not share
    carrier = subprocess.Popen(["sh", "-c", "sleep 60", "one_hooks-carrier-stand-in"])
    try:
        host, vm = front.outage_over("vm")
        carry = Path(front.stage.state) / claims.CARRY_DIR
        carry.mkdir(parents=True)
        until = 4102444800.0  # 2100-01-01
        start = claims.start_time(carrier.pid)
        assert start is not None
        (carry / claims.carry_name(vm)).write_bytes(claims.encode_carry(carrier.pid, start, "t0", until,
                                                                        "vm-unknown"))
        before = tree(Path(front.stage.state))
        code, report = front.report()
        assert code == 1  # the hooks are not registered: that still needs the operator
        node = report["hosts"][0]
        assert node["carried"] == [{"vm_id": vm, "pid": carrier.pid, "who": "vm-unknown", "until": until}]
        assert node["vms_down"] == 1 and node["watched_until"] is None
        down = report["vms_down"][0]
        assert down["id"] == vm and down["attention"] is False
        assert down["why"] == f"being carried by vm-unknown (pid {carrier.pid}), which resumed it"
        assert not any(f"VM {vm}" in a for a in report["attention"])
        text = front.status().stdout.splitlines()
        assert next(x for x in text if x.split()[:2] == ["0", "node-1"]).split()[3:5] == ["-", "1"]
        assert any("1 more wait for their host, its watcher or the process carrying them" in x for x in text)
        assert tree(Path(front.stage.state)) == before  # read only
        carrier.kill()
        carrier.wait()
        code, report = front.report()  # a dead carrier carries nothing
        assert report["hosts"][0]["carried"] == [] and report["vms_down"][0]["attention"] is True
        assert report["vms_down"][0]["why"].startswith("still down: left UNKNOWN by the outage")
    finally:
        carrier.kill()
        carrier.wait()
        front.sim.stop()


def test_all_well_after_an_outage_the_hooks_healed(tmp_path: Path) -> None:
    front = Front(tmp_path / "fe", [])
    try:
        host = front.sim.add_host("node-1")
        vms = [front.sim.add_vm(f"vm-{n}", host, {"ONE_HOOKS_PRIORITY": str(n % 2)}) for n in range(4)]
        front.sim.fail_deploys(1, vm_id=vms[1])  # its first deploy fails: resumed again, it ends RUNNING
        front.sim.host_error(host)
        front.quiet()
        front.sim.host_monitored(host)
        front.sim.reconcile(host, running=set())  # the node rebooted: its VMs are reported gone (POWEROFF)
        front.quiet()
        assert all(front.sim.vm(v).lcm_state == LcmState.RUNNING for v in vms)
        result = front.status()
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.rstrip().endswith("nothing needs the operator")
        node = next(x for x in result.stdout.splitlines() if x.split()[:2] == ["0", "node-1"])
        assert node.endswith("4 running") and "HEALTHY" in node, node
        code, report = front.report()
        assert code == 0 and report["vms_down"] == [] and report["attention"] == []
        kept = {v["id"]: v for v in report["hosts"][0]["last_recovery"]["vms"]}
        assert (kept[vms[1]]["outcome"], kept[vms[1]]["attempts"]) == ("RUNNING", 2), kept[vms[1]]
        assert [h["state"] for h in report["hooks"]] == ["matching"] * 3
        assert all(run["code"] == 0 for h in report["hooks"] for run in h["runs"])
    finally:
        front.stage.stop_watchers()
        front.sim.stop()
