"""The few resolved settings a VM hook's first look needs, cached per configuration file.

Reading the configuration properly (configobj, the validator, the declared
options) costs a hook process about 30 ms of CPU, and an outage fires one VM
hook per VM. So a full hook run, which has just loaded and validated the
file, leaves a snapshot of the resolved values the first look
(:mod:`one_hooks.hooks.triage`) uses, and the first look trusts it only while all of
this still holds:

* the configuration file is the one that was read: same path, and the same
  :func:`~one_hooks.configpath.file_stamp` (an edit, a replacement or a
  ``touch`` makes it stale);
* the environment that resolved it is the same (``ONE_XMLRPC``, ``ONE_AUTH``,
  ``HOME``: they fill ``[oned]`` defaults);
* the package is the same version;
* the snapshot belongs to this user and nobody else may write it (it names
  the endpoint the credentials are sent to).

Otherwise the hook takes its full path, which loads the file and leaves a new
snapshot. The snapshot holds no secret: the auth file's path, never its
content. It lives in ``$XDG_CACHE_HOME/one-hooks`` (``~/.cache/one-hooks``),
one file per configuration path; losing it costs one full run, nothing else.

The file is plain text, one ``name<TAB>value`` line each (``json`` would cost
every VM hook the import of ``re``): first the key lines, which must equal
those computed now, then the settings. Values holding a line break are never
written (no snapshot then: the hooks keep taking their full path).
"""
from __future__ import annotations

import os

from .. import __version__
from ..configpath import file_stamp, resolve_path

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs every hook ~8 ms
    from typing import Any, Dict, List, Mapping, Optional, Tuple

    from ..config import Config

#: environment variables that take part in resolving the configuration
RESOLVING_ENV = ("ONE_XMLRPC", "ONE_AUTH", "HOME")

HEADER = "# one-hooks settings snapshot: written by a full hook run, read by the VM hooks' first look\n"
#: the settings that are numbers (the rest are strings)
_FLOATS = ("timeout", "settle_interval")


class Settings:
    """What the first look needs: where oned is, where state and log go."""

    __slots__ = ("endpoint", "auth_file", "timeout", "state_dir", "settle_interval",
                 "log_file", "log_level")

    def __init__(self, endpoint: str, auth_file: str, timeout: float, state_dir: str,
                 settle_interval: float, log_file: str, log_level: str) -> None:
        self.endpoint = endpoint
        self.auth_file = auth_file
        self.timeout = timeout
        self.state_dir = state_dir
        self.settle_interval = settle_interval
        self.log_file = log_file
        self.log_level = log_level

    @classmethod
    def of(cls, config: "Config") -> "Settings":
        """The settings of a loaded configuration."""
        return cls(config.oned.endpoint, config.oned.auth_file, config.oned.timeout,
                   config.recovery.state_dir, config.recovery.settle_interval,
                   config.log.file, config.log.level)

    def as_dict(self) -> "Dict[str, Any]":
        """The settings by name."""
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_text(cls, values: "Dict[str, str]") -> "Settings":
        """Settings from their text form; ValueError/KeyError if one is missing or not a number."""
        typed: "Dict[str, Any]" = {name: float(values[name]) if name in _FLOATS else values[name]
                                   for name in cls.__slots__}
        return cls(**typed)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Settings) and self.as_dict() == other.as_dict()


def cache_dir(environ: "Mapping[str, str]") -> str:
    """``$XDG_CACHE_HOME/one-hooks``, else ``~/.cache/one-hooks``."""
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "one-hooks")


def snapshot_path(config_path: str, environ: "Mapping[str, str]") -> str:
    """The snapshot file of ``config_path`` (the path, made a file name reversibly)."""
    name = os.path.abspath(config_path).replace("%", "%25").replace("/", "%2F")
    return os.path.join(cache_dir(environ), f"settings{name}")


def _lines(pairs: "List[Tuple[str, Any]]") -> str:
    """``name<TAB>value`` lines (floats exactly, by repr); ValueError for a value with a line break."""
    texts = [(name, repr(value) if isinstance(value, float) else str(value)) for name, value in pairs]
    if any("\n" in text for _, text in texts):
        raise ValueError("a value holds a line break")
    return "".join(f"{name}\t{text}\n" for name, text in texts)


def _key(config_path: str, stamp: "Tuple[int, ...]", environ: "Mapping[str, str]") -> str:
    """The key lines: what must not have changed for the settings below them to hold."""
    pairs: "List[Tuple[str, Any]]" = [
        ("version", __version__), ("config", os.path.abspath(config_path)),
        ("stamp", " ".join(str(n) for n in stamp) or "absent")]
    pairs += [(f"env.{name}", environ.get(name, "")) for name in RESOLVING_ENV]
    return HEADER + _lines(pairs)


def save(config: "Config", environ: "Mapping[str, str]") -> bool:
    """Leave the snapshot of ``config`` (loaded without ``--config``); True if written.

    Only a configuration that is still the file the hooks would read now is
    saved (one edited since it was read is not). A cache that cannot be
    written is no error: the hooks then keep taking their full path.
    """
    path, _ = resolve_path(None, environ)
    stamp = file_stamp(path)
    if tuple(config.stamp) != stamp or (config.path or path) != path:
        return False
    target = snapshot_path(path, environ)
    try:
        text = _key(path, stamp, environ) + _lines(list(Settings.of(config).as_dict().items()))
    except ValueError:
        return False  # a value with a line break: it cannot be written as one line
    data = text.encode("utf-8")
    try:
        with open(target, "rb") as fh:
            if fh.read() == data:
                return False  # already there: no write per hook run
    except OSError:
        pass
    from .. import fsio  # the full path has it loaded already

    try:
        fsio.make_dirs(os.path.dirname(target), 0o700)
        fsio.atomic_write(target, data, fsio.FileMeta(0o600, os.getuid(), os.getgid()))
    except OSError:
        return False
    return True


def load(environ: "Mapping[str, str]") -> "Optional[Settings]":
    """The snapshot for the configuration the hooks would read now, if still valid."""
    path, _ = resolve_path(None, environ)
    try:
        fd = os.open(snapshot_path(path, environ), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.getuid() or st.st_mode & 0o022:
            return None  # someone else could have chosen where our credentials go
        with os.fdopen(fd, "rb") as fh:
            fd = -1
            text = fh.read(1 << 16).decode("utf-8")
        key = _key(path, file_stamp(path), environ)
        if not text.startswith(key) or not text.endswith("\n"):
            return None
        values = dict(line.split("\t", 1) for line in text[len(key):-1].split("\n"))
        return Settings.from_text(values)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    finally:
        if fd >= 0:
            os.close(fd)
