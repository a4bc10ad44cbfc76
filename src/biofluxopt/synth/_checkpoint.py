"""Safe model checkpoints: ``model.json`` (kind, config, taxa, training metadata, near-copy
filter threshold) plus ``model.safetensors`` (tensors). Loading never unpickles anything.

The near-copy filter's reference samples are the training samples that ``synth train`` writes
to ``train.csv`` next to ``model.json``; only the threshold and quantile live in the JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from biofluxopt import __version__
from biofluxopt._util import (
    BioFluxOptError,
    ConfigError,
    DataError,
    atomic_write_bytes,
    atomic_write_text,
    dumps_json,
)
from biofluxopt.data import MAX_COUNT

from ._baselines import BootstrapSampler, DirichletMultinomial
from ._gan import CompositionWGAN
from ._privacy import NearCopyFilter

FORMAT_VERSION = 2
"""Version written by :func:`save_model`. 2 added the estimators' constructor parameters
(``params``: ``"auto"`` options as given, ``random_state``) and the GAN's gate calibration
record; version-1 directories still load (:data:`READABLE_VERSIONS`)."""
READABLE_VERSIONS = (1, 2)
META_NAME = "model.json"
WEIGHTS_NAME = "model.safetensors"
TRAIN_NAME = "train.csv"  # training samples (samples × taxa, closed): the filter's reference
HELDOUT_NAME = "heldout.csv"  # held-out samples (closed), never trained on
HISTORY_NAME = "history.csv"  # GAN losses per logged iteration
KINDS = {
    "gan": CompositionWGAN,
    "dirichlet_multinomial": DirichletMultinomial,
    "bootstrap": BootstrapSampler,
}

Sampler = CompositionWGAN | DirichletMultinomial | BootstrapSampler


def model_kind(model: Sampler) -> str:
    """Checkpoint kind of a fitted sampler."""
    for kind, cls in KINDS.items():
        if isinstance(model, cls):
            return kind
    raise DataError(f"cannot save a {type(model).__name__}")


def save_model(
    model: Sampler,
    directory: str | Path,
    *,
    extra: dict | None = None,
    near_copy_filter: NearCopyFilter | None = None,
) -> list[Path]:
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

    Returns
    -------
    list of Path
        The files written.
    """
    from safetensors.torch import save as save_tensors

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    kind = model_kind(model)
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "biofluxopt_version": __version__,
        "training": extra or {},
    }
    if near_copy_filter is not None:
        meta["near_copy_filter"] = near_copy_filter.state()
    written = [directory / META_NAME]
    if kind == "gan":
        meta["model"] = model.metadata()
        atomic_write_bytes(directory / WEIGHTS_NAME, save_tensors(model.state_dict()))
        written.append(directory / WEIGHTS_NAME)
    elif kind == "dirichlet_multinomial":
        meta["model"] = {**model.state(), "params": model.get_params()}
    else:
        import torch

        meta["model"] = {
            "noise_sd": model.noise_sd,
            "taxa": list(model.taxa_),
            "params": model.get_params(),
        }
        tensors = {"train": torch.as_tensor(np.ascontiguousarray(model.train_))}
        atomic_write_bytes(directory / WEIGHTS_NAME, save_tensors(tensors))
        written.append(directory / WEIGHTS_NAME)
    atomic_write_text(directory / META_NAME, dumps_json(meta))
    return written


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
    if meta.get("format_version") not in READABLE_VERSIONS:
        raise DataError(
            f"unsupported format_version {meta.get('format_version')!r}, expected one of "
            f"{list(READABLE_VERSIONS)}",
            source=meta_path,
            field="format_version",
        )
    kind = meta.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise DataError(
            f"kind must be one of {sorted(KINDS)}, got {kind!r}", source=meta_path, field="kind"
        )
    state = meta.get("model")
    if not isinstance(state, dict) or "taxa" not in state:
        raise DataError("missing model description with 'taxa'", source=meta_path, field="model")
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
            model = DirichletMultinomial.from_state(state, **state.get("params", {}))
        else:
            params = {**state.get("params", {}), "noise_sd": float(state["noise_sd"])}
            model = BootstrapSampler(**params)
            model.train_ = tensors["train"].double().numpy()
            model.taxa_ = list(state["taxa"])
    except BioFluxOptError:
        raise
    except (
        KeyError,
        TypeError,
        ValueError,
        RuntimeError,
        AttributeError,
        IndexError,
        OverflowError,
    ) as exc:
        raise DataError(
            f"checkpoint does not match its description: {' '.join(str(exc).split())}",
            source=meta_path,
            field="model",
        ) from exc
    _check_loaded(model, directory)
    return model, meta


def _check_loaded(model: Sampler, directory: Path) -> None:
    """Refuse a loaded sampler whose numbers cannot be sampled from (NaN weights, …)."""
    meta_path, weights = directory / META_NAME, directory / WEIGHTS_NAME
    n_taxa = len(model.taxa_)
    if n_taxa < 2:
        raise DataError(f"need at least 2 taxa, got {n_taxa}", source=meta_path, field="model.taxa")
    if isinstance(model, CompositionWGAN):
        bad = [
            k
            for k, v in model.state_dict().items()
            if v.is_floating_point() and not bool(v.isfinite().all())
        ]
        if bad:
            raise DataError(
                f"non-finite (NaN/inf) weights in {len(bad)} tensors, e.g. "
                f"{bad[:3]}; retrain the model",
                source=weights,
            )
        depths = model.depths_
        if depths is not None and not (
            len(depths) and np.all(np.isfinite(depths)) and np.all(depths >= 1)
        ):
            raise DataError(
                "read depths must be finite and >= 1", source=meta_path, field="model.depths"
            )
        totals = getattr(model, "lattice_totals_", None)
        if totals is not None and not (
            len(totals) and np.all(np.isfinite(totals)) and np.all(totals >= 1)
        ):
            raise DataError(
                "lattice totals must be finite and >= 1",
                source=meta_path,
                field="model.lattice_totals",
            )
    elif isinstance(model, DirichletMultinomial):
        alpha, depths = model.alpha_, model.depths_
        if alpha.shape != (n_taxa,) or not (np.all(np.isfinite(alpha)) and np.all(alpha > 0)):
            raise DataError(
                f"alpha must be {n_taxa} finite values > 0", source=meta_path, field="model.alpha"
            )
        if not (
            depths.ndim == 1
            and len(depths)
            and np.all(np.isfinite(depths))
            and np.all(depths >= 1)
            and np.all(depths <= MAX_COUNT)
        ):
            raise DataError(
                "depths must be a non-empty list of read depths >= 1",
                source=meta_path,
                field="model.depths",
            )
    else:
        train = model.train_
        if not (train.ndim == 2 and train.shape[0] >= 1 and train.shape[1] == n_taxa):
            raise DataError(
                f"training profiles of shape {tuple(train.shape)} do not fit {n_taxa} taxa",
                source=weights,
            )
        if not (
            np.all(np.isfinite(train)) and np.all(train >= 0) and np.all(train.sum(axis=1) > 0)
        ):
            raise DataError(
                "training profiles must be finite, non-negative and non-empty", source=weights
            )
        if not (math.isfinite(model.noise_sd) and model.noise_sd >= 0):
            raise DataError(
                f"must be a finite number >= 0, got {model.noise_sd!r}",
                source=meta_path,
                field="model.noise_sd",
            )


def load_near_copy_filter(
    directory: str | Path, metadata: dict | None = None, taxa: list[str] | None = None
) -> NearCopyFilter | None:
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
    from biofluxopt.data import read_table

    directory = Path(directory)
    if metadata is None:
        _, metadata = load_model(directory)
    state = metadata.get("near_copy_filter")
    if state is None:
        return None
    meta_path = directory / META_NAME
    if not isinstance(state, dict) or not {"quantile", "threshold_braycurtis"} <= set(state):
        raise DataError(
            "expected quantile and threshold_braycurtis", source=meta_path, field="near_copy_filter"
        )
    train_path = directory / TRAIN_NAME
    if not train_path.exists():
        raise DataError(
            f"missing {TRAIN_NAME}, the near-copy filter's reference samples", source=directory
        )
    n_ref = state.get("n_reference")
    if n_ref is not None and (isinstance(n_ref, bool) or not isinstance(n_ref, int) or n_ref < 1):
        raise DataError(
            f"must be a positive integer, got {n_ref!r}",
            source=meta_path,
            field="near_copy_filter.n_reference",
        )
    train = read_table(train_path, orientation="samples_by_taxa").counts_or_values
    if taxa is not None:
        missing = [t for t in taxa if t not in train.columns]
        if missing:
            raise DataError(
                f"{len(missing)} model taxa missing, e.g. {missing[:3]}", source=train_path
            )
        train = train[list(taxa)]
    if n_ref is not None and n_ref != len(train):
        raise DataError(
            f"{len(train)} samples, but the filter was fitted on {n_ref}", source=train_path
        )
    try:
        return NearCopyFilter.from_threshold(
            train,
            state["threshold_braycurtis"],
            quantile=state["quantile"],
            grouped=bool(state.get("grouped_by_subject", True)),
        )
    except ConfigError as exc:
        raise ConfigError(
            exc.detail, source=meta_path, field=f"near_copy_filter.{exc.field}"
        ) from exc
