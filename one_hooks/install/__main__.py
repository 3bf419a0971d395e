"""``python -m one_hooks.install``: the same as the ``one-hooks-install`` command."""
import sys

from .main import main

sys.exit(main())
