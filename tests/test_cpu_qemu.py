"""Real QEMU under KVM, launched through the wrapper the way libvirt launches it.

No guest kernel is booted (one hangs under this machine's nested KVM, DESIGN.md
section 5): QEMU is started paused with a QMP socket and the vCPU it built is read
with qom-get. That vCPU is what a guest would see.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Dict, List, Optional

import pytest

from tests.qmp import Qmp, VcpuProfile, vcpu_profile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WRAPPER = os.path.join(ROOT, "vmm_wrappers", "one-hooks-qemu")
QEMU = shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"
# Plain "host" aborts here ("failed to set MSR 0x10a") under nested KVM.
HOST_CPU = "host,arch-capabilities=off"
DEFAULT_MODEL_ID = "QEMU Virtual CPU version 2.5+"


def _kvm_problem() -> Optional[str]:
    if not os.path.exists(QEMU):
        return f"{QEMU} is not installed (apt: qemu-system-x86)"
    if not os.path.exists("/dev/kvm"):
        return "no /dev/kvm on this machine: KVM guests cannot run here"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm is not readable and writable by this user"
    return None


pytestmark = pytest.mark.skipif(_kvm_problem() is not None, reason=_kvm_problem() or "")


def libvirt_like_argv(sock: str, cpu: str) -> List[str]:
    """The shape of libvirt 9.0's command line for an OpenNebula domain without <cpu>."""
    return ["-name", "guest=one-42,debug-threads=on", "-S",
            "-machine", "pc-i440fx-7.2,usb=off,dump-guest-core=off", "-accel", "kvm", "-cpu", cpu,
            "-m", "64", "-overcommit", "mem-lock=off", "-smp", "1,sockets=1,cores=1,threads=1",
            "-no-user-config", "-nodefaults", "-display", "none", "-rtc", "base=utc", "-no-shutdown",
            "-boot", "strict=on", "-msg", "timestamp=on",
            "-qmp", f"unix:{sock},server=on,wait=off"]


def launch(binary: str, argv: List[str], sock: str, env: Dict[str, str]) -> "tuple[VcpuProfile, List[str]]":
    """Start paused, read the vCPU and QEMU's real command line, quit."""
    proc = subprocess.Popen([binary, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={"PATH": os.environ["PATH"], **env})
    try:
        try:
            with Qmp(sock, timeout=30) as qmp:
                profile = vcpu_profile(qmp)
                with open(f"/proc/{proc.pid}/cmdline", "rb") as fh:
                    cmdline = fh.read().decode().split("\0")[:-1]
                qmp.execute("quit")
        except Exception:
            proc.kill()
            out, err = proc.communicate(timeout=30)
            raise AssertionError(f"QEMU failed: rc={proc.returncode} stderr={err.decode()!r}")
        out, err = proc.communicate(timeout=30)
        assert out == b"", "nothing may reach stdout"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    return profile, cmdline


@pytest.fixture(scope="module")
def profiles(tmp_path_factory) -> Dict[str, object]:
    tmp = tmp_path_factory.mktemp("qmp")
    through, through_cmd = launch(WRAPPER, libvirt_like_argv(str(tmp / "w.sock"), "qemu64"),
                                  str(tmp / "w.sock"), {"ONE_HOOKS_QEMU": QEMU, "ONE_HOOKS_CPU": HOST_CPU})
    direct, _ = launch(QEMU, libvirt_like_argv(str(tmp / "d.sock"), HOST_CPU), str(tmp / "d.sock"), {})
    default, _ = launch(QEMU, libvirt_like_argv(str(tmp / "q.sock"), "qemu64"), str(tmp / "q.sock"), {})
    return {"through": through, "through_cmd": through_cmd, "direct": direct, "default": default}


def test_through_wrapper_is_the_host_cpu(profiles: Dict[str, object]) -> None:
    through, direct = profiles["through"], profiles["direct"]
    assert isinstance(through, VcpuProfile) and isinstance(direct, VcpuProfile)
    assert through == direct
    with open("/proc/cpuinfo") as fh:
        host_model = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    # QEMU's host model-id is the host's brand string (here "AMD EPYC").
    assert through.model_id == host_model
    print(f"\nthrough wrapper: {through.summary()}\ndirect -cpu {HOST_CPU}: {direct.summary()}")


def test_without_the_wrapper_the_guest_gets_qemu64(profiles: Dict[str, object]) -> None:
    through, default = profiles["through"], profiles["default"]
    assert isinstance(through, VcpuProfile) and isinstance(default, VcpuProfile)
    assert default.model_id == DEFAULT_MODEL_ID
    assert through.model_id != default.model_id
    assert len(through.features_on) > len(default.features_on)
    print(f"\ndefault (-cpu qemu64): {default.summary()}")


def test_qemu_runs_with_exactly_one_host_cpu(profiles: Dict[str, object]) -> None:
    cmdline = profiles["through_cmd"]
    assert isinstance(cmdline, list)
    assert cmdline[0] == QEMU  # exec'd: the wrapper's process is QEMU now
    cpus = [cmdline[i + 1] for i, word in enumerate(cmdline) if word == "-cpu"]
    assert cpus == [HOST_CPU]
