"""Watch claims: which host-reconnect process watches which host, until when.

A claim is ``<state_dir>/watch/host-<ID>.claim`` holding one line ``PID UNTIL``
(``UNTIL`` in wall-clock seconds; plain text, because ``json`` would cost every
VM hook the import of ``re``). The :class:`~one_hooks.recovery.ledger.Ledger` writes
claims; VM hooks read them, most of them in the hook's first look
(:mod:`one_hooks.hooks.triage`), before anything heavy is imported. So this module
imports only ``os``, and returns plain tuples.

A claim counts only while its time is not over and its process is a live
one-hooks process: a crashed watcher must never leave VMs unattended, and a
recycled PID running something else proves nothing.
"""
from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs every hook ~8 ms
    from typing import Optional, Tuple

WATCH_DIR = "watch"


def claim_name(host_id: int) -> str:
    """The file name of the claim on ``host_id`` (inside ``<state_dir>/watch``)."""
    return f"host-{int(host_id)}.claim"


def claim_path(state_dir: str, host_id: int) -> str:
    """Where the claim on ``host_id`` lives."""
    return os.path.join(state_dir, WATCH_DIR, claim_name(host_id))


def encode(pid: int, until: float) -> bytes:
    """The content of a claim by process ``pid`` until wall time ``until``."""
    return f"{int(pid)} {float(until)!r}\n".encode("ascii")


def live_claim(state_dir: str, host_id: int, now: float) -> "Optional[Tuple[int, float]]":
    """``(pid, until)`` of the live claim on ``host_id`` at wall time ``now``, else None.

    An unreadable or malformed claim counts as none (the VM hook then acts).
    """
    try:
        with open(claim_path(state_dir, host_id), "rb") as fh:
            pid_text, until_text = fh.read(200).split()
        pid, until = int(pid_text), float(until_text)
    except (OSError, ValueError):
        return None
    if not until < float("inf") or until <= now or not alive(pid):  # NaN, inf: malformed
        return None
    return pid, until


def alive(pid: int) -> bool:
    """Is ``pid`` a live one-hooks process? (A recycled PID running something else is not.)"""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"one_hooks" in fh.read()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc to read: fall back to "some process has that PID"
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
