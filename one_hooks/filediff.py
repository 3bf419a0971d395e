"""A planned file change, shown as the unified diff it would make: what every dry run prints.

``one-hooks cpu enable|disable --dry-run`` and ``one-hooks-install --dry-run``
(its configuration file, the shims, the wrapper and its settings, the
manifest, the driver config) show each file they would write through
:func:`unified`, so the operator reads the change itself, not a promise of one.
Pure: it receives the two contents and returns lines; nothing is read or written.
"""
from __future__ import annotations

import difflib
from typing import List, Optional, Union

Content = Union[str, bytes, None]

#: ``--- /dev/null``: the file does not exist (before) or would be removed (after).
NO_FILE = "/dev/null"


def _text(content: Union[str, bytes]) -> Optional[str]:
    """The content as text, or None when it is not UTF-8 (shown as a summary, not a diff)."""
    if isinstance(content, str):
        return content
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _lines(text: str) -> List[str]:
    """Lines for difflib, each ending in a newline; a last line without one is marked as diff does."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines


def unified(path: str, before: Content, after: Content, context: int = 3) -> List[str]:
    """The unified diff that turns ``before`` into ``after`` in ``path``, one string per line.

    ``before`` None: the file would be created (``--- /dev/null``); ``after``
    None: it would be removed (``+++ /dev/null``). Equal contents give no
    lines. Content that is not UTF-8 text gives one summary line instead.
    """
    if before == after:
        return []
    old = "" if before is None else _text(before)
    new = "" if after is None else _text(after)
    if old is None or new is None:
        sizes = " -> ".join("absent" if c is None else f"{len(c)} bytes" for c in (before, after))
        return [f"binary file {path} would change ({sizes})"]
    diff = difflib.unified_diff(_lines(old), _lines(new),
                                fromfile=NO_FILE if before is None else path,
                                tofile=NO_FILE if after is None else path, n=context)
    return [line for chunk in diff for line in chunk.rstrip("\n").split("\n")]
