"""Fuzz hook payload decoding and planning: real payloads, mutated, end in a plan or a PayloadError.

Every hook starts the same way: base64 ``$TEMPLATE`` on stdin ->
``xmlparse.decode_payload`` -> ``expect_resource`` -> the pure decision
(``policy.decide`` for a VM hook, ``policy.plan`` for the host hook). The
seeds are the real payloads onehem gave hooks in the recorded outages
(``tests/data/fuzz/``). Mutations hit both layers: the decoded XML (then
re-encoded, so the XML parser and the model builders see the damage) and
the base64 text itself. Each target gets 10,000+ inputs; anything but
``PayloadError`` escaping is a bug, and every decision a hook would print
must be one line.
"""
from __future__ import annotations

import base64
import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from one_hooks.errors import PayloadError
from one_hooks.oned import xmlparse
from one_hooks.oned.model import Host, HostState, Resource
from one_hooks.recovery import policy
from tests.test_fuzz_mutations import GENERIC_TOKENS, mutants

DATA = Path(__file__).resolve().parent / "data" / "fuzz"
SEEDS_B64 = {p.stem: p.read_bytes() for p in sorted(DATA.glob("*.b64"))}
SEEDS_XML = {name: base64.b64decode(raw) for name, raw in SEEDS_B64.items()}
VM_XML = [xml for name, xml in SEEDS_XML.items() if name.startswith("vm-")]
HOST_XML = [xml for name, xml in SEEDS_XML.items() if name.startswith("host-")]

EXAMPLES = 200
MUTANTS_PER_EXAMPLE = 55  # 200 x 55 = 11,000 per target

XML_TOKENS = tuple(GENERIC_TOKENS) + (
    b"<", b">", b"/>", b"</VM>", b"</HOST>", b"<VM>", b"<HOST>", b"<![CDATA[", b"]]>", b"&amp;",
    b"&#0;", b"&#x1F600;", b"&lt;", b"&undefined;", b"<?xml version='1.0'?>",
    b'<!DOCTYPE VM [<!ENTITY x "y">]>', b'<!ENTITY e SYSTEM "file:///etc/passwd">', b"&e;",
    b"<STATE>", b"</STATE>", b"<LCM_STATE>16</LCM_STATE>", b"<STATE>8</STATE>",
    b"<HISTORY>", b"</HISTORY>", b"<ACTION>44</ACTION>", b"<ACTION>19</ACTION>", b"<HID>-1</HID>",
    b"<LOCK><LOCKED>4</LOCKED></LOCK>", b"<ONE_HOOKS_PRIORITY>x</ONE_HOOKS_PRIORITY>",
    b"<ONE_HOOKS_RECOVER>NO</ONE_HOOKS_RECOVER>", b"<AUTOSTART>YES</AUTOSTART>",
    b"<NAME>a\nb</NAME>", b"<ID>", b"</ID>", b"9223372036854775808", b"\xe2\x80\x8b",
    b"<!-- c -->", b"<?pi x?>", b' xmlns="http://opennebula.org/XMLSchema"',
)
B64_TOKENS = (b"=", b"==", b"\n", b" ", b"A", b"/", b"+", b"-", b"_", b"*", b"\x00", b"\xff",
              b"PFZNPg==", b"PEhPU1Q+", b"AAAA")

_SETTINGS = (policy.Settings(), policy.Settings(policy="opt-in"),
             policy.Settings(opt_attribute="AUTOSTART", priority_attribute="PRIO"))
_HOST_OK = xmlparse.decode_payload(SEEDS_B64["host-monitored-prev-error"])
_VMS_OK = [xmlparse.decode_payload(SEEDS_B64[n]) for n in SEEDS_B64 if n.startswith("vm-")]


def _one_line(text: str) -> None:
    assert "\n" not in text and "\r" not in text, repr(text)


def _hook_path(data: Union[bytes, str], resource: Resource) -> int:
    """What a hook does with its stdin, up to the plan; returns the number of decisions."""
    payload = xmlparse.decode_payload(data)
    if resource == Resource.VM:
        vm = xmlparse.expect_resource(payload, Resource.VM)
        count = 0
        for settings_ in _SETTINGS:
            decision = policy.decide(vm, _HOST_OK, settings_)
            _one_line(decision.line())
            count += 1
        # the same VM against the host's other states (the vm-unknown hook's first question)
        decision = policy.decide(vm, _with_state(_HOST_OK, HostState.ERROR), _SETTINGS[0])
        assert decision.action != policy.Action.RESUME
        return count
    host = xmlparse.expect_resource(payload, Resource.HOST)
    plan = policy.plan(host, _VMS_OK, _SETTINGS[0])
    for decision in plan.decisions:
        _one_line(decision.line())
    if host.state != HostState.MONITORED:
        assert plan.to_resume == []
    return len(plan.decisions)


def _with_state(host: Host, state: HostState) -> Host:
    return dataclasses.replace(host, state=state)


def _run(inputs: Sequence[bytes], resource: Resource, encode: bool) -> Tuple[int, int]:
    ok = bad = 0
    for data in inputs:
        text = base64.b64encode(data) if encode else data
        try:
            _hook_path(text, resource)
        except PayloadError as exc:
            _one_line(str(exc))
            assert exc.exit_code == 2
            bad += 1
        else:
            ok += 1
    return ok, bad


def test_seeds_decode_and_plan() -> None:
    for name, raw in SEEDS_B64.items():
        resource = Resource.VM if name.startswith("vm-") else Resource.HOST
        assert _hook_path(raw, resource) > 0, name
        assert _hook_path(raw.decode("ascii"), resource) > 0, name


def test_resource_mismatch_is_a_payload_error() -> None:
    for name, raw in SEEDS_B64.items():
        wrong = Resource.HOST if name.startswith("vm-") else Resource.VM
        try:
            _hook_path(raw, wrong)
        except PayloadError as exc:
            assert "expected a" in str(exc)
        else:
            raise AssertionError(f"{name} accepted as {wrong}")


_fuzz = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow])


@_fuzz
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_mutated_vm_xml_decodes_to_a_plan_or_payload_error(seed: int) -> None:
    _run(list(mutants(VM_XML, seed, MUTANTS_PER_EXAMPLE, XML_TOKENS)), Resource.VM, encode=True)


@_fuzz
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_mutated_host_xml_decodes_to_a_plan_or_payload_error(seed: int) -> None:
    _run(list(mutants(HOST_XML, seed, MUTANTS_PER_EXAMPLE, XML_TOKENS)), Resource.HOST, encode=True)


@settings(max_examples=100, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_mutated_base64_text_decodes_to_a_plan_or_payload_error(seed: int) -> None:
    vm_b64 = [raw for name, raw in SEEDS_B64.items() if name.startswith("vm-")]
    host_b64 = [raw for name, raw in SEEDS_B64.items() if name.startswith("host-")]
    _run(list(mutants(vm_b64, seed, 60, B64_TOKENS)), Resource.VM, encode=False)
    _run(list(mutants(host_b64, seed, 40, B64_TOKENS)), Resource.HOST, encode=False)


@settings(max_examples=600, derandomize=True, deadline=None, database=None)
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_arbitrary_stdin_is_a_payload_error_or_a_plan(data: Union[bytes, str]) -> None:
    for resource in (Resource.VM, Resource.HOST):
        try:
            _hook_path(data, resource)
        except PayloadError as exc:
            _one_line(str(exc))


def test_the_mutants_reach_every_layer() -> None:
    """Sanity: mutated inputs are neither all rejected nor all accepted."""
    inputs: List[bytes] = list(mutants(VM_XML, 99, 2000, XML_TOKENS))
    ok, bad = _run(inputs, Resource.VM, encode=True)
    assert ok > 200 and bad > 200, (ok, bad)


# --- through the real command ---------------------------------------------------

REPO = Path(__file__).resolve().parent.parent


def _hook_config(tmp: Path, sim) -> Path:
    config = tmp / "one-hooks.conf"
    config.write_text(f"[oned]\nendpoint = {sim.endpoint}\nauth_file = {sim.auth_file}\n"
                      f"[iscsi]\ncheck = no\n[recovery]\nstate_dir = {tmp / 'state'}\n"
                      f"settle_seconds = 0\n[log]\nfile = {tmp / 'one-hooks.log'}\n")
    return config


def _run_hook(event: str, stdin: bytes, config: Path) -> "subprocess.CompletedProcess[bytes]":
    return subprocess.run([sys.executable, "-m", "one_hooks", "hook", event], input=stdin,
                          capture_output=True, timeout=60, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), "ONE_HOOKS_CONFIG": str(config)})


def _tree(path: Path) -> Dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()} if path.exists() else {}


def test_real_hook_command_on_a_sample_of_bad_payloads(tmp_path: Path, sim) -> None:
    """exit 2, one line (no traceback), not one call to oned, no state file touched."""
    host = sim.add_host("dummy-host-1")
    sim.add_vm("vm-outage-test", host)
    assert sim.settle(10)
    config = _hook_config(tmp_path, sim)
    calls_before = dict(sim.calls)
    state_before = _tree(tmp_path / "state")
    sample: List[Tuple[str, bytes]] = []
    candidates = [("vm-unknown", VM_XML, Resource.VM), ("vm-poweroff", VM_XML, Resource.VM),
                  ("host-reconnect", HOST_XML, Resource.HOST)]
    for event, seeds, resource in candidates:
        for data in mutants(seeds, 2026, 400, XML_TOKENS):
            try:
                _hook_path(base64.b64encode(data), resource)
            except PayloadError:
                sample.append((event, base64.b64encode(data)))
                if sum(e == event for e, _ in sample) == 5:
                    break
    sample += [("vm-unknown", b""), ("vm-poweroff", b"\xff\xfe not base64"),
               ("host-reconnect", SEEDS_B64["vm-unknown-prev-running"])]  # a VM sent to a HOST hook
    for event, stdin in sample:
        proc = _run_hook(event, stdin, config)
        output = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        assert proc.returncode == 2, (event, output)
        assert len(output.strip().splitlines()) == 1, (event, output)
        assert "Traceback" not in output
    assert dict(sim.calls) == calls_before  # bad input: oned is not even asked
    assert sim.action_log == []
    assert _tree(tmp_path / "state") == state_before


def test_a_vm_name_cannot_forge_a_second_line(tmp_path: Path, sim) -> None:
    """A NAME holding a newline stays inside its one decision line, on stdout and in the log."""
    host = sim.add_host("dummy-host-1")
    sim.add_vm("vm-outage-test", host)
    assert sim.settle(10)
    sim.host_error(host)
    assert sim.settle(10)
    config = _hook_config(tmp_path, sim)
    xml = SEEDS_XML["vm-unknown-prev-running"].replace(
        b"<NAME>vm-outage-test</NAME>", b"<NAME>vm\nFORGED: resume accepted</NAME>", 1)
    proc = _run_hook("vm-unknown", base64.b64encode(xml), config)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for text in (proc.stdout.decode(), (tmp_path / "one-hooks.log").read_text()):
        assert "vm\\nFORGED" in text
        assert not any(line.startswith("FORGED") for line in text.splitlines()), text
