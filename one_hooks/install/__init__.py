"""``one-hooks-install``: put one-hooks in place on a front-end, register its hooks, check it, undo it.

One module per step it runs (see ``main``'s docstring for the order):
``main`` (the arguments, the configuration it works with, the order of the
steps, what is left to do), ``context`` (paths, the step runner, the doors),
``files`` (the default configuration, the shims and the wrapper under
``REMOTES``), ``manifest`` (what was installed), ``register`` (our hooks in
oned), ``hook_templates`` (those hooks' templates, as oned stores them),
``cpu_switch`` (``--cpu-host``), ``uninstall`` and ``check`` (``--check``).
``python -m one_hooks.install`` runs it (``__main__``).

May import: everything below it (the engine, the doors, the ground) and the
command line's error boundary (``cli.run_guarded``); never ``sim/``.

This file imports nothing (the ``one-hooks cpu`` command and the simulator
use ``context`` and ``files`` without loading the rest).
"""
