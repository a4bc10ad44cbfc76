"""Safe model checkpoints: ``model.json`` (kind, config, taxa, training metadata, near-copy
filter threshold) plus ``model.safetensors`` (tensors). Loading never unpickles anything.

The near-copy filter's reference samples are the training samples that ``synth train`` writes
to ``train.csv`` next to ``model.json``; only the threshold and quantile live in the JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from biofluxopt import __version__
from biofluxopt._util import ConfigError, DataError, atomic_write_bytes, atomic_write_text

from ._baselines import BootstrapSampler, DirichletMultinomial
from ._gan import CompositionWGAN
from ._privacy import NearCopyFilter

FORMAT_VERSION = 1
META_NAME = "model.json"
WEIGHTS_NAME = "model.safetensors"
TRAIN_NAME = "train.csv"  # training samples (samples × taxa, closed): the filter's reference
KINDS = {"gan": CompositionWGAN, "dirichlet_multinomial": DirichletMultinomial,
         "bootstrap": BootstrapSampler}

Sampler = CompositionWGAN | DirichletMultinomial | BootstrapSampler


def model_kind(model: Sampler) -> str:
    """Checkpoint kind of a fitted sampler."""
    for kind, cls in KINDS.items():
        if isinstance(model, cls):
            return kind
    raise DataError(f"cannot save a {type(model).__name__}")


def save_model(model: Sampler, directory: str | Path, *, extra: dict | None = None,
               near_copy_filter: NearCopyFilter | None = None) -> None:
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
    near_copy_filter : NearCopyFilter, optional
        Fitted on the training samples; its :meth:`~NearCopyFilter.state` (quantile,
        threshold) is stored under ``"near_copy_filter"``. The caller writes those training
        samples to ``directory/train.csv`` (as ``synth train`` does) so that
        :func:`load_near_copy_filter` can rebuild it.
    """
    from safetensors.torch import save as save_tensors

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    kind = model_kind(model)
    meta: dict[str, Any] = {"format_version": FORMAT_VERSION, "kind": kind,
                            "biofluxopt_version": __version__, "training": extra or {}}
    if near_copy_filter is not None:
        meta["near_copy_filter"] = near_copy_filter.state()
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


def load_near_copy_filter(directory: str | Path, metadata: dict | None = None,
                          taxa: list[str] | None = None) -> NearCopyFilter | None:
    """Rebuild the near-copy filter of a model directory, or ``None`` if none was stored.

    Parameters
    ----------
    directory : str or Path
        Model directory with ``model.json`` and ``train.csv``.
    metadata : dict, optional
        The parsed ``model.json`` (read from ``directory`` when omitted).
    taxa : list of str, optional
        Column order to align ``train.csv`` to (the model's ``taxa_``).

    Raises
    ------
    DataError
        ``train.csv`` is missing, has other taxa or another number of samples than recorded.
    ConfigError
        The stored quantile or threshold is invalid.
    """
    import pandas as pd

    directory = Path(directory)
    if metadata is None:
        _, metadata = load_model(directory)
    state = metadata.get("near_copy_filter")
    if state is None:
        return None
    meta_path = directory / META_NAME
    if not isinstance(state, dict) or not {"quantile", "threshold_braycurtis"} <= set(state):
        raise DataError("expected quantile and threshold_braycurtis", source=meta_path,
                        field="near_copy_filter")
    train_path = directory / TRAIN_NAME
    if not train_path.exists():
        raise DataError(f"missing {TRAIN_NAME}, the near-copy filter's reference samples",
                        source=directory)
    train = pd.read_csv(train_path, index_col=0)
    train.columns = [str(c) for c in train.columns]
    if taxa is not None:
        missing = [t for t in taxa if t not in train.columns]
        if missing:
            raise DataError(f"{len(missing)} model taxa missing, e.g. {missing[:3]}",
                            source=train_path)
        train = train[list(taxa)]
    n_ref = state.get("n_reference")
    if n_ref is not None and int(n_ref) != len(train):
        raise DataError(f"{len(train)} samples, but the filter was fitted on {n_ref}",
                        source=train_path)
    try:
        return NearCopyFilter.from_threshold(
            train, state["threshold_braycurtis"], quantile=state["quantile"],
            grouped=bool(state.get("grouped_by_subject", True)))
    except ConfigError as exc:
        raise ConfigError(exc.detail, source=meta_path,
                          field=f"near_copy_filter.{exc.field}") from exc
