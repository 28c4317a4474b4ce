"""Optimizers with a train and an eval mode (Schedule-Free: gradients are taken at y, the
point to evaluate is the average x): the lab steps them in train mode and evaluates them in
eval mode. Other optimizers are left as they are."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def has_modes(optimizer: torch.optim.Optimizer) -> bool:
    """The optimizer has ``train()`` and ``eval()`` (`optimlab.ScheduleFreeSGD`, the schedulefree package's)."""
    return callable(getattr(optimizer, "train", None)) and callable(getattr(optimizer, "eval", None))


def training(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """``optimizer`` in train mode where it has one, ready to step."""
    if has_modes(optimizer):
        optimizer.train()
    return optimizer


@contextlib.contextmanager
def evaluating(optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Within: the parameters at the point to evaluate (``optimizer.eval()``); after: train mode again."""
    if not has_modes(optimizer):
        yield
        return
    optimizer.eval()
    try:
        yield
    finally:
        optimizer.train()
