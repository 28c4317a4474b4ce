"""Cautious AdamW and Cautious Lion against pytorch-optimizer's cautious updates (its
``apply_cautious``: float64, every registry sample and every execution path); the NumPy
formulas are test_reference's. pytorch-optimizer has no cautious AdamW class: its
``AdEMAMix`` with ``alpha=0`` (no slow momentum) and decoupled decay is AdamW, and masks
the first moment where it disagrees with the gradient, as C-AdamW does (the denominator is
positive, so the signs are the update's)."""

from __future__ import annotations

import copy

import pytest
import torch

import optimlab
from optimlab.fused import engine

from helpers import MLP, PARITY_RTOL, PARITY_STEPS, assert_close, params_of, record, train
from optimizer_cases import CASES_BY_NAME, ids

pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
EXECUTIONS = {"foreach": {"foreach": True}, "for-loop": {"foreach": False}, "fused": {"fused": True}}


def cautious_adamw(params, hp):
    return pytorch_optimizer.AdEMAMix(params, lr=hp["lr"], betas=(*hp["betas"], 0.9999), alpha=0.0, eps=hp["eps"],
                                      weight_decay=hp["weight_decay"], weight_decouple=True, cautious=True,
                                      maximize=hp["maximize"])


def cautious_lion(params, hp):
    return pytorch_optimizer.Lion(params, lr=hp["lr"], betas=hp["betas"], weight_decay=hp["weight_decay"],
                                  cautious=True, maximize=hp["maximize"])


THEIRS = {"cautious_adamw": cautious_adamw, "cautious_lion": cautious_lion}


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("path", list(EXECUTIONS))
@pytest.mark.parametrize(("name", "sample"), [(n, s) for n in THEIRS for s in CASES_BY_NAME[n].samples], ids=ids)
def test_matches_pytorch_optimizer(name, sample, path):
    case = CASES_BY_NAME[name]
    hp = case.hyperparams(sample)
    model = MLP()
    twin = copy.deepcopy(model)
    ours = case.make(model.parameters(), **EXECUTIONS[path], **sample)
    reference = THEIRS[name](twin.parameters(), hp)
    calls = engine.stats["calls"]
    train(model, ours, PARITY_STEPS, hp["maximize"])
    train(twin, reference, PARITY_STEPS, hp["maximize"])
    if path == "fused":
        assert engine.stats["calls"] - calls >= PARITY_STEPS - 1
    worst = assert_close(params_of(model), params_of(twin), PARITY_RTOL, f"{name} {sample} ({path})")
    record(f"pytorch-optimizer parity ({path}): {name}", worst)
    assert not torch.equal(params_of(model)[0], params_of(MLP())[0])


def test_the_mask_keeps_the_agreeing_components_rescaled():
    """u = 2g on the first half, -g on the second: the second half is zeroed and the first
    scaled by numel / (agreeing + 1) = 8 / 5."""
    g = torch.tensor([1.0, -2.0, 3.0, -4.0, 1.0, -2.0, 3.0, -4.0], dtype=torch.float64)

    class halves(optimlab.Transform):
        def update(self, updates, state, params, hyperparams, step):
            return updates.wrap([torch.cat([2 * u[:4], -u[4:]]) for u in updates])

    out = optimlab.cautious(halves()).update(optimlab.TensorList([g]), {}, optimlab.TensorList([torch.zeros(8)]),
                                             {}, 1)
    expected = torch.cat([2 * g[:4] * (8 / 5), torch.zeros(4, dtype=torch.float64)])
    assert torch.equal(out[0], expected)


def test_a_chain_with_two_per_tensor_parts_runs_eagerly():
    """Cautious LAMB: the kernel takes one per-tensor reduction, so fused=None steps it
    eagerly and fused=True says why it cannot fuse."""
    transform = optimlab.chain(optimlab.cautious(optimlab.scale_by_adam()), optimlab.scale_by_trust_ratio(),
                               optimlab.scale_by_learning_rate(1e-2))
    assert engine.describe(transform, transform.hyperparams) is None
    with pytest.raises(ValueError, match="both measure sums"):
        optimlab.Optimizer(MLP().parameters(), transform, fused=True)
    model = MLP()
    optimizer = optimlab.Optimizer(model.parameters(), transform)
    train(model, optimizer, 3)
    assert not torch.equal(model.first.weight, MLP().first.weight)


def test_defaults():
    group = optimlab.CautiousAdamW(MLP().parameters()).param_groups[0]
    adamw = torch.optim.AdamW(MLP().parameters()).param_groups[0]
    assert all(group[k] == adamw[k] for k in ("lr", "betas", "eps", "weight_decay"))
    group = optimlab.CautiousLion(MLP().parameters()).param_groups[0]
    lion = optimlab.Lion(MLP().parameters()).param_groups[0]
    assert all(group[k] == lion[k] for k in ("lr", "betas", "weight_decay"))
