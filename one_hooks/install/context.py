"""What one ``one-hooks-install`` run works with: where things are, its steps, its doors.

:class:`Layout` (paths as the installed system sees them, and ``--root`` to
reach them), :class:`Steps` (runs each change as a named step, or only names
it in a dry run) and :class:`Context` (all of it, with the oned and
subprocess doors as parameters), plus who owns the installed files.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from .. import filediff, fsio
from ..audit import Reporter
from ..config import Config
from ..cpu import wrapper as wrapper_mod
from ..errors import InstallError, OneHooksError

DEFAULT_REMOTES = wrapper_mod.FRONTEND_REMOTES
#: Where oned copies the remotes on each node (oned.conf SCRIPTS_REMOTE_DIR).
DEFAULT_NODE_REMOTES = wrapper_mod.NODE_REMOTES
MANIFEST_NAME = "install-manifest.json"
ONEADMIN = "oneadmin"


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


def unroot(layout: Layout, path: str) -> str:
    """``path`` (a filesystem path under ``--root``) as the installed system sees it."""
    if layout.root and path.startswith(layout.root.rstrip("/") + "/"):
        return "/" + path[len(layout.root.rstrip("/")):].lstrip("/")
    return path


# --- running steps ------------------------------------------------------------------


class Steps:
    """Runs named steps; in dry-run only prints them. A failure names its step."""

    def __init__(self, reporter: Reporter, dry_run: bool) -> None:
        self.reporter = reporter
        self.dry_run = dry_run
        self.changed = 0
        #: what a dry run would have written so far, by installed-system path
        self.planned: Dict[str, bytes] = {}

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

    def write(self, title: str, action: Callable[[], Any], path: str,
              before: "Optional[bytes | str]", after: "Optional[bytes | str]") -> Any:
        """A step that writes ``path`` (installed-system view): a dry run also shows its diff."""
        result = self.do(title, action)
        if self.dry_run:
            self.reporter.show(filediff.unified(path, before, after))
            if after is not None:
                self.planned[path] = after.encode() if isinstance(after, str) else after
        return result

    def content(self, path: str, fs_path: str) -> Optional[bytes]:
        """``path``'s content at this point of the run: as a dry run would have left it, else as it is."""
        if path in self.planned:
            return self.planned[path]
        return fsio.read_bytes(fs_path) if os.path.isfile(fs_path) else None

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
    #: the configuration file the shims give the hooks (installed-system path; '' for the default)
    hooks_config: str = ""
    extra_lines: List[str] = field(default_factory=list)
    #: directories created (or, in a dry run, that would be) by this run
    made_dirs: List[str] = field(default_factory=list)

    def oned(self) -> Any:
        """The oned door (built on first use)."""
        if not hasattr(self, "_oned"):
            self._oned = self.oned_factory(self.config)
        return self._oned

