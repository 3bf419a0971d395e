"""The fence door: power a failed host off, and make sure it is off.

An evacuation restarts a dead host's VMs elsewhere on the same disks. If the
host were only cut off (a switch, a cable) and still running them, each VM
would run twice on one disk: corruption. So nothing moves before the host is
fenced: ``[evacuate] fence`` (e.g. ``ipmitool ... chassis power off``) has run
and succeeded, and ``[evacuate] fence_check`` (e.g. ``... chassis power
status``) prints something matching ``[evacuate] fence_off_pattern``.

Both commands are argv prefixes from the configuration, split like a shell
into words, with ``{host}`` replaced by the host's NAME as one argv element
(or part of one, e.g. ``{host}-bmc``); they run locally through
:class:`~one_hooks.node.runner.Runner`, never through a shell, each with a
timeout. A host NAME comes from oned: it may not start with ``-`` (a fence
program would read it as an option).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, List, Optional

from ..config import node_prefix
from ..errors import FenceFailed, NodeError
from .runner import ANY_CODE, Runner, first_line

if TYPE_CHECKING:  # pragma: no cover
    from ..config import EvacuateSection

#: Seconds between two looks of fence_check while the host is not yet off.
CHECK_INTERVAL = 5.0


@dataclass(frozen=True)
class Fenced:
    """A confirmed fence: what the check said, and how many looks it took."""

    host: str
    evidence: str
    looks: int


class Fence:
    """Runs ``[evacuate] fence`` and ``fence_check`` for a host."""

    def __init__(self, runner: Runner, fence: str, check: str, off_pattern: str,
                 timeout: float = 60.0, confirm_timeout: float = 120.0, interval: float = CHECK_INTERVAL,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.runner = runner
        self.fence = fence
        self.check = check
        self.off = re.compile(off_pattern, re.IGNORECASE)
        self.timeout = timeout
        self.confirm_timeout = confirm_timeout
        self.interval = interval
        self.clock = clock
        self.sleep = sleep

    @classmethod
    def from_section(cls, section: "EvacuateSection", runner: Optional[Runner] = None,
                     clock: Callable[[], float] = time.monotonic,
                     sleep: Callable[[float], None] = time.sleep) -> "Fence":
        """The fence of ``[evacuate]``."""
        return cls(runner or Runner(section.fence_timeout), section.fence, section.fence_check,
                   section.fence_off_pattern, section.fence_timeout, section.confirm_timeout,
                   clock=clock, sleep=sleep)

    @property
    def configured(self) -> bool:
        """Both commands are set (else nothing may be evacuated)."""
        return bool(self.fence.strip()) and bool(self.check.strip())

    def argv(self, template: str, host: str) -> List[str]:
        """The argv of ``template`` for ``host`` (checked, not run)."""
        if not host or host.startswith("-") or any(c in host for c in "\n\0"):
            raise FenceFailed(f"refusing host name {host!r}: empty, starts with '-' or holds a newline", host)
        return node_prefix(template, host)

    def power_off(self, host: str) -> Fenced:
        """Fence ``host`` and wait until ``fence_check`` says it is off; FenceFailed otherwise."""
        if not self.configured:
            raise FenceFailed("no fence configured ([evacuate] fence and fence_check): its VMs are not "
                              "moved; power it off, set both keys, then 'one-hooks evacuate "
                              f"{host}'", host)
        try:
            self.runner.run(self.argv(self.fence, host), timeout=self.timeout, host=host)
        except NodeError as exc:
            raise FenceFailed(f"fence failed ({_words(exc)}): its VMs are not moved; power it off by hand, "
                              f"make sure it is off, then 'one-hooks evacuate {host}'", host) from None
        return self.confirm_off(host)

    def confirm_off(self, host: str) -> Fenced:
        """Ask ``fence_check`` until its output matches the off pattern, within ``confirm_timeout``."""
        deadline = self.clock() + self.confirm_timeout
        looks = 0
        said = ""
        while True:
            looks += 1
            try:
                result = self.runner.run(self.argv(self.check, host), timeout=self.timeout, ok_codes=ANY_CODE,
                                         host=host)
                said = first_line(result.stdout) or first_line(result.stderr) or f"exit {result.returncode}"
                if result.returncode == 0 and self.off.search(result.stdout):
                    return Fenced(host, said, looks)
            except NodeError as exc:
                said = _words(exc)
            if self.clock() + self.interval > deadline:
                raise FenceFailed(f"power-off not confirmed after {looks} look(s) of fence_check (last: "
                                  f"{said!r}): its VMs are not moved; make sure it is off, then "
                                  f"'one-hooks evacuate {host}'", host)
            self.sleep(self.interval)


def _words(exc: NodeError) -> str:
    """The error's text without the host prefix NodeError adds."""
    text = str(exc)
    return text.split(": ", 1)[1] if exc.host and text.startswith(exc.host + ": ") else text
