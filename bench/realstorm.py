"""Benchmark 5: the recovery storm on a REAL oned, one-hooks against an ideal script and the old procedure.

One rig (``../shared/opennebula/oned-rig``: a real oned 6.10.5 or 7.4.0 with dummy
drivers and its real ``onehem-server``), 270 VMs on its three hosts, and three
power cuts in the same run, each of all three hosts, each ending with the
domains gone (the VMs go UNKNOWN, then POWEROFF when their host reports again):

1. **ideal**: no hooks; a script in this process resumes each host's
   candidates (UNKNOWN, or POWEROFF with last action ``monitor``) with 8
   parallel ``one.vm.action`` calls the moment it sees the host MONITORED
   (polling every 0.25 s); a VM is resumed again only when a look taken after
   the accepted call shows it moved and is a candidate again (at most 3 times);
2. **one-hooks**: installed by the real ``one-hooks-install`` into the rig's
   remotes with the shipped settings (nodes: the stand-in replaying healthy
   iSCSI captures through a local ``[node] command``), fired by oned's onehem;
3. **old procedure**: one ``onevm resume ID`` CLI process per VM, one after
   another. It is timed on a sample of VMs (one host's outage) and
   extrapolated to all of them: the figure says so.

Wall time of 1 and 2: from the first look that sees a host MONITORED again to
the first look that sees every VM RUNNING (one ``one.vmpool.info`` and one
``one.hostpool.info`` every 0.25 s, in both storms). On 7.4 each cut is switched
off only 32 s after the VMs' last (re)start, as oned 7.4 ignores a VM's
state reports for 30 s after it (rig README, gotcha 1).

False failures: lines of one-hooks' log at ERROR, or saying ``failed``, about a
VM that ended RUNNING. Resume calls per VM come from oned's ``oned.log``;
hook return codes from oned's hook execution records.
"""
from __future__ import annotations

import concurrent.futures
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Set, Tuple

from cloud import HEALTHY_SCENARIO, PYCACHE, REPO, STANDIN, production_python

from one_hooks.hooks.entry import stop_watchers
from tests.oned_rig import (ACTION_MONITOR, HOSTS, HookLog, Rig, RigError, VmView, available, false_failures,
                            read_audit_log, start_rigs)

#: Parallel resumes per host of the ideal script (issue 9's definition of "ideal").
IDEAL_PARALLEL = 8
#: Attempts per VM of the ideal script.
IDEAL_ATTEMPTS = 3
#: A storm that has not ended after this long is reported as not ended.
STORM_TIMEOUT = 300.0
#: How often the storms are looked at (both storms alike).
POLL = 0.25
#: oned 7.4's window after a VM's (re)start in which it ignores that VM's state reports.
WINDOW_74 = 32.0


@dataclass
class StormRun:
    """One storm: when hosts came back, when everything ran."""

    first_back: Optional[float]
    all_running: Optional[float]
    hosts_back: Dict[str, float]
    not_running: int

    @property
    def wall_s(self) -> Optional[float]:
        """First host MONITORED -> all RUNNING (None: not all RUNNING in time)."""
        if self.first_back is None or self.all_running is None:
            return None
        return self.all_running - self.first_back


@dataclass
class RealStormResult:
    """The three ways on one rig, and what oned recorded of one-hooks' storm."""

    version: str
    vms: int
    one_hooks: StormRun
    ideal: StormRun
    old_per_vm_s: Optional[float]
    old_sample: int
    false_failures: List[str]
    hook_failures: List[str]
    hook_record_gaps: int
    resume_calls: int
    vms_resumed_more_than_once: int
    notes: List[str] = field(default_factory=list)

    @property
    def old_wall_s(self) -> Optional[float]:
        """The old procedure's time to send every resume, extrapolated from the sample."""
        return None if self.old_per_vm_s is None else self.old_per_vm_s * self.vms

    def as_dict(self) -> Dict[str, object]:
        """JSON keys of this version's figures."""
        def r(value: Optional[float], digits: int = 2) -> Optional[float]:
            return None if value is None else round(value, digits)

        wall, ideal = self.one_hooks.wall_s, self.ideal.wall_s
        return {
            "version": self.version, "vms": self.vms, "hosts": len(HOSTS),
            "wall_s": r(wall), "ideal_wall_s": r(ideal),
            "ratio_to_ideal": r(wall / ideal) if wall and ideal else None,
            "old_wall_s": r(self.old_wall_s, 1), "old_per_vm_s": r(self.old_per_vm_s, 3),
            "old_extrapolated_from_vms": self.old_sample,
            "speedup_vs_old": r(self.old_wall_s / wall, 1) if wall and self.old_wall_s else None,
            "false_failures": len(self.false_failures), "false_failure_lines": self.false_failures[:10],
            "not_running": self.one_hooks.not_running, "ideal_not_running": self.ideal.not_running,
            "hook_failures": self.hook_failures[:10], "hook_record_gaps": self.hook_record_gaps,
            "resume_calls": self.resume_calls, "vms_resumed_more_than_once": self.vms_resumed_more_than_once,
            "hosts_back_spread_s": r(_spread(self.one_hooks.hosts_back)), "notes": self.notes,
        }


def _spread(hosts_back: Dict[str, float]) -> Optional[float]:
    return max(hosts_back.values()) - min(hosts_back.values()) if hosts_back else None


# --- watching a storm ----------------------------------------------------------------


class Watcher:
    """Looks at the rig every POLL seconds; notes hosts coming back and the end of the storm."""

    def __init__(self, rig: Rig, vms: List[int], since: float,
                 on_look: Optional[Callable[[float, Dict[str, str], Dict[int, VmView]], None]] = None) -> None:
        self.rig = rig
        self.vms = vms
        self.since = since
        self.on_look = on_look
        self.hosts_back: Dict[str, float] = {}
        self.all_running: Optional[float] = None
        self.last: Dict[int, VmView] = {}
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="storm-watcher", daemon=True)

    def start(self) -> "Watcher":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.time()
            try:
                hosts = self.rig.host_states()
                pool = self.rig.vm_pool()
            except (RigError, OSError) as exc:  # a missed look is only a missed look
                print(f"      (look failed: {exc})", file=sys.stderr)
                self._stop.wait(POLL)
                continue
            seen = time.time()
            for host, state in hosts.items():
                if state == "MONITORED" and host not in self.hosts_back and began > self.since:
                    self.hosts_back[host] = seen
            self.last = pool
            if self.on_look is not None:
                self.on_look(began, hosts, pool)
            if self.hosts_back and all(i in pool and pool[i].state_name == "RUNNING" for i in self.vms):
                self.all_running = seen
                self.done.set()
                return
            self._stop.wait(max(0.0, POLL - (time.time() - began)))

    def result(self) -> StormRun:
        """What this storm measured."""
        first = min(self.hosts_back.values()) if self.hosts_back else None
        down = sum(1 for i in self.vms if self.last.get(i) is None or self.last[i].state_name != "RUNNING")
        return StormRun(first, self.all_running, dict(self.hosts_back), down)


class IdealScript:
    """Resumes a host's candidates with 8 parallel calls the moment the host is seen MONITORED."""

    def __init__(self, rig: Rig, placement: Dict[int, str]) -> None:
        self.rig = rig
        self.placement = placement
        self.queues: Dict[str, "queue.Queue[Tuple[int, str]]"] = {h: queue.Queue() for h in HOSTS}
        self.started: Set[str] = set()
        self.lock = threading.Lock()
        self.queued: Set[int] = set()
        #: VM -> (answer time, state it was resumed from) while its effect is not seen yet
        self.open: Dict[int, Tuple[float, str]] = {}
        self.accepted: Dict[int, int] = {}
        self.stop = threading.Event()

    def look(self, taken: float, hosts: Dict[str, str], pool: Dict[int, VmView]) -> None:
        """Called with each look of the storm watcher."""
        for host in HOSTS:
            if hosts.get(host) != "MONITORED":
                continue
            if host not in self.started:
                self.started.add(host)
                for _ in range(IDEAL_PARALLEL):
                    threading.Thread(target=self._worker, args=(host,), daemon=True).start()
            for vm_id, where in self.placement.items():
                vm = pool.get(vm_id)
                if where != host or vm is None:
                    continue
                with self.lock:
                    if vm_id in self.queued:
                        continue
                    pending = self.open.get(vm_id)
                    if pending is not None:
                        # closed by a look taken after the answer that shows another state
                        if taken > pending[0] and vm.state_name != pending[1]:
                            del self.open[vm_id]
                        else:
                            continue
                    candidate = vm.state_name == "UNKNOWN" or (
                        vm.state_name == "POWEROFF" and vm.last_action == ACTION_MONITOR)
                    if candidate and self.accepted.get(vm_id, 0) < IDEAL_ATTEMPTS:
                        self.queued.add(vm_id)
                        self.queues[host].put((vm_id, vm.state_name))

    def _worker(self, host: str) -> None:
        while not self.stop.is_set():
            try:
                vm_id, state = self.queues[host].get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                ok, _ = self.rig.try_call("one.vm.action", "resume", vm_id)
            except (OSError, RigError):
                ok = False
            with self.lock:
                self.queued.discard(vm_id)
                if ok:
                    self.accepted[vm_id] = self.accepted.get(vm_id, 0) + 1
                    self.open[vm_id] = (time.time(), state)


# --- one rig, three ways ---------------------------------------------------------------


def _placement(rig: Rig, per_host: int) -> Dict[int, str]:
    """``per_host`` VMs deployed on each host, all RUNNING."""
    ids = rig.host_ids()
    tid = rig.template_id()
    jobs = [(f"storm-{h}-{i:03d}", h) for h in HOSTS for i in range(per_host)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        made = list(pool.map(lambda job: (rig.create_vm(job[0], ids[job[1]], template_id=tid), job[1]), jobs))
    placement = dict(made)
    seen = rig.wait_vms(placement, lambda vm: vm.state_name == "RUNNING", timeout=600, poll=1.0)
    stuck = [i for i, vm in seen.items() if vm.state_name != "RUNNING"]
    if stuck:
        # Under heavy load oned may drop a deploy's success ("deploy_success_action, VM in a
        # wrong state") and leave the VM in BOOT, its domain made: tell oned it succeeded.
        for vm_id in stuck:
            rig.try_call("one.vm.recover", vm_id, 1)
        seen = rig.wait_vms(placement, lambda vm: vm.state_name == "RUNNING", timeout=120, poll=1.0)
    down = [i for i, vm in seen.items() if vm.state_name != "RUNNING"]
    if down or len(seen) != len(placement):
        raise RigError(f"{len(down)} of {len(placement)} VMs did not start: "
                       f"{[(i, seen[i].state_name) for i in down[:10]]}")
    return placement


def _after_window(rig: Rig, vms: List[int]) -> float:
    """Epoch after which oned 7.4 applies these VMs' state reports again (0 on 6.10)."""
    if not rig.version.startswith("7."):
        return 0.0
    latest = max((max(vm.history[-1][3], vm.history[-1][4]) for vm in rig.vm_pool().values()
                  if vm.id in vms and vm.history), default=0)
    return latest + WINDOW_74


def storm(rig: Rig, placement: Dict[int, str], ideal: Optional[IdealScript] = None) -> StormRun:
    """Cut all three hosts, bring them back with the domains gone, time until all RUNNING."""
    vms = sorted(placement)
    not_before = _after_window(rig, vms)
    rig.outages(HOSTS, "on", "--wait")
    rig.wait_vms(vms, lambda vm: vm.state_name == "UNKNOWN", timeout=120, poll=1.0)
    time.sleep(max(0.0, not_before - time.time()))
    watcher = Watcher(rig, vms, time.time(), ideal.look if ideal else None).start()
    try:
        rig.outages(HOSTS, "off", "gone")
        watcher.done.wait(STORM_TIMEOUT)
    finally:
        watcher.stop()
        if ideal is not None:
            ideal.stop.set()
    return watcher.result()


def old_procedure(rig: Rig, placement: Dict[int, str], sample: int) -> float:
    """Seconds per VM of ``onevm resume ID``, one CLI process after another (one host's outage)."""
    host = HOSTS[0]
    vms = sorted(i for i, h in placement.items() if h == host)
    not_before = _after_window(rig, vms)
    rig.outage(host, "on", "--wait")
    time.sleep(max(0.0, not_before - time.time()))
    rig.outage(host, "off", "gone", "--wait")
    rig.wait_vms(vms, lambda vm: vm.state_name == "POWEROFF", timeout=120, poll=1.0)
    took = []
    for vm_id in vms[:sample]:
        began = time.perf_counter()
        for _ in range(3):
            # An operator runs the command again when oned refuses it (under load oned's sqlite
            # refuses calls as "User couldn't be authenticated"): that time counts too.
            proc = subprocess.run(["onevm", "resume", str(vm_id)], env=rig.env, capture_output=True,
                                  text=True, timeout=120)
            if proc.returncode == 0:
                break
        else:
            raise RigError(f"onevm resume {vm_id} failed 3 times: {proc.stdout}{proc.stderr}")
        took.append(time.perf_counter() - began)
    return sum(took) / len(took)


def _config(work: str) -> str:
    """Shipped settings; only where files go and how nodes are reached differ."""
    return (f"[node]\ncommand = env ONE_HOOKS_NODE={{host}} ONE_HOOKS_STANDIN_SCENARIO={work}/scenario "
            f"PATH={STANDIN}:/usr/bin:/bin\n"
            "[iscsi]\niscsiadm = iscsiadm\ncheck_by_path = no\n"
            f"[recovery]\nstate_dir = {work}/state\n[log]\nfile = {work}/one-hooks.log\n")


def _installer(rig: Rig, config: str, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "one_hooks.install", "--remotes", str(rig.remotes),
                           "--config", config, "--python", production_python(), *args],
                          env={**rig.env, "ONE_HOOKS_CONFIG": config}, capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        raise RigError(f"one-hooks-install {' '.join(args)} failed: {proc.stdout[-800:]}{proc.stderr[-800:]}")


def run_real_storm(version: str, per_host: int = 90, old_sample: int = 10,
                   say: Callable[[str], None] = print, keep: bool = False) -> RealStormResult:
    """The three ways on one fresh rig of ``version``; the rig is stopped (and removed, unless ``keep``)."""
    why = available()
    if why:
        raise RigError(why)
    work = tempfile.mkdtemp(prefix=f"one-hooks-bench-rig-{version}-")
    config = os.path.join(work, "one-hooks.conf")
    with open(os.path.join(work, "scenario"), "w") as fh:
        fh.write(HEALTHY_SCENARIO)
    with open(config, "w") as fh:
        fh.write(_config(work))
    # The hooks run with the environment the rig's onehem-server was started with.
    rig = Rig(version, os.path.join(work, "rig"), 0, {
        "ONE_HOOKS_CONFIG": config, "XDG_CACHE_HOME": os.path.join(work, "cache"), "PYTHONPATH": REPO,
        "PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": PYCACHE})
    try:
        say(f"      oned {version}: starting a rig ...")
        start_rigs([rig])
        say(f"      oned {version}: {per_host * len(HOSTS)} VMs on {', '.join(HOSTS)} ...")
        placement = _placement(rig, per_host)
        say(f"      oned {version}: storm 1, the ideal script ...")
        ideal = storm(rig, placement, IdealScript(rig, placement))
        say(f"      oned {version}: storm 2, one-hooks installed, hooks fired by oned's onehem ...")
        _installer(rig, config)
        with HookLog(rig, interval=POLL) as hooklog:
            began = time.time() - 1
            hooked = storm(rig, placement)
            stop_watchers(config)
            time.sleep(2)  # the last executions reach oned's records
        final = rig.vm_pool()
        running = {i for i in placement if i in final and final[i].state_name == "RUNNING"}
        calls = [c for c in rig.action_calls("resume", since=began) if c.accepted]
        per_vm: Dict[int, int] = {}
        for c in calls:
            per_vm[c.vm_id] = per_vm.get(c.vm_id, 0) + 1
        failures = [f"hook {r.hook_id} execution {r.execution_id}: exit {r.code}"
                    for r in hooklog.records.values() if r.code != 0 and r.timestamp >= began]
        gaps = sum(len(hooklog.gaps(h)) for h in {k[0] for k in hooklog.records})
        _installer(rig, config, "--uninstall")
        say(f"      oned {version}: the old procedure, onevm resume one VM after another, {old_sample} VMs ...")
        notes = []
        try:
            per_call: Optional[float] = old_procedure(rig, placement, old_sample)
        except RigError as exc:
            per_call = None
            notes.append(f"old procedure not measured: {exc}")
        return RealStormResult(
            version, len(placement), hooked, ideal, per_call, old_sample,
            false_failures(read_audit_log(os.path.join(work, "one-hooks.log")), running), failures, gaps,
            len(calls), sum(1 for n in per_vm.values() if n > 1), notes)
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
        if keep and work:
            say(f"      oned {version}: its files (one-hooks.log, rig/oned-{version}/one/var) are kept in {work}")
        elif work and not rig.processes():  # never remove a running rig's folder
            shutil.rmtree(work, ignore_errors=True)
