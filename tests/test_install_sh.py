"""install.sh, for real: shellcheck, its help and errors, and one run into a fresh virtualenv.

The real run pip-installs this checkout (with its dependencies, from the
package index) into a temporary virtualenv, exactly as an operator would, and
checks that the installed package carries the shims and the CPU wrapper
(setup.cfg data_files), that the installed one-hooks-install finds them,
and that it would install the same remotes files as a checkout does.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "install.sh"
SHIMS = ("host-reconnect", "vm-unknown", "vm-poweroff")


def run_sh(*args: str, env: dict = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd="/")


def test_shellcheck_clean() -> None:
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed (Debian package shellcheck)")
    result = subprocess.run(["shellcheck", "-s", "sh", str(SCRIPT)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_help_names_every_option_and_changes_nothing(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    for flag in ("-h", "--help"):
        result = run_sh("--venv", str(venv), flag)
        assert result.returncode == 0 and result.stderr == ""
        for word in ("--venv DIR", "--python", "--remotes", "--root", "--config", "--cpu-host",
                     "--dry-run", "--check", "--uninstall", "--sync"):
            assert word in result.stdout
    assert not venv.exists()


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    result = run_sh("--venv")
    assert result.returncode == 2 and result.stderr == "install.sh: --venv needs a value\n"
    env = dict(os.environ, PYTHON=str(tmp_path / "no-such-python"))
    result = run_sh("--venv", str(tmp_path / "v"), env=env)
    assert result.returncode == 2 and "not found" in result.stderr
    assert not (tmp_path / "v").exists()


def test_dry_run_creates_no_virtualenv_and_shows_the_installer_steps(tmp_path: Path, sim) -> None:
    """install.sh --dry-run: no venv, no pip; one-hooks-install's own dry run from this checkout."""
    venv = tmp_path / "venv"
    root = tmp_path / "root"
    env = dict(sim.env(), PYTHONPATH="")
    env.pop("ONE_HOOKS_CONFIG", None)
    result = run_sh("--venv", str(venv), "--python", sys.executable, "--dry-run", "--root", str(root),
                    env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not venv.exists() and not root.exists()
    lines = result.stdout.splitlines()
    assert lines[0] == f"install.sh: would create the virtualenv {venv} and install one-hooks from {REPO} " \
                       "into it (dry run: nothing created)"
    assert "would install /var/lib/one/remotes/hooks/one-hooks/vm-unknown (mode 0755)" in lines
    assert f"+PYTHON={venv}/bin/python" in lines, "the shims as the real run would write them"
    assert sim.calls.get("one.hook.allocate", 0) == 0


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One real install.sh run into a fresh virtualenv (pip from the package index)."""
    where = tmp_path_factory.mktemp("install-sh") / "venv with space"
    # '-- --help': install.sh does its whole job, then hands '--help' to one-hooks-install.
    result = run_sh("--venv", str(where), "--python", sys.executable, "--", "--help", timeout=300)
    if result.returncode != 0 and any(word in result.stdout + result.stderr for word in (
            "Could not find a version", "NewConnectionError", "Temporary failure in name resolution",
            "No matching distribution")):
        pytest.skip("the package index is not reachable from here: " + result.stderr.strip()[-300:])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "usage: one-hooks-install" in result.stdout
    yield where


def test_real_install_carries_the_shims(venv: Path) -> None:
    share = venv / "share" / "one-hooks" / "remotes" / "hooks" / "one-hooks"
    for shim in SHIMS:
        assert (share / shim).read_bytes() == (REPO / "remotes" / "hooks" / "one-hooks" / shim).read_bytes()
    wrapper = venv / "share" / "one-hooks" / "remotes" / "vmm" / "kvm" / "one-hooks-qemu"
    assert wrapper.read_bytes() == (REPO / "vmm_wrappers" / "one-hooks-qemu").read_bytes()
    assert os.access(wrapper, os.X_OK)  # the installer keeps a shipped file's mode
    found = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "from one_hooks.install import files; print(files.shipped_remotes())"],
                           capture_output=True, text=True, timeout=60, cwd="/", check=True)
    assert found.stdout.strip() == str(venv / "share" / "one-hooks" / "remotes")


#: Every file the installer would put under REMOTES (path, mode, content), as JSON.
WANTED = ("import json; from one_hooks.install import files; from one_hooks.install.context import Layout\n"
          "specs = files.wanted_files(Layout('', '/R', '/S'), files.shipped_remotes(), '/py')\n"
          "print(json.dumps([[s.path, oct(s.mode), s.data.hex()] for s in specs]))")


def test_installed_package_and_checkout_install_the_same_remotes(venv: Path) -> None:
    """The installed package reads the shared remotes tree, a checkout remotes/ and vmm_wrappers/: same files."""
    installed = subprocess.run([str(venv / "bin" / "python"), "-c", WANTED], capture_output=True, text=True,
                               timeout=60, cwd="/", check=True)
    checkout = subprocess.run([sys.executable, "-c", WANTED], capture_output=True, text=True, timeout=60,
                              cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), check=True)
    assert installed.stdout == checkout.stdout
    assert [(path, mode) for path, mode, _ in json.loads(installed.stdout)] == [
        ("/R/hooks/one-hooks/host-error", "0o755"),
        ("/R/hooks/one-hooks/host-reconnect", "0o755"), ("/R/hooks/one-hooks/vm-poweroff", "0o755"),
        ("/R/hooks/one-hooks/vm-unknown", "0o755"), ("/R/vmm/kvm/one-hooks-qemu", "0o755")]


def test_rerun_upgrades_in_place(venv: Path) -> None:
    before = (venv / "bin" / "python").resolve()
    result = run_sh("--venv", str(venv), "--", "--version-not-an-option", timeout=300)
    # the venv is reused (no "creating"), pip runs again, and one-hooks-install gets the argument
    assert "creating virtualenv" not in result.stdout
    assert result.returncode == 2 and "unrecognized arguments: --version-not-an-option" in result.stderr
    assert (venv / "bin" / "python").resolve() == before


def our_warnings(output: str) -> list:
    """Lines of a pip run that warn about this package (pip's notes about the index are not ours)."""
    return [line for line in output.splitlines()
            if "warning" in line.lower() and ("one_hooks" in line or "one-hooks" in line)]


def test_pip_install_prints_no_warning_of_ours(tmp_path: Path) -> None:
    """``pip install .`` and ``pip install -e .`` (what dev-setup.sh runs): setuptools has nothing to warn about.

    The throw-away virtualenv sees this one's libraries (no download but pip's
    own upgrade): its pip is upgraded first, as dev-setup.sh does, because only
    recent pips show the build backend's warnings at all.
    """
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True,
                   capture_output=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    upgrade = subprocess.run(pip + ["install", "-q", "--upgrade", "pip"], capture_output=True, text=True,
                             timeout=300, cwd=str(tmp_path))
    if upgrade.returncode != 0:
        pytest.skip("pip cannot be upgraded from the package index here: " + upgrade.stderr.strip()[-300:])
    # A copy of the checkout: pip builds in the source tree, and must not leave build/ in this one.
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis"))
    for editable in ([], ["-e"]):
        result = subprocess.run(pip + ["install", "--no-deps", *editable, str(source)], capture_output=True,
                                text=True, timeout=300, cwd=str(tmp_path))
        assert result.returncode == 0, result.stdout + result.stderr
        assert our_warnings(result.stdout + result.stderr) == [], editable
