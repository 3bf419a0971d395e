"""A host that does not come back, on a REAL oned (6.10.5 and 7.4.0): fenced, disabled, its VMs elsewhere.

One scenario per version (the two run side by side) covers every check below,
each reading the same evidence. The real ``one-hooks-install`` registers the
hooks (host-error included: ``[evacuate] enabled = yes``) through oned's
XML-RPC; the rig's real ``onehem-server`` runs them. A second registration of
the host-error hook under another name makes onehem start two at once for
every host failure. The fence is a stand-in for a BMC tool: it records its
calls, and "powers the host off" the way the rig can: the host's outage flag
gets ``vmm-fail`` (every driver action on it fails from then on) and its
domains are gone when it comes back (``hvstate gone``); its power status
answers "off" only then.

* h1 fails for good (outage): after the grace it is fenced, disabled, and its
  VMs on the shared system datastore (two of priority 10, six of priority 0)
  are moved to h2/h3, tier 10 first; a VM on a non-shared system datastore
  (TM ssh, SHARED=NO) is reported and left; a locked one is reported with the
  command to run;
* h2 fails at the same time but comes back within the grace: nothing of it
  is moved, host-reconnect brings its VMs back;
* the operator's ``one-hooks evacuate h1`` with no fence, a failing fence and
  an unconfirmed one (after the locked VM is unlocked): nothing moved, exit 1;
  then with the working fence: the VM is moved;
* h1 comes back: it stays DISABLED, nothing is resumed there, no VM is on two
  hosts.

Asserted from oned: VM states and history records (a move adds exactly one
record), vm.log times (tier order), the hosts' states and VM lists, the hook
execution records; from our side only the fence's call record and our log.
"""
from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from one_hooks.hooks.entry import running_watchers
from one_hooks.install import hook_templates as ht
from tests.oned_rig import SHARED, HookLog, HookRecord, Rig, VmView, false_failures, read_audit_log
from tests.plugin_rig import RigPool, hooks_config, side_by_side
from tests.test_rig_outage import installer, node_command

#: Seconds a failed host may stay in ERROR before it is evacuated (the default is 300).
GRACE = 90
#: VMs of h1 by priority, on the shared system datastore.
HIGH, LOW = 2, 6
SCENARIO = "*   session-P3  session-P3-healthy\n*   node        node-healthy\n*   multipath   multipath-healthy\n"
#: OpenNebula's own ft/host_error.rb hook, as its docs register it.
FT_HOOK = ('NAME = "host-error-ft"\nTYPE = "state"\nCOMMAND = "ft/host_error.rb"\nARGUMENTS = "$TEMPLATE -m -p 5"\n'
           'ARGUMENTS_STDIN = "yes"\nRESOURCE = "HOST"\nSTATE = "ERROR"\nREMOTE = "no"\n')

FENCE = """#!/bin/sh
# A BMC tool stand-in for the rig: "off HOST" powers HOST off (every driver action on it fails from now
# on, and its domains are gone when it comes back); "status HOST" says off only then.
dir={dir}
rig={root}
echo "$1 $2" >> "$dir/calls"
case "$1" in
  off)
    [ -e "$dir/broken" ] && {{ echo "Error: Unable to establish IPMI v2 session" >&2; exit 1; }}
    if [ ! -e "$dir/stuck" ]; then
      mkdir -p "$rig/run/outage" && echo "on vmm-fail" > "$rig/run/outage/$2"
      {oned_rig} {version} {rig_dir} hvstate gone "$2" >/dev/null 2>&1
    fi
    echo "Chassis Power Control: Down/Off" ;;
  status)
    if [ ! -e "$dir/stuck" ] && grep -qs vmm-fail "$rig/run/outage/$2"; then
      echo "Chassis Power is off"
    else
      echo "Chassis Power is on"
    fi ;;
esac
"""


def config_text(node: str, work: Path, fence: Path, confirm: int = 20) -> str:
    """The hooks' configuration: short waits, a 90 s grace, the fence stand-in."""
    return (
        "[oned]\nretries = 2\nretry_delay = 0.5\n"
        f'[node]\ncommand = "{node}"\ntimeout = 20\n'
        "[iscsi]\niscsiadm = sudo -n iscsiadm\ncheck_by_path = no\ndeadline = 6\nretry_interval = 1\n"
        f"[recovery]\nstate_dir = {work / 'state'}\nretry_delay = 2\nsettle_seconds = 10\n"
        "settle_interval = 2\nwait_running = 120\ntier_timeout = 120\n"
        f"[evacuate]\nenabled = yes\ngrace = {GRACE}\ninterval = 1\n"
        f"fence = {fence} off {{host}}\nfence_check = {fence} status {{host}}\n"
        f"fence_timeout = 30\nconfirm_timeout = {confirm}\n"
        f"[log]\nfile = {work / 'one-hooks.log'}\nlevel = info\n")


@dataclass
class Cloud:
    high: List[int]
    low: List[int]
    local: int
    locked: int
    back: List[int]      #: h2's VMs: their host comes back within the grace

    @property
    def moved(self) -> List[int]:
        return self.high + self.low

    @property
    def all(self) -> List[int]:
        return self.moved + [self.local, self.locked] + self.back


@dataclass
class Evidence:
    rig: Rig
    cloud: Cloud
    work: Path
    install_out: str
    check_out: Tuple[int, str]
    began: float
    hooks: Dict[str, int]
    records: Dict[str, List[HookRecord]]
    after_move: Dict[int, VmView]
    vm_logs: Dict[int, List[Tuple[float, str, str]]]
    fence_calls: List[str]
    host_states: Dict[str, str]
    cli: Dict[str, Tuple[int, str]] = field(default_factory=dict)
    cli_calls: Dict[str, List[str]] = field(default_factory=dict)
    unlocked_after: Dict[str, VmView] = field(default_factory=dict)
    returned: Dict[str, object] = field(default_factory=dict)
    log: List[Tuple[str, str, str]] = field(default_factory=list)

    def describe(self, vm_id: int) -> str:
        vm = self.after_move[vm_id]
        lcm = [f"{time.strftime('%H:%M:%S', time.localtime(t))} {m}" for t, _, m in self.vm_logs.get(vm_id, [])]
        return f"VM {vm_id} {vm.state_name} on {vm.host}, history {vm.history}; vm.log {lcm}"


def _cli(rig: Rig, config: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**rig.env, "ONE_HOOKS_CONFIG": str(config)}
    return subprocess.run([sys.executable, "-m", "one_hooks", "--config", str(config), *args], env=env,
                          capture_output=True, text=True, timeout=300)


def _run_installer(rig: Rig, config: str, *args: str) -> subprocess.CompletedProcess:
    env = {**rig.env, "ONE_HOOKS_CONFIG": config}
    return subprocess.run(installer("--remotes", str(rig.remotes), "--config", config, *args), env=env,
                          capture_output=True, text=True, timeout=120)


def _fence_calls(fence_dir: Path) -> List[str]:
    path = fence_dir / "calls"
    return path.read_text().splitlines() if path.exists() else []


def build_cloud(rig: Rig) -> Cloud:
    ids = rig.host_ids()
    tid = rig.template_id()
    local_ds = int(rig.sure_call("one.datastore.allocate",
                                 'NAME = "evac-local"\nTYPE = "SYSTEM_DS"\nTM_MAD = "ssh"\n', 0))

    def make(name: str, host: str, **user: str) -> int:
        return rig.create_vm(name, ids[host], user, template_id=tid)

    local = int(rig.sure_call("one.template.instantiate", tid, "evac-local", True, "", False))
    rig.sure_call("one.vm.deploy", local, ids["h1"], False, local_ds)
    cloud = Cloud(high=[make(f"evac-high-{i}", "h1", ONE_HOOKS_PRIORITY="10") for i in range(HIGH)],
                  low=[make(f"evac-low-{i}", "h1") for i in range(LOW)], local=local,
                  locked=make("evac-locked", "h1"), back=[make(f"evac-back-{i}", "h2") for i in range(2)])
    seen = rig.wait_vms(cloud.all, lambda vm: vm.state_name == "RUNNING", timeout=120)
    assert all(vm.state_name == "RUNNING" for vm in seen.values()), \
        f"the cloud did not start: {[(i, vm.state_name) for i, vm in seen.items()]}"
    rig.sure_call("one.vm.lock", cloud.locked, 1, False)
    return cloud


def run_evacuation(rig: Rig, work: Path) -> Evidence:
    """The whole scenario on one rig; cleans up after itself (hosts back MONITORED, VMs and hooks gone)."""
    fence_dir = work / "fence"
    fence_dir.mkdir(parents=True)
    fence = fence_dir / "bmc"
    fence.write_text(FENCE.format(dir=fence_dir, root=rig.root, oned_rig=SHARED / "oned-rig", version=rig.version,
                                  rig_dir=rig.dir))
    fence.chmod(0o755)
    scenario = work / "standin-scenario"
    scenario.write_text(SCENARIO)
    node = node_command(scenario, work / "standin.log")
    config = hooks_config(rig)
    Path(config).write_text(config_text(node, work, fence))
    ft = int(rig.sure_call("one.hook.allocate", FT_HOOK))
    try:
        installed = _run_installer(rig, config)
        assert installed.returncode == 0, installed.stdout + installed.stderr
        checked = _run_installer(rig, config, "--check", "--node-remotes", str(rig.remotes))
    finally:
        rig.sure_call("one.hook.delete", ft)
    twin_text = ht.allocate_text(ht.HOST_ERROR, _load(config)).replace(ht.HOST_ERROR.name, "evac-host-error-twin")
    twin = int(rig.sure_call("one.hook.allocate", twin_text))
    hooks = {name: hook_id for name, hook_id in rig.hook_ids().items()
             if name in ht.NAMES or name in (ht.HOST_ERROR.name, "evac-host-error-twin")}
    cloud = build_cloud(rig)
    try:
        with HookLog(rig, interval=0.5) as hooklog:
            began = time.time()
            with ThreadPoolExecutor(max_workers=2) as pool:
                futures = [pool.submit(rig.outage, host, "on", "--wait") for host in ("h1", "h2")]
                futures[1].result()
                # h2 is back as soon as it is seen in ERROR: well within the grace
                rig.outage("h2", "off", "running")
                futures[0].result()
            rig.wait_vms(cloud.moved, lambda vm: vm.state_name == "RUNNING" and vm.host in ("h2", "h3"),
                         timeout=GRACE + 240, poll=1.0)
            deadline = time.monotonic() + 120
            while running_watchers(config) and time.monotonic() < deadline:
                time.sleep(0.5)
            rig.wait_vms(cloud.back, lambda vm: vm.state_name == "RUNNING", timeout=120)
            after = {i: rig.vm(i) for i in cloud.all}
            evidence = Evidence(rig, cloud, work, installed.stdout, (checked.returncode, checked.stdout), began,
                                hooks, {}, after, {i: rig.vm_log(i) for i in cloud.all}, _fence_calls(fence_dir),
                                rig.host_states())

            # The operator's command, on the still dead h1, for the VM that was locked.
            rig.sure_call("one.vm.unlock", cloud.locked)
            for case in ("none", "broken", "stuck", "works"):
                conf = work / f"cli-{case}.conf"
                text = config_text(node, work, fence, confirm=0)
                if case == "none":
                    text = text.replace(f"fence = {fence} off {{host}}\n", "")
                conf.write_text(text)
                for flag in ("broken", "stuck"):
                    (fence_dir / flag).unlink(missing_ok=True)
                if case in ("broken", "stuck"):
                    (fence_dir / case).touch()
                before = len(_fence_calls(fence_dir))
                result = _cli(rig, conf, "evacuate", "h1")
                evidence.cli[case] = (result.returncode, result.stdout + result.stderr)
                evidence.cli_calls[case] = _fence_calls(fence_dir)[before:]
                evidence.unlocked_after[case] = rig.vm(cloud.locked)

            # h1 comes back (its domains gone): it must stay DISABLED, nothing resumed there.
            returned_at = time.time()
            rig.outage("h1", "off")
            time.sleep(30)
            evidence.returned = {
                "h1": rig.host_states().get("h1"),
                "h1_vms": _host_vm_ids(rig, "h1"),
                "elsewhere": {h: _host_vm_ids(rig, h) for h in ("h2", "h3")},
                "final": {i: rig.vm(i) for i in cloud.all},
                "resumes": [c for c in rig.action_calls("resume", since=returned_at) if c.vm_id in cloud.all],
                "at": returned_at,
            }
        evidence.records = {name: hooklog.of(hook_id) for name, hook_id in hooks.items()}
        evidence.log = read_audit_log(work / "one-hooks.log")
        return evidence
    finally:
        _clean_up(rig, cloud, config, twin)


def _host_vm_ids(rig: Rig, host: str) -> List[int]:
    import xml.etree.ElementTree as ET
    xml = ET.fromstring(rig.sure_call("one.host.info", rig.host_ids()[host]))
    return sorted(int(e.text or -1) for e in xml.findall("VMS/ID"))


def _load(config: str):  # noqa: ANN202 (a Config)
    from one_hooks import config as config_mod
    return config_mod.load(config, environ={})


def _clean_up(rig: Rig, cloud: Cloud, config: str, twin: int) -> None:
    """Leave the rig as the other rig tests expect it: h1..h3 MONITORED, no VM of ours, our hooks gone."""
    from one_hooks.hooks.entry import stop_watchers
    stop_watchers(config)
    for host in ("h1", "h2"):
        flag = rig.root / "run" / "outage" / host
        if flag.exists():
            rig.outage(host, "off")
    rig.try_call("one.host.status", rig.host_ids()["h1"], 0)
    rig.wait_hosts(("h1", "h2", "h3"), "MONITORED", timeout=120)
    for vm_id in cloud.all:
        rig.try_call("one.vm.unlock", vm_id)
        rig.try_call("one.vm.recover", vm_id, 3)
    rig.try_call("one.hook.delete", twin)
    _run_installer(rig, config, "--uninstall")
    for vm_id in cloud.all:  # gone from the pool before the next test counts VMs
        for _ in range(60):
            ok, _ = rig.try_call("one.vm.info", vm_id)
            if not ok or rig.vm(vm_id).state == 6:
                break
            time.sleep(0.5)


@pytest.fixture(scope="module")
def evacuations(rig_pool: RigPool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Future]]:
    """Every version's scenario, run side by side (mostly waiting for oned and the grace)."""
    yield from side_by_side(rig_pool, run_evacuation, tmp_path_factory, "evacuate")


@pytest.fixture(scope="module")
def evac(rig: Rig, evacuations: Dict[str, Future]) -> Evidence:
    """The scenario of this version's rig, and what oned recorded of it."""
    return evacuations[rig.version].result()


def _times(ev: Evidence, vm_id: int, message: str) -> List[float]:
    return [t for t, _, m in ev.vm_logs[vm_id] if m.startswith(message) and t >= ev.began - 1]


# --- the checks -------------------------------------------------------------------------


def test_installed_with_host_error_and_ft_host_error_rb_named(evac: Evidence) -> None:
    """host-error is registered by the real installer; OpenNebula's ft/host_error.rb is warned about."""
    assert ht.HOST_ERROR.name in evac.hooks, evac.install_out
    assert "hook host-error-ft" in evac.install_out and "ft/host_error.rb" in evac.install_out
    code, out = evac.check_out
    assert code == 1 and "problem: hook host-error-ft" in out and "would race one-hooks-host-error" in out, out


def test_dead_host_fenced_once_disabled_and_its_shared_vms_running_elsewhere(evac: Evidence) -> None:
    c = evac.cloud
    down = [evac.describe(i) for i in c.moved
            if not (evac.after_move[i].state_name == "RUNNING" and evac.after_move[i].host in ("h2", "h3"))]
    assert down == [], "\n".join(down)
    # one move each: exactly one new history record, the old one closed with ACTION 1 (migrate)
    bad = [evac.describe(i) for i in c.moved
           if len(evac.after_move[i].history) != 2 or evac.after_move[i].history[0][1] != 1]
    assert bad == [], "\n".join(bad)
    assert evac.fence_calls == ["off h1", "status h1"], evac.fence_calls
    assert evac.host_states["h1"] == "DISABLED", evac.host_states


def test_priority_tier_moved_first(evac: Evidence) -> None:
    """No VM of priority 0 started moving before both of priority 10 were RUNNING (oned's clocks)."""
    c = evac.cloud
    ready = max(min(_times(evac, i, "New LCM state is RUNNING") or [float("inf")]) for i in c.high)
    first_low = min(min(_times(evac, i, "New LCM state is PROLOG_MIGRATE_UNKNOWN") or [float("inf")])
                    for i in c.low)
    assert ready < float("inf") and first_low < float("inf"), [evac.describe(i) for i in c.moved]
    assert first_low >= ready, "\n".join(evac.describe(i) for i in c.moved)


def test_local_storage_and_locked_vms_reported_not_moved(evac: Evidence) -> None:
    c = evac.cloud
    for vm_id in (c.local, c.locked):
        vm = evac.after_move[vm_id]
        assert vm.state_name == "UNKNOWN" and vm.host == "h1" and len(vm.history) == 1, evac.describe(vm_id)
    messages = [m for _, _, m in evac.log]
    assert any(f"VM {c.local} (evac-local)" in m and "NOT MOVED: local storage" in m and "SHARED=NO" in m
               for m in messages), messages
    assert any(f"run 'onevm unlock {c.locked}' then 'one-hooks evacuate h1'" in m for m in messages)


def test_host_back_within_the_grace_keeps_its_vms(evac: Evidence) -> None:
    c = evac.cloud
    for vm_id in c.back:
        vm = evac.after_move[vm_id]
        assert vm.state_name == "RUNNING" and vm.host == "h2" and len(vm.history) == 1, evac.describe(vm_id)
    assert "off h2" not in evac.fence_calls
    assert any("host h2 is MONITORED after" in m and "nothing evacuated" in m for _, _, m in evac.log)


def test_two_hooks_at_once_one_watcher_per_host(evac: Evidence) -> None:
    runs = evac.records[ht.HOST_ERROR.name] + evac.records["evac-host-error-twin"]
    runs = [r for r in runs if r.timestamp >= evac.began - 1]
    assert len(runs) == 4 and {r.code for r in runs} == {0}, [(r.code, r.stdout) for r in runs]
    for host in ("h1", "h2"):
        mine = [r.stdout for r in runs if f"({host}) is ERROR" in r.stdout]
        assert len(mine) == 2 and sum("already watched by pid" in s for s in mine) == 1, mine


def test_no_failing_or_unconfirmed_fence_moves_nothing_exit_1(evac: Evidence) -> None:
    expected = {"none": ("no fence configured", []),
                "broken": ("fence failed", ["off h1"]),
                "stuck": ("power-off not confirmed", ["off h1", "status h1"])}
    for case, (words, calls) in expected.items():
        code, out = evac.cli[case]
        assert code == 1 and words in out and "'one-hooks evacuate h1'" in out, (case, out)
        assert evac.cli_calls[case] == calls, (case, evac.cli_calls[case])
        vm = evac.unlocked_after[case]
        assert vm.state_name == "UNKNOWN" and vm.host == "h1" and len(vm.history) == 1, (case, vm)
    code, out = evac.cli["works"]
    moved = evac.unlocked_after["works"]
    assert code == 1, out  # the local VM stays: reported, exit 1
    assert moved.state_name == "RUNNING" and moved.host in ("h2", "h3") and len(moved.history) == 2, (out, moved)


def test_fenced_host_returning_stays_disabled_nothing_resumed_no_duplicate(evac: Evidence) -> None:
    back = evac.returned
    c = evac.cloud
    assert back["h1"] == "DISABLED", back
    assert back["resumes"] == [], back["resumes"]
    assert set(back["h1_vms"]) == {c.local}, back["h1_vms"]
    elsewhere = set(back["elsewhere"]["h2"]) | set(back["elsewhere"]["h3"])
    assert set(c.moved + [c.locked]) <= elsewhere and c.local not in elsewhere
    for vm_id in c.moved + [c.locked]:
        vm = back["final"][vm_id]
        assert vm.state_name == "RUNNING" and vm.host in ("h2", "h3") and len(vm.history) == 2, vm
    reconnects = [r for r in evac.records["one-hooks-host-reconnect"]
                  if r.timestamp >= back["at"] and "(h1)" in r.stdout]
    assert reconnects == [], [r.stdout for r in reconnects]


def test_no_false_failure_in_the_log(evac: Evidence) -> None:
    running = [i for i, vm in evac.returned["final"].items() if vm.state_name == "RUNNING"]
    false = false_failures(evac.log, running)
    assert false == [], "\n".join(false)
