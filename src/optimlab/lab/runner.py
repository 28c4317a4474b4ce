"""One training run, measured: curves, time and steps to target, step time, memory, divergence."""

from __future__ import annotations

import math
import random
import resource
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from .modes import evaluating, training
from .optimizers import Candidate, from_catalog
from .problems import SPLITS, Problem


@dataclass
class RunRecord:
    """Everything measured in one run.

    ``diverged_at`` is the first step whose training loss was non-finite or above the problem's
    divergence bound, or whose metric was non-finite; such a run is a failure and has no final
    metric. Times exclude evaluation and step 1 (warm-up: state allocation, kernel caching and
    the FLOP count). ``model_flops`` and ``optimizer_flops`` are the matrix-product FLOPs of
    step 1's forward and backward pass and of its optimizer step: a machine-independent cost.
    """

    problem: str
    optimizer: str
    hparams: dict[str, float]
    seed: int
    split: str
    steps: list[int] = field(default_factory=list)  # steps at which the curves were recorded
    train_loss: list[float] = field(default_factory=list)  # mean training loss since the previous point
    metric: list[float] = field(default_factory=list)  # held-out metric at those steps
    steps_to_target: int | None = None
    time_to_target: float | None = None
    train_time: float = 0.0
    mean_step_time: float = 0.0
    state_mb: float = 0.0  # optimizer state, megabytes
    peak_rss_mb: float = 0.0  # peak resident memory of the process so far, megabytes
    diverged_at: int | None = None
    initial_loss: float | None = None
    model_flops: int = 0
    optimizer_flops: int = 0
    trajectory: list[list[float]] | None = None  # 2-D problems: the point after every step

    @property
    def failed(self) -> bool:
        return self.diverged_at is not None

    @property
    def final_metric(self) -> float:
        return math.nan if self.failed or not self.metric else self.metric[-1]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunRecord":
        return cls(**{key: value for key, value in data.items() if key in cls.__dataclass_fields__})


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _state_megabytes(optimizer: torch.optim.Optimizer) -> float:
    tensors = [v for state in optimizer.state.values() for v in state.values() if isinstance(v, torch.Tensor)]
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def sparse_embeddings(model: torch.nn.Module) -> None:
    """Let embedding tables send sparse gradients (only the rows a batch touched), as one
    configures them for an optimizer that takes sparse gradients (SGD, Adagrad). The math
    is the dense math; the step only visits the touched rows."""
    for module in model.modules():
        if isinstance(module, torch.nn.Embedding):
            module.sparse = True


def run(problem: Problem, candidate: Candidate | str, hparams: dict[str, float], seed: int, split: str) -> RunRecord:
    """Train ``problem`` with ``candidate.make(params, hparams)`` (a catalog name is
    `from_catalog(name)`) for its step budget.

    An optimizer with train and eval modes (Schedule-Free) steps in train mode and is
    evaluated in eval mode (`modes`). A non-finite loss or metric, or a training loss above ``spec.divergence_bound`` of the
    initial loss, ends the run and is recorded in ``diverged_at``; it is not raised.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if isinstance(candidate, str):
        candidate = from_catalog(candidate)
    seed_everything(seed)
    spec = problem.spec
    task = problem.build(seed, split, candidate.full_batch)
    opt = training(candidate.make(task.model.parameters(), hparams))
    if getattr(opt, "transform", None) is not None and opt.transform.supports_sparse:
        sparse_embeddings(task.model)
    record = RunRecord(problem=spec.name, optimizer=candidate.label, hparams=dict(hparams), seed=seed, split=split,
                       trajectory=[task.position()] if task.position else None)
    bound = math.inf
    loss_sum, loss_count = 0.0, 0
    for step in range(1, spec.steps + 1):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        if step == 1:
            loss_value = _first_step(task, opt, record)
            bound = spec.divergence_bound(loss_value) if math.isfinite(loss_value) else math.inf
        else:
            loss = task.train_loss(step)
            loss.backward()
            opt.step()
            loss_value = loss.item()
            record.train_time += time.perf_counter() - start
        if task.position:
            record.trajectory.append(task.position())
        if not math.isfinite(loss_value) or loss_value > bound:
            record.diverged_at = step
            break
        loss_sum, loss_count = loss_sum + loss_value, loss_count + 1
        if step % spec.eval_every and step != spec.steps:
            continue
        with evaluating(opt):  # Schedule-Free: the metric at the average x, not at y
            value = task.evaluate()
        if not math.isfinite(value):
            record.diverged_at = step
            break
        record.steps.append(step)
        record.train_loss.append(loss_sum / loss_count)
        record.metric.append(value)
        loss_sum, loss_count = 0.0, 0
        if record.steps_to_target is None and spec.reached(value):
            record.steps_to_target, record.time_to_target = step, record.train_time
    timed = (record.diverged_at or spec.steps) - 1
    record.mean_step_time = record.train_time / timed if timed else 0.0
    record.state_mb = _state_megabytes(opt)
    record.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return record


def _first_step(task, opt: torch.optim.Optimizer, record: RunRecord) -> float:
    """Step 1, with the FLOPs of its training pass and of its optimizer step counted."""
    with FlopCounterMode(display=False) as counter:
        loss = task.train_loss(1)
        loss.backward()
    record.model_flops = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        opt.step()
    record.optimizer_flops = counter.get_total_flops()
    record.initial_loss = loss.item()
    return record.initial_loss
