"""A real OpenSSH server on loopback standing for a hypervisor node.

``sshd_node`` (session scope) starts ``/usr/sbin/sshd`` on 127.0.0.1 with a
free high port, its own host key, a throwaway client key written into an
``AuthorizedKeysFile`` of its own, as the current user (root in CI, with
``PermitRootLogin prohibit-password``). sshd's ``SetEnv`` puts the node
stand-in (``one_hooks/sim/node_standin``: ``iscsiadm``, ``multipath`` and
``sudo`` replaying captured outputs) first on the node's PATH and points it at
a scenario file, a log and a state directory the tests rewrite.

It yields a :class:`SshNode` whose ``command`` is a ``[node] command``: any
host NAME connects to loopback (``-o HostName=127.0.0.1``), so host names
with spaces or shell metacharacters reach ssh as one argv element.

``local_node`` (function scope) gives the same stand-in without ssh, through
an ``env`` prefix, for the many tests that are about the answers, not the
transport.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List

import pytest

import one_hooks

SSHD = "/usr/sbin/sshd"
STANDIN_DIR = Path(one_hooks.__file__).parent / "sim" / "node_standin"


@dataclass
class SshNode:
    """A running loopback sshd and the files its stand-in reads."""

    port: int
    key: str
    command: str          #: a [node] command template holding {host}
    scenario: Path        #: scenario file the stand-in reads (see node_standin/README.md)
    log: Path             #: one line per stand-in call: host, tool, argv
    state: Path           #: call counters of "after N" scenario lines
    standin: Path

    def set_scenario(self, text: str) -> None:
        """Replace the scenario and forget previous calls and counters."""
        self.scenario.write_text(text)
        shutil.rmtree(self.state, ignore_errors=True)
        self.state.mkdir()
        self.log.write_text("")

    def calls(self) -> List[List[str]]:
        """The stand-in calls logged so far, as [host, tool, args]."""
        return [line.split("\t") for line in self.log.read_text().splitlines()]


@pytest.fixture
def local_node(tmp_path: Path) -> SshNode:
    """The same stand-in reached without ssh: ``env`` sets its variables, then execs the command.

    ``env`` is exec'd directly (no shell), so ``{host}`` stays one argv word and the
    stand-in logs exactly the name it was given; ``port`` is 0 and ``key`` empty.
    """
    base = tmp_path / "local-node"
    base.mkdir()
    scenario, log, state = base / "scenario", base / "standin.log", base / "state"
    scenario.write_text("")
    log.write_text("")
    state.mkdir()
    command = (f"env ONE_HOOKS_NODE={{host}} ONE_HOOKS_STANDIN_SCENARIO={scenario} ONE_HOOKS_STANDIN_LOG={log} "
               f"ONE_HOOKS_STANDIN_STATE={state} PATH={STANDIN_DIR}:/usr/bin:/bin")
    return SshNode(0, "", command, scenario, log, state, STANDIN_DIR)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "one-hooks-test", "-f", str(path)],
                   check=True, timeout=30)


@pytest.fixture(scope="session")
def sshd_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshNode]:
    """Start a real sshd on loopback for the session; tear it down afterwards."""
    for tool in (SSHD, shutil.which("ssh"), shutil.which("ssh-keygen")):
        if not tool or not os.access(tool, os.X_OK):
            pytest.skip("needs openssh-server and openssh-client (sshd, ssh, ssh-keygen)")
    if not os.path.isdir("/run/sshd"):
        if os.geteuid() != 0:
            pytest.skip("sshd needs its privilege separation directory /run/sshd (create it as root)")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    base = tmp_path_factory.mktemp("sshd")
    host_key, client_key = base / "host_ed25519", base / "client_ed25519"
    _keygen(host_key)
    _keygen(client_key)
    authorized = base / "authorized_keys"
    authorized.write_text((base / "client_ed25519.pub").read_text())
    authorized.chmod(0o600)
    scenario, log, state = base / "scenario", base / "standin.log", base / "state"
    scenario.write_text("")
    log.write_text("")
    state.mkdir()
    port = _free_port()
    path = f"{STANDIN_DIR}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    config = base / "sshd_config"
    config.write_text("\n".join([
        f"ListenAddress 127.0.0.1:{port}",
        f"HostKey {host_key}",
        f"AuthorizedKeysFile {authorized}",
        f"PidFile {base / 'sshd.pid'}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "UseDNS no",
        "StrictModes no",       # pytest's temporary directories sit under world-writable /tmp
        "PrintMotd no",
        "MaxStartups 200:30:400",
        "MaxSessions 50",
        "LogLevel ERROR",
        f"SetEnv PATH={path} ONE_HOOKS_STANDIN_SCENARIO={scenario} "
        f"ONE_HOOKS_STANDIN_LOG={log} ONE_HOOKS_STANDIN_STATE={state}",
    ]) + "\n")
    errors = base / "sshd.err"
    with open(errors, "wb") as err:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=err, stderr=err,
                                start_new_session=True)
    try:
        if not _listening(port, proc):
            pytest.skip(f"sshd did not start: {errors.read_text()[-400:]}")
        command = (f"ssh -F /dev/null -p {port} -i {client_key} -o IdentitiesOnly=yes -o BatchMode=yes "
                   "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
                   "-o ConnectTimeout=10 -o HostName=127.0.0.1 {host}")
        yield SshNode(port, str(client_key), command, scenario, log, state, STANDIN_DIR)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _listening(port: int, proc: "subprocess.Popen[bytes]") -> bool:
    """Wait (bounded) until sshd accepts connections; False if it died or never listened."""
    for _ in range(100):
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False
