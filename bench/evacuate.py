"""Benchmark 6: evacuating a dead host on a REAL oned, one-hooks against an ideal script.

One fresh rig (``../shared/opennebula/oned-rig``: a real oned 6.10.5 or 7.4.0, dummy
drivers, its real ``onehem-server``), ``vms`` VMs (90 by default) on h1, all on
the shared system datastore; h1 fails for good (outage with ``vmm-fail``: every
driver action on it fails) twice in the same run, each time with ``vms`` fresh VMs:

1. **ideal**: no hooks; a script in this process waits the grace from the
   first look that sees h1 in ERROR, then migrates every VM from UNKNOWN with 8
   parallel ``one.vm.migrate`` calls, alternating h2 and h3 (no fencing, no
   plan, no gate);
2. **one-hooks**: installed by the real ``one-hooks-install`` with
   ``[evacuate] enabled = yes`` and the same grace, the shipped settings
   otherwise (8 moves at once, a fence stand-in that answers at once, nodes
   through the iSCSI stand-in replaying healthy captures): oned's onehem runs
   the host-error hook, its watcher waits out the grace, fences, disables h1,
   plans, gates the targets and moves the VMs.

Wall time of both: from the end of the grace (the first look that saw h1 in
ERROR, plus the grace) to the first look that sees every VM RUNNING on
another host (one ``one.vmpool.info`` every 0.25 s, for both alike). Also
counted from oned: VMs moved more than once (history records) and VMs not
RUNNING at the end; from our log, false failures.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from cloud import HEALTHY_SCENARIO, PYCACHE, REPO, STANDIN, production_python

from one_hooks.hooks.entry import stop_watchers
from tests.oned_rig import Rig, RigError, VmView, available, false_failures, read_audit_log, start_rigs

#: Parallel migrates of the ideal script (as issue 12 defines it), and one-hooks' default max_parallel.
IDEAL_PARALLEL = 8
#: Seconds h1 must stay in ERROR before either way acts. Long enough for the storm of VM hooks that
#: oned fires when the host goes ERROR (one vm-unknown per VM, "left to host-reconnect") to be over, as
#: with the default grace of 300 s; with 10 s they still ran on the rig's 2 cores when the moves began.
GRACE = 60.0
#: An evacuation not over after this long is reported as not over.
TIMEOUT = 300.0
POLL = 0.25

FENCE = """#!/bin/sh
# fence stand-in: the host is already dead (outage with vmm-fail); power status says so
case "$1" in
  off) echo "Chassis Power Control: Down/Off" ;;
  status) if grep -qs vmm-fail "{root}/run/outage/$2"; then echo "Chassis Power is off"
          else echo "Chassis Power is on"; fi ;;
esac
"""


@dataclass
class Run:
    """One evacuation: when the grace ended and when everything ran elsewhere."""

    grace_end: Optional[float]
    all_running: Optional[float]
    not_running: int
    moved_more_than_once: int

    @property
    def wall_s(self) -> Optional[float]:
        if self.grace_end is None or self.all_running is None:
            return None
        return self.all_running - self.grace_end


@dataclass
class EvacuationResult:
    version: str
    vms: int
    grace: float
    hooked: Run
    ideal: Run
    false_failures: List[str] = field(default_factory=list)
    watcher_exit: Optional[int] = None
    fence_s: Optional[float] = None

    def as_dict(self) -> Dict[str, object]:
        def r(value: Optional[float]) -> Optional[float]:
            return None if value is None else round(value, 2)
        ratio = (self.hooked.wall_s / self.ideal.wall_s
                 if self.hooked.wall_s is not None and self.ideal.wall_s else None)
        return {"version": self.version, "vms": self.vms, "grace_s": self.grace,
                "wall_s": r(self.hooked.wall_s), "ideal_wall_s": r(self.ideal.wall_s), "ratio_to_ideal": r(ratio),
                "not_running": self.hooked.not_running, "ideal_not_running": self.ideal.not_running,
                "moved_more_than_once": self.hooked.moved_more_than_once,
                "false_failures": len(self.false_failures), "watcher_exit_code": self.watcher_exit}


def _make_vms(rig: Rig, count: int, tag: str) -> List[int]:
    ids = rig.host_ids()
    tid = rig.template_id()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        vms = list(pool.map(lambda i: rig.create_vm(f"evac-{tag}-{i:03d}", ids["h1"], template_id=tid),
                            range(count)))
    seen = rig.wait_vms(vms, lambda vm: vm.state_name == "RUNNING", timeout=600, poll=1.0)
    stuck = [i for i, vm in seen.items() if vm.state_name != "RUNNING"]
    for vm_id in stuck:  # a deploy success oned dropped under load: its domain exists
        rig.try_call("one.vm.recover", vm_id, 1)
    seen = rig.wait_vms(vms, lambda vm: vm.state_name == "RUNNING", timeout=120, poll=1.0)
    if any(vm.state_name != "RUNNING" for vm in seen.values()) or len(seen) != count:
        raise RigError(f"the {tag} VMs did not all start")
    return vms


def _evacuation(rig: Rig, vms: List[int], grace: float,
                act: Optional[Callable[[], None]] = None) -> Run:
    """h1 dies; ``act`` (the ideal script) runs at the end of the grace; time until all RUNNING elsewhere."""
    threading.Thread(target=rig.outage, args=("h1", "on", "vmm-fail"), daemon=True).start()
    seen_error: Optional[float] = None
    while seen_error is None:
        if rig.host_states().get("h1") == "ERROR":
            seen_error = time.time()
        else:
            time.sleep(POLL)
    grace_end = seen_error + grace
    if act is not None:
        time.sleep(max(0.0, grace_end - time.time()))
        threading.Thread(target=act, daemon=True).start()
    deadline = time.time() + grace + TIMEOUT
    all_running: Optional[float] = None
    pool: Dict[int, VmView] = {}
    while time.time() < deadline:
        began = time.time()
        pool = rig.vm_pool()
        if all(i in pool and pool[i].state_name == "RUNNING" and pool[i].host in ("h2", "h3") for i in vms):
            all_running = time.time()
            break
        time.sleep(max(0.0, POLL - (time.time() - began)))
    full = {i: rig.vm(i) for i in vms}
    return Run(grace_end, all_running,
               sum(1 for vm in full.values() if vm.state_name != "RUNNING" or vm.host not in ("h2", "h3")),
               sum(1 for vm in full.values() if len(vm.history) > 2))


def _ideal(rig: Rig, vms: List[int]) -> Callable[[], None]:
    def act() -> None:
        ids = rig.host_ids()
        targets = [ids["h2"], ids["h3"]]
        with concurrent.futures.ThreadPoolExecutor(IDEAL_PARALLEL) as pool:
            list(pool.map(lambda k: rig.try_call("one.vm.migrate", vms[k], targets[k % 2], False, True, -1, 0),
                          range(len(vms))))
    return act


def _heal(rig: Rig, vms: List[int]) -> None:
    """h1 back (the ideal script never disabled it); the moved VMs removed."""
    rig.outage("h1", "off")
    if not rig.wait_hosts(("h1",), "MONITORED", timeout=180):
        raise RigError("h1 did not come back MONITORED")
    for vm_id in vms:
        rig.try_call("one.vm.recover", vm_id, 3)


def _config(work: str, fence: str, grace: float) -> str:
    """Shipped settings; only where files go, how nodes and the BMC are reached, and the grace differ."""
    return (f"[node]\ncommand = env ONE_HOOKS_NODE={{host}} ONE_HOOKS_STANDIN_SCENARIO={work}/scenario "
            f"PATH={STANDIN}:/usr/bin:/bin\n"
            "[iscsi]\niscsiadm = iscsiadm\ncheck_by_path = no\n"
            f"[recovery]\nstate_dir = {work}/state\n"
            f"[evacuate]\nenabled = yes\ngrace = {grace}\nfence = {fence} off {{host}}\n"
            f"fence_check = {fence} status {{host}}\n"
            f"[log]\nfile = {work}/one-hooks.log\n")


def _installer(rig: Rig, config: str, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "one_hooks.install", "--remotes", str(rig.remotes),
                           "--config", config, "--python", production_python(), *args],
                          env={**rig.env, "ONE_HOOKS_CONFIG": config}, capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        raise RigError(f"one-hooks-install {' '.join(args)} failed: {proc.stdout[-800:]}{proc.stderr[-800:]}")


def run_real_evacuation(version: str, vms: int = 90, grace: float = GRACE,
                        say: Callable[[str], None] = print) -> EvacuationResult:
    """Both ways on one fresh rig of ``version``; the rig is stopped (and removed) afterwards."""
    why = available()
    if why:
        raise RigError(why)
    work = tempfile.mkdtemp(prefix=f"one-hooks-bench-evac-{version}-")
    config = os.path.join(work, "one-hooks.conf")
    rig = Rig(version, os.path.join(work, "rig"), 0, {
        "ONE_HOOKS_CONFIG": config, "XDG_CACHE_HOME": os.path.join(work, "cache"), "PYTHONPATH": REPO,
        "PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": PYCACHE})
    fence = os.path.join(work, "bmc")
    with open(os.path.join(work, "scenario"), "w") as fh:
        fh.write(HEALTHY_SCENARIO)
    try:
        say(f"      oned {version}: starting a rig ...")
        start_rigs([rig])
        with open(fence, "w") as fh:
            fh.write(FENCE.format(root=rig.root))
        os.chmod(fence, 0o755)
        with open(config, "w") as fh:
            fh.write(_config(work, fence, grace))
        say(f"      oned {version}: {vms} VMs on h1; the ideal script ...")
        first = _make_vms(rig, vms, "ideal")
        ideal = _evacuation(rig, first, grace, _ideal(rig, first))
        _heal(rig, first)
        say(f"      oned {version}: {vms} fresh VMs on h1; one-hooks' host-error hook ...")
        second = _make_vms(rig, vms, "hooked")
        _installer(rig, config)
        hooked = _evacuation(rig, second, grace)
        deadline = time.time() + 60
        record_path = os.path.join(work, "state", "evacuate", f"host-{rig.host_ids()['h1']}.json")
        record: Dict[str, object] = {}
        while time.time() < deadline:
            try:
                with open(record_path) as fh:
                    record = json.load(fh)
                if record.get("stage") == "done":
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        stop_watchers(config)
        running = [i for i in second if rig.vm(i).state_name == "RUNNING"]
        fenced_at = record.get("fenced_at")
        return EvacuationResult(
            version, vms, grace, hooked, ideal,
            false_failures(read_audit_log(os.path.join(work, "one-hooks.log")), running),
            record.get("exit_code") if isinstance(record.get("exit_code"), int) else None,  # type: ignore[arg-type]
            (float(fenced_at) - hooked.grace_end) if isinstance(fenced_at, (int, float)) and hooked.grace_end
            else None)
    except BaseException:
        say(f"      oned {version}: failed; its files are kept in {work}")
        work = ""
        raise
    finally:
        stop_watchers(config)
        try:
            rig.stop()
        except RigError as exc:
            say(f"      oned {version}: {exc}")
        if work and not rig.processes():  # never remove a running rig's folder
            shutil.rmtree(work, ignore_errors=True)
