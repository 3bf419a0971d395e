"""A simulated oned 6.10.5 for the demo, the tests and the benchmarks.

A real XML-RPC server on loopback with oned's wire format and XML, its state
machine for outages (DESIGN.md §1) and an onehem-like hook runner. Start with
:class:`SimOned`.
"""
from __future__ import annotations

from .cloud import Change
from .faults import (ACTION, ALLOCATE, AUTHENTICATION, AUTHORIZATION, INTERNAL, LOCKED,
                     NO_EXISTS, XML_RPC_API)
from .oned import REAL_LATENCY, HookEvent, SimOned
from .server import NO_LATENCY, Latency

__all__ = [
    "SimOned", "HookEvent", "Change", "Latency", "REAL_LATENCY", "NO_LATENCY",
    "AUTHENTICATION", "AUTHORIZATION", "NO_EXISTS", "ACTION", "XML_RPC_API", "INTERNAL",
    "ALLOCATE", "LOCKED",
]
