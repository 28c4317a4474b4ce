"""The combinators (lookahead, multi_steps, apply_if_finite, switch) and the Lookahead
wrapper: each against an independent oracle in float64, and each resumed from a
checkpoint mid-run equal to the uninterrupted run."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import optimlab

pytorch_optimizer = pytest.importorskip("pytorch_optimizer")

TOL = dict(rtol=1e-12, atol=1e-14)


def _problem(seed=0):
    """A float64 least-squares model (two parameters) and 16 fixed batches of 8 rows."""
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Linear(5, 3).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    xs = torch.randn(16, 8, 5, generator=g, dtype=torch.float64)
    ys = torch.randn(16, 8, 3, generator=g, dtype=torch.float64)
    return model, list(zip(xs, ys))


def _grads(model, x, y):
    model.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()


def _run(model, optimizer, batches, steps, start=0):
    for t in range(start, steps):
        x, y = batches[t % len(batches)]
        _grads(model, x, y)
        optimizer.step()


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def _assert_same(a, b, **tol):
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, **(tol or TOL))


def _resumed_equals_uninterrupted(make, steps=40, middle=17):
    model, batches = _problem()
    whole = copy.deepcopy(model)
    optimizer = make(whole)
    _run(whole, optimizer, batches, steps)
    first = copy.deepcopy(model)
    optimizer = make(first)
    _run(first, optimizer, batches, middle)
    saved = copy.deepcopy((first.state_dict(), optimizer.state_dict()))
    resumed = copy.deepcopy(model)
    resumed.load_state_dict(saved[0])
    optimizer = make(resumed)
    optimizer.load_state_dict(saved[1])
    _run(resumed, optimizer, batches, steps, start=middle)
    _assert_same(_params(whole), _params(resumed), rtol=0, atol=0)


def test_lookahead_transform_matches_pytorch_optimizer():
    model, batches = _problem()
    ours, theirs = copy.deepcopy(model), copy.deepcopy(model)
    a = optimlab.Optimizer(ours.parameters(), optimlab.lookahead(optimlab.adam(lr=0.05), k=3, alpha=0.6))
    b = pytorch_optimizer.Lookahead(torch.optim.Adam(theirs.parameters(), lr=0.05), k=3, alpha=0.6)
    _run(ours, a, batches, 200)
    _run(theirs, b, batches, 200)
    _assert_same(_params(ours), _params(theirs))
    # Lookahead changed the trajectory (the comparison is not of two plain Adams).
    plain = copy.deepcopy(model)
    _run(plain, torch.optim.Adam(plain.parameters(), lr=0.05), batches, 200)
    assert not torch.allclose(_params(plain)[0], _params(ours)[0])


def test_lookahead_wrapper_matches_pytorch_optimizer():
    model, batches = _problem(1)
    ours, theirs = copy.deepcopy(model), copy.deepcopy(model)
    a = optimlab.Lookahead(torch.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9))
    b = pytorch_optimizer.Lookahead(torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9))
    _run(ours, a, batches, 200)
    _run(theirs, b, batches, 200)
    _assert_same(_params(ours), _params(theirs))
    scheduler = torch.optim.lr_scheduler.StepLR(a, 1, gamma=0.5)  # a torch optimizer to lr schedulers
    a.step()
    scheduler.step()
    assert a.param_groups[0]["lr"] == 0.05


@pytest.mark.parametrize("make", [
    lambda m: optimlab.Optimizer(m.parameters(), optimlab.lookahead(optimlab.adam(lr=0.05), k=5)),
    lambda m: optimlab.Lookahead(optimlab.Adam(m.parameters(), lr=0.05), k=5),
    lambda m: optimlab.Optimizer(m.parameters(), optimlab.multi_steps(optimlab.adam(lr=0.05), every_k=3)),
    lambda m: optimlab.Optimizer(m.parameters(), optimlab.apply_if_finite(optimlab.adam(lr=0.05))),
    lambda m: optimlab.Optimizer(m.parameters(), optimlab.switch(optimlab.adam(lr=0.05), optimlab.sgd(0.1, 0.9),
                                                                 at=20)),
], ids=["lookahead", "Lookahead", "multi_steps", "apply_if_finite", "switch"])
def test_checkpoint_mid_run_equals_uninterrupted(make):
    _resumed_equals_uninterrupted(make)


def test_multi_steps_is_one_step_on_a_k_times_larger_batch():
    k = 4
    model, batches = _problem()
    small, large = copy.deepcopy(model), copy.deepcopy(model)
    a = optimlab.Optimizer(small.parameters(), optimlab.multi_steps(optimlab.adam(lr=0.05), every_k=k))
    b = torch.optim.Adam(large.parameters(), lr=0.05)
    for applied in range(4):
        group = batches[applied * k:(applied + 1) * k]
        for i, (x, y) in enumerate(group):
            _grads(small, x, y)
            before = _params(small)
            a.step()
            if i < k - 1:  # the calls before the k-th leave the parameters alone
                _assert_same(before, _params(small), rtol=0, atol=0)
        _grads(large, torch.cat([x for x, _ in group]), torch.cat([y for _, y in group]))
        b.step()
        _assert_same(_params(small), _params(large))


def _with_gradient(model, optimizer, x, y, poison=None):
    _grads(model, x, y)
    if poison is not None:
        list(model.parameters())[1].grad[0] = poison
    optimizer.step()


def test_apply_if_finite_equals_the_run_without_the_bad_steps():
    model, batches = _problem()
    guarded, clean = copy.deepcopy(model), copy.deepcopy(model)
    a = optimlab.Optimizer(guarded.parameters(), optimlab.apply_if_finite(optimlab.adam(lr=0.05), 2))
    b = torch.optim.Adam(clean.parameters(), lr=0.05)
    for t, (x, y) in enumerate(batches):
        if t in (3, 9, 10):
            state = copy.deepcopy(a.state_dict())
            _with_gradient(guarded, a, x, y, poison=math.nan if t != 10 else math.inf)
            after = a.state_dict()
            for index in (0, 1):  # the inner state is as it was; only the counts moved
                for key in ("exp_avg", "exp_avg_sq"):
                    assert torch.equal(state["state"][index][key], after["state"][index][key])
        else:
            _with_gradient(guarded, a, x, y)
            _with_gradient(clean, b, x, y)
    _assert_same(_params(guarded), _params(clean))
    assert int(a.state_dict()["state"][0]["skipped_steps"]) == 3


def test_apply_if_finite_raises_after_max_consecutive_errors_naming_the_parameter():
    model, batches = _problem()
    optimizer = optimlab.Optimizer(model.parameters(), optimlab.apply_if_finite(optimlab.sgd(0.1), 2))
    x, y = batches[0]
    _with_gradient(model, optimizer, x, y, poison=math.nan)
    _with_gradient(model, optimizer, x, y, poison=math.nan)
    before = _params(model)
    with pytest.raises(RuntimeError, match=r"the gradient of parameter 1 of its param group \(shape \(3,\)\) is "
                                           r"not finite again after 2 skipped steps in a row"):
        _with_gradient(model, optimizer, x, y, poison=math.nan)
    _assert_same(before, _params(model), rtol=0, atol=0)


@pytest.mark.parametrize("second, torch_second", [
    (lambda: optimlab.sgd(lr=0.1, momentum=0.9), lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)),
    # A second Adam counts its steps (bias corrections) from the switch.
    (lambda: optimlab.adam(lr=0.01, betas=(0.5, 0.9)), lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.5, 0.9))),
], ids=["sgd", "adam"])
def test_switch_is_adam_then_a_fresh_second(second, torch_second):
    at = 25
    model, batches = _problem()
    ours, theirs = copy.deepcopy(model), copy.deepcopy(model)
    transform = optimlab.switch(optimlab.adam(lr=0.05), second(), at=at)
    assert transform.hyperparams["lr"] == 0.05 and transform.hyperparams["second_lr"] in (0.1, 0.01)
    a = optimlab.Optimizer(ours.parameters(), transform)
    _run(ours, a, batches, 60)
    adam = torch.optim.Adam(theirs.parameters(), lr=0.05)
    _run(theirs, adam, batches, at)
    _run(theirs, torch_second(theirs.parameters()), batches, 60, start=at)
    _assert_same(_params(ours), _params(theirs))


@pytest.mark.parametrize("build, message", [
    (lambda: optimlab.lookahead(optimlab.sgd(0.1), k=0), r"lookahead_k must be an integer >= 1, got 0"),
    (lambda: optimlab.lookahead(optimlab.sgd(0.1), alpha=1.5), r"lookahead_alpha must be in \[0, 1\], got 1.5"),
    (lambda: optimlab.multi_steps(optimlab.sgd(0.1), every_k=2.0), r"every_k must be an integer >= 1, got 2.0"),
    (lambda: optimlab.apply_if_finite(optimlab.sgd(0.1), 0), r"max_consecutive_errors must be an integer >= 1, got 0"),
    (lambda: optimlab.switch(optimlab.adam(), optimlab.sgd(0.1), at=-1), r"switch_at must be an integer >= 1, got -1"),
    (lambda: optimlab.switch(optimlab.adam(), optimlab.sgd(-0.1)), r"lr must be >= 0, got -0.1"),
    (lambda: optimlab.Lookahead(optimlab.SGD([torch.zeros(1, requires_grad=True)]), k=0),
     r"k must be an integer >= 1, got 0"),
])
def test_bad_input_names_the_argument(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_a_group_override_is_checked():
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match=r"lookahead_k must be an integer >= 1, got 0"):
        optimlab.Optimizer([p], optimlab.lookahead(optimlab.sgd(0.1)), lookahead_k=0)


def _quadratic():
    g = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
    a = q @ torch.diag(torch.linspace(1.0, 10.0, 6, dtype=torch.float64)) @ q.T
    return a, torch.randn(6, generator=g, dtype=torch.float64)


def _swats_run(optimizer, x, a, b, steps):
    for _ in range(steps):
        x.grad = a @ x.detach() - b
        optimizer.step()


def test_swats_adam_phase_matches_pytorch_optimizer():
    # Before the switch the definitions agree (pytorch-optimizer's switch test is relative,
    # |Lambda - gamma| <= 1e-8 + eps |gamma|, the paper's absolute: docs/algorithms.md).
    a, b = _quadratic()
    ours, theirs = torch.zeros(6, dtype=torch.float64, requires_grad=True), torch.zeros(6, dtype=torch.float64,
                                                                                         requires_grad=True)
    o = optimlab.SWATS([ours], lr=0.02)
    r = pytorch_optimizer.SWATS([theirs], lr=0.02, foreach=False)
    _swats_run(o, ours, a, b, 60)
    _swats_run(r, theirs, a, b, 60)
    assert float(o.state[ours]["sgd_lr"]) == 0 and r.param_groups[0]["phase"] == "adam"
    torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-10, atol=0)


def test_swats_switches_to_sgd_at_the_estimated_rate():
    import reference_numpy as ref

    a, b = _quadratic()
    x = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    optimizer = optimlab.SWATS([x], lr=0.01, eps=1e-4)
    hp = dict(optimizer.defaults)
    xs, state = x.detach().numpy().copy(), {}
    switched_at = None
    for t in range(1, 201):
        _swats_run(optimizer, x, a, b, 1)
        xs = ref.swats(xs, a.numpy() @ xs - b.numpy(), state, t, hp)
        if switched_at is None and float(optimizer.state[x]["sgd_lr"]) > 0:
            switched_at = t
    assert switched_at is not None and 1 < switched_at < 150, switched_at
    assert float(optimizer.state[x]["sgd_lr"]) == pytest.approx(state["sgd_lr"], rel=1e-12)
    torch.testing.assert_close(x.detach(), torch.from_numpy(xs), rtol=1e-12, atol=1e-14)


def test_swats_checkpoint_after_the_switch_equals_uninterrupted():
    a, b = _quadratic()
    whole, first = (torch.zeros(6, dtype=torch.float64, requires_grad=True) for _ in range(2))
    _swats_run(optimlab.SWATS([whole], lr=0.01, eps=1e-4), whole, a, b, 60)
    optimizer = optimlab.SWATS([first], lr=0.01, eps=1e-4)
    _swats_run(optimizer, first, a, b, 40)
    assert float(optimizer.state[first]["sgd_lr"]) > 0  # switched before the checkpoint
    saved = copy.deepcopy(optimizer.state_dict())
    resumed = first.detach().clone().requires_grad_()
    optimizer = optimlab.SWATS([resumed], lr=0.01, eps=1e-4)
    optimizer.load_state_dict(saved)
    _swats_run(optimizer, resumed, a, b, 20)
    assert torch.equal(whole.detach(), resumed.detach())
