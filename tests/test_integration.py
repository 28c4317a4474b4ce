"""optimlab in torch's machinery (AMP, torch.compile, DDP, FSDP), each against torch.optim."""

from __future__ import annotations

import copy

import pytest
import torch

import optimlab


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))


def _max_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


def test_grad_scaler_with_bfloat16_autocast_matches_torch():
    reference, model = _mlp(), _mlp()
    pairs = [
        (reference, torch.optim.Adam(reference.parameters(), lr=1e-2), torch.amp.GradScaler("cpu")),
        (model, optimlab.Adam(model.parameters(), lr=1e-2), torch.amp.GradScaler("cpu")),
    ]
    x, y = torch.randn(64, 8), torch.randn(64, 1)
    for _ in range(30):
        for net, optimizer, scaler in pairs:
            optimizer.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = torch.nn.functional.mse_loss(net(x).float(), y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
    assert pairs[0][2].get_scale() == pairs[1][2].get_scale()
    assert _max_difference(reference, model) < 1e-5  # float32 rounding of two op orders


def test_grad_scaler_skips_the_step_on_inf():
    model = _mlp()
    optimizer = optimlab.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu")
    before = copy.deepcopy(model)
    loss = model(torch.full((4, 8), float("inf"))).sum()
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    assert _max_difference(before, model) == 0
    assert not optimizer.state  # a skipped step creates no state


@pytest.mark.slow
def test_compiled_training_step_with_a_scheduler_never_recompiles():
    """torch.compile of a whole training step (forward, backward, optimizer and scheduler
    steps) with the learning rate changing every step: dynamo's counters show one set of
    graphs, made at the first step, and the results are the eager run's."""
    from torch._dynamo.utils import counters

    x, y = torch.randn(32, 8), torch.randn(32, 1)

    def run(compiled: bool):
        net = _mlp()
        optimizer = optimlab.AdamW(net.parameters(), lr=1e-2)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (1 + 0.1 * step))

        def train_step():
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(net(x), y)
            loss.backward()
            optimizer.step()
            scheduler.step()
            return loss

        step = torch.compile(train_step) if compiled else train_step
        graphs = []
        for _ in range(6):
            step()
            graphs.append(counters["stats"]["unique_graphs"])
        return net, optimizer, graphs

    torch._dynamo.reset()
    counters.clear()
    compiled, compiled_optimizer, graphs = run(compiled=True)
    eager, _, _ = run(compiled=False)
    assert graphs[0] > 0 and graphs[1:] == [graphs[0]] * 5, graphs
    assert len({group["lr"] for group in compiled_optimizer.param_groups}) == 1
    assert compiled_optimizer.param_groups[0]["lr"] < 1e-2
    assert _max_difference(eager, compiled) < 1e-6  # compiled forward/backward round differently
