"""Each alias reaches the known minimizer of an ill-conditioned quadratic (10-D, condition
number 100) and of Rosenbrock within its step budget (registry's ``quadratic`` and
``rosenbrock``: (kwargs, steps, tolerance on the distance to the minimizer)).
``pytest -s`` prints the table of budgets and the distances reached."""

from __future__ import annotations

import math

import pytest
import torch

from optimizer_cases import CASES, ids

pytestmark = pytest.mark.usefixtures("float64")

_generator = torch.Generator().manual_seed(11)
_Q, _ = torch.linalg.qr(torch.randn(10, 10, generator=_generator, dtype=torch.float64))
A = _Q @ torch.diag(torch.logspace(0, 2, 10, dtype=torch.float64)) @ _Q.T  # eigenvalues 1 .. 100
X_STAR_QUADRATIC = torch.linspace(-1, 1, 10, dtype=torch.float64)


def quadratic(x):
    d = x - X_STAR_QUADRATIC
    return 0.5 * d @ A @ d


def rosenbrock(x):
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


PROBLEMS = {
    "quadratic": (quadratic, torch.zeros(10, dtype=torch.float64), X_STAR_QUADRATIC),
    "rosenbrock": (rosenbrock, torch.tensor([-1.2, 1.0], dtype=torch.float64), torch.ones(2, dtype=torch.float64)),
}


def test_quadratic_is_ill_conditioned():
    eigenvalues = torch.linalg.eigvalsh(A)
    assert math.isclose((eigenvalues.max() / eigenvalues.min()).item(), 100.0, rel_tol=1e-9)


@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.parametrize("case", CASES, ids=ids)
def test_reaches_minimum(case, problem):
    f, start, minimizer = PROBLEMS[problem]
    kwargs, steps, tolerance = getattr(case, problem)
    # A matrices-only case gets the coordinates as a 2-row matrix (2 x 5 and 2 x 1).
    x = (start.reshape(2, -1) if case.matrices_only else start).clone().requires_grad_()
    optimizer = case.make([x], **kwargs)

    def closure():
        optimizer.zero_grad()
        loss = f(x.reshape(-1))
        loss.backward()
        return loss

    for _ in range(steps):
        optimizer.step(closure)
    if case.train_eval:  # the point to evaluate: Schedule-Free's average
        optimizer.eval()
    distance = torch.linalg.vector_norm(x.detach().reshape(-1) - minimizer).item()
    print(f"\n{case.name:<17} {problem:<10} {str(kwargs):<40} {steps:>6} steps: |x - x*| = {distance:.2e} (tol {tolerance:.0e})")
    assert distance < tolerance
