"""Helpers of the end-to-end tests (imported as ``golden``; see tests/conftest.py).

- :mod:`golden.paths`: where the samples and the peers' corpus are;
- :mod:`golden.peers`: readers for Zeek baselines, Suricata rules and the
  tshark TSV files of the peers' corpus;
- :mod:`golden.truth`: compare a :class:`wspcap.Capture` with a sample's
  ``.truth.json`` (the sender's own record of what it sent);
- :mod:`golden.rfc6455`: a tiny WebSocket frame builder written from RFC 6455
  section 5.2, independent of :mod:`wspcap.ws`;
- :mod:`golden.crafted`: scapy-built captures for TCP and link-layer cases
  that real captures do not show; ``python tests/golden/crafted.py``
  regenerates the ``.pcap`` files kept next to it;
- :mod:`golden.live`: for the live tests that run real servers on loopback
  (whether a port listens, stopping a server's process group).
"""
