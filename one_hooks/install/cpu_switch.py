"""Step 5 of ``one-hooks-install`` (``--cpu-host``): switch KVM guests to the host CPU, and undo it.

The switch goes through :func:`one_hooks.cpu.conf_patch.enable`, as ``one-hooks
cpu enable`` does: one switch, one set of checks.
"""
from __future__ import annotations

import functools
import os

from ..cpu import wrapper as wrapper_mod
from ..errors import InstallError, OneHooksError
from .context import Context
from .manifest import Manifest


def cpu_setting(ctx: Context, mode: str) -> str:
    """What ``--cpu-host=MODE`` sets in ``vmm_exec_kvm.conf``, said in one line."""
    if mode == "native":
        return "CPU_MODEL = [ MODEL = \"host-passthrough\" ]"
    return f"EMULATOR = {wrapper_node_path(ctx)}"


def wrapper_node_path(ctx: Context) -> str:
    """The wrapper as nodes see it: their copy of the remotes (``onehost sync``)."""
    return wrapper_mod.node_emulator(ctx.layout.node_remotes)


def cpu_switch(ctx: Context, manifest: Manifest) -> bool:
    """Step 5: the host-CPU switch in ``[cpu] conf``. True if oned must re-read that file."""
    from ..cpu import conf_patch

    mode = ctx.args.cpu_host
    conf_real = ctx.config.cpu.conf
    conf = ctx.layout.fs(conf_real)
    what = cpu_setting(ctx, mode)
    # conf_patch.enable, as 'one-hooks cpu enable' uses it: one switch, one set of checks.
    switch = functools.partial(conf_patch.enable, conf, mode, wrapper_node_path(ctx))
    try:
        preview = switch(dry_run=True)
    except OneHooksError as exc:
        raise InstallError(f"switch KVM guests to the host CPU in {conf_real}", str(exc)) from None
    manifest.cpu = {"mode": mode, "conf": conf_real}
    if not preview.changed:
        ctx.steps.note(f"{conf_real}: {what} already in place")
    else:
        ctx.steps.write(f"set {what} in {conf_real} (backup {conf_patch.backup_path(conf_real)})",
                        switch, conf_real, preview.before, preview.after)
    manifest.save(ctx, "the CPU switch")
    if mode == "native":
        ctx.extra_lines.append("note: running VMs get the host CPU after poweroff + resume "
                               "(the domain XML is regenerated on deploy)")
    return bool(preview.changed)


def cpu_revert(ctx: Context, manifest: Manifest) -> None:
    """Undo the CPU switch recorded in the manifest (the file comes back from its backup)."""
    from ..cpu import conf_patch

    conf_real = str(manifest.cpu.get("conf") or ctx.config.cpu.conf)
    conf = ctx.layout.fs(conf_real)
    if not os.path.exists(conf_patch.backup_path(conf)):
        ctx.steps.note(f"{conf_real}: no one-hooks backup, nothing to revert")
        return
    try:
        preview = conf_patch.revert(conf, dry_run=True)
    except OneHooksError as exc:
        raise InstallError(f"revert the CPU switch in {conf_real}", str(exc)) from None
    ctx.steps.write(f"revert the CPU switch in {conf_real} (then restart oned)",
                    lambda: conf_patch.revert(conf), conf_real, preview.before, preview.after)

