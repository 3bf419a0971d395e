"""Host CPU for KVM guests: the driver-config switch, the emulator wrapper, verification, migration safety.

Owns ``conf_patch`` (switches ``vmm_exec_kvm.conf`` to ``CPU_MODEL`` host-passthrough
or to the wrapper as ``EMULATOR``, losslessly, with a backup to revert to),
``wrapper`` (the shipped ``one-hooks-qemu`` as files to install: where it
goes, its settings), ``scope`` (the same switch for one cluster, host or VM
template through oned), ``verify`` (what a node really gives its guests) and
``migration`` (which hosts a VM on host CPU can live-migrate between).

May import: the doors (``oned/`` for templates and the model, ``node/`` for
commands on nodes) and the ground; ``recovery/`` is beside it in the same
layer. Never the entry points (``commands/cpu.py`` is the ``one-hooks cpu``
command line, ``install/`` switches the CPU through ``conf_patch``).

Nothing here is loaded on the hook path: the recovery hooks do not need it.
"""
