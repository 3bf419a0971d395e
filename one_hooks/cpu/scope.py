"""The CPU switch on a cluster or host template, through oned's API (no oned restart).

OpenNebula looks ``EMULATOR`` and ``CPU_MODEL`` up VM > host > cluster >
``vmm_exec_kvm.conf``, so setting one on a cluster or host template switches
just those hosts. To undo exactly, the value the template had before is kept
in the same template, in ``ONE_HOOKS_CPU_UNDO_<NAME>`` (``none`` when it was
absent, else ``=`` and the value as written), written with the first change
and consumed by ``disable``.

Enable merges (``update`` with append: only our attributes are sent);
disable sends the whole template back without ours (``update`` replace), so a
removed attribute really goes away.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from lxml import etree

from ..errors import CpuError, UsageError
from ..oned.template import Template, Value, format_value, parse

UNDO_PREFIX = "ONE_HOOKS_CPU_UNDO_"
ABSENT = "none"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def parse_scope(text: str) -> Tuple[str, int]:
    """``file`` -> ("file", -1); ``cluster:ID`` / ``host:ID`` -> (kind, ID)."""
    if text == "file":
        return "file", -1
    kind, _, ident = text.partition(":")
    if kind not in ("cluster", "host") or not ident.isdigit():
        raise UsageError(f"--scope must be file, cluster:ID or host:ID, not {text!r}")
    return kind, int(ident)


def template_from_xml(xml: str) -> Template:
    """A ``<TEMPLATE>`` element as OpenNebula template text (what ``onehost update`` shows)."""
    try:
        root = etree.fromstring(xml.encode("utf-8"), _PARSER)
    except etree.XMLSyntaxError as exc:
        raise CpuError(f"unusable TEMPLATE from oned: {exc}") from None
    lines = []
    for child in root:
        if not isinstance(child.tag, str):
            continue
        if len(child):
            value: Value = {sub.tag: sub.text or "" for sub in child if isinstance(sub.tag, str)}
        else:
            value = child.text or ""
        lines.append(f"{child.tag} = {format_value(value)}\n")
    return parse("".join(lines), "<TEMPLATE>")


@dataclass(frozen=True)
class ScopePlan:
    """What to send: nothing (``text`` None), a merge, or a full replacement.

    ``reason`` says what the update does, as a verb phrase ("set ...",
    "remove ...", "restore ..."), so that it reads after "would" in a dry run.
    """

    text: Optional[str]
    append: bool
    reason: str

    def result(self, current: Template) -> str:
        """The template text as it would be once the update is sent."""
        if self.text is None:
            return current.text
        if not self.append:
            return self.text
        merged = parse(current.text)
        for name, value in parse(self.text).items():
            merged.set(name, value)
        return merged.text


def plan_enable(current: Template, name: str, value: Value) -> ScopePlan:
    """Set ``name``; remember its previous value unless already remembered."""
    before = current.get(name)
    if before == value:
        return ScopePlan(None, True, f"{name} is already {format_value(value)}")
    update = parse("")
    update.set(name, value)
    marker = UNDO_PREFIX + name
    if current.get(marker) is None:
        update.set(marker, ABSENT if before is None else "=" + format_value(before))
    return ScopePlan(update.text, True, f"set {name} = {format_value(value)}")


def plan_disable(current: Template, names: List[str]) -> ScopePlan:
    """Restore each of ``names`` that has an undo record; drop the records."""
    result = parse(current.text)
    done = []
    for name in names:
        marker = current.get(UNDO_PREFIX + name)
        if not isinstance(marker, str):
            continue
        if marker == ABSENT:
            result.unset(name)
            done.append(f"remove {name}")
        elif marker.startswith("="):
            previous = parse(f"X = {marker[1:]}\n").get("X")
            assert previous is not None
            result.set(name, previous)
            done.append(f"restore {name} = {marker[1:]}")
        else:
            raise CpuError(f"{UNDO_PREFIX}{name} = {marker!r} is not an undo record of ours")
        result.unset(UNDO_PREFIX + name)
    if not done:
        return ScopePlan(None, False, "no CPU switch of ours on this template")
    return ScopePlan(result.text, False, "; ".join(done))
