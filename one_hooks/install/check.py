"""``one-hooks-install --check``: verify an installation and name every problem.

Checks, each reported as one ``ok:`` or ``problem:`` line: the configuration,
the installed files (content, mode, owner), that the shims' interpreter runs
this version of one_hooks, the CPU switch, oned (reachable, our hooks present
and matching the templates, OpenNebula's autostart hooks warned about), and on
every MONITORED node its copy of the remotes (sha256 over ``[node] command``)
and the sudoers rule the iSCSI gate needs.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence

from .. import __version__, configpath, fsio
from ..audit import Reporter
from ..errors import NodeUnreachable, OneHooksError
from . import hook_templates as ht
from .context import ONEADMIN, Context, oneadmin_ids, unroot
from .cpu_switch import wrapper_node_path
from .files import FileSpec, sha256, shim_config, shim_python, shipped_remotes, wanted_files
from .manifest import Manifest


class Findings:
    """``--check`` results: ok lines and problems, each one line."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.problems: List[str] = []

    def ok(self, text: str) -> None:
        """Something verified."""
        self.reporter.line(f"ok: {text}")

    def problem(self, text: str) -> None:
        """Something wrong: named, with why."""
        self.problems.append(text)
        self.reporter.error(f"problem: {text}")

    def warn(self, text: str) -> None:
        """Something to look at that does not break the installation."""
        self.reporter.warning(f"warning: {text}")


def check(ctx: Context, config_problem: str = "") -> int:
    """Verify an installation; exit 1 naming every problem, 0 if there is none."""
    found = Findings(ctx.reporter)
    layout = ctx.layout
    for line in config_problem.splitlines():
        found.problem(f"configuration: {line}")
    if not config_problem:
        found.ok(f"configuration {unroot(layout, ctx.config.path) or '(defaults)'} is valid")
    log_file = ctx.config.log.file
    if log_file != "-" and not os.path.isdir(layout.fs(os.path.dirname(log_file))):
        # Every command falls back to stderr quietly (audit.setup): this is where it is said.
        found.warn(f"[log] file {log_file}: {os.path.dirname(log_file)} does not exist: one-hooks logs to "
                   "stderr instead (a hook's lines stay in onehook show); create it, owned by oneadmin, "
                   "or set [log] file")
    manifest = Manifest.read(layout.fs(layout.manifest))
    if manifest is None:
        found.problem(f"not installed: no manifest at {layout.manifest}")
    specs = wanted_files(layout, shipped_remotes(), ctx.python, ctx.config, ctx.hooks_config)
    _check_files(ctx, found, specs)
    if manifest and manifest.cpu:
        _check_cpu(ctx, found, manifest.cpu)
    hosts = _check_oned(ctx, found)
    if hosts:
        _check_nodes(ctx, found, specs, hosts)
    if found.problems:
        ctx.reporter.line(f"check: {len(found.problems)} problem(s)")
        return 1
    ctx.reporter.line("check: the installation is complete and consistent")
    return 0


def _check_files(ctx: Context, found: Findings, specs: Sequence[FileSpec]) -> None:
    owner = oneadmin_ids()
    pythons = set()
    for spec in specs:
        target = ctx.layout.fs(spec.path)
        if not os.path.isfile(target):
            found.problem(f"{spec.path}: missing")
            continue
        meta = fsio.FileMeta.of(target)
        data = fsio.read_bytes(target)
        wrong = []
        have_config, want_config = shim_config(data), shim_config(spec.data)
        if have_config != want_config and want_config is not None:
            wrong.append(f"reads {have_config or configpath.DEFAULT_PATH + ' (the default)'}, "
                         f"not {want_config or configpath.DEFAULT_PATH}")
        elif data != spec.data:
            wrong.append("content differs from this version's")
        if meta.mode != spec.mode:
            wrong.append(f"mode {meta.mode:04o}, want {spec.mode:04o}")
        if owner and (meta.uid, meta.gid) != owner:
            wrong.append(f"owner {meta.uid}:{meta.gid}, want {ONEADMIN}")
        if wrong:
            found.problem(f"{spec.path}: " + "; ".join(wrong))
        else:
            found.ok(f"{spec.path}")
        interpreter = shim_python(data) if os.sep + ht.SHIM_DIR + os.sep in spec.path else None
        if interpreter:
            pythons.add(interpreter)
    for python in sorted(pythons):
        _check_python(ctx, found, python)


def _check_python(ctx: Context, found: Findings, python: str) -> None:
    """The shims' interpreter must run and import this version of one_hooks."""
    from ..node.runner import first_line

    try:
        result = ctx.runner.run([python, "-m", "one_hooks", "--version"], timeout=60.0, ok_codes=range(256))
    except OneHooksError as exc:
        found.problem(f"shims cannot run: {exc}")
        return
    if result.returncode != 0:
        why = first_line(result.stderr) or first_line(result.stdout) or f"exit {result.returncode}"
        found.problem(f"shims cannot run: {python} -m one_hooks: {why}")
    elif __version__ not in result.stdout + result.stderr:
        found.problem(f"shims run {python}, which has another one_hooks: "
                      f"{first_line(result.stdout + result.stderr)} (want {__version__})")
    else:
        found.ok(f"shims run {python} with one_hooks {__version__}")


def _check_cpu(ctx: Context, found: Findings, record: Dict[str, Any]) -> None:
    """The CPU switch the installation made is still in the driver config."""
    from ..cpu import conf_patch

    conf_real = str(record.get("conf") or ctx.config.cpu.conf)
    try:
        text = fsio.read_bytes(ctx.layout.fs(conf_real)).decode("utf-8")
        state = conf_patch.state_of(text, conf_real)
    except (OSError, UnicodeDecodeError, OneHooksError) as exc:
        found.problem(f"CPU switch: cannot read {conf_real}: {exc}")
        return
    mode = record.get("mode")
    if mode == "native" and not state.native:
        found.problem(f"CPU switch: {conf_real} has no CPU_MODEL host-passthrough any more "
                      f"(CPU_MODEL is {state.cpu_model!r})")
    elif mode == "wrapper" and not state.wrapper(wrapper_node_path(ctx)):
        found.problem(f"CPU switch: {conf_real} EMULATOR is {state.emulator!r}, "
                      f"want {wrapper_node_path(ctx)}")
    else:
        found.ok(f"CPU switch ({mode}) in place in {conf_real}")


def _check_oned(ctx: Context, found: Findings) -> List[Any]:
    """oned reachable, our hooks registered and matching; returns the hosts to check."""
    try:
        oned = ctx.oned()
        version = oned.version()
    except OneHooksError as exc:
        found.problem(f"oned at {ctx.config.oned.endpoint} not reachable: {exc}")
        return []
    found.ok(f"oned {version} at {ctx.config.oned.endpoint}")
    try:
        pool = oned.hook_pool()
        hosts = oned.host_pool()
    except OneHooksError as exc:
        found.problem(f"cannot read hooks and hosts: {exc}")
        return []
    problems = ht.check_problems(pool, ctx.config)
    for text in problems:
        found.problem(text)
    if not problems:
        found.ok("hooks " + ", ".join(h.name for h in ht.wanted(ctx.config)) + " registered and matching")
    evacuate = ctx.config.evacuate
    if evacuate.enabled and not (evacuate.fence.strip() and evacuate.fence_check.strip()):
        found.problem("[evacuate] enabled = yes but fence or fence_check is empty: fencing is mandatory, "
                      "no failed host would ever be evacuated")
    for warning in ht.autostart_warnings(pool):
        found.warn(warning)
    return list(hosts)


def _check_nodes(ctx: Context, found: Findings, specs: Sequence[FileSpec], hosts: Sequence[Any]) -> None:
    """Each monitored node: its copy of the remotes matches ours, sudo allows iscsiadm."""
    from ..oned.model import HostState
    from ..node.runner import Node

    node = Node.from_config(ctx.config, ctx.runner)
    remote = {os.path.join(ctx.layout.node_remotes, os.path.relpath(s.path, ctx.layout.remotes)): s
              for s in specs}
    for host in hosts:
        if host.state != HostState.MONITORED:
            found.warn(f"host {host.name} is {host.state.name}: its copy of the remotes was not checked")
            continue
        try:
            result = node.run(host.name, ["sha256sum", "--", *sorted(remote)], ok_codes=(0, 1))
        except NodeUnreachable as exc:
            found.problem(f"host {host.name}: cannot check its remotes: {exc}")
            continue
        except OneHooksError as exc:
            found.problem(f"host {host.name}: cannot check its remotes: {exc}")
        else:
            sums = {}
            for line in result.stdout.splitlines():
                digest, _, path = line.partition("  ")
                sums[path.strip()] = digest.strip()
            stale = [p for p, s in sorted(remote.items()) if sums.get(p) != sha256(s.data)]
            if stale:
                found.problem(f"host {host.name}: out of sync ({', '.join(stale)} missing or different): "
                              f"run 'onehost sync --force' as oneadmin")
            else:
                found.ok(f"host {host.name}: remotes in sync")
        _check_sudo(ctx, found, node, host.name)


def sudo_list_argv(iscsiadm: Sequence[str], mode: str, *more: str) -> Optional[List[str]]:
    """``sudo -n -l <iscsiadm> -m MODE [MORE...]``: asks sudo whether the gate's command is allowed.

    None when ``[iscsi] iscsiadm`` does not go through sudo.
    """
    words = list(iscsiadm)
    if not words or os.path.basename(words[0]) != "sudo":
        return None
    options: List[str] = []
    rest = words[1:]
    while rest and rest[0].startswith("-"):
        word = rest.pop(0)
        if word in ("-u", "-g", "-U", "-h", "-p", "-C") and rest:
            options += [word, rest.pop(0)]
        elif word not in ("-n", "-l"):
            options.append(word)
    return [words[0], "-n", *options, "-l", *rest, "-m", mode, *more]


def _check_sudo(ctx: Context, found: Findings, node: Any, host: str) -> None:
    if not ctx.config.iscsi.check:
        return
    # Exactly the gate's commands (gate.Gate._look): sudoers rules match arguments too.
    asked = [("session", "-P", "3")] + ([("node",)] if ctx.config.iscsi.require_node_records else [])
    for mode, *more in asked:
        argv = sudo_list_argv(ctx.config.iscsiadm_argv(), mode, *more)
        if argv is None:
            return
        try:
            node.run(host, argv)
        except OneHooksError as exc:
            command = argv[argv.index("-l") + 1:]
            base = command[:len(command) - len(more)]
            found.problem(f"host {host}: sudo does not allow '{' '.join(base)}' without a password "
                          f"(the gate runs '{' '.join(command)}'): {exc}")
            return
    found.ok(f"host {host}: sudo allows iscsiadm")
