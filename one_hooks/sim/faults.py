"""oned's error codes, and the refusal the simulated oned raises internally.

Codes are ``Request::ErrorCode`` of OpenNebula's request manager, the third
element of a failed XML-RPC answer ``[false, message, code]``.
"""
from __future__ import annotations

# Re-exported: the codes live with the other OpenNebula facts in oned/model.py.
from ..oned.model import (
    ACTION, ALLOCATE, AUTHENTICATION, AUTHORIZATION, INTERNAL, LOCKED, NO_EXISTS, XML_RPC_API,
)

__all__ = ["ACTION", "ALLOCATE", "AUTHENTICATION", "AUTHORIZATION", "INTERNAL", "LOCKED", "NO_EXISTS",
           "XML_RPC_API", "Refused"]


class Refused(Exception):
    """A call the simulated oned refuses: becomes ``[False, message, code]`` on the wire."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)
