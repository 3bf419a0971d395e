"""node.fence: the fence and fence_check commands, run for real (small sh stand-ins of a BMC tool).

The stand-in records every call's argv (one word per line) and keeps the
"power" state of each host in a file: ``off`` turns it off, ``status``
prints it the way ``ipmitool chassis power status`` does.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List

import pytest

from one_hooks.errors import FenceFailed
from one_hooks.node.fence import Fence
from one_hooks.node.runner import Runner

BMC = """#!/bin/sh
# a BMC tool stand-in: record the call, then act on the power state file of host $3
dir=$(dirname "$0")
for word in "$@"; do printf '%s\\n' "$word"; done >> "$dir/calls"
echo --- >> "$dir/calls"
case "$1" in
  off) [ -e "$dir/broken" ] && { echo "Error: Unable to establish IPMI v2 session" >&2; exit 1; }
       [ -e "$dir/stuck" ] || echo off > "$dir/power-$3"; echo "Chassis Power Control: Down/Off" ;;
  status) echo "Chassis Power is $(cat "$dir/power-$3" 2>/dev/null || echo on)" ;;
  hang) sleep 30 ;;
esac
"""


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: List[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def bmc(tmp_path: Path) -> Path:
    tool = tmp_path / "bmc"
    tool.write_text(BMC)
    tool.chmod(0o755)
    return tool


def fence(bmc: Path, clock: Clock, off: str = r"\boff\b", confirm: float = 20.0) -> Fence:
    return Fence(Runner(10), f"{bmc} off -H {{host}}-bmc", f"{bmc} status -H {{host}}-bmc", off,
                 timeout=5, confirm_timeout=confirm, interval=5, clock=clock, sleep=clock.sleep)


def calls(bmc: Path) -> List[List[str]]:
    text = (bmc.parent / "calls").read_text() if (bmc.parent / "calls").exists() else ""
    return [chunk.strip("\n").split("\n") for chunk in text.split("---\n") if chunk.strip()]


def test_fence_then_confirm_with_the_host_as_one_word(bmc: Path) -> None:
    clock = Clock()
    name = "node 1;reboot"  # nothing a shell would split or run: one argv word, part of {host}-bmc
    done = fence(bmc, clock).power_off(name)
    assert done.evidence == "Chassis Power is off" and done.looks == 1
    assert calls(bmc) == [["off", "-H", f"{name}-bmc"], ["status", "-H", f"{name}-bmc"]]
    assert (bmc.parent / f"power-{name}-bmc").read_text() == "off\n"
    assert clock.sleeps == []


def test_failed_fence_moves_nothing_and_says_what_to_do(bmc: Path) -> None:
    (bmc.parent / "broken").touch()
    with pytest.raises(FenceFailed) as caught:
        fence(bmc, Clock()).power_off("h1")
    text = str(caught.value)
    assert text.startswith("h1: fence failed") and "Unable to establish IPMI v2 session" in text
    assert "power it off by hand" in text and "'one-hooks evacuate h1'" in text
    assert [c[0] for c in calls(bmc)] == ["off"]  # no check after a failed fence


def test_power_off_not_confirmed_within_the_timeout(bmc: Path) -> None:
    (bmc.parent / "stuck").touch()  # the BMC accepts "off" but the host stays on
    clock = Clock()
    with pytest.raises(FenceFailed) as caught:
        fence(bmc, clock, confirm=20.0).power_off("h1")
    assert "power-off not confirmed after 5 look(s)" in str(caught.value)
    assert "'Chassis Power is on'" in str(caught.value)
    assert clock.sleeps == [5, 5, 5, 5]
    assert [c[0] for c in calls(bmc)] == ["off"] + ["status"] * 5


def test_the_pattern_is_what_confirms(bmc: Path) -> None:
    clock = Clock()
    with pytest.raises(FenceFailed):
        fence(bmc, clock, off=r"power is down", confirm=0).power_off("h1")
    assert fence(bmc, Clock(), off=r"POWER IS OFF").confirm_off("h1").evidence == "Chassis Power is off"


def test_unconfigured_hanging_and_hostile_names(bmc: Path) -> None:
    with pytest.raises(FenceFailed, match="no fence configured"):
        Fence(Runner(5), "", f"{bmc} status {{host}}", "off").power_off("h1")
    hanging = Fence(Runner(5), f"{bmc} hang {{host}}", f"{bmc} status {{host}}", "off", timeout=0.5)
    with pytest.raises(FenceFailed, match="did not finish within 0.5 s"):
        hanging.power_off("h1")
    with pytest.raises(FenceFailed, match="refusing host name"):
        fence(bmc, Clock()).power_off("-oProxyCommand=x")
    assert not os.path.exists(bmc.parent / "calls") or all(c[0] == "hang" for c in calls(bmc))
