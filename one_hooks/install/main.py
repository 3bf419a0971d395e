"""``one-hooks-install``: put one-hooks in place, register its hooks, check it, undo it.

Run once on the front-end, as oneadmin or root. In order:

1. write a default ``/etc/one/one-hooks.conf`` if there is none (never overwrite);
2. copy the shipped remotes (the hook shims, the CPU wrapper) under ``REMOTES``,
   each file atomically (``fsio``), executable, owned by oneadmin when run as
   root; the shims learn which interpreter has ``one_hooks`` installed;
3. record what was installed in a manifest under ``[recovery] state_dir``;
4. register the three state hooks through the API (``hook_templates``):
   missing -> allocate, differing -> update with the full template, matching
   -> left alone, foreign hooks never touched;
5. optionally switch KVM guests to the host CPU (``--cpu-host``);
6. say what is left (``onehost sync -f``, an oned restart), or do it (``--sync``).

Files come before hooks, so a registered hook never points at a missing shim;
every write is atomic, so a failure half-way leaves old or new files, never a
partial one, and re-running finishes the job. ``--dry-run`` prints the same
steps and changes nothing. ``--check`` names every problem; ``--uninstall``
removes what the manifest says was installed and the hooks with our names.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import os
import shlex
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .. import __version__, fsio
from .. import config as config_mod
from .. import configpath
from ..audit import Reporter
from ..cli import run_guarded
from ..config import Config
from ..cpu import wrapper as wrapper_mod
from ..errors import ConfigError, InstallError, OneHooksError, UsageError
from . import hook_templates as ht

PROGRAM = "one-hooks-install"
DEFAULT_REMOTES = wrapper_mod.FRONTEND_REMOTES
#: Where oned copies the remotes on each node (oned.conf SCRIPTS_REMOTE_DIR).
DEFAULT_NODE_REMOTES = wrapper_mod.NODE_REMOTES
MANIFEST_NAME = "install-manifest.json"
PLACEHOLDER = "@PYTHON@"
ONEADMIN = "oneadmin"
#: Where ``[options.data_files]`` puts the remotes tree, under an install prefix.
SHARE_REMOTES = os.path.join("share", "one-hooks", "remotes")


# --- where things are -----------------------------------------------------------


def shipped_remotes() -> str:
    """The remotes tree shipped with the package (a source checkout, or data_files)."""
    import site

    # one_hooks/install/main.py -> the directory holding one_hooks (a checkout's root)
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    candidates = [os.path.join(checkout, "remotes")]
    for prefix in (sys.prefix, getattr(site, "USER_BASE", "") or "", sys.base_prefix, "/usr/local", "/usr"):
        if prefix:
            candidates.append(os.path.join(prefix, SHARE_REMOTES))
    for path in candidates:
        if os.path.isdir(os.path.join(path, "hooks", ht.SHIM_DIR)):
            return path
    raise InstallError("locate shipped files",
                       "no remotes tree found (looked in " + ", ".join(candidates) + "); reinstall the package")


@dataclass(frozen=True)
class Layout:
    """Paths as the installed system sees them, and ``--root`` to reach them."""

    root: str
    remotes: str
    state_dir: str
    node_remotes: str = DEFAULT_NODE_REMOTES

    def fs(self, path: str) -> str:
        """Where ``path`` of the installed system is on this filesystem."""
        return os.path.join(self.root, path.lstrip("/")) if self.root else path

    @property
    def manifest(self) -> str:
        """The manifest path (installed system's view)."""
        return os.path.join(self.state_dir, MANIFEST_NAME)


@dataclass(frozen=True)
class FileSpec:
    """One file to install: installed-system path, content, mode."""

    path: str
    data: bytes
    mode: int


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data`` (what sha256sum prints on the nodes)."""
    return hashlib.sha256(data).hexdigest()


def render_shim(text: bytes, python: str) -> bytes:
    """Put the interpreter into a shim's ``PYTHON=@PYTHON@`` line, and only there.

    Other mentions of the placeholder (the shim's own "not replaced" test) stay.
    """
    lines = text.decode("utf-8").splitlines(keepends=True)
    out = []
    for line in lines:
        body = line.rstrip("\n")
        if body.strip() == f"PYTHON={PLACEHOLDER}":
            indent = body[: len(body) - len(body.lstrip())]
            line = f"{indent}PYTHON={shlex.quote(python)}\n"
        out.append(line)
    return "".join(out).encode("utf-8")


def shim_python(data: bytes) -> Optional[str]:
    """The interpreter a rendered shim runs (its ``PYTHON=`` line), or None."""
    for line in data.decode("utf-8", "replace").splitlines():
        stripped = line.strip()
        if stripped.startswith("PYTHON=") and PLACEHOLDER not in stripped:
            try:
                words = shlex.split(stripped[len("PYTHON="):])
            except ValueError:
                return None
            return words[0] if words else None
    return None


def wanted_files(layout: Layout, source: str, python: str,
                 config: Optional[Config] = None) -> List[FileSpec]:
    """Every file of the shipped remotes tree, as it must be under ``REMOTES``.

    With ``config``, the CPU wrapper's settings file joins them (the real
    emulators to try and the ``-cpu`` value, from ``[cpu]``).
    """
    specs: List[FileSpec] = []
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.startswith(".") or name.lower().startswith("readme"):
                continue
            src = os.path.join(dirpath, name)
            rel = os.path.relpath(src, source)
            data = fsio.read_bytes(src)
            if rel.startswith(os.path.join("hooks", ht.SHIM_DIR) + os.sep):
                data = render_shim(data, python)
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


def oneadmin_ids() -> Optional[Tuple[int, int]]:
    """oneadmin's uid and gid when running as root and the user exists."""
    if os.getuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(ONEADMIN)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


# --- the manifest -----------------------------------------------------------------


@dataclass
class Manifest:
    """What an installation put in place, so that uninstall removes exactly that."""

    files: Dict[str, str] = field(default_factory=dict)   # path -> sha256
    dirs: List[str] = field(default_factory=list)         # directories we created
    config: Dict[str, str] = field(default_factory=dict)  # {"path", "sha256"} if we wrote it
    hooks: Dict[str, int] = field(default_factory=dict)   # NAME -> ID
    cpu: Dict[str, Any] = field(default_factory=dict)     # what the CPU switch reported

    @classmethod
    def read(cls, path: str) -> Optional["Manifest"]:
        """The manifest at ``path`` (filesystem path), or None if there is none."""
        try:
            raw = json.loads(fsio.read_bytes(path))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise InstallError("read manifest", f"{path}: {exc}") from None
        known = {k: raw[k] for k in ("files", "dirs", "config", "hooks", "cpu") if k in raw}
        return cls(**known)

    def render(self) -> bytes:
        """The manifest's file content."""
        body = {"version": 1, "one_hooks": __version__, "files": self.files, "dirs": self.dirs,
                "config": self.config, "hooks": self.hooks, "cpu": self.cpu}
        return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()

    def write(self, path: str) -> None:
        """Write it atomically."""
        fsio.atomic_write(path, self.render(), fsio.FileMeta(0o644, os.getuid(), os.getgid()))

    def save(self, ctx: "Context", what: str) -> None:
        """Record ``what`` in the manifest, as a step, if that changes the file."""
        path = ctx.layout.fs(ctx.layout.manifest)
        if os.path.exists(path) and fsio.read_bytes(path) == self.render():
            return
        ctx.steps.do(f"record {what} in {ctx.layout.manifest}", lambda: self.write(path))


# --- running steps ------------------------------------------------------------------


class Steps:
    """Runs named steps; in dry-run only prints them. A failure names its step."""

    def __init__(self, reporter: Reporter, dry_run: bool) -> None:
        self.reporter = reporter
        self.dry_run = dry_run
        self.changed = 0

    def do(self, title: str, action: Callable[[], Any]) -> Any:
        """Run ``action`` (a change) and report ``title``; wrap any failure."""
        if self.dry_run:
            self.reporter.line(f"would {title}")
            self.changed += 1
            return None
        try:
            result = action()
        except InstallError:
            raise
        except OneHooksError as exc:
            raise InstallError(title, str(exc)) from None
        except OSError as exc:
            raise InstallError(title, f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")) from None
        self.reporter.line(title)
        self.changed += 1
        return result

    def note(self, text: str) -> None:
        """A line about something that needs no change."""
        self.reporter.line(text)


@dataclass
class Context:
    """Everything one run works with; doors are parameters so tests pass real-behaving ones."""

    args: argparse.Namespace
    config: Config
    layout: Layout
    reporter: Reporter
    steps: Steps
    oned_factory: Callable[[Config], Any]
    runner: Any
    python: str
    config_written: bool = False
    extra_lines: List[str] = field(default_factory=list)
    #: directories created (or, in a dry run, that would be) by this run
    made_dirs: List[str] = field(default_factory=list)

    def oned(self) -> Any:
        """The oned door (built on first use)."""
        if not hasattr(self, "_oned"):
            self._oned = self.oned_factory(self.config)
        return self._oned


# --- install ---------------------------------------------------------------------


def install_files(ctx: Context, manifest: Manifest) -> List[str]:
    """Steps 2-3: the remotes files. Returns the paths that changed.

    The manifest names every file and directory before any is written, so a
    run interrupted half-way can still be undone (or finished by re-running).
    """
    layout, steps = ctx.layout, ctx.steps
    owner = oneadmin_ids()
    uid, gid = owner if owner else (os.getuid(), os.getgid())
    specs = wanted_files(layout, shipped_remotes(), ctx.python, ctx.config)
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
            steps.do(f"{state} {spec.path} (mode {spec.mode:04o})",
                     functools.partial(_write_file, target, spec, uid, gid))
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


def _ensure_dir(ctx: Context, manifest: Manifest, path: str, owner: Optional[Tuple[int, int]]) -> None:
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


def register_hooks(ctx: Context, manifest: Manifest) -> None:
    """Step 4: our three hooks in oned, by NAME; foreign hooks are left alone."""
    oned = ctx.oned()
    plan = ht.plan_install(oned.hook_pool(), ctx.config)
    for warning in plan.warnings:
        ctx.reporter.warning(f"warning: {warning}")
    for action in plan.actions:
        spec = action.spec
        if action.kind == "keep":
            ctx.steps.note(action.describe())
            manifest.hooks[spec.name] = action.hook_id
        elif action.kind == "allocate":
            new_id = ctx.steps.do(action.describe(), functools.partial(_allocate_hook, ctx, oned, spec))
            if new_id is not None:
                manifest.hooks[spec.name] = int(new_id)
        elif action.kind == "update":
            ctx.steps.do(action.describe(), functools.partial(_update_hook, ctx, oned, action))
            manifest.hooks[spec.name] = action.hook_id
        else:
            ctx.steps.do(action.describe(), functools.partial(_delete_hook, oned, action))
    manifest.save(ctx, "the hook IDs")


def _allocate_hook(ctx: Context, oned: Any, spec: ht.HookSpec) -> Any:
    """Step action: register one of our hooks; its new ID."""
    return oned.hook_allocate(ht.allocate_text(spec, ctx.config))


def _update_hook(ctx: Context, oned: Any, action: ht.HookAction) -> Any:
    """Step action: replace a registered hook's template with ours."""
    return oned.hook_update(action.hook_id, ht.update_text(action.spec, ctx.config))


def _delete_hook(oned: Any, action: ht.HookAction) -> Any:
    """Step action: remove a hook with one of our names."""
    return oned.hook_delete(action.hook_id)


def install(ctx: Context) -> int:
    """The whole installation; re-running it changes nothing that is already right."""
    layout = ctx.layout
    manifest = Manifest.read(layout.fs(layout.manifest)) or Manifest()
    default = config_mod.default_file_text().encode()
    real = configpath.DEFAULT_PATH
    if ctx.config_written:
        owner = oneadmin_ids()
        # readable by the hooks (oneadmin), writable by root only, like oned's own files
        meta = fsio.FileMeta(0o640, 0, owner[1]) if owner else fsio.FileMeta(0o644, os.getuid(), os.getgid())
        _ensure_dir(ctx, manifest, os.path.dirname(real), None)
        ctx.steps.do(f"write the default configuration {real}",
                     lambda: fsio.atomic_write(layout.fs(real), default, meta))
    if os.path.exists(layout.fs(real)) and sha256(fsio.read_bytes(layout.fs(real))) == sha256(default) \
            and not manifest.config:
        # ours even if an earlier run stopped before recording it: it is the untouched default
        manifest.config = {"path": real, "sha256": sha256(default)}
    if not os.path.isdir(layout.fs(layout.state_dir)):
        _ensure_dir(ctx, manifest, layout.state_dir, oneadmin_ids())
    changed = install_files(ctx, manifest)
    register_hooks(ctx, manifest)
    conf_changed = cpu_switch(ctx, manifest) if ctx.args.cpu_host else False
    return finish(ctx, changed, conf_changed)


def unroot(layout: Layout, path: str) -> str:
    if layout.root and path.startswith(layout.root.rstrip("/") + "/"):
        return "/" + path[len(layout.root.rstrip("/")):].lstrip("/")
    return path


def cpu_setting(ctx: Context, mode: str) -> str:
    """What ``--cpu-host=MODE`` sets in ``vmm_exec_kvm.conf``, said in one line."""
    if mode == "native":
        return "CPU_MODEL = [ MODEL = \"host-passthrough\" ]"
    return f"EMULATOR = {wrapper_node_path(ctx)}"


def wrapper_node_path(ctx: Context) -> str:
    """The wrapper as nodes see it: their copy of the remotes (``onehost sync``)."""
    return wrapper_mod.node_emulator(ctx.layout.node_remotes)


def cpu_switch(ctx: Context, manifest: Manifest) -> bool:
    """Step 5: the host-CPU switch in ``[cpu] conf``. True if oned must re-read that file."""
    from ..cpu import conf_patch

    mode = ctx.args.cpu_host
    conf_real = ctx.config.cpu.conf
    conf = ctx.layout.fs(conf_real)
    what = cpu_setting(ctx, mode)
    # conf_patch.enable, as 'one-hooks cpu enable' uses it: one switch, one set of checks.
    switch = functools.partial(conf_patch.enable, conf, mode, wrapper_node_path(ctx))
    try:
        preview = switch(dry_run=True)
    except OneHooksError as exc:
        raise InstallError(f"switch KVM guests to the host CPU in {conf_real}", str(exc)) from None
    manifest.cpu = {"mode": mode, "conf": conf_real}
    if not preview.changed:
        ctx.steps.note(f"{conf_real}: {what} already in place")
    else:
        ctx.steps.do(f"set {what} in {conf_real} (backup {conf_patch.backup_path(conf_real)})",
                     switch)
    manifest.save(ctx, "the CPU switch")
    if mode == "native":
        ctx.extra_lines.append("note: running VMs get the host CPU after poweroff + resume "
                               "(the domain XML is regenerated on deploy)")
    return bool(preview.changed)


def finish(ctx: Context, changed: Sequence[str], conf_changed: bool) -> int:
    """Step 6: tell the operator what is left, or do it with ``--sync``."""
    todo: List[Tuple[str, List[str], str]] = []  # why, argv, who must run it
    if changed:
        todo.append(("copy the remotes to every node", ["onehost", "sync", "--force"], ONEADMIN))
    if conf_changed:
        todo.append(("restart oned so it re-reads vmm_exec_kvm.conf",
                     ["systemctl", "restart", "opennebula"], "root"))
    verb = "would change" if ctx.steps.dry_run else "changed"
    ctx.reporter.line(f"done: {ctx.steps.changed} step(s) {verb}" if ctx.steps.changed
                      else "done: nothing to change, the installation is complete")
    for why, argv, who in todo:
        if ctx.args.sync and not ctx.steps.dry_run:
            ctx.steps.do(f"{why}: {' '.join(argv)}", functools.partial(_run_command, ctx, _as(who, argv)))
        else:
            ctx.reporter.line(f"left to do: {why}: run '{' '.join(argv)}' as {who}"
                              + ("" if ctx.steps.dry_run else " (or re-run with --sync)"))
    for line in ctx.extra_lines:
        ctx.reporter.line(line)
    return 0


def _as(who: str, argv: List[str]) -> List[str]:
    """``argv`` run as ``who``: root switches to oneadmin for onehost, which refuses to run as root."""
    if who == ONEADMIN and os.getuid() == 0 and oneadmin_ids() is not None:
        return ["runuser", "-u", ONEADMIN, "--", *argv]
    return argv


def _run_command(ctx: Context, argv: List[str]) -> Any:
    """Step action: one of the commands left to do (``--sync``)."""
    return ctx.runner.run(argv, timeout=600.0)


# --- uninstall ---------------------------------------------------------------------


def uninstall(ctx: Context) -> int:
    """Remove the hooks with our names, revert the CPU switch, remove installed files.

    Hooks go first, so none fires a shim that is already gone; the manifest
    goes last, so an uninstall that fails half-way can be re-run.
    """
    layout, steps = ctx.layout, ctx.steps
    manifest = Manifest.read(layout.fs(layout.manifest))
    if manifest is None:
        steps.note(f"no manifest at {layout.manifest}: removing our hooks only")
        manifest = Manifest()
    oned = ctx.oned()
    for action in ht.plan_uninstall(oned.hook_pool()).actions:
        steps.do(action.describe(), functools.partial(_delete_hook, oned, action))
    if manifest.cpu:
        cpu_revert(ctx, manifest)
    removed = 0
    for path, digest in sorted(manifest.files.items()):
        target = layout.fs(path)
        if not os.path.lexists(target):
            steps.note(f"{path}: already gone")
            continue
        if not os.path.isfile(target) or os.path.islink(target):
            ctx.reporter.warning(f"warning: {path} is not a regular file any more: left alone")
            continue
        removed += 1
        if sha256(fsio.read_bytes(target)) != digest:
            ctx.reporter.warning(f"warning: {path} was changed after installation; removing it anyway")
        steps.do(f"remove {path}", functools.partial(fsio.remove, target))
    if manifest.config:
        _remove_config(ctx, manifest.config)
    steps.do(f"remove {layout.manifest}", lambda: fsio.remove(layout.fs(layout.manifest)))
    for directory in sorted(manifest.dirs, key=len, reverse=True):
        target = layout.fs(directory)
        if not os.path.isdir(target):
            continue
        if os.listdir(target):
            steps.note(f"{directory}: kept (holds files one-hooks did not install, or runtime state)")
            continue
        steps.do(f"remove directory {directory}", functools.partial(os.rmdir, target))
    ctx.reporter.line(f"done: {steps.changed} step(s) {'would change' if steps.dry_run else 'changed'}")
    if removed:
        ctx.reporter.line("left to do: run 'onehost sync --force' as oneadmin so nodes drop the removed files")
    return 0


def _remove_config(ctx: Context, record: Dict[str, str]) -> None:
    path = record.get("path", "")
    target = ctx.layout.fs(path)
    if not path or not os.path.exists(target):
        return
    if sha256(fsio.read_bytes(target)) != record.get("sha256"):
        ctx.steps.note(f"{path}: kept (edited since installation)")
        return
    ctx.steps.do(f"remove {path} (the untouched default)", lambda: fsio.remove(target))


def cpu_revert(ctx: Context, manifest: Manifest) -> None:
    """Undo the CPU switch recorded in the manifest (the file comes back from its backup)."""
    from ..cpu import conf_patch

    conf_real = str(manifest.cpu.get("conf") or ctx.config.cpu.conf)
    conf = ctx.layout.fs(conf_real)
    if not os.path.exists(conf_patch.backup_path(conf)):
        ctx.steps.note(f"{conf_real}: no one-hooks backup, nothing to revert")
        return
    ctx.steps.do(f"revert the CPU switch in {conf_real} (then restart oned)",
                 lambda: conf_patch.revert(conf))


# --- entry point ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``one-hooks-install``."""
    parser.add_argument("--remotes", metavar="DIR", default=DEFAULT_REMOTES,
                        help=f"oned's remotes directory (default {DEFAULT_REMOTES})")
    parser.add_argument("--root", metavar="DIR", default="",
                        help="put every filesystem path under DIR (packaging, tests)")
    parser.add_argument("--config", metavar="PATH",
                        help="configuration file (default: $ONE_HOOKS_CONFIG, else "
                             f"{configpath.DEFAULT_PATH}, written with the defaults if absent)")
    parser.add_argument("--cpu-host", nargs="?", const="native", choices=("native", "wrapper"),
                        help="also switch KVM guests to the host CPU (default mode: native)")
    parser.add_argument("--python", metavar="PATH", default=sys.executable,
                        help="interpreter the shims run (default: this one)")
    parser.add_argument("--node-remotes", metavar="DIR", default=DEFAULT_NODE_REMOTES,
                        help=f"where nodes keep their copy of the remotes (default {DEFAULT_NODE_REMOTES})")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="verify an installation, name every problem")
    mode.add_argument("--uninstall", action="store_true", help="remove what was installed, and our hooks")
    parser.add_argument("--dry-run", action="store_true", help="print every step, change nothing")
    parser.add_argument("--sync", action="store_true",
                        help="finish by running 'onehost sync --force' (and restarting oned if needed)")


def _default_oned(config: Config) -> Any:
    from ..oned.client import Oned

    return Oned.from_config(config.oned)


def load_config(args: argparse.Namespace, root: str,
                environ: Optional[Dict[str, str]] = None) -> Tuple[Config, bool]:
    """The configuration, and whether the default file is missing (install writes it)."""
    env = dict(os.environ if environ is None else environ)
    if args.config or env.get(configpath.ENV_PATH):
        return config_mod.load(args.config, env), False
    real = configpath.DEFAULT_PATH
    path = os.path.join(root, real.lstrip("/")) if root else real
    if os.path.exists(path):
        return config_mod.load(path, env), False
    if args.check:
        raise ConfigError("missing: one-hooks-install writes it", real)
    # Not there yet: install() writes it as its first step; read the defaults it will hold.
    return dataclasses.replace(defaults(env), path=path), True


def defaults(env: Dict[str, str]) -> Config:
    """The configuration the default file gives, resolved in ``env`` (oned endpoint, auth)."""
    with tempfile.NamedTemporaryFile(suffix=".conf") as tmp:
        tmp.write(config_mod.default_file_text().encode())
        tmp.flush()
        return config_mod.load(tmp.name, env)


def run(args: argparse.Namespace, *, reporter: Optional[Reporter] = None,
        oned_factory: Optional[Callable[[Config], Any]] = None, runner: Any = None,
        environ: Optional[Dict[str, str]] = None) -> int:
    """Carry out what the options ask. Doors (oned, subprocesses) may be passed in."""
    from ..node.runner import Runner

    reporter = reporter or Reporter()
    if args.dry_run and args.check:
        raise UsageError("--dry-run and --check do not go together (--check changes nothing)")
    if args.sync and (args.check or args.uninstall):
        raise UsageError("--sync goes with an installation, not with --check or --uninstall")
    root = os.path.abspath(args.root) if args.root else ""
    if root and not os.path.isdir(root):
        raise UsageError(f"--root {args.root}: no such directory")
    steps = Steps(reporter, args.dry_run)
    config_problem = ""
    written = False
    try:
        config, written = load_config(args, root, environ)
    except ConfigError as exc:
        if not args.check:
            raise
        config_problem = str(exc)
        config = defaults(dict(os.environ if environ is None else environ))
    layout = Layout(root, os.path.abspath(args.remotes), config.recovery.state_dir,
                    os.path.abspath(args.node_remotes))
    _log_to(layout.fs(config.log.file), reporter)
    ctx = Context(args, config, layout, reporter, steps, oned_factory or _default_oned,
                  runner or Runner(), args.python, written)
    if args.config and os.path.abspath(args.config) != configpath.DEFAULT_PATH and not args.check:
        ctx.extra_lines.append(f"note: hooks read {configpath.DEFAULT_PATH} (or $ONE_HOOKS_CONFIG in "
                               f"oned's environment), not {args.config}")
    if args.check:
        from .check import check  # the --check code lives in its own module

        return check(ctx, config_problem)
    if args.uninstall:
        return uninstall(ctx)
    return install(ctx)


def _log_to(path: str, reporter: Reporter) -> None:
    """Keep the installer's lines in the one-hooks log when its directory exists."""
    import logging

    from .. import audit

    if path != "-" and os.path.isdir(os.path.dirname(path)) and os.access(os.path.dirname(path), os.W_OK):
        reporter.logger = audit.setup(dataclasses.replace(config_mod.LogSection(), file=path), PROGRAM)
    else:
        # No log directory (a fresh --root, a front-end without /var/log/one): stdout only.
        quiet = logging.getLogger(f"{audit.LOGGER_NAME}.install")
        quiet.handlers = [logging.NullHandler()]
        quiet.propagate = False
        reporter.logger = quiet


def build_parser() -> argparse.ArgumentParser:
    """The ``one-hooks-install`` parser."""
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Install one-hooks on an OpenNebula front-end: copy the hook shims and the CPU "
                    "wrapper under the remotes directory, register the three state hooks, and check "
                    "or undo that.",
        epilog="exit codes: 0 done, 1 a step failed or --check found problems (each named), "
               "2 bad arguments or configuration (nothing changed).")
    add_arguments(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console script ``one-hooks-install``."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return int(exc.code or 0) and 2
    return run_guarded(lambda: run(args), PROGRAM)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
