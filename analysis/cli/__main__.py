"""``python -m analysis.cli``: the ``ehp`` command."""

import sys

from .app import main

sys.exit(main())
