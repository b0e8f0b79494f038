"""The Python API as a notebook user meets it (issue 15 items 16 and 17).

- The categorical columns (``code``, ``severity``, ``direction``, message
  ``type``) have one dtype for every capture, taken from the catalog and RFC
  6455, so the tables of several captures concatenate with ``pd.concat`` and
  stay categorical, on every path that makes tables: :func:`wspcap.read`,
  the writer of ``analyze -o`` (Arrow, read back from Parquet), the merge of
  :func:`wspcap.read_many` and the live path.
- ``wspcap.catalog()`` is the catalog as a DataFrame, and ``dir(wspcap)``
  lists the public API only.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pandas as pd

import wspcap
from wspcap.api.live import Sniffer
from wspcap.rules.registry import RULES, SEVERITIES
from wspcap.sources import open_capture
from wspcap.ws.frames import opcode_name

ROOT = Path(__file__).resolve().parents[1]
ANOMALIES = ROOT / "samples" / "anomalies"
#: Two captures whose anomalies have different codes, one of them with
#: messages of reserved opcodes (types ``unknown-0x3`` and ``unknown-0xb``).
TWO = [ANOMALIES / "ws-reserved-opcode.pcap", ANOMALIES / "tcp-gap.pcap"]
#: The dtypes, as documented (README, "The tables").
CODE = pd.CategoricalDtype(sorted(RULES))
SEVERITY = pd.CategoricalDtype(list(SEVERITIES), ordered=True)
DIRECTION = pd.CategoricalDtype(["c2s", "s2c"])
MESSAGE_TYPE = pd.CategoricalDtype(
    ["text", "binary", "close", "ping", "pong", "continuation"]
    + [f"unknown-0x{op:x}" for op in (*range(3, 8), *range(11, 16))])
#: The categorical columns and their dtypes, per table.
CATEGORICALS = {
    "frames": {"direction": DIRECTION},
    "messages": {"direction": DIRECTION, "type": MESSAGE_TYPE},
    "anomalies": {"direction": DIRECTION, "code": CODE, "severity": SEVERITY},
}


def _same_dtype(got: object, want: pd.CategoricalDtype) -> bool:
    """Same categories in the same order, and the same orderedness."""
    return (isinstance(got, pd.CategoricalDtype) and got.ordered == want.ordered
            and list(got.categories) == list(want.categories))


def _assert_fixed_dtypes(tables: dict[str, pd.DataFrame]) -> None:
    for table, df in tables.items():
        for name, want in CATEGORICALS[table].items():
            got = df[name].dtype
            assert _same_dtype(got, want), (table, name, got)


def _tables(cap: wspcap.Capture) -> dict[str, pd.DataFrame]:
    return {t: getattr(cap, t) for t in CATEGORICALS}


# -- item 16: one dtype for every capture -------------------------------------------------


def test_the_two_captures_differ() -> None:
    """The premise: their codes and message types are not the same."""
    caps = [wspcap.read(p) for p in TWO]
    codes = [set(c.anomalies.code.astype(str)) for c in caps]
    assert codes[0] - codes[1] and codes[1] - codes[0]
    assert {"unknown-0x3", "unknown-0xb"} <= set(caps[0].messages.type.astype(str))
    assert not {"unknown-0x3", "unknown-0xb"} & set(caps[1].messages.type.astype(str))


def test_concat_of_two_captures_stays_categorical() -> None:
    caps = [wspcap.read(p) for p in TWO]
    for table in CATEGORICALS:
        both = pd.concat([getattr(c, table) for c in caps], ignore_index=True)
        _assert_fixed_dtypes({table: both})
    anomalies = pd.concat([c.anomalies for c in caps], ignore_index=True)
    assert set(anomalies.code.astype(str)) == set().union(
        *(set(c.anomalies.code.astype(str)) for c in caps))
    assert anomalies.severity.max() in ("warning", "error")  # still ordered


def test_dtypes_are_the_catalogs() -> None:
    from wspcap.tables import schema as tables

    catalog = wspcap.catalog()
    assert sorted(catalog.code.astype(str)) == list(CODE.categories)
    assert _same_dtype(catalog.code.dtype, CODE) and _same_dtype(tables.CODE, CODE)
    assert _same_dtype(catalog.severity.dtype, SEVERITY) and _same_dtype(tables.SEVERITY,
                                                                          SEVERITY)
    assert _same_dtype(tables.MESSAGE_TYPE, MESSAGE_TYPE)
    # Every opcode's name is a category: a reserved one never becomes NaN.
    assert set(MESSAGE_TYPE.categories) == {opcode_name(op) for op in range(16)}


def test_every_registered_code_is_a_category() -> None:
    """Codes registered anywhere in the package (after every module is
    imported) are in CODE: a code declared after ``wspcap.tables.schema`` was
    imported would come out of the tables as NaN."""
    for module in pkgutil.walk_packages(wspcap.__path__, "wspcap."):
        if module.name not in ("wspcap.__main__", "wspcap.sources.live"):
            importlib.import_module(module.name)
    from wspcap.tables.schema import CODE as made

    assert set(RULES) == set(made.categories)


def test_empty_capture_has_the_same_dtypes() -> None:
    cap = wspcap.from_packets([], source="nothing")
    _assert_fixed_dtypes(_tables(cap))


def test_parquet_round_trip(tmp_path: Path) -> None:
    """``Capture.to_parquet`` and ``analyze_to`` (the Arrow writer of
    ``analyze -o``) give files that read back with the same dtypes."""
    cap = wspcap.read(TWO[0])
    cap.to_parquet(tmp_path / "whole")
    wspcap.analyze_to(TWO[0], tmp_path / "streamed", "parquet")
    for folder in ("whole", "streamed"):
        back = {t: pd.read_parquet(tmp_path / folder / f"{t}.parquet") for t in CATEGORICALS}
        _assert_fixed_dtypes(back)
        assert list(back["messages"].type) == list(cap.messages.type)
        assert list(back["anomalies"].code) == list(cap.anomalies.code)


def test_read_many_and_shards_keep_the_dtypes() -> None:
    files = [str(p) for p in TWO]
    _assert_fixed_dtypes(_tables(wspcap.read_many(files, scheduler="sync")))
    # One file cut into shards and merged again.
    _assert_fixed_dtypes(_tables(wspcap.read_many(files, scheduler="sync", split_large=1)))


def test_dataset_of_many_captures_reads_back_with_the_dtypes(tmp_path: Path) -> None:
    """``wspcap analyze A B -o DIR``: one Parquet part per file, read back whole."""
    from wspcap.api.many import analyze_many

    analyze_many([str(p) for p in TWO], tmp_path, "parquet", scheduler="sync")
    _assert_fixed_dtypes({t: pd.read_parquet(tmp_path / t) for t in CATEGORICALS})


def test_live_path_keeps_the_dtypes() -> None:
    with open_capture(TWO[0]) as records:
        sniffer = Sniffer(source=records)
        list(sniffer)
        cap = sniffer.capture()
    assert len(cap.anomalies)
    _assert_fixed_dtypes(_tables(cap))


# -- item 17: the catalog, and what dir(wspcap) shows -------------------------------------


def test_catalog_is_a_table_of_every_rule() -> None:
    catalog = wspcap.catalog()
    assert list(catalog.columns) == ["code", "severity", "reference", "summary", "meaning",
                                     "peers", "detail", "close_code"]
    assert list(catalog.code.astype(str)) == list(RULES)  # catalog order, by layer
    for row in catalog.astype(object).where(catalog.notna(), None).to_dict("records"):
        rule = RULES[row["code"]].as_dict()
        assert row == {name: rule[name] for name in row}
    assert catalog.close_code.dtype == "UInt16"
    assert catalog.close_code.notna().any()
    # The anomalies table joins to it on code.
    cap = wspcap.read(TWO[0])
    joined = cap.anomalies.merge(catalog[["code", "summary"]], on="code", how="left")
    assert joined.summary.notna().all()


def test_catalog_is_documented() -> None:
    assert "wspcap.catalog()" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert wspcap.catalog.__doc__ and "close_code" in wspcap.catalog.__doc__


def test_dir_shows_the_public_api_only() -> None:
    names = dir(wspcap)
    assert "catalog" in names
    assert not {"Any", "TYPE_CHECKING", "annotations", "importlib", "_LAZY"} & set(names)
    assert names == sorted(wspcap.__all__)
    for name in names:
        assert getattr(wspcap, name) is not None, name
