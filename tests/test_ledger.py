"""The ledger's host watch claims: only a live process within its time counts."""
from __future__ import annotations

import os
import subprocess

from one_hooks.ledger import Ledger


def test_a_live_claim_is_seen(tmp_path) -> None:
    now = [1000.0]
    ledger = Ledger(str(tmp_path), wall=lambda: now[0])
    assert ledger.watcher_of(3) is None
    ledger.claim_watch(3, until=1100.0)
    watch = ledger.watcher_of(3)
    assert watch is not None and watch.pid == os.getpid() and watch.until == 1100.0
    now[0] = 1100.0  # the window is over
    assert ledger.watcher_of(3) is None


def test_a_dead_watcher_counts_as_none(tmp_path) -> None:
    ledger = Ledger(str(tmp_path), wall=lambda: 0.0)
    gone = subprocess.Popen(["true"])
    gone.wait()
    ledger.claim_watch_for(5, gone.pid, until=1e12)
    assert ledger.watcher_of(5) is None


def test_a_damaged_claim_counts_as_none(tmp_path) -> None:
    ledger = Ledger(str(tmp_path), wall=lambda: 0.0)
    ledger.claim_watch(7, until=1e12)
    (tmp_path / "watch" / "host-7.json").write_text("{not json")
    assert ledger.watcher_of(7) is None
