"""``one-hooks simulate``: the demo and the benchmark, run as a user runs them."""
from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _simulate(tmp_path, *args: str) -> subprocess.CompletedProcess:
    # TMPDIR inside tmp_path: whatever the demo leaves behind would show up there.
    env = dict(os.environ, TMPDIR=str(tmp_path), PYTHONPATH=ROOT, ONE_HOOKS_CONFIG="")
    return subprocess.run([sys.executable, "-m", "one_hooks", "simulate", *args], capture_output=True,
                          text=True, env=env, timeout=600, cwd=str(tmp_path))


def test_demo_heals_the_cloud(tmp_path) -> None:
    result = _simulate(tmp_path, "--fast")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "== power outage" in out and "== power back" in out and "== final state ==" in out
    assert "20 of 20 VMs as expected" in out
    assert "UNEXPECTED" not in out
    # The story's special cases, each visible in the final table or the hook records.
    assert "opted out (ONE_HOOKS_RECOVER=NO)" in out
    assert "onevm unlock" in out
    assert "iSCSI gate BROKEN" in out
    # the demo ends with what one-hooks status tells the operator: the locked VM, the broken host
    status = out.split("== one-hooks status (exit 1: what an operator sees now) ==\n", 1)[1]
    assert "needs the operator" in status and "onevm unlock" in status
    assert "its last iSCSI gate said BROKEN" in status
    assert "one-hooks-host-reconnect" in out and "one-hooks-vm-poweroff" in out
    assert os.listdir(tmp_path) == []  # the work directory was removed
    # ... and is not named as if it stayed; every column of the final table has a header
    assert str(tmp_path) not in out and "work directory /" not in out
    assert "(--keep keeps its work directory)" in out
    table = out.split("== final state ==\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert table[0].split() == ["VM", "NAME", "HOST", "BEFORE", "AFTER", "RESUMES", "DECISION", "REASON", "CHECK"]
    assert all(row.rstrip().endswith((" ok", " UNEXPECTED")) for row in table[1:])


def test_demo_other_sizes_and_keep(tmp_path) -> None:
    result = _simulate(tmp_path, "--fast", "--hosts", "3", "--vms", "9", "--keep")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "9 of 9 VMs as expected" in result.stdout
    kept = [line.split(": ", 1)[1] for line in result.stdout.splitlines() if line.startswith("work directory kept: ")]
    assert len(kept) == 1 and os.path.isfile(os.path.join(kept[0], "one-hooks.log"))
    assert [os.path.join(str(tmp_path), name) for name in os.listdir(tmp_path)] == kept


def test_demo_bad_sizes_exit_2(tmp_path) -> None:
    for args in (["--vms", "3"], ["--hosts", "0"], ["--vms", "many"]):
        result = _simulate(tmp_path, *args)
        assert result.returncode == 2, args
        assert "error:" in result.stderr.strip().splitlines()[-1]
        assert "Traceback" not in result.stderr


def test_bench_small(tmp_path) -> None:
    result = _simulate(tmp_path, "--bench", "--hosts", "2", "--vms", "20")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "hook CPU per VM event:" in out
    assert "serial loop" in out and "engine" in out and "speed-up:" in out
    assert "NOT all RUNNING" not in out
