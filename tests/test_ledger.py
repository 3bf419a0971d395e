"""The ledger: host watch claims, recovery records and carry claims (only a live process counts)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from one_hooks.oned.model import HistoryAction, LcmState, VmState
from one_hooks.recovery import claims
from one_hooks.recovery.evidence import Snapshot
from one_hooks.config import RecoverySection
from one_hooks.recovery.ledger import Attempts, Ledger, episode_seconds


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


# --- recovery records and carry claims (issue 9) -------------------------------------


def _snapshot(called: float = 1000.0) -> Snapshot:
    return Snapshot(VmState.ACTIVE, LcmState.UNKNOWN, 0, 3, HistoryAction.NONE, 0, 990, "", called)


def test_a_record_counts_calls_and_applied_attempts_apart(tmp_path) -> None:
    now = [1000.0]
    ledger = Ledger(str(tmp_path), episode=100.0, wall=lambda: now[0])
    assert ledger.get(4) == Attempts(4)
    ledger.sent(4, "host-reconnect[10]", _snapshot())
    ledger.sent(4, "host-reconnect[10]", _snapshot(1001.0))  # sent again: no sign of it running
    record = ledger.applied(4)
    assert (record.sent, record.applied, record.before, record.final) == (2, 1, _snapshot(1001.0), "")
    assert Ledger(str(tmp_path), episode=100.0, wall=lambda: now[0]).get(4) == record  # another process
    ended = ledger.finish(4, "gave up")
    assert ended.final == "gave up" and ledger.get(4).final == "gave up"
    now[0] += 101  # a later outage starts from zero
    assert ledger.get(4) == Attempts(4)
    ledger.sent(4, "x", _snapshot())
    ledger.clear(4)
    assert ledger.get(4) == Attempts(4)


def test_the_episode_outlasts_the_longest_carry_and_host_records_share_it(tmp_path) -> None:
    section = RecoverySection(state_dir=str(tmp_path), settle_seconds=240.0, retry_delay=10.0, attempts=3,
                              wait_running=300.0)
    # settle window + a retry delay + 3 waits for RUNNING + the delays between them (10 s, 20 s)
    assert episode_seconds(section) == 240.0 + 10.0 + 3 * 300.0 + 10.0 + 20.0
    ledger = Ledger.from_section(section)
    try:
        assert ledger.episode == episode_seconds(section)
    finally:
        ledger.close()


@pytest.mark.parametrize("text", ['{"sent": 1}', "not json", '{"sent": 1, "applied": 0, "first": 1, '
                                  '"last": 1e12, "before": {"state": "x"}}'])
def test_a_damaged_record_starts_over(tmp_path, text: str) -> None:
    ledger = Ledger(str(tmp_path), wall=lambda: 1000.0)
    ledger.sent(5, "x", _snapshot())
    (tmp_path / "attempts" / "vm-5.json").write_text(text)
    assert ledger.get(5) == Attempts(5)


def test_a_carrier_in_this_process_counts_while_its_engine_runs(tmp_path) -> None:
    first = Ledger(str(tmp_path), wall=lambda: 1000.0)
    second = Ledger(str(tmp_path), wall=lambda: 1000.0)
    first.carry(6, "vm-unknown", until=2000.0)
    carrier = second.carrier_of(6)
    assert carrier is not None and (carrier.pid, carrier.who, carrier.token) == (os.getpid(), "vm-unknown",
                                                                                   first.token)
    first.close()  # its engine is done: the claim no longer counts
    assert second.carrier_of(6) is None
    second.carry(6, "recover", until=1000.0)  # its time is over
    assert second.carrier_of(6) is None
    second.carry(6, "recover", until=1500.0)
    second.release(6)
    assert second.carrier_of(6) is None


def test_a_carrier_elsewhere_counts_only_while_that_very_process_lives(tmp_path) -> None:
    ledger = Ledger(str(tmp_path), wall=lambda: 1000.0)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        start = claims.start_time(proc.pid)
        assert start is not None
        path = tmp_path / "carry" / "vm-7.claim"
        path.parent.mkdir()
        path.write_bytes(claims.encode_carry(proc.pid, start, "tok", 2000.0, "host-reconnect"))
        found = ledger.carrier_of(7)
        assert found is not None and found.pid == proc.pid and found.who == "host-reconnect"
        # The same PID with another start time is a recycled PID: not the carrier.
        path.write_bytes(claims.encode_carry(proc.pid, start + 1, "tok", 2000.0, "host-reconnect"))
        assert ledger.carrier_of(7) is None
        path.write_bytes(claims.encode_carry(proc.pid, start, "tok", 2000.0, "host-reconnect"))
    finally:
        proc.kill()
        proc.wait()
    assert ledger.carrier_of(7) is None  # it died
    for text in ("", "1 2 3", f"{proc.pid} x tok 2000 who", "-1 1 t 2000 who"):
        path.write_text(text)
        assert ledger.carrier_of(7) is None


def test_carry_claim_words_are_checked() -> None:
    with pytest.raises(ValueError):
        claims.encode_carry(1, 2, "a token", 3.0, "who")
    with pytest.raises(ValueError):
        claims.encode_carry(1, 2, "t", 3.0, "")
