"""Real libvirt with the wrapper as a domain's <emulator>, as OpenNebula deploys it."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from typing import Iterator, List

import pytest

from one_hooks.cpu import wrapper as wrapper_mod

QEMU = shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"
HOST_CPU = "host,arch-capabilities=off"  # plain "host" aborts under this machine's nested KVM

NEEDS = "needs /dev/kvm and qemu-system-x86_64 (apt: qemu-system-x86)"
HAVE_KVM = os.path.exists("/dev/kvm") and os.path.exists(QEMU)
pytestmark = pytest.mark.skipif(not HAVE_KVM, reason=NEEDS)


def one_domain(name: str, emulator: str, cpu_xml: str = "") -> str:
    """A domain in the shape OpenNebula's LibVirtDriverKVM writes (tabs, CDATA emulator, metadata)."""
    return f"""<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
\t<name>{name}</name>
\t<uuid>{uuid.uuid4()}</uuid>
\t<title>cpu-test</title>
\t<cputune>
\t\t<shares>1024</shares>
\t</cputune>
\t<memory>65536</memory>
\t<vcpu>1</vcpu>{cpu_xml}
\t<os>
\t\t<type arch='x86_64'>hvm</type>
\t\t<boot dev='hd'/>
\t</os>
\t<devices>
\t\t<emulator><![CDATA[{emulator}]]></emulator>
\t</devices>
\t<features>
\t\t<acpi/>
\t</features>
\t<metadata>
\t\t<one:vm xmlns:one="http://opennebula.org/xmlns/libvirt/1.0">
\t\t\t<one:system_datastore><![CDATA[/var/lib/one//datastores/0/4242]]></one:system_datastore>
\t\t\t<one:name><![CDATA[cpu-test]]></one:name>
\t\t\t<one:id><![CDATA[4242]]></one:id>
\t\t</one:vm>
\t</metadata>
</domain>
"""


@pytest.fixture(scope="module")
def remotes() -> Iterator[str]:
    """The wrapper installed like on a node, where libvirt-qemu may read and run it."""
    top = tempfile.mkdtemp(prefix="one-hooks-remotes-")
    os.chmod(top, 0o755)  # pytest's tmp_path is 0700 root: libvirt-qemu could not reach it
    wrapper_mod.install(top, wrapper_mod.Settings((QEMU,), HOST_CPU))
    yield top
    shutil.rmtree(top, ignore_errors=True)


def cmdline(pid: int) -> List[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return fh.read().decode().split("\0")[:-1]


def test_security_drivers_here(libvirt) -> None:
    # Reported, not assumed: AppArmor/SELinux would need a rule or label for the wrapper.
    models = libvirt.security_models()
    print(f"\nlibvirt security drivers on this machine: {models}")
    assert "apparmor" not in models and "selinux" not in models, \
        "a MAC driver is active: the wrapper needs an AppArmor rule / qemu_exec_t label (README)"


def test_probe_passes_through_the_wrapper(libvirt, remotes: str) -> None:
    emulator = wrapper_mod.wrapper_path(remotes)
    out = libvirt.virsh("domcapabilities", "--emulatorbin", emulator, "--virttype", "kvm").stdout
    assert f"<path>{emulator}</path>" in out
    assert "<domain>kvm</domain>" in out
    assert "<mode name='host-passthrough' supported='yes'>" in out


def test_domain_starts_with_exactly_one_host_cpu(libvirt, remotes: str) -> None:
    emulator = wrapper_mod.wrapper_path(remotes)
    name = f"one-hooks-test-{os.getpid()}"
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as fh:
        fh.write(one_domain(name, emulator))
    try:
        libvirt.virsh("create", fh.name, "--paused")
        try:
            with open(f"/run/libvirt/qemu/{name}.pid") as pidfile:
                pid = int(pidfile.read().strip())
            argv = cmdline(pid)
            assert os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(QEMU)  # exec'd
            cpus = [argv[i + 1] for i, word in enumerate(argv) if word == "-cpu"]
            assert cpus == [HOST_CPU]
            answer = libvirt.virsh("qemu-monitor-command", name, json.dumps({
                "execute": "qom-get",
                "arguments": {"path": "/machine/unattached/device[0]", "property": "model-id"}})).stdout
            with open("/proc/cpuinfo") as info:
                host_model = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
            assert json.loads(answer)["return"].strip() == host_model
            print(f"\nlibvirt started {argv[0]} with -cpu {cpus[0]}; vCPU model-id {host_model!r}")
        finally:
            libvirt.virsh("destroy", name, check=False)
    finally:
        os.unlink(fh.name)


def test_native_mode_gives_host_passthrough(libvirt) -> None:
    # CPU_MODEL = [ MODEL = "host-passthrough" ] makes OpenNebula write this <cpu>;
    # libvirt's own translation shows the -cpu it runs (no launch needed).
    xml = one_domain("one-hooks-native", QEMU, "\n\t<cpu mode='host-passthrough'/>")
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as fh:
        fh.write(xml)
    try:
        argv = libvirt.virsh("domxml-to-native", "qemu-argv", fh.name).stdout.split()
    finally:
        os.unlink(fh.name)
    cpus = [argv[i + 1] for i, word in enumerate(argv) if word == "-cpu"]
    assert cpus == ["host,migratable=on"]
