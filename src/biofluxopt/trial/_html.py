"""A tiny builder for one self-contained HTML report page (``report.html``).

The page needs no network and no JavaScript: the CSS is embedded, figures are embedded as
``data:image/png;base64,...`` URIs rendered from matplotlib :class:`~matplotlib.figure.Figure`
objects with stable PNG bytes, tables come from pandas DataFrames or lists of dicts. All text
is escaped with :func:`html.escape` unless wrapped in :class:`Markup` (trusted inline HTML such
as ``<code>``). Rendering is deterministic: the same calls give the same string (no
timestamps, no random ids).

Examples
--------
>>> r = Report("Virtual trial")
>>> r.heading("Result")
>>> r.paragraph(Markup("Serum B12 rose by <strong>10 %</strong>."))
>>> r.key_values({"patients": 200, "pct_change": 10.0123})
>>> html_text = r.render()
"""

from __future__ import annotations

import base64
import html
import io
import math
import numbers
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from biofluxopt._util import ConfigError, atomic_write_text

__all__ = ["CSS", "MISSING", "Markup", "Report", "format_value"]

CSS = """\
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; line-height: 1.5; color: #1b1b1b; background: #fff; margin: 0; }
main { max-width: 60rem; margin: 0 auto; padding: 1.5rem 1.25rem 3rem; }
h1 { font-size: 1.8rem; margin: 0 0 1rem; border-bottom: 2px solid #1b1b1b; }
h2 { font-size: 1.4rem; margin: 2rem 0 0.6rem; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.15rem; margin: 1.5rem 0 0.5rem; }
h4, h5, h6 { font-size: 1rem; margin: 1.2rem 0 0.4rem; }
p { margin: 0.5rem 0; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 0.9em; background: #f4f4f4; border-radius: 3px; }
code { padding: 0 0.2em; }
pre { padding: 0.6rem 0.8rem; overflow-x: auto; white-space: pre-wrap; }
figure { margin: 1rem 0; text-align: center; }
figure img { max-width: 100%; height: auto; }
figcaption, caption { font-size: 0.9rem; color: #444; margin: 0.3rem 0; }
caption { caption-side: top; text-align: left; font-weight: 600; }
.table-wrap { overflow-x: auto; margin: 1rem 0; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; vertical-align: top; }
th { background: #f0f0f0; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.missing { color: #888; text-align: center; }
dl.kv { display: grid; grid-template-columns: max-content auto; gap: 0.2rem 1rem;
  margin: 1rem 0; }
dl.kv dt { font-weight: 600; }
dl.kv dd { margin: 0; font-variant-numeric: tabular-nums; }
.kv-caption { font-weight: 600; margin: 1rem 0 0.2rem; }
@media print {
  body { font-size: 10.5pt; }
  main { max-width: none; padding: 0; }
  h1, h2, h3 { break-after: avoid; }
  figure, table, dl.kv { break-inside: avoid; }
  .table-wrap { overflow: visible; }
}
"""
"""The page's embedded style sheet (readable on screen, printable)."""

MISSING = "—"
"""How a missing value (``None``, ``NaN``) is shown."""


class Markup(str):
    """Trusted HTML: inserted into the page as it is, not escaped.

    Only wrap text you wrote yourself (e.g. ``Markup("dose in <code>µg/day</code>")``); wrap
    nothing that came from a user, a file or a data table.
    """

    __slots__ = ()

    def __html__(self) -> str:
        return str(self)


def _text(value: Any) -> str:
    """``value`` as HTML: :class:`Markup` as it is, anything else escaped."""
    if isinstance(value, Markup):
        return str(value)
    return html.escape(str(value), quote=True)


def format_value(value: Any, digits: int = 4) -> str:
    """Plain-text form of one cell or key-figure value (not yet escaped).

    Parameters
    ----------
    value : object
        ``None`` and ``NaN`` give :data:`MISSING`; floats (numpy included) are shown with
        ``digits`` significant digits (``format(x, ".{digits}g")``); ints and bools as they
        are; tuples and lists (e.g. an interval) as ``[a, b]`` of formatted items; anything
        else as ``str(value)``.
    digits : int, default=4
        Significant digits of floats.

    Returns
    -------
    str
    """
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        x = float(value)
        if math.isnan(x):
            return MISSING
        if math.isinf(x):
            return "∞" if x > 0 else "−∞"
        text = format(x, f".{digits}g")
        return "0" if text == "-0" else text
    if isinstance(value, tuple | list):
        return "[" + ", ".join(format_value(v, digits) for v in value) + "]"
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # numpy scalar
        return format_value(value.item(), digits)
    return str(value)


def _cell(value: Any, digits: int, tag: str = "td") -> str:
    if isinstance(value, Markup):
        return f"<{tag}>{value}</{tag}>"
    text = format_value(value, digits)
    if text == MISSING:
        cls = ' class="missing"'
    elif not isinstance(value, bool) and isinstance(value, numbers.Number):
        cls = ' class="num"'
    else:
        cls = ""
    return f"<{tag}{cls}>{html.escape(text, quote=True)}</{tag}>"


def _check_digits(digits: Any) -> int:
    if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= 17:
        raise ConfigError(f"must be an integer in [1, 17], got {digits!r}", field="digits")
    return digits


def _records(data: Any) -> tuple[list[str], list[list[Any]]]:
    """Column names and rows of a DataFrame (its index included unless it is a plain
    0..n-1 range) or of a sequence of mappings (columns in order of first appearance)."""
    if isinstance(data, pd.Series):
        data = data.to_frame()
    if isinstance(data, pd.DataFrame):
        columns = [str(c) for c in data.columns]
        rows = [list(r) for r in data.itertuples(index=False, name=None)]
        index = data.index
        plain = isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1
        if not plain:
            name = ", ".join(str(n) for n in index.names if n is not None) or ""
            columns = [name, *columns]
            rows = [[key, *row] for key, row in zip(index, rows, strict=True)]
        return columns, rows
    if isinstance(data, Mapping) or not isinstance(data, Iterable):
        raise ConfigError(
            f"must be a pandas DataFrame or a list of dicts, got {type(data).__name__}",
            field="data",
        )
    records = list(data)
    columns: list[str] = []
    seen: set[str] = set()
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise ConfigError(f"row {i} must be a dict, got {type(rec).__name__}", field="data")
        for key in rec:
            if str(key) not in seen:
                seen.add(str(key))
                columns.append(str(key))
    rows = [[{str(k): v for k, v in rec.items()}.get(c) for c in columns] for rec in records]
    return columns, rows


class Report:
    """One self-contained HTML page, built block by block.

    Parameters
    ----------
    title : str
        Page title (``<title>`` and the ``<h1>``), escaped.
    lang : str, default="en"
        Language of the page (``<html lang>``).

    Notes
    -----
    Blocks appear in the order of the calls. :meth:`render` returns the page;
    :meth:`write` saves it atomically as UTF-8.
    """

    def __init__(self, title: str, *, lang: str = "en"):
        self.title = str(title)
        self.lang = str(lang)
        self._blocks: list[str] = []

    def __len__(self) -> int:
        """Number of blocks added so far."""
        return len(self._blocks)

    def heading(self, text: str, level: int = 2) -> None:
        """Add a heading ``<h{level}>`` (``level`` 1–6; the page title is the only ``h1`` by
        convention, so sections use 2)."""
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 6:
            raise ConfigError(f"must be an integer in [1, 6], got {level!r}", field="level")
        self._blocks.append(f"<h{level}>{_text(text)}</h{level}>")

    def paragraph(self, text: str) -> None:
        """Add a paragraph: plain text is escaped, :class:`Markup` inserted as it is."""
        self._blocks.append(f"<p>{_text(text)}</p>")

    def preformatted(self, text: str) -> None:
        """Add a block of preformatted, escaped text (``<pre>``), e.g. a formula or a log."""
        self._blocks.append(f"<pre>{html.escape(str(text), quote=True)}</pre>")

    def figure(self, fig: Any, caption: str, *, dpi: float = 110, alt: str | None = None) -> None:
        """Add a matplotlib figure as an embedded PNG with a caption.

        Parameters
        ----------
        fig : matplotlib.figure.Figure
            The figure (drawn now; later changes to it do not show).
        caption : str
            Caption under the figure (escaped unless :class:`Markup`).
        dpi : float, default=110
            Resolution of the PNG in dots per inch.
        alt : str, optional
            Alternative text of the image; defaults to the caption's plain text.
        """
        if not hasattr(fig, "savefig"):
            raise ConfigError(f"must be a matplotlib Figure, got {type(fig).__name__}", field="fig")
        if isinstance(dpi, bool) or not isinstance(dpi, numbers.Real) or not 10 <= dpi <= 1200:
            raise ConfigError(f"must be a number in [10, 1200], got {dpi!r}", field="dpi")
        buf = io.BytesIO()
        fig.savefig(
            buf, format="png", dpi=float(dpi), metadata={"Software": None}, bbox_inches="tight"
        )
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        alt_text = html.escape(str(caption if alt is None else alt), quote=True)
        self._blocks.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{alt_text}">'
            f"<figcaption>{_text(caption)}</figcaption></figure>"
        )

    def png(self, data: bytes, caption: str, *, alt: str | None = None) -> None:
        """Add a PNG image given as bytes (e.g. a figure another stage wrote)."""
        if not isinstance(data, bytes | bytearray) or not bytes(data).startswith(b"\x89PNG"):
            raise ConfigError("must be the bytes of a PNG image", field="data")
        encoded = base64.b64encode(bytes(data)).decode("ascii")
        alt_text = html.escape(str(caption if alt is None else alt), quote=True)
        self._blocks.append(
            f'<figure><img src="data:image/png;base64,{encoded}" alt="{alt_text}">'
            f"<figcaption>{_text(caption)}</figcaption></figure>"
        )

    def table(self, data: Any, caption: str | None = None, *, digits: int = 4) -> None:
        """Add a table.

        Parameters
        ----------
        data : pandas.DataFrame or sequence of dict
            The rows. A DataFrame's index becomes the first column unless it is a plain
            ``0..n-1`` range; dict keys become the columns in order of first appearance
            (a missing key is an empty cell).
        caption : str, optional
            Caption above the table (escaped unless :class:`Markup`).
        digits : int, default=4
            Significant digits of floats (see :func:`format_value`); ``None``/``NaN`` show as
            :data:`MISSING`. Every cell is escaped unless it is :class:`Markup`.
        """
        digits = _check_digits(digits)
        columns, rows = _records(data)
        parts = ['<div class="table-wrap"><table>']
        if caption is not None:
            parts.append(f"<caption>{_text(caption)}</caption>")
        parts.append(
            "<thead><tr>"
            + "".join(f"<th>{html.escape(c, quote=True)}</th>" for c in columns)
            + "</tr></thead>"
        )
        parts.append("<tbody>")
        for row in rows:
            parts.append("<tr>" + "".join(_cell(v, digits) for v in row) + "</tr>")
        parts.append("</tbody></table></div>")
        self._blocks.append("".join(parts))

    def key_values(
        self, mapping: Mapping[str, Any], caption: str | None = None, *, digits: int = 4
    ) -> None:
        """Add key figures as a definition list (``<dl>``): each key above/beside its value.

        Values are formatted as table cells (:func:`format_value`) and escaped unless
        :class:`Markup`; keys are escaped unless :class:`Markup`.
        """
        digits = _check_digits(digits)
        if not isinstance(mapping, Mapping):
            raise ConfigError(
                f"must be a mapping of name to value, got {type(mapping).__name__}",
                field="mapping",
            )
        parts = []
        if caption is not None:
            parts.append(f'<p class="kv-caption">{_text(caption)}</p>')
        parts.append('<dl class="kv">')
        for key, value in mapping.items():
            shown = (
                str(value)
                if isinstance(value, Markup)
                else html.escape(format_value(value, digits), quote=True)
            )
            parts.append(f"<dt>{_text(key)}</dt><dd>{shown}</dd>")
        parts.append("</dl>")
        self._blocks.append("".join(parts))

    def render(self) -> str:
        """The whole page as one HTML5 string (deterministic: same calls, same string)."""
        title = html.escape(self.title, quote=True)
        body = "\n".join(self._blocks)
        return (
            "<!DOCTYPE html>\n"
            f'<html lang="{html.escape(self.lang, quote=True)}">\n'
            "<head>\n"
            '<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{title}</title>\n"
            f"<style>\n{CSS}</style>\n"
            "</head>\n"
            "<body>\n<main>\n"
            f"<h1>{title}</h1>\n"
            f"{body}\n"
            "</main>\n</body>\n</html>\n"
        )

    def write(self, path: str | Path) -> Path:
        """Write :meth:`render` to ``path`` atomically (UTF-8) and return the path."""
        path = Path(path)
        atomic_write_text(path, self.render())
        return path
