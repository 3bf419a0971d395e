"""The three hook templates, written down beside the code that registers them.

OpenNebula's own hooks keep their template in a comment at the top of the
script; ours live here, as data, so that ``one-hooks-install`` registers
exactly what is written below and ``--check`` compares against the same text.
As an operator would type them for ``onehook create``::

    NAME            = "one-hooks-host-reconnect"
    TYPE            = "state"
    RESOURCE        = "HOST"
    STATE           = "MONITORED"
    COMMAND         = "one-hooks/host-reconnect"
    ARGUMENTS       = "$TEMPLATE"
    ARGUMENTS_STDIN = "yes"
    REMOTE          = "no"
    TIMEOUT         = "<settle + iSCSI deadline + attempts x wait_running + retry delays + margin>"

    NAME            = "one-hooks-vm-unknown"
    TYPE            = "state"
    RESOURCE        = "VM"
    ON              = "UNKNOWN"
    COMMAND         = "one-hooks/vm-unknown"
    ... (ARGUMENTS, ARGUMENTS_STDIN, REMOTE, TIMEOUT as above)

    NAME            = "one-hooks-vm-poweroff"
    TYPE            = "state"
    RESOURCE        = "VM"
    ON              = "CUSTOM"
    STATE           = "POWEROFF"
    LCM_STATE       = "LCM_INIT"
    COMMAND         = "one-hooks/vm-poweroff"
    ... (ARGUMENTS, ARGUMENTS_STDIN, REMOTE, TIMEOUT as above)

What oned keeps of such a template is not what was sent (``src/hm/Hook.cc``,
``HookStateVM.cc``, and the captured ``one.hookpool.info`` answers): NAME and
TYPE move out of the template into ``<HOOK>``; REMOTE is rewritten as a
boolean (``NO``); for VM hooks ``ON`` is erased and replaced by the STATE and
LCM_STATE it stands for (``ON=UNKNOWN`` -> ``STATE=ACTIVE``,
``LCM_STATE=UNKNOWN``). ``one.hook.update`` does not read ``ON`` at all: it
needs STATE and LCM_STATE. So comparisons and updates use :func:`stored_form`,
the template as oned stores it, and "matches" compares like with like.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ..config import Config
from ..oned.model import Hook
from ..recovery.carry import carry_seconds

#: Seconds added to every TIMEOUT: process start, oned round trips, logging.
TIMEOUT_MARGIN = 60

#: Template attributes that describe the hook object, not its template.
_OBJECT_KEYS = ("NAME", "TYPE")

#: ``ON=`` shorthands for VM hooks, as ``HookStateVM::parse_template`` maps them.
VM_ON_STATES: Mapping[str, Tuple[str, str]] = {
    "PROLOG": ("ACTIVE", "PROLOG"),
    "RUNNING": ("ACTIVE", "RUNNING"),
    "SHUTDOWN": ("ACTIVE", "EPILOG"),
    "STOP": ("STOPPED", "LCM_INIT"),
    "DONE": ("DONE", "LCM_INIT"),
    "UNKNOWN": ("ACTIVE", "UNKNOWN"),
}


@dataclass(frozen=True)
class HookSpec:
    """One of our hooks: what it reacts to and which shim it runs."""

    name: str
    shim: str
    resource: str
    on: str = ""
    state: str = ""
    lcm_state: str = ""

    @property
    def command(self) -> str:
        """COMMAND, relative: oned resolves it under ``REMOTES/hooks``."""
        return f"{SHIM_DIR}/{self.shim}"


#: Directory of the shims under ``REMOTES/hooks``.
SHIM_DIR = "one-hooks"

HOST_RECONNECT = HookSpec("one-hooks-host-reconnect", "host-reconnect", "HOST", state="MONITORED")
VM_UNKNOWN = HookSpec("one-hooks-vm-unknown", "vm-unknown", "VM", on="UNKNOWN")
VM_POWEROFF = HookSpec("one-hooks-vm-poweroff", "vm-poweroff", "VM", on="CUSTOM",
                       state="POWEROFF", lcm_state="LCM_INIT")

HOOKS: Tuple[HookSpec, ...] = (HOST_RECONNECT, VM_UNKNOWN, VM_POWEROFF)
NAMES: Tuple[str, ...] = tuple(h.name for h in HOOKS)


def timeout_for(spec: HookSpec, config: Config) -> int:
    """TIMEOUT in seconds: longer than the longest run the configuration allows.

    onehem kills a hook at TIMEOUT (SIGTERM to its process group, code 255),
    so it must exceed what the hook may legitimately take. Every hook waits
    for the iSCSI gate, then carries the VMs it resumed to an outcome: up to
    ``attempts`` waits for RUNNING (each at most ``wait_running``) with the
    retry delays between them (``retry_delay``, doubling:
    :func:`one_hooks.recovery.carry.carry_seconds`); host-reconnect may also
    keep watching for the settle window (when it runs it inline).
    """
    gate = config.iscsi.deadline if config.iscsi.check else 0.0
    r = config.recovery
    total = gate + carry_seconds(r.attempts, r.wait_running, r.retry_delay)
    if spec.resource == "HOST":
        total += r.settle_seconds
    return int(total) + TIMEOUT_MARGIN


def attributes(spec: HookSpec, config: Config) -> List[Tuple[str, str]]:
    """The template as an operator would write it for ``one.hook.allocate``."""
    attrs = [("NAME", spec.name), ("TYPE", "state"), ("RESOURCE", spec.resource)]
    if spec.on:
        attrs.append(("ON", spec.on))
    if spec.state:
        attrs.append(("STATE", spec.state))
    if spec.lcm_state:
        attrs.append(("LCM_STATE", spec.lcm_state))
    attrs += [
        ("COMMAND", spec.command),
        ("ARGUMENTS", "$TEMPLATE"),
        # Only the literal lowercase "yes" turns stdin on (HookExecutionManager).
        ("ARGUMENTS_STDIN", "yes"),
        # Hooks run on the front-end: nodes hold no API credentials.
        ("REMOTE", "no"),
        ("TIMEOUT", str(timeout_for(spec, config))),
    ]
    return attrs


def stored_form(spec: HookSpec, config: Config) -> Dict[str, str]:
    """The template as oned keeps it after allocate (what ``one.hook.info`` shows)."""
    out: Dict[str, str] = {}
    for key, value in attributes(spec, config):
        if key in _OBJECT_KEYS or key == "ON":
            continue
        out[key] = value
    if spec.resource == "VM" and spec.on and spec.on != "CUSTOM":
        out["STATE"], out["LCM_STATE"] = VM_ON_STATES[spec.on]
    out["REMOTE"] = "NO"
    return out


def render(attrs: List[Tuple[str, str]]) -> str:
    """OpenNebula template text: one ``KEY = "value"`` line per attribute."""
    from ..oned.template import format_value  # the project's one template grammar

    width = max(len(k) for k, _ in attrs)
    return "".join(f"{k.ljust(width)} = {format_value(v)}\n" for k, v in attrs)


def allocate_text(spec: HookSpec, config: Config) -> str:
    """What ``one.hook.allocate`` receives for a new registration."""
    return render(attributes(spec, config))


def update_text(spec: HookSpec, config: Config) -> str:
    """What ``one.hook.update`` receives: the full stored form (replace mode).

    Update does not read ``ON``, so STATE and LCM_STATE are given explicitly;
    NAME and TYPE are object attributes and would end up as stray template
    attributes if repeated here.
    """
    stored = stored_form(spec, config)
    stored["REMOTE"] = "no"
    return render(list(stored.items()))


def _norm(key: str, value: str) -> str:
    if key == "REMOTE":
        return "YES" if value.strip().upper() in ("YES", "TRUE", "1") else "NO"
    if key in ("STATE", "LCM_STATE", "RESOURCE"):
        return value.strip().upper()
    return value


def differences(spec: HookSpec, config: Config, template: Mapping[str, str]) -> List[str]:
    """Why a registered hook's template differs from ours (empty: it matches).

    ``template`` is the stored template (``one.hook.info`` TEMPLATE). Each
    difference is a short human line naming the attribute.
    """
    want = stored_form(spec, config)
    have = {k.upper(): v for k, v in template.items()
            if k.upper() not in _OBJECT_KEYS and k.upper() != "ON"}
    problems: List[str] = []
    for key, value in want.items():
        if key not in have:
            problems.append(f"{key} missing (want {value!r})")
        elif _norm(key, have[key]) != _norm(key, value):
            problems.append(f"{key} is {have[key]!r}, want {value!r}")
    for key in sorted(set(have) - set(want)):
        problems.append(f"{key} is set ({have[key]!r}) but is not ours")
    return problems


def spec_named(name: str) -> Optional[HookSpec]:
    """Our hook of that NAME, or None for a foreign hook."""
    for spec in HOOKS:
        if spec.name == name:
            return spec
    return None


def is_autostart(template: Mapping[str, str]) -> bool:
    """True for OpenNebula's shipped ``autostart`` hooks (they would race ours)."""
    command = {k.upper(): v for k, v in template.items()}.get("COMMAND", "").strip()
    first = command.split()[0] if command else ""
    return first.rstrip("/").endswith(("autostart/host", "autostart/vm"))


@dataclass(frozen=True)
class HookAction:
    """What to do with one of our hooks: ``allocate``, ``update``, ``keep`` or ``delete``."""

    kind: str
    spec: HookSpec
    hook_id: int = -1
    reasons: Tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for the operator (and for ``--dry-run``)."""
        where = f" (ID {self.hook_id})" if self.hook_id >= 0 else ""
        why = "; ".join(self.reasons)
        if self.kind == "keep":
            return f"hook {self.spec.name}{where}: unchanged ({why})"
        verb = {"allocate": "register", "update": "update", "delete": "delete"}[self.kind]
        return f"{verb} hook {self.spec.name}{where}: {why}"


@dataclass(frozen=True)
class HookPlan:
    """Actions on our hooks, plus warnings about hooks we never touch."""

    actions: Tuple[HookAction, ...]
    warnings: Tuple[str, ...] = ()

    @property
    def changes(self) -> Tuple[HookAction, ...]:
        """The actions that change something in oned."""
        return tuple(a for a in self.actions if a.kind != "keep")


def autostart_warnings(pool: Sequence[Hook]) -> List[str]:
    """One warning per registered OpenNebula autostart hook."""
    return [
        f"hook {h.name} (ID {h.id}) runs OpenNebula's autostart: it would race one-hooks "
        f"(both resume the same VMs, autostart without the iSCSI gate); consider 'onehook delete {h.id}'"
        for h in pool if is_autostart(h.template)
    ]


def plan_install(pool: Sequence[Hook], config: Config) -> HookPlan:
    """Register what is missing, update what differs, keep what matches.

    Hooks are ours by NAME; any other hook is left alone. Two hooks with one
    of our names would both fire: the lowest ID is kept, the others deleted.
    """
    actions: List[HookAction] = []
    for spec in HOOKS:
        mine = sorted((h for h in pool if h.name == spec.name), key=lambda h: h.id)
        if not mine:
            actions.append(HookAction("allocate", spec, reasons=("not registered",)))
            continue
        first, extra = mine[0], mine[1:]
        diff = differences(spec, config, first.template)
        actions.append(HookAction("update", spec, first.id, tuple(diff)) if diff
                       else HookAction("keep", spec, first.id, ("matches",)))
        actions += [HookAction("delete", spec, h.id, (f"duplicate of ID {first.id}",)) for h in extra]
    return HookPlan(tuple(actions), tuple(autostart_warnings(pool)))


def plan_uninstall(pool: Sequence[Hook]) -> HookPlan:
    """Delete every hook carrying one of our names, and nothing else."""
    actions = [HookAction("delete", spec, h.id, ("one of ours, by NAME",))
               for h in sorted(pool, key=lambda h: h.id)
               for spec in HOOKS if h.name == spec.name]
    return HookPlan(tuple(actions))


def check_problems(pool: Sequence[Hook], config: Config) -> List[str]:
    """``--check``: one line per missing, differing or duplicated hook of ours."""
    problems: List[str] = []
    for action in plan_install(pool, config).actions:
        if action.kind == "allocate":
            problems.append(f"hook {action.spec.name}: not registered")
        elif action.kind == "update":
            problems.append(f"hook {action.spec.name} (ID {action.hook_id}) differs: "
                            + "; ".join(action.reasons))
        elif action.kind == "delete":
            problems.append(f"hook {action.spec.name} (ID {action.hook_id}): registered twice "
                            f"({action.reasons[0]}), it would run twice per event")
    return problems
