"""Render the simulated objects as oned 6.10 renders them.

Shapes follow the answers recorded from a real oned (``tests/data/sim/``):
element order of ``Host::to_xml``, ``VirtualMachine::to_xml_extended`` and
``to_xml_short``, ``Hook::to_xml``; template attributes sorted by name
(oned keeps them in a multimap) with values in CDATA; answers compact (no
whitespace), hook payloads pretty-printed with a two-space indent.
"""
from __future__ import annotations

import base64
from typing import Iterable, List, Optional, Sequence

from lxml import etree
# lxml's element class (etree.Element is a factory function). Imported, not assigned
# (Element = etree._Element), so that mypy takes it as a type even without lxml's stubs.
from lxml.etree import _Element as Element

from ..oned.model import HostState, LcmState, VmState
from .objects import DS_TYPES, SimCluster, SimDatastore, SimExecution, SimHistory, SimHook, SimHost, SimVm
from .tmpl import Attr

#: USER_TEMPLATE attributes kept by VirtualMachineTemplate::to_xml_short (pool answers).
SHORT_USER_ATTRS = (
    "LABELS", "ERROR", "SCHED_MESSAGE", "SCHED_RANK", "SCHED_DS_RANK",
    "SCHED_REQUIREMENTS", "SCHED_DS_REQUIREMENTS", "USER_PRIORITY", "PUBLIC_CLOUD",
)


def _sub(parent: Element, tag: str, text: object = None, cdata: bool = False) -> Element:
    child = etree.SubElement(parent, tag)
    if text is not None:
        child.text = etree.CDATA(str(text)) if cdata else str(text)
    return child


def _ints(parent: Element, tag: str, values: Iterable[object]) -> None:
    for value in values:
        _sub(parent, tag, value)


def template_element(tag: str, attrs: Sequence[Attr], names: Optional[Sequence[str]] = None) -> Element:
    """A template as oned renders it: attributes sorted by name, values in CDATA."""
    root = etree.Element(tag)
    for name, value in sorted(attrs, key=lambda attr: attr[0]):
        if names is not None and name not in names:
            continue
        if isinstance(value, str):
            _sub(root, name, value, cdata=True)
        else:
            vector = _sub(root, name)
            for key, item in sorted(value, key=lambda pair: pair[0]):
                _sub(vector, key, item, cdata=True)
    return root


def compact(element: Element) -> str:
    """An answer body: one line, no whitespace between elements."""
    return etree.tostring(element, encoding="unicode")


def pretty(element: Element) -> str:
    """A hook payload: pretty-printed with a two-space indent, as onehem passes it."""
    return etree.tostring(element, encoding="unicode", pretty_print=True)


def pool(tag: str, members: Iterable[Element]) -> Element:
    """A pool answer (``VM_POOL``, ``HOST_POOL``, ...)."""
    root = etree.Element(tag)
    for member in members:
        root.append(member)
    return root


# --- hosts --------------------------------------------------------------------


def host_element(
    host: SimHost,
    vms: Sequence[SimVm],
    prev_state: Optional[HostState] = None,
    payload: bool = False,
) -> Element:
    """``<HOST>``: info answers repeat STATE in PREV_STATE; payloads carry the old one."""
    root = etree.Element("HOST")
    _sub(root, "ID", host.id)
    _sub(root, "NAME", host.name)
    _sub(root, "STATE", int(host.state))
    _sub(root, "PREV_STATE", int(host.state if prev_state is None else prev_state))
    _sub(root, "IM_MAD", host.im_mad, cdata=True)
    _sub(root, "VM_MAD", host.vm_mad, cdata=True)
    _sub(root, "CLUSTER_ID", host.cluster_id)
    _sub(root, "CLUSTER", host.cluster)
    share = _sub(root, "HOST_SHARE")
    mem = sum(int(float(_single(vm.template, "MEMORY", "0")) * 1024) for vm in vms)
    cpu = sum(int(float(_single(vm.template, "CPU", "0")) * 100) for vm in vms)
    for tag, value in (("MEM_USAGE", mem), ("CPU_USAGE", cpu), ("TOTAL_MEM", 16777216),
                       ("TOTAL_CPU", 800), ("MAX_MEM", 16777216), ("MAX_CPU", 800),
                       ("RUNNING_VMS", len(vms)), ("VMS_THREAD", 1)):
        _sub(share, tag, value)
    stores = _sub(share, "DATASTORES")
    for tag, value in (("DISK_USAGE", 0), ("FREE_DISK", 20480), ("MAX_DISK", 20480),
                       ("USED_DISK", 0)):
        _sub(stores, tag, value, cdata=True)
    _sub(share, "PCI_DEVICES")
    _sub(share, "NUMA_NODES")
    _ints(_sub(root, "VMS"), "ID", sorted(vm.id for vm in vms))
    root.append(template_element("TEMPLATE", host.template))
    monitoring = _sub(root, "MONITORING")
    if host.last_monitored and not payload:
        _sub(monitoring, "TIMESTAMP", host.last_monitored)
        _sub(monitoring, "ID", host.id)
        capacity = _sub(monitoring, "CAPACITY")
        _sub(capacity, "FREE_CPU", 800 - cpu)
        _sub(capacity, "FREE_MEMORY", 16777216 - mem)
        _sub(capacity, "USED_CPU", cpu)
        _sub(capacity, "USED_MEMORY", mem)
    return root


def _single(attrs: Sequence[Attr], name: str, default: str) -> str:
    for key, value in attrs:
        if key == name and isinstance(value, str):
            return value
    return default


# --- VMs ----------------------------------------------------------------------


def _history(parent: Element, record: SimHistory, vm_id: int, short: bool, v7: bool = False) -> None:
    hist = _sub(parent, "HISTORY")
    _sub(hist, "OID", vm_id)
    _sub(hist, "SEQ", record.seq)
    _sub(hist, "HOSTNAME", record.hostname)
    _sub(hist, "HID", record.host_id)
    _sub(hist, "CID", record.cluster_id)
    if short:
        _sub(hist, "DS_ID", record.ds_id)
        _sub(hist, "VM_MAD", record.vm_mad, cdata=True)
        _sub(hist, "TM_MAD", record.tm_mad, cdata=True)
        _sub(hist, "ACTION", int(record.action))
        return
    _sub(hist, "STIME", record.stime)
    _sub(hist, "ETIME", record.etime)
    _sub(hist, "VM_MAD", record.vm_mad, cdata=True)
    _sub(hist, "TM_MAD", record.tm_mad, cdata=True)
    _sub(hist, "DS_ID", record.ds_id)
    if v7:  # OpenNebula 7 added the placement plan of the record
        _sub(hist, "PLAN_ID", -1)
        _sub(hist, "ACTION_ID", -1)
    for tag in ("pstime", "petime", "rstime", "retime"):
        _sub(hist, tag.upper(), getattr(record, tag))
    _sub(hist, "ESTIME", 0)
    _sub(hist, "EETIME", 0)
    _sub(hist, "ACTION", int(record.action))
    _sub(hist, "UID", -1)
    _sub(hist, "GID", -1)
    _sub(hist, "REQUEST_ID", -1)


def _head(root: Element, vm: SimVm) -> None:
    for tag, value in (("ID", vm.id), ("UID", vm.uid), ("GID", vm.gid),
                       ("UNAME", vm.uname), ("GNAME", vm.gname), ("NAME", vm.name)):
        _sub(root, tag, value)


def vm_element(
    vm: SimVm,
    history: str = "all",
    prev: Optional[tuple] = None,
    payload: bool = False,
    v7: bool = False,
) -> Element:
    """``<VM>`` full body (``one.vm.info``; ``history="last"`` for infoextended).

    ``prev`` is (state, lcm_state) before the change a payload reports;
    info answers repeat the current state there. ``v7`` adds what oned 7.x
    added (HISTORY's PLAN_ID and ACTION_ID); the default is 6.10's shape.
    """
    root = etree.Element("VM")
    _head(root, vm)
    perms = _sub(root, "PERMISSIONS")
    for tag, value in (("OWNER_U", 1), ("OWNER_M", 1), ("OWNER_A", 0), ("GROUP_U", 0),
                       ("GROUP_M", 0), ("GROUP_A", 0), ("OTHER_U", 0), ("OTHER_M", 0),
                       ("OTHER_A", 0)):
        _sub(perms, tag, value)
    prev_state, prev_lcm = prev if prev else (vm.state, vm.lcm_state)
    _sub(root, "LAST_POLL", 0 if payload else vm.last_poll)
    _sub(root, "STATE", int(vm.state))
    _sub(root, "LCM_STATE", int(vm.lcm_state))
    _sub(root, "PREV_STATE", int(VmState(prev_state)))
    _sub(root, "PREV_LCM_STATE", int(LcmState(prev_lcm)))
    _sub(root, "RESCHED", 0)
    _sub(root, "STIME", vm.stime)
    _sub(root, "ETIME", vm.etime)
    _sub(root, "DEPLOY_ID", vm.deploy_id)
    if vm.lock is not None:
        lock = _sub(root, "LOCK")
        for tag, value in (("LOCKED", vm.lock), ("OWNER", 0), ("TIME", vm.lock_time),
                           ("REQ_ID", -1)):
            _sub(lock, tag, value)
    monitoring = _sub(root, "MONITORING")
    if vm.last_poll and not payload:
        _sub(monitoring, "CPU", 0)
        _sub(monitoring, "ID", vm.id)
        _sub(monitoring, "MEMORY", int(float(_single(vm.template, "MEMORY", "0")) * 1024))
        _sub(monitoring, "TIMESTAMP", vm.last_poll)
    _sub(root, "SCHED_ACTIONS")
    root.append(template_element("TEMPLATE", vm.template))
    root.append(template_element("USER_TEMPLATE", vm.user_template))
    records = _sub(root, "HISTORY_RECORDS")
    chosen: List[SimHistory] = vm.history if history == "all" else vm.history[-1:]
    for record in chosen:
        _history(records, record, vm.id, short=False, v7=v7)
    backups = _sub(root, "BACKUPS")
    _sub(backups, "BACKUP_CONFIG")
    _sub(backups, "BACKUP_IDS")
    return root


def vm_short_element(vm: SimVm) -> Element:
    """``<VM>`` as ``one.vmpool.info`` lists it (``VirtualMachine::to_xml_short``)."""
    root = etree.Element("VM")
    _head(root, vm)
    for tag, value in (("LAST_POLL", vm.last_poll), ("STATE", int(vm.state)),
                       ("LCM_STATE", int(vm.lcm_state)), ("RESCHED", 0), ("STIME", vm.stime),
                       ("ETIME", vm.etime), ("DEPLOY_ID", vm.deploy_id)):
        _sub(root, tag, value)
    if vm.lock is not None:
        _sub(_sub(root, "LOCK"), "LOCKED", vm.lock)
    template = _sub(root, "TEMPLATE")
    _sub(template, "CPU", _single(vm.template, "CPU", ""), cdata=True)
    _sub(template, "MEMORY", _single(vm.template, "MEMORY", ""), cdata=True)
    monitoring = _sub(root, "MONITORING")
    if vm.last_poll:
        _sub(monitoring, "CPU", 0)
        _sub(monitoring, "MEMORY", int(float(_single(vm.template, "MEMORY", "0")) * 1024))
    root.append(template_element("USER_TEMPLATE", vm.user_template, SHORT_USER_ATTRS))
    records = _sub(root, "HISTORY_RECORDS")
    if vm.history:
        _history(records, vm.history[-1], vm.id, short=True)
    return root


# --- hooks and clusters -------------------------------------------------------


def _execution(parent: Element, record: SimExecution) -> None:
    rec = _sub(parent, "HOOK_EXECUTION_RECORD")
    _sub(rec, "HOOK_ID", record.hook_id)
    _sub(rec, "EXECUTION_ID", record.execution_id)
    _sub(rec, "TIMESTAMP", record.timestamp)
    _sub(rec, "ARGUMENTS", record.arguments)
    result = _sub(rec, "EXECUTION_RESULT")
    _sub(result, "COMMAND", record.command)
    # Empty output renders as an empty element, as in the recorded HOOKLOGs.
    _sub(result, "STDOUT", base64.b64encode(record.stdout).decode() if record.stdout else None)
    _sub(result, "STDERR", base64.b64encode(record.stderr).decode() if record.stderr else None)
    _sub(result, "CODE", record.code)
    if record.retry:
        _sub(rec, "RETRY", "yes")


def hook_element(hook: SimHook, with_log: bool) -> Element:
    """``<HOOK>``; the HOOKLOG only in ``one.hook.info``, not in the pool."""
    root = etree.Element("HOOK")
    _sub(root, "ID", hook.id)
    _sub(root, "NAME", hook.name)
    _sub(root, "TYPE", hook.type)
    root.append(template_element("TEMPLATE", hook.template))
    if with_log:
        log = _sub(root, "HOOKLOG")
        for record in hook.log:
            _execution(log, record)
    return root


def cluster_element(cluster: SimCluster, host_ids: Sequence[int]) -> Element:
    """``<CLUSTER>`` with its hosts (the simulator has one system datastore, 0)."""
    root = etree.Element("CLUSTER")
    _sub(root, "ID", cluster.id)
    _sub(root, "NAME", cluster.name)
    _ints(_sub(root, "HOSTS"), "ID", sorted(host_ids))
    _ints(_sub(root, "DATASTORES"), "ID", [0, 1, 2])
    _sub(root, "VNETS")
    root.append(template_element("TEMPLATE", cluster.template))
    return root


# --- datastores ---------------------------------------------------------------

#: CLONE_TARGET / LN_TARGET of an image datastore per transfer driver (TM_MAD_CONF).
_TARGETS = {"ssh": ("SYSTEM", "SYSTEM"), "ceph": ("SELF", "NONE"), "lvm": ("SELF", "NONE"),
            "iscsi_libvirt": ("SELF", "NONE"), "dev": ("NONE", "NONE"), "fs_lvm": ("SYSTEM", "SYSTEM"),
            "fs_lvm_ssh": ("SYSTEM", "SYSTEM")}


def datastore_element(ds: SimDatastore, base: str = "/var/lib/one//datastores") -> Element:
    """``<DATASTORE>`` (``Datastore::to_xml``), shaped like the 6.10.5 and 7.4.0 rigs' answers."""
    root = etree.Element("DATASTORE")
    for tag, value in (("ID", ds.id), ("UID", 0), ("GID", 0), ("UNAME", "oneadmin"), ("GNAME", "oneadmin"),
                       ("NAME", ds.name)):
        _sub(root, tag, value)
    perms = _sub(root, "PERMISSIONS")
    for tag, value in (("OWNER_U", 1), ("OWNER_M", 1), ("OWNER_A", 0), ("GROUP_U", 1), ("GROUP_M", 0),
                       ("GROUP_A", 0), ("OTHER_U", 0), ("OTHER_M", 0), ("OTHER_A", 0)):
        _sub(perms, tag, value)
    _sub(root, "DS_MAD", ds.ds_mad, cdata=True)
    _sub(root, "TM_MAD", ds.tm_mad, cdata=True)
    _sub(root, "BASE_PATH", f"{base}/{ds.id}", cdata=True)
    for tag, value in (("TYPE", ds.type), ("DISK_TYPE", 0), ("STATE", 0)):
        _sub(root, tag, value)
    _ints(_sub(root, "CLUSTERS"), "ID", ds.cluster_ids)
    for tag, value in (("TOTAL_MB", 20480), ("FREE_MB", 20480), ("USED_MB", 0)):
        _sub(root, tag, value)
    _sub(root, "IMAGES")
    attrs: List[Attr] = [("DISK_TYPE", "FILE"), ("RESTRICTED_DIRS", "/"), ("SAFE_DIRS", "/var/tmp"),
                         ("TM_MAD", ds.tm_mad), ("TYPE", DS_TYPES.get(ds.type, "IMAGE_DS"))]
    if ds.type == 1:
        attrs += [("ALLOW_ORPHANS", "YES"), ("DS_MIGRATE", "YES"), ("SHARED", "YES" if ds.shared else "NO")]
    else:
        clone, link = _TARGETS.get(ds.tm_mad, ("SYSTEM", "NONE"))
        attrs += [("ALLOW_ORPHANS", "NO"), ("CLONE_TARGET", clone), ("DS_MAD", ds.ds_mad), ("LN_TARGET", link)]
    root.append(template_element("TEMPLATE", attrs))
    return root
