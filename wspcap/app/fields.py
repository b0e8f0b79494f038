"""An event's ``fields`` as the JSON text of the ``app`` table's ``fields`` column.

No I/O. :func:`fields_text` is the one spelling: the decoders' column fast path
(:meth:`~wspcap.app.base.Decoder.receive_columns`) writes it as the events are
made, the table writes it for the events of the other paths. :class:`Texts`
holds the text of many rows as one buffer, as a compiled loop writes it;
:class:`Strings` the same with None for some rows (an event's channel or
id), and :class:`Coded` names given by their index in a few (an event's kind).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

import msgspec
import numpy as np

__all__ = ["Coded", "Strings", "Texts", "fields_text", "refuse_float"]

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


class _Column:
    """What the column types here share: each reads as the list of the
    values it stands for, and equals that list (it is no key: a buffer may
    change, as a list)."""

    __slots__ = ()

    def __len__(self) -> int:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Column | list | tuple):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self)!r})"


class _Buffered(_Column):
    """Text of consecutive rows as one UTF-8 buffer: ``data``, and ``ends``,
    where each row's text ends in it (int64, ascending)."""

    __slots__ = ("data", "ends")

    def __init__(self, data: bytes | bytearray, ends: np.ndarray) -> None:
        self.data = data
        self.ends = ends

    @property
    def offsets(self) -> np.ndarray:
        """Where each row's text starts, then where the last ends (int64, one
        more than the rows: Arrow's offsets)."""
        return np.concatenate((np.zeros(1, np.int64), self.ends))

    def __len__(self) -> int:
        return len(self.ends)

    def _text(self, i: int) -> str:
        """Row ``i``'s text (negative from the end; IndexError out of the rows)."""
        n = len(self.ends)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"{type(self).__name__} index out of range")
        start = int(self.ends[i - 1]) if i else 0
        return bytes(self.data[start:int(self.ends[i])]).decode()


class Texts(_Buffered, Sequence[str]):
    """The ``fields`` text of consecutive rows, as one UTF-8 buffer (see
    :class:`_Buffered`). What the compiled JSON-RPC loop writes (no ``str``
    made for a row: the table makes its Arrow column of the buffer as it
    is); read as the sequence of the texts it stands for.
    """

    __slots__ = ()

    @classmethod
    def join(cls, pieces: Sequence[Texts | str]) -> Texts:
        """Texts and single texts, one after the other, as one :class:`Texts`
        (a text that is not valid UTF-8 raises ``UnicodeEncodeError``)."""
        datas: list[bytes | bytearray] = []
        ends: list[np.ndarray] = []
        base = 0
        for piece in pieces:
            if isinstance(piece, Texts):
                datas.append(piece.data)
                ends.append(piece.ends + base)
                base += len(piece.data)
            else:
                text = piece.encode()
                datas.append(text)
                base += len(text)
                ends.append(np.array([base], np.int64))
        return cls(b"".join(datas), np.concatenate(ends) if ends else np.zeros(0, np.int64))

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self._text(j) for j in range(*i.indices(len(self)))]
        return self._text(i)

    def __iter__(self) -> Iterator[str]:
        return (self._text(i) for i in range(len(self)))


class Strings(_Buffered, Sequence[str | None]):
    """Strings of consecutive rows, None for some, as one UTF-8 buffer (see
    :class:`_Buffered`), and ``valid`` (bool, False for None, whose text is
    empty). What the compiled JSON-RPC loop writes for an event's channel
    and id (the table makes its Arrow column of the buffers as they are);
    read as the sequence of the strings it stands for.
    """

    __slots__ = ("valid",)

    def __init__(self, data: bytes | bytearray, ends: np.ndarray, valid: np.ndarray) -> None:
        super().__init__(data, ends)
        self.valid = valid

    def _value(self, i: int) -> str | None:
        text = self._text(i)
        return text if self.valid[i] else None

    @overload
    def __getitem__(self, i: int) -> str | None: ...
    @overload
    def __getitem__(self, i: slice) -> list[str | None]: ...
    def __getitem__(self, i: int | slice) -> str | None | list[str | None]:
        if isinstance(i, slice):
            return [self._value(j) for j in range(*i.indices(len(self)))]
        return self._value(i)

    def __iter__(self) -> Iterator[str | None]:
        return (self._value(i) for i in range(len(self)))


class Coded(_Column, Sequence[str]):
    """Names of consecutive rows given by their index in ``names``:
    ``codes`` (an integer array). What the compiled JSON-RPC loop writes for
    an event's kind (the table codes its categories from the few names)."""

    __slots__ = ("codes", "names")

    def __init__(self, codes: np.ndarray, names: Sequence[str]) -> None:
        self.codes = codes
        self.names = tuple(names)

    def __len__(self) -> int:
        return len(self.codes)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self.names[c] for c in self.codes[i].tolist()]
        return self.names[int(self.codes[i])]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tolist())

    def present(self) -> set[str]:
        """The names the rows have (not each row's)."""
        if len(self.names) == 1:  # (a run's protocol: no pass over the rows)
            return {self.names[0]} if len(self.codes) else set()
        return {self.names[c] for c in np.unique(self.codes).tolist()}

    def tolist(self) -> list[str]:
        """The names, as a list."""
        return np.array(self.names, dtype=object)[self.codes].tolist()  # type: ignore[no-any-return]
