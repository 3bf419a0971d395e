"""Smoke test: ``bench/run.py --quick --json`` runs and reports every key outside checks read.

No timing is asserted (the machine is shared and noisy); only that the
benchmark ran end to end, that its figures are the kind of number they claim
to be, and the facts that must hold at any speed: every VM came back, none
was resumed twice, the no-op hook sent no action.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REQUIRED = ("storm_vms", "storm_wall_s", "storm_speedup_vs_serial", "storm_ratio_to_bound",
            "hook_cpu_s_per_event", "hook_startup_cpu_s", "wrapper_overhead_ms", "host_reconnect_cpu_s_per_host",
            "status_wall_s_1000", "status_cpu_s_1000", "status_baseline_wall_s_1000", "status_baseline_cpu_s_1000")


def test_quick_json_run_prints_the_keys() -> None:
    pytest.importorskip("pyone", reason="baseline (a) runs the official binding")
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout[-2000:]  # progress goes to stderr, the object to stdout
    result = json.loads(lines[0])
    for key in REQUIRED:
        assert key in result, key
        assert isinstance(result[key], (int, float)) and result[key] > 0, (key, result[key])
    assert result["storm_vms"] == 200
    assert result["storm_not_running"] == 0
    assert result["storm_resumed_twice"] == []
    assert result["hook_startup_actions_sent"] == 0
    # 5 runs x (first look on a down host + the full hook): one one.host.info each;
    # the first look on a watched host asks oned nothing.
    assert result["hook_startup_host_info_calls"] == 10
    assert result["storm_hook_runs"] >= result["storm_vms"]  # one vm-unknown per VM at least
    # The bound's premise: oned's LCM ran two items per VM and one per VM reported gone, at least
    # (half the hosts report); a recovery that re-sends adds more, never fewer.
    assert result["storm_reported_gone_vms"] == result["storm_vms"] // 2
    assert result["storm_lcm_items"] >= 2 * result["storm_vms"] + result["storm_reported_gone_vms"]
    # A lower bound nothing can beat: a storm under it means the bound leaves out oned's work.
    assert result["storm_wall_s"] >= result["storm_lower_bound_s"]
    assert [row["vms"] for row in result["scale"]] == [100, 300]
    assert [row["hosts"] for row in result["scale_by_hosts"]] == [1, 3]
    assert result["machine"]["nproc"] >= 1 and result["machine"]["python"]
    # status reads the VM pool once per run, whatever the cloud's size
    assert [(row["vms"], row["pool_calls_per_run"]) for row in result["status"]] == [(1000, 1.0)]
