"""The README and --help stay in step with the code."""
from __future__ import annotations

import re
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


def test_readme_layout_is_the_folder_tree() -> None:
    """The Development block names every folder of one_hooks, and each folder's modules (sim/'s are its own)."""
    block = README.split("## Development", 1)[1].split("```", 2)[1]
    lines = {line.split()[0]: line for line in block.strip().splitlines()}
    package = ROOT / "one_hooks"
    for part in ("vmm_wrappers/", "remotes/", "tests/", "bench/", "one_hooks/"):
        assert part in lines, f"README's layout lacks {part}"
    parts = {"one_hooks/": package}
    parts.update({f"{init.parent.name}/": init.parent for init in package.glob("*/__init__.py")})
    for name, folder in sorted(parts.items()):
        assert name in lines, f"README's layout lacks one_hooks/{name}"
        if name == "sim/":
            continue
        for module in sorted(folder.glob("*.py")):
            if module.stem != "__init__" and not (module.stem == "__main__" and folder != package):
                assert re.search(rf"(^|[\s,(]){module.stem}\b", lines[name][len(name):]), \
                    f"README's layout line for {name} does not name {module.name}"
