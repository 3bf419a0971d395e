"""Crash safety of the one file-write door: a failure at every step leaves old or new, never partial.

Two kinds of failure at each of ``fsio.WRITE_STEPS``:
- an exception raised from the ``steps`` callback (a disk error, a bug): the
  write is abandoned, the temporary file is cleaned up, the exception reaches
  the caller;
- a real crash: a child process is killed with SIGKILL from inside the
  callback, so no cleanup code runs at all (what a power cut or an OOM kill
  does to the process).
After either, the target holds exactly the old bytes or exactly the new ones,
keeps its mode, and a read of the directory finds no half-written target.
"""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from one_hooks import fsio

REPO = Path(__file__).resolve().parent.parent
OLD = b"# old\nEMULATOR = /usr/libexec/qemu-kvm\n" * 50
NEW = b"# new\nCPU_MODEL = [ MODEL = \"host-passthrough\" ]\n" * 70


class Injected(RuntimeError):
    """The failure a test injects between two write steps."""


def _fail_at(step: str):
    def steps(name: str) -> None:
        if name == step:
            raise Injected(step)
    return steps


def _leftovers(directory: Path, name: str) -> list:
    return [p.name for p in directory.iterdir() if p.name != name]


@pytest.mark.parametrize("step", fsio.WRITE_STEPS)
def test_exception_at_each_step_leaves_old_or_new(tmp_path: Path, step: str) -> None:
    target = tmp_path / "vmm_exec_kvm.conf"
    target.write_bytes(OLD)
    os.chmod(target, 0o640)
    with pytest.raises(Injected):
        fsio.atomic_write(str(target), NEW, steps=_fail_at(step))
    after = target.read_bytes()
    renamed = fsio.WRITE_STEPS.index(step) > fsio.WRITE_STEPS.index("rename")
    assert after == (NEW if renamed else OLD)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert _leftovers(tmp_path, target.name) == []


def test_all_steps_run_in_order_on_success(tmp_path: Path) -> None:
    target = tmp_path / "f.conf"
    target.write_bytes(OLD)
    seen: list = []
    fsio.atomic_write(str(target), NEW, steps=seen.append)
    assert tuple(seen) == fsio.WRITE_STEPS
    assert target.read_bytes() == NEW


CRASH_CHILD = textwrap.dedent("""
    import os, signal, sys
    from one_hooks import fsio
    target, step, new_path = sys.argv[1], sys.argv[2], sys.argv[3]
    def steps(name):
        if name == step:
            os.kill(os.getpid(), signal.SIGKILL)
    fsio.atomic_write(target, open(new_path, "rb").read(), steps=steps)
""")


@pytest.mark.parametrize("step", fsio.WRITE_STEPS)
def test_process_killed_at_each_step_leaves_old_or_new(tmp_path: Path, step: str) -> None:
    work = tmp_path / "etc"
    work.mkdir()
    target = work / "vmm_exec_kvm.conf"
    target.write_bytes(OLD)
    os.chmod(target, 0o640)
    new_path = tmp_path / "new"
    new_path.write_bytes(NEW)
    proc = subprocess.run([sys.executable, "-c", CRASH_CHILD, str(target), step, str(new_path)],
                          cwd=REPO, capture_output=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    after = target.read_bytes()
    renamed = fsio.WRITE_STEPS.index(step) > fsio.WRITE_STEPS.index("rename")
    assert after == (NEW if renamed else OLD)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    # A crash before the rename may leave the temporary file behind: it must be
    # a hidden name that can never be mistaken for the target.
    for name in _leftovers(work, target.name):
        assert name.startswith(f".{target.name}.") and name.endswith(".tmp"), name


# --- the CPU config patcher, killed for real ---------------------------------
# tests/test_cpu_conf_patch.py raises an exception at every step (cleanup code
# runs); here the process dies with SIGKILL at every step of both its writes
# (the backup, then the file), so nothing cleans up after it.

PATCH_CHILD = textwrap.dedent("""
    import os, signal, sys
    from one_hooks.cpu import conf_patch
    conf, kill_at = sys.argv[1], int(sys.argv[2])
    seen = []
    def steps(name):
        seen.append(name)
        if len(seen) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    conf_patch.apply(conf, conf_patch.set_native, steps=steps)
""")


@pytest.mark.parametrize("kill_at", range(1, 2 * len(fsio.WRITE_STEPS) + 1))
def test_patcher_killed_at_each_step_leaves_old_or_new_and_backup_intact(
        tmp_path: Path, kill_at: int) -> None:
    from one_hooks.cpu import conf_patch

    seed = REPO / "tests" / "data" / "vmm_exec_kvm" / "7.4.0.conf"
    conf = tmp_path / "vmm_exec_kvm.conf"
    conf.write_bytes(seed.read_bytes())
    os.chmod(conf, 0o640)
    old = conf.read_bytes()
    new = conf_patch.set_native(old.decode()).encode()
    backup = Path(conf_patch.backup_path(str(conf)))
    proc = subprocess.run([sys.executable, "-c", PATCH_CHILD, str(conf), str(kill_at)],
                          cwd=REPO, capture_output=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert conf.read_bytes() in (old, new)
    assert not backup.exists() or backup.read_bytes() == old
    if conf.read_bytes() == new:
        assert backup.read_bytes() == old  # never the new file without its backup
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o640
    # The operator runs it again: it completes, and revert gives the original back.
    conf_patch.apply(str(conf), conf_patch.set_native)
    assert conf.read_bytes() == new and backup.read_bytes() == old
    conf_patch.revert(str(conf))
    assert conf.read_bytes() == old


def test_create_like_directory_gives_the_file_its_directory_owner(tmp_path) -> None:
    if os.getuid() != 0:
        pytest.skip("giving a file away needs root (CI runs as root)")
    logs = tmp_path / "log"
    logs.mkdir()
    os.chown(logs, 12345, 23456)
    assert fsio.create_like_directory(str(logs / "one-hooks.log"))
    st = os.stat(logs / "one-hooks.log")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (12345, 23456, 0o640)
    assert not fsio.create_like_directory(str(logs / "one-hooks.log"))  # exists: left alone
