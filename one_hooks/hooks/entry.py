"""``one-hooks hook EVENT``: the entry points oned's hook manager runs.

* ``host-reconnect`` (HOST, STATE=MONITORED): recover the host's candidates,
  then keep watching for ``[recovery] settle_seconds`` because oned reconciles
  VM states after the host hook has fired. The watching runs in a detached
  process (``--watch-host``): onehem runs at most 10 hooks at once, and 50
  hosts coming back together must not wait minutes for each other's windows.
* ``vm-unknown`` (VM, ON=UNKNOWN): host not MONITORED -> left to
  host-reconnect; otherwise gate and resume.
* ``vm-poweroff`` (VM, STATE=POWEROFF, LCM_STATE=LCM_INIT): acts only when the
  last history ACTION is ``monitor`` (the VM vanished in the outage), or
  ``resume`` for a VM whose recovery a process that died left half done.
* ``host-error`` (HOST, STATE=ERROR; registered only with ``[evacuate]
  enabled = yes``): :mod:`one_hooks.hooks.host_error` waits out the grace in
  a detached watcher, then fences the host and restarts its VMs elsewhere.

The process that resumes a VM carries it to its outcome (RUNNING, or gave up
after ``[recovery] attempts`` failed deploys, or not RUNNING in time), trying
a failed deploy again itself. The VM events its resume causes (vm-unknown with
``PREV_LCM_STATE=19`` after a failed deploy, vm-poweroff after one from
POWEROFF or after a late monitor report) find it carried and leave the VM to
that process with one line; if it died, they carry on within the attempts left.

Input: the base64 ``$TEMPLATE`` on stdin (``ARGUMENTS_STDIN=yes``) or as the
first argument. Output: one line per decision on stdout (oned keeps it for
``onehook show``) and in the log. Exit 0 done or nothing to do, 1 something
could not be recovered (``onehook retry`` may help), 2 bad input or config.

This module is on the hook path: it loads the oned adapter (and with it pyone,
about 0.13-0.15 s of CPU) only when it must ask oned, and the engine only when
there is something to recover. The VM shims reach it only through their first
look (:mod:`one_hooks.hooks.triage`), which settles most outage events without
this module's imports (and without pyone) and hands the rest here
(``one-hooks hook`` in its own process, with the payload it read).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any, Callable, List, Optional, Union

from .. import audit
from ..audit import Reporter
from ..config import Config, RecoverySection
from ..errors import EXIT_OK, OneHooksError, PayloadError
from ..oned.model import HistoryAction, Host, Resource, Vm, VmState
from ..oned.payload import read_payload
from ..oned.xmlparse import decode_payload, expect_resource
from ..recovery import claims
from . import settings_cache, verdicts

EVENTS = ("host-reconnect", "vm-unknown", "vm-poweroff", "host-error")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``one-hooks hook``."""
    parser.add_argument("event", choices=EVENTS, help="which hook this is")
    parser.add_argument("template", nargs="?", default=None,
                        help="base64 $TEMPLATE (default: read it from standard input)")
    parser.add_argument("--watch-host", type=int, metavar="HOST_ID", default=None,
                        help="(host-reconnect) run only the settle window for this host; (host-error) "
                             "run only the grace and the evacuation; each hook starts this itself, detached")
    parser.add_argument("--since", type=float, metavar="EPOCH", default=None,
                        help="(host-error, with --watch-host) the wall time the grace counts from: when the "
                             "hook saw the host fail (host-error passes it)")
    # Set only in-process, by the first look (one_hooks.hooks.triage) that already read stdin.
    parser.set_defaults(payload=None)
    parser.epilog = ("exit codes: 0 done or nothing to do; 1 something could not be recovered "
                     "(onehook retry may help); 2 bad payload or configuration (nothing done).")


def run(args: argparse.Namespace, config: Config) -> int:
    """Entry point of ``one-hooks hook EVENT``: the hook's error boundary."""
    watching = args.watch_host is not None
    logger = audit.setup(config.log, f"one-hooks-{args.event}" + ("-watch" if watching else ""))
    out = Reporter(logger=logger)
    try:
        if watching:
            if args.event == "host-error":
                from . import host_error
                return host_error.watch(args.watch_host, config, out, since=args.since)
            if args.event != "host-reconnect":
                raise PayloadError("--watch-host goes with host-reconnect or host-error only")
            return watch(args.watch_host, config, out)
        if args.config is None:
            # Lets the next VM hooks' first look skip loading the file (settings_cache).
            settings_cache.save(config, os.environ)
        raw = args.payload if args.payload is not None else read_payload(args.template)
        return handle(args.event, decode_payload(raw), config, out, spawn=_spawner(config))
    except OneHooksError as exc:
        # One line (per problem of a bad configuration file), on stdout like every other
        # decision (oned keeps stdout for onehook show) and in the log; exit 2 for bad
        # input, 1 otherwise.
        for line in str(exc).splitlines() or [""]:
            out.error(f"{args.event}: {line}")
        return exc.exit_code


def handle(event: str, payload: Union[Host, Vm], config: Config, out: Reporter, *,
           oned: Any = None, gate: Any = None,
           clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep,
           wall: Callable[[], float] = time.time,
           spawn: Optional[Callable[[List[str]], int]] = None) -> int:
    """Carry out one hook event; doors may be passed in (tests), else built from ``config``.

    ``spawn`` starts host-reconnect's settle window (host-error's grace) as a
    detached process (``Runner.spawn_detached``); without it the window runs
    here, inline.
    """
    if event == "host-error":
        from . import host_error
        return host_error.handle(expect_resource(payload, Resource.HOST), config, out, oned=oned, gate=gate,
                                 spawn=spawn, clock=clock, sleep=sleep, wall=wall)
    if event == "host-reconnect":
        begun = wall()
        host = expect_resource(payload, Resource.HOST)
        detach = spawn is not None and config.recovery.settle_seconds > 0
        if detach:
            # First of all, before the engine's imports: VM hooks of this host now leave
            # their VMs to us (and to the watcher after us) instead of asking oned.
            from ..recovery.ledger import Ledger

            Ledger(config.recovery.state_dir, wall=wall).claim_watch(
                host.id, wall() + config.recovery.settle_seconds)
        out.line(f"host-reconnect: host {host.id} ({host.name}) is {host.state.name}, "
                 f"was {host.prev_state.name}")
        from ..recovery.engine import build_engine
        with build_engine(config, out, oned=oned, gate=gate, who="host-reconnect",
                          settle=not detach, clock=clock, sleep=sleep, wall=wall) as engine:
            report = engine.recover_host(host.id, settle=not detach)
            out.line(f"host-reconnect: host {host.id}: {report.summary()}")
            _keep(config, host.id, host.name, report, "host-reconnect", wall(), out, begun=begun)
            if detach and spawn is not None:
                _start_watcher(host, config, out, spawn, engine.ledger, wall)
        return report.exit_code

    vm = expect_resource(payload, Resource.VM)
    out.line(f"{event}: VM {vm.id} ({vm.name}) is {vm.state_name}, was "
             f"{_prev_name(vm)}, last host {vm.hostname or '-'}")
    if vm.host_id is None:
        out.line(f"{event}: VM {vm.id}: never deployed, nothing to do")
        return EXIT_OK
    # The process that resumed the VM carries it: one process per VM's recovery, not
    # one per event it causes. The verdicts are the first look's (hooks.verdicts).
    facts = _facts(vm)
    now = wall()
    state_dir = config.recovery.state_dir
    line = verdicts.left_to_carrier(event, facts, claims.live_carrier(state_dir, vm.id, now))
    if line is not None:
        out.line(line)
        return EXIT_OK
    if event == "vm-poweroff" and not _powered_off_by_outage(vm, config.recovery, wall):
        action = vm.history.action if vm.history else HistoryAction.NONE
        out.line(f"vm-poweroff: VM {vm.id}: last action {action.name.lower()}, not monitor: "
                 "not powered off by an outage, nothing to do")
        return EXIT_OK
    # At power-back, host-reconnect watches the host: one process for the host's VMs
    # instead of one recovery per VM event.
    line = verdicts.left_to_watcher(event, facts, now, config.recovery.settle_interval,
                                    claims.live_claim(state_dir, vm.host_id, now))
    if line is not None:
        out.line(line)
        return EXIT_OK
    # Most VM events of an outage end here (host still in ERROR): decide that with
    # one call, before building the engine, the gate and their imports.
    if oned is None:
        from ..oned.client import Oned
        oned = Oned.from_config(config.oned)
    host = oned.host_info(vm.host_id)
    line = verdicts.left_to_host_hook(event, facts, host.name, int(host.state))
    if line is not None:
        out.line(line)
        return EXIT_OK
    from ..recovery.engine import build_engine
    with build_engine(config, out, oned=oned, gate=gate, who=event, clock=clock, sleep=sleep,
                      wall=wall) as engine:
        report = engine.recover_host(host.id, only=[vm.id], known_host=host)
    out.line(f"{event}: VM {vm.id}: {report.summary()}")
    _keep(config, host.id, host.name, report, event, wall(), out)
    return report.exit_code


def _keep(config: Config, host_id: int, host_name: str, report: Any, by: str, now: float,
          out: Reporter, begun: Optional[float] = None) -> None:
    """Leave what the run did on the host for ``one-hooks status`` (host-reconnect begins an episode)."""
    from ..recovery import records

    records.keep(config.recovery, host_id, host_name, report, by, now, out, begun)


def _powered_off_by_outage(vm: Vm, section: RecoverySection, wall: Callable[[], float]) -> bool:
    """POWEROFF by the monitor, or by a failed resume whose recovery nobody alive carries on."""
    action = vm.history.action if vm.history else HistoryAction.NONE
    if vm.state != VmState.POWEROFF:
        return False
    if action == HistoryAction.MONITOR:
        return True
    if action != HistoryAction.RESUME:
        return False
    from ..recovery.ledger import Ledger

    ledger = Ledger.from_section(section, wall=wall)
    try:
        record = ledger.get(vm.id)
    finally:
        ledger.close()
    return record.before is not None and not record.final


def watcher_argv(host_id: int, config: Config) -> List[str]:
    """The command that runs host-reconnect's settle window for ``host_id``."""
    argv = [sys.executable, "-m", "one_hooks"]
    if config.path:
        argv += ["--config", config.path]
    return argv + ["hook", "host-reconnect", "--watch-host", str(host_id)]


def _spawner(config: Config) -> Callable[[List[str]], int]:
    """Starts the settle watcher detached; its stderr goes to the log file (if one)."""
    def spawn(argv: List[str]) -> int:
        # node (and subprocess) is imported only by the host hook that needs it.
        from ..node.runner import Runner

        log = config.log.file if config.log.file != "-" else ""
        try:
            return Runner().spawn_detached(argv, stderr_path=log)
        except OSError:  # the log cannot be opened: the watcher still runs
            return Runner().spawn_detached(argv)
    return spawn


def running_watchers(config_path: str) -> List[int]:
    """PIDs of live settle watchers started with the configuration file ``config_path``."""
    wanted = [b"--config", config_path.encode(), b"--watch-host"]
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                words = fh.read().split(b"\0")
        except OSError:
            continue
        if all(w in words for w in wanted):
            pids.append(int(entry))
    return pids


def stop_watchers(config_path: str, timeout: float = 5.0) -> bool:
    """SIGTERM the settle watchers started with ``config_path`` and wait for them to go.

    For throwaway clouds (the demo, tests, benchmarks): on a front-end the
    watchers end by themselves when their window is over. False if some
    are still alive after ``timeout`` seconds.
    """
    for pid in running_watchers(config_path):
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    while running_watchers(config_path):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _start_watcher(host: Host, config: Config, out: Reporter,
                   spawn: Callable[[List[str]], int], ledger: Any,
                   wall: Callable[[], float]) -> None:
    seconds = config.recovery.settle_seconds
    try:
        pid = spawn(watcher_argv(host.id, config))
    except OneHooksError as exc:
        ledger.claim_watch(host.id, wall())  # nobody watches: the VM hooks act themselves
        out.warning(f"host-reconnect: host {host.id}: cannot start the settle watcher ({exc}); "
                    "VMs reconciled later are left to the VM hooks")
        return
    # Hand the claim over before this process exits (the watcher claims again itself).
    ledger.claim_watch_for(host.id, pid, wall() + seconds)
    out.line(f"host-reconnect: host {host.id}: watching its VMs for {seconds:g} s in the background "
             f"(pid {pid}); its decisions go to the log")


def watch(host_id: int, config: Config, out: Reporter) -> int:
    """The detached settle window of host-reconnect (``--watch-host``)."""
    from ..recovery.engine import build_engine
    with build_engine(config, out, who="host-reconnect-watch", settle=True) as engine:
        engine.ledger.claim_watch(host_id, time.time() + config.recovery.settle_seconds)
        try:
            report = engine.watch_host(host_id)
        finally:
            engine.ledger.claim_watch(host_id, time.time())  # over: VM hooks act themselves
    out.line(f"host-reconnect watch: host {host_id}: {report.summary()}")
    names = {r.host for r in report.results.values()} | set(report.gates)
    if len(names) == 1:  # the host's name, as the runs of the window saw it
        _keep(config, host_id, names.pop(), report, "host-reconnect-watch", time.time(), out)
    return report.exit_code


def _facts(vm: Vm) -> "verdicts.VmFacts":
    """What the first look's verdicts read of a VM."""
    return verdicts.VmFacts(vm.id, vm.name, int(vm.state), int(vm.lcm_state), int(vm.prev_lcm_state),
                          vm.host_id, vm.hostname, int(vm.history.action) if vm.history else 0)


def _prev_name(vm: Vm) -> str:
    if vm.prev_state == VmState.ACTIVE:
        return f"ACTIVE/{vm.prev_lcm_state.name}"
    return vm.prev_state.name
