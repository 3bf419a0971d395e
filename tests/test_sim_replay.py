"""Replay the outages recorded on a real oned 6.10.5 through the simulator's scenario API.

Each run in ``tests/data/sim/`` holds the hook calls onehem made
(``hook-calls-summary.tsv``), the states a poller saw (``states.jsonl``), the
payloads (``hook-stdin/``) and the final VM. The same steps played on the
sim, with the same five hooks registered (their recorded templates, COMMAND
swapped for ``/bin/cat`` so the record shows what the hook got on stdin),
must give the same hook calls in the same order, pass through the observed
states, and end with the same history.
"""
from __future__ import annotations

import base64
import csv
import json
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest
from lxml import etree

DATA = Path(__file__).parent / "data" / "sim"
TEMPLATES = DATA / "run1-outage-during-start-confirm"


def _register_recorded_hooks(sim) -> Dict[str, int]:
    ids = {}
    for path in sorted(TEMPLATES.glob("00-hook-*-template.txt")):
        text = path.read_text().replace("/var/lib/one/remotes/hooks/capture-hook.sh", "/bin/cat")
        ids[path.name[len("00-hook-"):-len("-template.txt")]] = sim.add_hook(text)
    return ids


def _run4_steps(sim, host: int, vm: int) -> None:
    sim.host_error(host)
    sim.host_monitored(host)
    sim.reconcile(host, running=set())
    sim.cloud.action("resume", vm)


def _run2(sim, host: int, vm: int) -> None:
    sim.host_error(host)
    sim.host_monitored(host)  # stock dummy monitoring: the VM stays UNKNOWN
    assert sim.vm(vm).lcm_state.name == "UNKNOWN"
    sim.cloud.action("resume", vm)


def _run3(sim, host: int, vm: int) -> None:
    sim.host_error(host)
    sim.host_monitored(host)
    sim.reconcile(host, running={vm})


def _run5(sim, host: int, vm: int) -> None:
    sim.host_error(host)
    sim.fail_deploys(2, vm_id=vm)
    for _ in range(3):
        sim.cloud.action("resume", vm)
        assert sim.settle(10)
    sim.host_monitored(host)


RUNS: Dict[str, Tuple[Callable, bool]] = {
    # run -> (steps, whether the run's VM first went through run4, as it did on the recorder)
    "run2-stock-dummy-beacon-timeout": (_run2, False),
    "run3-vm-survives-status-probe-running": (_run3, False),
    "run4-vm-lost-status-probe-gone": (_run4_steps, False),
    "run5-resume-while-host-error": (_run5, True),
}


def _summary(run: Path) -> List[Dict[str, str]]:
    with open(run / "hook-calls-summary.tsv", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _observed(run: Path) -> Dict[Tuple[str, int], List[str]]:
    """Per object, the states the recorder's poller saw from the outage on."""
    seen: Dict[Tuple[str, int], List[str]] = {}
    for line in (run / "states.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["from"] is None:
            continue
        states = seen.setdefault((row["kind"], row["id"]), [row["from"]])
        states.append(row["to"])
    return seen


def _is_subsequence(small: List[str], big: List[str]) -> bool:
    it = iter(big)
    return all(item in it for item in small)


@pytest.mark.parametrize("run_name", sorted(RUNS))
def test_replay_matches_the_recording(make_sim: Callable, run_name: str) -> None:
    run = DATA / run_name
    steps, after_run4 = RUNS[run_name]
    # The recordings used OpenNebula's dummy drivers: deploys never contact the host.
    sim = make_sim(deploy_needs_host=False, boot_seconds=0.01)
    hooks = _register_recorded_hooks(sim)
    host = sim.add_host("dummy-host-1")
    vm = sim.add_vm("vm-outage-test", host)
    if after_run4:
        _run4_steps(sim, host, vm)
    assert sim.settle(10)
    first_event, first_change = len(sim.events), len(sim.changes)

    steps(sim, host, vm)
    assert sim.settle(20)

    # 1. the same hook calls, in order per resource (host and VM calls of one second may swap)
    fired = [e for e in sim.events[first_event:] if e.hook_ids]
    for resource in ("HOST", "VM"):
        want = [(r["state"], r["lcm_state"], r["prev_state"], r["prev_lcm_state"])
                for r in _summary(run) if r["resource"] == resource]
        got = [(e.state, e.lcm_state, e.prev_state, e.prev_lcm_state)
               for e in fired if e.resource == resource]
        assert got == want, resource

    # 2. every state the poller saw, in order (it may miss short-lived ones)
    for (kind, obj_id), observed in _observed(run).items():
        changes = [c for c in sim.changes[first_change:] if c.kind == kind and c.id == obj_id]
        visited = [changes[0].before] + [c.after for c in changes]
        assert _is_subsequence(observed, visited), (kind, observed, visited)

    # 3. payloads shaped like the recorded ones, with the recorded states
    recorded = sorted((run / "hook-stdin").glob("*.decoded.xml"))
    for row in _summary(run):
        match = [p for p in recorded if p.name == row["file"]]
        if not match:
            continue  # run4 kept no payload files
        real = etree.parse(str(match[0])).getroot()
        ours = next(etree.fromstring(e.payload.encode()) for e in fired
                    if e.resource == row["resource"] and e.state == row["state"]
                    and e.lcm_state == row["lcm_state"]
                    and e.prev_lcm_state == row["prev_lcm_state"] and e.prev_state == row["prev_state"])
        assert [c.tag for c in ours] == [c.tag for c in real]
        for tag in ("STATE", "LCM_STATE", "PREV_STATE", "PREV_LCM_STATE", "LAST_POLL"):
            assert ours.findtext(tag) == real.findtext(tag), tag

    # 4. each hook got its payload on stdin (cat echoed it into the record), exit 0
    for name, hook_id in hooks.items():
        for record in sim.hook_executions(hook_id):
            assert record.code == 0
            assert record.stdout == record.arguments
            base64.b64decode(record.arguments, validate=True)

    # 5. the final VM has the recorded history and user template
    final = etree.parse(str(run / "92-vm-final.xml")).getroot()
    proxy_xml = sim.rpc.methods["one.vm.info"](vm)
    ours = etree.fromstring(proxy_xml.encode())
    assert [(h.findtext("SEQ"), h.findtext("ACTION")) for h in ours.iter("HISTORY")] == [
        (h.findtext("SEQ"), h.findtext("ACTION")) for h in final.iter("HISTORY")]
    assert [c.tag for c in ours.find("USER_TEMPLATE")] == [c.tag for c in final.find("USER_TEMPLATE")]
    assert (ours.findtext("STATE"), ours.findtext("LCM_STATE")) == (
        final.findtext("STATE"), final.findtext("LCM_STATE"))


def test_recorded_hook_templates_are_stored_as_real_oned_stored_them(sim) -> None:
    """ON=... becomes STATE/LCM_STATE, REMOTE=NO appears, NAME/TYPE leave the template."""
    hooks = _register_recorded_hooks(sim)
    real = etree.parse(str(DATA / "run2-stock-dummy-beacon-timeout" / "91-hookpool.xml")).getroot()
    ours = etree.fromstring(sim.rpc.methods["one.hookpool.info"]().encode())
    for name in hooks:
        want = real.xpath(f"HOOK[NAME='{name.replace('_', '-')}']/TEMPLATE")[0]
        got = ours.xpath(f"HOOK[NAME='{name.replace('_', '-')}']/TEMPLATE")[0]
        pairs = lambda t: [(c.tag, c.text) for c in t if c.tag != "COMMAND"]  # noqa: E731
        assert pairs(got) == pairs(want), name
