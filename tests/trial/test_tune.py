"""The reward-weight search (biofluxopt.trial._tune): GP sampler, constraint, determinism,
resume after an interruption, Pareto mode, config errors, the figure, worker processes on
SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna
import pytest
from matplotlib.figure import Figure

from biofluxopt._util import ConfigError
from biofluxopt.trial._tune import (
    BRAY_CURTIS,
    GAIN,
    TRIAL_COLUMNS,
    TuneConfig,
    mask_url,
    pareto_figure,
    run_study,
    tune_config_from_dict,
)

HERE = Path(__file__).resolve().parent


def _toy_module():
    """``_toy_objective`` imported by name, so spawned workers can unpickle its objects (they
    inherit ``sys.path``)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    return importlib.import_module("_toy_objective")


toy = _toy_module()


def _objective(tmp_path: Path, **kwargs):
    log_dir = tmp_path / "log"
    log_dir.mkdir(exist_ok=True)
    return toy.ToyObjective(log_dir=str(log_dir), **kwargs), log_dir


def _study(root: Path, name: str = "biofluxopt-weights") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{root / 'study.db'}")


@pytest.fixture(scope="module")
def constrained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("constrained")
    objective, log_dir = _objective(tmp)
    cfg = TuneConfig(n_trials=8, seeds_per_trial=2, n_startup_trials=4)
    seen = []
    result = run_study(
        objective, cfg, root=tmp / "study", seed=3, progress=lambda d, t: seen.append((d, t))
    )
    return result, tmp, log_dir, seen


def test_constrained_mode_gp_sampler_feasible_best(constrained):
    result, tmp, log_dir, seen = constrained
    frame = result.trials
    assert list(frame.columns) == [*TRIAL_COLUMNS, "reward_mean"]
    assert list(frame["number"]) == list(range(8))
    assert (frame["state"] == "COMPLETE").all()
    assert seen[0] == (0, 8) and seen[-1] == (8, 8) and len(seen) == 9
    assert len(toy.calls(log_dir)) == 8 * 2
    # the Gaussian process proposed every trial after the random start-up ones
    study = _study(tmp / "study")
    gp = ["gp:relative_params:0" in t.system_attrs for t in study.trials]
    assert gp == [False] * 4 + [True] * 4
    assert all(
        t.constraints == {"bray_curtis": pytest.approx(r)}
        for t, r in zip(study.trials, frame[BRAY_CURTIS] - 0.05, strict=True)
    )
    # feasible best, highest gain among the feasible trials
    assert frame["feasible"].any()
    best = result.best
    assert best["feasible"] and best[BRAY_CURTIS] <= 0.05
    assert best[GAIN] == frame.loc[frame["feasible"], GAIN].max()
    # the trial means of the two seeds, the per-seed values and the work directories
    assert best[GAIN] == pytest.approx(sum(best["per_seed"][GAIN]) / 2)
    assert len(set(best["seeds"])) == 2
    for k, rel in enumerate(best["seed_workdirs"]):
        assert rel == f"trials/{best['number']:04d}/seed{k}"
        assert (result.root / rel / "objective.json").is_file()
    assert result.storage == f"sqlite:///{tmp / 'study' / 'study.db'}"
    assert result.resumed_trials == 0
    as_dict = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert as_dict["best"]["number"] == best["number"] and len(as_dict["trials"]) == 8


def test_pareto_figure_points(constrained):
    result = constrained[0]
    fig = pareto_figure(result)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    points = {c.get_label(): len(c.get_offsets()) for c in ax.collections}
    assert points["trials"] == 8
    assert points["Pareto front"] == len(result.pareto) >= 1
    assert next(v for k, v in points.items() if k.startswith("best")) == 1
    assert ax.get_lines()[-1].get_xdata()[0] == 0.05  # the limit


def test_same_seed_same_trials(tmp_path):
    cfg = TuneConfig(n_trials=6, seeds_per_trial=1, n_startup_trials=3)
    frames = []
    for run, seed in (("a", 11), ("b", 11), ("c", 12)):
        (tmp_path / run).mkdir()
        objective, _ = _objective(tmp_path / run)
        frames.append(run_study(objective, cfg, root=tmp_path / run / "study", seed=seed).trials)
    assert frames[0].to_csv() == frames[1].to_csv()
    assert frames[0].to_csv() != frames[2].to_csv()


def test_resume_runs_only_missing_trials(tmp_path):
    objective, log_dir = _objective(tmp_path)
    root = tmp_path / "study"
    first = run_study(objective, TuneConfig(n_trials=3, seeds_per_trial=2), root=root)
    assert len(toy.calls(log_dir)) == 6 and first.resumed_trials == 0
    again = run_study(objective, TuneConfig(n_trials=5, seeds_per_trial=2), root=root)
    assert len(toy.calls(log_dir)) == 10  # two new trials, two seeds each
    assert again.resumed_trials == 3
    assert list(again.trials["number"]) == list(range(5))
    assert again.trials.iloc[:3].to_csv() == first.trials.to_csv()
    # nothing left to do: no call
    done = run_study(objective, TuneConfig(n_trials=5, seeds_per_trial=2), root=root)
    assert len(toy.calls(log_dir)) == 10 and done.resumed_trials == 5


def test_interrupted_study_resumes_and_reevaluates_the_point(tmp_path, capfd):
    cfg = TuneConfig(n_trials=5, seeds_per_trial=1, n_startup_trials=3)
    root = tmp_path / "study"
    interrupting, log_dir = _objective(tmp_path, fail_on_call=3)
    verbosity = optuna.logging.get_verbosity()
    with pytest.raises(KeyboardInterrupt):
        run_study(interrupting, cfg, root=root)
    assert optuna.logging.get_verbosity() == verbosity  # restored
    assert "Traceback" not in capfd.readouterr().err  # no second report from Optuna's log
    before = toy.calls(log_dir)
    assert len(before) == 3
    states = [t.state.name for t in _study(root).trials]
    assert states == ["COMPLETE", "COMPLETE", "FAIL"]

    objective, _ = _objective(tmp_path)
    result = run_study(objective, cfg, root=root)
    after = toy.calls(log_dir)[3:]
    assert result.resumed_trials == 2
    assert len(after) == 3  # the interrupted point again, then two new trials
    key = [(c["w1"], c["w2"], c["seed"]) for c in [*before, *after]]
    assert key[3] == key[2]  # same point, same seed
    assert key[0] not in key[3:] and key[1] not in key[3:]
    frame = result.trials
    assert list(frame["state"]) == ["COMPLETE", "COMPLETE", "FAIL", *["COMPLETE"] * 3]
    assert (frame["state"] == "COMPLETE").sum() == 5
    retry = frame.iloc[3]
    assert (retry["w1"], retry["w2"]) == (frame.iloc[2]["w1"], frame.iloc[2]["w2"])
    assert retry["workdir"] == "trials/0003"


def test_killed_run_resumes(tmp_path):
    """A trial left RUNNING by a dead process is marked FAIL and its point re-evaluated."""
    cfg = TuneConfig(n_trials=3, seeds_per_trial=1, n_startup_trials=2)
    objective, log_dir = _objective(tmp_path)
    root = tmp_path / "study"
    run_study(objective, TuneConfig(n_trials=1, seeds_per_trial=1, n_startup_trials=2), root=root)
    study = _study(root)
    dead = study.ask()  # as a killed run leaves it
    dead.suggest_float("w1", 0.1, 100.0, log=True)
    dead.suggest_float("w2", 0.01, 10.0, log=True)
    result = run_study(objective, cfg, root=root)
    frame = result.trials
    assert list(frame["state"]) == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert frame.iloc[2]["w1"] == dead.params["w1"] and frame.iloc[2]["w2"] == dead.params["w2"]
    assert len(toy.calls(log_dir)) == 3


def test_pareto_mode_non_dominated_front(tmp_path):
    objective, _ = _objective(tmp_path)
    cfg = TuneConfig(n_trials=8, seeds_per_trial=1, n_startup_trials=4, mode="pareto")
    result = run_study(objective, cfg, root=tmp_path / "study", seed=5)
    assert [d.name for d in _study(tmp_path / "study").directions] == ["MAXIMIZE", "MINIMIZE"]
    done = result.trials[result.trials["state"] == "COMPLETE"]
    front = result.pareto
    assert len(done) == 8 and 1 <= len(front) <= 8

    def dominates(a, b):
        return (
            a[GAIN] >= b[GAIN]
            and a[BRAY_CURTIS] <= b[BRAY_CURTIS]
            and (a[GAIN] > b[GAIN] or a[BRAY_CURTIS] < b[BRAY_CURTIS])
        )

    rows = [r for _, r in front.iterrows()]
    assert not any(dominates(a, b) for a in rows for b in rows)
    on_front = set(front["number"])
    for _, r in done.iterrows():
        if r["number"] not in on_front:
            assert any(dominates(a, r) for a in rows)
    assert result.best["number"] in on_front
    within = front[front[BRAY_CURTIS] <= 0.05]
    if len(within):
        assert result.best[GAIN] == within[GAIN].max()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n_trials", 0),
        ("n_trials", 2.5),
        ("seeds_per_trial", True),
        ("w1_range", (0.0, 1.0)),
        ("w2_range", (5.0, 1.0)),
        ("w1_range", (1.0,)),
        ("bray_curtis_limit", 0.0),
        ("bray_curtis_limit", 1.5),
        ("mode", "both"),
        ("n_startup_trials", -1),
        ("study_name", " "),
    ],
)
def test_bad_config_names_the_key(field, value):
    with pytest.raises(ConfigError, match=rf"^tune\.{field}: "):
        TuneConfig(**{field: value}).check()
    with pytest.raises(ConfigError, match=rf"^cfg\.toml: tune\.{field}: "):
        tune_config_from_dict({field: value}, source="cfg.toml")


def test_config_from_dict():
    cfg = tune_config_from_dict({"w1_range": [1, 10], "mode": "pareto"})
    assert cfg.w1_range == (1, 10) and cfg.mode == "pareto"
    with pytest.raises(ConfigError, match=r"^cfg\.toml: tune\.n_trails: unknown option"):
        tune_config_from_dict({"n_trails": 3}, source="cfg.toml")


def test_bad_run_arguments_and_incompatible_study(tmp_path):
    objective, log_dir = _objective(tmp_path)
    root = tmp_path / "study"
    with pytest.raises(ConfigError, match="--workers"):
        run_study(objective, TuneConfig(), root=root, workers=0)
    with pytest.raises(ConfigError, match="--seed"):
        run_study(objective, TuneConfig(), root=root, seed=-1)
    with pytest.raises(ConfigError, match="--storage"):
        run_study(objective, TuneConfig(), root=root, storage="nosuchdb://x")
    run_study(objective, TuneConfig(n_trials=1, seeds_per_trial=1), root=root)
    for change in ({"mode": "pareto"}, {"w1_range": (1.0, 10.0)}, {"bray_curtis_limit": 0.1}):
        cfg = TuneConfig(n_trials=2, seeds_per_trial=1, **change)
        with pytest.raises(ConfigError, match=r"^tune\.study_name: .*another study name"):
            run_study(objective, cfg, root=root)
    assert len(toy.calls(log_dir)) == 1
    # another name in the same storage is a fresh study
    other = TuneConfig(n_trials=1, seeds_per_trial=1, mode="pareto", study_name="w-pareto")
    assert run_study(objective, other, root=root).resumed_trials == 0


def test_mask_url():
    assert mask_url("postgresql+psycopg://bob:secret@db:5432/x") == (
        "postgresql+psycopg://bob:***@db:5432/x"
    )
    assert mask_url("postgresql+psycopg://bob@db/x") == "postgresql+psycopg://bob@db/x"


def _check_parallel(result, log_dir, n):
    frame = result.trials
    complete = frame[frame["state"] == "COMPLETE"]
    assert len(complete) == n
    assert set(frame["state"]) <= {"COMPLETE", "PRUNED"}  # pruned: waited, budget met
    points = list(zip(complete["w1"], complete["w2"], strict=True))
    assert len(set(points)) == n  # no duplicate evaluations
    assert len(set(complete["workdir"])) == n
    assert len(toy.calls(log_dir)) == n


def test_workers_on_sqlite(tmp_path):
    objective, log_dir = _objective(tmp_path)
    cfg = TuneConfig(n_trials=5, seeds_per_trial=1, n_startup_trials=3)
    seen = []
    result = run_study(
        objective, cfg, root=tmp_path / "study", workers=2, progress=lambda d, t: seen.append(d)
    )
    _check_parallel(result, log_dir, 5)
    assert seen[0] == 0 and seen[-1] == 5 and seen == sorted(seen)


@pytest.mark.parametrize("rep", range(3))
def test_workers_never_overshoot_the_budget(tmp_path, rep):
    # more workers than free places at once: every last place is contended (regression: a
    # start-time ordering without a lock once let two trials take the last place)
    objective, log_dir = _objective(tmp_path)
    cfg = TuneConfig(n_trials=5, seeds_per_trial=1, n_startup_trials=5)
    result = run_study(objective, cfg, root=tmp_path / "study", seed=rep, workers=3)
    _check_parallel(result, log_dir, 5)


def test_worker_error_surfaces_in_parent(tmp_path):
    objective, _ = _objective(tmp_path, fail_on_call=2, error="ZeroDivisionError")
    cfg = TuneConfig(n_trials=20, seeds_per_trial=1)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"tune worker \d failed: ZeroDivisionError: toy") as e:
        run_study(objective, cfg, root=tmp_path / "study", workers=2)
    assert "planned ZeroDivisionError" in "".join(e.value.__notes__)
    assert time.monotonic() - start < 120


# ====================================================================== PostgreSQL
def _pg_bindir() -> Path | None:
    """Directory of ``initdb`` and ``pg_ctl``: PATH first, then Debian's layout."""
    found = [shutil.which(name) for name in ("initdb", "pg_ctl")]
    if all(found):
        return Path(found[1]).resolve().parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for bindir in reversed(candidates):
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    return None


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url(tmp_path):
    """A PostgreSQL URL: ``BIOFLUXOPT_TEST_POSTGRES_URL``, or a throwaway local cluster;
    skipped without one unless ``BIOFLUXOPT_REQUIRE_POSTGRES=1``."""
    url = os.environ.get("BIOFLUXOPT_TEST_POSTGRES_URL")
    if url:
        yield url
        return

    def unavailable(why: str):
        if os.environ.get("BIOFLUXOPT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"BIOFLUXOPT_REQUIRE_POSTGRES=1 but {why}")
        pytest.skip(why)

    bindir = _pg_bindir()
    if bindir is None:
        unavailable("no PostgreSQL server binaries (initdb, pg_ctl) and no test URL")
    if os.geteuid() == 0:
        unavailable("PostgreSQL does not run as root; set BIOFLUXOPT_TEST_POSTGRES_URL")
    pytest.importorskip("psycopg")
    import psycopg

    data = tmp_path / "pgdata"
    sock = Path(tempfile.mkdtemp(prefix="bfo-pg-"))  # short: socket paths are limited
    subprocess.run(
        [bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c fsync=off"
    log = tmp_path / "pg.log"
    subprocess.run(
        [bindir / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "30", "-o", options, "start"],
        check=True,
        capture_output=True,
    )
    try:
        with psycopg.connect(
            host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True
        ) as con:
            con.execute("CREATE DATABASE biofluxopt_test")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/biofluxopt_test"
    finally:
        subprocess.run(
            [bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"], capture_output=True
        )
        shutil.rmtree(sock, ignore_errors=True)


def test_workers_on_postgresql(tmp_path, postgres_url):
    pytest.importorskip("psycopg")
    objective, log_dir = _objective(tmp_path)
    name = f"test-tune-{uuid.uuid4().hex[:12]}"  # unique in a shared server
    cfg = TuneConfig(n_trials=6, seeds_per_trial=1, n_startup_trials=3, study_name=name)
    try:
        result = run_study(objective, cfg, root=tmp_path / "study", storage=postgres_url, workers=2)
        _check_parallel(result, log_dir, 6)
        assert result.storage.startswith("postgresql+psycopg://")
        assert not (tmp_path / "study" / "study.db").exists()
    finally:
        with contextlib.suppress(Exception):
            optuna.delete_study(study_name=name, storage=postgres_url)
