"""Shared data, model and training loop for the examples (not an example itself).

Every example script only shows how to build its optimizer and hands it to `run`:

    from _common import run
    run(lambda params: optimlab.Adam(params, lr=1e-3), "Adam")

Data: scikit-learn's bundled 8x8 digits (1797 images, 10 classes, no download),
standardized and split 80/20. Model: a 64-64-10 MLP (optionally with BatchNorm).
The loss printed is the cross-entropy on the whole training set, measured without
gradients every `log_every` steps, so it is comparable across optimizers and batch sizes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.nn import functional as F

# Tiny tensors: extra threads only add overhead. Override with OMP_NUM_THREADS.
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

MakeOptimizer = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
_DATA: tuple[torch.Tensor, ...] | None = None


def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train, y_train, x_test, y_test): standardized 8x8 digits, a fixed 80/20 split."""
    global _DATA
    if _DATA is None:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = torch.tensor(bunch.data, dtype=torch.float32)
        y = torch.tensor(bunch.target, dtype=torch.long)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        x, y = x[order], y[order]
        n_train = int(0.8 * len(x))
        mean, std = x[:n_train].mean(0), x[:n_train].std(0).clamp_min(1e-3)
        x = (x - mean) / std
        _DATA = (x[:n_train], y[:n_train], x[n_train:], y[n_train:])
    return _DATA  # type: ignore[return-value]


def mlp(batchnorm: bool = False, hidden: int = 64, seed: int = 0) -> nn.Sequential:
    """64 -> hidden -> 10, ReLU; the same initial weights for every optimizer (fixed seed)."""
    torch.manual_seed(seed)
    norm = [nn.BatchNorm1d(hidden)] if batchnorm else []
    return nn.Sequential(nn.Linear(64, hidden), *norm, nn.ReLU(), nn.Linear(hidden, 10))


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(cross-entropy, accuracy) on (x, y), in eval mode."""
    was_training = model.training
    model.eval()
    logits = model(x)
    model.train(was_training)
    return F.cross_entropy(logits, y).item(), (logits.argmax(-1) == y).float().mean().item()


def train(
    make_optimizer: MakeOptimizer,
    steps: int = 300,
    batch_size: int | None = 64,
    log_every: int = 50,
    batchnorm: bool = False,
    on_log: Callable[[int, float], None] | None = None,
) -> dict[str, object]:
    """Train a fresh MLP for `steps` optimizer steps; returns the logged losses and test accuracy.

    ``batch_size=None`` is full-batch gradient descent; otherwise each step draws a random
    mini-batch (stochastic / mini-batch gradient descent). ``on_log(step, loss)`` is called
    at step 0 and every ``log_every`` steps.
    """
    x_train, y_train, x_test, y_test = digits()
    model = mlp(batchnorm)
    optimizer = make_optimizer(model.parameters())
    # Schedule-Free trains at y and is evaluated at its average x: train() and eval() switch.
    modes = hasattr(optimizer, "train") and hasattr(optimizer, "eval")
    if modes:
        optimizer.train()
    generator = torch.Generator().manual_seed(1)
    log: dict[int, float] = {}

    def record(step: int) -> None:
        if modes:
            optimizer.eval()
        log[step] = evaluate(model, x_train, y_train)[0]
        if modes:
            optimizer.train()
        if on_log is not None:
            on_log(step, log[step])

    record(0)
    for step in range(1, steps + 1):
        if batch_size is None:
            xb, yb = x_train, y_train
        else:
            index = torch.randint(len(x_train), (batch_size,), generator=generator)
            xb, yb = x_train[index], y_train[index]
        optimizer.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        optimizer.step()
        if step % log_every == 0 or step == steps:
            record(step)
    if modes:
        optimizer.eval()
    return {"losses": log, "test_accuracy": evaluate(model, x_test, y_test)[1]}


def run(make_optimizer: MakeOptimizer, title: str, **train_kwargs) -> dict[str, object]:
    """Train, printing the training loss as it falls, then the test accuracy and time."""
    print(f"{title}")
    print(f"  {'step':>5}  {'train loss':>10}")
    start = time.perf_counter()
    result = train(make_optimizer, on_log=lambda step, loss: print(f"  {step:5d}  {loss:10.4f}"), **train_kwargs)
    seconds = time.perf_counter() - start
    losses = result["losses"]
    first, last = losses[min(losses)], losses[max(losses)]
    print(f"  loss {first:.4f} -> {last:.4f}; test accuracy {result['test_accuracy']:.3f}; {seconds:.1f} s")
    return result
