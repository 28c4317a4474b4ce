"""create(), defaults against torch.optim, closure, grad None, zero_grad."""

from __future__ import annotations

import copy
import inspect

import pytest
import torch

import optimlab
from optimlab.catalog import CATALOG
from helpers import MLP, params_of
from optimizer_cases import CASES, TORCH_CASES, ids

def test_registry_covers_every_name():
    """One Case per catalog name, and every catalog optimizer exported with its chain."""
    assert sorted(case.name for case in CASES) == sorted(optimlab.optimizers())
    for entry in CATALOG.values():
        cls = entry.factory
        assert getattr(optimlab, cls.__name__) is cls and cls.__name__ in optimlab.__all__
        assert getattr(optimlab, cls.chain_function.__name__) is cls.chain_function


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_create_returns_class_with_preset(case):
    model = MLP()
    optimizer = case.ready(optimlab.create(case.name, model.parameters(), lr=0.0123))
    assert type(optimizer) is case.cls
    group = optimizer.param_groups[0]
    assert group["lr"] == 0.0123
    for key, value in case.preset.items():
        assert group[key] == value, key
    for key, value in case.hyperparams({}).items():
        if key != "lr" and key in group:  # decoupled_weight_decay chooses the chain, it is no group key
            assert group[key] == value, key
    # And it steps exactly like the class built by hand with the preset.
    twin = copy.deepcopy(model)
    by_hand = case.ready(case.cls(twin.parameters(), lr=0.0123, **case.preset))
    for opt, m in ((optimizer, model), (by_hand, twin)):
        for _ in range(5):
            opt.zero_grad()
            m.loss().backward()
            opt.step()
    assert all(torch.equal(a, b) for a, b in zip(params_of(model), params_of(twin)))


def test_create_preset_is_overridable():
    optimizer = optimlab.create("momentum", MLP().parameters(), momentum=0.5)
    assert optimizer.param_groups[0]["momentum"] == 0.5


def test_create_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamx'; valid names: gd, sgd, .*radam") as error:
        optimlab.create("adamx", MLP().parameters())
    for name in optimlab.optimizers():
        assert name in str(error.value)


TWINS = sorted({(case.cls, case.torch_cls) for case in TORCH_CASES}, key=lambda pair: pair[0].__name__)


@pytest.mark.parametrize(("cls", "torch_cls"), TWINS, ids=[cls.__name__ for cls, _ in TWINS])
def test_defaults_equal_torch(cls, torch_cls):
    ours = inspect.signature(cls.__init__).parameters
    theirs = inspect.signature(torch_cls.__init__).parameters
    shared = set(ours) & set(theirs) - {"self", "params"}
    assert {"lr", "weight_decay"} <= shared
    for name in shared:
        assert ours[name].default == theirs[name].default, name
    # torch.optim's hyperparameters all exist here (fused/capturable/differentiable accepted).
    assert set(theirs) <= set(ours)


@pytest.mark.parametrize("case", TORCH_CASES, ids=ids)
def test_default_param_group_equals_torch(case):
    ours = case.make(MLP().parameters()).param_groups[0]
    theirs = case.make_torch(MLP().parameters()).param_groups[0]
    for key in ours.keys() & theirs.keys() - {"params"}:
        assert ours[key] == theirs[key], key


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_step_returns_closure_loss(case):
    model = MLP()
    optimizer = case.make(model.parameters(), **case.samples[0])
    calls = []

    def closure():
        optimizer.zero_grad()
        loss = model.loss()
        loss.backward()
        calls.append(loss.item())
        return loss

    loss = optimizer.step(closure)
    assert calls and loss.item() == calls[0]
    assert optimizer.step() is None


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_params_without_grad_are_skipped(case):
    model = MLP()
    frozen = model.second.weight
    before = frozen.detach().clone()
    optimizer = case.make(model.parameters(), **{**case.samples[0], "weight_decay": 0.1})
    for _ in range(3):
        optimizer.zero_grad()
        model.loss().backward()
        frozen.grad = None
        optimizer.step()
    assert torch.equal(frozen.detach(), before)
    assert frozen not in optimizer.state
    assert optimizer.state[model.first.weight]["step"] == 3


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none):
    model = MLP()
    optimizer = optimlab.Adam(model.parameters())
    model.loss().backward()
    optimizer.zero_grad(set_to_none=set_to_none)
    for p in model.parameters():
        if set_to_none:
            assert p.grad is None
        else:
            assert torch.equal(p.grad, torch.zeros_like(p))


def test_differentiable_raises():
    with pytest.raises(ValueError, match="differentiable=True is not supported"):
        optimlab.Adam(MLP().parameters(), differentiable=True)


def test_optimizers_are_torch_optimizers():
    for case in CASES:
        assert isinstance(case.make(MLP().parameters()), torch.optim.Optimizer)
