"""End to end: what one-hooks-install puts in place heals an outage, by itself.

The installer copies the shims into the remotes directory the simulated oned
resolves hook COMMANDs under, and registers the three templates through the
API. The outage then runs in the simulator; its onehem-like runner starts the
INSTALLED shims as subprocesses (stdin = base64 $TEMPLATE, as oned does), and
nothing in this test calls the recovery code directly. The nodes' storage is
the node stand-in replaying real healthy iSCSI captures.

When a real oned is reachable (``ONE_XMLRPC`` set and answering, with
``ONE_AUTH``), install, check and uninstall also run against it.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest

import one_hooks.sim
from one_hooks.audit import Reporter
from one_hooks.cli import run_guarded
from one_hooks.install import files
from one_hooks.install import hook_templates as ht
from one_hooks.install import main as install
from one_hooks.oned.model import HistoryAction, LcmState, VmState
from tests.oned_rig import Rig

ROOT = str(Path(__file__).resolve().parent.parent)
STANDIN = os.path.join(os.path.dirname(one_hooks.sim.__file__), "node_standin")


def run_installer(argv: List[str], environ: Dict[str, str]) -> tuple:
    out, err = io.StringIO(), io.StringIO()

    def body() -> int:
        args = install.build_parser().parse_args(argv)
        return install.run(args, reporter=Reporter(out=out), environ=environ)

    with contextlib.redirect_stderr(err):
        code = run_guarded(body, install.PROGRAM)
    return code, out.getvalue(), err.getvalue()


def write_config(tmp: Path, endpoint: str, auth: str) -> Path:
    scenario = tmp / "scenario"
    scenario.write_text("*  session-P3  session-P3-healthy\n*  node  node-healthy\n")
    conf = tmp / "one-hooks.conf"
    conf.write_text(
        f"[oned]\nendpoint = {endpoint}\nauth_file = {auth}\nretries = 2\nretry_delay = 0.1\n"
        f'[node]\ncommand = "env ONE_HOOKS_NODE={{host}} ONE_HOOKS_STANDIN_SCENARIO={scenario} '
        f'PATH={STANDIN}:/usr/bin:/bin"\n'
        "[iscsi]\niscsiadm = sudo -n iscsiadm\ncheck_by_path = no\ncheck_multipath = no\n"
        "deadline = 5\nretry_interval = 0.2\n"
        f"[recovery]\nstate_dir = {tmp / 'state'}\nsettle_seconds = 3\nsettle_interval = 0.2\n"
        "wait_running = 20\nretry_delay = 0.2\ntier_timeout = 20\n"
        f"[log]\nfile = {tmp / 'one-hooks.log'}\n")
    return conf


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_outage_healed_through_the_installed_shims(make_sim, tmp_path: Path) -> None:
    remotes = tmp_path / "remotes"
    sim = make_sim(remotes_dir=str(remotes))
    conf = write_config(tmp_path, sim.endpoint, str(sim.auth_file))
    env = sim.env(config=conf)
    # the hooks run by the simulated onehem get what oned's environment would give them
    sim.set_hook_env({"ONE_XMLRPC": sim.endpoint, "ONE_AUTH": str(sim.auth_file),
                      "ONE_HOOKS_CONFIG": str(conf), "PYTHONPATH": ROOT})

    code, out, err = run_installer(["--remotes", str(remotes), "--config", str(conf)], env)
    assert code == 0, out + err
    shim = remotes / "hooks" / "one-hooks" / "host-reconnect"
    assert files.shim_python(shim.read_bytes()) == sys.executable

    hosts = [sim.add_host(f"node-{i}") for i in (1, 2)]
    vms = [sim.add_vm(f"vm-{h}-{j}", h) for h in hosts for j in range(3)]
    user_off = vms[0]
    sim.user_poweroff(user_off)
    assert wait_for(lambda: sim.vm(user_off).state == VmState.POWEROFF, 10)
    assert sim.settle(30)

    # the power outage: hosts ERROR, their running VMs UNKNOWN
    for host in hosts:
        sim.host_error(host)
    assert sim.settle(60)
    assert all(sim.vm(v).lcm_state == LcmState.UNKNOWN for v in vms[1:])
    # power back: host 1's VMs survived nothing (KVM lost them) -> POWEROFF/monitor after the
    # host returns; host 2's stay UNKNOWN (no state report), as in the recordings
    for host in hosts:
        sim.host_monitored(host)
    sim.reconcile(hosts[0], running=set())
    healed = wait_for(lambda: all(sim.vm(v).lcm_state == LcmState.RUNNING for v in vms[1:]), 90)
    assert sim.settle(90)
    states = {v: sim.vm(v).state_name for v in vms}
    assert healed, states

    # the user's poweroff is respected
    assert sim.vm(user_off).state == VmState.POWEROFF
    assert sim.vm(user_off).history.action in (HistoryAction.POWEROFF, HistoryAction.POWEROFF_HARD)
    # each VM was resumed once, by the hooks (nothing else here sends actions)
    resumes = [vm for _, vm, action, _ in sim.action_log if action == "resume"]
    assert sorted(resumes) == sorted(vms[1:])
    # the registered hooks ran the installed shims, and they succeeded
    ours = {h.name: h for h in install._default_oned(install.config_mod.load(str(conf), env)).hook_pool()
            if h.name in ht.NAMES}
    runs = {name: sim.hook_executions(hook.id) for name, hook in ours.items()}
    assert runs["one-hooks-host-reconnect"] and runs["one-hooks-vm-unknown"]
    assert runs["one-hooks-vm-poweroff"], "host 1's VMs went POWEROFF/monitor: that hook must fire"
    for name, records in runs.items():
        for record in records:
            assert record.code == 0, (name, record.stdout, record.stderr)

    # and the installation checks clean, then goes away leaving the hooks pool as before
    code, out, err = run_installer(["--remotes", str(remotes), "--config", str(conf), "--check",
                                    "--node-remotes", str(remotes)], env)
    assert "problem: hook" not in out and "problem: /" not in out, out
    code, out, err = run_installer(["--remotes", str(remotes), "--config", str(conf), "--uninstall"], env)
    assert code == 0, out + err
    assert not shim.exists()
    assert [h for h in install._default_oned(install.config_mod.load(str(conf), env)).hook_pool()
            if h.name in ht.NAMES] == []


# --- a real oned, when one is reachable ------------------------------------------------


@pytest.fixture
def real_oned() -> Dict[str, str]:
    endpoint = os.environ.get("ONE_XMLRPC", "")
    if not endpoint:
        pytest.skip("no real oned: ONE_XMLRPC is not set (these tests run against one when it is)")
    from one_hooks import config as config_mod
    from one_hooks.errors import OneHooksError
    from one_hooks.oned.client import Oned

    try:
        version = Oned.from_config(config_mod.load(None, {**os.environ, "ONE_HOOKS_CONFIG": ""}).oned).version()
    except OneHooksError as exc:
        pytest.skip(f"ONE_XMLRPC={endpoint} is set but oned does not answer: {exc}")
    return {"endpoint": endpoint, "version": version}


def test_real_oned_install_check_uninstall(real_oned: Dict[str, str], tmp_path: Path) -> None:
    """Against the oned that ``ONE_XMLRPC`` names (an operator's own front-end)."""
    _install_check_uninstall({k: v for k, v in os.environ.items() if k != "ONE_HOOKS_CONFIG"}, tmp_path)


def test_rig_install_check_uninstall(rig: Rig, tmp_path: Path) -> None:
    """The same against the real oned 6.10.5 and 7.4.0 of ``../shared/opennebula`` (skipped where absent)."""
    env = {k: v for k, v in {**os.environ, **rig.env}.items() if k != "ONE_HOOKS_CONFIG"}
    _install_check_uninstall(env, tmp_path)


def _install_check_uninstall(env: Dict[str, str], tmp_path: Path) -> None:
    """Install into a scratch root, again (nothing to change), --check, --uninstall: oned's hooks as before."""
    from one_hooks import config as config_mod
    from one_hooks.oned.client import Oned

    root = tmp_path / "root"
    root.mkdir()
    oned = Oned.from_config(config_mod.load(None, {**env, "ONE_HOOKS_CONFIG": ""}).oned)
    if any(h.name in ht.NAMES for h in oned.hook_pool()):
        pytest.skip("this oned already has one-hooks registered: not touching a live installation")
    before = {h.id: (h.name, dict(h.template)) for h in oned.hook_pool()}
    code, out, err = run_installer(["--root", str(root)], env)
    assert code == 0, out + err
    try:
        ours = {h.name: h for h in oned.hook_pool() if h.name in ht.NAMES}
        assert set(ours) == set(ht.NAMES)
        for spec in ht.HOOKS:
            assert ht.differences(spec, config_mod.Config(), ours[spec.name].template) == [], spec.name
        code, out, err = run_installer(["--root", str(root)], env)
        assert code == 0 and "nothing to change" in out, out
        code, out, err = run_installer(["--root", str(root), "--check"], env)
        assert "problem: hook" not in out, out
    finally:
        code, out, err = run_installer(["--root", str(root), "--uninstall"], env)
    assert code == 0, out + err
    assert {h.id: (h.name, dict(h.template)) for h in oned.hook_pool()} == before
