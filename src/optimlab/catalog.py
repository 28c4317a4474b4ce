"""Optimizers by name: ``create("adam", model.parameters(), lr=3e-4)``.

The catalog is the one list of names: `create`, `optimizers()`, ``optimlab list``, the lab's
search spaces and the test registry all read it. Each entry says what the name builds, a
one-line description, the learning rates worth searching and a learning rate to start from.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .optimizer import Optimizer


@dataclass(frozen=True)
class Hyperparameter:
    """A searched hyperparameter: ``low <= value <= high``, on a log scale by default."""

    name: str
    low: float
    high: float
    log: bool = True

    def to_dict(self) -> dict:
        return {"name": self.name, "low": self.low, "high": self.high, "log": self.log}


def lr_range(low: float, high: float) -> tuple[Hyperparameter, ...]:
    """A search space of the learning rate alone, log-uniform on [low, high]."""
    return (Hyperparameter("lr", low, high),)


# Learning-rate ranges by family: everything but the learning rate keeps the optimizer's
# default (DeepOBS's protocol), so an equal trial budget buys the same search for everyone.
PLAIN_SGD = lr_range(1e-4, 3.0)
MOMENTUM_SGD = lr_range(1e-5, 1.0)
ADAPTIVE = lr_range(1e-5, 1.0)
# A multiplier of a learning rate the optimizer estimates itself (1.0: its own estimate).
PARAMETER_FREE = lr_range(0.1, 10.0)


@dataclass(frozen=True)
class Entry:
    """One name of the catalog.

    ``alias`` names the torch.optim-style class of `optimlab.aliases` that builds it (by name,
    so reading the catalog imports no torch: ``optimlab list`` answers at once);
    ``factory(params, **preset, **kwargs)`` builds it; ``search_space`` is what the lab tunes;
    ``example_lr`` is a sensible untuned starting point (examples and convergence tests use it);
    ``full_batch`` makes the lab step it on the whole training set (batch gradient descent).
    """

    alias: str
    description: str
    search_space: tuple[Hyperparameter, ...]
    example_lr: float
    preset: dict[str, Any] = field(default_factory=dict)
    full_batch: bool = False

    @property
    def factory(self) -> type[Optimizer]:
        return importlib.import_module(".aliases", __package__).EXPORTS[self.alias]


CATALOG: dict[str, Entry] = {
    "gd": Entry("SGD", "gradient descent: p -= lr * g on the full batch (the lab's whole training set)",
                PLAIN_SGD, 0.1, full_batch=True),
    "sgd": Entry("SGD", "stochastic gradient descent (torch.optim.SGD) on minibatches", PLAIN_SGD, 0.1),
    "momentum": Entry("SGD", "heavy-ball momentum: v = 0.9 v + g; p -= lr * v", MOMENTUM_SGD, 0.01,
                      {"momentum": 0.9}),
    # EMA momentum averages gradients, so its steps are plain-SGD sized.
    "ema_momentum": Entry("EMAMomentum", "EMA momentum: v = 0.9 v + 0.1 g; p -= lr * v", PLAIN_SGD, 0.1),
    "nesterov": Entry("SGD", "Nesterov momentum (Sutskever et al. form)", MOMENTUM_SGD, 0.01,
                      {"momentum": 0.9, "nesterov": True}),
    "adagrad": Entry("Adagrad", "Adagrad: per-coordinate steps from summed squared gradients",
                     lr_range(1e-4, 3.0), 1e-2),
    # Adadelta's lr multiplies an already unit-corrected step (default 1.0).
    "adadelta": Entry("Adadelta", "Adadelta: unit-corrected RMS steps, no learning rate needed",
                      lr_range(1e-2, 30.0), 1.0),
    "rmsprop": Entry("RMSprop", "RMSprop: steps scaled by an EMA of squared gradients", ADAPTIVE, 1e-3),
    "rmsprop_centered": Entry("RMSprop", "centered RMSprop: scaled by the gradient's variance", ADAPTIVE,
                              1e-3, {"centered": True}),
    "adam": Entry("Adam", "Adam: bias-corrected first and second moments", ADAPTIVE, 1e-3),
    "adamw": Entry("AdamW", "AdamW: Adam with decoupled weight decay (0.01)", ADAPTIVE, 1e-3),
    "amsgrad": Entry("Adam", "AMSGrad: Adam with a non-decreasing second moment", ADAPTIVE, 1e-3,
                     {"amsgrad": True}),
    "adamax": Entry("Adamax", "AdaMax: Adam with the infinity norm", ADAPTIVE, 2e-3),
    "nadam": Entry("NAdam", "NAdam: Adam with Nesterov momentum", ADAPTIVE, 2e-3),
    "radam": Entry("RAdam", "RAdam: Adam with a rectified warm-up of the adaptive step", ADAPTIVE, 1e-3),
    "adabelief": Entry("AdaBelief", "AdaBelief: Adam scaled by the gradient's deviation from its EMA",
                       ADAPTIVE, 1e-3),
    "adopt": Entry("ADOPT", "ADOPT: the gradient normalized by the previous second moment, clipped, then averaged",
                   ADAPTIVE, 1e-3),
    "ademamix": Entry("AdEMAMix", "AdEMAMix: Adam plus a slow EMA of the gradient, mixed in with weight alpha",
                      ADAPTIVE, 1e-3),
    "mars": Entry("MARS", "MARS-AdamW: AdamW on a variance-reduced gradient, clipped to norm 1 per tensor",
                  ADAPTIVE, 3e-3),
    # Unit-size sign steps: 3-10x smaller than Adam's (Chen et al. 2023).
    "lion": Entry("Lion", "Lion: sign of interpolated momentum, decoupled decay", lr_range(1e-6, 0.1), 3e-4),
    # lr caps Adafactor's relative step, a fraction of each tensor's RMS per step (0.01 in the paper).
    "adafactor": Entry("Adafactor", "Adafactor: factored second moments, steps relative to the weights' scale",
                       lr_range(1e-4, 1.0), 1e-2),
    # One lr for Muon's orthogonalized steps (~0.02 in Jordan et al.) and AdamW's (the non-matrices).
    "muon": Entry("MuonWithAdamW", "Muon: orthogonalized momentum for 2-D weights, AdamW for the rest",
                  lr_range(1e-4, 1.0), 0.02),
    "soap": Entry("SOAP", "SOAP: Adam in the eigenbasis of Shampoo's two-sided preconditioner", ADAPTIVE, 3e-3),
    # Adam's step sizes (grafting), so Adam's learning rates.
    "shampoo": Entry("Shampoo", "Shampoo: two-sided inverse-fourth-root preconditioner, Adam's step size grafted on",
                     ADAPTIVE, 1e-3),
    # Steps clipped to RMS 1.1 of the whitened momentum: Adam-like learning rates.
    "psgd_kron": Entry("PSGDKron", "PSGD-Kron: momentum whitened by a Kronecker-factored preconditioner fitted "
                       "on its Lie group", ADAPTIVE, 1e-3),
    # lr is the Adam phase's; the SGD phase's is estimated.
    "swats": Entry("SWATS", "SWATS: Adam that switches to SGD with momentum at a learning rate it estimates",
                   ADAPTIVE, 1e-3),
    # Each tensor moves by lr times its own norm per step: lr is a relative step size.
    "lamb": Entry("LAMB", "LAMB: Adam plus decoupled decay, each tensor's step scaled to its weights' norm",
                  ADAPTIVE, 1e-2),
    # trust_coefficient=1e-3 scales every step down: LARS's learning rates are SGD's x ~100-1000.
    "lars": Entry("LARS", "LARS: SGD with momentum, each tensor's step scaled by ||w|| / (||g|| + wd ||w||)",
                  lr_range(1e-3, 300.0), 3.0),
    "cautious_adamw": Entry("CautiousAdamW", "Cautious AdamW: AdamW's step zeroed where it disagrees in sign "
                            "with the gradient", ADAPTIVE, 1e-3),
    "cautious_lion": Entry("CautiousLion", "Cautious Lion: Lion's sign step zeroed where it disagrees with the "
                           "gradient", lr_range(1e-6, 0.1), 3e-4),
    # Schedule-Free's lr is its base optimizer's (SGD's, Adam's); the lab evaluates the average x.
    "schedulefree_sgd": Entry("ScheduleFreeSGD", "Schedule-Free SGD: momentum as interpolation with an iterate "
                              "average, no schedule", PLAIN_SGD, 1.0),
    "schedulefree_adamw": Entry("ScheduleFreeAdamW", "Schedule-Free AdamW: Adam's steps, an iterate average in "
                                "place of a schedule", ADAPTIVE, 2.5e-3),
    # Prodigy's and D-Adaptation's lr multiplies the step size they estimate: 1.0 is "no tuning".
    "prodigy": Entry("Prodigy", "Prodigy: Adam with a learning rate it estimates (lr=1 is no tuning)",
                     PARAMETER_FREE, 1.0),
    "dadapt_adam": Entry("DAdaptAdam", "D-Adaptation Adam: Adam with a learning rate from a distance bound "
                         "(lr=1 is no tuning)", PARAMETER_FREE, 1.0),
}


#: The names that need no learning rate at their defaults (they estimate their step size, or
#: average away the need for a schedule): the lab's self-tuning track runs them untuned.
SELF_TUNING = ("prodigy", "dadapt_adam", "schedulefree_sgd", "schedulefree_adamw")


def optimizers() -> dict[str, str]:
    """Every name `create` takes, with a one-line description."""
    return {name: entry.description for name, entry in CATALOG.items()}


def entry(name: str) -> Entry:
    """The catalog entry called ``name`` (case-insensitive), or a ValueError listing the names."""
    found = CATALOG.get(name.lower() if isinstance(name, str) else name)
    if found is None:
        raise ValueError(f"unknown optimizer {name!r}; valid names: {', '.join(CATALOG)}")
    return found


def create(name: str, params, **kwargs: Any) -> Optimizer:
    """The optimizer called ``name`` (see `optimizers`), over ``params``.

    ``kwargs`` are the torch.optim keyword arguments of that optimizer; they override the
    name's preset (``create("momentum", ps, momentum=0.5)``).
    """
    found = entry(name)
    return found.factory(params, **{**found.preset, **kwargs})


def optimizer_class(name: str) -> type[Optimizer]:
    """The optimizer called ``name`` as a class taking ``(params, **kwargs)``, the shape
    trainers expect of a torch.optim class (Hugging Face's ``optimizer_cls_and_kwargs``):
    ``optimizer_class("nesterov")(params, lr=0.1)`` is ``create("nesterov", params, lr=0.1)``."""
    found = entry(name)
    base = found.factory

    def __init__(self, params, **kwargs):
        base.__init__(self, params, **{**found.preset, **kwargs})

    return type(base.__name__, (base,), {"__init__": __init__, "__doc__": found.description,
                                         "__qualname__": f"optimizer_class({name!r})"})
