"""Results rebuilt from the store: per problem and optimizer, the tuning runs, the seed reruns of
the best setting, the statistics the report ranks by, and the cross-problem performance profile."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import numpy as np

from . import store
from .problems import ProblemSpec
from .runner import RunRecord
from .selection import best_setting


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.inf


@dataclass
class OptimizerResult:
    optimizer: str
    spec: ProblemSpec
    tuning: list[RunRecord]  # the first `budget` finished tuning runs, in trial order
    best_hparams: dict[str, float] | None
    reruns: list[RunRecord]  # one run of the best setting per seed, by seed

    @property
    def final_metrics(self) -> list[float]:
        return [r.final_metric for r in self.reruns if not r.failed]

    @property
    def final_mean(self) -> float:
        return statistics.fmean(self.final_metrics) if self.final_metrics else math.nan

    @property
    def final_std(self) -> float:
        return statistics.stdev(self.final_metrics) if len(self.final_metrics) > 1 else 0.0

    @property
    def reached(self) -> int:
        return sum(r.steps_to_target is not None for r in self.reruns)

    @property
    def diverged_reruns(self) -> int:
        return sum(r.failed for r in self.reruns)

    @property
    def diverged_tuning(self) -> int:
        return sum(r.failed for r in self.tuning)

    @property
    def tuning_reaching_target(self) -> int:
        return sum(r.steps_to_target is not None for r in self.tuning)

    @property
    def time_to_target(self) -> float:
        """Median over seeds of the training seconds to reach the target; inf when the median
        seed did not reach it (AlgoPerf's convention)."""
        return _median([math.inf if r.time_to_target is None else r.time_to_target for r in self.reruns])

    @property
    def steps_to_target(self) -> float:
        return _median([math.inf if r.steps_to_target is None else r.steps_to_target for r in self.reruns])

    @property
    def mean_step_time(self) -> float:
        runs = self.reruns or self.tuning
        return statistics.fmean(r.mean_step_time for r in runs) if runs else math.nan

    @property
    def state_mb(self) -> float:
        return max((r.state_mb for r in self.reruns), default=math.nan)

    def rank_key(self) -> tuple:
        sign = -1 if self.spec.higher_is_better else 1
        final = sign * self.final_mean if self.final_metrics else math.inf
        return (not self.reruns, self.time_to_target, -self.reached, final)


@dataclass
class ProblemResult:
    spec: ProblemSpec
    optimizers: dict[str, OptimizerResult] = field(default_factory=dict)

    def ranking(self) -> list[OptimizerResult]:
        """Best first: median time to target, then seeds reaching it, then final metric."""
        return sorted(self.optimizers.values(), key=OptimizerResult.rank_key)


@dataclass
class Results:
    problems: dict[str, ProblemResult]

    @property
    def optimizers(self) -> list[str]:
        names: dict[str, None] = {}
        for problem in self.problems.values():
            names.update(dict.fromkeys(problem.optimizers))
        return list(names)

    def performance_profile(self, taus: np.ndarray) -> dict[str, np.ndarray]:
        """AlgoPerf-style profile: for each optimizer and tau, the fraction of problems on which
        its time to target is within a factor tau of the fastest optimizer's."""
        ratios: dict[str, list[float]] = {name: [] for name in self.optimizers}
        for problem in self.problems.values():
            times = {name: r.time_to_target for name, r in problem.optimizers.items()}
            fastest = min(times.values(), default=math.inf)
            for name in ratios:
                time = times.get(name, math.inf)
                ratios[name].append(time / fastest if math.isfinite(time) else math.inf)
        count = max(len(self.problems), 1)
        return {name: np.array([sum(r <= tau for r in values) / count for tau in taus])
                for name, values in ratios.items()}


def load_results(storage_url: str) -> Results:
    """Everything the report needs, read back from the store alone."""
    problems: dict[str, ProblemResult] = {}
    for pair in store.load_pairs(storage_url):
        problems.setdefault(pair.spec.name, ProblemResult(pair.spec)).optimizers[pair.optimizer] = OptimizerResult(
            optimizer=pair.optimizer, spec=pair.spec, tuning=[r for study in pair.tuning for r in study],
            best_hparams=best_setting(pair.spec, pair.tuning), reruns=pair.reruns)
    return Results(problems=dict(sorted(problems.items())))
