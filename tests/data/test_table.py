"""Reading and validating abundance tables (CSV, TSV, BIOM) and the compositional transforms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from biofluxopt._util import DataError
from biofluxopt.data import AbundanceTable, closure, clr, read_table

LINEAGES = [
    "k__Bacteria;p__Bacteroidetes;c__Bacteroidia;o__Bacteroidales;f__Bacteroidaceae;g__Bacteroides",
    "k__Bacteria;p__Verrucomicrobia;c__Verrucomicrobiae;o__Verrucomicrobiales;"
    "f__Verrucomicrobiaceae;g__Akkermansia",
    "k__Bacteria;p__Firmicutes;c__Clostridia;o__Clostridiales;f__Lachnospiraceae;g__",
]


@pytest.fixture
def counts() -> pd.DataFrame:
    frame = pd.DataFrame(
        [[10, 0, 5], [3, 7, 0], [0, 1, 1], [100, 0, 0]],
        index=["s1", "s2", "s3", "s4"],
        columns=LINEAGES,
    )
    frame.index.name = "sample_id"
    return frame


def test_csv_samples_by_taxa_detected_from_header(tmp_path, counts):
    path = tmp_path / "t.csv"
    counts.to_csv(path)
    table = read_table(path)
    assert table.samples == ["s1", "s2", "s3", "s4"]
    assert table.taxa == LINEAGES
    assert table.kind == "counts"
    np.testing.assert_array_equal(table.counts_or_values.to_numpy(), counts.to_numpy())


def test_tsv_taxa_by_samples_detected_and_equal(tmp_path, counts):
    path = tmp_path / "t.tsv"
    flipped = counts.T
    flipped.index.name = "#OTU ID"
    flipped.to_csv(path, sep="\t")
    table = read_table(path)
    pd.testing.assert_frame_equal(table.counts_or_values, counts.astype(float), check_names=False)


def test_orientation_from_lineages_when_header_is_blank(tmp_path, counts):
    path = tmp_path / "t.csv"
    counts.T.rename_axis(None).to_csv(path)
    assert read_table(path).samples == ["s1", "s2", "s3", "s4"]


def test_ambiguous_orientation_asks_for_flag(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame([[1, 2], [3, 4]], index=["a", "b"], columns=["x", "y"]).to_csv(path)
    with pytest.raises(DataError, match="orientation"):
        read_table(path)
    table = read_table(path, orientation="taxa_by_samples")
    assert table.samples == ["x", "y"] and table.taxa == ["a", "b"]


def test_relative_abundances_are_recognised(tmp_path, counts):
    path = tmp_path / "rel.csv"
    closure(counts).to_csv(path)
    table = read_table(path)
    assert table.kind == "relative"
    np.testing.assert_allclose(table.to_relative().sum(axis=1), 1.0)


@pytest.mark.parametrize(
    ("cell", "value", "pattern"),
    [
        ((1, 2), -1, r"negative values in samples 's2', taxa .*Lachnospiraceae"),
        ((2, 0), np.nan, r"non-finite values in samples 's3'"),
        ((0, 1), "abc", r"sample 's1', taxon .*Akkermansia.*non-numeric value 'abc'"),
    ],
)
def test_bad_cells_are_named(tmp_path, counts, cell, value, pattern):
    bad = counts.astype(object)
    bad.iat[cell] = value
    path = tmp_path / "bad.csv"
    bad.to_csv(path)
    with pytest.raises(DataError, match=pattern) as info:
        read_table(path)
    assert "bad.csv" in str(info.value)


def test_duplicate_ids_and_empty_samples_are_named(tmp_path, counts):
    dup = counts.rename(index={"s2": "s1"})
    with pytest.raises(DataError, match="duplicate sample ids 's1'"):
        AbundanceTable.from_dataframe(dup)
    dup_taxa = counts.set_axis([LINEAGES[0], LINEAGES[0], LINEAGES[2]], axis=1)
    with pytest.raises(DataError, match="duplicate taxon ids"):
        AbundanceTable.from_dataframe(dup_taxa)
    empty = counts.copy()
    empty.loc["s3"] = 0
    with pytest.raises(DataError, match=r"all zero.*'s3'"):
        AbundanceTable.from_dataframe(empty, source="x.csv")


def test_unknown_format_and_orientation_rejected(tmp_path, counts):
    path = tmp_path / "t.xlsx"
    path.write_text("nothing")
    with pytest.raises(DataError, match="unknown table format"):
        read_table(path)
    with pytest.raises(DataError, match="orientation must be one of"):
        read_table(tmp_path / "t.csv", orientation="rows")


def test_sample_metadata_must_cover_samples(tmp_path, counts):
    path = tmp_path / "t.csv"
    counts.to_csv(path)
    meta = pd.DataFrame({"subject": ["a", "a", "b"]}, index=["s1", "s2", "s3"])
    with pytest.raises(DataError, match="without a sample metadata row: 's4'"):
        read_table(path, sample_metadata=meta)
    meta.loc["s4"] = "c"
    assert read_table(path, sample_metadata=meta).sample_metadata["subject"].tolist() == list(
        "aabc"
    )


@pytest.mark.parametrize("fmt", ["json", "hdf5"])
def test_biom_roundtrip_with_taxonomy(tmp_path, counts, fmt):
    biom = pytest.importorskip("biom")
    obs_meta = [{"taxonomy": lin.split(";")} for lin in LINEAGES]
    ids = ["otu1", "otu2", "otu3"]
    table = biom.Table(counts.T.to_numpy(), ids, list(counts.index), obs_meta)
    path = tmp_path / f"t.{fmt}.biom"
    if fmt == "json":
        path.write_text(table.to_json("test"))
    else:
        import h5py

        with h5py.File(path, "w") as fh:
            table.to_hdf5(fh, "test")
    read = read_table(path)
    assert read.samples == list(counts.index)
    assert read.taxa == ids
    assert read.lineages() == LINEAGES
    np.testing.assert_array_equal(read.counts_or_values.to_numpy(), counts.to_numpy())


def test_corrupt_biom_is_a_data_error(tmp_path):
    path = tmp_path / "broken.biom"
    path.write_text("{not biom")
    with pytest.raises(DataError, match=r"broken\.biom"):
        read_table(path)


def test_filter_depth_prevalence_and_max_taxa(counts):
    table = AbundanceTable.from_dataframe(counts)
    deep = table.filter(min_depth=5)
    assert deep.samples == ["s1", "s2", "s4"]
    common = table.filter(min_prevalence=0.6)
    assert common.taxa == [LINEAGES[0]]  # prevalences 0.75, 0.5, 0.5
    assert table.filter(min_prevalence=0.5).taxa == LINEAGES
    assert table.filter(max_taxa=1).taxa == [LINEAGES[0]]
    with pytest.raises(DataError, match="no sample has depth"):
        table.filter(min_depth=1e9)


def test_closure_rejects_zero_rows():
    with pytest.raises(DataError, match="zero total"):
        closure(pd.DataFrame([[0.0, 0.0]], index=["z"]))


finite_counts = arrays(
    np.float64,
    st.tuples(st.integers(1, 8), st.integers(2, 8)),
    elements=st.integers(0, 1000).map(float),
)


@settings(max_examples=50, deadline=None)
@given(finite_counts)
def test_closure_and_clr_invariants(values):
    values[:, 0] += 1.0  # no empty rows
    rel = closure(values)
    np.testing.assert_allclose(rel.sum(axis=1), 1.0)
    assert np.all((rel == 0) == (values == 0))
    z = clr(values)
    np.testing.assert_allclose(z.sum(axis=1), 0.0, atol=1e-9)
    # CLR of counts and of the same samples rescaled differ only via the pseudo-count rule,
    # which scales with the data: scale invariance holds exactly.
    np.testing.assert_allclose(clr(values * 7.0), z, atol=1e-9)


def _write(path, text: str):
    path.write_text(text)
    return path


def test_repeated_header_ids_are_refused_not_renamed(tmp_path):
    # pandas would silently rename the second 'g__A' to 'g__A.1'.
    path = _write(tmp_path / "dup.csv", "sample_id,g__A,g__B,g__A\ns1,1,2,3\ns2,4,5,6\n")
    with pytest.raises(DataError, match=r"dup\.csv: duplicate taxon ids 'g__A'"):
        read_table(path)
    # In a taxa × samples table the header holds the sample ids.
    path = _write(tmp_path / "dups.tsv", "#OTU ID\ts1\ts2\ts1\ng__A\t1\t2\t3\ng__B\t4\t5\t6\n")
    with pytest.raises(DataError, match=r"dups\.tsv: duplicate sample ids 's1'"):
        read_table(path)


def test_transposed_table_contradicting_its_header_is_refused(tmp_path, counts):
    path = tmp_path / "transposed.csv"
    counts.T.rename_axis("sample_id").to_csv(path)  # rows are lineages under 'sample_id'
    with pytest.raises(
        DataError,
        match=r"transposed\.csv: orientation: contradictory layout: "
        r"the id column header 'sample_id' says rows are samples, but the "
        r"lineage form .* of the row labels says rows are taxa",
    ):
        read_table(path)


@pytest.mark.parametrize("layout", ["samples_by_taxa", "taxa_by_samples"])
def test_orientation_flag_contradicting_the_table_is_refused(tmp_path, counts, layout):
    path = tmp_path / "t.csv"
    if layout == "samples_by_taxa":
        counts.to_csv(path)  # header 'sample_id', lineage columns
    else:
        counts.T.rename_axis("#OTU ID").to_csv(path)
    wrong = "taxa_by_samples" if layout == "samples_by_taxa" else "samples_by_taxa"
    with pytest.raises(DataError, match=rf"--orientation {wrong} contradicts the table"):
        read_table(path, orientation=wrong)
    assert read_table(path, orientation=layout).samples == ["s1", "s2", "s3", "s4"]
    # Lineages alone (blank header) are evidence too.
    counts.rename_axis(None).to_csv(path)
    with pytest.raises(DataError, match=r"the lineage form .* of the column labels"):
        read_table(path, orientation="taxa_by_samples")


def test_only_empty_cells_are_missing(tmp_path):
    path = _write(tmp_path / "na.csv", "sample_id,g__A,g__B\nNA,1,2\nNone,3,4\n")
    assert read_table(path).samples == ["NA", "None"]  # ids kept verbatim
    path = _write(tmp_path / "cell.csv", "sample_id,g__A,g__B\ns1,NA,2\ns2,3,4\n")
    with pytest.raises(DataError, match="non-numeric value 'NA'"):
        read_table(path)
    path = _write(tmp_path / "blank.csv", "sample_id,g__A,g__B\ns1,,2\ns2,3,4\n")
    with pytest.raises(DataError, match="missing or non-finite values in samples 's1'"):
        read_table(path)


@pytest.mark.parametrize("text", ["", "\x00\xff\xfe binary", "sample_id,g__A\n"])
def test_empty_or_binary_files_are_data_errors(tmp_path, text):
    path = tmp_path / "x.csv"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError, match=r"x\.csv"):
        read_table(path)


def test_huge_values_close_safely_and_are_not_read_counts(tmp_path, counts):
    path = tmp_path / "huge.csv"
    (counts * 1e300).to_csv(path)  # integers in float64, but far beyond any read count
    table = read_table(path)
    assert table.kind == "abundance"
    np.testing.assert_allclose(
        table.to_relative().to_numpy(), closure(counts).to_numpy(), rtol=1e-12
    )
    # Rows whose sum overflows float64 are closed without inf/NaN.
    top = np.array([[1.7e308, 1.7e308, 0.0], [1.0, 3.0, 0.0]])
    np.testing.assert_allclose(closure(top), [[0.5, 0.5, 0.0], [0.25, 0.75, 0.0]])
    assert table.filter(max_taxa=2).taxa == [LINEAGES[0], LINEAGES[1]]
