"""The ``one-hooks`` subcommands an operator runs.

``recover``, ``status``, ``evacuate``, ``iscsi``, ``cpu``, ``config``.

Each module defines ``add_arguments(parser)`` and ``run(args, config) -> int``
(see :mod:`one_hooks.cli`, which loads it by name only when its subcommand
runs) and turns arguments into calls of the engine and the doors, and their
results into lines or JSON.

May import: everything below it (the engine, the doors, the ground) and the
other entry points (``install/``: ``cpu`` installs the wrapper as the
installer does); never ``sim/``.

This file imports nothing: ``one-hooks --help`` and each subcommand load only
their own module.
"""
