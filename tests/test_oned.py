"""The oned adapter against a fake oned at the network boundary.

The fake is a real XML-RPC server (stdlib ``xmlrpc.server``) on 127.0.0.1,
answering with XML captured from a real oned 6.10.5 (tests/data/oned) in
oned's wire format: ``[true, value, 0]`` or ``[false, message, code, id]``.
It can also fail the way networks fail: refuse, drop the connection after
doing the work, answer HTTP 503, send garbage, or never answer.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
import xmlrpc.client
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any, Dict, Iterator, List, Optional, Tuple
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

import pytest
from lxml import etree

from one_hooks.oned import client as oned_mod
from one_hooks.config import OnedSection
from one_hooks.errors import (
    ConfigError, OnedActionRefused, OnedApiError, OnedAuthError, OnedError, OnedInternalError,
    OnedLocked, OnedNotFound, OnedUnreachable,
)
from one_hooks.oned.model import HistoryAction, HostState, LcmState, VmState
from one_hooks.oned.client import Oned
from tests.raw_server import RawServer

DATA = Path(__file__).parent / "data" / "oned"
RUN4 = DATA / "run4-vm-lost-status-probe-gone"
RUN2 = DATA / "run2-stock-dummy-beacon-timeout"
SESSION = "oneadmin:s3cr3t-passw0rd"


def captured(path: Path, **changes: str) -> str:
    """A captured document with some direct children (or ``A/B`` paths) changed."""
    root = etree.fromstring(path.read_bytes())
    for tag, value in changes.items():
        root.find(tag.replace("__", "/")).text = value
    return etree.tostring(root, encoding="unicode")


class _Handler(SimpleXMLRPCRequestHandler):
    rpc_paths = ("/RPC2",)

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        fake: FakeOned = self.server.fake  # type: ignore[attr-defined]
        fault = fake.take_transport_fault()
        if fault is None:
            super().do_POST()
            return
        body = self.rfile.read(int(self.headers["content-length"]))
        if fault == "drop-after-work":
            # oned did the work, then the answer was lost on the way back.
            self.server._marshaled_dispatch(body)  # type: ignore[attr-defined]
            self.connection.shutdown(socket.SHUT_RDWR)
        elif fault == "drop":
            self.connection.shutdown(socket.SHUT_RDWR)
        elif fault == "http-503":
            self.send_response(503, "Service Unavailable")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif fault == "garbage":
            payload = b"<html>proxy error</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        elif fault == "hang":
            fake.release.wait(20)
        self.close_connection = True

    def log_message(self, *args: Any) -> None:
        pass


class _Server(ThreadingMixIn, SimpleXMLRPCServer):
    daemon_threads = True


class FakeOned:
    """A fake oned: real XML-RPC over loopback, captured XML, injectable failures."""

    def __init__(self) -> None:
        self.requests: List[Tuple[str, tuple]] = []
        self.actions: List[Tuple[str, int]] = []
        self.updates: List[Tuple[str, int, str, int]] = []
        self.errors: Dict[str, List[Tuple[int, str]]] = {}
        self.transport_faults: List[str] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.next_hook_id = 5
        self.hooks: Dict[int, str] = {}
        self.hosts = {
            0: captured(RUN4 / "05-after-resume-host.xml"),
            1: captured(RUN2 / "03-host-error-host.xml", ID="1", NAME="node-2", VMS__ID="12"),
        }
        self.vms = {
            7: captured(RUN4 / "04-host-restored-vm.xml", ID="7"),
            3: captured(RUN2 / "03-outage-vm.xml", ID="3", NAME="db"),
            # Its last history record (SEQ 1) is on host 1, the first one on host 0.
            12: self._moved_vm(),
        }
        hook_pool = etree.fromstring((RUN4 / "91-hookpool.xml").read_bytes())
        for el in hook_pool:
            self.hooks[int(el.findtext("ID"))] = etree.tostring(el, encoding="unicode")
        self.hook_info = {3: (RUN2 / "90-hook-host_monitored-info.xml").read_text()}
        self.cluster = (DATA / "handmade" / "cluster-default.xml").read_text()
        self.cluster_pool = (DATA / "handmade" / "clusterpool.xml").read_text()
        self.server = _Server(("127.0.0.1", 0), requestHandler=_Handler, logRequests=False,
                              allow_none=True)
        self.server.fake = self  # type: ignore[attr-defined]
        self.server.register_instance(self)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @staticmethod
    def _moved_vm() -> str:
        root = etree.fromstring((RUN4 / "05-after-resume-vm.xml").read_bytes())
        root.find("ID").text = "12"
        last = [h for h in root.iter("HISTORY") if h.findtext("SEQ") == "1"][0]
        last.find("HID").text = "1"
        last.find("HOSTNAME").text = "node-2"
        return etree.tostring(root, encoding="unicode")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/RPC2"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    # --- failure injection ---------------------------------------------------------

    def fail(self, method: str, code: int, message: str, times: int = 1) -> None:
        self.errors.setdefault(method, []).extend([(code, message)] * times)

    def take_transport_fault(self) -> Optional[str]:
        with self.lock:
            return self.transport_faults.pop(0) if self.transport_faults else None

    # --- dispatch, as oned answers -----------------------------------------------

    def _dispatch(self, method: str, params: tuple) -> list:
        session, args = params[0], tuple(params[1:])
        with self.lock:
            self.requests.append((method, args))
            queued = self.errors.get(method)
            injected = queued.pop(0) if queued else None
        if session != SESSION:
            return [False, f"[{method}] User couldn't be authenticated, aborting call.", 0x100]
        if injected:
            return [False, injected[1], injected[0], -1]
        handler = getattr(self, "rpc_" + method.replace(".", "_"), None)
        if handler is None:
            raise xmlrpc.client.Fault(-501, f"Unknown method: {method}")
        return handler(*args)

    @staticmethod
    def _missing(method: str, kind: str, oid: int) -> list:
        return [False, f"[{method}] Error getting {kind} [{oid}].", 0x400, oid]

    def rpc_one_system_version(self) -> list:
        return [True, (DATA / "run1-outage-during-start-confirm" / "00-system-version.txt")
                .read_text().strip(), 0]

    def rpc_one_host_info(self, oid: int) -> list:
        return [True, self.hosts[oid], 0] if oid in self.hosts else \
            self._missing("one.host.info", "host", oid)

    def rpc_one_hostpool_info(self) -> list:
        return [True, "<HOST_POOL>" + "".join(self.hosts.values()) + "</HOST_POOL>", 0]

    def rpc_one_vm_info(self, oid: int) -> list:
        return [True, self.vms[oid], 0] if oid in self.vms else \
            self._missing("one.vm.info", "virtual machine", oid)

    def rpc_one_vmpool_infoextended(self, flt: int, start: int, end: int, state: int) -> list:
        assert (flt, state) == (-2, -1)
        wanted = sorted(i for i in self.vms if (start, end) == (-1, -1) or start <= i <= end)
        return [True, "<VM_POOL>" + "".join(self.vms[i] for i in wanted) + "</VM_POOL>", 0]

    def rpc_one_vm_action(self, action: str, oid: int) -> list:
        if oid not in self.vms:
            return self._missing("one.vm.action", "virtual machine", oid)
        with self.lock:
            self.actions.append((action, oid))
        return [True, oid, 0]

    def rpc_one_hook_allocate(self, template: str) -> list:
        if "COMMAND" not in template:
            return [False, "[one.hook.allocate] No COMMAND in template.", 0x4000, -1]
        with self.lock:
            hid, self.next_hook_id = self.next_hook_id, self.next_hook_id + 1
            self.hooks[hid] = f"<HOOK><ID>{hid}</ID><NAME>new</NAME><TYPE>state</TYPE><TEMPLATE/></HOOK>"
        return [True, hid, 0]

    def rpc_one_hook_update(self, oid: int, template: str, mode: int) -> list:
        if oid not in self.hooks:
            return self._missing("one.hook.update", "hook", oid)
        self.updates.append(("hook", oid, template, mode))
        return [True, oid, 0]

    def rpc_one_hook_delete(self, oid: int) -> list:
        if self.hooks.pop(oid, None) is None:
            return self._missing("one.hook.delete", "hook", oid)
        return [True, oid, 0]

    def rpc_one_hook_info(self, oid: int) -> list:
        return [True, self.hook_info[oid], 0] if oid in self.hook_info else \
            self._missing("one.hook.info", "hook", oid)

    def rpc_one_hookpool_info(self, flt: int, start: int, end: int) -> list:
        assert (flt, start, end) == (-2, -1, -1)
        return [True, "<HOOK_POOL>" + "".join(self.hooks[i] for i in sorted(self.hooks)) + "</HOOK_POOL>", 0]

    def rpc_one_cluster_info(self, oid: int) -> list:
        return [True, self.cluster, 0] if oid == 0 else self._missing("one.cluster.info", "cluster", oid)

    def rpc_one_clusterpool_info(self) -> list:
        return [True, self.cluster_pool, 0]

    def rpc_one_host_update(self, oid: int, text: str, mode: int) -> list:
        self.updates.append(("host", oid, text, mode))
        return [True, oid, 0]

    def rpc_one_cluster_update(self, oid: int, text: str, mode: int) -> list:
        self.updates.append(("cluster", oid, text, mode))
        return [True, oid, 0]


@pytest.fixture
def fake() -> Iterator[FakeOned]:
    server = FakeOned()
    yield server
    server.close()


@pytest.fixture
def sleeps() -> List[float]:
    return []


@pytest.fixture
def client(fake: FakeOned, sleeps: List[float]) -> Oned:
    return Oned(fake.endpoint, SESSION, timeout=5, retries=0, sleep=sleeps.append)


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# --- every call -----------------------------------------------------------------


def test_version(client: Oned, fake: FakeOned) -> None:
    assert client.version() == "6.10.5"
    assert client.calls == 1 and fake.requests == [("one.system.version", ())]


def test_host_calls(client: Oned) -> None:
    host = client.host_info(0)
    assert (host.id, host.name, host.state, host.vm_ids) == (0, "dummy-host-1", HostState.MONITORED, (0,))
    assert [(h.id, h.state) for h in client.host_pool()] == [(0, HostState.MONITORED), (1, HostState.ERROR)]
    assert client.find_host("1").name == "node-2"
    assert client.find_host("node-2").id == 1
    with pytest.raises(OnedNotFound) as info:
        client.find_host("no-such-host")
    assert "no-such-host" in str(info.value)


def test_vm_calls(client: Oned, fake: FakeOned) -> None:
    vm = client.vm_info(7)
    assert vm.state == VmState.POWEROFF and vm.history is not None
    assert vm.history.action == HistoryAction.MONITOR
    assert [v.id for v in client.vm_pool()] == [3, 7, 12]
    # VM 12's first record is on host 0, its last on host 1: it belongs to host 1 only.
    assert [v.id for v in client.vm_pool(host_id=0)] == [3, 7]
    assert [v.id for v in client.vm_pool(host_id=1)] == [12]
    assert client.vm_pool(host_id=9) == []
    client.vm_action("resume", 7)
    assert fake.actions == [("resume", 7)]
    # the query argument is never sent (it works on MySQL only)
    assert all(len(args) == 4 for m, args in fake.requests if m == "one.vmpool.infoextended")


def test_hook_calls(client: Oned, fake: FakeOned) -> None:
    hooks = client.hook_pool()
    assert [h.name for h in hooks] == ["vm-unknown", "vm-running", "vm-poweroff", "host-monitored", "host-error"]
    new_id = client.hook_allocate('NAME = "x"\nCOMMAND = "one-hooks/vm-unknown"\n')
    assert new_id == 5 and 5 in fake.hooks
    client.hook_update(new_id, 'NAME = "x"\nCOMMAND = "y"\n')
    assert fake.updates == [("hook", 5, 'NAME = "x"\nCOMMAND = "y"\n', 0)]  # replace mode
    client.hook_delete(new_id)
    assert new_id not in fake.hooks
    hook = client.hook_info(3)
    assert hook.name == "host-monitored" and len(hook.log) == 3
    assert hook.log[-1].stdout.startswith("capture-hook ok")
    with pytest.raises(OnedApiError) as info:  # ALLOCATE 0x4000
        client.hook_allocate('NAME = "no command"')
    assert info.value.code == 0x4000


def test_cluster_and_template_calls(client: Oned, fake: FakeOned) -> None:
    assert client.cluster_info(0).host_ids == (0, 3)
    assert [c.name for c in client.cluster_pool()] == ["default", "iscsi-rack"]
    host_template = etree.fromstring(client.template_xml("host", 0))
    assert host_template.tag == "TEMPLATE" and host_template.findtext("HOSTNAME") == "dummy-host-1"
    cluster_template = etree.fromstring(client.template_xml("cluster", 0))
    assert cluster_template.findtext("CPU_MODEL/MODEL") == "host-passthrough"
    client.update_template("host", 0, 'CPU_MODEL = [ MODEL = "host-passthrough" ]', append=True)
    client.update_template("cluster", 0, 'RESERVED_CPU = ""', append=False)
    assert fake.updates == [("host", 0, 'CPU_MODEL = [ MODEL = "host-passthrough" ]', 1),
                            ("cluster", 0, 'RESERVED_CPU = ""', 0)]
    with pytest.raises(ValueError):
        client.template_xml("vm", 0)


# --- error mapping ------------------------------------------------------------------

ERROR_CLASSES = [
    (0x100, OnedAuthError, False),
    (0x200, OnedAuthError, False),
    (0x400, OnedNotFound, False),
    (0x800, OnedActionRefused, False),
    (0x1000, OnedApiError, False),
    (0x2000, OnedInternalError, True),
    (0x4000, OnedApiError, False),
    (0x8000, OnedLocked, False),
    (0x10000, OnedApiError, False),  # a code this adapter does not know
]


@pytest.mark.parametrize("code,cls,transient", ERROR_CLASSES, ids=[hex(c[0]) for c in ERROR_CLASSES])
def test_each_error_code(client: Oned, fake: FakeOned, code: int, cls: type, transient: bool) -> None:
    fake.fail("one.vm.info", code, "[one.vm.info] refused for a reason.")
    with pytest.raises(cls) as info:
        client.vm_info(3)
    err = info.value
    assert type(err) is cls and err.transient is transient
    assert (err.method, err.code, err.ids) == ("one.vm.info", code, (3,))
    assert str(err) == "oned: one.vm.info: [one.vm.info] refused for a reason. (ids 3)"


def test_missing_objects(client: Oned) -> None:
    with pytest.raises(OnedNotFound) as info:
        client.vm_info(99)
    assert info.value.ids == (99,) and "Error getting virtual machine [99]" in str(info.value)
    with pytest.raises(OnedNotFound):
        client.host_info(42)
    with pytest.raises(OnedNotFound):
        client.vm_action("resume", 99)


def test_action_refusals(client: Oned, fake: FakeOned) -> None:
    fake.fail("one.vm.action", 0x800, '[one.vm.action] Error performing action "resume": '
                                      "This action is not available for state RUNNING")
    with pytest.raises(OnedActionRefused) as info:
        client.vm_action("resume", 3)
    assert info.value.ids == (3,) and "RUNNING" in str(info.value)
    fake.fail("one.vm.action", 0x8000, "[one.vm.action] The resource is locked.")
    with pytest.raises(OnedLocked):
        client.vm_action("resume", 3)
    assert fake.actions == []


def test_wrong_credentials_never_echo_the_secret(fake: FakeOned) -> None:
    client = Oned(fake.endpoint, "oneadmin:wrong-password")
    with pytest.raises(OnedAuthError) as info:
        client.host_info(0)
    assert "wrong-password" not in str(info.value) and info.value.code == 0x100


def test_secret_is_scrubbed_even_if_the_server_echoes_it(client: Oned, fake: FakeOned) -> None:
    fake.fail("one.vm.info", 0x1000, f"[one.vm.info] bad session {SESSION} (s3cr3t-passw0rd)")
    with pytest.raises(OnedApiError) as info:
        client.vm_info(3)
    text = f"{info.value} {info.value!r} {info.value.message} {client!r}"
    assert "s3cr3t" not in text and "***" in text


def test_repr_and_url_credentials_are_hidden(fake: FakeOned) -> None:
    url = fake.endpoint.replace("http://", "http://oneadmin:urlpass@")
    client = Oned(url, SESSION)
    assert "urlpass" not in repr(client) and SESSION not in repr(client)
    assert "s3cr3t" not in repr(vars(client).get("endpoint"))


def test_bad_endpoint_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="http"):
        Oned("localhost:2633", SESSION)


# --- transport failures ---------------------------------------------------------------


def test_connection_refused_is_transient_and_retried() -> None:
    waits: List[float] = []
    client = Oned(f"http://127.0.0.1:{closed_port()}/RPC2", SESSION, timeout=2, retries=3,
                  retry_delay=0.5, sleep=waits.append)
    with pytest.raises(OnedUnreachable) as info:
        client.version()
    assert info.value.transient and info.value.method == "one.system.version"
    assert "ConnectionRefusedError" in str(info.value)
    assert waits == [0.5, 1.0, 2.0] and client.calls == 4


def test_each_retry_is_announced_to_the_caller_before_its_wait() -> None:
    events: List[str] = []
    port = closed_port()
    client = Oned(f"http://oneadmin:urlpass@127.0.0.1:{port}/RPC2", SESSION, timeout=2, retries=2,
                  retry_delay=0.5, sleep=lambda s: events.append(f"sleep {s:g}"), on_retry=events.append)
    with pytest.raises(OnedUnreachable):
        client.host_pool()
    assert events[1::2] == ["sleep 0.5", "sleep 1"]
    assert all(e.startswith(f"oned at http://127.0.0.1:{port}/RPC2: one.hostpool.info: cannot talk to")
               for e in events[::2]), events
    assert events[0].endswith("; retry 1 of 2 in 0.5 s") and events[2].endswith("; retry 2 of 2 in 1 s")


def test_https_endpoint_and_url_credentials_in_errors() -> None:
    port = closed_port()
    for url in (f"https://127.0.0.1:{port}/RPC2", f"http://oneadmin:urlpass@127.0.0.1:{port}/RPC2"):
        with pytest.raises(OnedUnreachable) as info:
            Oned(url, SESSION, timeout=2).host_info(0)
        assert "urlpass" not in str(info.value) and f"127.0.0.1:{port}" in str(info.value)
        assert info.value.ids == (0,)


def test_read_retry_recovers_after_transient_errors(fake: FakeOned, sleeps: List[float]) -> None:
    client = Oned(fake.endpoint, SESSION, retries=4, retry_delay=0.25, sleep=sleeps.append)
    fake.fail("one.vm.info", 0x2000, "[one.vm.info] database is locked", times=2)
    fake.transport_faults.append("drop")
    vm = client.vm_info(3)
    assert vm.name == "db" and vm.lcm_state == LcmState.UNKNOWN
    assert sleeps == [0.25, 0.5, 1.0] and client.calls == 4


def test_read_retry_gives_up(fake: FakeOned, sleeps: List[float]) -> None:
    client = Oned(fake.endpoint, SESSION, retries=2, retry_delay=1, sleep=sleeps.append)
    fake.fail("one.host.info", 0x2000, "[one.host.info] internal error", times=5)
    with pytest.raises(OnedInternalError):
        client.host_info(0)
    assert sleeps == [1, 2] and client.calls == 3


def test_a_busy_oneds_authentication_refusal_is_asked_again(fake: FakeOned, sleeps: List[float]) -> None:
    """oned on sqlite answers AUTHENTICATION when its database is locked under load (the real 6.10.5 and 7.4.0
    in a 270-VM storm: "database is locked", then "User couldn't be authenticated"): a read asks again; a
    write does not; wrong credentials still fail, after the retries."""
    client = Oned(fake.endpoint, SESSION, retries=2, retry_delay=1, sleep=sleeps.append)
    fake.fail("one.host.info", 0x100, "[one.host.info] User couldn't be authenticated, aborting call.")
    assert client.host_info(0).id == 0
    assert sleeps == [1] and client.calls == 2
    fake.fail("one.vm.action", 0x100, "[one.vm.action] User couldn't be authenticated, aborting call.")
    with pytest.raises(OnedAuthError):
        client.vm_action("resume", 3)
    assert client.calls == 3 and fake.actions == []
    wrong = Oned(fake.endpoint, "oneadmin:wrong-password", retries=2, retry_delay=1, sleep=sleeps.append)
    with pytest.raises(OnedAuthError):
        wrong.host_info(0)
    assert wrong.calls == 3 and sleeps == [1, 1, 2]


def test_final_errors_are_not_retried(fake: FakeOned, sleeps: List[float]) -> None:
    client = Oned(fake.endpoint, SESSION, retries=5, sleep=sleeps.append)
    with pytest.raises(OnedNotFound):
        client.vm_info(404)
    assert sleeps == [] and client.calls == 1


def test_dropped_answer_of_an_action_is_not_retried(fake: FakeOned, sleeps: List[float]) -> None:
    """oned resumed the VM but the answer was lost: sending it again would be blind."""
    client = Oned(fake.endpoint, SESSION, retries=5, sleep=sleeps.append)
    fake.transport_faults.append("drop-after-work")
    with pytest.raises(OnedUnreachable) as info:
        client.vm_action("resume", 7)
    assert info.value.ids == (7,) and info.value.method == "one.vm.action"
    assert fake.actions == [("resume", 7)]  # done once, by the first and only request
    assert sleeps == [] and client.calls == 1


@pytest.mark.parametrize("call", [
    lambda c: c.vm_action("resume", 7),
    lambda c: c.hook_allocate('COMMAND = "x"'),
    lambda c: c.hook_update(3, 'COMMAND = "x"'),
    lambda c: c.hook_delete(3),
    lambda c: c.update_template("host", 0, "A = 1", append=True),
], ids=["vm_action", "hook_allocate", "hook_update", "hook_delete", "update_template"])
def test_mutating_calls_are_sent_once_even_on_internal(fake: FakeOned, sleeps: List[float], call) -> None:
    client = Oned(fake.endpoint, SESSION, retries=5, sleep=sleeps.append)
    for method in ("one.vm.action", "one.hook.allocate", "one.hook.update", "one.hook.delete",
                   "one.host.update"):
        fake.fail(method, 0x2000, f"[{method}] internal error")
    with pytest.raises(OnedInternalError):
        call(client)
    assert sleeps == [] and client.calls == 1 and len(fake.requests) == 1


def test_http_error(client: Oned, fake: FakeOned) -> None:
    fake.transport_faults.append("http-503")
    with pytest.raises(OnedUnreachable, match="HTTP 503"):
        client.version()


def test_garbage_answer(client: Oned, fake: FakeOned) -> None:
    fake.transport_faults.append("garbage")
    with pytest.raises(OnedApiError, match="unreadable answer"):
        client.version()


def test_hanging_server_times_out(fake: FakeOned) -> None:
    client = Oned(fake.endpoint, SESSION, timeout=0.3)
    fake.transport_faults.append("hang")
    with pytest.raises(OnedUnreachable, match="no answer within 0.3 s") as info:
        client.vm_info(3)
    assert info.value.transient and info.value.ids == (3,)


def test_unknown_method_fault(client: Oned) -> None:
    with pytest.raises(OnedApiError, match="Unknown method") as info:
        client._read("one.nosuch.call")
    assert info.value.code == -501


def test_answers_that_are_not_oned_shaped(client: Oned, fake: FakeOned) -> None:
    fake.vms[3] = "<VM><ID>3</ID>"  # truncated document
    with pytest.raises(OnedApiError, match="unusable answer") as info:
        client.vm_info(3)
    assert info.value.ids == (3,)
    fake.rpc_one_system_version = lambda: "6.10.5"  # type: ignore[assignment]  # bare value
    with pytest.raises(OnedApiError, match=r"not \[success, value"):
        client.version()
    fake.rpc_one_hostpool_info = lambda: [True, 17, 0]  # type: ignore[assignment]
    with pytest.raises(OnedApiError, match="expected an XML document"):
        client.host_pool()


# --- threads and config ---------------------------------------------------------------


def test_one_client_shared_by_threads(client: Oned, fake: FakeOned) -> None:
    results: List[Tuple[int, str]] = []
    errors: List[BaseException] = []

    def work(vm_id: int) -> None:
        try:
            for _ in range(20):
                results.append((vm_id, client.vm_info(vm_id).state_name))
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in (3, 7, 12, 3, 7, 12, 3, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert client.calls == 160 == len(fake.requests) == len(results)
    expected = {3: "ACTIVE/UNKNOWN", 7: "POWEROFF", 12: "ACTIVE/RUNNING"}
    assert all(state == expected[vm_id] for vm_id, state in results)


def test_from_config(fake: FakeOned, tmp_path: Path) -> None:
    auth = tmp_path / "one_auth"
    auth.write_text(SESSION + "\n")
    waits: List[float] = []
    section = OnedSection(endpoint=fake.endpoint, auth_file=str(auth), timeout=4.0, retries=2,
                          retry_delay=0.5)
    client = Oned.from_config(section, sleep=waits.append)
    assert (client.timeout, client.retries, client.retry_delay) == (4.0, 2, 0.5)
    fake.fail("one.system.version", 0x2000, "busy")
    assert client.version() == "6.10.5" and waits == [0.5]
    (tmp_path / "bad").write_text("no colon here\n")
    with pytest.raises(ConfigError):
        Oned.from_config(OnedSection(endpoint=fake.endpoint, auth_file=str(tmp_path / "bad")))


def test_error_classes_carry_transient_flag() -> None:
    transient = {cls for _, cls, t in ERROR_CLASSES if t} | {OnedUnreachable}
    assert all(issubclass(cls, OnedError) for cls in transient)
    assert {c for c in transient if c.transient} == transient


def test_adapter_calls_through_pyone_and_the_first_look_does_not() -> None:
    code = ("import sys, one_hooks.oned.client; a = 'pyone' in sys.modules; "
            "import one_hooks.oned.rpc as r, pyone; "
            "b = issubclass(r.Server, type(pyone.OneServer('http://127.0.0.1:1/RPC2', session='a:b'))); "
            "print(a, b)")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent,
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["True", "True"], done.stderr
    first_look = ("import sys, one_hooks.hooks.triage, one_hooks.oned.wire, one_hooks.oned.authfile; "
                  "sys.exit(1 if 'pyone' in sys.modules or 'requests' in sys.modules else 0)")
    done = subprocess.run([sys.executable, "-c", first_look], cwd=Path(__file__).parent.parent,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert oned_mod.__doc__ and "pyone" in oned_mod.__doc__


# --- what pyone alone would get wrong, kept right here ------------------------------------


def test_locked_keeps_its_code_where_pyone_alone_loses_it(client: Oned, fake: FakeOned) -> None:
    import pyone

    fake.fail("one.vm.action", 0x8000, "[one.vm.action] The resource is locked.")
    with pytest.raises(OnedLocked) as info:
        client.vm_action("resume", 3)
    assert (info.value.code, info.value.ids, info.value.transient) == (0x8000, (3,), False)
    # pyone's own answer handling: a bare OneException, the code gone.
    fake.fail("one.vm.action", 0x8000, "[one.vm.action] The resource is locked.")
    with pytest.raises(pyone.OneException) as bare:
        pyone.OneServer(fake.endpoint, session=SESSION).vm.action("resume", 3)
    assert type(bare.value) is pyone.OneException and "0x8000" not in str(bare.value)
    assert fake.actions == []


def test_a_locked_vm_as_a_real_oned_refuses_it(client: Oned, fake: FakeOned) -> None:
    """oned 6.10.5 and 7.4.0 refuse an action on a locked VM with AUTHORIZATION, not LOCKED (seen on both)."""
    fake.fail("one.vm.action", 0x200, "[one.vm.action] User [0] : VM is locked. [3].")
    with pytest.raises(OnedLocked) as info:
        client.vm_action("resume", 3)
    assert (info.value.code, info.value.ids) == (0x200, (3,))
    fake.fail("one.vm.action", 0x200, "[one.vm.action] User [0] : Not authorized to perform MANAGE VM [3].")
    with pytest.raises(OnedAuthError):
        client.vm_action("resume", 3)
    assert fake.actions == []


def test_answers_stay_raw_xml_for_our_parser(client: Oned, fake: FakeOned) -> None:
    answer = client._server.call("one.vm.info", (3,))
    assert answer[0] is True and answer[2] == 0 and isinstance(answer[1], str)
    assert etree.fromstring(answer[1].encode()).findtext("NAME") == "db"
    refused = client._server.call("one.vm.info", (404,))
    assert refused[:3] == [False, "[one.vm.info] Error getting virtual machine [404].", 0x400]


def test_no_process_wide_socket_timeout(fake: FakeOned) -> None:
    import pyone

    assert socket.getdefaulttimeout() is None
    client = Oned(fake.endpoint, SESSION, timeout=0.3)
    assert client.version() == "6.10.5"
    fake.transport_faults.append("hang")
    with pytest.raises(OnedUnreachable, match="no answer within 0.3 s"):
        client.vm_info(3)
    assert socket.getdefaulttimeout() is None
    try:  # what pyone does when given the timeout itself
        pyone.OneServer(fake.endpoint, session=SESSION, timeout=7)
        assert socket.getdefaulttimeout() == 7
    finally:
        socket.setdefaulttimeout(None)


def test_pool_reads_send_the_id_range(client: Oned, fake: FakeOned) -> None:
    assert [v.id for v in client.vm_pool(id_range=(4, 12))] == [7, 12]
    assert [v.id for v in client.vm_pool(host_id=1, id_range=(7, 12))] == [12]
    assert [v.id for v in client.vm_pool(host_id=0, id_range=(3, 7))] == [3, 7]
    assert [args for m, args in fake.requests if m == "one.vmpool.infoextended"] == \
        [(-2, 4, 12, -1), (-2, 7, 12, -1), (-2, 3, 7, -1)]


@pytest.fixture
def resetting() -> Iterator[RawServer]:
    server = RawServer()
    yield server
    server.close()


def test_a_reset_after_the_request_is_read_is_sent_once(resetting: RawServer, sleeps: List[float]) -> None:
    """oned read the resume and the connection died: not one byte more goes out for it."""
    client = Oned(resetting.endpoint, SESSION, retries=5, sleep=sleeps.append)
    with pytest.raises(OnedUnreachable) as info:
        client.vm_action("resume", 7)
    assert info.value.transient and info.value.ids == (7,)
    assert "ConnectionResetError" in str(info.value) and "s3cr3t" not in str(info.value)
    assert len(resetting.requests) == 1 and client.calls == 1 and sleeps == []
    assert b"one.vm.action" in resetting.requests[0] and b"<int>7</int>" in resetting.requests[0]
    # Reads are sent again, each time on purpose (counted, with the injected waits).
    with pytest.raises(OnedUnreachable):
        Oned(resetting.endpoint, SESSION, retries=2, retry_delay=0.5, sleep=sleeps.append).vm_info(7)
    assert len(resetting.requests) == 4 and sleeps == [0.5, 1.0]


def test_the_stdlib_transport_would_have_sent_it_twice(resetting: RawServer) -> None:
    """Why the transport matters: xmlrpc.client's own one re-sends after a reset (the test above could fail)."""
    with pytest.raises((ConnectionError, OSError)):
        xmlrpc.client.ServerProxy(resetting.endpoint).one.vm.action(SESSION, "resume", 7)
    assert len(resetting.requests) == 2


OK_BODY = xmlrpc.client.dumps(([True, "7.4.0", 0],), methodresponse=True).encode()


@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(OK_BODY) + OK_BODY,
    b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\n" + OK_BODY,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"%x\r\n" % 10 + OK_BODY[:10] + b"\r\n" + b"%x\r\n" % (len(OK_BODY) - 10) + OK_BODY[10:]
    + b"\r\n0\r\n\r\n",
], ids=["content-length", "http-1.0", "chunked"])
def test_every_http_framing_is_read(raw: bytes) -> None:
    server = RawServer(raw)
    try:
        assert Oned(server.endpoint, SESSION, timeout=5).version() == "7.4.0"
        (request,) = server.requests
        assert request.startswith(b"POST /RPC2 HTTP/1.1\r\n") and b"one.system.version" in request
        assert b"connection: close" in request.lower()
    finally:
        server.close()


def test_https_is_checked_against_the_system_cas(tmp_path: Path) -> None:
    """A self-signed oned certificate is refused: requests does verify, and not with certifi's list alone."""
    import ssl

    from one_hooks.oned import rpc

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                           "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"],
                          capture_output=True, timeout=60)
    if made.returncode != 0:
        pytest.skip(f"openssl cannot make a test certificate: {made.stderr[-200:]!r}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    server = _Server(("127.0.0.1", 0), requestHandler=_Handler, logRequests=False)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}/RPC2"
        with pytest.raises(OnedUnreachable, match="SSLCertVerificationError") as info:
            Oned(url, SESSION, timeout=5).version()
        assert "s3cr3t" not in str(info.value)
        assert rpc.system_ca() is True or Path(str(rpc.system_ca())).exists()
    finally:
        server.shutdown()
        server.server_close()


# --- against the simulated oned (one_hooks.sim, fixture ``sim`` from tests/plugin_sim.py) ----


def sim_client(sim: Any, **kwargs: Any) -> Oned:
    section = OnedSection(endpoint=sim.endpoint, auth_file=str(sim.auth_file),
                          timeout=kwargs.pop("timeout", 5.0), retries=kwargs.pop("retries", 0),
                          retry_delay=kwargs.pop("retry_delay", 1.0))
    return Oned.from_config(section, sleep=kwargs.pop("sleep", lambda _s: None))


HOOK_TEMPLATE = ('NAME = "adapter-test"\nTYPE = "state"\nCOMMAND = "/bin/true"\n'
                 'ARGUMENTS = "$TEMPLATE"\nARGUMENTS_STDIN = "yes"\nRESOURCE = "VM"\n'
                 'ON = "CUSTOM"\nSTATE = "POWEROFF"\nLCM_STATE = "LCM_INIT"\n')


def test_sim_hosts_vms_and_an_outage(sim: Any) -> None:
    node1, node2 = sim.add_host("node1"), sim.add_host("node2")
    web, db, other = sim.add_vm("web", node1), sim.add_vm("db", node1), sim.add_vm("x", node2)
    client = sim_client(sim)
    assert client.version() == sim.version
    host = client.host_info(node1)
    assert (host.name, host.state, sorted(host.vm_ids)) == ("node1", HostState.MONITORED, sorted([web, db]))
    assert [h.name for h in client.host_pool()] == ["node1", "node2"]
    assert client.find_host("node2").id == node2 and client.find_host(str(node1)).name == "node1"
    assert sorted(v.id for v in client.vm_pool()) == sorted([web, db, other])
    assert sorted(v.id for v in client.vm_pool(host_id=node1)) == sorted([web, db])
    # the pool call's own start/end ID filter
    assert sorted(v.id for v in client.vm_pool(id_range=(db, other))) == [db, other]
    assert [v.id for v in client.vm_pool(host_id=node1, id_range=(db, other))] == [db]

    sim.host_error(node1)
    assert client.host_info(node1).state == HostState.ERROR
    assert client.vm_info(web).state_name == "ACTIVE/UNKNOWN"
    assert client.vm_info(other).state_name == "ACTIVE/RUNNING"
    sim.host_monitored(node1)
    sim.reconcile(node1, running=set())  # the node rebooted: both VMs gone
    assert sim.settle()
    vm = client.vm_info(db)
    assert vm.state == VmState.POWEROFF and vm.history is not None
    assert vm.history.action == HistoryAction.MONITOR and vm.host_id == node1
    client.vm_action("resume", db)
    assert sim.settle()
    vm = client.vm_info(db)
    assert vm.state_name == "ACTIVE/RUNNING" and vm.history is not None and vm.history.seq == 1
    assert client.calls == sum(sim.calls.values())


def test_sim_hook_calls(sim: Any) -> None:
    client = sim_client(sim)
    hook_id = client.hook_allocate(HOOK_TEMPLATE)
    (hook,) = [h for h in client.hook_pool() if h.id == hook_id]
    assert hook.name == "adapter-test" and hook.template["STATE"] == "POWEROFF"
    client.hook_update(hook_id, HOOK_TEMPLATE.replace('"/bin/true"', '"/bin/echo"')
                       .replace('NAME = "adapter-test"\nTYPE = "state"\n', ""))
    info = client.hook_info(hook_id)
    assert info.template["COMMAND"] == "/bin/echo" and info.log == ()
    client.hook_delete(hook_id)
    with pytest.raises(OnedNotFound) as err:
        client.hook_info(hook_id)
    assert err.value.ids == (hook_id,)


def test_sim_hook_log_is_decoded(sim: Any) -> None:
    node = sim.add_host("node1")
    vm_id = sim.add_vm("web", node)
    client = sim_client(sim)
    hook_id = client.hook_allocate(HOOK_TEMPLATE.replace('"/bin/true"', '"/bin/echo"')
                                   .replace('ARGUMENTS_STDIN = "yes"\n', ""))
    sim.host_error(node)
    sim.host_monitored(node)
    sim.reconcile(node, running=set())
    assert sim.settle()
    (execution,) = client.hook_info(hook_id).log
    assert execution.code == 0
    # echo printed the base64 payload it got as its argument; STDOUT came back base64 on the wire.
    payload = execution.stdout.strip()
    assert payload == execution.arguments
    from one_hooks.oned.xmlparse import decode_payload
    vm = decode_payload(payload)
    assert isinstance(vm, type(client.vm_info(vm_id))) and vm.id == vm_id
    assert vm.prev_lcm_state == LcmState.SHUTDOWN_POWEROFF


def test_sim_clusters_and_templates(sim: Any) -> None:
    node = sim.add_host("node1", template={"KVM_CPU_MODEL": "EPYC"})
    client = sim_client(sim)
    assert client.cluster_info(0).name == "default" and node in client.cluster_info(0).host_ids
    assert [c.id for c in client.cluster_pool()] == [0]
    client.update_template("cluster", 0, 'CPU_MODEL = [ MODEL = "host-passthrough" ]', append=True)
    assert etree.fromstring(client.template_xml("cluster", 0)).findtext("CPU_MODEL/MODEL") == \
        "host-passthrough"
    client.update_template("host", node, 'ONE_HOOKS_TEST = "yes"', append=True)
    host = client.host_info(node)
    assert host.template["ONE_HOOKS_TEST"] == "yes" and host.template["KVM_CPU_MODEL"] == "EPYC"
    client.update_template("host", node, 'ONLY = "this"', append=False)
    assert dict(client.host_info(node).template) == {"ONLY": "this"}
    with pytest.raises(OnedNotFound):
        client.cluster_info(77)


def test_sim_error_classes(make_sim: Any) -> None:
    sim = make_sim()
    node = sim.add_host("node1")
    vm_id = sim.add_vm("web", node)
    client = sim_client(sim)
    with pytest.raises(OnedAuthError):
        Oned(sim.endpoint, "oneadmin:not-the-password").version()
    with pytest.raises(OnedNotFound):
        client.vm_info(vm_id + 100)
    with pytest.raises(OnedActionRefused, match="not available for state RUNNING"):
        client.vm_action("resume", vm_id)
    sim.host_error(node)
    sim.lock_vm(vm_id)
    with pytest.raises(OnedLocked) as locked:
        client.vm_action("resume", vm_id)
    assert locked.value.ids == (vm_id,) and not locked.value.transient
    with pytest.raises(OnedApiError) as api:
        client.hook_allocate('NAME = "no-command"\nTYPE = "state"\n')
    assert api.value.code == 0x4000
    for code, cls in ((0x200, OnedAuthError), (0x1000, OnedApiError), (0x2000, OnedInternalError)):
        sim.inject("one.host.info", code=code)
        with pytest.raises(cls):
            client.host_info(node)
    with pytest.raises(OnedApiError, match="not defined"):
        client._read("one.nosuch.info")
    assert sim.session.partition(":")[2] not in repr(client)


def test_sim_transport_failures_and_retries(make_sim: Any) -> None:
    sim = make_sim()
    node = sim.add_host("node1")
    vm_id = sim.add_vm("web", node)
    waits: List[float] = []
    client = sim_client(sim, retries=3, retry_delay=0.5, sleep=waits.append, timeout=0.5)
    sim.inject("one.vm.info", kind="drop")
    sim.inject("one.vm.info", code=0x2000)
    assert client.vm_info(vm_id).id == vm_id and waits == [0.5, 1.0]
    sim.inject("one.vm.info", kind="timeout", hang=5)
    assert client.vm_info(vm_id).id == vm_id
    sim.host_error(node)
    before = sim.calls.get("one.vm.action", 0)
    sim.inject("one.vm.action", kind="drop")
    with pytest.raises(OnedUnreachable):
        client.vm_action("resume", vm_id)
    assert sim.calls["one.vm.action"] == before + 1  # sent once, not again
    sim.inject("one.vm.action", kind="timeout", hang=5)
    with pytest.raises(OnedUnreachable, match="no answer within 0.5 s"):
        client.vm_action("resume", vm_id)
    assert sim.calls["one.vm.action"] == before + 2
    assert sim.vm(vm_id).lcm_state == LcmState.UNKNOWN  # nothing was resumed behind our back


def test_sim_parallel_resumes_with_real_latency(make_sim: Any) -> None:
    from one_hooks.sim.oned import REAL_LATENCY

    sim = make_sim(latency=REAL_LATENCY)
    node = sim.add_host("node1")
    vm_ids = [sim.add_vm(f"vm{i}", node) for i in range(32)]
    sim.host_error(node)
    sim.host_monitored(node)
    client = sim_client(sim)
    errors: List[BaseException] = []

    def resume(chunk: List[int]) -> None:
        try:
            for vm_id in chunk:
                client.vm_action("resume", vm_id)
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=resume, args=(vm_ids[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and client.calls == 32 == sim.calls["one.vm.action"]
    assert sim.settle()
    assert {v.state_name for v in client.vm_pool(host_id=node)} == {"ACTIVE/RUNNING"}
