"""Benchmark 3: what the CPU wrapper adds to each emulator launch.

A stand-in emulator (a copy of ``/bin/true``: starts and exits, so only the
launch itself is timed) is run N times directly and N times through the
shipped wrapper (``vmm_wrappers/one-hooks-qemu``, with ``ONE_HOOKS_QEMU``
naming the stand-in), with the argv libvirt 9.0 gives a KVM domain (real
launch, so the wrapper does its ``-cpu`` rewrite). Runs are interleaved; the
overhead is the difference of the medians.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass

from cloud import REPO
from measure import median, spawn_wait

WRAPPER = os.path.join(REPO, "vmm_wrappers", "one-hooks-qemu")

#: The shape of a libvirt 9.0 KVM launch (as OpenNebula's deployment makes it).
LIBVIRT_ARGV = (
    "-name", "guest=one-42,debug-threads=on", "-S",
    "-object", '{"qom-type":"secret","id":"masterKey0","format":"raw",'
               '"file":"/var/lib/libvirt/qemu/domain-1-one-42/master-key.aes"}',
    "-machine", "pc-i440fx-7.2,usb=off,dump-guest-core=off,memory-backend=pc.ram",
    "-accel", "kvm", "-cpu", "qemu64,+kvm_pv_eoi", "-m", "1024",
    "-object", '{"qom-type":"memory-backend-ram","id":"pc.ram","size":1073741824}',
    "-overcommit", "mem-lock=off", "-smp", "1,sockets=1,cores=1,threads=1",
    "-uuid", "5a9b3c1e-0000-4000-8000-000000000042", "-no-user-config", "-nodefaults",
    "-chardev", "socket,id=charmonitor,fd=30,server=on,wait=off",
    "-mon", "chardev=charmonitor,id=monitor,mode=control", "-rtc", "base=utc",
    "-no-shutdown", "-boot", "strict=on",
    "-blockdev", '{"driver":"file","filename":"/var/lib/one//datastores/0/42/disk.0","node-name":"libvirt-1-storage"}',
    "-device", "virtio-blk-pci,bus=pci.0,addr=0x4,drive=libvirt-1-format,id=virtio-disk0,bootindex=1",
    "-vnc", "0.0.0.0:42", "-device", "cirrus-vga,id=video0,bus=pci.0,addr=0x2",
    "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
    "-msg", "timestamp=on",
)


@dataclass
class WrapperResult:
    """Medians over ``runs`` launches each, in seconds."""

    runs: int
    direct_wall_s: float
    wrapped_wall_s: float
    direct_cpu_s: float
    wrapped_cpu_s: float
    codes: tuple

    @property
    def overhead_ms(self) -> float:
        """Median added wall time per launch, in milliseconds."""
        return (self.wrapped_wall_s - self.direct_wall_s) * 1000.0


def run_wrapper(runs: int) -> WrapperResult:
    """Time direct and wrapped launches of the stand-in emulator."""
    tmp = tempfile.mkdtemp(prefix="one-hooks-bench-wrapper-")
    try:
        standin = os.path.join(tmp, "qemu-system-x86_64")
        shutil.copy2("/bin/true", standin)
        env = dict(os.environ, ONE_HOOKS_QEMU=standin, ONE_HOOKS_CPU="host")
        direct, wrapped = [], []
        for _ in range(runs):
            direct.append(spawn_wait([standin, *LIBVIRT_ARGV], env))
            wrapped.append(spawn_wait([WRAPPER, *LIBVIRT_ARGV], env))
        failed = sorted({r.code for r in direct + wrapped} - {0})
        if failed:  # a failing launch is fast: timing it would flatter the wrapper
            raise RuntimeError(f"wrapper benchmark: launches exited {failed}")
        return WrapperResult(
            runs=runs,
            direct_wall_s=median([r.wall_s for r in direct]),
            wrapped_wall_s=median([r.wall_s for r in wrapped]),
            direct_cpu_s=median([r.cpu_s for r in direct]),
            wrapped_cpu_s=median([r.cpu_s for r in wrapped]),
            codes=tuple(sorted({r.code for r in direct + wrapped})))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
