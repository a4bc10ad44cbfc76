"""End-to-end ``biofluxopt synth train | sample | evaluate`` on tiny inputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from biofluxopt.cli import main


def _run(args):
    with pytest.raises(SystemExit) as info:
        main(args)
        raise SystemExit(0)
    return info.value.code


@pytest.fixture
def counts_csv(tmp_path):
    rng = np.random.default_rng(0)
    n, taxa = 40, 6
    p = rng.dirichlet([3, 2, 1, 0.5, 0.3, 0.2], size=n)
    counts = np.stack([rng.multinomial(2000, pi) for pi in p])
    frame = pd.DataFrame(counts, index=[f"s{i:02d}" for i in range(n)],
                         columns=[f"k__Bacteria;g__G{j}" for j in range(taxa)])
    frame.index.name = "sample_id"
    path = tmp_path / "counts.csv"
    frame.to_csv(path)
    meta = pd.DataFrame({"subject": [f"p{i // 2}" for i in range(n)],
                         "cohort": ["x", "y"] * (n // 2)}, index=frame.index)
    meta.to_csv(tmp_path / "meta.csv")
    return path


def test_train_sample_evaluate_gan(tmp_path, counts_csv):
    import torch

    torch.set_num_threads(1)
    model = tmp_path / "model"
    assert _run(["synth", "train", "--data", str(counts_csv), "--out", str(model),
                 "--iterations", "4", "--seed", "1", "--metadata", str(tmp_path / "meta.csv"),
                 "--subject-column", "subject", "--test-fraction", "0.25"]) == 0
    for name in ("model.json", "model.safetensors", "train.csv", "heldout.csv", "history.csv"):
        assert (model / name).exists(), name
    train = pd.read_csv(model / "train.csv", index_col=0)
    held = pd.read_csv(model / "heldout.csv", index_col=0)
    assert not set(train.index) & set(held.index)
    assert len(held) == 10  # 5 of 20 subjects, 2 samples each

    syn = tmp_path / "syn.csv"
    assert _run(["synth", "sample", "--model", str(model), "--n", "30", "--out", str(syn),
                 "--seed", "2"]) == 0
    frame = pd.read_csv(syn, index_col=0)
    assert frame.shape == (30, 6)
    np.testing.assert_allclose(frame.sum(axis=1), 1.0, atol=1e-8)
    again = tmp_path / "syn2.csv"
    _run(["synth", "sample", "--model", str(model), "--n", "30", "--out", str(again),
          "--seed", "2"])
    assert syn.read_text() == again.read_text()

    out = tmp_path / "metrics.json"
    assert _run(["synth", "evaluate", "--real", str(model / "heldout.csv"), "--synthetic",
                 str(syn), "--train", str(model / "train.csv"), "--out", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert set(metrics["families"]) == {"sparsity_sample", "sparsity_taxon", "shannon",
                                        "bray_curtis", "spearman", "c2st"}
    assert metrics["memorisation"]["n_flagged"] >= 0
    assert sorted(p.name for p in (tmp_path / "metrics_figures").iterdir()) == [
        ".biofluxopt-output.json", "pcoa_braycurtis.png", "shannon.png", "sparsity.png"]


def test_conditioned_gan_and_baselines(tmp_path, counts_csv):
    import torch

    torch.set_num_threads(1)
    meta = str(tmp_path / "meta.csv")
    gan = tmp_path / "cgan"
    assert _run(["synth", "train", "--data", str(counts_csv), "--out", str(gan),
                 "--iterations", "2", "--metadata", meta, "--subject-column", "subject",
                 "--condition-column", "cohort"]) == 0
    assert _run(["synth", "sample", "--model", str(gan), "--n", "5", "--out",
                 str(tmp_path / "c.csv"), "--condition", "y"]) == 0
    assert _run(["synth", "sample", "--model", str(gan), "--n", "5", "--out",
                 str(tmp_path / "c.csv"), "--condition", "nope", "--overwrite"]) == 2
    rel = tmp_path / "rel"
    assert _run(["synth", "train", "--data", str(counts_csv), "--out", str(rel),
                 "--iterations", "2", "--relative", "--test-fraction", "0",
                 "--metadata", meta]) == 0
    meta_json = json.loads((rel / "model.json").read_text())
    assert meta_json["training"]["read_counts"] is False
    assert meta_json["model"]["depths"] is None
    assert not (rel / "heldout.csv").exists()
    for kind in ("dirichlet-multinomial", "bootstrap"):
        out = tmp_path / kind
        assert _run(["synth", "train", "--data", str(counts_csv), "--out", str(out),
                     "--model", kind]) == 0
        assert _run(["synth", "sample", "--model", str(out), "--n", "8", "--out",
                     str(tmp_path / f"{kind}.csv")]) == 0


def test_user_errors_exit_2(tmp_path, counts_csv, capsys):
    bad = tmp_path / "bad.csv"
    frame = pd.read_csv(counts_csv, index_col=0)
    frame.iloc[3, 2] = -5
    frame.to_csv(bad)
    assert _run(["synth", "train", "--data", str(bad), "--out", str(tmp_path / "m"),
                 "--model", "bootstrap"]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "negative" in err
    assert not (tmp_path / "m").exists()
    assert _run(["synth", "sample", "--model", str(tmp_path), "--n", "3", "--out",
                 str(tmp_path / "x.csv")]) == 2
    capsys.readouterr()
    fewer = tmp_path / "fewer.csv"
    pd.read_csv(counts_csv, index_col=0).iloc[:, :3].to_csv(fewer)
    assert _run(["synth", "evaluate", "--real", str(counts_csv), "--synthetic", str(fewer),
                 "--out", str(tmp_path / "m.json")]) == 2
    assert "missing" in capsys.readouterr().err


def _nearest_train_distance(x: pd.DataFrame, train: pd.DataFrame) -> np.ndarray:
    from scipy.spatial.distance import cdist

    return cdist(x.to_numpy(), train[x.columns].to_numpy(), "braycurtis").min(axis=1)


def test_sample_applies_the_near_copy_filter_by_default(tmp_path, counts_csv, capsys):
    import torch

    from biofluxopt.synth._checkpoint import load_model

    torch.set_num_threads(1)
    model = tmp_path / "model"
    # A high quantile so that some raw draws of a barely trained GAN fall below the threshold.
    assert _run(["synth", "train", "--data", str(counts_csv), "--out", str(model),
                 "--iterations", "3", "--metadata", str(tmp_path / "meta.csv"),
                 "--subject-column", "subject", "--near-copy-quantile", "0.5"]) == 0
    meta = json.loads((model / "model.json").read_text())["near_copy_filter"]
    assert meta["quantile"] == 0.5 and meta["grouped_by_subject"] is True
    threshold = meta["threshold_braycurtis"]
    train = pd.read_csv(model / "train.csv", index_col=0)
    assert meta["n_reference"] == len(train)
    capsys.readouterr()

    filtered, raw = tmp_path / "filtered.csv", tmp_path / "raw.csv"
    assert _run(["synth", "sample", "--model", str(model), "--n", "200", "--out",
                 str(filtered), "--seed", "5"]) == 0
    err = capsys.readouterr().err
    n_rejected = int(err.split("rejected ")[1].split()[0])
    assert n_rejected > 0
    assert _run(["synth", "sample", "--model", str(model), "--n", "200", "--out", str(raw),
                 "--seed", "5", "--no-near-copy-filter"]) == 0
    assert "filter off" in capsys.readouterr().err
    x_filtered = pd.read_csv(filtered, index_col=0)
    x_raw = pd.read_csv(raw, index_col=0)
    assert x_filtered.shape == x_raw.shape == (200, 6)
    assert (_nearest_train_distance(x_filtered, train) >= threshold - 1e-9).all()
    assert (_nearest_train_distance(x_raw, train) < threshold).any()
    fitted, _ = load_model(model)
    np.testing.assert_allclose(x_raw.to_numpy(), fitted.sample(200, seed=5), rtol=1e-9)


def test_bad_near_copy_quantile_is_a_config_error(tmp_path, counts_csv, capsys):
    out = tmp_path / "m"
    assert _run(["synth", "train", "--data", str(counts_csv), "--out", str(out),
                 "--model", "bootstrap", "--near-copy-quantile", "1.5"]) == 2
    assert "quantile" in capsys.readouterr().err
    assert not out.exists()


def test_model_without_stored_filter_needs_the_opt_out(tmp_path, counts_csv, capsys):
    model = tmp_path / "boot"
    assert _run(["synth", "train", "--data", str(counts_csv), "--out", str(model),
                 "--model", "bootstrap"]) == 0
    meta_path = model / "model.json"
    meta = json.loads(meta_path.read_text())
    del meta["near_copy_filter"]  # as written before the filter existed
    meta_path.write_text(json.dumps(meta))
    capsys.readouterr()
    assert _run(["synth", "sample", "--model", str(model), "--n", "5", "--out",
                 str(tmp_path / "x.csv")]) == 2
    assert "--no-near-copy-filter" in capsys.readouterr().err
    assert _run(["synth", "sample", "--model", str(model), "--n", "5", "--out",
                 str(tmp_path / "x.csv"), "--no-near-copy-filter"]) == 0
