"""one-hooks-install and the fourth hook: host-error only with ``[evacuate] enabled = yes``.

Planning is checked against a hook pool a real oned 6.10.5 answered
(tests/data/install/), the installer in-process into a temporary ``--root``
against the simulated oned (the ``site`` fixture of test_install).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from one_hooks.config import Config
from one_hooks.install import hook_templates as ht
from one_hooks.oned import template
from one_hooks.oned.model import Hook
from tests.test_install import Site, captured_pool, site  # noqa: F401 (site: the fixture)

ENABLED = dataclasses.replace(Config(), evacuate=dataclasses.replace(Config().evacuate, enabled=True))
FT = ('NAME = "host-error-ft"\nTYPE = "state"\nCOMMAND = "ft/host_error.rb"\nARGUMENTS = "$TEMPLATE -m -p 5"\n'
      'ARGUMENTS_STDIN = "yes"\nRESOURCE = "HOST"\nSTATE = "ERROR"\n')


def ft_hook(hook_id: int = 40) -> Hook:
    return Hook(hook_id, "host-error-ft", "state",
                {k: v for k, v in template.parse(FT).items() if isinstance(v, str) and k not in ("NAME", "TYPE")})


def test_host_error_is_wanted_only_when_enabled_and_its_template() -> None:
    assert ht.wanted(Config()) == ht.HOOKS
    assert ht.wanted(ENABLED) == ht.HOOKS + (ht.HOST_ERROR,)
    parsed = dict(template.parse(ht.allocate_text(ht.HOST_ERROR, ENABLED)).items())
    assert (parsed["RESOURCE"], parsed["STATE"], parsed["COMMAND"]) == ("HOST", "ERROR", "one-hooks/host-error")
    assert (parsed["ARGUMENTS"], parsed["ARGUMENTS_STDIN"], parsed["REMOTE"]) == ("$TEMPLATE", "yes", "no")
    ev, r = ENABLED.evacuate, ENABLED.recovery
    # inline (no watcher) it waits out the grace, fences and carries a tier: TIMEOUT covers that
    assert int(parsed["TIMEOUT"]) > ev.grace + ev.fence_timeout * 2 + ev.confirm_timeout + r.wait_running
    assert ht.spec_named("one-hooks-host-error") is ht.HOST_ERROR


def test_plan_registers_it_when_enabled_and_deletes_it_when_not() -> None:
    pool = captured_pool()
    plan = ht.plan_install(pool, ENABLED)
    assert ("allocate", "one-hooks-host-error") in {(a.kind, a.spec.name) for a in plan.actions}
    registered = Hook(50, ht.HOST_ERROR.name, "state", ht.stored_form(ht.HOST_ERROR, ENABLED))
    plan = ht.plan_install(pool + [registered], Config())
    deleted = [a for a in plan.actions if a.spec is ht.HOST_ERROR]
    assert [(a.kind, a.hook_id, a.reasons) for a in deleted] == [("delete", 50, ("[evacuate] enabled = no",))]
    assert ht.check_problems(pool + [registered], Config())[-1] == (
        "hook one-hooks-host-error (ID 50) is registered but [evacuate] enabled = no: "
        "it would evacuate failed hosts anyway")
    assert [a.kind for a in ht.plan_uninstall(pool + [registered]).actions] == ["delete"]


def test_ft_host_error_rb_is_warned_about_and_a_check_problem_only_with_evacuation_on() -> None:
    pool = captured_pool() + [ft_hook()]
    assert not ht.plan_install(pool, Config()).warnings
    assert not [p for p in ht.check_problems(pool, Config()) if "host_error.rb" in p]
    warned = ht.plan_install(pool, ENABLED).warnings
    assert len(warned) == 1 and "hook host-error-ft (ID 40) runs OpenNebula's ft/host_error.rb" in warned[0]
    assert "'onehook delete 40'" in warned[0]
    assert warned[0] in ht.check_problems(pool, ENABLED)


def test_install_and_check_against_the_sim(site: Site) -> None:  # noqa: F811 (the fixture)
    conf = site.root / "etc" / "one" / "one-hooks.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("[evacuate]\nenabled = yes\n")
    site.sim.add_hook(FT)
    result = site.run()
    assert result.code == 0, result.err
    assert "warning: hook host-error-ft" in result.out and "ft/host_error.rb" in result.out
    ours = {h.name: h for h in site.oned.hook_pool() if h.name.startswith("one-hooks-")}
    assert set(ours) == set(ht.NAMES) | {ht.HOST_ERROR.name}
    assert ht.differences(ht.HOST_ERROR, site_config(conf), ours[ht.HOST_ERROR.name].template) == []
    assert (site.remotes / "hooks" / "one-hooks" / "host-error").exists()
    check = site.run("--check")
    assert check.code == 1
    assert "problem: [evacuate] enabled = yes but fence or fence_check is empty" in check.out
    assert "problem: hook host-error-ft" in check.out
    # evacuation off again: the next install removes the hook, and only ours
    conf.write_text("")
    assert site.run().code == 0
    names = {h.name for h in site.oned.hook_pool()}
    assert ht.HOST_ERROR.name not in names and "host-error-ft" in names


def site_config(conf: Path) -> Config:
    from one_hooks import config as config_mod
    return config_mod.load(str(conf), environ={})
