"""The simulated oned's XML-RPC front: HTTP on loopback, path ``/RPC2``.

Wire format as oned's: every method takes the session ``user:password``
first and answers an array, ``[True, value, 0]`` or ``[False, message,
code]``. Around each call sit the pieces tests and benchmarks need: call
counters, the latency model (a serial part under one "oned core" lock, then a
parallel part, as measured on a real oned in DESIGN.md §3) and fault injection
(an error answer, a hang, a dropped connection).
"""
from __future__ import annotations

import collections
import inspect
import socket
import threading
import time
import xmlrpc.client
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Counter, Dict, List, Mapping, Optional, Tuple, cast

from .faults import AUTHENTICATION, XML_RPC_API, Refused

Method = Callable[..., Any]


@dataclass(frozen=True)
class Latency:
    """Time one call costs: ``serial`` under the global core lock, ``parallel`` outside it.

    The defaults reproduce a real oned 6.10.5 (DESIGN.md §3): about 27 ms per
    call made one after another, about 12 ms per call with 8 in parallel.
    """

    serial: float = 0.012
    parallel: float = 0.015


NO_LATENCY = Latency(0.0, 0.0)


@dataclass
class Fault:
    """An injected failure for the next ``count`` calls of a method."""

    kind: str  # "error", "timeout" or "drop"
    code: int
    message: str
    count: int
    hang: float


class RpcCore:
    """Dispatch, authentication, latency, counters and faults, independent of HTTP."""

    def __init__(
        self,
        methods: Mapping[str, Method],
        users: Mapping[str, str],
        latency: Latency = NO_LATENCY,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.methods = dict(methods)
        self.users = dict(users)
        self.latency = latency
        self.sleep = sleep
        self.core_lock = threading.Lock()
        self.calls: Counter[str] = collections.Counter()
        #: How many calls went through the serial (core-locked) part.
        self.core_entries = 0
        self._faults: Dict[str, List[Fault]] = {}
        self._faults_lock = threading.Lock()
        self.stopping = threading.Event()

    def inject(self, method: str, kind: str = "error", code: int = 0x2000, count: int = 1,
               message: str = "", hang: float = 60.0) -> None:
        """Make the next ``count`` calls of ``method`` (``*`` for any) fail that way."""
        if kind not in ("error", "timeout", "drop"):
            raise ValueError(f"unknown fault kind {kind!r}")
        text = message or f"[{method}] Injected failure (simulated oned)."
        with self._faults_lock:
            self._faults.setdefault(method, []).append(Fault(kind, code, text, count, hang))

    def take_fault(self, method: str) -> Optional[Fault]:
        """The fault to apply to this call, if any (each use counts down)."""
        with self._faults_lock:
            for key in (method, "*"):
                queue = self._faults.get(key, [])
                if queue:
                    fault = queue[0]
                    fault.count -= 1
                    if fault.count <= 0:
                        queue.pop(0)
                    return fault
        return None

    def call(self, method: str, params: tuple) -> Any:
        """Run one call and return oned's answer array (``Fault`` for unknown methods)."""
        self.calls[method] += 1
        handler = self.methods.get(method)
        if handler is None:
            raise xmlrpc.client.Fault(-506, f"Method '{method}' not defined")
        if not params or not self._authenticated(params[0]):
            return [False, f"[{method}] User couldn't be authenticated, aborting call.",
                    AUTHENTICATION]
        if self.latency.parallel:
            self.sleep(self.latency.parallel)
        with self.core_lock:
            self.core_entries += 1
            if self.latency.serial:
                self.sleep(self.latency.serial)
        try:
            inspect.signature(handler).bind(*params[1:])
        except TypeError as error:
            # Wrong argument count: oned's xmlrpc-c layer refuses the call.
            return [False, f"[{method}] Wrong arguments: {error}", XML_RPC_API]
        try:
            return [True, handler(*params[1:]), 0]
        except Refused as refusal:
            return [False, refusal.message, refusal.code]

    def _authenticated(self, session: object) -> bool:
        if not isinstance(session, str) or ":" not in session:
            return False
        user, _, password = session.partition(":")
        return self.users.get(user) == password


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "RpcServer"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without NODELAY, Nagle plus the
        # client's delayed ACK would add ~40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        """Quiet: the simulator's own records are the log."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        if self.path not in ("/RPC2", "/RPC2/"):
            self.send_error(404)
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            params, method = xmlrpc.client.loads(body)
        except Exception:  # a body that is not XML-RPC: oned answers 400 too
            self.send_error(400)
            return
        core = self.server.core
        fault = core.take_fault(method or "")
        if fault is not None and fault.kind != "error":
            core.calls[method or ""] += 1
            if fault.kind == "timeout":
                core.stopping.wait(fault.hang)
            self._drop()
            return
        try:
            if fault is not None:
                core.calls[method or ""] += 1
                answer: Any = ([False, fault.message, fault.code],)
            else:
                answer = (core.call(method or "", params),)
            data = xmlrpc.client.dumps(answer, methodresponse=True)
        except xmlrpc.client.Fault as error:
            data = xmlrpc.client.dumps(error, methodresponse=True)
        payload = data.encode()
        # As oned's xmlrpc-c (Abyss 1.33) answers, keep-alive asked or not: one request per connection.
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client went away (a killed hook): its loss, as with a real oned.
            self.close_connection = True

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class RpcServer(ThreadingHTTPServer):
    """A threaded HTTP server bound to 127.0.0.1 on an ephemeral (or given) port."""

    daemon_threads = True
    allow_reuse_address = True
    # oned's listen backlog is set by MAX_CONN_BACKLOG in oned.conf; the
    # socketserver default of 5 resets connections under a hook storm.
    request_queue_size = 64

    def __init__(self, core: RpcCore, port: int = 0, host: str = "127.0.0.1") -> None:
        self.core = core
        super().__init__((host, port), _Handler)
        self._thread: Optional[threading.Thread] = None

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT/RPC2``."""
        # server_bind() sets server_address from getsockname(): (str, int) for AF_INET. typeshed
        # allows bytes for the host too, as the constructor accepts them.
        host, port = cast(Tuple[str, int], self.server_address[:2])
        return f"http://{host}:{port}/RPC2"

    def start(self) -> str:
        """Serve in a background thread; the endpoint."""
        self._thread = threading.Thread(target=self.serve_forever, name="sim-oned-rpc",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self.endpoint

    def stop(self) -> None:
        """Stop serving, release hung calls, close the socket."""
        self.core.stopping.set()
        self.shutdown()
        self.server_close()
        if self._thread:
            self._thread.join(timeout=5)
