"""chain composition against torch's own building blocks."""

from __future__ import annotations

import copy

import pytest
import torch

import optimlab
from helpers import MLP, PARITY_RTOL, PARITY_STEPS, assert_close, params_of, record
from optimlab import Transform, chain

pytestmark = pytest.mark.usefixtures("float64")


def _adamw_chain(max_norm, lr=0.01, weight_decay=0.05):
    return chain(optimlab.clip_by_global_norm(max_norm), optimlab.scale_by_adam(),
                 optimlab.add_decayed_weights(weight_decay), optimlab.scale_by_learning_rate(lr))


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "for-loop"])
@pytest.mark.parametrize("max_norm", [0.05, 100.0], ids=["clipping", "not-clipping"])
def test_clip_adamw_chain_matches_torch(max_norm, foreach):
    model = MLP()
    twin = copy.deepcopy(model)
    ours = optimlab.Optimizer(model.parameters(), _adamw_chain(max_norm), foreach=foreach)
    theirs = torch.optim.AdamW(twin.parameters(), lr=0.01, weight_decay=0.05, foreach=False)
    clipped = 0
    for _ in range(PARITY_STEPS):
        ours.zero_grad()
        model.loss().backward()
        ours.step()
        theirs.zero_grad()
        twin.loss().backward()
        clipped += torch.nn.utils.clip_grad_norm_(list(twin.parameters()), max_norm).item() > max_norm
        theirs.step()
    assert (clipped > 0) == (max_norm < 1)
    worst = assert_close(params_of(model), params_of(twin), PARITY_RTOL, "clip+adamw")
    record(f"chain clip_by_global_norm+adamw (max_norm={max_norm})", worst)


def test_clip_by_value_matches_torch():
    model = MLP()
    twin = copy.deepcopy(model)
    ours = optimlab.Optimizer(model.parameters(), chain(optimlab.clip_by_value(0.01), optimlab.scale_by_learning_rate(0.1)))
    theirs = torch.optim.SGD(twin.parameters(), lr=0.1)
    for _ in range(50):
        ours.zero_grad()
        model.loss().backward()
        ours.step()
        theirs.zero_grad()
        twin.loss().backward()
        assert any((p.grad.abs() > 0.01).any() for p in twin.parameters())
        torch.nn.utils.clip_grad_value_(list(twin.parameters()), 0.01)
        theirs.step()
    worst = assert_close(params_of(model), params_of(twin), PARITY_RTOL, "clip_by_value")
    record("chain clip_by_value+sgd", worst)


def test_shared_state_keys_are_prefixed():
    """Two momentum traces in one chain keep two buffers, and compose as two EMAs would."""
    transform = chain(optimlab.ema(0.9), optimlab.ema(0.9), optimlab.scale_by_learning_rate(0.1))
    assert transform.state_keys == ("0.ema", "1.ema")
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = optimlab.Optimizer([p], transform)
    grads = [torch.tensor([0.5, 1.0]), torch.tensor([-1.0, 2.0]), torch.tensor([0.25, 0.0])]
    expected, v1, v2 = p.detach().clone(), torch.zeros(2), torch.zeros(2)
    for g in grads:
        p.grad = g.clone()
        optimizer.step()
        v1 = 0.9 * v1 + 0.1 * g
        v2 = 0.9 * v2 + 0.1 * v1
        expected -= 0.1 * v2
    assert set(optimizer.state[p]) == {"step", "0.ema", "1.ema"}
    torch.testing.assert_close(optimizer.state[p]["0.ema"], v1, rtol=1e-12, atol=0)
    torch.testing.assert_close(optimizer.state[p]["1.ema"], v2, rtol=1e-12, atol=0)
    torch.testing.assert_close(p.detach(), expected, rtol=1e-12, atol=0)


def test_unshared_state_keys_are_not_prefixed():
    transform = chain(optimlab.scale_by_adam(), optimlab.trace(0.9))
    assert transform.state_keys == ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer")


def test_conflicting_defaults_raise():
    with pytest.raises(ValueError, match=r"hyperparameter 'momentum' has two defaults in one chain: 0.9 and 0.5"):
        chain(optimlab.trace(0.9), optimlab.ema(0.5))
    # Agreeing defaults are fine.
    assert chain(optimlab.trace(0.9), optimlab.ema(0.9)).hyperparams["momentum"] == 0.9


def test_chain_rejects_non_transforms():
    with pytest.raises(TypeError, match="chain takes Transform instances"):
        chain(optimlab.scale_by_adam(), lambda g: g)


def test_optimizer_rejects_unknown_hyperparameter():
    with pytest.raises(TypeError, match=r"unexpected hyperparameter\(s\) betaz"):
        optimlab.Optimizer(MLP().parameters(), optimlab.adam(), betaz=(0.9, 0.9))


def test_nested_chains_equal_flat_chain():
    model = MLP()
    twin = copy.deepcopy(model)
    flat = optimlab.Optimizer(model.parameters(), _adamw_chain(0.05))
    nested = optimlab.Optimizer(twin.parameters(), chain(
        chain(optimlab.clip_by_global_norm(0.05), optimlab.scale_by_adam()),
        chain(optimlab.add_decayed_weights(0.05), optimlab.scale_by_learning_rate(0.01))))
    for opt, m in ((flat, model), (nested, twin)):
        for _ in range(20):
            opt.zero_grad()
            m.loss().backward()
            opt.step()
    assert all(torch.equal(a, b) for a, b in zip(params_of(model), params_of(twin)))
    assert isinstance(nested.transform, Transform)
