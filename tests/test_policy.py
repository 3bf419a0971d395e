"""policy: which VMs an outage left down, and the reason for each decision."""
from __future__ import annotations

import dataclasses
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from one_hooks.oned import xmlparse
from one_hooks.oned.model import History, HistoryAction, Host, HostState, LcmState, Vm, VmState
from one_hooks.recovery.policy import Action, Settings, decide, is_candidate, plan, tier_of

DATA = os.path.join(os.path.dirname(__file__), "data", "recovery")


def _read(name: str) -> bytes:
    with open(os.path.join(DATA, name), "rb") as fh:
        return fh.read()


@pytest.fixture()
def host() -> Host:
    """The real host record of a host back to MONITORED (ID 0)."""
    return xmlparse.parse_host(_read("host-monitored.xml"))


@pytest.fixture()
def unknown_vm() -> Vm:
    """The real record of a VM left ACTIVE/UNKNOWN by the outage, on host 0."""
    return xmlparse.parse_vm(_read("vm-unknown.xml"))


@pytest.fixture()
def poweroff_vm() -> Vm:
    """The real record of a VM powered off by monitoring (history ACTION 44)."""
    return xmlparse.parse_vm(_read("vm-poweroff-monitor.xml"))


def _with(vm: Vm, **changes: object) -> Vm:
    return dataclasses.replace(vm, **changes)


def _action(vm: Vm, action: HistoryAction) -> Vm:
    assert vm.history is not None
    return _with(vm, history=dataclasses.replace(vm.history, action=action))


ALL = Settings()
OPT_IN = Settings(policy="opt-in")


def test_real_unknown_vm_is_resumed(host: Host, unknown_vm: Vm) -> None:
    d = decide(unknown_vm, host, ALL)
    assert d.action == Action.RESUME
    assert "UNKNOWN" in d.reason
    assert d.tier == 0


def test_real_poweroff_by_monitor_is_resumed(host: Host, poweroff_vm: Vm) -> None:
    d = decide(poweroff_vm, host, ALL)
    assert d.action == Action.RESUME
    assert "monitor" in d.reason


@pytest.mark.parametrize("action", [HistoryAction.POWEROFF, HistoryAction.POWEROFF_HARD])
def test_user_poweroff_left_alone(host: Host, poweroff_vm: Vm, action: HistoryAction) -> None:
    d = decide(_action(poweroff_vm, action), host, ALL)
    assert d.action == Action.SKIP
    assert "user" in d.reason


@pytest.mark.parametrize("state", [VmState.STOPPED, VmState.UNDEPLOYED])
def test_stopped_and_undeployed_left_alone(host: Host, unknown_vm: Vm, state: VmState) -> None:
    d = decide(_with(unknown_vm, state=state, lcm_state=LcmState.LCM_INIT), host, ALL)
    assert d.action == Action.SKIP
    assert state.name.lower() in d.reason


@pytest.mark.parametrize("lcm, word", [(LcmState.RUNNING, "RUNNING"),
                                       (LcmState.BOOT_UNKNOWN, "booting"),
                                       (LcmState.BOOT_POWEROFF, "booting")])
def test_vm_that_moved_on_is_skipped(host: Host, unknown_vm: Vm, lcm: LcmState, word: str) -> None:
    d = decide(_with(unknown_vm, lcm_state=lcm), host, ALL)
    assert d.action == Action.SKIP
    assert word in d.reason


@pytest.mark.parametrize("state", [HostState.ERROR, HostState.INIT, HostState.DISABLED, HostState.OFFLINE])
def test_host_not_monitored_blocks_everything(host: Host, unknown_vm: Vm, state: HostState) -> None:
    d = decide(unknown_vm, dataclasses.replace(host, state=state), ALL)
    assert d.action == Action.SKIP
    assert "host-reconnect" in d.reason and state.name in d.reason


def test_vm_last_placed_elsewhere_is_not_ours(host: Host, unknown_vm: Vm) -> None:
    other = dataclasses.replace(host, id=7, name="node7")
    d = decide(unknown_vm, other, ALL)
    assert d.action == Action.SKIP
    assert "dummy-host-1" in d.reason


def test_opt_out_wins_over_everything(host: Host, unknown_vm: Vm) -> None:
    vm = _with(unknown_vm, user_template={"ONE_HOOKS_RECOVER": "no", "AUTOSTART": "YES"})
    for settings in (ALL, OPT_IN):
        d = decide(vm, host, settings)
        assert d.action == Action.SKIP and "opted out" in d.reason


def test_opt_in_policy(host: Host, unknown_vm: Vm) -> None:
    assert decide(unknown_vm, host, OPT_IN).action == Action.SKIP
    assert "opt-in" in decide(unknown_vm, host, OPT_IN).reason
    yes = _with(unknown_vm, user_template={"one_hooks_recover": "YES"})
    assert decide(yes, host, OPT_IN).action == Action.RESUME
    autostart = _with(unknown_vm, user_template={"AUTOSTART": "yes"})
    assert decide(autostart, host, OPT_IN).action == Action.RESUME


def test_custom_attribute_names(host: Host, unknown_vm: Vm) -> None:
    settings = Settings(opt_attribute="HEAL", priority_attribute="ORDER")
    vm = _with(unknown_vm, user_template={"HEAL": "NO"})
    assert decide(vm, host, settings).action == Action.SKIP
    vm = _with(unknown_vm, user_template={"ORDER": "5", "ONE_HOOKS_RECOVER": "NO"})
    d = decide(vm, host, settings)
    assert d.action == Action.RESUME and d.tier == 5


def test_locked_vm_is_reported_with_the_fix(host: Host, unknown_vm: Vm) -> None:
    d = decide(_with(unknown_vm, lock=2), host, ALL)
    assert d.action == Action.LOCKED
    assert "MANAGE" in d.reason and "onevm unlock 0" in d.reason
    # A lock on a VM that is not a candidate is none of our business.
    d = decide(_with(unknown_vm, lock=1, lcm_state=LcmState.RUNNING), host, ALL)
    assert d.action == Action.SKIP


def test_bad_priority_is_tier_zero_with_a_reason(host: Host, unknown_vm: Vm) -> None:
    d = decide(_with(unknown_vm, user_template={"ONE_HOOKS_PRIORITY": "high"}), host, ALL)
    assert d.action == Action.RESUME and d.tier == 0
    assert "'high' is not an integer" in d.reason


@given(st.integers(min_value=-10**6, max_value=10**6))
def test_integer_priorities_parse(value: int) -> None:
    vm = Vm(1, "x", VmState.ACTIVE, LcmState.UNKNOWN, VmState.ACTIVE, LcmState.RUNNING,
            user_template={"ONE_HOOKS_PRIORITY": f" {value} "})
    assert tier_of(vm, ALL) == (value, "")


def test_plan_orders_tiers_and_keeps_every_vm(host: Host, unknown_vm: Vm, poweroff_vm: Vm) -> None:
    vms = [
        _with(unknown_vm, id=1, user_template={"ONE_HOOKS_PRIORITY": "10"}),
        _with(unknown_vm, id=2),
        _with(poweroff_vm, id=3, user_template={"ONE_HOOKS_PRIORITY": "10"}),
        _action(_with(poweroff_vm, id=4), HistoryAction.POWEROFF),
        _with(unknown_vm, id=5, user_template={"ONE_HOOKS_PRIORITY": "-1"}),
        _with(unknown_vm, id=6, lock=4),
    ]
    p = plan(host, reversed(vms), ALL)
    assert [d.vm_id for d in p.decisions] == [1, 2, 3, 4, 5, 6]
    assert [[d.vm_id for d in tier] for tier in p.tiers] == [[1, 3], [2], [5]]
    assert [d.vm_id for d in p.locked] == [6]
    assert all(d.line().startswith(f"VM {d.vm_id} ") for d in p.decisions)


def test_is_candidate_matches_decide(host: Host, unknown_vm: Vm, poweroff_vm: Vm) -> None:
    cases = [unknown_vm, poweroff_vm, _action(poweroff_vm, HistoryAction.POWEROFF),
             _with(unknown_vm, lcm_state=LcmState.RUNNING), _with(unknown_vm, history=None)]
    for vm in cases:
        assert is_candidate(vm, host, ALL) == (decide(vm, host, ALL).action == Action.RESUME)


def test_never_deployed_vm(host: Host) -> None:
    vm = Vm(9, "new", VmState.PENDING, LcmState.LCM_INIT, VmState.PENDING, LcmState.LCM_INIT)
    d = decide(vm, host, ALL)
    assert d.action == Action.SKIP and "never deployed" in d.reason


def test_history_host_matches_by_id(host: Host, unknown_vm: Vm) -> None:
    # Same name, different ID: a re-created host is another host.
    moved = _with(unknown_vm, history=History(3, 4, host.name, HistoryAction.NONE))
    assert decide(moved, host, ALL).action == Action.SKIP
