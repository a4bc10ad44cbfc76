"""The self-contained HTML report builder (biofluxopt.trial._html)."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from biofluxopt._util import ConfigError
from biofluxopt.trial._html import MISSING, Markup, Report, format_value

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _figure() -> Figure:
    fig = Figure(figsize=(3, 2))
    ax = fig.subplots()
    ax.plot([0, 1, 2], [1.0, 3.0, 2.0], label="serum B12")
    ax.set_xlabel("day")
    ax.legend()
    return fig


def _report() -> Report:
    r = Report("Virtual trial <B12>")
    r.heading("Results")
    r.paragraph("Effect > 0 & p < 0.05")
    r.paragraph(Markup("Dose in <code>ug_day</code>"))
    r.figure(_figure(), "Serum B12 by arm", dpi=60)
    r.table(
        pd.DataFrame(
            {"pct_change": [10.123456, np.nan], "note": ["<script>alert(1)</script>", None]},
            index=pd.Index(["all", "tiny"], name="subgroup"),
        ),
        caption="Subgroups",
        digits=3,
    )
    r.table([{"a": 1, "b": (1.23456, 2.5)}, {"c": np.float64(3.3333333)}])
    r.key_values({"patients": 200, "pct_change": 10.01234, "ci95": (8.1, 12.0)}, "Key figures")
    r.preformatted("HyperScore = 100 × [1 + σ(β ln V + γ)^κ]")
    return r


def test_page_structure():
    text = _report().render()
    assert text.startswith("<!DOCTYPE html>\n")
    assert '<meta charset="utf-8">' in text
    assert "<title>Virtual trial &lt;B12&gt;</title>" in text
    assert "<h1>Virtual trial &lt;B12&gt;</h1>" in text
    assert "<h2>Results</h2>" in text
    assert "<style>" in text and "@media print" in text
    assert text.rstrip().endswith("</html>")
    assert "<script" not in text  # no JavaScript at all


def test_text_and_cells_are_escaped():
    text = _report().render()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script>" not in text
    assert "<p>Effect &gt; 0 &amp; p &lt; 0.05</p>" in text
    assert "<p>Dose in <code>ug_day</code></p>" in text  # Markup is trusted


def test_numbers_are_formatted():
    text = _report().render()
    assert '<td class="num">10.1</td>' in text  # 3 significant digits
    assert f'<td class="missing">{MISSING}</td>' in text
    assert "<th>subgroup</th><th>pct_change</th><th>note</th>" in text  # index as a column
    assert "<td>[1.235, 2.5]</td>" in text
    assert '<td class="num">3.333</td>' in text
    assert "<dt>pct_change</dt><dd>10.01</dd>" in text
    assert "<dt>ci95</dt><dd>[8.1, 12]</dd>" in text


def test_format_value():
    assert format_value(None) == MISSING
    assert format_value(float("nan")) == MISSING
    assert format_value(True) == "True"
    assert format_value(np.int64(12345678)) == "12345678"
    assert format_value(123456.789, 4) == "1.235e+05"
    assert format_value(-0.0) == "0"
    assert format_value(np.float32(0.5)) == "0.5"
    assert format_value(float("inf")) == "∞"
    assert format_value("a<b") == "a<b"  # escaping happens when the cell is written


def test_figure_is_embedded_png():
    text = _report().render()
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(uris) == 1
    assert base64.b64decode(uris[0]).startswith(PNG_MAGIC)
    assert 'alt="Serum B12 by arm"' in text
    assert "<figcaption>Serum B12 by arm</figcaption>" in text


def test_render_is_deterministic():
    a = _report().render()
    b = _report().render()
    assert a == b
    r = _report()
    assert r.render() == r.render()


def test_no_external_assets():
    text = _report().render()
    assert "http://" not in text
    assert "https://" not in text
    assert not re.search(r'(src|href)="(?!data:)', text)


def test_write(tmp_path):
    r = _report()
    path = r.write(tmp_path / "report.html")
    assert path.read_text(encoding="utf-8") == r.render()


def test_bad_arguments():
    r = Report("x")
    with pytest.raises(ConfigError) as err:
        r.heading("h", level=7)
    assert err.value.field == "level"
    with pytest.raises(ConfigError) as err:
        r.table({"a": [1]})
    assert err.value.field == "data"
    with pytest.raises(ConfigError) as err:
        r.table([{"a": 1}, 3])
    assert err.value.field == "data"
    with pytest.raises(ConfigError) as err:
        r.table([{"a": 1}], digits=0)
    assert err.value.field == "digits"
    with pytest.raises(ConfigError) as err:
        r.figure("not a figure", "caption")
    assert err.value.field == "fig"
    assert len(r) == 0
