"""recovery.migration: what became of a cold migration from UNKNOWN, from oned's evidence (pure).

The sequence a real oned went through after ``one.vm.migrate(vm, h2)`` of an
UNKNOWN VM whose host h1 was in an outage (tests/data/evacuate/<version>/
vm-shared-migrate-NN-*.xml, every change seen by a 50 ms poll): UNKNOWN on
the new record, PROLOG_MIGRATE_UNKNOWN, BOOT, RUNNING.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import List

import pytest

from one_hooks.oned import xmlparse
from one_hooks.oned.model import HistoryAction, LcmState, Vm, VmState
from one_hooks.recovery import migration
from one_hooks.recovery.evidence import Snapshot, Verdict

DATA = Path(__file__).parent / "data" / "evacuate"
H2 = 1


def captured(version: str) -> List[Vm]:
    return [xmlparse.parse_vm(p.read_bytes()) for p in sorted((DATA / version).glob("vm-shared-migrate-*.xml"))]


def before(version: str) -> Snapshot:
    return Snapshot.of(xmlparse.parse_vm((DATA / version / "vm-shared-unknown.xml").read_bytes()), time.time())


@pytest.mark.parametrize("version", ("6.10.5", "7.4.0"))
def test_the_real_sequence_reads_queued_moving_running(version: str) -> None:
    seen = captured(version)
    assert [(v.lcm_state, v.history.host_id, v.history.seq) for v in seen] == [
        (LcmState.UNKNOWN, H2, 1), (LcmState.PROLOG_MIGRATE_UNKNOWN, H2, 1), (LcmState.BOOT, H2, 1),
        (LcmState.RUNNING, H2, 1)]
    assert seen[1].history.action == HistoryAction.MIGRATE and seen[3].history.action == HistoryAction.NONE
    verdicts = [migration.judge(before(version), H2, v).verdict for v in seen]
    assert verdicts == [Verdict.NOT_PICKED_UP, Verdict.IN_PROGRESS, Verdict.IN_PROGRESS, Verdict.RUNNING]
    # the same VM seen by a process that wanted it on h3 has been moved by someone else
    assert migration.judge(before(version), 2, seen[3]).verdict == Verdict.MOVED_ON


def test_failures_need_an_operator_and_nothing_is_called_failed_without_a_mark() -> None:
    snap = before("6.10.5")
    queued, moving, _, running = captured("6.10.5")
    transfer = dataclasses.replace(moving, lcm_state=LcmState.PROLOG_MIGRATE_UNKNOWN_FAILURE)
    judged = migration.judge(snap, H2, transfer)
    assert judged.verdict == Verdict.DEPLOY_FAILED and judged.applied
    assert f"onevm recover --retry {moving.id}" in judged.reason
    boot = dataclasses.replace(moving, lcm_state=LcmState.BOOT_FAILURE)
    assert migration.judge(snap, H2, boot).verdict == Verdict.DEPLOY_FAILED
    # still UNKNOWN on its old record (no sign yet), or already on the new one: waiting, never failed
    old = xmlparse.parse_vm((DATA / "6.10.5" / "vm-shared-unknown.xml").read_bytes())
    assert migration.judge(snap, H2, old).verdict == Verdict.NOT_PICKED_UP
    assert migration.judge(snap, H2, queued).verdict == Verdict.NOT_PICKED_UP
    off = dataclasses.replace(running, state=VmState.POWEROFF, lcm_state=LcmState.LCM_INIT,
                              history=dataclasses.replace(running.history, action=HistoryAction.MONITOR))
    bounced = migration.judge(snap, H2, off)
    assert bounced.verdict == Verdict.BOUNCED and f"onevm resume {off.id}" in bounced.reason
    user = dataclasses.replace(off, history=dataclasses.replace(running.history, action=HistoryAction.POWEROFF))
    assert migration.judge(snap, H2, user).verdict == Verdict.MOVED_ON
    done = dataclasses.replace(running, state=VmState.DONE, lcm_state=LcmState.LCM_INIT)
    assert migration.judge(snap, H2, done).verdict == Verdict.MOVED_ON
