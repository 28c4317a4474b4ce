r"""Learning-rate schedules: picklable functions from the 0-based step count to a rate.

Pass one as ``lr=`` to any optimlab optimizer (``Adam(ps, lr=warmup_cosine(...))``); the
step count is that of the parameter's state, so resuming from a checkpoint resumes the
schedule. (With a schedule as ``lr``, use it instead of a torch lr_scheduler, not with one.)
The schedules are plain data registered with ``torch.serialization.add_safe_globals``, so
a checkpoint holding one loads with ``torch.load(weights_only=True)`` (Lightning's resume).

For trainers that attach a torch lr_scheduler of their own (Hugging Face's Trainer,
Lightning's scheduler dicts), `ScheduleLR` is any schedule as a torch
``LRScheduler``: ``ScheduleLR(optimizer, warmup_cosine(...))``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from . import checks


class Schedule:
    """Base class: ``schedule(step) -> learning rate``."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError


@dataclass(frozen=True)
class constant(Schedule):
    r""":math:`\eta_t = \eta`."""

    value: float

    def __post_init__(self):
        checks.non_negative("value", self.value)

    def __call__(self, step):
        return self.value


@dataclass(frozen=True)
class step_decay(Schedule):
    r""":math:`\eta_t = \eta\,\gamma^{\lfloor t / s \rfloor}` (torch's StepLR)."""

    init_value: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self):
        checks.non_negative("init_value", self.init_value)
        checks.positive("step_size", self.step_size)
        checks.non_negative("gamma", self.gamma)

    def __call__(self, step):
        return self.init_value * self.gamma ** (step // self.step_size)


@dataclass(frozen=True)
class exponential_decay(Schedule):
    r""":math:`\eta_t = \eta\,\gamma^{t}` (torch's ExponentialLR)."""

    init_value: float
    gamma: float

    def __post_init__(self):
        checks.non_negative("init_value", self.init_value)
        checks.non_negative("gamma", self.gamma)

    def __call__(self, step):
        return self.init_value * self.gamma**step


@dataclass(frozen=True)
class cosine_decay(Schedule):
    r""":math:`\eta_t = \eta_{min} + \tfrac12(\eta - \eta_{min})(1 + \cos(\pi \min(t, T)/T))`
    (Loshchilov & Hutter 2017, SGDR; torch's CosineAnnealingLR without restarts)."""

    init_value: float
    decay_steps: int
    end_value: float = 0.0

    def __post_init__(self):
        checks.non_negative("init_value", self.init_value)
        checks.positive("decay_steps", self.decay_steps)
        checks.non_negative("end_value", self.end_value)

    def __call__(self, step):
        progress = min(step, self.decay_steps) / self.decay_steps
        return self.end_value + 0.5 * (self.init_value - self.end_value) * (1 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class linear(Schedule):
    r"""Linear from ``init_value`` to ``end_value`` over ``steps`` steps, then constant."""

    init_value: float
    end_value: float
    steps: int

    def __post_init__(self):
        checks.non_negative("init_value", self.init_value)
        checks.non_negative("end_value", self.end_value)
        checks.positive("steps", self.steps)

    def __call__(self, step):
        progress = min(step, self.steps) / self.steps
        return self.init_value + (self.end_value - self.init_value) * progress


@dataclass(frozen=True)
class join(Schedule):
    """Schedule ``i`` runs from ``boundaries[i-1]`` on, its own step count restarted at 0."""

    schedules: Sequence[Schedule]
    boundaries: Sequence[int]

    def __post_init__(self):
        if len(self.boundaries) != len(self.schedules) - 1:
            raise ValueError(
                f"boundaries must have one entry fewer than schedules ({len(self.schedules) - 1}), "
                f"got {len(self.boundaries)}"
            )
        if list(self.boundaries) != sorted(self.boundaries):
            raise ValueError(f"boundaries must be increasing, got {list(self.boundaries)}")

    def __call__(self, step):
        index = bisect.bisect_right(self.boundaries, step)
        start = self.boundaries[index - 1] if index else 0
        return self.schedules[index](step - start)


def warmup_cosine(peak_value: float, warmup_steps: int, decay_steps: int, init_value: float = 0.0, end_value: float = 0.0) -> join:
    """Linear warm-up from ``init_value`` to ``peak_value``, then cosine decay to
    ``end_value`` over the remaining ``decay_steps - warmup_steps`` steps."""
    if decay_steps <= warmup_steps:
        raise ValueError(f"decay_steps must be > warmup_steps ({warmup_steps}), got {decay_steps}")
    return join(
        [linear(init_value, peak_value, max(warmup_steps, 1)), cosine_decay(peak_value, decay_steps - warmup_steps, end_value)],
        [warmup_steps],
    )


@dataclass(frozen=True)
class one_cycle(Schedule):
    r"""Smith & Topin's one-cycle policy with cosine annealing, as torch's OneCycleLR
    (two phases): from ``max_value/div_factor`` up to ``max_value`` until step
    ``pct_start*total_steps - 1``, then down to ``max_value/div_factor/final_div_factor``
    at step ``total_steps - 1``."""

    max_value: float
    total_steps: int
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4

    def __post_init__(self):
        checks.non_negative("max_value", self.max_value)
        checks.positive("total_steps", self.total_steps)
        checks.unit_interval("pct_start", self.pct_start)
        checks.positive("div_factor", self.div_factor)
        checks.positive("final_div_factor", self.final_div_factor)

    def __call__(self, step):
        initial = self.max_value / self.div_factor
        peak_step = float(self.pct_start * self.total_steps) - 1
        if step <= peak_step:
            return _anneal_cos(initial, self.max_value, step / peak_step)
        final = initial / self.final_div_factor
        return _anneal_cos(self.max_value, final, (step - peak_step) / (self.total_steps - 1 - peak_step))


def _anneal_cos(start: float, end: float, progress: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * progress) + 1)


class ScheduleLR(torch.optim.lr_scheduler.LRScheduler):
    """A schedule as a torch lr_scheduler: after ``n`` calls of ``step()``, each param
    group's ``lr`` is ``schedule(n)`` (``schedule`` is one for all groups or a list, one
    per group). Without ``schedule``, it takes over the groups' own schedules given as
    ``lr``, leaving numbers there, as torch code expects (``lr * factor``, logging), and
    the same learning rates step by step. Works with any torch.optim optimizer.
    """

    def __init__(self, optimizer, schedule: Schedule | Sequence[Schedule] | None = None, last_epoch: int = -1):
        groups = optimizer.param_groups
        if schedule is None:
            schedule = [group["lr"] for group in groups]
            missing = [i for i, s in enumerate(schedule) if not isinstance(s, Schedule)]
            if missing:
                raise ValueError(
                    f"schedule must be given: param_groups[{missing[0]}]['lr'] is {schedule[missing[0]]!r}, "
                    "not an optimlab schedule"
                )
        schedules = list(schedule) if isinstance(schedule, (list, tuple)) else [schedule] * len(groups)
        if len(schedules) != len(groups) or not all(callable(s) for s in schedules):
            raise ValueError(
                f"schedule must be one schedule or a list of {len(groups)} (one per param group), got {schedule!r}"
            )
        self.schedules = schedules
        for group, each in zip(groups, schedules):
            if isinstance(group["lr"], Schedule):
                group["lr"] = each(0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [float(each(self.last_epoch)) for each in self.schedules]


# Plain data: a checkpoint holding them is safe to load with weights_only=True.
torch.serialization.add_safe_globals(
    [constant, step_decay, exponential_decay, cosine_decay, linear, join, one_cycle]
)
