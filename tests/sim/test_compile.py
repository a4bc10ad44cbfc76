"""The compiled RK4 sub-step (``compile=True``): same numbers as the traced one, refused up
front where no C++ compiler exists."""

from __future__ import annotations

import shutil

import pytest
import torch

from biofluxopt import sim
from biofluxopt._util import ConfigError

HAS_CXX = any(shutil.which(cc) for cc in ("c++", "g++", "clang++"))


def _setup(n=4, days=5):
    params = sim.sample_params(n, seed=3)
    spec = sim.ProtocolSpec.model_validate(
        {
            "days": days,
            "supplement": [
                {"route": "oral", "dose_ug": 500.0},
                {"route": "intramuscular", "dose_ug": 1000.0, "days": [1]},
            ],
        }
    )
    protocol = sim.build_protocol(spec, n_patients=n)
    with torch.no_grad():
        state0 = sim.steady_state(params, protocol)
    mask = sim.action_mask()
    g = torch.Generator().manual_seed(0)
    act = torch.exp(torch.randn(n, days, *mask.shape, generator=g, dtype=torch.float64) * 0.5)
    act = torch.where(mask, act.clamp(*sim.ACTION_RANGE), torch.ones_like(act))
    return params, protocol, state0, act


@pytest.mark.skipif(not HAS_CXX, reason="no C++ compiler for torch.compile")
def test_compiled_sub_step_equals_the_traced_one():
    params, protocol, state0, act = _setup()
    with torch.no_grad():
        traced = sim.simulate(params, state0, protocol, activity=act, substeps_per_day=96)
        compiled = sim.simulate(
            params, state0, protocol, activity=act, substeps_per_day=96, compile=True
        )
        stepper = sim.Simulator(params, protocol, state0, substeps_per_day=96, compile=True)
        state, _ = stepper.reset()
        for d in range(protocol.days):
            state, out = stepper.step(state, act[:, d], d)
    for key, value in traced.daily.items():
        torch.testing.assert_close(
            compiled.daily[key], value, rtol=1e-11, atol=1e-14, equal_nan=True, msg=key
        )
    torch.testing.assert_close(state.x, traced.state.x, rtol=1e-11, atol=1e-14)
    torch.testing.assert_close(out.composition, traced.composition[:, -1])


def test_compile_without_a_compiler_is_refused_up_front(monkeypatch):
    params, protocol, state0, _ = _setup(n=1, days=2)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match=r"compile.*C\+\+ compiler"):
        sim.simulate(params, state0, protocol, compile=True)
    with pytest.raises(ConfigError, match="compile"):
        sim.Simulator(params, protocol, state0, compile=True)


def test_cli_compile_flag(tmp_path, monkeypatch):
    from biofluxopt.cli import run

    protocol = tmp_path / "p.toml"
    protocol.write_text("days = 2\npatients = 1\n")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert run(["simulate", str(protocol), "--out", str(tmp_path / "o"), "--compile"]) == 2
    assert not (tmp_path / "o").exists()
