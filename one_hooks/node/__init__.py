"""The door to subprocesses and hypervisor nodes, and what is read there.

Owns ``runner`` (:class:`~one_hooks.node.runner.Runner`: every subprocess the
package starts, as argv lists with timeouts and accepted exit codes;
:class:`~one_hooks.node.runner.Node`: commands on a node through
``[node] command``), ``iscsi`` (iscsiadm and multipath output -> sessions,
then a verdict: pure parsers and rules) and ``gate`` (the per-host storage
check the recovery waits on, its retries and its shared verdict) and
``fence`` (powering a failed host off through ``[evacuate] fence``, and
confirming it through ``fence_check``, before its VMs are moved).

May import: the ground (the top-level modules); ``oned/``, the other door, is
beside it in the same layer. Never the engine or the entry points.

This file imports nothing: the VM hooks' first look never loads this part,
and the full hook loads ``runner`` (and ``subprocess``) only when it acts.
"""
