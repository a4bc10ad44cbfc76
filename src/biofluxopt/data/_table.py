"""Abundance tables: one validated container and one reader for CSV, TSV and BIOM files.

An :class:`AbundanceTable` always stores samples as rows and taxa as columns, whatever the
orientation of the file it came from. Values are either sequencing read counts (non-negative
integers), relative abundances (rows summing to 1) or other non-negative abundance signals
(e.g. HITChip microarray intensities); :meth:`AbundanceTable.to_relative` closes any of them.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from biofluxopt._util import DataError

Orientation = Literal["auto", "samples_by_taxa", "taxa_by_samples"]
Kind = Literal["counts", "relative", "abundance"]

ORIENTATIONS = ("auto", "samples_by_taxa", "taxa_by_samples")
# Header of the first (id) column that tells how a delimited table is oriented.
_SAMPLE_HEADERS = {"sample_id", "sampleid", "#sampleid", "sample", "samples", "sample_name", "run"}
_TAXON_HEADERS = {
    "#otu id",
    "otu id",
    "otu_id",
    "otu",
    "#otu",
    "taxon",
    "taxa",
    "taxonomy",
    "lineage",
    "feature",
    "feature_id",
    "feature id",
    "genus",
    "clade_name",
    "#clade_name",
    "asv",
}
_BIOM_SUFFIXES = (".biom", ".h5", ".hdf5")
MAX_COUNT = 2.0**53
"""Largest value read as a sequencing read count: integers above it are not exact in float64
(and no sequencing run has that many reads), so such tables are treated as abundance signals."""
_MAX_LISTED = 5  # how many offending rows/columns an error message names


def _listing(labels) -> str:
    labels = [str(x) for x in labels]
    head = ", ".join(repr(x) for x in labels[:_MAX_LISTED])
    more = f" and {len(labels) - _MAX_LISTED} more" if len(labels) > _MAX_LISTED else ""
    return head + more


def _looks_like_lineage(label: object) -> bool:
    text = str(label)
    return "__" in text and (";" in text or "|" in text or text[:3] in {"k__", "d__", "g__"})


@dataclass(frozen=True)
class AbundanceTable:
    """A validated samples × taxa abundance table with optional metadata.

    Parameters
    ----------
    counts_or_values : pandas.DataFrame of shape (n_samples, n_taxa)
        Non-negative finite values; index = unique sample ids, columns = unique taxon names.
    kind : {"counts", "relative", "abundance"}
        ``"counts"``: integer read counts; ``"relative"``: rows sum to 1; ``"abundance"``:
        any other non-negative signal (closed by :meth:`to_relative`).
    sample_metadata : pandas.DataFrame or None
        One row per sample (same index order as ``counts_or_values``).
    taxon_metadata : pandas.DataFrame or None
        One row per taxon; a ``lineage`` column (Greengenes/SILVA style) is used by
        :func:`~biofluxopt.data.aggregate_to_model_taxa` instead of the column names.
    source : str or None
        Where the table came from, for error messages.

    Notes
    -----
    Build tables with :func:`read_table`, :func:`~biofluxopt.data.load_hmp` or
    :meth:`from_dataframe`; all of them validate. Instances are immutable: filtering returns a
    new table.
    """

    counts_or_values: pd.DataFrame
    kind: Kind
    sample_metadata: pd.DataFrame | None = None
    taxon_metadata: pd.DataFrame | None = None
    source: str | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dataframe(
        cls,
        frame: pd.DataFrame,
        *,
        sample_metadata: pd.DataFrame | None = None,
        taxon_metadata: pd.DataFrame | None = None,
        source: str | Path | None = None,
        allow_empty_samples: bool = False,
    ) -> AbundanceTable:
        """Validate a samples × taxa frame and wrap it.

        Parameters
        ----------
        frame : pandas.DataFrame of shape (n_samples, n_taxa)
            Numeric values; index = sample ids, columns = taxon names.
        sample_metadata, taxon_metadata : pandas.DataFrame, optional
            Indexed by sample id / taxon name; every sample (taxon) must have a row.
        source : str or Path, optional
            Named in error messages (defaults to ``"<DataFrame>"``).
        allow_empty_samples : bool, default=False
            Accept samples whose values are all zero (otherwise an error names them).

        Raises
        ------
        DataError
            Empty table, duplicate sample or taxon ids, non-numeric cells, NaN/inf, negative
            values or all-zero samples; the message names the source and the rows/columns.
        """
        src = str(source) if source is not None else "<DataFrame>"
        values = _validated_values(frame, src, allow_empty_samples=allow_empty_samples)
        kind = _infer_kind(values.to_numpy())
        sample_metadata = _aligned_metadata(sample_metadata, values.index, "sample", src)
        taxon_metadata = _aligned_metadata(taxon_metadata, values.columns, "taxon", src)
        return cls(values, kind, sample_metadata, taxon_metadata, src)

    # ------------------------------------------------------------------ views
    @property
    def taxa(self) -> list[str]:
        """Taxon names (column labels), in table order."""
        return [str(c) for c in self.counts_or_values.columns]

    @property
    def samples(self) -> list[str]:
        """Sample ids (row labels), in table order."""
        return [str(i) for i in self.counts_or_values.index]

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_samples, n_taxa)``."""
        return self.counts_or_values.shape

    @property
    def depth(self) -> pd.Series:
        """Row sums (reads per sample for count tables), indexed by sample id."""
        return self.counts_or_values.sum(axis=1)

    def to_relative(self) -> pd.DataFrame:
        """Relative abundances, shape (n_samples, n_taxa), every row summing to 1.

        Raises
        ------
        DataError
            A sample sums to zero (possible only after filtering taxa away).
        """
        return closure(self.counts_or_values, source=self.source)

    def lineages(self) -> list[str]:
        """Lineage string per taxon: ``taxon_metadata["lineage"]`` if present, else the name."""
        if self.taxon_metadata is not None and "lineage" in self.taxon_metadata:
            lin = self.taxon_metadata["lineage"].astype(str)
            return [lin.get(t, t) or t for t in self.counts_or_values.columns]
        return self.taxa

    # ------------------------------------------------------------------ subsetting
    def subset(self, samples=None, taxa=None) -> AbundanceTable:
        """A new table restricted to the given sample ids and/or taxon names (in that order)."""
        values = self.counts_or_values
        if samples is not None:
            samples = list(samples)
            missing = [s for s in samples if s not in values.index]
            if missing:
                raise DataError(f"unknown sample ids {_listing(missing)}", source=self.source)
            values = values.loc[samples]
        if taxa is not None:
            taxa = list(taxa)
            missing = [t for t in taxa if t not in values.columns]
            if missing:
                raise DataError(f"unknown taxa {_listing(missing)}", source=self.source)
            values = values[taxa]
        smeta = None if self.sample_metadata is None else self.sample_metadata.loc[values.index]
        tmeta = None if self.taxon_metadata is None else self.taxon_metadata.loc[values.columns]
        return replace(self, counts_or_values=values, sample_metadata=smeta, taxon_metadata=tmeta)

    def filter(
        self,
        *,
        min_depth: float | None = None,
        min_prevalence: float | None = None,
        max_taxa: int | None = None,
    ) -> AbundanceTable:
        """Drop shallow samples, then rare taxa.

        Parameters
        ----------
        min_depth : float, optional
            Keep samples whose row sum is at least this (reads, for count tables).
        min_prevalence : float in [0, 1], optional
            Keep taxa present (value > 0) in at least this fraction of the kept samples.
        max_taxa : int, optional
            Then keep at most this many taxa, the most prevalent first (ties broken by mean
            relative abundance), in their original column order.

        Returns
        -------
        AbundanceTable
            The filtered table. Samples left with no reads after dropping taxa are kept (their
            relative abundance is undefined; callers that close rows should check ``depth``).
        """
        values = self.counts_or_values
        if min_depth is not None:
            values = values.loc[values.sum(axis=1) >= min_depth]
            if values.empty:
                raise DataError(f"no sample has depth >= {min_depth}", source=self.source)
        keep = pd.Series(True, index=values.columns)
        present = values > 0
        prevalence = present.mean(axis=0)
        if min_prevalence is not None:
            if not 0.0 <= min_prevalence <= 1.0:
                raise DataError(f"min_prevalence must be in [0, 1], got {min_prevalence}")
            keep &= prevalence >= min_prevalence
        if max_taxa is not None and keep.sum() > max_taxa:
            with np.errstate(over="ignore"):
                totals = values.sum(axis=1)
            if np.isfinite(totals.to_numpy()).all():
                rel_mean = values.div(totals.replace(0, 1), axis=0).mean(axis=0)
            else:  # sums overflow float64: close safely (empty rows count as zeros)
                nonempty = values.to_numpy().max(axis=1) > 0
                rel_mean = closure(values.loc[nonempty]).sum(axis=0) / len(values)
            order = pd.DataFrame({"p": prevalence[keep], "m": rel_mean[keep]})
            top = order.sort_values(["p", "m"], ascending=False).index[:max_taxa]
            keep &= keep.index.isin(top)
        if not keep.any():
            raise DataError("no taxon passes the prevalence filter", source=self.source)
        return self.subset(samples=values.index, taxa=values.columns[keep.to_numpy()])


# ---------------------------------------------------------------------- transforms
def closure(values: pd.DataFrame | np.ndarray, *, source: str | None = None):
    """Divide each row by its sum (compositional closure).

    Parameters
    ----------
    values : pandas.DataFrame or numpy.ndarray of shape (n_samples, n_taxa)
        Non-negative values.

    Returns
    -------
    Same type and shape as ``values``, rows summing to 1. A row whose sum would overflow
    float64 (values near 1e308) is divided by its largest entry first, so any finite table
    can be closed.

    Raises
    ------
    DataError
        A row sums to zero (names the rows).
    """
    arr = np.asarray(values, dtype=float)
    with np.errstate(over="ignore"):
        totals = arr.sum(axis=1, keepdims=True)
    peak = arr.max(axis=1, keepdims=True) if arr.shape[1] else np.zeros((len(arr), 1))
    if np.any(peak <= 0):
        bad = np.flatnonzero(peak[:, 0] <= 0)
        labels = values.index[bad] if isinstance(values, pd.DataFrame) else bad
        raise DataError(
            f"samples with zero total cannot be closed: {_listing(labels)}", source=source
        )
    huge = ~np.isfinite(totals[:, 0])
    if huge.any():
        # Rows whose sum overflows float64: scale by the largest entry first.
        scaled = arr[huge] / peak[huge]
        totals = totals.copy()
        arr = arr.copy()
        arr[huge] = scaled
        totals[huge] = scaled.sum(axis=1, keepdims=True)
    out = arr / totals
    if isinstance(values, pd.DataFrame):
        return pd.DataFrame(out, index=values.index, columns=values.columns)
    return out


def clr(values: pd.DataFrame | np.ndarray, *, pseudocount: float | None = None):
    """Centred log-ratio transform with a pseudo-count for zeros.

    ``clr(x)_j = log(x_j + c) - mean_k log(x_k + c)`` after closing the rows.

    Parameters
    ----------
    values : pandas.DataFrame or numpy.ndarray of shape (n_samples, n_taxa)
        Counts or compositions (non-negative).
    pseudocount : float, optional
        Added to every entry before the log. Default: half of the smallest positive entry of
        ``values`` (0.5 reads for count tables; for compositions, half the smallest observed
        proportion), a common, scale-aware choice that keeps zeros below every observed value.

    Returns
    -------
    Same type and shape as ``values``; each row sums to 0.
    """
    arr = np.asarray(values, dtype=float)
    if pseudocount is None:
        positive = arr[arr > 0]
        pseudocount = 0.5 * float(positive.min()) if positive.size else 1.0
    if pseudocount <= 0:
        raise DataError(f"pseudocount must be > 0, got {pseudocount}")
    logs = np.log(arr + pseudocount)
    out = logs - logs.mean(axis=1, keepdims=True)
    if isinstance(values, pd.DataFrame):
        return pd.DataFrame(out, index=values.index, columns=values.columns)
    return out


# ---------------------------------------------------------------------- validation helpers
def _validated_values(frame: pd.DataFrame, src: str, *, allow_empty_samples: bool) -> pd.DataFrame:
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise DataError(
            f"table is empty ({frame.shape[0]} samples × {frame.shape[1]} taxa)", source=src
        )
    frame = frame.copy()
    frame.index = frame.index.map(str)
    frame.columns = frame.columns.map(str)
    dup_rows = frame.index[frame.index.duplicated()].unique()
    if len(dup_rows):
        raise DataError(f"duplicate sample ids {_listing(dup_rows)}", source=src)
    dup_cols = frame.columns[frame.columns.duplicated()].unique()
    if len(dup_cols):
        raise DataError(f"duplicate taxon ids {_listing(dup_cols)}", source=src)
    numeric = frame.apply(pd.to_numeric, errors="coerce")
    bad = numeric.isna() & frame.notna()
    if bad.to_numpy().any():
        r, c = np.argwhere(bad.to_numpy())[0]
        raise DataError(
            f"non-numeric value {frame.iat[r, c]!r} (and {int(bad.to_numpy().sum()) - 1} more)",
            source=src,
            field=f"sample {frame.index[r]!r}, taxon {frame.columns[c]!r}",
        )
    arr = numeric.to_numpy(dtype=float)
    nonfinite = ~np.isfinite(arr)
    if nonfinite.any():
        rows = frame.index[nonfinite.any(axis=1)]
        cols = frame.columns[nonfinite.any(axis=0)]
        raise DataError(
            f"missing or non-finite values in samples {_listing(rows)}, taxa {_listing(cols)}",
            source=src,
        )
    negative = arr < 0
    if negative.any():
        rows = frame.index[negative.any(axis=1)]
        cols = frame.columns[negative.any(axis=0)]
        raise DataError(
            f"negative values in samples {_listing(rows)}, taxa {_listing(cols)}", source=src
        )
    if not allow_empty_samples:
        empty = frame.index[arr.sum(axis=1) == 0]
        if len(empty):
            raise DataError(
                f"samples with no reads/abundance (all zero): {_listing(empty)}", source=src
            )
    return pd.DataFrame(arr, index=frame.index, columns=frame.columns)


def looks_like_counts(arr: np.ndarray) -> bool:
    """Whether a finite non-negative array holds read counts: integers, some above 1, none
    above :data:`MAX_COUNT`."""
    arr = np.asarray(arr, dtype=float)
    return bool(arr.size and np.all(arr == np.round(arr)) and 1 < arr.max() <= MAX_COUNT)


def _infer_kind(arr: np.ndarray) -> Kind:
    if looks_like_counts(arr):
        return "counts"
    with np.errstate(over="ignore"):  # huge abundance signals: an infinite total is no 1
        totals = arr.sum(axis=1)
    if np.allclose(totals[totals > 0], 1.0, atol=1e-3) or np.allclose(
        totals[totals > 0], 100.0, atol=1e-1
    ):
        return "relative"
    return "abundance"


def _aligned_metadata(meta: pd.DataFrame | None, ids: pd.Index, what: str, src: str):
    if meta is None:
        return None
    meta = meta.copy()
    meta.index = meta.index.map(str)
    if meta.index.duplicated().any():
        dup = meta.index[meta.index.duplicated()].unique()
        raise DataError(f"duplicate {what} ids in {what} metadata: {_listing(dup)}", source=src)
    missing = ids.difference(meta.index)
    if len(missing):
        raise DataError(f"{what}s without a {what} metadata row: {_listing(missing)}", source=src)
    return meta.loc[ids]


# ---------------------------------------------------------------------- reading
def read_table(
    path: str | Path,
    *,
    orientation: Orientation = "auto",
    sample_metadata: str | Path | pd.DataFrame | None = None,
) -> AbundanceTable:
    """Read an abundance table from CSV, TSV or BIOM (JSON or HDF5).

    Parameters
    ----------
    path : str or Path
        ``.csv``, ``.tsv``/``.txt`` (tab-separated), or ``.biom`` (BIOM 1.0 JSON or 2.x HDF5,
        read with the ``biom-format`` package). Delimited files have one id column first and a
        header row; values may be read counts or relative abundances.
    orientation : {"auto", "samples_by_taxa", "taxa_by_samples"}, default="auto"
        Layout of a delimited file. ``"auto"`` decides from the id-column header
        (``sample_id`` → samples × taxa; ``#OTU ID``, ``taxon``, ``taxonomy`` … → taxa ×
        samples) or, failing that, from which axis carries Greengenes/SILVA lineages
        (``k__…;g__…``). BIOM files are always taxa (observations) × samples.
    sample_metadata : str, Path or DataFrame, optional
        A CSV/TSV with the sample id first (or a DataFrame indexed by sample id); every
        sample must have a row. BIOM sample metadata are read from the file.

    Returns
    -------
    AbundanceTable
        Samples × taxa; ``taxon_metadata["lineage"]`` holds BIOM ``taxonomy`` metadata.

    Raises
    ------
    DataError
        Unknown format or orientation, undetectable orientation, or any validation failure;
        messages name the file and the offending rows/columns.
    FileNotFoundError
        ``path`` does not exist.
    """
    path = Path(path)
    if orientation not in ORIENTATIONS:
        raise DataError(
            f"orientation must be one of {ORIENTATIONS}, got {orientation!r}",
            source=path,
            field="orientation",
        )
    if not path.exists():
        raise FileNotFoundError(2, "No such file", str(path))
    suffix = path.suffix.lower()
    if suffix in _BIOM_SUFFIXES:
        frame, smeta, tmeta = _read_biom(path)
    elif suffix in {".csv", ".tsv", ".txt", ".tab"}:
        frame = _read_delimited(path, orientation)
        smeta, tmeta = None, None
    else:
        raise DataError(
            f"unknown table format {suffix!r}; expected .csv, .tsv, .txt or .biom", source=path
        )
    if sample_metadata is not None:
        smeta = _read_metadata(sample_metadata)
    return AbundanceTable.from_dataframe(
        frame, sample_metadata=smeta, taxon_metadata=tmeta, source=path
    )


def _read_metadata(meta: str | Path | pd.DataFrame) -> pd.DataFrame:
    if isinstance(meta, pd.DataFrame):
        return meta
    meta = Path(meta)
    sep = "\t" if meta.suffix.lower() in {".tsv", ".txt", ".tab"} else ","
    try:
        # Only empty cells are missing: ids and labels such as 'NA' or 'None' are kept.
        frame = pd.read_csv(
            meta, sep=sep, index_col=0, keep_default_na=False, na_values=[""], encoding="utf-8-sig"
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"cannot parse metadata table: {_one_line(exc)}", source=meta) from exc
    frame.index = frame.index.map(str)
    return frame


def _read_delimited(path: Path, orientation: Orientation) -> pd.DataFrame:
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    kind = "CSV" if sep == "," else "TSV"
    try:
        # QIIME classic tables start with a '# Constructed from biom file' comment line.
        with path.open(encoding="utf-8-sig", newline="") as fh:
            first = fh.readline()
            skip = 1 if first.startswith("# ") or first.lower().startswith("# constructed") else 0
            header_line = fh.readline() if skip else first
        # Only empty cells are missing: an id such as 'NA' or 'None' stays a label, and a
        # text cell such as 'NA' is reported as non-numeric instead of silently becoming NaN.
        frame = pd.read_csv(
            path,
            sep=sep,
            index_col=0,
            skiprows=skip,
            keep_default_na=False,
            na_values=[""],
            encoding="utf-8-sig",
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"cannot parse as {kind}: {_one_line(exc)}", source=path) from exc
    # pandas renames repeated header labels ('x', 'x.1'); restore them verbatim so that a
    # repeated sample or taxon id is reported instead of silently becoming two ids.
    header = next(csv.reader([header_line.rstrip("\r\n")], delimiter=sep), [])
    if len(header) == frame.shape[1] + 1:
        frame.columns = pd.Index(header[1:], dtype=object)
        frame.index.name = header[0] or None
    evidence = _orientation_evidence(frame)
    # A trailing 'taxonomy' column (QIIME classic) is metadata, not a sample.
    tax_cols = [c for c in frame.columns if str(c).strip().lower() == "taxonomy"]
    if tax_cols:
        frame = frame.drop(columns=tax_cols)
        evidence.append(("taxa_by_samples", f"the {tax_cols[0]!r} column (QIIME classic)"))
    orientation = _resolve_orientation(orientation, evidence, frame, path)
    return frame.T if orientation == "taxa_by_samples" else frame


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


_ROWS_ARE = {"samples_by_taxa": "rows are samples", "taxa_by_samples": "rows are taxa"}


def _orientation_evidence(frame: pd.DataFrame) -> list[tuple[Orientation, str]]:
    """What the table itself says about its layout: ``[(orientation, reason), ...]``."""
    evidence: list[tuple[Orientation, str]] = []
    name = str(frame.index.name or "").strip()
    if name.lower() in _SAMPLE_HEADERS:
        evidence.append(("samples_by_taxa", f"the id column header {name!r}"))
    elif name.lower() in _TAXON_HEADERS:
        evidence.append(("taxa_by_samples", f"the id column header {name!r}"))
    col_lineage = (
        np.mean([_looks_like_lineage(c) for c in frame.columns]) if len(frame.columns) else 0.0
    )
    row_lineage = (
        np.mean([_looks_like_lineage(i) for i in frame.index]) if len(frame.index) else 0.0
    )
    if col_lineage > 0.5 and row_lineage < 0.5:
        evidence.append(("samples_by_taxa", "the lineage form (k__…;g__…) of the column labels"))
    elif row_lineage > 0.5 and col_lineage < 0.5:
        evidence.append(("taxa_by_samples", "the lineage form (k__…;g__…) of the row labels"))
    return evidence


def _resolve_orientation(
    orientation: Orientation,
    evidence: list[tuple[Orientation, str]],
    frame: pd.DataFrame,
    path: Path,
) -> Orientation:
    """The layout to use: the flag or the evidence; a contradiction is a DataError."""
    said = {o for o, _ in evidence}
    if len(said) > 1:
        a = next(e for e in evidence if e[0] == "samples_by_taxa")
        b = next(e for e in evidence if e[0] == "taxa_by_samples")
        raise DataError(
            f"contradictory layout: {a[1]} says {_ROWS_ARE[a[0]]}, but {b[1]} says "
            f"{_ROWS_ARE[b[0]]} (a transposed table?); fix the id column header "
            "('sample_id' for samples × taxa, 'taxon' for taxa × samples)",
            source=path,
            field="orientation",
        )
    if orientation != "auto":
        if said and orientation not in said:
            reason = evidence[0][1]
            raise DataError(
                f"--orientation {orientation} contradicts the table: {reason} says "
                f"{_ROWS_ARE[evidence[0][0]]}; drop the flag (auto-detection) or fix the table",
                source=path,
                field="orientation",
            )
        return orientation
    if said:
        return evidence[0][0]
    header = str(frame.index.name or "").strip().lower()
    raise DataError(
        f"cannot tell whether rows are samples or taxa (id column header {header!r}); "
        "name the first column 'sample_id' or 'taxon', or pass "
        "orientation='samples_by_taxa' / 'taxa_by_samples' (CLI: --orientation)",
        source=path,
        field="orientation",
    )


def _read_biom(path: Path) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    import biom  # biom-format; imported lazily (it pulls h5py)

    # biom raises bare ValueError/TypeError/KeyError on bad files, also while converting
    # (e.g. a table without samples): every failure names the file.
    try:
        table = biom.load_table(str(path))
        if 0 in table.shape:
            raise DataError(
                f"the BIOM table is empty ({table.shape[0]} observations × "
                f"{table.shape[1]} samples)",
                source=path,
            )
        frame = table.to_dataframe(dense=True).T  # samples × observations
        smeta = tmeta = None
        sm = table.metadata_to_dataframe("sample") if table.metadata(axis="sample") else None
        if sm is not None:
            smeta = sm
        om = table.metadata(axis="observation")
        if om is not None and any(m and "taxonomy" in m for m in om):
            lineage = []
            for m in om:
                tax = (m or {}).get("taxonomy", "")
                lineage.append(";".join(tax) if isinstance(tax, list | tuple) else str(tax))
            tmeta = pd.DataFrame({"lineage": lineage}, index=table.ids(axis="observation"))
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot read BIOM table: {_one_line(exc)}", source=path) from exc
    return frame, smeta, tmeta
