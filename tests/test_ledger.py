"""The ledger's host watch claims: only a live process within its time counts."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from one_hooks.recovery.ledger import Ledger


def _one_hooks_process() -> "subprocess.Popen[bytes]":
    """A live process whose command line names one_hooks, as a watcher's does."""
    return subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(30)", "one_hooks"])


def test_a_live_claim_is_seen(tmp_path) -> None:
    now = [1000.0]
    ledger = Ledger(str(tmp_path), wall=lambda: now[0])
    assert ledger.watcher_of(3) is None
    proc = _one_hooks_process()
    try:
        ledger.claim_watch_for(3, proc.pid, until=1100.0)
        watch = ledger.watcher_of(3)
        assert watch is not None and watch.pid == proc.pid and watch.until == 1100.0
    finally:
        proc.kill()
        proc.wait()
    ledger.claim_watch_for(3, os.getpid(), until=1100.0)  # pytest: not a one_hooks process
    assert ledger.watcher_of(3) is None  # a recycled PID running something else
    proc = _one_hooks_process()
    try:
        ledger.claim_watch_for(3, proc.pid, until=1100.0)
        now[0] = 1100.0  # the window is over
        assert ledger.watcher_of(3) is None
    finally:
        proc.kill()
        proc.wait()


def test_a_dead_watcher_counts_as_none(tmp_path) -> None:
    ledger = Ledger(str(tmp_path), wall=lambda: 0.0)
    gone = subprocess.Popen(["true"])
    gone.wait()
    ledger.claim_watch_for(5, gone.pid, until=1e12)
    assert ledger.watcher_of(5) is None


def test_a_damaged_claim_counts_as_none(tmp_path) -> None:
    ledger = Ledger(str(tmp_path), wall=lambda: 0.0)
    ledger.claim_watch_for(7, os.getpid(), until=1e12)
    (tmp_path / "watch" / "host-7.claim").write_text("{not a claim")
    assert ledger.watcher_of(7) is None


@pytest.mark.parametrize("text", ["{pid} nan", "{pid} inf", "{pid} 1e400", "{pid} 1e12 14", "",
                                  "x 1e12", "1.5 1e12", "{pid}"])
def test_a_claim_with_a_bad_pid_or_time_counts_as_none(tmp_path, text: str) -> None:
    ledger = Ledger(str(tmp_path), wall=lambda: 0.0)
    proc = _one_hooks_process()
    try:
        ledger.claim_watch_for(8, proc.pid, until=1e12)
        assert ledger.watcher_of(8) is not None
        (tmp_path / "watch" / "host-8.claim").write_text(text.format(pid=proc.pid))
        assert ledger.watcher_of(8) is None
    finally:
        proc.kill()
        proc.wait()
