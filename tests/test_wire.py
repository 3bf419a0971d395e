"""The small XML-RPC wire: checked against the stdlib's independent implementation
and against raw HTTP answers of every framing a server may use."""
from __future__ import annotations

import socket
import threading
import xmlrpc.client
from typing import Iterator, List

import pytest
from hypothesis import given, settings, strategies as st

from one_hooks import wire

scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-2**63, max_value=2**63 - 1),
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=40),
)
# The stdlib writes only 32-bit <int> (oned's answers hold no larger integers).
answer_scalars = st.one_of(st.booleans(), st.integers(min_value=-2**31, max_value=2**31 - 1),
                           st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=40))
values = st.recursive(answer_scalars, lambda inner: st.lists(inner, max_size=4), max_leaves=12)


@settings(max_examples=300, derandomize=True)
@given(st.lists(scalars, max_size=6))
def test_requests_read_back_identically_by_the_stdlib(params: list) -> None:
    decoded, method = xmlrpc.client.loads(wire.encode_call("one.vm.action", params), use_builtin_types=True)
    assert method == "one.vm.action"
    assert list(decoded) == params


@settings(max_examples=300, derandomize=True)
@given(values)
def test_stdlib_answers_decode_identically(value: object) -> None:
    body = xmlrpc.client.dumps(([True, value, 0],), methodresponse=True, allow_none=False).encode()
    assert wire.decode_response(body) == [True, value, 0]


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


def _serve_once(raw: bytes) -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    seen: List[bytes] = []

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            data = b""
            while b"</methodCall>" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            seen.append(data)
            conn.sendall(raw)
        server.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    thread.join(timeout=5)
    assert seen and seen[0].startswith(b"POST /RPC2 HTTP/1.1\r\n")


OK_BODY = xmlrpc.client.dumps(([True, "<VM/>", 0],), methodresponse=True).encode()


@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(OK_BODY) + OK_BODY,
    b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\n" + OK_BODY,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"%x\r\n" % 10 + OK_BODY[:10] + b"\r\n" + b"%x\r\n" % (len(OK_BODY) - 10) + OK_BODY[10:]
    + b"\r\n0\r\n\r\n",
])
def test_every_http_framing_gives_the_same_body(raw: bytes) -> None:
    for port in _serve_once(raw):
        body = wire.post("http", "127.0.0.1", port, "/RPC2", wire.encode_call("one.vm.info", ["a:b", 1]), 5)
        assert wire.decode_response(body) == [True, "<VM/>", 0]


@pytest.mark.parametrize("raw, error", [
    (b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", wire.HttpError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n<methodResponse>", wire.Dropped),
    (b"HTTP/1.1 200 OK\r\n", wire.Dropped),
    (b"SSH-2.0-OpenSSH\r\n\r\n", wire.ProtocolError),
])
def test_broken_answers_are_named(raw: bytes, error: type) -> None:
    for port in _serve_once(raw):
        with pytest.raises(error):
            wire.post("http", "127.0.0.1", port, "/RPC2", wire.encode_call("one.vm.info", ["a:b", 1]), 5)
