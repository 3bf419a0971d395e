"""The lossless OpenNebula template reader/editor, on real files and generated ones."""
from __future__ import annotations

import glob
import os
from typing import Dict, List, Tuple, Union

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from one_hooks.errors import TemplateSyntaxError, UsageError
from one_hooks.oned.template import format_value, parse

DATA = os.path.join(os.path.dirname(__file__), "data", "vmm_exec_kvm")
REAL_FILES = sorted(glob.glob(os.path.join(DATA, "*.conf")))


def read(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


# --- real files ----------------------------------------------------------------


def test_real_files_are_present() -> None:
    assert len(REAL_FILES) == 5


@pytest.mark.parametrize("path", REAL_FILES, ids=os.path.basename)
def test_real_file_round_trips_and_reads(path: str) -> None:
    text = read(path)
    tmpl = parse(text, path)
    assert tmpl.text == text
    features = tmpl.get("features")
    assert isinstance(features, dict) and features["ACPI"] == "yes"
    # Shipped with both switches commented out (DESIGN.md section 5).
    assert tmpl.get("EMULATOR") is None and tmpl.get("cpu_model") is None
    assert "<relaxed state='on'/>" in str(tmpl.get("HYPERV_OPTIONS"))
    assert tmpl.get("os")["ARCH"] == "x86_64"  # type: ignore[index]


@pytest.mark.parametrize("path", REAL_FILES, ids=os.path.basename)
def test_real_file_edit_and_undo(path: str) -> None:
    text = read(path)
    tmpl = parse(text, path)
    tmpl.set("CPU_MODEL", {"MODEL": "host-passthrough"})
    tmpl.set("EMULATOR", "/var/lib/one/remotes/vmm/kvm/one-hooks-qemu")
    again = parse(tmpl.text)
    assert again.get("cpu_model") == {"MODEL": "host-passthrough"}
    assert again.get("emulator") == "/var/lib/one/remotes/vmm/kvm/one-hooks-qemu"
    assert again.get("FEATURES") == parse(text).get("FEATURES")
    # commented defaults stay comments
    assert "#CPU_MODEL" in tmpl.text and "#EMULATOR" in tmpl.text
    tmpl.unset("cpu_model")
    tmpl.unset("emulator")
    assert tmpl.text == text


# --- the grammar ----------------------------------------------------------------


def test_grammar_details() -> None:
    text = (
        '# leading comment\n'
        'name = bare # trailing comment\n'
        'Quoted = "a \\"quoted\\" word\nsecond line"\n'
        'EMPTY =\n'
        'VEC = [\n  a = "1",\n# comment inside\n  B = two ,\n  a = "ignored" ]\n'
        'NONE = [ ]\n'
        'X = 1 Y = 2\n'
        'name = again\n'
    )
    tmpl = parse(text)
    assert tmpl.get("NAME") == "again"
    assert tmpl.get_all("name") == ["bare", "again"]
    assert tmpl.get("quoted") == 'a "quoted" word\nsecond line'
    assert tmpl.get("empty") == ""
    assert tmpl.get("vec") == {"A": "1", "B": "two"}  # first wins inside a vector
    assert tmpl.get("none") == {}
    assert tmpl.get("x") == "1" and tmpl.get("y") == "2"
    assert tmpl.get("missing") is None
    assert [n for n, _ in tmpl.items()] == ["QUOTED", "EMPTY", "VEC", "NONE", "X", "Y", "NAME"]


def test_hook_template_as_given_to_allocate() -> None:
    text = ('NAME = "host-reconnect"\nTYPE = state\nCOMMAND = "one-hooks/host-reconnect"\n'
            'ARGUMENTS = "$TEMPLATE"\nARGUMENTS_STDIN = yes\nRESOURCE = HOST\nSTATE = MONITORED\n'
            'REMOTE = "no"\nTIMEOUT = 900\n')
    tmpl = parse(text)
    assert dict(tmpl.items())["ARGUMENTS"] == "$TEMPLATE"
    assert tmpl.get("state") == "MONITORED"


@pytest.mark.parametrize("text, line, column, words", [
    ("A = b\nB = [ C = d, ]\n", 2, 14, "name expected"),
    ("A = b\n- C = d\n", 2, 1, "name expected"),
    ('A = "never closed\n', 1, 5, "not closed"),
    ('A = "x"y\n', 1, 8, "keep the quotes"),
    ("A = [ B = [ C = d ] ]\n", 1, 11, "nested"),
    ("A = b, C = d\n", 1, 6, "name expected"),
    ("A = b\n# no newline", 2, 1, "newline"),
    ("A = b\r\n", 1, 6, "carriage return"),
    ("A = [ B = c\n", 2, 1, "not closed"),
    ("A = [ B =\n]\n", 1, 10, "no value"),
    ("A = \n= b\n", 2, 1, "name expected"),
    ("A = ", 1, 5, "value expected"),
    ('RAW = "<![CDATA[x]]>"\n', 1, 7, "]]>"),
    ("A b\n", 1, 3, "'=' expected"),
])
def test_refuses_what_it_cannot_read_unambiguously(text: str, line: int, column: int, words: str) -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        parse(text, "f.conf")
    assert (info.value.line, info.value.column) == (line, column)
    assert words in str(info.value)
    assert str(info.value).startswith(f"f.conf:{line}:{column}: ")


def test_values_the_grammar_cannot_quote_are_refused() -> None:
    tmpl = parse("A = b\n")
    with pytest.raises(UsageError):
        tmpl.set("C", "ends with \\")
    with pytest.raises(UsageError):
        tmpl.set("C", "x]]>")
    assert tmpl.text == "A = b\n"


def test_set_replaces_only_the_value_bytes() -> None:
    tmpl = parse("# c\nEMULATOR=/usr/bin/kvm   # old\nA = 1\n")
    tmpl.set("emulator", "/x y")
    assert tmpl.text == '# c\nEMULATOR="/x y"   # old\nA = 1\n'
    tmpl.set("A", {"model": "host-passthrough"})
    assert tmpl.text == '# c\nEMULATOR="/x y"   # old\nA = [ MODEL = "host-passthrough" ]\n'


def test_set_on_empty_value_and_insert_at_line() -> None:
    tmpl = parse("A =\nB = 2\n")
    tmpl.set("a", "1")
    assert tmpl.text == 'A = "1"\nB = 2\n'
    tmpl.set("C", "3", insert_at=tmpl.text.index("B"))
    assert tmpl.text == 'A = "1"\nC = "3"\nB = 2\n'
    tmpl.unset("C")
    assert tmpl.text == 'A = "1"\nB = 2\n'
    with pytest.raises(ValueError):
        tmpl.set("D", "4", insert_at=1)


def test_unset_inside_a_line_keeps_neighbours() -> None:
    tmpl = parse("X = 1 A = b Y = 2\nA = [ B = c,\n  D = e ]\n")
    assert tmpl.unset("a")
    assert tmpl.text == "X = 1 Y = 2\n"
    assert not tmpl.unset("a")


# --- properties over generated templates -----------------------------------------

NAMES = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcxyz0123456789_", min_size=1, max_size=8)
QUOTABLE = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20).filter(
    lambda s: not s.endswith("\\") and "]]>" not in s)
BARE = st.text("abcXYZ019/._-:$<>'\"*", min_size=1, max_size=10).filter(lambda s: not s.startswith('"'))
BLANK = st.sampled_from(["", " ", "  ", "\t"])
SEP = st.sampled_from([" ", "  ", "\t", ""])

Model = List[Tuple[str, Union[str, Dict[str, str]]]]


def quoted(value: str) -> str:
    return '"' + value.replace('"', '\\"') + '"'


@st.composite
def templates(draw: st.DrawFn) -> Tuple[str, Model]:
    """Valid template text built from the grammar's pieces, and what it defines."""
    parts: List[str] = []
    model: Model = []
    last_may_end_file = False  # a quoted/bare/vector value may be the very last bytes
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["comment", "blank", "quoted", "bare", "empty", "vector"]))
        last_may_end_file = kind in ("quoted", "vector")
        if kind == "comment":
            parts.append(draw(BLANK) + "#" + draw(st.text("abc =[],\"# ", max_size=10)) + "\n")
            continue
        if kind == "blank":
            parts.append(draw(BLANK) + "\n")
            continue
        name = draw(NAMES)
        lead, eq = draw(BLANK), draw(SEP) + "=" + draw(SEP)
        if kind == "quoted":
            value = draw(QUOTABLE)
            parts.append(f"{lead}{name}{eq}{quoted(value)}\n")
            model.append((name.upper(), value))
        elif kind == "bare":
            value = draw(BARE)
            trail = draw(st.sampled_from(["", " ", " # note"]))
            parts.append(f"{lead}{name}{eq}{value}{trail}\n")
            last_may_end_file = "#" not in trail
            model.append((name.upper(), value))
        elif kind == "empty":
            parts.append(f"{lead}{name}{draw(SEP)}=\n")
            model.append((name.upper(), ""))
        else:
            items = draw(st.lists(st.tuples(NAMES, QUOTABLE), max_size=3))
            joiner = draw(st.sampled_from([", ", ",\n  ", " ,\n# c\n "]))
            body = joiner.join(f"{k} = {quoted(v)}" for k, v in items)
            parts.append(f"{lead}{name}{eq}[{draw(st.sampled_from([' ', '', chr(10)]))}{body} ]\n")
            vec: Dict[str, str] = {}
            for k, v in items:
                vec.setdefault(k.upper(), v)
            model.append((name.upper(), vec))
    text = "".join(parts)
    if last_may_end_file and draw(st.booleans()):
        text = text[:-1]  # a last value without a newline is fine too (not a comment, not "NAME =")
    return text, model


VALUES = st.one_of(QUOTABLE, st.dictionaries(NAMES.map(str.upper), QUOTABLE, max_size=3))


@settings(max_examples=300, deadline=None)
@given(templates())
def test_round_trip_is_identity_and_values_match(case: Tuple[str, Model]) -> None:
    text, model = case
    tmpl = parse(text)
    assert tmpl.text == text
    expected: Dict[str, object] = {}
    for name, value in model:
        expected.pop(name, None)
        expected[name] = value
    assert dict(tmpl.items()) == expected


@settings(max_examples=300, deadline=None)
@given(templates(), NAMES, VALUES)
def test_set_then_get_and_set_twice_is_once(case: Tuple[str, Model], name: str, value: object) -> None:
    tmpl = parse(case[0])
    tmpl.set(name, value)  # type: ignore[arg-type]
    assert tmpl.get(name) == value
    assert parse(tmpl.text).get(name.lower()) == value
    once = tmpl.text
    tmpl.set(name, value)  # type: ignore[arg-type]
    assert tmpl.text == once


@settings(max_examples=300, deadline=None)
@given(templates(), NAMES, VALUES)
def test_unset_after_set_restores_an_absent_name(case: Tuple[str, Model], name: str, value: object) -> None:
    text = case[0]
    tmpl = parse(text)
    if tmpl.get(name) is not None:
        return
    tmpl.set(name, value)  # type: ignore[arg-type]
    assert tmpl.unset(name)
    assert tmpl.text == text


@settings(max_examples=300, deadline=None)
@given(templates(), VALUES, st.data())
def test_other_bytes_untouched(case: Tuple[str, Model], value: object, data: st.DataObject) -> None:
    text, model = case
    if not model:
        return
    name = data.draw(st.sampled_from([n for n, _ in model]))
    tmpl = parse(text)
    target = [d for d in tmpl.definitions if d.name == name][-1]
    others = {d.name: d.value for d in tmpl.definitions if d.name != name}
    tmpl.set(name.lower(), value)  # type: ignore[arg-type]
    new = tmpl.text
    assert new[:target.value_start] == text[:target.value_start]
    tail = text[target.value_end:]
    assert new.endswith(tail)
    assert {d.name: d.value for d in tmpl.definitions if d.name != name} == others
    assert tmpl.get(name) == value
    written = new[target.value_start:len(new) - len(tail)]
    if new != text:
        assert written.strip() == format_value(value)  # type: ignore[arg-type]
