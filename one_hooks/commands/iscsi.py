"""``one-hooks iscsi check HOST [--json] [--wait]``: one host's gate verdict.

The same look the recovery gate takes before resuming VMs on a host, always
fresh (a shared cached verdict would hide what the node says now). Exit 0
when HEALTHY, 1 when BROKEN or UNKNOWN.

HOST is the NAME oned knows the host by (what ssh connects to): no oned is
needed, which matters right after an outage. A number is a host ID, looked up
through oned (``--name`` says a numeric HOST is a name).
"""
from __future__ import annotations

import argparse
import dataclasses
import json

from ..config import Config
from ..errors import EXIT_FAILED, EXIT_OK
from ..node.gate import Gate, describe
from ..node.runner import Node


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``iscsi check HOST [--json] [--wait]``."""
    sub = parser.add_subparsers(dest="iscsi_command", metavar="ACTION", required=True)
    check = sub.add_parser(
        "check", help="print one host's iSCSI verdict (exit 0 healthy, 1 broken or unknown)",
        description="Run the recovery gate's iSCSI check on one host over [node] command and print "
                    "each target and problem. Exit 0 when HEALTHY, 1 when BROKEN or UNKNOWN.")
    check.add_argument("host", metavar="HOST",
                       help="the host's NAME as oned knows it (what ssh connects to); a number is a host ID, "
                            "resolved through oned")
    check.add_argument("--name", action="store_true", help="HOST is a name even if it is a number")
    check.add_argument("--json", action="store_true", help="print the verdict as one JSON object")
    check.add_argument("--wait", action="store_true",
                       help="re-check with growing waits until healthy or [iscsi] deadline")


def run(args: argparse.Namespace, config: Config) -> int:
    """Check the host and print its verdict."""
    section = dataclasses.replace(config.iscsi, cache_ttl=0.0)  # always a fresh look
    gate = Gate(Node.from_config(config), section, config.iscsiadm_argv(), config.recovery.state_dir)
    host = args.host
    if host.isdigit() and not args.name:
        from ..oned.client import Oned  # only here: a check by NAME needs no oned at all

        from ..audit import stderr_notice

        host = Oned.from_config(config.oned, on_retry=stderr_notice("one-hooks")).find_host(host).name
        if not args.json:
            print(f"host {args.host} is {host}")
    verdict = gate.wait_healthy(host) if args.wait else gate.check_once(host)
    if args.json:
        print(json.dumps(verdict.to_dict(), indent=2, sort_keys=True))
    else:
        print("\n".join(describe(verdict)))
    return EXIT_OK if verdict.healthy else EXIT_FAILED
