"""The problem registry: every benchmark problem by name, and named suites of them."""

from __future__ import annotations

from .base import SPLITS, Problem, ProblemSpec, Task
from . import supervised, test_functions

PROBLEMS: dict[str, Problem] = {p.name: p for p in (*test_functions.PROBLEMS, *supervised.PROBLEMS)}

SUITES: dict[str, tuple[str, ...]] = {
    "quick": ("rosenbrock", "saddle", "noisy_quadratic", "logreg_breast_cancer", "mlp_mnist1d", "recommender_clicks"),
    "full": tuple(PROBLEMS),
}


def get_problem(name: str) -> Problem:
    if name not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; valid problems: {', '.join(PROBLEMS)}")
    return PROBLEMS[name]


def get_suite(name: str) -> tuple[str, ...]:
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; valid suites: {', '.join(SUITES)}")
    return SUITES[name]


__all__ = ["PROBLEMS", "SPLITS", "SUITES", "Problem", "ProblemSpec", "Task", "get_problem", "get_suite"]
