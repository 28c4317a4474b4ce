"""Small models, training loops and comparisons shared by the optimizer tests."""

from __future__ import annotations

import copy
import socket
from typing import Any, Callable

import torch
from torch import nn

PARITY_STEPS = 200
PARITY_RTOL = 1e-10

_X = torch.randn(16, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
_Y = torch.randn(16, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)


class MLP(nn.Module):
    """4 -> 6 -> 2 with tanh; ``dtypes`` gives each layer's dtype (mixed dtypes allowed)."""

    def __init__(self, dtypes=(torch.float64, torch.float64), seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.first = nn.Linear(4, 6).to(dtypes[0])
        self.second = nn.Linear(6, 2).to(dtypes[1])

    def forward(self, x):
        hidden = torch.tanh(self.first(x.to(self.first.weight.dtype)))
        return self.second(hidden.to(self.second.weight.dtype))

    def loss(self, maximize: bool = False):
        loss = (self(_X) - _Y.to(self.second.weight.dtype)).pow(2).mean().to(torch.float64)
        return -loss if maximize else loss


def param_groups(model: MLP, sample: dict[str, Any], extra: dict[str, Any] | None = None) -> list[dict]:
    """Two groups: the first layer with the sample's options (the constructor's defaults),
    the second with half the learning rate, its own weight decay and ``extra`` options."""
    second = {"params": list(model.second.parameters()), "weight_decay": 0.03, **(extra or {})}
    lr = sample.get("lr")
    if isinstance(lr, (int, float)):
        second["lr"] = lr * 0.5
    return [{"params": list(model.first.parameters())}, second]


def train(model: MLP, optimizer, steps: int, maximize: bool = False, scheduler=None,
          hook: Callable[[int], None] | None = None) -> None:
    for i in range(steps):
        if hook is not None:
            hook(i)
        optimizer.zero_grad()
        model.loss(maximize).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()


def params_of(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def max_rel_diff(actual: list[torch.Tensor], expected: list[torch.Tensor]) -> float:
    """max over elements of |a - e| / |e| (elements with e == 0 compare absolutely)."""
    worst = 0.0
    for a, e in zip(actual, expected, strict=True):
        assert a.shape == e.shape and a.dtype == e.dtype
        if not e.numel():
            continue
        diff = (a - e).abs()
        scale = e.abs()
        rel = torch.where(scale > 0, diff / torch.where(scale > 0, scale, 1), diff)
        worst = max(worst, rel.max().item())
    return worst


def assert_close(actual, expected, rtol: float, what: str = "") -> float:
    worst = max_rel_diff(actual, expected)
    assert worst <= rtol, f"{what}: max relative difference {worst:.3e} > {rtol:.0e}"
    return worst


def twins(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    return model, copy.deepcopy(model)


# Worst parity difference per test, printed at the end of the session (see conftest).
PARITY_LOG: dict[str, float] = {}


def record(key: str, value: float) -> None:
    PARITY_LOG[key] = max(PARITY_LOG.get(key, 0.0), value)


def free_port() -> int:
    """A free TCP port on localhost, for a torch.distributed rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tanh_regression(steps: int = 200):
    """A float64 5-4-3 tanh MLP and ``steps`` fixed batches (x, y) of 8 rows, for the
    trajectory comparisons with reference packages."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    xs = torch.randn(steps, 8, 5, generator=g, dtype=torch.float64)
    return model, xs, torch.randn(steps, 8, 3, generator=g, dtype=torch.float64)


def mse_step(model: nn.Module, optimizer, x, y) -> None:
    optimizer.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    optimizer.step()


def flat_params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def assert_16_bit_run_within_two_ulps(make: Callable[[list], torch.optim.Optimizer], dtype: torch.dtype,
                                      steps: int = 20) -> torch.optim.Optimizer:
    """``make(param_groups)`` on 16-bit parameters with the group key ``state_dtype=torch.float32``
    and on their float32 copies, given the same gradients: the 16-bit run keeps float32 buffers and
    stays within two 16-bit ulps (of the largest weight) of the float32 run, which moved further
    than that. Returns the 16-bit run's optimizer."""
    generator = torch.Generator().manual_seed(6)
    start = [torch.randn(shape, generator=generator).to(dtype) for shape in ((6, 4), (6,))]
    half = [nn.Parameter(x.clone()) for x in start]
    wide = [nn.Parameter(x.float()) for x in start]
    optimizers = [make([{"params": half, "state_dtype": torch.float32}]), make([{"params": wide}])]
    for _ in range(steps):
        grads = [torch.randn(x.shape, generator=generator).to(dtype) for x in start]
        for p, q, g in zip(half, wide, grads):
            p.grad, q.grad = g.clone(), g.float()
        for optimizer in optimizers:
            optimizer.step()
    assert all(buffer.dtype == torch.float32 for buffer in optimizers[0].state[half[0]].values()
               if isinstance(buffer, torch.Tensor) and buffer.is_floating_point())
    for ours, reference, x in zip(half, wide, start):
        assert ours.dtype == dtype and torch.isfinite(ours).all()
        within = 2 * torch.finfo(dtype).eps * reference.abs().max()
        assert (ours.float() - reference).abs().max() <= within < 0.25 * (reference - x.float()).abs().max()
    return optimizers[0]


def assert_follows_numpy_formula(optimizer: torch.optim.Optimizer, params: list[torch.Tensor], reference: Callable,
                                 hyperparams: dict[str, Any], steps: int, rng) -> None:
    """``optimizer`` over float64 ``params`` and the NumPy ``reference`` step (one state per
    tensor), fed the same noisy gradients of |x|^2 / 2 (taken at optimizer's parameters), agree
    to 1e-10 after ``steps`` steps."""
    import numpy as np

    xs = [p.detach().numpy().copy() for p in params]
    states: list[dict] = [{} for _ in params]
    for t in range(1, steps + 1):
        grads = [rng.standard_normal(p.shape) + p.detach().numpy() for p in params]
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g)
        optimizer.step()
        xs = [reference(x, g, state, t, hyperparams) for x, g, state in zip(xs, grads, states)]
    for p, x in zip(params, xs):
        np.testing.assert_allclose(p.detach().numpy(), x, rtol=1e-10, atol=1e-14)
