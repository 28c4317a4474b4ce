"""Save/load mid-run resumes bit-exactly: k steps, torch.save model+optimizer state to a
BytesIO, load into a FRESH model and FRESH optimizer, continue; the parameters equal
(torch.equal) those of the uninterrupted run."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch

import optimlab
from helpers import MLP, param_groups
from optimizer_cases import ALL_SAMPLES, ids

STEPS, SPLIT = 40, 17


def _run(case, sample, dtypes, split=None, steps=STEPS):
    def fresh():
        model = MLP(dtypes)
        return model, case.make(param_groups(model, sample, case.group2), **sample)

    model, optimizer = fresh()
    maximize = sample.get("maximize", False)
    for i in range(steps):
        if i == split:
            buffer = io.BytesIO()
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
            del model, optimizer
            buffer.seek(0)
            checkpoint = torch.load(buffer, weights_only=False)
            model, optimizer = fresh()
            with torch.no_grad():  # the fresh model must not already hold the answer
                for p in model.parameters():
                    p.add_(1.0)
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
        optimizer.zero_grad()
        model.loss(maximize).backward()
        optimizer.step()
    return model, optimizer


@pytest.mark.parametrize("dtypes", [(torch.float64, torch.float64), (torch.float32, torch.float32)],
                         ids=["float64", "float32"])
@pytest.mark.parametrize(("case", "sample"), ALL_SAMPLES, ids=ids)
def test_resume_is_bit_exact(case, sample, dtypes):
    straight, straight_optimizer = _run(case, sample, dtypes)
    resumed, resumed_optimizer = _run(case, sample, dtypes, split=SPLIT)
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    for p, q in zip(straight.parameters(), resumed.parameters()):
        s, r = straight_optimizer.state[p], resumed_optimizer.state[q]
        assert s.keys() == r.keys()
        for key in s:
            if torch.is_tensor(s[key]):
                assert s[key].dtype == r[key].dtype, key
                assert torch.equal(s[key], r[key]), key
            else:
                assert s[key] == r[key], key
    # The interrupted run really did continue from the checkpoint.
    assert resumed_optimizer.state[next(iter(resumed.parameters()))]["step"] == STEPS


def test_resume_with_schedule_lr_is_bit_exact():
    """A schedule as lr pickles with the checkpoint and resumes from the state's step."""
    schedule = optimlab.schedules.warmup_cosine(0.05, warmup_steps=5, decay_steps=STEPS)

    def run(split=None):
        def fresh():
            model = MLP()
            return model, optimlab.Adam(model.parameters(), lr=schedule)

        model, optimizer = fresh()
        for i in range(STEPS):
            if i == split:
                buffer = io.BytesIO()
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
                buffer.seek(0)
                checkpoint = torch.load(buffer, weights_only=False)
                model, optimizer = fresh()
                model.load_state_dict(checkpoint["model"])
                optimizer.load_state_dict(checkpoint["optimizer"])
            optimizer.zero_grad()
            model.loss().backward()
            optimizer.step()
        return model

    for a, b in zip(run().parameters(), run(SPLIT).parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize(("case", "sample"), ALL_SAMPLES, ids=ids)
def test_a_copy_of_the_model_and_optimizer_steps_as_the_original(case, sample, how):
    """``copy.deepcopy`` or a pickle (``torch.save`` of the objects) of a model with its
    optimizer mid-run: the copy continues bit-exactly as the original does (torch.optim
    pickles its optimizers' state and param groups only; an alias's chain comes along)."""
    model = MLP()
    optimizer = case.make(param_groups(model, sample, case.group2), **sample)
    maximize = sample.get("maximize", False)

    def train(model, optimizer, steps):
        for _ in range(steps):
            optimizer.zero_grad()
            model.loss(maximize).backward()
            optimizer.step()

    train(model, optimizer, 5)
    pair = {"model": model, "optimizer": optimizer}
    twin = copy.deepcopy(pair) if how == "deepcopy" else pickle.loads(pickle.dumps(pair))
    train(model, optimizer, 5)
    train(twin["model"], twin["optimizer"], 5)
    for a, b in zip(model.parameters(), twin["model"].parameters()):
        assert torch.equal(a, b)
