"""Prodigy and DAdaptAdam against prodigyopt 1.1 and dadaptation 3.2 in float64: 200
steps, a checkpoint in the middle, parameters and d to 1e-10."""

from __future__ import annotations

import copy
import inspect

import pytest
import torch

import optimlab
from helpers import flat_params, mse_step, tanh_regression

prodigyopt = pytest.importorskip("prodigyopt")
dadaptation = pytest.importorskip("dadaptation")

PRODIGY_SAMPLES = [
    {},
    {"betas": (0.8, 0.99), "beta3": 0.95, "weight_decay": 0.01, "use_bias_correction": True, "d_coef": 0.5},
    {"weight_decay": 0.05, "decouple": False, "safeguard_warmup": True, "growth_rate": 1.05, "slice_p": 3},
    {"betas": (0.0, 0.999), "d0": 1e-4, "lr": 0.5},
]
DADAPT_SAMPLES = [
    {},
    {"betas": (0.8, 0.99), "weight_decay": 0.01, "use_bias_correction": True, "growth_rate": 1.1},
    {"weight_decay": 0.05, "decouple": True, "d0": 1e-4, "lr": 0.5, "eps": 1e-6},
]
CASES = ([(optimlab.Prodigy, prodigyopt.Prodigy, kwargs) for kwargs in PRODIGY_SAMPLES]
         + [(optimlab.DAdaptAdam, dadaptation.DAdaptAdam, kwargs) for kwargs in DADAPT_SAMPLES])
PAIRS = [(optimlab.Prodigy, prodigyopt.Prodigy), (optimlab.DAdaptAdam, dadaptation.DAdaptAdam)]


@pytest.mark.parametrize("ours_cls, theirs_cls, kwargs", CASES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_trajectory_matches_the_package(ours_cls, theirs_cls, kwargs, capsys):
    model, xs, ys = tanh_regression()
    ours_model, theirs_model = copy.deepcopy(model), copy.deepcopy(model)
    ours = ours_cls(ours_model.parameters(), **kwargs)
    theirs = theirs_cls(theirs_model.parameters(), **kwargs)
    for t in range(200):
        if t == 100:
            saved = copy.deepcopy((ours_model.state_dict(), ours.state_dict()))
            ours_model = copy.deepcopy(model)
            ours_model.load_state_dict(saved[0])
            ours = ours_cls(ours_model.parameters(), **kwargs)
            ours.load_state_dict(saved[1])
        mse_step(ours_model, ours, xs[t], ys[t])
        mse_step(theirs_model, theirs, xs[t], ys[t])
    torch.testing.assert_close(flat_params(ours_model), flat_params(theirs_model), rtol=1e-10, atol=1e-13)
    d = float(ours.state[next(ours_model.parameters())]["d"])
    assert d == pytest.approx(theirs.param_groups[0]["d"], rel=1e-10) and d > 10 * kwargs.get("d0", 1e-6)


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=lambda v: v.__name__)
def test_defaults_equal_the_package(ours, theirs):
    mine = {k: p.default for k, p in inspect.signature(ours).parameters.items() if k not in ("params", "foreach", "fused")}
    package = {k: p.default for k, p in inspect.signature(theirs).parameters.items() if k != "params"}
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


@pytest.mark.parametrize("kwargs, message", [
    ({"d0": -1.0}, r"d0 must be > 0, got -1.0"),
    ({"growth_rate": 0.5}, r"growth_rate must be a number >= 1 \(inf: no cap\), got 0.5"),
    ({"fsdp_in_use": True}, r"fsdp_in_use must be False, got True"),
])
def test_dadapt_adam_bad_input_names_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        optimlab.DAdaptAdam([torch.zeros(2, requires_grad=True)], **kwargs)
