"""recovery.evacuation: which VMs of a dead host move, where, and why (pure).

The datastores, VMs and hosts come from real oned 6.10.5 and 7.4.0 answers
captured on the rigs (tests/data/evacuate/, see its README), varied with
``dataclasses.replace`` where a case needs another state.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, List

import pytest

from one_hooks.oned import xmlparse
from one_hooks.oned.model import (
    Datastore, DatastoreType, Disk, HistoryAction, Host, HostShare, HostState, LcmState, Vm, VmState,
)
from one_hooks.recovery import evacuation as ev
from one_hooks.recovery.evacuation import Fate
from one_hooks.recovery.policy import Settings

DATA = Path(__file__).parent / "data" / "evacuate"
VERSIONS = ("6.10.5", "7.4.0")


def datastores(version: str) -> Dict[int, Datastore]:
    return {d.id: d for d in xmlparse.parse_datastore_pool((DATA / version / "datastorepool.xml").read_bytes())}


def vm(version: str, name: str) -> Vm:
    return xmlparse.parse_vm((DATA / version / name).read_bytes())


def hosts(version: str) -> List[Host]:
    return xmlparse.parse_host_pool((DATA / version / "hostpool-h1-error.xml").read_bytes())


def dead(version: str) -> Host:
    return next(h for h in hosts(version) if h.name == "h1")


def unknown(v: Vm) -> Vm:
    return dataclasses.replace(v, state=VmState.ACTIVE, lcm_state=LcmState.UNKNOWN)


@pytest.mark.parametrize("version", VERSIONS)
def test_real_captures_parse_into_what_the_rules_read(version: str) -> None:
    ds = datastores(version)
    system = ds[0]
    assert (system.type, system.tm_mad, system.shared) == (DatastoreType.SYSTEM, "dummy", True)
    local = next(d for d in ds.values() if d.tm_mad == "ssh")
    assert (local.type, local.shared) == (DatastoreType.SYSTEM, False)
    assert ds[1].type == DatastoreType.IMAGE and ds[1].shared is None  # oned drops SHARED from image DSs
    shared = vm(version, "vm-shared-unknown.xml")
    assert (shared.state, shared.lcm_state) == (VmState.ACTIVE, LcmState.UNKNOWN)
    assert (shared.history.ds_id, shared.history.tm_mad, shared.cpu, shared.memory_mb) == (0, "dummy", 0.1, 32)
    clone, persistent, volatile = shared.disks
    assert (clone.clone, clone.target, clone.datastore_id) == (True, "SYSTEM", 1)
    assert (persistent.persistent, persistent.target) == (True, "NONE")
    assert (volatile.image_id, volatile.target, volatile.datastore_id) == (-1, "", 0)
    assert dead(version).state == HostState.ERROR
    assert dead(version).share == HostShare(800, 20, 16777216, 65536, 2)


@pytest.mark.parametrize("version", VERSIONS)
def test_shared_vm_moves_local_vm_stays(version: str) -> None:
    ds = datastores(version)
    assert ev.storage_problem(vm(version, "vm-shared-unknown.xml"), ds) is None
    local = unknown(vm(version, "vm-local-running.xml"))
    problem = ev.storage_problem(local, ds)
    assert problem is not None and "local storage" in problem and "TM ssh, SHARED=NO" in problem
    targets, refused = ev.eligible_targets(dead(version), hosts(version))
    the_plan = ev.plan(dead(version), [vm(version, "vm-shared-unknown.xml"), local], ds, targets, Settings())
    moved, stays = the_plan.of(Fate.MOVE), the_plan.of(Fate.STAYS)
    assert [p.vm_id for p in moved] == [vm(version, "vm-shared-unknown.xml").id]
    assert moved[0].target_name in ("h2", "h3") and moved[0].tier == 10  # ONE_HOOKS_PRIORITY=10 in the capture
    assert [p.vm_id for p in stays] == [local.id] and "stays on h1" in stays[0].reason
    assert "NOT MOVED" in stays[0].line() and "move tier 10 to h" in moved[0].line()


def test_storage_rules_read_every_disk() -> None:
    ds = datastores("6.10.5")
    ds[200] = Datastore(200, "ceph", DatastoreType.IMAGE, "ceph")
    ds[201] = Datastore(201, "local-img", DatastoreType.IMAGE, "ssh")
    base = vm("6.10.5", "vm-shared-unknown.xml")
    in_ceph = dataclasses.replace(base, disks=(Disk(0, 200, "ceph", 5, clone=True, target="SELF"),))
    assert ev.storage_problem(in_ceph, ds) is None
    in_local_image = dataclasses.replace(base, disks=(Disk(0, 201, "ssh", 5, persistent=True, target="NONE"),))
    assert "disk 0: local storage" in (ev.storage_problem(in_local_image, ds) or "")
    # a disk placed SYSTEM lives in the (shared) system datastore, whatever its image datastore
    from_local_image = dataclasses.replace(base, disks=(Disk(0, 201, "ssh", 5, clone=True, target="SYSTEM"),))
    assert ev.storage_problem(from_local_image, ds) is None
    gone = dataclasses.replace(base, disks=(Disk(3, 999, "ceph", 5, clone=True, target="SELF"),))
    assert "image datastore 999 is not in oned's datastore pool" in (ev.storage_problem(gone, ds) or "")
    unknown_system = dataclasses.replace(base, history=dataclasses.replace(base.history, ds_id=77))
    assert "system datastore 77 is not in oned's datastore pool" in (ev.storage_problem(unknown_system, ds) or "")
    # SHARED unset on a system datastore is not taken for YES
    ds[0] = dataclasses.replace(ds[0], shared=None)
    assert "SHARED=unset" in (ev.storage_problem(base, ds) or "")


def test_the_policy_rules_apply_as_for_resumes() -> None:
    ds = datastores("6.10.5")
    host = dead("6.10.5")
    base = vm("6.10.5", "vm-shared-unknown.xml")
    history = base.history
    cases = {
        "elsewhere": (dataclasses.replace(base, history=dataclasses.replace(history, host_id=2, hostname="h3")),
                      Fate.SKIP, "last placed on host h3"),
        "user poweroff": (dataclasses.replace(base, state=VmState.POWEROFF, lcm_state=LcmState.LCM_INIT,
                                              history=dataclasses.replace(history, action=HistoryAction.POWEROFF)),
                          Fate.SKIP, "powered off by a user"),
        "outage poweroff": (dataclasses.replace(base, state=VmState.POWEROFF, lcm_state=LcmState.LCM_INIT,
                                                history=dataclasses.replace(history, action=HistoryAction.MONITOR)),
                            Fate.STAYS, "powered off by an earlier outage"),
        "booting": (dataclasses.replace(base, lcm_state=LcmState.BOOT_UNKNOWN), Fate.SKIP,
                    "ACTIVE/BOOT_UNKNOWN: not left UNKNOWN"),
        "opted out": (dataclasses.replace(base, user_template={"ONE_HOOKS_RECOVER": "no"}), Fate.SKIP,
                      "opted out"),
        "locked": (dataclasses.replace(base, lock=1), Fate.LOCKED,
                   f"run 'onevm unlock {base.id}' then 'one-hooks evacuate h1'"),
    }
    for name, (v, fate, words) in cases.items():
        got, reason, _ = ev.decide_vm(v, host, ds, Settings())
        assert got == fate and words in reason, (name, got, reason)
    opt_in = Settings(policy="opt-in")
    assert ev.decide_vm(base, host, ds, opt_in)[0] == Fate.SKIP
    autostart = dataclasses.replace(base, user_template={"AUTOSTART": "YES"})
    assert ev.decide_vm(autostart, host, ds, opt_in)[:2][0] == Fate.MOVE


def _host(host_id: int, name: str, free_mb: int, vms: int, state: HostState = HostState.MONITORED,
          cluster: int = 0) -> Host:
    share = HostShare(800, 0, free_mb * 1024, 0, vms)
    return Host(host_id, name, state, state, cluster, "default", share=share)


def _vm(vm_id: int, tier: int = 0, memory_mb: int = 1024, host: Host = _host(0, "dead", 0, 0)) -> Vm:
    base = vm("6.10.5", "vm-shared-unknown.xml")
    return dataclasses.replace(base, id=vm_id, name=f"vm{vm_id}", memory_mb=memory_mb, cpu=1.0,
                               user_template={"ONE_HOOKS_PRIORITY": str(tier)},
                               history=dataclasses.replace(base.history, host_id=host.id, hostname=host.name))


def test_targets_most_free_memory_counting_earlier_placements_tiers_first() -> None:
    ds = datastores("6.10.5")
    down = dataclasses.replace(_host(0, "dead", 0, 0), state=HostState.ERROR)
    big, small = _host(1, "big", 3500, 5), _host(2, "small", 2000, 0)
    others = [_host(3, "other-cluster", 99999, 0, cluster=7), _host(4, "off", 99999, 0, HostState.DISABLED)]
    targets, refused = ev.eligible_targets(down, [down, big, small] + others)
    assert [h.name for h in targets] == ["big", "small"]
    assert refused == ["host off (ID 4) is DISABLED: not a target"]  # another cluster is not even a candidate
    vms = [_vm(1, 0), _vm(2, 5), _vm(3, 0), _vm(4, 0), _vm(5, 0, memory_mb=4096)]
    the_plan = ev.plan(down, vms, ds, targets, Settings(), refused)
    where = {p.vm_id: p.target_name for p in the_plan.of(Fate.MOVE)}
    # 1024 MB each: tier 5 first (VM 2 -> big, 2476 left), then tier 0 by ID: VM 1 -> big (2476 > 2000,
    # 1452 left), VM 3 -> small (2000 > 1452, 976 left), VM 4 -> big (1452, 428 left); VM 5 fits nowhere.
    assert where == {2: "big", 1: "big", 3: "small", 4: "big"}
    assert [p.vm_id for p in the_plan.of(Fate.STAYS)] == [5]
    assert "no target has room (needs CPU 1, 4096 MB" in the_plan.of(Fate.STAYS)[0].reason
    assert [[p.vm_id for p in tier] for tier in the_plan.tiers] == [[2], [1, 3, 4]]
    assert the_plan.problems == ("host off (ID 4) is DISABLED: not a target",)
    # equal free memory: the host with fewer VMs, then the lower ID
    twins = [_host(1, "a", 2000, 3), _host(2, "b", 2000, 1), _host(3, "c", 2000, 1)]
    assert ev.plan(down, [_vm(1)], ds, twins, Settings()).moves[0].target_name == "b"


def test_no_target_and_a_live_host_are_the_plan_s_problems() -> None:
    ds = datastores("6.10.5")
    down = dataclasses.replace(_host(0, "dead", 0, 0), state=HostState.ERROR)
    the_plan = ev.plan(down, [_vm(1)], ds, [], Settings())
    assert the_plan.of(Fate.STAYS) and "no MONITORED host of cluster default" in the_plan.problems[0]
    alive = _host(0, "alive", 0, 0)
    the_plan = ev.plan(alive, [_vm(1)], ds, [], Settings())
    assert the_plan.placements == () and "is MONITORED: its VMs run there" in the_plan.problems[0]
    for state in (HostState.ERROR, HostState.DISABLED, HostState.OFFLINE):
        assert ev.host_down(dataclasses.replace(alive, state=state)) is None
