"""AdaBelief against pytorch-optimizer's (the authors' algorithm, float64, every registry
sample and every execution path); the NumPy formula is test_reference's."""

from __future__ import annotations

import copy

import pytest
import torch

from helpers import MLP, PARITY_RTOL, PARITY_STEPS, assert_close, params_of, record, train
from optimizer_cases import CASES_BY_NAME, ids

pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
CASE = CASES_BY_NAME["adabelief"]
EXECUTIONS = {"foreach": {"foreach": True}, "for-loop": {"foreach": False}, "fused": {"fused": True}}


def theirs(params, decoupled_weight_decay=True, **kwargs):
    return pytorch_optimizer.AdaBelief(params, weight_decouple=decoupled_weight_decay, **kwargs)


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("path", list(EXECUTIONS))
@pytest.mark.parametrize("sample", CASE.samples, ids=ids)
def test_matches_pytorch_optimizer(sample, path, request):
    """200 steps; the fused path bit-exact (torch.sqrt's roots), as in test_parity: a
    full-batch run grows a last-bit difference (IEEE roots reach 8e-10 here)."""
    if path == "fused":
        request.getfixturevalue("bit_exact")
    model = MLP()
    twin = copy.deepcopy(model)
    ours = CASE.make(model.parameters(), **EXECUTIONS[path], **sample)
    reference = theirs(twin.parameters(), **sample)
    maximize = sample.get("maximize", False)
    train(model, ours, PARITY_STEPS, maximize)
    train(twin, reference, PARITY_STEPS, maximize)
    worst = assert_close(params_of(model), params_of(twin), PARITY_RTOL, f"adabelief {sample} ({path})")
    record(f"pytorch-optimizer parity ({path}): adabelief", worst)
    assert not torch.equal(params_of(model)[0], params_of(MLP())[0])


def test_defaults_are_pytorch_optimizers():
    ours = CASE.make(MLP().parameters()).param_groups[0]
    reference = theirs(MLP().parameters()).param_groups[0]
    for key in ("lr", "betas", "eps", "weight_decay"):
        assert ours[key] == reference[key], key
