"""oned's XML (API answers and hook payloads) -> the frozen objects of ``model``.

Everything a hook reads arrives as XML from oned: the base64 ``$TEMPLATE``
on stdin, then the answers of ``one.vm.info`` and friends. This module turns
that text into :mod:`one_hooks.oned.model` objects and nothing else: no I/O, no
oned calls. It sits on the hook path, so it imports only the stdlib and lxml.

The parser is locked down because a payload is input from outside: no DTD
loading, no entity expansion, no network, no huge trees, and any document
carrying a DOCTYPE is refused (oned never sends one). Malformed or
incomplete XML raises :class:`~one_hooks.errors.PayloadError` with one line
saying what is wrong; the oned adapter turns that into ``OnedApiError`` for
API answers.

Shapes read (OpenNebula 6.10 / 7.x, no namespace, CDATA or plain text)::

    <VM><ID/><NAME/><UNAME/>...<STATE/><LCM_STATE/><PREV_STATE/><PREV_LCM_STATE/>
        <LOCK><LOCKED/>...</LOCK>?  <USER_TEMPLATE>...</USER_TEMPLATE>
        <HISTORY_RECORDS><HISTORY><SEQ/><HOSTNAME/><HID/>...<ACTION/></HISTORY>*
    <HOST><ID/><NAME/><STATE/><PREV_STATE/>...<CLUSTER_ID/><CLUSTER/>
        <VMS><ID/>*</VMS><TEMPLATE>...</TEMPLATE>
    <HOOK><ID/><NAME/><TYPE/><TEMPLATE/><HOOKLOG><HOOK_EXECUTION_RECORD/>*</HOOKLOG>?
    <CLUSTER><ID/><NAME/><HOSTS><ID/>*</HOSTS>...<TEMPLATE/>
    <DATASTORE><ID/><NAME/>...<CLUSTERS><ID/>*</CLUSTERS>...<TYPE/>...<TM_MAD/>...
        <TEMPLATE><SHARED/>?...</TEMPLATE>
    (VM) <TEMPLATE><CPU/><MEMORY/><DISK><DISK_ID/><DATASTORE_ID/><TM_MAD/><IMAGE_ID/>?
        <CLONE/>?<PERSISTENT/>?<CLONE_TARGET/>?<LN_TARGET/>?</DISK>*</TEMPLATE>
    (HOST) <HOST_SHARE><MAX_CPU/><CPU_USAGE/><MAX_MEM/><MEM_USAGE/><RUNNING_VMS/></HOST_SHARE>
"""
from __future__ import annotations

import base64
import binascii
from typing import Callable, Dict, List, Literal, Optional, Tuple, TypeVar, Union, overload

from lxml import etree

from ..errors import PayloadError
from .payload import MAX_PAYLOAD_BYTES, int_field, unbase64
from .model import (
    Cluster, Datastore, DatastoreType, Disk, History, HistoryAction, Hook, HookExecution, Host, HostShare,
    HostState, LcmState, Resource, Vm, VmState,
)


XmlInput = Union[bytes, str]

_PARSER = etree.XMLParser(
    resolve_entities=False,  # no entity expansion (billion laughs, XXE)
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,          # libxml2's default depth and text-size limits stay on
    remove_comments=True,
    remove_pis=True,
)

_T = TypeVar("_T")


# --- low level ----------------------------------------------------------------


def _root(xml: XmlInput, what: str) -> etree._Element:
    """Parse ``xml`` safely and return its root element."""
    data = xml.encode("utf-8") if isinstance(xml, str) else xml
    if not data or not data.strip():
        raise PayloadError(f"{what}: empty document")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        reason = getattr(exc, "msg", "") or str(exc)
        raise PayloadError(f"{what}: not well-formed XML ({_one_line(reason)})") from None
    except ValueError as exc:  # e.g. a str carrying an encoding declaration
        raise PayloadError(f"{what}: unusable XML ({_one_line(str(exc))})") from None
    if root is None:
        raise PayloadError(f"{what}: empty document")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        # oned never sends a DOCTYPE; one here can only be an entity trick.
        raise PayloadError(f"{what}: DOCTYPE declarations are not accepted")
    return root


def _one_line(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _show(value: str) -> str:
    """A short, safe rendering of a bad value for an error message."""
    return repr(value if len(value) <= 40 else value[:37] + "...")


def _children(el: etree._Element, tag: Optional[str] = None) -> List[etree._Element]:
    """Direct element children (comments and entity nodes excluded)."""
    return [c for c in el if isinstance(c.tag, str) and (tag is None or c.tag == tag)]


def _child(el: etree._Element, tag: str) -> Optional[etree._Element]:
    for c in _children(el, tag):
        return c
    return None


def _text(el: etree._Element, tag: str) -> Optional[str]:
    """Text of the first direct child ``tag`` ('' if empty), None if absent."""
    c = _child(el, tag)
    return None if c is None else "".join(c.itertext())


def _str(el: etree._Element, tag: str, default: str = "") -> str:
    value = _text(el, tag)
    return default if value is None else value


def _int(el: etree._Element, tag: str, default: Optional[int] = None) -> int:
    """Integer child ``tag``; missing raises unless a default is given."""
    value = _text(el, tag)
    try:
        return int_field(value, default)
    except LookupError:
        raise PayloadError(f"{el.tag}: missing {tag}") from None
    except ValueError:
        raise PayloadError(f"{el.tag}/{tag}: not an integer: {_show(value or '')}") from None


def _int_or(el: etree._Element, tag: str, default: int) -> int:
    """Integer child ``tag``, ``default`` when absent or not an integer.

    For the facts only an evacuation reads (datastores, disks, host shares):
    a value we cannot read means "unknown" there, and the storage rule refuses
    what it cannot tell; it must not make the hooks refuse a whole payload.
    """
    try:
        return int_field(_text(el, tag), default)
    except (LookupError, ValueError):
        return default


def _int_list(el: etree._Element, tag: str) -> Tuple[int, ...]:
    """``<TAG><ID>1</ID><ID>2</ID></TAG>`` -> (1, 2); () if ``tag`` is absent."""
    holder = _child(el, tag)
    if holder is None:
        return ()
    return tuple(_int_of(i, f"{el.tag}/{tag}/ID") for i in _children(holder, "ID"))


def _int_of(el: etree._Element, where: str) -> int:
    value = "".join(el.itertext())
    try:
        return int(value.strip())
    except ValueError:
        raise PayloadError(f"{where}: not an integer: {_show(value)}") from None


def _attributes(el: Optional[etree._Element]) -> Dict[str, str]:
    """Single-valued attributes of a template element (vector attributes skipped).

    An attribute repeated at top level keeps its first value, as OpenNebula's
    own ``Template::get`` does.
    """
    out: Dict[str, str] = {}
    if el is None:
        return out
    for c in _children(el):
        if _children(c) or c.tag in out:
            continue
        out[c.tag] = "".join(c.itertext())
    return out


def _expect_tag(root: etree._Element, tag: str, what: str) -> None:
    if root.tag != tag:
        raise PayloadError(f"{what}: expected a <{tag}> document, got <{_tag_name(root)}>")


def _tag_name(el: etree._Element) -> str:
    return _one_line(str(el.tag), 40)


# --- objects ------------------------------------------------------------------


def _history(el: etree._Element) -> History:
    return History(
        seq=_int(el, "SEQ"),
        host_id=_int(el, "HID"),
        hostname=_str(el, "HOSTNAME"),
        action=HistoryAction(_int(el, "ACTION", 0)),
        stime=_int(el, "STIME", 0),
        etime=_int(el, "ETIME", 0),
        rstime=_int(el, "RSTIME", 0),
        retime=_int(el, "RETIME", 0),
        ds_id=_int_or(el, "DS_ID", -1),
        tm_mad=_str(el, "TM_MAD"),
    )


def _yes(el: etree._Element, tag: str) -> bool:
    return _str(el, tag).strip().upper() == "YES"


def _disk(el: etree._Element) -> Disk:
    clone = _yes(el, "CLONE")
    # oned places a clone by CLONE_TARGET, anything else by LN_TARGET (VirtualMachineDisk::get_tm_target).
    target = _str(el, "CLONE_TARGET" if clone else "LN_TARGET").strip().upper()
    return Disk(
        disk_id=_int_or(el, "DISK_ID", -1),
        datastore_id=_int_or(el, "DATASTORE_ID", -1),
        tm_mad=_str(el, "TM_MAD").strip(),
        image_id=_int_or(el, "IMAGE_ID", -1),
        clone=clone,
        persistent=_yes(el, "PERSISTENT"),
        target=target,
    )


def _number(el: Optional[etree._Element], tag: str) -> float:
    """A numeric template value, 0 when absent or not a number (templates hold what users wrote)."""
    if el is None:
        return 0.0
    try:
        return float(_str(el, tag, "0").strip() or 0)
    except ValueError:
        return 0.0


def _share(el: Optional[etree._Element]) -> Optional[HostShare]:
    if el is None:
        return None
    return HostShare(max_cpu=_int_or(el, "MAX_CPU", 0), cpu_usage=_int_or(el, "CPU_USAGE", 0),
                     max_mem=_int_or(el, "MAX_MEM", 0), mem_usage=_int_or(el, "MEM_USAGE", 0),
                     running_vms=_int_or(el, "RUNNING_VMS", 0))


def _last_history(vm: etree._Element) -> Optional[History]:
    """The history record with the highest SEQ (None if never deployed)."""
    records = _child(vm, "HISTORY_RECORDS")
    if records is None:
        return None
    parsed = [_history(h) for h in _children(records, "HISTORY")]
    return max(parsed, key=lambda h: h.seq) if parsed else None


def _lock(el: etree._Element) -> Optional[int]:
    lock = _child(el, "LOCK")
    if lock is None:
        return None
    level = _int(lock, "LOCKED", 0)
    return level or None


def vm_from_element(el: etree._Element) -> Vm:
    """A parsed ``<VM>`` element -> :class:`Vm`."""
    _expect_tag(el, "VM", "VM")
    state = VmState(_int(el, "STATE"))
    lcm_state = LcmState(_int(el, "LCM_STATE"))
    template = _child(el, "TEMPLATE")
    return Vm(
        id=_int(el, "ID"),
        name=_str(el, "NAME"),
        state=state,
        lcm_state=lcm_state,
        # oned's info answers repeat the current state here; payloads carry the real one.
        prev_state=VmState(_int(el, "PREV_STATE", int(state))),
        prev_lcm_state=LcmState(_int(el, "PREV_LCM_STATE", int(lcm_state))),
        owner=_str(el, "UNAME"),
        history=_last_history(el),
        user_template=_attributes(_child(el, "USER_TEMPLATE")),
        lock=_lock(el),
        disks=tuple(_disk(d) for d in _children(template, "DISK")) if template is not None else (),
        cpu=_number(template, "CPU"),
        memory_mb=int(_number(template, "MEMORY")),
    )


def host_from_element(el: etree._Element) -> Host:
    """A parsed ``<HOST>`` element -> :class:`Host`."""
    _expect_tag(el, "HOST", "HOST")
    state = HostState(_int(el, "STATE"))
    return Host(
        id=_int(el, "ID"),
        name=_str(el, "NAME"),
        state=state,
        prev_state=HostState(_int(el, "PREV_STATE", int(state))),
        cluster_id=_int(el, "CLUSTER_ID", -1),
        cluster=_str(el, "CLUSTER"),
        vm_ids=_int_list(el, "VMS"),
        template=_attributes(_child(el, "TEMPLATE")),
        share=_share(_child(el, "HOST_SHARE")),
    )


def datastore_from_element(el: etree._Element) -> Datastore:
    """A parsed ``<DATASTORE>`` element -> :class:`Datastore`."""
    _expect_tag(el, "DATASTORE", "DATASTORE")
    template = _child(el, "TEMPLATE")
    shared = _str(template, "SHARED").strip().upper() if template is not None else ""
    return Datastore(
        id=_int(el, "ID"),
        name=_str(el, "NAME"),
        type=DatastoreType(_int(el, "TYPE")),
        tm_mad=_str(el, "TM_MAD").strip(),
        shared={"YES": True, "NO": False}.get(shared),
        cluster_ids=_int_list(el, "CLUSTERS"),
    )


def _b64_text(el: etree._Element, tag: str) -> str:
    """A base64 field of a hook execution record, decoded (oned stores them encoded).

    onehem encodes with Ruby's ``Base64.encode64``, which breaks the text
    into lines of 60 characters: any output longer than 45 bytes arrives
    with line breaks (seen on the real 6.10.5 and 7.4.0), so whitespace is
    dropped before the strict decode; any other stray character is refused.
    """
    raw = "".join(_str(el, tag).split())
    if not raw:
        return ""
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        raise PayloadError(f"{el.tag}/{tag}: not base64") from None


def _execution(el: etree._Element) -> HookExecution:
    result = _child(el, "EXECUTION_RESULT")
    if result is None:
        raise PayloadError("HOOK_EXECUTION_RECORD: missing EXECUTION_RESULT")
    return HookExecution(
        execution_id=_int(el, "EXECUTION_ID"),
        timestamp=_int(el, "TIMESTAMP", 0),
        code=_int(result, "CODE"),
        stdout=_b64_text(result, "STDOUT"),
        stderr=_b64_text(result, "STDERR"),
        # Kept as recorded: with $TEMPLATE this is the base64 payload, which
        # decode_payload() reads back.
        arguments=_str(el, "ARGUMENTS"),
    )


def hook_from_element(el: etree._Element) -> Hook:
    """A parsed ``<HOOK>`` element -> :class:`Hook` (log empty in pool answers)."""
    _expect_tag(el, "HOOK", "HOOK")
    hooklog = _child(el, "HOOKLOG")
    log = tuple(_execution(r) for r in _children(hooklog, "HOOK_EXECUTION_RECORD")) \
        if hooklog is not None else ()
    return Hook(
        id=_int(el, "ID"),
        name=_str(el, "NAME"),
        type=_str(el, "TYPE"),
        template=_attributes(_child(el, "TEMPLATE")),
        log=log,
    )


def cluster_from_element(el: etree._Element) -> Cluster:
    """A parsed ``<CLUSTER>`` element -> :class:`Cluster`."""
    _expect_tag(el, "CLUSTER", "CLUSTER")
    return Cluster(
        id=_int(el, "ID"),
        name=_str(el, "NAME"),
        host_ids=_int_list(el, "HOSTS"),
        template=_attributes(_child(el, "TEMPLATE")),
    )


# --- documents ----------------------------------------------------------------


def _one(xml: XmlInput, tag: str, build: Callable[[etree._Element], _T]) -> _T:
    return build(_root(xml, tag))  # each builder checks its own tag


def _pool(xml: XmlInput, pool_tag: str, tag: str, build: Callable[[etree._Element], _T]) -> List[_T]:
    root = _root(xml, pool_tag)
    _expect_tag(root, pool_tag, pool_tag)
    return [build(el) for el in _children(root, tag)]


def parse_vm(xml: XmlInput) -> Vm:
    """``one.vm.info`` answer (or any ``<VM>`` document) -> :class:`Vm`."""
    return _one(xml, "VM", vm_from_element)


def parse_host(xml: XmlInput) -> Host:
    """``one.host.info`` answer -> :class:`Host`."""
    return _one(xml, "HOST", host_from_element)


def parse_hook(xml: XmlInput) -> Hook:
    """``one.hook.info`` answer -> :class:`Hook`, execution log decoded."""
    return _one(xml, "HOOK", hook_from_element)


def parse_cluster(xml: XmlInput) -> Cluster:
    """``one.cluster.info`` answer -> :class:`Cluster`."""
    return _one(xml, "CLUSTER", cluster_from_element)


def parse_datastore_pool(xml: XmlInput) -> List[Datastore]:
    """``one.datastorepool.info`` answer -> datastores in document order."""
    return _pool(xml, "DATASTORE_POOL", "DATASTORE", datastore_from_element)


def parse_vm_pool(xml: XmlInput) -> List[Vm]:
    """``one.vmpool.info``/``infoextended`` answer -> VMs in document order."""
    return _pool(xml, "VM_POOL", "VM", vm_from_element)


def parse_host_pool(xml: XmlInput) -> List[Host]:
    """``one.hostpool.info`` answer -> hosts in document order."""
    return _pool(xml, "HOST_POOL", "HOST", host_from_element)


def parse_hook_pool(xml: XmlInput) -> List[Hook]:
    """``one.hookpool.info`` answer -> hooks (without execution logs)."""
    return _pool(xml, "HOOK_POOL", "HOOK", hook_from_element)


def parse_cluster_pool(xml: XmlInput) -> List[Cluster]:
    """``one.clusterpool.info`` answer -> clusters."""
    return _pool(xml, "CLUSTER_POOL", "CLUSTER", cluster_from_element)


def template_element(xml: XmlInput, tag: str) -> str:
    """The ``<TEMPLATE>`` element of a ``<tag>`` document, serialised as XML text."""
    root = _root(xml, tag)
    _expect_tag(root, tag, tag)
    template = _child(root, "TEMPLATE")
    if template is None:
        raise PayloadError(f"{tag}: missing TEMPLATE")
    return etree.tostring(template, encoding="unicode", with_tail=False)


# --- hook payloads ------------------------------------------------------------


def decode_payload(data: Union[bytes, str], max_bytes: int = MAX_PAYLOAD_BYTES) -> Union[Host, Vm]:
    """A hook's ``$TEMPLATE`` (base64 of a ``<HOST>`` or ``<VM>`` document) -> Host or Vm.

    Whitespace and line breaks anywhere in the base64 text are tolerated
    (wrapped or hand-pasted payloads). Anything else that is not exactly
    what onehem sends raises :class:`PayloadError` with one line.
    """
    xml = unbase64(data, max_bytes)
    root = _root(xml, "hook payload")
    if root.tag == "VM":
        build: Callable[[etree._Element], Union[Host, Vm]] = vm_from_element
    elif root.tag == "HOST":
        build = host_from_element
    else:
        raise PayloadError(f"hook payload: expected <HOST> or <VM>, got <{_tag_name(root)}>")
    try:
        return build(root)
    except PayloadError as exc:
        raise PayloadError(f"hook payload: {exc}") from None


@overload
def expect_resource(payload: Union[Host, Vm], resource: Literal[Resource.VM]) -> Vm: ...


@overload
def expect_resource(payload: Union[Host, Vm], resource: Literal[Resource.HOST]) -> Host: ...


def expect_resource(payload: Union[Host, Vm], resource: Resource) -> Union[Host, Vm]:
    """Return ``payload`` if it is the kind of object ``resource`` names, else raise.

    A VM hook registered by mistake with ``RESOURCE=HOST`` (or the reverse)
    then fails with one clear line instead of misreading the document.
    """
    wanted = Vm if resource == Resource.VM else Host
    if not isinstance(payload, wanted):
        got = "VM" if isinstance(payload, Vm) else "HOST"
        raise PayloadError(f"hook payload: expected a {resource.value} document, got a {got} one")
    return payload
