"""The installation manifest: what an installation put in place, so that uninstall removes exactly that.

Kept under ``[recovery] state_dir``; every step that changes what is
installed records it here first (see :meth:`Manifest.save`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .. import __version__, fsio
from ..errors import InstallError
from .context import Context


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
        before = ctx.steps.content(ctx.layout.manifest, path)
        after = self.render()
        if before == after:
            return
        ctx.steps.write(f"record {what} in {ctx.layout.manifest}", lambda: self.write(path),
                        ctx.layout.manifest, before, after)

