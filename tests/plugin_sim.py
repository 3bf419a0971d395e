"""Fixtures around the simulated oned (``one_hooks.sim``): a real XML-RPC server on loopback.

``sim``: a started :class:`SimOned` with no call latency and a short boot
time, its credentials in an auth file under ``tmp_path`` (mode 0600), and the
hook environment (``ONE_XMLRPC``, ``ONE_AUTH``) already set. ``make_sim``
builds more with other parameters; all are stopped at teardown.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

from one_hooks.sim.oned import SimOned
from one_hooks.sim.server import NO_LATENCY


class SimHandle:
    """A started SimOned plus what a client of it needs (endpoint, auth file, env).

    Attribute access falls through to the SimOned, so ``sim.add_host(...)``,
    ``sim.vm(id)``, ``sim.settle()`` work directly.
    """

    def __init__(self, sim: SimOned, auth_file: Path) -> None:
        self.sim = sim
        self.auth_file = auth_file
        self.endpoint = sim.endpoint

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sim, name)

    def env(self, config: Optional[Path] = None, **extra: str) -> Dict[str, str]:
        """Variables a hook or CLI process needs to reach this sim (added to os.environ)."""
        env = dict(os.environ)
        env.update({"ONE_XMLRPC": self.endpoint, "ONE_AUTH": str(self.auth_file)})
        if config is not None:
            env["ONE_HOOKS_CONFIG"] = str(config)
        env.update(extra)
        return env


@pytest.fixture
def make_sim(tmp_path: Path) -> Iterator[Callable[..., SimHandle]]:
    """Factory: ``make_sim(**SimOned kwargs)`` -> a started SimHandle (stopped at teardown)."""
    started: List[SimOned] = []

    def make(**kwargs: Any) -> SimHandle:
        index = len(started)
        kwargs.setdefault("latency", NO_LATENCY)
        kwargs.setdefault("boot_seconds", 0.05)
        kwargs.setdefault("users", {"oneadmin": secrets.token_hex(8)})
        kwargs.setdefault("remotes_dir", str(tmp_path / f"remotes{index or ''}"))
        sim = SimOned(**kwargs)
        sim.start()
        started.append(sim)
        auth = tmp_path / f"one_auth{index or ''}"
        auth.write_text(sim.session + "\n")
        auth.chmod(0o600)
        sim.set_hook_env({"ONE_XMLRPC": sim.endpoint, "ONE_AUTH": str(auth)})
        return SimHandle(sim, auth)

    yield make
    for sim in started:
        sim.stop()
    # A step of the state machine that raised on the timeline thread is a bug: surface it.
    broken = [error for sim in started for error in sim.cloud.timeline.errors]
    assert not broken, f"simulated oned failed in a delayed step: {broken!r}"


@pytest.fixture
def sim(make_sim: Callable[..., SimHandle]) -> SimHandle:
    """A started simulated oned (latency 0, boot 0.05 s) with its auth file in tmp_path."""
    return make_sim()
