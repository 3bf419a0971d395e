"""The simulated oned's objects: mutable records guarded by the cloud's lock.

They hold what oned keeps in its database for our cases, with the field
names of the XML they render to (``xmlout``). Nothing here changes state on
its own; ``cloud.Cloud`` does, under one lock.
"""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import Deque, Dict, List, Optional

from ..oned.model import HistoryAction, HostState, LcmState, VmState
from .tmpl import Attr, Value

#: oned keeps the last 20 execution records of each hook (oned.conf LOG_RETENTION).
HOOK_LOG_RETENTION = 20


def log_time(now: float) -> str:
    """oned's timestamp style in ERROR messages (``one_util::log_time``)."""
    return time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(now))


def get_attr(attrs: List[Attr], name: str) -> Optional[Value]:
    """The last value of attribute ``name`` (case-insensitive), or None."""
    found: Optional[Value] = None
    for key, value in attrs:
        if key == name.upper():
            found = value
    return found


def set_attr(attrs: List[Attr], name: str, value: Value) -> None:
    """Replace every ``name`` attribute by one with ``value``."""
    del_attr(attrs, name)
    attrs.append((name.upper(), value))


def del_attr(attrs: List[Attr], name: str) -> None:
    """Remove every ``name`` attribute."""
    attrs[:] = [(key, value) for key, value in attrs if key != name.upper()]


def merge_attrs(attrs: List[Attr], new: List[Attr]) -> None:
    """oned's append mode: attributes in ``new`` replace those of the same name."""
    for name in {key for key, _ in new}:
        del_attr(attrs, name)
    attrs.extend(new)


@dataclass
class SimHistory:
    """One HISTORY record: a stay of a VM on a host."""

    seq: int
    host_id: int
    hostname: str
    cluster_id: int
    stime: int
    vm_mad: str = "kvm"
    tm_mad: str = "ssh"
    ds_id: int = 0
    etime: int = 0
    pstime: int = 0
    petime: int = 0
    rstime: int = 0
    retime: int = 0
    action: HistoryAction = HistoryAction.NONE


@dataclass
class SimVm:
    """A virtual machine."""

    id: int
    name: str
    state: VmState
    lcm_state: LcmState
    stime: int
    uid: int = 0
    gid: int = 0
    uname: str = "oneadmin"
    gname: str = "oneadmin"
    etime: int = 0
    last_poll: int = 0
    deploy_id: str = ""
    lock: Optional[int] = None
    lock_time: int = 0
    template: List[Attr] = field(default_factory=list)
    user_template: List[Attr] = field(default_factory=list)
    history: List[SimHistory] = field(default_factory=list)

    @property
    def last(self) -> Optional[SimHistory]:
        """The last history record (None if never deployed)."""
        return self.history[-1] if self.history else None

    @property
    def state_name(self) -> str:
        """``STATE/LCM_STATE`` as the recordings' states.jsonl names it."""
        return f"{self.state.name}/{self.lcm_state.name}"


@dataclass
class SimHost:
    """A hypervisor host."""

    id: int
    name: str
    state: HostState
    cluster_id: int
    cluster: str
    im_mad: str = "kvm"
    vm_mad: str = "kvm"
    last_monitored: int = 0
    template: List[Attr] = field(default_factory=list)


@dataclass
class SimExecution:
    """One HOOK_EXECUTION_RECORD."""

    hook_id: int
    execution_id: int
    timestamp: int
    arguments: str
    command: str
    stdout: bytes
    stderr: bytes
    code: int
    retry: bool = False


@dataclass
class SimHook:
    """A registered hook: NAME and TYPE apart, the rest is its template."""

    id: int
    name: str
    type: str
    template: List[Attr] = field(default_factory=list)
    log: Deque[SimExecution] = field(
        default_factory=lambda: collections.deque(maxlen=HOOK_LOG_RETENTION))
    next_execution: int = 0

    def attr(self, name: str) -> str:
        """A single-valued template attribute ('' if absent or a vector)."""
        value = get_attr(self.template, name)
        return value if isinstance(value, str) else ""


#: ``SHARED`` of a system datastore per transfer driver, as oned.conf's TM_MAD_CONF ships it
#: (6.10.5 and 7.4.0; 7.4 adds local, netapp, purefa, virtiofs and drops vcenter).
TM_SHARED = {
    "ssh": False, "local": False, "shared": True, "qcow2": True, "ceph": True, "fs_lvm": True,
    "fs_lvm_ssh": True, "lvm": True, "iscsi_libvirt": True, "dev": True, "dummy": True, "vcenter": True,
    "netapp": True, "purefa": True, "virtiofs": True,
}

#: Datastore TYPE numbers and the TEMPLATE/TYPE word oned writes for them.
DS_TYPES = {0: "IMAGE_DS", 1: "SYSTEM_DS", 2: "FILE_DS", 3: "BACKUP_DS"}


@dataclass
class SimDatastore:
    """A datastore. oned sets a system datastore's SHARED from TM_MAD_CONF (``Datastore::set_tm_mad``)."""

    id: int
    name: str
    type: int
    tm_mad: str
    ds_mad: str = "-"
    cluster_ids: List[int] = field(default_factory=lambda: [0])

    @property
    def shared(self) -> Optional[bool]:
        """TEMPLATE/SHARED (system datastores only; oned removes it from the others)."""
        return TM_SHARED.get(self.tm_mad, True) if self.type == 1 else None


@dataclass
class SimCluster:
    """A cluster; its hosts are found through SimHost.cluster_id."""

    id: int
    name: str
    template: List[Attr] = field(default_factory=list)


@dataclass
class Tables:
    """Every object of the simulated cloud, by ID."""

    hosts: Dict[int, SimHost] = field(default_factory=dict)
    vms: Dict[int, SimVm] = field(default_factory=dict)
    hooks: Dict[int, SimHook] = field(default_factory=dict)
    clusters: Dict[int, SimCluster] = field(default_factory=dict)
    datastores: Dict[int, SimDatastore] = field(default_factory=dict)
