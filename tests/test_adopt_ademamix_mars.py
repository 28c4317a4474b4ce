"""ADOPT, AdEMAMix and MARS against pytorch-optimizer's (float64, every registry sample and
every execution path), where the definitions differ made to agree as docs/algorithms.md
writes down; the NumPy formulas (the papers') are test_reference's."""

from __future__ import annotations

import copy

import pytest
import torch

from optimlab.transforms.adopt import fourth_root

from helpers import MLP, PARITY_RTOL, PARITY_STEPS, assert_close, params_of, record
from optimizer_cases import CASES_BY_NAME, ids

pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
EXECUTIONS = {"foreach": {"foreach": True}, "for-loop": {"foreach": False}, "fused": {"fused": True}}
#: MARS's c_t clipped to norm 1 in the first steps (the MLP's plain loss keeps it under 1).
MARS_LOSS_SCALE = 30.0
#: The kernel sums c_t's norm in its own order (bit-exact mode takes torch's roots and
#: global norm, not per-tensor norms): a last-bit difference per step, which the 200
#: clipped steps grow to 2.3e-10 on an AVX-512 AMD CPU (to 7e-14 on an Intel one).
FUSED_RTOL = {"mars": 1e-9}


def adopt(params, decoupled_weight_decay=False, clip_lambda=fourth_root, **kwargs):
    # Their clip_lambda gets the 1-based step; the paper's (and ours) counts from 0 at v_0 = g_0^2.
    bound = None if clip_lambda is None else (lambda step: clip_lambda(step - 1))
    return pytorch_optimizer.ADOPT(params, weight_decouple=decoupled_weight_decay, clip_lambda=bound, **kwargs)


def ademamix(params, decoupled_weight_decay=True, **kwargs):
    return pytorch_optimizer.AdEMAMix(params, weight_decouple=decoupled_weight_decay, **kwargs)


class _MARSWithoutFloor(pytorch_optimizer.MARS):
    """pytorch-optimizer's MARS without the 1e-15 it adds to v under the square root."""

    @staticmethod
    def apply_ams_bound(ams_bound, exp_avg_sq, max_exp_avg_sq, eps, exp_avg_sq_eps=0.0):
        return pytorch_optimizer.MARS.apply_ams_bound(ams_bound, exp_avg_sq, max_exp_avg_sq, eps, exp_avg_sq_eps)


def mars(params, **kwargs):
    # Every tensor stepped by MARS (ours; their default steps vectors with AdamW); their
    # per-tensor loop (the foreach one floors v too).
    return _MARSWithoutFloor(params, optimize_1d=True, foreach=False, **kwargs)


THEIRS = {"adopt": adopt, "ademamix": ademamix, "mars": mars}
#: MARS: eps placed otherwise (theirs (sqrt(v) + eps) / sqrt(1 - b2^t), the paper's
#: sqrt(v / (1 - b2^t)) + eps): both made negligible.
SAMPLE_OVERRIDES = {"mars": {"eps": 1e-300}}
LOSS_SCALES = {"mars": MARS_LOSS_SCALE}
SAMPLES = [(CASES_BY_NAME[name], sample) for name in THEIRS for sample in CASES_BY_NAME[name].samples]


def train(model, optimizer, steps, maximize, scale):
    for _ in range(steps):
        optimizer.zero_grad()
        (model.loss(maximize) * scale).backward()
        optimizer.step()


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("path", list(EXECUTIONS))
@pytest.mark.parametrize(("case", "sample"), SAMPLES, ids=ids)
def test_matches_pytorch_optimizer(case, sample, path, request):
    """200 steps; the fused path bit-exact (torch.sqrt's roots), as in test_parity: a
    full-batch run grows a last-bit difference."""
    if path == "fused":
        request.getfixturevalue("bit_exact")
    sample = {**sample, **SAMPLE_OVERRIDES.get(case.name, {})}
    model = MLP()
    twin = copy.deepcopy(model)
    ours = case.make(model.parameters(), **EXECUTIONS[path], **sample)
    reference = THEIRS[case.name](twin.parameters(), **sample)
    maximize = sample.get("maximize", False)
    scale = LOSS_SCALES.get(case.name, 1.0)
    train(model, ours, PARITY_STEPS, maximize, scale)
    train(twin, reference, PARITY_STEPS, maximize, scale)
    rtol = FUSED_RTOL.get(case.name, PARITY_RTOL) if path == "fused" else PARITY_RTOL
    worst = assert_close(params_of(model), params_of(twin), rtol, f"{case.name} {sample} ({path})")
    record(f"pytorch-optimizer parity ({path}): {case.name}", worst)
    assert not torch.equal(params_of(model)[0], params_of(MLP())[0])


def test_mars_clips_on_the_scaled_loss():
    """The comparison above runs MARS's clip: c_t's norm is over 1 on the first step."""
    model = MLP()
    (model.loss() * MARS_LOSS_SCALE).backward()
    beta1, gamma = 0.95, 0.025
    assert (model.first.weight.grad * (1 + gamma * beta1 / (1 - beta1))).norm() > 1


@pytest.mark.parametrize("name", list(THEIRS))
def test_defaults_are_pytorch_optimizers(name):
    ours = CASES_BY_NAME[name].make(MLP().parameters()).param_groups[0]
    reference = THEIRS[name](MLP().parameters()).param_groups[0]
    for key in ("lr", "betas", "eps", "weight_decay", "alpha", "t_alpha_beta3", "gamma"):
        if key in ours:
            assert ours[key] == reference[key], key
