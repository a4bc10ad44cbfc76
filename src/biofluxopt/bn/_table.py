"""Reading and checking the tables ``bn learn`` learns from.

Labels are read verbatim: ``None``, ``NA`` or ``null`` are states like any other, and only
empty cells are missing (plus whatever the caller lists in ``na_values``). Everything a
learner would silently misread is refused with one line naming the file, column and line:
duplicated column names (pandas would rename the second ``diet`` to ``diet.1``), columns
without a name, duplicated identifiers, non-finite numbers, negative values of quantities that
cannot be negative, and columns that mix numbers with text.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from biofluxopt._util import DataError

from ._discretise import COHORT_TO_NODE, LITERATURE_CUTOFFS, MAX_STATES

ID_COLUMNS: tuple[str, ...] = ("patient_id",)
"""Identifier columns: never a node; their values must be unique."""

_SHOWN = 5


def non_negative_columns() -> frozenset[str]:
    """Names (cohort column or node) of the quantities that cannot be negative.

    Every unit-bearing cohort column of :data:`COHORT_TO_NODE` (concentrations, intakes,
    doses, stores, fluxes, age) and its node name, the variables with literature cut-offs, and
    the relative abundance of every taxon of the knowledge base (``taxa.toml``) and ``other``.
    """
    from biofluxopt.knowledge import load_taxa

    names = set(COHORT_TO_NODE) | set(COHORT_TO_NODE.values()) | set(LITERATURE_CUTOFFS)
    names |= {t.id for t in load_taxa()} | {"other"}
    return frozenset(names)


def _sep(path: Path) -> str:
    return "\t" if path.suffix.lower() in {".tsv", ".tab", ".txt"} else ","


def _shown(items: list) -> str:
    text = ", ".join(str(i) for i in items[:_SHOWN])
    return text + (f" … ({len(items)} in all)" if len(items) > _SHOWN else "")


def _where(word: str, rows: list) -> str:
    """``"line 4"`` or ``"lines 4, 9"``."""
    return f"{word}{'s' if len(rows) > 1 else ''} {_shown(rows)}"


def _header(path: Path, sep: str) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return next(csv.reader(fh, delimiter=sep), [])
    except UnicodeDecodeError as exc:
        raise DataError(
            f"not a UTF-8 text table (undecodable byte at offset {exc.start})", source=path
        ) from exc
    except csv.Error as exc:
        raise DataError(f"cannot parse the header row: {exc}", source=path) from exc


def read_table(path: str | Path, *, na_values: Iterable[str] = ()) -> pd.DataFrame:
    """Read a CSV (or ``.tsv``/``.tab``/``.txt``: tab-separated) table for ``bn learn``.

    Parameters
    ----------
    path : str or Path
        The table; rows = people or samples, first row = column names.
    na_values : iterable of str, optional
        Cell texts that mean "missing" besides the empty cell (``--na-values``).

    Returns
    -------
    pandas.DataFrame
        The table, with NaN for missing cells; the index is the file's line number of each
        row (the header is line 1), so messages can point at lines.

    Raises
    ------
    DataError
        One line naming the file (and column/line): missing, unreadable or empty file, a
        parse error, duplicated or empty column names, and every problem of
        :func:`check_table`.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError("is a directory, not a table", source=path)
    if not path.is_file():
        raise DataError("no such file", source=path)
    sep = _sep(path)
    header = _header(path, sep)
    if not header or all(not h.strip() for h in header):
        raise DataError("the table is empty (no header row)", source=path)
    unnamed = [i + 1 for i, h in enumerate(header) if not h.strip()]
    if unnamed:
        raise DataError(f"column(s) {_shown(unnamed)} have no name in the header", source=path)
    seen: dict[str, int] = {}
    duplicated = []
    for i, name in enumerate(header):
        if name in seen:
            duplicated.append(f"{name!r} (columns {seen[name] + 1} and {i + 1})")
        seen.setdefault(name, i)
    if duplicated:
        raise DataError(f"duplicated column names: {_shown(duplicated)}", source=path)
    try:
        table = pd.read_csv(
            path,
            sep=sep,
            keep_default_na=False,
            na_values=["", *na_values],
            encoding="utf-8-sig",
        )
    except pd.errors.EmptyDataError as exc:
        raise DataError("the table is empty", source=path) from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot parse the table: {message}", source=path) from exc
    if table.shape[0] == 0:
        raise DataError(f"the table is empty ({table.shape[1]} columns, no rows)", source=path)
    table.index = pd.RangeIndex(2, 2 + len(table))
    check_table(table, source=str(path), row_word="line")
    return table


def check_table(
    table: pd.DataFrame,
    *,
    source: str = "<table>",
    row_word: str = "row",
    non_negative: Callable[[str], bool] | None = None,
) -> None:
    """Refuse what a learner would silently misread; one :class:`DataError` line each.

    * a column whose every cell is empty;
    * a duplicated identifier (:data:`ID_COLUMNS`);
    * ``inf`` / ``-inf`` in a numeric column;
    * a negative value in a column that cannot be negative (:func:`non_negative_columns`);
    * a column that mixes numbers and text, e.g. ``NA`` among numbers (the message says to
      list such texts in ``--na-values`` if they mean "missing").

    Parameters
    ----------
    table : pandas.DataFrame
        Rows = people, columns = variables (NaN = missing).
    source : str
        The file name, for messages.
    row_word : str, default="row"
        How rows are named in messages with their index label (``"line"`` when the index is
        the file's line number, as :func:`read_table` sets it).
    non_negative : callable, optional
        ``column -> bool``; default: membership in :func:`non_negative_columns`.
    """
    if non_negative is None:
        names = non_negative_columns()
        non_negative = names.__contains__
    dup_names = table.columns[table.columns.duplicated()].tolist()
    if dup_names:
        raise DataError(f"duplicated column names: {_shown(dup_names)}", source=source)
    for col in ID_COLUMNS:
        if col in table.columns:
            ids = table[col]
            dup = ids[ids.duplicated(keep=False) & ids.notna()]
            if len(dup):
                first = dup.iloc[0]
                rows = dup.index[dup == first].tolist()
                raise DataError(
                    f"identifier '{first}' appears more than once ({_where(row_word, rows)}); "
                    "each row must be one person",
                    source=source,
                    field=col,
                )
    for col in table.columns:
        s = table[col]
        name = str(col)
        if s.isna().all():
            raise DataError(
                "every cell is empty; fill it or drop the column", source=source, field=name
            )
        if pd.api.types.is_bool_dtype(s):
            continue
        if pd.api.types.is_numeric_dtype(s):
            x = s.to_numpy(dtype=float)
            bad = np.isinf(x)
            if bad.any():
                rows = s.index[bad].tolist()
                raise DataError(
                    f"non-finite value {x[bad][0]:g} ({_where(row_word, rows)}); "
                    "give a finite number, or leave the cell empty if it is missing",
                    source=source,
                    field=name,
                )
            negative = x < 0
            if negative.any() and non_negative(name):
                rows = s.index[negative].tolist()
                raise DataError(
                    f"negative value {x[negative][0]:g} ({_where(row_word, rows)}); "
                    "this quantity cannot be negative",
                    source=source,
                    field=name,
                )
            continue
        present = s.dropna()
        if present.empty:
            continue
        numbers = pd.to_numeric(present, errors="coerce")
        is_number = numbers.notna().to_numpy()
        texts = present[~is_number]
        quantity = non_negative(name)  # a known numeric quantity: no text at all
        if is_number.any() and len(texts) and (quantity or present.nunique() > MAX_STATES):
            first = texts.iloc[0]
            rows = texts.index[texts == first].tolist()
            raise DataError(
                f"numbers mixed with the text {first!r} ({_where(row_word, rows)}); a "
                f"numeric column needs numbers only (an empty cell is missing; if {first!r} "
                f"means missing, pass --na-values {first})",
                source=source,
                field=name,
            )
        if quantity and is_number.all():  # numbers read as text (e.g. a quoted column)
            values = numbers.to_numpy(dtype=float)
            bad = ~np.isfinite(values) | (values < 0)
            if bad.any():
                rows = present.index[bad].tolist()
                raise DataError(
                    f"value {present[bad].iloc[0]} ({_where(row_word, rows)}) is not a finite "
                    "number >= 0; this quantity cannot be negative",
                    source=source,
                    field=name,
                )
