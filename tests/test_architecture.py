"""The package's import rules (docs/architecture.md), checked on the source by ``ast``.

1. **Public surfaces only.** A module of sub-package A imports another sub-package B only
   through B's public ``__init__``: never a private module or name of B (``biofluxopt.B._x``,
   ``from biofluxopt.B import _x``, ``from ..B._x import y``). ``biofluxopt._util`` is the
   package's shared internal toolbox: its ``__init__`` is its surface, so ``biofluxopt._util``
   is fine and ``biofluxopt._util._io`` is not. Inside one sub-package anything goes.
2. **Data flows forward.** A sub-package imports only those above it in the table of
   docs/architecture.md (:data:`LAYERS`, checked against the document).
3. **No global plotting state.** Library code draws with matplotlib's object API: no
   ``matplotlib.use`` and no ``matplotlib.pyplot``.

Every import counts: top level, inside functions, under ``TYPE_CHECKING``, and
``importlib.import_module("biofluxopt...")`` with a literal name.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "biofluxopt"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

LAYERS = ("_util", "knowledge", "data", "sim", "bn", "synth", "marl", "trial", "cli")
"""Sub-packages in the order of docs/architecture.md: each may import only those before it."""

DATA_PACKAGES = frozenset({"examples"})
"""Packages that only ship files (no code): importable by anyone, importing nothing."""


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_name(path: Path, src: Path) -> tuple[str, bool]:
    """Dotted module name of ``path`` under ``src`` (the ``biofluxopt`` directory), and whether
    it is a package ``__init__``."""
    rel = path.relative_to(src.parent).with_suffix("")
    parts = list(rel.parts)
    is_init = parts[-1] == "__init__"
    if is_init:
        parts = parts[:-1]
    return ".".join(parts), is_init


def _imports(tree: ast.AST, module: str, is_init: bool) -> list[tuple[int, list[str]]]:
    """Every imported dotted path in ``tree``, as ``(line, parts)``, relative imports resolved;
    ``from M import a, b`` gives ``M.a`` and ``M.b`` (a name may be a module)."""
    package = module.split(".") if is_init else module.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
            else:
                base = []
            base = base + (node.module.split(".") if node.module else [])
            found += [
                (node.lineno, base + ([] if alias.name == "*" else [alias.name]))
                for alias in node.names
            ]
        elif (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id == "import_module")
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and not node.args[0].value.startswith(".")
        ):
            found.append((node.lineno, node.args[0].value.split(".")))
    return found


def check_source(text: str, module: str, *, is_init: bool = False, path: str = "") -> list:
    """Violations of rules 1–3 in the source ``text`` of module ``module`` (dotted name)."""
    own = module.split(".")
    own_pkg = own[1] if len(own) > 1 and (is_init or len(own) > 2) else None
    tree = ast.parse(text)
    out = []
    mpl_names = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name == "matplotlib"
    }
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "use"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in mpl_names
        ):
            out.append(
                Violation(
                    path,
                    node.lineno,
                    "calls matplotlib.use: draw on matplotlib.figure.Figure with a "
                    "FigureCanvasAgg (object API), without switching the global backend",
                )
            )
    for line, parts in _imports(tree, module, is_init):
        if parts[:2] == ["matplotlib", "pyplot"] or parts == ["matplotlib", "use"]:
            out.append(
                Violation(
                    path,
                    line,
                    f"imports {'.'.join(parts)}: draw on matplotlib.figure.Figure with a "
                    "FigureCanvasAgg (object API), without pyplot or a global backend",
                )
            )
            continue
        if parts[0] != "biofluxopt" or len(parts) < 2:
            continue
        dotted = ".".join(parts)
        target = parts[1]
        if own_pkg is not None and target == own_pkg:
            continue  # inside one sub-package anything goes
        if target.startswith("__") and target.endswith("__"):
            continue  # biofluxopt.__version__
        private = [p for p in parts[1:] if _is_private(p) and not (p == "_util" and p == target)]
        if private:
            surface = f"biofluxopt.{target}" if not _is_private(target) or target == "_util" else ""
            hint = (
                f"import the public name from {surface} (export it there, with __all__)"
                if surface
                else f"{target} is private to the package"
            )
            out.append(Violation(path, line, f"imports private {dotted}: {hint}"))
            continue
        if own_pkg in DATA_PACKAGES:
            out.append(Violation(path, line, f"data package {own_pkg} imports {dotted}"))
        elif target in DATA_PACKAGES or own_pkg is None:
            continue
        elif target not in LAYERS:
            out.append(
                Violation(
                    path,
                    line,
                    f"imports {dotted}: sub-package {target} is not in docs/architecture.md's "
                    "table (add it, and to LAYERS here)",
                )
            )
        elif own_pkg in LAYERS and LAYERS.index(target) >= LAYERS.index(own_pkg):
            out.append(
                Violation(
                    path,
                    line,
                    f"imports {dotted}: data flows backward ({own_pkg} may import only "
                    f"{', '.join(LAYERS[: LAYERS.index(own_pkg)]) or 'nothing'}; "
                    "docs/architecture.md)",
                )
            )
    return out


def package_violations(src: Path = SRC) -> list[Violation]:
    """Violations of rules 1–3 in every module under ``src``."""
    out = []
    for path in sorted(src.rglob("*.py")):
        module, is_init = _module_name(path, src)
        rel = str(path.relative_to(src.parents[1]))
        out += check_source(path.read_text(encoding="utf-8"), module, is_init=is_init, path=rel)
    return out


# ---------------------------------------------------------------------------------------------
# The package itself
# ---------------------------------------------------------------------------------------------


def test_no_private_cross_package_imports_and_no_backward_flow():
    found = package_violations()
    assert not found, "import rules of docs/architecture.md broken:\n" + "\n".join(map(str, found))


def test_every_sub_package_is_declared():
    packages = {p.name for p in SRC.iterdir() if (p / "__init__.py").is_file()}
    undeclared = packages - set(LAYERS) - DATA_PACKAGES
    assert not undeclared, (
        f"sub-packages {sorted(undeclared)} are not in docs/architecture.md's table; add a row "
        "(job, public surface, depends on) and put them in LAYERS"
    )
    assert set(LAYERS) <= packages


def _documented_layers() -> tuple[str, ...]:
    """Sub-packages in the first table of docs/architecture.md (its "sub-package" column)."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    table = text[text.index("| sub-package |") :].split("\n\n", 1)[0]
    return tuple(re.findall(r"^\| `([a-z_]+)` \|", table, re.M))


def test_layers_follow_the_architecture_document():
    documented = _documented_layers()
    assert documented == LAYERS, (
        f"docs/architecture.md lists {documented}; update LAYERS in {Path(__file__).name} "
        "to its order"
    )


# ---------------------------------------------------------------------------------------------
# The checker, on made-up modules (so that the rules above can fail)
# ---------------------------------------------------------------------------------------------


def _messages(text: str, module: str, *, is_init: bool = False) -> list[str]:
    return [v.message for v in check_source(text, module, is_init=is_init)]


@pytest.mark.parametrize(
    ("text", "module", "expected"),
    [
        ("from biofluxopt.sim._run import run_protocol", "biofluxopt.cli._x", "private"),
        ("import biofluxopt.data._table", "biofluxopt.synth._x", "private"),
        ("from biofluxopt.data import _table", "biofluxopt.synth._x", "private"),
        ("from .._util._io import output_directory", "biofluxopt.sim._x", "private"),
        ("from biofluxopt._util._io import output_directory", "biofluxopt.bn._x", "private"),
        ("from biofluxopt._util import _io", "biofluxopt.bn._x", "private"),
        ("from ..knowledge._causal import g", "biofluxopt.bn._x", "private"),
        ("from ...knowledge import _causal", "biofluxopt.bn.sub._x", "private"),
        ("from ..sim import _setting", "biofluxopt.cli._x", "private"),
        ("from .sim import _setting", "biofluxopt.__main__", "private"),
        ("def f():\n    from biofluxopt.sim._run import x", "biofluxopt.cli._x", "private"),
        ("importlib.import_module('biofluxopt.sim._run')", "biofluxopt.bn._x", "private"),
        ("from ..bn import learn_network", "biofluxopt.sim._x", "backward"),
        ("from biofluxopt.cli import main", "biofluxopt.synth._x", "backward"),
        ("from biofluxopt.synth import CompositionWGAN", "biofluxopt.bn._x", "backward"),
        ("from .. import cli", "biofluxopt.knowledge._x", "backward"),
        ("from biofluxopt.knowledge import load_taxa", "biofluxopt._util._x", "backward"),
        ("from biofluxopt.service import recommend", "biofluxopt.cli._x", "not in docs"),
        ("from biofluxopt.marl import BatchedEnv", "biofluxopt.sim._x", "backward"),
        ("import matplotlib.pyplot as plt", "biofluxopt.sim._x", "object API"),
        ("import matplotlib\nmatplotlib.use('Agg')", "biofluxopt.sim._x", "global backend"),
        ("import matplotlib as mpl\nmpl.use('Agg')", "biofluxopt.bn._x", "global backend"),
        ("from matplotlib import pyplot", "biofluxopt.bn._x", "object API"),
    ],
)
def test_checker_flags(text, module, expected):
    messages = _messages(text, module)
    assert any(expected in m for m in messages), messages


@pytest.mark.parametrize(
    ("text", "module", "is_init"),
    [
        ("from biofluxopt.sim import run_protocol", "biofluxopt.cli._simulate", False),
        ("from biofluxopt._util import ConfigError", "biofluxopt.sim._x", False),
        ("from .._util import ConfigError", "biofluxopt.sim._x", False),
        ("from ..sim import simulate", "biofluxopt.bn._cohort", False),
        ("from ._run import run_protocol", "biofluxopt.sim._x", False),
        ("from . import _run", "biofluxopt.sim", True),
        ("from .sub._y import z", "biofluxopt.sim", True),
        ("from biofluxopt.sim._run import run_protocol", "biofluxopt.sim._x", False),
        ("from biofluxopt import __version__", "biofluxopt.cli._app", False),
        ("from biofluxopt.cli import main", "biofluxopt.__main__", False),
        ("from biofluxopt.knowledge import load_taxa", "biofluxopt.data._x", False),
        ("import numpy as np\nfrom matplotlib.figure import Figure", "biofluxopt.sim._x", False),
    ],
)
def test_checker_allows(text, module, is_init):
    assert _messages(text, module, is_init=is_init) == []


def test_checker_reads_files_and_names_them(tmp_path):
    src = tmp_path / "src" / "biofluxopt"
    (src / "sim").mkdir(parents=True)
    (src / "__init__.py").write_text("")
    (src / "sim" / "__init__.py").write_text("from ._a import f\n")
    (src / "sim" / "_a.py").write_text("\n\nfrom biofluxopt.bn._b import g\n")
    found = package_violations(src)
    assert [str(v) for v in found] == [
        "src/biofluxopt/sim/_a.py:3: imports private biofluxopt.bn._b.g: import the public "
        "name from biofluxopt.bn (export it there, with __all__)"
    ]
