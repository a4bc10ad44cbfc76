"""Posterior queries, most-probable explanation and risk explanation on a fitted network.

All use exact variable elimination (:class:`pgmpy.inference.VariableElimination`); the B12
network is small (≤ ~35 nodes, ≤ 4 states) so exact inference is instant.
"""

from __future__ import annotations

import pandas as pd

from biofluxopt._util import DataError


def parse_evidence(text: str | None) -> dict[str, str]:
    """Parse ``"diet=vegan,fut2=nonsecretor"`` into ``{"diet": "vegan", "fut2": "nonsecretor"}``.

    Raises
    ------
    DataError
        An item is not ``name=state`` or a name repeats.
    """
    out: dict[str, str] = {}
    if not text or not text.strip():
        return out
    for item in text.split(","):
        name, sep, state = item.partition("=")
        name, state = name.strip(), state.strip()
        if not sep or not name or not state:
            raise DataError(f"evidence item {item.strip()!r} is not name=state", field="--evidence")
        if name in out:
            raise DataError(f"evidence names {name!r} twice", field="--evidence")
        out[name] = state
    return out


def check_evidence(model, evidence: dict[str, str], *, targets: tuple[str, ...] = ()) -> None:
    """Raise :class:`DataError` naming unknown variables or states in ``evidence``/``targets``."""
    nodes = set(model.nodes())
    problems = []
    unknown = sorted((set(evidence) | set(targets)) - nodes)
    if unknown:
        problems.append(f"unknown variables {unknown} (the network has {sorted(nodes)})")
    for name, state in evidence.items():
        if name not in nodes:
            continue
        states = model.get_cpds(name).state_names[name]
        if state not in states:
            problems.append(f"unknown state {state!r} of {name!r} (states: {states})")
    if problems:
        raise DataError("; ".join(problems), field="--evidence")
    both = sorted(set(evidence) & set(targets))
    if both:
        raise DataError(f"{both} are both target and evidence", field="--target")


def posterior(model, target: str, evidence: dict[str, str] | None = None) -> pd.Series:
    """P(target | evidence) as a Series indexed by the target's states.

    Parameters
    ----------
    model : pgmpy.models.DiscreteBayesianNetwork
        Fitted network.
    target : str
        Node to query, e.g. ``"serum_b12"``.
    evidence : dict of str to str, optional
        Observed states, e.g. ``{"diet": "vegan"}``.
    """
    from pgmpy.inference import VariableElimination

    evidence = dict(evidence or {})
    check_evidence(model, evidence, targets=(target,))
    factor = VariableElimination(model).query(
        [target], evidence=evidence or None, show_progress=False
    )
    return pd.Series(factor.values, index=factor.state_names[target], name=target)


def most_probable_explanation(model, evidence: dict[str, str] | None = None) -> dict[str, str]:
    """MPE: the jointly most probable states of all unobserved nodes given ``evidence``."""
    from pgmpy.inference import VariableElimination

    evidence = dict(evidence or {})
    check_evidence(model, evidence)
    hidden = [v for v in sorted(model.nodes()) if v not in evidence]
    if not hidden:
        return {}
    mpe = VariableElimination(model).map_query(
        hidden, evidence=evidence or None, show_progress=False
    )
    return {v: str(mpe[v]) for v in hidden}


def explain(
    model,
    evidence: dict[str, str],
    *,
    target: str = "serum_b12",
    state: str = "deficient",
) -> pd.DataFrame:
    """Rank the observed factors by how much they move ``P(target = state)``.

    For each observed factor ``f``: ``p_without`` = P(target=state | evidence without ``f``);
    ``effect`` = P(target=state | all evidence) − ``p_without`` (its marginal contribution given
    the rest); ``best_alternative`` / ``p_best_alternative``: the other state of ``f`` that
    would lower the risk most, and the risk then.

    Returns
    -------
    pandas.DataFrame
        One row per evidence item, sorted by ``|effect|`` (largest first), with columns
        ``factor, observed, p_with, p_without, effect, best_alternative, p_best_alternative``.
    """
    check_evidence(model, evidence, targets=(target,))
    states = model.get_cpds(target).state_names[target]
    if state not in states:
        raise DataError(f"unknown state {state!r} of {target!r}; states: {states}", field=target)
    p_with = float(posterior(model, target, evidence)[state])
    rows = []
    for factor, observed in evidence.items():
        rest = {k: v for k, v in evidence.items() if k != factor}
        p_without = float(posterior(model, target, rest)[state])
        best, p_best = observed, p_with
        for alt in model.get_cpds(factor).state_names[factor]:
            if alt == observed:
                continue
            p_alt = float(posterior(model, target, {**rest, factor: alt})[state])
            if p_alt < p_best:
                best, p_best = alt, p_alt
        rows.append((factor, observed, p_with, p_without, p_with - p_without, best, p_best))
    table = pd.DataFrame(
        rows,
        columns=[
            "factor",
            "observed",
            "p_with",
            "p_without",
            "effect",
            "best_alternative",
            "p_best_alternative",
        ],
    )
    order = table["effect"].abs().sort_values(ascending=False, kind="stable").index
    return table.loc[order].reset_index(drop=True)
