"""``one-hooks-install``: put one-hooks in place on a front-end, register its hooks, check it, undo it.

``main`` (the installer and its steps), ``check`` (``--check``) and
``hook_templates`` (our hooks' templates, as oned stores them).
``python -m one_hooks.install`` runs it (``__main__``).

May import: everything below it (the engine, the doors, the ground) and the
command line's error boundary (``cli.run_guarded``); never ``sim/``.

This file imports nothing.
"""
