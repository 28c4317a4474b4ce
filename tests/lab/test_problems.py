"""Every problem builds, and a sensible optimizer reaches its target within the problem's budget."""

import math

import pytest
import torch

from optimlab.lab.problems import PROBLEMS, SUITES, get_problem, get_suite
from optimlab.lab.problems.test_functions import FUNCTIONS
from optimlab.lab.runner import run

# a setting expected to reach each problem's target (claims under test, not recorded results)
GOOD_SETTINGS = {
    "rosenbrock": ("momentum", 1e-3),
    "beale": ("adam", 0.1),
    "rastrigin": ("gd", 1e-3),
    "ill_conditioned": ("adam", 0.1),
    "saddle": ("adam", 0.1),
    "noisy_quadratic": ("momentum", 1e-3),
    "logreg_breast_cancer": ("adam", 0.01),
    "mlp_mnist1d": ("adam", 0.01),
    "mlp_mnist1d_l2": ("adam", 0.01),
    "mlp_mnist1d_bn": ("adam", 0.01),
    "mlp_mnist1d_bn_l2": ("adam", 0.01),
    "cnn_fashion_mnist": ("adam", 3e-3),
    "char_lstm_kjv": ("adam", 1e-2),
    "recommender_clicks": ("adagrad", 0.1),
}
SLOW = {"mlp_mnist1d_l2", "mlp_mnist1d_bn", "mlp_mnist1d_bn_l2", "cnn_fashion_mnist", "char_lstm_kjv",
        "recommender_clicks"}


def test_every_problem_has_a_good_setting_listed():
    assert set(GOOD_SETTINGS) == set(PROBLEMS)


@pytest.mark.parametrize("name", [n for n in PROBLEMS if n not in SLOW])
def test_problem_builds_with_finite_loss_and_metric(name):
    problem = get_problem(name)
    for split in ("validation", "test"):
        task = problem.build(0, split)
        loss = task.train_loss(1)
        assert loss.dim() == 0 and math.isfinite(loss.item())
        assert math.isfinite(task.evaluate())
        assert any(p.requires_grad for p in task.model.parameters())


def _reaches_target(name):
    problem = get_problem(name)
    optimizer, lr = GOOD_SETTINGS[name]
    record = run(problem, optimizer, {"lr": lr}, seed=1, split="test")
    assert not record.failed
    assert record.steps_to_target is not None and record.steps_to_target <= problem.spec.steps, (
        f"{optimizer} lr={lr} ended at {record.final_metric} (target {problem.spec.target})")
    return record


@pytest.mark.parametrize("name", [n for n in PROBLEMS if n not in SLOW])
def test_good_setting_reaches_target(name):
    record = _reaches_target(name)
    if name in FUNCTIONS:  # independent oracle: the known minimum value
        fn = FUNCTIONS[name]
        x, y = record.trajectory[-1]
        assert fn.f(torch.tensor(x), torch.tensor(y)).item() == pytest.approx(record.final_metric, abs=1e-9)
        assert record.final_metric - fn.minimum <= get_problem(name).spec.target - fn.minimum


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW))
def test_slow_problem_reaches_target(name):
    _reaches_target(name)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="rosenbrock"):
        get_problem("rosenbrok")
    with pytest.raises(ValueError, match="quick"):
        get_suite("fast")
    assert set(SUITES["quick"].problems) <= set(PROBLEMS)


def test_suites_name_catalog_optimizers():
    from optimlab.catalog import CATALOG

    for suite in SUITES.values():
        assert suite.optimizers is None or set(suite.optimizers) <= set(CATALOG)
    assert SUITES["full"].optimizers is None  # every optimizer


def test_bench_takes_the_suites_optimizers_and_every_optimizer_for_named_problems(tmp_path, monkeypatch):
    """What `optimlab bench` would sweep, captured where it resolves the pairs."""
    from typer.testing import CliRunner

    from optimlab import cli
    from optimlab.catalog import CATALOG
    from optimlab.lab import sweep
    from optimlab.lab.optimizers import untuned_label

    swept = []

    def resolve(names, sources):
        swept.append(sorted({optimizer for _, optimizer in names}))
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "resolve", resolve)
    for args in (["--suite", "quick"], ["--problems", "saddle"]):
        result = CliRunner().invoke(cli.app, ["bench", *args, "--out", str(tmp_path / args[1])])
        assert result.exit_code == 130, result.output
    quick = SUITES["quick"]
    assert swept == [sorted([*quick.optimizers, *map(untuned_label, quick.untuned)]), sorted(CATALOG)]
