"""Gradient transformations: the building blocks every optimizer is chained from.

Every module of this package is imported, and every `Transform` class it defines (its
name not starting with ``_``) is exported here and from `optimlab`: a new transform is a
new module, listed nowhere else.
"""

import importlib
import inspect
import pkgutil

from ..transform import Transform

__all__ = []
for _module in pkgutil.iter_modules(__path__):
    _loaded = importlib.import_module(f"{__name__}.{_module.name}")
    for _name, _value in vars(_loaded).items():
        if (inspect.isclass(_value) and issubclass(_value, Transform) and _value.__module__ == _loaded.__name__
                and not _name.startswith("_")):
            globals()[_name] = _value
            __all__.append(_name)
__all__.sort()
del _module, _loaded, _name, _value
