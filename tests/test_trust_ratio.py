"""LAMB and LARS against pytorch-optimizer's (float64, every registry sample and every
execution path), where the definitions agree; the NumPy formulas of the papers are
test_reference's.

* pytorch-optimizer's ``Lamb`` has no bias correction but steps ``lr / (1 - beta1^t)``, puts
  ``eps`` in the trust ratio's denominator and decays outside the ratio (by default). Given
  ``lr_t = lr (1 - beta1^t)``, its coupled decay ``weight_decay_t = weight_decay (1 -
  beta1^t) / sqrt(1 - beta2^t)`` (inside the ratio, as the paper's) and ``eps = 1e-30`` (on
  both sides), it makes the paper's Algorithm 2 steps: the trust ratio cancels the constant
  factor between the two directions.
* pytorch-optimizer's ``LARS`` skips tensors of fewer than 2 dimensions and keeps the
  learning rate outside the momentum, and starts its buffer at 0 (``v_1 = (1 - dampening)
  d_1``, where torch.optim.SGD's and optimlab's is ``d_1``): on the weights alone, at a
  constant ``lr``, without dampening, the same steps.
"""

from __future__ import annotations

import copy

import pytest
import torch

from helpers import MLP, PARITY_RTOL, PARITY_STEPS, assert_close, record, train
from optimizer_cases import CASES_BY_NAME, ids

pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
EXECUTIONS = {"foreach": {"foreach": True}, "for-loop": {"foreach": False}, "fused": {"fused": True}}
#: An eps that changes no bit of the steps (pytorch-optimizer places it elsewhere).
NO_EPS = 1e-30


def weights(model):
    return [p for p in model.parameters() if p.ndim > 1]


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("path", list(EXECUTIONS))
@pytest.mark.parametrize("sample", CASES_BY_NAME["lamb"].samples, ids=ids)
def test_lamb_matches_pytorch_optimizer(sample, path):
    case = CASES_BY_NAME["lamb"]
    hp = case.hyperparams({**sample, "eps": NO_EPS})
    model = MLP()
    twin = copy.deepcopy(model)
    ours = case.make(model.parameters(), **EXECUTIONS[path], **{**sample, "eps": NO_EPS})
    reference = pytorch_optimizer.Lamb(twin.parameters(), lr=hp["lr"], betas=hp["betas"], eps=NO_EPS,
                                       weight_decay=hp["weight_decay"], weight_decouple=False,
                                       maximize=hp["maximize"])
    beta1, beta2 = hp["betas"]

    def paper_steps(i):  # before step t = i + 1
        group = reference.param_groups[0]
        group["lr"] = hp["lr"] * (1 - beta1 ** (i + 1))
        group["weight_decay"] = hp["weight_decay"] * (1 - beta1 ** (i + 1)) / (1 - beta2 ** (i + 1)) ** 0.5

    train(model, ours, PARITY_STEPS, hp["maximize"])
    train(twin, reference, PARITY_STEPS, hp["maximize"], hook=paper_steps)
    assert max(p.norm().item() for p in twin.parameters()) < reference.clamp  # its clamp never binds
    worst = assert_close(list(model.parameters()), list(twin.parameters()), PARITY_RTOL, f"lamb {sample} ({path})")
    record(f"pytorch-optimizer parity ({path}): lamb", worst)
    assert not torch.equal(model.first.weight, MLP().first.weight)


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("path", list(EXECUTIONS))
@pytest.mark.parametrize("sample", [s for s in CASES_BY_NAME["lars"].samples if not s.get("dampening")], ids=ids)
def test_lars_matches_pytorch_optimizer(sample, path):
    case = CASES_BY_NAME["lars"]
    hp = case.hyperparams(sample)
    model = MLP()
    twin = copy.deepcopy(model)
    ours = case.make(weights(model), **EXECUTIONS[path], **sample)
    reference = pytorch_optimizer.LARS(weights(twin), **{k: hp[k] for k in (
        "lr", "weight_decay", "momentum", "dampening", "trust_coefficient", "nesterov", "maximize")})
    train(model, ours, PARITY_STEPS, hp["maximize"])
    train(twin, reference, PARITY_STEPS, hp["maximize"])
    worst = assert_close(weights(model), weights(twin), PARITY_RTOL, f"lars {sample} ({path})")
    record(f"pytorch-optimizer parity ({path}): lars", worst)
    assert not torch.equal(model.first.weight, MLP().first.weight)


def test_defaults_are_pytorch_optimizers():
    for name, theirs, keys in (
        ("lamb", pytorch_optimizer.Lamb, ("lr", "betas", "eps", "weight_decay")),
        ("lars", pytorch_optimizer.LARS, ("lr", "weight_decay", "momentum", "dampening", "trust_coefficient",
                                          "nesterov")),
    ):
        ours = CASES_BY_NAME[name].make(MLP().parameters()).param_groups[0]
        reference = theirs(MLP().parameters()).param_groups[0]
        for key in keys:
            assert ours[key] == reference[key], (name, key)
