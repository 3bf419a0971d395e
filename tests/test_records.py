"""recovery/records: each host's last recovery, kept for ``one-hooks status``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from one_hooks.recovery import records
from one_hooks.recovery.records import MAX_VMS, HostRecord, VmEntry, combine
from one_hooks.recovery.report import Outcome, Report, VmResult

REPO = Path(__file__).resolve().parent.parent


def entry(vm_id: int, outcome: Outcome, at: float = 100.0, reason: str = "why") -> VmEntry:
    return VmEntry(vm_id, f"vm-{vm_id}", outcome.name, reason, 1, at)


def result(vm_id: int, outcome: Outcome, host: str = "node-1", reason: str = "why") -> VmResult:
    return VmResult(vm_id, f"vm-{vm_id}", host, "ACTIVE/UNKNOWN", "ACTIVE/RUNNING", outcome, reason, 1)


def test_a_new_episode_replaces_and_a_later_run_adds() -> None:
    first = combine(None, 3, "node-3", "host-reconnect", [entry(1, Outcome.RUNNING), entry(2, Outcome.FAILED)],
                    "HEALTHY", [], 100.0, 90.0, 600.0)
    assert first.counts == {"FAILED": 1, "RUNNING": 1} and first.by == ("host-reconnect",)
    later = combine(first, 3, "node-3", "vm-unknown", [entry(2, Outcome.GAVE_UP, 150.0)], "", [], 150.0, None,
                    600.0)
    assert later.started == 100.0 and later.updated == 150.0 and later.gate == "HEALTHY"
    assert later.counts == {"GAVE_UP": 1, "RUNNING": 1}
    assert later.by == ("host-reconnect", "vm-unknown")
    assert {v.vm_id: v.outcome for v in later.vms} == {1: "RUNNING", 2: "GAVE_UP"}
    # "already handled" or "skipped" do not hide what the process that acted on the VM said
    handled = combine(later, 3, "node-3", "host-reconnect-watch", [entry(2, Outcome.HANDLED, 160.0),
                                                                    entry(1, Outcome.SKIPPED, 160.0),
                                                                    entry(4, Outcome.HANDLED, 160.0)],
                      "", [], 160.0, None, 600.0)
    assert {v.vm_id: v.outcome for v in handled.vms} == {1: "RUNNING", 2: "GAVE_UP", 4: "HANDLED"}
    # a new episode (host-reconnect, recover) starts over, keeping what others wrote since it began
    again = combine(handled, 3, "node-3", "recover", [entry(9, Outcome.RUNNING, 200.0)], "", [], 200.0, 155.0,
                    600.0)
    assert {v.vm_id: v.outcome for v in again.vms} == {4: "HANDLED", 9: "RUNNING"}
    assert again.started == 155.0 and again.counts == {"HANDLED": 1, "RUNNING": 1}
    fresh = combine(handled, 3, "node-3", "recover", [entry(9, Outcome.RUNNING, 200.0)], "", [], 200.0, 190.0,
                    600.0)
    assert [v.vm_id for v in fresh.vms] == [9] and fresh.by == ("recover",) and fresh.gate == ""
    # a run after the window starts over too
    stale = combine(handled, 3, "node-3", "vm-unknown", [entry(9, Outcome.RUNNING, 900.0)], "", [], 900.0, None,
                    600.0)
    assert [v.vm_id for v in stale.vms] == [9]


def test_a_record_stays_bounded_and_keeps_the_problems() -> None:
    many = [entry(n, Outcome.RUNNING, 100.0 + n) for n in range(MAX_VMS + 200)]
    problems = [entry(10_000 + n, Outcome.FAILED, 50.0) for n in range(3)] + [entry(20_000, Outcome.SKIPPED, 1.0)]
    record = combine(None, 1, "n", "recover", many + problems, "", [], 1000.0, 900.0, 600.0)
    assert len(record.vms) == MAX_VMS
    kept = {v.vm_id for v in record.vms}
    assert {10_000, 10_001, 10_002, 20_000} <= kept
    assert record.counts == {"FAILED": 3, "RUNNING": MAX_VMS + 200, "SKIPPED": 1}
    assert len(json.dumps(record.to_dict())) < 150_000


def test_save_and_read_with_real_files(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    report = Report()
    report.add(result(1, Outcome.RUNNING))
    report.add(result(2, Outcome.GATE, reason="iSCSI gate did not pass on node-1"))
    report.add(result(7, Outcome.RUNNING, host="node-2"))
    report.gates["node-1"] = "BROKEN"
    report.problems.append("node-1: iSCSI BROKEN: target iqn.x at 10.0.0.1:3260: no session")
    assert records.save(state, 0, "node-1", report, "recover", 100.0, 90.0, 600.0) is None
    record = records.read(state, 0)
    assert record is not None and record.gate_failed
    assert record.gate_problems == ("target iqn.x at 10.0.0.1:3260: no session",)
    assert [v.vm_id for v in record.vms] == [1, 2], "only this host's VMs"
    assert oct(os.stat(records.record_path(state, 0)).st_mode & 0o777) == "0o640"
    assert set(records.read_all(state)) == {0}
    # a run that tried nothing on the host leaves the record as it was
    idle = Report()
    idle.add(result(3, Outcome.SKIPPED, reason="host node-1 is ERROR, not MONITORED"))
    assert records.save(state, 0, "node-1", idle, "host-reconnect", 200.0, 190.0, 600.0) is None
    assert records.read(state, 0) == record
    # a damaged record is no record; a state_dir that cannot be written is said, not raised
    Path(records.record_path(state, 5)).write_text("{not json")
    assert records.read(state, 5) is None and set(records.read_all(state)) == {0}
    blocked = tmp_path / "file"
    blocked.write_text("")
    why = records.save(str(blocked), 0, "node-1", report, "recover", 100.0, 90.0, 600.0)
    assert why is not None and why.startswith(f"cannot write {blocked}/reports/host-0.json")


def test_unknown_outcome_names_are_kept_as_text() -> None:
    """A record written by a newer version (an outcome this one lacks) still reads."""
    data = HostRecord(1, "n", 1.0, 2.0, vms=(VmEntry(5, "v", "EVACUATED", "moved"),),
                      counts={"EVACUATED": 1}).to_dict()
    record = HostRecord.from_dict(json.loads(json.dumps(data)))
    assert record.vms[0].known is None and record.vms[0].label() == "evacuated" and not record.vms[0].problem


def test_vm_hooks_of_one_host_add_to_the_record_in_parallel(tmp_path: Path) -> None:
    """Twelve processes (as onehem runs VM hooks, ten at once) each add one VM: none is lost."""
    state = tmp_path / "state"
    code = ("import sys; from one_hooks.recovery import records\n"
            "from one_hooks.recovery.report import Outcome, Report, VmResult\n"
            "vm = int(sys.argv[1]); r = Report()\n"
            "r.add(VmResult(vm, f'vm-{vm}', 'node-1', 'ACTIVE/UNKNOWN', 'ACTIVE/RUNNING', Outcome.RUNNING, 'ok', 1))\n"
            f"assert records.save({str(state)!r}, 0, 'node-1', r, 'vm-unknown', 100.0 + vm, None, 600.0) is None\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(vm)], env=env) for vm in range(12)]
    assert [p.wait(timeout=60) for p in procs] == [0] * 12
    record = records.read(str(state), 0)
    assert record is not None and sorted(v.vm_id for v in record.vms) == list(range(12))
    assert record.counts == {"RUNNING": 12}
