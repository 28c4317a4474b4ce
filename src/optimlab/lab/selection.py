"""Which tuned setting the seed reruns use: the best run of each tuning study, then the median study.

A study is one independent search of an optimizer's space (its own sampler seed); as in
AlgoPerf's external-tuning ruleset, the result of tuning is the *median* study's best setting,
so luck in one search neither helps nor hurts. Only the deterministic record counts (steps to
target, metrics, divergence), never wall-clock time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .problems import ProblemSpec
from .runner import RunRecord


def run_key(spec: ProblemSpec, record: RunRecord) -> tuple[float, float]:
    """Smaller is better: steps to target (inf if never reached), then the final metric."""
    steps = math.inf if record.steps_to_target is None else record.steps_to_target
    sign = -1.0 if spec.higher_is_better else 1.0
    return steps, sign * record.final_metric


def best_of_study(spec: ProblemSpec, runs: Sequence[RunRecord]) -> RunRecord | None:
    """The study's best run that did not diverge (the earliest point on ties); None if all did."""
    finished = [(run_key(spec, r), i, r) for i, r in enumerate(runs) if not r.failed]
    return min(finished, key=lambda item: item[:2])[2] if finished else None


def median_study(spec: ProblemSpec, studies: Sequence[Sequence[RunRecord]]) -> int | None:
    """Index of the median study by its best run (the lower median for an even count; studies
    whose every run diverged rank last); None when every run of every study diverged."""
    bests = [best_of_study(spec, runs) for runs in studies]
    if all(best is None for best in bests):
        return None
    order = sorted(range(len(studies)), key=lambda s: (bests[s] is None,
                                                       run_key(spec, bests[s]) if bests[s] else (), s))
    return order[(len(order) - 1) // 2]


def best_setting(spec: ProblemSpec, studies: Sequence[Sequence[RunRecord]]) -> dict[str, float] | None:
    """The hyperparameters the seed reruns use, or None when nothing converged. ``studies``
    holds each study's finished tuning runs in point order (the whole budget)."""
    index = median_study(spec, studies)
    if index is None:
        return None
    best = best_of_study(spec, studies[index])
    if best is None:  # the median study diverged everywhere: take the best study's setting
        best = min((b for b in (best_of_study(spec, runs) for runs in studies) if b is not None),
                   key=lambda r: run_key(spec, r))
    return dict(best.hparams)
