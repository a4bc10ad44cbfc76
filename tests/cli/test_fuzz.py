"""Property-based fuzz of every command (issue 9, Deliver 5).

Generated malformed protocols (TOML), tables (CSV/TSV), model files and option values go
through the real command line, in process (``biofluxopt.cli.run``), and every run must hold:

* the exit code is 0 or 2 (never 1, an internal error);
* no Python traceback on stderr or stdout;
* a failure prints exactly one ``error:`` line and nothing after it (no wrapped message);
  a success prints none;
* a failed run leaves every file and directory as it was (no output, no temporary, nothing
  deleted); a successful one writes only its outputs, keeps its inputs byte for byte, and
  inside an ``--out`` directory it overwrites only files listed in the directory's marker;
* a failed run emits no Python warning (the interpreter would print it as two more lines);
* inputs a case knows to be invalid (``Case.refuse``) exit with 2: a malformed value accepted
  with exit 0 fails the property too.

Properties: ``--out`` of the 7 writing commands (16 kinds of path); a read-only output
directory for the same 7, in a real process; sensitivity (protocol and options); bn learn,
bn cohort, bn query/explain; synth train, sample, evaluate. Failures the fuzz found are kept
as plain regression tests at the end.

Budgets: each property runs a small, derandomised budget by default (CI runs everything with
``pytest -n 2``; the file takes about 45 s on 2 cores). ``pytest -m fuzz tests/cli/test_fuzz.py``
or ``BIOFLUXOPT_FUZZ=1`` runs the large budgets with fresh random examples (minutes: successful
``sensitivity`` runs take ~20 s each); ``BIOFLUXOPT_FUZZ=N`` runs N examples per property. In
the small budget every case of an expensive command (sensitivity, bn cohort) carries at least
one invalid input, so it is refused before any computation. ``simulate``'s protocol text is
fuzzed in ``test_simulate.py``; here ``simulate`` takes part in the ``--out`` and read-only
properties.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from biofluxopt._util import MARKER_NAME
from biofluxopt.cli import run

pytestmark = pytest.mark.fuzz

FUZZ_ENV = "BIOFLUXOPT_FUZZ"
"""``1``: run the large budgets; an integer N > 1: N examples per property."""

RUN_CLI = "import sys; from biofluxopt.cli import main; main(sys.argv[1:])"
TMP_TAGS = (".biofluxopt-tmp-", "biofluxopt-probe")


# --------------------------------------------------------------------------- budgets


def _large_budget(config) -> int:
    """0: the small CI budget; -1: each property's large budget; N > 1: N examples."""
    raw = os.environ.get(FUZZ_ENV, "").strip()
    if raw not in ("", "0"):
        return int(raw) if raw.isdigit() and int(raw) > 1 else -1
    expr = config.getoption("markexpr", "") or ""
    return -1 if re.search(r"(?<!not )\bfuzz\b", expr) else 0


def check_property(request, body: Callable, *, small: int, large: int) -> None:
    """Run ``body(data, big)`` as a hypothesis property with the budget of this session."""
    mode = _large_budget(request.config)
    big = mode != 0
    n = small if not big else (large if mode < 0 else mode)
    options: dict = {}
    if not big:
        options = {"derandomize": True, "database": None}

    @settings(
        max_examples=n,
        deadline=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
        **options,
    )
    @given(st.data())
    def prop(data):
        body(data, big)

    prop()


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Two xdist workers on two cores: torch's one thread per core would oversubscribe."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------- running a case


@dataclass
class Case:
    """One generated command line.

    ``outputs``: what a successful run may create or change (relative to the working
    directory ``work``); ``required``: what it must have created; ``inputs``: files that must
    stay byte for byte; ``refuse``: why the case is invalid (it must then exit with 2).
    """

    argv: list[str]
    outputs: list[str] = field(default_factory=list)
    required: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    refuse: list[str] = field(default_factory=list)
    cwd: str = "work"
    notes: list[str] = field(default_factory=list)

    def bad(self, why: str, condition: bool | None = True) -> None:
        if condition:
            self.refuse.append(why)


@dataclass
class Outcome:
    code: int
    err: str
    out: str
    warned: list[str] = field(default_factory=list)  # Python warnings a user would see


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root``: ``dir``, ``link:<target>`` or the SHA-1 of the content."""
    seen: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in dirnames + filenames:
            path = base / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                seen[rel] = f"link:{os.readlink(path)}"
            elif path.is_dir():
                seen[rel] = "dir"
            else:
                seen[rel] = hashlib.sha1(path.read_bytes()).hexdigest()
    return seen


def invoke(argv: list[str], cwd: Path) -> Outcome:
    """Run the command line in ``cwd``; Python warnings are recorded under the interpreter's
    default filters (those a user of the installed command would see on stderr)."""
    err, out = io.StringIO(), io.StringIO()
    with (
        contextlib.chdir(cwd),
        contextlib.redirect_stderr(err),
        contextlib.redirect_stdout(out),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.resetwarnings()
        warnings.simplefilter("default")
        for hidden in (
            DeprecationWarning,
            PendingDeprecationWarning,
            ImportWarning,
            ResourceWarning,
        ):
            warnings.simplefilter("ignore", hidden)
        code = run([str(a) for a in argv])
    warned = [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught]
    return Outcome(code, err.getvalue(), out.getvalue(), warned)


def _rel(root: Path, cwd: Path, name: str) -> str | None:
    """``name`` (as given on the command line, from ``cwd``) relative to ``root``; None if
    it lies outside."""
    path = Path(os.path.normpath(cwd / name)) if name else cwd
    try:
        rel = path.relative_to(root).as_posix()
    except ValueError:
        return None
    return "" if rel == "." else rel


def _under(rel: str, base: str) -> bool:
    return base == "" or rel == base or rel.startswith(base + "/")


def _marker_listed(root: Path, rel_dir: str) -> set[str]:
    try:
        doc = json.loads((root / rel_dir / MARKER_NAME).read_text())
        return {f"{rel_dir}/{f}".lstrip("/") for f in doc["files"] if isinstance(f, str)}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def describe(case: Case, outcome: Outcome | None = None) -> str:
    text = f"\n  argv: {case.argv}"
    if case.notes:
        text += f"\n  inputs: {'; '.join(case.notes)}"
    if case.refuse:
        text += f"\n  invalid because: {case.refuse}"
    if outcome is not None:
        text += f"\n  exit code: {outcome.code}\n  stderr: {outcome.err!r}"
        if outcome.warned:
            text += f"\n  Python warnings: {outcome.warned}"
    return text


def run_case(root: Path, case: Case) -> Outcome:
    """Run ``case`` in ``root/case.cwd`` and check every property of the module docstring."""
    cwd = root / case.cwd
    before = snapshot(root)
    outputs = [r for r in (_rel(root, cwd, o) for o in case.outputs) if r is not None]
    # files that were in an output directory and not listed by its marker: never touched
    protected = {
        p
        for o in outputs
        if before.get(o) == "dir"
        for p, kind in before.items()
        if _under(p, o)
        and p != o
        and kind != "dir"
        and p not in _marker_listed(root, o)
        and Path(p).name != MARKER_NAME
    }
    outcome = invoke(case.argv, cwd)
    if currently_in_test_context():  # statistics (--hypothesis-show-statistics)
        event(f"exit code {outcome.code}" + (" (invalid input)" if case.refuse else ""))
        for warned in outcome.warned:
            event(f"Python warning: {warned}")
    what = describe(case, outcome)
    assert outcome.code in (0, 2), "exit code not 0 or 2" + what
    assert "Traceback" not in outcome.err + outcome.out, "traceback" + what
    lines = [line for line in outcome.err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    if outcome.code:
        assert not outcome.warned, f"Python warnings next to the error: {outcome.warned}" + what
        assert len(errors) == 1, "not exactly one error line" + what
        assert lines[-1] == errors[0], "text after the error line (a wrapped message?)" + what
    else:
        assert not errors, "error line on success" + what
    if case.refuse:
        assert outcome.code == 2, "invalid input accepted" + what
    after = snapshot(root)
    leftovers = [p for p in after if any(tag in p for tag in TMP_TAGS)]
    assert not leftovers, f"temporary files left behind: {leftovers}" + what
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    if outcome.code:
        assert not changed, f"a failed run changed {changed}" + what
        return outcome
    for name in case.required:
        rel = _rel(root, cwd, name)
        assert rel is None or rel in after or rel == "", f"{name} not written" + what
    created_parents = {p for p in changed if after.get(p) == "dir" and p not in before}
    created_parents = {p for p in created_parents if any(_under(o, p) for o in outputs)}
    stray = [p for p in changed if not any(_under(p, o) for o in outputs)]
    stray = [p for p in stray if p not in created_parents]
    assert not stray, f"changed outside the outputs: {stray}" + what
    touched = sorted(protected & set(changed))
    assert not touched, f"overwrote or deleted files biofluxopt did not write: {touched}" + what
    for name in case.inputs:
        rel = _rel(root, cwd, name)
        if rel is not None and rel in before and before[rel] != "dir":
            assert after.get(rel) == before[rel], f"input {name} changed" + what
    return outcome


@contextlib.contextmanager
def example_root():
    """A fresh directory per example: ``in/`` for inputs, ``work/`` (empty) to run in."""
    with tempfile.TemporaryDirectory(prefix="bfo-fuzz-") as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        (root / "work").mkdir()
        yield root


def pick_bad(data, kinds: list[str], big: bool, *, cheap: bool = False, most: int = 2) -> set[str]:
    """Which ``kinds`` of input to make invalid: none to ``most``; for an expensive command
    in the small budget at least one (the case is then refused before any computation)."""
    least = 0 if big or cheap else 1
    return data.draw(st.sets(st.sampled_from(kinds), min_size=least, max_size=most), label="bad")


# --------------------------------------------------------------------------- option values

SEED_GOOD = ["0", "1", str(2**63 - 1)]
SEED_BAD = ["-1", str(2**63), str(2**64), "18446744073709551616", "x", "1.5", "", "0x10"]


def device_values() -> tuple[list[str], list[str]]:
    """``--device`` values this machine accepts and refuses (cuda, mps: where available)."""
    import torch

    good, bad = ["cpu", "CPU", " cpu "], ["tpu", "", "cuda:9", "cpu:0", "gpu"]
    (good if torch.cuda.is_available() else bad).append("cuda")
    (good if torch.backends.mps.is_available() else bad).append("mps")
    return good, bad


# --------------------------------------------------------------------------- tables

NON_FINITE = ["nan", "NaN", "inf", "-inf", "Infinity", "1e400"]
NEGATIVE = ["-1", "-0.5", "-1e300"]
TEXT = ["abc", "1,5", "NA", "None", "null", "1e", "0x10", "—", "µg", "🙂", "TRUE", "1 000"]
EMPTYISH = ["", " "]
HUGE = ["1e300", "1.7976931348623157e308", str(2**64), "9" * 400]


@dataclass
class Grid:
    """A delimited table as text cells; ``header[0]`` names the id column (if ``has_id``)."""

    header: list[str]
    rows: list[list[str]]
    numeric: set[str]  # names of numeric columns
    has_id: bool = True

    def copy(self) -> Grid:
        return Grid(list(self.header), [list(r) for r in self.rows], set(self.numeric), self.has_id)

    def render(self, sep: str) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=sep, lineterminator="\n")
        writer.writerow(self.header)
        writer.writerows(self.rows)
        return buf.getvalue()


def frame_grid(frame: pd.DataFrame, id_name: str | None, numeric: list[str]) -> Grid:
    header = ([id_name] if id_name else []) + [str(c) for c in frame.columns]
    rows = []
    for idx, row in frame.iterrows():
        cells = [f"{v:.6g}" if isinstance(v, float) else str(v) for v in row.tolist()]
        rows.append(([str(idx)] if id_name else []) + cells)
    return Grid(header, rows, set(numeric), has_id=id_name is not None)


@dataclass
class TableDraw:
    """A generated table file: bytes, suffix and what makes it invalid (if anything)."""

    content: bytes
    suffix: str
    label: str
    refuse: list[str]


def draw_table(data, grid: Grid, suffix: str, *, bad: bool, rules: dict) -> TableDraw:
    """Draw a (possibly) malformed version of ``grid``.

    ``rules`` says which mutations the reader must refuse: keys ``non_finite``,
    ``negative``, ``text``, ``dup_column``, ``dup_id``, ``one_row``, ``one_column``,
    ``transposed`` (bool each); ``quantities`` (numeric columns whose text is refused).
    With ``bad`` at least one mutation is drawn.
    """
    g = grid.copy()
    refuse: list[str] = []
    labels: list[str] = []
    raw = data.draw(st.integers(0, 9), label="raw?") == 0 if bad else False
    if raw:
        kind = data.draw(
            st.sampled_from(["empty", "binary", "latin-1", "utf-16", "garbage", "nul"]), label="raw"
        )
        text = g.render("," if suffix == ".csv" else "\t")
        content = {
            "empty": b"",
            "binary": b"\x00\xff\xfe\x89PNG" + data.draw(st.binary(max_size=48)),
            "latin-1": text.replace(g.header[-1], g.header[-1] + "é", 1).encode("latin-1"),
            "utf-16": text.encode("utf-16"),
            "garbage": data.draw(st.text(max_size=40)).encode("utf-8", "surrogatepass"),
            "nul": text.replace("\n", "\n\x00", 1).encode(),
        }[kind]
        if kind in ("empty", "binary", "latin-1", "utf-16"):
            refuse.append(f"table: {kind}")
        return TableDraw(content, suffix, f"raw {kind}", refuse)

    clean = not bad and data.draw(st.integers(0, 3), label="clean?") > 0
    n_mut = 0 if clean else data.draw(st.integers(1, 3), label="mutations")
    # in the order they are applied: later ones cannot undo earlier refusals
    shape_kinds = ["rename_id", "transpose", "drop_id", "one_column", "one_row", "few_rows"]
    shape_kinds += ["header_only"]
    shape_kinds += ["blank_header", "dup_column", "dup_row", "dup_id", "ragged", "short_row"]
    cell_kinds = ["non_finite", "negative", "text", "emptyish", "huge"]
    kinds = data.draw(
        st.lists(st.sampled_from(shape_kinds + cell_kinds * 2), min_size=n_mut, max_size=n_mut),
        label="kinds",
    )
    shaped = False
    # shape first, then cells (a later reshape must not drop a refused cell)
    order = shape_kinds + cell_kinds
    cells: dict[tuple[int, int], str | None] = {}
    for kind in sorted(kinds, key=order.index):
        if kind in cell_kinds:
            columns = [i for i, h in enumerate(g.header) if h in g.numeric]
            if not columns or not g.rows:
                continue
            r = data.draw(st.integers(0, len(g.rows) - 1), label="row")
            c = data.draw(st.sampled_from(columns), label="column")
            pool = {
                "non_finite": NON_FINITE,
                "negative": NEGATIVE,
                "text": TEXT,
                "emptyish": EMPTYISH,
                "huge": HUGE,
            }[kind]
            value = data.draw(st.sampled_from(pool), label=kind)
            if c >= len(g.rows[r]):
                continue
            g.rows[r][c] = value
            labels.append(f"{kind} {value!r} at row {r + 1}, column {g.header[c]!r}")
            if shaped:
                continue
            quantity = g.header[c] in rules.get("quantities", g.numeric)
            why = None  # the last value written to a cell decides
            if kind == "non_finite" and rules.get("non_finite") and value in rules["non_finite"]:
                why = f"non-finite cell {value!r}"
            elif kind == "negative" and rules.get("negative") and quantity:
                why = f"negative cell {value!r}"
            elif kind == "text" and rules.get("text") and quantity:
                why = f"text cell {value!r}"
            elif kind == "emptyish" and rules.get("emptyish") and value == "":
                why = "empty cell"
            cells[(r, c)] = why
            continue
        if kind in labels:
            continue  # each reshaping once (twice transposed is the original)
        labels.append(kind)
        if kind == "transpose":
            body = [list(col) for col in zip(g.header, *g.rows, strict=True)]
            id_header = g.header[0] if g.has_id else "row"
            first = [id_header] + [row[0] for row in g.rows] if g.has_id else None
            if g.has_id:
                g.rows = body[1:]
                g.header = first
            else:
                g.rows = body
                g.header = [id_header] + [f"r{i}" for i in range(len(body[0]) - 1)]
            g.numeric = set(g.header[1:])
            if rules.get("transposed") and g.has_id and g.header[0] == "sample_id":
                refuse.append("transposed table with a samples header")
        elif kind in ("one_row", "few_rows"):
            g.rows = g.rows[: 1 if kind == "one_row" else 3]
            if rules.get("one_row"):
                refuse.append(kind.replace("_", " "))
        elif kind == "one_column":
            keep = 2 if g.has_id else 1
            g.header, g.rows = g.header[:keep], [r[:keep] for r in g.rows]
            if rules.get("one_column"):
                refuse.append("one column")
        elif kind == "header_only":
            g.rows = []
            refuse.append("no rows")
        elif kind == "drop_id" and g.has_id and "transpose" not in labels:
            g.header, g.rows, g.has_id = g.header[1:], [r[1:] for r in g.rows], False
        elif kind == "dup_column" and len(g.header) > 2:
            a, b = data.draw(
                st.lists(st.integers(1, len(g.header) - 1), min_size=2, max_size=2, unique=True),
                label="columns",
            )
            g.header[b] = g.header[a]
            if rules.get("dup_column") and g.header[a].strip():
                refuse.append(f"duplicated column {g.header[a]!r}")
        elif kind in ("dup_row", "dup_id") and g.rows:
            i = data.draw(st.integers(0, len(g.rows) - 1), label="row")
            if kind == "dup_row":
                g.rows.append(list(g.rows[i]))
            elif len(g.rows) > 1:
                g.rows[(i + 1) % len(g.rows)][0] = g.rows[i][0]
            if rules.get("dup_id") and g.has_id and (kind == "dup_row" or len(g.rows) > 1):
                refuse.append("duplicated id")
        elif kind == "ragged" and g.rows:
            g.rows[-1] = [*g.rows[-1], "7"]
        elif kind == "short_row" and g.rows and len(g.rows[-1]) > 1:
            g.rows[-1] = g.rows[-1][:-1]
        elif kind == "blank_header":
            j = data.draw(st.integers(0, len(g.header) - 1), label="column")
            g.header[j] = ""
        elif kind == "rename_id" and g.has_id:
            g.header[0] = data.draw(
                st.sampled_from(["sample_id", "taxon", "#OTU ID", "", "id", "patient_id"]),
                label="id header",
            )
        if kind not in ("dup_column", "dup_row", "dup_id", "blank_header", "rename_id"):
            shaped = True
    refuse += [why for why in cells.values() if why]
    sep = "," if suffix == ".csv" else "\t"
    if data.draw(st.integers(0, 7), label="wrong separator?") == 0:
        sep = ";" if sep == "," else ","
        labels.append(f"separator {sep!r}")
        refuse.clear()  # a table read as one column: the rules above no longer apply
    text = g.render(sep)
    if data.draw(st.integers(0, 7), label="crlf?") == 0:
        text = text.replace("\n", "\r\n")
        labels.append("CRLF")
    return TableDraw(text.encode(), suffix, ", ".join(labels) or "valid", refuse)


# --------------------------------------------------------------------------- small inputs


def synth_counts(n: int = 16, taxa: int = 4, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet([3, 2, 1, 0.5, 0.3, 0.2][:taxa], size=n)
    counts = np.stack([rng.multinomial(2000, pi) for pi in p])
    frame = pd.DataFrame(
        counts,
        index=[f"s{i:02d}" for i in range(n)],
        columns=[f"k__Bacteria;g__G{j}" for j in range(taxa)],
    )
    frame.index.name = "sample_id"
    return frame


def synth_metadata(frame: pd.DataFrame) -> pd.DataFrame:
    n = len(frame)
    return pd.DataFrame(
        {"subject": [f"p{i // 2}" for i in range(n)], "cohort": ["x", "y"] * (n // 2)},
        index=frame.index,
    )


def bn_frame(n: int = 24, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    diet = rng.choice(["omnivore", "vegetarian", "vegan"], n)
    fut2 = rng.choice(["secretor", "nonsecretor"], n)
    serum = np.select([diet == "vegan", diet == "vegetarian"], [120.0, 190.0], 290.0)
    serum = serum * np.exp(rng.normal(0, 0.3, n))
    mma = 0.2 * (250 / serum) ** 1.2 * np.exp(rng.normal(0, 0.2, n))
    return pd.DataFrame(
        {
            "diet": diet,
            "fut2": fut2,
            "serum_b12_pmol_l": serum.round(1),
            "mma_umol_l": mma.round(3),
        },
        index=pd.Index([f"p{i:02d}" for i in range(n)], name="patient_id"),
    )


BN_NUMERIC = ["serum_b12_pmol_l", "mma_umol_l"]
BN_RULES = {
    "non_finite": {"inf", "-inf", "Infinity", "1e400"},
    "negative": True,
    "text": True,  # serum B12 and MMA are known quantities: any text is refused
    "dup_column": True,
    "dup_id": True,
    "quantities": set(BN_NUMERIC),
}
SYNTH_RULES = {
    "non_finite": set(NON_FINITE),
    "negative": True,
    "text": True,
    "emptyish": True,
    "dup_column": True,
    "dup_id": True,
    "one_row": True,
    "one_column": True,
    "transposed": True,
}

TINY_PROTOCOL = "days = 2\npatients = 1\nseed = 0\n\n[diet]\nb12_ug_per_day = 4.0\n"


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    return path


def quiet_run(argv: list[str]) -> None:
    """Run a set-up command; it must succeed."""
    out = invoke(argv, Path.cwd())
    assert out.code == 0, (argv, out.err)


@pytest.fixture(scope="module")
def fixtures_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz-fixtures")


@pytest.fixture(scope="module")
def bn_network(fixtures_dir) -> Path:
    """A network learned once from a 24-row table (query and explain read it)."""
    table = fixtures_dir / "bn.csv"
    bn_frame().to_csv(table)
    out = fixtures_dir / "net"
    quiet_run(["bn", "learn", "--data", str(table), "--out", str(out)])
    return out


@pytest.fixture(scope="module")
def synth_models(fixtures_dir) -> dict[str, Path]:
    """A bootstrap model and a GAN conditioned on ``cohort`` (2 iterations), trained once."""
    counts = synth_counts()
    data = fixtures_dir / "counts.csv"
    counts.to_csv(data)
    meta = fixtures_dir / "meta.csv"
    synth_metadata(counts).to_csv(meta)
    models = {"bootstrap": fixtures_dir / "boot", "gan": fixtures_dir / "cgan"}
    boot = ["--out", str(models["bootstrap"]), "--model", "bootstrap"]
    quiet_run(["synth", "train", "--data", str(data), *boot])
    quiet_run(
        [
            "synth",
            "train",
            "--data",
            str(data),
            "--out",
            str(models["gan"]),
            "--iterations",
            "2",
            "--metadata",
            str(meta),
            "--condition-column",
            "cohort",
            "--subject-column",
            "subject",
        ]
    )
    return models


# --------------------------------------------------------------------------- --out, every command

OUT_VARIANTS = [
    "new",
    "nested",
    "new_slash",
    "empty_dir",
    "empty_dir_slash",
    "dot_empty",
    "dot_nonempty",
    "existing_file",
    "foreign_dir",
    "under_a_file",
    "the_input",
    "same_command",
    "other_command",
    "unwritable",
    "empty_string",
    "dangling_link",
]
DIR_COMMANDS = ["simulate", "sensitivity", "bn learn", "synth train"]
FILE_COMMANDS = ["bn cohort", "synth sample", "synth evaluate"]
OK_FOR_DIRS = {"new", "nested", "new_slash", "empty_dir", "empty_dir_slash", "dot_empty"}
OK_FOR_FILES = {"new", "nested"}


def _command_argv(command: str, root: Path, models: dict[str, Path]) -> tuple[list[str], str]:
    """A cheap valid command line without ``--out``, and its main input file (from work/)."""
    if command in ("simulate", "sensitivity"):
        write(root / "in" / "p.toml", TINY_PROTOCOL)
        argv = [*command.split(), "../in/p.toml"]
        if command == "sensitivity":
            argv += ["--day", "1", "--no-sobol", "--corners", "0", "--top-k", "1"]
        return argv, "../in/p.toml"
    if command == "bn learn":
        bn_frame().to_csv(root / "in" / "t.csv")
        return ["bn", "learn", "--data", "../in/t.csv"], "../in/t.csv"
    if command == "bn cohort":
        return ["bn", "cohort", "--n", "1", "--days", "1"], ""
    if command == "synth train":
        synth_counts().to_csv(root / "in" / "c.csv")
        return ["synth", "train", "--data", "../in/c.csv", "--model", "bootstrap"], "../in/c.csv"
    if command == "synth sample":
        shutil.copytree(models["bootstrap"], root / "in" / "model")
        return ["synth", "sample", "--model", "../in/model", "--n", "3"], "../in/model/train.csv"
    assert command == "synth evaluate"
    for name, seed in (("real", 1), ("syn", 2)):
        synth_counts(seed=seed).to_csv(root / "in" / f"{name}.csv")
    argv = ["synth", "evaluate", "--real", "../in/real.csv", "--synthetic", "../in/syn.csv"]
    return argv, "../in/real.csv"


def _out_path(variant: str, command: str, root: Path, the_input: str) -> tuple[str, str]:
    """Prepare ``variant`` in ``root``; return (the --out argument, the cwd)."""
    work = root / "work"
    dir_command = command in DIR_COMMANDS
    name = "res" if dir_command else "res.csv"
    if variant == "new":
        return name, "work"
    if variant == "nested":
        return f"a/b/{name}", "work"
    if variant == "new_slash":
        return f"{name}/", "work"
    if variant in ("empty_dir", "empty_dir_slash"):
        (work / "res").mkdir()
        return "res/" if variant.endswith("slash") else "res", "work"
    if variant == "dot_empty":
        return ".", "work"
    if variant == "dot_nonempty":
        write(root / "in" / "notes.txt", "mine")
        return ".", "in"
    if variant == "existing_file":
        write(work / name, "precious\n")
        return name, "work"
    if variant == "foreign_dir":
        write(work / "res" / "notes.txt", "mine")
        write(work / "res" / "data.csv", "a,b\n1,2\n")
        return "res", "work"
    if variant == "under_a_file":
        write(work / "f.txt", "x")
        return f"f.txt/{name}", "work"
    if variant == "the_input":
        return the_input or "../in", "work"
    if variant in ("same_command", "other_command"):
        marker_command = command if variant == "same_command" else "bn cohort"
        if not dir_command:  # commands writing one file: an earlier output file
            write(work / name, "sample_id,a\ns1,1\n")
            return name, "work"
        write(work / "res" / "old.csv", "x\n1\n")
        write(work / "res" / "notes.txt", "mine")
        doc = {"command": marker_command, "version": "0", "files": ["old.csv"]}
        write(work / "res" / MARKER_NAME, json.dumps(doc))
        return "res", "work"
    if variant == "unwritable":
        return f"/proc/bfo-fuzz-{name}", "work"
    if variant == "empty_string":
        return "", "work"
    assert variant == "dangling_link"
    os.symlink(root / "nowhere" / "x", work / name)
    return name, "work"


def _out_refusal(variant: str, command: str, overwrite: bool) -> str | None:
    """Why ``variant`` must be refused by ``command`` (None: it may succeed)."""
    if variant == "dangling_link":
        return None  # writing through the link to its target, or replacing it, are both fine
    if command in DIR_COMMANDS:
        if variant in OK_FOR_DIRS:
            return None
        if variant == "same_command" and overwrite:
            return None
        return f"--out {variant}"
    if variant in OK_FOR_FILES:
        return None
    if variant in ("existing_file", "same_command", "other_command") and overwrite:
        return None
    return f"--out {variant}"


def _out_cases(big: bool) -> list[tuple[str, str, bool]]:
    cases = []
    for command in DIR_COMMANDS + FILE_COMMANDS:
        for variant in OUT_VARIANTS:
            for overwrite in (False, True):
                expensive = command == "sensitivity" or (not big and command == "bn cohort")
                if expensive and _out_refusal(variant, command, overwrite) is None and not big:
                    continue  # a successful sensitivity run takes ~20 s: large budget only
                cases.append((command, variant, overwrite))
    return cases


def test_out_option_of_every_command(request, synth_models):
    """--out: new, nested, trailing slash, existing empty/non-empty/foreign directory, `.`,
    an existing file, a path under a file, the input itself, an earlier output of the same
    or another command (with and without --overwrite), /proc, '' and a dangling link."""

    def body(data, big):
        command, variant, overwrite = data.draw(st.sampled_from(_out_cases(big)), label="case")
        with example_root() as root:
            argv, the_input = _command_argv(command, root, synth_models)
            out, cwd = _out_path(variant, command, root, the_input)
            argv += ["--out", out] + (["--overwrite"] if overwrite else [])
            required = [out]
            json_out = Path(out.rstrip("/"))
            if command == "synth evaluate" and json_out.name:
                required.append(str(json_out.with_name(json_out.stem + "_figures")))
            outputs = required + (["../nowhere"] if variant == "dangling_link" else [])
            inputs = [the_input] if the_input and not the_input.endswith("/") else []
            if cwd == "in":
                argv = [a.replace("../in/", "") for a in argv]
                inputs = [i.replace("../in/", "") for i in inputs]
            case = Case(argv, outputs=outputs, required=required, inputs=inputs, cwd=cwd)
            reason = _out_refusal(variant, command, overwrite)
            if reason:
                case.refuse.append(reason)
            run_case(root, case)

    check_property(request, body, small=16, large=300)


# --------------------------------------------------------------------------- read-only outputs


def _unprivileged(cmd: list[str]) -> list[str]:
    """As root, drop the capabilities that ignore file permissions (as test_output_safety)."""
    if os.geteuid() != 0:
        return cmd
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a directory read-only")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--", *cmd]


def test_read_only_output_directory_of_every_command(request, synth_models):
    """A read-only parent, or a read-only empty --out directory, in a real process: exit 2,
    one line naming --out, nothing written."""
    cases = [(c, w) for c in DIR_COMMANDS + FILE_COMMANDS for w in ("parent", "out")]

    def body(data, big):
        command, where = data.draw(st.sampled_from(cases), label="case")
        with example_root() as root:
            argv, _ = _command_argv(command, root, synth_models)
            ro = root / "work" / "ro"
            ro.mkdir()
            name = "res" if command in DIR_COMMANDS else "res.csv"
            out = f"ro/{name}" if where == "parent" else "ro"
            if where == "out" and command not in DIR_COMMANDS:
                out = f"ro/{name}"  # a file command: its parent is the read-only directory
            os.chmod(ro, 0o555)
            try:
                res = subprocess.run(
                    _unprivileged([sys.executable, "-c", RUN_CLI, *argv, "--out", out]),
                    capture_output=True,
                    text=True,
                    cwd=root / "work",
                    env={**os.environ, "COLUMNS": "40"},
                    timeout=300,
                )
            finally:
                os.chmod(ro, 0o755)
            what = describe(Case([*argv, "--out", out]), Outcome(res.returncode, res.stderr, ""))
            assert res.returncode == 2, what
            lines = [line for line in res.stderr.splitlines() if line.strip()]
            assert "Traceback" not in res.stderr, what
            assert len(lines) == 1 and lines[0].startswith("error: "), what
            assert "--out" in lines[0] or "--figures" in lines[0], what
            assert list(ro.iterdir()) == [], what

    check_property(request, body, small=2, large=14)


# --------------------------------------------------------------------------- sensitivity

PROTOCOL_BASE: list[tuple[str, str, str]] = [
    ("", "days", "2"),
    ("", "patients", "1"),
    ("", "seed", "0"),
    ("diet", "b12_ug_per_day", "4.0"),
]
ARRAY_SECTIONS = {"supplement", "probiotic", "prebiotic"}
ORAL = [("supplement", "route", '"oral"'), ("supplement", "dose_ug", "500")]
PROBIOTIC = [("probiotic", "taxon", '"propionibacterium"'), ("probiotic", "cfu_per_day", "5e10")]
PREBIOTIC = [("prebiotic", "fibre", '"inulin"'), ("prebiotic", "g_per_day", "8")]

# (label, entries to set or add) -- each of these protocols must be refused
PROTOCOL_BAD: list[tuple[str, list[tuple[str, str, str]]]] = [
    *[(f"days = {v}", [("", "days", v)]) for v in ['"two"', "2.5", "true", "[2]", "{ a = 1 }"]],
    *[(f"days = {v}", [("", "days", v)]) for v in ["0", "-2", "36501", "1000000", str(2**70)]],
    *[(f"patients = {v}", [("", "patients", v)]) for v in ["0", "-1", "1000001", '"1"']],
    *[(f"seed = {v}", [("", "seed", v)]) for v in ["-1", str(2**64), '"0"']],
    *[(f"variability = {v}", [("", "variability", v)]) for v in ["nan", "inf", "-0.1", "3.5"]],
    *[(f"substeps_per_day = {v}", [("", "substeps_per_day", v)]) for v in ["0", "289", "1e9"]],
    *[
        (f"b12_ug_per_day = {v}", [("diet", "b12_ug_per_day", v)])
        for v in ["nan", "inf", "-inf", "-1", "1e300", '"4"', "true"]
    ],
    *[(f"meals_per_day = {v}", [("diet", "meals_per_day", v)]) for v in ["0", "9", "2.5"]],
    *[
        (f"dose_ug = {v}", [*ORAL[:1], ("supplement", "dose_ug", v)])
        for v in ["-5", "0", "nan", "inf", "1e300", '"500"']
    ],
    ("route = nasal", [("supplement", "route", '"nasal"'), ORAL[1]]),
    ("oral times_per_day > meals", [*ORAL, ("supplement", "times_per_day", "9")]),
    ("supplement start_day = -1", [*ORAL, ("supplement", "start_day", "-1")]),
    ("supplement end_day = 0", [*ORAL, ("supplement", "end_day", "0")]),
    ("supplement without dose", [ORAL[0]]),
    ("probiotic taxon unknown", [("probiotic", "taxon", '"nope"'), PROBIOTIC[1]]),
    ("probiotic cfu = -1", [PROBIOTIC[0], ("probiotic", "cfu_per_day", "-1")]),
    ("probiotic cfu = 1e30", [PROBIOTIC[0], ("probiotic", "cfu_per_day", "1e30")]),
    ("prebiotic fibre unknown", [("prebiotic", "fibre", '"cellulose"'), PREBIOTIC[1]]),
    ("prebiotic g = -3", [PREBIOTIC[0], ("prebiotic", "g_per_day", "-3")]),
    ("prebiotic g = nan", [PREBIOTIC[0], ("prebiotic", "g_per_day", "nan")]),
    ("host intrinsic_factor", [("host", "intrinsic_factor", '"missing"')]),
    ("host fut2", [("host", "fut2", "3")]),
    ("host tcn2_776", [("host", "tcn2_776", '"AA"')]),
    ("host baseline nan", [("host", "baseline_serum_b12_pmol_l", "nan")]),
    ("host baseline -150", [("host", "baseline_serum_b12_pmol_l", "-150")]),
    ("unknown top-level key", [("", "snacks", "2")]),
    ("unknown diet key", [("diet", "vitamin_c", "1")]),
    ("unknown section", [("lunch", "b12", "1")]),
    ("unknown host key", [("host", "age", "40")]),
    ("unknown microbiome taxon", [("microbiome", "no_such_taxon", "0.5")]),
    ("microbiome fraction 1.5", [("microbiome", "bacteroidales", "1.5")]),
    ("microbiome fraction nan", [("microbiome", "bacteroidales", "nan")]),
    ("microbiome fraction -0.1", [("microbiome", "bacteroidales", "-0.1")]),
    ("activity x100", [("activity.enterobacteriaceae", "de_novo_synthesis", "100.0")]),
    ("activity nan", [("activity.enterobacteriaceae", "uptake", "nan")]),
    ("activity of unknown taxon", [("activity.nope", "uptake", "2.0")]),
    ("unknown activity", [("activity.enterobacteriaceae", "flying", "2.0")]),
    ("parameter out of range", [("parameters", "colonic_absorption_fraction", "5.0")]),
    ("parameter nan", [("parameters", "colonic_absorption_fraction", "nan")]),
    ("unknown parameter", [("parameters", "no_such_parameter", "1.0")]),
]
PROTOCOL_RAW_BAD = {
    "empty": b"",
    "binary": b"\x00\xff\xfe\x89PNG\r\n\x1a\n",
    "latin-1": (TINY_PROTOCOL + "# café\n").encode("latin-1"),
    "utf-16": TINY_PROTOCOL.encode("utf-16"),
    "nul": TINY_PROTOCOL.encode() + b"x = 1\x00\n",
    "unclosed table": (TINY_PROTOCOL + "[host\n").encode(),
    "duplicate key": (TINY_PROTOCOL + "b12_ug_per_day = 3\n").encode(),
    "duplicate table": (TINY_PROTOCOL + "[diet]\nmeals_per_day = 2\n").encode(),
    "missing value": b"days =\n",
    "supplement as a table": (
        TINY_PROTOCOL + '[supplement]\nroute = "oral"\ndose_ug = 5\n'
    ).encode(),
    "diet as a number": b"days = 2\ndiet = 5\n",
}
PROTOCOL_GOOD: list[tuple[str, list[tuple[str, str, str]]]] = [
    ("days = 1", [("", "days", "1")]),
    ("patients = 2", [("", "patients", "2")]),
    ("oral supplement", ORAL),
    ("probiotic", PROBIOTIC),
    ("prebiotic", PREBIOTIC),
    ("IF reduced", [("host", "intrinsic_factor", '"reduced"')]),
    ("microbiome", [("microbiome", "bacteroidales", "0.5")]),
]


def render_protocol(entries: list[tuple[str, str, str]]) -> str:
    table: dict[str, dict[str, str]] = {}
    for section, key, value in entries:
        table.setdefault(section, {})[key] = value
    lines = [f"{k} = {v}" for k, v in table.pop("", {}).items()]
    for section, keys in table.items():
        lines.append(f"[[{section}]]" if section in ARRAY_SECTIONS else f"[{section}]")
        lines += [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def draw_protocol(data, case: Case, *, bad: bool, big: bool) -> bytes:
    """The protocol text; with ``bad`` one invalid edit (the case must be refused)."""
    entries = list(PROTOCOL_BASE)
    if big:
        for label, edit in data.draw(st.lists(st.sampled_from(PROTOCOL_GOOD), max_size=2)):
            entries += edit
            case.notes.append(label)
    if not bad:
        return render_protocol(entries).encode()
    if data.draw(st.integers(0, 4), label="raw?") == 0:
        label = data.draw(st.sampled_from(sorted(PROTOCOL_RAW_BAD)), label="raw protocol")
        case.bad(f"protocol: {label}")
        return PROTOCOL_RAW_BAD[label]
    label, edit = data.draw(st.sampled_from(PROTOCOL_BAD), label="protocol edit")
    case.bad(f"protocol: {label}")
    return render_protocol(entries + edit).encode()


@dataclass(frozen=True)
class Opt:
    """An option with valid and invalid values (``None`` in ``good``: leave it out)."""

    flag: str
    good: tuple[str | None, ...]
    bad: tuple[str, ...]


def draw_option(data, opt: Opt, case: Case, *, bad: bool) -> list[str]:
    if bad:
        value = data.draw(st.sampled_from(opt.bad), label=opt.flag)
        case.bad(f"{opt.flag} {value!r}")
    else:
        value = data.draw(st.sampled_from(opt.good), label=opt.flag)
    return [] if value is None else [opt.flag, value]


def test_sensitivity_protocols_and_options(request):
    """sensitivity: malformed protocols (binary, non-UTF-8, TOML errors, wrong types, unknown
    keys, huge numbers, NaN/inf, negative doses, unknown choices) and option values (--day,
    --sobol-n, --top-k, --corners, --seed, --device)."""
    dev_good, dev_bad = device_values()
    opts = {
        "--day": Opt("--day", ("1",), ("0", "-1", "3", "1000000000", str(2**64), "x", "")),
        "--top-k": Opt("--top-k", ("1", str(10**9)), ("0", "-1", "x")),
        "--corners": Opt("--corners", ("0", "1"), ("-1", "x", str(10**12))),
        "--seed": Opt("--seed", (None, *SEED_GOOD), tuple(SEED_BAD)),
        "--device": Opt("--device", (None, *dev_good), tuple(dev_bad)),
    }
    sobol_bad = ("0", "1", "3", "-4", "x", str(2**40))

    def body(data, big):
        kinds = ["protocol", "path", "--sobol-n", "unknown option", *opts]
        bad = pick_bad(data, kinds, big)
        case = Case([], outputs=["out"], required=["out"], inputs=["../in/p.toml"])
        with example_root() as root:
            proto = write(
                root / "in" / "p.toml", draw_protocol(data, case, bad="protocol" in bad, big=big)
            )
            path = "../in/p.toml"
            if "path" in bad:
                path = data.draw(st.sampled_from(["../in/missing.toml", "../in", "-", ""]))
                case.bad(f"protocol path {path!r}")
            argv = ["sensitivity", path, "--out", "out"]
            for flag, opt in opts.items():
                argv += draw_option(data, opt, case, bad=flag in bad)
            if "--day" not in argv:
                argv += ["--day", "1"]  # the default, 90, is after the protocol's end
            if "--sobol-n" in bad:
                argv += ["--sobol", "--sobol-n", data.draw(st.sampled_from(sobol_bad))]
                case.bad(f"--sobol-n {argv[-1]}")
            elif big and data.draw(st.booleans(), label="sobol"):
                argv += ["--sobol", "--sobol-n", "2"]
            else:
                argv += ["--no-sobol"]
            if "unknown option" in bad:
                argv += data.draw(st.sampled_from([["--days", "3"], ["--sobol-n"], ["--out"]]))
                case.bad("unknown or incomplete option")
            case.argv = argv
            case.notes.append(f"protocol {proto.read_bytes()[:200]!r}")
            run_case(root, case)

    check_property(request, body, small=20, large=80)


# --------------------------------------------------------------------------- bn


def test_bn_learn_tables_and_options(request):
    """bn learn: malformed tables (binary, non-UTF-8, NaN/inf, negative and text cells,
    duplicate columns and ids, transposed, one row or column, ragged rows) and option
    values (--method, --bootstrap, --alpha, --threshold, --jobs, --missing, --na-values,
    --seed)."""
    opts = {
        "--method": Opt("--method", (None, "hybrid", "pc", "hc", "mixed"), ("ges", "", "HYBRID")),
        "--bootstrap": Opt("--bootstrap", (None, "0", "1", "2"), ("-1", "10001", "x")),
        "--alpha": Opt("--alpha", (None, "0.05", "0.5"), ("0", "0.6", "nan", "-inf", "x")),
        "--threshold": Opt("--threshold", (None, "0.5", "1"), ("0", "1.5", "nan", "x")),
        "--jobs": Opt("--jobs", (None, "1", "2"), ("0", "-2", "x")),
        "--missing": Opt("--missing", (None, "drop", "em"), ("impute", "")),
        "--na-values": Opt("--na-values", (None, "NA", "NA,null", ",", ""), ()),
        "--seed": Opt("--seed", (None, *SEED_GOOD), tuple(SEED_BAD)),
    }

    def body(data, big):
        bad = pick_bad(data, ["table", *[k for k, o in opts.items() if o.bad]], big, cheap=True)
        suffix = data.draw(st.sampled_from([".csv", ".csv", ".tsv", ".txt", ".CSV", ""]))
        grid = frame_grid(bn_frame(), "patient_id", BN_NUMERIC)
        table = draw_table(data, grid, suffix, bad="table" in bad, rules=BN_RULES)
        case = Case([], outputs=["net"], required=["net"], inputs=[f"../in/t{suffix}"])
        case.notes.append(table.label)
        if suffix in (".csv", ".CSV", ""):  # read as CSV: the rules hold
            case.refuse += table.refuse
        with example_root() as root:
            write(root / "in" / f"t{suffix}", table.content)
            argv = ["bn", "learn", "--data", f"../in/t{suffix}", "--out", "net"]
            for flag, opt in opts.items():
                argv += draw_option(data, opt, case, bad=flag in bad)
            if "--na-values" in argv:  # cells named there are missing, not text
                na = argv[argv.index("--na-values") + 1].split(",")
                case.refuse = [r for r in case.refuse if r not in {f"text cell {v!r}" for v in na}]
            if data.draw(st.booleans(), label="--no-expert"):
                argv.append("--no-expert")
            case.argv = argv
            run_case(root, case)

    check_property(request, body, small=16, large=250)


def test_bn_cohort_options(request):
    """bn cohort: --n, --days, --start, --seed, --discrete (huge, zero, negative, text)."""
    opts = {
        "--n": Opt("--n", ("1", "2"), ("0", "-1", "x", str(2**64), "1000000000000", "1e3")),
        "--days": Opt("--days", ("1",), ("0", "-5", "36501", "100000", "x")),
        "--start": Opt("--start", (None, "regimen", "diet"), ("trial", "", "Regimen")),
        "--seed": Opt("--seed", (None, *SEED_GOOD), tuple(SEED_BAD)),
    }

    def body(data, big):
        bad = pick_bad(data, list(opts), big)
        case = Case([], outputs=["c.csv"], required=["c.csv"])
        with example_root() as root:
            argv = ["bn", "cohort", "--out", "c.csv"]
            for flag, opt in opts.items():
                argv += draw_option(data, opt, case, bad=flag in bad)
            if data.draw(st.booleans(), label="--discrete"):
                argv.append("--discrete")
            case.argv = argv
            run_case(root, case)

    check_property(request, body, small=20, large=60)


BIF_EDITS = ["truncate", "number", "drop_line", "duplicate_line", "rename", "binary", "empty"]


def _mutate_text(data, text: str, kind: str) -> str | bytes:
    lines = text.splitlines()
    if kind == "truncate":
        return text[: data.draw(st.integers(0, max(0, len(text) - 1)), label="cut")]
    if kind == "number":
        numbers = list(re.finditer(r"\d+\.\d+(e-?\d+)?", text))
        if not numbers:
            return text
        m = data.draw(st.sampled_from(numbers), label="number")
        value = data.draw(st.sampled_from(["nan", "-0.5", "2.0", "abc", "1e400", "", "inf"]))
        return text[: m.start()] + value + text[m.end() :]
    if kind == "drop_line" and lines:
        i = data.draw(st.integers(0, len(lines) - 1), label="line")
        return "\n".join(lines[:i] + lines[i + 1 :])
    if kind == "duplicate_line" and lines:
        i = data.draw(st.integers(0, len(lines) - 1), label="line")
        return "\n".join(lines[: i + 1] + lines[i:])
    if kind == "rename":
        return text.replace("serum_b12", data.draw(st.sampled_from(["", "serum b12", "diet"])))
    if kind == "binary":
        return b"\x00\xff\xfe" + text.encode()[:40]
    return ""


@pytest.fixture(scope="module")
def bn_states(bn_network) -> dict[str, list[str]]:
    from biofluxopt.bn import load_network

    net = load_network(bn_network)
    return {n: list(net.get_cpds(n).state_names[n]) for n in sorted(net.nodes())}


BROKEN_EVIDENCE = [
    "height=tall",
    "diet",
    "=vegan",
    "diet=",
    "diet=carnivore",
    "diet=vegan=1",
    ",",
    "diet=vegan,diet=omnivore",
    "DIET=vegan",
    " ;",
    "fut2:secretor",
]


def _draw_evidence(data, states: dict[str, list[str]], case: Case, *, bad: bool) -> str:
    names = sorted(states)
    items = data.draw(
        st.lists(st.sampled_from(names), min_size=1 if bad else 0, max_size=2, unique=True)
    )
    parts = [f"{n}={data.draw(st.sampled_from(states[n]))}" for n in items]
    if bad:
        broken = data.draw(
            st.sampled_from(BROKEN_EVIDENCE),
            label="evidence",
        )
        parts.append(broken)
        case.bad(f"--evidence item {broken!r}")
    return ",".join(parts)


def test_bn_query_and_explain(request, bn_network, bn_states):
    """bn query / explain: corrupted .bif/.xmlbif files, missing or wrong model paths,
    unknown targets and states, malformed evidence."""
    names = sorted(bn_states)

    def body(data, big):
        command = data.draw(st.sampled_from(["query", "explain"]), label="command")
        bad = pick_bad(data, ["model", "target", "evidence", "state"], big, cheap=True)
        case = Case([])
        with example_root() as root:
            model = "../in/net"
            shutil.copytree(bn_network, root / "in" / "net")
            if "model" in bad:
                how = data.draw(
                    st.sampled_from(
                        [*BIF_EDITS, "xmlbif", "missing", "empty_dir", "wrong_suffix", "table"]
                    ),
                    label="model",
                )
                case.notes.append(f"model: {how}")
                bif = root / "in" / "net" / "network.bif"
                if how in BIF_EDITS:
                    edited = _mutate_text(data, bif.read_text(), how)
                    write(bif, edited)
                    if how in ("binary", "empty") or (
                        how == "rename" and "diet" not in str(edited)
                    ):
                        case.bad(f"model: {how}")
                    model = "../in/net/network.bif" if data.draw(st.booleans()) else model
                elif how == "xmlbif":
                    xml = root / "in" / "net" / "network.xmlbif"
                    kind = data.draw(st.sampled_from(BIF_EDITS), label="edit")
                    write(xml, _mutate_text(data, xml.read_text(), kind))
                    model = "../in/net/network.xmlbif"
                    case.bad("model: xmlbif " + kind, kind in ("binary", "empty", "truncate"))
                elif how == "missing":
                    model = "../in/none.bif"
                    case.bad("model: missing")
                elif how == "empty_dir":
                    (root / "in" / "empty").mkdir()
                    model = "../in/empty"
                    case.bad("model: empty directory")
                elif how == "wrong_suffix":
                    shutil.copy(bif, root / "in" / "net.txt")
                    model = "../in/net.txt"
                    case.bad("model: .txt")
                else:
                    bn_frame().to_csv(root / "in" / "t.bif")
                    model = "../in/t.bif"
                    case.bad("model: a CSV table")
            argv = ["bn", command, "--model", model]
            evidence = _draw_evidence(data, bn_states, case, bad="evidence" in bad)
            if command == "explain" and not evidence:
                case.bad("explain without evidence")
            if evidence or command == "explain" or data.draw(st.booleans()):
                argv += ["--evidence", evidence]
            target = data.draw(st.sampled_from(names), label="target")
            if "target" in bad:
                target = data.draw(st.sampled_from(["height", "", "Serum_B12", " "]))
                case.bad(f"--target {target!r}")
            argv += ["--target", target]
            if command == "query" and data.draw(st.booleans(), label="--mpe"):
                argv.append("--mpe")
            if command == "explain":
                state = data.draw(st.sampled_from(bn_states[target] if target in names else ["x"]))
                if "state" in bad:
                    state = data.draw(st.sampled_from(["very_low", "", "DEFICIENT"]))
                    case.bad(f"--state {state!r}")
                argv += ["--state", state]
            case.argv = argv
            run_case(root, case)

    check_property(request, body, small=14, large=250)


# --------------------------------------------------------------------------- synth


def _draw_metadata(data, case: Case, root: Path, *, bad: bool) -> str:
    """A sample metadata file (subject, cohort); with ``bad`` a broken one."""
    meta = synth_metadata(synth_counts())
    path = root / "in" / "meta.csv"
    if not bad:
        meta.to_csv(path)
        return "../in/meta.csv"
    how = data.draw(
        st.sampled_from(["missing", "binary", "empty", "ids", "duplicate ids", "directory"]),
        label="metadata",
    )
    case.bad(f"--metadata: {how}")
    if how == "missing":
        return "../in/nope.csv"
    if how == "directory":
        return "../in"
    if how == "binary":
        write(path, b"\x00\xff\xfe" * 5)
    elif how == "empty":
        write(path, b"")
    elif how == "ids":
        meta.iloc[: len(meta) // 2].to_csv(path)
    else:
        meta.index = [meta.index[0], *meta.index[:-1]]
        meta.to_csv(path)
    return "../in/meta.csv"


def test_synth_train_tables_and_options(request):
    """synth train: malformed tables (every table mutation), transposed and contradicting
    --orientation, broken metadata, misspelt --subject-column / --condition-column, and
    option values (--model, --iterations, --test-fraction, --min-depth, --max-taxa,
    --near-copy-quantile, --threads, --seed)."""
    opts = {
        "--model": Opt("--model", ("bootstrap", "dirichlet-multinomial", "gan"), ("vae", "")),
        "--test-fraction": Opt(
            "--test-fraction", (None, "0", "0.2"), ("-0.1", "0.9", "0.95", "1", "nan", "x")
        ),
        "--min-depth": Opt("--min-depth", (None, "0", "100"), ("-1", "nan", "inf", "x")),
        "--max-taxa": Opt("--max-taxa", (None, "2", "100"), ("1", "0", "-3", "x")),
        "--near-copy-quantile": Opt(
            "--near-copy-quantile", (None, "0.05", "0.5"), ("0", "1", "nan", "-1", "inf", "x")
        ),
        "--threads": Opt("--threads", (None, "1", "4"), ("0", "-1", "x")),
        "--seed": Opt("--seed", (None, *SEED_GOOD), tuple(SEED_BAD)),
        "--orientation": Opt(
            "--orientation", (None, "auto", "samples_by_taxa"), ("taxa_by_samples", "sideways")
        ),
    }
    kinds = ["table", "metadata", "--subject-column", "--condition-column", "--iterations"]

    def body(data, big):
        bad = pick_bad(data, kinds + list(opts), big, cheap=True)
        suffix = data.draw(st.sampled_from([".csv", ".csv", ".tsv", ".txt", ".biom"]))
        grid = frame_grid(synth_counts(), "sample_id", [])
        grid.numeric = set(grid.header[1:])
        table = draw_table(data, grid, suffix, bad="table" in bad, rules=SYNTH_RULES)
        case = Case([], outputs=["model"], required=["model"], inputs=[f"../in/t{suffix}"])
        case.notes.append(table.label)
        if suffix == ".biom":  # read as BIOM (classic TSV: taxa × samples): raw damage only
            case.refuse += [r for r in table.refuse if r.startswith("table:")]
        else:
            case.refuse += table.refuse
        with example_root() as root:
            write(root / "in" / f"t{suffix}", table.content)
            argv = ["synth", "train", "--data", f"../in/t{suffix}", "--out", "model"]
            for flag, opt in opts.items():
                if flag == "--orientation" and flag in bad and "table" in bad:
                    continue  # a transposed table makes taxa_by_samples right
                argv += draw_option(data, opt, case, bad=flag in bad)
            gan = argv[argv.index("--model") + 1] == "gan"
            if "--iterations" in bad:
                value = data.draw(st.sampled_from(["0", "-1", "x", "1.5"]), label="--iterations")
                argv += ["--iterations", value]
                case.bad(f"--iterations {value}")
            elif gan:
                argv += ["--iterations", data.draw(st.sampled_from(["1", "2"]))]
            with_meta = "metadata" in bad or data.draw(st.booleans(), label="metadata?")
            if with_meta:
                argv += ["--metadata", _draw_metadata(data, case, root, bad="metadata" in bad)]
            for flag, good in (("--subject-column", "subject"), ("--condition-column", "cohort")):
                if flag in bad:
                    value = data.draw(st.sampled_from([good[:-1], good.upper(), "", "sample_id"]))
                    argv += [flag, value]
                    case.bad(f"{flag} {value!r}")
                elif with_meta and data.draw(st.booleans(), label=flag):
                    argv += [flag, good]
            if data.draw(st.booleans(), label="--relative"):
                argv.append("--relative")
            case.argv = argv
            run_case(root, case)

    check_property(request, body, small=60, large=400)


MODEL_FILES = ["model.json", "model.safetensors", "train.csv"]
JSON_JUNK = [None, "x", -1, 0, 10**30, 1e308, float("nan"), [], {}, True, ""]


def _json_paths(doc, prefix=()) -> list[tuple]:
    paths = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            paths.append((*prefix, k))
            paths += _json_paths(v, (*prefix, k))
    elif isinstance(doc, list) and doc:
        paths.append((*prefix, 0))
        paths += _json_paths(doc[0], (*prefix, 0))
    return paths


def _set_json(doc, path: tuple, value) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


def _break_model(data, model: Path, case: Case, near_copy: bool) -> None:
    how = data.draw(
        st.sampled_from(["json value", "json text", "weights", "train.csv", "delete", "dir"]),
        label="model edit",
    )
    if how == "json value":
        doc = json.loads((model / "model.json").read_text())
        path = data.draw(st.sampled_from(_json_paths(doc)), label="json path")
        value = data.draw(st.sampled_from(JSON_JUNK), label="json value")
        _set_json(doc, path, value)
        write(model / "model.json", json.dumps(doc))
        case.notes.append(f"model.json {'.'.join(map(str, path))} = {value!r}")
        return
    if how == "json text":
        text = (model / "model.json").read_text()
        kind = data.draw(st.sampled_from(["truncate", "binary", "empty", "drop_line"]))
        write(model / "model.json", _mutate_text(data, text, kind))
        case.notes.append(f"model.json: {kind}")
        case.bad(f"model.json {kind}", kind != "drop_line")
        return
    if how == "weights":
        weights = model / "model.safetensors"
        content = weights.read_bytes() if weights.exists() else b""
        kind = data.draw(st.sampled_from(["truncate", "garbage", "empty", "nan"]))
        if kind == "nan" and content:
            from safetensors.numpy import load_file, save_file

            tensors = load_file(str(weights))
            name = data.draw(st.sampled_from(sorted(tensors)), label="tensor")
            if tensors[name].dtype.kind == "f" and tensors[name].size:
                tensors[name] = tensors[name].copy()
                tensors[name].flat[0] = np.nan
                save_file(tensors, str(weights))
            case.notes.append(f"model.safetensors: NaN in {name}")
            return
        cut = data.draw(st.integers(0, max(0, len(content) - 1)), label="cut")
        new = {"truncate": content[:cut], "garbage": b"\x00\xff" * 16, "empty": b""}.get(kind)
        write(weights, new if new is not None else content)
        case.notes.append(f"model.safetensors: {kind}")
        return
    if how == "train.csv":
        grid = frame_grid(pd.read_csv(model / "train.csv", index_col=0), "sample_id", [])
        grid.numeric = set(grid.header[1:])
        table = draw_table(data, grid, ".csv", bad=True, rules=SYNTH_RULES)
        write(model / "train.csv", table.content)
        case.notes.append(f"train.csv: {table.label}")
        return
    name = data.draw(st.sampled_from(MODEL_FILES), label="file")
    target = model / name
    if target.exists():
        target.unlink()
    if how == "dir":
        target.mkdir()
    case.notes.append(f"{name}: {'deleted' if how == 'delete' else 'a directory'}")
    case.bad(f"{name} {how}", name == "model.json" or (name == "train.csv" and near_copy))


def test_synth_sample_models_and_options(request, synth_models):
    """synth sample: broken model directories (model.json values and text, weights with
    NaN or truncated, train.csv malformed, files deleted or directories) and option values
    (--n, --condition, --seed, --out as a directory, an input, an existing file)."""
    opts = {
        "--n": Opt("--n", ("1", "5"), ("0", "-1", "x", "2000000000", str(2**64))),
        "--seed": Opt("--seed", (None, *SEED_GOOD), tuple(SEED_BAD)),
    }

    def body(data, big):
        kind = data.draw(st.sampled_from(sorted(synth_models)), label="model kind")
        bad = pick_bad(data, ["model", "--condition", "--out", *opts], big, cheap=True)
        case = Case([], outputs=["syn.csv"], required=["syn.csv"])
        with example_root() as root:
            model = root / "in" / "model"
            shutil.copytree(synth_models[kind], model)
            near_copy = data.draw(st.booleans(), label="near-copy filter")
            if "model" in bad:
                _break_model(data, model, case, near_copy)
            out = "syn.csv"
            if "--out" in bad:
                out = data.draw(
                    st.sampled_from(["../in/model/train.csv", "../in/model", "syn/", ".", ""])
                )
                case.bad(f"--out {out!r}")
            argv = ["synth", "sample", "--model", "../in/model", "--out", out]
            case.inputs = [f"../in/model/{name}" for name in MODEL_FILES]
            for flag, opt in opts.items():
                argv += draw_option(data, opt, case, bad=flag in bad)
            labels = ["x", "y"] if kind == "gan" else []
            if "--condition" in bad:
                value = data.draw(st.sampled_from(["z", "", "X", None] if labels else ["x"]))
                if value is not None:
                    argv += ["--condition", value]
                case.bad(f"--condition {value!r}")
            elif labels:
                argv += ["--condition", data.draw(st.sampled_from(labels))]
            if not near_copy:
                argv.append("--no-near-copy-filter")
            if data.draw(st.booleans(), label="--overwrite"):
                argv.append("--overwrite")
            case.argv = argv
            run_case(root, case)

    check_property(request, body, small=40, large=300)


def test_synth_evaluate_tables_and_options(request):
    """synth evaluate: malformed real, synthetic or train tables (including identical
    synthetic samples and other taxa), --figures and --out as existing files or
    directories, --orientation and --seed."""

    def body(data, big):
        bad = pick_bad(
            data, ["real", "synthetic", "train", "--out", "--figures", "--seed"], big, cheap=True
        )
        case = Case([], outputs=["m.json", "m_figures"], required=["m.json", "m_figures"])
        with example_root() as root:
            argv = ["synth", "evaluate", "--out", "m.json"]
            for i, role in enumerate(["real", "synthetic", "train"]):
                frame = synth_counts(n=12, seed=i)
                frame = frame.div(frame.sum(axis=1), axis=0)
                if role == "synthetic" and data.draw(st.integers(0, 5), label="identical?") == 0:
                    frame.iloc[:, :] = frame.iloc[0].to_numpy()
                    case.notes.append("identical synthetic samples")
                grid = frame_grid(frame, "sample_id", list(frame.columns))
                table = draw_table(data, grid, ".csv", bad=role in bad, rules=SYNTH_RULES)
                if role != "real":  # only the real samples need at least 4
                    table.refuse = [r for r in table.refuse if r not in ("one row", "few rows")]
                if role == "train" and role not in bad and data.draw(st.booleans(), label="no"):
                    continue
                write(root / "in" / f"{role}.csv", table.content)
                argv += [f"--{role}", f"../in/{role}.csv"]
                case.inputs.append(f"../in/{role}.csv")
                case.notes.append(f"{role}: {table.label}")
                case.refuse += [f"{role}: {r}" for r in table.refuse]
            if "--out" in bad:
                how = data.draw(st.sampled_from(["existing", "dir", "slash", "input"]))
                case.bad(f"--out {how}")
                if how == "existing":
                    write(root / "work" / "m.json", "{}")
                elif how == "dir":
                    (root / "work" / "m.json").mkdir()
                argv[3] = {"slash": "m.json/", "input": "../in/real.csv"}.get(how, "m.json")
            if "--figures" in bad:
                how = data.draw(st.sampled_from(["file", "foreign dir", "input", "empty"]))
                case.bad(f"--figures {how}")
                if how == "file":
                    write(root / "work" / "figs", "x")
                elif how == "foreign dir":
                    write(root / "work" / "figs" / "mine.txt", "x")
                argv += ["--figures", {"input": "../in", "empty": ""}.get(how, "figs")]
                case.outputs.append("figs")
                case.required = ["m.json", "figs"]
            argv += draw_option(
                data, Opt("--seed", (None, "0", "7"), tuple(SEED_BAD)), case, bad="--seed" in bad
            )
            if data.draw(st.integers(0, 5), label="orientation?") == 0:
                argv += ["--orientation", "taxa_by_samples"]
                case.bad("--orientation taxa_by_samples on a samples table")
            case.argv = argv
            run_case(root, case)

    check_property(request, body, small=24, large=250)


# --------------------------------------------------------------------------- found by the fuzz


def _regression_case(name: str, root: Path, models: dict[str, Path]) -> Case:
    """The smallest form of each failure the fuzz found (fixed since)."""
    inp = root / "in"
    synth_counts().to_csv(inp / "c.csv")
    write(inp / "p.toml", TINY_PROTOCOL)
    for role, seed in (("real", 1), ("syn", 2)):
        synth_counts(seed=seed).to_csv(inp / f"{role}.csv")
    evaluate = ["synth", "evaluate", "--real", "../in/real.csv", "--synthetic", "../in/syn.csv"]
    train = ["synth", "train", "--data", "../in/c.csv", "--model", "bootstrap"]
    if name == "header-only BIOM table":  # ValueError from biom's to_dataframe (exit 1)
        write(inp / "t.biom", "sample_id\tk__Bacteria;g__G0\tk__Bacteria;g__G1\n")
        return Case(["synth", "train", "--data", "../in/t.biom", "--out", "m"])
    if name == "model.json kind is a list":  # TypeError: unhashable type (exit 1)
        shutil.copytree(models["bootstrap"], inp / "model")
        doc = json.loads((inp / "model" / "model.json").read_text())
        doc["kind"] = []
        write(inp / "model" / "model.json", json.dumps(doc))
        return Case(["synth", "sample", "--model", "../in/model", "--n", "2", "--out", "s.csv"])
    if name == "sample --out with a trailing slash":  # wrote the file 's' (exit 0)
        shutil.copytree(models["bootstrap"], inp / "model")
        return Case(["synth", "sample", "--model", "../in/model", "--n", "2", "--out", "s/"])
    if name == "evaluate --out with a trailing slash":  # wrote the file 'm.json' (exit 0)
        return Case([*evaluate, "--out", "m.json/"])
    if name == "evaluate --figures ''":  # figures went into the working directory (exit 0)
        return Case([*evaluate, "--out", "m.json", "--figures", ""])
    if name == "train --subject-column ''":  # silently one subject per sample (exit 0)
        return Case([*train, "--out", "m", "--subject-column", ""])
    if name == "train --out ''":  # wrote into the working directory (exit 0)
        return Case([*train, "--out", ""])
    if name == "simulate --out ''":
        return Case(["simulate", "../in/p.toml", "--out", ""])
    assert name == "sensitivity --out ''"
    return Case(["sensitivity", "../in/p.toml", "--out", "", "--day", "1", "--no-sobol"])


@pytest.mark.parametrize(
    "name",
    [
        "header-only BIOM table",
        "model.json kind is a list",
        "sample --out with a trailing slash",
        "evaluate --out with a trailing slash",
        "evaluate --figures ''",
        "train --subject-column ''",
        "train --out ''",
        "simulate --out ''",
        "sensitivity --out ''",
    ],
)
def test_failures_found_by_the_fuzz_stay_fixed(name, synth_models):
    with example_root() as root:
        case = _regression_case(name, root, synth_models)
        case.refuse.append(name)
        outcome = run_case(root, case)
        assert "internal error" not in outcome.err


def test_knowledge_read_toml_refuses_binary_in_one_line(tmp_path):
    from biofluxopt._util import ConfigError
    from biofluxopt.knowledge import read_toml

    path = write(tmp_path / "bin.toml", b"\x00\xff\xfe\x89PNG")
    with pytest.raises(ConfigError, match=r"bin\.toml: not a UTF-8 text file") as info:
        read_toml(path)
    assert "\n" not in str(info.value)
