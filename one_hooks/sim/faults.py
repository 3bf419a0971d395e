"""oned's error codes, and the refusal the simulated oned raises internally.

Codes are ``Request::ErrorCode`` of OpenNebula's request manager, the third
element of a failed XML-RPC answer ``[false, message, code]``.
"""
from __future__ import annotations

AUTHENTICATION = 0x0100
AUTHORIZATION = 0x0200
NO_EXISTS = 0x0400
ACTION = 0x0800
XML_RPC_API = 0x1000
INTERNAL = 0x2000
ALLOCATE = 0x4000
LOCKED = 0x8000


class Refused(Exception):
    """A call the simulated oned refuses: becomes ``[False, message, code]`` on the wire."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)
