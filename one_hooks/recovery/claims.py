"""Claims: which process watches which host, and which process carries which VM.

A watch claim is ``<state_dir>/watch/host-<ID>.claim`` holding one line
``PID UNTIL`` (``UNTIL`` in wall-clock seconds): a host-reconnect process
watches the host until then. A carry claim is ``<state_dir>/carry/vm-<ID>.claim``
holding ``PID START TOKEN UNTIL WHO``: the process that resumed the VM carries
it to a final outcome (RUNNING, gave up, timeout), and other hook processes
leave the VM to it. Plain text, because ``json`` would cost every VM hook the
import of ``re``. The :class:`~one_hooks.recovery.ledger.Ledger` writes claims;
VM hooks read them, most of them in the hook's first look
(:mod:`one_hooks.hooks.triage`), before anything heavy is imported. So this
module imports only ``os``, and returns plain tuples.

A claim counts only while its time is not over and its process is alive: a
crashed watcher or carrier must never leave VMs unattended. A watch claim's
process must be a one-hooks process (a recycled PID running something else
proves nothing); a carry claim also names the process's start time (field 22
of ``/proc/PID/stat``), which a recycled PID does not share, and a ``TOKEN``
telling apart several carriers inside one process (threads of a test, or
``one-hooks recover`` over many hosts).
"""
from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs every hook ~8 ms
    from typing import Dict, Optional, Tuple

WATCH_DIR = "watch"
CARRY_DIR = "carry"
#: host-error's watchers (issue 12): one per failed host, waiting out the grace, then evacuating
EVACUATE_DIR = "evacuate"


def claim_name(host_id: int) -> str:
    """The file name of the claim on ``host_id`` (inside ``<state_dir>/watch``)."""
    return f"host-{int(host_id)}.claim"


def claim_path(state_dir: str, host_id: int, kind: str = WATCH_DIR) -> str:
    """Where the claim on ``host_id`` lives (``kind``: the claims' folder, watch or evacuate)."""
    return os.path.join(state_dir, kind, claim_name(host_id))


def encode(pid: int, until: float) -> bytes:
    """The content of a claim by process ``pid`` until wall time ``until``."""
    return f"{int(pid)} {float(until)!r}\n".encode("ascii")


def live_claim(state_dir: str, host_id: int, now: float,
               kind: str = WATCH_DIR) -> "Optional[Tuple[int, float]]":
    """``(pid, until)`` of the live claim on ``host_id`` at wall time ``now``, else None.

    An unreadable or malformed claim counts as none (the VM hook then acts).
    """
    try:
        with open(claim_path(state_dir, host_id, kind), "rb") as fh:
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
            words = fh.read()
        # python -m one_hooks (hooks, watchers) or the one-hooks console script (evacuate).
        return b"one_hooks" in words or b"one-hooks" in words
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


# --- carry claims ---------------------------------------------------------------


def carry_name(vm_id: int) -> str:
    """The file name of the carry claim on ``vm_id`` (inside ``<state_dir>/carry``)."""
    return f"vm-{int(vm_id)}.claim"


def carry_path(state_dir: str, vm_id: int) -> str:
    """Where the carry claim on ``vm_id`` lives."""
    return os.path.join(state_dir, CARRY_DIR, carry_name(vm_id))


def encode_carry(pid: int, start: int, token: str, until: float, who: str) -> bytes:
    """The content of a carry claim: process ``pid`` (started at ``start``) carries the VM."""
    words = (str(int(pid)), str(int(start)), token, repr(float(until)), who)
    if any(not w or any(c.isspace() for c in w) for w in words):
        raise ValueError(f"carry claim words must be non-empty and without spaces: {words!r}")
    return (" ".join(words) + "\n").encode("ascii")


def live_carrier(state_dir: str, vm_id: int, now: float,
                 own_tokens: "frozenset[str] | set[str]" = frozenset()) -> "Optional[Tuple[int, str, str]]":
    """``(pid, token, who)`` of the live process carrying ``vm_id`` at wall time ``now``, else None.

    A claim of this very process counts only if its token is in
    ``own_tokens`` (the carriers still running here). Unreadable or malformed: none.
    """
    claim = _live_carry(carry_path(state_dir, vm_id), now, own_tokens)
    return (claim[0], claim[1], claim[3]) if claim is not None else None


def live_carriers(state_dir: str, now: float) -> "Dict[int, Tuple[int, str, float]]":
    """Every live carry claim under ``state_dir`` at wall time ``now``: VM ID -> ``(pid, who, until)``.

    Read only (``one-hooks status``): one directory listing, one read per claim.
    """
    directory = os.path.join(state_dir, CARRY_DIR)
    try:
        names = os.listdir(directory)
    except OSError:
        return {}
    found = {}
    for name in names:
        if name.startswith("vm-") and name.endswith(".claim") and name[3:-6].isdigit():
            claim = _live_carry(os.path.join(directory, name), now, frozenset())
            if claim is not None:
                found[int(name[3:-6])] = (claim[0], claim[3], claim[2])
    return found


def _live_carry(path: str, now: float,
                own_tokens: "frozenset[str] | set[str]") -> "Optional[Tuple[int, str, float, str]]":
    """``(pid, token, until, who)`` of the carry claim at ``path`` if it is live at ``now``, else None."""
    try:
        with open(path, "rb") as fh:
            pid_text, start_text, token_b, until_text, who_b = fh.read(400).split()
        pid, start, until = int(pid_text), int(start_text), float(until_text)
        token, who = token_b.decode("ascii"), who_b.decode("ascii")
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not until < float("inf") or until <= now or pid <= 0:
        return None
    if pid == os.getpid():
        return (pid, token, until, who) if token in own_tokens else None
    started = start_time(pid)
    if started is None:  # no /proc to read: fall back to "a one-hooks process has that PID"
        return (pid, token, until, who) if not os.path.isdir("/proc/self") and alive(pid) else None
    return (pid, token, until, who) if started == start else None


def start_time(pid: int) -> "Optional[int]":
    """When process ``pid`` started (clock ticks since boot), None if it is gone or a zombie."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as fh:
            data = fh.read()
        fields = data.rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    try:
        # After "(comm)": state is field 3, starttime field 22 (proc(5)).
        return None if fields[0] == b"Z" else int(fields[19])
    except (IndexError, ValueError):
        return None
