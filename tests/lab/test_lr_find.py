"""The LR range test: the suggestion lands where the optimizer succeeds, found by an
independent grid of full runs, and the model and optimizer are left unchanged."""

from __future__ import annotations

import copy

import pytest
import torch

import optimlab
from optimlab.lab.lr_find import lr_find, lr_sweep, valley


def _regression():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 10, generator=g) * torch.linspace(0.3, 3.0, 10)
    y = x @ torch.randn(10, 1, generator=g) + 0.1 * torch.randn(512, 1, generator=g)
    torch.manual_seed(0)
    model = torch.nn.Linear(10, 1)
    batches = list(zip(x.split(32), y.split(32)))
    return model, batches


def _loss(model, batch):
    x, y = batch
    return torch.nn.functional.mse_loss(model(x), y)


def _succeeds(model, batches, lr, steps=600):
    model = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for t in range(steps):
        optimizer.zero_grad()
        _loss(model, batches[t % len(batches)]).backward()
        optimizer.step()
    with torch.no_grad():
        final = sum(_loss(model, b) for b in batches).item() / len(batches)
    return final < 0.05  # the noise floor is 0.01; 600 steps (~37 epochs) is a full run here


def test_suggestion_lands_in_the_range_where_sgd_succeeds(tmp_path):
    model, batches = _regression()
    grid = [10 ** (e / 4) for e in range(-20, 4)]
    good = [lr for lr in grid if _succeeds(model, batches, lr)]
    assert good and good[0] > grid[0] and good[-1] < grid[-1]  # a bounded range, with failures on both sides
    before = copy.deepcopy(model.state_dict())
    suggestion = lr_find(model, _loss, batches, "sgd", plot=tmp_path / "lr.png", steps=300)
    assert isinstance(suggestion, float)
    assert good[0] <= suggestion <= good[-1], (suggestion, good)
    assert (tmp_path / "lr.png").stat().st_size > 0
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


def test_a_given_optimizer_is_restored():
    model, batches = _regression()
    optimizer = optimlab.Adam(model.parameters(), lr=1e-3)
    for batch in batches[:3]:
        optimizer.zero_grad()
        _loss(model, batch).backward()
        optimizer.step()
    saved_model, saved = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    result = lr_sweep(model, _loss, batches, optimizer, steps=60)
    assert len(result.lrs) >= 2
    after = optimizer.state_dict()
    assert after["param_groups"][0]["lr"] == 1e-3
    for index, state in saved["state"].items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(after["state"][index][key]))
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved_model[key])


def test_valley_is_fastais():
    # fastai's valley by hand: the longest descending subsequence ends at index 8 with
    # length 8 (0 or 1, then 2..8), so start = 8 - 8 = 0, section = 8/3 and the index is
    # 0 + int(2.67) + int(1.33) = 3.
    losses = [5.0, 5.5, 4.0, 3.5, 3.0, 2.5, 2.0, 1.5, 1.0, 3.0, 9.0]
    assert valley(list(range(11)), losses) == 3


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 1}, r"steps must be an integer >= 2, got 1"),
    ({"start_lr": 1.0, "end_lr": 0.1}, r"0 < start_lr < end_lr < inf, got 1.0, 0.1"),
    ({"divergence": 1.0}, r"divergence must be > 1, got 1.0"),
])
def test_bad_input_names_the_argument(kwargs, message):
    model, batches = _regression()
    with pytest.raises(ValueError, match=message):
        lr_find(model, _loss, batches, "sgd", **kwargs)


def test_cli_writes_the_plot_and_prints_the_suggestion(tmp_path):
    from typer.testing import CliRunner

    from optimlab.cli import app

    result = CliRunner().invoke(app, ["lr-find", "--problem", "logreg_breast_cancer", "--optimizer", "adam",
                                      "--steps", "60", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lr = float(result.output.split("suggested lr: ")[1].split()[0])
    assert 1e-7 < lr < 10
    assert (tmp_path / "lr_find_logreg_breast_cancer_adam.png").stat().st_size > 0
    bad = CliRunner().invoke(app, ["lr-find", "--problem", "logreg_breast_cancer", "--optimizer", "nope",
                                   "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "error: unknown optimizer 'nope'" in bad.output
    assert "Traceback" not in bad.output


def test_the_lab_centres_its_search_range_on_the_suggestion(tmp_path):
    """``Plan(lr_find=True)`` (``bench --lr-find``): each lr range keeps its width on the log scale
    and is centred on the range test's suggestion on the problem's validation split; the sweep
    tunes inside it and records it; an untuned candidate has no range to move."""
    import math

    from optimlab.lab import store, sweep
    from optimlab.lab.optimizers import from_catalog
    from optimlab.lab.problems import get_problem
    from optimlab.lab.runner import seed_everything
    from optimlab.lab.user import Sources

    problem, candidate = get_problem("logreg_breast_cancer"), from_catalog("sgd")
    (catalog,) = candidate.space
    seed_everything(sweep.TUNING_SEED)
    task = problem.build(sweep.TUNING_SEED, "validation", False)
    suggestion = lr_sweep(task.model, lambda model, step: task.train_loss(step), range(1, 101),
                          lambda params, lr: optimlab.SGD(params, lr=lr), start_lr=catalog.low, end_lr=catalog.high,
                          steps=100).suggestion
    plan = sweep.Plan(trials=3, seeds=1, lr_find=True)
    (centred,) = plan.budget(problem, candidate).space
    assert centred["name"] == "lr" and centred["log"]
    assert math.sqrt(centred["low"] * centred["high"]) == pytest.approx(suggestion, rel=1e-12)
    assert centred["high"] / centred["low"] == pytest.approx(catalog.high / catalog.low, rel=1e-12)
    assert (centred["low"], centred["high"]) != (catalog.low, catalog.high)
    assert plan.budget(problem, from_catalog("prodigy (untuned)")).space == []
    assert sweep.Plan(trials=3, seeds=1).to_dict() == {k: v for k, v in plan.to_dict().items() if k != "lr_find"}

    url = f"sqlite:///{tmp_path / 'optimlab.db'}"
    sweep.run_pairs(url, sweep.resolve([(problem.name, "sgd")], Sources()), plan)
    (pair,) = store.load_pairs(url)
    assert pair.plan["space"] == [centred] and pair.plan["lr_find"] is True
    tried = [run.hparams["lr"] for run in pair.tuning[0]]
    assert len(tried) == 3 and all(centred["low"] <= lr <= centred["high"] for lr in tried)
    with pytest.raises(ValueError, match=r"store was made with .*lr_find, not trials 3"):
        sweep.run_pairs(url, sweep.resolve([(problem.name, "sgd")], Sources()), sweep.Plan(trials=3, seeds=1))


def test_bench_lr_find_option(tmp_path):
    import json

    from typer.testing import CliRunner

    from optimlab.cli import app

    result = CliRunner().invoke(app, ["bench", "--problems", "logreg_breast_cancer", "--optimizers", "sgd", "--trials", "1",
                                      "--seeds", "1", "--lr-find", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "results.json").read_text())["meta"]["lr_find"] is True
    assert "centred on each optimizer's LR range test suggestion" in (tmp_path / "summary.md").read_text()
