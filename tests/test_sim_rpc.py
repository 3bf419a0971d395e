"""The simulated oned over the wire: auth, error codes, the state machine, faults, latency model.

Every call goes through a real XML-RPC client to the sim's loopback server.
"""
from __future__ import annotations

import http.client
import socket
import threading
import time
import xmlrpc.client
from typing import Callable, List

import pytest
from lxml import etree

from one_hooks.oned.model import HistoryAction, HostState, LcmState, VmState
from one_hooks.sim.faults import ACTION, ALLOCATE, AUTHENTICATION, INTERNAL, LOCKED, NO_EXISTS, XML_RPC_API
from one_hooks.sim.lcm import OnedTiming
from one_hooks.sim.server import Latency


class _TimeoutTransport(xmlrpc.client.Transport):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def make_connection(self, host):  # type: ignore[override]
        conn = super().make_connection(host)
        conn.timeout = self.timeout
        return conn


def _client(sim, timeout: float = 10.0) -> xmlrpc.client.ServerProxy:
    return xmlrpc.client.ServerProxy(sim.endpoint, transport=_TimeoutTransport(timeout))


def _cloud(sim):
    ids = {"h1": sim.add_host("node1"), "h2": sim.add_host("node2")}
    ids["a"] = sim.add_vm("a", ids["h1"])
    ids["b"] = sim.add_vm("b", ids["h1"])
    ids["c"] = sim.add_vm("c", ids["h2"])
    return ids


@pytest.fixture
def cloud(sim):
    """node1 with two VMs, node2 with one."""
    return _cloud(sim)


# --- authentication and error codes -------------------------------------------


@pytest.mark.parametrize("session", ["oneadmin:wrong", "nobody:x", "no-colon", ""])
def test_bad_session_is_refused_with_authentication_code(sim, session: str) -> None:
    answer = _client(sim).one.system.version(session)
    assert answer[0] is False and answer[2] == AUTHENTICATION
    assert "authenticated" in answer[1]


def test_good_session_gets_the_version(sim) -> None:
    assert _client(sim).one.system.version(sim.session) == [True, "6.10.5", 0]


def test_missing_objects_answer_no_exists(sim) -> None:
    rpc = _client(sim)
    for answer in (rpc.one.vm.info(sim.session, 42), rpc.one.host.info(sim.session, 42),
                   rpc.one.hook.info(sim.session, 42), rpc.one.cluster.info(sim.session, 42),
                   rpc.one.vm.action(sim.session, "resume", 42)):
        assert answer[0] is False and answer[2] == NO_EXISTS
    assert rpc.one.vm.info(sim.session, 42)[1] == "[one.vm.info] Error getting virtual machine [42]."


def test_unknown_method_is_an_xmlrpc_fault(sim) -> None:
    with pytest.raises(xmlrpc.client.Fault):
        _client(sim).one.vm.frobnicate(sim.session, 1)


def test_wrong_state_actions_are_refused_with_oned_words(sim, cloud) -> None:
    rpc = _client(sim)
    answer = rpc.one.vm.action(sim.session, "resume", cloud["a"])
    assert answer == [False, '[one.vm.action] Error performing action "resume": '
                             "This action is not available for state RUNNING", ACTION]
    sim.host_error(cloud["h1"])
    answer = rpc.one.vm.action(sim.session, "reboot", cloud["a"])  # never from UNKNOWN
    assert answer[2] == ACTION and answer[1].endswith("for state UNKNOWN")
    assert rpc.one.vm.action(sim.session, "frobnicate", cloud["a"])[2] == ACTION
    # a real action oned would accept but the sim does not model: API, not a silent success
    assert rpc.one.vm.action(sim.session, "suspend", cloud["c"])[2] == XML_RPC_API
    assert [entry[2] for entry in sim.action_log] == []


def test_locked_vm_refuses_manage_actions_until_unlocked(sim, cloud) -> None:
    rpc = _client(sim)
    sim.host_error(cloud["h1"])
    assert rpc.one.vm.lock(sim.session, cloud["a"], 1, False) == [True, cloud["a"], 0]
    answer = rpc.one.vm.action(sim.session, "resume", cloud["a"])
    assert answer[0] is False and answer[2] == LOCKED
    vm = etree.fromstring(rpc.one.vm.info(sim.session, cloud["a"])[1].encode())
    assert vm.findtext("LOCK/LOCKED") == "1"
    # ADMIN-level locks do not block MANAGE operations such as resume
    sim.lock_vm(cloud["b"], 3)
    assert rpc.one.vm.action(sim.session, "resume", cloud["b"])[0] is True
    assert rpc.one.vm.unlock(sim.session, cloud["a"])[0] is True
    assert rpc.one.vm.action(sim.session, "resume", cloud["a"])[0] is True


# --- the state machine ----------------------------------------------------------


def test_host_error_moves_only_its_running_vms_to_unknown(sim, cloud) -> None:
    sim.user_poweroff(cloud["b"])
    assert sim.settle(5)
    sim.host_error(cloud["h1"])
    assert sim.host(cloud["h1"]).state == HostState.ERROR
    assert sim.vm(cloud["a"]).lcm_state == LcmState.UNKNOWN
    assert sim.vm(cloud["b"]).state == VmState.POWEROFF  # not RUNNING: untouched
    assert sim.vm(cloud["c"]).lcm_state == LcmState.RUNNING  # other host
    sim.host_monitored(cloud["h1"])
    assert sim.vm(cloud["a"]).lcm_state == LcmState.UNKNOWN  # reconciliation comes later


def test_user_poweroff_marks_history_19_or_20_and_resume_adds_a_record(make_sim) -> None:
    """Actions are accepted at once and applied by oned's LCM queue later (2 s here): the
    answer comes while the VM is still in its old state (this test used to expect the new
    state in the answer, as the instant simulator gave it; a real oned never does)."""
    sim = make_sim(timing=OnedTiming(lcm_base=2.0))
    cloud = _cloud(sim)
    sim.user_poweroff(cloud["a"])
    sim.user_poweroff(cloud["b"], hard=True)
    assert sim.vm(cloud["a"]).lcm_state == LcmState.RUNNING  # accepted, not applied yet
    assert sim.settle(10)
    assert sim.vm(cloud["a"]).history.action == HistoryAction.POWEROFF
    assert sim.vm(cloud["b"]).history.action == HistoryAction.POWEROFF_HARD
    assert _client(sim).one.vm.action(sim.session, "resume", cloud["a"])[0] is True
    assert sim.vm(cloud["a"]).state == VmState.POWEROFF  # accepted, still queued
    booting = []
    while not booting and sim.cloud.timeline.pending():
        vm = sim.vm(cloud["a"])
        if vm.lcm_state == LcmState.BOOT_POWEROFF:
            booting.append(vm)
        time.sleep(0.01)
    assert sim.settle(10)
    # While booting, the new record says resume (11); once RUNNING oned clears it to 0.
    assert booting and booting[0].history.seq == 1 and booting[0].history.action == HistoryAction.RESUME
    vm = sim.vm(cloud["a"])
    assert (vm.state, vm.lcm_state, vm.history.seq, vm.history.action) == (
        VmState.ACTIVE, LcmState.RUNNING, 1, HistoryAction.NONE)


def test_resume_while_host_in_error_falls_back_to_unknown_and_fires_again(sim, cloud) -> None:
    hook = sim.add_hook('NAME=u\nTYPE=state\nRESOURCE=VM\nON=UNKNOWN\nCOMMAND=/bin/true\n')
    sim.host_error(cloud["h1"])
    assert _client(sim).one.vm.action(sim.session, "resume", cloud["a"])[0] is True
    assert sim.settle(5)
    vm = sim.vm(cloud["a"])
    assert vm.lcm_state == LcmState.UNKNOWN and vm.history.seq == 0
    assert "DEPLOY" in vm.user_attr("ERROR")
    again = [e for e in sim.events if e.id == cloud["a"] and e.prev_lcm_state == "BOOT_UNKNOWN"]
    assert [(e.lcm_state, e.hook_ids) for e in again] == [("UNKNOWN", (hook,))]
    assert sim.action_log[-1][1:] == (cloud["a"], "resume", "ACTIVE/UNKNOWN")


def test_failed_deploy_from_poweroff_goes_back_to_poweroff(sim, cloud) -> None:
    sim.host_error(cloud["h1"])
    sim.host_monitored(cloud["h1"])
    sim.reconcile(cloud["h1"], running={cloud["b"]})
    assert sim.vm(cloud["b"]).lcm_state == LcmState.RUNNING
    gone = sim.vm(cloud["a"])
    assert (gone.state, gone.history.action) == (VmState.POWEROFF, HistoryAction.MONITOR)
    sim.fail_deploys(1, host_id=cloud["h1"])
    sim.cloud.action("resume", cloud["a"])
    assert sim.settle(5)
    assert sim.vm(cloud["a"]).state == VmState.POWEROFF
    sim.cloud.action("resume", cloud["a"])
    assert sim.settle(5)
    assert sim.vm(cloud["a"]).lcm_state == LcmState.RUNNING


def test_front_end_down_case_running_vm_goes_straight_to_poweroff_monitor(sim, cloud) -> None:
    sim.reconcile(cloud["h2"], running=set())
    vm = sim.vm(cloud["c"])
    assert (vm.state, vm.history.action) == (VmState.POWEROFF, HistoryAction.MONITOR)


def test_terminate_ends_in_done_and_leaves_the_default_pool(sim, cloud) -> None:
    rpc = _client(sim)
    assert rpc.one.vm.action(sim.session, "terminate-hard", cloud["c"])[0] is True
    assert sim.settle(5)
    assert sim.vm(cloud["c"]).state == VmState.DONE
    ids = lambda xml: sorted(int(i) for i in etree.fromstring(xml.encode()).xpath("VM/ID/text()"))  # noqa: E731
    assert ids(rpc.one.vmpool.info(sim.session, -2, -1, -1, -1)[1]) == [cloud["a"], cloud["b"]]
    assert ids(rpc.one.vmpool.info(sim.session, -2, -1, -1, -2)[1]) == [cloud["a"], cloud["b"], cloud["c"]]
    assert ids(rpc.one.vmpool.infoextended(sim.session, -2, cloud["b"], cloud["b"], -1)[1]) == [cloud["b"]]
    assert ids(rpc.one.vmpool.info(sim.session, -2, -1, -1, int(VmState.DONE))[1]) == [cloud["c"]]
    host = etree.fromstring(rpc.one.host.info(sim.session, cloud["h2"])[1].encode())
    assert host.findall("VMS/ID") == []


def test_templates_update_replace_and_append(sim, cloud) -> None:
    rpc = _client(sim)
    assert rpc.one.host.update(sim.session, cloud["h1"], 'ISCSI = "yes"\n', 1)[0] is True
    assert sim.host(cloud["h1"]).template["ISCSI"] == "yes"
    assert "HOSTNAME" in sim.host(cloud["h1"]).template
    assert rpc.one.host.update(sim.session, cloud["h1"], 'ONLY = "x"\n', 0)[0] is True
    assert dict(sim.host(cloud["h1"]).template) == {"ONLY": "x"}
    assert rpc.one.host.update(sim.session, cloud["h1"], 'BROKEN = "x\n', 0)[2] == INTERNAL
    assert rpc.one.cluster.update(sim.session, 0, 'CPU_MODEL = [ MODEL = "host-passthrough" ]', 1)[0]
    cluster = etree.fromstring(rpc.one.cluster.info(sim.session, 0)[1].encode())
    assert cluster.findtext("TEMPLATE/CPU_MODEL/MODEL") == "host-passthrough"
    assert sorted(int(i) for i in cluster.xpath("HOSTS/ID/text()")) == [cloud["h1"], cloud["h2"]]
    new = rpc.one.host.allocate(sim.session, "node3", "kvm", "kvm", -1)
    assert new[0] is True and sim.host(new[1]).state == HostState.MONITORED


def test_hook_allocate_update_delete_and_their_errors(sim) -> None:
    rpc, s = _client(sim), sim.session
    ok = rpc.one.hook.allocate(s, 'NAME=h\nTYPE=state\nRESOURCE=HOST\nSTATE=ERROR\nCOMMAND=x\n')
    assert ok[0] is True
    assert rpc.one.hook.allocate(s, 'NAME=h\nTYPE=state\nRESOURCE=HOST\nSTATE=ERROR\nCOMMAND=x\n')[2] == ALLOCATE
    assert rpc.one.hook.allocate(s, 'NAME=n\nTYPE=state\nRESOURCE=HOST\nSTATE=ERROR\n')[2] == ALLOCATE
    assert rpc.one.hook.allocate(s, 'NAME=n\nTYPE=state\nRESOURCE=VM\nON=FOO\nCOMMAND=x\n')[2] == ALLOCATE
    assert rpc.one.hook.allocate(s, 'NAME=n\nTYPE=state\nRESOURCE=HOST\nSTATE=BUSY\nCOMMAND=x\n')[2] == ALLOCATE
    assert rpc.one.hook.allocate(s, 'NAME="unterminated\n')[2] == INTERNAL
    # update replaces: it must repeat the state condition
    assert rpc.one.hook.update(s, ok[1], 'COMMAND=y\nRESOURCE=HOST\n', 0)[0] is False
    assert rpc.one.hook.update(s, ok[1], 'COMMAND=y\nRESOURCE=HOST\nSTATE=MONITORED\n', 0)[0] is True
    hook = etree.fromstring(rpc.one.hook.info(s, ok[1])[1].encode())
    assert (hook.findtext("TEMPLATE/STATE"), hook.findtext("TEMPLATE/COMMAND")) == ("MONITORED", "y")
    assert rpc.one.hook.delete(s, ok[1]) == [True, ok[1], 0]
    assert etree.fromstring(rpc.one.hookpool.info(s, -2, -1, -1)[1].encode()).findall("HOOK") == []


# --- faults ---------------------------------------------------------------------


def test_injected_error_answers_then_recovers(sim, cloud) -> None:
    sim.inject("one.vm.info", "error", code=INTERNAL, count=2)
    rpc = _client(sim)
    assert [rpc.one.vm.info(sim.session, cloud["a"])[2] for _ in range(3)] == [INTERNAL, INTERNAL, 0]
    assert sim.calls["one.vm.info"] == 3


def test_injected_drop_closes_the_connection_without_answer(sim, cloud) -> None:
    # count=2: xmlrpc.client silently retries a request once when the server hangs up
    sim.inject("*", "drop", count=2)
    with pytest.raises((ConnectionError, http.client.HTTPException, xmlrpc.client.ProtocolError)):
        _client(sim).one.vm.action(sim.session, "poweroff", cloud["a"])
    assert sim.vm(cloud["a"]).lcm_state == LcmState.RUNNING  # nothing was done
    assert _client(sim).one.vm.info(sim.session, cloud["a"])[0] is True


def test_injected_timeout_holds_the_answer_past_the_client_timeout(sim, cloud) -> None:
    sim.inject("one.vm.action", "timeout", hang=30)
    with pytest.raises((socket.timeout, TimeoutError)):
        _client(sim, timeout=0.3).one.vm.action(sim.session, "poweroff", cloud["a"])
    assert sim.vm(cloud["a"]).lcm_state == LcmState.RUNNING


# --- latency model (counted, not timed) -------------------------------------------


def test_latency_splits_each_call_into_parallel_then_serial_sleep(make_sim: Callable) -> None:
    slept: List[float] = []
    sim = make_sim(latency=Latency(serial=0.012, parallel=0.015), sleep=slept.append)
    rpc = _client(sim)
    for _ in range(3):
        rpc.one.system.version(sim.session)
    assert slept == [0.015, 0.012] * 3
    assert sim.rpc.core_entries == 3
    # a refused session costs nothing: oned refuses before the core
    rpc.one.system.version("x:y")
    assert len(slept) == 6


def test_serial_part_admits_one_call_at_a_time_parallel_part_many(make_sim: Callable) -> None:
    parallel = 8
    barrier = threading.Barrier(parallel, timeout=10)
    inside = [0, 0]  # current, max in the serial part
    lock = threading.Lock()
    latency = Latency(serial=0.002, parallel=0.001)

    def sleep(seconds: float) -> None:
        if seconds == latency.parallel:
            barrier.wait()  # all 8 calls must be in the parallel part together
            return
        with lock:
            inside[0] += 1
            inside[1] = max(inside)
        threading.Event().wait(0.001)
        with lock:
            inside[0] -= 1

    sim = make_sim(latency=latency, sleep=sleep)
    host = sim.add_host("n")
    vms = [sim.add_vm(f"v{i}", host) for i in range(parallel)]
    sim.host_error(host)
    results: List[list] = []
    threads = [threading.Thread(target=lambda v=v: results.append(
        _client(sim).one.vm.action(sim.session, "resume", v))) for v in vms]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert [r[0] for r in results] == [True] * parallel
    assert inside[1] == 1
    assert sim.calls["one.vm.action"] == parallel


def test_default_latency_is_the_measured_real_oned() -> None:
    real = Latency()
    assert round(real.serial + real.parallel, 3) == 0.027  # one call after another
    assert max(real.serial, (real.serial + real.parallel) / 8) == pytest.approx(0.012)  # 8 at once


# --- the official binding parses what the sim serves -------------------------------


def test_pyone_parses_every_answer(sim, cloud) -> None:
    pyone = pytest.importorskip("pyone", reason="pyone (the official binding) is not installed")
    sim.add_hook('NAME=h\nTYPE=state\nRESOURCE=HOST\nSTATE=ERROR\nCOMMAND=/bin/true\nTIMEOUT=5\n')
    sim.lock_vm(cloud["b"], 1)
    sim.host_error(cloud["h1"])
    assert sim.settle(5)
    one = pyone.OneServer(sim.endpoint, session=sim.session)
    vm = one.vm.info(cloud["a"])
    assert (vm.STATE, vm.LCM_STATE) == (VmState.ACTIVE, LcmState.UNKNOWN)
    assert one.host.info(cloud["h1"]).STATE == HostState.ERROR
    pool = one.vmpool.infoextended(-2, -1, -1, -1)
    assert sorted(v.ID for v in pool.VM) == sorted([cloud["a"], cloud["b"], cloud["c"]])
    assert [h.NAME for h in one.hookpool.info(-2, -1, -1).HOOK] == ["h"]
    assert one.hook.info(0).HOOKLOG.HOOK_EXECUTION_RECORD[0].EXECUTION_RESULT.CODE == "0"
    assert len(one.vmpool.info(-2, -1, -1, -1).VM) == 3
    with pytest.raises(pyone.OneNoExistsException):
        one.vm.info(99)


def test_module_entry_point_serves_and_takes_monitor_commands() -> None:
    import io

    from one_hooks.sim.__main__ import main

    out = io.StringIO()
    commands = io.StringIO("error 0\nmonitored 0\nreconcile 0 0\nbogus\n")
    assert main(["--port", "0", "--no-latency", "--boot-seconds", "0", "--hosts", "1",
                 "--vms", "2"], stdin=commands, out=out) == 0
    text = out.getvalue()
    assert text.startswith("ONE_XMLRPC=http://127.0.0.1:")
    assert "host 0: MONITORED -> ERROR" in text
    assert "vm 0: ACTIVE/UNKNOWN -> ACTIVE/RUNNING" in text
    assert "vm 1: ACTIVE/SHUTDOWN_POWEROFF -> POWEROFF/LCM_INIT" in text
    assert "commands:" in text and "opennebula" not in text  # the password is not printed


def test_wrong_argument_count_is_an_api_error(sim) -> None:
    answer = _client(sim).one.vm.info(sim.session)
    assert answer[0] is False and answer[2] == XML_RPC_API
