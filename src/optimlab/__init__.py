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

#: public name -> the submodule that defines it (None: the name is a submodule). The optimizers
#: are `optimlab.aliases.EXPORTS` (each alias registers itself) and the transforms
#: `optimlab.transforms.__all__`: nothing here lists them by hand.
_HOMES = {"create": "catalog", "optimizer_class": "catalog", "optimizers": "catalog", "Optimizer": "optimizer",
          "TensorList": "tensorlist", "Transform": "transform", "chain": "transform", "Lookahead": "wrappers", "schedules": None}


def _module(name: str):
    return importlib.import_module(f".{name}", __name__)


def __getattr__(name: str):
    """The public API, imported on first use: the ``optimlab`` command (``--help``, ``--version``)
    starts without importing torch."""
    if name == "__all__":
        value = [*_HOMES, *_module("aliases").EXPORTS, *_module("transforms").__all__]
    elif name in _HOMES:
        module = _module(_HOMES[name] or name)
        value = module if _HOMES[name] is None else getattr(module, name)
    elif name.startswith("_") or name in {m.name for m in pkgutil.iter_modules(__path__)}:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")  # a submodule not imported yet
    elif name in _module("aliases").EXPORTS:
        value = _module("aliases").EXPORTS[name]
    elif name in _module("transforms").__all__:
        value = getattr(_module("transforms"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__getattr__("__all__")})
