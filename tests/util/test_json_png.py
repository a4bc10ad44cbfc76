"""Strict JSON (no NaN/Infinity) and byte-stable PNGs."""

from __future__ import annotations

import json
import math
import os
import stat

import numpy as np
import pytest
import torch

from biofluxopt._util import dumps_json, save_png


def strict_loads(text: str):
    def refuse(token):
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_floats_become_null_recursively():
    obj = {
        "a": math.nan,
        "b": [1.0, math.inf, -math.inf, {"c": (math.nan, 2)}],
        "d": {"e": {"f": float("nan")}},
    }
    text = dumps_json(obj)
    assert "NaN" not in text and "Infinity" not in text
    assert strict_loads(text) == {
        "a": None,
        "b": [1.0, None, None, {"c": [None, 2]}],
        "d": {"e": {"f": None}},
    }


def test_numpy_and_torch_values_are_converted():
    obj = {
        "f32": np.float32(1.5),
        "f64nan": np.float64("nan"),
        "i64": np.int64(7),
        "bool": np.bool_(True),
        "arr": np.array([[1.0, np.nan], [np.inf, 2.0]]),
        "tensor": torch.tensor([0.5, float("nan")]),
        "scalar_tensor": torch.tensor(3),
        np.int64(4): "numpy key",
    }
    assert strict_loads(dumps_json(obj)) == {
        "f32": 1.5,
        "f64nan": None,
        "i64": 7,
        "bool": True,
        "arr": [[1.0, None], [None, 2.0]],
        "tensor": [0.5, None],
        "scalar_tensor": 3,
        "4": "numpy key",
    }


def test_format_indent_and_trailing_newline():
    assert dumps_json({"a": [1]}) == '{\n  "a": [\n    1\n  ]\n}\n'
    assert dumps_json("µg") == '"µg"\n'


def test_unserialisable_object_is_an_error():
    with pytest.raises(TypeError, match="object"):
        dumps_json({"x": object()})


def figure(seed: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot(rng.normal(size=20), label="µ")
    ax.set_title("serum B12 (pmol/L)")
    ax.legend()
    return fig


def test_png_is_byte_stable_and_carries_no_version(tmp_path):
    import matplotlib.pyplot as plt

    paths = []
    for i in range(2):
        fig = figure(0)
        paths.append(tmp_path / f"f{i}.png")
        save_png(fig, paths[-1], dpi=80)
        plt.close(fig)
    a, b = (p.read_bytes() for p in paths)
    assert a[:8] == b"\x89PNG\r\n\x1a\n"
    assert a == b
    assert b"Software" not in a and b"matplotlib" not in a.lower()
    fig = figure(1)
    save_png(fig, tmp_path / "other.png", dpi=80)
    plt.close(fig)
    assert (tmp_path / "other.png").read_bytes() != a
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f0.png", "f1.png", "other.png"]


def test_png_follows_the_umask(tmp_path):
    import matplotlib.pyplot as plt

    old = os.umask(0o027)
    try:
        fig = figure(0)
        save_png(fig, tmp_path / "f.png")
        plt.close(fig)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.png").stat().st_mode) == 0o640
