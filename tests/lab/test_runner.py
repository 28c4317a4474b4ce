"""Measurement of single runs: divergence is recorded, same seed gives the same numbers."""

import math

import pytest
import torch

import optimlab
from optimlab.lab.optimizers import from_catalog
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


@pytest.mark.parametrize("optimizer", ["adagrad", "momentum"])
def test_sparse_embedding_gradients_give_the_dense_numbers(monkeypatch, optimizer):
    """Optimizers that take sparse gradients get them on the recommender; the math is unchanged."""
    from optimlab.lab import runner

    problem = get_problem("recommender_clicks")
    calls = []
    original = runner.sparse_embeddings
    monkeypatch.setattr(runner, "sparse_embeddings", lambda model: calls.append(model) or original(model))
    sparse = run(problem, optimizer, {"lr": 0.05}, seed=0, split="validation")
    assert calls and all(m.sparse for m in calls[0].modules() if isinstance(m, torch.nn.Embedding))
    monkeypatch.setattr(runner, "sparse_embeddings", lambda model: None)
    dense = run(problem, optimizer, {"lr": 0.05}, seed=0, split="validation")
    assert sparse.steps == dense.steps
    # float32, 600 steps: only the summation order of repeated rows differs (coalesce vs index_add)
    assert sparse.train_loss == pytest.approx(dense.train_loss, rel=1e-3)
    assert sparse.metric == pytest.approx(dense.metric, abs=1e-3)


def test_dense_only_optimizers_keep_dense_embeddings(monkeypatch):
    from optimlab.lab import runner

    calls = []
    monkeypatch.setattr(runner, "sparse_embeddings", lambda model: calls.append(model))
    run(get_problem("recommender_clicks"), "adam", {"lr": 1e-2}, seed=0, split="validation")
    assert not calls


def test_muon_newton_schulz_runs_in_float32_in_the_lab():
    """Its bfloat16 default would measure a CPU's lack of bfloat16 matrix units, not Muon;
    tuned values still win over the lab's fixed options."""
    params = [torch.nn.Parameter(torch.zeros(4, 3)), torch.nn.Parameter(torch.zeros(3))]
    assert optimlab.create("muon", params, lr=0.02).param_groups[0]["ns_dtype"] is torch.bfloat16
    assert from_catalog("muon").make(params, {"lr": 0.02}).param_groups[0]["ns_dtype"] is torch.float32
    assert from_catalog("muon").make(params, {"lr": 0.02, "ns_dtype": torch.float64}).param_groups[0]["ns_dtype"] is torch.float64
    assert "ns_dtype" not in from_catalog("adam").make(params, {"lr": 0.02}).param_groups[0]


def test_schedule_free_is_evaluated_at_its_average_point():
    """The lab steps Schedule-Free at y (train mode) and evaluates it at the average x: the
    recorded metric is the metric at x = (y - (1 - beta) z) / beta, computed here from the
    optimizer's state, not the metric at y."""
    from optimlab.lab.runner import seed_everything

    problem, beta = get_problem("saddle"), 0.9
    record = run(problem, "schedulefree_sgd", {"lr": 0.05}, seed=0, split="validation")
    seed_everything(0)
    task = problem.build(0, "validation", False)
    params = list(task.model.parameters())
    optimizer = optimlab.ScheduleFreeSGD(params, lr=0.05, momentum=beta)
    optimizer.train()
    at_x, at_y = [], []
    for step in range(1, problem.spec.steps + 1):
        optimizer.zero_grad(set_to_none=True)
        task.train_loss(step).backward()
        optimizer.step()
        if step in record.steps:
            at_y.append(task.evaluate())
            y = [p.detach().clone() for p in params]
            with torch.no_grad():
                for p in params:
                    p.copy_((p - (1 - beta) * optimizer.state[p]["z"]) / beta)
            at_x.append(task.evaluate())
            with torch.no_grad():
                for p, saved in zip(params, y):
                    p.copy_(saved)
    assert record.steps_to_target is not None
    assert record.metric == pytest.approx(at_x, rel=1e-6, abs=1e-9)
    assert max(abs(a - b) for a, b in zip(at_x, at_y)) > 1e-3  # x and y differ: the test can tell them apart


def test_step_timing_and_lr_find_step_schedule_free_in_train_mode():
    """Both step optimizers outside `run`: Schedule-Free, which refuses to step in eval mode, is put in train mode."""
    from optimlab.lab import timing
    from optimlab.lab.lr_find import lr_sweep

    problem = get_problem("saddle")
    times = timing.measure(problem, [(from_catalog("schedulefree_sgd"), {"lr": 0.05})], rounds=2, steps_per_round=2)
    assert times["schedulefree_sgd"].median > 0
    task = problem.build(0, "validation", False)
    before = [p.detach().clone() for p in task.model.parameters()]
    result = lr_sweep(task.model, lambda model, step: task.train_loss(step), range(1, 41), "schedulefree_sgd",
                      start_lr=1e-4, end_lr=1.0, steps=40)
    assert result.lrs and all(torch.equal(p, q) for p, q in zip(task.model.parameters(), before))
