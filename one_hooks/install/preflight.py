"""Before the first write of ``one-hooks-install``: ask everything that can make the installation fail.

An installation that fails half-way leaves files without hooks (or hooks
without files): so every condition known to stop it is checked first, and
each problem is one line. Nothing here writes, not even in a real run:

* oned: the credentials can be read, oned answers, accepts them, is a
  version one-hooks supports (6.x, 7.x), and lets this user list hooks (the
  registration step reads that list, then allocates or updates);
* the directories the run writes into (the remotes, ``[recovery] state_dir``,
  the configuration file's directory when it writes the default file, the
  driver config's for ``--cpu-host``) exist and are writable, or can be
  created (their nearest existing parent is a writable directory);
* ``--cpu-host``: the driver config can be read and parsed, and the switch
  changes nothing but EMULATOR/CPU_MODEL (``conf_patch.enable`` as a dry run).
"""
from __future__ import annotations

import os
from typing import List, Optional, Tuple

from .. import configpath
from ..errors import OnedAuthError, OnedError, OneHooksError
from .context import Context, unroot

#: OpenNebula majors one-hooks supports (hook API, states, XML as in DESIGN.md).
SUPPORTED_MAJORS = (6, 7)


def preflight(ctx: Context) -> List[str]:
    """Every problem that would stop the installation, one line each (empty: go ahead)."""
    problems = _oned(ctx)
    layout = ctx.layout
    wanted: List[Tuple[str, str]] = [(layout.remotes, "the remotes directory"),
                                     (layout.state_dir, "[recovery] state_dir")]
    if ctx.config_written:
        wanted.append((os.path.dirname(configpath.DEFAULT_PATH), "the configuration's directory"))
    if ctx.args.cpu_host:
        wanted.append((os.path.dirname(ctx.config.cpu.conf), "[cpu] conf's directory"))
    seen = set()
    for path, what in wanted:
        if path in seen:
            continue
        seen.add(path)
        why = _not_writable(ctx, path)
        if why:
            problems.append(f"{path}: {why} ({what})")
    if ctx.args.cpu_host:
        problems += _cpu(ctx)
    return problems


def _oned(ctx: Context) -> List[str]:
    """oned reachable, credentials accepted, version supported, hooks readable."""
    endpoint = ctx.config.oned.endpoint
    try:
        oned = ctx.oned()
    except OneHooksError as exc:  # the auth file cannot be read, the endpoint is no URL
        return [f"oned: {exc}"]
    try:
        version = oned.version()
    except OnedAuthError as exc:
        return [refused(ctx, exc)]
    except OnedError as exc:
        return [f"oned at {endpoint} cannot be reached: {exc.message}"]
    major = _major(version)
    if major is not None and major not in SUPPORTED_MAJORS:
        return [f"oned {version} at {endpoint}: one-hooks needs OpenNebula "
                + " or ".join(f"{m}.x" for m in SUPPORTED_MAJORS)]
    try:
        oned.hook_pool()
    except OnedAuthError as exc:
        return [f"oned at {endpoint} does not let this user list hooks ({exc.message}): "
                "one-hooks-install needs an oneadmin-group user"]
    except OnedError as exc:
        return [f"oned at {endpoint} cannot list hooks: {exc.message}"]
    return []


def refused(ctx: Context, exc: OnedError) -> str:
    """The line for credentials oned refuses (naming where they were read, never what they are)."""
    return (f"oned at {ctx.config.oned.endpoint} refused the credentials in {ctx.config.oned.auth_file} "
            f"({exc.message}): set [oned] auth_file or $ONE_AUTH")


def _major(version: str) -> Optional[int]:
    head = version.strip().split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _not_writable(ctx: Context, path: str) -> str:
    """Why this run could not write into directory ``path`` (installed-system view); '' if it can."""
    target = ctx.layout.fs(path)
    probe = target
    while not os.path.lexists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        return f"cannot be created: {unroot(ctx.layout, probe)} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        verb = "is not writable" if probe == target else \
            f"cannot be created: {unroot(ctx.layout, probe)} is not writable"
        return f"{verb} by this user (uid {os.getuid()})"
    return ""


def _cpu(ctx: Context) -> List[str]:
    """``--cpu-host``: the switch can be made (file readable, parseable, only our attributes change)."""
    from ..cpu import conf_patch
    from .cpu_switch import wrapper_node_path

    conf_real = ctx.config.cpu.conf
    try:
        conf_patch.enable(ctx.layout.fs(conf_real), ctx.args.cpu_host, wrapper_node_path(ctx), dry_run=True)
    except OneHooksError as exc:
        return [f"--cpu-host: {conf_real}: {exc}"]
    return []
