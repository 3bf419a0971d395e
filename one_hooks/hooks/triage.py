"""The VM hooks' first look: settle the common outage cases before anything heavy loads.

An outage fires one VM hook per VM (``vm-unknown`` when the host goes
ERROR, ``vm-poweroff`` when it comes back and reports its VMs gone), and
onehem runs them ten at a time. Nearly all of them end one of three ways:

* the VM is carried by the live process that resumed it (a carry claim,
  :mod:`one_hooks.recovery.claims`): the event is one its resume caused (a
  failed deploy, a late monitor report), left to it;
* the VM's host is being watched by host-reconnect (a watch claim): the VM
  is left to it;
* the VM's host is not MONITORED (it is still down): the VM is left to
  host-reconnect, which oned fires when the host returns.

The full hook (:mod:`one_hooks.hooks.entry`) reaches the same verdicts, but only
after loading the configuration machinery, lxml, the model and the logger:
about 60 ms of CPU per process, most of an outage's hook cost. This module
reaches them with the stdlib's C parser (:mod:`one_hooks.oned.xmltree`), the settings snapshot
(:mod:`one_hooks.hooks.settings_cache`) and at most one ``one.host.info`` call.

It only ever says "left to ...", never acts on a VM. Whenever it is not
sure (no valid snapshot, a payload the full parser might read differently,
a MONITORED host, an oned error, a log it cannot write) it hands the
payload it read to the full hook, which decides everything from scratch:
the first look can make a hook cheaper, never reach another verdict. The
verdicts themselves are :mod:`one_hooks.hooks.verdicts`: the full hook words
them with the same functions, after one line of context the first look
leaves out. The hand-over runs ``one-hooks hook`` in this process
(:func:`one_hooks.cli.main`, given the payload already read from stdin).

Run as ``python -m one_hooks.hooks.triage EVENT [TEMPLATE]`` (the installed
``vm-unknown`` and ``vm-poweroff`` shims do).
"""
from __future__ import annotations

import os
import sys
import time

from ..errors import EXIT_OK, OneHooksError
from ..logline import format_line, one_line
from ..oned import xmltree
from ..oned.payload import int_field, read_payload, unbase64
from ..recovery import claims
from . import settings_cache
from .verdicts import VmFacts, left_to_carrier, left_to_host_hook, left_to_watcher, may_be_left

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs every hook ~8 ms
    from typing import Callable, List, Optional, Sequence, Tuple

EVENTS = ("vm-unknown", "vm-poweroff")

#: The first look's one call waits at most this long (or ``[oned] timeout`` if
#: shorter): when oned is hung or swamped, the full hook asks again with the
#: configured timeout and retries, and a VM hook should not wait twice as long.
CALL_TIMEOUT = 5.0

#: Deeper documents are left to the full parser (libxml2 refuses depth > 256;
#: a VM document is about 5 deep).
MAX_DEPTH = 32
#: Longer element or attribute names too (libxml2 refuses names over 50,000
#: characters; OpenNebula's are short, a user's template attribute may not be).
MAX_NAME = 1000


class Unsure(Exception):
    """The first look cannot tell; the full hook decides."""


# --- parse: as the full parser reads, or Unsure ----------------------------------


def _tree(xml: bytes) -> xmltree.Element:
    """The root element; :class:`Unsure` for anything lxml could read differently.

    Malformed XML, a DOCTYPE or entity declaration, a processing instruction
    or great depth go to the full parser (a namespaced root keeps its
    ``{uri}`` tag, as in lxml, and so is no VM or HOST).
    """
    try:
        return xmltree.parse(xml, MAX_DEPTH, refuse_pis=True, max_name=MAX_NAME)
    except xmltree.Refused:
        raise Unsure("not a document the first look reads") from None


def _text(node: xmltree.Element, tag: str) -> "Optional[str]":
    child = node.find(tag)
    return None if child is None else child.all_text()


def _int(node: xmltree.Element, tag: str, default: "Optional[int]" = None) -> int:
    """As the full parser reads an integer child (same defaults, same refusals)."""
    try:
        return int_field(_text(node, tag), default)
    except LookupError:
        raise Unsure(f"missing {tag}") from None
    except ValueError:
        raise Unsure(f"{tag} is not an integer") from None


def vm_facts(xml: bytes) -> VmFacts:
    """The facts of a ``<VM>`` document; :class:`Unsure` where the full parser might differ.

    Every integer the full parser reads is read (and must parse) here too, so
    a payload it would refuse is never settled here.
    """
    vm = _tree(xml)
    if vm.tag != "VM":
        raise Unsure("not a VM document")
    state, lcm_state = _int(vm, "STATE"), _int(vm, "LCM_STATE")
    _int(vm, "PREV_STATE", state)
    prev_lcm_state = _int(vm, "PREV_LCM_STATE", lcm_state)
    vm_id = _int(vm, "ID")
    lock = vm.find("LOCK")
    if lock is not None:
        _int(lock, "LOCKED", 0)
    last: "Optional[Tuple[int, int, str, int]]" = None
    records = vm.find("HISTORY_RECORDS")
    for history in records.find_all("HISTORY") if records is not None else []:
        seq, hid = _int(history, "SEQ"), _int(history, "HID")
        action = _int(history, "ACTION", 0)
        for tag in ("STIME", "ETIME", "RSTIME", "RETIME"):
            _int(history, tag, 0)
        if last is None or seq > last[0]:  # the highest SEQ; the first of equals
            last = (seq, hid, _text(history, "HOSTNAME") or "", action)
    return VmFacts(vm_id, _text(vm, "NAME") or "", state, lcm_state, prev_lcm_state,
                   last[1] if last else None, last[2] if last else "", last[3] if last else 0)


def host_facts(xml: bytes) -> "Tuple[str, int]":
    """``(NAME, STATE)`` of a ``<HOST>`` document (``one.host.info``), read as the full parser would."""
    host = _tree(xml)
    if host.tag != "HOST":
        raise Unsure("not a HOST document")
    state = _int(host, "STATE")
    _int(host, "ID")
    _int(host, "PREV_STATE", state)
    _int(host, "CLUSTER_ID", -1)
    vms = host.find("VMS")
    for vm_id in vms.find_all("ID") if vms is not None else []:
        try:
            int(vm_id.all_text().strip())
        except ValueError:
            raise Unsure("VMS/ID is not an integer") from None
    return _text(host, "NAME") or "", state


# --- decide (pure) ------------------------------------------------------------


# --- act ----------------------------------------------------------------------


def _host_info(settings: settings_cache.Settings, host_id: int) -> "Tuple[str, int]":
    """One ``one.host.info``; :class:`Unsure` on any error (the full hook retries properly)."""
    # Only this case pays for the socket module (and its enum import).
    from ..oned import wire
    from ..oned.authfile import read_auth

    target = wire.split_endpoint(settings.endpoint)
    if target is None:
        raise Unsure("endpoint needs the full adapter")
    call = wire.encode_call("one.host.info", [read_auth(settings.auth_file), int(host_id), False])
    try:
        answer = wire.decode_response(wire.post(*target, call, min(settings.timeout, CALL_TIMEOUT)))
    except (OSError, wire.WireError):
        raise Unsure("oned call failed") from None
    if not (isinstance(answer, list) and len(answer) >= 2 and answer[0] is True
            and isinstance(answer[1], str)):
        raise Unsure("oned refused or answered oddly")
    return host_facts(answer[1].encode("utf-8"))


def first_look(event: str, raw: bytes, settings: settings_cache.Settings,
               wall: "Callable[[], float]" = time.time) -> str:
    """The one line that settles this event; :class:`Unsure` when the full hook must decide."""
    vm = vm_facts(unbase64(raw))
    if vm.host_id is None:
        raise Unsure("not a case for the first look")
    now = wall()
    line = left_to_carrier(event, vm, claims.live_carrier(settings.state_dir, vm.id, now))
    if line is not None:
        return line
    if not may_be_left(event, vm):
        raise Unsure("not a case for the first look")
    line = left_to_watcher(event, vm, now, settings.settle_interval,
                           claims.live_claim(settings.state_dir, vm.host_id, now))
    if line is None:
        host_name, host_state = _host_info(settings, vm.host_id)
        line = left_to_host_hook(event, vm, host_name, host_state)
    if line is None:
        raise Unsure("host MONITORED: the full hook recovers")
    return line


def _log(settings: settings_cache.Settings, program: str, line: str) -> None:
    """Append the line to the log as the full hook's logger would; OSError if it cannot."""
    if settings.log_level not in ("debug", "info"):
        return
    text = format_line(program, "INFO", line, time.time()) + "\n"
    if settings.log_file == "-":
        sys.stderr.write(text)
        sys.stderr.flush()
        return
    fd = os.open(settings.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, text.encode("utf-8", "replace"))
    finally:
        os.close(fd)


def main(argv: "Optional[Sequence[str]]" = None) -> int:
    """``python -m one_hooks.hooks.triage EVENT [TEMPLATE]``: first look, else the full hook."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in EVENTS or len(args) > 2 or any(a.startswith("-") for a in args):
        return _full_hook(args, None)
    event = args[0]
    try:
        raw = read_payload(args[1] if len(args) == 2 else None)
    except OneHooksError:
        return _full_hook(args, None)  # it says what is wrong, in its words
    settings = settings_cache.load(os.environ)
    if settings is None:
        return _full_hook(args, raw)
    try:
        line = first_look(event, raw, settings)
        _log(settings, f"one-hooks-{event}", line)
    except (Unsure, OneHooksError, OSError, ValueError):
        return _full_hook(args, raw)
    print(one_line(line), flush=True)
    return EXIT_OK


def _full_hook(args: "List[str]", raw: "Optional[bytes]") -> int:
    """``one-hooks hook ARGS`` in this process, on the payload already read (None: it reads stdin).

    Through the command line, so the full hook parses its arguments, loads
    the configuration and reports errors exactly as when oned runs it.
    """
    from ..cli import main

    return main(["hook", *args], preset={"payload": raw} if raw is not None else None)


if __name__ == "__main__":
    sys.exit(main())
