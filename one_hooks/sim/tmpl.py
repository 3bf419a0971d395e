"""Template text clients send the simulated oned -> its attributes.

``one.hook.allocate`` and the ``one.*.update`` calls carry OpenNebula
template syntax; the project's one parser (:mod:`one_hooks.oned.template`) reads
it. The simulator stores attributes as a list of ``(NAME, value)`` in the
order written, duplicates kept (several ``DISK`` vectors), vectors as
``(KEY, value)`` pairs, which is how oned's ``Template`` holds them.
"""
from __future__ import annotations

from typing import List, Tuple, Union

from ..oned import template

#: A single value, or a vector attribute's (name, value) pairs.
Value = Union[str, List[Tuple[str, str]]]
Attr = Tuple[str, Value]


def parse(text: str) -> List[Attr]:
    """Attributes of an OpenNebula template, in the order written.

    Raises :class:`~one_hooks.errors.TemplateSyntaxError` on text oned would refuse.
    """
    attrs: List[Attr] = []
    for definition in template.parse(text).definitions:
        value = definition.value
        attrs.append((definition.name, value if isinstance(value, str) else list(value.items())))
    return attrs
