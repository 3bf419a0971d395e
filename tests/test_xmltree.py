"""The hook path's small expat tree: lxml's reading of text and names, and its refusals."""
from __future__ import annotations

import pytest
from lxml import etree

from one_hooks.oned import xmltree

#: read as the full parser (one_hooks.oned.xmlparse) reads: comments and PIs removed
LXML = etree.XMLParser(remove_comments=True, remove_pis=True, resolve_entities=False)
DOC = b"<VM><ID> 7 </ID><NAME>a<!-- c -->b<X>c</X>d</NAME><H><S>1</S></H><H><S>2</S></H></VM>"


def test_text_and_all_text_read_as_lxml_does() -> None:
    ours, theirs = xmltree.parse(DOC, 10), etree.fromstring(DOC, LXML)
    for tag in ("ID", "NAME"):
        assert ours.find(tag).text() == (theirs.find(tag).text or "")
        assert ours.find(tag).all_text() == "".join(theirs.find(tag).itertext())
    assert [h.find("S").text() for h in ours.find_all("H")] == ["1", "2"]
    assert ours.find("H", "S").text() == "1" and ours.find("NOPE") is None


def test_namespaces_are_spelt_as_lxml_spells_them() -> None:
    doc = b'<VM xmlns="urn:x"><ID>1</ID></VM>'
    assert xmltree.parse(doc, 10).tag == etree.fromstring(doc).tag == "{urn:x}VM"
    with pytest.raises(xmltree.Refused, match="not XML"):
        xmltree.parse(b"<a:VM/>", 10)  # unbound prefix


@pytest.mark.parametrize("doc, reason", [
    (b'<!DOCTYPE VM [<!ENTITY x "y">]><VM>&x;</VM>', "DOCTYPE"),
    (b"<VM>" * 12 + b"</VM>" * 12, "deeper than 10"),
    (b"<VM><", "not XML"),
    (b"", "not XML"),
])
def test_refusals_are_one_line(doc: bytes, reason: str) -> None:
    with pytest.raises(xmltree.Refused) as info:
        xmltree.parse(doc, 10)
    assert reason in str(info.value) and "\n" not in str(info.value)


def test_processing_instructions_are_ignored_or_refused() -> None:
    doc = b"<VM><?pi x?><ID>1</ID></VM>"
    assert xmltree.parse(doc, 10).find("ID").text() == "1"
    with pytest.raises(xmltree.Refused, match="processing instruction"):
        xmltree.parse(doc, 10, refuse_pis=True)
