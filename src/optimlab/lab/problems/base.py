"""What a problem is: a named, seeded recipe for a model, its training loss and its held-out metric."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch

SPLITS = ("validation", "test")
DIVERGENCE_FACTOR = 100.0


@dataclass
class Task:
    """One built instance of a problem: the parameters to train and how to train and judge them.

    ``train_loss(step)`` returns the minibatch training loss for that step (1-based);
    ``evaluate()`` returns the held-out metric; ``position()`` returns the current 2-D point
    for problems that draw trajectories, else it is None.
    """

    model: torch.nn.Module
    train_loss: Callable[[int], torch.Tensor]
    evaluate: Callable[[], float]
    position: Callable[[], list[float]] | None = None


@dataclass(frozen=True)
class ProblemSpec:
    """The declared, storable part of a problem (everything but the code that builds it)."""

    name: str
    description: str
    metric: str
    higher_is_better: bool
    target: float | None
    steps: int
    batch_size: int | None
    eval_every: int
    #: a run has diverged once its training loss exceeds this many times max(|initial loss|, 1)
    divergence_factor: float = DIVERGENCE_FACTOR
    #: examples per full-batch ("gd") step: the whole training set, or a fixed subset this large
    full_batch_size: int | None = None

    def divergence_bound(self, initial_loss: float) -> float:
        """The training loss above which a run counts as diverged."""
        return self.divergence_factor * max(abs(initial_loss), 1.0)

    def reached(self, value: float) -> bool:
        """Whether a metric value meets the target."""
        if self.target is None or not math.isfinite(value):
            return False
        return value >= self.target if self.higher_is_better else value <= self.target

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ProblemSpec":
        # stores written before a field existed take its default
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


@dataclass(frozen=True)
class Problem:
    """A registry entry: the spec plus ``build(seed, split, full_batch) -> Task``.

    ``split`` is "validation" (train on the training part, judge on a validation part carved
    from it: used while tuning) or "test" (train on all training data, judge on the test set:
    used for the final seeded reruns). ``full_batch`` makes every step use the whole training
    set (up to ``spec.full_batch_size`` examples) instead of a minibatch: gradient descent as
    opposed to stochastic gradient descent. Building is deterministic given the seed.
    """

    spec: ProblemSpec
    build: Callable[[int, str, bool], Task]

    @property
    def name(self) -> str:
        return self.spec.name
