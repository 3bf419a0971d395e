"""``one-hooks config``: the configuration reference, the defaults, a check."""
from __future__ import annotations

import argparse

from .. import config as config_mod
from ..config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``config``'s options."""
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--reference", action="store_true",
                      help="print every option with its default and meaning (Markdown table)")
    what.add_argument("--defaults", action="store_true",
                      help="print a commented configuration file holding every default")
    what.add_argument("--check", action="store_true",
                      help="validate the configuration file (the default action)")


def run(args: argparse.Namespace, config: Config) -> int:
    """Print what was asked for."""
    if args.reference:
        print("| section | key | default | meaning |")
        print("|---|---|---|---|")
        for section, key, default, help_text in config_mod.reference():
            print(f"| `[{section}]` | `{key}` | `{default}` | {help_text} |")
    elif args.defaults:
        print(config_mod.default_file_text(), end="")
    else:
        where = config.path or "(no file: built-in defaults)"
        print(f"configuration OK: {where}")
    return 0
