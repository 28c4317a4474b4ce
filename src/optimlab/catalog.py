"""Optimizers by name: ``create("adam", model.parameters(), lr=3e-4)``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import aliases
from .optimizer import Optimizer


@dataclass(frozen=True)
class Entry:
    factory: Callable[..., Optimizer]
    description: str
    preset: dict[str, Any] = field(default_factory=dict)


CATALOG: dict[str, Entry] = {
    "gd": Entry(aliases.SGD, "gradient descent: p -= lr * g (full batch or mini-batch)"),
    "sgd": Entry(aliases.SGD, "torch.optim.SGD: optional momentum, dampening, Nesterov, L2"),
    "momentum": Entry(aliases.SGD, "heavy-ball momentum: v = 0.9 v + g; p -= lr * v", {"momentum": 0.9}),
    "ema_momentum": Entry(aliases.EMAMomentum, "EMA momentum: v = 0.9 v + 0.1 g; p -= lr * v"),
    "nesterov": Entry(aliases.SGD, "Nesterov momentum (Sutskever et al. form)", {"momentum": 0.9, "nesterov": True}),
    "adagrad": Entry(aliases.Adagrad, "Adagrad: per-coordinate steps from summed squared gradients"),
    "adadelta": Entry(aliases.Adadelta, "Adadelta: unit-corrected RMS steps, no learning rate needed"),
    "rmsprop": Entry(aliases.RMSprop, "RMSprop: steps scaled by an EMA of squared gradients"),
    "rmsprop_centered": Entry(aliases.RMSprop, "centered RMSprop: scaled by the gradient's variance", {"centered": True}),
    "adam": Entry(aliases.Adam, "Adam: bias-corrected first and second moments"),
    "adamw": Entry(aliases.AdamW, "AdamW: Adam with decoupled weight decay (0.01)"),
    "amsgrad": Entry(aliases.Adam, "AMSGrad: Adam with a non-decreasing second moment", {"amsgrad": True}),
    "adamax": Entry(aliases.Adamax, "AdaMax: Adam with the infinity norm"),
    "nadam": Entry(aliases.NAdam, "NAdam: Adam with Nesterov momentum"),
    "radam": Entry(aliases.RAdam, "RAdam: Adam with a rectified warm-up of the adaptive step"),
    "lion": Entry(aliases.Lion, "Lion: sign of interpolated momentum, decoupled decay"),
    "adafactor": Entry(aliases.Adafactor, "Adafactor: factored second moments, steps relative to the weights' scale"),
    "muon": Entry(aliases.MuonWithAdamW, "Muon: orthogonalized momentum for 2-D weights, AdamW for the rest"),
}


def optimizers() -> dict[str, str]:
    """Every name `create` takes, with a one-line description."""
    return {name: entry.description for name, entry in CATALOG.items()}


def create(name: str, params, **kwargs: Any) -> Optimizer:
    """The optimizer called ``name`` (see `optimizers`), over ``params``.

    ``kwargs`` are the torch.optim keyword arguments of that optimizer; they override the
    name's preset (``create("momentum", ps, momentum=0.5)``).
    """
    entry = CATALOG.get(name.lower() if isinstance(name, str) else name)
    if entry is None:
        raise ValueError(f"unknown optimizer {name!r}; valid names: {', '.join(CATALOG)}")
    return entry.factory(params, **{**entry.preset, **kwargs})
