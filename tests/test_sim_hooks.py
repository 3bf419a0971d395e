"""The sim's onehem-like hook runner with real processes: stdin, argv, TIMEOUT, cap of 10, records."""
from __future__ import annotations

import base64
import sys
import time
import xmlrpc.client
from pathlib import Path
from typing import Callable

from lxml import etree

from one_hooks.sim.hookrun import MAX_PARALLEL, TIMEOUT_CODE


def _script(sim, name: str, body: str) -> str:
    """Write an executable under <remotes>/hooks/ and return its relative COMMAND."""
    hooks_dir = Path(sim.hooks.remotes_dir) / "hooks"
    hooks_dir.mkdir(parents=True, exist_ok=True)
    path = hooks_dir / name
    path.write_text(body)
    path.chmod(0o755)
    return name


def _hook(sim, name: str, command: str, extra: str = "", on: str = "UNKNOWN") -> int:
    return sim.add_hook(f'NAME = "{name}"\nTYPE = "state"\nRESOURCE = "VM"\nON = "{on}"\n'
                        f'COMMAND = "{command}"\n{extra}')


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_stdin_mode_gives_no_argv_and_the_base64_payload(sim) -> None:
    command = _script(sim, "probe.sh", '#!/bin/sh\necho "argc=$#"\necho "xmlrpc=$ONE_XMLRPC"\ncat\n')
    hook = _hook(sim, "probe", command, 'ARGUMENTS = "$TEMPLATE"\nARGUMENTS_STDIN = "yes"\n')
    host = sim.add_host("n")
    vm = sim.add_vm("v", host)
    sim.host_error(host)
    assert sim.settle(10)
    (record,) = sim.hook_executions(hook)
    lines = record.stdout.splitlines()
    assert lines[0] == "argc=0"
    assert lines[1] == f"xmlrpc={sim.endpoint}"
    assert lines[2] == record.arguments
    payload = etree.fromstring(base64.b64decode(lines[2]))
    assert (payload.tag, payload.findtext("ID"), payload.findtext("LCM_STATE")) == ("VM", str(vm), "16")
    assert record.code == 0


def test_argument_mode_replaces_only_the_whole_template_token(sim) -> None:
    command = _script(sim, "args.sh", '#!/bin/sh\nfor a in "$@"; do echo "[$a]"; done\n')
    # "YES" is not the literal "yes": arguments go on the command line
    hook = _hook(sim, "args", command,
                 'ARGUMENTS = "$TEMPLATE x$TEMPLATE --id"\nARGUMENTS_STDIN = "YES"\n')
    host = sim.add_host("n")
    sim.add_vm("v", host)
    sim.host_error(host)
    assert sim.settle(10)
    (record,) = sim.hook_executions(hook)
    args = [line[1:-1] for line in record.stdout.splitlines()]
    assert args[1:] == ["x$TEMPLATE", "--id"]
    assert etree.fromstring(base64.b64decode(args[0])).tag == "VM"
    assert record.arguments == " ".join(args)


def test_timeout_kills_the_whole_process_group_and_records_255(sim, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    command = _script(sim, "slow.sh", f'#!/bin/sh\nsleep 60 &\necho $! > {pidfile}\nwait\n')
    hook = _hook(sim, "slow", command, 'TIMEOUT = "0.5"\n')
    host = sim.add_host("n")
    sim.add_vm("v", host)
    sim.host_error(host)
    assert sim.settle(20)
    (record,) = sim.hook_executions(hook)
    assert record.code == TIMEOUT_CODE
    child = int(pidfile.read_text())

    def gone() -> bool:
        try:
            state = Path(f"/proc/{child}/stat").read_text().split()[2]
        except FileNotFoundError:
            return True
        return state == "Z"

    assert _wait_for(gone), "the hook's child survived the timeout"


def test_each_hook_runs_in_its_own_process_group(sim) -> None:
    command = _script(sim, "pgid.py", f"#!{sys.executable}\nimport os\n"
                                      "print(os.getpgid(0) == os.getpid())\n")
    hook = _hook(sim, "pgid", command)
    host = sim.add_host("n")
    sim.add_vm("v", host)
    sim.host_error(host)
    assert sim.settle(10)
    assert [r.stdout.strip() for r in sim.hook_executions(hook)] == ["True"]


def test_at_most_ten_hooks_run_at_once(sim, tmp_path: Path) -> None:
    gate = tmp_path / "release"
    running = tmp_path / "running"
    running.mkdir()
    command = _script(sim, "gate.sh", f"#!/bin/sh\ntouch {running}/$$\n"
                                      f"n=0\nwhile [ ! -e {gate} ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n+1)); done\n"
                                      f"rm -f {running}/$$\n")
    hook = _hook(sim, "gate", command)
    host = sim.add_host("n")
    for i in range(15):
        sim.add_vm(f"v{i}", host)
    sim.host_error(host)
    assert _wait_for(lambda: len(list(running.iterdir())) >= MAX_PARALLEL)
    # ten are held at the gate; the other five wait their turn, none has started
    assert sim.runner.busy() == 15
    assert len(list(running.iterdir())) == MAX_PARALLEL
    assert sim.runner.started == MAX_PARALLEL
    gate.touch()
    assert sim.settle(30)
    assert sim.runner.max_active == MAX_PARALLEL
    assert [r.code for r in sim.hook_executions(hook)] == [0] * 15


def test_log_keeps_the_last_20_records_and_retry_reruns_one(sim) -> None:
    hook = _hook(sim, "count", "/bin/cat", 'ARGUMENTS = "$TEMPLATE"\nARGUMENTS_STDIN = "yes"\n',
                 on="RUNNING")
    host = sim.add_host("n")
    for i in range(25):
        sim.add_vm(f"v{i}", host)
    assert sim.settle(30)
    records = sim.hook_executions(hook)
    assert [r.execution_id for r in records] == list(range(5, 25))
    rpc = xmlrpc.client.ServerProxy(sim.endpoint)
    assert rpc.one.hook.retry(sim.session, hook, 7) == [True, hook, 0]
    assert rpc.one.hook.retry(sim.session, hook, 1)[0] is False  # no longer in the log
    assert sim.settle(10)
    info = etree.fromstring(rpc.one.hook.info(sim.session, hook)[1].encode())
    last = info.findall("HOOKLOG/HOOK_EXECUTION_RECORD")[-1]
    assert last.findtext("EXECUTION_ID") == "25" and last.findtext("RETRY") == "yes"
    original = info.xpath("HOOKLOG/HOOK_EXECUTION_RECORD[EXECUTION_ID=7]")[0]
    assert last.findtext("ARGUMENTS") == original.findtext("ARGUMENTS")
    assert base64.b64decode(last.findtext("EXECUTION_RESULT/STDOUT")).decode() == last.findtext("ARGUMENTS")
    assert len(info.findall("HOOKLOG/HOOK_EXECUTION_RECORD")) == 20


def test_a_command_that_cannot_start_is_a_failed_record(sim) -> None:
    hook = _hook(sim, "missing", "no-such-hook.sh")
    host = sim.add_host("n")
    sim.add_vm("v", host)
    sim.host_error(host)
    assert sim.settle(10)
    (record,) = sim.hook_executions(hook)
    assert record.code == 127 and "no-such-hook.sh" in record.stderr


def test_a_hook_can_call_back_into_the_sim(sim) -> None:
    """The real loop: the UNKNOWN hook resumes the VM through XML-RPC with ONE_AUTH."""
    command = _script(sim, "resume.py", f"""#!{sys.executable}
import base64, os, sys, xmlrpc.client
from xml.etree import ElementTree
vm = ElementTree.fromstring(base64.b64decode(sys.stdin.read()))
session = open(os.environ["ONE_AUTH"]).read().strip()
rpc = xmlrpc.client.ServerProxy(os.environ["ONE_XMLRPC"])
print(rpc.one.vm.action(session, "resume", int(vm.findtext("ID"))))
""")
    _hook(sim, "resume", command, 'ARGUMENTS = "$TEMPLATE"\nARGUMENTS_STDIN = "yes"\n')
    host = sim.add_host("n")
    vm = sim.add_vm("v", host)
    sim.host_error(host)
    sim.host_monitored(host)  # deploys work again once the host is back
    assert sim.settle(20)
    assert sim.vm(vm).lcm_state.name == "RUNNING"
    assert [a[2] for a in sim.action_log] == ["resume"]


def test_stop_ends_running_hooks(make_sim: Callable, tmp_path: Path) -> None:
    sim = make_sim()
    started = tmp_path / "started"
    command = _script(sim, "forever.sh", f"#!/bin/sh\necho $$ > {started}\nexec sleep 600\n")
    _hook(sim, "forever", command)  # no TIMEOUT: onehem would wait for ever
    host = sim.add_host("n")
    sim.add_vm("v", host)
    sim.host_error(host)
    assert _wait_for(lambda: started.exists() and started.read_text().strip() != "")
    pid = int(started.read_text())
    sim.stop()
    assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
