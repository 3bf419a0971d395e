"""The recovery engine: which VMs an outage left down, in what order, and bringing them back.

Owns ``policy`` (candidates, exclusions, priority tiers: pure rules, each with
a reason a person can read), ``engine`` (carries out a plan through the
doors: host locks, re-checks, the storage gate, bounded concurrency, retries,
waits), ``ledger`` (host locks and resume attempts under ``[recovery]
state_dir``), ``claims`` (host-reconnect's claim on a host it watches) and
``report`` (what a run decided and did); for a host that does not come
back (issue 12): ``evacuation`` (which of its VMs may be restarted elsewhere,
on which host, why: pure), ``migration`` (what became of a move, from oned's
evidence: pure) and ``evacuator`` (fence, disable, move in tiers, carry).

May import: the doors (``oned/``, ``node/``) and the ground; ``cpu/`` is
beside it in the same layer. Never the entry points.

Must stay cheap: ``claims`` is loaded by the VM hooks' first look (stdlib
only, no ``typing``), so this file imports nothing.
"""
