"""``one-hooks-install --uninstall``: remove exactly what the manifest says was installed, and our hooks."""
from __future__ import annotations

import functools
import os
from typing import Dict

from .. import fsio
from . import hook_templates as ht
from .context import Context
from .cpu_switch import cpu_revert
from .files import sha256
from .manifest import Manifest
from .register import delete_hook


def uninstall(ctx: Context) -> int:
    """Remove the hooks with our names, revert the CPU switch, remove installed files.

    Hooks go first, so none fires a shim that is already gone; the manifest
    goes last, so an uninstall that fails half-way can be re-run.
    """
    layout, steps = ctx.layout, ctx.steps
    manifest = Manifest.read(layout.fs(layout.manifest))
    if manifest is None:
        steps.note(f"no manifest at {layout.manifest}: removing our hooks only")
        manifest = Manifest()
    oned = ctx.oned()
    for action in ht.plan_uninstall(oned.hook_pool()).actions:
        steps.do(action.describe(), functools.partial(delete_hook, oned, action))
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
    return 0


def _remove_config(ctx: Context, record: Dict[str, str]) -> None:
    path = record.get("path", "")
    target = ctx.layout.fs(path)
    if not path or not os.path.exists(target):
        return
    if sha256(fsio.read_bytes(target)) != record.get("sha256"):
        ctx.steps.note(f"{path}: kept (edited since installation)")
        return
    ctx.steps.do(f"remove {path} (the untouched default)", lambda: fsio.remove(target))

