"""Names shared by every floor, declared once."""

__version__ = "0.1.0"

#: A connection's two directions: client to server, server to client.
C2S, S2C = "c2s", "s2c"
DIRECTIONS = (C2S, S2C)
