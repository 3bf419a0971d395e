"""Delayed work of the simulated oned (its LCM queue, deploys, shutdowns) on one thread.

oned answers an action at once and applies it later (its LCM queue, then the
driver's deploy): the caller sees the old state, then BOOT_UNKNOWN, then
RUNNING. The timeline runs those later halves in time order, one at a time
(same time: in the order they were scheduled), and lets tests wait until
nothing is pending instead of sleeping.

Its ``clock`` may be a test's fake one: the test then calls :meth:`Timeline.poke`
after moving it, and :meth:`Timeline.wait_due` to let everything due run.
"""
from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Callable, List, Tuple


class Timeline:
    """A single worker thread running callables at given delays."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._heap: List[Tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._running = 0
        self._stopped = False
        self.errors: List[BaseException] = []
        self._thread = threading.Thread(target=self._loop, name="sim-timeline", daemon=True)
        self._thread.start()

    def after(self, delay: float, work: Callable[[], None]) -> None:
        """Run ``work`` after ``delay`` seconds (0: as soon as the caller is done)."""
        with self._cond:
            heapq.heappush(self._heap, (self._clock() + max(delay, 0.0), next(self._order), work))
            self._cond.notify_all()

    def poke(self) -> None:
        """The clock moved (a fake clock): look at what is due again."""
        with self._cond:
            self._cond.notify_all()

    def wait_due(self, timeout: float) -> bool:
        """Block until nothing due by the clock's now is pending or running; False on timeout."""
        return wait_while(self._cond, lambda: bool(
            self._running or (self._heap and self._heap[0][0] <= self._clock())), timeout)

    def pending(self) -> int:
        """How many callables are waiting or running."""
        with self._cond:
            return len(self._heap) + self._running

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is pending; False if ``timeout`` passed first."""
        return wait_while(self._cond, lambda: bool(self._heap or self._running), timeout)

    def stop(self) -> None:
        """Drop what is pending and end the worker."""
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (
                        not self._heap or self._heap[0][0] > self._clock()):
                    # Capped: a fake clock moves without telling (poke() wakes us sooner).
                    wait = min(self._heap[0][0] - self._clock(), 0.5) if self._heap else None
                    self._cond.wait(wait)
                if self._stopped:
                    return
                _, _, work = heapq.heappop(self._heap)
                self._running += 1
            try:
                work()
            except Exception as error:  # kept for tests: a broken step must not stop the clock
                self.errors.append(error)
            finally:
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()


def wait_while(cond: threading.Condition, busy: Callable[[], bool], timeout: float) -> bool:
    """Wait on ``cond`` while ``busy()`` holds; False if ``timeout`` passed first."""
    deadline = time.monotonic() + timeout
    with cond:
        while busy():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            cond.wait(min(left, 0.05))
    return True
