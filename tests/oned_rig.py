"""A real OpenNebula front-end in the loop: ``../shared/opennebula/oned-rig``, driven from Python.

The rig (see ``../shared/opennebula/README.md``) is a real oned 6.10.5 or 7.4.0 with
dummy drivers, a real ``onehem-server`` running hooks, three hosts ``h1 h2 h3`` and
an outage switch per host. This module is shared by the integration tests
(``tests/plugin_rig.py``) and the real-oned storm of ``bench/``. It owns:

* finding the rigs (beside the repository, as CI clones it) and free ports for them;
* starting rigs (several at once), reading their environment, and stopping them
  for sure: a rig whose folder disappears while it runs forks oneds without end,
  so :meth:`Rig.stop` falls back to killing every process group of the rig;
* setting a cloud up through oned's own XML-RPC (VMs on given hosts, user
  template attributes, locks, user poweroffs) and outages through the rig's script;
* reading what oned itself says happened: VM states and history, every
  ``one.vm.action`` call in ``oned.log``, each VM's ``vm.log``, the hook
  execution records (``one.hooklog.info``).

Nothing here decides whether one-hooks did right: the tests do, from these facts.
"""
from __future__ import annotations

import base64
import concurrent.futures
import fcntl
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
import xmlrpc.client
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

REPO = Path(__file__).resolve().parent.parent
#: Where CI has the rigs: ``../shared/opennebula`` beside the clone. ``ONE_HOOKS_RIGS``
#: names another place (a git worktree elsewhere than the clone).
SHARED = Path(os.environ.get("ONE_HOOKS_RIGS") or REPO.parent / "shared" / "opennebula")
VERSIONS = ("6.10.5", "7.4.0")
HOSTS = ("h1", "h2", "h3")

#: Ports a rig with base B uses lie in B-532 .. B+1491 (hook manager, XML-RPC, gRPC, monitord).
SPAN_BELOW, SPAN_ABOVE = 532, 1491
#: Bases are drawn from here: below Linux's ephemeral range (32768-60999), above the
#: rigs' fixed defaults and the bases other helpers use by hand (2633, 2643, 4633, 4843).
BASE_RANGE = (8000, 30000)
PORT_LOCK = "/tmp/one-hooks-oned-rig-ports.lock"

# oned's log time stamps: ctime without the newline, e.g. "Fri Dec  4 17:27:14 2026".
_CTIME = r"\w{3} \w{3} +\d{1,2} \d\d:\d\d:\d\d \d{4}"
# "Req:8576 UID:0 IP:127.0.0.1 one.vm.action invoked , "resume", 0" (6.10) or
# "... one.vm.action invoked resume, 0" (7.4); then "Req:8576 UID:0 one.vm.action result SUCCESS, 0".
_INVOKED = re.compile(rf"^({_CTIME}) \[Z\d+\]\[ReM\]\[\w\]: Req:(\d+) UID:\d+ IP:\S+ one\.vm\.action "
                      r"invoked (?:, )?\"?([\w-]+)\"?, (\d+)")
_RESULT = re.compile(rf"^({_CTIME}) \[Z\d+\]\[ReM\]\[\w\]: Req:(\d+) UID:\d+ one\.vm\.action result (\w+)")
_VMLOG = re.compile(rf"^({_CTIME}) \[Z\d+\]\[(\w+)\]\[(\w)\]: (.*)$")
# one-hooks' log file: "2026-12-04T17:34:59+0000 one-hooks-host-reconnect[16100] WARNING VM 12 ..."
_AUDIT = re.compile(r"^\S+ (\S+)\[\d+\] (\w+) (.*)$")

#: VM and LCM states by name (oned's include/VirtualMachine.h; the same in 6.10 and 7.4).
VM_STATES = {0: "INIT", 1: "PENDING", 2: "HOLD", 3: "ACTIVE", 4: "STOPPED", 5: "SUSPENDED", 6: "DONE",
             8: "POWEROFF", 9: "UNDEPLOYED"}
LCM_STATES = {0: "LCM_INIT", 1: "PROLOG", 2: "BOOT", 3: "RUNNING", 12: "SHUTDOWN", 16: "UNKNOWN",
              18: "SHUTDOWN_POWEROFF", 19: "BOOT_UNKNOWN", 20: "BOOT_POWEROFF"}
HOST_STATES = {0: "INIT", 2: "MONITORED", 3: "ERROR", 4: "DISABLED", 8: "OFFLINE"}
#: History ACTION of a VM powered off by the monitor (the outage's mark).
ACTION_MONITOR = 44


#: Written in a rig's DIR at start: the process that owns the rig (see :func:`sweep_orphans`).
OWNER_FILE = "oned-rig.owner"


class RigError(Exception):
    """A rig that cannot be started, stopped or asked something."""


def available() -> Optional[str]:
    """None when the rigs are here, else why not (a user's fresh clone has no ../shared)."""
    script = SHARED / "oned-rig"
    if not script.is_file():
        return (f"no real OpenNebula rigs: {script} does not exist (CI has ../shared beside the clone; "
                "ONE_HOOKS_RIGS=DIR names another place)")
    return None


# --- ports ----------------------------------------------------------------------------


def _port_free(port: int) -> bool:
    """Nothing listens on ``port`` (TCP) and nothing is bound to it (UDP) on loopback."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def span(base: int) -> range:
    """Every port a rig with this base may use."""
    return range(base - SPAN_BELOW, base + SPAN_ABOVE + 1)


def pick_bases(count: int, rng: Optional[random.Random] = None) -> List[int]:
    """``count`` port bases whose whole spans are free now and do not overlap each other."""
    rng = rng or random.Random()
    chosen: List[int] = []
    for _ in range(200):
        if len(chosen) == count:
            return chosen
        base = rng.randrange(BASE_RANGE[0], BASE_RANGE[1])
        if any(abs(base - other) <= SPAN_BELOW + SPAN_ABOVE for other in chosen):
            continue
        if all(_port_free(p) for p in span(base)):
            chosen.append(base)
    raise RigError(f"no free port span of {SPAN_BELOW + SPAN_ABOVE + 1} ports in {BASE_RANGE} for {count} rig(s)")


# --- one rig --------------------------------------------------------------------------


@dataclass
class VmView:
    """A VM as oned shows it: states, last host, user template, history records."""

    id: int
    name: str
    state: int
    lcm_state: int
    host: str
    user_template: Dict[str, str]
    locked: bool
    #: (SEQ, ACTION, STIME, RSTIME, RETIME) of each history record, oldest first
    history: List[Tuple[int, int, int, int, int]] = field(default_factory=list)

    @property
    def state_name(self) -> str:
        """RUNNING, UNKNOWN, POWEROFF... (the LCM state when ACTIVE)."""
        if self.state == 3:
            return LCM_STATES.get(self.lcm_state, f"LCM_{self.lcm_state}")
        return VM_STATES.get(self.state, f"STATE_{self.state}")

    @property
    def last_action(self) -> int:
        """ACTION of the last history record (0 without one)."""
        return self.history[-1][1] if self.history else 0


@dataclass(frozen=True)
class ActionCall:
    """One ``one.vm.action`` request as oned logged it."""

    when: float          #: epoch seconds, 1 s resolution (oned's log)
    action: str
    vm_id: int
    accepted: Optional[bool]  #: None while no result line was seen


@dataclass(frozen=True)
class HookRecord:
    """One hook execution record (``HOOK_EXECUTION_RECORD``)."""

    hook_id: int
    execution_id: int
    timestamp: int
    code: int
    stdout: str
    arguments: str


def _text(node: Optional[ET.Element], path: str, default: str = "") -> str:
    found = node.find(path) if node is not None else None
    if found is None or found.text is None:
        return default
    return found.text


def _int(node: Optional[ET.Element], path: str, default: int = 0) -> int:
    text = _text(node, path)
    return int(text) if text.strip().lstrip("-").isdigit() else default


def parse_vm(element: ET.Element) -> VmView:
    """A ``<VM>`` element of ``one.vm.info`` or ``one.vmpool.info``."""
    history = [(_int(h, "SEQ"), _int(h, "ACTION"), _int(h, "STIME"), _int(h, "RSTIME"), _int(h, "RETIME"))
               for h in element.findall("HISTORY_RECORDS/HISTORY")]
    history.sort()
    user = {child.tag: (child.text or "") for child in element.findall("USER_TEMPLATE/*")}
    lock = element.find("LOCK")
    return VmView(_int(element, "ID"), _text(element, "NAME"), _int(element, "STATE"),
                  _int(element, "LCM_STATE"), _text(element, "HISTORY_RECORDS/HISTORY[last()]/HOSTNAME"),
                  user, lock is not None and _int(lock, "LOCKED") > 0, history)


def oned_time(stamp: str) -> float:
    """Epoch seconds of an oned log time stamp (local time, as oned writes it)."""
    return time.mktime(time.strptime(" ".join(stamp.split()), "%a %b %d %H:%M:%S %Y"))


class Rig:
    """One rig: ``oned-rig VERSION DIR`` with its own ports, started and stopped from here."""

    def __init__(self, version: str, directory: Union[str, Path], base: int,
                 extra_env: Optional[Mapping[str, str]] = None) -> None:
        self.version = version
        self.dir = Path(directory)
        self.base = base
        self.extra_env = dict(extra_env or {})
        self.env: Dict[str, str] = {}
        self._session = ""
        self._tls = threading.local()

    # --- life cycle ---------------------------------------------------------------

    @property
    def root(self) -> Path:
        """The unpacked front-end (``DIR/oned-VERSION``)."""
        return self.dir / f"oned-{self.version}"

    @property
    def remotes(self) -> Path:
        """oned's remotes directory; hook COMMANDs resolve under its ``hooks/``."""
        return self.root / "one" / "var" / "remotes"

    def _script_env(self) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("ONE_XMLRPC", "ONE_AUTH", "ONE_LOCATION", "ONED_RIG", "RUBYLIB", "ONE_GRPC",
                            "ONE_ZMQ")}
        env.update(self.extra_env)
        env.pop("ONED_RIG_PORT_BASE", None)
        if self.base:  # only start uses it; the other commands read the ports the rig stored
            env["ONED_RIG_PORT_BASE"] = str(self.base)
        return env

    def script(self, *args: str, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess:
        """``oned-rig VERSION DIR ARGS...`` (its progress goes to stderr)."""
        proc = subprocess.run([str(SHARED / "oned-rig"), self.version, str(self.dir), *args],
                              env=self._script_env(), capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RigError(f"oned-rig {self.version} {' '.join(args)} exited {proc.returncode}: "
                           f"{(proc.stdout + proc.stderr)[-1500:]}")
        return proc

    def begin_start(self) -> subprocess.Popen:
        """Launch ``start`` (cold: unpack, fresh DB, h1..h3 MONITORED); :meth:`end_start` waits."""
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / OWNER_FILE).write_text(_process_identity(os.getpid()))
        log = open(self.dir / "start.log", "wb")
        try:
            return subprocess.Popen([str(SHARED / "oned-rig"), self.version, str(self.dir), "start"],
                                    env=self._script_env(), stdout=subprocess.PIPE, stderr=log)
        finally:
            log.close()

    def end_start(self, proc: subprocess.Popen, timeout: float = 300.0) -> None:
        """Wait for ``start``; read the rig's environment. A rig that did not come up is an error."""
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise RigError(f"oned-rig {self.version} start took over {timeout:g} s: "
                           f"{self._start_log()}") from None
        if proc.returncode != 0:
            raise RigError(f"oned-rig {self.version} start exited {proc.returncode}: {self._start_log()}")
        self.env = self._evaluate(out.decode())
        self._session = Path(self.env["ONE_AUTH"]).read_text().strip()

    def _start_log(self) -> str:
        try:
            return (self.dir / "start.log").read_text(errors="replace")[-1500:]
        except OSError:
            return "(no start.log)"

    def _evaluate(self, lines: str) -> Dict[str, str]:
        """The environment the rig's ``export``/``unset`` lines make, evaluated by bash itself."""
        proc = subprocess.run(["bash", "-c", 'eval "$1" && env -0', "rig-env", lines],
                              env=self._script_env(), capture_output=True, timeout=30)
        if proc.returncode != 0:
            raise RigError(f"cannot evaluate the rig's env lines: {proc.stderr.decode()[-500:]}")
        env = dict(item.split("=", 1) for item in proc.stdout.decode().split("\0") if "=" in item)
        for key in ("ONE_XMLRPC", "ONE_AUTH", "ONE_LOCATION"):
            if key not in env:
                raise RigError(f"the rig's env lines lack {key}: {lines!r}")
        return env

    def stop(self) -> None:
        """Stop the rig; if that fails or leaves processes behind, kill its process groups."""
        problem = ""
        try:
            self.script("stop", timeout=90)
        except (RigError, subprocess.TimeoutExpired, OSError) as exc:
            problem = str(exc)
        if self.processes():
            self.kill()
        if problem:
            raise RigError(f"stop failed ({problem}); its processes were killed")

    def processes(self) -> List[int]:
        """PIDs of live processes that belong to this rig (run from, or named with, its folder)."""
        root = str(self.root.resolve()) if self.root.exists() else str(self.root)
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
                with open(f"/proc/{entry}/stat") as fh:
                    zombie = fh.read().rsplit(")", 1)[1].split()[0] == "Z"
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                continue
            if not zombie and (root in cmdline or cwd == root or cwd.startswith(root + "/")):
                found.append(int(entry))
        return found

    def kill(self, rounds: int = 50) -> None:
        """SIGKILL every process group holding a process of this rig, until none is left."""
        for _ in range(rounds):
            pids = self.processes()
            if not pids:
                return
            groups = set()
            for pid in pids:
                try:
                    groups.add(os.getpgid(pid))
                except OSError:
                    pass
            for group in groups - {os.getpgrp()}:
                try:
                    os.killpg(group, signal.SIGKILL)
                except OSError:
                    pass
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.1)
        raise RigError(f"rig {self.root}: processes still alive after {rounds} rounds of SIGKILL: "
                       f"{self.processes()}")

    # --- oned's API -----------------------------------------------------------------

    def _proxy(self) -> xmlrpc.client.ServerProxy:
        proxy = getattr(self._tls, "proxy", None)
        if proxy is None:
            proxy = self._tls.proxy = xmlrpc.client.ServerProxy(self.env["ONE_XMLRPC"])
        return proxy

    def try_call(self, method: str, *args: Any) -> Tuple[bool, Any]:
        """``(success, value or message)`` of one XML-RPC call (session added)."""
        answer = getattr(self._proxy(), method)(self._session, *args)
        return bool(answer[0]), answer[1]

    def call(self, method: str, *args: Any) -> Any:
        """The value of one XML-RPC call; a refusal is a :class:`RigError`."""
        ok, value = self.try_call(method, *args)
        if not ok:
            raise RigError(f"{method}{args!r}: {value}")
        return value

    def version_string(self) -> str:
        """oned's own idea of its version."""
        return str(self.sure_call("one.system.version"))

    def host_ids(self) -> Dict[str, int]:
        """Host name -> ID."""
        pool = ET.fromstring(self.sure_call("one.hostpool.info"))
        return {_text(h, "NAME"): _int(h, "ID") for h in pool.findall("HOST")}

    def host_states(self) -> Dict[str, str]:
        """Host name -> state name."""
        pool = ET.fromstring(self.sure_call("one.hostpool.info"))
        return {_text(h, "NAME"): HOST_STATES.get(_int(h, "STATE"), str(_int(h, "STATE")))
                for h in pool.findall("HOST")}

    def template_id(self, name: str = "tiny") -> int:
        """ID of a VM template by name (the rig makes ``tiny``)."""
        pool = ET.fromstring(self.sure_call("one.templatepool.info", -2, -1, -1))
        for t in pool.findall("VMTEMPLATE"):
            if _text(t, "NAME") == name:
                return _int(t, "ID")
        raise RigError(f"no VM template named {name!r}")

    def sure_call(self, method: str, *args: Any, tries: int = 5) -> Any:
        """:meth:`call` for reads and for setting a cloud up: a refusal is tried again after a second.

        Under load oned's sqlite answers "database is locked" and the request
        fails with a misleading message ("User couldn't be authenticated",
        "cluster [0] does not have any datastore of type SYSTEM_DS"). A read,
        or a refused call, changed nothing, so trying it again is safe. (Never
        for the calls under test: those are one-hooks' own.)
        """
        for attempt in range(tries):
            ok, value = self.try_call(method, *args)
            if ok:
                return value
            if attempt + 1 < tries:
                time.sleep(1.0)
        raise RigError(f"{method}{args!r}: {value} (tried {tries} times)")

    def create_vm(self, name: str, host_id: int, user_template: Optional[Mapping[str, str]] = None,
                  template_id: Optional[int] = None, tries: int = 3) -> int:
        """A VM of the template, on hold, its user template set, deployed on ``host_id``.

        A deploy refused half-way under load can leave the VM on hold with a
        history row oned cannot write again ("Cannot update virtual machine
        history"): that VM is deleted and another one made.
        """
        tid = self.template_id() if template_id is None else template_id
        problem = ""
        for _ in range(tries):
            vm_id = int(self.sure_call("one.template.instantiate", tid, name, True, "", False))
            try:
                if user_template:
                    text = "\n".join(f'{key} = "{value}"' for key, value in user_template.items())
                    self.sure_call("one.vm.update", vm_id, text, 1)
                self.sure_call("one.vm.deploy", vm_id, host_id, False, -1, tries=2)
                return vm_id
            except RigError as exc:
                problem = str(exc)
                self.try_call("one.vm.recover", vm_id, 3)  # delete
        raise RigError(f"cannot make VM {name} on host {host_id}: {problem}")

    def vm_pool(self) -> Dict[int, VmView]:
        """Every VM but DONE ones (short pool bodies: the last history record only)."""
        pool = ET.fromstring(self.sure_call("one.vmpool.info", -2, -1, -1, -1))
        return {vm.id: vm for vm in map(parse_vm, pool.findall("VM"))}

    def vm(self, vm_id: int) -> VmView:
        """One VM with all its history records."""
        return parse_vm(ET.fromstring(self.sure_call("one.vm.info", vm_id)))

    def wait_vms(self, vm_ids: Iterable[int], predicate: Callable[[VmView], bool], timeout: float,
                 poll: float = 0.5) -> Dict[int, VmView]:
        """Poll the pool until every VM satisfies ``predicate``; the last look either way."""
        wanted = sorted(vm_ids)
        deadline = time.monotonic() + timeout
        while True:
            pool = self.vm_pool()
            if all(i in pool and predicate(pool[i]) for i in wanted) or time.monotonic() >= deadline:
                return {i: pool[i] for i in wanted if i in pool}
            time.sleep(poll)

    def wait_hosts(self, names: Iterable[str], state: str, timeout: float, poll: float = 0.5) -> bool:
        """True once every named host is in ``state``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = self.host_states()
            if all(states.get(n) == state for n in names):
                return True
            time.sleep(poll)
        return False

    def hook_ids(self) -> Dict[str, int]:
        """Registered hook name -> ID."""
        pool = ET.fromstring(self.sure_call("one.hookpool.info", -2, -1, -1))
        return {_text(h, "NAME"): _int(h, "ID") for h in pool.findall("HOOK")}

    def hook_records(self, hook_id: int = -1) -> List[HookRecord]:
        """Execution records oned keeps (the last 20 per hook; ``HookLog`` below keeps them all)."""
        log = ET.fromstring(self.sure_call("one.hooklog.info", -1, -1, hook_id, 0))
        records = []
        for r in log.findall("HOOK_EXECUTION_RECORD"):
            stdout = _text(r, "EXECUTION_RESULT/STDOUT")
            try:
                stdout = base64.b64decode(stdout).decode(errors="replace")
            except ValueError:
                pass
            records.append(HookRecord(_int(r, "HOOK_ID"), _int(r, "EXECUTION_ID"), _int(r, "TIMESTAMP"),
                                      _int(r, "EXECUTION_RESULT/CODE", -999), stdout, _text(r, "ARGUMENTS")))
        return records

    # --- the rig's switches -----------------------------------------------------------

    def outage(self, host: str, *args: str, timeout: float = 180.0) -> str:
        """``oned-rig ... outage HOST on|off [running|gone] [vmm-fail] [--wait]``; its report."""
        return self.script("outage", host, *args, timeout=timeout).stdout

    def outages(self, hosts: Sequence[str], *args: str) -> None:
        """:meth:`outage` for several hosts at once (as a power cut or a power return hits them)."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(hosts)) as pool:
            for done in [pool.submit(self.outage, host, *args) for host in hosts]:
                done.result()

    def dummy_action(self, action: str, lines: Sequence[str]) -> None:
        """Script the dummy VMM driver's answers (``success [SECONDS]``/``failure``), cycling."""
        path = self.root / "run" / "dummy_actions" / action
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(f"{line}\n" for line in lines))
        tmp.rename(path)

    # --- what oned wrote down -----------------------------------------------------------

    def action_calls(self, action: str = "resume", since: float = 0.0) -> List[ActionCall]:
        """Every ``one.vm.action ACTION`` request in oned.log (from ``since``), with its result."""
        pending: Dict[str, Tuple[float, str, int]] = {}
        calls: List[ActionCall] = []
        open_index: Dict[str, int] = {}
        with open(self.root / "one" / "var" / "oned.log", errors="replace") as fh:
            for line in fh:
                m = _INVOKED.match(line)
                if m:
                    when = oned_time(m.group(1))
                    if m.group(3) == action and when >= since:
                        pending[m.group(2)] = (when, m.group(3), int(m.group(4)))
                        calls.append(ActionCall(when, action, int(m.group(4)), None))
                        open_index[m.group(2)] = len(calls) - 1
                    continue
                m = _RESULT.match(line)
                if m and m.group(2) in pending:
                    when, name, vm_id = pending.pop(m.group(2))
                    calls[open_index.pop(m.group(2))] = ActionCall(when, name, vm_id, m.group(3) == "SUCCESS")
        return calls

    def vm_log(self, vm_id: int) -> List[Tuple[float, str, str]]:
        """``(epoch, module, message)`` of each line of the VM's ``vm.log``."""
        path = self.root / "one" / "var" / "vms" / str(vm_id) / "vm.log"
        lines = []
        try:
            with open(path, errors="replace") as fh:
                for line in fh:
                    m = _VMLOG.match(line.rstrip("\n"))
                    if m:
                        lines.append((oned_time(m.group(1)), m.group(2), m.group(4)))
        except FileNotFoundError:
            pass
        return lines


def read_audit_log(path: Union[str, Path]) -> List[Tuple[str, str, str]]:
    """``(program, level, message)`` of each line of one-hooks' log file (none if it is missing)."""
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return []
    return [(m.group(1), m.group(2), m.group(3)) for m in map(_AUDIT.match, text.splitlines()) if m]


def false_failures(log: Iterable[Tuple[str, str, str]], running: Iterable[int]) -> List[str]:
    """Lines of one-hooks' log at ERROR, or saying ``failed``, that name a VM of ``running``."""
    up = set(running)
    return [f"{program} {level} {message}" for program, level, message in log
            if (level == "ERROR" or ": failed:" in message)
            and {int(n) for n in re.findall(r"\bVM (\d+)\b", message)} & up]


class HookLog:
    """Every hook execution record, gathered while they come (oned keeps only the last 20 per hook).

    A thread asks ``one.hooklog.info`` every ``interval`` seconds and keeps each
    record once; :meth:`gaps` names execution IDs that were pruned before a look.
    """

    def __init__(self, rig: Rig, interval: float = 1.0) -> None:
        self.rig = rig
        self.interval = interval
        self.records: Dict[Tuple[int, int], HookRecord] = {}
        self.errors: List[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"hooklog-{rig.version}", daemon=True)

    def __enter__(self) -> "HookLog":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.collect()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.collect()

    def collect(self) -> None:
        """One look; new records are kept."""
        try:
            for record in self.rig.hook_records():
                self.records.setdefault((record.hook_id, record.execution_id), record)
        except (RigError, OSError, xmlrpc.client.Error) as exc:
            self.errors.append(str(exc))

    def of(self, hook_id: int) -> List[HookRecord]:
        """One hook's records, in execution order."""
        return sorted((r for (h, _), r in self.records.items() if h == hook_id), key=lambda r: r.execution_id)

    def gaps(self, hook_id: int) -> List[int]:
        """Execution IDs of this hook that no look saw (pruned in between)."""
        seen = {r.execution_id for r in self.of(hook_id)}
        return [i for i in range(max(seen) + 1) if i not in seen] if seen else []


def start_rigs(rigs: Sequence[Rig], timeout: float = 300.0) -> None:
    """Start several rigs at once (their starts overlap); all come up or an error says which not.

    Port bases are chosen and the starts run under a lock file, so that two test
    sessions on one machine do not take the same ports between check and start.
    """
    with open(PORT_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            for rig, base in zip(rigs, pick_bases(len(rigs))):
                rig.base = base
            procs = [rig.begin_start() for rig in rigs]
            errors = []
            for rig, proc in zip(rigs, procs):
                try:
                    rig.end_start(proc, timeout)
                except RigError as exc:
                    errors.append(str(exc))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    if errors:
        raise RigError("; ".join(errors))


def _process_identity(pid: int) -> str:
    """``PID START_TICKS``: names one process, not a later one that got the same PID."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return f"{pid} {fh.read().rsplit(')', 1)[1].split()[19]}"
    except (OSError, IndexError):
        return f"{pid} ?"


def sweep_orphans(top: Path) -> List[str]:
    """Stop rigs under ``top`` whose owner process is gone; what was stopped.

    A test session killed outright (SIGKILL, a CI timeout) cannot stop its rigs;
    pytest later deletes old temporary folders, and a rig whose folder vanishes
    while it runs forks oneds without end. So each session first stops the
    orphans of earlier ones, and only those: a rig whose owner still runs
    belongs to a concurrent session and is left alone.
    """
    stopped = []
    owners = [*top.glob(f"*/*/{OWNER_FILE}"), *top.glob(f"*/*/*/{OWNER_FILE}")]
    for owner in sorted(owners):
        try:
            pid_text = owner.read_text().split()[0]
        except (OSError, IndexError):
            continue
        if pid_text.isdigit() and _process_identity(int(pid_text)) == owner.read_text().strip():
            continue
        for root in sorted(owner.parent.glob("oned-*")):
            version = root.name[len("oned-"):]
            if version not in VERSIONS:
                continue
            rig = Rig(version, owner.parent, 0)
            if rig.processes():
                try:
                    rig.stop()
                except RigError:
                    pass
                stopped.append(str(root))
        owner.unlink(missing_ok=True)
    return stopped
