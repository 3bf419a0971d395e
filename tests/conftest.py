"""Shared fixtures live in plugin modules, one per real component they start."""
import os
import shutil
import tempfile

pytest_plugins = ["tests.plugin_sim", "tests.plugin_sshd", "tests.plugin_libvirt", "tests.plugin_rig"]

_CACHE = tempfile.mkdtemp(prefix="one-hooks-test-cache-")


def pytest_configure(config) -> None:  # noqa: ANN001 (pytest's hook signature)
    """Hook processes leave their settings snapshot (one_hooks.hooks.settings_cache) in a
    throw-away cache directory, not in the tester's ~/.cache."""
    os.environ["XDG_CACHE_HOME"] = _CACHE


def pytest_unconfigure(config) -> None:  # noqa: ANN001
    shutil.rmtree(_CACHE, ignore_errors=True)
