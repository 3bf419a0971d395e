"""The POSIX sh emulator wrapper, run for real against a stand-in emulator that records its argv."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from one_hooks.cpu import wrapper as wrapper_mod
from one_hooks.errors import UsageError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WRAPPER = os.path.join(ROOT, "vmm_wrappers", "one-hooks-qemu")
CPU = "host,arch-capabilities=off"

STANDIN = """#!/bin/sh
# Stand-in emulator: records its PID, argc and argv (NUL separated), prints nothing.
printf '%s %s\\n' "$$" "$#" > "$STANDIN_RECORD.pid"
printf '%s\\0' "$@" > "$STANDIN_RECORD"
exit 0
"""

# What libvirt 9.0 runs for a domain shaped like OpenNebula's (no <cpu>: -cpu qemu64).
LIBVIRT_ARGV = [
    "-name", "guest=one-7,debug-threads=on", "-S",
    "-object", '{"qom-type":"secret","id":"masterKey0","format":"raw",'
               '"file":"/var/lib/libvirt/qemu/domain-1-one-7/master-key.aes"}',
    "-machine", "pc-i440fx-7.2,usb=off,dump-guest-core=off,memory-backend=pc.ram",
    "-accel", "kvm", "-cpu", "qemu64",
    "-m", "128", "-object", '{"qom-type":"memory-backend-ram","id":"pc.ram","size":134217728}',
    "-overcommit", "mem-lock=off", "-smp", "1,sockets=1,cores=1,threads=1",
    "-uuid", "5d9fb8ae-3a3e-4f3e-9a56-2f9d6a2e8b11", "-no-user-config", "-nodefaults",
    "-chardev", "socket,id=charmonitor,fd=22,server=on,wait=off",
    "-mon", "chardev=charmonitor,id=monitor,mode=control", "-rtc", "base=utc", "-no-shutdown",
    "-boot", "strict=on", "-blockdev",
    '{"driver":"file","filename":"/var/lib/one//datastores/0/7/disk.0","node-name":"libvirt-1-storage"}',
    "-audiodev", '{"id":"audio1","driver":"none"}',
    "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
    "-msg", "timestamp=on",
]

# libvirt's capability probe (DESIGN.md section 5), first with kvm:tcg then tcg.
PROBE = ["-S", "-no-user-config", "-nodefaults", "-nographic", "-machine", "none,accel=kvm:tcg",
         "-qmp", "unix:/var/lib/libvirt/qemu/capabilities.monitor.sock,server=on,wait=off",
         "-pidfile", "/var/lib/libvirt/qemu/capabilities.pidfile", "-daemonize"]


@pytest.fixture
def standin(tmp_path) -> str:
    path = str(tmp_path / "qemu-standin")
    with open(path, "w") as fh:
        fh.write(STANDIN)
    os.chmod(path, 0o755)
    return path


class Run:
    def __init__(self, proc: "subprocess.CompletedProcess[bytes]", pid: int, record: str) -> None:
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr.decode()
        self.pid = pid
        self.argv: Optional[List[str]] = None
        self.exec_pid = 0
        if os.path.exists(record):
            with open(record + ".pid") as fh:
                pid_text, argc = fh.read().split()
            self.exec_pid = int(pid_text)
            with open(record, "rb") as fh:
                raw = fh.read().decode()
            self.argv = [] if argc == "0" else raw[:-1].split("\0")

    @property
    def cpus(self) -> List[str]:
        assert self.argv is not None
        return [self.argv[i + 1] for i, a in enumerate(self.argv) if a == "-cpu"]


def run(argv: Sequence[str], qemu: Optional[str], cpu: Optional[str] = CPU, wrapper: str = WRAPPER,
        shell: Sequence[str] = (), env: Optional[Dict[str, str]] = None, cwd: Optional[str] = None) -> Run:
    # The stand-in (last candidate) records beside itself.
    record = os.path.join(os.path.dirname(qemu.split(":")[-1]), "record") if qemu else "/nonexistent"
    for leftover in (record, record + ".pid"):
        if os.path.exists(leftover):
            os.unlink(leftover)
    environ = {"PATH": os.environ["PATH"], "STANDIN_RECORD": record}
    if qemu is not None:
        environ["ONE_HOOKS_QEMU"] = qemu
    if cpu is not None:
        environ["ONE_HOOKS_CPU"] = cpu
    environ.update(env or {})
    proc = subprocess.Popen([*shell, wrapper, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=environ, cwd=cwd)
    out, err = proc.communicate(timeout=30)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return Run(done, proc.pid, record)


SHELLS = [pytest.param((), id="sh"), pytest.param(("bash", "--posix"), id="bash-posix")]


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed (apt: shellcheck)")
def test_shellcheck_clean() -> None:
    proc = subprocess.run(["shellcheck", "-s", "sh", WRAPPER], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("shell", SHELLS)
def test_libvirt_kvm_launch_gets_host_cpu_in_place(standin: str, shell: Tuple[str, ...]) -> None:
    result = run(LIBVIRT_ARGV, standin, shell=shell)
    assert result.rc == 0 and result.stdout == b"" and result.stderr == ""
    expected = list(LIBVIRT_ARGV)
    expected[expected.index("qemu64")] = CPU
    assert result.argv == expected
    assert result.cpus == [CPU]


def test_exec_keeps_the_pid(standin: str) -> None:
    # libvirt tracks the PID it started: the wrapper must become QEMU, not fork it.
    result = run(LIBVIRT_ARGV, standin)
    assert result.exec_pid == result.pid


@pytest.mark.parametrize("argv", [
    PROBE,
    [a.replace("kvm:tcg", "tcg") for a in PROBE],
    ["-M", "none", "-accel", "kvm"],
    ["-machine", "type=none,accel=kvm", "-cpu", "qemu64"],
    ["-help"], ["--help"], ["-h"], ["-version"], ["--version"],
    ["-accel", "kvm", "-cpu", "help"], ["-enable-kvm", "-cpu", "?"],
    ["-machine", "help"], ["-accel", "kvm", "-device", "help"],
    ["-accel", "tcg", "-cpu", "qemu64", "-m", "64"],
    ["-machine", "pc,accel=tcg", "-cpu", "qemu64"],
    ["-accel", "tcg", "-accel", "kvm", "-cpu", "qemu64"],
    ["-cpu", "qemu64", "-m", "64"],
    ["-accel", "kvm", "-cpu"],
    [],
], ids=lambda a: " ".join(a)[:40] or "no-args")
def test_passes_through_untouched(standin: str, argv: List[str]) -> None:
    result = run(argv, standin)
    assert result.rc == 0 and result.stdout == b""
    assert result.argv == argv


@pytest.mark.parametrize("argv, cpu", [
    (["-enable-kvm", "-m", "64"], CPU),
    (["--enable-kvm", "-m", "64"], CPU),
    (["-machine", "pc,accel=kvm:tcg", "-m", "64"], CPU),
    (["-accel", "accel=kvm,kernel-irqchip=on"], CPU),
])
def test_kvm_launch_without_cpu_gets_one(standin: str, argv: List[str], cpu: str) -> None:
    result = run(argv, standin)
    assert result.argv == argv + ["-cpu", cpu]


@pytest.mark.parametrize("given, configured, expected", [
    ("qemu64", "host", "host"),
    ("host,migratable=on", "host", "host,migratable=on"),
    ("EPYC-Rome,x2apic=on,tsc-deadline=on,hypervisor=on", "host",
     "host,x2apic=on,tsc-deadline=on,hypervisor=on"),
    # identity properties would make it not the host's CPU
    ("Skylake,vendor=GenuineIntel,model-id=Fake,,CPU,family=6,+vmx", "host", "host,+vmx"),
    # the configured argument's own keys win, whatever the spelling
    ("qemu64,arch_capabilities=on,hv-time=on,-hv_relaxed", CPU, CPU + ",hv-time=on,-hv_relaxed"),
    ("qemu64,hv_vendor_id=a,,b,kvm=off", "max", "max,hv_vendor_id=a,,b,kvm=off"),
])
def test_cpu_suffixes(standin: str, given: str, configured: str, expected: str) -> None:
    result = run(["-accel", "kvm", "-cpu", given, "-m", "64"], standin, cpu=configured)
    assert result.argv == ["-accel", "kvm", "-cpu", expected, "-m", "64"]


def test_several_cpus_become_one_at_the_first_place(standin: str) -> None:
    result = run(["-cpu", "a,x=on", "-enable-kvm", "-cpu", "qemu64,pmu=off", "-m", "1"], standin)
    assert result.argv == ["-cpu", CPU + ",pmu=off", "-enable-kvm", "-m", "1"]


NASTY = ["with space", 'double"quote', "single'quote", "[bracket", "*", "?", "$(touch pwned)",
         "`id`", '{"driver":"file","filename":"/a b/c"}', "", "new\nline", "back\\slash",
         "-cpu", "help", "--", "tab\there", "ünïcode", ";", "&&", "|", ">out", "~", "$HOME"]


@pytest.mark.parametrize("shell", SHELLS)
def test_nasty_arguments_survive_exactly(standin: str, tmp_path, shell: Tuple[str, ...]) -> None:
    (tmp_path / "glob-bait").write_text("")  # an unquoted * or ? would expand to it
    argv: List[str] = ["-accel", "kvm", "-cpu", "qemu64"]
    for value in NASTY:
        argv += ["-append", value]
    argv += NASTY[:3]  # positional words too
    result = run(argv, standin, shell=shell, cwd=str(tmp_path))
    expected = list(argv)
    expected[3] = CPU
    assert result.argv == expected
    assert not (tmp_path / "pwned").exists() and not (tmp_path / ">out").exists()


WORDS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=12)
OPTIONS = st.sampled_from(["-name", "-append", "-object", "-device", "-drive", "-chardev", "-m", "-smp"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(OPTIONS, WORDS), max_size=8), st.integers(0, 8), WORDS.filter(
    lambda w: "," not in w and w not in ("help", "?") and w != ""))
def test_any_argv_survives(pairs: List[Tuple[str, str]], where: int, model: str) -> None:
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        qemu = os.path.join(tmp, "qemu")
        with open(qemu, "w") as fh:
            fh.write(STANDIN)
        os.chmod(qemu, 0o755)
        argv = [w for pair in pairs for w in pair]
        where = min(where, len(pairs)) * 2
        given_argv = argv[:where] + ["-accel", "kvm", "-cpu", model] + argv[where:]
        result = run(given_argv, qemu, cpu="host")
        expected = argv[:where] + ["-accel", "kvm", "-cpu", "host"] + argv[where:]
        assert result.argv == expected


def test_missing_emulator_exits_127_with_message(tmp_path) -> None:
    result = run(["-enable-kvm"], str(tmp_path / "no-such-qemu"))
    assert result.rc == 127 and result.stdout == b""
    assert "no real emulator found" in result.stderr and "no-such-qemu" in result.stderr


def test_never_runs_itself(tmp_path, standin: str) -> None:
    link = tmp_path / "qemu-kvm-one"
    link.symlink_to(WRAPPER)
    alone = run(["-enable-kvm"], f"{WRAPPER}:{link}")
    assert alone.rc == 127 and "never used" in alone.stderr
    # ... and skips itself in favour of the next candidate
    result = run(["-enable-kvm"], f"{link}:{WRAPPER}:{standin}")
    assert result.rc == 0 and result.argv == ["-enable-kvm", "-cpu", CPU]


def test_installed_settings_and_env_overrides(tmp_path, standin: str) -> None:
    remotes = str(tmp_path / "remotes")
    changed = wrapper_mod.install(remotes, wrapper_mod.Settings((str(tmp_path / "gone"), standin), "max"))
    installed = wrapper_mod.wrapper_path(remotes)
    assert changed == [installed, wrapper_mod.settings_path(remotes)]
    assert wrapper_mod.install(remotes, wrapper_mod.Settings((str(tmp_path / "gone"), standin), "max")) == []
    assert wrapper_mod.installed_settings(remotes) == wrapper_mod.Settings((str(tmp_path / "gone"), standin),
                                                                           "max")
    settings_only = run(["-enable-kvm"], None, cpu=None, wrapper=installed,
                        env={"STANDIN_RECORD": os.path.join(os.path.dirname(standin), "record")})
    assert settings_only.rc == 0, settings_only.stderr
    with open(os.path.join(os.path.dirname(standin), "record"), "rb") as fh:
        assert fh.read() == b"-enable-kvm\0-cpu\0max\0"
    overridden = run(["-enable-kvm"], standin, cpu="host,pmu=off", wrapper=installed)
    assert overridden.argv == ["-enable-kvm", "-cpu", "host,pmu=off"]
    assert sorted(wrapper_mod.uninstall(remotes)) == sorted(changed)


def test_settings_refuse_what_the_wrapper_cannot_read() -> None:
    from one_hooks.errors import UsageError
    for bad in (wrapper_mod.Settings(("relative/qemu",)), wrapper_mod.Settings(("/a:b",)),
                wrapper_mod.Settings(("/usr/bin/qemu",), "host\nQEMU=/tmp/x"),
                wrapper_mod.Settings(("/usr/bin/qemu",), "-cpu")):
        with pytest.raises(UsageError):
            bad.render()


def test_real_emulators_order() -> None:
    assert wrapper_mod.real_emulators("/usr/bin/kvm")[0] == "/usr/bin/kvm"
    assert wrapper_mod.real_emulators("/var/tmp/one/vmm/kvm/one-hooks-qemu") == list(
        wrapper_mod.DEFAULT_CANDIDATES)
    assert wrapper_mod.real_emulators(None, "/opt/q:/usr/bin/q") == ["/opt/q", "/usr/bin/q"]
    assert wrapper_mod.node_emulator() == "/var/tmp/one/vmm/kvm/one-hooks-qemu"


def test_wrapper_and_remotes_found_in_the_same_places_after_pip_install_user(tmp_path: Path, monkeypatch) -> None:
    """`pip install --user` puts the shipped files under site.USER_BASE: `cpu enable --mode wrapper` finds the
    wrapper there, as the installer finds the remotes tree (they once searched different lists)."""
    import site
    import sys

    from one_hooks.cpu import wrapper as wrapper_mod
    from one_hooks.install import files

    user = tmp_path / "user-base"
    shipped = user / wrapper_mod.SHARE_REMOTES
    (shipped / "vmm" / "kvm").mkdir(parents=True)
    (shipped / "vmm" / "kvm" / wrapper_mod.WRAPPER_NAME).write_text("#!/bin/sh\n")
    (shipped / "hooks" / "one-hooks").mkdir(parents=True)
    nowhere = tmp_path / "nowhere"
    # no checkout around the modules, nothing in the environment's prefixes
    monkeypatch.setattr(wrapper_mod, "__file__", str(nowhere / "one_hooks" / "cpu" / "wrapper.py"))
    monkeypatch.setattr(files, "__file__", str(nowhere / "one_hooks" / "install" / "files.py"))
    monkeypatch.setattr(sys, "prefix", str(nowhere / "venv"))
    monkeypatch.setattr(sys, "base_prefix", str(nowhere / "base"))
    monkeypatch.setattr(site, "USER_BASE", str(user))
    if any((Path(p) / wrapper_mod.SHARE_REMOTES).exists() for p in ("/usr/local", "/usr")):
        pytest.skip("one-hooks is installed system-wide here: /usr would be found first")
    assert files.shipped_remotes() == str(shipped)
    assert wrapper_mod.shipped_wrapper() == str(shipped / "vmm" / "kvm" / wrapper_mod.WRAPPER_NAME)
    monkeypatch.setattr(site, "USER_BASE", str(nowhere / "user"))
    with pytest.raises(UsageError, match="not shipped with this installation"):
        wrapper_mod.shipped_wrapper()
