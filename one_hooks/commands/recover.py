"""``one-hooks recover``: the old "loop over onevm list and resume" done right.

Finds the VMs an outage left down on the given hosts (default: every
MONITORED host), runs each host's iSCSI gate, shows the plan with a reason
per VM, resumes in priority order with bounded concurrency, prints a line
per tier and one as each VM settles (on a terminal, a counter under them is
redrawn in place), and ends with a table. ``--dry-run`` stops after the plan
and the gate: nothing is sent to oned. ``--json`` prints the final report as
JSON on stdout (progress lines then go to stderr).

Unlike the hooks, this is an operator's explicit request: an earlier resume
attempt recorded by a hook does not hold a VM back.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Dict, List, TextIO

from .. import audit
from ..audit import Reporter
from ..config import Config
from ..errors import OnedNotFound, UsageError
from ..oned.model import Host, HostState
from ..recovery import records
from ..recovery.engine import build_engine


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``one-hooks recover``."""
    parser.add_argument("--host", action="append", default=[], metavar="ID|NAME",
                        help="recover this host's VMs (repeatable)")
    parser.add_argument("--all", action="store_true",
                        help="every MONITORED host (the default when no --host is given)")
    parser.add_argument("--dry-run", action="store_true",
                        help="show the plan and the iSCSI verdicts; resume nothing")
    parser.add_argument("--json", action="store_true",
                        help="print the final report as JSON on stdout (progress on stderr)")
    parser.epilog = ("exit codes: 0 every candidate RUNNING (or nothing to do); 1 some VM could not be "
                     "recovered, was locked, or a host's iSCSI gate failed; 2 bad arguments or config.")


def run(args: argparse.Namespace, config: Config, oned: object = None, gate: object = None) -> int:
    """Run ``one-hooks recover``; ``oned``/``gate`` may be given (tests)."""
    if args.host and args.all:
        raise UsageError("recover: give --host or --all, not both")
    logger = audit.setup(config.log, "one-hooks-recover")
    stream = sys.stderr if args.json else sys.stdout
    # On a terminal a counter is redrawn under the lines; elsewhere (a pipe, a log) plain lines only.
    out = LiveCounter(stream, logger) if stream.isatty() else Reporter(out=stream, logger=logger)
    if oned is None:
        from ..oned.client import Oned

        oned = Oned.from_config(config.oned, on_retry=audit.stderr_notice("one-hooks"))
    begun = time.time()
    with build_engine(config, out, oned=oned, gate=gate, who="recover", dry_run=args.dry_run,
                      honour_ledger=False) as engine:
        hosts = _hosts(engine.oned, args.host, out)
        mode = "dry run: nothing will be changed" if args.dry_run else "resuming"
        out.line(f"recover: {len(hosts)} host(s): {', '.join(h.name for h in hosts) or '-'} ({mode})")
        report = engine.recover_hosts([h.id for h in hosts], known_hosts={h.id: h for h in hosts})
    if isinstance(out, LiveCounter):
        out.stop()
    if not args.dry_run:
        for host in hosts:  # for one-hooks status: an operator's recover begins a new episode
            records.keep(config.recovery, host.id, host.name, report, "recover", time.time(), out, begun)
    report.write(sys.stdout, args.json)
    out.line(f"recover: {report.summary()}")
    return report.exit_code


class LiveCounter(Reporter):
    """A reporter for a terminal: each line as usual, and under them a counter redrawn in place.

    ``recover: 120/2000 VMs settled (118 running, 2 failed)``: carriage
    return and erase-line, no cursor movement, so it works on any terminal.
    The engine reports from several threads: the reporter's one lock on ``out``
    keeps each line and each redraw whole.
    """

    def __init__(self, out: TextIO, logger: logging.Logger) -> None:
        super().__init__(out=out, logger=logger)
        self._counts: Dict[str, int] = {}
        self._done = self._total = 0
        self._shown = False
        self._stopped = False

    def line(self, text: str, level: int = logging.INFO) -> None:
        """A decision line, printed above the counter."""
        with self._out_lock:
            self._clear()
            super().line(text, level)
            self._draw()

    def progress(self, done: int, total: int, outcome: str) -> None:
        """Count the VM and redraw the counter."""
        with self._out_lock:
            self._done, self._total = done, total
            self._counts[outcome] = self._counts.get(outcome, 0) + 1
            self._clear()
            self._draw()

    def stop(self) -> None:
        """Erase the counter for good (the final table follows)."""
        with self._out_lock:
            self._clear()
            self._stopped = True

    def _clear(self) -> None:
        if self._shown:
            self.out.write("\r\x1b[K")
            self._shown = False

    def _draw(self) -> None:
        if self._stopped or not self._total:
            return
        counts = ", ".join(f"{n} {name}" for name, n in sorted(self._counts.items()))
        self.out.write(f"recover: {self._done}/{self._total} VMs settled ({counts})")
        self.out.flush()
        self._shown = True


def _hosts(oned: object, wanted: List[str], out: Reporter) -> List[Host]:
    """The hosts named (each must exist), or every MONITORED host."""
    if wanted:
        named: List[Host] = []
        for name in wanted:
            try:
                named.append(oned.find_host(name))  # type: ignore[attr-defined]
            except OnedNotFound:
                raise UsageError(f"recover: no host {name!r} in oned") from None
        return named
    hosts: List[Host] = []
    for host in oned.host_pool():  # type: ignore[attr-defined]
        if host.state == HostState.MONITORED:
            hosts.append(host)
        else:
            out.line(f"recover: host {host.id} ({host.name}) is {host.state.name}, not MONITORED: skipped")
    return hosts
