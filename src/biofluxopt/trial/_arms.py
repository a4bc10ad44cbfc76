"""Running the arms of a trial on one cohort, paired: same patients, same noise.

Every arm is the same :class:`marl.B12Env` episode (same cohort, same reset seed, so the same
kinetic parameters, daily food and supplement adherence) with a different supplement,
probiotic or policy. The objective that ``tune`` maximises is built from the same runner.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from biofluxopt.marl import (
    MARKERS,
    B12Env,
    B12EnvConfig,
    Cohort,
    NoActionPolicy,
    OpenLoopPolicy,
    PPOConfig,
    open_loop_oracle,
    train,
)

from ._config import ArmsConfig

#: Per-patient end-of-trial outcomes every arm reports.
OUTCOMES = (*MARKERS, "shannon", "bray_curtis")


@dataclass(frozen=True)
class ArmResult:
    """One arm's episode.

    Attributes
    ----------
    name : str
    end : dict of str to numpy.ndarray, each shape ``[patients]``
        End-of-trial ``serum_b12_pmol_l``, ``holotc_pmol_l``, ``mma_umol_l``,
        ``hcy_umol_l``, ``shannon`` (natural log) and ``bray_curtis`` (to baseline).
    baseline_serum_b12_pmol_l : numpy.ndarray, shape ``[patients]``
    serum_by_step : numpy.ndarray, shape ``[steps + 1, patients]``
        Serum B12 (pmol/L) at day 0 and at the end of each decision step.
    return_by_patient : numpy.ndarray, shape ``[patients]``
        The env's team return (``w1 · B12_Gain − w2 · Bray–Curtis − penalties``, summed).
    days : numpy.ndarray, shape ``[steps + 1]``
    """

    name: str
    end: dict[str, np.ndarray]
    baseline_serum_b12_pmol_l: np.ndarray
    serum_by_step: np.ndarray
    return_by_patient: np.ndarray
    days: np.ndarray


def run_arm(name: str, env: B12Env, policy, *, seed: int) -> ArmResult:
    """One episode of every patient of ``env`` under ``policy`` (deterministic actions)."""
    obs, info = env.reset(seed=seed)
    mask = info["action_mask"]
    serum = [info["serum_b12_pmol_l"].double().cpu().numpy()]
    total = torch.zeros(env.n_patients, dtype=torch.float64)
    steps = env.config.episode_days // env.config.step_days
    for _ in range(steps):
        action = policy.act(obs, mask, deterministic=True, generator=None)
        obs, _, _, _, info = env.step(action)
        total += info["team_reward"].double().cpu()
        serum.append(info["serum_b12_pmol_l"].double().cpu().numpy())
    end = {k: info[k].double().cpu().numpy() for k in OUTCOMES}
    return ArmResult(
        name=name,
        end=end,
        baseline_serum_b12_pmol_l=serum[0],
        serum_by_step=np.stack(serum),
        return_by_patient=total.numpy(),
        days=np.arange(steps + 1) * env.config.step_days,
    )


def arm_config(base: B12EnvConfig, arm: str, arms: ArmsConfig, n_patients: int) -> B12EnvConfig:
    """The env config of ``arm`` (supplement, its timing and any probiotic) for a cohort."""
    dose = {
        "no_intervention": 0.0,
        "high_dose": arms.high_dose_ug_per_day,
    }.get(arm, arms.control_ug_per_day)
    changes = {
        "n_patients": n_patients,
        "supplement_ug_per_day": dose,
        "supplement_meals": "split" if arm == "split_dosing" else "first",
        "probiotic_cfu_per_day": (
            {arms.probiotic_taxon: arms.probiotic_cfu_per_day} if arm == "probiotic" else {}
        ),
    }
    return base.replace(**changes)


def oracle_policy(
    env: B12Env,
    *,
    seed: int,
    grad_steps: int,
    learning_rate: float,
    line_search: int = 8,
    start: torch.Tensor | None = None,
    progress=None,
):
    """The per-patient open-loop oracle on ``env``'s patients and noise (reset with ``seed``),
    started from the better of no action and ``start`` (the best constant) per patient."""
    result = open_loop_oracle(
        env,
        seed=seed,
        grad_steps=grad_steps,
        learning_rate=learning_rate,
        line_search=line_search,
        start=start,
        progress=progress,
    )
    return OpenLoopPolicy(result.actions), result


def paired_gain_pct(treatment: ArmResult, control: ArmResult) -> float:
    """100 × (mean end serum of ``treatment`` − control's) / control's, on the same patients."""
    t = float(treatment.end["serum_b12_pmol_l"].mean())
    c = float(control.end["serum_b12_pmol_l"].mean())
    return 100.0 * (t - c) / c


@dataclass(frozen=True)
class WeightObjective:
    """What ``tune`` maximises for one (w1, w2, seed): train a policy, score it on validation.

    Trains MAPPO/IPPO on the training side of the HMP1 split with the control supplement
    (``ppo``), then runs the control arm and control + policy on the ``validation`` cohort
    (GAN compositions never used elsewhere) with the same noise, and returns the policy's
    serum B12 gain over control (%) and its mean Bray–Curtis to baseline. The training
    reward is not the objective: the weights maximise it trivially.

    Picklable, so tuning workers in other processes can run it.
    """

    env: B12EnvConfig
    ppo: PPOConfig
    arms: ArmsConfig
    validation: Cohort
    validation_seed: int

    def __call__(self, w1: float, w2: float, seed: int, workdir: Path) -> dict[str, float]:
        cfg = arm_config(self.env, "control", self.arms, self.env.n_patients)
        cfg = cfg.replace(w1=float(w1), w2=float(w2), split="train")
        result = train(cfg, self.ppo, seed=int(seed), out_dir=Path(workdir))
        env = B12Env(cfg.replace(n_patients=len(self.validation)), cohort=self.validation)
        control = run_arm("control", env, NoActionPolicy(), seed=self.validation_seed)
        policy = run_arm("biofluxopt", env, result.policy, seed=self.validation_seed)
        last = result.curve[-1]
        return {
            "gain_pct_vs_control": paired_gain_pct(policy, control),
            "bray_curtis_mean": float(policy.end["bray_curtis"].mean()),
            "serum_gain_pmol_l": float(
                policy.end["serum_b12_pmol_l"].mean() - control.end["serum_b12_pmol_l"].mean()
            ),
            "validation_return_mean": float(policy.return_by_patient.mean()),
            "train_return_last": float(last["return_mean"]),
        }


__all__ = [
    "OUTCOMES",
    "ArmResult",
    "WeightObjective",
    "arm_config",
    "oracle_policy",
    "paired_gain_pct",
    "run_arm",
]
