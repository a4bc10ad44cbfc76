"""A cheap analytic stand-in for the MARL objective of ``biofluxopt.trial._tune`` (tests only).

Worker processes (``spawn``) must import the objective's class by module name, which a test
module collected with ``--import-mode=importlib`` does not allow; the tests put this
directory on ``sys.path`` (spawned workers inherit it) and import this module by name.
"""

from __future__ import annotations

import builtins
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ToyObjective:
    """``gain = 10 − (ln w1 − 1)² − (ln w2 + 1)² + noise``, ``bray_curtis = 0.02·w1/w2`` (±2 %,
    clipped to [0, 1]) and an extra metric ``reward_mean``; the unconstrained optimum
    (w1 = e, w2 = 1/e) has Bray–Curtis 0.15, so a limit of 0.05 binds.

    Every call appends one JSON line (w1, w2, seed, workdir) to ``log_dir/calls.jsonl`` and
    writes ``objective.json`` in its work directory. ``fail_on_call`` (1-based, counted in the
    log, so across processes) raises the builtin exception named ``error`` on that call.
    """

    log_dir: str
    noise: float = 0.05
    fail_on_call: int | None = None
    error: str = "KeyboardInterrupt"

    def __call__(self, w1: float, w2: float, seed: int, workdir: Path) -> dict[str, float]:
        log = Path(self.log_dir, "calls.jsonl")
        line = json.dumps({"w1": w1, "w2": w2, "seed": seed, "workdir": str(workdir)})
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
        if self.fail_on_call is not None and len(calls(self.log_dir)) == self.fail_on_call:
            raise getattr(builtins, self.error)(f"toy objective: planned {self.error}")
        rng = np.random.default_rng(seed)
        gain = 10.0 - (math.log(w1) - 1.0) ** 2 - (math.log(w2) + 1.0) ** 2
        gain += self.noise * float(rng.standard_normal())
        bray_curtis = min(1.0, max(0.0, 0.02 * w1 / w2 * (1.0 + 0.02 * float(rng.uniform(-1, 1)))))
        out = {
            "gain_pct_vs_control": gain,
            "bray_curtis_mean": bray_curtis,
            "reward_mean": gain - 10.0 * bray_curtis,
        }
        Path(workdir, "objective.json").write_text(json.dumps({"w1": w1, "w2": w2, **out}))
        return out


def calls(log_dir: str | Path) -> list[dict]:
    """The logged calls, in order."""
    log = Path(log_dir, "calls.jsonl")
    if not log.exists():
        return []
    return [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
