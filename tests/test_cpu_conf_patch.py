"""The vmm_exec_kvm.conf CPU switch: pure transforms on the real files, then the safe writer."""
from __future__ import annotations

import glob
import os
import stat
from typing import Callable, List

import pytest

from one_hooks import fsio
from one_hooks.cpu import conf_patch
from one_hooks.errors import CpuError, TemplateSyntaxError
from one_hooks.oned.template import parse

DATA = os.path.join(os.path.dirname(__file__), "data", "vmm_exec_kvm")
REAL_FILES = sorted(glob.glob(os.path.join(DATA, "*.conf")))
WRAPPER = "/var/lib/one/remotes/vmm/kvm/one-hooks-qemu"
ONEADMIN_GID = 9869  # oneadmin's gid in OpenNebula packages; any non-root gid shows it is kept


def read(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


@pytest.mark.parametrize("path", REAL_FILES, ids=os.path.basename)
def test_native_switch_on_real_files(path: str) -> None:
    text = read(path)
    on = conf_patch.set_native(text, path)
    assert conf_patch.state_of(on).native
    # Placed right under the shipped commented default, which stays a comment.
    comment = next(line for line in text.splitlines() if line.startswith("#CPU_MODEL"))
    assert f'{comment}\nCPU_MODEL = [ MODEL = "host-passthrough" ]\n' in on
    assert conf_patch.set_native(on, path) == on
    assert conf_patch.unset_native(on, path) == text


@pytest.mark.parametrize("path", REAL_FILES, ids=os.path.basename)
def test_wrapper_switch_on_real_files(path: str) -> None:
    text = read(path)
    on = conf_patch.set_emulator(text, WRAPPER, path)
    assert conf_patch.state_of(on).wrapper(WRAPPER)
    assert f'\nEMULATOR = "{WRAPPER}"\n' in on
    assert conf_patch.set_emulator(on, WRAPPER, path) == on
    assert conf_patch.unset_emulator(on, path) == text
    both = conf_patch.set_native(on, path)
    assert conf_patch.restore_managed(both, text, path) == text


def test_native_keeps_other_cpu_model_keys() -> None:
    text = 'CPU_MODEL = [ MODEL = "EPYC", FEATURES = "vmx" ]\n'
    on = conf_patch.set_native(text)
    assert parse(on).get("CPU_MODEL") == {"MODEL": "host-passthrough", "FEATURES": "vmx"}


def test_relative_emulator_is_refused() -> None:
    with pytest.raises(Exception, match="absolute"):
        conf_patch.set_emulator("", "qemu")


@pytest.fixture
def conf(tmp_path) -> str:
    path = str(tmp_path / "vmm_exec_kvm.conf")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(read(os.path.join(DATA, "7.4.0.conf")))
    os.chmod(path, 0o640)
    if os.getuid() == 0:
        os.chown(path, 0, ONEADMIN_GID)
    return path


def meta(path: str) -> tuple:
    st = os.stat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def test_apply_backs_up_keeps_meta_is_idempotent_and_reverts(conf: str) -> None:
    original, original_meta = fsio.read_bytes(conf), meta(conf)
    change = conf_patch.apply(conf, conf_patch.set_native)
    assert change.changed and conf_patch.state_of(read(conf)).native
    assert meta(conf) == original_meta
    backup = conf_patch.backup_path(conf)
    assert fsio.read_bytes(backup) == original and meta(backup) == original_meta
    again = conf_patch.apply(conf, lambda t: conf_patch.set_emulator(t, WRAPPER))
    assert again.changed
    assert fsio.read_bytes(backup) == original  # backup made before the FIRST change only
    assert not conf_patch.apply(conf, conf_patch.set_native).changed
    undo = conf_patch.revert(conf)
    assert undo.changed and "byte for byte" in undo.reason
    assert fsio.read_bytes(conf) == original and meta(conf) == original_meta
    assert not os.path.exists(backup)
    assert not conf_patch.revert(conf).changed


def test_revert_keeps_an_admin_edit_made_after_enable(conf: str) -> None:
    original = read(conf)
    conf_patch.apply(conf, lambda t: conf_patch.set_emulator(t, WRAPPER))
    edited = read(conf).replace("MEMORY_SLOTS = 16", "MEMORY_SLOTS = 32")
    with open(conf, "w", encoding="utf-8") as fh:
        fh.write(edited)
    undo = conf_patch.revert(conf)
    assert "only" in undo.reason
    assert read(conf) == original.replace("MEMORY_SLOTS = 16", "MEMORY_SLOTS = 32")


def test_dry_run_writes_nothing(conf: str) -> None:
    original = fsio.read_bytes(conf)
    change = conf_patch.apply(conf, conf_patch.set_native, dry_run=True)
    assert change.changed and "host-passthrough" in change.after
    assert fsio.read_bytes(conf) == original
    assert not os.path.exists(conf_patch.backup_path(conf))


def test_unparsable_file_is_refused_untouched(conf: str) -> None:
    broken = read(conf).replace('MACHINE = "q35"', 'MACHINE = "q35" ,,')
    with open(conf, "w", encoding="utf-8") as fh:
        fh.write(broken)
    with pytest.raises(TemplateSyntaxError) as info:
        conf_patch.apply(conf, conf_patch.set_native)
    assert info.value.line == broken[:broken.index(",,")].count("\n") + 1
    assert f"{conf}:{info.value.line}:" in str(info.value)
    assert read(conf) == broken
    assert not os.path.exists(conf_patch.backup_path(conf))


def test_transform_that_touches_other_attributes_is_refused(conf: str) -> None:
    original = fsio.read_bytes(conf)
    with pytest.raises(CpuError):
        conf_patch.apply(conf, lambda t: t.replace("MEMORY_SLOTS = 16", "MEMORY_SLOTS = 1"))
    assert fsio.read_bytes(conf) == original


class Crash(Exception):
    """The simulated power cut."""


def crash_at(n: int) -> Callable[[str], None]:
    seen: List[str] = []

    def step(name: str) -> None:
        seen.append(name)
        if len(seen) == n:
            raise Crash(name)
    return step


@pytest.mark.parametrize("n", range(1, 2 * len(fsio.WRITE_STEPS) + 1))
def test_crash_at_every_write_step_leaves_old_or_new(conf: str, n: int) -> None:
    old = fsio.read_bytes(conf)
    new = conf_patch.set_native(old.decode()).encode()
    backup = conf_patch.backup_path(conf)
    try:
        conf_patch.apply(conf, conf_patch.set_native, steps=crash_at(n))
    except Crash:
        pass
    assert fsio.read_bytes(conf) in (old, new)
    assert not os.path.exists(backup) or fsio.read_bytes(backup) == old
    leftovers = [f for f in os.listdir(os.path.dirname(conf)) if f.endswith(".tmp")]
    assert leftovers == []
    # Running again finishes the job; revert still gives the original back.
    conf_patch.apply(conf, conf_patch.set_native)
    assert fsio.read_bytes(conf) == new and fsio.read_bytes(backup) == old
    conf_patch.revert(conf)
    assert fsio.read_bytes(conf) == old


@pytest.mark.parametrize("n", range(1, len(fsio.WRITE_STEPS) + 1))
def test_crash_during_revert_keeps_backup(conf: str, n: int) -> None:
    old = fsio.read_bytes(conf)
    conf_patch.apply(conf, conf_patch.set_native)
    new = fsio.read_bytes(conf)
    try:
        conf_patch.revert(conf, steps=crash_at(n))
    except Crash:
        pass
    assert fsio.read_bytes(conf) in (old, new)
    backup = conf_patch.backup_path(conf)
    if fsio.read_bytes(conf) == new:
        assert fsio.read_bytes(backup) == old
    conf_patch.revert(conf)
    assert fsio.read_bytes(conf) == old
