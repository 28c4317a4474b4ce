"""2-D test functions: closed-form landscapes with a known minimum; they also yield trajectories."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch

from .base import Problem, ProblemSpec, Task


@dataclass(frozen=True)
class TestFunction:
    """A 2-D function with its start point, known minimum value and plotting window.

    ``f`` takes tensors and uses only their methods and operators: this module imports no torch
    until a task is built (``optimlab list`` reads the registry without it)."""

    name: str
    description: str
    f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    start: tuple[float, float]
    minimum: float
    minimizers: tuple[tuple[float, float], ...]
    bounds: tuple[float, float, float, float]  # xmin, xmax, ymin, ymax for plots
    target_gap: float
    steps: int


def _rosenbrock(x, y):
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def _beale(x, y):
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def _rastrigin(x, y):
    return 20 + x**2 - 10 * (2 * math.pi * x).cos() + y**2 - 10 * (2 * math.pi * y).cos()


_ANGLE = math.pi / 6


def _ill_conditioned(x, y):
    # 0.5 * (u^2 + 100 v^2) in coordinates rotated by 30 degrees: condition number 100
    u = math.cos(_ANGLE) * x + math.sin(_ANGLE) * y
    v = -math.sin(_ANGLE) * x + math.cos(_ANGLE) * y
    return 0.5 * (u**2 + 100 * v**2)


def _saddle(x, y):
    # saddle point at the origin, minima f = -1 at (0, +-sqrt(2))
    return x**2 - y**2 + y**4 / 4


TEST_FUNCTIONS = (
    TestFunction("rosenbrock", "Rosenbrock's curved valley, minimum 0 at (1, 1)",
                 _rosenbrock, (-1.2, 1.0), 0.0, ((1.0, 1.0),), (-2.0, 2.0, -1.0, 3.0), 1e-3, 1000),
    TestFunction("beale", "Beale's function, flat plateaus and sharp ridges, minimum 0 at (3, 0.5)",
                 _beale, (1.0, 1.4), 0.0, ((3.0, 0.5),), (-1.0, 4.0, -1.5, 2.0), 1e-3, 1000),
    TestFunction("rastrigin", "Rastrigin egg-crate: start just inside the global basin; big steps fall into a worse local minimum",
                 _rastrigin, (0.45, -0.4), 0.0, ((0.0, 0.0),), (-1.5, 1.5, -1.5, 1.5), 0.1, 300),
    TestFunction("ill_conditioned", "Rotated quadratic with condition number 100, minimum 0 at the origin",
                 _ill_conditioned, (1.5, 1.0), 0.0, ((0.0, 0.0),), (-2.0, 2.0, -2.0, 2.0), 1e-4, 500),
    TestFunction("saddle", "Start next to a saddle point; escape to a minimum -1 at (0, +-1.41)",
                 _saddle, (1.0, 1e-3), -1.0, ((0.0, math.sqrt(2)), (0.0, -math.sqrt(2))), (-1.5, 1.5, -2.0, 2.0), 1e-3, 300),
)


def _start(fn: TestFunction, seed: int) -> torch.Tensor:
    """The declared start, jittered by 1 % per seed so seeds differ but stay comparable."""
    import torch

    jitter = torch.randn(2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return torch.tensor(fn.start, dtype=torch.float64) * (1 + 0.01 * jitter)


def _builder(fn: TestFunction) -> Callable[[int, str, bool], Task]:
    def build(seed: int, split: str, full_batch: bool = False) -> Task:  # no data: every step is full-batch
        import torch

        point = torch.nn.Module()
        point.xy = torch.nn.Parameter(_start(fn, seed))

        def value() -> torch.Tensor:
            return fn.f(point.xy[0], point.xy[1])

        def evaluate() -> float:
            with torch.no_grad():
                return float(value())

        return Task(model=point, train_loss=lambda step: value(), evaluate=evaluate,
                    position=lambda: point.xy.detach().tolist())

    return build


def _problem(fn: TestFunction) -> Problem:
    spec = ProblemSpec(name=fn.name, description=fn.description, metric="f(x, y)",
                       higher_is_better=False, target=fn.minimum + fn.target_gap,
                       steps=fn.steps, batch_size=None, eval_every=max(fn.steps // 50, 1))
    return Problem(spec=spec, build=_builder(fn))


PROBLEMS = tuple(_problem(fn) for fn in TEST_FUNCTIONS)
FUNCTIONS = {fn.name: fn for fn in TEST_FUNCTIONS}
