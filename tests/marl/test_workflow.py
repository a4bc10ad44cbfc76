"""train_workflow: the baselines computed alongside training equal those computed after it."""

from __future__ import annotations

import dataclasses
import json

from biofluxopt.marl import load_run_config, train_workflow

TIMINGS = {"wall_s", "search_wall_s", "evaluation_wall_s", "baselines_wall_s"}


def _strip(doc):
    """The document without timings and the flag that differs by construction."""
    if isinstance(doc, dict):
        return {
            k: _strip(v)
            for k, v in doc.items()
            if k not in TIMINGS
            and k not in {"baselines_in_background", "background"}
            and k != "train_env_steps_per_s"
        }
    if isinstance(doc, list):
        return [_strip(v) for v in doc]
    return doc


def test_background_baselines_equal_sequential_ones(tmp_path):
    run = load_run_config(preset="tiny")
    docs, stages = {}, {}
    for background in (True, False):
        run.baselines = dataclasses.replace(run.baselines, background=background)
        out = tmp_path / str(background)
        out.mkdir()
        seen = []
        docs[background] = train_workflow(
            run, out, seed=5, on_stage=lambda s, d, t, seen=seen: seen.append((s, d, t))
        )
        stages[background] = seen
        assert json.loads((out / "eval.json").read_text())["baselines_in_background"] is background
    assert _strip(docs[True]) == _strip(docs[False])
    # the background process's progress reaches the caller, in the same order
    assert stages[True] == stages[False] and {s for s, _, _ in stages[True]} >= {
        "constant",
        "oracle",
    }
    assert next(iter(docs[True]["methods"])) == "policy"


def test_shipped_presets_load_and_fit_the_memory_limit():
    from biofluxopt.marl import check_oracle_memory

    for preset in ("default", "tiny"):
        run = load_run_config(preset=preset)
        bl = run.baselines
        check_oracle_memory(run.env, bl.eval_patients, bl.oracle_grad_steps)
        check_oracle_memory(run.env, bl.constant_patients, bl.constant_grad_steps)
    default = load_run_config(preset="default")
    # the default task is the trial's control arm, the one with something to learn
    assert default.env.supplement_ug_per_day > 0
    assert default.baselines.background and default.baselines.oracle_expected_diet
