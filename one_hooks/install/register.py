"""Step 4 of ``one-hooks-install``: our hooks in oned, by NAME (the templates: ``hook_templates``).

Missing -> allocate, differing -> update with the full template, matching ->
left alone; hooks with other names are never touched.
"""
from __future__ import annotations

import functools
from typing import Any

from . import hook_templates as ht
from .context import Context
from .manifest import Manifest


def register_hooks(ctx: Context, manifest: Manifest) -> None:
    """Step 4: our hooks in oned, by NAME (host-error only with evacuation on); foreign hooks are left alone."""
    oned = ctx.oned()
    plan = ht.plan_install(oned.hook_pool(), ctx.config)
    for warning in plan.warnings:
        ctx.reporter.warning(f"warning: {warning}")
    for action in plan.actions:
        spec = action.spec
        if action.kind == "keep":
            ctx.steps.note(action.describe())
            manifest.hooks[spec.name] = action.hook_id
        elif action.kind == "allocate":
            new_id = ctx.steps.do(action.describe(), functools.partial(_allocate_hook, ctx, oned, spec))
            if new_id is not None:
                manifest.hooks[spec.name] = int(new_id)
        elif action.kind == "update":
            ctx.steps.do(action.describe(), functools.partial(_update_hook, ctx, oned, action))
            manifest.hooks[spec.name] = action.hook_id
        else:
            ctx.steps.do(action.describe(), functools.partial(delete_hook, oned, action))
    manifest.save(ctx, "the hook IDs")


def _allocate_hook(ctx: Context, oned: Any, spec: ht.HookSpec) -> Any:
    """Step action: register one of our hooks; its new ID."""
    return oned.hook_allocate(ht.allocate_text(spec, ctx.config))


def _update_hook(ctx: Context, oned: Any, action: ht.HookAction) -> Any:
    """Step action: replace a registered hook's template with ours."""
    return oned.hook_update(action.hook_id, ht.update_text(action.spec, ctx.config))


def delete_hook(oned: Any, action: ht.HookAction) -> Any:
    """Step action: remove a hook with one of our names."""
    return oned.hook_delete(action.hook_id)

