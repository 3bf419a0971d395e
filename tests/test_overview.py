"""recovery/overview: which VMs are down, why, and what needs the operator (pure, on model objects)."""
from __future__ import annotations

from typing import Optional

from one_hooks.oned.model import History, HistoryAction, Host, HostState, LcmState, Vm, VmState
from one_hooks.recovery.overview import classify, overview
from one_hooks.recovery.policy import Settings
from one_hooks.recovery.records import HostRecord, VmEntry
from one_hooks.recovery.report import Outcome

S = Settings()
UP = Host(1, "node-1", HostState.MONITORED, HostState.MONITORED, vm_ids=(10, 11))
DOWN = Host(2, "node-2", HostState.ERROR, HostState.MONITORED, vm_ids=(20,))


def vm(vm_id: int, state: VmState = VmState.ACTIVE, lcm: LcmState = LcmState.UNKNOWN, host: Host = UP,
       action: HistoryAction = HistoryAction.NONE, lock: Optional[int] = None, **attrs: str) -> Vm:
    return Vm(vm_id, f"vm-{vm_id}", state, lcm, state, lcm, history=History(0, host.id, host.name, action),
              user_template=attrs, lock=lock)


def last(outcome: Outcome, reason: str = "why") -> VmEntry:
    return VmEntry(0, "v", outcome.name, reason)


def test_running_and_booting_vms_are_not_down() -> None:
    assert classify(vm(10, lcm=LcmState.RUNNING), UP, None, None, S) is None
    assert classify(vm(10, lcm=LcmState.BOOT_UNKNOWN), UP, last(Outcome.FAILED), None, S) is None
    assert classify(vm(10, VmState.POWEROFF, LcmState.LCM_INIT, action=HistoryAction.POWEROFF), UP,
                    last(Outcome.FAILED), None, S) is None, "a user powered it off since"


def test_a_candidate_nobody_recovers_needs_the_operator() -> None:
    down = classify(vm(10), UP, None, None, S)
    assert down is not None and down.attention
    assert down.why == "still down: left UNKNOWN by the outage; when fixed, run 'one-hooks recover --host node-1'"
    monitor = classify(vm(11, VmState.POWEROFF, LcmState.LCM_INIT, action=HistoryAction.MONITOR), UP, None, None, S)
    assert monitor is not None and monitor.attention


def test_waiting_watched_and_deliberate_are_not_counted() -> None:
    waiting = classify(vm(20, host=DOWN), DOWN, None, None, S)
    assert waiting is not None and not waiting.attention and "waiting for host node-2 (ERROR)" in waiting.why
    watched = classify(vm(10), UP, None, 2e9, S)
    assert watched is not None and not watched.attention
    opted = classify(vm(10, ONE_HOOKS_RECOVER="NO"), UP, None, None, S)
    assert opted is not None and not opted.attention and opted.why.startswith("left down on purpose: opted out")


def test_locked_and_problem_outcomes_say_what_to_do() -> None:
    locked = classify(vm(10, lock=2), UP, last(Outcome.LOCKED), None, S)
    assert locked is not None and locked.attention and "onevm unlock 10" in locked.why
    gave_up = classify(vm(10), UP, last(Outcome.GAVE_UP, "gave up after 3 attempts"), None, S)
    assert gave_up is not None and gave_up.why.startswith("gave up: gave up after 3 attempts; when fixed, run")
    failed = classify(vm(10, VmState.FAILED, LcmState.LCM_INIT), UP, last(Outcome.FAILED, "deploy failed"), None, S)
    assert failed is not None and failed.attention and failed.why.startswith("failed: deploy failed")
    gone = classify(vm(30, host=Host(9, "gone", HostState.MONITORED, HostState.MONITORED)), None, None, None, S)
    assert gone is not None and gone.attention and "its host (ID 9) is not in oned" in gone.why


def test_overview_counts_per_host_and_flags_a_failed_gate_only_while_its_vms_are_down() -> None:
    record = HostRecord(1, "node-1", 1.0, 2.0, gate="BROKEN", gate_problems=("no session",),
                        vms=(VmEntry(10, "vm-10", "GATE", "iSCSI gate did not pass on node-1"),))
    view = overview([UP, DOWN], [vm(10), vm(11, lcm=LcmState.RUNNING), vm(20, host=DOWN)], {1: record}, {}, {}, S)
    assert [(h.host.name, h.down) for h in view.hosts] == [("node-1", 1), ("node-2", 1)]
    assert [d.vm.id for d in view.down] == [10, 20]
    assert view.attention == (
        "host node-1: its last iSCSI gate said BROKEN (no session); VMs held back: 10: fix the storage, then run "
        "'one-hooks recover --host node-1'",)
    assert view.down[0].attention and view.down[0].why.startswith("gate failed: iSCSI gate did not pass")
    fixed = overview([UP], [vm(10, lcm=LcmState.RUNNING)], {1: record}, {}, {}, S)
    assert fixed.down == () and fixed.attention == ()
