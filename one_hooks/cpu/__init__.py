"""Host CPU for KVM guests: the config switch, the emulator wrapper, verification, migration safety.

Nothing here is imported on the hook path (``one_hooks.hooks``): the recovery
hooks do not need it.
"""
