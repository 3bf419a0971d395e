"""A node door that counts the ssh sessions it opens: what the gate's shared verdict saves."""
from __future__ import annotations

from typing import Container, Dict, Sequence

from one_hooks.node.runner import Node, Result, Runner


class CountingNode(Node):
    """A :class:`Node` that counts, per host, the commands it starts (one ssh session each)."""

    def __init__(self, runner: Runner, command: str, timeout: float) -> None:
        super().__init__(runner, command, timeout)
        #: ssh sessions (commands) started per host
        self.sessions_opened: Dict[str, int] = {}

    def run(self, host: str, argv: Sequence[str], ok_codes: Container[int] = (0,)) -> Result:
        """As :meth:`Node.run`, counting the session once the host and words pass its checks."""
        self.argv(host, argv)  # a refused host name or word raises here: no session was opened
        self.sessions_opened[host] = self.sessions_opened.get(host, 0) + 1
        return super().run(host, argv, ok_codes)
