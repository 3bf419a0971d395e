"""The subprocess and node door: argv only, timeouts, exit codes, ssh's failures."""
from __future__ import annotations

import os
import shlex
import shutil
import time
from pathlib import Path

import pytest

from one_hooks.config import Config, NodeSection
from one_hooks.errors import CommandFailed, NodePermissionDenied, NodeTimeout, NodeUnreachable, UsageError
from one_hooks.node.runner import Node, Runner
from tests.counting_node import CountingNode
from tests.plugin_sshd import STANDIN_DIR

METACHAR_HOSTS = ["node with space", "node; touch {marker}", "$(touch {marker})", "`touch {marker}`",
                  "n'o\"de", "node|touch {marker}", "node&&touch {marker}"]


def test_argv_is_never_shell_text(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    word = f"$(touch {marker}); `touch {marker}` | *"
    result = Runner(timeout=10).run(["printf", "%s", word])
    assert result.stdout == word
    assert result.returncode == 0 and result.argv == ("printf", "%s", word)
    assert not marker.exists()


def test_stdin_env_and_exit_codes() -> None:
    runner = Runner(timeout=10)
    assert runner.run(["cat"], input=b"payload").stdout == "payload"
    assert runner.run(["printenv", "X_ONE"], env={"X_ONE": "42", "PATH": os.environ["PATH"]}).stdout == "42\n"
    with pytest.raises(CommandFailed) as info:
        runner.run(["sh", "-c", "echo boom >&2; exit 3"], host="n1")
    assert (info.value.returncode, info.value.stderr, info.value.host) == (3, "boom\n", "n1")
    assert "exited 3: boom" in str(info.value)
    assert runner.run(["sh", "-c", "exit 3"], ok_codes=(0, 3)).returncode == 3


def test_missing_program_is_command_failed() -> None:
    with pytest.raises(CommandFailed) as info:
        Runner().run(["/nonexistent/one-hooks-no-such-binary"])
    assert info.value.returncode == 127


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {pid_file}; wait"
    with pytest.raises(NodeTimeout) as info:
        Runner().run(["sh", "-c", script], timeout=0.5, host="n2")
    assert info.value.host == "n2" and "did not finish within 0.5 s" in str(info.value)
    child = int(pid_file.read_text())
    # SIGKILL is delivered asynchronously: give the kernel a bounded moment to finish it.
    for _ in range(200):
        if not _sleeping_child(child):
            break
        time.sleep(0.01)
    assert not _sleeping_child(child)


def _sleeping_child(pid: int) -> bool:
    """True while ``pid`` is still our ``sleep 60`` and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return stat.split(") ")[1][0] != "Z" and cmdline.startswith(b"sleep\0")


def node_of(standin, scenario: str = "") -> CountingNode:  # type: ignore[no-untyped-def]
    standin.set_scenario(scenario)
    return CountingNode(Runner(), standin.command, 10.0)


@pytest.mark.parametrize("template", METACHAR_HOSTS)
def test_host_names_reach_the_node_as_one_word(local_node, tmp_path: Path, template: str) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "pwned"
    host = template.format(marker=marker)
    node = node_of(local_node)
    result = node.run(host, ["iscsiadm", "-m", "session"], ok_codes=(21,))
    assert "No active sessions" in result.stderr
    assert local_node.calls() == [[host, "iscsiadm", "-m session"]]
    assert not marker.exists()
    assert node.sessions_opened == {host: 1}


@pytest.mark.parametrize("host", ["-oProxyCommand=touch /tmp/x", "", "a\nb"])
def test_host_names_ssh_would_misread_are_refused(local_node, host: str) -> None:  # type: ignore[no-untyped-def]
    node = node_of(local_node)
    with pytest.raises(UsageError):
        node.run(host, ["iscsiadm", "-m", "session"])
    assert local_node.calls() == [] and node.sessions_opened == {}


@pytest.mark.parametrize("word", ["*-iscsi-*", "a;b", "$(id)", "x y", ""])
def test_remote_words_the_node_shell_would_interpret_are_refused(local_node, word: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError):
        node_of(local_node).run("n1", ["iscsiadm", word])
    assert local_node.calls() == []


def test_from_config_uses_node_section() -> None:
    node = Node.from_config(Config(node=NodeSection(command="ssh -p 2222 {host}", timeout=7.0)))
    assert node.timeout == 7.0 and node.runner.timeout == 7.0
    assert node.argv("n1", ["iscsiadm", "-m", "node"]) == ["ssh", "-p", "2222", "n1", "iscsiadm", "-m", "node"]


def test_sudo_refusal_is_permission_denied_with_the_sudoers_hint(local_node) -> None:  # type: ignore[no-untyped-def]
    node = node_of(local_node, "* sudo sudo-refused\n")
    with pytest.raises(NodePermissionDenied) as info:
        node.run("n3", ["sudo", "-n", "iscsiadm", "-m", "session", "-P", "3"])
    assert "a password is required" in str(info.value) and "sudoers" in str(info.value)
    assert info.value.host == "n3"


# --- through a real sshd on loopback ------------------------------------------------


def test_real_ssh_runs_the_command_on_the_node(sshd_node) -> None:  # type: ignore[no-untyped-def]
    sshd_node.set_scenario("* session-P3 session-P3-healthy\n")
    node = Node(Runner(), sshd_node.command, 20.0)
    result = node.run("node-1", ["sudo", "-n", "iscsiadm", "-m", "session", "-P", "3"])
    assert "iSCSI Session State: LOGGED_IN" in result.stdout
    assert [c[1:] for c in sshd_node.calls()] == [["sudo", "-n iscsiadm -m session -P 3"],
                                                  ["iscsiadm", "-m session -P 3"]]


def test_real_ssh_failure_is_unreachable(sshd_node) -> None:  # type: ignore[no-untyped-def]
    wrong = sshd_node.command.replace(f"-p {sshd_node.port}", "-p 1")
    with pytest.raises(NodeUnreachable) as info:
        Node(Runner(), wrong, 20.0).run("node-1", ["true"])
    assert "ssh failed" in str(info.value) and info.value.host == "node-1"


def test_real_ssh_command_exit_codes_pass_through(sshd_node) -> None:  # type: ignore[no-untyped-def]
    sshd_node.set_scenario("")
    result = Node(Runner(), sshd_node.command, 20.0).run("node-1", ["iscsiadm", "-m", "node"], ok_codes=(21,))
    assert result.returncode == 21 and "No records found" in result.stderr


@pytest.mark.parametrize("template", METACHAR_HOSTS)
def test_real_ssh_gets_metachar_host_names_as_data(sshd_node, tmp_path: Path, template: str) -> None:  # type: ignore[no-untyped-def]
    # ssh receives the name as its destination argument; OpenSSH (9.2 Debian, with the
    # CVE-2023-51385 hardening) refuses such names itself. Nothing runs locally or remotely.
    marker = tmp_path / "pwned"
    host = template.format(marker=marker)
    sshd_node.set_scenario("")
    node = Node(Runner(), sshd_node.command, 20.0)
    argv = node.argv(host, ["iscsiadm", "-m", "session"])
    assert argv[:len(shlex.split(sshd_node.command)) - 1] == shlex.split(sshd_node.command)[:-1]
    assert argv[-4] == host
    try:
        result = node.run(host, ["iscsiadm", "-m", "session"], ok_codes=(21,))
    except NodeUnreachable as exc:
        assert "invalid characters" in str(exc)
        assert sshd_node.calls() == []
    else:  # an ssh that accepts the name connects to loopback and the stand-in answers
        assert "No active sessions" in result.stderr
    assert not marker.exists()


def test_node_standin_scripts_pass_shellcheck() -> None:
    if not shutil.which("shellcheck"):
        pytest.skip("needs shellcheck (Debian package shellcheck)")
    scripts = [str(STANDIN_DIR / name) for name in ("standin.sh", "iscsiadm", "multipath", "sudo")]
    result = Runner(timeout=60).run(["shellcheck", "-s", "sh", *scripts], ok_codes=range(256))
    assert result.returncode == 0, result.stdout
    assert all(os.access(path, os.X_OK) for path in scripts)


def _wait_for_exit(pid: int) -> None:
    """Wait for a child started by spawn_detached to end.

    spawn_detached drops its Popen object, so the standard library's
    subprocess module may reap the child itself (its cleanup of dropped
    Popen objects runs whenever any thread starts another process). A
    ChildProcessError therefore means: already reaped, i.e. it has exited.
    """
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def test_spawn_detached_starts_its_own_session_and_does_not_wait(tmp_path) -> None:
    marker = tmp_path / "done"
    pid = Runner().spawn_detached(["sh", "-c", 'sleep 0.3; echo done > "$1"', "sh", str(marker)])
    assert os.getsid(pid) == pid  # a session of its own: onehem's kill of the hook's group misses it
    assert not marker.exists()  # returned before the program finished
    _wait_for_exit(pid)
    assert marker.read_text() == "done\n"


def test_spawn_detached_appends_stderr_to_a_file(tmp_path) -> None:
    log = tmp_path / "one-hooks.log"
    log.write_text("earlier line\n")
    pid = Runner().spawn_detached(["sh", "-c", "echo traceback-here >&2; echo not-this"],
                                  stderr_path=str(log))
    _wait_for_exit(pid)
    assert log.read_text() == "earlier line\ntraceback-here\n"
