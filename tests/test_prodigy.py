"""Prodigy against prodigyopt 1.1 in float64: 200 steps, a checkpoint in the middle."""

from __future__ import annotations

import copy
import inspect

import pytest
import torch

import optimlab
from helpers import flat_params, mse_step, tanh_regression

prodigyopt = pytest.importorskip("prodigyopt")

SAMPLES = [
    {},
    {"betas": (0.8, 0.99), "beta3": 0.95, "weight_decay": 0.01, "use_bias_correction": True, "d_coef": 0.5},
    {"weight_decay": 0.05, "decouple": False, "safeguard_warmup": True, "growth_rate": 1.05, "slice_p": 3},
    {"betas": (0.0, 0.999), "d0": 1e-4, "lr": 0.5},
]


@pytest.mark.parametrize("kwargs", SAMPLES, ids=str)
def test_trajectory_matches_prodigyopt(kwargs, capsys):
    model, xs, ys = tanh_regression()
    ours_model, theirs_model = copy.deepcopy(model), copy.deepcopy(model)
    ours = optimlab.Prodigy(ours_model.parameters(), **kwargs)
    theirs = prodigyopt.Prodigy(theirs_model.parameters(), **kwargs)
    for t in range(200):
        if t == 100:
            saved = copy.deepcopy((ours_model.state_dict(), ours.state_dict()))
            ours_model = copy.deepcopy(model)
            ours_model.load_state_dict(saved[0])
            ours = optimlab.Prodigy(ours_model.parameters(), **kwargs)
            ours.load_state_dict(saved[1])
        mse_step(ours_model, ours, xs[t], ys[t])
        mse_step(theirs_model, theirs, xs[t], ys[t])
    torch.testing.assert_close(flat_params(ours_model), flat_params(theirs_model), rtol=1e-10, atol=1e-13)
    d = float(ours.state[next(ours_model.parameters())]["d"])
    assert d == pytest.approx(theirs.param_groups[0]["d"], rel=1e-10) and d > 10 * theirs.param_groups[0]["d0"]


def test_defaults_equal_prodigyopt():
    mine = {k: p.default for k, p in inspect.signature(optimlab.Prodigy).parameters.items() if k not in ("params", "foreach")}
    package = {k: p.default for k, p in inspect.signature(prodigyopt.Prodigy).parameters.items() if k != "params"}
    assert mine == package


@pytest.mark.parametrize("kwargs, message", [
    ({"d0": 0.0}, r"d0 must be > 0, got 0.0"),
    ({"beta3": 1.0}, r"beta3 must be in \[0, 1\), got 1.0"),
    ({"slice_p": 0}, r"slice_p must be an integer >= 1, got 0"),
    ({"fsdp_in_use": True}, r"fsdp_in_use must be False, got True"),
])
def test_bad_input_names_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        optimlab.Prodigy([torch.zeros(2, requires_grad=True)], **kwargs)
