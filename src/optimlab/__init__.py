"""optimlab: composable, fast PyTorch optimizers, and a lab to choose among them.

>>> import optimlab
>>> optimizer = optimlab.Adam(model.parameters(), lr=1e-3)            # doctest: +SKIP
>>> optimizer = optimlab.create("nesterov", model.parameters(), lr=0.1) # doctest: +SKIP
>>> transform = optimlab.chain(optimlab.clip_by_global_norm(1.0), optimlab.scale_by_adam(),
...                            optimlab.add_decayed_weights(0.01),
...                            optimlab.scale_by_learning_rate(3e-4))
"""

import importlib
import pkgutil

__version__ = "0.1.0"

_ALIASES = (
    "SGD", "Adadelta", "Adafactor", "Adagrad", "Adam", "Adamax", "AdamW", "EMAMomentum", "Lion", "Muon",
    "MuonWithAdamW", "NAdam", "RAdam", "RMSprop", "adadelta", "adafactor", "adagrad", "adam", "adamax", "adamw",
    "ema_momentum", "lion", "muon", "muon_with_adamw", "nadam", "radam", "rmsprop", "sgd",
)
#: public name -> the submodule that defines it (None: the name is a submodule); the transforms'
#: names come from `optimlab.transforms.__all__`
_HOMES = {**dict.fromkeys(_ALIASES, "aliases"), "create": "catalog", "optimizers": "catalog",
          "Optimizer": "optimizer", "TensorList": "tensorlist", "Transform": "transform", "chain": "transform",
          "schedules": None}


def __getattr__(name: str):
    """The public API, imported on first use: the ``optimlab`` command (``--help``, ``--version``)
    starts without importing torch."""
    if name == "__all__":
        value = [*_HOMES, *importlib.import_module(".transforms", __name__).__all__]
    elif name in _HOMES:
        module = importlib.import_module(f".{_HOMES[name] or name}", __name__)
        value = module if _HOMES[name] is None else getattr(module, name)
    elif name.startswith("_") or name in {m.name for m in pkgutil.iter_modules(__path__)}:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")  # a submodule not imported yet
    else:
        transforms = importlib.import_module(".transforms", __name__)
        if name not in transforms.__all__:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(transforms, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__getattr__("__all__")})
