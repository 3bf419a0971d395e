"""``one-hooks cpu``: switch KVM guests to the host CPU, verify it, undo it, check migration.

* ``enable --mode native``: ``CPU_MODEL = [ MODEL = "host-passthrough" ]``
  (libvirt runs ``-cpu host,migratable=on``);
* ``enable --mode wrapper``: ``EMULATOR`` = the one-hooks wrapper (installed
  under the remotes, ``onehost sync`` delivers it), which gives guests the
  ``[cpu] argument``;
* ``--scope file`` edits ``vmm_exec_kvm.conf`` (oned must restart);
  ``cluster:ID`` / ``host:ID`` update that template through the API.

Running VMs keep their CPU until poweroff + resume (the domain XML is
regenerated on deploy, not on reboot).
"""
from __future__ import annotations

import argparse
import os
from typing import Callable, List, Optional

from .. import filediff
from ..config import Config
from ..errors import EXIT_FAILED, EXIT_OK, UsageError
from ..oned.template import Template
from ..cpu import conf_patch, migration, scope as scope_mod, verify as verify_mod, wrapper as wrapper_mod

DEFAULT_REMOTES = wrapper_mod.FRONTEND_REMOTES
RESTART_ONED = ["systemctl", "restart", "opennebula"]
NATIVE_VALUE = {"MODEL": conf_patch.HOST_PASSTHROUGH}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``cpu enable|disable|status|verify|check-migration``."""
    sub = parser.add_subparsers(dest="cpu_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--scope", default="file", metavar="file|cluster:ID|host:ID",
                       help="where to switch: vmm_exec_kvm.conf (default), or one cluster/host template")
        p.add_argument("--conf", metavar="PATH", help="driver defaults file (default: [cpu] conf)")
        p.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")

    enable = sub.add_parser("enable", help="give KVM guests the host CPU",
                            description="Switch KVM guests to the host CPU. Running VMs change after "
                                        "poweroff + resume.")
    enable.add_argument("--mode", choices=("native", "wrapper"), required=True,
                        help="native: CPU_MODEL=host-passthrough; wrapper: EMULATOR=the one-hooks wrapper")
    common(enable)
    enable.add_argument("--restart-oned", action="store_true",
                        help=f"with --scope file: run '{' '.join(RESTART_ONED)}' afterwards")
    enable.add_argument("--remotes", default=DEFAULT_REMOTES, metavar="DIR",
                        help=f"oned's remotes directory, where the wrapper goes (default {DEFAULT_REMOTES})")
    enable.add_argument("--node-remotes", default=wrapper_mod.NODE_REMOTES, metavar="DIR",
                        help=f"where nodes keep the remotes (default {wrapper_mod.NODE_REMOTES})")
    enable.add_argument("--cpu", metavar="ARG", help="the -cpu value the wrapper gives (default: [cpu] argument)")

    disable = sub.add_parser("disable", help="undo the switch exactly")
    common(disable)
    disable.add_argument("--restart-oned", action="store_true",
                         help=f"with --scope file: run '{' '.join(RESTART_ONED)}' afterwards")

    status = sub.add_parser("status", help="show the switch in the config file and the installed wrapper")
    status.add_argument("--conf", metavar="PATH", help="driver defaults file (default: [cpu] conf)")
    status.add_argument("--remotes", default=DEFAULT_REMOTES, metavar="DIR")

    check = sub.add_parser("verify", help="check nodes: wrapper, libvirt probe, running VMs, AppArmor/SELinux")
    check.add_argument("hosts", nargs="*", metavar="HOST", help="host NAMEs (default: every host in oned)")
    check.add_argument("--mode", choices=("native", "wrapper"), default=None,
                       help="what to check for (default: what [cpu] conf's EMULATOR says)")
    check.add_argument("--node-remotes", default=wrapper_mod.NODE_REMOTES, metavar="DIR")

    mig = sub.add_parser("check-migration", help="clusters where host CPUs differ (live migration unsafe)")
    mig.add_argument("--cluster", type=int, metavar="ID", help="only this cluster")


def run(args: argparse.Namespace, config: Config, oned_factory: Optional[Callable[[], object]] = None,
        runner: Optional[object] = None) -> int:
    """Dispatch to the action."""
    make_oned = oned_factory or (lambda: _oned(config))
    action = args.cpu_command
    if action == "enable":
        return enable(args, config, make_oned, runner)
    if action == "disable":
        return disable(args, config, make_oned, runner)
    if action == "status":
        return status(args, config)
    if action == "verify":
        return verify(args, config, make_oned)
    return check_migration(args, make_oned)


def _oned(config: Config) -> object:
    from ..audit import stderr_notice
    from ..oned.client import Oned  # loads pyone: only the scopes that ask oned pay for it
    return Oned.from_config(config.oned, on_retry=stderr_notice("one-hooks"))


def _value(args: argparse.Namespace) -> object:
    if args.mode == "native":
        return dict(NATIVE_VALUE)
    return wrapper_mod.node_emulator(args.node_remotes)


def enable(args: argparse.Namespace, config: Config, make_oned: Callable[[], object],
           runner: Optional[object]) -> int:
    """Turn the switch on in the chosen scope."""
    kind, ident = scope_mod.parse_scope(args.scope)
    conf = args.conf or config.cpu.conf
    if args.mode == "wrapper":
        previous = None
        if kind == "file":
            previous = conf_patch.state_of(conf_patch.read_text(conf), conf).emulator
        installed = wrapper_mod.installed_settings(args.remotes)
        if installed is not None and not config.cpu.emulator:
            # Once EMULATOR points at the wrapper, only the installed settings remember the real one.
            qemu = tuple(installed.qemu)
        else:
            qemu = tuple(wrapper_mod.real_emulators(previous, config.cpu.emulator))
        settings = wrapper_mod.Settings(qemu, args.cpu or config.cpu.argument)
        settings.render()  # refuse bad settings before anything changes
        if args.dry_run:
            print(f"would install {wrapper_mod.wrapper_path(args.remotes)} (QEMU={':'.join(settings.qemu)}, "
                  f"CPU={settings.cpu}):")
            for path, before, after, _ in wrapper_mod.planned(args.remotes, settings):
                _print_lines(filediff.unified(path, before, after) or [f"{path}: already as it would be"])
        else:
            from ..install.context import oneadmin_ids  # as one-hooks-install does: oneadmin's files when root

            for path in wrapper_mod.install(args.remotes, settings, *(oneadmin_ids() or (None, None))):
                print(f"installed {path}")
            print("left to do: run 'onehost sync --force' as oneadmin so every node gets the wrapper")
    if kind == "file":
        change = conf_patch.enable(conf, args.mode, wrapper_mod.node_emulator(args.node_remotes),
                                   dry_run=args.dry_run)
        _report_file(change, args, runner)
    else:
        name = "CPU_MODEL" if args.mode == "native" else "EMULATOR"
        _apply_scope(make_oned(), kind, ident, scope_mod.plan_enable, name, _value(args), args.dry_run)
    print("running VMs get the new CPU after poweroff + resume (the domain XML is rebuilt on deploy)")
    return EXIT_OK


def disable(args: argparse.Namespace, config: Config, make_oned: Callable[[], object],
            runner: Optional[object]) -> int:
    """Undo the switch in the chosen scope."""
    kind, ident = scope_mod.parse_scope(args.scope)
    if kind == "file":
        change = conf_patch.revert(args.conf or config.cpu.conf, dry_run=args.dry_run)
        _report_file(change, args, runner)
    else:
        oned = make_oned()
        current = scope_mod.template_from_xml(oned.template_xml(kind, ident))  # type: ignore[attr-defined]
        plan = scope_mod.plan_disable(current, list(conf_patch.MANAGED))
        _send(oned, kind, ident, current, plan, args.dry_run)
    return EXIT_OK


def _apply_scope(oned: object, kind: str, ident: int, planner: Callable[..., scope_mod.ScopePlan],
                 name: str, value: object, dry_run: bool) -> None:
    current = scope_mod.template_from_xml(oned.template_xml(kind, ident))  # type: ignore[attr-defined]
    _send(oned, kind, ident, current, planner(current, name, value), dry_run)


def _send(oned: object, kind: str, ident: int, current: Template, plan: scope_mod.ScopePlan,
          dry_run: bool) -> None:
    where = f"{kind} {ident}"
    if plan.text is None:
        print(f"{where}: nothing to change ({plan.reason})")
        return
    if dry_run:
        print(f"{where}: would {plan.reason} (dry run: nothing sent to oned); its template would change:")
        _print_lines(filediff.unified(f"{where} template", current.text, plan.result(current)))
        return
    oned.update_template(kind, ident, plan.text, plan.append)  # type: ignore[attr-defined]
    print(f"{where}: {plan.reason} (takes effect on the next deploy; no oned restart needed)")


def _print_lines(lines: List[str]) -> None:
    for line in lines:
        print(line)


def _report_file(change: conf_patch.Change, args: argparse.Namespace, runner: Optional[object]) -> None:
    print(f"{change.path}: {change.reason}")
    if args.dry_run:
        _print_lines(filediff.unified(change.path, change.before, change.after))
        if change.changed and args.restart_oned:
            print(f"would then run: {' '.join(RESTART_ONED)}")
    if not change.changed or args.dry_run:
        return
    if change.reason == "written":
        print(f"backup of the original: {change.backup}")
    if args.restart_oned:
        from ..node.runner import Runner
        (runner or Runner(120.0)).run(RESTART_ONED, timeout=120.0)  # type: ignore[attr-defined]
        print(f"ran: {' '.join(RESTART_ONED)}")
    else:
        print(f"left to do: restart oned so it re-reads the file ({' '.join(RESTART_ONED)}), "
              "or re-run with --restart-oned")


def status(args: argparse.Namespace, config: Config) -> int:
    """What the config file and the remotes say."""
    conf = args.conf or config.cpu.conf
    state = conf_patch.state_of(conf_patch.read_text(conf), conf)
    print(f"{conf}: CPU_MODEL {state.cpu_model or '(unset)'}; EMULATOR {state.emulator or '(unset)'}")
    mode = "native" if state.native else ""
    if state.emulator and state.emulator.endswith("/" + wrapper_mod.WRAPPER_NAME):
        mode = (mode + "+wrapper") if mode else "wrapper"
    print(f"switch in the file: {mode or 'off'}"
          + ("; backup " + conf_patch.backup_path(conf) if _exists(conf_patch.backup_path(conf)) else ""))
    settings = wrapper_mod.installed_settings(args.remotes)
    if settings is None:
        print(f"wrapper: not installed under {args.remotes}")
    else:
        print(f"wrapper: {wrapper_mod.wrapper_path(args.remotes)} (QEMU={':'.join(settings.qemu)}, "
              f"CPU={settings.cpu})")
    return EXIT_OK


def _mode_in_file(conf: str) -> str:
    """'wrapper' when the driver defaults file points EMULATOR at the wrapper, else 'native'."""
    emulator = conf_patch.state_of(conf_patch.read_text(conf), conf).emulator or ""
    return "wrapper" if emulator.endswith("/" + wrapper_mod.WRAPPER_NAME) else "native"


def _exists(path: str) -> bool:
    return os.path.exists(path)


def verify(args: argparse.Namespace, config: Config, make_oned: Callable[[], object]) -> int:
    """Run the node checks; exit 1 if any problem."""
    from ..node.runner import Node
    hosts: List[str] = list(args.hosts)
    if not hosts:
        hosts = [h.name for h in make_oned().host_pool()]  # type: ignore[attr-defined]
    if not hosts:
        raise UsageError("no hosts to verify")
    mode = args.mode or _mode_in_file(config.cpu.conf)
    node = Node.from_config(config)
    problems = 0
    for host in hosts:
        for finding in verify_mod.verify_host(node, host, args.node_remotes, mode):
            print(finding.line())
            problems += finding.level == verify_mod.PROBLEM
    return EXIT_FAILED if problems else EXIT_OK


def check_migration(args: argparse.Namespace, make_oned: Callable[[], object]) -> int:
    """Report each cluster; exit 1 if any is unsafe."""
    reports = migration.check(make_oned().host_pool(), args.cluster)  # type: ignore[attr-defined]
    if not reports:
        raise UsageError("no hosts" + (f" in cluster {args.cluster}" if args.cluster is not None else ""))
    for report in reports:
        print("\n".join(report.lines()))
    return EXIT_OK if all(r.safe for r in reports) else EXIT_FAILED
