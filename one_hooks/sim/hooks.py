"""Hook registration (``one.hook.*``) and matching, as oned 6.10 does them.

Templates are normalised like oned's ``HookStateVM``/``HookStateHost``:
VM hooks' ``ON=UNKNOWN|RUNNING|...`` becomes ``STATE``/``LCM_STATE`` (``ON``
dropped), ``ON=CUSTOM`` keeps the given ones; host hooks need a valid
``STATE``; ``REMOTE`` defaults to ``NO``; ``NAME`` and ``TYPE`` leave the
template. A state hook fires when its resource *changes* into that state.
"""
from __future__ import annotations

import base64
import os
import posixpath
from typing import List, Optional

from ..errors import UsageError
from ..oned.model import LcmState, VmState
from .faults import ALLOCATE, INTERNAL, NO_EXISTS, Refused
from .hookrun import HookJob
from .objects import SimExecution, SimHook, Tables, del_attr, get_attr, merge_attrs, set_attr
from .tmpl import Attr, parse

#: HookStateVM::parse_template's shorthands.
ON_SHORTHANDS = {
    "PROLOG": (VmState.ACTIVE, LcmState.PROLOG),
    "RUNNING": (VmState.ACTIVE, LcmState.RUNNING),
    "SHUTDOWN": (VmState.ACTIVE, LcmState.EPILOG),
    "STOP": (VmState.STOPPED, LcmState.LCM_INIT),
    "DONE": (VmState.DONE, LcmState.LCM_INIT),
    "UNKNOWN": (VmState.ACTIVE, LcmState.UNKNOWN),
}
HOST_HOOK_STATES = ("INIT", "MONITORED", "ERROR", "DISABLED", "OFFLINE")


def _text(attrs: List[Attr], name: str) -> str:
    value = get_attr(attrs, name)
    return value if isinstance(value, str) else ""


def _parse(text: str, method: str) -> List[Attr]:
    try:
        return parse(text)
    except UsageError as error:
        raise Refused(INTERNAL, f"[{method}] Parse error: {error}") from None


def _check_states(attrs: List[Attr], method: str, allocate: bool) -> None:
    """Validate (and on allocate, normalise) the state condition of a state hook."""
    resource = _text(attrs, "RESOURCE").upper()
    if resource == "VM":
        on = _text(attrs, "ON").upper()
        del_attr(attrs, "ON")
        if allocate and on in ON_SHORTHANDS:
            state, lcm = ON_SHORTHANDS[on]
            set_attr(attrs, "STATE", state.name)
            set_attr(attrs, "LCM_STATE", lcm.name)
        elif allocate and on != "CUSTOM":
            raise Refused(ALLOCATE, f"[{method}] Unkown state condition: {on}")
        if _text(attrs, "STATE").upper() not in VmState.__members__:
            raise Refused(ALLOCATE, f"[{method}] Wrong STATE: {_text(attrs, 'STATE')}")
        if _text(attrs, "LCM_STATE").upper() not in LcmState.__members__:
            raise Refused(ALLOCATE, f"[{method}] Wrong LCM_STATE: {_text(attrs, 'LCM_STATE')}")
    elif resource == "HOST":
        if _text(attrs, "STATE").upper() not in HOST_HOOK_STATES:
            raise Refused(ALLOCATE, f"[{method}] Invalid STATE: {_text(attrs, 'STATE')}")
    else:
        raise Refused(ALLOCATE, f"[{method}] Invalid RESOURCE: {resource or '(none)'}")


class HookRegistry:
    """The hook pool: allocate, update, delete, match, record executions."""

    def __init__(self, tables: Tables, remotes_dir: str) -> None:
        self.tables = tables
        self.remotes_dir = remotes_dir

    def get(self, hook_id: int, method: str) -> SimHook:
        """The hook, or NO_EXISTS."""
        hook = self.tables.hooks.get(hook_id)
        if hook is None:
            raise Refused(NO_EXISTS, f"[{method}] Error getting hook [{hook_id}].")
        return hook

    def allocate(self, text: str) -> int:
        """``one.hook.allocate``: the new hook's ID."""
        method = "one.hook.allocate"
        attrs = _parse(text, method)
        name, kind = _text(attrs, "NAME"), _text(attrs, "TYPE").lower()
        if not name:
            raise Refused(ALLOCATE, f"[{method}] No NAME in template for Hook.")
        if kind not in ("state", "api"):
            raise Refused(ALLOCATE, f"[{method}] Invalid Hook type: {kind or '(none)'}")
        if not _text(attrs, "COMMAND"):
            raise Refused(ALLOCATE, f"[{method}] No COMMAND in template for Hook.")
        if any(hook.name == name for hook in self.tables.hooks.values()):
            raise Refused(ALLOCATE, f"[{method}] NAME is already taken by HOOK "
                                    f"{next(h.id for h in self.tables.hooks.values() if h.name == name)}.")
        del_attr(attrs, "NAME")
        del_attr(attrs, "TYPE")
        if kind == "state":
            _check_states(attrs, method, allocate=True)
        set_attr(attrs, "REMOTE", "YES" if _text(attrs, "REMOTE").upper() == "YES" else "NO")
        hook_id = max(self.tables.hooks, default=-1) + 1
        self.tables.hooks[hook_id] = SimHook(hook_id, name, kind, attrs)
        return hook_id

    def update(self, hook_id: int, text: str, append: bool) -> None:
        """``one.hook.update``: replace (0) or merge (1) the template."""
        method = "one.hook.update"
        hook = self.get(hook_id, method)
        new = _parse(text, method)
        del_attr(new, "NAME")
        del_attr(new, "TYPE")
        attrs = list(hook.template) if append else []
        merge_attrs(attrs, new)
        if not _text(attrs, "COMMAND"):
            raise Refused(INTERNAL, f"[{method}] No COMMAND in template for Hook.")
        if hook.type == "state":
            _check_states(attrs, method, allocate=False)
        hook.template = attrs

    def delete(self, hook_id: int) -> None:
        """``one.hook.delete``."""
        self.get(hook_id, "one.hook.delete")
        del self.tables.hooks[hook_id]

    def matching(self, resource: str, obj: object) -> List[SimHook]:
        """State hooks that fire for ``obj`` (a SimVm or SimHost) in its new state."""
        found = []
        for hook in sorted(self.tables.hooks.values(), key=lambda h: h.id):
            if hook.type != "state" or hook.attr("RESOURCE").upper() != resource:
                continue
            if resource == "HOST" and hook.attr("STATE").upper() == obj.state.name:  # type: ignore[attr-defined]
                found.append(hook)
            elif (resource == "VM" and hook.attr("STATE").upper() == obj.state.name  # type: ignore[attr-defined]
                  and hook.attr("LCM_STATE").upper() == obj.lcm_state.name):  # type: ignore[attr-defined]
                found.append(hook)
        return found

    def job(self, hook: SimHook, payload: str) -> HookJob:
        """The execution onehem would start for ``hook`` with this ``$TEMPLATE``."""
        encoded = base64.b64encode(payload.encode()).decode()
        command = hook.attr("COMMAND")
        if not posixpath.isabs(command):
            command = os.path.join(self.remotes_dir, "hooks", command)
        timeout = float(hook.attr("TIMEOUT")) if hook.attr("TIMEOUT") else None
        if hook.attr("ARGUMENTS_STDIN") == "yes":  # only the literal "yes" turns it on
            return HookJob(hook.id, command, [command], encoded.encode(), encoded, timeout)
        args = [encoded if word == "$TEMPLATE" else word for word in hook.attr("ARGUMENTS").split()]
        return HookJob(hook.id, command, [command, *args], None, " ".join(args), timeout)

    def retry_job(self, hook_id: int, execution_id: int) -> HookJob:
        """``one.hook.retry``: the same arguments again, marked as a retry."""
        method = "one.hook.retry"
        hook = self.get(hook_id, method)
        record: Optional[SimExecution] = next(
            (rec for rec in hook.log if rec.execution_id == execution_id), None)
        if record is None:
            raise Refused(NO_EXISTS, f"[{method}] Error getting execution record {execution_id} "
                                     f"of hook [{hook_id}].")
        job = self.job(hook, "")
        if job.stdin is not None:
            return HookJob(hook.id, job.command, job.argv, record.arguments.encode(),
                           record.arguments, job.timeout, retry=True)
        return HookJob(hook.id, job.command, [job.command, *record.arguments.split()], None,
                       record.arguments, job.timeout, retry=True)

    def record(self, job: HookJob, stdout: bytes, stderr: bytes, code: int, timestamp: int) -> None:
        """Append an execution record to the hook's log (dropped if the hook is gone)."""
        hook = self.tables.hooks.get(job.hook_id)
        if hook is None:
            return
        hook.log.append(SimExecution(job.hook_id, hook.next_execution, timestamp, job.arguments,
                                     job.command, stdout, stderr, code, job.retry))
        hook.next_execution += 1
