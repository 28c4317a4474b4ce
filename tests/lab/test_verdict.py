"""The verdict: rank groups from the deterministic record only, flags where they belong,
divergence as users mean it, gd on the full batch."""

import dataclasses
import math
import random

import pytest
import torch
from torch.nn import functional as F

from optimlab.catalog import Hyperparameter
from optimlab.lab import plots
from optimlab.lab.advice import flags, recommendation
from optimlab.lab.export import results_json
from optimlab.lab.problems import ProblemSpec, get_problem
from optimlab.lab.problems.data import breast_cancer
from optimlab.lab.results import OptimizerResult, ProblemResult, Results
from optimlab.lab.runner import RunRecord, run

SPEC = ProblemSpec(name="toy", description="toy", metric="loss", higher_is_better=False, target=0.1,
                   steps=100, batch_size=8, eval_every=10)
SPACE = (Hyperparameter("lr", 1e-4, 1.0),)


def record(optimizer, lr, seed=0, reach=None, final=0.05, diverged_at=None, step_time=1e-3, split="test"):
    """A run that first meets the target at step ``reach`` (None: never) and ends at ``final``."""
    steps = list(range(10, SPEC.steps + 1, 10))
    metric = [1.0 if reach is None or s < reach else 0.05 for s in steps]
    if diverged_at is None:
        metric[-1] = final
    else:
        steps, metric = [s for s in steps if s < diverged_at], [m for s, m in zip(steps, metric) if s < diverged_at]
    return RunRecord(problem="toy", optimizer=optimizer, hparams={"lr": lr}, seed=seed, split=split, steps=steps,
                     train_loss=list(metric), metric=metric, steps_to_target=reach, time_to_target=None,
                     train_time=step_time * SPEC.steps, mean_step_time=step_time, state_mb=0.01,
                     diverged_at=diverged_at, model_flops=1000, optimizer_flops=0)


def result(optimizer, reaches, lr=0.01, tuning=None, finals=None, **fields):
    finals = finals or [0.05] * len(reaches)
    reruns = [record(optimizer, lr, seed, reach, final) for seed, (reach, final) in enumerate(zip(reaches, finals), 1)]
    tuning = tuning or [record(optimizer, lr, reach=reaches[0], split="validation")]
    return OptimizerResult(optimizer, SPEC, [tuning], [reruns], SPACE, **fields)


def problem(*results):
    return ProblemResult(SPEC, {r.optimizer: r for r in results})


def test_overlapping_results_share_a_rank_and_distinct_ones_do_not():
    toy = problem(result("a", [20, 30, 30]), result("b", [30, 40, 40]), result("c", [60, 70, 70]),
                  result("d", [None, None, None], finals=[0.3, 0.3, 0.3]),
                  result("e", [None, None, None], finals=[0.2, 0.2, 0.2]))
    assert [[r.optimizer for r in group] for group in toy.groups()] == [["a", "b"], ["c"], ["e"], ["d"]]
    assert toy.ranks() == {"a": 1, "b": 1, "c": 3, "e": 4, "d": 5}


def test_identical_records_under_two_labels_tie():
    toy = problem(result("x", [40, 50, 60]), result("y", [40, 50, 60]), result("z", [10, 10, 10]))
    assert toy.ranks()["x"] == toy.ranks()["y"] == 2


def test_the_verdict_ignores_wall_clock():
    """Same stored runs, step times scrambled by up to 100x: same groups, ranks, recommendation
    and results.json except the timing fields."""
    make = lambda: Results({"toy": problem(result("a", [20, 30, 30]), result("b", [30, 40, 40]),
                                           result("c", [60, 70, 70]), result("d", [None, 50, 50]))})
    quiet, loaded = make(), make()
    rng = random.Random(0)
    for r in loaded.problems["toy"].optimizers.values():
        for run_ in r.tuning + r.all_reruns:
            run_.mean_step_time *= rng.uniform(0.1, 10)
            run_.train_time *= rng.uniform(0.1, 10)
    strip = lambda doc: {k: v for k, v in doc.items() if k not in ("mean_step_time",)}
    for name in ("toy",):
        assert quiet.problems[name].ranks() == loaded.problems[name].ranks()
        assert recommendation(quiet.problems[name]) == recommendation(loaded.problems[name])
    a, b = results_json(quiet)["problems"]["toy"], results_json(loaded)["problems"]["toy"]
    assert [strip(r) for r in a["ranking"]] == [strip(r) for r in b["ranking"]]
    assert a["recommendation"] == b["recommendation"]


def test_recommendation_needs_a_held_target_and_names_the_group():
    toy = problem(result("fast_but_touched", [10, 10, 10], finals=[0.5, 0.5, 0.05]), result("steady", [30, 30, 40]))
    assert toy.recommended().optimizer == "steady"
    assert toy.optimizers["fast_but_touched"].seeds_touched == 2
    group = problem(result("a", [20, 30, 30]), result("b", [20, 30, 30]))
    text = recommendation(group)
    assert "indistinguishable" in text and "**a**" in text and "**b**" in text
    nobody = problem(result("a", [None] * 3, finals=[0.3] * 3))
    assert nobody.recommended() is None and "uncertain" in recommendation(nobody)


def test_fragile_flag_only_when_most_tuning_runs_diverged():
    diverged = [record("f", lr, diverged_at=5, split="validation") for lr in (0.1, 0.3, 0.9)]
    fragile = result("f", [20, 20, 20], tuning=diverged + [record("f", 0.01, reach=20, split="validation")])
    sturdy = result("s", [20, 20, 20], tuning=diverged[:2] + [record("s", lr, reach=20, split="validation")
                                                             for lr in (0.01, 0.02)])
    assert fragile.fragile and not sturdy.fragile
    assert any("fragile" in f for f in flags(fragile)) and not any("fragile" in f for f in flags(sturdy))
    toy = problem(fragile, sturdy)
    assert toy.ranks() == {"f": 1, "s": 1} and toy.recommended().optimizer == "s"


@pytest.mark.parametrize("chosen, tried, flagged", [
    (0.9, (0.001, 0.01, 0.9), "top"), (0.9, (0.001, 0.95, 0.9), None),  # a larger lr was tried
    (2e-4, (2e-4, 0.01, 0.1), "bottom"), (0.05, (0.001, 0.05, 0.1), None),
])
def test_edge_of_range_flag(chosen, tried, flagged):
    tuning = [record("e", lr, reach=20 if lr == chosen else None, split="validation") for lr in tried]
    edges = result("e", [20, 20, 20], lr=chosen, tuning=tuning).edges
    assert edges == ([] if flagged is None else [f"lr at the {flagged} of [0.0001, 1]"])


def _first_step_over(optimizer_class, lr, fn, start, factor=100.0, steps=1000):
    """Oracle: torch.optim's trajectory in float64 and the first step whose loss exceeds the bound."""
    point = torch.nn.Parameter(start.clone())
    opt = optimizer_class([point], lr=lr)
    bound = None
    for step in range(1, steps + 1):
        opt.zero_grad()
        loss = fn(point[0], point[1])
        loss.backward()
        opt.step()
        value = loss.item()
        bound = bound or factor * max(abs(value), 1.0)
        if not math.isfinite(value) or value > bound:
            return step
    return None


def test_a_finite_blow_up_is_a_divergence_at_its_step_and_leaves_the_axis_alone():
    from optimlab.lab.problems.test_functions import FUNCTIONS, _start

    fn = FUNCTIONS["rosenbrock"]
    blow_up = run(get_problem("rosenbrock"), "radam", {"lr": 0.0099}, seed=0, split="validation")
    expected = _first_step_over(torch.optim.RAdam, 0.0099, fn.f, _start(fn, 0))
    assert expected is not None and blow_up.diverged_at == expected
    assert blow_up.failed and math.isnan(blow_up.final_metric)
    fine = [run(get_problem("rosenbrock"), "adam", {"lr": lr}, seed=0, split="validation") for lr in (0.01, 0.05)]
    rosenbrock = get_problem("rosenbrock").spec
    results = ProblemResult(rosenbrock, {"radam": OptimizerResult("radam", rosenbrock, [[blow_up]], [[]], SPACE),
                                         "adam": OptimizerResult("adam", rosenbrock, [fine], [[]], SPACE)})
    ax = plots.sensitivity_figure(results).axes[0]
    finite = [r.final_metric for r in fine]
    low, high = ax.get_ylim()
    assert high < 10 * max(finite) and low > 0  # the log axis spans the finite runs, not 1e66


def test_gd_steps_on_the_whole_training_set():
    problem_ = get_problem("logreg_breast_cancer")
    full = problem_.build(0, "validation", True)
    (x, y), _ = breast_cancer().for_split("validation")
    with torch.no_grad():
        expected = F.binary_cross_entropy_with_logits(full.model(x), y)
        assert full.train_loss(1).item() == pytest.approx(expected.item(), rel=1e-6)
        assert full.train_loss(2).item() == full.train_loss(1).item()  # the same batch every step
        mini = problem_.build(0, "validation", False)
        assert mini.train_loss(1).item() != pytest.approx(expected.item(), rel=1e-6)
    built = []
    original = problem_.build
    spy = dataclasses.replace(problem_, build=lambda *args: built.append(args) or original(*args))
    run(spy, "gd", {"lr": 0.1}, seed=0, split="validation")
    run(spy, "sgd", {"lr": 0.1}, seed=0, split="validation")
    assert [args[2] for args in built] == [True, False]


def test_full_batch_is_capped_by_the_problem():
    from optimlab.lab import define_problem

    sizes = []
    x, y = torch.randn(300, 3), torch.randn(300)
    loss = lambda model, batch: sizes.append(len(batch[0])) or ((model(batch[0]).squeeze(-1) - batch[1]) ** 2).mean()
    capped = define_problem("capped", lambda: torch.nn.Linear(3, 1), loss, (x, y), lambda m, b: 0.0,
                            eval_data=(x, y), batch_size=16, full_batch_size=50)
    task = capped.build(0, "test", True)
    task.train_loss(1), task.train_loss(2)
    assert sizes == [50, 50]
    uncapped = define_problem("all", lambda: torch.nn.Linear(3, 1), loss, (x, y), lambda m, b: 0.0, eval_data=(x, y))
    uncapped.build(0, "test", True).train_loss(1)
    uncapped.build(0, "test", False).train_loss(1)
    assert sizes[2:] == [300, 64]
