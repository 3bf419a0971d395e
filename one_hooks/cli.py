"""``one-hooks``: the command line, and the one error boundary of the package.

Each subcommand lives in its own module, which defines::

    def add_arguments(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace, config: Config) -> int

The module is imported only when its subcommand runs, so a hook process pays
for what it uses and nothing else (no CPU tooling on the hook path; pyone only
once a command asks oned).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import __version__
from .errors import EXIT_USAGE, OneHooksError

CONFIG_HELP = "configuration file to read (before or after the subcommand)"

#: subcommand -> (module, one-line help). Order is the order of ``--help``.
COMMANDS: Dict[str, Tuple[str, str]] = {
    "simulate": ("one_hooks.sim.demo", "run a simulated cloud through a power outage and let the hooks heal it"),
    "hook": ("one_hooks.hooks.entry",
             "entry points oned's hook manager runs (host-reconnect, vm-unknown, vm-poweroff, host-error)"),
    "recover": ("one_hooks.commands.recover", "find VMs an outage left down, check storage, resume them in order"),
    "evacuate": ("one_hooks.commands.evacuate",
                 "fence a dead host, disable it, restart its VMs on shared storage on other hosts"),
    "status": ("one_hooks.commands.status",
               "our hooks, each host's last recovery, the VMs still down and why, what needs the operator"),
    "iscsi": ("one_hooks.commands.iscsi", "check one host's iSCSI sessions the way the recovery gate does"),
    "cpu": ("one_hooks.commands.cpu", "switch KVM guests to the host CPU, verify it, check live-migration safety"),
    "config": ("one_hooks.commands.config", "show the configuration reference, the defaults, or check a file"),
}

EPILOG = """\
exit codes: 0 done (or nothing to do), 1 something could not be done (re-running may help),
2 bad input or configuration (nothing was changed).
configuration: --config, else $ONE_HOOKS_CONFIG, else /etc/one/one-hooks.conf (optional).
"""


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser; only the module of subcommand ``only`` is imported (and given its options)."""
    parser = argparse.ArgumentParser(
        prog="one-hooks",
        description="Self-healing for OpenNebula KVM clouds: outage recovery hooks and host-CPU tooling.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    parser.add_argument("--dry-run", dest="global_dry_run", action="store_true",
                        help="the subcommand's --dry-run (recover, cpu enable, cpu disable), given first")
    parser.add_argument("--version", action="version", version=f"one-hooks {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        if only == name:
            importlib.import_module(module_name).add_arguments(sub_parser)
        _take_global_options(sub_parser)
    return parser


def _take_global_options(parser: argparse.ArgumentParser) -> None:
    """Let ``parser`` and the subcommands under it take ``--config`` too (after the subcommand's name).

    Its default is SUPPRESS, so that a ``--config`` given before the
    subcommand is kept when none follows it.
    """
    parser.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=CONFIG_HELP)
    for action in parser._actions:  # argparse keeps its subparsers only here
        choices = action.choices if isinstance(action.choices, dict) else {}
        for nested in choices.values():
            if isinstance(nested, argparse.ArgumentParser):
                _take_global_options(nested)


def _command_in(argv: Sequence[str]) -> Optional[str]:
    """The subcommand named in argv, found without importing anything."""
    skip = False
    for word in argv:
        if skip:
            skip = False
            continue
        if word == "--config":
            skip = True
            continue
        if word.startswith("-"):
            continue
        return word if word in COMMANDS else None
    return None


def main(argv: Optional[Sequence[str]] = None, preset: Optional[Dict[str, Any]] = None) -> int:
    """Run ``one-hooks``; return the exit code.

    ``preset`` sets values of the parsed arguments from inside the process
    (the hooks' first look hands over the payload it already read from stdin).
    """
    args_list: List[str] = list(sys.argv[1:] if argv is None else argv)
    command = _command_in(args_list)
    parser = build_parser(only=command)
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse already printed its one-line usage error
        return int(exc.code or 0) and EXIT_USAGE
    for name, value in (preset or {}).items():
        setattr(args, name, value)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    if args.global_dry_run:
        if not hasattr(args, "dry_run"):
            where = " ".join([args.command] + [str(getattr(args, f"{args.command}_command", "") or "")]).strip()
            print(f"one-hooks: error: --dry-run: 'one-hooks {where}' has no dry run", file=sys.stderr)
            return EXIT_USAGE
        args.dry_run = True
    return run_guarded(lambda: _dispatch(args), "one-hooks")


def _dispatch(args: argparse.Namespace) -> int:
    from . import config as config_mod

    config = config_mod.load(args.config)
    module = importlib.import_module(COMMANDS[args.command][0])
    result: int = module.run(args, config)
    return result


def run_guarded(body: Callable[[], int], program: str) -> int:
    """Run an entry point's body; turn our own errors into one line and an exit code.

    Unexpected exceptions are bugs and keep their traceback. Ctrl-C exits 130
    without a traceback.
    """
    try:
        return body()
    except OneHooksError as exc:
        # One line per problem (a configuration file may hold several, ConfigError.joined).
        for line in str(exc).splitlines() or [""]:
            print(f"{program}: error: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{program}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout closed early (e.g. piped into head): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
