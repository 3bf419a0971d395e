"""Real OpenNebula front-ends (oned 6.10.5 and 7.4.0) for the test session.

``rig`` (module scope, parametrized by version) yields a started
:class:`tests.oned_rig.Rig`: ONE rig per version per test module (one
scenario's leftovers, e.g. a host an evacuation fenced and disabled, must not
meet the next module's scenario; pytest runs a session-scoped parameter's
tests of every module together, so a session-wide rig mixed them), started
through ``../shared/opennebula/oned-rig VERSION DIR start`` in a folder of
pytest's temporary directory, on a port base whose whole span is free. The
first test of a module that needs a rig starts every version the module's
selected tests need, at once (the starts overlap: about 25 s on this machine
instead of 40).

The rig's hooks run with the environment ``start`` had, so each rig is started
with ``ONE_HOOKS_CONFIG`` = ``rig.hooks_config`` (a file the tests write) and
its own ``XDG_CACHE_HOME``: the hooks oned's real onehem-server runs read the
test's configuration.

At the end of the module (failed or interrupted too) the finalizer stops the
settle watchers, then the rig, before pytest may delete its folder: an oned
whose install vanished forks copies of itself without end. A stop that fails
kills the rig's process groups. A session killed outright cannot do that, so
each session first stops the rigs of dead earlier sessions
(:func:`tests.oned_rig.sweep_orphans`).

Where ``../shared/opennebula`` does not exist (a user's fresh clone) the tests
skip, saying so; a rig that does not start is a failure.
"""
from __future__ import annotations

import getpass
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, TypeVar

import pytest

from one_hooks.hooks.entry import stop_watchers
from tests.oned_rig import VERSIONS, Rig, RigError, available, start_rigs, sweep_orphans


class RigPool:
    """The session's rigs: started together on first use, stopped together at the end."""

    def __init__(self, base: Path, versions: List[str]) -> None:
        self.base = base
        self.versions = versions
        self.rigs: Dict[str, Rig] = {}
        self.error: Optional[str] = None
        self._started = False

    def get(self, version: str) -> Rig:
        """The started rig of ``version`` (all needed versions start on the first call)."""
        if not self._started:
            self._started = True
            wanted = [v for v in VERSIONS if v in self.versions or v == version]
            for v in wanted:
                folder = self.base / f"rig-{v}"
                folder.mkdir(parents=True, exist_ok=True)
                self.rigs[v] = Rig(v, folder, 0, {"ONE_HOOKS_CONFIG": str(folder / "one-hooks.conf"),
                                                  "XDG_CACHE_HOME": str(folder / "cache")})
            try:
                start_rigs([self.rigs[v] for v in wanted])
            except RigError as exc:
                self.error = str(exc)
        if self.error:
            pytest.fail(f"real oned rigs did not start: {self.error}", pytrace=False)
        if version not in self.rigs:
            pytest.fail(f"no rig for {version}: the session started {sorted(self.rigs)}", pytrace=False)
        return self.rigs[version]

    def stop(self) -> List[str]:
        """Stop every rig this pool started; problems, one line each."""
        problems = []
        for rig in self.rigs.values():
            stop_watchers(hooks_config(rig))
            try:
                rig.stop()
            except RigError as exc:
                problems.append(f"{rig.version}: {exc}")
        return problems


T = TypeVar("T")


def side_by_side(pool: RigPool, scenario: Callable[[Rig, Path], T], factory: pytest.TempPathFactory,
                 name: str) -> Iterator[Dict[str, "Future[T]"]]:
    """Run ``scenario(rig, folder)`` on every version's rig at once (mostly waiting for oned), one
    folder each (``name-VERSION``): version -> its future, for a module fixture to yield."""
    rigs = [pool.get(v) for v in VERSIONS if v in pool.versions]
    with ThreadPoolExecutor(max_workers=len(rigs), thread_name_prefix=name) as workers:
        yield {rig.version: workers.submit(scenario, rig, factory.mktemp(f"{name}-{rig.version}")) for rig in rigs}


def hooks_config(rig: Rig) -> str:
    """The configuration file the rig's hooks read (``ONE_HOOKS_CONFIG`` in its environment)."""
    return rig.extra_env["ONE_HOOKS_CONFIG"]


def _needed_versions(session: pytest.Session, module: object) -> List[str]:
    versions = []
    for item in session.items:
        if getattr(item, "module", None) is not module:
            continue
        callspec = getattr(item, "callspec", None)
        version = callspec.params.get("rig") if callspec is not None else None
        if version in VERSIONS and version not in versions:
            versions.append(version)
    return versions


def pytest_configure(config: pytest.Config) -> None:
    """Before pytest may prune old temporary folders: stop rigs orphaned by killed sessions."""
    if available() is None and not hasattr(config, "workerinput"):
        sweep_orphans(Path(tempfile.gettempdir()) / f"pytest-of-{getpass.getuser()}")


@pytest.fixture(scope="module")
def rig_pool(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RigPool]:
    """Every rig of the module (started lazily, stopped at the module's end)."""
    why = available()
    if why:
        pytest.skip(f"no real OpenNebula front-ends to test against: {why}")
    pool = RigPool(tmp_path_factory.mktemp("oned-rigs"), _needed_versions(request.session, request.module))
    yield pool
    problems = pool.stop()
    assert not problems, "rigs not stopped cleanly: " + "; ".join(problems)


@pytest.fixture(scope="module", params=VERSIONS)
def rig(request: pytest.FixtureRequest, rig_pool: RigPool) -> Rig:
    """A started real oned of each version (one per test module), hosts h1 h2 h3 MONITORED."""
    return rig_pool.get(request.param)
