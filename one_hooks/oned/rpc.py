"""oned's XML-RPC API through pyone, OpenNebula's own Python binding: one request, sent once.

pyone makes the call: its XML-RPC server class names the method (``one.`` +
the name), puts the session first, casts the parameters and marshals the
request; its requests-based transport carries it. Four things are ours,
each where pyone would lose something we rely on (pyone 7.3.80 and 6.10.5,
read and measured on this machine, 2 CPUs, Python 3.11):

* **The answer stays raw.** pyone turns every XML answer into generateDS
  bindings and maps error codes to exceptions, but raises a bare
  ``OneException`` for LOCKED (0x8000), ALLOCATE and faults, losing the code.
  Here the server answers oned's array ``[success, value, code, ...]`` as it
  came, and :mod:`one_hooks.oned.client` maps the code (LOCKED ->
  OnedLocked). The XML inside is parsed by :mod:`one_hooks.oned.xmlparse`
  into our model: on ``one.vmpool.info`` of the simulated oned, pyone's
  bindings take 0.076 s of CPU for 1,000 VMs and 1.07 s for 10,000, our
  parser 0.071 s and 0.71 s (``infoextended``: 0.12 / 1.56 s against
  0.11 / 1.05 s), and the bindings would still have to be mapped onto the
  model; their lxml parser also expands entities, ours refuses them.
* **The XML-RPC envelope is read by** :func:`one_hooks.oned.wire.decode_response`,
  the first look's decoder, instead of ``xmlrpc.client``'s unmarshaller: 5x
  less CPU on pool answers (a 40-VM ``infoextended`` 0.46 against 2.4 ms,
  10,000 VMs 0.13 against 0.68 s), no DOCTYPE, a depth cap; and it keeps a
  fault's code.
* **The transport has a timeout of its own.** Given a timeout, pyone calls
  ``socket.setdefaulttimeout()``, which changes every socket the process
  opens afterwards; its transport posts with ``requests.post`` and no
  timeout. Here pyone gets no timeout and the transport gives requests one
  per request (connect, then each read).
* **A request is sent once, on a connection of its own.** urllib3 re-sends
  nothing here (``max_retries=0``, requests' default, made explicit;
  redirects are not followed), and each request has its own connection
  (a fresh requests session, ``Connection: close``), as pyone's
  ``requests.post`` has: a kept-alive connection that the server closes
  just as the next request goes out fails that request for nothing
  (seen against the simulated oned), and a failed ``one.vm.action`` leaves
  the caller unsure whether oned acted. (``xmlrpc.client``'s own transport,
  which pyone does not use, sends a request again after a reset: the
  tests show it against a server that resets after reading.) oned is
  reached directly, never through ``$http_proxy`` or ``~/.netrc``, as the
  first look reaches it; https endpoints are checked against the system's
  CA certificates, as the first look checks them.

Cost, measured here: ``import pyone`` about 0.13-0.15 s of CPU in a fresh
process (requests alone about 0.06-0.09 s, the generated bindings about
0.05 s), which is why the VM hooks' first look (:mod:`one_hooks.hooks.triage`)
stays on :mod:`one_hooks.oned.wire`; one call through here about 0.7-0.8 ms
of CPU against 0.16 ms through wire (a fresh requests session is most of it;
pyone's own ``requests.post`` 1.07 ms). ``python -X importtime -m one_hooks
hook host-reconnect`` (one VM to recover, median of 3 rounds of 10): imports
132 -> 331 ms, 166 -> 331 modules, whole process 132 -> 262 ms of CPU; the
VM hooks' first look loads the same 91 modules (79 when the host is watched)
as before, in the same CPU within noise. ``bench/run.py``, full runs back to
back before and after this door (load average 20-30 from other work):
host-reconnect CPU per host, hook and settle watcher, 0.40 -> 0.75 s; hook
CPU per VM event 0.043 -> 0.056 s; the full VM hook 117 -> 269 ms.

Failures come out as :mod:`one_hooks.oned.wire`'s errors (``Fault``,
``HttpError``, ``ProtocolError``) or this module's :class:`Unreachable` and
:class:`TimedOut`; the adapter maps them. Nothing here retries.
"""
from __future__ import annotations

import os
import ssl
import xmlrpc.client
from typing import Any, Optional, Sequence, Tuple, Union

import requests
from requests.adapters import HTTPAdapter

from . import wire

try:  # pyone 7.1+: OneServer is a factory; its XML-RPC class lives in server_xrpc
    from pyone.server_xrpc import OneServerXRPC as _PyoneServer  # type: ignore[import-untyped]
    from pyone.server_xrpc import RequestsTransport as _PyoneTransport
except ImportError:  # pyone 6.10 and 7.0: OneServer is the XML-RPC class itself
    from pyone import OneServer as _PyoneServer  # type: ignore[import-untyped]
    from pyone import RequestsTransport as _PyoneTransport


class Unreachable(wire.WireError):
    """No connection, or it closed or reset before the whole answer came."""


class TimedOut(wire.WireError):
    """No connection or no next piece of the answer within the timeout."""


_HEADERS = {"User-Agent": "one-hooks (pyone)", "Content-Type": "text/xml", "Accept": "*/*",
            "Connection": "close"}


class _Transport(_PyoneTransport):
    """pyone's requests transport with a timeout, one connection per request and no re-send."""

    def __init__(self, timeout: float, https: bool, verify: Union[bool, str]) -> None:
        super().__init__()
        self.set_https(https)
        self.set_https_verify(verify)
        self.timeout = timeout

    def request(self, host: str, handler: str, request_body: bytes, verbose: bool = False) -> Tuple[Any]:
        """POST one request; the decoded answer, as ``ServerProxy`` expects it (a 1-tuple)."""
        url = self._build_url(host, handler)
        with requests.Session() as session:
            session.trust_env = False  # no $http_proxy, no ~/.netrc: the first look has neither
            adapter = HTTPAdapter(max_retries=0)  # requests' default: urllib3 re-sends nothing
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            try:
                response = session.post(url, data=request_body, headers=_HEADERS, timeout=self.timeout,
                                        verify=self.https_verify, allow_redirects=False)
                body = response.content
            except requests.Timeout:
                raise TimedOut(f"no answer within {self.timeout:g} s") from None
            except requests.RequestException as exc:
                raise Unreachable(_cause(exc)) from None
        if response.status_code != 200:
            raise wire.HttpError(response.status_code, response.reason or "")
        return self.parse_response(body)

    def parse_response(self, body: bytes) -> Tuple[Any]:
        """The answer's value (wire's decoder; a fault raises :class:`wire.Fault`)."""
        return (wire.decode_response(body),)


def _cause(exc: BaseException) -> str:
    """What went wrong underneath requests' wrappers: ``ConnectionRefusedError: Connection refused``.

    Only the innermost exception's type and strerror: requests' own text names
    the URL, which may carry credentials.
    """
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "reason", None)  # urllib3's MaxRetryError
        if not isinstance(inner, BaseException):
            inner = exc.__cause__ or exc.__context__ or next(
                (a for a in exc.args if isinstance(a, BaseException)), None)
        if inner is None:
            break
        exc = inner
    strerror = getattr(exc, "strerror", None)
    return type(exc).__name__ + (f": {strerror}" if strerror else "")


def system_ca() -> Union[bool, str]:
    """The system's CA certificates (file, else directory) for requests' ``verify``; True if none."""
    paths = ssl.get_default_verify_paths()
    for path in (paths.cafile, paths.capath):
        if path and os.path.exists(path):
            return path
    return True


class Server(_PyoneServer):
    """pyone's XML-RPC server for one endpoint, answering oned's raw array.

    ``call("one.vm.action", ("resume", 7))`` goes through pyone's own request
    path (``one.`` prefix, session first, parameter casting); pyone's answer
    handling is replaced by :meth:`_raw`. One instance may be shared by
    threads: a request keeps nothing on it.
    """

    def __init__(self, endpoint: str, session: str, timeout: float,
                 verify: Optional[Union[bool, str]] = None) -> None:
        https = endpoint.startswith("https:")
        checked = verify if verify is not None else (system_ca() if https else True)
        # timeout=None: given one, pyone sets the process-wide socket default timeout.
        super().__init__(endpoint, session, timeout=None, https_verify=checked)
        # pyone builds its own transport (no timeout); ServerProxy keeps it here.
        self._ServerProxy__transport = _Transport(timeout, https, checked)

    def _raw(self, answer: Any) -> Any:
        """Instead of pyone's answer handling (bindings, exceptions without the code): the array."""
        return answer

    # pyone's name-mangled answer handler: OneServerXRPC.__response (7.1+), OneServer.__response (6.x, 7.0).
    _OneServerXRPC__response = _raw
    _OneServer__response = _raw

    def call(self, method: str, args: Sequence[Any]) -> Any:
        """oned's answer to ``method(session, *args)``, sent once (``method`` in full: ``one.vm.info``)."""
        if not method.startswith("one."):
            raise ValueError(f"not an oned method: {method!r}")
        # ServerProxy's own attribute lookup: a dotted name is always a remote method.
        return xmlrpc.client.ServerProxy.__getattr__(self, method[len("one."):])(*args)
