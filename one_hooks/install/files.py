"""Steps 1-3 of ``one-hooks-install``: the configuration file and the remotes files.

The default configuration is written only where there is none (never
overwritten). The shipped remotes tree (the hook shims, the CPU wrapper) is
copied under ``REMOTES``, each file atomically (``fsio``), executable, owned
by oneadmin when run as root; the shims learn which interpreter has
``one_hooks`` installed. The manifest names every file and directory before
any is written.
"""
from __future__ import annotations

import functools
import hashlib
import os
import shlex
from dataclasses import dataclass
from typing import List, Optional, Tuple

from .. import config as config_mod
from .. import configpath, fsio
from ..config import Config
from ..cpu import wrapper as wrapper_mod
from ..errors import InstallError, OneHooksError
from . import hook_templates as ht
from .context import Context, Layout, oneadmin_ids
from .manifest import Manifest

#: Where ``[options.data_files]`` puts the remotes tree, under an install prefix.
SHARE_REMOTES = wrapper_mod.SHARE_REMOTES


def shipped_remotes() -> str:
    """The remotes tree shipped with the package (a source checkout, or data_files)."""
    # one_hooks/install/files.py -> the directory holding one_hooks (a checkout's root)
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    candidates = [os.path.join(checkout, "remotes")]
    candidates += [os.path.join(prefix, SHARE_REMOTES) for prefix in wrapper_mod.share_prefixes()]
    for path in candidates:
        if os.path.isdir(os.path.join(path, "hooks", ht.SHIM_DIR)):
            return path
    raise InstallError("locate shipped files",
                       "no remotes tree found (looked in " + ", ".join(candidates) + "); reinstall the package")


@dataclass(frozen=True)
class FileSpec:
    """One file to install: installed-system path, content, mode."""

    path: str
    data: bytes
    mode: int


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data`` (what sha256sum prints on the nodes)."""
    return hashlib.sha256(data).hexdigest()


def render_shim(text: bytes, python: str, config: str = "") -> bytes:
    """Put the interpreter and the configuration file into a shim's placeholder lines, and only there.

    ``PYTHON=@PYTHON@`` gets ``python``; ``CONFIG=@CONFIG@`` gets ``config``
    (empty: the hooks read the default file, or ``$ONE_HOOKS_CONFIG`` from
    oned's environment). Other mentions of the placeholders (the shim's own
    "not replaced" tests) stay.
    """
    values = {"PYTHON": python, "CONFIG": config}
    lines = text.decode("utf-8").splitlines(keepends=True)
    out = []
    for line in lines:
        body = line.rstrip("\n")
        for name, value in values.items():
            if body.strip() == f"{name}=@{name}@":
                indent = body[: len(body) - len(body.lstrip())]
                line = f"{indent}{name}={shlex.quote(value) if value else ''}\n"
        out.append(line)
    return "".join(out).encode("utf-8")


def _assigned(data: bytes, name: str) -> Optional[str]:
    """The value a rendered shim assigns to ``name`` (its ``NAME=`` line), or None."""
    for line in data.decode("utf-8", "replace").splitlines():
        stripped = line.strip()
        if stripped.startswith(f"{name}=") and "@" + name + "@" not in stripped:
            try:
                words = shlex.split(stripped[len(name) + 1:])
            except ValueError:
                return None
            return words[0] if words else ""
    return None


def shim_python(data: bytes) -> Optional[str]:
    """The interpreter a rendered shim runs (its ``PYTHON=`` line), or None."""
    return _assigned(data, "PYTHON") or None


def shim_config(data: bytes) -> Optional[str]:
    """The configuration file a rendered shim gives its hooks ('' for the default), or None."""
    return _assigned(data, "CONFIG")


def wanted_files(layout: Layout, source: str, python: str,
                 config: Optional[Config] = None, config_path: str = "") -> List[FileSpec]:
    """Every file of the shipped remotes tree, as it must be under ``REMOTES``.

    The shims run ``python`` and give their hooks ``config_path`` (empty: the
    default file). With ``config``, the CPU wrapper's settings file joins
    them (the real emulators to try and the ``-cpu`` value, from ``[cpu]``).
    """
    shipped: List[Tuple[str, str]] = []  # (path under the remotes tree, file to read)
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.startswith(".") or name.lower().startswith("readme"):
                continue
            src = os.path.join(dirpath, name)
            shipped.append((os.path.relpath(src, source), src))
    wrapper_rel = os.path.join(wrapper_mod.REL_DIR, wrapper_mod.WRAPPER_NAME)
    if wrapper_rel not in (rel for rel, _ in shipped):
        # A checkout's remotes/ holds no copy of the wrapper: its one source is
        # vmm_wrappers/ (packaging puts it in the installed tree, setup.cfg data_files).
        shipped.append((wrapper_rel, wrapper_mod.shipped_wrapper()))
    specs: List[FileSpec] = []
    for rel, src in shipped:
        data = fsio.read_bytes(src)
        if rel.startswith(os.path.join("hooks", ht.SHIM_DIR) + os.sep):
            data = render_shim(data, python, config_path)
        mode = 0o755 if os.access(src, os.X_OK) or rel.startswith("hooks" + os.sep) else 0o644
        specs.append(FileSpec(os.path.join(layout.remotes, rel), data, mode))
    if config is not None and any(os.path.basename(sp.path) == wrapper_mod.WRAPPER_NAME for sp in specs):
        specs.append(FileSpec(wrapper_mod.settings_path(layout.remotes), wrapper_settings(layout, config), 0o644))
    return specs


def wrapper_settings(layout: Layout, config: Config) -> bytes:
    """The wrapper's settings: ``[cpu] emulator``, else what is installed, else what the conf had.

    Once the switch points EMULATOR at the wrapper, the conf no longer names
    the real emulator: the installed settings keep it, so a re-install is stable.
    """
    from ..cpu import conf_patch

    installed = wrapper_mod.installed_settings(layout.fs(layout.remotes))
    if config.cpu.emulator or installed is None:
        previous = None
        conf = layout.fs(config.cpu.conf)
        if os.path.exists(conf):
            try:
                previous = conf_patch.state_of(fsio.read_bytes(conf).decode("utf-8"), conf).emulator
            except (OneHooksError, UnicodeDecodeError):
                previous = None  # the CPU switch step reports an unreadable conf itself
        qemu = wrapper_mod.real_emulators(previous, config.cpu.emulator)
    else:
        qemu = list(installed.qemu)
    return wrapper_mod.Settings(tuple(qemu), config.cpu.argument).render()


def install_config(ctx: Context, manifest: Manifest) -> None:
    """Step 1: write the default configuration if there is none; record it when it is ours."""
    layout = ctx.layout
    default = config_mod.default_file_text().encode()
    real = configpath.DEFAULT_PATH
    if ctx.config_written:
        owner = oneadmin_ids()
        # readable by the hooks (oneadmin), writable by root only, like oned's own files
        meta = fsio.FileMeta(0o640, 0, owner[1]) if owner else fsio.FileMeta(0o644, os.getuid(), os.getgid())
        ensure_dir(ctx, manifest, os.path.dirname(real), None)
        ctx.steps.write(f"write the default configuration {real}",
                        lambda: fsio.atomic_write(layout.fs(real), default, meta), real, None, default)
    if os.path.exists(layout.fs(real)) and sha256(fsio.read_bytes(layout.fs(real))) == sha256(default) \
            and not manifest.config:
        # ours even if an earlier run stopped before recording it: it is the untouched default
        manifest.config = {"path": real, "sha256": sha256(default)}


def install_files(ctx: Context, manifest: Manifest) -> List[str]:
    """Steps 2-3: the remotes files. Returns the paths that changed.

    The manifest names every file and directory before any is written, so a
    run interrupted half-way can still be undone (or finished by re-running).
    """
    layout, steps = ctx.layout, ctx.steps
    owner = oneadmin_ids()
    uid, gid = owner if owner else (os.getuid(), os.getgid())
    specs = wanted_files(layout, shipped_remotes(), ctx.python, ctx.config, ctx.hooks_config)
    new_dirs: List[str] = []
    for spec in specs:
        for directory in _missing_dirs(ctx, os.path.dirname(spec.path)):
            if directory not in new_dirs:
                new_dirs.append(directory)
        manifest.files[spec.path] = sha256(spec.data)
    manifest.dirs += [d for d in new_dirs if d not in manifest.dirs]
    manifest.save(ctx, "the files about to be installed")
    for directory in new_dirs:
        _make_dir(ctx, directory, owner)
    changed: List[str] = []
    for spec in specs:
        target = layout.fs(spec.path)
        state = _file_state(target, spec, owner)
        if state:
            before = fsio.read_bytes(target) if os.path.isfile(target) else None
            steps.write(f"{state} {spec.path} (mode {spec.mode:04o})",
                        functools.partial(_write_file, target, spec, uid, gid), spec.path, before, spec.data)
            changed.append(spec.path)
        else:
            steps.note(f"{spec.path}: up to date")
    return changed


# Step actions that run in a loop are module functions bound with functools.partial: each step
# keeps its own iteration's values (as default-argument lambdas did), and mypy can type them.


def _write_file(target: str, spec: FileSpec, uid: int, gid: int) -> None:
    """Step action: write one remotes file with its mode and owner."""
    fsio.atomic_write(target, spec.data, fsio.FileMeta(spec.mode, uid, gid))


def _missing_dirs(ctx: Context, path: str) -> List[str]:
    """``path`` and its parents that do not exist yet, outermost first."""
    missing = []
    probe = path
    while probe and probe != "/" and probe not in ctx.made_dirs and not os.path.isdir(ctx.layout.fs(probe)):
        missing.append(probe)
        probe = os.path.dirname(probe)
    return list(reversed(missing))


def _make_dir(ctx: Context, directory: str, owner: Optional[Tuple[int, int]]) -> None:
    uid, gid = owner if owner else (None, None)
    ctx.steps.do(f"create directory {directory}",
                 lambda: fsio.make_dirs(ctx.layout.fs(directory), 0o755, uid, gid))
    ctx.made_dirs.append(directory)


def ensure_dir(ctx: Context, manifest: Manifest, path: str, owner: Optional[Tuple[int, int]]) -> None:
    """Create ``path`` and its missing parents, remembering the ones we made."""
    for directory in _missing_dirs(ctx, path):
        if directory not in manifest.dirs:
            manifest.dirs.append(directory)
        _make_dir(ctx, directory, owner)


def _file_state(path: str, spec: FileSpec, owner: Optional[Tuple[int, int]]) -> str:
    """'' when the file is as wanted, else the verb describing the change."""
    if not os.path.isfile(path):
        return "install"
    meta = fsio.FileMeta.of(path)
    if fsio.read_bytes(path) != spec.data:
        return "update"
    if meta.mode != spec.mode or (owner and (meta.uid, meta.gid) != owner):
        return "fix mode/owner of"
    return ""

