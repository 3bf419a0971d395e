"""The one door to the filesystem for files one-hooks changes.

Every write is atomic: the new content goes to a temporary file in the same
directory, is flushed and fsynced, gets the mode, owner and group it must
have, and only then replaces the original with ``os.replace`` (a rename, so a
reader sees the old file or the new one, never a partial one). The directory
is fsynced afterwards so the rename survives a power cut.

``steps`` lets crash-safety tests stop a write between any two steps: it is
called with the name of each step before that step runs.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Callable, Optional

WRITE_STEPS = ("create-temp", "write", "fsync", "chmod", "chown", "rename", "fsync-dir")


@dataclass(frozen=True)
class FileMeta:
    """Mode bits, owner and group of a file."""

    mode: int
    uid: int
    gid: int

    @classmethod
    def of(cls, path: str) -> "FileMeta":
        """Read them from an existing file."""
        st = os.stat(path)
        return cls(stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)


def _no_step(name: str) -> None:
    return None


def atomic_write(path: str, data: bytes, meta: Optional[FileMeta] = None,
                 steps: Callable[[str], None] = _no_step) -> None:
    """Replace ``path`` with ``data`` atomically.

    ``meta`` defaults to the existing file's mode/owner/group (0644 and the
    caller's ids for a new file). Ownership is only changed when running as
    root; otherwise the caller's ids are kept.
    """
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if meta is None:
        meta = FileMeta.of(path) if os.path.exists(path) else FileMeta(0o644, os.getuid(), os.getgid())
    steps("create-temp")
    fd, tmp = _make_temp(directory, os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as fh:
            steps("write")
            fh.write(data)
            fh.flush()
            steps("fsync")
            os.fsync(fh.fileno())
        steps("chmod")
        os.chmod(tmp, meta.mode)
        steps("chown")
        if os.getuid() == 0:
            os.chown(tmp, meta.uid, meta.gid)
        steps("rename")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    steps("fsync-dir")
    fsync_dir(directory)


def _make_temp(directory: str, name: str) -> "tuple[int, str]":
    """A new, private file beside the target (what tempfile.mkstemp does, without
    importing tempfile and its random/hashlib on every hook's start-up)."""
    while True:
        tmp = os.path.join(directory, f".{name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), tmp
        except FileExistsError:
            continue


def fsync_dir(directory: str) -> None:
    """Make a rename in ``directory`` durable."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def read_bytes(path: str) -> bytes:
    """The whole content of a file."""
    with open(path, "rb") as fh:
        return fh.read()


def copy_atomic(source: str, dest: str, meta: Optional[FileMeta] = None,
                steps: Callable[[str], None] = _no_step) -> None:
    """Copy ``source`` over ``dest`` atomically (used for backups and installs)."""
    atomic_write(dest, read_bytes(source), meta or FileMeta.of(source), steps)


def remove(path: str) -> bool:
    """Remove a file if it exists; True if something was removed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def make_dirs(path: str, mode: int = 0o755, uid: Optional[int] = None, gid: Optional[int] = None) -> None:
    """Create a directory tree; give the leaf an owner when running as root."""
    os.makedirs(path, mode=mode, exist_ok=True)
    if uid is not None and os.getuid() == 0:
        os.chown(path, uid, gid if gid is not None else -1)


def create_like_directory(path: str, mode: int = 0o640) -> bool:
    """Create an empty ``path`` owned like its directory; False if it exists already.

    For a file root creates once that others keep writing, e.g. the log in
    ``/var/log/one`` (owned by oneadmin): created by root's first
    ``one-hooks-install``, it must stay writable for the hooks run as oneadmin.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return False
    try:
        parent = os.stat(os.path.dirname(os.path.abspath(path)))
        if os.getuid() == 0:
            os.fchown(fd, parent.st_uid, parent.st_gid)
    finally:
        os.close(fd)
    return True


def remove_tree(path: str) -> None:
    """Remove a directory tree if it exists."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
