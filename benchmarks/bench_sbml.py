"""The SBML export against the torch model over 365 days on 12 protocols (one JSON line).

Each protocol's patient is exported (``sim.to_sbml``) and simulated in libRoadRunner (CVODE,
adaptive, rtol 1e-10) and with ``sim.simulate`` (RK4) at ``--substeps`` fixed sub-steps per
day, from the same steady state: RK4's discretisation error at 192 sub-steps is far below the
1e-3 checked, so what remains is the difference between the two encodings of the model.
Compared: serum B12, holoTC and MMA at the end of every day (``sim.CROSS_CHECK_KEYS``).

Output: ``max_rel_error`` over all protocols, days and biomarkers (goal < 1e-3), each
protocol's errors and wall times, the total integration times of both simulators and their
ratio (``torch_over_roadrunner``: > 1 when RoadRunner is faster; one patient each, one CPU
thread; torch at the fine grid of the check, not the protocol's own), and RoadRunner's
load-and-compile time apart (``roadrunner_load_s``).

Usage: ``python benchmarks/bench_sbml.py [--days 365] [--substeps 192] [--only NAME]``
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from biofluxopt import sim
from biofluxopt._util import to_jsonable


def _random_activity(seed: int, days: int | None = None) -> torch.Tensor:
    """Multipliers log-uniform in ×0.25 … ×4 on the activities each agent has."""
    g = torch.Generator().manual_seed(seed)
    shape = (sim.n_agents(), 4) if days is None else (days, sim.n_agents(), 4)
    log_act = torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1
    return torch.where(sim.action_mask(), torch.exp(log_act * math.log(4)), 1.0)


def _activity_table(seed: int) -> dict:
    act = _random_activity(seed)
    mask = sim.action_mask()
    ids = sim.taxon_ids()[:-1]
    return {
        ids[i]: {sim.ACTIVITIES[j]: float(act[i, j]) for j in range(4) if mask[i, j]}
        for i in range(len(ids))
        if mask[i].any()
    }


def protocols(days: int) -> list[tuple[str, object, int, torch.Tensor | None]]:
    """(name, protocol, patient, per-day activity or None); the specs are written for a
    year, and cross_check_sbml cuts or extends them to ``days``."""
    ex = sim.example_protocol
    year = 365
    spec = sim.ProtocolSpec.model_validate
    return [
        ("omnivore_oral_1000ug", ex("omnivore_oral_1000ug"), 0, None),
        ("omnivore_oral_1000ug#p3", ex("omnivore_oral_1000ug"), 3, None),
        ("vegan_no_supplement", ex("vegan_no_supplement"), 0, None),
        ("pernicious_anaemia_im", ex("pernicious_anaemia_im"), 2, None),
        ("omnivore_probiotic", ex("omnivore_probiotic"), 0, None),
        ("omnivore_prebiotic_inulin", ex("omnivore_prebiotic_inulin"), 0, None),
        (
            "vegan_oral_50ug",
            spec(
                {
                    "days": year,
                    "host": {"baseline_serum_b12_pmol_l": 180},
                    "diet": {"b12_ug_per_day": 0.5},
                    "supplement": [{"route": "oral", "dose_ug": 50, "start_day": 30}],
                }
            ),
            0,
            None,
        ),
        (
            "if_absent_im_monthly",
            spec(
                {
                    "days": year,
                    "patients": 4,
                    "seed": 11,
                    "host": {"intrinsic_factor": "absent", "baseline_serum_b12_pmol_l": 110},
                    "supplement": [
                        {"route": "intramuscular", "dose_ug": 1000, "days": list(range(0, 365, 30))}
                    ],
                }
            ),
            3,
            None,
        ),
        (
            "atrophic_gastritis_genotypes_oral_25ug_x2",
            spec(
                {
                    "days": year,
                    "host": {
                        "intrinsic_factor": "reduced",
                        "gastric_release": "impaired",
                        "fut2": "nonsecretor",
                        "tcn2_776": "GG",
                        "mthfr_677": "TT",
                    },
                    "diet": {"b12_ug_per_day": 3.0, "meals_per_day": 4},
                    "supplement": [{"route": "oral", "dose_ug": 25, "times_per_day": 2}],
                }
            ),
            0,
            None,
        ),
        (
            "probiotic_1e11_days_30_90",
            spec(
                {
                    "days": year,
                    "probiotic": [
                        {
                            "taxon": "propionibacterium",
                            "cfu_per_day": 1e11,
                            "start_day": 30,
                            "end_day": 90,
                        }
                    ],
                    "activity": {"propionibacterium": {"dmb_attachment": 3.0}},
                }
            ),
            0,
            None,
        ),
        (
            "random_activity_constant",
            spec({"days": year, "patients": 3, "seed": 5, "activity": _activity_table(5)}),
            1,
            None,
        ),
        ("random_activity_daily", spec({"days": year}), 0, _random_activity(9, days)),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--substeps", type=int, default=192)
    ap.add_argument("--only", default=None, help="run only the protocols whose name contains it")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    start = time.perf_counter()
    for name, proto, patient, activity in protocols(args.days):
        if args.only and args.only not in name:
            continue
        res = sim.cross_check_sbml(
            proto,
            patient=patient,
            days=args.days,
            activity=activity,
            substeps_per_day=args.substeps,
        )
        rows.append(
            {
                "protocol": name,
                "patient": patient,
                "max_rel_error": res["max_rel_error"],
                **{f"max_rel_error_{k}": v for k, v in res["max_rel_error_by_key"].items()},
                "roadrunner_s": res["roadrunner_s"],
                "roadrunner_load_s": res["roadrunner_load_s"],
                "torch_s": res["torch_s"],
            }
        )
    rr_s = sum(r["roadrunner_s"] for r in rows)
    torch_s = sum(r["torch_s"] for r in rows)
    out = {
        "benchmark": "sbml",
        "days": args.days,
        "torch_substeps_per_day": args.substeps,
        "roadrunner": "CVODE rtol 1e-10 atol 1e-12",
        "n_protocols": len(rows),
        "max_rel_error": max(r["max_rel_error"] for r in rows),
        "all_below_1e-3": all(r["max_rel_error"] < 1e-3 for r in rows),
        "roadrunner_s": rr_s,
        "roadrunner_load_s": sum(r["roadrunner_load_s"] for r in rows),
        "torch_s": torch_s,
        "torch_over_roadrunner": torch_s / rr_s,
        "wall_s": time.perf_counter() - start,
        "protocols": rows,
    }
    print(json.dumps(to_jsonable(out)))


if __name__ == "__main__":
    main()
