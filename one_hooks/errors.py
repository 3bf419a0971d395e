"""The one exception tree of one-hooks.

Every error the package raises on purpose derives from :class:`OneHooksError`.
Entry points catch that base class once, print ``str(error)`` as one line and
return ``error.exit_code``. Anything else is a bug and keeps its traceback.

Exit codes follow the hook contract: 1 means "something could not be done,
re-running may help" (``onehook retry``), 2 means "bad input or config,
re-running the same thing will not help".
"""
from __future__ import annotations

# Annotations only (they stay strings): importing typing would cost every
# hook process ~8 ms. mypy treats a module-level TYPE_CHECKING name as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Sequence

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class OneHooksError(Exception):
    """Base of every error one-hooks raises on purpose."""

    exit_code: int = EXIT_FAILED


# --- bad input: the user's mistake, exit 2, nothing acted on -----------------


class UsageError(OneHooksError):
    """Bad input from the operator or from oned: arguments, files, payloads."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """The configuration file is unreadable, malformed or has a bad value.

    One error may carry every problem of a file (:meth:`joined`): ``str()``
    then holds one line per problem, and so does :attr:`lines`.
    """

    def __init__(self, message: str, path: str = "", key: str = "") -> None:
        self.path = path
        self.key = key
        where = path + (f": [{key}]" if key else "") if path else (f"[{key}]" if key else "")
        line = f"{where}: {message}" if where else message
        self.lines: "Sequence[str]" = (line,)
        super().__init__(line)

    @classmethod
    def joined(cls, errors: "Sequence[ConfigError]") -> "ConfigError":
        """One error holding all of ``errors`` (at least one), one line each, in order."""
        first = errors[0]
        if len(errors) == 1:
            return first
        combined = cls(first.lines[0])
        combined.path, combined.key = first.path, first.key
        combined.lines = tuple(line for error in errors for line in error.lines)
        combined.args = ("\n".join(combined.lines),)
        return combined


class PayloadError(UsageError):
    """A hook payload ($TEMPLATE) that is not a usable base64 HOST or VM document."""


class TemplateSyntaxError(UsageError):
    """An OpenNebula template file that cannot be parsed unambiguously."""

    def __init__(self, message: str, path: str = "", line: int = 0, column: int = 0) -> None:
        self.path = path
        self.line = line
        self.column = column
        super().__init__(f"{path or '<template>'}:{line}:{column}: {message}")


# --- oned ---------------------------------------------------------------------


class OnedError(OneHooksError):
    """oned refused a call, or could not be reached.

    ``transient`` tells the retry policy whether the same call may succeed
    later (connection trouble, timeouts, INTERNAL) or not (NO_EXISTS,
    AUTHORIZATION, ACTION, ...).
    """

    transient: bool = False

    @property
    def worth_asking_again(self) -> bool:
        """Whether the same call, asked again a bounded number of times, may succeed: the retry
        policy's one question (reads in the oned door, resumes and moves after a re-read)."""
        return self.transient

    def __init__(
        self,
        message: str,
        method: str = "",
        code: Optional[int] = None,
        ids: Sequence[int] = (),
    ) -> None:
        self.method = method
        self.code = code
        self.ids = tuple(ids)
        self.message = message
        about = f" (ids {', '.join(map(str, self.ids))})" if self.ids else ""
        prefix = f"{method}: " if method else ""
        super().__init__(f"oned: {prefix}{message}{about}")


class OnedUnreachable(OnedError):
    """Connection refused or dropped, or no answer within the timeout."""

    transient = True


class OnedInternalError(OnedError):
    """oned answered INTERNAL (0x2000): usually a passing database problem."""

    transient = True


class OnedAuthError(OnedError):
    """AUTHENTICATION (0x100) or AUTHORIZATION (0x200) failure."""

    @property
    def worth_asking_again(self) -> bool:
        """AUTHENTICATION may only mean a busy oned: on its default sqlite back-end it answers
        "User couldn't be authenticated" while its database is locked by a burst of work (seen on
        the real 6.10.5 and 7.4.0 in a power-back storm). Worth asking again, a bounded number of
        times; wrong credentials fail every time."""
        return self.code == 0x100


class OnedNotFound(OnedError):
    """NO_EXISTS (0x400): the object is gone."""


class OnedActionRefused(OnedError):
    """ACTION (0x800): the action is not allowed in the object's state."""


class OnedLocked(OnedError):
    """The object carries a lock: LOCKED (0x8000), or AUTHORIZATION saying so (a locked VM's action)."""


class OnedApiError(OnedError):
    """API (0x1000), ALLOCATE (0x4000) or an answer we cannot understand."""


# --- nodes and subprocesses ---------------------------------------------------


class NodeError(OneHooksError):
    """A command on a node (or locally) did not give a usable answer."""

    def __init__(self, message: str, host: str = "") -> None:
        self.host = host
        super().__init__(f"{host}: {message}" if host else message)


class NodeUnreachable(NodeError):
    """ssh could not reach the node (exit 255, refused, no route)."""


class NodeTimeout(NodeError):
    """The command did not finish within its timeout."""


class NodePermissionDenied(NodeError):
    """The command ran but was not allowed (sudo refused, permission denied)."""


class CommandFailed(NodeError):
    """The command exited with a code it is not allowed to exit with."""

    def __init__(self, message: str, host: str = "", returncode: int = -1, stderr: str = "") -> None:
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(message, host)


class FenceFailed(OneHooksError):
    """A host could not be fenced, or its power-off not confirmed: none of its VMs may be moved."""

    def __init__(self, message: str, host: str = "") -> None:
        self.host = host
        super().__init__(f"{host}: {message}" if host else message)


class LockBusy(OneHooksError):
    """Another process holds the lock for the same host and did not let go in time."""


# --- cpu and install ----------------------------------------------------------


class CpuError(OneHooksError):
    """The CPU switch could not be applied or verified."""


class InstallError(OneHooksError):
    """A step of one-hooks-install failed."""

    def __init__(self, step: str, message: str) -> None:
        self.step = step
        super().__init__(f"{step}: {message}")
