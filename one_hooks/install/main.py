"""``one-hooks-install``: put one-hooks in place, register its hooks, check it, undo it.

Run once on the front-end, as oneadmin or root. In order (each step's module
in brackets; this one parses the arguments, builds the run's context and
keeps the order):

1. write a default ``/etc/one/one-hooks.conf`` if there is none (never
   overwrite) [``files``];
2. copy the shipped remotes (the hook shims, the CPU wrapper) under ``REMOTES``,
   each file atomically (``fsio``), executable, owned by oneadmin when run as
   root; the shims learn which interpreter has ``one_hooks`` installed [``files``];
3. record what was installed in a manifest under ``[recovery] state_dir``
   [``manifest``];
4. register the three state hooks through the API, and host-error with ``[evacuate] enabled = yes``
   (``hook_templates``):
   missing -> allocate, differing -> update with the full template, matching
   -> left alone, foreign hooks never touched [``register``];
5. optionally switch KVM guests to the host CPU (``--cpu-host``) [``cpu_switch``];
6. say what is left (``onehost sync -f``, an oned restart), or do it (``--sync``)
   [here].

Files come before hooks, so a registered hook never points at a missing shim;
every write is atomic, so a failure half-way leaves old or new files, never a
partial one, and re-running finishes the job. ``--dry-run`` prints the same
steps and changes nothing. ``--check`` names every problem [``check``];
``--uninstall`` removes what the manifest says was installed and the hooks
with our names [``uninstall``].
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .. import config as config_mod
from .. import configpath, fsio
from ..audit import Reporter
from ..cli import run_guarded
from ..config import Config
from ..errors import ConfigError, InstallError, UsageError
from .context import (DEFAULT_NODE_REMOTES, DEFAULT_REMOTES, ONEADMIN, Context, Layout, Steps, oneadmin_ids,
                      unroot)
from .cpu_switch import cpu_switch
from .files import ensure_dir, install_config, install_files
from .manifest import Manifest
from .preflight import preflight
from .register import register_hooks
from .uninstall import uninstall

PROGRAM = "one-hooks-install"


# --- install -----------------------------------------------------------------------


def install(ctx: Context) -> int:
    """The whole installation; re-running it changes nothing that is already right.

    Nothing is written before the preflight has found no problem.
    """
    layout = ctx.layout
    problems = preflight(ctx)
    if problems:
        for problem in problems:
            ctx.reporter.error(f"problem: {problem}")
        raise InstallError("preflight", f"{len(problems)} problem(s) found before any change; "
                                        f"nothing was written")
    if layout.root and not os.path.isdir(layout.root):
        ctx.steps.do(f"create the --root directory {layout.root}", lambda: fsio.make_dirs(layout.root))
    manifest = Manifest.read(layout.fs(layout.manifest)) or Manifest()
    install_config(ctx, manifest)
    if not os.path.isdir(layout.fs(layout.state_dir)):
        ensure_dir(ctx, manifest, layout.state_dir, oneadmin_ids())
    changed = install_files(ctx, manifest)
    register_hooks(ctx, manifest)
    conf_changed = cpu_switch(ctx, manifest) if ctx.args.cpu_host else False
    return finish(ctx, changed, conf_changed)


def finish(ctx: Context, changed: Sequence[str], conf_changed: bool) -> int:
    """Step 6: tell the operator what is left, or do it with ``--sync``."""
    todo: List[Tuple[str, List[str], str]] = []  # why, argv, who must run it
    if changed:
        todo.append(("copy the remotes to every node", ["onehost", "sync", "--force"], ONEADMIN))
    if conf_changed:
        todo.append(("restart oned so it re-reads vmm_exec_kvm.conf",
                     ["systemctl", "restart", "opennebula"], "root"))
    verb = "would change" if ctx.steps.dry_run else "changed"
    ctx.reporter.line(f"done: {ctx.steps.changed} step(s) {verb}" if ctx.steps.changed
                      else "done: nothing to change, the installation is complete")
    for why, argv, who in todo:
        if ctx.args.sync and not ctx.steps.dry_run:
            ctx.steps.do(f"{why}: {' '.join(argv)}", functools.partial(_run_command, ctx, _as(who, argv)))
        else:
            ctx.reporter.line(f"left to do: {why}: run '{' '.join(argv)}' as {who}"
                              + ("" if ctx.steps.dry_run else " (or re-run with --sync)"))
    for line in ctx.extra_lines:
        ctx.reporter.line(line)
    return 0


def _as(who: str, argv: List[str]) -> List[str]:
    """``argv`` run as ``who``: root switches to oneadmin for onehost, which refuses to run as root."""
    if who == ONEADMIN and os.getuid() == 0 and oneadmin_ids() is not None:
        return ["runuser", "-u", ONEADMIN, "--", *argv]
    return argv


def _run_command(ctx: Context, argv: List[str]) -> Any:
    """Step action: one of the commands left to do (``--sync``)."""
    return ctx.runner.run(argv, timeout=600.0)


# --- entry point ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``one-hooks-install``."""
    parser.add_argument("--remotes", metavar="DIR", default=DEFAULT_REMOTES,
                        help=f"oned's remotes directory (default {DEFAULT_REMOTES})")
    parser.add_argument("--root", metavar="DIR", default="",
                        help="put every filesystem path under DIR (packaging, tests)")
    parser.add_argument("--config", metavar="PATH",
                        help="configuration file (default: $ONE_HOOKS_CONFIG, else "
                             f"{configpath.DEFAULT_PATH}, written with the defaults if absent)")
    parser.add_argument("--cpu-host", nargs="?", const="native", choices=("native", "wrapper"),
                        help="also switch KVM guests to the host CPU (default mode: native)")
    parser.add_argument("--python", metavar="PATH", default=sys.executable,
                        help="interpreter the shims run (default: this one)")
    parser.add_argument("--node-remotes", metavar="DIR", default=DEFAULT_NODE_REMOTES,
                        help=f"where nodes keep their copy of the remotes (default {DEFAULT_NODE_REMOTES})")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="verify an installation, name every problem")
    mode.add_argument("--uninstall", action="store_true", help="remove what was installed, and our hooks")
    parser.add_argument("--dry-run", action="store_true", help="print every step, change nothing")
    parser.add_argument("--sync", action="store_true",
                        help="finish by running 'onehost sync --force' (and restarting oned if needed)")


def _default_oned(config: Config) -> Any:
    from ..audit import stderr_notice
    from ..oned.client import Oned

    return Oned.from_config(config.oned, on_retry=stderr_notice(PROGRAM))


def load_config(args: argparse.Namespace, root: str,
                environ: Optional[Dict[str, str]] = None) -> Tuple[Config, bool]:
    """The configuration, and whether the default file is missing (install writes it)."""
    env = dict(os.environ if environ is None else environ)
    if args.config or env.get(configpath.ENV_PATH):
        return config_mod.load(args.config, env), False
    real = configpath.DEFAULT_PATH
    path = os.path.join(root, real.lstrip("/")) if root else real
    if os.path.exists(path):
        return config_mod.load(path, env), False
    if args.check:
        raise ConfigError("missing: one-hooks-install writes it", real)
    # Not there yet: install() writes it as its first step; read the defaults it will hold.
    return dataclasses.replace(defaults(env), path=path), True


def defaults(env: Dict[str, str]) -> Config:
    """The configuration the default file gives, resolved in ``env`` (oned endpoint, auth)."""
    with tempfile.NamedTemporaryFile(suffix=".conf") as tmp:
        tmp.write(config_mod.default_file_text().encode())
        tmp.flush()
        return config_mod.load(tmp.name, env)


def run(args: argparse.Namespace, *, reporter: Optional[Reporter] = None,
        oned_factory: Optional[Callable[[Config], Any]] = None, runner: Any = None,
        environ: Optional[Dict[str, str]] = None) -> int:
    """Carry out what the options ask. Doors (oned, subprocesses) may be passed in."""
    from ..node.runner import Runner

    reporter = reporter or Reporter()
    if args.dry_run and args.check:
        raise UsageError("--dry-run and --check do not go together (--check changes nothing)")
    if args.sync and (args.check or args.uninstall):
        raise UsageError("--sync goes with an installation, not with --check or --uninstall")
    root = os.path.abspath(args.root) if args.root else ""
    if root and not os.path.isdir(root):
        _creatable_root(args.root, root)
    steps = Steps(reporter, args.dry_run)
    config_problem = ""
    written = False
    try:
        config, written = load_config(args, root, environ)
    except ConfigError as exc:
        if not args.check:
            raise
        config_problem = str(exc)
        config = defaults(dict(os.environ if environ is None else environ))
    layout = Layout(root, os.path.abspath(args.remotes), config.recovery.state_dir,
                    os.path.abspath(args.node_remotes))
    _log_to(layout.fs(config.log.file), reporter)
    ctx = Context(args, config, layout, reporter, steps, oned_factory or _default_oned,
                  runner or Runner(), args.python, written, hooks_config=hooks_config(args, layout, environ))
    if args.check:
        from .check import check  # the --check code lives in its own module

        return check(ctx, config_problem)
    if args.uninstall:
        return uninstall(ctx)
    return install(ctx)


def _creatable_root(given: str, root: str) -> None:
    """A missing ``--root`` is created by the installation; UsageError if it cannot be."""
    probe = root
    while not os.path.lexists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise UsageError(f"--root {given}: cannot be created: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"--root {given}: cannot be created: {probe} is not writable by this user")


def hooks_config(args: argparse.Namespace, layout: Layout, environ: Optional[Dict[str, str]] = None) -> str:
    """The configuration file the installed shims give the hooks: the one this run was told to use.

    ``--config``, else ``$ONE_HOOKS_CONFIG``, as the installed system sees it
    (absolute, without ``--root``); '' when neither is given (the hooks then
    read the default file, as this run does).
    """
    env = os.environ if environ is None else environ
    chosen = args.config or env.get(configpath.ENV_PATH, "")
    return unroot(layout, os.path.abspath(chosen)) if chosen else ""


def _log_to(path: str, reporter: Reporter) -> None:
    """Keep the installer's lines in the one-hooks log when its directory exists."""
    import logging

    from .. import audit

    if path != "-" and os.path.isdir(os.path.dirname(path)) and os.access(os.path.dirname(path), os.W_OK):
        reporter.logger = audit.setup(dataclasses.replace(config_mod.LogSection(), file=path), PROGRAM)
    else:
        # No log directory (a fresh --root, a front-end without /var/log/one): stdout only.
        quiet = logging.getLogger(f"{audit.LOGGER_NAME}.install")
        quiet.handlers = [logging.NullHandler()]
        quiet.propagate = False
        reporter.logger = quiet


def build_parser() -> argparse.ArgumentParser:
    """The ``one-hooks-install`` parser."""
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Install one-hooks on an OpenNebula front-end: copy the hook shims and the CPU "
                    "wrapper under the remotes directory, register the state hooks, and check "
                    "or undo that.",
        epilog="exit codes: 0 done, 1 a step failed or --check found problems (each named), "
               "2 bad arguments or configuration (nothing changed).")
    add_arguments(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console script ``one-hooks-install``."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return int(exc.code or 0) and 2
    return run_guarded(lambda: run(args), PROGRAM)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
