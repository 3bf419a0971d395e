"""The emulator wrapper as a file to install: where it goes, its settings, its state.

The wrapper itself is POSIX sh, kept once: ``vmm_wrappers/one-hooks-qemu``.
Packaging installs it as ``<prefix>/share/one-hooks/remotes/vmm/kvm/one-hooks-qemu``
(setup.cfg data_files); installed under oned's remotes as ``vmm/kvm/one-hooks-qemu``,
``onehost sync`` delivers it to every node, where it lives under
``/var/tmp/one``. Its settings sit beside it in ``one-hooks-qemu.settings``:
plain ``KEY=value`` lines the wrapper reads without evaluating them::

    QEMU=/usr/libexec/qemu-kvm:/usr/bin/qemu-kvm:/usr/bin/qemu-system-x86_64
    CPU=host

``QEMU`` lists candidates; on each node the wrapper runs the first executable
one that is not itself (front-end and nodes may differ in distribution).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

from .. import fsio
from ..errors import UsageError

WRAPPER_NAME = "one-hooks-qemu"
SETTINGS_NAME = "one-hooks-qemu.settings"
#: Relative to a remotes tree (front-end /var/lib/one/remotes, node /var/tmp/one).
REL_DIR = os.path.join("vmm", "kvm")
#: oned's remotes tree on the front-end.
FRONTEND_REMOTES = "/var/lib/one/remotes"
#: Where oned puts the remotes on nodes (oned.conf SCRIPTS_REMOTE_DIR default).
NODE_REMOTES = "/var/tmp/one"
#: The fallback order OpenNebula itself uses for qemu-kvm-one (DESIGN.md section 5),
#: the last one for this machine's architecture (as the wrapper's own `uname -m`).
DEFAULT_CANDIDATES = ("/usr/libexec/qemu-kvm", "/usr/bin/qemu-kvm", f"/usr/bin/qemu-system-{os.uname().machine}")
#: What an unset EMULATOR means to OpenNebula 6.8+ (a symlink packages regenerate).
ONE_DEFAULT_EMULATOR = "/usr/bin/qemu-kvm-one"


@dataclass(frozen=True)
class Settings:
    """What the wrapper runs (candidates, first usable wins) and the -cpu it gives."""

    qemu: Sequence[str]
    cpu: str = "host"

    def render(self) -> bytes:
        """The settings file's content."""
        for value in list(self.qemu) + [self.cpu]:
            if "\n" in value or "\r" in value:
                raise UsageError(f"wrapper setting {value!r} holds a line break")
        for path in self.qemu:
            if not os.path.isabs(path) or ":" in path:
                raise UsageError(f"emulator {path!r} must be an absolute path without ':'")
        if not self.cpu or self.cpu.startswith("-") or " " in self.cpu:
            raise UsageError(f"CPU argument {self.cpu!r} is not a -cpu value")
        return (
            "# one-hooks-qemu settings, written by one-hooks (see one-hooks cpu status).\n"
            "# QEMU: real emulators to try in order (':' separated); CPU: the -cpu value for KVM guests.\n"
            f"QEMU={':'.join(self.qemu)}\n"
            f"CPU={self.cpu}\n"
        ).encode("utf-8")

    @classmethod
    def parse(cls, text: str) -> "Settings":
        """Read a settings file the way the wrapper does (last line of a key wins)."""
        qemu, cpu = ":".join(DEFAULT_CANDIDATES), "host"
        for line in text.splitlines():
            if line.startswith("QEMU=") and len(line) > 5:
                qemu = line[5:]
            elif line.startswith("CPU=") and len(line) > 4:
                cpu = line[4:]
        return cls(tuple(p for p in qemu.split(":") if p), cpu)


#: Where pip puts the package's data files (setup.cfg's data_files), under an installation prefix.
SHARE_REMOTES = os.path.join("share", "one-hooks", "remotes")


def share_prefixes() -> List[str]:
    """The installation prefixes the shipped files may be under, in the order they are searched.

    This environment (a venv or the system), the user's base (``pip install
    --user``), the interpreter's own base, then ``/usr/local`` and ``/usr``.
    One list for the wrapper (``cpu enable``) and the remotes tree (the
    installer), so that both find what one installation shipped.
    """
    import site
    import sys

    found: List[str] = []
    for prefix in (sys.prefix, getattr(site, "USER_BASE", "") or "", sys.base_prefix, "/usr/local", "/usr"):
        if prefix and prefix not in found:
            found.append(prefix)
    return found


def shipped_wrapper() -> str:
    """The wrapper in this source tree (``vmm_wrappers/``) or in the installed share directory."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    candidate = os.path.join(here, "vmm_wrappers", WRAPPER_NAME)
    if os.path.isfile(candidate):
        return candidate
    for prefix in share_prefixes():
        candidate = os.path.join(prefix, SHARE_REMOTES, REL_DIR, WRAPPER_NAME)
        if os.path.isfile(candidate):
            return candidate
    raise UsageError(f"the {WRAPPER_NAME} wrapper is not shipped with this installation "
                     f"(looked in vmm_wrappers/ and under {', '.join(share_prefixes())}); reinstall one-hooks")


def wrapper_path(remotes: str) -> str:
    """The wrapper's path under a remotes tree."""
    return os.path.join(remotes, REL_DIR, WRAPPER_NAME)


def settings_path(remotes: str) -> str:
    """The settings file's path under a remotes tree."""
    return os.path.join(remotes, REL_DIR, SETTINGS_NAME)


def node_emulator(node_remotes: str = NODE_REMOTES) -> str:
    """The EMULATOR value: where the wrapper is on every node."""
    return wrapper_path(node_remotes)


def real_emulators(previous: Optional[str], configured: str = "") -> List[str]:
    """The candidates to record: ``[cpu] emulator``, else the EMULATOR the config had, else defaults.

    A previous EMULATOR that is the wrapper itself is ignored (re-enabling must
    not make the wrapper run itself).
    """
    if configured:
        return [p for p in configured.split(":") if p]
    first: List[str] = []
    if previous and os.path.basename(previous) != WRAPPER_NAME:
        first.append(previous)
    return first + [c for c in DEFAULT_CANDIDATES if c not in first]


def install(remotes: str, settings: Settings, uid: Optional[int] = None, gid: Optional[int] = None,
            steps: Callable[[str], None] = lambda step: None) -> List[str]:
    """Put the wrapper and its settings under ``remotes``; return the paths that changed.

    The wrapper is rewritten when its bytes differ, which also gives it a new
    ctime so libvirt drops its cached capabilities for it.
    """
    changed = []
    directory = os.path.join(remotes, REL_DIR)
    fsio.make_dirs(directory, 0o755, uid, gid)
    owner_uid = os.getuid() if uid is None else uid
    owner_gid = os.getgid() if gid is None else gid
    for path, before, data, mode in planned(remotes, settings):
        if before == data:
            continue
        fsio.atomic_write(path, data, fsio.FileMeta(mode, owner_uid, owner_gid), steps)
        changed.append(path)
    return changed


def planned(remotes: str, settings: Settings) -> List[Tuple[str, Optional[bytes], bytes, int]]:
    """What :func:`install` would write: (path, current content or None, new content, mode) per file."""
    out: List[Tuple[str, Optional[bytes], bytes, int]] = []
    for path, data, mode in (
        (wrapper_path(remotes), fsio.read_bytes(shipped_wrapper()), 0o755),
        (settings_path(remotes), settings.render(), 0o644),
    ):
        out.append((path, fsio.read_bytes(path) if os.path.isfile(path) else None, data, mode))
    return out


def uninstall(remotes: str) -> List[str]:
    """Remove the wrapper and its settings from ``remotes``; return what was removed."""
    return [p for p in (wrapper_path(remotes), settings_path(remotes)) if fsio.remove(p)]


def installed_settings(remotes: str) -> Optional[Settings]:
    """The settings in place under ``remotes``, or None when not installed."""
    path = settings_path(remotes)
    if not os.path.exists(path):
        return None
    return Settings.parse(fsio.read_bytes(path).decode("utf-8", "replace"))
