"""The problem registry: every benchmark problem by name, and named suites of them."""

from __future__ import annotations

from dataclasses import dataclass

from optimlab.catalog import SELF_TUNING

from .base import SPLITS, Problem, ProblemSpec, Task
from . import supervised, test_functions

PROBLEMS: dict[str, Problem] = {p.name: p for p in (*test_functions.PROBLEMS, *supervised.PROBLEMS)}



@dataclass(frozen=True)
class Suite:
    """Named problems with the budgets they are meant to run with: ``trials`` tuning points per
    study, ``studies`` independent studies, ``seeds`` reruns of each study's best setting;
    ``optimizers`` the catalog names it compares (None: every one); ``untuned`` catalog
    optimizers also run at their defaults with no search (the self-tuning track)."""

    problems: tuple[str, ...]
    trials: int
    seeds: int
    studies: int = 1
    optimizers: tuple[str, ...] | None = None
    untuned: tuple[str, ...] = ()


SUITES: dict[str, Suite] = {
    # one of each kind that runs in seconds: a curved valley, a saddle, a noisy quadratic,
    # a convex model and a small network; one study (ties then reflect the seeds' noise alone;
    # the full suite adds the tuning's); every strategy of the seed documents and one of each
    # modern family, to stay under 10 minutes on 2 cores; of the self-tuning track, Prodigy
    # alone (15 runs, under 2% of the suite's)
    "quick": Suite(("rosenbrock", "saddle", "noisy_quadratic", "logreg_breast_cancer", "mlp_mnist1d"), 6, 3,
                   optimizers=("gd", "sgd", "momentum", "ema_momentum", "nesterov", "adagrad", "adadelta", "rmsprop",
                               "rmsprop_centered", "adam", "amsgrad", "adamw", "adamax", "nadam", "radam", "lion",
                               "muon", "adopt", "mars", "soap"),
                   untuned=("prodigy",)),
    "full": Suite(tuple(PROBLEMS), 12, 3, studies=3, untuned=SELF_TUNING),
}


def get_problem(name: str) -> Problem:
    if name not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; valid problems: {', '.join(PROBLEMS)}")
    return PROBLEMS[name]


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; valid suites: {', '.join(SUITES)}")
    return SUITES[name]


__all__ = ["PROBLEMS", "SPLITS", "SUITES", "Problem", "ProblemSpec", "Suite", "Task", "get_problem", "get_suite"]
