"""``python -m wspcap``: the command-line interface."""

import sys

from wspcap.cli import main

sys.exit(main())
