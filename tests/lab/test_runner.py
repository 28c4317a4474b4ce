"""Measurement of single runs: divergence is recorded, same seed gives the same numbers."""

import math

import pytest

from optimlab.lab.problems import get_problem
from optimlab.lab.runner import RunRecord, run

TIMINGS = {"train_time", "mean_step_time", "time_to_target", "peak_rss_mb"}


def _numbers(record: RunRecord) -> dict:
    return {k: v for k, v in record.to_dict().items() if k not in TIMINGS}


def test_huge_learning_rate_is_a_recorded_failure_not_an_exception():
    record = run(get_problem("rosenbrock"), "sgd", {"lr": 100.0}, seed=0, split="validation")
    assert record.failed and 1 <= record.diverged_at < 50
    assert math.isnan(record.final_metric)
    assert record.steps_to_target is None


@pytest.mark.parametrize("name", ["saddle", "logreg_breast_cancer", "mlp_mnist1d_bn"])
def test_same_seed_same_numbers(name):
    problem = get_problem(name)
    first, second = (run(problem, "adam", {"lr": 1e-2}, seed=3, split="validation") for _ in range(2))
    assert _numbers(first) == _numbers(second)
    other = run(problem, "adam", {"lr": 1e-2}, seed=4, split="validation")
    assert other.train_loss != first.train_loss


def test_record_round_trips_through_json_dict():
    record = run(get_problem("saddle"), "momentum", {"lr": 0.01}, seed=0, split="test")
    assert RunRecord.from_dict(record.to_dict()) == record
    assert record.steps[-1] == get_problem("saddle").spec.steps
    assert len(record.trajectory) == get_problem("saddle").spec.steps + 1
    assert record.state_mb > 0 and record.mean_step_time > 0


def test_bad_split_is_named():
    with pytest.raises(ValueError, match="split"):
        run(get_problem("saddle"), "adam", {"lr": 1e-2}, seed=0, split="train")
