"""Which tuned setting a study's seed reruns use: its best run (an untuned candidate, which
searches nothing, reruns its defaults).

A study is one independent search of an optimizer's space (its own points); each study's best
setting is rerun over seeds, and the verdict scores the median study (`results`), as AlgoPerf's
external-tuning ruleset does. Only the deterministic record counts (steps to target, metrics,
divergence), never wall-clock time.
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


def chosen_setting(spec: ProblemSpec, space: Sequence, runs: Sequence[RunRecord]) -> dict[str, float] | None:
    """The setting a study's seed reruns use: its best run's, or the defaults (``{}``) where the
    search space is empty (the self-tuning track); None when every tuning run diverged."""
    if not space:
        return {}
    best = best_of_study(spec, runs)
    return None if best is None else dict(best.hparams)
