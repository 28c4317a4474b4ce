"""Each alias against an independent float64 NumPy implementation of its paper's formula
(reference_numpy.py), driven by stochastic gradients: the gradient of a fixed quadratic at
the current parameters plus a fixed noise sequence. (The noise keeps the gradients away
from 0: with exact gradients the adaptive methods end up oscillating around the minimum,
where their normalized steps make the dynamics chaotic and 1-ulp rounding differences grow
exponentially.)"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from optimlab.fused import engine

from helpers import record
from optimizer_cases import ALL_SAMPLES, ids

STEPS = 200
_rng = np.random.default_rng(7)
_Q, _ = np.linalg.qr(_rng.standard_normal((10, 10)))
A = _Q @ np.diag(np.linspace(1.0, 10.0, 10)) @ _Q.T
B = _rng.standard_normal(10)
X0 = _rng.standard_normal(10)
NOISE = _rng.standard_normal((STEPS + 1, 10))
SHAPES = [(2, 3), (4,)]
MATRIX_SHAPES = [(2, 3), (4, 1)]  # for a matrices-only case: a wide and a tall one (Muon transposes it)


def _grad(x, t):
    """Gradient of 0.5 x^T A x - b^T x, plus the t-th noise vector."""
    return A @ x - B + NOISE[t]


EXECUTIONS = {"foreach": {"foreach": True}, "for-loop": {"foreach": False}, "fused": {"fused": True}}


@pytest.mark.parametrize("path", list(EXECUTIONS))
@pytest.mark.parametrize(("case", "sample"), ALL_SAMPLES, ids=ids)
def test_matches_numpy_formula(case, sample, path):
    """Every path, the fused one with its default IEEE square roots (as NumPy's)."""
    # Two tensors (6 + 4 elements) in one group; the reference steps each with its own state.
    if case.reference is None:
        pytest.skip(f"{case.name} has no NumPy formula the registry can run (its Case says why)")
    shapes = MATRIX_SHAPES if case.matrices_only else SHAPES
    xs = [part.reshape(shape) for part, shape in zip(np.split(X0, [6]), shapes)]
    params = [torch.tensor(x, requires_grad=True) for x in xs]
    if path == "fused" and not engine.available():
        pytest.skip("no C compiler for the fused path")
    if path == "fused" and "fused" not in inspect.signature(case.cls).parameters:
        pytest.skip(f"{case.cls.__name__} takes no fused option (its chain has no fused kernel)")
    sample = {**case.reference_preset, **sample}
    if path == "fused" and not case.fuses(sample):  # a chain that cannot fuse: refused
        with pytest.raises(ValueError, match="fused=True is not supported for this optimizer"):
            case.make(params, **EXECUTIONS[path], **sample)
        return
    optimizer = case.make(params, **EXECUTIONS[path], **sample)
    calls = engine.stats["calls"]
    hp = case.hyperparams(sample)
    states = [{} for _ in xs]
    a, b = torch.tensor(A), torch.tensor(B)
    for t in range(1, STEPS + 1):
        flat = torch.cat([p.detach().reshape(-1) for p in params])
        grad = a @ flat - b + torch.tensor(NOISE[t])
        for p, g in zip(params, grad.split([6, 4])):
            p.grad = g.reshape(p.shape).clone()
        optimizer.step()
        gs = [g.reshape(x.shape) for x, g in zip(xs, np.split(_grad(np.concatenate([x.reshape(-1) for x in xs]), t), [6]))]
        if case.group_reference:
            xs = case.reference(xs, gs, states[0], t, hp)
        else:
            xs = [case.reference(x, g, state, t, hp) for x, g, state in zip(xs, gs, states)]
    if path == "fused":  # every step but for a lazily created first-step buffer
        assert engine.stats["calls"] - calls >= STEPS - 1, "the fused path did not run"
    _assert_params_equal(params, xs, f"numpy formula ({path}): {case.name}")
    if case.train_eval:  # and the point eval() sets: Schedule-Free's average x
        optimizer.eval()
        _assert_params_equal(params, [state["x"] for state in states], f"numpy formula ({path}, eval): {case.name}")


def _assert_params_equal(params, xs, what):
    x = np.concatenate([x.reshape(-1) for x in xs])
    ours = torch.cat([p.detach().reshape(-1) for p in params]).numpy()
    assert not np.allclose(x, X0), "the reference did not move"
    worst = float(np.max(np.abs(ours - x) / np.abs(x)))
    record(what, worst)
    np.testing.assert_allclose(ours, x, rtol=1e-10, atol=0)
