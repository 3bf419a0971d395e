"""The simulated oned's XML: valid against the real 7.4 XSDs, shaped like the 6.10.5 captures.

Every answer kind is fetched over XML-RPC from a running sim. The captures in
``tests/data/sim/run*/`` come from a real oned 6.10.5 (see the README there).
"""
from __future__ import annotations

import base64
import xmlrpc.client
from pathlib import Path
from typing import Callable, Dict, List

from lxml import etree

DATA = Path(__file__).parent / "data" / "sim"
XSD = DATA / "xsd-7.4"
NS = "http://opennebula.org/XMLSchema"
RUN4 = DATA / "run4-vm-lost-status-probe-gone"
RUN5 = DATA / "run5-resume-while-host-error"

HOOK = """NAME = "vm-unknown"
TYPE = "state"
RESOURCE = "VM"
ON = "UNKNOWN"
COMMAND = "/bin/true"
ARGUMENTS = "$TEMPLATE"
ARGUMENTS_STDIN = "yes"
"""


def _in_namespace(xml: str) -> etree._Element:
    """Real oned omits the XSDs' namespace: move every element into it."""
    root = etree.fromstring(xml.encode())
    for element in root.iter():
        if isinstance(element.tag, str):
            element.tag = f"{{{NS}}}{element.tag}"
    return etree.fromstring(etree.tostring(root))


_SCHEMAS: Dict[str, etree.XMLSchema] = {}


def assert_valid(xml: str, xsd: str) -> None:
    if xsd not in _SCHEMAS:
        _SCHEMAS[xsd] = etree.XMLSchema(etree.parse(str(XSD / xsd)))
    schema = _SCHEMAS[xsd]
    if not schema.validate(_in_namespace(xml)):
        raise AssertionError(f"{xsd}: " + "; ".join(str(e) for e in schema.error_log))


def _outage_cloud(sim) -> Dict[str, int]:
    """A small cloud in every interesting state: running, unknown, locked, poweroff(monitor)."""
    ids = {"host": sim.add_host("node1", template={"KVM_CPU_MODEL": "EPYC"})}
    ids["other"] = sim.add_host("node2")
    ids["vm"] = sim.add_vm("web", ids["host"], {"AUTOSTART": "yes", "LABELS": "prod"})
    ids["gone"] = sim.add_vm("db", ids["host"])
    ids["elsewhere"] = sim.add_vm("cache", ids["other"])
    ids["failed"] = sim.add_vm("batch", ids["host"])
    ids["hook"] = sim.add_hook(HOOK)
    sim.lock_vm(ids["vm"], 1)
    sim.host_error(ids["host"])
    sim.host_monitored(ids["host"])
    # A full sync: its "missing" VMs are applied even inside 7.4's 30 s window after a deploy.
    sim.reconcile(ids["host"], running={ids["vm"]}, sync=True)
    sim.fail_deploys(1, vm_id=ids["failed"])
    sim.cloud.action("resume", ids["failed"])  # from POWEROFF: a new record, ACTION 11, ERROR
    assert sim.settle(10)
    sim.host_error(ids["host"])
    assert sim.settle(10)
    return ids


def _answers(sim, ids: Dict[str, int]) -> Dict[str, str]:
    proxy = xmlrpc.client.ServerProxy(sim.endpoint)
    s = sim.session

    def value(answer: List) -> str:
        assert answer[0] is True, answer
        return answer[1]

    return {
        "vm.xsd": value(proxy.one.vm.info(s, ids["vm"])),
        "vm_pool.xsd": value(proxy.one.vmpool.info(s, -2, -1, -1, -1)),
        "vm_pool_extended.xsd": value(proxy.one.vmpool.infoextended(s, -2, -1, -1, -1)),
        "host.xsd": value(proxy.one.host.info(s, ids["host"])),
        "host_pool.xsd": value(proxy.one.hostpool.info(s)),
        "hook.xsd": value(proxy.one.hook.info(s, ids["hook"])),
        "hook_pool.xsd": value(proxy.one.hookpool.info(s, -2, -1, -1)),
        "cluster.xsd": value(proxy.one.cluster.info(s, 0)),
        "cluster_pool.xsd": value(proxy.one.clusterpool.info(s)),
    }


def test_every_answer_kind_validates_against_the_7_4_xsds(make_sim: Callable) -> None:
    sim = make_sim(version="7.4.0")
    ids = _outage_cloud(sim)
    answers = _answers(sim, ids)
    for xsd, xml in answers.items():
        assert_valid(xml, xsd)
    failed = xmlrpc.client.ServerProxy(sim.endpoint).one.vm.info(sim.session, ids["failed"])[1]
    assert_valid(failed, "vm.xsd")
    record = etree.fromstring(failed.encode()).xpath("HISTORY_RECORDS/HISTORY[SEQ=1]")[0]
    assert record.findtext("ACTION") == "11" and record.findtext("RETIME") != "0"
    assert "DEPLOY" in etree.fromstring(failed.encode()).findtext("USER_TEMPLATE/ERROR")
    # The hook ran, so hook.info carried a real execution record through validation.
    assert etree.fromstring(answers["hook.xsd"].encode()).find("HOOKLOG/HOOK_EXECUTION_RECORD") is not None
    payloads = [e for e in sim.events if e.hook_ids or e.resource == "HOST"]
    assert {e.resource for e in payloads} == {"VM", "HOST"}
    for event in payloads:
        assert_valid(event.payload, "vm.xsd" if event.resource == "VM" else "host.xsd")


def test_6_10_shape_differs_from_the_7_4_xsds_only_by_7x_history_fields(sim) -> None:
    ids = _outage_cloud(sim)
    xml = _answers(sim, ids)["vm.xsd"]
    schema = etree.XMLSchema(etree.parse(str(XSD / "vm.xsd")))
    assert not schema.validate(_in_namespace(xml))
    assert all("PLAN_ID" in str(error) for error in schema.error_log)
    for xsd, answer in _answers(sim, ids).items():
        if xsd not in ("vm.xsd", "vm_pool_extended.xsd"):
            assert_valid(answer, xsd)


def _children(element: etree._Element) -> List[str]:
    return [child.tag for child in element]


def test_vm_info_has_the_captured_element_order(sim) -> None:
    ids = _outage_cloud(sim)
    proxy = xmlrpc.client.ServerProxy(sim.endpoint)
    ours = etree.fromstring(proxy.one.vm.info(sim.session, ids["gone"])[1].encode())
    real = etree.parse(str(RUN4 / "04-host-restored-vm.xml")).getroot()
    assert _children(ours) == _children(real)
    assert _children(ours.find("HISTORY_RECORDS/HISTORY")) == _children(real.find("HISTORY_RECORDS/HISTORY"))
    assert _children(ours.find("PERMISSIONS")) == _children(real.find("PERMISSIONS"))
    assert _children(ours.find("BACKUPS")) == _children(real.find("BACKUPS"))
    # The locked VM adds LOCK right after DEPLOY_ID, as the XSD places it.
    locked = etree.fromstring(proxy.one.vm.info(sim.session, ids["vm"])[1].encode())
    tags = _children(locked)
    assert tags[tags.index("DEPLOY_ID") + 1] == "LOCK"


def test_host_info_has_the_captured_element_order(sim) -> None:
    ids = _outage_cloud(sim)
    proxy = xmlrpc.client.ServerProxy(sim.endpoint)
    ours = etree.fromstring(proxy.one.host.info(sim.session, ids["host"])[1].encode())
    real = etree.parse(str(RUN4 / "04-host-restored-host.xml")).getroot()
    assert _children(ours) == _children(real)
    assert _children(ours.find("HOST_SHARE")) == _children(real.find("HOST_SHARE"))
    assert _children(ours.find("HOST_SHARE/DATASTORES")) == _children(real.find("HOST_SHARE/DATASTORES"))
    # In ERROR the template carries oned's message, in the captured words.
    error = ours.findtext("TEMPLATE/ERROR")
    assert error.endswith(f": Error monitoring Host node1 ({ids['host']}): ")


def test_hook_answers_have_the_captured_element_order(sim) -> None:
    ids = _outage_cloud(sim)
    proxy = xmlrpc.client.ServerProxy(sim.endpoint)
    ours = etree.fromstring(proxy.one.hook.info(sim.session, ids["hook"])[1].encode())
    real = etree.parse(str(RUN5 / "90-hook-vm_unknown-info.xml")).getroot()
    assert _children(ours) == _children(real)
    assert _children(ours.find("TEMPLATE")) == _children(real.find("TEMPLATE"))
    ours_rec = ours.find("HOOKLOG/HOOK_EXECUTION_RECORD")
    real_rec = real.find("HOOKLOG/HOOK_EXECUTION_RECORD")
    assert _children(ours_rec) == _children(real_rec)
    assert _children(ours_rec.find("EXECUTION_RESULT")) == _children(real_rec.find("EXECUTION_RESULT"))
    pool = etree.fromstring(proxy.one.hookpool.info(sim.session, -2, -1, -1)[1].encode())
    real_pool = etree.parse(str(RUN5 / "91-hookpool.xml")).getroot()
    assert _children(pool[0]) == _children(real_pool[0])  # no HOOKLOG in the pool


def test_answers_are_compact_with_cdata_where_oned_uses_it(sim) -> None:
    ids = _outage_cloud(sim)
    proxy = xmlrpc.client.ServerProxy(sim.endpoint)
    xml = proxy.one.vm.info(sim.session, ids["vm"])[1]
    assert "\n" not in xml and "> <" not in xml
    assert "<MEMORY><![CDATA[64]]></MEMORY>" in xml
    assert "<AUTOSTART><![CDATA[yes]]></AUTOSTART>" in xml
    assert "<VM_MAD><![CDATA[kvm]]></VM_MAD>" in xml
    # info answers repeat the current state in PREV_*
    vm = etree.fromstring(xml.encode())
    assert vm.findtext("PREV_LCM_STATE") == vm.findtext("LCM_STATE") == "16"


def test_vmpool_short_body_trims_like_to_xml_short(sim) -> None:
    ids = _outage_cloud(sim)
    proxy = xmlrpc.client.ServerProxy(sim.endpoint)
    pool = etree.fromstring(proxy.one.vmpool.info(sim.session, -2, -1, -1, -1)[1].encode())
    web = pool.xpath(f"VM[ID={ids['vm']}]")[0]
    assert web.find("PERMISSIONS") is None and web.find("PREV_STATE") is None
    assert [c.tag for c in web.find("USER_TEMPLATE")] == ["LABELS"]  # AUTOSTART is not in the short body
    assert [c.tag for c in web.find("HISTORY_RECORDS/HISTORY")] == [
        "OID", "SEQ", "HOSTNAME", "HID", "CID", "DS_ID", "VM_MAD", "TM_MAD", "ACTION"]
    # pools list newest first, as oned 6.x does
    assert [int(v.findtext("ID")) for v in pool] == sorted((int(v.findtext("ID")) for v in pool), reverse=True)


def _decoded(run: Path, name_part: str) -> etree._Element:
    files = sorted((run / "hook-stdin").glob("*.decoded.xml"))
    return etree.parse(str(next(f for f in files if name_part in f.name))).getroot()


def test_payloads_are_pretty_printed_like_onehem_delivers_them(sim) -> None:
    ids = _outage_cloud(sim)
    vm_event = next(e for e in sim.events if e.resource == "VM" and e.id == ids["gone"]
                    and e.lcm_state == "UNKNOWN")
    host_event = next(e for e in sim.events if e.resource == "HOST" and e.state == "MONITORED"
                      and e.prev_state == "ERROR")
    real_vm = _decoded(RUN5, "1795667760.705670915")
    real_host = _decoded(RUN5, "1795667832.159798863")
    vm = etree.fromstring(vm_event.payload.encode())
    host = etree.fromstring(host_event.payload.encode())
    assert _children(vm) == _children(real_vm)
    assert _children(host) == _children(real_host)
    lines = vm_event.payload.splitlines()
    assert lines[0] == "<VM>" and lines[1] == f"  <ID>{ids['gone']}</ID>"
    assert "  <MONITORING/>" in lines and "  <LAST_POLL>0</LAST_POLL>" in lines
    assert "  <MONITORING/>" in host_event.payload.splitlines()
    assert "    <MEMORY><![CDATA[64]]></MEMORY>" in lines
    # PREV_* in payloads hold the state before the change
    assert (vm.findtext("PREV_STATE"), vm.findtext("PREV_LCM_STATE")) == ("3", "3")
    assert host.findtext("PREV_STATE") == "3" and host.findtext("STATE") == "2"


def test_hook_record_arguments_are_the_base64_payload(sim) -> None:
    ids = _outage_cloud(sim)
    record = sim.hook_executions(ids["hook"])[0]
    decoded = base64.b64decode(record.arguments).decode()
    assert decoded in {e.payload for e in sim.events}
