"""Configuration: declared once, read once, at the edge.

Each option is declared exactly once, as a field of a frozen dataclass with
its configobj type, default and help text. From that one declaration come the
configobj spec used to validate ``/etc/one/one-hooks.conf``, the commented
default file that ``one-hooks-install`` writes, and the README reference
(``one-hooks config --reference``). :func:`load` is the only reader of the
file; the rest of the package receives a :class:`Config` (or the section it
needs) as a parameter.

The file uses configobj syntax (INI-like: ``[section]`` then ``key = value``).
"""
from __future__ import annotations

import ast
import dataclasses
import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Type, TypeVar

from .configpath import file_stamp, resolve_path
from .errors import ConfigError

DEFAULT_ENDPOINT = "http://localhost:2633/RPC2"


def _opt(spec: str, default: Any, help: str) -> Any:
    """Declare one option: configobj ``spec`` (type and checks), default, help text."""
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: tuple(default), metadata={"spec": spec, "help": help})
    return field(default=default, metadata={"spec": spec, "help": help})


@dataclass(frozen=True)
class OnedSection:
    """[oned]: how to reach oned's XML-RPC API."""

    endpoint: str = _opt(
        "string", "",
        "XML-RPC endpoint of oned. Empty: $ONE_XMLRPC, then http://localhost:2633/RPC2.")
    auth_file: str = _opt(
        "string", "",
        "File holding 'user:password' for oned. Empty: $ONE_AUTH, then ~/.one/one_auth.")
    timeout: float = _opt(
        "float(min=0.1, max=3600)", 30.0, "Seconds to wait for one XML-RPC answer.")
    retries: int = _opt(
        "integer(min=0, max=20)", 4,
        "Retries of a call that failed for a transient reason (connection, timeout, INTERNAL).")
    retry_delay: float = _opt(
        "float(min=0, max=600)", 1.0, "First delay between retries, in seconds; doubles each time.")


@dataclass(frozen=True)
class NodeSection:
    """[node]: how to run a command on a hypervisor node."""

    command: str = _opt(
        "string", "ssh -o BatchMode=yes -o ConnectTimeout=10 {host}",
        "Argv prefix that runs a command on a node. Split like a shell into words; "
        "{host} is replaced by the host's NAME as one argv element; never run through a shell.")
    timeout: float = _opt(
        "float(min=1, max=3600)", 60.0, "Seconds one command on a node may take before it is killed.")


@dataclass(frozen=True)
class IscsiSection:
    """[iscsi]: the storage gate that must pass on a host before any VM there is resumed."""

    check: bool = _opt("boolean", True, "Run the iSCSI gate at all (no: clouds without iSCSI).")
    iscsiadm: str = _opt(
        "string", "sudo -n iscsiadm",
        "Argv that invokes iscsiadm on the node (oneadmin needs a sudoers line for it).")
    required_targets: Tuple[str, ...] = _opt(
        "force_list", (),
        "Target IQNs that must have a healthy session on every host (comma separated).")
    require_node_records: bool = _opt(
        "boolean", True,
        "Also require a healthy session for every configured node record (iscsiadm -m node).")
    check_by_path: bool = _opt(
        "boolean", True, "Fail on dangling /dev/disk/by-path/*-iscsi-* links.")
    check_multipath: str = _opt(
        "option('auto', 'yes', 'no', default='auto')", "auto",
        "Check that multipath paths are 'active ready running': auto runs it when multipath exists.")
    deadline: float = _opt(
        "float(min=0, max=7200)", 300.0,
        "Seconds to keep re-checking a host whose sessions are not back yet "
        "(the kernel keeps a session FAILED up to replacement_timeout, 120 s by default).")
    retry_interval: float = _opt(
        "float(min=0.1, max=600)", 5.0, "First wait between gate re-checks; grows up to 30 s.")
    cache_ttl: float = _opt(
        "float(min=0, max=3600)", 30.0,
        "Seconds a host's verdict is shared by the hooks that run for it (0: never shared).")


@dataclass(frozen=True)
class RecoverySection:
    """[recovery]: which VMs to restart after an outage, and how."""

    policy: str = _opt(
        "option('all', 'opt-in', default='all')", "all",
        "all: every candidate VM unless opted out; opt-in: only VMs opted in "
        "(opt_attribute=YES or AUTOSTART=YES).")
    opt_attribute: str = _opt(
        "string(min=1)", "ONE_HOOKS_RECOVER",
        "USER_TEMPLATE attribute: NO excludes a VM, YES opts it in.")
    priority_attribute: str = _opt(
        "string(min=1)", "ONE_HOOKS_PRIORITY",
        "USER_TEMPLATE integer: higher tiers are resumed first (absent: 0).")
    max_parallel: int = _opt(
        "integer(min=1, max=256)", 8, "VMs resumed at the same time, per recovery run.")
    attempts: int = _opt(
        "integer(min=1, max=20)", 3,
        "Resume attempts per VM that oned ran without the VM ending RUNNING (a failed deploy, "
        "or a late monitor report powering it off); then the hook gives up with one line.")
    retry_delay: float = _opt(
        "float(min=0, max=3600)", 10.0, "First wait before another resume attempt; doubles each time.")
    settle_seconds: float = _opt(
        "float(min=0, max=7200)", 240.0,
        "How long host-reconnect keeps watching the host's VMs after it comes back "
        "(oned reconciles VM states up to ~180 s later).")
    settle_interval: float = _opt(
        "float(min=0.1, max=600)", 10.0, "Seconds between looks during the settle window.")
    wait_running: float = _opt(
        "float(min=0, max=7200)", 300.0,
        "Seconds an attempt may take from its first resume call until the VM is RUNNING.")
    pickup_grace: float = _opt(
        "float(min=1, max=3600)", 60.0,
        "Seconds an accepted resume may show no sign of being run before it is sent again "
        "(doubling each time; oned runs resumes from one queue, 10-40 s behind in a storm).")
    tier_timeout: float = _opt(
        "float(min=0, max=7200)", 300.0,
        "Seconds a lower priority tier waits for the tier above to be RUNNING.")
    state_dir: str = _opt(
        "string(min=1)", "/var/lib/one/one-hooks",
        "Where per-host locks, cached gate verdicts and attempt counters live.")


@dataclass(frozen=True)
class EvacuateSection:
    """[evacuate]: restart elsewhere the VMs of a host that does not come back (off by default)."""

    enabled: bool = _opt(
        "boolean", False,
        "Register the host-error hook: a host that stays in ERROR for grace seconds is fenced (powered off, "
        "and that confirmed), disabled in oned, and its VMs on shared storage are restarted on other hosts "
        "of its cluster.")
    grace: float = _opt(
        "float(min=0, max=86400)", 300.0,
        "Seconds a host must stay in ERROR before it is fenced and evacuated: well above a network blip and "
        "open-iscsi's replacement_timeout (120 s), and long enough for a rebooting host to come back and "
        "keep its VMs (oned already waits minutes of silence before it says ERROR).")
    interval: float = _opt(
        "float(min=0.1, max=600)", 10.0, "Seconds between looks at the host during the grace.")
    fence: str = _opt(
        "string", "",
        "Argv that powers the host off (e.g. ipmitool -I lanplus -H {host}-bmc -U admin -f /etc/one/bmc.pw "
        "chassis power off). Split like a shell into words; {host} (required) becomes the host's NAME as one "
        "argv element; never run through a shell. Empty: no host is ever evacuated.")
    fence_check: str = _opt(
        "string", "",
        "Argv that prints the host's power state (e.g. ... chassis power status); VMs are moved only once "
        "its output matches fence_off_pattern. Same rules as fence. Empty: no host is ever evacuated.")
    fence_off_pattern: str = _opt(
        "string(min=1)", r"\boff\b",
        "Regular expression (case-insensitive) that fence_check's output must match: the host is off.")
    fence_timeout: float = _opt(
        "float(min=1, max=3600)", 60.0,
        "Seconds the fence command, and each fence_check, may take before it is killed.")
    confirm_timeout: float = _opt(
        "float(min=0, max=3600)", 120.0,
        "Seconds to keep asking fence_check (every 5 s) until it says the host is off.")


@dataclass(frozen=True)
class CpuSection:
    """[cpu]: the host-CPU switch."""

    argument: str = _opt(
        "string(min=1)", "host",
        "The -cpu value the wrapper gives KVM guests (e.g. host,arch-capabilities=off).")
    emulator: str = _opt(
        "string", "",
        "The real emulator behind the wrapper. Empty: the EMULATOR the config had, "
        "else /usr/libexec/qemu-kvm, /usr/bin/qemu-kvm, /usr/bin/qemu-system-$(uname -m).")
    conf: str = _opt(
        "string(min=1)", "/etc/one/vmm_exec/vmm_exec_kvm.conf", "The KVM driver defaults file.")


@dataclass(frozen=True)
class LogSection:
    """[log]: the audit trail."""

    file: str = _opt(
        "string(min=1)", "/var/log/one/one-hooks.log", "Log file; '-' means standard error.")
    level: str = _opt(
        "option('debug', 'info', 'warning', 'error', default='info')", "info", "Lowest level logged.")


@dataclass(frozen=True)
class Config:
    """The whole validated configuration."""

    oned: OnedSection = field(default_factory=OnedSection)
    node: NodeSection = field(default_factory=NodeSection)
    iscsi: IscsiSection = field(default_factory=IscsiSection)
    recovery: RecoverySection = field(default_factory=RecoverySection)
    evacuate: EvacuateSection = field(default_factory=EvacuateSection)
    cpu: CpuSection = field(default_factory=CpuSection)
    log: LogSection = field(default_factory=LogSection)
    path: str = ""
    #: :func:`~one_hooks.configpath.file_stamp` of the file, taken before it was read
    stamp: Tuple[int, ...] = ()

    def iscsiadm_argv(self) -> List[str]:
        """``[iscsi] iscsiadm`` as an argv list."""
        return shlex.split(self.iscsi.iscsiadm)


SECTIONS: Dict[str, Type[Any]] = {
    f.name: f.default_factory  # type: ignore[misc]
    for f in dataclasses.fields(Config)
    if f.name not in ("path", "stamp")
}

_S = TypeVar("_S")


def node_prefix(template: str, host: str) -> List[str]:
    """Split ``[node] command`` into argv words and put ``host`` in place of ``{host}``.

    The host name comes from oned: it is only ever one argv element (or part
    of one, e.g. ``user@{host}``), never shell text. A template without
    ``{host}`` gets the host appended as the last word.
    """
    words = shlex.split(template)
    if not any("{host}" in w for w in words):
        return words + [host]
    return [w.replace("{host}", host) for w in words]


def spec_lines() -> List[str]:
    """The configobj spec, generated from the dataclass declarations."""
    lines: List[str] = []
    for name, cls in SECTIONS.items():
        lines.append(f"[{name}]")
        for f in dataclasses.fields(cls):
            spec: str = f.metadata["spec"]
            default = _default_of(f)
            if spec.startswith("option("):
                lines.append(f"{f.name} = {spec}")
            elif isinstance(default, tuple):
                inner = ", ".join(repr(v) for v in default)
                lines.append(f"{f.name} = {spec}(default=list({inner}))")
            else:
                args = spec[spec.index("(") + 1:-1] + ", " if "(" in spec else ""
                base = spec.split("(")[0]
                lines.append(f"{f.name} = {base}({args}default={_spec_literal(default)})")
    return lines


def _spec_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        if "\\" in value and "'" not in value:
            return f"'{value}'"  # validate reads quoted defaults as they are: no escapes to double
        return repr(value)
    return str(value)


def _default_of(f: "dataclasses.Field[Any]") -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc,operator]


def reference() -> List[Tuple[str, str, str, str]]:
    """(section, key, default as written in the file, help) for every option."""
    rows = []
    for name, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            default = _default_of(f)
            rows.append((name, f.name, _file_literal(default), f.metadata["help"]))
    return rows


def _file_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple):
        return ", ".join(value) if value else '""'
    if value == "":
        return '""'
    if isinstance(value, str) and ("," in value or "#" in value):
        return f'"{value}"'
    return str(value)


def default_file_text() -> str:
    """A commented configuration file holding every default (what install writes)."""
    out = [
        "# one-hooks configuration (configobj syntax). Every line is commented out:",
        "# the values shown are the built-in defaults. Uncomment to change one.",
        "",
    ]
    current = ""
    for section, key, default, help in reference():
        if section != current:
            if current:
                out.append("")
            out.append(f"[{section}]")
            current = section
        out.append(f"# {help}")
        out.append(f"# {key} = {default}")
    return "\n".join(out) + "\n"


def load(path: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> Config:
    """Read, validate and resolve the configuration.

    Raises :class:`ConfigError` naming the file and key for a syntax error,
    an unknown section or key, or a value of the wrong type.
    """
    import configobj
    import validate

    env = os.environ if environ is None else environ
    file_path, must_exist = resolve_path(path, env)
    stamp = file_stamp(file_path)
    if not stamp:  # no such file
        if must_exist:
            raise ConfigError("no such file", file_path)
        source: Any = []
    else:
        if os.path.isdir(file_path):
            raise ConfigError("is a directory, not a file", file_path)
        source = file_path
    try:
        obj = configobj.ConfigObj(
            source, configspec=spec_lines(), file_error=True,
            encoding="utf-8", list_values=True, interpolation=False)
    except configobj.ConfigObjError as exc:
        several = [ConfigError(_first_line(str(e)), file_path) for e in getattr(exc, "errors", [])]
        raise ConfigError.joined(several or [ConfigError(_first_line(str(exc)), file_path)]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {_first_line(str(exc))}", file_path) from None

    problems: List[ConfigError] = []
    result = obj.validate(validate.Validator(), preserve_errors=True)
    if result is not True:
        for sections, key, error in configobj.flatten_errors(obj, result):
            section = ".".join(sections)
            if key is None:
                problems.append(ConfigError("section is missing", file_path, section))
                continue
            problems.append(ConfigError(_explain(section, key, obj[sections[0]].get(key), error),
                                        file_path, section))
    for sections, name in configobj.get_extra_values(obj):
        if sections:
            problems.append(ConfigError(f"unknown key '{name}'", file_path, ".".join(sections)))
            continue
        kind = "section" if isinstance(obj.get(name), dict) else "key outside any section"
        problems.append(ConfigError(f"unknown {kind} '{name}'", file_path))
    if problems:
        raise ConfigError.joined(problems)

    values: Dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        raw = dict(obj[name])
        for f in dataclasses.fields(cls):
            if isinstance(raw.get(f.name), list):
                raw[f.name] = tuple(str(v).strip() for v in raw[f.name] if str(v).strip())
        values[name] = cls(**raw)
    values["oned"] = _resolve_oned(values["oned"], env)
    config = Config(path=file_path if stamp else "", stamp=stamp, **values)
    _check_node_command(config, file_path)
    _check_evacuate(config.evacuate, file_path)
    return config


def _resolve_oned(section: OnedSection, env: Mapping[str, str]) -> OnedSection:
    """Fill endpoint and auth file from OpenNebula's own environment conventions."""
    endpoint = section.endpoint or env.get("ONE_XMLRPC", "") or DEFAULT_ENDPOINT
    auth_file = section.auth_file or env.get("ONE_AUTH", "") or os.path.join(
        env.get("HOME", os.path.expanduser("~")), ".one", "one_auth")
    return dataclasses.replace(section, endpoint=endpoint, auth_file=auth_file)


def _check_node_command(config: Config, path: str) -> None:
    for key, text in (("command", config.node.command), ("iscsiadm", config.iscsi.iscsiadm)):
        section = "node" if key == "command" else "iscsi"
        try:
            words = shlex.split(text)
        except ValueError as exc:
            raise ConfigError(f"{key}: cannot split into words: {exc}", path, section) from None
        if not words and section == "iscsi":
            raise ConfigError(f"{key}: empty", path, section)


def _check_evacuate(section: EvacuateSection, path: str) -> None:
    """Fence commands split into words and name ``{host}``; the off pattern compiles."""
    for key in ("fence", "fence_check"):
        text = getattr(section, key)
        try:
            words = shlex.split(text)
        except ValueError as exc:
            raise ConfigError(f"{key}: cannot split into words: {exc}", path, "evacuate") from None
        if words and not any("{host}" in w for w in words):
            # A fence without the host would power off whatever it names, whichever host failed.
            raise ConfigError(f"{key}: must contain {{host}} (the failed host's NAME)", path, "evacuate")
    try:
        re.compile(section.fence_off_pattern)
    except re.error as exc:
        raise ConfigError(f"fence_off_pattern: not a regular expression: {exc}", path, "evacuate") from None


#: configobj spec type -> what a value of it must be.
_TYPE_NAMES = {"integer": "an integer", "float": "a number", "boolean": "yes or no",
               "string": "text", "force_list": "a list"}


def _spec_of(section: str, key: str) -> Tuple[str, List[Any], Dict[str, Any]]:
    """The declared spec of ``[section] key``: type, positional and keyword arguments."""
    spec: str = next(f.metadata["spec"] for f in dataclasses.fields(SECTIONS[section]) if f.name == key)
    call = ast.parse(spec, mode="eval").body
    if not isinstance(call, ast.Call):
        return spec, [], {}
    name = call.func.id if isinstance(call.func, ast.Name) else spec
    return (name, [ast.literal_eval(a) for a in call.args],
            {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg})


def _explain(section: str, key: str, raw: Any, error: Any) -> str:
    """One line saying what is wrong with ``key = raw`` and what it may be: the values, type or bound."""
    import validate

    shown = ", ".join(map(str, raw)) if isinstance(raw, list) else raw
    head = f"{key} = {shown!r}"
    if not error:
        return f"{key}: missing value"
    kind, options, bounds = _spec_of(section, key)
    if kind == "option":
        why = "not one of " + ", ".join(map(str, options))
    elif isinstance(error, validate.VdtValueTooSmallError):
        why = f"below the minimum, {bounds.get('min')}"
    elif isinstance(error, validate.VdtValueTooBigError):
        why = f"above the maximum, {bounds.get('max')}"
    elif isinstance(error, validate.VdtValueTooShortError):
        why = "must not be empty" if bounds.get("min") == 1 else f"shorter than {bounds.get('min')} characters"
    elif isinstance(error, validate.VdtValueTooLongError):
        why = f"longer than {bounds.get('max')} characters"
    elif isinstance(error, validate.VdtTypeError):
        why = f"not {_TYPE_NAMES.get(kind, kind)}"
    else:
        why = _first_line(str(error))
    return f"{head}: {why}"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "error"
