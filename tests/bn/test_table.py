"""Reading and checking ``bn learn`` tables: verbatim labels, one-line refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biofluxopt._util import DataError
from biofluxopt.bn import check_table, non_negative_columns, read_table


def _write(tmp_path, text: str, name: str = "t.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_labels_are_read_verbatim_and_only_empty_cells_are_missing(tmp_path):
    path = _write(tmp_path, "damage,n,flag\nNone,1,NA\nMild,2,null\n,3,NA\nNone,,x\n")
    table = read_table(path)
    assert table["damage"].tolist()[:2] == ["None", "Mild"]
    assert table["damage"].isna().tolist() == [False, False, True, False]
    assert table["flag"].tolist() == ["NA", "null", "NA", "x"]
    assert table["n"].isna().sum() == 1
    assert table.index.tolist() == [2, 3, 4, 5]  # file lines, for messages
    more = read_table(path, na_values=["NA", "null"])
    assert more["flag"].isna().sum() == 3


def test_tab_separated_by_extension(tmp_path):
    path = _write(tmp_path, "a\tb\nx\t1\ny\t2\n", "t.tsv")
    assert list(read_table(path).columns) == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "diet,age_years,diet\nvegan,30,vegan\n",
            r"duplicated column names: 'diet' \(columns 1 and 3\)",
        ),
        ("a,,b\n1,2,3\n", r"column\(s\) 2 have no name"),
        ("", "empty"),
        ("a,b\n", "no rows"),
        (
            "x,serum_b12_pmol_l\na,100\nb,inf\n",
            r"serum_b12_pmol_l: non-finite value inf \(line 3\)",
        ),
        ("x,bacteroidales\na,0.5\nb,-0.1\n", r"bacteroidales: negative value -0.1 \(line 3\)"),
        (
            "x,supplement_ug_per_day\na,-5\nb,0\n",
            r"supplement_ug_per_day: negative value -5 \(line 2\)",
        ),
        ("x,age_years\na,-1\nb,40\n", r"age_years: negative value"),
        (
            "x,age_years\n" + "".join(f"a,{20 + i}\n" for i in range(6)) + "b,NA\n",
            r"age_years: numbers mixed with the text 'NA' \(line 8\).*--na-values NA",
        ),
        (
            "patient_id,x\nP1,a\nP2,b\nP1,c\n",
            r"patient_id: identifier 'P1' appears more than once \(lines 2, 4\)",
        ),
    ],
)
def test_refusals_name_the_file_column_and_line(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(DataError, match=message) as info:
        read_table(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_negative_values_are_fine_where_a_quantity_can_be_negative(tmp_path):
    path = _write(tmp_path, "x,log_ratio\na,-1.5\nb,2\n")
    assert read_table(path)["log_ratio"].min() == -1.5
    assert {"bacteroidales", "other", "serum_b12", "supplement_ug_per_day", "age"} <= (
        non_negative_columns()
    )


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is a directory"):
        read_table(tmp_path)
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"a,b\n\xff\xfe,1\n")
    with pytest.raises(DataError, match=r"UTF-8|parse"):
        read_table(binary)


def test_check_table_on_a_frame_names_rows():
    frame = pd.DataFrame({"hcy_umol_l": [10.0, -np.inf, 12.0]})
    with pytest.raises(DataError, match=r"<table>: hcy_umol_l: non-finite value -inf \(row 1\)"):
        check_table(frame)
    check_table(pd.DataFrame({"x": [-1.0, 2.0]}))  # unknown quantity: may be negative


_CELLS = ["", "0", "1", "2.5", "-1", "inf", "-inf", "NA", "None", "null", "a", "b", "c d", "1e300"]
_NAMES = ["diet", "fut2", "age_years", "bacteroidales", "x", "y", "patient_id", "my col", ""]


@settings(max_examples=40, deadline=None)
@given(
    names=st.lists(st.sampled_from(_NAMES), min_size=1, max_size=4),
    cells=st.lists(st.lists(st.sampled_from(_CELLS), min_size=4, max_size=4), max_size=12),
    method=st.sampled_from(["hybrid", "mixed"]),
    missing=st.sampled_from(["drop", "em"]),
)
def test_any_small_table_learns_or_fails_with_one_line(
    tmp_path_factory, names, cells, method, missing
):
    """Malformed tables end in a BioFluxOptError naming the file (one line), never in another
    exception."""
    from biofluxopt._util import BioFluxOptError
    from biofluxopt.bn import learn_network

    path = tmp_path_factory.mktemp("fuzz") / "t.csv"
    rows = [",".join(names)] + [",".join(row[: len(names)]) for row in cells]
    path.write_text("\n".join(rows) + "\n")
    try:
        learn_network(read_table(path), method=method, missing=missing, source=str(path))
    except BioFluxOptError as exc:
        assert "\n" not in str(exc)
        assert str(path) in str(exc) or "--" in str(exc)
