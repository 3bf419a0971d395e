"""Fuzz the hook entry points with forged payloads: oned's word, not the payload's, decides.

A payload is what onehem passed at the time of the event; by the time the
hook runs, oned may say otherwise, and a payload may be stale, replayed, sent
to the wrong hook or simply wrong. Hypothesis forges payloads from the real
recorded ones (IDs, states, previous states, last history host and action,
lock, names) and feeds them to each of the three entry points
(``hooks.entry.handle``, the code behind ``one-hooks hook EVENT``), with the
simulator's state machine behind the oned door (``CloudDoor`` of
``test_recovery``: the simulated oned's own XML through the real parser).

Whatever the payload says, only the VMs that oned itself shows as left down
by the outage on a MONITORED host may be resumed, each at most once; the
hook returns 0, 1 or 2, or raises only one-hooks' own errors (which the
command's boundary turns into one line).
"""
from __future__ import annotations

import base64
import io
import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from one_hooks.audit import Reporter
from one_hooks.config import Config, IscsiSection, LogSection, RecoverySection
from one_hooks.errors import OneHooksError
from one_hooks.hooks.entry import EVENTS, handle
from one_hooks.oned import xmlparse
from .test_recovery import CloudDoor, FakeClock, fake_cloud

DATA = Path(__file__).resolve().parent / "data" / "fuzz"
VM_SEEDS = [base64.b64decode((DATA / f"{n}.b64").read_bytes()).decode() for n in (
    "vm-unknown-prev-running", "vm-unknown-prev-boot-unknown", "vm-poweroff-monitor")]
HOST_SEED = base64.b64decode((DATA / "host-monitored-prev-error.b64").read_bytes()).decode()

#: oned's truth in every example: host 0 MONITORED, host 1 still ERROR.
#: VM 0 UNKNOWN on host 0 and VM 4 POWEROFF(monitor) on host 0 are the only candidates;
#: VM 1 RUNNING on host 2, VM 2 powered off by its user, VM 3 UNKNOWN on host 1, still in ERROR.
CANDIDATES = {0, 4}


def _world():
    clock = FakeClock()
    cloud = fake_cloud(clock, boot_seconds=0.0)
    h0, h1, h2 = cloud.add_host("dummy-host-1"), cloud.add_host("node-2"), cloud.add_host("node-3")
    v0, v1, v2 = cloud.add_vm("vm-outage-test", h0), cloud.add_vm("web", h2), cloud.add_vm("db", h0)
    v3, v4 = cloud.add_vm("far", h1), cloud.add_vm("lost", h0)
    cloud.action("poweroff", v2)
    clock.settle()
    for host in (h0, h1):
        cloud.host_error(host)
    cloud.host_monitored(h0)
    cloud.reconcile(h0, set())        # v0, v4 -> POWEROFF (monitor); v2 stays the user's
    cloud.action("resume", v0)
    clock.settle()
    cloud.host_error(h0)              # a second cut: v0 UNKNOWN, and no VM report this time
    cloud.host_monitored(h0)
    clock.settle()
    return cloud, clock, (v0, v1, v2, v3, v4)


def _sub(text: str, tag: str, value: str) -> str:
    return re.sub(rf"<{tag}>[^<]*</{tag}>", f"<{tag}>{value}</{tag}>", text, count=1)


_ints = st.sampled_from(["0", "1", "2", "3", "4", "7", "99", "-1"])
_vm_states = st.sampled_from(["3", "8", "4", "9", "6", "1"])
_lcm_states = st.sampled_from(["0", "3", "16", "18", "19", "20", "2"])
_actions = st.sampled_from(["44", "19", "20", "11", "0", "2"])
_host_states = st.sampled_from(["2", "3", "4", "8", "0"])


@st.composite
def _payloads(draw: st.DrawFn) -> tuple:
    event = draw(st.sampled_from(EVENTS))
    if event == "host-reconnect" and draw(st.booleans()):
        text = HOST_SEED
        for tag, values in (("ID", st.sampled_from(["0", "1", "5"])), ("STATE", _host_states),
                            ("PREV_STATE", _host_states), ("NAME", st.sampled_from(
                                ["dummy-host-1", "node-2", "x y", "a\nb"]))):
            text = _sub(text, tag, draw(values))
    else:
        text = draw(st.sampled_from(VM_SEEDS))
        for tag, values in (("ID", _ints), ("STATE", _vm_states), ("LCM_STATE", _lcm_states),
                            ("PREV_STATE", _vm_states), ("PREV_LCM_STATE", _lcm_states),
                            ("HID", _ints), ("ACTION", _actions)):
            if draw(st.booleans()):
                text = _sub(text, tag, draw(values))
        if draw(st.booleans()):
            text = text.replace("<USER_TEMPLATE/>",
                                "<USER_TEMPLATE><ONE_HOOKS_RECOVER>YES</ONE_HOOKS_RECOVER></USER_TEMPLATE>")
    return event, base64.b64encode(text.encode())


@settings(max_examples=1500, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(case=_payloads())
def test_forged_payloads_never_resume_what_oned_says_to_leave(case: tuple) -> None:
    event, payload = case
    _run_and_check(event, payload)


def _run_and_check(event: str, payload: bytes) -> list:
    """Run one hook on a fresh world; check the invariants; the VMs it resumed."""
    cloud, clock, _ = _world()
    try:
        door = CloudDoor(cloud)

        with tempfile.TemporaryDirectory() as tmp:
            config = Config(
                recovery=RecoverySection(state_dir=tmp, settle_seconds=0, attempts=2, retry_delay=1,
                                         wait_running=30),
                iscsi=IscsiSection(check=False), log=LogSection(file=f"{tmp}/log"))
            out = io.StringIO()
            before = len(cloud.action_log)
            try:
                code = handle(event, xmlparse.decode_payload(payload), config, Reporter(out=out),
                              oned=door, clock=clock, sleep=clock.sleep, wall=clock)
            except OneHooksError as exc:
                code = exc.exit_code
            assert code in (0, 1, 2)
            resumed = [vm for _, vm, action, _ in cloud.action_log[before:] if action == "resume"]
            assert set(resumed) <= CANDIDATES, (event, resumed, out.getvalue())
            assert len(resumed) == len(set(resumed)), (event, resumed)
            assert [a for _, vm, a, _ in cloud.action_log if vm == 2] == ["poweroff"]
            for line in out.getvalue().splitlines():
                assert line.strip(), "empty decision line"
            return resumed
    finally:
        cloud.timeline.stop()


def test_unforged_payloads_do_resume_the_candidates() -> None:
    """The invariant above is not vacuous: real payloads lead to real resumes."""
    unknown = base64.b64encode(VM_SEEDS[0].encode())
    assert _run_and_check("vm-unknown", unknown) == [0]
    poweroff = base64.b64encode(_sub(VM_SEEDS[2], "ID", "4").encode())
    assert _run_and_check("vm-poweroff", poweroff) == [4]
    assert sorted(_run_and_check("host-reconnect", base64.b64encode(HOST_SEED.encode()))) == [0, 4]


def test_the_world_is_what_the_fuzz_assumes() -> None:
    cloud, _, (v0, v1, v2, v3, v4) = _world()
    try:
        names = {vm_id: cloud.tables.vms[vm_id].state_name for vm_id in (v0, v1, v2, v3, v4)}
        assert names == {v0: "ACTIVE/UNKNOWN", v1: "ACTIVE/RUNNING", v2: "POWEROFF/LCM_INIT",
                         v3: "ACTIVE/UNKNOWN", v4: "POWEROFF/LCM_INIT"}, names
        assert cloud.tables.vms[v4].last.action == 44 and cloud.tables.vms[v2].last.action == 19
        assert [h.state.name for h in cloud.tables.hosts.values()] == ["MONITORED", "ERROR", "MONITORED"]
    finally:
        cloud.timeline.stop()
