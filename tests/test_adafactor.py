"""Adafactor's contract beyond the registry (whose models have 2-D and 1-D parameters only):
3-D and 0-D parameters against torch.optim.Adafactor and the NumPy formula, the size of
the factored state, and the rejection of complex parameters."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import optimlab
import reference_numpy as ref
from helpers import MLP, PARITY_RTOL, PARITY_STEPS, assert_close, record, train
from optimizer_cases import CASES_BY_NAME, ids

pytestmark = pytest.mark.usefixtures("float64")

CASE = CASES_BY_NAME["adafactor"]
# A batch of two matrices (factored over its last two dims), a matrix, a vector, a scalar.
SHAPES = [(2, 3, 4), (3, 5), (4,), ()]


def _noise(t):
    rng = np.random.default_rng(t)
    return [np.asarray(0.1 * rng.standard_normal(shape)) for shape in SHAPES]


def _gradient(x, noise):
    """Of sum((x - 1)^4) / 4, plus noise: x is a NumPy array or a tensor."""
    return (x - 1) ** 3 + noise


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "for-loop"])
@pytest.mark.parametrize("sample", CASE.samples, ids=ids)
def test_3d_and_0d_parameters_match_torch_and_the_numpy_formula(sample, foreach):
    xs = _noise(0)
    ours = [torch.tensor(x, requires_grad=True) for x in xs]
    theirs = [torch.tensor(x, requires_grad=True) for x in xs]
    optimizer = CASE.make(ours, foreach=foreach, **sample)
    twin = CASE.make_torch(theirs, foreach=foreach, **sample)
    hp, states = CASE.hyperparams(sample), [{} for _ in xs]
    for t in range(1, PARITY_STEPS + 1):
        noise = _noise(t)
        for params in (ours, theirs):
            for p, n in zip(params, noise):
                p.grad = _gradient(p.detach(), torch.from_numpy(n))
        optimizer.step()
        twin.step()
        xs = [ref.adafactor(x, _gradient(x, n), state, t, hp) for x, n, state in zip(xs, noise, states)]
    ours = [p.detach() for p in ours]
    worst = assert_close(ours, [q.detach() for q in theirs], PARITY_RTOL, "vs torch")
    record("Adafactor 3-D and 0-D: vs torch", worst)
    worst = assert_close(ours, [torch.from_numpy(np.asarray(x)) for x in xs], 1e-10, "vs NumPy")
    record("Adafactor 3-D and 0-D: vs numpy formula", worst)
    assert not np.allclose(xs[0], _noise(0)[0]), "the parameters did not move"


def test_state_is_row_and_column_factors_as_torch_keeps():
    """A batch of 8 matrices of 300 x 200 keeps 8 x (300 + 200) numbers, not 8 x 300 x 200;
    a vector keeps its own size; the buffers have torch.optim.Adafactor's names and shapes."""
    ours = [torch.zeros(8, 300, 200, requires_grad=True), torch.zeros(50, requires_grad=True)]
    theirs = [p.detach().clone().requires_grad_() for p in ours]
    for optimizer, params in ((optimlab.Adafactor(ours), ours), (torch.optim.Adafactor(theirs), theirs)):
        for p in params:
            p.grad = torch.ones_like(p)
        optimizer.step()
        states = [{k: v for k, v in optimizer.state[p].items() if k != "step"} for p in params]
        assert {k: v.shape for k, v in states[0].items()} == {"row_var": (8, 300, 1), "col_var": (8, 1, 200)}
        assert sum(v.numel() for v in states[0].values()) == 8 * (300 + 200)
        assert {k: v.shape for k, v in states[1].items()} == {"variance": (50,)}


def test_complex_parameters_are_rejected_before_anything_changes():
    """torch.optim.Adafactor raises RuntimeError at its first step; optimlab.Adafactor raises
    ValueError naming the dtype in the constructor and in add_param_group, changing nothing."""
    z = torch.nn.Parameter(torch.zeros(3, 4, dtype=torch.complex128))
    z.grad = torch.ones_like(z)
    with pytest.raises(RuntimeError, match="does not support complex"):
        torch.optim.Adafactor([z]).step()
    with pytest.raises(ValueError, match=r"params: Adafactor takes real parameters only, got one of dtype torch.complex128"):
        optimlab.Adafactor([torch.nn.Parameter(torch.zeros(2)), z])
    model = MLP()
    optimizer = optimlab.Adafactor(model.first.parameters())
    train(model, optimizer, 3)
    state = copy.deepcopy(optimizer.state_dict())
    with pytest.raises(ValueError, match=r"params: Adafactor takes real parameters only"):
        optimizer.add_param_group({"params": (p for p in [model.second.weight, z])})
    assert len(optimizer.param_groups) == 1
    after = optimizer.state_dict()["state"]
    assert all(torch.equal(after[i][k], v) for i in state["state"] for k, v in state["state"][i].items()
               if torch.is_tensor(v))
    assert not torch.equal(model.first.weight.detach(), MLP().first.weight.detach())
