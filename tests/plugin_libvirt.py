"""pytest fixture ``libvirt``: a real libvirtd (libvirt 9.0, Debian ``libvirt-daemon-system``).

There is no systemd here, so the fixture starts ``virtlogd -d`` then
``libvirtd -d`` itself, waits until ``virsh -c qemu:///system version``
answers, and at the end stops exactly those two processes by PID. A libvirtd
that was already running is used as it is and left running.

As root it also makes ``/dev/kvm`` usable by libvirt's QEMU user
(``libvirt-qemu``, group ``kvm``): without udev the node is ``0600 root:root``,
so the fixture runs the equivalent of ``chgrp kvm /dev/kvm; chmod 660
/dev/kvm`` and says so on stderr. It skips (with the reason) where a
component is truly absent.
"""
from __future__ import annotations

import grp
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Iterator, List, Optional

import pytest

URI = "qemu:///system"
PIDFILES = {"virtlogd": "/run/virtlogd.pid", "libvirtd": "/run/libvirtd.pid"}


@dataclass
class Libvirt:
    """A reachable libvirtd and a ``virsh`` bound to it."""

    uri: str
    started: List[int]

    def virsh(self, *args: str, check: bool = True, timeout: float = 120.0) -> "subprocess.CompletedProcess[str]":
        """Run ``virsh -c URI ARGS``; raise with its stderr when ``check`` and it fails."""
        proc = subprocess.run(["virsh", "-c", self.uri, *args], capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"virsh {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def security_models(self) -> List[str]:
        """The security drivers libvirt uses (``none``, ``dac``, ``apparmor``, ``selinux``)."""
        out = self.virsh("capabilities").stdout
        return re.findall(r"<secmodel>\s*<model>([^<]*)</model>", out)


def _answers(timeout: float = 5.0) -> bool:
    try:
        proc = subprocess.run(["virsh", "-c", URI, "version"], capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def _pid_from(pidfile: str) -> Optional[int]:
    try:
        with open(pidfile) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def _fix_kvm_node() -> None:
    """As root: let group kvm (libvirt-qemu's group) open /dev/kvm."""
    if not os.path.exists("/dev/kvm") or os.getuid() != 0:
        return
    st = os.stat("/dev/kvm")
    try:
        kvm_gid = grp.getgrnam("kvm").gr_gid
    except KeyError:
        return
    if st.st_gid != kvm_gid or stat.S_IMODE(st.st_mode) & 0o060 != 0o060:
        os.chown("/dev/kvm", -1, kvm_gid)
        os.chmod("/dev/kvm", stat.S_IMODE(st.st_mode) | 0o660)
        print("plugin_libvirt: made /dev/kvm 'chgrp kvm; chmod 660' so libvirt-qemu can use it "
              "(no udev here)", file=sys.stderr)


def _stop(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def libvirt() -> Iterator[Libvirt]:
    """A running system libvirtd (started here if needed, stopped afterwards if started here)."""
    for tool in ("virsh", "libvirtd", "virtlogd"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            pytest.skip(f"{tool} is not installed (apt: libvirt-daemon-system libvirt-clients)")
    if os.getuid() != 0:
        pytest.skip("starting the system libvirtd needs root")
    _fix_kvm_node()
    started: List[int] = []
    if not _answers():
        for daemon in ("virtlogd", "libvirtd"):
            if daemon == "virtlogd" and _pid_from(PIDFILES[daemon]) and \
                    os.path.exists(f"/proc/{_pid_from(PIDFILES[daemon])}"):
                continue  # someone's virtlogd is already there
            binary = shutil.which(daemon) or f"/usr/sbin/{daemon}"
            proc = subprocess.run([binary, "-d"], capture_output=True, text=True, timeout=60)
            if proc.returncode != 0:
                pytest.fail(f"{daemon} -d failed: {proc.stderr.strip()}")
            pid = _pid_from(PIDFILES[daemon])
            if pid:
                started.append(pid)
        deadline = time.monotonic() + 60
        while not _answers():
            if time.monotonic() > deadline:
                for pid in reversed(started):
                    _stop(pid)
                pytest.fail("libvirtd did not answer on qemu:///system within 60 s")
            time.sleep(0.3)
    try:
        yield Libvirt(URI, started)
    finally:
        for pid in reversed(started):  # libvirtd first, then virtlogd
            _stop(pid)
