"""The settings snapshot the VM hooks' first look reads: trusted only while nothing it rests on changed."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Dict

import pytest

from one_hooks import config as config_mod
from one_hooks.hooks import settings_cache
from one_hooks.hooks.settings_cache import Settings


def _setup(tmp_path: Path) -> Dict[str, str]:
    conf = tmp_path / "one-hooks.conf"
    conf.write_text(f"[oned]\nendpoint = http://oned.example:2633/RPC2\ntimeout = 7.25\n"
                    f"[recovery]\nstate_dir = {tmp_path / 'state'}\nsettle_interval = 2.5\n"
                    f"[log]\nfile = {tmp_path / 'log'}\nlevel = warning\n")
    return {"ONE_HOOKS_CONFIG": str(conf), "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "HOME": str(tmp_path), "ONE_AUTH": str(tmp_path / "auth")}


def _save(env: Dict[str, str]) -> bool:
    return settings_cache.save(config_mod.load(environ=env), env)


def test_round_trip_gives_the_loaded_values(tmp_path: Path) -> None:
    env = _setup(tmp_path)
    assert settings_cache.load(env) is None  # nothing saved yet
    assert _save(env)
    assert not _save(env)  # unchanged: not written again
    got = settings_cache.load(env)
    assert got == Settings.of(config_mod.load(environ=env))
    assert got is not None and got.timeout == 7.25 and got.settle_interval == 2.5
    assert got.auth_file == str(tmp_path / "auth") and got.log_level == "warning"
    mode = os.stat(settings_cache.snapshot_path(env["ONE_HOOKS_CONFIG"], env)).st_mode & 0o777
    assert mode == 0o600


def test_an_edited_or_touched_config_makes_it_stale(tmp_path: Path) -> None:
    env = _setup(tmp_path)
    assert _save(env)
    conf = Path(env["ONE_HOOKS_CONFIG"])
    time.sleep(0.01)
    os.utime(conf)  # same content, newer mtime: the stamp says "changed"
    assert settings_cache.load(env) is None
    assert _save(env) and settings_cache.load(env) is not None
    conf.write_text(conf.read_text().replace("7.25", "8"))
    assert settings_cache.load(env) is None


@pytest.mark.parametrize("name", ["ONE_XMLRPC", "ONE_AUTH", "HOME"])
def test_another_resolving_environment_makes_it_stale(tmp_path: Path, name: str) -> None:
    env = _setup(tmp_path)
    assert _save(env)
    assert settings_cache.load({**env, name: "/elsewhere"}) is None


def test_another_config_path_has_its_own_snapshot(tmp_path: Path) -> None:
    env = _setup(tmp_path)
    assert _save(env)
    other = {**env, "ONE_HOOKS_CONFIG": str(tmp_path / "other.conf")}
    Path(other["ONE_HOOKS_CONFIG"]).write_text("[log]\nfile = -\n")
    assert settings_cache.load(other) is None


def test_a_snapshot_others_may_write_is_not_trusted(tmp_path: Path) -> None:
    env = _setup(tmp_path)
    assert _save(env)
    path = settings_cache.snapshot_path(env["ONE_HOOKS_CONFIG"], env)
    os.chmod(path, 0o666)
    assert settings_cache.load(env) is None
    os.chmod(path, 0o600)
    assert settings_cache.load(env) is not None


def test_a_snapshot_of_another_user_is_not_trusted(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("giving a file to another user needs root (CI runs as root)")
    env = _setup(tmp_path)
    assert _save(env)
    os.chown(settings_cache.snapshot_path(env["ONE_HOOKS_CONFIG"], env), 12345, -1)
    assert settings_cache.load(env) is None


def test_a_damaged_snapshot_counts_as_none(tmp_path: Path) -> None:
    env = _setup(tmp_path)
    assert _save(env)
    path = Path(settings_cache.snapshot_path(env["ONE_HOOKS_CONFIG"], env))
    text = path.read_text()
    for damaged in (text[:-1], text.replace("timeout\t7.25", "timeout\tsoon"),
                    text.replace("log_level\twarning\n", ""), text + "extra line without tab\n", ""):
        path.write_text(damaged)
        assert settings_cache.load(env) is None, damaged


def test_a_config_read_with_an_explicit_path_or_changed_since_is_not_saved(tmp_path: Path) -> None:
    env = _setup(tmp_path)
    loaded = config_mod.load(environ=env)
    Path(env["ONE_HOOKS_CONFIG"]).write_text("[log]\nfile = -\n")  # edited after it was read
    assert not settings_cache.save(loaded, env)
    assert settings_cache.load(env) is None


def test_a_value_with_a_line_break_is_never_written(tmp_path: Path) -> None:
    env = {**_setup(tmp_path), "HOME": "/home/a\nb"}
    assert not _save(env)
    assert settings_cache.load(env) is None
