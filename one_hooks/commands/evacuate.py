"""``one-hooks evacuate HOST``: restart elsewhere the VMs of a host that is down, by hand.

The operator's version of the host-error hook, without the grace: the same
plan and reasons (which VMs, onto which host, why), the same fence rules
(``[evacuate] fence`` and ``fence_check`` must power the host off and confirm
it, else nothing is moved and the exit code is 1), the same disabling of the
host, the same moves and final table. ``[evacuate] enabled`` is not needed:
that key only registers the hook. ``--dry-run`` stops after the plan and the
targets' iSCSI verdicts: nothing fenced, disabled or moved. ``--json`` prints
the final report as JSON on stdout (progress lines then go to stderr).

A host-error watcher that holds the host (waiting out its grace, or
evacuating) keeps it: this command then says so and exits 1.
"""
from __future__ import annotations

import argparse
import sys

from .. import audit
from ..audit import Reporter
from ..config import Config
from ..errors import EXIT_FAILED, OnedNotFound, UsageError
from ..recovery.evacuation import host_down
from ..recovery.evacuator import build_evacuator, evacuation_budget, watching


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``one-hooks evacuate``."""
    parser.add_argument("host", metavar="HOST", help="the dead host, by ID or NAME")
    parser.add_argument("--dry-run", action="store_true",
                        help="show the plan and the targets' iSCSI verdicts; fence, disable and move nothing")
    parser.add_argument("--json", action="store_true",
                        help="print the final report as JSON on stdout (progress on stderr)")
    parser.epilog = ("exit codes: 0 every VM to move RUNNING elsewhere (or nothing to move); 1 the host "
                     "could not be fenced, or some VM was not moved or not RUNNING in time; 2 bad arguments "
                     "or config, or the host is not down (nothing changed).")


def run(args: argparse.Namespace, config: Config, oned: object = None, gate: object = None,
        fence: object = None) -> int:
    """Run ``one-hooks evacuate``; ``oned``/``gate``/``fence`` may be given (tests)."""
    logger = audit.setup(config.log, "one-hooks-evacuate")
    out = Reporter(out=sys.stderr if args.json else sys.stdout, logger=logger)
    with build_evacuator(config, out, oned=oned, gate=gate, fence=fence, who="evacuate",
                         dry_run=args.dry_run) as evacuator:
        try:
            host = evacuator.oned.find_host(args.host)
        except OnedNotFound:
            raise UsageError(f"evacuate: no host {args.host!r} in oned") from None
        down = host_down(host)
        if down:
            raise UsageError(f"evacuate: {down}")
        mode = "dry run: nothing will be changed" if args.dry_run else "fence, disable, move"
        out.line(f"evacuate: host {host.id} ({host.name}) is {host.state.name} ({mode})")
        if args.dry_run:
            report = evacuator.evacuate(host.id, known_host=host)
        else:
            ledger = evacuator.ledger
            with watching(ledger, host.id, ledger.wall() + evacuation_budget(config)) as other:
                if other is not None:
                    out.error(f"evacuate: host {host.name}: a host-error watcher (pid {other.pid}) holds it "
                              "(waiting out its grace, or evacuating): wait for it, or stop it "
                              f"(kill {other.pid}) and run this again")
                    return EXIT_FAILED
                evacuator.keepalive = lambda seconds: ledger.claim_watch(
                    host.id, ledger.wall() + seconds, kind="evacuate")
                report = evacuator.evacuate(host.id, known_host=host)
    report.write(sys.stdout, args.json)
    out.line(f"evacuate: {report.summary()}")
    return report.exit_code
