"""``one-hooks iscsi check HOST``: the verdict printed, exit 0 healthy, 1 not, 2 bad usage."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from one_hooks.cli import main

ROOT = Path(__file__).resolve().parent.parent
HEALTHY_IQN = "iqn.1992-04.com.emc:cx.apm00191923511.a4"


def config_file(tmp_path: Path, standin: Any, extra: str = "", oned: str = "") -> str:
    """A config whose [node] command reaches the stand-in; [iscsi] and [oned] as given."""
    path = tmp_path / "one-hooks.conf"
    path.write_text(
        f"[oned]\n{oned}"
        f"[node]\ncommand = '{standin.command}'\n"
        f"[iscsi]\ncheck_by_path = no\ncheck_multipath = no\n{extra}"
        f"[recovery]\nstate_dir = {tmp_path / 'state'}\n"
        f"[log]\nfile = {tmp_path / 'one-hooks.log'}\n")
    return str(path)


def test_healthy_host_exits_0_and_lists_its_target(local_node, tmp_path: Path, capsys: Any) -> None:  # type: ignore[no-untyped-def]
    local_node.set_scenario("* session-P3 session-P3-healthy\n* node node-healthy\n")
    code = main(["--config", config_file(tmp_path, local_node), "iscsi", "check", "node-1"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0] == "host node-1: iSCSI HEALTHY"
    assert out[1].startswith(f"  ok      {HEALTHY_IQN} at 10.1.53.160:3260: SID 1: LOGGED_IN")
    assert {c[0] for c in local_node.calls()} == {"node-1"}


def test_broken_host_exits_1_naming_each_problem(local_node, tmp_path: Path, capsys: Any) -> None:  # type: ignore[no-untyped-def]
    local_node.set_scenario("* session-P3 session-P1-failed\n* node node-openstack\n")
    code = main(["--config", config_file(tmp_path, local_node), "iscsi", "check", "node-2"])
    out = capsys.readouterr().out
    assert code == 1
    assert "host node-2: iSCSI BROKEN" in out
    assert "  problem target iqn.2010-10.org.openstack:volume at 192.168.121.250:3260: no session" in out
    assert "  problem session iqn.2000-01.example:tgt0 at 192.0.2.10:3260 (SID 3): session state FAILED" in out


def test_json_output_is_the_verdict(local_node, tmp_path: Path, capsys: Any) -> None:  # type: ignore[no-untyped-def]
    local_node.set_scenario("* sudo sudo-refused\n")
    code = main(["--config", config_file(tmp_path, local_node), "iscsi", "check", "--json", "node-3"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert data["host"] == "node-3" and data["status"] == "UNKNOWN"
    assert "sudoers" in data["problems"][0]


def test_check_is_always_fresh(local_node, tmp_path: Path, capsys: Any) -> None:  # type: ignore[no-untyped-def]
    local_node.set_scenario("* session-P3 session-P3-healthy\n* node node-healthy\n")
    cfg = config_file(tmp_path, local_node, "cache_ttl = 600\n")
    assert main(["--config", cfg, "iscsi", "check", "n"]) == 0
    assert main(["--config", cfg, "iscsi", "check", "n"]) == 0
    assert sum(1 for c in local_node.calls() if c[1:] == ["iscsiadm", "-m session -P 3"]) == 2
    assert "shared" not in capsys.readouterr().out


def test_wait_rechecks_until_healthy(local_node, tmp_path: Path, capsys: Any) -> None:  # type: ignore[no-untyped-def]
    # Two broken looks (one per run), then healthy: --wait sleeps retry_interval once (0.1 s, the minimum).
    local_node.set_scenario("* session-P3 session-P1-failed 2 session-P3-healthy\n* node node-healthy\n")
    cfg = config_file(tmp_path, local_node, "retry_interval = 0.1\ndeadline = 60\n")
    assert main(["--config", cfg, "iscsi", "check", "n"]) == 1
    assert capsys.readouterr().out.startswith("host n: iSCSI BROKEN\n")
    assert main(["--config", cfg, "iscsi", "check", "--wait", "n"]) == 0
    assert capsys.readouterr().out.startswith("host n: iSCSI HEALTHY\n")
    assert sum(1 for c in local_node.calls() if c[1:] == ["iscsiadm", "-m session -P 3"]) == 3


def test_gate_off_exits_0_and_says_so(local_node, tmp_path: Path, capsys: Any) -> None:  # type: ignore[no-untyped-def]
    code = main(["--config", config_file(tmp_path, local_node, "check = no\n"), "iscsi", "check", "n"])
    assert code == 0 and "iSCSI gate is off ([iscsi] check = no)" in capsys.readouterr().out
    assert local_node.calls() == []


@pytest.mark.parametrize("argv", [["iscsi"], ["iscsi", "check"], ["iscsi", "check", "a", "b"], ["iscsi", "frob", "x"]])
def test_bad_usage_exits_2(argv: list, capsys: Any) -> None:  # type: ignore[type-arg]
    assert main(argv) == 2


def test_host_name_ssh_would_misread_exits_1_unknown(local_node, tmp_path: Path, capsys: Any) -> None:  # type: ignore[no-untyped-def]
    code = main(["--config", config_file(tmp_path, local_node), "iscsi", "check", "--", "-oProxyCommand=id"])
    assert code == 1 and "refusing host name" in capsys.readouterr().out
    assert local_node.calls() == []


def test_console_entry_point_through_real_sshd(sshd_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sshd_node.set_scenario("* session-P3 session-P3-free\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "one_hooks", "--config", config_file(tmp_path, sshd_node),
                           "iscsi", "check", "node-7"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("host node-7: iSCSI BROKEN\n")
    assert "10.8.100.6:3260 (SID 806): session state FREE" in proc.stdout


def test_numeric_host_is_an_id_resolved_through_oned(sim, local_node, tmp_path: Path, capsys: Any) -> None:  # type: ignore[no-untyped-def]
    sim.add_host("node-a")
    host_id = sim.add_host("node-b")
    local_node.set_scenario("* session-P3 session-P3-healthy\n* node node-healthy\n")
    cfg = config_file(tmp_path, local_node, oned=f"endpoint = {sim.endpoint}\nauth_file = {sim.auth_file}\n")
    assert main(["--config", cfg, "iscsi", "check", str(host_id)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [f"host {host_id} is node-b", "host node-b: iSCSI HEALTHY"]
    assert {c[0] for c in local_node.calls()} == {"node-b"}
    assert main(["--config", cfg, "iscsi", "check", "--name", "42"]) == 0
    assert {c[0] for c in local_node.calls()} == {"node-b", "42"}
    capsys.readouterr()
    assert main(["--config", cfg, "iscsi", "check", "99"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("one-hooks: error: oned: ") and "host [99]" in err and err.count("\n") == 1
