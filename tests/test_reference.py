"""Each alias against an independent float64 NumPy implementation of its paper's formula
(reference_numpy.py), driven by stochastic gradients: the gradient of a fixed quadratic at
the current parameters plus a fixed noise sequence. (The noise keeps the gradients away
from 0: with exact gradients the adaptive methods end up oscillating around the minimum,
where their normalized steps make the dynamics chaotic and 1-ulp rounding differences grow
exponentially.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optimlab.fused import engine

from helpers import record
from optimizer_cases import SAMPLES, ids

STEPS = 200
_rng = np.random.default_rng(7)
_Q, _ = np.linalg.qr(_rng.standard_normal((10, 10)))
A = _Q @ np.diag(np.linspace(1.0, 10.0, 10)) @ _Q.T
B = _rng.standard_normal(10)
X0 = _rng.standard_normal(10)
NOISE = _rng.standard_normal((STEPS + 1, 10))


def _grad(x, t):
    """Gradient of 0.5 x^T A x - b^T x, plus the t-th noise vector."""
    return A @ x - B + NOISE[t]


EXECUTIONS = {"foreach": {"foreach": True}, "for-loop": {"foreach": False}, "fused": {"fused": True}}


@pytest.mark.parametrize("path", list(EXECUTIONS))
@pytest.mark.parametrize(("case", "sample"), SAMPLES, ids=ids)
def test_matches_numpy_formula(case, sample, path):
    """Every path, the fused one with its default IEEE square roots (as NumPy's)."""
    # Two tensors (6 + 4 elements) in one group; the reference steps them as one vector.
    params = [torch.tensor(X0[:6].reshape(2, 3), requires_grad=True), torch.tensor(X0[6:], requires_grad=True)]
    if path == "fused" and not engine.available():
        pytest.skip("no C compiler for the fused path")
    optimizer = case.make(params, **EXECUTIONS[path], **sample)
    calls = engine.stats["calls"]
    hp = case.hyperparams(sample)
    x, state = X0.copy(), {}
    a, b = torch.tensor(A), torch.tensor(B)
    for t in range(1, STEPS + 1):
        flat = torch.cat([p.detach().reshape(-1) for p in params])
        grad = a @ flat - b + torch.tensor(NOISE[t])
        params[0].grad, params[1].grad = grad[:6].reshape(2, 3).clone(), grad[6:].clone()
        optimizer.step()
        x = case.reference(x, _grad(x, t), state, t, hp)
    if path == "fused":  # every step but for a lazily created first-step buffer
        assert engine.stats["calls"] - calls >= STEPS - 1, "the fused path did not run"
    ours = torch.cat([p.detach().reshape(-1) for p in params]).numpy()
    assert not np.allclose(x, X0), "the reference did not move"
    worst = float(np.max(np.abs(ours - x) / np.abs(x)))
    record(f"numpy formula ({path}): {case.name}", worst)
    np.testing.assert_allclose(ours, x, rtol=1e-10, atol=0)
