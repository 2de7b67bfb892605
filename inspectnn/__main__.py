"""``python -m inspectnn``: the same as the ``inspectnn`` command."""

import sys

from inspectnn.cli import main

sys.exit(main())
