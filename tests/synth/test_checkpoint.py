"""Checkpoints: JSON + safetensors round trips for every sampler; bad files are DataErrors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from biofluxopt._util import DataError
from biofluxopt.synth import (
    META_NAME,
    WEIGHTS_NAME,
    BootstrapSampler,
    CompositionWGAN,
    DirichletMultinomial,
    load_model,
    save_model,
)


def _fitted(kind, data):
    if kind == "gan":
        return CompositionWGAN(iterations=3, latent_dim=8, hidden=16, random_state=0).fit(data)
    if kind == "dm":
        return DirichletMultinomial().fit(data)
    return BootstrapSampler().fit(data)


@pytest.mark.parametrize("kind", ["gan", "dm", "bootstrap"])
def test_roundtrip_gives_identical_samples(one_thread, tmp_path, toy_compositions, kind):
    model = _fitted(kind, toy_compositions)
    save_model(model, tmp_path / "m", extra={"data": "toy"})
    loaded, meta = load_model(tmp_path / "m")
    assert meta["training"] == {"data": "toy"}
    assert loaded.taxa_ == list(toy_compositions.columns)
    np.testing.assert_array_equal(loaded.sample(7, seed=4), model.sample(7, seed=4))


def test_depth_conditioned_gan_roundtrip(one_thread, tmp_path, toy_compositions):
    counts = np.round(toy_compositions.to_numpy() * np.arange(500, 500 + 60)[:, None] * 3)
    model = CompositionWGAN(
        iterations=3, latent_dim=8, hidden=16, depth_conditioning=True, random_state=0
    ).fit(counts)
    save_model(model, tmp_path)
    loaded, _ = load_model(tmp_path)
    np.testing.assert_array_equal(loaded.depths_, model.depths_)
    np.testing.assert_array_equal(loaded.sample(9, seed=2), model.sample(9, seed=2))


def test_weights_are_safetensors_not_pickle(one_thread, tmp_path, toy_compositions):
    save_model(_fitted("gan", toy_compositions), tmp_path)
    raw = (tmp_path / WEIGHTS_NAME).read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    assert any(k.startswith("generator.") for k in header)
    assert not raw.startswith(b"\x80")  # no pickle protocol marker


def test_broken_checkpoints_are_data_errors(one_thread, tmp_path, toy_compositions):
    with pytest.raises(DataError, match="not a model directory"):
        load_model(tmp_path)
    save_model(_fitted("gan", toy_compositions), tmp_path)
    meta_path = tmp_path / META_NAME
    meta = json.loads(meta_path.read_text())
    meta["kind"] = "vae"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DataError, match="kind"):
        load_model(tmp_path)
    meta["kind"] = "gan"
    meta["model"]["taxa"] = meta["model"]["taxa"][:3]  # weights no longer fit
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DataError, match="does not match"):
        load_model(tmp_path)
    meta_path.write_text("{oops")
    with pytest.raises(DataError, match="invalid JSON"):
        load_model(tmp_path)
    (tmp_path / WEIGHTS_NAME).write_bytes(b"garbage")
    meta["model"]["taxa"] = list(toy_compositions.columns)
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DataError, match="cannot read weights"):
        load_model(tmp_path)


def test_checkpoint_from_before_the_richness_offset_loads(one_thread, tmp_path, toy_compositions):
    model = CompositionWGAN(
        iterations=3, latent_dim=8, hidden=16, richness_scale=0.0, random_state=0
    ).fit(toy_compositions)
    save_model(model, tmp_path)
    meta_path = tmp_path / META_NAME
    meta = json.loads(meta_path.read_text())
    for key in ("richness_scale", "sample_moment_weight"):
        del meta["model"]["config"][key]  # as written by the previous release
    meta_path.write_text(json.dumps(meta))
    loaded, _ = load_model(tmp_path)
    np.testing.assert_array_equal(loaded.sample(5, seed=1), model.sample(5, seed=1))


def test_non_finite_checkpoints_are_refused(one_thread, tmp_path, toy_compositions):
    from safetensors.torch import load_file, save_file

    save_model(_fitted("gan", toy_compositions), tmp_path / "gan")
    weights = tmp_path / "gan" / WEIGHTS_NAME
    tensors = load_file(str(weights))
    tensors["generator.presence.bias"][0] = float("inf")
    save_file(tensors, str(weights))
    with pytest.raises(DataError, match=r"non-finite \(NaN/inf\) weights in 1 tensors"):
        load_model(tmp_path / "gan")
    save_model(_fitted("dm", toy_compositions), tmp_path / "dm")
    meta_path = tmp_path / "dm" / META_NAME
    meta = json.loads(meta_path.read_text())
    meta["model"]["alpha"][2] = -1.0
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"model\.alpha: alpha must be 8 finite values > 0"):
        load_model(tmp_path / "dm")


def test_model_json_is_strict_and_reproducible(one_thread, tmp_path, toy_compositions):
    """Same seed, same bytes: model.json holds no wall-clock figure, and no NaN/Infinity."""
    for name in ("a", "b"):
        save_model(_fitted("gan", toy_compositions), tmp_path / name)
    text = (tmp_path / "a" / META_NAME).read_text()
    assert text == (tmp_path / "b" / META_NAME).read_text()
    assert "fit_seconds" not in text

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    json.loads(text, parse_constant=refuse)


def test_format_1_checkpoints_still_load_and_others_are_refused(
    one_thread, tmp_path, toy_compositions
):
    from biofluxopt.synth import FORMAT_VERSION

    model = CompositionWGAN(
        iterations=3, latent_dim=8, hidden=16, gate_calibration=False, random_state=5
    ).fit(toy_compositions)
    save_model(model, tmp_path)
    meta_path = tmp_path / META_NAME
    meta = json.loads(meta_path.read_text())
    assert meta["format_version"] == FORMAT_VERSION == 2
    assert meta["model"]["params"]["richness_scale"] == "auto"  # as given
    assert meta["model"]["config"]["richness_scale"] == model.richness_scale_  # as resolved
    # Format 1 (previous release): no params, no gate calibration, the seed under "seed".
    meta["format_version"] = 1
    del meta["model"]["params"], meta["model"]["gate_calibration"]
    del meta["model"]["config"]["gate_calibration"]
    meta_path.write_text(json.dumps(meta))
    loaded, _ = load_model(tmp_path)
    assert loaded.random_state == 5 and loaded.gate_calibration is False
    assert loaded.richness_scale == model.richness_scale_
    np.testing.assert_array_equal(loaded.sample(6, seed=2), model.sample(6, seed=2))
    meta["format_version"] = 3
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"format_version: unsupported format_version 3"):
        load_model(tmp_path)


@pytest.mark.parametrize("kind", ["dm", "bootstrap"])
def test_baseline_random_state_survives_a_round_trip(tmp_path, toy_compositions, kind):
    model = _fitted(kind, toy_compositions).set_params(random_state=9)
    save_model(model, tmp_path)
    loaded, _ = load_model(tmp_path)
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.sample(5), model.sample(5))
