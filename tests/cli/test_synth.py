"""End-to-end ``biofluxopt synth train | sample | evaluate`` on tiny inputs."""

from __future__ import annotations

import json
import os

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
    frame = pd.DataFrame(
        counts,
        index=[f"s{i:02d}" for i in range(n)],
        columns=[f"k__Bacteria;g__G{j}" for j in range(taxa)],
    )
    frame.index.name = "sample_id"
    path = tmp_path / "counts.csv"
    frame.to_csv(path)
    meta = pd.DataFrame(
        {"subject": [f"p{i // 2}" for i in range(n)], "cohort": ["x", "y"] * (n // 2)},
        index=frame.index,
    )
    meta.to_csv(tmp_path / "meta.csv")
    return path


def test_train_sample_evaluate_gan(tmp_path, counts_csv):
    import torch

    torch.set_num_threads(1)
    model = tmp_path / "model"
    assert (
        _run(
            [
                "synth",
                "train",
                "--data",
                str(counts_csv),
                "--out",
                str(model),
                "--iterations",
                "4",
                "--seed",
                "1",
                "--metadata",
                str(tmp_path / "meta.csv"),
                "--subject-column",
                "subject",
                "--test-fraction",
                "0.25",
            ]
        )
        == 0
    )
    for name in ("model.json", "model.safetensors", "train.csv", "heldout.csv", "history.csv"):
        assert (model / name).exists(), name
    train = pd.read_csv(model / "train.csv", index_col=0)
    held = pd.read_csv(model / "heldout.csv", index_col=0)
    assert not set(train.index) & set(held.index)
    assert len(held) == 10  # 5 of 20 subjects, 2 samples each

    syn = tmp_path / "syn.csv"
    assert (
        _run(
            [
                "synth",
                "sample",
                "--model",
                str(model),
                "--n",
                "30",
                "--out",
                str(syn),
                "--seed",
                "2",
            ]
        )
        == 0
    )
    frame = pd.read_csv(syn, index_col=0)
    assert frame.shape == (30, 6)
    np.testing.assert_allclose(frame.sum(axis=1), 1.0, atol=1e-8)
    again = tmp_path / "syn2.csv"
    _run(
        ["synth", "sample", "--model", str(model), "--n", "30", "--out", str(again), "--seed", "2"]
    )
    assert syn.read_text() == again.read_text()

    out = tmp_path / "metrics.json"
    assert (
        _run(
            [
                "synth",
                "evaluate",
                "--real",
                str(model / "heldout.csv"),
                "--synthetic",
                str(syn),
                "--train",
                str(model / "train.csv"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    metrics = json.loads(out.read_text())
    assert set(metrics["families"]) == {
        "sparsity_sample",
        "sparsity_taxon",
        "shannon",
        "bray_curtis",
        "spearman",
        "c2st",
    }
    # The memorisation block is the metric of the three files written above (held-out real,
    # synthetic, training), not a default: recompute it independently.
    from scipy.spatial.distance import cdist

    def nearest(a):
        return cdist(a, train.to_numpy(), metric="braycurtis").min(axis=1)

    d_real, d_syn = nearest(held.to_numpy()), nearest(frame[train.columns].to_numpy())
    expected = int((d_syn < np.quantile(d_real, 0.05)).sum())
    mem = metrics["memorisation"]
    assert mem["n_flagged"] == expected and mem["fraction_flagged"] == pytest.approx(expected / 30)
    assert mem["threshold"] == pytest.approx(np.quantile(d_real, 0.05))
    assert sorted(p.name for p in (tmp_path / "metrics_figures").iterdir()) == [
        ".biofluxopt-output.json",
        "pcoa_braycurtis.png",
        "shannon.png",
        "sparsity.png",
    ]


def test_conditioned_gan_and_baselines(tmp_path, counts_csv):
    import torch

    torch.set_num_threads(1)
    meta = str(tmp_path / "meta.csv")
    gan = tmp_path / "cgan"
    assert (
        _run(
            [
                "synth",
                "train",
                "--data",
                str(counts_csv),
                "--out",
                str(gan),
                "--iterations",
                "2",
                "--metadata",
                meta,
                "--subject-column",
                "subject",
                "--condition-column",
                "cohort",
            ]
        )
        == 0
    )
    assert (
        _run(
            [
                "synth",
                "sample",
                "--model",
                str(gan),
                "--n",
                "5",
                "--out",
                str(tmp_path / "c.csv"),
                "--condition",
                "y",
            ]
        )
        == 0
    )
    assert (
        _run(
            [
                "synth",
                "sample",
                "--model",
                str(gan),
                "--n",
                "5",
                "--out",
                str(tmp_path / "c.csv"),
                "--condition",
                "nope",
                "--overwrite",
            ]
        )
        == 2
    )
    rel = tmp_path / "rel"
    assert (
        _run(
            [
                "synth",
                "train",
                "--data",
                str(counts_csv),
                "--out",
                str(rel),
                "--iterations",
                "2",
                "--relative",
                "--test-fraction",
                "0",
                "--metadata",
                meta,
            ]
        )
        == 0
    )
    meta_json = json.loads((rel / "model.json").read_text())
    assert meta_json["training"]["read_counts"] is False
    assert meta_json["model"]["depths"] is None
    assert not (rel / "heldout.csv").exists()
    for kind in ("dirichlet-multinomial", "bootstrap"):
        out = tmp_path / kind
        assert (
            _run(["synth", "train", "--data", str(counts_csv), "--out", str(out), "--model", kind])
            == 0
        )
        assert (
            _run(
                [
                    "synth",
                    "sample",
                    "--model",
                    str(out),
                    "--n",
                    "8",
                    "--out",
                    str(tmp_path / f"{kind}.csv"),
                ]
            )
            == 0
        )


def test_user_errors_exit_2(tmp_path, counts_csv, capsys):
    bad = tmp_path / "bad.csv"
    frame = pd.read_csv(counts_csv, index_col=0)
    frame.iloc[3, 2] = -5
    frame.to_csv(bad)
    assert (
        _run(
            [
                "synth",
                "train",
                "--data",
                str(bad),
                "--out",
                str(tmp_path / "m"),
                "--model",
                "bootstrap",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "bad.csv" in err and "negative" in err
    assert not (tmp_path / "m").exists()
    assert (
        _run(
            [
                "synth",
                "sample",
                "--model",
                str(tmp_path),
                "--n",
                "3",
                "--out",
                str(tmp_path / "x.csv"),
            ]
        )
        == 2
    )
    capsys.readouterr()
    fewer = tmp_path / "fewer.csv"
    pd.read_csv(counts_csv, index_col=0).iloc[:, :3].to_csv(fewer)
    assert (
        _run(
            [
                "synth",
                "evaluate",
                "--real",
                str(counts_csv),
                "--synthetic",
                str(fewer),
                "--out",
                str(tmp_path / "m.json"),
            ]
        )
        == 2
    )
    assert "missing" in capsys.readouterr().err


def _nearest_train_distance(x: pd.DataFrame, train: pd.DataFrame) -> np.ndarray:
    from scipy.spatial.distance import cdist

    return cdist(x.to_numpy(), train[x.columns].to_numpy(), "braycurtis").min(axis=1)


def test_sample_applies_the_near_copy_filter_by_default(tmp_path, counts_csv, capsys):
    import torch

    from biofluxopt.synth import load_model

    torch.set_num_threads(1)
    model = tmp_path / "model"
    # A high quantile so that some raw draws of a barely trained GAN fall below the threshold.
    assert (
        _run(
            [
                "synth",
                "train",
                "--data",
                str(counts_csv),
                "--out",
                str(model),
                "--iterations",
                "3",
                "--metadata",
                str(tmp_path / "meta.csv"),
                "--subject-column",
                "subject",
                "--near-copy-quantile",
                "0.5",
            ]
        )
        == 0
    )
    meta = json.loads((model / "model.json").read_text())["near_copy_filter"]
    assert meta["quantile"] == 0.5 and meta["grouped_by_subject"] is True
    threshold = meta["threshold_braycurtis"]
    train = pd.read_csv(model / "train.csv", index_col=0)
    assert meta["n_reference"] == len(train)
    capsys.readouterr()

    filtered, raw = tmp_path / "filtered.csv", tmp_path / "raw.csv"
    assert (
        _run(
            [
                "synth",
                "sample",
                "--model",
                str(model),
                "--n",
                "200",
                "--out",
                str(filtered),
                "--seed",
                "5",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    n_rejected = int(err.split("rejected ")[1].split()[0])
    assert n_rejected > 0
    assert (
        _run(
            [
                "synth",
                "sample",
                "--model",
                str(model),
                "--n",
                "200",
                "--out",
                str(raw),
                "--seed",
                "5",
                "--no-near-copy-filter",
            ]
        )
        == 0
    )
    assert "filter off" in capsys.readouterr().err
    x_filtered = pd.read_csv(filtered, index_col=0)
    x_raw = pd.read_csv(raw, index_col=0)
    assert x_filtered.shape == x_raw.shape == (200, 6)
    assert (_nearest_train_distance(x_filtered, train) >= threshold - 1e-9).all()
    assert (_nearest_train_distance(x_raw, train) < threshold).any()
    fitted, meta_doc = load_model(model)
    np.testing.assert_allclose(x_raw.to_numpy(), fitted.sample(200, seed=5), rtol=1e-9)
    # the command draws as the API does, with the model's own redraw rule (near_copy_redraw)
    from biofluxopt.synth import load_near_copy_filter

    near_copy = load_near_copy_filter(model, meta_doc, taxa=list(fitted.taxa_))
    x_api, rejected_api = fitted.sample_with_filter(200, near_copy, seed=5)
    np.testing.assert_allclose(x_filtered.to_numpy(), x_api, rtol=1e-9)
    assert rejected_api == n_rejected


def test_bad_near_copy_quantile_is_a_config_error(tmp_path, counts_csv, capsys):
    out = tmp_path / "m"
    assert (
        _run(
            [
                "synth",
                "train",
                "--data",
                str(counts_csv),
                "--out",
                str(out),
                "--model",
                "bootstrap",
                "--near-copy-quantile",
                "1.5",
            ]
        )
        == 2
    )
    assert "quantile" in capsys.readouterr().err
    assert not out.exists()


def test_model_without_stored_filter_needs_the_opt_out(tmp_path, counts_csv, capsys):
    model = tmp_path / "boot"
    assert (
        _run(
            [
                "synth",
                "train",
                "--data",
                str(counts_csv),
                "--out",
                str(model),
                "--model",
                "bootstrap",
            ]
        )
        == 0
    )
    meta_path = model / "model.json"
    meta = json.loads(meta_path.read_text())
    del meta["near_copy_filter"]  # as written before the filter existed
    meta_path.write_text(json.dumps(meta))
    capsys.readouterr()
    assert (
        _run(
            ["synth", "sample", "--model", str(model), "--n", "5", "--out", str(tmp_path / "x.csv")]
        )
        == 2
    )
    assert "--no-near-copy-filter" in capsys.readouterr().err
    assert (
        _run(
            [
                "synth",
                "sample",
                "--model",
                str(model),
                "--n",
                "5",
                "--out",
                str(tmp_path / "x.csv"),
                "--no-near-copy-filter",
            ]
        )
        == 0
    )


# ---------------------------------------------------------------- reliability (issue 9)
def _error_line(capsys) -> str:
    """The command's one-line error (last stderr line); no traceback anywhere."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error:"), err
    return line


def _frame(counts_csv) -> pd.DataFrame:
    return pd.read_csv(counts_csv, index_col=0)


def test_train_never_touches_user_files_and_overwrites_only_its_own(tmp_path, counts_csv, capsys):
    data_dir = tmp_path / "mine"
    data_dir.mkdir()
    data = data_dir / "mydata.csv"
    data.write_bytes(counts_csv.read_bytes())
    assert (
        _run(
            ["synth", "train", "--data", str(data), "--out", str(data_dir), "--model", "bootstrap"]
        )
        == 2
    )
    assert "not written by biofluxopt" in _error_line(capsys)
    assert sorted(p.name for p in data_dir.iterdir()) == ["mydata.csv"]
    assert data.read_bytes() == counts_csv.read_bytes()

    model = tmp_path / "model"
    args = [
        "synth",
        "train",
        "--data",
        str(counts_csv),
        "--out",
        str(model),
        "--model",
        "bootstrap",
    ]
    assert _run(args) == 0
    (model / "notes.txt").write_text("mine")
    assert _run(args) == 2
    assert "--overwrite" in _error_line(capsys)
    assert _run([*args, "--overwrite", "--seed", "3"]) == 0
    assert (model / "notes.txt").read_text() == "mine"
    assert json.loads((model / "model.json").read_text())["training"]["seed"] == 3
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert (
        _run(
            [
                "synth",
                "train",
                "--data",
                str(counts_csv),
                "--out",
                str(afile),
                "--model",
                "bootstrap",
            ]
        )
        == 2
    )
    assert "existing file" in _error_line(capsys) and afile.read_text() == "x"


def _bad_tables(tmp_path, counts_csv) -> dict:
    frame = _frame(counts_csv)
    cases = {}
    dup = frame.copy()
    dup.columns = [*frame.columns[:-1], frame.columns[0]]
    cases["dup_taxa"] = (dup, [], r"dup_taxa\.csv: duplicate taxon ids 'k__Bacteria;g__G0'")
    dup = frame.rename(index={"s01": "s00"})
    cases["dup_samples"] = (dup, [], r"dup_samples\.csv: duplicate sample ids 's00'")
    cases["transposed"] = (
        frame.T.rename_axis("sample_id"),
        [],
        r"transposed\.csv: orientation: contradictory layout",
    )
    cases["flag"] = (
        frame,
        ["--orientation", "taxa_by_samples"],
        r"--orientation taxa_by_samples contradicts the table",
    )
    inf = frame.astype(float)
    inf.iloc[2, 1] = np.inf
    cases["inf"] = (inf, [], r"inf\.csv: missing or non-finite values in samples 's02'")
    cases["subject"] = (
        frame,
        ["--metadata", str(tmp_path / "meta.csv"), "--subject-column", "subjct"],
        r"--subject-column: no sample metadata column 'subjct'; columns: "
        r"'subject', 'cohort'",
    )
    cases["no_meta"] = (
        frame,
        ["--subject-column", "subject"],
        r"--subject-column: no sample metadata to find subject column",
    )
    cases["condition"] = (
        frame,
        ["--metadata", str(tmp_path / "meta.csv"), "--condition-column", "cohrt"],
        r"--condition-column: no sample metadata column 'cohrt'",
    )
    one = frame.sum(axis=1).to_frame("k__Bacteria;g__G0")
    cases["one_taxon"] = (one, [], r"one_taxon\.csv: --data: 1 taxon with reads")
    cases["three"] = (frame.iloc[:3], [], r"three\.csv: --data: 3 samples left")
    cases["test_fraction"] = (
        frame,
        ["--test-fraction", "0.9"],
        r"--test-fraction: 4 training samples left",
    )
    cases["seed_negative"] = (frame, ["--seed", "-1"], r"--seed: must be an integer from 0")
    cases["seed_huge"] = (frame, ["--seed", str(2**64)], r"--seed: must be an integer from 0")
    cases["quantile"] = (frame, ["--near-copy-quantile", "1"], r"--near-copy-quantile")
    return cases


@pytest.mark.parametrize(
    "case",
    [
        "dup_taxa",
        "dup_samples",
        "transposed",
        "flag",
        "inf",
        "subject",
        "no_meta",
        "condition",
        "one_taxon",
        "three",
        "test_fraction",
        "seed_negative",
        "seed_huge",
        "quantile",
    ],
)
def test_train_refuses_bad_input_in_one_line(tmp_path, counts_csv, capsys, case):
    import re

    frame, extra, pattern = _bad_tables(tmp_path, counts_csv)[case]
    path = tmp_path / f"{case}.csv"
    frame.to_csv(path)
    out = tmp_path / "out"
    assert (
        _run(
            [
                "synth",
                "train",
                "--data",
                str(path),
                "--out",
                str(out),
                "--model",
                "gan",
                "--iterations",
                "1",
                *extra,
            ]
        )
        == 2
    )
    assert re.search(pattern, _error_line(capsys))
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if "biofluxopt-tmp" in p.name]


def test_train_on_counts_near_1e300_uses_them_as_abundances(tmp_path, counts_csv):
    huge = tmp_path / "huge.csv"
    (_frame(counts_csv).astype(float) * 1e300).to_csv(huge)
    out = tmp_path / "m"
    assert (
        _run(["synth", "train", "--data", str(huge), "--out", str(out), "--iterations", "2"]) == 0
    )
    meta = json.loads((out / "model.json").read_text())
    assert meta["training"]["read_counts"] is False
    train = pd.read_csv(out / "train.csv", index_col=0)
    np.testing.assert_allclose(train.sum(axis=1), 1.0)


def test_thread_count_does_not_change_the_weights(tmp_path, counts_csv):
    import torch

    before = torch.get_num_threads()
    weights = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)  # what the machine's default would be
            out = tmp_path / f"t{threads}"
            assert (
                _run(
                    [
                        "synth",
                        "train",
                        "--data",
                        str(counts_csv),
                        "--out",
                        str(out),
                        "--iterations",
                        "3",
                        "--seed",
                        "4",
                    ]
                )
                == 0
            )
            assert torch.get_num_threads() == threads  # the caller's setting is restored
            weights.append((out / "model.safetensors").read_bytes())
            assert json.loads((out / "model.json").read_text())["training"]["torch_threads"] == 1
    finally:
        torch.set_num_threads(before)
    assert weights[0] == weights[1]


@pytest.fixture
def boot_model(tmp_path, counts_csv):
    model = tmp_path / "boot"
    assert (
        _run(
            [
                "synth",
                "train",
                "--data",
                str(counts_csv),
                "--out",
                str(model),
                "--model",
                "bootstrap",
                "--metadata",
                str(tmp_path / "meta.csv"),
                "--subject-column",
                "subject",
            ]
        )
        == 0
    )
    return model


def test_sample_output_file_is_checked_first(tmp_path, boot_model, capsys):
    capsys.readouterr()
    out = tmp_path / "syn.csv"
    args = ["synth", "sample", "--model", str(boot_model), "--n", "5"]
    assert _run([*args, "--out", str(out)]) == 0
    first = out.read_bytes()
    assert _run([*args, "--out", str(out), "--seed", "1"]) == 2
    assert "--out" in _error_line(capsys) and out.read_bytes() == first
    assert _run([*args, "--out", str(out), "--seed", "1", "--overwrite"]) == 0
    assert out.read_bytes() != first
    assert _run([*args, "--out", str(tmp_path)]) == 2
    assert "is a directory" in _error_line(capsys)
    train = (boot_model / "train.csv").read_bytes()
    assert _run([*args, "--out", str(boot_model / "train.csv"), "--overwrite"]) == 2
    assert "input of this command" in _error_line(capsys)
    assert (boot_model / "train.csv").read_bytes() == train
    assert _run([*args, "--out", str(out / "x.csv")]) == 2  # parent is a file
    assert "is a file" in _error_line(capsys)
    assert (
        _run(
            [
                "synth",
                "sample",
                "--model",
                str(boot_model),
                "--n",
                "2000000000",
                "--out",
                str(tmp_path / "big.csv"),
            ]
        )
        == 2
    )
    assert "--n 2000000000" in _error_line(capsys) and not (tmp_path / "big.csv").exists()


def _corrupt(model, how: str) -> None:
    train = model / "train.csv"
    if how == "empty":
        train.write_text("")
    elif how == "garbage":
        train.write_bytes(b"\x00\x01\xff\xfe garbage")
    elif how == "text_cell":
        frame = pd.read_csv(train, index_col=0).astype(object)
        frame.iat[1, 1] = "abc"
        frame.to_csv(train)
    elif how == "n_reference":
        meta = json.loads((model / "model.json").read_text())
        meta["near_copy_filter"]["n_reference"] = "lots"
        (model / "model.json").write_text(json.dumps(meta))
    else:  # NaN weights
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(model / "model.safetensors"))
        tensors["train"][0, 0] = float("nan")
        save_file(tensors, str(model / "model.safetensors"))


@pytest.mark.parametrize(
    ("how", "pattern"),
    [
        ("empty", r"train\.csv: cannot parse as CSV"),
        ("garbage", r"train\.csv: cannot parse as CSV"),
        ("text_cell", r"train\.csv: sample .*non-numeric value 'abc'"),
        ("n_reference", r"model\.json: near_copy_filter\.n_reference: must be a positive integer"),
        ("nan_weights", r"model\.safetensors: training profiles must be finite"),
    ],
)
def test_sample_refuses_broken_model_directories(tmp_path, boot_model, capsys, how, pattern):
    import re

    _corrupt(boot_model, how)
    capsys.readouterr()
    out = tmp_path / "x.csv"
    assert _run(["synth", "sample", "--model", str(boot_model), "--n", "5", "--out", str(out)]) == 2
    assert re.search(pattern, _error_line(capsys))
    assert not out.exists()


def test_gan_with_nan_weights_is_refused(tmp_path, counts_csv, capsys):
    from safetensors.torch import load_file, save_file

    model = tmp_path / "gan"
    assert (
        _run(
            ["synth", "train", "--data", str(counts_csv), "--out", str(model), "--iterations", "1"]
        )
        == 0
    )
    tensors = load_file(str(model / "model.safetensors"))
    tensors["generator.abundance.bias"][3] = float("nan")
    save_file(tensors, str(model / "model.safetensors"))
    capsys.readouterr()
    assert (
        _run(
            ["synth", "sample", "--model", str(model), "--n", "5", "--out", str(tmp_path / "x.csv")]
        )
        == 2
    )
    assert "non-finite (NaN/inf) weights" in _error_line(capsys)


def _strict_json(path):
    def refuse(name):
        raise AssertionError(f"non-strict JSON constant {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_evaluate_identical_synthetic_samples_and_stable_outputs(tmp_path, counts_csv):
    frame = _frame(counts_csv)
    same = pd.DataFrame(
        np.repeat(frame.iloc[[0]].to_numpy(), 12, axis=0),
        columns=frame.columns,
        index=[f"x{i}" for i in range(12)],
    )
    same.index.name = "sample_id"
    syn = tmp_path / "same.csv"
    same.to_csv(syn)
    out, figs = tmp_path / "m.json", tmp_path / "figs"
    args = [
        "synth",
        "evaluate",
        "--real",
        str(counts_csv),
        "--synthetic",
        str(syn),
        "--train",
        str(counts_csv),
        "--out",
        str(out),
        "--figures",
        str(figs),
    ]
    assert _run(args) == 0
    metrics = _strict_json(out)
    assert metrics["families"]["sparsity_taxon"]["pearson_r"] is None  # zero variance
    assert np.isfinite(metrics["families"]["spearman"]["rmse"])
    pngs = {p.name: p.read_bytes() for p in figs.glob("*.png")}
    assert len(pngs) == 3
    assert _run([*args, "--overwrite"]) == 0
    assert {p.name: p.read_bytes() for p in figs.glob("*.png")} == pngs  # byte-stable
    assert _strict_json(out) == metrics


def test_evaluate_refuses_bad_outputs_before_writing(tmp_path, counts_csv, capsys):
    afile = tmp_path / "figs"
    afile.write_text("not a directory")
    out = tmp_path / "m.json"
    base = ["synth", "evaluate", "--real", str(counts_csv), "--synthetic", str(counts_csv)]
    assert _run([*base, "--out", str(out), "--figures", str(afile)]) == 2
    assert "--figures" in _error_line(capsys)
    assert not out.exists() and afile.read_text() == "not a directory"
    assert _run([*base, "--out", str(counts_csv), "--overwrite"]) == 2
    assert "input of this command" in _error_line(capsys)
    assert _run([*base, "--out", str(tmp_path)]) == 2
    assert "is a directory" in _error_line(capsys)
    short = tmp_path / "short.csv"
    _frame(counts_csv).iloc[:2].to_csv(short)
    assert (
        _run(
            [
                "synth",
                "evaluate",
                "--real",
                str(counts_csv),
                "--synthetic",
                str(short),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "short.csv: need at least 4 samples, got 2" in _error_line(capsys)
    assert not out.exists() and not (tmp_path / "m_figures").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_output_directory_is_refused_before_computing(tmp_path, counts_csv, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert (
            _run(
                [
                    "synth",
                    "evaluate",
                    "--real",
                    str(counts_csv),
                    "--synthetic",
                    str(counts_csv),
                    "--out",
                    str(locked / "m.json"),
                ]
            )
            == 2
        )
        assert "cannot write" in _error_line(capsys)
        assert (
            _run(
                [
                    "synth",
                    "train",
                    "--data",
                    str(counts_csv),
                    "--out",
                    str(locked / "m"),
                    "--model",
                    "bootstrap",
                ]
            )
            == 2
        )
        assert "cannot write" in _error_line(capsys)
    finally:
        locked.chmod(0o755)


def test_every_synth_option_has_help():
    import typer

    from biofluxopt.cli._synth import synth_app

    group = typer.main.get_command(synth_app)
    for name, command in group.commands.items():
        for param in command.params:
            if param.param_type_name == "option" and param.name != "help":
                assert (param.help or "").strip(), f"synth {name} {param.opts}"


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        ("inf", "--min-depth: must be a finite number of reads"),
        ("1e12", r"--min-depth: no sample has depth >= 1000000000000"),
    ],
)
def test_min_depth_errors_name_the_option(tmp_path, counts_csv, capsys, value, pattern):
    import re

    assert (
        _run(
            [
                "synth",
                "train",
                "--data",
                str(counts_csv),
                "--out",
                str(tmp_path / "m"),
                "--model",
                "bootstrap",
                "--min-depth",
                value,
            ]
        )
        == 2
    )
    assert re.search(pattern, _error_line(capsys))


@pytest.mark.parametrize(
    ("name", "subject_column", "read_counts", "n_samples"),
    [("hmp-v13", "subject_rsid", True, 171), ("atlas", "subject", False, 1151)],
)
def test_train_on_shipped_cohorts(tmp_path, name, subject_column, read_counts, n_samples):
    model = tmp_path / name
    args = ["synth", "train", "--data", name, "--out", str(model), "--model", "bootstrap"]
    assert _run([*args, "--max-taxa", "12"]) == 0
    training = json.loads((model / "model.json").read_text())["training"]
    assert training["data"] == name and training["subject_column"] == subject_column
    assert training["read_counts"] is read_counts
    assert training["n_train"] + training["n_heldout"] == n_samples
    assert pd.read_csv(model / "train.csv", index_col=0).shape[1] == 12
