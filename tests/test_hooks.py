"""hooks: the three entry points, from the real payloads oned sent.

In-process tests drive :func:`one_hooks.hooks.entry.handle` with the simulator's
state machine behind the oned door (see ``test_recovery``) and a fake clock.
Process tests run ``python -m one_hooks hook ...`` as onehem does and check
the exit code and the one line for every kind of bad payload.
"""
from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from typing import List

import pytest

from one_hooks.oned import xmlparse
from one_hooks.audit import Reporter
from one_hooks.config import Config, IscsiSection, LogSection, RecoverySection
from one_hooks.errors import PayloadError
from one_hooks.hooks.entry import handle
from one_hooks.oned.payload import read_payload
from one_hooks.recovery import claims
from one_hooks.recovery.ledger import Attempts, Ledger

from .test_recovery import CloudDoor, FakeClock, fake_cloud

DATA = os.path.join(os.path.dirname(__file__), "data", "recovery")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _payload(name: str) -> bytes:
    with open(os.path.join(DATA, name), "rb") as fh:
        return fh.read()


class Bench:
    """A one-host cloud shaped like the recordings: host 0 ``dummy-host-1``, VM 0."""

    def __init__(self, tmp: str) -> None:
        self.clock = FakeClock()  # the hooks' clocks and the simulated cloud's alike
        self.cloud = fake_cloud(self.clock)
        self.host = self.cloud.add_host("dummy-host-1")
        self.vm = self.cloud.add_vm("vm-outage-test", self.host)
        self.door = CloudDoor(self.cloud)
        self.config = Config(
            recovery=RecoverySection(state_dir=os.path.join(tmp, "state"), settle_seconds=0,
                                     attempts=3, retry_delay=10, wait_running=60),
            iscsi=IscsiSection(check=False),
            log=LogSection(file=os.path.join(tmp, "log")))
        self.out = io.StringIO()
        self.waits: List[float] = []

    @property
    def wall(self) -> float:
        return self.clock.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.sleep(seconds)

    def hook(self, event: str, payload: bytes) -> int:
        return handle(event, xmlparse.decode_payload(payload), self.config, Reporter(out=self.out),
                      oned=self.door, clock=self.clock, sleep=self.sleep, wall=self.clock)

    def resumes(self) -> int:
        return sum(1 for _, _, name, _ in self.cloud.action_log if name == "resume")

    def close(self) -> None:
        self.cloud.timeline.stop()


@pytest.fixture()
def bench(tmp_path):
    b = Bench(str(tmp_path))
    yield b
    b.close()


def test_vm_unknown_while_host_in_error_is_left_to_host_reconnect(bench: Bench) -> None:
    bench.cloud.host_error(bench.host)
    code = bench.hook("vm-unknown", _payload("payload-vm-unknown-prev-running.b64"))
    assert code == 0
    assert bench.resumes() == 0
    assert "left to host-reconnect" in bench.out.getvalue()


def test_host_reconnect_resumes_the_host_vms(bench: Bench) -> None:
    bench.cloud.host_error(bench.host)
    bench.cloud.host_monitored(bench.host)
    assert bench.hook("host-reconnect", _payload("payload-host-monitored-prev-error.b64")) == 0
    assert bench.cloud.tables.vms[0].state_name == "ACTIVE/RUNNING"
    assert "was ERROR" in bench.out.getvalue()


def test_vm_unknown_on_healthy_host_resumes(bench: Bench) -> None:
    bench.cloud.host_error(bench.host)
    bench.cloud.host_monitored(bench.host)
    assert bench.hook("vm-unknown", _payload("payload-vm-unknown-prev-running.b64")) == 0
    assert bench.resumes() == 1


def test_vm_poweroff_acts_only_after_monitor(bench: Bench) -> None:
    bench.cloud.host_error(bench.host)
    bench.cloud.host_monitored(bench.host)
    bench.cloud.reconcile(bench.host, running=set())
    assert bench.cloud.tables.vms[0].state_name == "POWEROFF/LCM_INIT"
    assert bench.hook("vm-poweroff", _payload("payload-vm-poweroff-monitor.b64")) == 0
    assert bench.resumes() == 1
    assert bench.cloud.tables.vms[0].state_name == "ACTIVE/RUNNING"


def test_vm_poweroff_by_user_is_not_touched(bench: Bench) -> None:
    text = base64.b64decode(_payload("payload-vm-poweroff-monitor.b64")).replace(
        b"<ACTION>44</ACTION>", b"<ACTION>19</ACTION>")
    calls_before = len(bench.door.calls)
    assert bench.hook("vm-poweroff", base64.b64encode(text)) == 0
    assert "not powered off by an outage" in bench.out.getvalue()
    assert len(bench.door.calls) == calls_before  # decided from the payload alone


def test_failed_deploys_are_retried_by_the_hook_that_resumed_then_given_up(bench: Bench) -> None:
    """The hook that resumes a VM carries it: failed deploys are retried by that process (they
    used to be left to vm-unknown, which never fires for a VM resumed from POWEROFF)."""
    bench.cloud.host_error(bench.host)
    bench.cloud.host_monitored(bench.host)
    bench.cloud.fail_deploys(10, vm_id=bench.vm)
    resumed_at: List[float] = []  # wall time of each resume sent
    bench.door.before_action = lambda vm_id: resumed_at.append(bench.wall)
    assert bench.hook("host-reconnect", _payload("payload-host-monitored-prev-error.b64")) == 1
    assert bench.resumes() == 3                    # [recovery] attempts = 3
    # retry_delay, doubling, counted from the failure seen (a look's pace included)
    gaps = [later - earlier for earlier, later in zip(resumed_at, resumed_at[1:])]
    assert 10 <= gaps[0] < 13 and 20 <= gaps[1] < 23, gaps
    out = bench.out.getvalue()
    assert out.count(": gave up: ") == 1 and "attempt 3 of 3, none left" in out and "onevm resume 0" in out
    # The failed deploys' own vm-unknown events (PREV_LCM_STATE=19), run after: no resume, no new cry.
    again = _payload("payload-vm-unknown-prev-boot-unknown.b64")
    assert [bench.hook("vm-unknown", again) for _ in range(2)] == [0, 0]
    assert bench.resumes() == 3
    assert "gave up earlier" in bench.out.getvalue()


def test_failed_deploy_retried_then_running_exit_0(bench: Bench) -> None:
    bench.cloud.host_error(bench.host)
    bench.cloud.host_monitored(bench.host)
    bench.cloud.fail_deploys(1, vm_id=bench.vm)
    assert bench.hook("host-reconnect", _payload("payload-host-monitored-prev-error.b64")) == 0
    assert bench.cloud.tables.vms[0].state_name == "ACTIVE/RUNNING" and bench.resumes() == 2
    assert "failed" not in bench.out.getvalue().replace("deploy failed", "")
    # The failed deploy's vm-unknown event, run late: RUNNING already, nothing to do.
    assert bench.hook("vm-unknown", _payload("payload-vm-unknown-prev-boot-unknown.b64")) == 0
    assert bench.resumes() == 2
    # RUNNING clears the record: a later outage starts from zero.
    assert Ledger(bench.config.recovery.state_dir).get(bench.vm) == Attempts(bench.vm)


def test_events_of_a_carried_vm_are_left_to_its_carrier(bench: Bench) -> None:
    bench.cloud.host_error(bench.host)
    bench.cloud.host_monitored(bench.host)
    carrier = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        start = claims.start_time(carrier.pid)
        assert start is not None
        state = bench.config.recovery.state_dir
        os.makedirs(os.path.join(state, "carry"))
        with open(claims.carry_path(state, bench.vm), "wb") as fh:
            fh.write(claims.encode_carry(carrier.pid, start, "t0", bench.wall + 600, "host-reconnect"))
        calls = len(bench.door.calls)
        assert bench.hook("vm-unknown", _payload("payload-vm-unknown-prev-boot-unknown.b64")) == 0
        assert f"left to host-reconnect (pid {carrier.pid}), which resumed it" in bench.out.getvalue()
        assert len(bench.door.calls) == calls and bench.resumes() == 0  # decided without oned
    finally:
        carrier.kill()
        carrier.wait()
    # Its carrier gone, the next event carries on (no record: a fresh recovery).
    assert bench.hook("vm-unknown", _payload("payload-vm-unknown-prev-boot-unknown.b64")) == 0
    assert bench.resumes() == 1


def test_wrong_resource_is_a_payload_error(bench: Bench) -> None:
    with pytest.raises(PayloadError):
        bench.hook("vm-unknown", _payload("payload-host-error.b64"))
    with pytest.raises(PayloadError):
        bench.hook("host-reconnect", _payload("payload-vm-unknown-prev-running.b64"))
    assert bench.door.calls == []


def test_read_payload_argument_or_stdin() -> None:
    assert read_payload("QUJD") == b"QUJD"
    assert read_payload(None, io.BytesIO(b"x" * 10)) == b"x" * 10
    big = read_payload(None, io.BytesIO(b"A" * (xmlparse.MAX_PAYLOAD_BYTES + 100)))
    assert len(big) == xmlparse.MAX_PAYLOAD_BYTES + 1


# --- as onehem runs it: a process, stdin, exit code, stdout -------------------------


@pytest.fixture()
def conf(tmp_path) -> str:
    """A config whose oned is a closed loopback port: nothing can be sent anywhere."""
    auth = tmp_path / "auth"
    auth.write_text("oneadmin:secret-never-logged\n")
    path = tmp_path / "one-hooks.conf"
    path.write_text(
        "[oned]\nendpoint = http://127.0.0.1:9/RPC2\n"
        f"auth_file = {auth}\nretries = 0\ntimeout = 2\n"
        f"[recovery]\nstate_dir = {tmp_path / 'state'}\n"
        "[iscsi]\ncheck = no\n"
        f"[log]\nfile = {tmp_path / 'hooks.log'}\n")
    return str(path)


def _run_hook(conf: str, event: str, stdin: bytes, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ONE_HOOKS_CONFIG=conf, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "one_hooks", "hook", event, *args],
                          input=stdin, capture_output=True, env=env, timeout=60)


GOOD_VM = _payload("payload-vm-unknown-prev-running.b64")
BAD_PAYLOADS = {
    "garbage": b"\x00\xff\xfe not base64 at all \x01",
    "truncated": GOOD_VM[: len(GOOD_VM) // 2],
    "non-base64": b"this is :: not base64 !!",
    "non-xml": base64.b64encode(b"hello, I am not XML"),
    "empty": b"",
    "oversized": b"A" * (xmlparse.MAX_PAYLOAD_BYTES + 4),
    "doctype": base64.b64encode(b'<!DOCTYPE VM [<!ENTITY x "y">]><VM><ID>&x;</ID></VM>'),
}


@pytest.mark.parametrize("kind", sorted(BAD_PAYLOADS))
def test_bad_payload_exit_2_one_line(conf: str, kind: str) -> None:
    result = _run_hook(conf, "vm-unknown", BAD_PAYLOADS[kind])
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vm-unknown: hook payload")
    assert b"Traceback" not in result.stderr


def test_wrong_resource_process_exit_2(conf: str) -> None:
    result = _run_hook(conf, "host-reconnect", GOOD_VM)
    assert result.returncode == 2
    assert b"expected a HOST document, got a VM one" in result.stdout


def test_payload_as_argument(conf: str) -> None:
    host_error = _payload("payload-host-error.b64").decode().strip()
    result = _run_hook(conf, "vm-poweroff", b"", host_error)
    assert result.returncode == 2 and b"expected a VM document" in result.stdout


def test_oned_unreachable_is_exit_1_without_secret(conf: str) -> None:
    result = _run_hook(conf, "vm-unknown", GOOD_VM)
    assert result.returncode == 1, result.stdout + result.stderr
    assert b"secret-never-logged" not in result.stdout + result.stderr
    with open(os.path.join(os.path.dirname(conf), "hooks.log"), "rb") as fh:
        log = fh.read()
    assert b"vm-unknown" in log and b"secret-never-logged" not in log


def test_shims_run_the_entry_point(conf: str, tmp_path) -> None:
    shim_dir = os.path.join(ROOT, "remotes", "hooks", "one-hooks")
    for event in ("host-reconnect", "vm-unknown", "vm-poweroff"):
        text = open(os.path.join(shim_dir, event)).read()
        entry = f"-m one_hooks hook {event}" if event == "host-reconnect" else \
            f"-m one_hooks.hooks.triage {event}"  # the VM hooks' first look, then the full hook
        assert "PYTHON=@PYTHON@" in text and entry in text
        shim = tmp_path / event
        shim.write_text(text.replace("@PYTHON@", sys.executable))
        shim.chmod(0o755)
        env = dict(os.environ, ONE_HOOKS_CONFIG=conf, PYTHONPATH=ROOT)
        result = subprocess.run([str(shim)], input=b"!!", capture_output=True, env=env, timeout=60)
        assert result.returncode == 2 and result.stdout.startswith(f"{event}: hook payload".encode())


def test_shim_placeholder_falls_back_to_python3(conf: str) -> None:
    shim = os.path.join(ROOT, "remotes", "hooks", "one-hooks", "vm-unknown")
    env = dict(os.environ, ONE_HOOKS_CONFIG=conf, PYTHONPATH=ROOT,
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    result = subprocess.run([shim], input=b"", capture_output=True, env=env, timeout=60)
    assert result.returncode == 2 and b"empty" in result.stdout


def test_shims_pass_shellcheck() -> None:
    import shutil
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (Debian package shellcheck)")
    shim_dir = os.path.join(ROOT, "remotes", "hooks", "one-hooks")
    shims = [os.path.join(shim_dir, n) for n in ("host-reconnect", "vm-unknown", "vm-poweroff")]
    result = subprocess.run(["shellcheck", "-s", "sh", *shims], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout


def test_hook_path_does_not_import_pyone(conf: str) -> None:
    env = dict(os.environ, ONE_HOOKS_CONFIG=conf, PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "one_hooks", "hook", "vm-unknown"],
                            input=GOOD_VM, capture_output=True, env=env, timeout=60)
    imported = {line.split("|")[-1].strip() for line in result.stderr.decode().splitlines()
                if line.startswith("import time:")}
    assert "one_hooks.oned.client" in imported and "one_hooks.oned.xmlparse" in imported  # it got that far
    assert not any(name == "pyone" or name.startswith("pyone.") for name in imported)
    # oned unreachable: the host state is unknown, so nothing more was loaded.
    assert "one_hooks.recovery.engine" not in imported and "one_hooks.node.gate" not in imported
