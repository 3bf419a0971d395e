"""Parsed OpenNebula objects: states, hosts, VMs, history records, hooks.

Everything here is immutable data. Parsers (``xmlparse``) build it from oned's
XML; the pure decision code (``policy``, ``iscsi``) reads it; nothing here
talks to oned. State numbers are OpenNebula's own (``include/VirtualMachine.h``
and ``include/Host.h``), the same values pyone exposes as IntEnums.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Mapping, Optional, Tuple


# oned's error codes (``Request::ErrorCode``): the third element of a failed
# answer ``[false, message, code]``. Plain ints: they go on the wire as they are.
AUTHENTICATION = 0x0100
AUTHORIZATION = 0x0200
NO_EXISTS = 0x0400
ACTION = 0x0800
XML_RPC_API = 0x1000
INTERNAL = 0x2000
ALLOCATE = 0x4000
LOCKED = 0x8000


class _TolerantIntEnum(enum.IntEnum):
    """An IntEnum that keeps values a newer oned may add instead of failing.

    A front-end upgraded before one-hooks must not make every hook crash on
    an unfamiliar state number: the value is kept as a pseudo-member named
    ``UNKNOWN_<n>``, which no rule of ours selects.
    """

    @classmethod
    def _missing_(cls, value: object) -> Optional["_TolerantIntEnum"]:
        if not isinstance(value, int):
            return None
        pseudo = int.__new__(cls, value)
        pseudo._name_ = f"UNKNOWN_{value}"
        pseudo._value_ = value
        return pseudo


class VmState(_TolerantIntEnum):
    """VM ``STATE``."""

    INIT = 0
    PENDING = 1
    HOLD = 2
    ACTIVE = 3
    STOPPED = 4
    SUSPENDED = 5
    DONE = 6
    FAILED = 7
    POWEROFF = 8
    UNDEPLOYED = 9
    CLONING = 10
    CLONING_FAILURE = 11


class LcmState(_TolerantIntEnum):
    """VM ``LCM_STATE`` (meaningful when STATE is ACTIVE)."""

    LCM_INIT = 0
    PROLOG = 1
    BOOT = 2
    RUNNING = 3
    MIGRATE = 4
    SAVE_STOP = 5
    SAVE_SUSPEND = 6
    SAVE_MIGRATE = 7
    PROLOG_MIGRATE = 8
    PROLOG_RESUME = 9
    EPILOG_STOP = 10
    EPILOG = 11
    SHUTDOWN = 12
    CANCEL = 13
    FAILURE = 14
    CLEANUP_RESUBMIT = 15
    UNKNOWN = 16
    HOTPLUG = 17
    SHUTDOWN_POWEROFF = 18
    BOOT_UNKNOWN = 19
    BOOT_POWEROFF = 20
    BOOT_SUSPENDED = 21
    BOOT_STOPPED = 22
    CLEANUP_DELETE = 23
    HOTPLUG_SNAPSHOT = 24
    HOTPLUG_NIC = 25
    HOTPLUG_SAVEAS = 26
    HOTPLUG_SAVEAS_POWEROFF = 27
    HOTPLUG_SAVEAS_SUSPENDED = 28
    SHUTDOWN_UNDEPLOY = 29
    EPILOG_UNDEPLOY = 30
    PROLOG_UNDEPLOY = 31
    BOOT_UNDEPLOY = 32
    HOTPLUG_PROLOG_POWEROFF = 33
    HOTPLUG_EPILOG_POWEROFF = 34
    BOOT_MIGRATE = 35
    BOOT_FAILURE = 36
    BOOT_MIGRATE_FAILURE = 37
    PROLOG_MIGRATE_FAILURE = 38
    PROLOG_FAILURE = 39
    EPILOG_FAILURE = 40
    EPILOG_STOP_FAILURE = 41
    EPILOG_UNDEPLOY_FAILURE = 42
    PROLOG_MIGRATE_POWEROFF = 43
    PROLOG_MIGRATE_POWEROFF_FAILURE = 44
    PROLOG_MIGRATE_SUSPEND = 45
    PROLOG_MIGRATE_SUSPEND_FAILURE = 46
    BOOT_UNDEPLOY_FAILURE = 47
    BOOT_STOPPED_FAILURE = 48
    PROLOG_RESUME_FAILURE = 49
    PROLOG_UNDEPLOY_FAILURE = 50
    DISK_SNAPSHOT_POWEROFF = 51
    DISK_SNAPSHOT_REVERT_POWEROFF = 52
    DISK_SNAPSHOT_DELETE_POWEROFF = 53
    DISK_SNAPSHOT_SUSPENDED = 54
    DISK_SNAPSHOT_REVERT_SUSPENDED = 55
    DISK_SNAPSHOT_DELETE_SUSPENDED = 56
    DISK_SNAPSHOT = 57
    DISK_SNAPSHOT_REVERT = 58
    DISK_SNAPSHOT_DELETE = 59
    PROLOG_MIGRATE_UNKNOWN = 60
    PROLOG_MIGRATE_UNKNOWN_FAILURE = 61
    DISK_RESIZE = 62
    DISK_RESIZE_POWEROFF = 63
    DISK_RESIZE_UNDEPLOYED = 64
    HOTPLUG_NIC_POWEROFF = 65
    HOTPLUG_RESIZE = 66
    HOTPLUG_SAVEAS_UNDEPLOYED = 67
    HOTPLUG_SAVEAS_STOPPED = 68
    BACKUP = 69
    BACKUP_POWEROFF = 70


class HostState(_TolerantIntEnum):
    """Host ``STATE``."""

    INIT = 0
    MONITORING_MONITORED = 1
    MONITORED = 2
    ERROR = 3
    DISABLED = 4
    MONITORING_ERROR = 5
    MONITORING_INIT = 6
    MONITORING_DISABLED = 7
    OFFLINE = 8


class HistoryAction(_TolerantIntEnum):
    """``HISTORY/ACTION``: what ended (or started) a history record."""

    NONE = 0
    MIGRATE = 1
    LIVE_MIGRATE = 2
    SHUTDOWN = 3
    SHUTDOWN_HARD = 4
    UNDEPLOY = 5
    UNDEPLOY_HARD = 6
    HOLD = 7
    RELEASE = 8
    STOP = 9
    SUSPEND = 10
    RESUME = 11
    BOOT = 12
    DELETE = 13
    DELETE_RECREATE = 14
    REBOOT = 15
    REBOOT_HARD = 16
    RESCHED = 17
    UNRESCHED = 18
    POWEROFF = 19
    POWEROFF_HARD = 20
    DISK_ATTACH = 21
    DISK_DETACH = 22
    NIC_ATTACH = 23
    NIC_DETACH = 24
    DISK_SNAPSHOT_CREATE = 25
    DISK_SNAPSHOT_DELETE = 26
    TERMINATE = 27
    TERMINATE_HARD = 28
    DISK_RESIZE = 29
    DEPLOY = 30
    CHOWN = 31
    CHMOD = 32
    UPDATECONF = 33
    RENAME = 34
    RESIZE = 35
    UPDATE = 36
    SNAPSHOT_RESIZE = 37
    SNAPSHOT_DELETE = 38
    SNAPSHOT_REVERT = 39
    DISK_SAVEAS = 40
    DISK_SNAPSHOT_REVERT = 41
    RECOVER = 42
    RETRY = 43
    MONITOR = 44


class Resource(str, enum.Enum):
    """Objects a state hook can be about."""

    VM = "VM"
    HOST = "HOST"


@dataclass(frozen=True)
class History:
    """One ``HISTORY`` record: where a VM was placed and what ended that stay.

    The times are oned's (whole seconds, 0 when unset). ``rstime``/``retime``
    bound the stay's running part: oned sets RETIME when a deploy fails or the
    VM is powered off, and resets it to 0 when a deploy succeeds; a resume
    from POWEROFF opens a new record (SEQ + 1, STIME = RSTIME = then).
    """

    seq: int
    host_id: int
    hostname: str
    action: HistoryAction
    stime: int = 0
    etime: int = 0
    rstime: int = 0
    retime: int = 0


@dataclass(frozen=True)
class Vm:
    """A VM as oned (or a hook payload) described it at one moment.

    ``prev_state``/``prev_lcm_state`` mean something only when the VM came
    from a hook payload; oned's info answers repeat the current state there.
    ``lock`` is the lock level (1 USE, 2 MANAGE, 3 ADMIN, 4 ALL) or None.
    """

    id: int
    name: str
    state: VmState
    lcm_state: LcmState
    prev_state: VmState
    prev_lcm_state: LcmState
    owner: str = ""
    history: Optional[History] = None
    user_template: Mapping[str, str] = field(default_factory=dict)
    lock: Optional[int] = None

    @property
    def host_id(self) -> Optional[int]:
        """The host of the last history record, or None if never deployed."""
        return self.history.host_id if self.history else None

    @property
    def hostname(self) -> str:
        """The host name of the last history record ('' if never deployed)."""
        return self.history.hostname if self.history else ""

    @property
    def state_name(self) -> str:
        """``STATE`` or ``STATE/LCM_STATE`` as OpenNebula's CLI names them."""
        if self.state == VmState.ACTIVE:
            return f"ACTIVE/{self.lcm_state.name}"
        return self.state.name

    @property
    def error(self) -> str:
        """``USER_TEMPLATE/ERROR``: oned's last error message for the VM ('' if none).

        oned writes it on a failed deploy (``"<ctime>: DEPLOY: <message>"``)
        and never clears it: only a change of its value tells something.
        """
        return self.user_attr("ERROR")

    def user_attr(self, name: str) -> str:
        """A USER_TEMPLATE attribute, looked up case-insensitively ('' if absent)."""
        wanted = name.upper()
        for key, value in self.user_template.items():
            if key.upper() == wanted:
                return value
        return ""


@dataclass(frozen=True)
class Host:
    """A host as oned (or a hook payload) described it at one moment.

    ``template`` holds the host template's single-valued attributes (for the
    CPU checks: ``KVM_CPU_MODEL``, ``KVM_CPU_MODELS``, ``KVM_CPU_FEATURES``...).
    """

    id: int
    name: str
    state: HostState
    prev_state: HostState
    cluster_id: int = -1
    cluster: str = ""
    vm_ids: Tuple[int, ...] = ()
    template: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HookExecution:
    """One record of a hook's execution log (``HOOKLOG/HOOK_EXECUTION_RECORD``)."""

    execution_id: int
    timestamp: int
    code: int
    stdout: str
    stderr: str
    arguments: str = ""


@dataclass(frozen=True)
class Hook:
    """A registered hook: its template attributes and its execution log."""

    id: int
    name: str
    type: str
    template: Mapping[str, str]
    log: Tuple[HookExecution, ...] = ()


@dataclass(frozen=True)
class Cluster:
    """A cluster: its hosts and its template's single-valued attributes."""

    id: int
    name: str
    host_ids: Tuple[int, ...] = ()
    template: Mapping[str, str] = field(default_factory=dict)
