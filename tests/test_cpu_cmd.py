"""``one-hooks cpu ...`` end to end: the real CLI on real files, scopes against the simulated oned."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from one_hooks import cli
from one_hooks.cpu import migration, scope as scope_mod, wrapper as wrapper_mod
from one_hooks.oned.model import Host, HostState
from one_hooks.oned.template import parse

DATA = Path(__file__).parent / "data" / "vmm_exec_kvm"
NODE_WRAPPER = "/var/tmp/one/vmm/kvm/one-hooks-qemu"


@pytest.fixture
def setup(tmp_path: Path):
    conf = tmp_path / "vmm_exec_kvm.conf"
    shutil.copy(DATA / "6.8.3.conf", conf)
    os.chmod(conf, 0o640)
    remotes = tmp_path / "remotes"
    cfg = tmp_path / "one-hooks.conf"
    cfg.write_text(f"[cpu]\nconf = {conf}\nargument = \"host,arch-capabilities=off\"\n"
                   f"[log]\nfile = {tmp_path / 'log'}\n")
    return conf, remotes, cfg


def main(cfg: Path, *argv: str) -> int:
    return cli.main(["--config", str(cfg), "cpu", *argv])


def test_native_enable_disable_file(setup, capsys) -> None:
    conf, remotes, cfg = setup
    original = conf.read_bytes()
    assert main(cfg, "enable", "--mode", "native", "--dry-run") == 0
    assert conf.read_bytes() == original
    assert main(cfg, "enable", "--mode", "native") == 0
    out = capsys.readouterr().out
    assert "restart oned" in out and "poweroff + resume" in out
    assert parse(conf.read_text()).get("CPU_MODEL") == {"MODEL": "host-passthrough"}
    assert main(cfg, "enable", "--mode", "native") == 0
    assert "already in place" in capsys.readouterr().out
    assert main(cfg, "status", "--remotes", str(remotes)) == 0
    assert "switch in the file: native" in capsys.readouterr().out
    assert main(cfg, "disable") == 0
    assert conf.read_bytes() == original


def test_dry_runs_show_the_diff_they_would_make_in_the_conditional(setup, capsys) -> None:
    conf, remotes, cfg = setup
    original = conf.read_bytes()
    assert main(cfg, "enable", "--mode", "native", "--dry-run") == 0
    out = capsys.readouterr().out.splitlines()
    assert conf.read_bytes() == original
    assert f"--- {conf}" in out and f"+++ {conf}" in out
    assert '+CPU_MODEL = [ MODEL = "host-passthrough" ]' in out
    assert not any(line.startswith("-") and not line.startswith("---") for line in out), "nothing removed"
    assert any(line.startswith("@@ ") for line in out)
    assert main(cfg, "enable", "--mode", "native") == 0
    capsys.readouterr()
    switched = conf.read_bytes()
    assert main(cfg, "disable", "--dry-run") == 0
    out = capsys.readouterr().out
    assert conf.read_bytes() == switched
    assert "would restore" in out and "byte for byte" in out and "restored" not in out
    assert '-CPU_MODEL = [ MODEL = "host-passthrough" ]' in out.splitlines()
    assert "and remove the backup" in out
    # the wrapper mode's dry run shows the EMULATOR line and the wrapper files it would write
    assert main(cfg, "disable") == 0
    assert main(cfg, "enable", "--mode", "wrapper", "--dry-run", "--remotes", str(remotes)) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"+EMULATOR = \"{NODE_WRAPPER}\"" in out or f"+EMULATOR = {NODE_WRAPPER}" in out
    assert f"+++ {wrapper_mod.settings_path(str(remotes))}" in out and "+CPU=host,arch-capabilities=off" in out
    assert f"+++ {wrapper_mod.wrapper_path(str(remotes))}" in out
    assert not remotes.exists() and conf.read_bytes() == original


def test_wrapper_enable_installs_and_points_emulator(setup, capsys) -> None:
    conf, remotes, cfg = setup
    original = conf.read_bytes()
    assert main(cfg, "enable", "--mode", "wrapper", "--remotes", str(remotes)) == 0
    out = capsys.readouterr().out
    assert "onehost sync" in out
    assert parse(conf.read_text()).get("EMULATOR") == NODE_WRAPPER
    settings = wrapper_mod.installed_settings(str(remotes))
    assert settings is not None and settings.cpu == "host,arch-capabilities=off"
    assert settings.qemu == wrapper_mod.DEFAULT_CANDIDATES
    assert os.access(wrapper_mod.wrapper_path(str(remotes)), os.X_OK)
    assert main(cfg, "status", "--remotes", str(remotes)) == 0
    assert "switch in the file: wrapper" in capsys.readouterr().out
    assert main(cfg, "disable") == 0
    assert conf.read_bytes() == original


def test_wrapper_keeps_the_previous_emulator_as_the_real_one(setup) -> None:
    conf, remotes, cfg = setup
    conf.write_text(conf.read_text() + "EMULATOR = /usr/bin/kvm-custom\n")
    assert main(cfg, "enable", "--mode", "wrapper", "--remotes", str(remotes)) == 0
    settings = wrapper_mod.installed_settings(str(remotes))
    assert settings is not None and settings.qemu[0] == "/usr/bin/kvm-custom"
    # enabling again (EMULATOR is the wrapper now) keeps the real emulator
    assert main(cfg, "enable", "--mode", "wrapper", "--remotes", str(remotes), "--cpu", "max") == 0
    settings = wrapper_mod.installed_settings(str(remotes))
    assert settings is not None and settings.qemu[0] == "/usr/bin/kvm-custom" and settings.cpu == "max"
    assert main(cfg, "disable") == 0
    assert parse(conf.read_text()).get("EMULATOR") == "/usr/bin/kvm-custom"


def test_broken_conf_exits_2_untouched(setup, capsys) -> None:
    conf, remotes, cfg = setup
    conf.write_text("OS = [ ARCH = x86_64,\n")
    assert main(cfg, "enable", "--mode", "native") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{conf}:2:1" in err
    assert conf.read_text() == "OS = [ ARCH = x86_64,\n"


def test_bad_scope_exits_2(setup, capsys) -> None:
    _, _, cfg = setup
    assert main(cfg, "enable", "--mode", "native", "--scope", "vm:3") == 2


# --- cluster and host scopes through the API (simulated oned) --------------------------


@pytest.fixture
def api_cfg(sim, setup) -> Path:
    _, _, cfg = setup
    cfg.write_text(cfg.read_text() + f"[oned]\nendpoint = {sim.endpoint}\nauth_file = {sim.auth_file}\n")
    return cfg


def cluster_template(sim, cluster_id: int):
    from one_hooks.oned.client import Oned
    oned = Oned(sim.endpoint, sim.session)
    return scope_mod.template_from_xml(oned.template_xml("cluster", cluster_id))


def test_cluster_scope_enable_then_disable_restores(sim, api_cfg, capsys) -> None:
    cid = sim.add_cluster("kvm-a", {"RESERVED_CPU": "10"})
    assert main(api_cfg, "enable", "--mode", "native", "--scope", f"cluster:{cid}", "--dry-run") == 0
    out = capsys.readouterr().out.splitlines()
    assert f"cluster {cid}: would set CPU_MODEL = [ MODEL = \"host-passthrough\" ] (dry run: nothing sent " \
           "to oned); its template would change:" in out
    assert '+CPU_MODEL = [ MODEL = "host-passthrough" ]' in out and ' RESERVED_CPU = "10"' in out
    assert cluster_template(sim, cid).get("CPU_MODEL") is None
    assert main(api_cfg, "enable", "--mode", "native", "--scope", f"cluster:{cid}") == 0
    tmpl = cluster_template(sim, cid)
    assert tmpl.get("CPU_MODEL") == {"MODEL": "host-passthrough"}
    assert tmpl.get("RESERVED_CPU") == "10"
    assert main(api_cfg, "enable", "--mode", "native", "--scope", f"cluster:{cid}") == 0
    assert "nothing to change" in capsys.readouterr().out
    assert main(api_cfg, "disable", "--scope", f"cluster:{cid}", "--dry-run") == 0
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith(f"cluster {cid}: would remove CPU_MODEL") for line in out)
    assert '-CPU_MODEL = [ MODEL = "host-passthrough" ]' in out
    assert main(api_cfg, "disable", "--scope", f"cluster:{cid}") == 0
    tmpl = cluster_template(sim, cid)
    assert dict(tmpl.items()) == {"RESERVED_CPU": "10"}


def test_host_scope_wrapper_restores_a_previous_emulator(sim, api_cfg, tmp_path) -> None:
    hid = sim.add_host("node-1", 0, {"EMULATOR": "/usr/bin/qemu-old"})
    from one_hooks.oned.client import Oned
    oned = Oned(sim.endpoint, sim.session)
    assert main(api_cfg, "enable", "--mode", "wrapper", "--scope", f"host:{hid}",
                "--remotes", str(tmp_path / "r")) == 0
    tmpl = scope_mod.template_from_xml(oned.template_xml("host", hid))
    assert tmpl.get("EMULATOR") == NODE_WRAPPER
    assert main(api_cfg, "disable", "--scope", f"host:{hid}") == 0
    tmpl = scope_mod.template_from_xml(oned.template_xml("host", hid))
    assert tmpl.get("EMULATOR") == "/usr/bin/qemu-old"
    assert not any(n.startswith(scope_mod.UNDO_PREFIX) for n, _ in tmpl.items())


def test_scope_plans_are_pure() -> None:
    current = parse('CPU_MODEL = [ MODEL = "EPYC" ]\n')
    plan = scope_mod.plan_enable(current, "CPU_MODEL", {"MODEL": "host-passthrough"})
    assert plan.append and parse(plan.text or "").get("ONE_HOOKS_CPU_UNDO_CPU_MODEL") == '=[ MODEL = "EPYC" ]'
    after = parse(current.text)
    for name, value in parse(plan.text or "").items():
        after.set(name, value)
    undo = scope_mod.plan_disable(after, ["CPU_MODEL", "EMULATOR"])
    assert not undo.append and parse(undo.text or "").items() == [("CPU_MODEL", {"MODEL": "EPYC"})]


# --- check-migration ------------------------------------------------------------------


def host(hid: int, cluster: int, model: str, models: str, features: str) -> Host:
    return Host(hid, f"node-{hid}", HostState.MONITORED, HostState.MONITORED, cluster_id=cluster,
                template={"KVM_CPU_MODEL": model, "KVM_CPU_MODELS": models, "KVM_CPU_FEATURES": features})


ROME = "qemu64 kvm64 Opteron_G1 Opteron_G2 EPYC EPYC-IBPB EPYC-Rome"
MILAN = ROME + " EPYC-Milan"


def test_check_migration_pure() -> None:
    reports = migration.check([
        host(0, 100, "EPYC-Rome", ROME, "vme,ss"), host(1, 100, "EPYC-Rome", ROME, "vme,ss"),
        host(2, 101, "EPYC-Rome", ROME, "vme,ss"), host(3, 101, "EPYC-Milan", MILAN, "vme,ss,pku"),
    ])
    assert [r.safe for r in reports] == [True, False]
    unsafe = reports[1]
    assert unsafe.common_model == "EPYC-Rome"
    text = "\n".join(unsafe.lines())
    assert "EPYC-Milan on node-3" in text and "node-3 has features the others lack: pku" in text
    assert migration.check([host(0, 5, "", "", "")])[0].safe is False
    assert migration.common_model([migration.HostCpu(0, "a", 0, "x", ("a", "b"), frozenset()),
                                   migration.HostCpu(1, "b", 0, "y", ("c",), frozenset())]) is None


def test_check_migration_cli(sim, api_cfg, capsys) -> None:
    sim.add_host("rome", 0, {"KVM_CPU_MODEL": "EPYC-Rome", "KVM_CPU_MODELS": ROME, "KVM_CPU_FEATURES": "vme"})
    sim.add_host("milan", 0, {"KVM_CPU_MODEL": "EPYC-Milan", "KVM_CPU_MODELS": MILAN, "KVM_CPU_FEATURES": "vme"})
    assert main(api_cfg, "check-migration") == 1
    out = capsys.readouterr().out
    assert "UNSAFE" in out and "newest model common to all hosts: EPYC-Rome" in out


def test_verify_checks_the_mode_the_driver_file_is_in(tmp_path: Path) -> None:
    from one_hooks.commands import cpu as cmd
    from one_hooks.cpu import conf_patch

    conf = tmp_path / "vmm_exec_kvm.conf"
    shutil.copy(DATA / "6.8.3.conf", conf)
    assert cmd._mode_in_file(str(conf)) == "native"  # no wrapper: what a native switch (or none) leaves
    conf.write_text(conf_patch.set_emulator(conf.read_text(), wrapper_mod.node_emulator(wrapper_mod.NODE_REMOTES)))
    assert cmd._mode_in_file(str(conf)) == "wrapper"
