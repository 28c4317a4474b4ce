"""optimlab: composable, fast PyTorch optimizers, and a lab to choose among them.

>>> import optimlab
>>> optimizer = optimlab.Adam(model.parameters(), lr=1e-3)            # doctest: +SKIP
>>> optimizer = optimlab.create("nesterov", model.parameters(), lr=0.1) # doctest: +SKIP
>>> transform = optimlab.chain(optimlab.clip_by_global_norm(1.0), optimlab.scale_by_adam(),
...                            optimlab.add_decayed_weights(0.01),
...                            optimlab.scale_by_learning_rate(3e-4))
"""

from . import aliases, schedules
from .catalog import create, optimizer_class, optimizers
from .optimizer import Optimizer
from .tensorlist import TensorList
from .transform import Transform, chain
from .transforms import *  # noqa: F403 (the transforms are the public API)
from .transforms import __all__ as _transforms
from .wrappers import Lookahead

# The optimizers, torch.optim-style classes and their chains, as `aliases` registers them.
globals().update(aliases.EXPORTS)

__version__ = "0.1.0"

__all__ = [
    *aliases.EXPORTS, "create", "optimizer_class", "optimizers", "Lookahead", "Optimizer", "TensorList", "Transform", "chain", "schedules",
    *_transforms,
]
