"""A fuzzing harness for wspcap: mutated captures and generated conversations
run under the contract of :mod:`wspcap.errors` (a Capture, or a documented
WspcapError; no other exception, no hang, bounded memory).

- :mod:`.mutations`: the corpus and the mutation engine (seeded: a case is
  rebuilt from its seed alone);
- :mod:`.conversations`: hypothesis strategies for whole conversations;
- :mod:`.contract`: one case in a forked child, with a time and a memory limit;
- :mod:`.test_app_decoders`: the application decoders, fed mutated messages
  (their own contract: nothing escapes, the run and column paths give what
  ``receive`` gives);
- ``python -m tests.fuzz --minutes 30 --out fuzz-findings/``: the long mode
  (the decoders' tests too, a share of the time, with other seeds);
- ``test_fuzz.py`` (a bounded, seeded run), ``test_app_decoders.py`` and
  ``test_reproducers.py`` (every committed reproducer in ``reproducers/``)
  in the normal test run.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The test helpers in tests/golden are imported as the package ``golden``
# (as tests/conftest.py does), also when this package runs as ``python -m``.
_TESTS_DIR = str(Path(__file__).resolve().parent.parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)
