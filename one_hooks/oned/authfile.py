"""oned credentials: the ``user:password`` line of an auth file (``~/.one/one_auth``).

A module of its own, importing nothing heavy, because every hook process that
talks to oned reads it, including the hooks' first look (:mod:`one_hooks.hooks.triage`).
The secret never appears in an error message.
"""
from __future__ import annotations

from ..errors import ConfigError


def read_auth(path: str) -> str:
    """The ``user:password`` session string from an auth file (first line)."""
    try:
        with open(path, encoding="utf-8") as fh:
            line = fh.readline().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read auth file: {exc.strerror}", path, "oned") from None
    if ":" not in line or line.startswith(":"):
        raise ConfigError("auth file must hold 'user:password' on its first line", path, "oned")
    return line
