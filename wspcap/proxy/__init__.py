"""Proxy tunnels at the start of a connection: the SOCKS handshake (an HTTP
proxy's CONNECT is HTTP: :mod:`wspcap.http.messages`)."""

from wspcap.proxy.socks import SocksHandshake, looks_like_socks

__all__ = ["SocksHandshake", "looks_like_socks"]
