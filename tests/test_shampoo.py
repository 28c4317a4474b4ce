"""Shampoo against pytorch-optimizer's ScalableShampoo where the definitions agree (float64),
against torch.optim.AdamW where Shampoo is Adam (before start_preconditioning_step, tensors
without a preconditioned side, the grafted norm), and against the NumPy formula on the
shapes the registry does not reach; the registry runs the formula on test_reference's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import optimlab
import reference_numpy as ref
from helpers import MLP, assert_16_bit_run_within_two_ulps, assert_close, assert_follows_numpy_formula, record
from optimizer_cases import CASES_BY_NAME

pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
CASE = CASES_BY_NAME["shampoo"]
pytestmark = pytest.mark.usefixtures("float64")
STEPS = 200

# ScalableShampoo is ours with beta1 = 0 (it has no gradient EMA; its momentum is beta1's
# heavy-ball on the grafted step, 0 here), no bias corrections (its RMSProp grafting is our
# Adam grafting without them), one beta2 for the statistics and the grafting, and its
# eigendecomposition (use_svd) without its blocking and dimension merging. Its eps starts the
# statistics (eps I, decaying with beta2) where ours is added at the root: both negligible
# once the noise gradients make the statistics full rank, before preconditioning starts.
AGREEING = {"betas": (0.0, 0.99), "eps": 1e-30, "use_bias_correction": False}
SAMPLES = [
    {"lr": 0.01, "weight_decay": 0.01, "precondition_frequency": 5, "start_preconditioning_step": 10},
    {"lr": 0.01, "betas": (0.0, 0.9), "grafting_eps": 1e-6, "start_preconditioning_step": 4},
    {"lr": 0.01, "precondition_frequency": 3, "start_preconditioning_step": 6, "maximize": True},
]


def theirs(params, lr, betas, weight_decay=0.0, grafting_eps=1e-8, precondition_frequency=1,
           start_preconditioning_step=1, maximize=False):
    return pytorch_optimizer.ScalableShampoo(
        params, lr=lr, betas=betas, weight_decay=weight_decay, decoupled_weight_decay=True,
        start_preconditioning_step=start_preconditioning_step, preconditioning_compute_steps=precondition_frequency,
        graft_type=pytorch_optimizer.optimizer.utils.graft.LayerWiseGrafting.RMSPROP, diagonal_eps=grafting_eps,
        matrix_eps=1e-30, use_svd=True, shape_interpretation=False, block_size=1024, nesterov=False,
        maximize=maximize)


def noise_run(optimizers, params_lists, steps, seed=5):
    """Steps every optimizer on the same noisy gradients of |x|^2 / 2 (taken at the first list)."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        grads = [torch.randn(p.shape, generator=generator) + p.detach() for p in params_lists[0]]
        for params in params_lists:
            for p, g in zip(params, grads):
                p.grad = g.clone()
        for optimizer in optimizers:
            optimizer.step()


def parameters(shapes, seed=4):
    generator = torch.Generator().manual_seed(seed)
    start = [torch.randn(shape, generator=generator) for shape in shapes]
    return [torch.nn.Parameter(x.clone()) for x in start], [torch.nn.Parameter(x.clone()) for x in start]


@pytest.mark.parametrize("sample", SAMPLES, ids=str)
def test_matches_pytorch_optimizers_scalable_shampoo(sample):
    """Two matrices and a vector, STEPS steps of noise gradients, refreshes every
    precondition_frequency steps from start_preconditioning_step on."""
    options = {**AGREEING, **sample}
    ours, twins = parameters([(6, 4), (2, 6), (6,)])
    reference = {k: v for k, v in options.items() if k not in ("eps", "use_bias_correction")}
    noise_run([optimlab.Shampoo(ours, **options), theirs(twins, **reference)], [ours, twins], STEPS)
    worst = assert_close([p.detach() for p in ours], [p.detach() for p in twins], 1e-10, f"shampoo {sample}")
    record("pytorch-optimizer ScalableShampoo parity: shampoo", worst)


def test_is_adamw_before_preconditioning_and_without_preconditioned_sides():
    """Up to start_preconditioning_step - 1 every tensor steps as torch.optim.AdamW (betas,
    grafting_eps, decoupled decay); then the weights take another direction with AdamW's
    step norm (grafting), and the biases and a matrix whose sides both exceed
    max_preconditioner_dim stay AdamW's."""
    start = 20
    ours, twins = parameters([(6, 4), (2, 6), (6,), (12, 9)])
    options = {"lr": 0.01, "betas": (0.9, 0.99), "weight_decay": 0.05}
    shampoo = optimlab.Shampoo(ours, **options, grafting_eps=1e-6, start_preconditioning_step=start,
                               max_preconditioner_dim=8)
    adamw = torch.optim.AdamW(twins, **options, eps=1e-6)
    noise_run([shampoo, adamw], [ours, twins], start - 1)
    record("torch.optim.AdamW before preconditioning: shampoo",
           assert_close([p.detach() for p in ours], [p.detach() for p in twins], 1e-12, "before the start"))
    before = [p.detach().clone() for p in ours]
    noise_run([shampoo, adamw], [ours, twins], 1, seed=6)
    # The same history: the step at `start` has AdamW's norm (its decay removed), another direction.
    for p, q, x in zip(ours[:2], twins[:2], before):
        ours_step, adamw_step = p.detach() - x * (1 - 0.01 * 0.05), q.detach() - x * (1 - 0.01 * 0.05)
        assert torch.isclose(ours_step.norm(), adamw_step.norm(), rtol=1e-12)
        assert (ours_step - adamw_step).norm() > 0.1 * adamw_step.norm()
    noise_run([shampoo, adamw], [ours, twins], 20, seed=7)
    assert_close([p.detach() for p in ours[2:]], [p.detach() for p in twins[2:]], 1e-12, "unpreconditioned")
    assert set(shampoo.state[ours[3]]) == {"step", "exp_avg", "exp_avg_sq"}


def test_a_3d_tensor_a_wide_side_and_a_preconditioned_vector_follow_the_numpy_formula():
    """A 3x2x2 tensor as its 3x4 matrix with max_preconditioner_dim=3 (the 4-side keeps the
    identity) and a 3-vector with precondition_1d (exponent -1/2), with momentum."""
    rng = np.random.default_rng(3)
    params = [torch.tensor(rng.standard_normal(shape), requires_grad=True) for shape in ((3, 2, 2), (3,))]
    sample = {"lr": 0.01, "precondition_1d": True, "precondition_frequency": 3, "max_preconditioner_dim": 3,
              "momentum": 0.9, "weight_decay": 0.02}
    optimizer = optimlab.Shampoo(params, **sample)
    assert_follows_numpy_formula(optimizer, params, ref.shampoo, CASE.hyperparams(sample), 100, rng)
    one_side = {"step", "exp_avg", "exp_avg_sq", "left", "left_inverse_root", "momentum_buffer"}
    assert set(optimizer.state[params[0]]) == set(optimizer.state[params[1]]) == one_side
    assert optimizer.state[params[0]]["left"].shape == (3, 3)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_16_bit_parameters_step_in_float32_with_state_dtype(dtype):
    """With the group key ``state_dtype=torch.float32`` the buffers and the math are float32
    (LAPACK has no 16-bit eigh): given the same gradients, within two 16-bit ulps of a float32 run."""
    assert_16_bit_run_within_two_ulps(
        lambda groups: optimlab.Shampoo(groups, lr=0.05, precondition_frequency=3, eps=1e-6), dtype)


def test_trains_the_mlp():
    """Defaults but the learning rate: the MLP's loss falls."""
    model = MLP()
    optimizer = optimlab.Shampoo(model.parameters(), lr=0.01)
    losses = []
    for _ in range(100):
        optimizer.zero_grad()
        loss = model.loss()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
