"""one-hooks-install: hook templates, planning, files, and the installer against the simulated oned.

The hook templates are checked against what a real oned 6.10.5 stored for
equivalent registrations (tests/data/install/). The installer runs in-process
into a temporary ``--root`` against the ``sim`` fixture (a real XML-RPC server),
and every claim is checked on the filesystem and in the sim's hook pool.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from one_hooks import config as config_mod
from one_hooks.config import Config
from one_hooks.install import check as install_check
from one_hooks.install import files
from one_hooks.install import hook_templates as ht
from one_hooks.install import main as install
from one_hooks.install.context import MANIFEST_NAME
from one_hooks.oned import template, xmlparse
from one_hooks.oned.model import Hook

DATA = Path(__file__).parent / "data" / "install"


def captured_pool() -> List[Hook]:
    return xmlparse.parse_hook_pool((DATA / "captured-hookpool-6.10.5.xml").read_bytes())


def as_ours(hook: Hook, spec: ht.HookSpec, config: Config) -> Hook:
    """A captured hook with only COMMAND and TIMEOUT made ours (the capture ran another script)."""
    tmpl = dict(hook.template)
    tmpl["COMMAND"] = spec.command
    tmpl["TIMEOUT"] = str(ht.timeout_for(spec, config))
    return dataclasses.replace(hook, name=spec.name, template=tmpl)


# --- hook templates vs what a real oned stores -------------------------------------


@pytest.mark.parametrize("captured_name, spec", [
    ("vm-unknown", ht.VM_UNKNOWN), ("vm-poweroff", ht.VM_POWEROFF), ("host-monitored", ht.HOST_RECONNECT)])
def test_stored_form_matches_what_real_oned_stored(captured_name: str, spec: ht.HookSpec) -> None:
    config = Config()
    hook = next(h for h in captured_pool() if h.name == captured_name)
    assert ht.differences(spec, config, as_ours(hook, spec, config).template) == []
    # and the raw capture differs exactly where it ran another command, with no TIMEOUT
    raw = ht.differences(spec, config, hook.template)
    assert len(raw) == 2 and raw[0].startswith("COMMAND is") and raw[1].startswith("TIMEOUT missing")


def test_on_unknown_is_stored_as_active_unknown() -> None:
    stored = ht.stored_form(ht.VM_UNKNOWN, Config())
    assert (stored["STATE"], stored["LCM_STATE"], stored["REMOTE"]) == ("ACTIVE", "UNKNOWN", "NO")
    assert "ON" not in stored and "NAME" not in stored and "TYPE" not in stored


def test_allocate_text_is_valid_template_syntax_with_every_attribute() -> None:
    config = Config()
    for spec in ht.HOOKS:
        parsed = dict(template.parse(ht.allocate_text(spec, config)).items())
        assert parsed == dict(ht.attributes(spec, config))
        assert parsed["ARGUMENTS_STDIN"] == "yes" and parsed["ARGUMENTS"] == "$TEMPLATE"
        assert parsed["COMMAND"] == f"one-hooks/{spec.shim}" and not parsed["COMMAND"].startswith("/")
        update = dict(template.parse(ht.update_text(spec, config)).items())
        # update repeats STATE and LCM_STATE (one.hook.update does not read ON) and no object attributes
        assert "ON" not in update and "NAME" not in update and "TYPE" not in update
        assert update["COMMAND"] == spec.command and update["STATE"]


def test_timeout_follows_the_configuration() -> None:
    base = Config()
    longer = dataclasses.replace(base, iscsi=dataclasses.replace(base.iscsi, deadline=1000.0))
    gate_off = dataclasses.replace(base, iscsi=dataclasses.replace(base.iscsi, check=False))
    r = base.recovery
    host = ht.timeout_for(ht.HOST_RECONNECT, base)
    assert host > r.settle_seconds + base.iscsi.deadline + r.wait_running
    assert ht.timeout_for(ht.HOST_RECONNECT, longer) == host + 700
    assert ht.timeout_for(ht.VM_UNKNOWN, gate_off) == ht.timeout_for(ht.VM_UNKNOWN, base) - 300
    # The hook that resumes a VM carries it through every attempt: each may wait wait_running,
    # with retry_delay (doubling) between them: 300 + 3 x 300 + 10 + 20 + 60 by default.
    assert ht.timeout_for(ht.VM_UNKNOWN, base) == 300 + 3 * 300 + 10 + 20 + 60
    one_more = dataclasses.replace(base, recovery=dataclasses.replace(r, attempts=4))
    assert ht.timeout_for(ht.VM_POWEROFF, one_more) == ht.timeout_for(ht.VM_POWEROFF, base) + 300 + 40
    assert host == ht.timeout_for(ht.VM_UNKNOWN, base) + r.settle_seconds
    # a changed deadline makes the registered hook differ, so re-install updates it
    stored = ht.stored_form(ht.VM_UNKNOWN, base)
    assert ht.differences(ht.VM_UNKNOWN, longer, stored) == [
        f"TIMEOUT is '{stored['TIMEOUT']}', want '{ht.timeout_for(ht.VM_UNKNOWN, longer)}'"]


def test_plan_install_keeps_foreign_hooks_and_collapses_duplicates() -> None:
    config = Config()
    pool = captured_pool()
    first = as_ours(next(h for h in pool if h.name == "vm-unknown"), ht.VM_UNKNOWN, config)
    first = dataclasses.replace(first, id=10)
    twin = dataclasses.replace(first, id=11)
    stale = dataclasses.replace(
        as_ours(next(h for h in pool if h.name == "host-monitored"), ht.HOST_RECONNECT, config),
        id=12, template={**first.template, "COMMAND": "old/path"})
    plan = ht.plan_install(pool + [first, twin, stale], config)
    kinds = {(a.kind, a.hook_id) for a in plan.actions}
    assert kinds == {("keep", 10), ("delete", 11), ("update", 12), ("allocate", -1)}
    touched = {a.hook_id for a in plan.changes}
    assert not touched & {h.id for h in pool}, "foreign hooks must never be touched"


def test_autostart_hooks_are_warned_about() -> None:
    text = 'NAME = autostart-host\nCOMMAND = autostart/host\nRESOURCE = HOST\nSTATE = MONITORED\n'
    tmpl = {k: v for k, v in template.parse(text).items() if isinstance(v, str)}
    autostart = Hook(7, "autostart-host", "state", tmpl)
    absolute = Hook(8, "as-vm", "state", {"COMMAND": "/var/lib/one/remotes/hooks/autostart/vm"})
    plan = ht.plan_install(captured_pool() + [autostart, absolute], Config())
    assert len(plan.warnings) == 2 and "ID 7" in plan.warnings[0] and "ID 8" in plan.warnings[1]
    assert not ht.plan_install(captured_pool(), Config()).warnings


# --- shims and small helpers ------------------------------------------------------------

SHIM = b"""#!/bin/sh
# a shim as the recovery issue writes them
PYTHON=@PYTHON@
if [ "$PYTHON" = "@PYTHON@" ]; then PYTHON=python3; fi
printf '%s\\n' "$PYTHON"
"""


def test_render_shim_replaces_only_the_assignment(tmp_path: Path) -> None:
    python = str(tmp_path / "dir with space" / "py'thon")
    rendered = files.render_shim(SHIM, python)
    assert rendered.count(b"@PYTHON@") == 1  # the fallback test is kept as written
    shim = tmp_path / "shim"
    shim.write_bytes(rendered)
    out = subprocess.run(["sh", str(shim)], capture_output=True, timeout=10, check=True).stdout
    assert out.decode().strip() == python
    assert files.shim_python(rendered) == python
    assert files.shim_python(SHIM) is None
    unreplaced = tmp_path / "raw"
    unreplaced.write_bytes(SHIM)
    out = subprocess.run(["sh", str(unreplaced)], capture_output=True, timeout=10, check=True).stdout
    assert out.decode().strip() == "python3"


@pytest.mark.parametrize("config", ["", "/srv/dir with space/it's.conf"])
def test_shipped_shims_export_the_configuration_they_carry(tmp_path: Path, config: str) -> None:
    """The real shims, rendered, run by sh: the interpreter gets $ONE_HOOKS_CONFIG set to the file (or left as is)."""
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\nprintf "%s|%s\\n" "${ONE_HOOKS_CONFIG-unset}" "$*"\n')
    fake.chmod(0o755)
    for name in ("host-reconnect", "vm-unknown", "vm-poweroff"):
        rendered = files.render_shim((Path(files.shipped_remotes()) / "hooks/one-hooks" / name).read_bytes(),
                                     str(fake), config)
        assert files.shim_config(rendered) == config and files.shim_python(rendered) == str(fake)
        shim = tmp_path / name
        shim.write_bytes(rendered)
        env = {k: v for k, v in os.environ.items() if k != "ONE_HOOKS_CONFIG"}
        out = subprocess.run(["sh", str(shim), "PAYLOAD"], capture_output=True, text=True, timeout=10,
                             env=env, check=True).stdout
        seen, argv = out.rstrip("\n").split("|")
        assert seen == (config or "unset") and argv.endswith(f"{name} PAYLOAD")


def test_sudo_list_argv() -> None:
    assert install_check.sudo_list_argv(["sudo", "-n", "iscsiadm"], "session") == \
        ["sudo", "-n", "-l", "iscsiadm", "-m", "session"]
    assert install_check.sudo_list_argv(["/usr/bin/sudo", "-u", "root", "/sbin/iscsiadm"], "node") == \
        ["/usr/bin/sudo", "-n", "-u", "root", "-l", "/sbin/iscsiadm", "-m", "node"]
    assert install_check.sudo_list_argv(["iscsiadm"], "node") is None
    # the gate's own arguments (sudoers rules match them): what --check asks about
    assert install_check.sudo_list_argv(["sudo", "-n", "iscsiadm"], "session", "-P", "3") == \
        ["sudo", "-n", "-l", "iscsiadm", "-m", "session", "-P", "3"]


def test_shipped_remotes_holds_the_shim_dir() -> None:
    source = files.shipped_remotes()
    assert os.path.isdir(os.path.join(source, "hooks", "one-hooks"))


def test_bad_arguments_exit_2_and_change_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert install.main(["--check", "--uninstall"]) == 2
    (tmp_path / "file").write_text("")
    assert install.main(["--root", str(tmp_path / "file" / "root")]) == 2
    assert f"--root {tmp_path / 'file' / 'root'}: cannot be created: {tmp_path / 'file'} is not a directory" \
        in capsys.readouterr().err
    (tmp_path / "file").unlink()
    assert install.main(["--root", str(tmp_path), "--check", "--dry-run"]) == 2
    assert list(tmp_path.iterdir()) == []


# --- the installer against the simulated oned, into a temporary --root ---------------------

import hashlib  # noqa: E402
import io  # noqa: E402
import shutil  # noqa: E402
import stat  # noqa: E402
import tempfile  # noqa: E402

from one_hooks.audit import Reporter  # noqa: E402
from one_hooks.cli import run_guarded  # noqa: E402
from one_hooks.oned.client import Oned  # noqa: E402

REMOTES = "var/lib/one/remotes"


class Site:
    """A front-end under a temporary root, its simulated oned, and how to run the installer there."""

    def __init__(self, sim, root: Path, tmp: Path) -> None:
        self.sim = sim
        self.root = root
        self.tmp = tmp
        self.env = {k: v for k, v in sim.env().items() if k != "ONE_HOOKS_CONFIG"}
        self.oned = Oned(sim.endpoint, sim.session)

    @property
    def remotes(self) -> Path:
        return self.root / REMOTES

    def run(self, *argv: str) -> "Run":
        args_list = ["--root", str(self.root), *argv]
        out = io.StringIO()
        err = io.StringIO()

        def body() -> int:
            args = install.build_parser().parse_args(args_list)
            return install.run(args, reporter=Reporter(out=out), environ=self.env)

        import contextlib
        with contextlib.redirect_stderr(err):
            code = run_guarded(body, install.PROGRAM)
        return Run(code, out.getvalue(), err.getvalue())

    def tree(self) -> Dict[str, tuple]:
        """Every path under the root: type, mode, content hash."""
        found: Dict[str, tuple] = {}
        for path in sorted(self.root.rglob("*")):
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
            found[str(path.relative_to(self.root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), digest)
        return found

    def hooks(self) -> Dict[int, tuple]:
        return {h.id: (h.name, h.type, tuple(sorted(h.template.items()))) for h in self.oned.hook_pool()}

    def ours(self) -> Dict[str, Hook]:
        return {h.name: h for h in self.oned.hook_pool() if h.name in ht.NAMES}


@dataclasses.dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def site(make_sim, tmp_path: Path) -> Site:
    root = tmp_path / "root"
    (root / REMOTES).mkdir(parents=True)
    sim = make_sim(remotes_dir=str(root / REMOTES))
    return Site(sim, root, tmp_path)


FOREIGN = 'NAME = "site-hook"\nTYPE = "state"\nCOMMAND = "site/thing"\nRESOURCE = "HOST"\nSTATE = "ERROR"\n'
AUTOSTART = ('NAME = "autostart-host"\nTYPE = "state"\nCOMMAND = "autostart/host"\nARGUMENTS = "$TEMPLATE"\n'
             'ARGUMENTS_STDIN = "yes"\nRESOURCE = "HOST"\nSTATE = "MONITORED"\n')


def test_fresh_install(site: Site) -> None:
    result = site.run()
    assert result.code == 0, result.err
    for shim in ("host-reconnect", "vm-unknown", "vm-poweroff"):
        path = site.remotes / "hooks" / "one-hooks" / shim
        assert stat.S_IMODE(path.stat().st_mode) == 0o755
        assert files.shim_python(path.read_bytes()) == sys.executable
    conf = site.root / "etc" / "one" / "one-hooks.conf"
    assert conf.read_text() == config_mod.default_file_text()
    manifest = json_of(site.root / "var/lib/one/one-hooks" / MANIFEST_NAME)
    assert set(manifest["files"]) >= {f"/{REMOTES}/hooks/one-hooks/vm-unknown"}
    ours = site.ours()
    assert set(ours) == set(ht.NAMES)
    assert manifest["hooks"] == {name: hook.id for name, hook in ours.items()}
    for spec in ht.HOOKS:
        assert ht.differences(spec, Config(), ours[spec.name].template) == []
    assert "left to do: copy the remotes to every node: run 'onehost sync --force'" in result.out


def json_of(path: Path) -> dict:
    import json
    return json.loads(path.read_text())


def test_reinstall_changes_nothing(site: Site) -> None:
    assert site.run().code == 0
    tree, hooks = site.tree(), site.hooks()
    calls = dict(site.sim.calls)
    result = site.run()
    assert result.code == 0
    assert "done: nothing to change, the installation is complete" in result.out
    assert "left to do" not in result.out
    assert site.tree() == tree and site.hooks() == hooks
    for method in ("one.hook.allocate", "one.hook.update", "one.hook.delete"):
        assert site.sim.calls.get(method, 0) == calls.get(method, 0), method


def test_changed_template_is_updated_in_place(site: Site) -> None:
    assert site.run().code == 0
    before = site.ours()
    hook = before["one-hooks-vm-unknown"]
    site.oned.hook_update(hook.id, 'COMMAND = "elsewhere/x"\nRESOURCE = "VM"\nSTATE = "ACTIVE"\n'
                                   'LCM_STATE = "UNKNOWN"\nEXTRA = "1"\n')
    # a changed configuration changes the TIMEOUTs too
    conf = site.root / "etc" / "one" / "one-hooks.conf"
    conf.write_text("[iscsi]\ndeadline = 600\n")
    result = site.run()
    assert result.code == 0, result.err
    assert f"update hook one-hooks-vm-unknown (ID {hook.id}): COMMAND is 'elsewhere/x'" in result.out
    after = site.ours()
    assert {n: h.id for n, h in after.items()} == {n: h.id for n, h in before.items()}
    config = config_mod.load(str(conf), site.env)
    for spec in ht.HOOKS:
        assert ht.differences(spec, config, after[spec.name].template) == [], spec.name
    assert after["one-hooks-vm-unknown"].template["TIMEOUT"] == str(ht.timeout_for(ht.VM_UNKNOWN, config))
    assert conf.read_text() == "[iscsi]\ndeadline = 600\n", "an existing config is never overwritten"


def test_foreign_hooks_untouched_and_autostart_warned(site: Site) -> None:
    foreign = site.sim.add_hook(FOREIGN)
    autostart = site.sim.add_hook(AUTOSTART)
    before = {i: h for i, h in site.hooks().items()}
    result = site.run()
    assert result.code == 0
    assert f"hook autostart-host (ID {autostart}) runs OpenNebula's autostart" in result.out
    assert site.hooks()[foreign] == before[foreign] and site.hooks()[autostart] == before[autostart]
    assert site.run("--uninstall").code == 0
    assert site.hooks() == before


def test_uninstall_removes_exactly_what_was_installed(site: Site) -> None:
    site.sim.add_hook(FOREIGN)
    (site.remotes / "im").mkdir()
    (site.remotes / "im" / "theirs.sh").write_text("#!/bin/sh\n")
    tree, hooks = site.tree(), site.hooks()
    assert site.run().code == 0
    assert site.tree() != tree
    result = site.run("--uninstall")
    assert result.code == 0, result.err
    assert site.tree() == tree
    assert site.hooks() == hooks
    assert "left to do: run 'onehost sync --force'" in result.out
    # a second uninstall finds nothing to do and still succeeds
    again = site.run("--uninstall")
    assert again.code == 0 and site.tree() == tree


def test_files_belong_to_oneadmin_when_root(site: Site) -> None:
    import pwd

    if os.getuid() != 0:
        pytest.skip("ownership is only given when running as root")
    try:
        admin = pwd.getpwnam("oneadmin")
    except KeyError:
        pytest.skip("no oneadmin user on this machine (OpenNebula is not installed here)")
    assert site.run().code == 0
    for shim in (site.remotes / "hooks/one-hooks").iterdir():
        assert (shim.stat().st_uid, shim.stat().st_gid) == (admin.pw_uid, admin.pw_gid)
    conf = (site.root / "etc/one/one-hooks.conf").stat()
    assert (conf.st_uid, conf.st_gid, stat.S_IMODE(conf.st_mode)) == (0, admin.pw_gid, 0o640)


def test_check_without_any_config_names_it_and_still_checks_the_rest(site: Site) -> None:
    result = site.run("--check")
    assert result.code == 1
    assert "problem: configuration: /etc/one/one-hooks.conf: missing" in result.out
    assert f"ok: oned 6.10.5 at {site.sim.endpoint}" in result.out
    assert "problem: hook one-hooks-vm-unknown: not registered" in result.out


def test_check_says_once_that_the_log_goes_to_stderr_without_its_directory(site: Site) -> None:
    assert site.run().code == 0
    lines = site.run("--check").out.splitlines()
    said = [line for line in lines if "/var/log/one does not exist" in line]
    assert said == ["warning: [log] file /var/log/one/one-hooks.log: /var/log/one does not exist: one-hooks "
                    "logs to stderr instead (a hook's lines stay in onehook show); create it, owned by "
                    "oneadmin, or set [log] file"]
    (site.root / "var/log/one").mkdir(parents=True)
    assert not any("does not exist" in line for line in site.run("--check").out.splitlines())


def test_uninstall_keeps_an_edited_config(site: Site) -> None:
    assert site.run().code == 0
    conf = site.root / "etc" / "one" / "one-hooks.conf"
    conf.write_text("[recovery]\npolicy = opt-in\n")
    result = site.run("--uninstall")
    assert result.code == 0
    assert conf.read_text() == "[recovery]\npolicy = opt-in\n"
    assert "/etc/one/one-hooks.conf: kept (edited since installation)" in result.out


def test_dry_run_changes_nothing(site: Site) -> None:
    site.sim.add_hook(FOREIGN)
    tree, hooks = site.tree(), site.hooks()
    result = site.run("--dry-run")
    assert result.code == 0, result.err
    assert site.tree() == tree and site.hooks() == hooks
    for line in ("would write the default configuration /etc/one/one-hooks.conf",
                 f"would install /{REMOTES}/hooks/one-hooks/host-reconnect (mode 0755)"):
        assert line in result.out
    for name in ht.NAMES:
        assert f"would register hook {name}: not registered" in result.out
    # each file it would write is shown as the diff it would make, under its installed path
    lines = result.out.splitlines()
    shim = f"/{REMOTES}/hooks/one-hooks/vm-unknown"
    assert lines[lines.index(f"+++ {shim}") - 1] == "--- /dev/null"
    assert f"+PYTHON={sys.executable}" in lines
    assert "+++ /etc/one/one-hooks.conf" in lines and "+[recovery]" in lines
    assert f"+++ /{REMOTES}/vmm/kvm/one-hooks-qemu" in lines
    assert "+++ /var/lib/one/one-hooks/install-manifest.json" in lines
    assert not any(str(site.root) in line for line in lines), "paths as the installed system sees them"
    # installed, then a dry-run uninstall: nothing moves either
    assert site.run().code == 0
    tree, hooks = site.tree(), site.hooks()
    result = site.run("--uninstall", "--dry-run")
    assert result.code == 0 and "would delete" in result.out and "would remove" in result.out
    assert site.tree() == tree and site.hooks() == hooks
    # a changed file: only the lines that change
    conf = site.root / "etc" / "one" / "one-hooks.conf"
    conf.write_text(conf.read_text().replace("# max_parallel = 8", "max_parallel = 4"))
    shim = site.remotes / "hooks/one-hooks/vm-unknown"
    shim.write_bytes(shim.read_bytes().replace(b"exec ", b"exec  "))
    result = site.run("--dry-run")
    lines = result.out.splitlines()
    assert result.code == 0 and f"would update /{REMOTES}/hooks/one-hooks/vm-unknown (mode 0755)" in lines
    changed = [line for line in lines if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert len(changed) == 2 and changed[0].startswith("-exec  ") and changed[1].startswith("+exec ")


def test_failure_half_way_names_the_step_and_a_rerun_finishes(site: Site) -> None:
    site.sim.inject("one.hook.allocate", kind="error", code=0x4000, count=1,
                    message="[one.hook.allocate] Error allocating a new hook.")
    result = site.run()
    assert result.code == 1
    assert "one-hooks-install: error: register hook one-hooks-host-reconnect: not registered: oned:" in result.err
    assert "Error allocating a new hook" in result.err
    # the files were complete before any hook was registered
    for shim in ("host-reconnect", "vm-unknown", "vm-poweroff"):
        assert (site.remotes / "hooks" / "one-hooks" / shim).exists()
    assert site.ours() == {}
    result = site.run()
    assert result.code == 0 and set(site.ours()) == set(ht.NAMES)
    assert site.run("--check", "--node-remotes", str(site.remotes)).code == 0


def test_interrupted_file_copy_can_be_undone_or_finished(site: Site) -> None:
    (site.remotes / "hooks/one-hooks").mkdir(parents=True)
    tree, hooks = site.tree(), site.hooks()
    # an obstacle where the last shim goes: that write fails after the first ones succeeded
    obstacle = site.remotes / "hooks/one-hooks/vm-unknown"
    obstacle.mkdir()
    (obstacle / "x").write_text("")
    result = site.run()
    assert result.code == 1
    assert result.err.startswith(f"one-hooks-install: error: install /{REMOTES}/hooks/one-hooks/vm-unknown")
    assert (site.remotes / "hooks/one-hooks/host-reconnect").exists()
    assert site.hooks() == hooks, "no hook is registered before every file is in place"
    shutil.rmtree(obstacle)
    # the manifest already named every file: uninstall takes the half-installation away
    assert site.run("--uninstall").code == 0
    assert site.tree() == tree
    # and a plain re-run after an interruption finishes the job
    obstacle.mkdir()
    assert site.run().code == 1
    obstacle.rmdir()
    assert site.run().code == 0
    assert site.run("--check", "--node-remotes", str(site.remotes)).code == 0


def test_oned_unreachable_writes_nothing(site: Site) -> None:
    """Preflight: everything that can fail is asked before the first write; a half install is never left."""
    write_conf(site, extra="[oned]\nretries = 0\n")  # no retry waits in a unit test
    tree = site.tree()
    site.env["ONE_XMLRPC"] = "http://127.0.0.1:9/RPC2"
    result = site.run()
    assert result.code == 1
    assert "problem: oned at http://127.0.0.1:9/RPC2 cannot be reached: " in result.out
    assert result.err == "one-hooks-install: error: preflight: 1 problem(s) found before any change; " \
                         "nothing was written\n"
    assert site.tree() == tree


def test_preflight_names_every_problem_at_once(site: Site, tmp_path: Path) -> None:
    write_conf(site, extra="[recovery]\nstate_dir = /var/lib/obstacle/state\n")
    (site.root / "var/lib/obstacle").write_text("a file where a directory must go\n")
    (site.root / "srv").write_text("another file\n")
    site.env["ONE_AUTH"] = str(tmp_path / "wrong_auth")
    (tmp_path / "wrong_auth").write_text("oneadmin:wrong-password\n")
    tree, hooks = site.tree(), site.hooks()
    result = site.run("--remotes", "/srv/remotes")
    assert result.code == 1, result.out + result.err
    problems = [line for line in result.out.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 3, problems
    assert any("refused the credentials" in p for p in problems)
    assert any(p.startswith("problem: /srv/remotes: cannot be created: /srv is not a directory") for p in problems)
    assert "problem: /var/lib/obstacle/state: cannot be created: /var/lib/obstacle is not a directory " \
           "([recovery] state_dir)" in problems
    assert "preflight: 3 problem(s)" in result.err
    assert site.tree() == tree and site.hooks() == hooks


def test_a_missing_root_is_created(site: Site, tmp_path: Path) -> None:
    root = tmp_path / "new" / "root"
    dry = site.run("--root", str(root), "--dry-run")
    assert dry.code == 0, dry.out + dry.err
    assert f"would create the --root directory {root}" in dry.out and not (tmp_path / "new").exists()
    assert not any(str(root) in line for line in dry.out.splitlines() if "--root" not in line)
    result = site.run("--root", str(root))
    assert result.code == 0, result.out + result.err
    assert (root / REMOTES / "hooks/one-hooks/vm-unknown").is_file()


def test_preflight_refuses_an_oned_too_old(site: Site) -> None:
    site.sim.sim.version = "5.12.0"
    tree = site.tree()
    result = site.run()
    assert result.code == 1
    assert "problem: oned 5.12.0 at" in result.out and "one-hooks needs OpenNebula 6.x or 7.x" in result.out
    assert site.tree() == tree and site.ours() == {}


def test_uninstall_with_oned_down_removes_what_is_local_and_names_the_hooks_left(site: Site) -> None:
    write_conf(site, extra="[oned]\nretries = 0\n")
    conf = site.root / "etc/one/one-hooks.conf"
    before = {k: v for k, v in site.tree().items() if not k.startswith("etc")}
    assert site.run().code == 0
    ids = {name: hook.id for name, hook in site.ours().items()}
    endpoint = site.env["ONE_XMLRPC"]
    site.env["ONE_XMLRPC"] = "http://127.0.0.1:9/RPC2"
    result = site.run("--uninstall")
    assert result.code == 1, result.out + result.err
    assert not (site.remotes / "hooks/one-hooks/vm-unknown").exists()
    for name, hook_id in ids.items():
        assert f"left to do: hook {name} (ID {hook_id}) is still registered: run 'onehook delete {hook_id}' " \
               "as oneadmin" in result.out
    assert "or re-run 'one-hooks-install --uninstall' once oned answers" in result.out
    assert "oned at http://127.0.0.1:9/RPC2 cannot be reached" in result.err
    assert set(site.ours()) == set(ht.NAMES), "the hooks are still in oned"
    # oned is back: the re-run removes the hooks and the manifest that remembered them
    site.env["ONE_XMLRPC"] = endpoint
    again = site.run("--uninstall")
    assert again.code == 0, again.out + again.err
    assert site.ours() == {}
    assert {k: v for k, v in site.tree().items() if not k.startswith("etc")} == before
    assert conf.exists()


def test_uninstall_with_credentials_refused_removes_nothing(site: Site, tmp_path: Path) -> None:
    assert site.run().code == 0
    tree = site.tree()
    site.env["ONE_AUTH"] = str(tmp_path / "wrong_auth")
    (tmp_path / "wrong_auth").write_text("oneadmin:wrong-password\n")
    result = site.run("--uninstall")
    assert result.code == 1
    assert "refused the credentials" in result.err and "nothing was removed" in result.err
    assert site.tree() == tree and set(site.ours()) == set(ht.NAMES)


# --- --check catches each broken piece --------------------------------------------------


def write_conf(site: Site, node_command: str = "env ONE_HOOKS_NODE={host}", extra: str = "") -> None:
    conf = site.root / "etc" / "one" / "one-hooks.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(f'[node]\ncommand = "{node_command}"\n[iscsi]\niscsiadm = sudo -n iscsiadm\n{extra}')


@pytest.fixture
def installed(site: Site) -> Iterator[Site]:
    """An installed site with one monitored host whose 'node' is this machine (argv prefix 'env ...')."""
    write_conf(site)
    site.sim.add_host("node-1")
    assert site.run().code == 0
    # the node's copy of the remotes, as 'onehost sync' would leave it
    # outside pytest's 0700 tmp dir, so the 'nobody' node of the sudo test can read it too
    node = Path(tempfile.mkdtemp(prefix="one-hooks-node-"))
    node.chmod(0o755)
    site.node_remotes = node / "remotes"
    shutil.copytree(site.remotes, site.node_remotes)
    yield site
    shutil.rmtree(node)


def check(site: Site) -> Run:
    return site.run("--check", "--node-remotes", str(site.node_remotes))


def test_check_passes_on_a_complete_installation(installed: Site) -> None:
    if os.getuid() != 0:
        pytest.skip("the sudo check needs root here (no sudoers rule for this user)")
    result = check(installed)
    assert result.code == 0, result.out
    assert "problem:" not in result.out
    assert "ok: host node-1: remotes in sync" in result.out
    assert "ok: host node-1: sudo allows iscsiadm" in result.out
    assert f"ok: shims run {sys.executable} with one_hooks" in result.out


def _remove_shim(s: Site) -> None:
    (s.remotes / "hooks/one-hooks/vm-poweroff").unlink()


def _chmod_shim(s: Site) -> None:
    (s.remotes / "hooks/one-hooks/vm-unknown").chmod(0o644)


def _bad_python(s: Site) -> None:
    for shim in (s.remotes / "hooks/one-hooks").iterdir():
        shim.write_bytes(files.render_shim(
            (Path(files.shipped_remotes()) / "hooks/one-hooks" / shim.name).read_bytes(), "/nonexistent/python3"))


def _delete_hook(s: Site) -> None:
    s.oned.hook_delete(s.ours()["one-hooks-host-reconnect"].id)


def _change_hook(s: Site) -> None:
    hook = s.ours()["one-hooks-vm-poweroff"]
    s.oned.hook_update(hook.id, "\n".join(f'{k} = "{v}"' for k, v in {**hook.template, "TIMEOUT": "5"}.items()))


def _bad_config(s: Site) -> None:
    (s.root / "etc/one/one-hooks.conf").write_text("[recovery]\nmax_parallel = many\n")


def _oned_down(s: Site) -> None:
    s.env["ONE_XMLRPC"] = "http://127.0.0.1:9/RPC2"
    write_conf(s, extra="[oned]\nretries = 0\n")  # no retry waits in a unit test


def _node_stale(s: Site) -> None:
    (s.node_remotes / "hooks/one-hooks/host-reconnect").write_text("#!/bin/sh\nexit 0\n")


def _node_down(s: Site) -> None:
    write_conf(s, node_command="/nonexistent/ssh {host}")


def _sudo_refused(s: Site) -> None:
    write_conf(s, node_command="setpriv --reuid=65534 --regid=65534 --clear-groups env ONE_HOOKS_NODE={host}")


def _no_manifest(s: Site) -> None:
    (s.root / "var/lib/one/one-hooks" / MANIFEST_NAME).unlink()


@pytest.mark.parametrize("breakage, expected", [
    (_remove_shim, f"problem: /{REMOTES}/hooks/one-hooks/vm-poweroff: missing"),
    (_chmod_shim, f"problem: /{REMOTES}/hooks/one-hooks/vm-unknown: mode 0644, want 0755"),
    (_bad_python, "problem: shims cannot run: no such program: /nonexistent/python3"),
    (_delete_hook, "problem: hook one-hooks-host-reconnect: not registered"),
    (_change_hook, "differs: TIMEOUT is '5'"),
    (_bad_config, "problem: configuration: "),
    (_oned_down, "problem: oned at http://127.0.0.1:9/RPC2 not reachable"),
    (_node_stale, "problem: host node-1: out of sync"),
    (_node_down, "problem: host node-1: cannot check its remotes"),
    (_sudo_refused, "problem: host node-1: sudo does not allow 'iscsiadm -m session' without a password"),
    (_no_manifest, "problem: not installed: no manifest"),
], ids=lambda v: getattr(v, "__name__", "")[1:] or None)
def test_check_names_each_broken_piece(installed: Site, breakage, expected: str) -> None:
    breakage(installed)
    result = check(installed)
    assert result.code == 1
    assert expected in result.out, result.out
    assert result.out.rstrip().endswith("problem(s)")


# --- --cpu-host and --sync ------------------------------------------------------------------


def test_cpu_host_native_and_its_revert(site: Site) -> None:
    from one_hooks.cpu import conf_patch

    conf = site.root / "etc/one/vmm_exec/vmm_exec_kvm.conf"
    conf.parent.mkdir(parents=True)
    original = (DATA / "vmm_exec_kvm-6.8.3.conf").read_bytes()
    conf.write_bytes(original)
    conf.chmod(0o640)
    dry = site.run("--cpu-host", "--dry-run")
    assert dry.code == 0 and conf.read_bytes() == original
    lines = dry.out.splitlines()
    assert "+++ /etc/one/vmm_exec/vmm_exec_kvm.conf" in lines
    assert '+CPU_MODEL = [ MODEL = "host-passthrough" ]' in lines
    result = site.run("--cpu-host")
    assert result.code == 0, result.err
    assert conf_patch.state_of(conf.read_text()).native
    assert "left to do: restart oned so it re-reads vmm_exec_kvm.conf" in result.out
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640
    again = site.run("--cpu-host=native")
    assert again.code == 0 and "already in place" in again.out and "restart oned" not in again.out
    assert site.run("--check", "--node-remotes", str(site.remotes)).code == 0
    dry = site.run("--uninstall", "--dry-run")
    assert dry.code == 0 and '-CPU_MODEL = [ MODEL = "host-passthrough" ]' in dry.out.splitlines()
    assert "would revert the CPU switch in /etc/one/vmm_exec/vmm_exec_kvm.conf" in dry.out
    result = site.run("--uninstall")
    assert result.code == 0, result.err
    assert conf.read_bytes() == original


def test_cpu_host_wrapper_and_its_revert(site: Site) -> None:
    from one_hooks.cpu import conf_patch, wrapper

    conf = site.root / "etc/one/vmm_exec/vmm_exec_kvm.conf"
    conf.parent.mkdir(parents=True)
    original = (DATA / "vmm_exec_kvm-6.8.3.conf").read_bytes()
    conf.write_bytes(original)
    write_conf(site, extra="[cpu]\nargument = \"host,arch-capabilities=off\"\n")
    tree = site.tree()
    result = site.run("--cpu-host=wrapper")
    assert result.code == 0, result.err
    state = conf_patch.state_of(conf.read_text())
    assert state.emulator == "/var/tmp/one/vmm/kvm/one-hooks-qemu" and not state.native
    installed = site.remotes / "vmm/kvm/one-hooks-qemu"
    assert installed.read_bytes() == Path(wrapper.shipped_wrapper()).read_bytes()
    settings = wrapper.installed_settings(str(site.remotes))
    assert settings is not None and settings.cpu == "host,arch-capabilities=off"
    assert tuple(settings.qemu) == wrapper.DEFAULT_CANDIDATES
    # re-install: the settings stay as they are although EMULATOR now names the wrapper
    again = site.run("--cpu-host=wrapper")
    assert again.code == 0 and "done: nothing to change" in again.out
    assert site.run("--check").code == 0
    conf.write_bytes(original)  # someone reverted the switch by hand: --check says so
    broken = site.run("--check")
    assert broken.code == 1
    assert "problem: CPU switch: /etc/one/vmm_exec/vmm_exec_kvm.conf EMULATOR is None" in broken.out
    assert site.run("--cpu-host=wrapper").code == 0
    assert site.run("--uninstall").code == 0
    assert conf.read_bytes() == original
    assert site.tree() == tree


def test_sync_runs_what_is_left(site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a stand-in 'onehost' at the process boundary: records its argv like the CLI would receive it.
    # As root the installer runs it as oneadmin (onehost refuses root): oneadmin must reach both.
    shared = Path(tempfile.mkdtemp(prefix="one-hooks-sync-"))
    shared.chmod(0o777)
    bin_dir = shared / "bin"
    bin_dir.mkdir()
    bin_dir.chmod(0o755)
    record = shared / "onehost.argv"
    (bin_dir / "onehost").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> "{record}"\n')
    (bin_dir / "onehost").chmod(0o755)
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\nprintf "systemctl %s\\n" "$*" >> "{record}"\n')
    (bin_dir / "systemctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    result = site.run("--sync")
    assert result.code == 0, result.err
    assert record.read_text() == "sync\n--force\n"
    assert "copy the remotes to every node: onehost sync --force" in result.out
    assert "left to do" not in result.out
    # nothing changed: nothing to sync
    record.unlink()
    assert site.run("--sync").code == 0 and not record.exists()
    # a changed driver config also needs oned restarted
    conf = site.root / "etc/one/vmm_exec/vmm_exec_kvm.conf"
    conf.parent.mkdir(parents=True)
    conf.write_bytes((DATA / "vmm_exec_kvm-6.8.3.conf").read_bytes())
    result = site.run("--sync", "--cpu-host")
    assert result.code == 0, result.err
    assert record.read_text() == "systemctl restart opennebula\n"
    shutil.rmtree(shared, ignore_errors=True)
