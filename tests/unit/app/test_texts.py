"""Texts: many rows' ``fields`` text in one buffer (what the compiled JSON-RPC
loop writes), read as the texts it stands for, joined, and made the ``app``
table's Arrow column as it is."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wspcap.app.base import AppEvent, EventColumns
from wspcap.app.fields import Coded, Texts
from wspcap.tables.app import _texts

TEXTS = st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=8), max_size=12)


def texts_of(values: list[str]) -> Texts:
    """``values`` as a Texts, made as the compiled loop makes one."""
    data = "".join(values).encode()
    ends = np.cumsum([len(v.encode()) for v in values], dtype=np.int64)
    return Texts(bytearray(data), ends)


@given(TEXTS, TEXTS, TEXTS)
def test_texts_read_join_and_become_arrow(a: list[str], b: list[str], c: list[str]) -> None:
    joined = Texts.join([texts_of(a), *b, texts_of(c)])
    want = a + b + c
    assert list(joined) == want and joined == want and len(joined) == len(want)
    assert joined[1:3] == want[1:3]
    if want:
        assert joined[-1] == want[-1]
    assert joined.offsets[0] == 0 and joined.offsets[-1] == len(joined.data)
    column = _texts([texts_of(a), b, joined])
    column.validate(full=True)
    assert column.to_pylist() == a + b + want


def test_texts_bounds_and_not_utf8() -> None:
    texts = texts_of(["x", "é"])
    with pytest.raises(IndexError):
        texts[2]
    assert texts[-2] == "x"
    with pytest.raises(UnicodeEncodeError):
        Texts.join([texts, "\ud800"])


@given(TEXTS, TEXTS, st.booleans())
def test_event_columns_keep_texts_or_a_list(a: list[str], b: list[str], add_between: bool
                                            ) -> None:
    """Texts extended by texts stay one buffer; an event added by itself
    makes the fields a list, in order, from then on."""
    cols = EventColumns()
    cols.extend(list(range(len(a))), range(len(a)), ["c2s"] * len(a), "jsonrpc",
                ["request"] * len(a), [None] * len(a), [None] * len(a), texts_of(a))
    want: list[object] = list(a)
    if add_between:
        event = AppEvent(0, "c2s", "jsonrpc", "event", fields={"k": 1})
        cols.add(len(a), [event])
        want.append({"k": 1})
    cols.extend(list(range(len(b))), range(len(b)), ["c2s"] * len(b), "jsonrpc",
                ["request"] * len(b), [None] * len(b), [None] * len(b), texts_of(b))
    want += b
    assert type(cols.fields) is (list if add_between else Texts)
    assert list(cols.fields) == want and len(cols.fields) == len(cols.kind)
    assert pa.types.is_large_string(_texts([cols.fields]).type)


@given(st.lists(st.integers(0, 2), max_size=20), st.sampled_from([("a",), ("a", "b", "c")]))
def test_coded_present_is_the_names_the_rows_have(codes: list[int], names: tuple[str, ...]
                                                  ) -> None:
    codes = [c % len(names) for c in codes]
    coded = Coded(np.array(codes, np.uint8), names)
    assert coded.present() == set(coded.tolist()) == {names[c] for c in codes}
