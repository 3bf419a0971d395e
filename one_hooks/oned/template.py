"""OpenNebula template syntax: a lossless reader and editor.

OpenNebula reads ``vmm_exec_kvm.conf``, host/cluster/hook templates and VM
templates with one flex/bison grammar (``src/parsers/template_parser.l`` and
``template_syntax.y``). This module follows that grammar token for token:

* ``NAME = value`` where ``value`` is a double-quoted string (it may span
  lines; ``\\"`` stands for ``"``, nothing else is an escape) or a bare word
  (anything but blanks, newlines, ``=``, ``#``, ``,``, ``[`` and ``]``);
* ``NAME =`` followed by a newline: an empty value;
* vectors ``NAME = [ A = "x", B = y ]`` (may span lines, may hold ``#`` comment
  lines, no nesting, no trailing comma), and the empty vector ``NAME = [ ]``;
* ``#`` comments run to the end of the line and need that newline;
* names are ``[A-Za-z0-9_]+`` and case-insensitive (oned upper-cases them).

Where flex would silently skip a stray character, or pick a surprising token
by longest match (``"a"b`` is one bare word, quotes included), this reader
refuses with :class:`TemplateSyntaxError` and the line and column: a file we
cannot read unambiguously is a file we must not edit.

Edits (:meth:`Template.set`, :meth:`Template.unset`) splice the text: every
byte outside the edited definition stays as it was, so comments, blank lines
and layout survive. Each edit re-parses the result before keeping it.

For single attributes the last definition wins (oned's driver configuration
replaces on each ``set``); inside a vector the first one wins (the grammar
inserts into a ``std::map``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

from ..errors import TemplateSyntaxError, UsageError

Value = Union[str, Dict[str, str]]

_NAME = re.compile(r"[A-Za-z0-9_]+")
# A bare word: flex's STRING class [^=#[:blank:]\n,\[\]]+
_BARE = re.compile(r"[^=#\t \n,\[\]]+")
_BLANKS = " \t"
_CDATA_END = "]]>"


@dataclass(frozen=True)
class Definition:
    """One ``NAME = value`` statement and where it sits in the text.

    ``start`` is the offset of the name; ``value_start``/``value_end`` bound
    the value as written (quotes or brackets included; equal for an empty
    value written as ``NAME =`` then a newline).
    """

    name: str
    value: Value
    start: int
    value_start: int
    value_end: int


def parse(text: str, path: str = "") -> "Template":
    """Parse OpenNebula template text; raise :class:`TemplateSyntaxError` if ambiguous."""
    return Template(text, path)


class Template:
    """An OpenNebula template: its exact text plus the definitions parsed from it."""

    def __init__(self, text: str, path: str = "") -> None:
        self.path = path
        self._text = text
        self._defs: Tuple[Definition, ...] = tuple(_Parser(text, path).run())

    @property
    def text(self) -> str:
        """The text, byte for byte as given, with any edits spliced in."""
        return self._text

    @property
    def definitions(self) -> Tuple[Definition, ...]:
        """Every definition in file order, duplicates included."""
        return self._defs

    def get(self, name: str) -> Optional[Value]:
        """The value of ``name`` (last definition wins): a string, a dict for a vector, or None."""
        found = self._find(name)
        return _copy(found[-1].value) if found else None

    def get_all(self, name: str) -> List[Value]:
        """Every value defined for ``name``, in file order (e.g. several DISK vectors)."""
        return [_copy(d.value) for d in self._find(name)]

    def items(self) -> List[Tuple[str, Value]]:
        """``(NAME, value)`` for each distinct name, upper-cased, in order of the winning definition."""
        last: Dict[str, Definition] = {}
        for d in self._defs:
            last.pop(d.name, None)
            last[d.name] = d
        return [(name, _copy(d.value)) for name, d in last.items()]

    def set(self, name: str, value: Value, insert_at: Optional[int] = None) -> None:
        """Give ``name`` this value, changing only the bytes of its last definition.

        An absent name is added as a new line at ``insert_at`` (the offset of a
        line start) or else at the end of the text. Setting the value it
        already has leaves the text unchanged.
        """
        written = format_value(value)
        found = self._find(name)
        if found:
            target = found[-1]
            if _equal(target.value, value):
                return
            prefix = " " if target.value_start == target.value_end and \
                self._text[target.value_start - 1:target.value_start] == "=" else ""
            following = self._text[target.value_end:target.value_end + 1]
            suffix = " " if following and following not in " \t\n#" else ""
            self._replace(target.value_start, target.value_end, prefix + written + suffix)
            return
        statement = f"{name} = {written}"
        if insert_at is not None:
            if not (insert_at == 0 or self._text[insert_at - 1:insert_at] == "\n") or \
                    insert_at > len(self._text):
                raise ValueError(f"insert_at {insert_at} is not the start of a line")
            if insert_at < len(self._text):
                self._replace(insert_at, insert_at, statement + "\n")
                return
        if self._text and not self._text.endswith("\n"):
            # Keeps "unset after set" an exact undo: unset removes this newline too.
            self._replace(len(self._text), len(self._text), "\n" + statement)
        else:
            self._replace(len(self._text), len(self._text), statement + "\n")

    def unset(self, name: str) -> bool:
        """Remove every definition of ``name`` (whole lines where it stood alone); True if any."""
        found = self._find(name)
        for d in reversed(found):
            start, end = _statement_extent(self._text, d.start, d.value_end)
            self._replace(start, end, "")
        return bool(found)

    def _find(self, name: str) -> List[Definition]:
        key = name.upper()
        return [d for d in self._defs if d.name == key]

    def _replace(self, start: int, end: int, new: str) -> None:
        text = self._text[:start] + new + self._text[end:]
        try:
            defs = tuple(_Parser(text, self.path).run())
        except TemplateSyntaxError as exc:
            raise UsageError(f"{self.path or '<template>'}: the edit would not parse ({exc}); "
                             "nothing changed") from None
        self._text, self._defs = text, defs


def format_value(value: Value) -> str:
    """How a value is written: a quoted string, or ``[ K = "v", ... ]`` for a vector."""
    if isinstance(value, str):
        return _quote(value)
    pairs = []
    for key, item in value.items():
        if not _NAME.fullmatch(key):
            raise UsageError(f"bad vector attribute name {key!r}")
        pairs.append(f"{key.upper()} = {_quote(item)}")
    return "[ " + ", ".join(pairs) + " ]" if pairs else "[ ]"


def _quote(value: str) -> str:
    if value.endswith("\\"):
        raise UsageError(f"value {value!r} ends with a backslash: OpenNebula's grammar cannot quote it")
    if _CDATA_END in value:
        raise UsageError(f"value {value!r} holds ']]>': oned refuses that in a template")
    return '"' + value.replace('"', '\\"') + '"'


def _statement_extent(text: str, start: int, end: int) -> Tuple[int, int]:
    """What removing a statement removes: its whole line(s) if alone there, else it and its blanks."""
    line_start = text.rfind("\n", 0, start) + 1
    newline = text.find("\n", end)
    line_end = len(text) if newline < 0 else newline
    if text[line_start:start].strip(_BLANKS) == "" and text[end:line_end].strip(_BLANKS) == "":
        if newline >= 0:
            return line_start, newline + 1
        return max(line_start - 1, 0), len(text)
    while end < len(text) and text[end] in _BLANKS:
        end += 1
    return start, end


def _equal(current: Value, wanted: Value) -> bool:
    if isinstance(current, str) or isinstance(wanted, str):
        return current == wanted
    return {k.upper(): v for k, v in wanted.items()} == current


def _copy(value: Value) -> Value:
    return value if isinstance(value, str) else dict(value)


def _unescape(raw: str) -> str:
    return raw.replace('\\"', '"')


class _Parser:
    """Recursive descent over the flex tokens, tracking offsets."""

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.pos = 0

    def fail(self, message: str, at: Optional[int] = None) -> TemplateSyntaxError:
        offset = self.pos if at is None else at
        line = self.text.count("\n", 0, offset) + 1
        column = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return TemplateSyntaxError(message, self.path, line, column)

    def run(self) -> List[Definition]:
        defs: List[Definition] = []
        while True:
            self.skip()
            if self.pos >= len(self.text):
                return defs
            defs.append(self.attribute())

    def skip(self) -> None:
        """Blanks, newlines and comment lines between tokens."""
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t\n":
                self.pos += 1
            elif char == "#":
                newline = text.find("\n", self.pos)
                if newline < 0:
                    raise self.fail("comment without a newline at the end of the file "
                                    "(oned cannot parse it)")
                self.pos = newline + 1
            elif char == "\r":
                raise self.fail("carriage return outside a quoted value (DOS line ends?)")
            else:
                return

    def name(self) -> str:
        match = _NAME.match(self.text, self.pos)
        if not match:
            raise self.fail(f"attribute name expected, found {self.text[self.pos]!r}")
        self.pos = match.end()
        return match.group().upper()

    def equal(self) -> bool:
        """Consume ``=`` and its blanks; True if a newline follows (an empty value)."""
        self.skip()
        if self.text[self.pos:self.pos + 1] != "=":
            raise self.fail("'=' expected after the attribute name")
        self.pos += 1
        while self.pos < len(self.text) and self.text[self.pos] in _BLANKS:
            self.pos += 1
        return self.text[self.pos:self.pos + 1] == "\n"

    def attribute(self) -> Definition:
        start = self.pos
        name = self.name()
        if self.equal():
            return Definition(name, "", start, self.pos, self.pos)
        value_start = self.pos
        if self.text[self.pos:self.pos + 1] == "[":
            self.check_cdata(self.pos, self.pos + 1)
            vector = self.vector()
            return Definition(name, vector, start, value_start, self.pos)
        return Definition(name, self.scalar(), start, value_start, self.pos)

    def scalar(self) -> str:
        """A value in flex's VALUE state: quoted string or bare word, by longest match."""
        text, begin = self.text, self.pos
        bare = _BARE.match(text, begin)
        bare_end = bare.end() if bare else begin
        if text[begin:begin + 1] == '"':
            close = begin + 1
            while True:
                close = text.find('"', close)
                if close < 0:
                    raise self.fail("quoted value not closed by a '\"' without a backslash before it",
                                    begin)
                if text[close - 1] != "\\":
                    break
                close += 1
            end = close + 1
            if bare_end > end:
                raise self.fail("quoted value followed by more text: oned would keep the quotes "
                                "as part of the value", end)
            self.check_cdata(begin, end)
            self.pos = end
            return _unescape(text[begin + 1:close])
        if bare_end == begin:
            found = repr(text[begin]) if begin < len(text) else "end of file"
            raise self.fail(f"value expected, found {found}")
        if "\r" in text[begin:bare_end]:
            # flex would keep it in the value: a DOS line end, never what the admin meant.
            raise self.fail("carriage return in a value (DOS line ends?)", text.index("\r", begin))
        self.check_cdata(begin, bare_end)
        self.pos = bare_end
        return _unescape(text[begin:bare_end])

    def check_cdata(self, begin: int, end: int) -> None:
        """flex's CDATA rule (``.*]]>.*``) wins when it matches at least as much: oned aborts."""
        newline = self.text.find("\n", begin)
        line_end = len(self.text) if newline < 0 else newline
        if _CDATA_END in self.text[begin:line_end] and line_end - begin >= end - begin:
            raise self.fail("']]>' in a value: oned refuses the template", begin)

    def vector(self) -> Dict[str, str]:
        self.pos += 1  # "["
        items: Dict[str, str] = {}
        self.skip()
        if self.text[self.pos:self.pos + 1] == "]":
            self.pos += 1
            return items
        while True:
            self.skip()
            if self.pos >= len(self.text):
                raise self.fail("vector not closed with ']'")
            key = self.name()
            if self.equal():
                raise self.fail(f"vector attribute {key} has no value")
            if self.text[self.pos:self.pos + 1] == "[":
                raise self.fail("vectors cannot be nested")
            value = self.scalar()
            items.setdefault(key, value)
            self.skip()
            char = self.text[self.pos:self.pos + 1]
            if char == "]":
                self.pos += 1
                return items
            if char != ",":
                raise self.fail("',' or ']' expected in vector" if char else "vector not closed with ']'")
            self.pos += 1
