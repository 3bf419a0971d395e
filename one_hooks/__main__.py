"""``python -m one_hooks``: the same as the ``one-hooks`` command."""
import sys

from .cli import main

sys.exit(main())
