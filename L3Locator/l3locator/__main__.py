"""``python -m l3locator``: the same as the ``l3locator`` command."""

import sys

from .cli import main

sys.exit(main())
