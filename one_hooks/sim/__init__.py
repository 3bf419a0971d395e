"""A simulated oned 6.10.5 for the demo, the tests and the benchmarks.

A real XML-RPC server on loopback with oned's wire format and XML, its state
machine for outages (DESIGN.md §1) and an onehem-like hook runner. Start with
:class:`one_hooks.sim.oned.SimOned`; ``server`` has the latency models
(``NO_LATENCY``, ``Latency``), ``faults`` the error codes oned answers with,
``demo`` the ``one-hooks simulate`` run, ``node_standin/`` a node's iscsiadm,
multipath and sudo replaying real captured outputs.

A tool, at the level of the entry points: it may import anything of the
package (the demo runs the installer's shims and the engine), and nothing
outside ``sim/`` imports it (tests and benchmarks do; the command line names
``sim.demo`` as its ``simulate`` subcommand, loaded only when that runs).

This file imports nothing: each user imports the module it needs.
"""
