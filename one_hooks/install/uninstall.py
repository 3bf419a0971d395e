"""``one-hooks-install --uninstall``: remove exactly what the manifest says was installed, and our hooks."""
from __future__ import annotations

import functools
import os
from typing import Dict, Optional

from .. import fsio
from ..errors import InstallError, OnedAuthError, OnedError
from . import hook_templates as ht
from .context import Context
from .cpu_switch import cpu_revert
from .files import sha256
from .manifest import Manifest
from .preflight import refused
from .register import delete_hook


def uninstall(ctx: Context) -> int:
    """Remove the hooks with our names, revert the CPU switch, remove installed files.

    Hooks go first, so none fires a shim that is already gone; the manifest
    goes last, so an uninstall that fails half-way can be re-run.

    oned unreachable: oned fires no hook while it is down, so what is local
    goes anyway; the manifest then keeps the hooks left in oned, which are
    named with the command that removes each, and the run exits 1. oned
    refusing the credentials is another matter: it is up and would fire
    hooks whose shims are gone, so nothing is removed.
    """
    layout, steps = ctx.layout, ctx.steps
    manifest = Manifest.read(layout.fs(layout.manifest))
    if manifest is None:
        steps.note(f"no manifest at {layout.manifest}: removing our hooks only")
        manifest = Manifest()
    down = _delete_hooks(ctx)
    if manifest.cpu:
        cpu_revert(ctx, manifest)
    removed = 0
    for path, digest in sorted(manifest.files.items()):
        target = layout.fs(path)
        if not os.path.lexists(target):
            steps.note(f"{path}: already gone")
            continue
        if not os.path.isfile(target) or os.path.islink(target):
            ctx.reporter.warning(f"warning: {path} is not a regular file any more: left alone")
            continue
        removed += 1
        if sha256(fsio.read_bytes(target)) != digest:
            ctx.reporter.warning(f"warning: {path} was changed after installation; removing it anyway")
        steps.do(f"remove {path}", functools.partial(fsio.remove, target))
    if manifest.config:
        _remove_config(ctx, manifest.config)
    if down is not None and manifest.hooks:
        # The hooks left in oned stay on record, so that a re-run knows them.
        left = Manifest(dirs=list(manifest.dirs), hooks=dict(manifest.hooks))
        if left.render() != fsio.read_bytes(layout.fs(layout.manifest)):
            steps.do(f"keep only the hooks left in oned in {layout.manifest}",
                     lambda: left.write(layout.fs(layout.manifest)))
    elif os.path.exists(layout.fs(layout.manifest)):
        steps.do(f"remove {layout.manifest}", lambda: fsio.remove(layout.fs(layout.manifest)))
    for directory in sorted(manifest.dirs, key=len, reverse=True):
        target = layout.fs(directory)
        if not os.path.isdir(target):
            continue
        if os.listdir(target):
            steps.note(f"{directory}: kept (holds files one-hooks did not install, or runtime state)")
            continue
        steps.do(f"remove directory {directory}", functools.partial(os.rmdir, target))
    ctx.reporter.line(f"done: {steps.changed} step(s) {'would change' if steps.dry_run else 'changed'}")
    if removed:
        ctx.reporter.line("left to do: run 'onehost sync --force' as oneadmin so nodes drop the removed files")
    if down is None:
        return 0
    for name, hook_id in sorted(manifest.hooks.items(), key=lambda item: item[1]):
        ctx.reporter.warning(f"left to do: hook {name} (ID {hook_id}) is still registered: run "
                             f"'onehook delete {hook_id}' as oneadmin")
    if not manifest.hooks:
        ctx.reporter.warning("left to do: hooks named " + ", ".join(ht.NAMES) + " may still be registered: "
                             "'onehook list' shows them")
    ctx.reporter.warning("left to do: ... or re-run 'one-hooks-install --uninstall' once oned answers "
                         "(it removes our hooks by name)")
    raise InstallError("uninstall", f"{down}: the local files are removed, our hooks are left in oned "
                                    "(see 'left to do')")


def _delete_hooks(ctx: Context) -> Optional[str]:
    """Delete the hooks with our names; the reason oned could not be asked (None: it was).

    oned refusing the credentials stops the uninstall before anything is removed.
    """
    try:
        oned = ctx.oned()
        pool = oned.hook_pool()
    except OnedAuthError as exc:
        raise InstallError("uninstall", f"{refused(ctx, exc)}; nothing was removed") from None
    except OnedError as exc:
        down = f"oned at {ctx.config.oned.endpoint} cannot be reached ({exc.message})"
        ctx.reporter.warning(f"warning: {down}: removing what is local, our hooks stay in oned")
        return down
    for action in ht.plan_uninstall(pool).actions:
        ctx.steps.do(action.describe(), functools.partial(delete_hook, oned, action))
    return None


def _remove_config(ctx: Context, record: Dict[str, str]) -> None:
    path = record.get("path", "")
    target = ctx.layout.fs(path)
    if not path or not os.path.exists(target):
        return
    if sha256(fsio.read_bytes(target)) != record.get("sha256"):
        ctx.steps.note(f"{path}: kept (edited since installation)")
        return
    ctx.steps.do(f"remove {path} (the untouched default)", lambda: fsio.remove(target))

