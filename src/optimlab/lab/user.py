"""The user's own problems and optimizer configurations, beside the built-in ones.

A configuration is a label, a factory ``(params, **hyperparameters) -> torch.optim.Optimizer`` and
a search space ``{"lr": (low, high), ...}`` (log-uniform; a `Hyperparameter` for a linear range)::

    OPTIMIZERS = {"adamw_wd0.1": (lambda params, lr: optimlab.AdamW(params, lr=lr, weight_decay=0.1),
                                  {"lr": (1e-5, 1.0)})}

A problem is `define_problem(...)`: a model, data, a loss, a metric, a target and a budget.
A *file* of them (``optimlab bench --problem-file F --optimizer-file F``) defines ``PROBLEMS``
(a list of problems, or ``PROBLEM``, one) and ``OPTIMIZERS`` (a dict as above) at module level;
`Sources` names such files, so that worker processes can load them again by path.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from optimlab.catalog import CATALOG, Hyperparameter

from .optimizers import Candidate, catalog_name, from_catalog, unknown_name
from .problems import PROBLEMS, Problem, ProblemSpec
from .problems.data import Splits
from .problems.recipes import Recipe, supervised_problem

Batch = tuple[torch.Tensor, ...]
SpaceLike = Mapping[str, "tuple[float, float] | Hyperparameter"] | Iterable[Hyperparameter]


def search_space(space: SpaceLike, label: str) -> tuple[Hyperparameter, ...]:
    """``{"lr": (1e-5, 1.0)}`` (log-uniform ranges) or `Hyperparameter` objects, checked."""
    if isinstance(space, Mapping):
        items = [value if isinstance(value, Hyperparameter) else Hyperparameter(name, *value)
                 for name, value in space.items()]
    else:
        items = list(space)
    for h in items:
        if not isinstance(h, Hyperparameter):
            raise TypeError(f"search space of {label!r}: expected {{name: (low, high)}} or Hyperparameter, got {h!r}")
        if not h.low < h.high or (h.log and h.low <= 0):
            raise ValueError(f"search space of {label!r}: {h.name} needs 0 < low < high on a log scale "
                             f"(low < high on a linear one), got ({h.low:g}, {h.high:g})")
    if not items:
        raise ValueError(f"search space of {label!r} is empty")
    return tuple(items)


def candidate(label: str, factory: Callable[..., torch.optim.Optimizer], space: SpaceLike,
              full_batch: bool = False) -> Candidate:
    """A user configuration, checked: a label that is not a catalog name, a callable, a space."""
    if not isinstance(label, str) or not label or "/" in label:
        raise ValueError(f"optimizer label must be a non-empty string without '/', got {label!r}")
    if catalog_name(label) is not None:
        raise ValueError(f"optimizer label {label!r} is a catalog name; choose another label")
    if not callable(factory):
        raise TypeError(f"factory of {label!r} must be callable (params, **hyperparameters), got {factory!r}")
    return Candidate(label, factory, search_space(space, label), full_batch)


def candidates(optimizers: Iterable | Mapping) -> list[Candidate]:
    """Catalog names, `Candidate` objects and ``{label: (factory, space)}`` mappings, in order."""
    items = optimizers.items() if isinstance(optimizers, Mapping) else [(None, o) for o in optimizers]
    found: list[Candidate] = []
    for label, value in items:
        if isinstance(value, Candidate):
            found.append(value)
        elif label is None and isinstance(value, str):
            found.append(from_catalog(value))
        elif label is None and isinstance(value, Mapping):
            found += candidates(value)
        elif isinstance(value, tuple) and len(value) == 2:
            found.append(candidate(label, *value))
        else:
            raise TypeError(f"optimizers: expected catalog names, Candidates or {{label: (factory, space)}}, "
                            f"got {value!r}")
    labels = [c.label for c in found]
    duplicated = sorted({label for label in labels if labels.count(label) > 1})
    if duplicated:
        raise ValueError(f"optimizers: labels given twice: {', '.join(duplicated)}")
    if not found:
        raise ValueError(f"no optimizers given; valid optimizers: {', '.join(CATALOG)}")
    return found


def _tensors(data, argument: str) -> tuple[torch.Tensor, ...]:
    tensors = getattr(data, "tensors", data)  # a TensorDataset or a tuple of tensors
    if not (isinstance(tensors, (tuple, list)) and tensors and all(isinstance(t, torch.Tensor) for t in tensors)):
        raise TypeError(f"{argument} must be a tuple of tensors or a TensorDataset, got {type(data).__name__}")
    if len({len(t) for t in tensors}) != 1:
        raise ValueError(f"{argument}: all tensors need the same first dimension, got {[len(t) for t in tensors]}")
    return tuple(tensors)


def define_problem(
    name: str,
    model_fn: Callable[[], torch.nn.Module],
    loss_fn: Callable[[torch.nn.Module, Batch], torch.Tensor],
    train_data,
    eval_fn: Callable[[torch.nn.Module, Batch], float],
    *,
    eval_data=None,
    steps: int = 500,
    batch_size: int = 64,
    metric: str = "metric",
    higher_is_better: bool = False,
    target: float | None = None,
    description: str | None = None,
    full_batch_size: int | None = None,
) -> Problem:
    """A problem with the built-in problems' contract.

    ``model_fn()`` builds a fresh model (called after seeding); ``loss_fn(model, batch)`` returns
    the training loss of a minibatch, a tuple of tensors drawn from ``train_data`` (a tuple of
    tensors or a TensorDataset); ``eval_fn(model, data)`` returns the metric on held-out data.
    Tuning judges on a validation part of ``train_data``; the seed reruns on ``eval_data`` (or,
    if not given, on a held-out 15 % of ``train_data`` that tuning never sees).
    """
    if not isinstance(name, str) or "/" in name or not name:
        raise ValueError(f"name must be non-empty and contain no '/', got {name!r}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    train = _tensors(train_data, "train_data")
    if eval_data is None:
        n_test = max(1, int(len(train[0]) * 0.15))
        train, test = tuple(t[:-n_test] for t in train), tuple(t[-n_test:] for t in train)
    else:
        test = _tensors(eval_data, "eval_data")
    splits = Splits(train=train, test=test)
    spec = ProblemSpec(name=name, description=description or f"user problem {name}", metric=metric,
                       higher_is_better=higher_is_better, target=target, steps=steps, batch_size=batch_size,
                       eval_every=max(steps // 20, 1), full_batch_size=full_batch_size)
    return supervised_problem(spec, Recipe(splits=lambda: splits, model=model_fn, loss=loss_fn,
                                           metric=eval_fn, eval_size=None))


@functools.cache
def _load_module(path: str):
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"no such file: {path}")
    module_name = f"optimlab_user_{abs(hash(str(file.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the user's code: any failure is reported as one line
        raise ValueError(f"{path}: {type(error).__name__}: {error}") from error
    return module


@functools.cache
def load_problems(path: str) -> dict[str, Problem]:
    module = _load_module(path)
    found = getattr(module, "PROBLEMS", None) or ([module.PROBLEM] if hasattr(module, "PROBLEM") else [])
    if not found or not all(isinstance(p, Problem) for p in found):
        raise ValueError(f"{path}: define PROBLEMS (a list of optimlab.lab.define_problem(...)) or PROBLEM")
    problems = {p.name: p for p in found}
    clash = sorted(set(problems) & set(PROBLEMS))
    if clash:
        raise ValueError(f"{path}: problem names already built in: {', '.join(clash)}")
    return problems


@functools.cache
def load_candidates(path: str) -> dict[str, Candidate]:
    module = _load_module(path)
    found = getattr(module, "OPTIMIZERS", None)
    if not isinstance(found, Mapping) or not found:
        raise ValueError(f"{path}: define OPTIMIZERS = {{label: (factory, {{'lr': (low, high)}})}}")
    try:
        return {c.label: c for c in candidates(found)}
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from error


@dataclass(frozen=True)
class Sources:
    """Where problem and optimizer names resolve: the built-in registries plus the user's files.
    Plain paths, so a worker process rebuilds the same objects."""

    problem_files: tuple[str, ...] = ()
    optimizer_files: tuple[str, ...] = ()

    def problems(self) -> dict[str, Problem]:
        found = dict(PROBLEMS)
        for path in self.problem_files:
            found.update(load_problems(path))
        return found

    def user_candidates(self) -> dict[str, Candidate]:
        return {label: c for path in self.optimizer_files for label, c in load_candidates(path).items()}

    def problem(self, name: str) -> Problem:
        found = self.problems()
        if name not in found:
            raise ValueError(unknown_name("problem", name, found))
        return found[name]

    def candidate(self, name: str) -> Candidate:
        user = self.user_candidates()
        if name in user:
            return user[name]
        if catalog_name(name) is not None:
            return from_catalog(name)
        raise ValueError(unknown_name("optimizer", name, [*CATALOG, *user]))


__all__ = ["Sources", "candidate", "candidates", "define_problem", "search_space"]
