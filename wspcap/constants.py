"""Names shared by every floor, declared once."""

import os

__version__ = "0.1.0"

#: A connection's two directions: client to server, server to client.
C2S, S2C = "c2s", "s2c"
DIRECTIONS = (C2S, S2C)

#: Whether the optional compiled kernels (``wspcap/*/_speedups.c``) are used
#: where they are built; ``WSPCAP_NO_SPEEDUPS=1`` keeps to their pure-Python
#: references (the tests compare the two).
SPEEDUPS = not os.environ.get("WSPCAP_NO_SPEEDUPS")
