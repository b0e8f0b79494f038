"""Names shared by every floor above the layers, declared once."""

#: A connection's two directions: client to server, server to client.
C2S, S2C = "c2s", "s2c"
DIRECTIONS = (C2S, S2C)
