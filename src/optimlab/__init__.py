"""optimlab: composable, fast PyTorch optimizers, and a lab to choose among them.

>>> import optimlab
>>> optimizer = optimlab.Adam(model.parameters(), lr=1e-3)            # doctest: +SKIP
>>> optimizer = optimlab.create("nesterov", model.parameters(), lr=0.1) # doctest: +SKIP
>>> transform = optimlab.chain(optimlab.clip_by_global_norm(1.0), optimlab.scale_by_adam(),
...                            optimlab.add_decayed_weights(0.01),
...                            optimlab.scale_by_learning_rate(3e-4))
"""

from . import schedules
from .aliases import (
    SGD, Adadelta, Adafactor, Adagrad, Adam, Adamax, AdamW, EMAMomentum, Lion, Muon, MuonWithAdamW, NAdam, RAdam,
    RMSprop, adadelta, adafactor, adagrad, adam, adamax, adamw, ema_momentum, lion, muon, muon_with_adamw, nadam,
    radam, rmsprop, sgd,
)
from .catalog import create, optimizer_class, optimizers
from .optimizer import Optimizer
from .tensorlist import TensorList
from .transform import Transform, chain
from .transforms import *  # noqa: F403 (the transforms are the public API)
from .transforms import __all__ as _transforms

__version__ = "0.1.0"

__all__ = [
    "SGD", "Adadelta", "Adafactor", "Adagrad", "Adam", "Adamax", "AdamW", "EMAMomentum", "Lion", "Muon",
    "MuonWithAdamW", "NAdam", "RAdam", "RMSprop", "adadelta", "adafactor", "adagrad", "adam", "adamax", "adamw",
    "ema_momentum", "lion", "muon", "muon_with_adamw", "nadam", "radam", "rmsprop", "sgd",
    "create", "optimizer_class", "optimizers", "Optimizer", "TensorList", "Transform", "chain", "schedules", *_transforms,
]
