"""What a node's iSCSI initiator says, parsed, and whether VMs may start there.

Parsers turn the text of ``iscsiadm``, ``find`` and ``multipath`` into small
frozen records and raise :class:`~one_hooks.errors.NodeError` on text they do
not recognise (the gate then says UNKNOWN, never HEALTHY). :func:`evaluate`
is a pure function from those records and the expectations to a
:class:`Verdict` with one human line per missing or broken target.
"""
from __future__ import annotations

import enum
import re
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..errors import NodeError

#: iscsiadm's exit code for "no records/targets/sessions found" (include/iscsi_err.h).
NO_OBJS_FOUND = 21


class Status(str, enum.Enum):
    """The gate's answer for one host."""

    HEALTHY = "HEALTHY"
    BROKEN = "BROKEN"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class Disk:
    """An ``Attached scsi disk`` line of ``-P 3``."""

    name: str
    state: str


@dataclass(frozen=True)
class Session:
    """One iSCSI session. ``target`` is "" when the output did not name it.

    States are "" when the listing does not print them (the flat ``-m
    session``); ``disks`` is None unless the listing was ``-P 3``.
    """

    target: str
    portal: str
    sid: Optional[int] = None
    tpgt: Optional[int] = None
    connection_state: str = ""
    session_state: str = ""
    iscsid_state: str = ""
    disks: Optional[Tuple[Disk, ...]] = None
    transport: str = ""

    def problems(self) -> List[str]:
        """What is wrong with this session (empty: healthy)."""
        found = []
        if self.session_state != "LOGGED_IN":
            found.append(f"session state {self.session_state or 'not reported'}")
        if self.connection_state != "LOGGED IN":
            found.append(f"connection state {self.connection_state or 'not reported'}")
        if self.disks is not None:
            if not self.disks:
                found.append("no disk attached")
            found.extend(f"disk {d.name} {d.state}" for d in self.disks if d.state != "running")
        return found

    def label(self) -> str:
        """``IQN at PORTAL (SID n)`` for messages."""
        name = self.target or "(target not named in the output)"
        sid = f" (SID {self.sid})" if self.sid is not None else ""
        return f"{name} at {self.portal}{sid}"


@dataclass(frozen=True)
class NodeRecord:
    """A configured target (``iscsiadm -m node``): what should be logged in."""

    portal: str
    tpgt: int
    target: str


@dataclass(frozen=True)
class ByPathLink:
    """A ``/dev/disk/by-path/ip-ADDR:PORT-iscsi-IQN-lun-N`` name."""

    path: str
    portal: str
    target: str
    lun: int


@dataclass(frozen=True)
class MultipathPath:
    """A path line of ``multipath -ll``."""

    map_name: str
    hctl: str
    device: str
    dm_state: str
    checker_state: str
    device_state: str

    def healthy(self) -> bool:
        """Only ``active ready running`` is a usable path."""
        return (self.dm_state, self.checker_state, self.device_state) == ("active", "ready", "running")


@dataclass(frozen=True)
class TargetCheck:
    """One line of the verdict: an expected target or a session seen."""

    target: str
    portal: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Verdict:
    """The gate's answer for one host, with human lines saying why."""

    host: str
    status: Status
    problems: Tuple[str, ...] = ()
    notes: Tuple[str, ...] = ()
    targets: Tuple[TargetCheck, ...] = ()
    checked_at: float = 0.0

    @property
    def healthy(self) -> bool:
        """True only for HEALTHY."""
        return self.status is Status.HEALTHY

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict (cache files and ``--json``)."""
        data = asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Verdict":
        """The inverse of :meth:`to_dict`; raises KeyError/ValueError/TypeError on bad data."""
        return cls(
            host=str(data["host"]), status=Status(data["status"]),
            problems=tuple(str(p) for p in data["problems"]),
            notes=tuple(str(n) for n in data["notes"]),
            targets=tuple(TargetCheck(str(t["target"]), str(t["portal"]), bool(t["ok"]), str(t["detail"]))
                          for t in data["targets"]),
            checked_at=float(data["checked_at"]))


# --- parsers ------------------------------------------------------------------

_PORTAL = r"(\[[^\]\s]+\]|[^\s,]+?):(\d+),(-?\d+)"
_KEY_VALUE = re.compile(r"^([A-Za-z][\w .()/-]*?):(?:\s+(.*))?$")
_DISK = re.compile(r"^Attached scsi disk (\S+)\s+State:\s*(.+)$")


def parse_session_detail(text: str) -> List[Session]:
    """Parse ``iscsiadm -m session -P 1`` or ``-P 3``.

    Raw format (open-iscsi ``usr/session_info.c``; tabs indent)::

        iSCSI Transport Class version 2.0-870
        version 2.1.3
        Target: iqn.1992-04.com.emc:cx.apm00191923511.a4 (non-flash)
        \\tCurrent Portal: 10.1.53.160:3260,1
        \\tPersistent Portal: 10.1.53.160:3260,1
        \\t\\tIface Transport: tcp
        \\t\\tSID: 1
        \\t\\tiSCSI Connection State: LOGGED IN
        \\t\\tiSCSI Session State: LOGGED_IN
        \\t\\tInternal iscsid Session State: NO CHANGE
        \\t\\tAttached SCSI devices:                        (-P 3 only)
        \\t\\tHost Number: 7\\tState: running
        \\t\\tscsi7 Channel 00 Id 0 Lun: 0
        \\t\\t\\tAttached scsi disk sdb\\t\\tState: running

    Each ``Current Portal`` starts a session of the last ``Target``. A
    session printed without a ``Target`` line keeps ``target=""``. Other
    ``key: value`` lines are skipped; a line that fits none of this raises.
    """
    sessions: List[Session] = []
    target = ""
    current: Optional[Dict[str, Any]] = None

    def close() -> None:
        if current is None:
            return
        if not current["session_state"]:
            raise NodeError(f"iscsiadm -m session -P: session at {current['portal']} has no "
                            "'iSCSI Session State' line (not a -P 1/-P 3 listing?)")
        disks = current.pop("disk_list")
        current["disks"] = tuple(disks) if current.pop("has_devices") else None
        sessions.append(Session(**current))

    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or set(line) == {"*"}:
            continue
        if line.startswith("iSCSI Transport Class version") or re.match(r"^version \S+$", line):
            continue
        if line.startswith("Target:"):
            close()
            current = None
            target = line[len("Target:"):].strip().split(" ")[0]
            if not target:
                raise NodeError(f"iscsiadm -m session -P: line {number}: empty Target")
            continue
        if line.startswith("Current Portal:"):
            close()
            match = re.match(_PORTAL + "$", line[len("Current Portal:"):].strip())
            if not match:
                raise NodeError(f"iscsiadm -m session -P: line {number}: bad portal {line!r}")
            current = dict(target=target, portal=f"{match.group(1)}:{match.group(2)}",
                           tpgt=int(match.group(3)), sid=None, connection_state="",
                           session_state="", iscsid_state="", transport="",
                           disk_list=[], has_devices=False)
            continue
        if current is None:
            raise NodeError(f"iscsiadm -m session -P: line {number} is outside any session: {line[:80]!r}")
        disk = _DISK.match(line)
        if disk:
            current["disk_list"].append(Disk(disk.group(1), disk.group(2).strip()))
            continue
        pair = _KEY_VALUE.match(line)
        if not pair:
            # SCSI address lines ("scsi7 Channel 00 Id 0 Lun: 0") carry a colon late; anything else is foreign.
            if re.match(r"^scsi\d+ Channel", line):
                continue
            raise NodeError(f"iscsiadm -m session -P: line {number} not understood: {line[:80]!r}")
        key, value = pair.group(1), (pair.group(2) or "").strip()
        if key == "SID":
            current["sid"] = int(value) if re.fullmatch(r"[0-9]+", value) else None
        elif key == "iSCSI Connection State":
            current["connection_state"] = value
        elif key == "iSCSI Session State":
            current["session_state"] = value
        elif key == "Internal iscsid Session State":
            current["iscsid_state"] = value
        elif key == "Iface Transport":
            current["transport"] = value
        elif key == "Attached SCSI devices":
            current["has_devices"] = True
    close()
    return sessions


_NODE = re.compile(r"^" + _PORTAL + r" (\S+)$")


def parse_node_records(text: str) -> List[NodeRecord]:
    """Parse ``iscsiadm -m node`` (configured records, not live sessions).

    Raw format (``idbm_print_node_flat``; IPv6 portals in brackets)::

        192.168.121.250:3260,1 iqn.2010-10.org.openstack:volume
        [fd00::10]:3260,1 iqn.2000-01.example:tgt0
    """
    records = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        match = _NODE.match(line)
        if not match:
            raise NodeError(f"iscsiadm -m node: line {number} not understood: {line[:80]!r}")
        records.append(NodeRecord(f"{match.group(1)}:{match.group(2)}", int(match.group(3)), match.group(4)))
    return records


def no_objects(returncode: int, stderr: str) -> bool:
    """True for iscsiadm's "nothing there" answer: exit 21, "No active sessions." / "No records found"."""
    return returncode == NO_OBJS_FOUND and ("No active sessions" in stderr or "No records found" in stderr
                                            or "No session found" in stderr)


_BY_PATH = re.compile(r"ip-(\S+?):(\d+)-iscsi-(\S+)-lun-(\d+)(?:-part\d+)?$")


def parse_by_path(text: str) -> List[ByPathLink]:
    """iSCSI links named in ``find /dev/disk/by-path -xtype l`` or ``ls -l`` output.

    Name format (systemd ``udev-builtin-path_id.c``)::

        /dev/disk/by-path/ip-172.20.1.10:3260-iscsi-iqn.2007-11.com.example:vol1-lun-0
        lrwxrwxrwx 1 root root 9 May 1 10:00 ip-10.0.0.5:3260-iscsi-iqn.x:y-lun-1 -> ../../sdc

    Lines for other buses (pci-, usb-) are skipped. Run on the node as
    ``find /dev/disk/by-path -xtype l``: it lists only dangling links.
    """
    links = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("total "):
            continue
        name = line.split(" -> ")[0].split()[-1]
        match = _BY_PATH.search(name.rsplit("/", 1)[-1])
        if match and "-iscsi-" in name:
            links.append(ByPathLink(name, f"{match.group(1)}:{match.group(2)}", match.group(3),
                                    int(match.group(4))))
    return links


_MP_PATH = re.compile(r"(\d+:\d+:\d+:\d+)\s+(\S+)\s+(\d+:\d+)\s+(\S+)\s+(.+?)\s+(\S+)$")


def parse_multipath(text: str) -> List[MultipathPath]:
    """Path lines of ``multipath -ll``.

    Raw format (multipath-tools; a map line, then path groups and paths)::

        36006016040203100d2fba8d4190de711 dm-6 DGC,VRAID
        size=10G features='0' hwhandler='1 alua' wp=rw
        |-+- policy='service-time 0' prio=50 status=active
        | |- 1:0:1:1 sdg 8:96   active ready running
        `- 2:0:4:1 sdc 8:32   failed faulty running

    Path columns: H:C:T:L, device, maj:min, dm state, checker state (may be
    two words, "i/o pending"), device state.
    """
    paths = []
    map_name = ""
    for raw in text.splitlines():
        match = _MP_PATH.search(raw)
        if match:
            paths.append(MultipathPath(map_name, *match.group(1, 2, 4, 5, 6)))
            continue
        words = raw.split()
        if len(words) >= 2 and any(re.match(r"^dm-\d+$", w) for w in words[1:3]):
            map_name = words[0]
    return paths


# --- the verdict ----------------------------------------------------------------


def evaluate(sessions: Sequence[Session], node_records: Optional[Sequence[NodeRecord]],
             required_targets: Iterable[str], require_node_records: bool,
             by_path_dangling: Optional[Sequence[ByPathLink]],
             multipath: Optional[Sequence[MultipathPath]], *, host: str = "",
             checked_at: float = 0.0) -> Verdict:
    """Decide whether VMs may start on a host, from what its initiator says.

    Expected: every ``required_targets`` IQN (a healthy session on any
    portal), plus each node record (a healthy session at that portal) when
    ``require_node_records``. Healthy only if each expected target has a
    session that is LOGGED_IN with its connection LOGGED IN and all disks
    ``running``; any other unhealthy session, dangling by-path link or
    multipath path not ``active ready running`` breaks it too. ``None`` for
    node records, links or multipath means "not checked".
    """
    problems: List[str] = []
    notes: List[str] = []
    checks: List[TargetCheck] = []
    expected: List[Tuple[str, str]] = [(iqn, "") for iqn in dict.fromkeys(required_targets)]
    if require_node_records and node_records is not None:
        expected += [(r.target, r.portal) for r in node_records if (r.target, r.portal) not in expected]
    covered = set()
    for iqn, portal in expected:
        mine = [s for s in sessions if s.target == iqn and (not portal or s.portal == portal)]
        where = f" at {portal}" if portal else ""
        if not mine:
            problems.append(f"target {iqn}{where}: no session")
            checks.append(TargetCheck(iqn, portal, False, "no session"))
            continue
        for session in mine:
            covered.add(id(session))
        good = [s for s in mine if not s.problems()]
        if good:
            checks.append(TargetCheck(iqn, good[0].portal, True, _describe(good[0])))
        else:
            for session in mine:
                detail = ", ".join(session.problems())
                problems.append(f"target {session.label()}: {detail}")
                checks.append(TargetCheck(iqn, session.portal, False, detail))
    for session in sessions:
        if id(session) in covered:
            continue
        bad = session.problems()
        if bad:
            problems.append(f"session {session.label()}: {', '.join(bad)}")
        checks.append(TargetCheck(session.target, session.portal, not bad,
                                  ", ".join(bad) if bad else _describe(session)))
    if not expected:
        notes.append("no target is expected (no required_targets" +
                     (", no node records)" if require_node_records else "; node records not required)"))
        if not sessions:
            notes.append("no iSCSI session on this host and none expected")
    for link in by_path_dangling or ():
        problems.append(f"dangling link {link.path} (target {link.target} at {link.portal}, LUN {link.lun})")
    for path in multipath or ():
        if not path.healthy():
            problems.append(f"multipath {path.map_name or '?'} path {path.device} ({path.hctl}): "
                            f"{path.dm_state} {path.checker_state} {path.device_state}")
    status = Status.BROKEN if problems else Status.HEALTHY
    return Verdict(host, status, tuple(problems), tuple(notes), tuple(checks), checked_at)


def _describe(session: Session) -> str:
    disks = ", ".join(f"{d.name} {d.state}" for d in session.disks or ())
    sid = f"SID {session.sid}: " if session.sid is not None else ""
    return f"{sid}{session.session_state}, connection {session.connection_state}" + (
        f", disks {disks}" if disks else "")


def unknown(host: str, reason: str, checked_at: float = 0.0) -> Verdict:
    """The verdict when the node could not be asked or its answer not understood."""
    return Verdict(host, Status.UNKNOWN, (reason,), (), (), checked_at)
