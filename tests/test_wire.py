"""The small XML-RPC wire: checked against the stdlib's independent implementation
and against raw HTTP answers (oned's framing, and those left to the full adapter)."""
from __future__ import annotations

import contextlib
import subprocess
import sys
import xmlrpc.client
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import given, settings, strategies as st

from one_hooks.oned import wire
from tests.raw_server import RawServer

scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-2**63, max_value=2**63 - 1),
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=40),
)
# The stdlib writes only 32-bit <int> (oned's answers hold no larger integers).
answer_scalars = st.one_of(st.booleans(), st.integers(min_value=-2**31, max_value=2**31 - 1),
                           st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=40))


@settings(max_examples=300, derandomize=True)
@given(st.lists(scalars, max_size=6))
def test_requests_read_back_identically_by_the_stdlib(params: list) -> None:
    decoded, method = xmlrpc.client.loads(wire.encode_call("one.vm.action", params), use_builtin_types=True)
    assert method == "one.vm.action"
    assert list(decoded) == params


def test_fault_answers_raise_fault() -> None:
    body = xmlrpc.client.dumps(xmlrpc.client.Fault(-501, "Unknown method"), methodresponse=True).encode()
    with pytest.raises(wire.Fault) as info:
        wire.decode_response(body)
    assert info.value.code == -501 and info.value.text == "Unknown method"


@pytest.mark.parametrize("body", [b"", b"<html>busy</html>", b"<methodResponse/>",
                                  b"<methodResponse><params><param><value><boolean>7</boolean>"
                                  b"</value></param></params></methodResponse>",
                                  b"<!DOCTYPE x [<!ENTITY a 'b'>]><methodResponse/>"])
def test_unreadable_answers_are_protocol_errors(body: bytes) -> None:
    with pytest.raises(wire.ProtocolError):
        wire.decode_response(body)


def _answer(value_xml: str) -> bytes:
    """A ``<methodResponse>`` whose one param is ``<value>`` + value_xml + ``</value>``."""
    return ("<?xml version='1.0'?>\n<methodResponse><params><param><value>"
            + value_xml + "</value></param></params></methodResponse>").encode()


rich_scalars = st.one_of(
    answer_scalars, st.none(), st.floats(allow_nan=False),
    st.text(alphabet=st.sampled_from("<>&'\"\t\n ]]>x\u00e9\u20ac\U0001f600"), max_size=20))
struct_names = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=8)
rich_values = st.recursive(
    rich_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(struct_names, inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, derandomize=True)
@given(rich_values)
def test_stdlib_answers_with_structs_nil_and_doubles_decode_identically(value: object) -> None:
    body = xmlrpc.client.dumps(([True, value, 0],), methodresponse=True, allow_none=True).encode()
    assert wire.decode_response(body) == [True, value, 0]


def test_nested_arrays_and_structs() -> None:
    body = _answer("<array><data>"
                   "<value><struct>"
                   "<member><name>ids</name><value><array><data><value><int>1</int></value>"
                   "<value><i4>2</i4></value><value><array><data/></array></value></data></array></value></member>"
                   "<member><name>inner</name><value><struct><member><name>deep</name>"
                   "<value><array><data><value><struct/></value><value>plain</value></data></array></value>"
                   "</member></struct></value></member>"
                   "</struct></value>"
                   "<value><boolean>0</boolean></value>"
                   "</data></array>")
    assert wire.decode_response(body) == [{"ids": [1, 2, []], "inner": {"deep": [{}, "plain"]}}, False]


def test_i8_and_nil_values() -> None:
    assert wire.decode_response(_answer("<i8>9223372036854775807</i8>")) == 2**63 - 1
    assert wire.decode_response(_answer("<i8>-9223372036854775808</i8>")) == -2**63
    assert wire.decode_response(_answer("<i8> 4294967296 </i8>")) == 2**32
    assert wire.decode_response(_answer("<nil/>")) is None
    assert wire.decode_response(_answer("<array><data><value><nil/></value><value><nil></nil></value>"
                                        "</data></array>")) == [None, None]


def test_whitespace_around_a_typed_child_is_ignored_but_an_untyped_value_keeps_it() -> None:
    assert wire.decode_response(_answer("\n\t  <int>7</int>\r\n  ")) == 7
    assert wire.decode_response(_answer(" <string> padded </string>\n")) == " padded "
    assert wire.decode_response(_answer(" \n <array>\n <data>\n <value> <i4>1</i4> </value>\n"
                                        " <value>  </value>\n </data>\n </array> ")) == [1, "  "]
    assert wire.decode_response(_answer("\n<struct>\n <member>\n  <name>a</name>\n  <value>\n"
                                        "   <boolean>1</boolean>\n  </value>\n </member>\n</struct>\n")) == {"a": True}
    pretty = ("<?xml version='1.0'?>\n<methodResponse>\n  <params>\n    <param>\n      <value>\n"
              "        <string>x</string>\n      </value>\n    </param>\n  </params>\n</methodResponse>\n")
    assert wire.decode_response(pretty.encode()) == "x"


def test_comments_and_processing_instructions_are_ignored() -> None:
    body = (b"<?xml version='1.0'?><!-- head --><?pi x?><methodResponse><!-- c --><params><?pi?><param>"
            b"<value><!-- c --><array><data><value>ab<!-- c -->cd</value>"
            b"<value><int>1<?pi?>2</int></value></data></array></value></param></params></methodResponse>")
    assert wire.decode_response(body) == ["abcd", 12]


def test_a_large_string_is_decoded_intact() -> None:
    line = "<VM><ID>12</ID><NAME>vm &amp; \u00e9t\u00e9 \U0001f600</NAME><X>]]></X></VM>\n"
    pool = "<VM_POOL>" + line * (5_000_000 // len(line)) + "</VM_POOL>"
    body = xmlrpc.client.dumps(([True, pool, 0],), methodresponse=True).encode()
    assert len(body) > 5_000_000
    assert wire.decode_response(body) == [True, pool, 0]
    cdata = wire.decode_response(_answer("<string><![CDATA[" + "<x/>" * 1_300_000 + "]]></string>"))
    assert cdata == "<x/>" * 1_300_000


@pytest.mark.parametrize("body", [
    b"<!DOCTYPE methodResponse><methodResponse><params><param><value>x</value></param></params></methodResponse>",
    b"<!DOCTYPE x [<!ENTITY a 'b'>]><methodResponse><params><param><value>&a;</value></param></params>"
    b"</methodResponse>",
    b"<!DOCTYPE x SYSTEM 'file:///etc/passwd'><methodResponse><params><param><value>x</value></param></params>"
    b"</methodResponse>",
    b"<?xml version='1.0'?>\n<!DOCTYPE x [<!ENTITY % p SYSTEM 'http://127.0.0.1:9/x.dtd'> %p;]>"
    b"<methodResponse/>",
    b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    b"<methodResponse><params><param><value>&lol2;</value></param></params></methodResponse>",
])
def test_doctype_is_refused(body: bytes) -> None:
    with pytest.raises(wire.ProtocolError, match="DOCTYPE"):
        wire.decode_response(body)


@pytest.mark.parametrize("body, message", [
    (b"", "not XML"),
    (b"HTTP/1.1 200 OK", "not XML"),
    (b"<methodResponse><params>", "not XML"),
    (b"<methodResponse></params>", "not XML"),
    (b"<methodResponse/>\n<methodResponse/>", "not XML"),
    (b"<methodResponse>\xff\xfe</methodResponse>", "not XML"),
    (_answer("&undefined;"), "not XML"),
    (b"<methodResponse><params><param><value><x:int>1</x:int></value></param></params></methodResponse>",
     "not XML"),
    (b"<html>\n<body>busy</body>\n</html>", "root is <html>"),
    (b"<methodResponse xmlns='urn:x'><params><param><value>1</value></param></params></methodResponse>",
     "root is <{urn:x}methodResponse>"),
    (b"<methodResponse><params><param/></params></methodResponse>", "no value"),
    (_answer("<boolean>yes</boolean>"), "bad boolean"),
    (_answer("<int>1.5</int>"), "bad <int>"),
    (_answer("<i8></i8>"), "bad <i8>"),
    (_answer("<double>one</double>"), "bad <double>"),
    (_answer("<base64>eA==</base64>"), "unsupported XML-RPC type <base64>"),
    (_answer("<dateTime.iso8601>20240101T00:00:00</dateTime.iso8601>"), "unsupported"),
    (b"<methodResponse><fault><value><string>oops</string></value></fault></methodResponse>", "fault without"),
])
def test_protocol_errors_have_a_one_line_message(body: bytes, message: str) -> None:
    with pytest.raises(wire.ProtocolError) as info:
        wire.decode_response(body)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("levels", [300, 5000])
def test_deep_nesting_decodes_or_is_a_protocol_error(levels: int) -> None:
    body = _answer("<array><data><value>" * levels + "x" + "</value></data></array>" * levels)
    if levels * 3 < 1000:
        value = wire.decode_response(body)
        for _ in range(levels):
            value = value[0]
        assert value == "x"
    else:
        with pytest.raises(wire.ProtocolError, match="nests deeper"):
            wire.decode_response(body)


def test_fault_code_that_is_not_an_integer_is_minus_one() -> None:
    body = (b"<methodResponse><fault><value><struct>"
            b"<member><name>faultCode</name><value><string>E42</string></value></member>"
            b"<member><name>faultString</name><value>it broke</value></member>"
            b"</struct></value></fault></methodResponse>")
    with pytest.raises(wire.Fault) as info:
        wire.decode_response(body)
    assert info.value.code == -1 and info.value.text == "it broke"


def test_importing_the_wire_loads_neither_lxml_nor_typing() -> None:
    code = ("import one_hooks.oned.wire, sys; "
            "print('lxml' in sys.modules or 'lxml.etree' in sys.modules, 'typing' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent, capture_output=True,
                          text=True, timeout=60, check=True)
    assert done.stdout.strip() == "False False"


@contextlib.contextmanager
def _serving(raw: bytes) -> Iterator[int]:
    """A loopback port answering ``raw`` to one request, which must be the wire's POST."""
    server = RawServer(raw)
    try:
        yield int(server.endpoint.split(":")[2].split("/")[0])
    finally:
        server.close()
    assert len(server.requests) == 1 and server.requests[0].startswith(b"POST /RPC2 HTTP/1.1\r\n")


OK_BODY = xmlrpc.client.dumps(([True, "<VM/>", 0],), methodresponse=True).encode()


def test_the_content_length_answer_is_read() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(OK_BODY) + OK_BODY
    with _serving(raw) as port:
        body = wire.post("http", "127.0.0.1", port, "/RPC2", wire.encode_call("one.vm.info", ["a:b", 1]), 5)
        assert wire.decode_response(body) == [True, "<VM/>", 0]


@pytest.mark.parametrize("raw", [
    b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\n" + OK_BODY,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"%x\r\n" % 10 + OK_BODY[:10] + b"\r\n" + b"%x\r\n" % (len(OK_BODY) - 10) + OK_BODY[10:]
    + b"\r\n0\r\n\r\n",
], ids=["read-to-close", "chunked"])
def test_other_framings_are_left_to_the_full_adapter(raw: bytes) -> None:
    """oned sends a Content-Length; anything else makes the first look unsure (test_oned reads them all)."""
    with _serving(raw) as port:
        with pytest.raises(wire.ProtocolError, match="Content-Length"):
            wire.post("http", "127.0.0.1", port, "/RPC2", wire.encode_call("one.vm.info", ["a:b", 1]), 5)


@pytest.mark.parametrize("raw, error", [
    (b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", wire.HttpError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n<methodResponse>", wire.Dropped),
    (b"HTTP/1.1 200 OK\r\n", wire.Dropped),
    (b"SSH-2.0-OpenSSH\r\n\r\n", wire.ProtocolError),
])
def test_broken_answers_are_named(raw: bytes, error: type) -> None:
    with _serving(raw) as port:
        with pytest.raises(error):
            wire.post("http", "127.0.0.1", port, "/RPC2", wire.encode_call("one.vm.info", ["a:b", 1]), 5)
