"""The hook entry points oned's hook manager runs, and the VM hooks' cheap first look.

Owns ``entry`` (``one-hooks hook EVENT``: host-reconnect, vm-unknown,
vm-poweroff, host-error; payload -> engine -> one line per decision and an
exit code), ``host_error`` (the evacuation hook and its grace watcher),
``triage`` (``python -m one_hooks.hooks.triage``, the VM hooks' first look:
settles the common outage events with the stdlib and hands the rest to the
full hook) and ``settings_cache`` (the resolved settings the first look
reads instead of the configuration file).

May import: everything below it (the engine, the doors, the ground) and the
other entry points (``cli``); never ``sim/``.

Must stay cheap: a settled VM event loads only ``triage`` and what it
imports (``settings_cache``, ``recovery.claims``, ``oned.payload``,
``oned.xmltree``, ``errors``, ``logline``, ``configpath``; ``oned.wire`` and
``oned.authfile`` when it asks oned). No lxml, configobj, logging,
dataclasses or typing (tests/test_triage.py checks it). So this file imports
nothing.
"""
