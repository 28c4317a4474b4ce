"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates for Training Neural
Networks", section 3.3; fastai's ``lr_find`` and its "valley" suggestion).

Train from the current weights while the learning rate grows exponentially from
``start_lr`` to ``end_lr``, record the (exponentially smoothed) loss at each step, stop
once it exceeds ``divergence`` times its minimum, and suggest the learning rate in the
middle of the longest descending stretch of the curve (the valley; without the curve's
first tenth and last 5 points, as fastai). The model and the
optimizer are restored afterwards. `centred_space` moves a lab search range onto the suggestion
(``optimlab bench --lr-find``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import optimlab
from optimlab.catalog import Hyperparameter

from .modes import training


@dataclass(frozen=True)
class LRFindResult:
    """The sweep: learning rates, smoothed losses, and the suggested learning rate."""

    lrs: list[float]
    losses: list[float]
    suggestion: float


def lr_sweep(model: torch.nn.Module, loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor], batches: Iterable,
             optimizer: str | Callable[..., torch.optim.Optimizer] | torch.optim.Optimizer = "adam",
             start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 100, smoothing: float = 0.98,
             divergence: float = 4.0) -> LRFindResult:
    """Run the range test and return the whole curve (see `lr_find`)."""
    if not 0 < start_lr < end_lr or not math.isfinite(end_lr):
        raise ValueError(f"start_lr and end_lr must satisfy 0 < start_lr < end_lr < inf, got {start_lr!r}, {end_lr!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
    if not divergence > 1:
        raise ValueError(f"divergence must be > 1, got {divergence!r}")
    saved_model = copy.deepcopy(model.state_dict())
    if isinstance(optimizer, torch.optim.Optimizer):
        opt, saved_optimizer = optimizer, copy.deepcopy(optimizer.state_dict())
    else:
        make = (lambda params, lr: optimlab.create(optimizer, params, lr=lr)) if isinstance(optimizer, str) \
            else optimizer
        opt, saved_optimizer = make(model.parameters(), lr=start_lr), None
    training(opt)  # Schedule-Free steps in train mode (a given optimizer's mode is restored with its state)
    lrs, losses = [], []
    ratio = (end_lr / start_lr) ** (1 / (steps - 1))
    average, best = 0.0, math.inf
    try:
        for i, batch in zip(range(steps), _cycle(batches)):
            lr = start_lr * ratio**i
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad()
            loss = loss_fn(model, batch)
            loss.backward()
            opt.step()
            value = float(loss.detach())
            average = smoothing * average + (1 - smoothing) * value
            smoothed = average / (1 - smoothing ** (i + 1))
            if not math.isfinite(smoothed) or smoothed > divergence * best:
                break
            best = min(best, smoothed)
            lrs.append(lr)
            losses.append(smoothed)
    finally:
        model.load_state_dict(saved_model)
        if saved_optimizer is not None:
            opt.load_state_dict(saved_optimizer)
    # As fastai: the valley of the curve without its first tenth and last 5 points.
    kept = slice(steps // 10, -5)
    if len(lrs[kept]) < 2:
        raise RuntimeError(f"the loss diverged after {len(lrs)} of {steps} steps (lr={lrs[-1] if lrs else start_lr:g}): "
                           "lower start_lr or raise steps")
    return LRFindResult(lrs, losses, valley(lrs[kept], losses[kept]))


def lr_find(model, loss_fn, batches, optimizer="adam", *, plot: str | Path | None = None, **options) -> float:
    """The suggested learning rate of a range test on ``model``.

    ``loss_fn(model, batch)`` returns the training loss of one element of ``batches`` (cycled
    if shorter than ``steps``); ``optimizer`` is a catalog name (``"adam"``), a factory
    ``(params, lr=...) -> optimizer`` or an optimizer over ``model``'s parameters (its
    state is restored; its learning rate is overwritten during the test only). ``options``:
    ``start_lr=1e-7``, ``end_lr=10``, ``steps=100``, ``smoothing=0.98``, ``divergence=4``
    (fastai's). ``plot`` writes the curve as a PNG. Model and optimizer are left as they were.
    """
    result = lr_sweep(model, loss_fn, batches, optimizer, **options)
    if plot is not None:
        write_plot(result, Path(plot))
    return result.suggestion


_CENTRED: dict[tuple, tuple[Hyperparameter, ...]] = {}  # per process: prepare may ask twice per pair


def centred_space(problem, candidate, seed: int, steps: int = 100) -> tuple[Hyperparameter, ...]:
    """``candidate``'s search space with its ``lr`` range centred on the range test's suggestion:
    the test sweeps that range over ``steps`` training steps of ``problem``'s validation split
    (built with ``seed``), and the new range has the old one's width on the log scale, centred
    (geometrically) on the suggestion. Unchanged without a log-scaled ``lr`` (an untuned
    candidate has none), or where the loss diverged before the test could suggest (a
    RuntimeError of `lr_sweep`). Deterministic, like a run: the same problem, candidate and
    seed give the same range."""
    key = (problem.name, candidate.label, candidate.space, seed, steps)
    if key not in _CENTRED:
        _CENTRED[key] = _centred(problem, candidate, seed, steps)
    return _CENTRED[key]


def _centred(problem, candidate, seed: int, steps: int) -> tuple[Hyperparameter, ...]:
    from .runner import seed_everything  # noqa: PLC0415 (the runner imports the problems; lr_find needs none)

    lr = next((h for h in candidate.space if h.name == "lr" and h.log), None)
    if lr is None:
        return candidate.space
    seed_everything(seed)
    task = problem.build(seed, "validation", candidate.full_batch)
    try:
        result = lr_sweep(task.model, lambda model, step: task.train_loss(step), range(1, steps + 1),
                          lambda params, lr: candidate.make(params, {"lr": lr}), start_lr=lr.low, end_lr=lr.high,
                          steps=steps)
    except RuntimeError:
        return candidate.space
    half_width = math.sqrt(lr.high / lr.low)
    centred = Hyperparameter("lr", result.suggestion / half_width, result.suggestion * half_width)
    return tuple(centred if h is lr else h for h in candidate.space)


def valley(lrs: list[float], losses: list[float]) -> float:
    """fastai's valley: the learning rate 1/3 + 1/6 of the way along the longest
    descending subsequence of the loss curve."""
    n = len(losses)
    lengths = [1] * n
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lengths[i] < lengths[j] + 1:
                lengths[i] = lengths[j] + 1
        if lengths[end] < lengths[i]:
            end, start = i, i - lengths[i]
    section = (end - start) / 3
    return lrs[start + int(section) + int(section / 2)]


def write_plot(result: LRFindResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(result.lrs, result.losses)
    axes.axvline(result.suggestion, color="tab:red", linestyle="--", label=f"valley: {result.suggestion:.3g}")
    axes.set(xscale="log", xlabel="learning rate", ylabel="smoothed training loss", title="LR range test")
    axes.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


def _cycle(batches: Iterable):
    cached = list(batches)
    if not cached:
        raise ValueError("batches must not be empty")
    while True:
        yield from cached
