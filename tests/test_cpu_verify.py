"""``cpu verify``: pure judges, then every check against this machine's real libvirt and QEMU."""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Iterator

import pytest

from one_hooks.cpu import verify, wrapper as wrapper_mod
from one_hooks.node.runner import Node, Runner

QEMU = shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"
HOST_CPU = "host,arch-capabilities=off"
W = "/var/tmp/one/vmm/kvm/one-hooks-qemu"


def test_judge_files() -> None:
    settings = f"QEMU=/usr/libexec/qemu-kvm:{QEMU}\nCPU=host\n"
    ok, real = verify.judge_files(settings, f"{W}:755:200\n{QEMU}:755:100\n", W)
    assert real == QEMU and all(level == verify.OK for level, _ in ok)
    old, _ = verify.judge_files(settings, f"{W}:755:50\n{QEMU}:755:100\n", W)
    assert any(level == verify.PROBLEM and f"touch {W}" in text for level, text in old)
    shut, _ = verify.judge_files(settings, f"{W}:750:200\n{QEMU}:755:100\n", W)
    assert any("chmod 755" in text for _, text in shut)
    missing, real = verify.judge_files(None, "", W)
    assert real == "" and any("onehost sync" in text for _, text in missing)


def test_judge_vm() -> None:
    assert verify.judge_vm("one-1", ["qemu", "-cpu", "host,migratable=on"])[0] == verify.OK
    assert verify.judge_vm("one-1", ["qemu", "-cpu", "qemu64"])[0] == verify.WARNING
    level, text = verify.judge_vm("one-1", ["qemu", "-cpu", "qemu64", "-cpu", "host"])
    assert level == verify.PROBLEM and "2 -cpu" in text


def test_judge_security() -> None:
    found = verify.judge_security("Y\n", "", "", "", "", W, QEMU)
    assert found[0][0] == verify.PROBLEM and f"{W} rix," in found[0][1]
    assert verify.judge_security("Y\n", f"{W} rix,\n", "", "", "", W, QEMU)[0][0] == verify.OK
    selinux = verify.judge_security("N", "", "Enforcing\n", "unconfined_u:object_r:tmp_t:s0 " + W, "", W, QEMU)
    assert selinux[0][0] == verify.PROBLEM and "semanage fcontext" in selinux[0][1]
    log = 'audit: apparmor="DENIED" operation="exec" profile="libvirt-1" name="/usr/bin/qemu-system-x86_64"'
    assert any("denial" in t for _, t in verify.judge_security("Y", W, "", "", log, W, QEMU))
    assert verify.judge_security("N", "", "", "", "", W, QEMU) == [
        (verify.OK, "no AppArmor or SELinux confinement here (DAC only)")]
    assert verify.judge_security("N", "", "", "", None, W, QEMU)[0][0] == verify.WARNING
    # native mode (no wrapper): confinement is no problem of ours, denials still are
    native = verify.judge_security("Y\n", "", "Enforcing\n", "", "", "", "")
    assert [level for level, _ in native] == [verify.OK] and "native mode" in native[0][1]
    assert any(level == verify.PROBLEM for level, _ in verify.judge_security("Y", "", "", "", log, "", ""))


# --- against the real node (this machine) ---------------------------------------------


@pytest.fixture
def node_remotes() -> Iterator[str]:
    top = tempfile.mkdtemp(prefix="one-hooks-node-")
    os.chmod(top, 0o755)  # libvirt-qemu must reach the wrapper
    wrapper_mod.install(top, wrapper_mod.Settings((QEMU,), HOST_CPU))
    yield top
    shutil.rmtree(top, ignore_errors=True)


def domain_xml(name: str, emulator: str) -> str:
    return (f"<domain type='kvm'><name>{name}</name><memory>65536</memory><vcpu>1</vcpu>"
            f"<os><type arch='x86_64'>hvm</type></os><devices><emulator>{emulator}</emulator></devices>"
            "</domain>")


@pytest.mark.skipif(not os.path.exists("/dev/kvm"), reason="no /dev/kvm: KVM guests cannot run here")
def test_verify_this_machine(libvirt, node_remotes: str, tmp_path) -> None:
    # The node is this machine: [node] command "env ..." runs the checks locally, no ssh.
    node = Node(Runner(60.0), "env ONE_HOOKS_NODE={host}", 60.0)
    wrapped, plain = f"one-{90000 + os.getpid() % 9999}", f"one-{80000 + os.getpid() % 9999}"
    started = []
    try:
        for name, emulator in ((wrapped, wrapper_mod.wrapper_path(node_remotes)), (plain, QEMU)):
            path = tmp_path / f"{name}.xml"
            path.write_text(domain_xml(name, emulator))
            libvirt.virsh("create", str(path), "--paused")
            started.append(name)
        findings = verify.verify_host(node, "localnode", node_remotes)
    finally:
        for name in started:
            libvirt.virsh("destroy", name, check=False)
    lines = [f.line() for f in findings]
    print("\n" + "\n".join(lines))
    assert not [f for f in findings if f.level == verify.PROBLEM], lines
    assert f"localnode: ok: {wrapped}: -cpu {HOST_CPU}" in lines
    assert any(line.startswith(f"localnode: warning: {plain}: -cpu qemu64") for line in lines)
    assert any("libvirt probes" in line for line in lines)


def test_unreachable_node_is_one_problem() -> None:
    node = Node(Runner(10.0), "ssh -o BatchMode=yes -o ConnectTimeout=2 -p 1 {host}", 10.0)
    findings = verify.verify_host(node, "127.0.0.1")
    assert len(findings) == 1 and findings[0].level == verify.PROBLEM and "cannot check" in findings[0].text
