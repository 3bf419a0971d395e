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
from typing import Dict, List

import pytest

from one_hooks import config as config_mod
from one_hooks import hook_templates as ht
from one_hooks import install, template, xmlparse
from one_hooks.config import Config
from one_hooks.model import Hook

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
    rendered = install.render_shim(SHIM, python)
    assert rendered.count(b"@PYTHON@") == 1  # the fallback test is kept as written
    shim = tmp_path / "shim"
    shim.write_bytes(rendered)
    out = subprocess.run(["sh", str(shim)], capture_output=True, timeout=10, check=True).stdout
    assert out.decode().strip() == python
    assert install.shim_python(rendered) == python
    assert install.shim_python(SHIM) is None
    unreplaced = tmp_path / "raw"
    unreplaced.write_bytes(SHIM)
    out = subprocess.run(["sh", str(unreplaced)], capture_output=True, timeout=10, check=True).stdout
    assert out.decode().strip() == "python3"


def test_sudo_list_argv() -> None:
    assert install.sudo_list_argv(["sudo", "-n", "iscsiadm"], "session") == \
        ["sudo", "-n", "-l", "iscsiadm", "-m", "session"]
    assert install.sudo_list_argv(["/usr/bin/sudo", "-u", "root", "/sbin/iscsiadm"], "node") == \
        ["/usr/bin/sudo", "-n", "-u", "root", "-l", "/sbin/iscsiadm", "-m", "node"]
    assert install.sudo_list_argv(["iscsiadm"], "node") is None


def test_shipped_remotes_holds_the_shim_dir() -> None:
    source = install.shipped_remotes()
    assert os.path.isdir(os.path.join(source, "hooks", "one-hooks"))


def test_bad_arguments_exit_2_and_change_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert install.main(["--check", "--uninstall"]) == 2
    assert install.main(["--root", str(tmp_path / "absent")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert install.main(["--root", str(tmp_path), "--check", "--dry-run"]) == 2
    assert list(tmp_path.iterdir()) == []
