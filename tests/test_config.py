"""Configuration: defaults, environment fallbacks, good and bad files."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from one_hooks import config
from one_hooks.cli import main
from one_hooks.errors import ConfigError
from one_hooks.oned import authfile


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "one-hooks.conf"
    path.write_text(text)
    return str(path)


def test_defaults_without_a_file_follow_opennebula_conventions() -> None:
    cfg = config.load(environ={"HOME": "/home/oneadmin"})
    assert cfg.oned.endpoint == "http://localhost:2633/RPC2"
    assert cfg.oned.auth_file == "/home/oneadmin/.one/one_auth"
    assert cfg.node.command == "ssh -o BatchMode=yes -o ConnectTimeout=10 {host}"
    assert cfg.iscsi.iscsiadm == "sudo -n iscsiadm"
    assert cfg.log.file == "/var/log/one/one-hooks.log"
    assert cfg.recovery.policy == "all"
    assert cfg.path == ""


def test_environment_fills_endpoint_and_auth() -> None:
    cfg = config.load(environ={"ONE_XMLRPC": "http://fe:2633/RPC2", "ONE_AUTH": "/tmp/auth"})
    assert cfg.oned.endpoint == "http://fe:2633/RPC2"
    assert cfg.oned.auth_file == "/tmp/auth"


def test_file_values_win_over_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[oned]\nendpoint = http://a:1/RPC2\ntimeout = 5\n"
                           "[iscsi]\nrequired_targets = iqn.2001-05.com.x:a, iqn.2001-05.com.x:b\n"
                           "check_multipath = no\n[recovery]\npolicy = opt-in\nmax_parallel = 3\n")
    cfg = config.load(path, environ={"ONE_XMLRPC": "http://env:2633/RPC2"})
    assert cfg.oned.endpoint == "http://a:1/RPC2"
    assert cfg.oned.timeout == 5.0
    assert cfg.iscsi.required_targets == ("iqn.2001-05.com.x:a", "iqn.2001-05.com.x:b")
    assert cfg.iscsi.check_multipath == "no"
    assert cfg.recovery.policy == "opt-in"
    assert cfg.recovery.max_parallel == 3
    assert cfg.path == path


def test_config_path_from_environment_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        config.load(environ={"ONE_HOOKS_CONFIG": str(tmp_path / "missing.conf")})


@pytest.mark.parametrize("text, words", [
    ("[iscsi]\ndeadline = soon\n", ["[iscsi]", "deadline"]),
    ("[iscsi]\ndeadlin = 5\n", ["[iscsi]", "unknown key 'deadlin'"]),
    ("[isci]\n", ["unknown section 'isci'"]),
    ("[recovery\n", ["line 1"]),
    ("[recovery]\npolicy = sometimes\n", ["[recovery]", "policy"]),
    ("[recovery]\nmax_parallel = 0\n", ["[recovery]", "max_parallel"]),
    ("[node]\ncommand = ssh 'unclosed {host}\n", ["[node]", "command"]),
    ("timeout = 3\n", ["unknown key outside any section 'timeout'"]),
])
def test_bad_files_name_the_key(tmp_path: Path, text: str, words: list) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        config.load(path, environ={})
    for word in words:
        assert word in str(info.value)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("text, line", [
    ("[recovery]\npolicy = sometimes\n", "[recovery]: policy = 'sometimes': not one of all, opt-in"),
    ("[recovery]\nmax_parallel = many\n", "[recovery]: max_parallel = 'many': not an integer"),
    ("[iscsi]\ndeadline = soon\n", "[iscsi]: deadline = 'soon': not a number"),
    ("[iscsi]\ncheck = maybe\n", "[iscsi]: check = 'maybe': not yes or no"),
    ("[recovery]\nmax_parallel = 0\n", "[recovery]: max_parallel = '0': below the minimum, 1"),
    ("[oned]\nretries = 21\n", "[oned]: retries = '21': above the maximum, 20"),
    ("[recovery]\nstate_dir = ''\n", "[recovery]: state_dir = '': must not be empty"),
    ("[log]\nlevel = loud\n", "[log]: level = 'loud': not one of debug, info, warning, error"),
])
def test_each_error_says_what_is_allowed(tmp_path: Path, text: str, line: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        config.load(path, environ={})
    assert str(info.value) == f"{path}: {line}"


def test_every_error_of_a_file_at_once_one_line_each(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write(tmp_path, "[recovery]\npolicy = sometimes\nmax_parallel = 0\n[iscsi]\ndeadlin = 5\n"
                           "deadline = soon\n[isci]\n")
    code = main(["--config", path, "config", "--check"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert sorted(err) == sorted(f"one-hooks: error: {path}: {line}" for line in (
        "[recovery]: policy = 'sometimes': not one of all, opt-in",
        "[recovery]: max_parallel = '0': below the minimum, 1",
        "[iscsi]: deadline = 'soon': not a number",
        "[iscsi]: unknown key 'deadlin'",
        "unknown section 'isci'"))


def test_several_syntax_errors_each_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[recovery\npolicy = all\n[iscsi\n")
    with pytest.raises(ConfigError) as info:
        config.load(path, environ={})
    lines = str(info.value).splitlines()
    assert len(lines) == 2 and "at line 1" in lines[0] and "at line 3" in lines[1]
    assert all(line.startswith(f"{path}: ") for line in lines)


def test_bad_file_gives_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write(tmp_path, "[iscsi]\ndeadline = soon\n")
    code = main(["--config", path, "config", "--check"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "deadline" in err and "Traceback" not in err


def test_default_file_round_trips_to_the_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, config.default_file_text())
    assert config.load(path, environ={}).recovery == config.RecoverySection()
    # every option appears in the generated file, commented out
    text = config.default_file_text()
    for section, key, _default, _help in config.reference():
        assert f"# {key} = " in text


def test_uncommented_defaults_validate_to_the_same_values(tmp_path: Path) -> None:
    lines = [line[2:] if line.startswith("# ") and " = " in line else line
             for line in config.default_file_text().splitlines()]
    path = write(tmp_path, "\n".join(lines) + "\n")
    cfg = config.load(path, environ={})
    assert cfg.iscsi == config.IscsiSection()
    assert cfg.node == config.NodeSection()


def test_node_command_keeps_hostile_host_names_as_one_word() -> None:
    name = "evil host; rm -rf / $(reboot) `id`"
    argv = config.node_prefix("ssh -o BatchMode=yes {host}", name)
    assert argv == ["ssh", "-o", "BatchMode=yes", name]
    assert config.node_prefix("ssh -l oneadmin", "h1") == ["ssh", "-l", "oneadmin", "h1"]
    assert config.node_prefix("ssh oneadmin@{host}", "h1") == ["ssh", "oneadmin@h1"]


def test_auth_file_errors_never_show_the_secret(tmp_path: Path) -> None:
    auth = tmp_path / "one_auth"
    auth.write_text("no-colon-secret\n")
    with pytest.raises(ConfigError) as info:
        authfile.read_auth(str(auth))
    assert "no-colon-secret" not in str(info.value)
    auth.write_text("oneadmin:s3cret\n")
    assert authfile.read_auth(str(auth)) == "oneadmin:s3cret"
    os.chmod(auth, 0)
