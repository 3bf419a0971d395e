"""Evacuation end to end on the simulated oned: the real host-error hook, its watcher, the real CLI.

As in test_outage_e2e: the simulated oned serves XML-RPC on loopback, its
onehem-like runner starts the real shims (installed as one-hooks-install
does) with the base64 payload on stdin; the hooks are registered from the
installer's templates; the targets' iSCSI gate runs through ``[node]
command`` on the node stand-in. The fence is a BMC stand-in (a small sh
script run for real) that records its calls and keeps each host's power
state in a file. Nothing in the hook path is replaced or patched.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xmlrpc.client
from collections import Counter
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from one_hooks.install import hook_templates as ht
from one_hooks.oned.model import HostState, LcmState, VmState
from one_hooks.sim.demo import Pace, Stage
from one_hooks.sim.lcm import REAL_TIMING
from one_hooks.sim.server import NO_LATENCY

PACE = Pace(boot=0.1, settle=1.0, settle_interval=0.5, deadline=2.0, retry_interval=0.3,
            retry_delay=0.3, poll=0.2)
HEALTHY = ["* session-P3 session-P3-healthy", "* node node-healthy"]

BMC = """#!/bin/sh
# a BMC tool stand-in: record the call, then act on the power state file of host $2
dir=$(dirname "$0")
echo "$*" >> "$dir/calls"
case "$1" in
  off) [ -e "$dir/broken" ] && { echo "Error: Unable to establish IPMI v2 session" >&2; exit 1; }
       [ -e "$dir/stuck" ] || echo off > "$dir/power-$2"; echo "Chassis Power Control: Down/Off" ;;
  status) echo "Chassis Power is $(cat "$dir/power-$2" 2>/dev/null || echo on)" ;;
esac
"""


class Front:
    """A staged front-end: simulated oned, our hooks (host-error included), a BMC stand-in."""

    def __init__(self, workdir: Path, grace: float = 1.0, fence: bool = True, twice: bool = False,
                 hook: bool = True, **sim_kwargs: object) -> None:
        self.stage = Stage(str(workdir))
        self.bmc = workdir / "bmc" / "tool"
        self.bmc.parent.mkdir()
        self.bmc.write_text(BMC)
        self.bmc.chmod(0o755)
        self.stage.write_config(PACE, attempts=2)
        fence_keys = (f"fence = {self.bmc} off {{host}}\nfence_check = {self.bmc} status {{host}}\n"
                      if fence else "")
        with open(self.stage.conf, "a") as conf:
            conf.write(f"[evacuate]\nenabled = yes\ngrace = {grace}\ninterval = 0.2\n{fence_keys}"
                       "fence_timeout = 10\nconfirm_timeout = 0\n")
        from one_hooks import config as config_mod
        self.config = config_mod.load(self.stage.conf, environ={})
        self.stage.install_shims()
        self.stage.write_scenario(HEALTHY)
        sim_kwargs.setdefault("latency", NO_LATENCY)
        sim_kwargs.setdefault("boot_seconds", PACE.boot)
        self.sim = self.stage.start_sim(**sim_kwargs)
        specs = ht.wanted(self.config)
        assert specs[-1] is ht.HOST_ERROR
        if not hook:  # the operator's command alone
            specs = specs[:-1]
        self.hook_ids = dict(zip((s.shim for s in specs),
                                 [self.sim.add_hook(ht.allocate_text(s, self.config)) for s in specs]))
        if twice:  # a second registration of the same hook: onehem runs both on one event
            text = ht.allocate_text(ht.HOST_ERROR, self.config).replace(ht.HOST_ERROR.name, "host-error-again")
            self.hook_ids["host-error-again"] = self.sim.add_hook(text)
        self.shared = self.sim.add_datastore("nfs-system", 1, "shared")

    def settle(self, timeout: float = 120) -> None:
        assert self.sim.settle(timeout), "hooks still running"
        assert self.stage.wait_watchers(timeout), "watchers still running"
        assert self.sim.settle(timeout), "hooks still running after the watchers"

    def calls(self) -> List[str]:
        path = self.bmc.parent / "calls"
        return path.read_text().splitlines() if path.exists() else []

    def migrates(self) -> Counter:
        return Counter(vm_id for _, vm_id, action, _ in self.sim.action_log if action == "migrate")

    def order(self) -> List[int]:
        return [vm_id for _, vm_id, action, _ in self.sim.action_log if action == "migrate"]

    def resumes(self) -> List[int]:
        return [vm_id for _, vm_id, action, _ in self.sim.action_log if action == "resume"]

    def runs(self, name: str) -> List:
        return list(self.sim.hook_executions(self.hook_ids[name]))

    def log(self) -> str:
        return Path(self.stage.log).read_text() if os.path.exists(self.stage.log) else ""

    def record(self, host_id: int) -> Dict:
        return json.loads((Path(self.stage.state) / "evacuate" / f"host-{host_id}.json").read_text())

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        env.update(self.stage.hook_env(self.sim))
        return subprocess.run([sys.executable, "-m", "one_hooks", *args], env=env, capture_output=True,
                              text=True, timeout=120)

    def stop(self) -> None:
        self.stage.stop_watchers()
        self.sim.stop()


@pytest.fixture()
def make_front(tmp_path: Path) -> Iterator:
    made: List[Front] = []

    def make(**kw: object) -> Front:
        front = Front(tmp_path / f"front-end{len(made)}", **kw)  # type: ignore[arg-type]
        made.append(front)
        return front

    yield make
    for front in made:
        front.stop()


def running_on(f: Front, vm_id: int) -> Optional[str]:
    vm = f.sim.vm(vm_id)
    return vm.hostname if (vm.state, vm.lcm_state) == (VmState.ACTIVE, LcmState.RUNNING) else None


def test_dead_host_fenced_disabled_evacuated_in_tier_order_each_once(make_front) -> None:
    f = make_front(grace=1.0)
    dead, n2, n3 = (f.sim.add_host(n) for n in ("node-1", "node-2", "node-3"))
    tiers = {f.sim.add_vm(f"t{p}-{i}", dead, {"ONE_HOOKS_PRIORITY": str(p)}, ds_id=f.shared): p
             for p in (0, 10, 5) for i in range(3)}
    local = f.sim.add_vm("local", dead)                       # system DS 0: ssh, SHARED=NO
    locked = f.sim.add_vm("locked", dead, ds_id=f.shared)
    opted_out = f.sim.add_vm("opted-out", dead, {"ONE_HOOKS_RECOVER": "no"}, ds_id=f.shared)
    user_off = f.sim.add_vm("user-off", dead, ds_id=f.shared)
    elsewhere = f.sim.add_vm("elsewhere", n2, ds_id=f.shared)
    f.sim.lock_vm(locked)
    f.sim.user_poweroff(user_off)
    f.settle()
    f.sim.host_error(dead)
    f.settle()

    assert {vm_id: running_on(f, vm_id) in ("node-2", "node-3") for vm_id in tiers} == dict.fromkeys(tiers, True)
    assert f.migrates() == Counter(list(tiers)), "each VM moved exactly once, the others never"
    order = [tiers[v] for v in f.order()]
    assert order == sorted(order, reverse=True), f"tiers out of order: {order}"
    assert f.sim.host(dead).state == HostState.DISABLED
    assert f.calls() == ["off node-1", "status node-1"]
    for vm_id in (local, locked, opted_out):
        assert f.sim.vm(vm_id).state_name == "ACTIVE/UNKNOWN" and f.sim.vm(vm_id).hostname == "node-1"
    assert f.sim.vm(user_off).state == VmState.POWEROFF and running_on(f, elsewhere) == "node-2"
    hook = f.runs("host-error")
    assert len(hook) == 1 and hook[0].code == 0 and "waiting 1 s for it to come back" in hook[0].stdout
    log = f.log()
    assert f"VM {local} (local) ACTIVE/UNKNOWN: NOT MOVED: local storage" in log
    assert f"run 'onevm unlock {locked}' then 'one-hooks evacuate node-1'" in log
    assert "still in ERROR after 1 s of grace: evacuating it" in log
    record = f.record(dead)
    assert record["stage"] == "done" and record["exit_code"] == 1 and record["disabled"] is True
    assert record["fence_evidence"] == "Chassis Power is off"
    outcomes = Counter(v["outcome"] for v in record["vms"])
    assert outcomes == Counter({"running": 9, "not moved": 1, "locked": 1, "skipped": 2})

    # The fenced host returns: it stays DISABLED, nothing is resumed there, no VM is on two hosts.
    f.sim.host_monitored(dead)
    f.sim.reconcile(dead, running=set())
    f.settle()
    assert f.sim.host(dead).state == HostState.DISABLED
    assert f.resumes() == [] and f.migrates() == Counter(list(tiers))
    assert not [r for r in f.runs("host-reconnect") if "was ERROR" in r.stdout]
    assert set(f.sim.host(dead).vm_ids) == {local, locked, opted_out, user_off}
    moved_to = set(f.sim.host(n2).vm_ids) | set(f.sim.host(n3).vm_ids)
    assert set(tiers) <= moved_to and not moved_to & set(f.sim.host(dead).vm_ids)
    assert f.sim.vm(local).state == VmState.POWEROFF  # reconciled on the disabled host, left there


def test_host_back_during_grace_nothing_moved(make_front) -> None:
    f = make_front(grace=4.0)
    dead, _ = f.sim.add_host("node-1"), f.sim.add_host("node-2")
    vms = [f.sim.add_vm(f"v{i}", dead, ds_id=f.shared) for i in range(3)]
    f.settle()
    f.sim.host_error(dead)
    time.sleep(1.0)
    f.sim.host_monitored(dead)
    f.sim.reconcile(dead, running=set(vms))
    f.settle()
    assert f.migrates() == Counter() and f.calls() == []
    assert f.sim.host(dead).state == HostState.MONITORED
    assert all(running_on(f, v) == "node-1" for v in vms)
    assert "is MONITORED after" in f.log() and "nothing evacuated; host-reconnect recovers its VMs" in f.log()


@pytest.mark.parametrize("case, words", [
    ("none", "no fence configured"),
    ("broken", "fence failed (bmc exited 1: Error: Unable to establish IPMI v2 session)"),
    ("stuck", "power-off not confirmed after 1 look(s) of fence_check (last: 'Chassis Power is on')"),
])
def test_no_failing_or_unconfirmed_fence_moves_nothing_exit_1(make_front, case: str, words: str) -> None:
    f = make_front(fence=case != "none", hook=False)  # the operator's command follows the hook's rules
    if case != "none":
        (f.bmc.parent / case).touch()
    dead, _ = f.sim.add_host("node-1"), f.sim.add_host("node-2")
    vms = [f.sim.add_vm(f"v{i}", dead, ds_id=f.shared) for i in range(2)]
    f.sim.host_error(dead)
    f.settle()
    result = f.cli("evacuate", "node-1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert words.replace("bmc exited", f"{f.bmc} exited") in result.stdout, result.stdout
    assert "'one-hooks evacuate node-1'" in result.stdout
    assert f.migrates() == Counter() and f.sim.host(dead).state == HostState.ERROR
    assert all(f.sim.vm(v).state_name == "ACTIVE/UNKNOWN" for v in vms)
    assert [c.split()[0] for c in f.calls()] == {"none": [], "broken": ["off"], "stuck": ["off", "status"]}[case]


def test_the_hook_without_a_fence_exits_1_naming_the_host(make_front) -> None:
    f = make_front(fence=False)
    dead, _ = f.sim.add_host("node-1"), f.sim.add_host("node-2")
    vm = f.sim.add_vm("v", dead, ds_id=f.shared)
    f.settle()
    f.sim.host_error(dead)
    f.settle()
    run = f.runs("host-error")
    assert len(run) == 1 and run[0].code == 1
    assert "host node-1 (ID 0): no [evacuate] fence and fence_check configured" in run[0].stdout
    assert f.migrates() == Counter() and f.sim.vm(vm).state_name == "ACTIVE/UNKNOWN"


def test_two_hooks_for_the_same_host_at_once_one_evacuation(make_front) -> None:
    f = make_front(grace=1.0, twice=True)
    dead, _, _ = (f.sim.add_host(n) for n in ("node-1", "node-2", "node-3"))
    vms = [f.sim.add_vm(f"v{i}", dead, ds_id=f.shared) for i in range(4)]
    f.settle()
    f.sim.host_error(dead)
    f.settle()
    runs = f.runs("host-error") + f.runs("host-error-again")
    assert len(runs) == 2 and {r.code for r in runs} == {0}
    assert sum("already watched by pid" in r.stdout for r in runs) == 1, [r.stdout for r in runs]
    assert f.calls() == ["off node-1", "status node-1"]
    assert f.migrates() == Counter(vms) and all(running_on(f, v) for v in vms)


def test_dry_run_json_and_a_live_host(make_front) -> None:
    f = make_front(hook=False)
    dead, _ = f.sim.add_host("node-1"), f.sim.add_host("node-2")
    shared = f.sim.add_vm("s", dead, ds_id=f.shared)
    local = f.sim.add_vm("l", dead)
    f.sim.host_error(dead)
    f.settle()
    result = f.cli("evacuate", "node-1", "--dry-run", "--json")
    assert result.returncode == 1  # the local VM would not be moved
    report = {v["vm_id"]: v for v in json.loads(result.stdout)["vms"]}
    assert report[shared]["outcome"] == "would move" and report[shared]["host"] == "node-1->node-2"
    assert report[local]["outcome"] == "not moved" and "local storage" in report[local]["reason"]
    assert "dry run: nothing fenced, disabled or moved" in result.stderr
    assert f.calls() == [] and f.migrates() == Counter() and f.sim.host(dead).state == HostState.ERROR
    alive = f.cli("evacuate", "node-2")
    assert alive.returncode == 2 and "node-2 (ID 1) is MONITORED: its VMs run there" in alive.stderr
    assert f.cli("evacuate", "nowhere").returncode == 2


def test_a_failed_transfer_is_reported_with_the_command_the_others_run(make_front) -> None:
    f = make_front(grace=0.5, prolog_seconds=0.1)
    dead, _ = f.sim.add_host("node-1"), f.sim.add_host("node-2")
    vms = [f.sim.add_vm(f"v{i}", dead, ds_id=f.shared) for i in range(3)]
    f.sim.fail_transfers(1, vms[1])
    f.settle()
    f.sim.host_error(dead)
    f.settle()
    assert running_on(f, vms[0]) == running_on(f, vms[2]) == "node-2"
    assert f.sim.vm(vms[1]).state_name == "ACTIVE/PROLOG_MIGRATE_UNKNOWN_FAILURE"
    assert f"onevm recover --retry {vms[1]}" in f.log()
    assert f.record(dead)["exit_code"] == 1 and f.migrates() == Counter(vms)


def test_ninety_vms_at_a_real_oned_pace(make_front) -> None:
    """oned's LCM queue delays each move (REAL_TIMING): waited for, never called failed."""
    f = make_front(grace=0.5, timing=REAL_TIMING, prolog_seconds=0.2, boot_seconds=0.5)
    dead = f.sim.add_host("node-1")
    for name in ("node-2", "node-3"):
        f.sim.add_host(name)
    vms = [f.sim.add_vm(f"v{i}", dead, {"ONE_HOOKS_PRIORITY": str(i % 3)}, ds_id=f.shared, memory_mb=32)
           for i in range(90)]
    f.settle()
    f.sim.host_error(dead)
    f.settle(300)
    assert all(running_on(f, v) for v in vms)
    assert f.migrates() == Counter(vms)
    assert f.record(dead)["exit_code"] == 0 and " failed" not in f.log()


def test_status_can_read_each_host_s_last_evacuation(make_front) -> None:
    """What `one-hooks status` will show (issue 10): the record, and the live watcher during the grace."""
    from one_hooks.recovery.evacuator import evacuations

    f = make_front(grace=3.0)
    dead, _ = f.sim.add_host("node-1"), f.sim.add_host("node-2")
    vm = f.sim.add_vm("v", dead, ds_id=f.shared)
    f.settle()
    assert evacuations(f.stage.state, time.time()) == []
    f.sim.host_error(dead)
    deadline = time.monotonic() + 30
    waiting = []
    while not waiting and time.monotonic() < deadline:
        waiting = [e for e in evacuations(f.stage.state, time.time()) if e["watcher"]]
        time.sleep(0.1)
    assert waiting and waiting[0]["host_id"] == dead and "stage" not in waiting[0]
    f.settle()
    (done,) = evacuations(f.stage.state, time.time())
    assert done["watcher"] is None and done["stage"] == "done" and done["exit_code"] == 0
    assert [v["vm_id"] for v in done["vms"]] == [vm] and done["vms"][0]["outcome"] == "running"


def test_status_shows_the_evacuation_and_the_host_left_disabled(make_front) -> None:
    """`one-hooks status` after an evacuation: the record in its own table and in --json; the host it
    fenced and disabled, still DISABLED, needs the operator (exit 1, with `onehost enable`); a failed
    evacuation (no fence confirmed) is named too."""
    f = make_front(grace=0.5)
    dead, _ = f.sim.add_host("node-1"), f.sim.add_host("node-2")
    f.sim.add_vm("v", dead, ds_id=f.shared)
    f.settle()
    before = f.cli("status", "--json")
    assert json.loads(before.stdout)["evacuations"] == [], before.stdout
    f.sim.host_error(dead)
    f.settle()
    text = f.cli("status")
    assert text.returncode == 1, text.stdout + text.stderr
    assert "evacuations (the last per host):" in text.stdout
    assert "'onehost enable node-1'" in text.stdout, text.stdout
    report = json.loads(f.cli("status", "--json").stdout)
    (e,) = report["evacuations"]
    assert (e["host"], e["stage"], e["exit_code"], e["disabled"]) == ("node-1", "done", 0, True)
    assert [a for a in report["attention"] if "node-1" in a] == [
        a for a in report["attention"] if "fenced" in a and "onehost enable node-1" in a]
    # the operator enables the host again: nothing about the evacuation needs them any more
    answer = xmlrpc.client.ServerProxy(f.sim.endpoint).one.host.status(f.sim.session, dead, 0)  # onehost enable
    assert answer[0] is True, answer
    report = json.loads(f.cli("status", "--json").stdout)
    assert not [a for a in report["attention"] if "evacuation" in a], report["attention"]


def test_status_names_an_evacuation_that_could_not_fence(make_front) -> None:
    """No fence confirmed: nothing moved, the evacuation exited 1, status says so with what to run."""
    f = make_front(grace=0.5)
    (f.bmc.parent / "stuck").write_text("")
    dead, _ = f.sim.add_host("node-1"), f.sim.add_host("node-2")
    f.sim.add_vm("v", dead, ds_id=f.shared)
    f.settle()
    f.sim.host_error(dead)
    f.settle()
    report = json.loads(f.cli("status", "--json").stdout)
    (e,) = report["evacuations"]
    assert (e["stage"], e["exit_code"], e.get("disabled", False)) == ("not fenced", 1, False), e
    lines = [a for a in report["attention"] if a.startswith("host node-1: its last evacuation")]
    assert len(lines) == 1 and "'one-hooks evacuate node-1 --dry-run'" in lines[0], report["attention"]
