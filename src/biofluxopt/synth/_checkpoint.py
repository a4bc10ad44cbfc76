"""Safe model checkpoints: ``model.json`` (kind, config, taxa, training metadata) plus
``model.safetensors`` (tensors). Loading never unpickles anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from biofluxopt import __version__
from biofluxopt._util import DataError, atomic_write_bytes, atomic_write_text

from ._baselines import BootstrapSampler, DirichletMultinomial
from ._gan import CompositionWGAN

FORMAT_VERSION = 1
META_NAME = "model.json"
WEIGHTS_NAME = "model.safetensors"
KINDS = {"gan": CompositionWGAN, "dirichlet_multinomial": DirichletMultinomial,
         "bootstrap": BootstrapSampler}

Sampler = CompositionWGAN | DirichletMultinomial | BootstrapSampler


def model_kind(model: Sampler) -> str:
    """Checkpoint kind of a fitted sampler."""
    for kind, cls in KINDS.items():
        if isinstance(model, cls):
            return kind
    raise DataError(f"cannot save a {type(model).__name__}")


def save_model(model: Sampler, directory: str | Path, *, extra: dict | None = None) -> None:
    """Write a fitted sampler to ``directory/model.json`` (+ ``model.safetensors``).

    Parameters
    ----------
    model : CompositionWGAN, DirichletMultinomial or BootstrapSampler
        Fitted.
    directory : str or Path
        Created if missing; files are written atomically.
    extra : dict, optional
        JSON-serialisable training metadata stored under ``"training"`` (data source, split,
        filters, seed ...).
    """
    from safetensors.torch import save as save_tensors

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    kind = model_kind(model)
    meta: dict[str, Any] = {"format_version": FORMAT_VERSION, "kind": kind,
                            "biofluxopt_version": __version__, "training": extra or {}}
    if kind == "gan":
        meta["model"] = model.metadata()
        atomic_write_bytes(directory / WEIGHTS_NAME, save_tensors(model.state_dict()))
    elif kind == "dirichlet_multinomial":
        meta["model"] = model.state()
    else:
        import torch

        meta["model"] = {"noise_sd": model.noise_sd, "taxa": list(model.taxa_)}
        tensors = {"train": torch.as_tensor(np.ascontiguousarray(model.train_))}
        atomic_write_bytes(directory / WEIGHTS_NAME, save_tensors(tensors))
    atomic_write_text(directory / META_NAME, json.dumps(meta, indent=2, default=float) + "\n")


def load_model(directory: str | Path, *, device: str = "cpu") -> tuple[Sampler, dict]:
    """Load a sampler written by :func:`save_model`.

    Returns
    -------
    (model, metadata) : tuple
        The fitted sampler and the parsed ``model.json``.

    Raises
    ------
    DataError
        Missing or malformed files; the message names the file and the field.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    meta_path = directory / META_NAME
    if not meta_path.exists():
        raise DataError(f"no {META_NAME} here: not a model directory", source=directory)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"invalid JSON: {exc}", source=meta_path) from exc
    if not isinstance(meta, dict):
        raise DataError("expected a JSON object", source=meta_path)
    if meta.get("format_version") != FORMAT_VERSION:
        raise DataError(f"unsupported format_version {meta.get('format_version')!r}, "
                        f"expected {FORMAT_VERSION}", source=meta_path, field="format_version")
    kind = meta.get("kind")
    if kind not in KINDS:
        raise DataError(f"kind must be one of {sorted(KINDS)}, got {kind!r}", source=meta_path,
                        field="kind")
    state = meta.get("model")
    if not isinstance(state, dict) or "taxa" not in state:
        raise DataError("missing model description with 'taxa'", source=meta_path,
                        field="model")
    tensors = {}
    if kind in {"gan", "bootstrap"}:
        weights = directory / WEIGHTS_NAME
        if not weights.exists():
            raise DataError(f"missing {WEIGHTS_NAME}", source=directory)
        try:
            tensors = load_file(str(weights))
        except (SafetensorError, OSError) as exc:
            raise DataError(f"cannot read weights: {exc}", source=weights) from exc
    try:
        if kind == "gan":
            model = CompositionWGAN.from_state(state, tensors, device=device)
        elif kind == "dirichlet_multinomial":
            model = DirichletMultinomial.from_state(state)
        else:
            model = BootstrapSampler(noise_sd=float(state["noise_sd"]))
            model.train_ = tensors["train"].double().numpy()
            model.taxa_ = list(state["taxa"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f"checkpoint does not match its description: {exc}",
                        source=meta_path, field="model") from exc
    return model, meta
