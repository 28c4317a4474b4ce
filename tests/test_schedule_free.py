"""ScheduleFreeSGD and ScheduleFreeAdamW against the schedulefree package 1.4 in float64:
200 steps through train()/eval() switches and a checkpoint in the middle."""

from __future__ import annotations

import copy

import pytest
import torch

import optimlab

schedulefree = pytest.importorskip("schedulefree")

PAIRS = [
    (optimlab.ScheduleFreeSGD, schedulefree.SGDScheduleFree, {"lr": 0.05}),
    (optimlab.ScheduleFreeSGD, schedulefree.SGDScheduleFree,
     {"lr": 0.1, "momentum": 0.8, "weight_decay": 0.01, "warmup_steps": 20, "r": 1.0, "weight_lr_power": 1.0}),
    (optimlab.ScheduleFreeAdamW, schedulefree.AdamWScheduleFree, {}),
    (optimlab.ScheduleFreeAdamW, schedulefree.AdamWScheduleFree,
     {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.05, "warmup_steps": 30, "r": 0.5}),
]


def _problem():
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)).double()
    xs = torch.randn(200, 8, 5, generator=g, dtype=torch.float64)
    ys = torch.randn(200, 8, 3, generator=g, dtype=torch.float64)
    return model, xs, ys


def _step(model, optimizer, x, y):
    optimizer.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    optimizer.step()


def _params(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


@pytest.mark.parametrize("ours_cls, theirs_cls, kwargs", PAIRS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_trajectory_matches_schedulefree(ours_cls, theirs_cls, kwargs):
    model, xs, ys = _problem()
    ours_model, theirs_model = copy.deepcopy(model), copy.deepcopy(model)
    ours, theirs = ours_cls(ours_model.parameters(), **kwargs), theirs_cls(theirs_model.parameters(), **kwargs)
    ours.train(), theirs.train()
    for t in range(200):
        if t == 100:  # checkpoint (in eval mode, as the package asks) and resume in a fresh optimizer
            ours.eval()
            saved = copy.deepcopy((ours_model.state_dict(), ours.state_dict()))
            ours_model = copy.deepcopy(model)
            ours_model.load_state_dict(saved[0])
            ours = ours_cls(ours_model.parameters(), **kwargs)
            ours.load_state_dict(saved[1])
            ours.train()
        if t % 40 == 39:  # evaluate at x, then back to y
            ours.eval(), theirs.eval()
            torch.testing.assert_close(_params(ours_model), _params(theirs_model), rtol=1e-10, atol=1e-13)
            ours.train(), theirs.train()
        _step(ours_model, ours, xs[t], ys[t])
        _step(theirs_model, theirs, xs[t], ys[t])
    torch.testing.assert_close(_params(ours_model), _params(theirs_model), rtol=1e-10, atol=1e-13)
    ours.eval(), theirs.eval()
    torch.testing.assert_close(_params(ours_model), _params(theirs_model), rtol=1e-10, atol=1e-13)
    assert not torch.allclose(_params(ours_model), _params(model))


def test_step_outside_train_mode_raises_and_changes_nothing():
    model, xs, ys = _problem()
    optimizer = optimlab.ScheduleFreeSGD(model.parameters(), lr=0.1)
    before = _params(model)
    with pytest.raises(RuntimeError, match=r"call optimizer.train\(\) before training"):
        _step(model, optimizer, xs[0], ys[0])
    assert torch.equal(before, _params(model))


def test_defaults_equal_schedulefree():
    import inspect

    for ours, theirs in [(optimlab.ScheduleFreeSGD, schedulefree.SGDScheduleFree),
                         (optimlab.ScheduleFreeAdamW, schedulefree.AdamWScheduleFree)]:
        mine = {k: p.default for k, p in inspect.signature(ours).parameters.items() if k not in ("params", "foreach")}
        package = {k: p.default for k, p in inspect.signature(theirs).parameters.items() if k in mine}
        assert mine == package


@pytest.mark.parametrize("kwargs, message", [
    ({"momentum": 1.0}, r"momentum must be in \(0, 1\), got 1.0"),
    ({"lr": -1.0}, r"lr must be >= 0, got -1.0"),
    ({"warmup_steps": -1}, r"warmup_steps must be >= 0, got -1"),
])
def test_bad_input_names_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        optimlab.ScheduleFreeSGD([torch.zeros(2, requires_grad=True)], **kwargs)
