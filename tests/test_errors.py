"""Every error input raises ValueError naming the argument and its value, and nothing
changes before the raise: in the constructor, and in add_param_group mid-run."""

from __future__ import annotations

import copy

import pytest
import torch

from helpers import MLP
from optimizer_cases import CASES, ids

ERRORS = [(case, kwargs, message) for case in CASES for kwargs, message in case.errors]


def _error_id(value):
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return ids(value) if not isinstance(value, str) else "msg"


@pytest.mark.parametrize(("case", "kwargs", "message"), ERRORS, ids=_error_id)
def test_constructor_raises(case, kwargs, message):
    model = MLP()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=message):
        case.make(model.parameters(), **{**case.samples[0], **kwargs})
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before))


@pytest.mark.parametrize(("case", "kwargs", "message"), ERRORS, ids=_error_id)
def test_add_param_group_raises_and_changes_nothing(case, kwargs, message):
    model = MLP()
    optimizer = case.make(model.first.parameters(), **case.samples[0])
    for _ in range(3):
        optimizer.zero_grad()
        model.loss().backward()
        optimizer.step()
    groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    group_params = [list(g["params"]) for g in optimizer.param_groups]
    state = copy.deepcopy(optimizer.state_dict()["state"])
    params = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=message):
        optimizer.add_param_group({"params": list(model.second.parameters()), **kwargs})
    assert [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups] == groups
    assert [list(g["params"]) for g in optimizer.param_groups] == group_params
    after = optimizer.state_dict()["state"]
    assert after.keys() == state.keys()
    for index in state:
        for key, value in state[index].items():
            assert torch.equal(after[index][key], value) if torch.is_tensor(value) else after[index][key] == value
    assert all(model.second.weight is not p for g in optimizer.param_groups for p in g["params"])
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), params))
    # The optimizer still works, and the rejected parameters get no state.
    optimizer.zero_grad()
    model.loss().backward()
    optimizer.step()
    assert model.second.weight not in optimizer.state


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_every_case_checks_lr_and_weight_decay(case):
    """The registry covers the errors every optimizer shares."""
    names = {name for kwargs, _ in case.errors for name in kwargs}
    assert {"lr", "weight_decay"} <= names
    for option in ("eps", "betas", "momentum", "rho", "initial_accumulator_value"):
        if option in case.hyperparams(case.samples[0]) and option not in case.preset:
            assert option in names, f"{case.name}: no error input for {option}"
