"""``iscsiadm -m session`` (the flat listing), parsed: for the tests only.

The gate never reads this listing: it prints no session state, so it cannot
prove a session healthy (the gate asks for ``-m session -P 3``). The tests
keep a parser for it to show exactly that on real captured output, and to
fuzz it beside the package's parsers. It reads portals with the package's
own grammar (``_PORTAL``), so both read addresses alike.
"""
from __future__ import annotations

import re
from typing import List

from one_hooks.errors import NodeError
from one_hooks.node.iscsi import _PORTAL, Session

_FLAT_SESSION = re.compile(r"^(\S+): \[(\d+)\] " + _PORTAL + r" (\S+)(?: \((?:non-)?flash\))?$")


def parse_session_flat(text: str) -> List[Session]:
    """Parse ``iscsiadm -m session`` (no states: use it to list, not to judge).

    Raw format (``"%s: [%u] %s:%d,%d %s (%s)"``; "(non-flash)" since 2.0.876)::

        tcp: [1] 192.168.121.250:3260,1 iqn.2010-10.org.openstack:volume- (non-flash)
    """
    sessions = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        match = _FLAT_SESSION.match(line)
        if not match:
            raise NodeError(f"iscsiadm -m session: line {number} not understood: {line[:80]!r}")
        sessions.append(Session(target=match.group(6), portal=f"{match.group(3)}:{match.group(4)}",
                                sid=int(match.group(2)), tpgt=int(match.group(5)),
                                transport=match.group(1)))
    return sessions
