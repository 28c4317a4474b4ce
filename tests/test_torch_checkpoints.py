"""Checkpoints both ways between each alias and its torch.optim twin (every case of
optimizer_cases with a twin, so every option its samples set): one side trains a few
steps and saves; the other loads that state_dict into a fresh model and optimizer and
continues 50 steps; it equals the first side continuing uninterrupted (float64, 1e-12
relative), on each of optimlab's execution paths, the fused kernel still one call per
group and step after the load."""

from __future__ import annotations

import copy
import io

import pytest
import torch

import optimlab
from optimlab.fused import engine

from helpers import MLP, assert_close, param_groups, params_of, record, train
from optimizer_cases import TORCH_SAMPLES, ids

pytestmark = pytest.mark.usefixtures("float64")

LOAD_AT = (1, 6)  # right after the first step (lazily made buffers), and mid-run
AFTER = 50
RTOL = 1e-12
EXECUTIONS = {"foreach": {"foreach": True}, "for-loop": {"foreach": False}, "fused": {"fused": True}}


def _through_file(state_dict):
    """What a resume reads back: torch.save, then torch.load as Lightning does."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


# Loading into optimlab: each path; optimlab saving for torch: the default path (the
# state is the same on every path), the eager ones in the slow run.
DIRECTIONS = [("torch to optimlab", "fused"), ("torch to optimlab", "foreach"),
              ("optimlab to torch", "fused"),
              pytest.param("torch to optimlab", "for-loop", marks=pytest.mark.slow),
              pytest.param("optimlab to torch", "foreach", marks=pytest.mark.slow)]


@pytest.mark.parametrize(("direction", "path"), DIRECTIONS)
@pytest.mark.parametrize(("case", "sample"), TORCH_SAMPLES, ids=ids)
def test_twin_checkpoint_continues_exactly(case, sample, direction, path, request):
    if path == "fused":
        request.getfixturevalue("bit_exact")
    maximize = sample.get("maximize", False)

    # the default path where a chain has no fused form (fused=True refuses it, as torch does)
    execution = EXECUTIONS[path] if path != "fused" or case.fuses(sample) else {}

    def ours(model):
        return case.make(param_groups(model, sample, case.group2), **execution, **sample)

    def theirs(model):
        return case.make_torch(param_groups(model, sample, case.group2), foreach=False, **sample)

    saver, loader = (theirs, ours) if direction == "torch to optimlab" else (ours, theirs)
    model = MLP()
    optimizer = saver(model)
    checkpoints, resumed = {}, {}
    train(model, optimizer, max(LOAD_AT) + AFTER, maximize, hook=lambda i: i in LOAD_AT and checkpoints.update(
        {i: _through_file({"model": model.state_dict(), "optimizer": optimizer.state_dict()})}))
    for load_at, checkpoint in checkpoints.items():
        twin = MLP(seed=1)
        twin.load_state_dict(checkpoint["model"])
        twin_optimizer = loader(twin)
        twin_optimizer.load_state_dict(checkpoint["optimizer"])
        kernel_calls = engine.stats["calls"]
        train(twin, twin_optimizer, max(LOAD_AT) + AFTER - load_at, maximize)
        if direction == "torch to optimlab" and path == "fused" and case.fuses(sample):
            # One kernel call per group and step: torch's tensor steps became ints.
            assert engine.stats["calls"] - kernel_calls == 2 * (max(LOAD_AT) + AFTER - load_at), \
                "the fused kernel did not step each group in one call"
        resumed[load_at] = params_of(twin)
    assert checkpoints.keys() == set(LOAD_AT)
    for load_at, params in resumed.items():
        worst = assert_close(params, params_of(model), RTOL, f"{direction}, loaded after step {load_at}")
        record(f"checkpoint {direction} ({path}): {case.name}", worst)
    assert not torch.equal(params_of(model)[0], params_of(MLP())[0])


def _adam_checkpoint(**options):
    model = MLP()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=0.1, **options)
    train(model, optimizer, 3)
    return model, optimizer.state_dict()


def test_decoupled_weight_decay_is_a_constructor_option_checked_at_load():
    model, checkpoint = _adam_checkpoint(decoupled_weight_decay=True)
    ours = optimlab.Adam(model.parameters(), lr=0.01)
    before = copy.deepcopy(ours.state_dict())
    with pytest.raises(ValueError, match=r"param_groups\[0\] has decoupled_weight_decay=True, which this optimizer "
                                         r"cannot take \(it was built with decoupled_weight_decay=False\)"):
        ours.load_state_dict(checkpoint)
    assert ours.state_dict() == before  # nothing loaded
    decoupled = optimlab.Adam(model.parameters(), lr=0.01, decoupled_weight_decay=True)
    decoupled.load_state_dict(checkpoint)
    assert decoupled.state_dict()["param_groups"][0]["decoupled_weight_decay"] is True
    # torch.optim.AdamW loads any Adam checkpoint with decoupled decay, L2's too; so does AdamW.
    _, l2_checkpoint = _adam_checkpoint()
    twin = copy.deepcopy(model)
    ours, theirs = optimlab.AdamW(model.parameters(), lr=0.01), torch.optim.AdamW(twin.parameters(), lr=0.01)
    ours.load_state_dict(copy.deepcopy(l2_checkpoint))  # copies: a loaded state shares the dict's tensors
    theirs.load_state_dict(copy.deepcopy(l2_checkpoint))
    train(model, ours, 5)
    train(twin, theirs, 5)
    assert_close(params_of(model), params_of(twin), RTOL, "AdamW from Adam's checkpoint")


def test_differentiable_checkpoint_is_refused():
    model, checkpoint = _adam_checkpoint()
    checkpoint["param_groups"][0]["differentiable"] = True
    with pytest.raises(ValueError, match=r"param_groups\[0\] has differentiable=True"):
        optimlab.Adam(model.parameters()).load_state_dict(checkpoint)


def test_group_keys_the_checkpoint_lacks_take_this_optimizers_values():
    """torch.optim.RMSprop has no nesterov/dampening and torch.optim.Muon no maximize/fused:
    the loaded groups take ours (the first step used to raise KeyError)."""
    model = MLP()
    theirs = torch.optim.RMSprop(model.parameters(), lr=0.01, momentum=0.5)
    train(model, theirs, 2)
    ours = optimlab.RMSprop(model.parameters(), lr=0.01, momentum=0.5, foreach=True)
    ours.load_state_dict(theirs.state_dict())
    group = ours.param_groups[0]
    assert (group["nesterov"], group["dampening"], group["foreach"]) == (False, 0.0, True)
    train(model, ours, 1)


@pytest.mark.parametrize("direction", ["torch to optimlab", "optimlab to torch"])
def test_muon_momentum_buffer_both_ways(direction):
    """optimlab.Muon (the cases run MuonWithAdamW) and torch.optim.Muon take each other's
    momentum_buffer: the run that crossed over equals the one that did not."""
    make = {"optimlab": optimlab.Muon, "torch": torch.optim.Muon}
    saver, loader = direction.split(" to ")
    model = MLP()
    optimizer = make[saver]([p for p in model.parameters() if p.ndim == 2], lr=0.02)
    train(model, optimizer, 3)
    twin = copy.deepcopy(model)
    twin_optimizer = make[loader]([p for p in twin.parameters() if p.ndim == 2], lr=0.02)
    twin_optimizer.load_state_dict(_through_file(optimizer.state_dict()))
    train(model, optimizer, 10)
    train(twin, twin_optimizer, 10)
    assert_close(params_of(twin), params_of(model), RTOL, direction)
