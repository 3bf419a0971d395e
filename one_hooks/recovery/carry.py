"""What to do next about a resumed VM, given the judgement of its evidence (pure).

The process that resumed a VM carries it to a final outcome: RUNNING, GAVE_UP
(``attempts`` spent) or TIMEOUT. :func:`next_step` turns a
:class:`~one_hooks.recovery.evidence.Judgement` and the VM's :class:`Progress`
into one :class:`Step` with a reason; the engine carries it out (re-reads,
re-decides with the policy, resumes) and keeps the ledger.

Bounds, so nothing loops for ever:

- an *applied* attempt (a deploy that failed, or a resume that ran and was
  bounced back by a late monitor report) counts against ``attempts``; a failed
  deploy is tried again after ``retry_delay`` seconds, doubling;
- a resume with no sign of being run is sent again once oned has run a
  resume the same process sent after it (oned's LCM queue is first in, first
  out: this one then ran and left no trace, so it was dropped), or after
  ``pickup_grace`` seconds (doubling each time), at most ``attempts`` more
  times per attempt: the LCM drops a duplicate as "wrong state", so a
  needless one is harmless, and it rescues a resume oned dropped;
- an attempt not RUNNING ``wait_running`` seconds after its first call is a
  TIMEOUT.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional, Tuple

from .evidence import Judgement, Verdict

__all__ = ["Step", "Progress", "Bounds", "next_step", "carry_seconds"]


class Step(str, enum.Enum):
    """The next thing to do about one VM."""

    WAIT = "wait"
    DONE = "done"            # RUNNING
    STOP = "stop"            # moved on: not ours to act on any more
    RESEND = "resend"        # the same attempt, sent again
    RETRY = "retry"          # a new attempt (after a failed deploy's delay, or a bounce)
    RETRY_LATER = "retry later"
    GIVE_UP = "give up"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class Bounds:
    """The limits of carrying one VM (seconds unless said otherwise)."""

    attempts: int = 3
    retry_delay: float = 10.0
    wait_running: float = 300.0
    pickup_grace: float = 20.0


@dataclass(frozen=True)
class Progress:
    """What the carrying process knows of one VM's recovery.

    ``applied``: attempts oned ran whose outcome was not RUNNING (failed
    deploys, bounces), as counted in the ledger. ``sends``: accepted calls of
    the current attempt. Times are the carrier's monotonic clock.
    """

    applied: int
    sends: int
    attempt_started: float
    last_sent: float
    retry_at: Optional[float] = None


def next_step(progress: Progress, judgement: Judgement, now: float, bounds: Bounds,
              overtaken: bool = False) -> Tuple[Step, str]:
    """The step to take now, and why.

    ``overtaken``: oned has run a resume sent after this VM's was accepted
    (seen in an earlier look), so this one is no longer in its queue.
    """
    verdict = judgement.verdict
    if verdict == Verdict.RUNNING:
        return Step.DONE, judgement.reason
    if verdict == Verdict.MOVED_ON:
        return Step.STOP, judgement.reason
    if progress.retry_at is not None:
        # A failed deploy's next attempt is due later; RUNNING or moving on still count above.
        if now >= progress.retry_at:
            return Step.RETRY, f"next attempt ({progress.applied + 1} of {bounds.attempts})"
        return Step.WAIT, "waiting to try again"
    if verdict in (Verdict.DEPLOY_FAILED, Verdict.BOUNCED):
        spent = progress.applied + 1
        if spent >= bounds.attempts:
            return Step.GIVE_UP, f"{judgement.reason} (attempt {spent} of {bounds.attempts}, none left)"
        if verdict == Verdict.BOUNCED:
            return Step.RETRY, f"{judgement.reason} (attempt {spent} of {bounds.attempts}); resuming again"
        delay = bounds.retry_delay * (2 ** (spent - 1))
        return Step.RETRY_LATER, (f"{judgement.reason} (attempt {spent} of {bounds.attempts}); "
                                  f"next attempt in {delay:g} s")
    elapsed = now - progress.attempt_started
    if verdict in (Verdict.DROPPED, Verdict.NOT_PICKED_UP) and progress.sends <= bounds.attempts:
        waited = now - progress.last_sent
        grace = bounds.pickup_grace * (2 ** (progress.sends - 1))
        if overtaken:
            return Step.RESEND, (f"{judgement.reason}, and oned has run a resume sent after it: "
                                 "dropped; sending the resume again")
        if waited >= grace:
            return Step.RESEND, f"{judgement.reason} {waited:.0f} s after the call; sending the resume again"
    if elapsed >= bounds.wait_running:
        return Step.TIMEOUT, f"not RUNNING {bounds.wait_running:g} s after the resume ({judgement.reason})"
    return Step.WAIT, judgement.reason


def carry_seconds(attempts: int, wait_running: float, retry_delay: float) -> float:
    """Upper bound of carrying one VM: ``attempts`` waits for RUNNING plus the retry delays between them."""
    return attempts * wait_running + retry_delay * (2 ** (attempts - 1) - 1)
