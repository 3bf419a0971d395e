"""xmlparse against the XML a real oned 6.10.5 sent (tests/data/oned, see its README).

Two kinds of expectations: facts the recordings are known for (the VM in
POWEROFF with history ACTION 44 after run4's outage, PREV_STATE=3 in the
MONITORED payload...), and, for every captured file, agreement with an
independent reading of the same file by the stdlib's ElementTree.
"""
from __future__ import annotations

import base64
import csv
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from one_hooks.oned import xmlparse
from one_hooks.errors import EXIT_USAGE, PayloadError
from one_hooks.oned.model import (
    HistoryAction, Host, HostState, LcmState, Resource, Vm, VmState,
)

DATA = Path(__file__).parent / "data" / "oned"
RUNS = sorted(p for p in DATA.glob("run*") if p.is_dir())
VM_FILES = sorted(DATA.glob("run*/*-vm.xml"))
HOST_FILES = sorted(DATA.glob("run*/*-host.xml"))
HOOK_INFO_FILES = sorted(DATA.glob("run*/90-hook-*-info.xml"))
PAYLOADS = sorted(DATA.glob("run*/hook-stdin/*.b64"))
NS = "http://opennebula.org/XMLSchema"


def run_dir(prefix: str) -> Path:
    (found,) = [p for p in RUNS if p.name.startswith(prefix)]
    return found


def ids(paths: List[Path]) -> List[str]:
    return [f"{p.parent.name[:4]}/{p.name}" for p in paths]


# --- an independent reading with the stdlib, as the oracle --------------------


def oracle_vm(path: Path) -> Dict[str, object]:
    root = ET.parse(path).getroot()
    hist = root.findall("HISTORY_RECORDS/HISTORY")
    last = max(hist, key=lambda h: int(h.findtext("SEQ"))) if hist else None
    ut = root.find("USER_TEMPLATE")
    return {
        "id": int(root.findtext("ID")),
        "name": root.findtext("NAME"),
        "state": int(root.findtext("STATE")),
        "lcm": int(root.findtext("LCM_STATE")),
        "prev": int(root.findtext("PREV_STATE")),
        "prev_lcm": int(root.findtext("PREV_LCM_STATE")),
        "owner": root.findtext("UNAME"),
        "seq": int(last.findtext("SEQ")) if last is not None else None,
        "hid": int(last.findtext("HID")) if last is not None else None,
        "action": int(last.findtext("ACTION")) if last is not None else None,
        "user": {c.tag: c.text or "" for c in ut if len(c) == 0} if ut is not None else {},
    }


def oracle_host(path: Path) -> Dict[str, object]:
    root = ET.parse(path).getroot()
    return {
        "id": int(root.findtext("ID")),
        "name": root.findtext("NAME"),
        "state": int(root.findtext("STATE")),
        "prev": int(root.findtext("PREV_STATE")),
        "cluster_id": int(root.findtext("CLUSTER_ID")),
        "vms": tuple(int(i.text) for i in root.findall("VMS/ID")),
        "template": {c.tag: c.text or "" for c in root.find("TEMPLATE") if len(c) == 0},
    }


# --- every captured answer ----------------------------------------------------


def test_fixtures_are_present() -> None:
    # Guards the parametrised tests below against silently collecting nothing.
    assert len(RUNS) == 5 and len(VM_FILES) >= 20 and len(HOST_FILES) >= 25
    assert len(HOOK_INFO_FILES) == 25 and len(PAYLOADS) >= 15


@pytest.mark.parametrize("path", VM_FILES, ids=ids(VM_FILES))
def test_every_captured_vm_matches_an_independent_reading(path: Path) -> None:
    vm = xmlparse.parse_vm(path.read_bytes())
    want = oracle_vm(path)
    assert (vm.id, vm.name, vm.owner) == (want["id"], want["name"], want["owner"])
    assert (int(vm.state), int(vm.lcm_state)) == (want["state"], want["lcm"])
    assert (int(vm.prev_state), int(vm.prev_lcm_state)) == (want["prev"], want["prev_lcm"])
    assert vm.history is not None
    assert (vm.history.seq, vm.history.host_id, int(vm.history.action)) == (
        want["seq"], want["hid"], want["action"])
    assert dict(vm.user_template) == want["user"]
    assert vm.lock is None
    # oned's info answers repeat the current state in PREV_*: a fact of the recordings.
    assert (vm.prev_state, vm.prev_lcm_state) == (vm.state, vm.lcm_state)


@pytest.mark.parametrize("path", HOST_FILES, ids=ids(HOST_FILES))
def test_every_captured_host_matches_an_independent_reading(path: Path) -> None:
    host = xmlparse.parse_host(path.read_text())
    want = oracle_host(path)
    assert (host.id, host.name, host.cluster_id, host.cluster) == (
        want["id"], want["name"], want["cluster_id"], "default")
    assert (int(host.state), int(host.prev_state)) == (want["state"], want["prev"])
    assert host.vm_ids == want["vms"]
    assert dict(host.template) == want["template"]
    assert host.prev_state == host.state
    assert host.template["HOSTNAME"] == "dummy-host-1"
    assert host.template["KVM_CPU_MODELS"].split()[0] == "486"


# --- what each stage of the outage looks like ---------------------------------

STAGES = [
    # (run, file, STATE/LCM name, last history action)
    ("run1", "02-running-vm.xml", "ACTIVE/RUNNING", HistoryAction.NONE),
    ("run1", "03-outage-vm.xml", "ACTIVE/UNKNOWN", HistoryAction.NONE),
    ("run2", "04-after-recovery-120s-vm.xml", "ACTIVE/UNKNOWN", HistoryAction.NONE),
    ("run2", "05-after-resume-vm.xml", "ACTIVE/RUNNING", HistoryAction.NONE),
    ("run3", "04-host-restored-vm.xml", "ACTIVE/RUNNING", HistoryAction.NONE),
    ("run4", "03-outage-vm.xml", "ACTIVE/UNKNOWN", HistoryAction.NONE),
    ("run4", "04-host-restored-vm.xml", "POWEROFF", HistoryAction.MONITOR),
    ("run4", "04-after-recovery-60s-vm.xml", "POWEROFF", HistoryAction.MONITOR),
    ("run5", "05a-after-resume-try-vm.xml", "ACTIVE/UNKNOWN", HistoryAction.NONE),
]


@pytest.mark.parametrize("run,name,state_name,action", STAGES)
def test_vm_stages(run: str, name: str, state_name: str, action: HistoryAction) -> None:
    vm = xmlparse.parse_vm((run_dir(run) / name).read_bytes())
    assert vm.state_name == state_name
    assert vm.history is not None and vm.history.action == action
    assert (vm.host_id, vm.hostname) == (0, "dummy-host-1")


def test_run4_resume_from_poweroff_opens_a_new_history_record() -> None:
    before = xmlparse.parse_vm((run_dir("run4") / "04-host-restored-vm.xml").read_bytes())
    after = xmlparse.parse_vm((run_dir("run4") / "05-after-resume-vm.xml").read_bytes())
    assert before.state == VmState.POWEROFF and before.lcm_state == LcmState.LCM_INIT
    assert before.history is not None and before.history.seq == 0
    # The LAST record is the one with the highest SEQ, not the first in the document.
    assert after.history is not None and after.history.seq == 1
    assert after.history.action == HistoryAction.NONE
    assert after.history.stime > before.history.stime


def test_run5_user_template_carries_the_deploy_error() -> None:
    vm = xmlparse.parse_vm((run_dir("run5") / "05b-after-resume-try-vm.xml").read_bytes())
    assert vm.user_attr("error").endswith("DEPLOY: dummy-host-1:vm-outage-test:dummy")


@pytest.mark.parametrize("run,name,state", [
    ("run1", "01-host-monitored-host.xml", HostState.MONITORED),
    ("run2", "03-host-error-host.xml", HostState.ERROR),
    ("run4", "04-host-restored-host.xml", HostState.MONITORED),
    ("run5", "05b-after-resume-try-host.xml", HostState.ERROR),
])
def test_host_stages(run: str, name: str, state: HostState) -> None:
    assert xmlparse.parse_host((run_dir(run) / name).read_bytes()).state == state


def test_host_without_vms_has_empty_vm_list() -> None:
    host = xmlparse.parse_host((run_dir("run1") / "01-host-monitored-host.xml").read_bytes())
    assert host.vm_ids == ()


# --- hook payloads ------------------------------------------------------------


def summary_rows() -> List[Dict[str, str]]:
    rows = []
    for run in RUNS:
        tsv = run / "hook-calls-summary.tsv"
        if (run / "hook-stdin").is_dir() and tsv.exists():
            with tsv.open() as fh:
                for row in csv.DictReader(fh, delimiter="\t"):
                    row["run"] = str(run)
                    rows.append(row)
    return rows


SUMMARY = summary_rows()


@pytest.mark.parametrize("row", SUMMARY, ids=[f"{Path(r['run']).name[:4]}/{r['file']}" for r in SUMMARY])
def test_every_recorded_payload_decodes_to_what_onehem_logged(row: Dict[str, str]) -> None:
    decoded = Path(row["run"]) / "hook-stdin" / row["file"]
    b64 = decoded.with_name(decoded.name.replace(".decoded.xml", ".b64"))
    obj = xmlparse.decode_payload(b64.read_bytes())
    assert obj.id == int(row["id"])
    assert obj.state.name == row["state"] and obj.prev_state.name == row["prev_state"]
    if row["resource"] == "VM":
        vm = xmlparse.expect_resource(obj, Resource.VM)
        assert vm.lcm_state.name == row["lcm_state"]
        assert vm.prev_lcm_state.name == row["prev_lcm_state"]
        assert vm == xmlparse.parse_vm(decoded.read_bytes())
    else:
        host = xmlparse.expect_resource(obj, Resource.HOST)
        assert host == xmlparse.parse_host(decoded.read_bytes())


def test_summary_rows_were_found() -> None:
    assert len(SUMMARY) == len(PAYLOADS) >= 15


def test_run2_monitored_payload_has_prev_state_error() -> None:
    (b64,) = (run_dir("run2") / "hook-stdin").glob("call-1795667206.*.b64")
    host = xmlparse.expect_resource(xmlparse.decode_payload(b64.read_bytes()), Resource.HOST)
    assert host.state == HostState.MONITORED and host.prev_state == HostState.ERROR
    assert host.vm_ids == (0,) and host.name == "dummy-host-1"


def test_payload_is_pretty_printed_and_base64_wrapped_lines_are_accepted() -> None:
    (b64,) = (run_dir("run2") / "hook-stdin").glob("call-1795667170.632944637-*.b64")
    raw = b64.read_bytes().strip()
    assert b"\n  <ID>" in base64.b64decode(raw)  # whitespace text nodes, as onehem sends
    wrapped = b"\r\n".join(raw[i:i + 76] for i in range(0, len(raw), 76)) + b"\n\n"
    assert xmlparse.decode_payload(wrapped) == xmlparse.decode_payload(raw)
    assert xmlparse.decode_payload(raw.decode()) == xmlparse.decode_payload(raw)


# --- hook info and pool -------------------------------------------------------


@pytest.mark.parametrize("path", HOOK_INFO_FILES, ids=ids(HOOK_INFO_FILES))
def test_every_hook_log_record(path: Path) -> None:
    hook = xmlparse.parse_hook(path.read_bytes())
    root = ET.parse(path).getroot()
    records = root.findall("HOOKLOG/HOOK_EXECUTION_RECORD")
    assert hook.id == int(root.findtext("ID")) and hook.type == "state"
    assert hook.name == path.name[len("90-hook-"):-len("-info.xml")].replace("_", "-")
    assert len(hook.log) == len(records)
    assert [e.execution_id for e in hook.log] == [int(r.findtext("EXECUTION_ID")) for r in records]
    for record, execution in zip(records, hook.log):
        # STDOUT is base64 in a real oned's log; decoded it names the capture time.
        assert execution.stdout.startswith("capture-hook ok ")
        assert execution.stdout == base64.b64decode(
            record.findtext("EXECUTION_RESULT/STDOUT")).decode()
        assert execution.code == 0 and execution.stderr == ""
        payload = xmlparse.decode_payload(execution.arguments)
        assert isinstance(payload, Vm if hook.template["RESOURCE"] == "VM" else Host)
        assert payload.state.name == hook.template["STATE"]
    assert hook.template["ARGUMENTS_STDIN"] == "yes"


def test_hook_output_wrapped_as_onehem_encodes_it() -> None:
    """onehem encodes a hook's output with Ruby's Base64.encode64: lines of 60 characters, each ending in a
    line break. A real oned 6.10.5 stored one-hooks' output that way; one.hook.info must still parse, and
    a character outside base64 is still refused."""
    path = run_dir("run4") / "90-hook-vm_unknown-info.xml"
    output = "2026-12-04 20:17:42 INFO host h3: iSCSI gate BROKEN: session 1 FREE (not logged in)\n" * 3
    flat = base64.b64encode(output.encode()).decode()
    wrapped = "".join(flat[i:i + 60] + "\n" for i in range(0, len(flat), 60))
    assert "\n" in wrapped.rstrip("\n")
    text = path.read_text()
    first = ET.parse(path).getroot().findtext("HOOKLOG/HOOK_EXECUTION_RECORD/EXECUTION_RESULT/STDOUT")
    hook = xmlparse.parse_hook(text.replace(first, wrapped, 1).encode())
    assert hook.log[0].stdout == output
    with pytest.raises(PayloadError, match="STDOUT: not base64"):
        xmlparse.parse_hook(text.replace(first, wrapped.replace("\n", "*", 1), 1).encode())


def test_run4_poweroff_hook_payload_marks_the_outage() -> None:
    hook = xmlparse.parse_hook((run_dir("run4") / "90-hook-vm_poweroff-info.xml").read_bytes())
    (execution,) = hook.log
    vm = xmlparse.expect_resource(xmlparse.decode_payload(execution.arguments), Resource.VM)
    assert vm.state == VmState.POWEROFF and vm.lcm_state == LcmState.LCM_INIT
    assert vm.prev_state == VmState.ACTIVE
    assert vm.prev_lcm_state == LcmState.SHUTDOWN_POWEROFF
    assert vm.history is not None and vm.history.action == HistoryAction.MONITOR


def test_run5_unknown_hook_fires_again_after_a_failed_resume() -> None:
    hook = xmlparse.parse_hook((run_dir("run5") / "90-hook-vm_unknown-info.xml").read_bytes())
    prev = [xmlparse.decode_payload(e.arguments).prev_lcm_state for e in hook.log]  # type: ignore[union-attr]
    assert prev[-2:] == [LcmState.BOOT_UNKNOWN, LcmState.BOOT_UNKNOWN]
    assert prev[0] == LcmState.RUNNING


def test_hook_pool() -> None:
    hooks = xmlparse.parse_hook_pool((run_dir("run4") / "91-hookpool.xml").read_bytes())
    by_name = {h.name: h for h in hooks}
    assert sorted(by_name) == ["host-error", "host-monitored", "vm-poweroff", "vm-running", "vm-unknown"]
    assert all(h.log == () for h in hooks)  # the pool answer carries no HOOKLOG
    assert by_name["vm-poweroff"].template["LCM_STATE"] == "LCM_INIT"
    assert by_name["host-monitored"].template["STATE"] == "MONITORED"
    assert by_name["host-monitored"].id == 3


# --- pools and clusters -------------------------------------------------------


def pool_of(tag: str, files: List[Path], ids_: List[int]) -> bytes:
    """A pool answer built from captured elements, each given its own ID."""
    pool = etree.Element(tag)
    for path, new_id in zip(files, ids_):
        el = etree.fromstring(path.read_bytes())
        el.find("ID").text = str(new_id)
        pool.append(el)
    return etree.tostring(pool)


def test_vm_pool() -> None:
    files = [run_dir("run4") / "04-host-restored-vm.xml", run_dir("run2") / "03-outage-vm.xml",
             run_dir("run4") / "05-after-resume-vm.xml"]
    vms = xmlparse.parse_vm_pool(pool_of("VM_POOL", files, [7, 3, 12]))
    assert [(v.id, v.state_name) for v in vms] == [
        (7, "POWEROFF"), (3, "ACTIVE/UNKNOWN"), (12, "ACTIVE/RUNNING")]
    assert vms[2].history is not None and vms[2].history.seq == 1
    assert xmlparse.parse_vm_pool(b"<VM_POOL/>") == []


def test_host_pool() -> None:
    files = [run_dir("run2") / "03-host-error-host.xml", run_dir("run2") / "05-after-resume-host.xml"]
    hosts = xmlparse.parse_host_pool(pool_of("HOST_POOL", files, [0, 5]))
    assert [(h.id, h.state) for h in hosts] == [(0, HostState.ERROR), (5, HostState.MONITORED)]


def xsd_valid(path: Path, xsd: str) -> bool:
    root = etree.parse(str(path)).getroot()
    for el in root.iter():
        if isinstance(el.tag, str):
            el.tag = f"{{{NS}}}{el.tag}"
    return etree.XMLSchema(etree.parse(str(DATA / "xsd" / xsd))).validate(root)


def test_cluster_and_cluster_pool() -> None:
    one = DATA / "handmade" / "cluster-default.xml"
    pool = DATA / "handmade" / "clusterpool.xml"
    assert xsd_valid(one, "cluster.xsd") and xsd_valid(pool, "cluster_pool.xsd")
    cluster = xmlparse.parse_cluster(one.read_bytes())
    assert (cluster.id, cluster.name, cluster.host_ids) == (0, "default", (0, 3))
    # Vector attributes (CPU_MODEL = [ MODEL = ... ]) are not single-valued: left out.
    assert dict(cluster.template) == {
        "EMULATOR": "/usr/bin/qemu-kvm-one", "RESERVED_CPU": "", "RESERVED_MEM": ""}
    clusters = xmlparse.parse_cluster_pool(pool.read_bytes())
    assert [(c.id, c.name, c.host_ids) for c in clusters] == [
        (0, "default", (0, 3)), (100, "iscsi-rack", ())]


def test_template_element_keeps_vector_attributes() -> None:
    text = xmlparse.template_element((DATA / "handmade" / "cluster-default.xml").read_bytes(), "CLUSTER")
    el = etree.fromstring(text)
    assert el.tag == "TEMPLATE" and el.findtext("CPU_MODEL/MODEL") == "host-passthrough"
    host_text = xmlparse.template_element(
        (run_dir("run4") / "92-host-final.xml").read_bytes(), "HOST")
    assert etree.fromstring(host_text).findtext("HOSTNAME") == "dummy-host-1"
    with pytest.raises(PayloadError):
        xmlparse.template_element(b"<HOST><ID>0</ID></HOST>", "HOST")


# --- variations a real oned produces that the captures lack -------------------


def edited_vm(edit) -> bytes:
    root = etree.fromstring((run_dir("run4") / "04-host-restored-vm.xml").read_bytes())
    edit(root)
    return etree.tostring(root)


def test_locked_vm() -> None:
    def add_lock(root: etree._Element) -> None:
        lock = etree.Element("LOCK")
        for tag, value in (("LOCKED", "1"), ("OWNER", "0"), ("TIME", "1795667600"), ("REQ_ID", "-1")):
            etree.SubElement(lock, tag).text = value
        root.find("NAME").addnext(lock)  # after the identity, as 7.4's vm.xsd places it

    assert xmlparse.parse_vm(edited_vm(add_lock)).lock == 1


def test_state_number_from_a_newer_oned_is_kept() -> None:
    def future(root: etree._Element) -> None:
        root.find("LCM_STATE").text = "99"

    vm = xmlparse.parse_vm(edited_vm(future))
    assert int(vm.lcm_state) == 99 and vm.lcm_state.name == "UNKNOWN_99"


def test_vm_never_deployed_has_no_history() -> None:
    def drop(root: etree._Element) -> None:
        root.remove(root.find("HISTORY_RECORDS"))
        etree.SubElement(root, "HISTORY_RECORDS")

    vm = xmlparse.parse_vm(edited_vm(drop))
    assert vm.history is None and vm.host_id is None and vm.hostname == ""


def test_user_template_cdata_and_vectors() -> None:
    def user(root: etree._Element) -> None:
        ut = root.find("USER_TEMPLATE")
        etree.SubElement(ut, "ONE_HOOKS_PRIORITY").text = etree.CDATA("10")
        etree.SubElement(ut, "DESCRIPTION").text = etree.CDATA("db <primary> & co")
        vec = etree.SubElement(ut, "SCHED")
        etree.SubElement(vec, "X").text = "1"

    vm = xmlparse.parse_vm(edited_vm(user))
    assert dict(vm.user_template) == {"ONE_HOOKS_PRIORITY": "10", "DESCRIPTION": "db <primary> & co"}


# --- what must be refused -----------------------------------------------------


def good_vm_xml() -> bytes:
    (b64,) = (run_dir("run2") / "hook-stdin").glob("call-1795667170.632944637-*.b64")
    return base64.b64decode(b64.read_bytes())


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def without(tag: str) -> bytes:
    root = etree.fromstring(good_vm_xml())
    root.remove(root.find(tag))
    return etree.tostring(root)


def replaced(tag: str, text: str) -> bytes:
    root = etree.fromstring(good_vm_xml())
    root.find(tag).text = text
    return etree.tostring(root)


LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE VM [<!ENTITY a "aaaaaaaaaa">'
          b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
          b"<VM><ID>1</ID><NAME>&c;</NAME><STATE>3</STATE><LCM_STATE>16</LCM_STATE></VM>")
XXE = (b'<?xml version="1.0"?><!DOCTYPE VM [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
       b"<VM><ID>1</ID><NAME>&x;</NAME><STATE>3</STATE><LCM_STATE>16</LCM_STATE></VM>")

BAD_PAYLOADS = {
    "empty": b"",
    "only-whitespace": b" \n\t\n",
    "not-base64": b"this is not base64!",
    "bad-padding": b64(good_vm_xml())[:-3],
    "base64-of-text": b64(b"hello, I am not XML"),
    "truncated-xml": b64(good_vm_xml()[: len(good_vm_xml()) // 2]),
    "billion-laughs": b64(LAUGHS),
    "external-entity": b64(XXE),
    "undefined-entity": b64(b"<VM><ID>1</ID><NAME>&x;</NAME><STATE>3</STATE><LCM_STATE>3</LCM_STATE></VM>"),
    "other-root": b64(b"<HOOK><ID>1</ID><STATE>3</STATE></HOOK>"),
    "pool-root": b64(b"<VM_POOL>" + good_vm_xml() + b"</VM_POOL>"),
    "missing-state": b64(without("STATE")),
    "missing-id": b64(without("ID")),
    "missing-lcm-state": b64(without("LCM_STATE")),
    "state-not-integer": b64(replaced("STATE", "ACTIVE")),
    "empty-state": b64(replaced("STATE", "")),
    "history-hid-not-integer": b64(replaced("HISTORY_RECORDS/HISTORY/HID", "zero")),
    "binary": b64(bytes(range(256))),
    "oversized": b"A" * (xmlparse.MAX_PAYLOAD_BYTES + 4),
    "non-ascii-text": "PFZNPg==\u00e9",
}


@pytest.mark.parametrize("name", sorted(BAD_PAYLOADS))
def test_bad_payload_is_refused_with_one_line(name: str) -> None:
    with pytest.raises(PayloadError) as info:
        xmlparse.decode_payload(BAD_PAYLOADS[name])
    message = str(info.value)
    assert message.startswith("hook payload") and "\n" not in message and len(message) < 300
    assert info.value.exit_code == EXIT_USAGE
    assert "/etc/passwd" not in message and "root:" not in message


def test_payload_size_limit_is_a_parameter() -> None:
    good = b64(good_vm_xml())
    assert isinstance(xmlparse.decode_payload(good, max_bytes=len(good)), Vm)
    with pytest.raises(PayloadError, match="more than"):
        xmlparse.decode_payload(good, max_bytes=len(good) - 1)


def test_expect_resource_refuses_the_wrong_kind() -> None:
    vm = xmlparse.decode_payload(b64(good_vm_xml()))
    assert xmlparse.expect_resource(vm, Resource.VM) is vm
    with pytest.raises(PayloadError, match="expected a HOST document, got a VM one"):
        xmlparse.expect_resource(vm, Resource.HOST)


@pytest.mark.parametrize("parse,text", [
    (xmlparse.parse_vm, b"<HOST><ID>0</ID></HOST>"),
    (xmlparse.parse_host, b"<HOST><ID>0</ID><NAME>x</NAME></HOST>"),
    (xmlparse.parse_hook, b"<HOOK><ID>1</ID><HOOKLOG><HOOK_EXECUTION_RECORD><EXECUTION_ID>0</EXECUTION_ID>"
                          b"<EXECUTION_RESULT><CODE>0</CODE><STDOUT>not base64 !</STDOUT></EXECUTION_RESULT>"
                          b"</HOOK_EXECUTION_RECORD></HOOKLOG></HOOK>"),
    (xmlparse.parse_vm_pool, b"<HOST_POOL/>"),
    (xmlparse.parse_cluster, b"<CLUSTER><ID>x</ID></CLUSTER>"),
    (xmlparse.parse_host_pool, b"<HOST_POOL><HOST>"),
    (xmlparse.parse_vm, LAUGHS),
])
def test_bad_answers_are_refused(parse, text: bytes) -> None:
    with pytest.raises(PayloadError):
        parse(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_give_a_result_or_payload_error(data: bytes) -> None:
    try:
        result = xmlparse.decode_payload(data)
    except PayloadError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(result, (Vm, Host))


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=1, max_value=40))
def test_any_cut_of_a_real_payload_is_refused(start: int, length: int) -> None:
    raw = good_vm_xml()
    start %= len(raw)
    mangled = raw[:start] + raw[start + length:]
    try:
        vm: Optional[object] = xmlparse.decode_payload(b64(mangled))
    except PayloadError:
        return
    # A cut that happens to leave well-formed XML (inside a text node) must still be a VM.
    assert isinstance(vm, Vm)
