"""The door to oned: its XML-RPC API, its XML, and the objects parsed from them.

Owns ``client`` (:class:`~one_hooks.oned.client.Oned`: every call to oned's API
outside the VM hooks' first look, oned's errors mapped to
:mod:`one_hooks.errors`), ``rpc`` (the call itself, through pyone: the only
module of the package that imports pyone or requests), ``wire`` (the first
look's XML-RPC with the stdlib, and the answer decoder both paths share),
``xmltree`` (the expat element tree), ``xmlparse`` (hook payloads and oned's answers -> ``model``,
with a safe lxml parser), ``model`` (hosts, VMs, hooks and their states, parsed
and frozen), ``payload`` (the hook payload as oned sends it), ``authfile`` (the
credentials) and ``template`` (OpenNebula's template syntax, read and edited
losslessly).

May import: the ground (the top-level modules); ``node/``, the other door, is
beside it in the same layer. Never the engine or the entry points.

Must stay cheap: ``payload``, ``xmltree``, ``wire`` and ``authfile`` are loaded
by the VM hooks' first look, which may load only the stdlib and a few small
modules (no lxml, no ``typing``). So this file imports nothing, and those four
import only each other, ``errors`` and the stdlib.
"""
