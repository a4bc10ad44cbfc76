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
