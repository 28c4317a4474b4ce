"""`compare`: the lab's protocol on the user's own model and data, or own problems."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import torch

from . import store, sweep
from .optimizers import optimizer_names
from .problems import Problem
from .report import write_report
from .results import Results, load_results
from .user import candidates, define_problem

Batch = tuple[torch.Tensor, ...]


def compare(
    model_fn: Callable[[], torch.nn.Module] | None = None,
    loss_fn: Callable[[torch.nn.Module, Batch], torch.Tensor] | None = None,
    train_data=None,
    eval_fn: Callable[[torch.nn.Module, Batch], float] | None = None,
    optimizers: Iterable | Mapping | None = None,
    trials: int = 8,
    seeds: int = 3,
    *,
    problem: Problem | None = None,
    studies: int = 1,
    out: str | Path = "optimlab-out",
    storage: str | None = None,
    sampler: str = "qmc",
    lr_find: bool = False,
    **problem_options,
) -> Results:
    """Tune and compare ``optimizers`` on your problem with the lab's protocol; write the report.

    The problem is ``problem`` (from `optimlab.lab.define_problem`) or is defined from
    ``model_fn``, ``loss_fn``, ``train_data``, ``eval_fn`` and ``problem_options`` (``eval_data``,
    ``steps``, ``batch_size``, ``metric``, ``higher_is_better``, ``target``, ``name``...; see
    `define_problem`). ``optimizers`` mixes catalog names and your own configurations::

        compare(..., optimizers=["adam", {"adamw_wd0.1": (
            lambda params, lr: optimlab.AdamW(params, lr=lr, weight_decay=0.1), {"lr": (1e-5, 1.0)})}])

    (default: every catalog optimizer; ``"prodigy (untuned)"`` runs one at its defaults, with no
    search). ``lr_find=True`` first centres each learning-rate range on the LR range test's
    suggestion (`lr_find.centred_space`). Re-running with the same ``out``/``storage`` resumes.
    Returns the results of everything in the store.
    """
    if problem is None:
        if None in (model_fn, loss_fn, train_data, eval_fn):
            raise TypeError("compare needs problem=... or model_fn, loss_fn, train_data and eval_fn")
        problem = define_problem(problem_options.pop("name", "custom"), model_fn, loss_fn, train_data, eval_fn,
                                 **problem_options)
    elif problem_options:
        raise TypeError(f"problem options {sorted(problem_options)} are for a problem defined here, not problem=")
    chosen = candidates(optimizers if optimizers is not None else optimizer_names())
    plan = sweep.Plan(trials=trials, seeds=seeds, studies=studies, sampler=sampler, lr_find=lr_find)
    url = storage or store.default_storage(out)
    sweep.run_pairs(url, [(problem, candidate) for candidate in chosen], plan)
    results = load_results(url)
    write_report(results, out)
    return results
