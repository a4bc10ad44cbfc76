"""The microbial agents' leverage on serum B12, and what it costs the community.

For a protocol, every B12 activity lever (agent × activity it has) is set to the top and to
the bottom of the action range one at a time; the *sign corner* then sets each lever to its
better extreme, and seeded random corners of the action box are added. The best corner found
gives the largest serum B12 gain the agents alone can produce, and its Bray–Curtis
dissimilarity to the identity run's community is the price paid for it. Run over many real
compositions, the per-lever signs say whether one constant action is best for everyone (then a
learned policy has nothing to personalise) or not.

All runs go through the public simulator (:func:`~biofluxopt.sim.steady_state`,
:func:`~biofluxopt.sim.simulate`), one batch per protocol.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from biofluxopt.knowledge import agent_taxa

from ._params import default_params
from ._protocol import ACTION_RANGE, ACTIVITIES, Protocol, default_substeps, host_factors
from ._solve import simulate
from ._steady import default_composition, steady_state

#: Reference patients of the leverage table: food B12 (µg/day) and IF status.
LEVERAGE_DIETS = {
    "omnivore": (6.0, "normal"),
    "vegan": (0.5, "normal"),
    "if_reduced": (6.0, "reduced"),
}
#: Daily oral supplement of the leverage table (µg/day, with the first meal).
LEVERAGE_SUPPLEMENTS_UG = (0.0, 10.0, 1000.0)


def levers() -> list[tuple[str, str]]:
    """``(agent, activity)`` pairs the agents control, in agent then activity order."""
    return [(t.id, a) for t in agent_taxa() for a in ACTIVITIES if a in t.b12_activities]


def lever_index(
    pairs: list[tuple[str, str]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where levers sit in an activity tensor ``[patients, agents, 4]``.

    Parameters
    ----------
    pairs : list of (agent, activity), optional
        The levers, in the order wanted; default: :func:`levers`.

    Returns
    -------
    agent_index, activity_index : Tensor, shape ``[len(pairs)]``
        ``activity[:, agent_index, activity_index]`` is the ``[patients, len(pairs)]`` block of
        the levers' multipliers, readable and assignable.
    """
    pairs = levers() if pairs is None else pairs
    agent_pos = {t.id: i for i, t in enumerate(agent_taxa())}
    activity_pos = {a: i for i, a in enumerate(ACTIVITIES)}
    agent_index = torch.tensor([agent_pos[a] for a, _ in pairs], dtype=torch.long)
    activity_index = torch.tensor([activity_pos[b] for _, b in pairs], dtype=torch.long)
    return agent_index, activity_index


def bray_curtis(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Bray–Curtis dissimilarity of compositions ``[..., taxa]`` (rows summing to 1)."""
    return 0.5 * (a - b).abs().sum(-1)


def _corners(n_random: int, seed: int) -> np.ndarray:
    """Log-multiplier design ``[runs, levers]``: identity, each lever up and down."""
    k = len(levers())
    lo, hi = math.log(ACTION_RANGE[0]), math.log(ACTION_RANGE[1])
    rows = [np.zeros(k)]
    for j in range(k):
        for v in (hi, lo):
            r = np.zeros(k)
            r[j] = v
            rows.append(r)
    gen = np.random.default_rng(seed)
    rows.extend(gen.choice([lo, hi], size=(n_random, k)))
    return np.vstack(rows)


def _activity(logm: np.ndarray) -> torch.Tensor:
    """``[runs, agents, 4]`` multipliers from a ``[runs, levers]`` log design."""
    act = torch.ones(len(logm), len(agent_taxa()), len(ACTIVITIES), dtype=torch.float64)
    agent_index, activity_index = lever_index()
    act[:, agent_index, activity_index] = torch.from_numpy(np.exp(logm))
    return act


def _run(
    compositions: torch.Tensor,
    logm: np.ndarray,
    food: float,
    intrinsic: str,
    supplement_ug: float,
    days: int,
    substeps: int,
):
    """Serum B12 and composition ``[compositions, runs, days + 1, ...]`` of a design.

    ``logm`` is ``[runs, levers]`` (the same design for every composition) or
    ``[compositions, runs, levers]`` (one design per composition).
    """
    m = compositions.shape[0]
    per_comp = logm.ndim == 3
    r = logm.shape[1] if per_comp else len(logm)
    n = m * r
    params = default_params(n)
    oral = torch.zeros(n, days, 3, dtype=torch.float64)
    oral[:, :, 0] = supplement_ug  # with the first of three meals
    protocol = Protocol(
        host_factors(n, intrinsic_factor=intrinsic),
        torch.full((n, days), food, dtype=torch.float64),
        oral,
        torch.zeros(n, days, dtype=torch.float64),
        3,
    )
    comp = compositions.repeat_interleave(r, 0)
    with torch.no_grad():
        s0 = steady_state(params, protocol, comp, substeps_per_day=substeps)
        sol = simulate(
            params,
            s0,
            protocol,
            activity=_activity(logm.reshape(n, -1))
            if per_comp
            else _activity(logm).repeat(m, 1, 1),
            substeps_per_day=substeps,
            throw=False,
        )
    serum = sol.daily["serum_b12_pmol_l"].view(m, r, -1)
    return serum, sol.composition.view(m, r, days + 1, -1)


@dataclass(frozen=True)
class LeverageStudy:
    """Result of :func:`leverage_across_compositions`.

    Attributes
    ----------
    per_lever : pandas.DataFrame
        One row per lever: the share of compositions where raising it (×4) beats lowering it
        (×0.25) for day-``day`` serum B12, and the median and 95th-percentile |effect|
        (pmol/L) of its better extreme over identity.
    per_composition : pandas.DataFrame
        One row per composition: identity serum, own best-corner gain (pmol/L and %), the
        Bray–Curtis of that corner to the identity community, and the gain of the *common*
        sign corner (majority sign of every lever) for comparison.
    """

    day: int
    per_lever: pd.DataFrame
    per_composition: pd.DataFrame

    def summary(self) -> dict:
        pc = self.per_composition
        return {
            "day": self.day,
            "compositions": len(pc),
            "gain_pmol_l_median": float(pc["gain_pmol_l"].median()),
            "gain_pmol_l_p95": float(pc["gain_pmol_l"].quantile(0.95)),
            "gain_percent_median": float(pc["gain_percent"].median()),
            "bray_curtis_best_median": float(pc["bray_curtis_best"].median()),
            "bray_curtis_best_p95": float(pc["bray_curtis_best"].quantile(0.95)),
            "levers_with_split_sign": int(
                (
                    (self.per_lever["share_up_better"] > 0.05)
                    & (self.per_lever["share_up_better"] < 0.95)
                ).sum()
            ),
            "common_corner_shortfall_pmol_l_p95": float(
                (pc["gain_pmol_l"] - pc["common_gain_pmol_l"]).quantile(0.95)
            ),
        }


def leverage_table(
    *,
    days: tuple[int, ...] = (90, 365),
    n_random_corners: int = 32,
    seed: int = 0,
    substeps_per_day: int | None = None,
) -> pd.DataFrame:
    """Microbial leverage at the default composition for every diet × supplement × day.

    For each of :data:`LEVERAGE_DIETS` × :data:`LEVERAGE_SUPPLEMENTS_UG`, the lever design of
    :func:`levers` (one at a time up/down, then the sign corner of each reported day) plus
    ``n_random_corners`` random corners is run for ``max(days)`` days. Returns one row per
    scenario and day: identity serum, best gain (pmol/L, %), worst loss, and the Bray–Curtis
    dissimilarity of the best corner's community to the identity run's (same day).
    """
    horizon = max(days)
    comp = default_composition(1)
    base = _corners(n_random_corners, seed)
    k = len(levers())
    rows = []
    for diet, (food, intrinsic) in LEVERAGE_DIETS.items():
        for supp in LEVERAGE_SUPPLEMENTS_UG:
            steps = substeps_per_day or default_substeps(supp, False)
            serum, compo = _run(comp, base, food, intrinsic, supp, horizon, steps)
            # the sign corner of each reported day, from the one-at-a-time runs
            lo, hi = math.log(ACTION_RANGE[0]), math.log(ACTION_RANGE[1])
            signs = []
            for d in days:
                up = serum[0, 1 : 1 + 2 * k : 2, d]
                down = serum[0, 2 : 2 + 2 * k : 2, d]
                signs.append(np.where((up >= down).numpy(), hi, lo))
            serum2, compo2 = _run(comp, np.vstack(signs), food, intrinsic, supp, horizon, steps)
            for d in days:
                s = torch.cat([serum[0, :, d], serum2[0, :, d]])
                c = torch.cat([compo[0, :, d], compo2[0, :, d]])
                ok = torch.isfinite(s)
                s = torch.where(ok, s, torch.tensor(float("nan"), dtype=s.dtype))
                best = int(torch.nan_to_num(s, nan=-1e30).argmax())
                worst = int(torch.nan_to_num(s, nan=1e30).argmin())
                s0 = float(s[0])
                rows.append(
                    {
                        "diet": diet,
                        "supplement_ug_per_day": supp,
                        "day": d,
                        "serum_identity_pmol_l": s0,
                        "gain_pmol_l": float(s[best]) - s0,
                        "gain_percent": 100 * (float(s[best]) - s0) / s0,
                        "loss_pmol_l": float(s[worst]) - s0,
                        "bray_curtis_best": float(bray_curtis(c[best], c[0])),
                        "bray_curtis_max": float(bray_curtis(c, c[0]).max()),
                        "corners": int(len(s) - 1),
                    }
                )
    return pd.DataFrame(rows)


def leverage_across_compositions(
    compositions: torch.Tensor,
    *,
    day: int = 365,
    food_ug_per_day: float = 6.0,
    supplement_ug_per_day: float = 0.0,
    substeps_per_day: int | None = None,
    chunk: int = 32,
    progress=None,
) -> LeverageStudy:
    """How the levers' effects and the best corner vary across real compositions.

    Parameters
    ----------
    compositions : Tensor, shape ``[m, taxa]``
        Baseline relative abundances (``taxon_ids()`` order), e.g. HMP samples aggregated
        with :func:`biofluxopt.data.aggregate_to_model_taxa`.
    day : int
        Day at which serum B12 and the community are compared.
    chunk : int
        Compositions simulated per batch (memory: ``chunk × (2·levers + 2)`` patients).
    progress : callable, optional
        Called with the number of compositions done after each chunk.
    """
    lv = levers()
    k = len(lv)
    substeps_per_day = substeps_per_day or default_substeps(supplement_ug_per_day, False)
    lo, hi = math.log(ACTION_RANGE[0]), math.log(ACTION_RANGE[1])
    design = _corners(0, 0)
    ups, downs, ident, own_best, bc_best, common = [], [], [], [], [], []
    for start in range(0, compositions.shape[0], chunk):
        comp = compositions[start : start + chunk]
        serum, compo = _run(
            comp,
            design,
            food_ug_per_day,
            "normal",
            supplement_ug_per_day,
            day,
            substeps_per_day,
        )
        s = serum[:, :, day]
        up, down = s[:, 1 : 1 + 2 * k : 2], s[:, 2 : 2 + 2 * k : 2]
        ups.append(up)
        downs.append(down)
        ident.append(s[:, 0])
        # each composition's own sign corner
        signs = np.where((up >= down).numpy(), hi, lo)[:, None, :]
        sv, cv = _run(
            comp, signs, food_ug_per_day, "normal", supplement_ug_per_day, day, substeps_per_day
        )
        serum_own, compo_own = sv[:, 0, day], cv[:, 0, day]
        one_at_a_time_best = torch.maximum(up.max(1).values, down.max(1).values)
        best = torch.maximum(serum_own, one_at_a_time_best)
        own_best.append(best)
        bc_best.append(bray_curtis(compo_own, compo[:, 0, day]))
        if progress is not None:
            progress(min(start + chunk, compositions.shape[0]))
    up, down = torch.cat(ups), torch.cat(downs)
    s0, best = torch.cat(ident), torch.cat(own_best)
    share_up = (up >= down).double().mean(0)
    majority = np.where(share_up.numpy() >= 0.5, hi, lo)
    for start in range(0, compositions.shape[0], chunk):
        comp = compositions[start : start + chunk]
        sv, _ = _run(
            comp,
            majority[None, :],
            food_ug_per_day,
            "normal",
            supplement_ug_per_day,
            day,
            substeps_per_day,
        )
        common.append(sv[:, 0, day])
    common_s = torch.cat(common)
    effect = torch.maximum(up, down) - s0[:, None]
    per_lever = pd.DataFrame(
        {
            "lever": [f"{a}.{b}" for a, b in lv],
            "share_up_better": share_up.numpy(),
            "median_abs_effect_pmol_l": effect.abs().median(0).values.numpy(),
            "p95_abs_effect_pmol_l": torch.quantile(effect.abs(), 0.95, dim=0).numpy(),
        }
    )
    per_composition = pd.DataFrame(
        {
            "serum_identity_pmol_l": s0.numpy(),
            "gain_pmol_l": (best - s0).numpy(),
            "gain_percent": (100 * (best - s0) / s0).numpy(),
            "bray_curtis_best": torch.cat(bc_best).numpy(),
            "common_gain_pmol_l": (common_s - s0).numpy(),
        }
    )
    return LeverageStudy(day, per_lever, per_composition)


def hmp_compositions(n: int, *, seed: int = 0) -> torch.Tensor:
    """``n`` HMP1 stool compositions (distinct runs, seeded draw) on the model's taxa."""
    from biofluxopt.data import aggregate_to_model_taxa, load_hmp

    table = aggregate_to_model_taxa(load_hmp())
    gen = np.random.default_rng(seed)
    rows = gen.choice(len(table), size=min(n, len(table)), replace=False)
    return torch.tensor(table.to_numpy()[np.sort(rows)], dtype=torch.float64)


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - documentation script
    """Print the leverage table and the across-composition study as Markdown."""
    import argparse

    from ._report import markdown_table

    ap = argparse.ArgumentParser(description="microbial leverage (docs/validation.md)")
    ap.add_argument("--compositions", type=int, default=256)
    ap.add_argument("--day", type=int, default=365)
    ap.add_argument("--skip-table", action="store_true")
    args = ap.parse_args(argv)
    if not args.skip_table:
        print(markdown_table(leverage_table()))
    study = leverage_across_compositions(
        hmp_compositions(args.compositions), day=args.day, progress=lambda k: None
    )
    print(markdown_table(study.per_lever))
    summary = study.summary()
    print(markdown_table(pd.DataFrame({"figure": list(summary), "value": list(summary.values())})))


__all__ = [
    "LEVERAGE_DIETS",
    "LEVERAGE_SUPPLEMENTS_UG",
    "LeverageStudy",
    "bray_curtis",
    "hmp_compositions",
    "lever_index",
    "leverage_across_compositions",
    "leverage_table",
    "levers",
]


if __name__ == "__main__":  # pragma: no cover
    main()
