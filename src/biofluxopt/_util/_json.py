"""Strict JSON output: no ``NaN`` or ``Infinity`` (which strict parsers reject), numpy and torch
values converted."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any


def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` recursively into plain JSON types.

    Non-finite floats become ``None``; numpy scalars and arrays, torch tensors (anything with
    ``tolist``) become Python numbers and lists; tuples and sets become lists; paths become
    strings; mapping keys become strings.

    Raises
    ------
    TypeError
        For an object with no JSON form.
    """
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {_key(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, set | frozenset):
        return [to_jsonable(v) for v in sorted(obj, key=repr)]
    if isinstance(obj, PurePath):
        return str(obj)
    if hasattr(obj, "item") and getattr(obj, "shape", None) == ():  # numpy / torch scalar
        return to_jsonable(obj.item())
    if hasattr(obj, "tolist"):  # numpy array, torch tensor, pandas Index
        return to_jsonable(obj.tolist())
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _key(key: Any) -> str:
    key = to_jsonable(key)
    if isinstance(key, str):
        return key
    if key is None:
        return "null"
    return json.dumps(key)


def dumps_json(obj: Any) -> str:
    """Serialise ``obj`` as strict JSON: ``NaN``/±inf → ``null`` (recursively), numpy and torch
    values converted, indent 2, a trailing newline.

    Examples
    --------
    >>> dumps_json({"a": float("nan"), "b": [1.5, float("inf")]})
    '{\\n  "a": null,\\n  "b": [\\n    1.5,\\n    null\\n  ]\\n}\\n'
    """
    return json.dumps(to_jsonable(obj), indent=2, allow_nan=False, ensure_ascii=False) + "\n"
