"""The iSCSI gate against the node stand-in: locally through ``env`` and through a real sshd.

Clock and sleep are fakes passed as parameters: the waits are asserted exactly.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, List

import pytest

from one_hooks.config import IscsiSection
from one_hooks.node.gate import Gate, describe
from one_hooks.node.iscsi import Status
from one_hooks.node.runner import Node, Runner
from tests.counting_node import CountingNode

ROOT = Path(__file__).resolve().parent.parent
HEALTHY_IQN = "iqn.1992-04.com.emc:cx.apm00191923511.a4"
HEALTHY = "* session-P3 session-P3-healthy\n* node node-healthy\n"
COMES_BACK = "* session-P3 session-P1-failed 3 session-P3-healthy\n* node node-healthy\n"
REAL_ISCSIADM = "/usr/sbin/iscsiadm"


class FakeClock:
    """Monotonic and wall clocks that only move when the gate sleeps."""

    def __init__(self) -> None:
        self.t = 0.0
        self.waits: List[float] = []

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return 1_800_000_000.0 + self.t

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.t += seconds


def make_gate(standin: Any, scenario: str, state_dir: Path, clock: FakeClock, iscsiadm: str = "sudo -n iscsiadm",
              **options: Any) -> Gate:
    """A gate on ``standin`` playing ``scenario``; section options default to the quiet ones."""
    standin.set_scenario(scenario)
    settings = dict(check_by_path=False, check_multipath="no", cache_ttl=0.0, retry_interval=5.0, deadline=60.0)
    settings.update(options)
    node = CountingNode(Runner(), standin.command, 20.0)
    return Gate(node, IscsiSection(**settings), iscsiadm.split(), str(state_dir),  # type: ignore[arg-type]
                clock=clock.now, sleep=clock.sleep, wall=clock.wall)


def session_calls(standin: Any) -> int:
    return sum(1 for c in standin.calls() if c[1] == "iscsiadm" and c[2] == "-m session -P 3")


# --- one look -----------------------------------------------------------------


def test_healthy_capture_passes_and_names_the_target(local_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    verdict = make_gate(local_node, HEALTHY, tmp_path / "state", clock).check_once("node-1")
    assert verdict.status is Status.HEALTHY, verdict
    assert [(t.target, t.portal, t.ok) for t in verdict.targets] == [(HEALTHY_IQN, "10.1.53.160:3260", True)]
    assert verdict.checked_at == clock.wall()
    assert [c[1:] for c in local_node.calls()] == [
        ["sudo", "-n iscsiadm -m session -P 3"], ["iscsiadm", "-m session -P 3"],
        ["sudo", "-n iscsiadm -m node"], ["iscsiadm", "-m node"]]
    assert {c[0] for c in local_node.calls()} == {"node-1"}


def test_free_session_is_broken_naming_its_portal(local_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    verdict = make_gate(local_node, "* session-P3 session-P3-free\n", tmp_path, FakeClock()).check_once("n")
    assert verdict.status is Status.BROKEN
    assert len(verdict.problems) == 1 and "10.8.100.6:3260 (SID 806): session state FREE" in verdict.problems[0]


def test_failed_session_is_broken_naming_iqn_and_portal(local_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    scenario = "* session-P3 session-P1-failed\n* node node-failed\n"
    verdict = make_gate(local_node, scenario, tmp_path, FakeClock()).check_once("n")
    assert verdict.status is Status.BROKEN
    assert verdict.problems == ("target iqn.2000-01.example:tgt0 at 192.0.2.10:3260 (SID 3): "
                                "session state FAILED, connection state TRANSPORT WAIT",)


def test_node_record_without_session_breaks_the_gate(local_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    scenario = "* session-P3 session-P3-healthy\n* node node-openstack\n"
    verdict = make_gate(local_node, scenario, tmp_path, FakeClock()).check_once("n")
    assert verdict.problems == ("target iqn.2010-10.org.openstack:volume at 192.168.121.250:3260: no session",)
    relaxed = make_gate(local_node, scenario, tmp_path, FakeClock(), require_node_records=False)
    assert relaxed.check_once("n").healthy
    assert not any(c[2] == "-m node" for c in local_node.calls())


def test_required_target_with_no_sessions_at_all(local_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gate = make_gate(local_node, "", tmp_path, FakeClock(), required_targets=("iqn.2000-01.example:data",))
    verdict = gate.check_once("n")
    assert verdict.status is Status.BROKEN and verdict.problems == ("target iqn.2000-01.example:data: no session",)


def test_no_sessions_and_nothing_expected_is_healthy_with_a_note(local_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    verdict = make_gate(local_node, "", tmp_path, FakeClock()).check_once("n")
    assert verdict.healthy and "no iSCSI session on this host and none expected" in verdict.notes


def test_gate_off_says_so_and_asks_nothing(local_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gate = make_gate(local_node, "* session-P3 session-P3-free\n", tmp_path, FakeClock(), check=False)
    verdict = gate.check_once("n")
    assert verdict.healthy and verdict.notes == ("iSCSI gate is off ([iscsi] check = no)",)
    assert local_node.calls() == []


def test_sudo_refused_is_unknown_with_the_sudoers_hint_and_not_waited_on(local_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    verdict = make_gate(local_node, "* sudo sudo-refused\n", tmp_path, clock).wait_healthy("n")
    assert verdict.status is Status.UNKNOWN
    assert verdict.problems[0].startswith("permission denied") and "NOPASSWD" in verdict.problems[0]
    assert clock.waits == []


def test_refused_host_name_is_unknown_and_not_waited_on(local_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    verdict = make_gate(local_node, HEALTHY, tmp_path, clock).wait_healthy("-oProxyCommand=id")
    assert verdict.status is Status.UNKNOWN and "refusing host name" in verdict.problems[0]
    assert clock.waits == [] and local_node.calls() == []


def test_unparsable_output_is_unknown_never_healthy(local_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "garbage.out").write_text("<html><body>502 Bad Gateway</body></html>\n")
    verdict = make_gate(local_node, f"* session-P3 {tmp_path / 'garbage'}\n", tmp_path, FakeClock()).check_once("n")
    assert verdict.status is Status.UNKNOWN
    problem = verdict.problems[0]
    assert problem.startswith("cannot tell: iscsiadm -m session -P: line 1") and "502" in problem


def test_iscsiadm_error_exit_is_unknown(local_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "err.err").write_text("iscsiadm: Could not get list of targets from firmware. (err 29)\n")
    (tmp_path / "err.rc").write_text("29\n")
    verdict = make_gate(local_node, f"* node {tmp_path / 'err'}\n", tmp_path, FakeClock()).check_once("n")
    assert verdict.status is Status.UNKNOWN and "iscsiadm -m node exited 29" in verdict.problems[0]


def test_multipath_faulty_paths_break_the_gate(local_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    scenario = HEALTHY + "* multipath multipath-faulty\n"
    verdict = make_gate(local_node, scenario, tmp_path, FakeClock(), check_multipath="auto").check_once("n")
    assert verdict.status is Status.BROKEN and len(verdict.problems) == 4
    assert "path sdaq (6:0:4:13): failed faulty running" in verdict.problems[0]
    assert ["sudo", "-n multipath -ll"] in [c[1:] for c in local_node.calls()]
    healthy = make_gate(local_node, HEALTHY + "* multipath multipath-healthy\n", tmp_path, FakeClock(),
                        check_multipath="yes")
    assert healthy.check_once("n").healthy


def test_real_node_tools_on_this_machine(tmp_path: Path) -> None:
    """The whole gate with the real iscsiadm, find and multipath of this machine, no stand-in."""
    if not os.access(REAL_ISCSIADM, os.X_OK) or not os.access("/usr/sbin/multipath", os.X_OK):
        pytest.skip("needs open-iscsi and multipath-tools installed")
    probe = Runner(timeout=30).run(["/usr/sbin/multipath", "-ll"], ok_codes=range(256))
    if probe.returncode == 0:
        pytest.skip("device-mapper multipath works on this machine: the 'not in use' path cannot be observed")
    node = Node(Runner(), "env ONE_HOOKS_NODE={host} PATH=/usr/sbin:/usr/bin:/sbin:/bin", 30.0)
    clock = FakeClock()

    def gate(mode: str) -> Gate:
        section = IscsiSection(check_multipath=mode, cache_ttl=0.0)
        return Gate(node, section, [REAL_ISCSIADM], str(tmp_path), clock=clock.now, sleep=clock.sleep,
                    wall=clock.wall, by_path_dir=str(tmp_path / "no-by-path"))

    verdict = gate("auto").check_once("here")
    if verdict.targets:
        pytest.skip("this machine has real iSCSI sessions")
    assert verdict.healthy, verdict
    assert any(n.startswith("multipath not checked") for n in verdict.notes)
    forced = gate("yes").check_once("here")
    assert forced.status is Status.UNKNOWN and "multipath -ll exited" in forced.problems[0]


def test_dangling_by_path_links_found_by_real_find(local_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    by_path = tmp_path / "by-path"
    by_path.mkdir()
    (tmp_path / "sdb").write_text("")
    (by_path / "ip-10.1.53.160:3260-iscsi-iqn.1992-04.com.emc:cx.a4-lun-1").symlink_to(tmp_path / "sdb")
    (by_path / "ip-10.0.0.9:3260-iscsi-iqn.2000-01.example:gone-lun-3").symlink_to(tmp_path / "sdz")
    (by_path / "pci-0000:00:1f.2-ata-1").symlink_to(tmp_path / "sda")  # dangling, but not iSCSI
    gate = make_gate(local_node, HEALTHY, tmp_path, FakeClock(), check_by_path=True)
    gate.by_path_dir = str(by_path)
    verdict = gate.check_once("n")
    assert verdict.problems == (f"dangling link {by_path}/ip-10.0.0.9:3260-iscsi-iqn.2000-01.example:gone-lun-3 "
                                "(target iqn.2000-01.example:gone at 10.0.0.9:3260, LUN 3)",)
    gate.by_path_dir = str(tmp_path / "absent")  # no by-path directory: no iSCSI disk at all
    assert gate.check_once("n").healthy


# --- waiting for sessions to come back --------------------------------------------


def test_sessions_that_come_back_within_the_deadline(local_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    verdict = make_gate(local_node, COMES_BACK, tmp_path, clock, deadline=300.0).wait_healthy("node-2")
    assert verdict.healthy
    assert clock.waits == [5.0, 10.0, 20.0]
    assert session_calls(local_node) == 4


def test_still_broken_at_the_deadline_names_the_targets(local_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    scenario = "* session-P3 session-P1-failed 50 session-P3-healthy\n* node node-failed\n"
    verdict = make_gate(local_node, scenario, tmp_path, clock, deadline=60.0).wait_healthy("node-2")
    assert verdict.status is Status.BROKEN
    assert clock.waits == [5.0, 10.0, 20.0, 25.0]  # the last wait is cut to end at the deadline
    assert "iqn.2000-01.example:tgt0 at 192.0.2.10:3260" in verdict.problems[0]
    assert "still BROKEN after 60 s and 5 look(s) ([iscsi] deadline 60 s)" in verdict.notes
    assert session_calls(local_node) == 5


def test_waits_grow_to_thirty_seconds(local_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    scenario = "* session-P3 session-P1-failed\n"
    make_gate(local_node, scenario, tmp_path, clock, deadline=130.0, require_node_records=False).wait_healthy("n")
    assert clock.waits == [5.0, 10.0, 20.0, 30.0, 30.0, 30.0, 5.0]


def test_unreachable_node_is_unknown_and_retried_until_the_deadline(tmp_path: Path) -> None:
    clock = FakeClock()
    node = Node(Runner(), "/nonexistent/one-hooks-test/ssh {host}", 5.0)
    gate = Gate(node, IscsiSection(deadline=20.0, retry_interval=5.0, cache_ttl=0.0), ["iscsiadm"],
                str(tmp_path), clock=clock.now, sleep=clock.sleep, wall=clock.wall)
    verdict = gate.wait_healthy("n")
    assert verdict.status is Status.UNKNOWN and "no such program" in verdict.problems[0]
    assert clock.waits == [5.0, 10.0, 5.0]


# --- the shared verdict -----------------------------------------------------------------


def test_healthy_verdict_is_shared_within_the_ttl_only(local_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    first = make_gate(local_node, HEALTHY, tmp_path, clock, cache_ttl=30.0)
    assert first.check_once("node-1").healthy
    clock.t += 29
    second = make_gate(local_node, HEALTHY, tmp_path, clock, cache_ttl=30.0)  # set_scenario clears the log
    verdict = second.check_once("node-1")
    assert verdict.healthy and verdict.notes[-1] == "verdict shared from a check 29 s ago (cache_ttl 30 s)"
    assert second.node.sessions_opened == {} and local_node.calls() == []
    assert second.check_once("node-2").healthy and second.node.sessions_opened == {"node-2": 2}
    clock.t += 2
    assert second.check_once("node-1").healthy
    assert second.node.sessions_opened["node-1"] == 2  # expired: asked again


def test_broken_verdicts_are_not_shared(local_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gate = make_gate(local_node, "* session-P3 session-P3-free\n", tmp_path, FakeClock(), cache_ttl=30.0)
    gate.check_once("n")
    gate.check_once("n")
    assert session_calls(local_node) == 2


def test_cache_file_name_hides_the_host_name_and_bad_files_are_ignored(local_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    host = "a/../b; $(touch x)"
    state = tmp_path / "state"
    gate = make_gate(local_node, HEALTHY, state, FakeClock(), cache_ttl=30.0)
    assert gate.check_once(host).healthy
    [cache] = [p for p in state.iterdir() if p.suffix == ".json"]
    assert cache.name.startswith("iscsi-verdict-") and json.loads(cache.read_text())["host"] == host
    cache.write_text("{not json")
    assert gate.check_once(host).healthy and gate.node.sessions_opened == {host: 4}


def test_unwritable_state_dir_still_checks_and_says_so(local_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "file").write_text("")
    gate = make_gate(local_node, HEALTHY, tmp_path / "file" / "state", FakeClock(), cache_ttl=30.0)
    verdict = gate.check_once("n")
    assert verdict.healthy and "is not writable" in verdict.notes[-1]


def test_describe_lists_targets_problems_and_notes(local_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    scenario = "* session-P3 session-P3-healthy\n* node node-openstack\n"
    lines = describe(make_gate(local_node, scenario, tmp_path, FakeClock()).check_once("node-1"))
    assert lines[0] == "host node-1: iSCSI BROKEN"
    assert lines[1].startswith(f"  ok      {HEALTHY_IQN} at 10.1.53.160:3260: SID 1: LOGGED_IN")
    assert lines[2] == "  problem target iqn.2010-10.org.openstack:volume at 192.168.121.250:3260: no session"


# --- through a real sshd ------------------------------------------------------------------


def test_real_ssh_healthy_broken_and_come_back(sshd_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert make_gate(sshd_node, HEALTHY, tmp_path, FakeClock()).check_once("node-1").healthy
    free = make_gate(sshd_node, "* session-P3 session-P3-free\n", tmp_path, FakeClock()).check_once("node-1")
    assert free.status is Status.BROKEN and "10.8.100.6:3260" in free.problems[0]
    clock = FakeClock()
    back = make_gate(sshd_node, COMES_BACK, tmp_path, clock, deadline=300.0,
                     require_node_records=False).wait_healthy("node-1")
    assert back.healthy and clock.waits == [5.0, 10.0, 20.0]


def test_real_ssh_wrong_port_and_sudo_refused_are_unknown(sshd_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gate = make_gate(sshd_node, HEALTHY, tmp_path, FakeClock())
    gate.node.command = sshd_node.command.replace(f"-p {sshd_node.port}", "-p 1")
    verdict = gate.check_once("node-1")
    assert verdict.status is Status.UNKNOWN and "ssh failed" in verdict.problems[0]
    refused = make_gate(sshd_node, "* sudo sudo-refused\n", tmp_path, FakeClock()).check_once("node-1")
    assert refused.status is Status.UNKNOWN and "a password is required" in refused.problems[0]


@pytest.mark.parametrize("template", ["node; touch {marker}", "$(touch {marker})", "`touch {marker}`",
                                      "node with space", "n'o\"de"])
def test_real_ssh_metachar_host_names_are_unknown_and_run_nothing(sshd_node, tmp_path: Path, template: str) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "pwned"
    verdict = make_gate(sshd_node, HEALTHY, tmp_path, FakeClock()).check_once(template.format(marker=marker))
    assert verdict.status is Status.UNKNOWN  # OpenSSH refuses such destination names itself
    assert not marker.exists() and sshd_node.calls() == []


CHILD = """
import json, sys
from one_hooks.config import IscsiSection
from one_hooks.node.gate import Gate
from one_hooks.node.runner import Runner
from tests.counting_node import CountingNode
command, state_dir, host = sys.argv[1:4]
node = CountingNode(Runner(), command, 20.0)
section = IscsiSection(check_by_path=False, check_multipath="no", cache_ttl=30.0)
verdict = Gate(node, section, ["sudo", "-n", "iscsiadm"], state_dir).check_once(host)
print(json.dumps({"status": verdict.status.value, "sessions": node.sessions_opened}))
"""


def run_children(sshd_node: Any, state: Path, count: int) -> List[dict]:  # type: ignore[type-arg]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, sshd_node.command, str(state), "node-9"],
                              stdout=subprocess.PIPE, env=env, cwd=str(ROOT)) for _ in range(count)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * count
    return [json.loads(out) for out in outputs]


def test_real_ssh_concurrent_processes_share_one_session(sshd_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sshd_node.set_scenario(HEALTHY)
    results = run_children(sshd_node, tmp_path / "state", 6)
    assert [r["status"] for r in results] == ["HEALTHY"] * 6
    assert session_calls(sshd_node) == 1  # one process asked the node; five read its verdict
    assert sorted(sum(r["sessions"].values()) for r in results) == [0, 0, 0, 0, 0, 2]
    [later] = run_children(sshd_node, tmp_path / "state", 1)  # another process within the TTL
    assert later == {"status": "HEALTHY", "sessions": {}}
    assert session_calls(sshd_node) == 1


def test_hung_node_command_is_unknown(tmp_path: Path) -> None:
    hung = tmp_path / "ssh"
    hung.write_text("#!/bin/sh\n# an ssh that never answers (dead node, no ConnectTimeout)\nexec sleep 60\n")
    hung.chmod(0o755)
    node = Node(Runner(), f"{hung} {{host}}", 0.3)
    gate = Gate(node, IscsiSection(cache_ttl=0.0), ["iscsiadm"], str(tmp_path))
    verdict = gate.check_once("n")
    assert verdict.status is Status.UNKNOWN and "did not finish within 0.3 s" in verdict.problems[0]


def lock_holders(lock: Path) -> "tuple[int, int]":
    """(holders, waiters) of flocks on ``lock``, read from the kernel's /proc/locks."""
    if not lock.exists():
        return 0, 0
    inode = f":{lock.stat().st_ino}"
    rows = [line.split() for line in Path("/proc/locks").read_text().splitlines()]
    mine = [row for row in rows if len(row) > 3 and row[-3].endswith(inode)]
    waiting = sum(1 for row in mine if row[1] == "->")
    return len(mine) - waiting, waiting


def wait_for(predicate: Any, what: str) -> None:
    """Poll (bounded) for a state of other processes; fail naming it if it never comes."""
    for _ in range(600):
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def test_waiting_processes_take_the_verdict_of_the_one_that_asked(local_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if not Path("/proc/locks").exists():
        pytest.skip("needs /proc/locks to see which processes wait on the host lock")
    local_node.set_scenario("* session-P3 session-P3-free\n")  # BROKEN: shared only with those waiting
    state, go = tmp_path / "state", tmp_path / "go"
    held = tmp_path / "held-ssh"
    held.write_text(f"#!/bin/sh\n# a node command that answers only once the test says go\n"
                    f"while [ ! -e {go} ]; do sleep 0.05; done\nexec \"$@\"\n")
    held.chmod(0o755)
    lock = Path(Gate(Node(Runner(), "x", 1.0), IscsiSection(), [], str(state)).cache_path("node-9")[:-5] + ".lock")
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def child(command: str) -> "subprocess.Popen[bytes]":
        return subprocess.Popen([sys.executable, "-c", CHILD, command, str(state), "node-9"],
                                stdout=subprocess.PIPE, env=env, cwd=str(ROOT))

    first = child(f"{held} {local_node.command}")
    wait_for(lambda: lock_holders(lock) == (1, 0), "the first process to hold the host lock")
    others = [child(local_node.command) for _ in range(4)]
    wait_for(lambda: lock_holders(lock) == (1, 4), "four processes waiting on the host lock")
    go.write_text("")
    results = [json.loads(p.communicate(timeout=120)[0]) for p in [first] + others]
    assert [r["status"] for r in results] == ["BROKEN"] * 5
    assert session_calls(local_node) == 1
    assert [sum(r["sessions"].values()) for r in results] == [2, 0, 0, 0, 0]
    [later] = [json.loads(child(local_node.command).communicate(timeout=120)[0])]
    assert later["status"] == "BROKEN" and session_calls(local_node) == 2  # a later look asks again
