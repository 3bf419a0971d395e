"""``one-hooks simulate``: a simulated cloud goes through a power outage and heals itself.

What runs is the real thing wherever this machine allows: the real hook
shims and ``python -m one_hooks hook ...`` processes, started by the
simulated oned's onehem-like runner exactly as oned starts them (base64
``$TEMPLATE`` on stdin, TIMEOUT, process groups), talking XML-RPC to the
simulated oned, and checking iSCSI through the node stand-in that replays
real ``iscsiadm`` captures. Only oned and the nodes' storage are simulated.

The story: a few hosts with ~20 VMs (priorities, an opted-out VM, a VM a user
powered off, a VM an admin locks during the outage, a VM whose first deploy
fails); one host whose iSCSI sessions come back only after a few looks, one
whose storage stays broken. The power goes (hosts ERROR, VMs UNKNOWN), comes
back (hosts MONITORED; on some hosts the first VM report says the VMs are
gone: POWEROFF with last action monitor), and the hooks do the rest.
Exit 0 when every VM ends as expected.

``--bench`` measures instead: hook process CPU time per VM event, and the wall
time to recover ``--vms`` VMs on ``--hosts`` hosts with the engine versus a
serial one-resume-at-a-time loop, in the same run against the same simulator.
"""
from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, TYPE_CHECKING, TextIO, Tuple

from .. import fsio
from ..config import Config
from ..errors import UsageError
from ..oned.model import LcmState, VmState
from .lcm import INSTANT, REAL_TIMING, OnedTiming

if TYPE_CHECKING:  # only for annotations: the demo imports the simulator lazily
    from .oned import SimOned

STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node_standin")
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True)
class Pace:
    """How fast the simulated world moves (seconds); ``timing``: the simulated oned's own pace."""

    boot: float
    settle: float
    settle_interval: float
    deadline: float
    retry_interval: float
    retry_delay: float
    poll: float
    timing: OnedTiming = INSTANT
    pickup_grace: float = 60.0


NORMAL = Pace(boot=1.0, settle=6.0, settle_interval=1.0, deadline=8.0, retry_interval=1.0,
              retry_delay=2.0, poll=1.0, timing=REAL_TIMING)
#: A real oned's pace, quicker: its LCM queue a third as slow, the hosts back within 2 s.
FAST = Pace(boot=0.2, settle=2.0, settle_interval=0.5, deadline=3.0, retry_interval=0.5,
            retry_delay=0.5, poll=0.5,
            timing=OnedTiming(lcm_base=0.1, lcm_service=0.007, dm_delay=0.002, host_spread=2.0,
                              reconcile_after=(0.1, 0.6)), pickup_grace=10.0)


class Stage:
    """A throwaway front-end: remotes with the shims, a config, a node scenario, a log."""

    def __init__(self, workdir: str) -> None:
        for char in " ,#'\"\t\n":
            if char in workdir:
                raise UsageError(f"simulate: work directory {workdir!r} must not contain {char!r}")
        self.workdir = workdir
        self.remotes = os.path.join(workdir, "remotes")
        self.conf = os.path.join(workdir, "one-hooks.conf")
        self.scenario = os.path.join(workdir, "node-scenario")
        self.log = os.path.join(workdir, "one-hooks.log")
        self.state = os.path.join(workdir, "state")
        self.auth = os.path.join(workdir, "one_auth")
        fsio.make_dirs(workdir, 0o700)

    def install_shims(self, python: str = sys.executable) -> None:
        """Copy the shipped shims under ``remotes/hooks/one-hooks`` with the interpreter filled in."""
        from ..install.files import render_shim, shipped_remotes
        from ..install.hook_templates import SHIM_DIR

        source = os.path.join(shipped_remotes(), "hooks", SHIM_DIR)
        target = os.path.join(self.remotes, "hooks", SHIM_DIR)
        fsio.make_dirs(target)
        for name in sorted(os.listdir(source)):
            data = render_shim(fsio.read_bytes(os.path.join(source, name)), python)
            fsio.atomic_write(os.path.join(target, name), data, fsio.FileMeta(0o755, os.getuid(), os.getgid()))

    def write_scenario(self, lines: Sequence[str]) -> None:
        """The node stand-in's answers per host (see node_standin/README.md)."""
        fsio.atomic_write(self.scenario, ("\n".join(lines) + "\n").encode())

    def write_config(self, pace: Pace, iscsi_check: bool = True, attempts: int = 3) -> Config:
        """The configuration every hook process reads (through ``$ONE_HOOKS_CONFIG``)."""
        from ..config import load

        node = (f"env ONE_HOOKS_NODE={{host}} ONE_HOOKS_STANDIN_SCENARIO={self.scenario} "
                f"ONE_HOOKS_STANDIN_STATE={self.state}/standin PATH={STANDIN}:/usr/bin:/bin")
        text = "\n".join([
            "[node]", f"command = {node}", "timeout = 20",
            "[iscsi]", f"check = {'yes' if iscsi_check else 'no'}", "iscsiadm = sudo -n iscsiadm",
            "check_by_path = no", "check_multipath = no", f"deadline = {pace.deadline}",
            f"retry_interval = {pace.retry_interval}", "cache_ttl = 2",
            "[recovery]", f"state_dir = {self.state}", f"settle_seconds = {pace.settle}",
            f"settle_interval = {pace.settle_interval}", "wait_running = 60",
            f"retry_delay = {pace.retry_delay}", "tier_timeout = 30", f"attempts = {attempts}",
            f"pickup_grace = {pace.pickup_grace}",
            "[oned]", "retries = 2", "retry_delay = 0.2", "timeout = 20",
            "[log]", f"file = {self.log}", "",
        ])
        fsio.atomic_write(self.conf, text.encode())
        return load(self.conf, environ={})

    def hook_env(self, sim: "SimOned") -> Dict[str, str]:
        """What a hook process needs: oned's endpoint and auth, our config, the package."""
        path = os.environ.get("PYTHONPATH", "")
        return {"ONE_XMLRPC": sim.endpoint, "ONE_AUTH": self.auth,  # type: ignore[attr-defined]
                "ONE_HOOKS_CONFIG": self.conf,
                # the hooks' settings snapshot (settings_cache) stays in the stage's directory
                "XDG_CACHE_HOME": os.path.join(os.path.dirname(self.conf), "cache"),
                "PYTHONPATH": PACKAGE_PARENT + (os.pathsep + path if path else "")}

    def wait_watchers(self, timeout: float) -> bool:
        """Wait for host-reconnect's detached settle watchers of this stage; False on timeout."""
        from ..hooks.entry import running_watchers

        deadline = time.monotonic() + timeout
        while running_watchers(self.conf):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def stop_watchers(self) -> None:
        """End this stage's settle watchers (the demo is over, their window need not run out)."""
        from ..hooks.entry import stop_watchers

        stop_watchers(self.conf)

    def start_sim(self, **kwargs: Any) -> "SimOned":
        """A started SimOned whose hooks run our shims from this stage."""
        from .oned import SimOned

        sim = SimOned(users={"oneadmin": secrets.token_hex(12)}, remotes_dir=self.remotes,
                      **kwargs)  # type: ignore[arg-type]
        sim.start()
        fsio.atomic_write(self.auth, (sim.session + "\n").encode(),
                          fsio.FileMeta(0o600, os.getuid(), os.getgid()))
        sim.set_hook_env(self.hook_env(sim))
        return sim

    def register_hooks(self, sim: "SimOned", config: Config) -> List[int]:
        """Register the three hooks as one-hooks-install would."""
        from ..install.hook_templates import HOOKS, allocate_text

        return [sim.add_hook(allocate_text(spec, config)) for spec in HOOKS]  # type: ignore[attr-defined]


# --- the story ------------------------------------------------------------------


@dataclass
class Expect:
    """What should become of one VM, and why."""

    vm_id: int
    name: str
    host: str
    decision: str
    reason: str
    running: bool
    resumes: Tuple[int, ...] = (1,)
    before: str = "RUNNING"


@dataclass
class Story:
    """The cloud built for the demo and what each VM should end as."""

    hosts: Dict[int, str] = field(default_factory=dict)
    expect: Dict[int, Expect] = field(default_factory=dict)
    poweroff_hosts: List[int] = field(default_factory=list)
    locked: Optional[int] = None
    slow_host: str = ""
    broken_host: str = ""


#: Words that mark a hook output line worth showing in the summary.
PROBLEM_WORDS = ("gate BROKEN", "gate UNKNOWN", "LOCKED", "gave up", ": failed:")

ROLES = (("db", "10"), ("app", "5"), ("web", ""), ("web", ""))


def build_story(sim: "SimOned", hosts: int, vms: int) -> Tuple[Story, List[str]]:
    """Hosts and VMs in the simulator, the node scenario lines, the expectations."""
    story = Story()
    for i in range(hosts):
        host_id = sim.add_host(f"node-{i + 1}")  # type: ignore[attr-defined]
        story.hosts[host_id] = f"node-{i + 1}"
        if i % 2 == 0:
            story.poweroff_hosts.append(host_id)
    names = list(story.hosts.values())
    ids = list(story.hosts)
    if len(names) >= 2:
        story.slow_host = names[1]
    if len(names) >= 3:
        story.broken_host = names[2]
    scenario = ["# host  query  capture  [after  later-capture]"]
    if story.slow_host:
        scenario.append(f"{story.slow_host} session-P3 session-P1-failed 3 session-P3-healthy")
    if story.broken_host:
        scenario.append(f"{story.broken_host} session-P3 session-P1-failed")
    scenario += ["* session-P3 session-P3-healthy", "* node node-healthy"]
    for n in range(vms):
        host_id = ids[n % len(ids)]
        host = story.hosts[host_id]
        role, priority = ROLES[n % len(ROLES)]
        template = {"ONE_HOOKS_PRIORITY": priority} if priority else {}
        special = ""
        if n == 4:
            special, template = "opt-out", {"ONE_HOOKS_RECOVER": "NO"}
        elif n == 5:
            special = "user-off"
        elif n == 8:
            special = "locked"
        elif n == 7:
            special = "flaky"
        name = {"opt-out": "batch", "user-off": "scratch", "locked": "legacy",
                "flaky": "flaky"}.get(special, role) + f"-{n}"
        vm_id = sim.add_vm(name, host_id, user_template=template)  # type: ignore[attr-defined]
        tier = f"priority {priority}" if priority else "priority 0"
        if host == story.broken_host and special != "user-off":
            e = Expect(vm_id, name, host, "left down", "iSCSI broken on its host", False, (0,))
        elif special == "opt-out":
            e = Expect(vm_id, name, host, "left down", "opted out (ONE_HOOKS_RECOVER=NO)", False, (0,))
        elif special == "user-off":
            e = Expect(vm_id, name, host, "left alone", "a user powered it off", False, (0,), "POWEROFF")
        elif special == "locked":
            e = Expect(vm_id, name, host, "reported", "locked during the outage", False, (0,))
            story.locked = vm_id
        elif special == "flaky":
            e = Expect(vm_id, name, host, "resumed twice", "first deploy fails; the hook that resumed "
                       "it retries", True, (2,))
            sim.fail_deploys(1, vm_id=vm_id)  # type: ignore[attr-defined]
        elif host == story.slow_host:
            e = Expect(vm_id, name, host, "resumed", f"{tier}, after iSCSI came back", True)
        else:
            e = Expect(vm_id, name, host, "resumed", tier, True)
        story.expect[vm_id] = e
    return story, scenario


def _counts(sim: "SimOned", story: Story) -> str:
    counts: Dict[str, int] = {}
    for vm_id in story.expect:
        name = sim.vm(vm_id).state_name  # type: ignore[attr-defined]
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def _watch(sim: "SimOned", story: Story, out: TextIO, t0: float, limit: float, poll: float) -> bool:
    """Print a line whenever the picture changes, until hooks are idle; False on timeout."""
    last = ""
    while time.monotonic() - t0 < limit:
        now = _counts(sim, story)
        busy = sim.runner.busy()  # type: ignore[attr-defined]
        line = f"{now}; hooks running/queued: {busy}"
        if line != last:
            print(f"  t+{time.monotonic() - t0:5.1f}s  {line}", file=out, flush=True)
            last = line
        if busy == 0 and sim.cloud.timeline.pending() == 0:  # type: ignore[attr-defined]
            return True
        time.sleep(poll)
    return False


def run_story(stage: Stage, hosts: int, vms: int, pace: Pace, out: TextIO, keep: bool = False) -> int:
    """The demo: build, outage, recovery, final table; 0 when everything is as expected."""
    from .oned import REAL_LATENCY

    config = stage.write_config(pace)
    stage.install_shims()
    sim = stage.start_sim(latency=REAL_LATENCY, boot_seconds=pace.boot, timing=pace.timing)
    try:
        story, scenario = build_story(sim, hosts, vms)
        stage.write_scenario(scenario)
        hook_ids = stage.register_hooks(sim, config)
        p = lambda text: print(text, file=out, flush=True)  # noqa: E731
        kept = f"work directory {stage.workdir} (kept)" if keep else "(--keep keeps its work directory)"
        p(f"simulated oned at {sim.endpoint}; hooks registered: {hook_ids}; {kept}")
        p(f"{len(story.hosts)} hosts, {len(story.expect)} VMs; iSCSI: {story.slow_host or '-'} comes back "
          f"after 3 looks, {story.broken_host or '-'} stays broken")
        user_off = [e.vm_id for e in story.expect.values() if e.before == "POWEROFF"]
        for vm_id in user_off:
            sim.user_poweroff(vm_id)
            p(f"a user powers off VM {vm_id} ({story.expect[vm_id].name}) before the outage")
        sim.settle(30)

        p("\n== power outage: every host stops answering (ERROR), its VMs go UNKNOWN ==")
        t0 = time.monotonic()
        for host_id in story.hosts:
            sim.host_error(host_id)
        _watch(sim, story, out, t0, 120, pace.poll)
        if story.locked is not None:
            sim.lock_vm(story.locked, 2)
            p(f"an admin locks VM {story.locked} during the outage (onevm lock --manage)")

        p("\n== power back: hosts answer again (MONITORED) over a few seconds; on "
          f"{', '.join(story.hosts[h] for h in story.poweroff_hosts) or 'no host'} the first VM "
          "report says the VMs are gone (POWEROFF, last action monitor) ==")
        t0 = time.monotonic()
        sim.hosts_return(list(story.hosts), reports={h: set() for h in story.poweroff_hosts})
        done = _watch(sim, story, out, t0, 300, pace.poll)
        p(f"recovery took {time.monotonic() - t0:.1f} s" + ("" if done else " (timed out)"))
        if not done:
            return 1
        code = _final(sim, story, hook_ids, out)
        # The settle watchers' windows over, the picture is final (a watched host's VMs are still theirs).
        stage.wait_watchers(pace.settle + 60)
        _status(stage, sim, out)
        return code
    finally:
        stage.stop_watchers()
        sim.stop()


def _final(sim: "SimOned", story: Story, hook_ids: Sequence[int], out: TextIO) -> int:
    p = lambda text: print(text, file=out, flush=True)  # noqa: E731
    resumes: Dict[int, int] = {}
    for _, vm_id, action, _ in sim.action_log:  # type: ignore[attr-defined]
        if action == "resume":
            resumes[vm_id] = resumes.get(vm_id, 0) + 1
    rows = [("VM", "NAME", "HOST", "BEFORE", "AFTER", "RESUMES", "DECISION", "REASON", "CHECK")]
    bad = 0
    for vm_id, e in sorted(story.expect.items()):
        vm = sim.vm(vm_id)  # type: ignore[attr-defined]
        running = vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.RUNNING
        count = resumes.get(vm_id, 0)
        ok = running == e.running and count in e.resumes
        bad += not ok
        rows.append((str(vm_id), e.name, e.host, e.before, vm.state_name, str(count), e.decision,
                     e.reason, "ok" if ok else "UNEXPECTED"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    p("\n== final state ==")
    for r in rows:
        p("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    p("\n== hook executions (as onehook show lists them) ==")
    for hook_id in hook_ids:
        log = sim.hook_executions(hook_id)  # type: ignore[attr-defined]
        codes: Dict[int, int] = {}
        for record in log:
            codes[record.code] = codes.get(record.code, 0) + 1
        name = sim.hooks.get(hook_id, "").name  # type: ignore[attr-defined]
        summary = ", ".join(f"exit {c}: {n}" for c, n in sorted(codes.items())) or "never ran"
        p(f"hook {hook_id} {name}: {len(log)} run(s) kept; {summary}")
        shown: List[str] = []
        for record in log:
            for line in record.stdout.splitlines():
                # The lines an operator reads in onehook show: what blocked a VM.
                text = line.split(": ", 1)[1] if line.startswith("host node") else line
                if (record.code and any(w in line for w in PROBLEM_WORDS) and text not in shown
                        and len(shown) < 4):
                    shown.append(text)
                    p(f"    exec {record.execution_id} (exit {record.code}): {line}")
    p(f"\n{len(story.expect) - bad} of {len(story.expect)} VMs as expected" +
      ("" if not bad else f"; {bad} UNEXPECTED"))
    return 0 if bad == 0 else 1


def _status(stage: Stage, sim: "SimOned", out: TextIO) -> None:
    """What ``one-hooks status`` tells the operator now, run as the operator runs it."""
    import subprocess

    env = dict(os.environ, **stage.hook_env(sim))
    result = subprocess.run([sys.executable, "-m", "one_hooks", "status"], capture_output=True, text=True,
                            env=env, timeout=120, check=False)
    print(f"\n== one-hooks status (exit {result.returncode}: what an operator sees now) ==", file=out)
    print((result.stdout + result.stderr).rstrip(), file=out, flush=True)


# --- measuring ----------------------------------------------------------------------


def _outage(sim: "SimOned", host_ids: Sequence[int]) -> None:
    for host_id in host_ids:
        sim.host_error(host_id)  # type: ignore[attr-defined]
    for host_id in host_ids:
        sim.host_monitored(host_id)  # type: ignore[attr-defined]


def _wait_all_running(oned: object, vm_ids: Sequence[int], limit: float = 600.0) -> bool:
    wanted = set(vm_ids)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        running = {vm.id for vm in oned.vm_pool()  # type: ignore[attr-defined]
                   if vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.RUNNING}
        if wanted <= running:
            return True
        time.sleep(0.2)
    return False


def hook_cpu(stage: Stage, hook_env: Dict[str, str], payloads: Sequence[bytes], event: str) -> float:
    """Mean CPU seconds (user + system) of one hook process, run through its shim.

    ``event`` empty: a bare ``python -c pass`` per payload, the interpreter's own cost.
    """
    import base64
    import resource
    import subprocess

    argv = ([os.path.join(stage.remotes, "hooks", "one-hooks", event)] if event
            else [sys.executable, "-c", "pass"])
    env = dict(os.environ)
    env.update(hook_env)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for payload in payloads:
        subprocess.run(argv, input=base64.b64encode(payload), env=env, timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    spent = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return spent / max(1, len(payloads))


def run_bench(stage: Stage, hosts: int, vms: int, out: TextIO) -> int:
    """Hook CPU per VM event; engine vs serial loop for ``vms`` VMs on ``hosts`` hosts."""
    from . import xmlout
    from .oned import REAL_LATENCY
    from ..audit import Reporter
    from ..oned.client import Oned
    from ..recovery.engine import build_engine

    p = lambda text: print(text, file=out, flush=True)  # noqa: E731
    config = stage.write_config(NORMAL, iscsi_check=False)
    stage.install_shims()
    sim = stage.start_sim(latency=REAL_LATENCY, boot_seconds=NORMAL.boot, timing=NORMAL.timing)
    hook_env = stage.hook_env(sim)
    try:
        host_ids = [sim.add_host(f"node-{i + 1}") for i in range(hosts)]  # type: ignore[attr-defined]
        vm_ids = [sim.add_vm(f"vm-{n}", host_ids[n % hosts]) for n in range(vms)]  # type: ignore[attr-defined]
        oned = Oned(sim.endpoint, sim.session, timeout=60, retries=config.oned.retries,  # type: ignore[attr-defined]
                    retry_delay=config.oned.retry_delay)
        p(f"simulated oned {sim.endpoint}: {hosts} hosts, {vms} VMs, oned latency "  # type: ignore[attr-defined]
          f"{REAL_LATENCY.serial * 1000:.0f}+{REAL_LATENCY.parallel * 1000:.0f} ms per call, its LCM queue "
          f"{NORMAL.timing.lcm_base:g} s + {NORMAL.timing.lcm_service * 1000:g} ms per event, "
          f"boot {NORMAL.boot:g} s; iSCSI gate off (this compares resumes)")

        # Hook CPU: the event every VM fires in an outage (host still ERROR), then a real resume.
        probe = sim.add_host("cpu-probe")  # type: ignore[attr-defined]
        probes = [sim.add_vm(f"probe-{n}", probe) for n in range(10)]  # type: ignore[attr-defined]
        sim.host_error(probe)  # type: ignore[attr-defined]
        with sim.cloud.lock:  # type: ignore[attr-defined]
            payloads = [xmlout.pretty(xmlout.vm_element(
                sim.cloud.get_vm(v), prev=(VmState.ACTIVE, LcmState.RUNNING), payload=True)).encode()  # type: ignore[attr-defined]
                for v in probes]
        bare = hook_cpu(stage, hook_env, payloads, "")
        idle = hook_cpu(stage, hook_env, payloads, "vm-unknown")
        sim.host_monitored(probe)  # type: ignore[attr-defined]
        acting = hook_cpu(stage, hook_env, payloads, "vm-unknown")
        p(f"hook CPU per VM event: {idle * 1000:.0f} ms (host still in ERROR: left to host-reconnect), "
          f"{acting * 1000:.0f} ms (resume and wait RUNNING), mean of {len(payloads)} processes each; "
          f"a bare '{os.path.basename(sys.executable)} -c pass' costs {bare * 1000:.0f} ms here")

        _outage(sim, host_ids)
        calls0 = oned.calls
        t0 = time.monotonic()
        for vm in oned.vm_pool():
            if vm.id in vm_ids and vm.lcm_state == LcmState.UNKNOWN:
                oned.vm_action("resume", vm.id)
        ok_serial = _wait_all_running(oned, vm_ids)
        serial = time.monotonic() - t0
        serial_calls = oned.calls - calls0
        p(f"serial loop (one resume at a time, then wait): {serial:.1f} s for {vms} VMs, "
          f"{serial_calls} calls" + ("" if ok_serial else " (NOT all RUNNING)"))

        _outage(sim, host_ids)
        calls0 = oned.calls
        t0 = time.monotonic()
        quiet = logging.getLogger("one_hooks.bench")
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
        with build_engine(config, Reporter(echo=False, logger=quiet), oned=oned, who="bench",
                          honour_ledger=False) as engine:
            report = engine.recover_hosts(host_ids)
        ok_engine = _wait_all_running(oned, vm_ids)
        took = time.monotonic() - t0
        p(f"engine (max_parallel {config.recovery.max_parallel}, hosts in parallel, waits for RUNNING): "
          f"{took:.1f} s for {vms} VMs, {oned.calls - calls0} calls; {report.summary()}"
          + ("" if ok_engine else " (NOT all RUNNING)"))
        p(f"speed-up: {serial / took:.1f}x")
        return 0 if ok_serial and ok_engine and report.exit_code == 0 else 1
    finally:
        sim.stop()  # type: ignore[attr-defined]


# --- the command ------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``one-hooks simulate``."""
    parser.add_argument("--hosts", type=int, default=None, help="hosts (default 4; --bench 25)")
    parser.add_argument("--vms", type=int, default=None, help="VMs (default 20; --bench 1000)")
    parser.add_argument("--fast", action="store_true", help="shorter boots, waits and windows")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (config, log)")
    parser.add_argument("--bench", action="store_true",
                        help="measure hook CPU per event and engine vs serial recovery time instead")
    parser.epilog = "exit codes: 0 every VM ended as expected; 1 some did not; 2 bad arguments."


def run(args: argparse.Namespace, config: Config) -> int:
    """Entry point of ``one-hooks simulate`` (the configuration file is not used)."""
    hosts = args.hosts if args.hosts is not None else (25 if args.bench else 4)
    vms = args.vms if args.vms is not None else (1000 if args.bench else 20)
    if not 1 <= hosts <= 500 or not 1 <= vms <= 20000:
        raise UsageError("simulate: --hosts must be 1..500 and --vms 1..20000")
    if not args.bench and vms < 8:
        raise UsageError("simulate: the demo needs at least 8 VMs (--vms 8)")
    workdir = tempfile.mkdtemp(prefix="one-hooks-demo-")
    try:
        stage = Stage(workdir)
        if args.bench:
            return run_bench(stage, hosts, vms, sys.stdout)
        return run_story(stage, hosts, vms, FAST if args.fast else NORMAL, sys.stdout, keep=args.keep)
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            fsio.remove_tree(workdir)
