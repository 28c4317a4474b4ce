"""`compare`: the lab's protocol on the user's own model and data."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch

from . import store, sweep
from .optimizers import check_optimizers, from_catalog, optimizer_names
from .problems import Problem, ProblemSpec
from .problems.data import Splits
from .problems.supervised import Recipe, supervised_problem
from .report import write_report
from .results import Results, load_results

Batch = tuple[torch.Tensor, ...]


def _tensors(data, argument: str) -> tuple[torch.Tensor, ...]:
    tensors = getattr(data, "tensors", data)  # a TensorDataset or a tuple of tensors
    if not (isinstance(tensors, (tuple, list)) and tensors and all(isinstance(t, torch.Tensor) for t in tensors)):
        raise TypeError(f"{argument} must be a tuple of tensors or a TensorDataset, got {type(data).__name__}")
    if len({len(t) for t in tensors}) != 1:
        raise ValueError(f"{argument}: all tensors need the same first dimension, got {[len(t) for t in tensors]}")
    return tuple(tensors)


def compare(
    model_fn: Callable[[], torch.nn.Module],
    loss_fn: Callable[[torch.nn.Module, Batch], torch.Tensor],
    train_data,
    eval_fn: Callable[[torch.nn.Module, Batch], float],
    optimizers: Sequence[str] | None = None,
    trials: int = 8,
    seeds: int = 3,
    *,
    eval_data=None,
    steps: int = 500,
    batch_size: int = 64,
    metric: str = "metric",
    higher_is_better: bool = False,
    target: float | None = None,
    name: str = "custom",
    out: str | Path = "optimlab-out",
    storage: str | None = None,
    sampler: str = "qmc",
) -> Results:
    """Tune and compare ``optimizers`` on your problem with the lab's protocol; write the report.

    ``model_fn()`` builds a fresh model (called after seeding); ``loss_fn(model, batch)`` returns
    the training loss of a minibatch, a tuple of tensors drawn from ``train_data`` (a tuple of
    tensors or a TensorDataset); ``eval_fn(model, data)`` returns the metric on held-out data.
    Tuning judges on a validation part of ``train_data``; the seed reruns on ``eval_data`` (or,
    if not given, on a held-out 15 % of ``train_data`` that tuning never sees). Re-running with
    the same ``out``/``storage`` resumes. Returns the results of everything in the store.
    """
    if "/" in name or not name:
        raise ValueError(f"name must be non-empty and contain no '/', got {name!r}")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got steps={steps}, batch_size={batch_size}")
    train = _tensors(train_data, "train_data")
    if eval_data is None:
        n_test = max(1, int(len(train[0]) * 0.15))
        train, test = tuple(t[:-n_test] for t in train), tuple(t[-n_test:] for t in train)
    else:
        test = _tensors(eval_data, "eval_data")
    splits = Splits(train=train, test=test)
    spec = ProblemSpec(name=name, description=f"user problem {name}", metric=metric,
                       higher_is_better=higher_is_better, target=target, steps=steps, batch_size=batch_size,
                       eval_every=max(steps // 20, 1))
    problem: Problem = supervised_problem(spec, Recipe(splits=lambda: splits, model=model_fn, loss=loss_fn,
                                                       metric=eval_fn, eval_size=None))
    names = check_optimizers(optimizers or optimizer_names())
    url = storage or store.default_storage(out)
    sweep.run_pairs(url, [(problem, from_catalog(o)) for o in names], sweep.Plan(trials=trials, seeds=seeds, sampler=sampler))
    results = load_results(url)
    write_report(results, out)
    return results
