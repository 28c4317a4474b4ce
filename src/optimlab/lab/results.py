"""Results rebuilt from the store, and the verdict drawn from them.

Everything here is a function of the deterministic record of the runs (steps, metrics,
divergence, FLOP counts), never of wall-clock time, so the same stored runs give the same
ranking on any machine under any load (docs/lab.md, "The verdict").

Per (problem, optimizer): the tuning studies, the setting the median study chose, its reruns
over seeds. Per problem: optimizers in rank groups (results within noise share a rank) and
what the recommendation rests on. Across problems: a leaderboard (AlgoPerf's integrated
performance-profile score, median rank, wins).
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from optimlab.catalog import CATALOG, Hyperparameter

from . import store
from .problems import ProblemSpec
from .runner import RunRecord
from .selection import best_of_study
from .timing import UNIT, StepTime

#: The fraction of a log-scaled search range, at either end, where a best setting is "at the edge".
EDGE_FRACTION = 0.15
#: An optimizer step whose matrix products exceed this fraction of the model's forward and
#: backward FLOPs makes its per-step cost worth saying in the recommendation.
COSTLY_STEP = 0.1
#: AlgoPerf's r_max: performance ratios above it count as failures.
PROFILE_R_MAX = 4.0


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.inf


def _interval(values: Sequence[float]) -> tuple[float, float]:
    return (min(values), max(values)) if values else (math.inf, math.inf)


@dataclass
class OptimizerResult:
    """One optimizer on one problem: its tuning studies and, per study, the reruns over seeds
    of that study's best setting. The verdict uses the median study (AlgoPerf's external-tuning
    rule) and the spread over all studies and seeds as the noise band."""

    optimizer: str
    spec: ProblemSpec
    studies: list[list[RunRecord]]  # each study's finished tuning runs in point order
    study_reruns: list[list[RunRecord]]  # per study: its best setting rerun over seeds, by seed
    space: tuple[Hyperparameter, ...] = ()
    #: the cost of one step the ranking multiplies steps by: one (ranking by steps), or the
    #: measured seconds (ranking by time, see `timing`)
    step_time: StepTime = UNIT

    @property
    def untuned(self) -> bool:
        """Searched nothing: run at its defaults over the seeds (the self-tuning track)."""
        return not self.space

    # ---- what each run shows -------------------------------------------------------------------
    def held(self, run: RunRecord) -> bool:
        """Reached the target and still met it at the end of the run."""
        return run.steps_to_target is not None and self.spec.reached(run.final_metric)

    def _steps(self, run: RunRecord) -> float:
        return run.steps_to_target if self.held(run) else math.inf

    def _signed(self, value: float) -> float:
        """Smaller is better: the metric, negated where higher is better; NaN (diverged) is worst."""
        if math.isnan(value):
            return math.inf
        return -value if self.spec.higher_is_better else value

    # ---- the studies -----------------------------------------------------------------------------
    def _study_score(self, runs: list[RunRecord]) -> tuple[float, float]:
        """A study's result: median over its seeds of the steps to a held target (inf when the
        median seed did not hold it, AlgoPerf's convention), then of the signed final metric."""
        if not runs:
            return (math.inf, math.inf)
        return (_median([self._steps(r) for r in runs]), _median([self._signed(r.final_metric) for r in runs]))

    @functools.cached_property
    def chosen_study(self) -> int | None:
        """The median study by its reruns' result (the lower median for an even count)."""
        scored = [s for s, runs in enumerate(self.study_reruns) if runs]
        if not scored:
            return None
        order = sorted(scored, key=lambda s: (self._study_score(self.study_reruns[s]), s))
        return order[(len(order) - 1) // 2]

    @property
    def reruns(self) -> list[RunRecord]:
        """The chosen study's reruns: what the curves, the seeds columns and the flags show."""
        chosen = self.chosen_study
        return [] if chosen is None else self.study_reruns[chosen]

    @property
    def all_reruns(self) -> list[RunRecord]:
        return [run for runs in self.study_reruns for run in runs]

    @property
    def best_hparams(self) -> dict[str, float] | None:
        runs = self.reruns
        if runs:
            return dict(runs[0].hparams)
        best = [b for b in (best_of_study(self.spec, s) for s in self.studies) if b is not None]
        return dict(best[0].hparams) if best else None

    # ---- the tuning ------------------------------------------------------------------------------
    @property
    def tuning(self) -> list[RunRecord]:
        return [run for study in self.studies for run in study]

    @property
    def diverged_tuning(self) -> int:
        return sum(r.failed for r in self.tuning)

    @property
    def fragile(self) -> bool:
        """Diverged in more than half of its tuning runs: a small change of setting may blow it up."""
        return bool(self.tuning) and 2 * self.diverged_tuning > len(self.tuning)

    @property
    def edges(self) -> list[str]:
        """The chosen hyperparameters at the edge of their searched range, e.g. "lr at the top of
        [0.0001, 3]": the most extreme value tried on that side, within `EDGE_FRACTION` of the end."""
        if self.best_hparams is None:
            return []
        flags = []
        for h in self.space:
            value = self.best_hparams.get(h.name)
            if value is None:
                continue
            scale = math.log if h.log else (lambda x: x)
            position = (scale(value) - scale(h.low)) / (scale(h.high) - scale(h.low))
            tried = [r.hparams[h.name] for r in self.tuning if h.name in r.hparams]
            if position >= 1 - EDGE_FRACTION and value >= max(tried):
                flags.append(f"{h.name} at the top of [{h.low:g}, {h.high:g}]")
            elif position <= EDGE_FRACTION and value <= min(tried):
                flags.append(f"{h.name} at the bottom of [{h.low:g}, {h.high:g}]")
        return flags

    # ---- the reruns ------------------------------------------------------------------------------
    @property
    def seeds(self) -> int:
        return len(self.reruns)

    @property
    def seeds_held(self) -> int:
        return sum(self.held(r) for r in self.reruns)

    @property
    def seeds_touched(self) -> int:
        """Seeds that reached the target at some point but ended the run below it."""
        return sum(r.steps_to_target is not None and not self.held(r) for r in self.reruns)

    @property
    def diverged_reruns(self) -> int:
        return sum(r.failed for r in self.reruns)

    @property
    def holds_target(self) -> bool:
        """Held the target on at least half of its seeds: the condition to be recommended."""
        return self.seeds > 0 and 2 * self.seeds_held >= self.seeds

    @property
    def steps_to_target(self) -> float:
        """The median study's median over seeds of the steps to a held target."""
        return self._study_score(self.reruns)[0]

    @property
    def steps_interval(self) -> tuple[float, float]:
        """Lowest and highest steps to a held target over every study's reruns: the noise band
        of seeds and of tuning together."""
        return _interval([self._steps(r) for r in self.all_reruns])

    @property
    def final_metrics(self) -> list[float]:
        return [r.final_metric for r in self.reruns if not r.failed]

    @property
    def final_median(self) -> float:
        return statistics.median(self.final_metrics) if self.final_metrics else math.nan

    @property
    def final_interval(self) -> tuple[float, float]:
        """Lowest and highest final metric over every study's reruns (diverged ones left out)."""
        return _interval([r.final_metric for r in self.all_reruns if not r.failed])

    # ---- cost ------------------------------------------------------------------------------------
    def _first_run(self) -> RunRecord | None:
        return next(iter(self.reruns or self.tuning), None)

    @property
    def model_flops(self) -> int:
        run = self._first_run()
        return run.model_flops if run else 0

    @property
    def optimizer_flops(self) -> int:
        run = self._first_run()
        return run.optimizer_flops if run else 0

    @property
    def step_cost(self) -> float:
        """The optimizer step's matrix-product FLOPs over the model's forward and backward FLOPs."""
        return self.optimizer_flops / self.model_flops if self.model_flops else 0.0

    @property
    def state_mb(self) -> float:
        return max((r.state_mb for r in self.reruns or self.tuning), default=math.nan)

    @property
    def mean_step_time(self) -> float:
        """Median over the reruns of the mean step time (wall clock: shown, never ranked by)."""
        runs = self.reruns or self.tuning
        return statistics.median(r.mean_step_time for r in runs) if runs else math.nan

    # ---- ordering --------------------------------------------------------------------------------
    @property
    def tier(self) -> int:
        """0: holds the target on half its seeds; 1: finishes without it; 2: nothing finished."""
        if self.holds_target:
            return 0
        return 1 if self.final_metrics else 2

    @property
    def cost_to_target(self) -> float:
        """What the ranking compares: steps to target times the cost of a step."""
        return self.steps_to_target * self.step_time.median

    def sort_key(self) -> tuple:
        final = self._signed(self.final_median)
        if self.tier == 0:
            return (0, self.cost_to_target, -self.seeds_held, final, self.optimizer)
        return (self.tier, final, self.optimizer)

    def noise_band(self) -> tuple[float, float]:
        """The interval within which another optimizer's result counts as a tie with this one:
        steps to target over seeds and studies (times the step time's interquartile range when
        ranking by time), or the final metric over seeds and studies without a held target."""
        if self.tier == 0:
            low, high = self.steps_interval
            return (low * self.step_time.low, high * self.step_time.high)
        low, high = (self._signed(v) for v in self.final_interval)
        return (min(low, high), max(low, high))

    def cheapness(self) -> tuple:
        """How to choose inside a rank group: robust first, then the cheapest step (FLOPs, then
        state memory; both deterministic)."""
        return (self.fragile, bool(self.edges), self.optimizer_flops, self.state_mb)


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


@dataclass
class ProblemResult:
    spec: ProblemSpec
    optimizers: dict[str, OptimizerResult] = field(default_factory=dict)

    def groups(self) -> list[list[OptimizerResult]]:
        key = tuple((name, r.step_time) for name, r in self.optimizers.items())
        if getattr(self, "_groups", (None,))[0] != key:  # computed once per set of step costs
            self._groups = (key, self._grouped())
        return self._groups[1]

    def _grouped(self) -> list[list[OptimizerResult]]:
        """Rank groups, best first. Optimizers are ordered by `OptimizerResult.sort_key`; one joins
        the group of the optimizer ahead of it when it is in the same tier and its noise band
        overlaps the group leader's (the steps to target over seeds and studies, or the final
        metric over seeds when the target is not held). Everything that diverged shares the last group."""
        groups: list[list[OptimizerResult]] = []
        for result in sorted(self.optimizers.values(), key=OptimizerResult.sort_key):
            leader = groups[-1][0] if groups else None
            if leader is not None and leader.tier == result.tier and (
                    result.tier == 2 or _overlap(leader.noise_band(), result.noise_band())):
                groups[-1].append(result)
            else:
                groups.append([result])
        return groups

    def ranking(self) -> list[OptimizerResult]:
        return [result for group in self.groups() for result in group]

    def ranks(self) -> dict[str, int]:
        """Each optimizer's rank; a group shares the rank of its first place (1, 1, 3, ...)."""
        ranks, place = {}, 1
        for group in self.groups():
            ranks.update({result.optimizer: place for result in group})
            place += len(group)
        return ranks

    def recommended(self) -> OptimizerResult | None:
        """The choice inside the first group that holds the target (robust, then cheapest step);
        None when no optimizer held the target on half its seeds."""
        first = self.groups()[0] if self.optimizers else []
        holding = [result for result in first if result.holds_target]
        return min(holding, key=OptimizerResult.cheapness) if holding else None


@dataclass
class LeaderboardRow:
    optimizer: str
    score: float  # AlgoPerf's integrated performance profile, 0 to 1
    median_rank: float
    wins: int  # problems on which it shares rank 1
    problems: int


@dataclass
class Results:
    problems: dict[str, ProblemResult]
    plan: dict = field(default_factory=dict)
    rank_by: str = "steps"

    def with_step_times(self, times: dict[str, dict[str, StepTime]]) -> "Results":
        """Rank by time: every optimizer's steps weighted by its measured step time."""
        for name, problem in self.problems.items():
            for label, result in problem.optimizers.items():
                result.step_time = times.get(name, {}).get(label, UNIT)
        self.rank_by = "time"
        return self

    @property
    def optimizers(self) -> list[str]:
        names: dict[str, None] = {}
        for problem in self.problems.values():
            names.update(dict.fromkeys(problem.optimizers))
        return list(names)

    def performance_ratios(self) -> dict[str, list[float]]:
        """Per optimizer, per problem on which anyone held the target: its median steps to target
        over the best optimizer's (inf where it did not hold the target)."""
        ratios: dict[str, list[float]] = {name: [] for name in self.optimizers}
        for problem in self.problems.values():
            steps = {name: r.cost_to_target for name, r in problem.optimizers.items()}
            best = min(steps.values(), default=math.inf)
            if not math.isfinite(best):
                continue
            for name in ratios:
                ratios[name].append(steps.get(name, math.inf) / best)
        return ratios

    def performance_profile(self, taus: np.ndarray) -> dict[str, np.ndarray]:
        """AlgoPerf's profile on steps to target: for each optimizer and tau, the fraction of
        problems on which it is within a factor tau of the best."""
        ratios = self.performance_ratios()
        return {name: np.array([sum(r <= tau for r in values) / max(len(values), 1) for tau in taus])
                for name, values in ratios.items()}

    def leaderboard(self) -> list[LeaderboardRow]:
        """Every optimizer across problems: the profile integrated over tau in [1, r_max] and
        normalised to [0, 1] (AlgoPerf's benchmark score), its median rank and its wins."""
        taus = np.linspace(1.0, PROFILE_R_MAX, 301)
        profile = self.performance_profile(taus)
        rows = []
        by_problem = [p.ranks() for p in self.problems.values()]
        for name in self.optimizers:
            ranks = [found[name] for found in by_problem if name in found]
            score = float(np.trapezoid(profile[name], taus) / (PROFILE_R_MAX - 1))
            rows.append(LeaderboardRow(name, score, statistics.median(ranks), ranks.count(1), len(ranks)))
        return sorted(rows, key=lambda row: (-row.score, -row.wins, row.median_rank, row.optimizer))


def _space(pair: store.PairRecords) -> tuple[Hyperparameter, ...]:
    stored = pair.plan.get("space")
    if stored is not None:
        return tuple(Hyperparameter(**h) for h in stored)
    entry = CATALOG.get(pair.optimizer)
    return entry.search_space if entry else ()


def load_results(storage_url: str) -> Results:
    """Everything the report needs, read back from the store alone."""
    problems: dict[str, ProblemResult] = {}
    plan: dict = {}
    for pair in store.load_pairs(storage_url):
        plan = plan or pair.plan
        problems.setdefault(pair.spec.name, ProblemResult(pair.spec)).optimizers[pair.optimizer] = OptimizerResult(
            optimizer=pair.optimizer, spec=pair.spec, studies=pair.tuning, study_reruns=pair.reruns,
            space=_space(pair))
    return Results(problems=dict(sorted(problems.items())), plan=plan)
