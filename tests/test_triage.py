"""The VM hooks' first look (one_hooks.hooks.triage): cheaper, never different.

It may settle an event only where the full hook would reach the same verdict;
everything else (and every payload the full parser would refuse) goes to the
full hook. Checked here: its numbers against the model's enums, its reading
of payloads against the full parser on the real recorded payloads and on
11,000 mutants, its pure decisions, and the real shims against the simulated
oned (lines, log, calls, exit codes, and that lxml/configobj/logging stay
unloaded when it settles an event).
"""
from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from one_hooks.errors import OneHooksError, PayloadError
from one_hooks.hooks import settings_cache, triage, verdicts
from one_hooks.hooks.triage import Unsure, vm_facts
from one_hooks.hooks.verdicts import VmFacts, left_to_carrier, left_to_host_hook, left_to_watcher
from one_hooks.logline import one_line
from one_hooks.oned import xmlparse
from one_hooks.oned.model import HistoryAction, HostState, Vm, VmState
from one_hooks.recovery import claims
from tests.test_fuzz_mutations import mutants
from tests.test_fuzz_payload import SEEDS_XML, VM_XML, XML_TOKENS, _hook_config

REPO = Path(__file__).resolve().parent.parent
SHIMS = REPO / "remotes" / "hooks" / "one-hooks"


def test_its_numbers_are_opennebulas() -> None:
    assert verdicts.VM_STATE_POWEROFF == VmState.POWEROFF
    assert verdicts.HISTORY_ACTION_RESUME == HistoryAction.RESUME
    assert verdicts.HISTORY_ACTION_MONITOR == HistoryAction.MONITOR
    assert verdicts.HOST_MONITORED == HostState.MONITORED
    assert verdicts.HOST_STATE_NAMES == {int(m): m.name for m in HostState}


# --- reading: the same facts as the full parser, or Unsure ------------------------


def _facts_of(vm: Vm) -> Tuple:
    return (vm.id, vm.name, int(vm.state), int(vm.lcm_state), int(vm.prev_lcm_state), vm.host_id,
            vm.hostname, int(vm.history.action) if vm.history else 0)


def _facts(f: VmFacts) -> Tuple:
    return (f.id, f.name, f.state, f.lcm_state, f.prev_lcm_state, f.host_id, f.hostname, f.action)


def _both(xml: bytes) -> Tuple[Optional[Tuple], Optional[Tuple]]:
    """(first look's facts or None if Unsure, full parser's facts or None if refused)."""
    try:
        ours: Optional[Tuple] = _facts(vm_facts(xml))
    except Unsure:
        ours = None
    try:
        full: Optional[Tuple] = _facts_of(xmlparse.parse_vm(xml))
    except PayloadError:
        full = None
    return ours, full


def test_recorded_payloads_read_the_same() -> None:
    recorded = [xml for xml in VM_XML]
    recorded += [p.read_bytes() for p in sorted((REPO / "tests" / "data" / "oned").rglob("*-vm.xml"))]
    assert len(recorded) > 10
    for xml in recorded:
        ours, full = _both(xml)
        assert full is not None and ours == full


@settings(max_examples=200, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**31))
def test_mutated_payloads_read_the_same_or_not_at_all(seed: int) -> None:
    """200 x 55 = 11,000 mutants: never a fact the full parser would not give."""
    for xml in mutants(VM_XML, seed, 55, XML_TOKENS):
        ours, full = _both(xml)
        if ours is not None:
            assert ours == full, xml


def test_the_mutants_reach_both_outcomes() -> None:
    read = unsure = 0
    for xml in mutants(VM_XML, 7, 2000, XML_TOKENS):
        ours, _ = _both(xml)
        read, unsure = read + (ours is not None), unsure + (ours is None)
    assert read > 200 and unsure > 200, (read, unsure)


@pytest.mark.parametrize("change", [
    (b"<VM>", b'<VM xmlns="http://opennebula.org/XMLSchema">'),   # lxml: another tag
    (b"<VM>", b'<!DOCTYPE VM [<!ENTITY x "y">]><VM>'),           # the full parser refuses
    (b"<VM>", b"<?pi x?><VM>"),
    (b"<STATE>3</STATE>", b"<STATE>3<X/></STATE>"),               # still "3": same as lxml
])
def test_documents_lxml_might_read_otherwise_are_left_to_it(change: Tuple[bytes, bytes]) -> None:
    xml = SEEDS_XML["vm-unknown-prev-running"].replace(*change, 1)
    ours, full = _both(xml)
    assert ours is None or ours == full


def test_deep_documents_are_left_to_the_full_parser() -> None:
    deep = b"<A>" * 40 + b"</A>" * 40
    xml = SEEDS_XML["vm-unknown-prev-running"].replace(b"</VM>", b"<USER_TEMPLATE>" + deep
                                                      + b"</USER_TEMPLATE></VM>", 1)
    with pytest.raises(Unsure):
        vm_facts(xml)


# --- deciding (pure) ----------------------------------------------------------------


def _vm(**kw: object) -> VmFacts:
    base = dict(id=7, name="web", state=3, lcm_state=16, prev_lcm_state=3, host_id=2,
                hostname="node-2", action=0)
    base.update(kw)
    return VmFacts(**base)  # type: ignore[arg-type]


def test_a_live_claim_leaves_the_vm_to_the_watcher() -> None:
    line = left_to_watcher("vm-unknown", _vm(), 1000.0, 10.0, (4242, 1200.0))
    assert line == ("vm-unknown: VM 7 (web): host-reconnect (pid 4242) watches host node-2 "
                    "for 200 s more: left to it")


def test_a_claim_ending_within_one_look_or_none_decides_nothing() -> None:
    assert left_to_watcher("vm-unknown", _vm(), 1000.0, 10.0, (4242, 1009.0)) is None
    assert left_to_watcher("vm-unknown", _vm(), 1000.0, 10.0, None) is None


def test_user_poweroffs_and_undeployed_vms_are_the_full_hooks() -> None:
    claim = (4242, 5000.0)
    assert left_to_watcher("vm-unknown", _vm(host_id=None), 1000.0, 10.0, claim) is None
    user_off = _vm(state=8, lcm_state=0, action=int(HistoryAction.POWEROFF))
    assert left_to_watcher("vm-poweroff", user_off, 1000.0, 10.0, claim) is None
    assert left_to_host_hook("vm-poweroff", user_off, "node-2", 3) is None
    lost = _vm(state=8, lcm_state=0, action=44)
    assert left_to_watcher("vm-poweroff", lost, 1000.0, 10.0, claim) is not None


def test_a_failed_deploys_event_is_left_to_the_watcher_too() -> None:
    """Issue 9: the process that resumed a VM retries its failed deploys; when that process is
    gone, the watcher carries on (it used to be vm-unknown's job, which never fires for POWEROFF)."""
    assert left_to_watcher("vm-unknown", _vm(prev_lcm_state=19), 1000.0, 10.0, (4242, 5000.0)) is not None


def test_the_events_a_carried_resume_causes_are_left_to_its_carrier() -> None:
    carrier = (4243, "tok", "host-reconnect")
    failed = _vm(prev_lcm_state=19)
    assert left_to_carrier("vm-unknown", failed, carrier) == \
        "vm-unknown: VM 7 (web): left to host-reconnect (pid 4243), which resumed it"
    failed_from_poweroff = _vm(state=8, lcm_state=0, action=int(HistoryAction.RESUME))
    assert left_to_carrier("vm-poweroff", failed_from_poweroff, carrier) is not None
    assert left_to_carrier("vm-poweroff", _vm(state=8, lcm_state=0, action=44), carrier) is not None
    user_off = _vm(state=8, lcm_state=0, action=int(HistoryAction.POWEROFF))
    assert left_to_carrier("vm-poweroff", user_off, carrier) is None  # "nothing to do", as ever
    assert left_to_carrier("vm-unknown", failed, None) is None
    assert left_to_carrier("vm-unknown", _vm(host_id=None), carrier) is None


def test_a_host_still_down_leaves_the_vm_to_host_reconnect() -> None:
    assert left_to_host_hook("vm-unknown", _vm(), "node-2", 3) == \
        "vm-unknown: VM 7 (web): host node-2 is ERROR: left to host-reconnect"
    assert "UNKNOWN_42" in left_to_host_hook("vm-unknown", _vm(), "node-2", 42)
    assert left_to_host_hook("vm-unknown", _vm(), "node-2", 2) is None  # MONITORED: full hook


# --- the real shims against the simulated oned ---------------------------------------


def _env(tmp: Path, config: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "ONE_HOOKS_CONFIG": str(config),
            "XDG_CACHE_HOME": str(tmp / "cache")}


def _shim(event: str, payload: bytes, env: dict,
          python: Optional[List[str]] = None) -> "subprocess.CompletedProcess[str]":
    argv = python or [sys.executable, "-m", "one_hooks.hooks.triage"]
    return subprocess.run(argv + [event], input=payload, capture_output=True, timeout=60,
                          env=env, cwd=REPO)


#: Runs the first look, then says which heavy modules the process had loaded.
PROBE = ("import sys\nfrom one_hooks.hooks import triage\ncode = triage.main()\n"
         "heavy = sorted(m for m in ('lxml', 'configobj', 'logging', 'dataclasses', 'typing', "
         "'one_hooks.config', 'one_hooks.oned.model') if m in sys.modules)\n"
         "print('HEAVY', ' '.join(heavy) or '-', file=sys.stderr)\nsys.exit(code)\n")


def _outage(sim) -> Tuple[int, int]:
    host = sim.add_host("dummy-host-1")
    vm = sim.add_vm("vm-outage-test", host)
    assert (host, vm) == (0, 0)  # the recorded payloads name host 0 and VM 0
    assert sim.settle(10)
    sim.host_error(host)
    assert sim.settle(10)
    return host, vm


def test_first_run_takes_the_full_path_and_leaves_the_snapshot(tmp_path: Path, sim) -> None:
    _outage(sim)
    env = _env(tmp_path, _hook_config(tmp_path, sim))
    payload = base64.b64encode(SEEDS_XML["vm-unknown-prev-running"])
    first = subprocess.run([sys.executable, "-c", PROBE, "vm-unknown"], input=payload,
                           capture_output=True, timeout=60, env=env, cwd=REPO, text=False)
    out = first.stdout.decode()
    assert first.returncode == 0, first.stdout + first.stderr
    assert "is ACTIVE/UNKNOWN, was ACTIVE/RUNNING" in out  # the full hook's first line
    assert "host dummy-host-1 is ERROR: left to host-reconnect" in out
    assert list((tmp_path / "cache" / "one-hooks").glob("settings*"))

    calls = sum(sim.calls.values())
    second = subprocess.run([sys.executable, "-c", PROBE, "vm-unknown"], input=payload,
                            capture_output=True, timeout=60, env=env, cwd=REPO)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.decode() == \
        "vm-unknown: VM 0 (vm-outage-test): host dummy-host-1 is ERROR: left to host-reconnect\n"
    assert "HEAVY -" in second.stderr.decode()  # settled without lxml, configobj, logging...
    assert sum(sim.calls.values()) == calls + 1  # one one.host.info
    log = (tmp_path / "one-hooks.log").read_text().splitlines()
    assert log[-1].endswith(" INFO vm-unknown: VM 0 (vm-outage-test): host dummy-host-1 is ERROR: "
                            "left to host-reconnect")
    assert "one-hooks-vm-unknown[" in log[-1]
    assert sim.action_log == []


def test_a_watched_host_costs_no_oned_call(tmp_path: Path, sim) -> None:
    _outage(sim)
    config = _hook_config(tmp_path, sim)
    env = _env(tmp_path, config)
    payload = base64.b64encode(SEEDS_XML["vm-unknown-prev-running"])
    assert _shim("vm-unknown", payload, env).returncode == 0  # leaves the snapshot
    # A live one-hooks process claims host 0 (as host-reconnect's watcher does).
    watcher = subprocess.Popen([sys.executable, "-c", "import time, one_hooks; time.sleep(30)"],
                               cwd=REPO, env=env)
    try:
        (tmp_path / "state" / "watch").mkdir(parents=True, exist_ok=True)
        Path(claims.claim_path(str(tmp_path / "state"), 0)).write_bytes(
            claims.encode(watcher.pid, time.time() + 120))
        calls = sum(sim.calls.values())
        proc = _shim("vm-unknown", payload, env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"host-reconnect (pid {watcher.pid}) watches host dummy-host-1" in proc.stdout.decode()
        assert sum(sim.calls.values()) == calls
    finally:
        watcher.kill()
        watcher.wait()
    # The watcher is gone: its claim counts for nothing, oned is asked again.
    proc = _shim("vm-unknown", payload, env)
    assert "is ERROR: left to host-reconnect" in proc.stdout.decode()


def test_a_carried_vms_failed_deploy_event_costs_no_oned_call(tmp_path: Path, sim) -> None:
    """The vm-unknown its own failed deploy fires (PREV_LCM_STATE=19) is left to the live process
    that resumed the VM, from the first look, without asking oned or loading anything heavy."""
    _outage(sim)
    config = _hook_config(tmp_path, sim)
    env = _env(tmp_path, config)
    payload = base64.b64encode(SEEDS_XML["vm-unknown-prev-boot-unknown"])
    assert _shim("vm-unknown", payload, env).returncode == 0  # leaves the snapshot
    carrier = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], cwd=REPO, env=env)
    try:
        start = claims.start_time(carrier.pid)
        assert start is not None
        (tmp_path / "state" / "carry").mkdir(parents=True, exist_ok=True)
        Path(claims.carry_path(str(tmp_path / "state"), 0)).write_bytes(
            claims.encode_carry(carrier.pid, start, "t", time.time() + 120, "host-reconnect"))
        calls = sum(sim.calls.values())
        proc = subprocess.run([sys.executable, "-c", PROBE, "vm-unknown"], input=payload,
                              capture_output=True, timeout=60, env=env, cwd=REPO)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.decode() == (f"vm-unknown: VM 0 (vm-outage-test): left to host-reconnect "
                                        f"(pid {carrier.pid}), which resumed it\n")
        assert "HEAVY -" in proc.stderr.decode()
        assert sum(sim.calls.values()) == calls
    finally:
        carrier.kill()
        carrier.wait()
    assert sim.action_log == []


def test_an_edited_config_is_read_again(tmp_path: Path, sim) -> None:
    _outage(sim)
    config = _hook_config(tmp_path, sim)
    env = _env(tmp_path, config)
    payload = base64.b64encode(SEEDS_XML["vm-unknown-prev-running"])
    _shim("vm-unknown", payload, env)
    config.write_text(config.read_text() + "[cpu]\nbogus = 1\n")
    proc = _shim("vm-unknown", payload, env)
    assert proc.returncode == 2  # the full hook read the file again and refused it
    assert "bogus" in (proc.stdout + proc.stderr).decode()
    assert sim.action_log == []


def test_bad_payloads_still_get_the_full_hooks_one_line(tmp_path: Path, sim) -> None:
    _outage(sim)
    env = _env(tmp_path, _hook_config(tmp_path, sim))
    _shim("vm-unknown", base64.b64encode(SEEDS_XML["vm-unknown-prev-running"]), env)
    calls = dict(sim.calls)
    bad = [b"", b"\xff\xfe not base64", base64.b64encode(b"<VM><ID>x</ID></VM>"),
           base64.b64encode(SEEDS_XML["vm-unknown-prev-running"].replace(b"<STATE>", b"<STATE>z", 1))]
    for event in triage.EVENTS:
        for data in bad:
            proc = _shim(event, data, env)
            output = (proc.stdout + proc.stderr).decode()
            assert proc.returncode == 2, output
            assert len(output.strip().splitlines()) == 1 and "Traceback" not in output
    assert dict(sim.calls) == calls
    assert sim.action_log == []


def test_the_installed_shims_run_the_first_look() -> None:
    for event in triage.EVENTS:
        text = (SHIMS / event).read_text()
        assert f"-m one_hooks.hooks.triage {event} \"$@\"" in text


# --- the first look as an entry point, on 11,000 mutated payloads ---------------------


@settings(max_examples=200, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(min_value=0, max_value=2**31))
def test_first_look_on_mutants_settles_only_what_the_full_hook_would(tmp_path_factory, seed: int) -> None:
    """A line only for payloads the full parser reads (and leaves to the watcher); else Unsure
    or one-hooks' own one-line error; never another exception, never a file changed."""
    tmp = tmp_path_factory.mktemp("look")
    state = tmp / "state"
    (state / "watch").mkdir(parents=True)
    watcher = _watcher_pid()
    for host in (0, 1, 2):  # the recorded payloads' hosts are watched: no oned call is needed
        (state / "watch" / claims.claim_name(host)).write_bytes(claims.encode(watcher, 4e9))
    before = sorted((p.name, p.read_bytes()) for p in (state / "watch").iterdir())
    look = settings_cache.Settings("http://127.0.0.1:9/RPC2", str(tmp / "no-auth"), 1.0, str(state),
                                   10.0, str(tmp / "log"), "info")
    for xml in mutants(VM_XML, seed, 55, XML_TOKENS):
        for event in triage.EVENTS:
            try:
                line = triage.first_look(event, base64.b64encode(xml), look, wall=lambda: 1e9)
            except Unsure:
                continue
            except OneHooksError as exc:
                assert "\n" not in str(exc)
                continue
            # printed and logged through one_line (a NAME may hold a line break)
            assert "\n" not in one_line(line) and line.startswith(f"{event}: VM ")
            xmlparse.decode_payload(base64.b64encode(xml))  # the full parser reads it too
    assert sorted((p.name, p.read_bytes()) for p in (state / "watch").iterdir()) == before
    assert not (tmp / "log").exists()


_WATCHER_PROC = None


def _watcher_pid() -> int:
    """A live process whose command line names one_hooks (as a settle watcher's does)."""
    global _WATCHER_PROC
    if _WATCHER_PROC is None:
        _WATCHER_PROC = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)",
                                          "one_hooks"])
    return _WATCHER_PROC.pid


@pytest.fixture(scope="module", autouse=True)
def _stop_watcher():
    yield
    if _WATCHER_PROC is not None:
        _WATCHER_PROC.kill()
        _WATCHER_PROC.wait()


def test_a_hung_oned_costs_the_first_look_at_most_its_call_timeout(tmp_path: Path, monkeypatch) -> None:
    """The full hook asks again with [oned] timeout and retries: the first look must not wait as long."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts (in the kernel), never answers
    auth = tmp_path / "auth"
    auth.write_text("oneadmin:secret\n")
    look = settings_cache.Settings(f"http://127.0.0.1:{silent.getsockname()[1]}/RPC2", str(auth),
                                   30.0, str(tmp_path / "state"), 10.0, "-", "info")
    monkeypatch.setattr(triage, "CALL_TIMEOUT", 0.5)
    started = time.monotonic()
    try:
        with pytest.raises(Unsure):
            triage._host_info(look, 0)
    finally:
        silent.close()
    assert time.monotonic() - started < 5.0  # not [oned] timeout's 30 s


@pytest.mark.parametrize("where", ["tag", "attribute"])
def test_names_lxml_would_refuse_are_left_to_the_full_parser(where: str) -> None:
    """libxml2 refuses names over 50,000 characters: the first look must not read such a payload."""
    name = "A" * 60000
    inner = f"<{name}>x</{name}>" if where == "tag" else f'<X {name}="1">x</X>'
    xml = SEEDS_XML["vm-unknown-prev-running"].replace(
        b"</VM>", f"<USER_TEMPLATE>{inner}</USER_TEMPLATE></VM>".encode(), 1)
    ours, full = _both(xml)
    assert full is None and ours is None
