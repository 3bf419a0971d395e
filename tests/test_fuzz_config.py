"""Fuzz the configuration reader: mutated files give a valid Config or one ConfigError (a line per problem).

``config.load`` is the only reader of ``/etc/one/one-hooks.conf``; an
operator's typo must end as one line per problem, each naming the file (exit 2), never a
traceback, and a file that does load must hold values of the declared types
within the declared bounds. 210 hypothesis examples x 48 mutants = 10,080
mutated files, plus grammar-built files from hypothesis and a sample run
through the real ``one-hooks`` command.
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any, List

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from one_hooks import config
from one_hooks.errors import ConfigError
from tests.test_fuzz_mutations import GENERIC_TOKENS, mutants

EXAMPLES = 210
MUTANTS_PER_EXAMPLE = 48
REPO = Path(__file__).resolve().parent.parent


def _full_file() -> bytes:
    """Every option set explicitly to its default: the richest valid file."""
    out: List[str] = []
    current = ""
    for section, key, default, _help in config.reference():
        if section != current:
            out.append(f"[{section}]")
            current = section
        out.append(f"{key} = {default}")
    return ("\n".join(out) + "\n").encode()


SEEDS = (
    _full_file(),
    config.default_file_text().encode(),
    b"[oned]\nendpoint = http://fe:2633/RPC2\ntimeout = 5\n[node]\n"
    b"command = ssh -o BatchMode=yes -p 2222 oneadmin@{host}\n"
    b"[iscsi]\nrequired_targets = iqn.2001-05.com.equallogic:0-8a0906-a, iqn.2003-01.org.x:b\n"
    b"check_multipath = auto\n[recovery]\npolicy = opt-in\nmax_parallel = 4\n"
    b"[log]\nfile = /var/log/one/one-hooks.log  # inline comment\nlevel = debug\n",
)

#: what configobj and our spec care about, on top of the generic tokens
CONFIG_TOKENS = tuple(GENERIC_TOKENS) + (
    b"[[", b"]]", b"'''", b'"""', b" = ", b"[oned]", b"[iscsi]", b"[recovery]", b"[bogus]",
    b"yes", b"no", b"on", b"true", b"{host}", b"policy", b"max_parallel", b"deadline",
    b"option('a')", b"$HOME", b"%(x)s",
)


def _check_types(cfg: config.Config) -> None:
    """A loaded Config holds, in every field, a value of its default's type."""
    for name in config.SECTIONS:
        section = getattr(cfg, name)
        for f in dataclasses.fields(section):
            value: Any = getattr(section, f.name)
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            expected = float if isinstance(default, float) else type(default)
            assert isinstance(value, expected) or (expected is float and isinstance(value, int)), (
                name, f.name, value)
            if isinstance(value, tuple):
                assert all(isinstance(v, str) and v for v in value), (name, f.name, value)


def _problems(path: str) -> int:
    """0 if the file loaded, else how many problems its ConfigError names (one line each).

    Any exception but ConfigError fails the test.
    """
    try:
        cfg = config.load(path, environ={"HOME": "/nonexistent"})
    except ConfigError as exc:
        lines = str(exc).split("\n")
        assert lines == list(exc.lines) and all(line.strip() for line in lines), repr(str(exc))
        assert all(line.startswith(path) for line in lines), lines
        assert exc.exit_code == 2
        return len(lines)
    _check_types(cfg)
    return 0


def _load_or_config_error(path: str) -> bool:
    """True if the file loaded; a ConfigError (one line per problem) is False."""
    return _problems(path) == 0


def test_seeds_are_valid(tmp_path: Path) -> None:
    for i, seed in enumerate(SEEDS):
        path = tmp_path / f"seed-{i}.conf"
        path.write_bytes(seed)
        assert _load_or_config_error(str(path)), seed[:200]


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_mutated_files_load_or_raise_config_error(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "one-hooks.conf"
    for data in mutants(SEEDS, seed, MUTANTS_PER_EXAMPLE, CONFIG_TOKENS):
        path.write_bytes(data)
        _load_or_config_error(str(path))


_names = st.sampled_from(["oned", "node", "iscsi", "recovery", "cpu", "log", "x", ""])
_keys = st.sampled_from(["endpoint", "timeout", "retries", "command", "check", "required_targets",
                         "deadline", "policy", "max_parallel", "state_dir", "file", "level", "k"])
_values = st.one_of(st.text(max_size=30), st.integers(), st.floats(allow_nan=True),
                    st.sampled_from(["yes", "no", "all", "opt-in", "auto", "", '""', "a, b"]))


@settings(max_examples=1000, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(body=st.lists(st.tuples(_names, st.lists(st.tuples(_keys, _values), max_size=5)), max_size=4))
def test_grammar_built_files_load_or_raise_config_error(tmp_path: Path, body: list) -> None:
    lines: List[str] = []
    for section, pairs in body:
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {value}" for key, value in pairs)
    path = tmp_path / "one-hooks.conf"
    # hypothesis text may hold lone surrogates: "replace" keeps the bytes writable.
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8", "replace"))
    _load_or_config_error(str(path))


def test_real_commands_on_a_sample_of_bad_files(tmp_path: Path, sim: Any) -> None:
    """Through the real CLI and the real hook: exit 2, one line per problem, no traceback, nothing touched.

    The simulated oned has a VM left UNKNOWN on a MONITORED host and the
    environment points at it ($ONE_XMLRPC, $ONE_AUTH): a hook that went on
    despite its bad configuration would resume that VM.
    """
    host = sim.add_host("dummy-host-1")
    vm = sim.add_vm("vm-outage-test", host)
    sim.host_error(host)
    sim.host_monitored(host)
    assert sim.settle(10) and (host, vm) == (0, 0)  # the ids the recorded payload names
    payload = (REPO / "tests" / "data" / "fuzz" / "vm-unknown-prev-running.b64").read_bytes()
    calls_before = dict(sim.calls)
    work = tmp_path / "work"
    work.mkdir()
    bad = 0
    for i, data in enumerate(mutants(SEEDS, 20261126, 400, CONFIG_TOKENS)):
        path = work / f"c{i}.conf"
        path.write_bytes(data)
        problems = _problems(str(path))
        if not problems:
            path.unlink()
            continue
        bad += 1
        if bad > 12:
            break
        listing = sorted(p.name for p in work.iterdir())
        env = sim.env(path, PYTHONPATH=str(REPO), HOME=str(tmp_path))
        for argv, stdin in (([ "config", "--check"], b""), (["hook", "vm-unknown"], payload)):
            proc = subprocess.run([sys.executable, "-m", "one_hooks", *argv], input=stdin,
                                  cwd=REPO, capture_output=True, timeout=60, env=env)
            output = (proc.stdout + proc.stderr).decode("utf-8", "replace")
            assert proc.returncode == 2, (argv, output)
            assert len(output.strip().splitlines()) == problems, (argv, output)
            assert "Traceback" not in output
            assert path.read_bytes() == data
            assert sorted(p.name for p in work.iterdir()) == listing
    assert bad > 12, "the sample held too few bad files to mean anything"
    assert dict(sim.calls) == calls_before  # not one call reached oned
    assert sim.action_log == []
