"""The hook payload as it arrives: base64 ``$TEMPLATE`` text, on stdin or as an argument.

Both the hooks' first look (:mod:`one_hooks.hooks.triage`) and the full parser
(:mod:`one_hooks.oned.xmlparse`) start here, so a payload is read and un-base64'd
the same way whichever reads it. Only cheap modules are imported.

It is oned's format (what ``ARGUMENTS=$TEMPLATE`` sends), so it sits in the
door to oned beside the full parser that reads it, not among the hooks: a
door may not import from the entry points above it.
"""
from __future__ import annotations

import binascii
import sys

from ..errors import PayloadError

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs every hook ~8 ms
    from typing import BinaryIO, Optional, Union

#: Largest hook payload accepted, base64 text included. A real host payload
#: is ~12 KiB and a VM one ~3 KiB; anything near this is not from oned.
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024

_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def read_payload(argument: "Optional[str]", stdin: "Optional[BinaryIO]" = None) -> bytes:
    """The payload from the argument, else from stdin, never more than the limit (+1 byte)."""
    if argument is not None:
        return argument.encode("utf-8", "replace")
    stream = stdin if stdin is not None else sys.stdin.buffer
    if stream.isatty():
        raise PayloadError("hook payload: none given (pipe the base64 $TEMPLATE to stdin)")
    # Read one byte past the limit so the decoder can refuse oversized input
    # without this process holding an unbounded amount of memory.
    return stream.read(MAX_PAYLOAD_BYTES + 1)


def unbase64(data: "Union[bytes, str]", max_bytes: int = MAX_PAYLOAD_BYTES) -> bytes:
    """The XML inside a payload; :class:`PayloadError` (one line) if it is not base64.

    Whitespace and line breaks anywhere in the base64 text are tolerated
    (wrapped or hand-pasted payloads); any other character is refused.
    """
    if isinstance(data, str):
        try:
            data = data.encode("ascii")
        except UnicodeEncodeError:
            raise PayloadError("hook payload: not base64 (non-ASCII characters)") from None
    if len(data) > max_bytes:
        raise PayloadError(f"hook payload: {len(data)} bytes, more than the {max_bytes} accepted")
    compact = b"".join(data.split())
    if not compact:
        raise PayloadError("hook payload: empty (expected base64 of a HOST or VM document on stdin)")
    body = compact.rstrip(b"=")
    if body.translate(None, _BASE64_ALPHABET) or len(compact) - len(body) > 2:
        raise PayloadError("hook payload: not base64 (characters outside the base64 alphabet)")
    try:
        return binascii.a2b_base64(compact)
    except (binascii.Error, ValueError) as exc:
        raise PayloadError(f"hook payload: not base64 ({' '.join(str(exc).split())[:60]})") from None


def int_field(value: "Optional[str]", default: "Optional[int]" = None) -> int:
    """An integer field of oned's XML, read the one way both payload readers read it.

    ``value`` is the field's text (None: the element is absent). Absent, or
    blank when there is a default: the default. Otherwise the stripped text
    as an integer. LookupError when absent without a default, ValueError when
    not an integer (each reader turns these into its own one-line error).
    """
    if value is None or (value.strip() == "" and default is not None):
        if default is None:
            raise LookupError("missing")
        return default
    return int(value.strip())
