"""What is tuned for each optimizer, declared as data.

Every optimizer gets its learning rate searched on a log scale over a range suited to its
family; anything else keeps the optimizer's own default (as in DeepOBS's protocol), so an
equal trial budget buys the same search for everyone. To search another hyperparameter for
an optimizer, add a `Hyperparameter` to its tuple.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    low: float
    high: float
    log: bool = True

    def to_dict(self) -> dict:
        return {"name": self.name, "low": self.low, "high": self.high, "log": self.log}


def _lr(low: float, high: float) -> tuple[Hyperparameter, ...]:
    return (Hyperparameter("lr", low, high),)


PLAIN_SGD = _lr(1e-4, 3.0)
MOMENTUM_SGD = _lr(1e-5, 1.0)
ADAPTIVE = _lr(1e-5, 1.0)

SEARCH_SPACES: dict[str, tuple[Hyperparameter, ...]] = {
    "gd": PLAIN_SGD,
    "sgd": PLAIN_SGD,
    "momentum": MOMENTUM_SGD,
    "nesterov": MOMENTUM_SGD,
    "ema_momentum": PLAIN_SGD,  # EMA momentum averages gradients, so its steps are plain-SGD sized
    "adagrad": _lr(1e-4, 3.0),
    "adadelta": _lr(1e-2, 30.0),  # Adadelta's lr multiplies an already unit-corrected step (default 1.0)
    "rmsprop": ADAPTIVE,
    "rmsprop_centered": ADAPTIVE,
    "adam": ADAPTIVE,
    "adamw": ADAPTIVE,
    "amsgrad": ADAPTIVE,
    "adamax": ADAPTIVE,
    "nadam": ADAPTIVE,
    "radam": ADAPTIVE,
    "lion": _lr(1e-6, 0.1),  # unit-size sign steps: 3-10x smaller than Adam's (Chen et al. 2023)
    # lr caps Adafactor's relative step, a fraction of each tensor's RMS per step (0.01 in the paper).
    "adafactor": _lr(1e-4, 1.0),
    # One lr for Muon's orthogonalized steps (~0.02 in Jordan et al.) and AdamW's (the non-matrices).
    "muon": _lr(1e-4, 1.0),
}
DEFAULT_SPACE = _lr(1e-5, 3.0)  # for optimizers registered after this table was written


def search_space(optimizer: str) -> tuple[Hyperparameter, ...]:
    return SEARCH_SPACES.get(optimizer, DEFAULT_SPACE)
