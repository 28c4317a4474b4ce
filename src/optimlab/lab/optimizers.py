"""The optimizers the lab compares: the seed optimizers of `optimlab.create`, checked by name."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

import optimlab

#: Options the lab sets beside the tuned ones, where a default would measure the CPU rather
#: than the method. Muon's Newton-Schulz products in bfloat16 (torch's default, for GPU
#: tensor cores) run ~27x slower than in float32 on a CPU without bfloat16 matrix units
#: (mlp_mnist1d: 32.5 ms a step against 1.2 ms), which would decide its time to target.
FIXED_OPTIONS: dict[str, dict[str, Any]] = {"muon": {"ns_dtype": torch.float32}}


def optimizer_names() -> tuple[str, ...]:
    return tuple(optimlab.optimizers())


def check_optimizers(names: Iterable[str]) -> list[str]:
    """The names lower-cased, or a ValueError naming the bad one and listing the valid ones."""
    valid = optimlab.optimizers()
    checked = []
    for name in names:
        if name.lower() not in valid:
            raise ValueError(f"unknown optimizer {name!r}; valid optimizers: {', '.join(valid)}")
        checked.append(name.lower())
    if not checked:
        raise ValueError(f"no optimizers given; valid optimizers: {', '.join(valid)}")
    return checked


def make(optimizer: str, params, hparams: dict[str, float]) -> torch.optim.Optimizer:
    """``optimlab.create(optimizer, params, **hparams)`` with the lab's `FIXED_OPTIONS`."""
    return optimlab.create(optimizer, params, **{**FIXED_OPTIONS.get(optimizer, {}), **hparams})
