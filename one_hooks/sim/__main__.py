"""``python -m one_hooks.sim``: serve a small simulated cloud for manual use.

    python -m one_hooks.sim --port 2633 --hosts 2 --vms 4
    ONE_XMLRPC=http://127.0.0.1:2633/RPC2 onevm list   # or pyone, or one-hooks

Prints the endpoint and the session, then serves until interrupted. Lines
typed on stdin drive the monitor's part: ``error HOST``, ``monitored HOST``,
``reconcile HOST [VM...]`` (listed VMs run, the others are gone), ``show``.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional, TextIO

from .oned import REAL_LATENCY, SimOned
from .server import NO_LATENCY


def _command(sim: SimOned, line: str, out: TextIO, shown: List[int]) -> None:
    """Run one monitor command; print the state changes not shown yet."""
    words = line.split()
    if not words:
        return
    verb, args = words[0], [int(w) for w in words[1:] if w.isdigit()]
    if verb == "error" and args:
        sim.host_error(args[0])
    elif verb == "monitored" and args:
        sim.host_monitored(args[0])
    elif verb == "reconcile" and args:
        sim.reconcile(args[0], running=set(args[1:]))
    elif verb != "show":
        print("commands: error HOST | monitored HOST | reconcile HOST [VM...] | show", file=out)
        return
    changes = sim.changes
    for change in changes[shown[0]:]:
        print(f"  {change.kind} {change.id}: {change.before} -> {change.after}", file=out)
    shown[0] = len(changes)


def main(argv: Optional[List[str]] = None, stdin: Optional[TextIO] = None,
         out: Optional[TextIO] = None) -> int:
    """Serve until ``stdin`` closes or Ctrl-C; 0."""
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    parser = argparse.ArgumentParser(prog="python -m one_hooks.sim", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=2633)
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--vms", type=int, default=4, help="VMs, spread over the hosts")
    parser.add_argument("--user", default="oneadmin")
    parser.add_argument("--password", default="opennebula")
    parser.add_argument("--boot-seconds", type=float, default=1.0)
    parser.add_argument("--no-latency", action="store_true", help="answer at once (default: real oned's)")
    parser.add_argument("--remotes-dir", default="/var/lib/one/remotes")
    args = parser.parse_args(argv)
    sim = SimOned(latency=NO_LATENCY if args.no_latency else REAL_LATENCY,
                  boot_seconds=args.boot_seconds, users={args.user: args.password},
                  remotes_dir=args.remotes_dir, port=args.port)
    endpoint = sim.start()
    try:
        hosts = [sim.add_host(f"node-{i + 1}") for i in range(max(args.hosts, 1))]
        for n in range(args.vms):
            sim.add_vm(f"vm-{n}", hosts[n % len(hosts)])
        print(f"ONE_XMLRPC={endpoint}\nsession {args.user}:<password given>", file=out, flush=True)
        shown = [len(sim.changes)]
        for line in stdin:
            _command(sim, line, out, shown)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
