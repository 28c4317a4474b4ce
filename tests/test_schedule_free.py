"""ScheduleFreeSGD and ScheduleFreeAdamW against the schedulefree package 1.4 in float64:
200 steps through train()/eval() switches and a checkpoint in the middle."""

from __future__ import annotations

import copy

import pytest
import torch

import optimlab
from helpers import flat_params, mse_step, tanh_regression

schedulefree = pytest.importorskip("schedulefree")

PAIRS = [
    (optimlab.ScheduleFreeSGD, schedulefree.SGDScheduleFree, {"lr": 0.05}),
    (optimlab.ScheduleFreeSGD, schedulefree.SGDScheduleFree,
     {"lr": 0.1, "momentum": 0.8, "weight_decay": 0.01, "warmup_steps": 20, "r": 1.0, "weight_lr_power": 1.0}),
    (optimlab.ScheduleFreeAdamW, schedulefree.AdamWScheduleFree, {}),
    (optimlab.ScheduleFreeAdamW, schedulefree.AdamWScheduleFree,
     {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.05, "warmup_steps": 30, "r": 0.5}),
]


@pytest.mark.parametrize("ours_cls, theirs_cls, kwargs", PAIRS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_trajectory_matches_schedulefree(ours_cls, theirs_cls, kwargs):
    model, xs, ys = tanh_regression()
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
            torch.testing.assert_close(flat_params(ours_model), flat_params(theirs_model), rtol=1e-10, atol=1e-13)
            ours.train(), theirs.train()
        mse_step(ours_model, ours, xs[t], ys[t])
        mse_step(theirs_model, theirs, xs[t], ys[t])
    torch.testing.assert_close(flat_params(ours_model), flat_params(theirs_model), rtol=1e-10, atol=1e-13)
    ours.eval(), theirs.eval()
    torch.testing.assert_close(flat_params(ours_model), flat_params(theirs_model), rtol=1e-10, atol=1e-13)
    assert not torch.allclose(flat_params(ours_model), flat_params(model))


def test_step_outside_train_mode_raises_and_changes_nothing():
    model, xs, ys = tanh_regression()
    optimizer = optimlab.ScheduleFreeSGD(model.parameters(), lr=0.1)
    before = flat_params(model)
    with pytest.raises(RuntimeError, match=r"call optimizer.train\(\) before training"):
        mse_step(model, optimizer, xs[0], ys[0])
    assert torch.equal(before, flat_params(model))


def test_defaults_equal_schedulefree():
    import inspect

    for ours, theirs in [(optimlab.ScheduleFreeSGD, schedulefree.SGDScheduleFree),
                         (optimlab.ScheduleFreeAdamW, schedulefree.AdamWScheduleFree)]:
        mine = {k: p.default for k, p in inspect.signature(ours).parameters.items() if k not in ("params", "foreach", "fused")}
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
