"""The `one-hooks` command line: help, version, usage errors, the error boundary."""
from __future__ import annotations

import subprocess
import sys

import pytest

from one_hooks import __version__
from one_hooks.cli import COMMANDS, main, run_guarded
from one_hooks.errors import ConfigError, OnedUnreachable


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out
    assert "exit codes" in out


def test_version(capsys: pytest.CaptureFixture) -> None:
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture) -> None:
    assert main([]) == 2


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture) -> None:
    assert main(["reboot-everything"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_boundary_turns_our_errors_into_one_line(capsys: pytest.CaptureFixture) -> None:
    def body() -> int:
        raise OnedUnreachable("connection refused", method="one.vm.info", ids=[7])

    assert run_guarded(body, "one-hooks") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["one-hooks: error: oned: one.vm.info: connection refused (ids 7)"]

    def bad_config() -> int:
        raise ConfigError("bad", "/etc/one/one-hooks.conf", "iscsi")

    assert run_guarded(bad_config, "one-hooks") == 2


def test_boundary_lets_bugs_keep_their_traceback() -> None:
    def body() -> int:
        raise ZeroDivisionError("bug")

    with pytest.raises(ZeroDivisionError):
        run_guarded(body, "one-hooks")


def test_top_level_help_imports_no_subcommand_module() -> None:
    code = ("import sys; from one_hooks.cli import main\n"
            "main(['--help'])\n"
            "bad = [m for m in sys.modules if m.startswith(('pyone', 'one_hooks.sim', 'one_hooks.cpu', "
            "'one_hooks.commands', 'one_hooks.hooks'))]\n"
            "print('loaded:' + ','.join(bad), file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "loaded:\n" in out.stderr


def test_global_options_go_before_or_after_the_subcommand(tmp_path, capsys: pytest.CaptureFixture) -> None:
    conf = tmp_path / "one-hooks.conf"
    conf.write_text("[log]\nfile = -\n")
    for argv in (["--config", str(conf), "config", "--check"], ["config", "--check", "--config", str(conf)],
                 ["config", f"--config={conf}"]):
        assert main(argv) == 0, argv
        assert capsys.readouterr().out == f"configuration OK: {conf}\n"
    # nested subcommands take them too, and --dry-run given first reaches the action that has one
    driver = tmp_path / "vmm_exec_kvm.conf"
    driver.write_text('EMULATOR = "/usr/bin/qemu-kvm-one"\n')
    conf.write_text(f"[log]\nfile = -\n[cpu]\nconf = {driver}\n")
    for argv in (["cpu", "enable", "--mode", "native", "--config", str(conf), "--dry-run"],
                 ["--dry-run", "cpu", "enable", "--mode", "native", "--config", str(conf)],
                 ["--config", str(conf), "--dry-run", "cpu", "enable", "--mode", "native"]):
        assert main(argv) == 0, argv
        assert '+CPU_MODEL = [ MODEL = "host-passthrough" ]' in capsys.readouterr().out.splitlines()
        assert driver.read_text() == 'EMULATOR = "/usr/bin/qemu-kvm-one"\n'


def test_dry_run_where_it_does_not_apply_is_a_usage_error(tmp_path, capsys: pytest.CaptureFixture) -> None:
    conf = tmp_path / "one-hooks.conf"
    conf.write_text("[log]\nfile = -\n")
    assert main(["--dry-run", "--config", str(conf), "config", "--check"]) == 2
    assert capsys.readouterr().err == "one-hooks: error: --dry-run: 'one-hooks config' has no dry run\n"


def test_waiting_on_an_unreachable_oned_says_what_is_retried_and_when(tmp_path) -> None:
    """recover, cpu verify and the installer used to wait on a dead oned without a word."""
    conf = tmp_path / "one-hooks.conf"
    conf.write_text(f"[oned]\nendpoint = http://127.0.0.1:9/RPC2\nauth_file = {tmp_path / 'auth'}\n"
                    f"retries = 2\nretry_delay = 0.1\n[log]\nfile = -\n[recovery]\nstate_dir = {tmp_path / 's'}\n")
    (tmp_path / "auth").write_text("oneadmin:x\n")
    for argv in (["-m", "one_hooks", "recover"], ["-m", "one_hooks", "cpu", "verify"],
                 ["-m", "one_hooks.install", "--root", str(tmp_path / "root")]):
        out = subprocess.run([sys.executable, *argv, "--config", str(conf)], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 1, (argv, out.stdout, out.stderr)
        notices = [line for line in out.stderr.splitlines() if "retry" in line]
        assert len(notices) == 2, (argv, out.stderr)
        assert "oned at http://127.0.0.1:9/RPC2: one." in notices[0]
        assert notices[0].endswith("retry 1 of 2 in 0.1 s") and notices[1].endswith("retry 2 of 2 in 0.2 s")
