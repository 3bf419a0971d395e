"""A small QMP client (stdlib socket + json) to read the vCPU QEMU really made.

A guest kernel is not needed to see the guest's CPU: QEMU started paused
(``-S``) with ``-qmp unix:SOCK,server=on,wait=off`` already has its vCPU
objects, and ``qom-get`` reads their ``model-id`` and every boolean feature
property. That is what the CPU a guest would see in ``/proc/cpuinfo``.

Only the tests use it (test_cpu_qemu.py: what ``-cpu host`` and the wrapper
really give a guest), so it lives here, not in the package.
"""
from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Set

from one_hooks.errors import CpuError

#: Where QEMU puts the first vCPU of a pc/q35 machine when query-cpus-fast is not available.
FIRST_VCPU = "/machine/unattached/device[0]"


class Qmp:
    """One QMP connection: greeting read, capabilities negotiated, commands in turn."""

    def __init__(self, path: str, timeout: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        deadline = clock() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                sock.close()
                # QEMU creates the socket a moment after it starts.
                if clock() >= deadline:
                    raise CpuError(f"QMP socket {path}: {exc.strerror}") from None
                sleep(0.02)
        self._sock = sock
        self._file = sock.makefile("rwb")
        greeting = self._read()
        if "QMP" not in greeting:
            raise CpuError(f"QMP socket {path}: no QMP greeting")
        self.execute("qmp_capabilities")

    def _read(self) -> Dict[str, Any]:
        while True:
            line = self._file.readline()
            if not line:
                raise CpuError("QMP: QEMU closed the connection")
            message: Dict[str, Any] = json.loads(line)
            if "event" not in message:  # asynchronous events are not answers
                return message

    def execute(self, command: str, **arguments: Any) -> Any:
        """Run one command; its ``return`` value, or :class:`CpuError` with QEMU's message."""
        request: Dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self._file.write(json.dumps(request).encode() + b"\n")
        self._file.flush()
        answer = self._read()
        if "error" in answer:
            raise CpuError(f"QMP {command}: {answer['error'].get('desc', answer['error'])}")
        return answer.get("return")

    def close(self) -> None:
        """Close the connection (QEMU keeps running)."""
        try:
            self._file.close()
        finally:
            self._sock.close()

    def __enter__(self) -> "Qmp":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class VcpuProfile:
    """What a vCPU looks like from inside QEMU."""

    model_id: str
    features_on: FrozenSet[str]
    features_off: FrozenSet[str]

    def summary(self) -> str:
        """One line for reports."""
        return f'model-id "{self.model_id}", {len(self.features_on)} boolean features on'


def vcpu_path(qmp: Qmp) -> str:
    """The QOM path of the first vCPU."""
    try:
        cpus: List[Dict[str, Any]] = qmp.execute("query-cpus-fast")
    except CpuError:
        return FIRST_VCPU
    return str(cpus[0]["qom-path"]) if cpus else FIRST_VCPU


def vcpu_profile(qmp: Qmp, path: Optional[str] = None) -> VcpuProfile:
    """``model-id`` and every boolean property of the vCPU, split into on and off."""
    where = path or vcpu_path(qmp)
    model_id = str(qmp.execute("qom-get", path=where, property="model-id"))
    on: Set[str] = set()
    off: Set[str] = set()
    for prop in qmp.execute("qom-list", path=where):
        if prop.get("type") != "bool":
            continue
        value = qmp.execute("qom-get", path=where, property=prop["name"])
        (on if value else off).add(prop["name"])
    return VcpuProfile(model_id.strip(), frozenset(on), frozenset(off))
