"""A small, locked-down element tree from the stdlib's C parser (expat), for the hook path.

Two readers on the hook path must not pay for lxml (about 20 ms of CPU per
process): XML-RPC answers (:mod:`one_hooks.oned.wire`) and the VM hooks' first
look at their payload (:mod:`one_hooks.hooks.triage`). Both read documents from
outside, so both get the same refusals here: no DOCTYPE, no entity
declaration, no external entity, no parameter entities, and a depth cap
(recursive readers stay far from Python's recursion limit; libxml2 has such a
cap too). Namespaces are processed as lxml does: ``<a xmlns="u">`` is the
element ``{u}a``, an unbound prefix is an error.

Comments are invisible; processing instructions are invisible too unless the
caller refuses them. An element keeps its content in document order (text
pieces and child elements), which gives both lxml's ``.text`` (the text
before the first child) and ``itertext()``.
"""
from __future__ import annotations

import pyexpat  # the C parser itself: xml.parsers.expat only re-exports it, at an extra cost

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs every hook ~8 ms
    from typing import List, Optional, Union


class Refused(Exception):
    """The document is not plain, well-formed XML of the kind accepted here (one line)."""


class Element:
    """An element: its tag and its content (text pieces and child elements, in order)."""

    __slots__ = ("tag", "content")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.content: "List[Union[str, Element]]" = []

    @property
    def children(self) -> "List[Element]":
        """The child elements, in document order."""
        return [c for c in self.content if isinstance(c, Element)]

    def text(self) -> str:
        """The text before the first child element (lxml's ``.text``, '' if none)."""
        pieces = []
        for c in self.content:
            if isinstance(c, Element):
                break
            pieces.append(c)
        return "".join(pieces)

    def all_text(self) -> str:
        """All text inside, nested elements' included (lxml's ``"".join(itertext())``)."""
        return "".join(c if isinstance(c, str) else c.all_text() for c in self.content)

    def find_all(self, *path: str) -> "List[Element]":
        """The elements at child ``path`` below this one, in document order (ElementPath's)."""
        level = [self]
        for tag in path:
            level = [child for parent in level for child in parent.children if child.tag == tag]
        return level

    def find(self, *path: str) -> "Optional[Element]":
        """The first element at child ``path`` below this one, or None."""
        found = self.find_all(*path)
        return found[0] if found else None


def parse(data: bytes, max_depth: int, refuse_pis: bool = False, max_name: int = 0) -> Element:
    """The root element of ``data``; :class:`Refused` with the reason otherwise.

    ``max_name`` (0: no limit) refuses longer element and attribute names:
    libxml2 refuses names over 50,000 characters unless told otherwise, so a
    reader that must agree with lxml sets a limit below that.
    """
    parser = pyexpat.ParserCreate(namespace_separator="}")
    parser.buffer_text = True  # one callback per text run, not one per line or entity
    parser.buffer_size = 1 << 16
    parser.ordered_attributes = True  # attributes are not kept: skip building dicts
    parser.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)
    document = Element("")
    stack = [document]

    def start(name: str, attributes: "List[str]") -> None:
        if len(stack) > max_depth:
            raise Refused(f"nests deeper than {max_depth} elements")
        if max_name and (len(name) > max_name or any(
                len(a) > max_name for a in attributes[::2])):  # [name, value, ...]
            raise Refused(f"has a name longer than {max_name} characters")
        node = Element("{" + name if "}" in name else name)
        stack[-1].content.append(node)
        stack.append(node)

    def end(name: str) -> None:
        stack.pop()

    def text(data: str) -> None:
        stack[-1].content.append(data)

    def refuse_pi(target: str, data: str) -> None:
        raise Refused("has a processing instruction")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_entity
    parser.ExternalEntityRefHandler = _refuse_external_entity
    if refuse_pis:
        parser.ProcessingInstructionHandler = refuse_pi
    try:
        parser.Parse(data, True)
    except pyexpat.ExpatError as exc:
        raise Refused(f"is not XML ({exc})") from None
    return document.children[0]  # expat guarantees exactly one root element


def _refuse_doctype(*_: object) -> None:
    raise Refused("has a DOCTYPE declaration: DOCTYPE declarations are not accepted")


def _refuse_entity(*_: object) -> None:
    raise Refused("declares an entity: entity declarations are not accepted")


def _refuse_external_entity(*_: object) -> int:
    raise Refused("refers to an external entity: external entities are not resolved")
