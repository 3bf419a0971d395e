"""``one-hooks hook host-error``: a host went ERROR; if it does not come back, evacuate it.

Registered (HOST, ``STATE=ERROR``) only when ``[evacuate] enabled = yes``.
The hook itself returns at once: onehem runs at most 10 hooks at a time,
and a dead host must not hold one for the grace. It checks that fencing is
configured (no fence: exit 1 naming the host, nothing will ever move), takes
the host's evacuation claim (a live watcher already has it: exit 0, one
evacuation per host), and starts a detached watcher
(``--watch-host ID``) that:

1. looks at the host every ``[evacuate] interval`` seconds for
   ``[evacuate] grace`` seconds; the host leaves ERROR (MONITORED again,
   or an operator disabled it): nothing is evacuated, exit 0;
2. still in ERROR: fences it, disables it and moves its VMs
   (:class:`~one_hooks.recovery.evacuator.Evacuator`); its exit code and
   lines go to the log and to ``<state_dir>/evacuate/host-<ID>.json``.

If the watcher cannot be started, the hook runs it inline (its TIMEOUT
covers the grace and the evacuation).
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable, List, Optional

from ..audit import Reporter
from ..config import Config
from ..errors import EXIT_FAILED, EXIT_OK, OneHooksError
from ..oned.model import Host

__all__ = ["handle", "watch", "watcher_argv"]


def watcher_argv(host_id: int, config: Config, since: float) -> List[str]:
    """The command that runs the grace (counted from wall time ``since``) and the evacuation of ``host_id``."""
    argv = [sys.executable, "-m", "one_hooks"]
    if config.path:
        argv += ["--config", config.path]
    return argv + ["hook", "host-error", "--watch-host", str(host_id), "--since", repr(float(since))]


def handle(host: Host, config: Config, out: Reporter, *, oned: Any = None, gate: Any = None, fence: Any = None,
           spawn: Optional[Callable[[List[str]], int]] = None,
           clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep,
           wall: Callable[[], float] = time.time) -> int:
    """The hook proper: check, claim, start the watcher (or run it here without ``spawn``)."""
    since = wall()  # the grace counts from the failure oned reported, not from the watcher's start
    ev = config.evacuate
    out.line(f"host-error: host {host.id} ({host.name}) is {host.state.name}, was {host.prev_state.name}")
    if not ev.enabled:
        out.line("host-error: evacuation is off ([evacuate] enabled = no): nothing to do; "
                 "host-reconnect recovers its VMs when the host is back")
        return EXIT_OK
    if not (ev.fence.strip() and ev.fence_check.strip()):
        out.error(f"host-error: host {host.name} (ID {host.id}): no [evacuate] fence and fence_check configured: "
                  "its VMs will not be evacuated (fencing is mandatory); set both, or bring the host back "
                  "(host-reconnect then recovers its VMs)")
        return EXIT_FAILED
    from ..recovery.evacuator import claim_host, evacuation_budget
    from ..recovery.ledger import Ledger

    ledger = Ledger.from_section(config.recovery, wall=wall)
    until = wall() + ev.grace + evacuation_budget(config)
    try:
        held = claim_host(ledger, host.id, until)
        if held is not None:
            out.line(f"host-error: host {host.name}: already watched by pid {held.pid}: one evacuation per host, "
                     "nothing more to do")
            return EXIT_OK
        if spawn is not None:
            try:
                pid = spawn(watcher_argv(host.id, config, since))
            except OneHooksError as exc:
                out.warning(f"host-error: host {host.name}: cannot start the watcher ({exc}); waiting here")
            else:
                ledger.claim_watch_for(host.id, pid, until, kind="evacuate")
                out.line(f"host-error: host {host.name}: waiting {ev.grace:g} s for it to come back (watcher "
                         f"pid {pid}); if it does not, it is fenced, disabled, and its VMs restarted on other "
                         "hosts; the decisions go to the log")
                return EXIT_OK
        return watch(host.id, config, out, oned=oned, gate=gate, fence=fence, clock=clock, sleep=sleep,
                     wall=wall, ledger=ledger, since=since)
    finally:
        ledger.close()


def watch(host_id: int, config: Config, out: Reporter, *, oned: Any = None, gate: Any = None, fence: Any = None,
          clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep,
          wall: Callable[[], float] = time.time,
          ledger: Any = None, since: Optional[float] = None) -> int:
    """The watcher (``--watch-host``): the grace, then the evacuation if the host stayed in ERROR.

    ``since``: the wall time the grace counts from (the hook's start); None: now.
    """
    from ..recovery.evacuator import build_evacuator, evacuation_budget, release_host, wait_out_grace
    from ..recovery.ledger import Ledger

    ev = config.evacuate
    if oned is None:
        from ..oned.client import Oned
        oned = Oned.from_config(config.oned)
    own = ledger is None
    ledger = ledger or Ledger.from_section(config.recovery, wall=wall)
    try:
        # The hook handed its claim over to this process; say it again with our own PID.
        ledger.claim_watch(host_id, wall() + ev.grace + evacuation_budget(config), kind="evacuate")
        already = min(ev.grace, max(0.0, wall() - since)) if since is not None else 0.0
        host = wait_out_grace(oned, host_id, ev.grace, ev.interval, out, clock=clock, sleep=sleep,
                              already=already)
        if host is None:
            return EXIT_OK
        ledger.claim_watch(host_id, wall() + evacuation_budget(config), kind="evacuate")

        def keepalive(seconds: float) -> None:
            ledger.claim_watch(host_id, wall() + seconds, kind="evacuate")

        with build_evacuator(config, out, oned=oned, gate=gate, fence=fence, who="host-error", clock=clock,
                             sleep=sleep, wall=wall, keepalive=keepalive) as evacuator:
            report = evacuator.evacuate(host_id, known_host=host)
        out.line(f"host-error: host {host.name}: {report.summary()}")
        return report.exit_code
    finally:
        release_host(ledger, host_id)
        if own:
            ledger.close()
