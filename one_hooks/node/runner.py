"""The one door to subprocesses, local and on hypervisor nodes.

Every command is an argv list run without a shell, always with a timeout. On
timeout the whole process group is killed (ssh may have children of its own).
Exit codes are checked against the codes the caller allows; anything else is
a :class:`~one_hooks.errors.CommandFailed` carrying the code and stderr.

:class:`Node` runs a command on a node through ``[node] command`` (``ssh ...
{host}`` by default). The host NAME comes from oned, so it is only ever one
argv element, and it may not start with ``-`` (ssh would read it as an
option such as ``-oProxyCommand=...``, which runs a local command). The words
after the prefix are joined by ssh into one line for the node's shell, so they
are restricted to characters no shell interprets; ours are all constants.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Container, Mapping, Optional, Sequence, Tuple

from ..config import node_prefix
from ..errors import CommandFailed, NodePermissionDenied, NodeTimeout, NodeUnreachable, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Config

#: ssh's own exit code for "could not connect / authenticate" (ssh(1), EXIT STATUS).
SSH_FAILED = 255

#: Words of a remote command that no POSIX shell treats specially.
_SAFE_WORD = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")

#: stderr of a command that ran but was not allowed to: sudo's and the kernel's words.
_DENIED = (
    "a password is required",          # sudo -n without a NOPASSWD rule
    "is not allowed to execute",       # sudoers has a rule, but not for this command
    "is not in the sudoers file",
    "a terminal is required",
    "Permission denied",
)

#: The sudoers line a node needs for the gate's commands (printed with permission errors).
SUDOERS_HINT = ("the node needs a sudoers rule for the gate, e.g. in /etc/sudoers.d/one-hooks: "
                "'oneadmin ALL=(root) NOPASSWD: /usr/sbin/iscsiadm -m session -P 3, "
                "/usr/sbin/iscsiadm -m node, /usr/sbin/multipath -ll'")


@dataclass(frozen=True)
class Result:
    """What a finished command left behind."""

    argv: Tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class _AnyCode:
    """An ``ok_codes`` that accepts every exit code (the caller inspects it)."""

    def __contains__(self, code: object) -> bool:
        return True


ANY_CODE: Container[int] = _AnyCode()


def first_line(text: str) -> str:
    """The first non-blank line of ``text`` (for one-line error messages)."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


class Runner:
    """Runs local argv lists: never a shell, always a timeout."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout

    def run(self, argv: Sequence[str], *, timeout: Optional[float] = None,
            ok_codes: Container[int] = (0,), input: Optional[bytes] = None,
            env: Optional[Mapping[str, str]] = None, host: str = "") -> Result:
        """Run ``argv`` and return its :class:`Result`.

        Raises :class:`NodeTimeout` when it does not finish in time (its
        process group is killed), :class:`CommandFailed` for a missing or
        non-executable program and for an exit code not in ``ok_codes``.
        ``host`` only labels the errors.
        """
        words = [str(w) for w in argv]
        if not words:
            raise UsageError("empty command")
        limit = self.timeout if timeout is None else timeout
        try:
            proc = subprocess.Popen(
                words,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=dict(env) if env is not None else None,
                start_new_session=True,  # its own process group, so a timeout kills all of it
            )
        except FileNotFoundError:
            raise CommandFailed(f"no such program: {words[0]}", host, 127) from None
        except PermissionError:
            raise CommandFailed(f"cannot execute: {words[0]}", host, 126) from None
        try:
            out, err = proc.communicate(input, timeout=limit)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            raise NodeTimeout(f"{words[0]} did not finish within {limit:g} s (killed)", host) from None
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        result = Result(tuple(words), proc.returncode,
                        out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
        if result.returncode not in ok_codes:
            why = first_line(result.stderr) or first_line(result.stdout) or "no output"
            raise CommandFailed(f"{words[0]} exited {result.returncode}: {why}", host,
                                result.returncode, result.stderr)
        return result


    def spawn_detached(self, argv: Sequence[str], env: Optional[Mapping[str, str]] = None,
                       stderr_path: str = "") -> int:
        """Start ``argv`` in a session of its own and return its PID without waiting.

        For work that must outlive the calling hook: onehem keeps one of its
        few slots busy while a hook runs and kills the hook's process group on
        TIMEOUT. The program started here bounds its own run time (no timeout
        is imposed from here) and logs for itself; its stdout goes nowhere, its
        stderr (a traceback, should it have a bug) is appended to ``stderr_path``.
        """
        words = [str(w) for w in argv]
        if not words:
            raise UsageError("empty command")
        err = open(stderr_path, "ab") if stderr_path else None  # noqa: SIM115 (closed below)
        try:
            proc = subprocess.Popen(
                words, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=err if err is not None else subprocess.DEVNULL,
                env=dict(env) if env is not None else None, start_new_session=True, close_fds=True)
        except OSError as exc:
            raise CommandFailed(f"cannot start {words[0]}: {exc.strerror}", "", 126) from None
        finally:
            if err is not None:
                err.close()
        return proc.pid


def _kill_group(proc: "subprocess.Popen[bytes]") -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class Node:
    """Runs argv lists on hypervisor nodes through ``[node] command``."""

    def __init__(self, runner: Runner, command: str, timeout: float) -> None:
        self.runner = runner
        self.command = command
        self.timeout = timeout

    @classmethod
    def from_config(cls, config: "Config", runner: Optional[Runner] = None) -> "Node":
        """A node door built from ``[node]``."""
        return cls(runner or Runner(config.node.timeout), config.node.command, config.node.timeout)

    def argv(self, host: str, argv: Sequence[str]) -> list:
        """The full local argv that runs ``argv`` on ``host`` (checked, not run)."""
        if not host or host.startswith("-") or "\n" in host or "\0" in host:
            raise UsageError(f"refusing host name {host!r}: empty, starts with '-' or holds a newline")
        for word in argv:
            if not _SAFE_WORD.match(word):
                raise UsageError(f"refusing remote word {word!r}: the node's shell would interpret it")
        return node_prefix(self.command, host) + list(argv)

    def run(self, host: str, argv: Sequence[str], ok_codes: Container[int] = (0,)) -> Result:
        """Run ``argv`` on ``host``.

        Raises :class:`NodeUnreachable` when ssh itself fails (exit 255),
        :class:`NodePermissionDenied` when sudo or the node refuses the
        command, :class:`NodeTimeout`, or :class:`CommandFailed` for an exit
        code not in ``ok_codes``.
        """
        full = self.argv(host, argv)
        result = self.runner.run(full, timeout=self.timeout, ok_codes=ANY_CODE, host=host)
        via_ssh = os.path.basename(full[0]) == "ssh"
        if via_ssh and result.returncode == SSH_FAILED:
            raise NodeUnreachable(f"ssh failed: {first_line(result.stderr) or 'exit 255'}", host)
        denied = [line.strip() for line in result.stderr.splitlines() if any(p in line for p in _DENIED)]
        if result.returncode != 0 and denied:
            raise NodePermissionDenied(f"{' '.join(argv)}: {denied[0]}; {SUDOERS_HINT}", host)
        if result.returncode not in ok_codes:
            why = first_line(result.stderr) or first_line(result.stdout) or "no output"
            raise CommandFailed(f"{' '.join(argv)} exited {result.returncode}: {why}", host,
                                result.returncode, result.stderr)
        return result
