"""A throw-away simulated cloud with one-hooks installed, for the benchmarks.

Everything lives in one temporary directory: the remotes tree the simulated
oned runs hook commands from (filled by the real ``one-hooks-install``), the
configuration the hooks read, their log and state directory, and the
scenario of the node stand-in (``one_hooks/sim/node_standin``), which answers
``iscsiadm``/``multipath`` with real captured outputs. Nodes are reached
through a local ``[node] command`` (``env ONE_HOOKS_NODE={host} ...``): no
sshd, but the same argv path; each call is one "node session", counted from
the stand-in's log.
"""
from __future__ import annotations

import collections
import functools
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from typing import Dict, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from one_hooks import sim as sim_pkg  # noqa: E402
from one_hooks.oned.model import LcmState, VmState  # noqa: E402
from one_hooks.sim.lcm import INSTANT, OnedTiming  # noqa: E402
from one_hooks.sim.oned import SimOned  # noqa: E402
from one_hooks.sim.server import Latency  # noqa: E402

STANDIN = os.path.join(os.path.dirname(sim_pkg.__file__), "node_standin")

#: Every host's storage is healthy: one LOGGED_IN session with its disk running,
#: its node record, healthy multipath (real captures, see node_standin/README.md).
HEALTHY_SCENARIO = "*  session-P3  session-P3-healthy\n*  node  node-healthy\n*  multipath  multipath-healthy\n"


#: Compiled bytecode of the checkout, kept outside it (a pip install compiles
#: it at install time; without it every hook would pay ~40 ms of compiling).
PYCACHE = os.path.join(tempfile.gettempdir(), "one-hooks-bench-pycache")


#: An interpreter laid out like a regular (non-editable) install, as install.sh
#: makes: a venv whose one .pth file lists the checkout and the libraries'
#: directories. The development venv runs an editable-install finder and
#: setuptools' distutils hook at every start (~15 ms of CPU per process) that a
#: production venv does not; hooks and baselines alike run on this one.
BENCH_VENV = os.path.join(tempfile.gettempdir(), "one-hooks-bench-venv")


@functools.lru_cache(maxsize=None)
def production_python() -> str:
    """The bench's interpreter (made once): a plain venv seeing the checkout and the libraries."""
    import sysconfig

    python = os.path.join(BENCH_VENV, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", BENCH_VENV],
                       check=True, capture_output=True, timeout=120)
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    here = sysconfig.get_paths()
    lines = [REPO] + sorted({here["purelib"], here["platlib"]})
    with open(os.path.join(site, "one-hooks-bench.pth"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return python


def hook_env() -> Dict[str, str]:
    """The environment hook processes get: ours, the package on PYTHONPATH, bytecode cached."""
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = ""  # empty means unset, and overrides an inherited 1
    env["PYTHONPYCACHEPREFIX"] = PYCACHE
    return env


def compile_package() -> None:
    """Write the package's bytecode under PYCACHE, as an installed package would have it.

    With a cache prefix Python looks for every module's bytecode there, so the
    libraries hooks and baselines import are warmed too: no run pays compiling.
    """
    env = hook_env()
    python = production_python()
    subprocess.run([python, "-m", "compileall", "-q", os.path.join(REPO, "one_hooks")],
                   env=env, check=True, capture_output=True, timeout=300)
    warm = ("import one_hooks.hooks.entry, one_hooks.recovery.engine, one_hooks.node.gate, one_hooks.oned.client, "
            "one_hooks.install.main, one_hooks.cli, configobj, validate, lxml.etree\n"
            "try:\n    import pyone\nexcept ImportError:\n    pass\n")
    subprocess.run([python, "-c", warm], env=env, check=True, capture_output=True, timeout=300)


class BenchCloud:
    """A started SimOned, a temp dir, a config, and (optionally) one-hooks installed."""

    def __init__(self, latency: Latency, boot_seconds: float,
                 install: bool = True, scenario: str = HEALTHY_SCENARIO,
                 node_command: Optional[str] = None, timing: OnedTiming = INSTANT) -> None:
        self.dir = tempfile.mkdtemp(prefix="one-hooks-bench-")
        self.remotes = os.path.join(self.dir, "remotes")
        self.state_dir = os.path.join(self.dir, "state")
        self.log_file = os.path.join(self.dir, "one-hooks.log")
        self.standin_log = os.path.join(self.dir, "node-sessions.tsv")
        self.scenario = os.path.join(self.dir, "scenario")
        with open(self.scenario, "w") as fh:
            fh.write(scenario)
        self.sim = SimOned(latency=latency, boot_seconds=boot_seconds, timing=timing,
                           users={"oneadmin": secrets.token_hex(8)}, remotes_dir=self.remotes)
        self.sim.start()
        self.auth_file = os.path.join(self.dir, "one_auth")
        with open(self.auth_file, "w") as fh:
            fh.write(self.sim.session + "\n")
        os.chmod(self.auth_file, 0o600)
        self.config = os.path.join(self.dir, "one-hooks.conf")
        with open(self.config, "w") as fh:
            fh.write(self._config_text(node_command))
        env = hook_env()
        env.update({"ONE_HOOKS_CONFIG": self.config, "ONE_XMLRPC": self.sim.endpoint,
                    "ONE_AUTH": self.auth_file,
                    # the hooks' settings snapshot (one_hooks.hooks.settings_cache) goes with the cloud
                    "XDG_CACHE_HOME": os.path.join(self.dir, "cache")})
        self.env = env
        self.sim.set_hook_env(env)
        if install:
            self.install()

    def _config_text(self, node_command: Optional[str]) -> str:
        """The hooks' configuration: [recovery] and [iscsi] as shipped (settle window 240 s,
        detached), oned and node retries and the gate's waits shortened (nothing fails here)."""
        command = node_command or (
            f"env ONE_HOOKS_NODE={{host}} ONE_HOOKS_STANDIN_SCENARIO={self.scenario} "
            f"ONE_HOOKS_STANDIN_LOG={self.standin_log} PATH={STANDIN}:/usr/bin:/bin")
        return (
            f"[oned]\nendpoint = {self.sim.endpoint}\nauth_file = {self.auth_file}\n"
            "retry_delay = 0.2\n"
            f"[node]\ncommand = {command}\ntimeout = 20\n"
            # No sudo in front: each node call is then exactly one stand-in line.
            "[iscsi]\niscsiadm = iscsiadm\ncheck_by_path = no\ndeadline = 30\nretry_interval = 1\n"
            f"[recovery]\nstate_dir = {self.state_dir}\nretry_delay = 1\n"
            f"[log]\nfile = {self.log_file}\n")

    def install(self) -> None:
        """The real ``one-hooks-install``: shims under the temp remotes, hooks registered."""
        proc = subprocess.run(
            [sys.executable, "-m", "one_hooks.install", "--remotes", self.remotes,
             "--config", self.config, "--python", production_python()],
            env=self.env, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"one-hooks-install failed ({proc.returncode}): "
                               f"{proc.stdout[-800:]} {proc.stderr[-800:]}")

    def drop_vm_hooks(self) -> None:
        """Delete the two VM hooks (through the API): only host-reconnect stays registered."""
        server = xmlrpc.client.ServerProxy(self.sim.endpoint)
        for hook in list(self.sim.cloud.tables.hooks.values()):
            if hook.name != "one-hooks-host-reconnect":
                ok, body, _ = server.one.hook.delete(self.sim.session, hook.id)
                if not ok:
                    raise RuntimeError(f"one.hook.delete {hook.id}: {body}")

    # --- the cloud ------------------------------------------------------------

    def populate(self, hosts: int, vms_per_host: int) -> Dict[int, List[int]]:
        """``hosts`` MONITORED hosts with ``vms_per_host`` RUNNING VMs each."""
        layout: Dict[int, List[int]] = {}
        for h in range(hosts):
            host_id = self.sim.add_host(f"node-{h:03d}")
            layout[host_id] = [self.sim.add_vm(f"vm-{h:03d}-{v:03d}", host_id)
                               for v in range(vms_per_host)]
        return layout

    def all_running(self, vm_ids: List[int]) -> bool:
        """Every VM ACTIVE/RUNNING."""
        with self.sim.cloud.lock:
            return all(self.sim.cloud.tables.vms[i].state == VmState.ACTIVE
                       and self.sim.cloud.tables.vms[i].lcm_state == LcmState.RUNNING for i in vm_ids)

    def wait_running(self, vm_ids: List[int], timeout: float, poll: float = 0.02) -> Optional[float]:
        """Monotonic time when all are RUNNING, or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.all_running(vm_ids):
                return time.monotonic()
            time.sleep(poll)
        return None

    def resumes(self) -> collections.Counter:
        """How many times each VM was resumed (from the sim's action log)."""
        return collections.Counter(vm for _, vm, action, _ in self.sim.action_log if action == "resume")

    def node_sessions(self) -> collections.Counter:
        """Node command runs per host (one stand-in line each)."""
        counts: collections.Counter = collections.Counter()
        try:
            with open(self.standin_log) as fh:
                for line in fh:
                    counts[line.split("\t", 1)[0]] += 1
        except FileNotFoundError:
            pass
        return counts

    def hook_runs(self) -> int:
        """Hook processes onehem (the sim's runner) started."""
        return self.sim.runner.started

    def watchers_cpu(self) -> float:
        """CPU seconds used so far by host-reconnect's detached settle watchers.

        They run in sessions of their own, outside the hooks' wait()ed-for
        process trees, so RUSAGE_CHILDREN never sees them: read /proc.
        """
        from one_hooks.hooks.entry import running_watchers

        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in running_watchers(self.config):
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        return total

    def close(self) -> None:
        """Stop the settle watchers and the sim, remove the temp dir."""
        from one_hooks.hooks.entry import stop_watchers

        stop_watchers(self.config)
        self.sim.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
