"""XML-RPC with the stdlib alone, for the VM hooks' first look; and the answer decoder both paths share.

A hook process runs once per VM event, so its start-up cost is paid thousands
of times in a storm. Everything else reaches oned through pyone
(:mod:`one_hooks.oned.rpc`), but ``import pyone`` costs about 0.13-0.15 s of
CPU (requests, the generated bindings) and ``xmlrpc.client`` pulls in
``http.client``, ``email`` and ``ssl`` (about 20 ms); the first look
(:mod:`one_hooks.hooks.triage`) settles most VM events with one
``one.host.info`` in 22-36 ms of CPU in all. This module needs only
``socket`` and :mod:`one_hooks.oned.xmltree` (the C expat parser: not lxml,
``xml.etree``, ``xml.dom`` or ``xml.sax``, and not even ``typing``). That is
why it stays beside pyone. It does the little the first look needs:

* a request is ``POST <path>`` with a ``<methodCall>`` whose parameters are
  strings, integers and booleans, on a connection of its own, sent once;
* the answer is read by its ``Content-Length`` (oned always sends one: seen
  on 6.10.5 and 7.4.0); any other framing is a :class:`ProtocolError`, and
  the first look hands the event to the full hook, whose requests-based
  transport reads every framing (chunked and read-to-close went with the
  stdlib adapter pyone replaced);
* the answer is one ``<methodResponse>`` holding ``<params>`` (oned's
  ``[success, value, code]`` array) or a ``<fault>`` (xmlrpc-c's own errors:
  unknown method, wrong parameter types).

:func:`decode_response` also reads the answers pyone's transport receives
(:mod:`one_hooks.oned.rpc`): it is 5x cheaper than ``xmlrpc.client``'s
unmarshaller on pool answers, keeps a fault's code, and refuses what follows.
Answers are parsed by :func:`one_hooks.oned.xmltree.parse` with every DTD refused:
a ``<!DOCTYPE`` (and so any entity declaration) is a :class:`ProtocolError`,
and no external entity is ever resolved. Character data is gathered in pieces
and joined once, so a 30 MB pool answer in one ``<string>`` costs linear time.
"""
from __future__ import annotations

import socket

from . import xmltree

TYPE_CHECKING = False  # typing costs ~8 ms to import: annotations only (mypy reads this name)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


class WireError(Exception):
    """Base of what can go wrong on the wire (the first look: "unsure"; the adapter maps these)."""


class Fault(WireError):
    """An XML-RPC ``<fault>`` answer."""

    def __init__(self, code: int, text: str) -> None:
        self.code = code
        self.text = text
        super().__init__(f"XML-RPC fault {code}: {text}")


class HttpError(WireError):
    """An HTTP status other than 200."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"HTTP {status} {reason}")


class ProtocolError(WireError):
    """An answer that is not a readable XML-RPC response."""


class Dropped(WireError):
    """The connection closed before a whole answer arrived."""


def escape(text: str) -> str:
    """Escape text for an XML element (xml.sax.saxutils would import urllib.request)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def encode_call(method: str, params: Sequence[Any]) -> bytes:
    """The ``<methodCall>`` document for ``method(*params)``."""
    parts = ["<?xml version='1.0'?>\n<methodCall><methodName>", escape(method),
             "</methodName><params>"]
    for value in params:
        parts.append("<param><value>")
        parts.append(_encode_value(value))
        parts.append("</value></param>")
    parts.append("</params></methodCall>")
    return "".join(parts).encode("utf-8")


def _encode_value(value: Any) -> str:
    if isinstance(value, bool):
        return f"<boolean>{int(value)}</boolean>"
    if isinstance(value, int):
        if not -2**31 <= value < 2**31:
            return f"<i8>{value}</i8>"
        return f"<int>{value}</int>"
    if isinstance(value, str):
        return f"<string>{escape(value)}</string>"
    raise TypeError(f"cannot send {type(value).__name__} over XML-RPC here")


def decode_response(body: bytes) -> Any:
    """The value of a ``<methodResponse>``; :class:`Fault` for a fault answer."""
    try:
        root = xmltree.parse(body, _MAX_DEPTH)
    except xmltree.Refused as exc:
        raise ProtocolError(f"answer {exc}") from None
    if root.tag != "methodResponse":
        raise ProtocolError(f"answer root is <{root.tag}>, not <methodResponse>")
    fault = root.find("fault", "value")
    if fault is not None:
        members = _decode_value(fault)
        if not isinstance(members, dict):
            raise ProtocolError("fault without a struct")
        return _raise_fault(members)
    value = root.find("params", "param", "value")
    if value is None:
        raise ProtocolError("answer holds no value")
    return _decode_value(value)


# oned nests about ten deep. The cap keeps _decode_value's recursion (at most two
# frames per three elements, ~670) under Python's default limit of 1000 frames,
# so a freak answer is a ProtocolError, not a RecursionError (libxml2's own cap
# did this for lxml).
_MAX_DEPTH = 1000


def _raise_fault(members: dict) -> Any:
    code = members.get("faultCode")
    raise Fault(code if isinstance(code, int) else -1, str(members.get("faultString", "")))


def _decode_value(element: xmltree.Element) -> Any:
    children = element.children
    if not children:  # <value>text</value> is a string
        return element.text()
    node = children[0]  # text around the typed child (whitespace) is ignored
    tag, text = node.tag, node.text()
    try:
        if tag in ("int", "i4", "i8"):
            return int(text.strip())
        if tag == "boolean":
            if text.strip() not in ("0", "1"):
                raise ProtocolError(f"bad boolean {text.strip()!r}")
            return text.strip() == "1"
        if tag == "double":
            return float(text.strip())
    except ValueError:
        raise ProtocolError(f"bad <{tag}> value") from None
    if tag == "string":
        return text
    if tag == "nil":
        return None
    if tag == "array":
        return [_decode_value(v) for v in node.find_all("data", "value")]
    if tag == "struct":
        members = {}
        for member in node.find_all("member"):
            value = member.find("value")
            if value is not None:
                name = member.find("name")
                members[name.text() if name is not None else ""] = _decode_value(value)
        return members
    raise ProtocolError(f"unsupported XML-RPC type <{tag}>")


def split_endpoint(url: str) -> "tuple[str, str, int, str] | None":
    """``(scheme, host, port, path)`` of a plain ``http(s)://host[:port][/path]`` endpoint.

    None for anything else (user info, a query, an IPv6 literal, a bad port):
    callers that get None leave the endpoint to the full adapter
    (:class:`one_hooks.oned.client.Oned`), which reads every form and says what is wrong.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        return None
    netloc, slash, path = rest.partition("/")
    if any(c in netloc for c in "@[]?#") or any(c in path for c in "?#") or not netloc:
        return None
    host, colon, port_text = netloc.partition(":")
    if not host or (colon and not (port_text.isdigit() and 0 < int(port_text) < 65536)):
        return None
    port = int(port_text) if colon else (443 if scheme == "https" else 80)
    return scheme, host, port, slash + path if slash else "/"


def post(scheme: str, host: str, port: int, path: str, body: bytes, timeout: float) -> bytes:
    """Send one HTTP/1.1 POST on a fresh connection; the 200 answer's body.

    OSError (refused, reset, timeout) propagates: the first look treats it,
    like any :class:`WireError`, as "unsure".
    """
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if scheme == "https":
            import ssl  # only https pays for it

            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: one-hooks\r\n"
                f"Content-Type: text/xml\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n").encode("ascii")
        sock.sendall(head + body)
        return _read_answer(sock)
    finally:
        sock.close()


def _read_answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise Dropped("connection closed before the answer's headers")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status, reason, headers = _parse_head(head)
    if status != 200:
        raise HttpError(status, reason)
    length = headers.get("content-length")
    if length is None or not length.isdigit():
        raise ProtocolError("answer without a Content-Length")
    wanted = int(length)
    chunks: list[bytes] = [rest]
    received = len(rest)
    while received < wanted:
        chunk = sock.recv(min(1 << 20, wanted - received))
        if not chunk:
            raise Dropped(f"connection closed after {received} of {wanted} bytes")
        chunks.append(chunk)
        received += len(chunk)
    return b"".join(chunks)[:wanted]


def _parse_head(head: bytes) -> tuple[int, str, dict]:
    lines = head.decode("iso-8859-1").split("\r\n")
    fields = lines[0].split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
        raise ProtocolError("not an HTTP answer")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(fields[1]), fields[2] if len(fields) > 2 else "", headers
