"""The only door to oned outside the VM hooks' first look: its XML-RPC API, with errors mapped to ours.

Calls go through pyone, OpenNebula's own binding, by way of :mod:`one_hooks.oned.rpc`
(which says what of pyone is used and what is not, with the figures); the
answers' XML is parsed by :mod:`one_hooks.oned.xmlparse` into :mod:`one_hooks.oned.model`
objects. The VM hooks' first look (:mod:`one_hooks.hooks.triage`) does not come
here: ``import pyone`` costs about 0.13-0.15 s of CPU per process, and that
path decides most VM events with one call through :mod:`one_hooks.oned.wire`.

oned answers every call with an array: ``[true, value, 0]`` on success,
``[false, message, code, ...]`` on failure. Codes map to the exception tree:

    0x0100 AUTHENTICATION, 0x0200 AUTHORIZATION -> OnedAuthError
    0x0400 NO_EXISTS                            -> OnedNotFound
    0x0800 ACTION                               -> OnedActionRefused
    0x1000 API, 0x4000 ALLOCATE, anything else  -> OnedApiError
    0x2000 INTERNAL                             -> OnedInternalError   (transient)
    0x8000 LOCKED                               -> OnedLocked
    0x0200 AUTHORIZATION saying "... is locked."  -> OnedLocked (what oned 6.10.5 and
           7.4.0 answer for an action on a locked VM: "User [0] : VM is locked. [7].")
    refused/reset/dropped connection, HTTP error, timeout -> OnedUnreachable (transient)
    XML-RPC fault (unknown method, bad parameter types) -> OnedApiError with the fault's code

Read-only calls are retried on errors worth asking again (transient ones, and
AUTHENTICATION, which a busy oned on sqlite answers when its database is
locked: :attr:`OnedError.worth_asking_again`) ``retries`` times, the delay
doubling from ``retry_delay``, through the injected ``sleep``; before each
wait, ``on_retry`` (if given) receives one line saying what failed, which
retry comes and when, for the entry point to show (the door prints nothing).
Calls that change something are never retried here, and nothing underneath
re-sends them: a dropped answer may hide a call that succeeded, so the caller
re-reads the state and decides.

One :class:`Oned` may be shared by threads: each request has its own
connection, and the call counter is guarded by a lock. The session string
(``user:password``) never appears in a message, repr or log line.
"""
from __future__ import annotations

import itertools
import threading
import time
import urllib.parse
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type

from . import rpc, wire, xmlparse
from .authfile import read_auth
from ..config import OnedSection
from ..errors import (
    ConfigError, OnedActionRefused, OnedApiError, OnedAuthError, OnedError, OnedInternalError, OnedLocked,
    OnedNotFound, OnedUnreachable, PayloadError,
)
from .model import (
    ACTION, ALLOCATE, AUTHENTICATION, AUTHORIZATION, INTERNAL, LOCKED, NO_EXISTS, XML_RPC_API, Cluster,
    Datastore, Hook, Host, Vm,
)


_ERRORS: Dict[int, Type[OnedError]] = {
    AUTHENTICATION: OnedAuthError,
    AUTHORIZATION: OnedAuthError,
    NO_EXISTS: OnedNotFound,
    ACTION: OnedActionRefused,
    XML_RPC_API: OnedApiError,
    INTERNAL: OnedInternalError,
    ALLOCATE: OnedApiError,
    LOCKED: OnedLocked,
}

#: ``kind`` argument of template_xml / update_template -> (info method, update method, root tag).
_TEMPLATE_KINDS: Dict[str, Tuple[str, str, str]] = {
    "host": ("one.host.info", "one.host.update", "HOST"),
    "cluster": ("one.cluster.info", "one.cluster.update", "CLUSTER"),
}

# Pool filter: -2 all objects, -1/-1 the whole ID range, -1 every state but DONE.
_ALL = -2
_ANY_STATE_BUT_DONE = -1


class Oned:
    """A client of oned's XML-RPC API returning parsed objects.

    ``sleep`` is the clock used between retries, so tests can pass
    ``waits.append`` and see the exact delays.
    """

    def __init__(self, endpoint: str, session: str, timeout: float = 30.0, retries: int = 0,
                 retry_delay: float = 1.0, sleep: Callable[[float], None] = time.sleep,
                 on_retry: Optional[Callable[[str], None]] = None) -> None:
        parsed = urllib.parse.urlsplit(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(f"endpoint must be an http(s) URL, got {_safe_url(endpoint)!r}",
                              key="oned")
        self.endpoint = endpoint
        self._session = session
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.retry_delay = retry_delay
        self._sleep = sleep
        self._on_retry = on_retry
        try:
            parsed.port
        except ValueError:
            raise ConfigError(f"endpoint has a bad port: {_safe_url(endpoint)!r}", key="oned") from None
        self._server = rpc.Server(endpoint, session, timeout)
        self._lock = threading.Lock()
        self._calls = 0
        # Parts of the secret to scrub from any text oned (or a proxy) sends back.
        self._secrets = tuple(s for s in {session, session.partition(":")[2]} if len(s) >= 4)

    @classmethod
    def from_config(cls, section: OnedSection, sleep: Callable[[float], None] = time.sleep,
                    on_retry: Optional[Callable[[str], None]] = None) -> "Oned":
        """An adapter for ``[oned]``: endpoint, auth file, timeout and retry policy."""
        return cls(section.endpoint, read_auth(section.auth_file), timeout=section.timeout,
                   retries=section.retries, retry_delay=section.retry_delay, sleep=sleep,
                   on_retry=on_retry)

    def __repr__(self) -> str:
        return f"Oned({self.safe_endpoint!r})"

    @property
    def safe_endpoint(self) -> str:
        """The endpoint without any ``user:password@`` part: what may be shown."""
        return _safe_url(self.endpoint)

    @property
    def calls(self) -> int:
        """XML-RPC requests sent so far, retries included (for benchmarks)."""
        with self._lock:
            return self._calls

    # --- plumbing ---------------------------------------------------------------

    def _once(self, method: str, args: Sequence[Any], ids: Sequence[int]) -> Any:
        """One request (pyone, on its own connection); oned's answer unwrapped, or the matching OnedError."""
        with self._lock:
            self._calls += 1
        try:
            answer = self._server.call(method, args)
        except wire.Fault as exc:
            # xmlrpc-c answers unknown methods and bad parameter types with a fault.
            raise OnedApiError(self._clean(f"XML-RPC fault {exc.code}: {exc.text}"),
                               method, exc.code, ids) from None
        except wire.HttpError as exc:
            raise OnedUnreachable(f"HTTP {exc.status} {self._clean(exc.reason)}",
                                  method, None, ids) from None
        except rpc.TimedOut as exc:
            raise OnedUnreachable(str(exc), method, None, ids) from None
        except rpc.Unreachable as exc:
            raise OnedUnreachable(f"cannot talk to {_safe_url(self.endpoint)} ({self._clean(str(exc))})",
                                  method, None, ids) from None
        except wire.ProtocolError as exc:
            raise OnedApiError(f"unreadable answer ({exc})", method, None, ids) from None
        return self._unwrap(method, answer, ids)

    def _unwrap(self, method: str, answer: Any, ids: Sequence[int]) -> Any:
        if not isinstance(answer, (list, tuple)) or len(answer) < 2 or not isinstance(answer[0], bool):
            raise OnedApiError("answer is not [success, value, ...]", method, None, ids)
        if answer[0]:
            return answer[1]
        code = answer[2] if len(answer) > 2 and isinstance(answer[2], int) else None
        raise error_class(code, str(answer[1]))(self._clean(str(answer[1])), method, code, ids)

    def _clean(self, text: str) -> str:
        """One line, without the session secret, whatever the server echoed."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return " ".join(text.split())

    def _read(self, method: str, *args: Any, ids: Sequence[int] = ()) -> Any:
        """A read-only call: retried on transient errors with doubling delays."""
        delay = self.retry_delay
        for attempt in itertools.count():
            try:
                return self._once(method, args, ids)
            except OnedError as exc:
                if not exc.worth_asking_again or attempt >= self.retries:
                    raise
                if self._on_retry is not None:
                    self._on_retry(f"oned at {_safe_url(self.endpoint)}: {method}: {exc.message}; "
                                   f"retry {attempt + 1} of {self.retries} in {delay:g} s")
            self._sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _write(self, method: str, *args: Any, ids: Sequence[int] = ()) -> Any:
        """A call that changes something: sent once, never retried here."""
        return self._once(method, args, ids)

    @staticmethod
    def _parsed(method: str, ids: Sequence[int], parse: Callable[[str], Any], value: Any) -> Any:
        if not isinstance(value, str):
            raise OnedApiError(f"expected an XML document, got {type(value).__name__}", method, None, ids)
        try:
            return parse(value)
        except PayloadError as exc:
            raise OnedApiError(f"unusable answer: {exc}", method, None, ids) from None

    # --- system -------------------------------------------------------------------

    def version(self) -> str:
        """oned's version (``one.system.version``), e.g. ``6.10.5``."""
        value = self._read("one.system.version")
        return str(value)

    # --- hosts --------------------------------------------------------------------

    def host_info(self, host_id: int) -> Host:
        """``one.host.info``: the host, its VM IDs and template."""
        ids = (host_id,)
        return self._parsed("one.host.info", ids, xmlparse.parse_host,
                            self._read("one.host.info", int(host_id), ids=ids))

    def host_pool(self) -> List[Host]:
        """``one.hostpool.info``: every host."""
        return self._parsed("one.hostpool.info", (), xmlparse.parse_host_pool,
                            self._read("one.hostpool.info"))

    def host_status(self, host_id: int, status: int) -> None:
        """``one.host.status``: 0 enable, 1 disable, 2 offline (the VMs are not touched). Not retried."""
        self._write("one.host.status", int(host_id), int(status), ids=(host_id,))

    def find_host(self, id_or_name: str) -> Host:
        """A host by numeric ID, else by exact NAME; OnedNotFound if there is none."""
        text = str(id_or_name).strip()
        if text.lstrip("-").isdigit():
            return self.host_info(int(text))
        for host in self.host_pool():
            if host.name == text:
                return host
        raise OnedNotFound(f"no host named {text!r}", "one.hostpool.info", NO_EXISTS)

    # --- VMs ----------------------------------------------------------------------

    def vm_info(self, vm_id: int) -> Vm:
        """``one.vm.info``: the VM with its last history record."""
        ids = (vm_id,)
        return self._parsed("one.vm.info", ids, xmlparse.parse_vm,
                            self._read("one.vm.info", int(vm_id), ids=ids))

    def vm_pool(self, host_id: Optional[int] = None,
                id_range: Optional[Tuple[int, int]] = None) -> List[Vm]:
        """Every VM not DONE, full body (``one.vmpool.infoextended``).

        With ``host_id``, only VMs whose last history record is on that host.
        The filtering is done here: the pool call's query argument works only
        on MySQL back-ends. ``id_range`` (first, last ID, inclusive) is the
        pool call's own start/end filter: with a host's VM IDs it keeps a
        host hook from reading a whole 10,000-VM cloud to see its 40 VMs.
        """
        method = "one.vmpool.infoextended"
        ids = () if host_id is None else (host_id,)
        start, end = (int(id_range[0]), int(id_range[1])) if id_range is not None else (-1, -1)
        vms = self._parsed(method, ids, xmlparse.parse_vm_pool,
                           self._read(method, _ALL, start, end, _ANY_STATE_BUT_DONE, ids=ids))
        if host_id is None:
            return vms
        return [vm for vm in vms if vm.host_id == host_id]

    def vm_action(self, action: str, vm_id: int) -> None:
        """``one.vm.action`` (``resume``, ``poweroff-hard``, ...). Not retried."""
        self._write("one.vm.action", action, int(vm_id), ids=(vm_id,))

    def vm_migrate(self, vm_id: int, host_id: int, live: bool = False, enforce: bool = False,
                   ds_id: int = -1, kind: int = 0) -> None:
        """``one.vm.migrate``: move the VM to ``host_id`` (cold unless ``live``). Not retried.

        ``enforce=True`` makes oned check the target's capacity (CPU, memory,
        PCI) and refuse a VM that does not fit; ``ds_id=-1`` keeps the system
        datastore; ``kind`` 0 save, 1 poweroff, 2 poweroff-hard
        (what a cold migration of a RUNNING VM does on its source; from
        UNKNOWN oned does nothing on the source at all).
        """
        self._write("one.vm.migrate", int(vm_id), int(host_id), bool(live), bool(enforce), int(ds_id),
                    int(kind), ids=(vm_id, host_id))

    # --- datastores ---------------------------------------------------------------

    def datastore_pool(self) -> List[Datastore]:
        """``one.datastorepool.info``: every datastore, with SHARED and TM_MAD."""
        return self._parsed("one.datastorepool.info", (), xmlparse.parse_datastore_pool,
                            self._read("one.datastorepool.info"))

    # --- hooks --------------------------------------------------------------------

    def hook_allocate(self, template: str) -> int:
        """``one.hook.allocate``: register a hook; its new ID. Not retried."""
        value = self._write("one.hook.allocate", template)
        if not isinstance(value, int):
            raise OnedApiError(f"expected a hook ID, got {type(value).__name__}", "one.hook.allocate")
        return value

    def hook_update(self, hook_id: int, template: str) -> None:
        """``one.hook.update`` in replace mode: the template must be complete. Not retried."""
        self._write("one.hook.update", int(hook_id), template, 0, ids=(hook_id,))

    def hook_delete(self, hook_id: int) -> None:
        """``one.hook.delete``. Not retried."""
        self._write("one.hook.delete", int(hook_id), ids=(hook_id,))

    def hook_info(self, hook_id: int) -> Hook:
        """``one.hook.info``: the hook with its execution log."""
        ids = (hook_id,)
        return self._parsed("one.hook.info", ids, xmlparse.parse_hook,
                            self._read("one.hook.info", int(hook_id), ids=ids))

    def hook_pool(self) -> List[Hook]:
        """``one.hookpool.info``: every hook (no execution logs)."""
        return self._parsed("one.hookpool.info", (), xmlparse.parse_hook_pool,
                            self._read("one.hookpool.info", _ALL, -1, -1))

    # --- clusters and templates ---------------------------------------------------

    def cluster_info(self, cluster_id: int) -> Cluster:
        """``one.cluster.info``."""
        ids = (cluster_id,)
        return self._parsed("one.cluster.info", ids, xmlparse.parse_cluster,
                            self._read("one.cluster.info", int(cluster_id), ids=ids))

    def cluster_pool(self) -> List[Cluster]:
        """``one.clusterpool.info``."""
        return self._parsed("one.clusterpool.info", (), xmlparse.parse_cluster_pool,
                            self._read("one.clusterpool.info"))

    def template_xml(self, kind: str, obj_id: int) -> str:
        """The ``<TEMPLATE>`` element of a host or cluster, as XML text."""
        info, _, tag = _template_kind(kind)
        ids = (obj_id,)
        value = self._read(info, int(obj_id), ids=ids)
        return self._parsed(info, ids, lambda xml: xmlparse.template_element(xml, tag), value)

    def update_template(self, kind: str, obj_id: int, text: str, append: bool) -> None:
        """``one.host.update`` / ``one.cluster.update``: replace (or merge with ``append``). Not retried."""
        _, update, _ = _template_kind(kind)
        self._write(update, int(obj_id), text, 1 if append else 0, ids=(obj_id,))


def error_class(code: Optional[int], message: str) -> Type[OnedError]:
    """The exception for oned's failure answer ``[false, message, code]``.

    A locked object is refused with LOCKED (0x8000) by the code's name, but a
    real oned (6.10.5, 7.4.0) refuses an action on a locked VM with
    AUTHORIZATION and "VM is locked.": both are :class:`OnedLocked`.
    """
    if code == AUTHORIZATION and " is locked." in message:
        return OnedLocked
    return _ERRORS.get(code, OnedApiError) if code is not None else OnedApiError


def _template_kind(kind: str) -> Tuple[str, str, str]:
    try:
        return _TEMPLATE_KINDS[kind]
    except KeyError:
        raise ValueError(f"no template calls for {kind!r} (known: host, cluster)") from None


def _safe_url(url: str) -> str:
    """The endpoint without any user:password@ part."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
