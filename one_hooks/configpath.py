"""Which configuration file one-hooks reads, and how to tell that it changed.

Kept apart from :mod:`one_hooks.config` (whose option declarations need
``dataclasses`` and ``configobj``) because the hooks' first look
(:mod:`one_hooks.hooks.triage`) needs these answers without paying for those imports.
"""
from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs every hook ~8 ms
    from typing import Mapping, Optional, Tuple

DEFAULT_PATH = "/etc/one/one-hooks.conf"
ENV_PATH = "ONE_HOOKS_CONFIG"


def resolve_path(explicit: "Optional[str]", environ: "Mapping[str, str]") -> "Tuple[str, bool]":
    """Which config file to read, and whether it must exist.

    ``--config`` wins, then ``$ONE_HOOKS_CONFIG``; both must name an existing
    file. The default ``/etc/one/one-hooks.conf`` may be absent (defaults apply).
    """
    if explicit:
        return explicit, True
    if environ.get(ENV_PATH):
        return environ[ENV_PATH], True
    return DEFAULT_PATH, False


def file_stamp(path: str) -> "Tuple[int, ...]":
    """What identifies this version of the file: device, inode, size, mtime, ctime (ns).

    ``()`` when there is no such file. An edit, a replacement (new inode) or a
    ``touch`` all change the stamp.
    """
    try:
        st = os.stat(path)
    except OSError:
        return ()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
