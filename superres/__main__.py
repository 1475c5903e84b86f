"""``python -m superres`` = the ``superres`` command."""

import sys

from superres.cli.main import main

sys.exit(main())
