"""``python -m adaaug.cli``: the same as ``python -m adaaug`` and the ``adaaug`` command."""
import sys

from . import main

sys.exit(main())
