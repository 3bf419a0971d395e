"""The README and --help stay in step with the code."""
from __future__ import annotations

from pathlib import Path

from one_hooks import config
from one_hooks.cli import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_first_lines_are_the_two_commands_ci_runs() -> None:
    block = README.split("```sh", 1)[1].split("```", 1)[0].strip().splitlines()
    assert len(block) == 2
    assert "one-hooks simulate" in block[0]
    test_command = block[1].split("#")[0].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command.split("&&", 1)[1].strip() in ci
    assert "dev-setup.sh" in ci


def test_readme_configuration_reference_is_the_generated_one() -> None:
    for section, key, default, help_text in config.reference():
        row = f"| `[{section}]` | `{key}` | `{default}` | {help_text} |"
        assert row in README, f"README lacks the current row for [{section}] {key}"


def test_readme_names_every_subcommand() -> None:
    for name in COMMANDS:
        assert f"one-hooks {name}" in README
