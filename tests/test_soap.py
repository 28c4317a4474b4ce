"""SOAP against pytorch-optimizer's (the authors' algorithm, float64) and, where LAPACK's
choice of a null-space basis does not enter, against the NumPy formula; the registry runs
the NumPy formula on test_reference's parameters."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import optimlab
import reference_numpy as ref
from helpers import (MLP, PARITY_STEPS, assert_16_bit_run_within_two_ulps, assert_close,
    assert_follows_numpy_formula, params_of, record, train)
from optimizer_cases import CASES_BY_NAME

pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
CASE = CASES_BY_NAME["soap"]
pytestmark = pytest.mark.usefixtures("float64")

# Their QR runs in float32 whatever the dtype (ours in the parameter's): without refreshes
# (a frequency beyond the run) the two agree to float64 rounding.
NO_REFRESH = {"precondition_frequency": 10 * PARITY_STEPS, "weight_decay": 0.0}
#: 3.4e-8 seen (`test_matches_pytorch_optimizer`).
NULL_SPACE_RTOL = 1e-7
SAMPLES = [
    {"lr": 0.01},
    {"lr": 0.01, "betas": (0.9, 0.99), "shampoo_beta": 0.8, "eps": 1e-6},
    {"lr": 0.01, "max_precondition_dim": 4, "precondition_1d": True},
    {"lr": 0.01, "maximize": True},
]


def theirs(params, max_precondition_dim=10000, **kwargs):
    return pytorch_optimizer.SOAP(params, max_precondition_dim=max_precondition_dim, **kwargs)


@pytest.mark.parametrize("sample", SAMPLES, ids=str)
def test_matches_pytorch_optimizer(sample):
    """The MLP's 6x4 and 2x6 weights (null spaces of 2 and 4 dimensions at the first step: the
    same torch.linalg.eigh gives both the same bases) and its biases, PARITY_STEPS steps.
    Within NULL_SPACE_RTOL: the first gradients lie in the range of L = G G^T, so their
    rotated components along the null space are rounding noise, which Adam's division by
    sqrt(V) + eps turns into steps of ~1e-9; our rotated first moment and their rotation of
    the original one round that noise differently (the NumPy formula, on full-rank
    statistics, agrees to 1e-13)."""
    model = MLP()
    twin = copy.deepcopy(model)
    maximize = sample.get("maximize", False)
    train(model, optimlab.SOAP(model.parameters(), **NO_REFRESH, **sample), PARITY_STEPS, maximize)
    train(twin, theirs(twin.parameters(), **NO_REFRESH, **sample), PARITY_STEPS, maximize)
    worst = assert_close(params_of(model), params_of(twin), NULL_SPACE_RTOL, f"soap {sample}")
    record("pytorch-optimizer parity: soap", worst)
    assert not torch.equal(params_of(model)[0], params_of(MLP())[0])


def test_refreshed_bases_match_pytorch_optimizer_to_its_float32_qr():
    """Refreshes every 5 steps, on noise gradients (well-conditioned statistics: on the MLP's
    full-batch loss successive gradients are nearly parallel, L and R nearly singular, and the
    power iteration turns their float32 QR's rounding into other bases altogether)."""
    generator = torch.Generator().manual_seed(5)
    ours = [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in ((6, 4), (2, 6), (6,))]
    twins = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    options = {"lr": 0.01, "precondition_frequency": 5, "weight_decay": 0.0}
    optimizers = [optimlab.SOAP(ours, **options), theirs(twins, **options)]
    for _ in range(100):
        grads = [torch.randn(p.shape, generator=generator) + p.detach() for p in ours]
        for p, q, g in zip(ours, twins, grads):
            p.grad, q.grad = g.clone(), g.clone()
        for optimizer in optimizers:
            optimizer.step()
    worst = assert_close([p.detach() for p in ours], [p.detach() for p in twins], 1e-5, "soap with refreshes")
    record("pytorch-optimizer parity (its QR in float32): soap", worst)


def test_defaults_are_pytorch_optimizers():
    ours = optimlab.SOAP(MLP().parameters()).param_groups[0]
    reference = theirs(MLP().parameters()).param_groups[0]
    for key in ("lr", "betas", "shampoo_beta", "weight_decay", "precondition_frequency", "precondition_1d", "eps"):
        assert ours[key] == reference[key], key
    assert ours["max_precondition_dim"] == reference["max_precondition_dim"] == 10000


def test_a_preconditioned_vector_and_a_3d_tensor_follow_the_numpy_formula():
    """A 2-vector with precondition_1d (a 1-D null space at the first step: unique up to a
    sign, which the step does not depend on) and a 3x2x2 tensor as its 3x4 matrix."""
    rng = np.random.default_rng(3)
    params = [torch.tensor(rng.standard_normal(shape), requires_grad=True) for shape in ((2,), (3, 2, 2))]
    sample = {"lr": 0.01, "precondition_1d": True, "precondition_frequency": 3, "weight_decay": 0.02}
    optimizer = optimlab.SOAP(params, **sample)
    assert_follows_numpy_formula(optimizer, params, ref.soap, CASE.hyperparams(sample), 60, rng)
    assert set(optimizer.state[params[0]]) == {"step", "rotated_exp_avg", "exp_avg_sq", "left", "left_basis"}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_16_bit_parameters_step_in_float32_with_state_dtype(dtype):
    """With the group key ``state_dtype=torch.float32`` the buffers and the math are float32
    (LAPACK has no 16-bit eigh or QR): given the same gradients, within two 16-bit ulps of a
    float32 run."""
    assert_16_bit_run_within_two_ulps(lambda groups: optimlab.SOAP(groups, lr=0.01, precondition_frequency=3), dtype)