"""An event's ``fields`` as the JSON text of the ``app`` table's ``fields`` column.

No I/O. :func:`fields_text` is the one spelling: the decoders' column fast path
(:meth:`~wspcap.app.base.Decoder.receive_columns`) writes it as the events are
made, the table writes it for the events of the other paths.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import msgspec

__all__ = ["fields_text", "refuse_float"]

#: The ``fields`` text: compact, non-ASCII as it is, ``repr`` of what JSON has not.
_FIELDS_TEXT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=repr).encode


def refuse_float(text: str) -> Any:
    """A msgspec ``float_hook`` that refuses floats (msgspec spells some of
    them otherwise than the standard library)."""
    raise ValueError("a float")


#: Reads back msgspec's text, refusing floats (msgspec spells some of them
#: otherwise: ``1e16`` for ``1e+16``, ``0.00001`` for ``1e-05``).
_CHECK = msgspec.json.Decoder(float_hook=refuse_float)


def fields_text(fields: Mapping[str, Any]) -> str:
    """``fields`` as JSON text, as :data:`_FIELDS_TEXT` spells it.

    msgspec writes it ten times faster; its text is kept when it reads back
    equal to ``fields`` with no float in it: then nothing msgspec and the
    standard library spell differently was in it (strings are escaped the
    same way, integers are written the same; a tuple, bytes, a NaN, a
    non-string key or a type msgspec knows and JSON does not read back as
    something else). Otherwise the standard library writes it.
    """
    if type(fields) is dict:
        try:
            text = msgspec.json.encode(fields)
            if _CHECK.decode(text) == fields:
                return text.decode()
        except Exception:  # noqa: BLE001, S110 - the standard library says what it is
            pass
    try:
        return _FIELDS_TEXT(fields)
    except (TypeError, ValueError, RecursionError):
        return json.dumps({"unserializable": repr(fields)[:200]})
