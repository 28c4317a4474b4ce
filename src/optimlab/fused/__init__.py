"""The fused execution path: one generated C kernel per chain and dtype.

See `optimlab.fused.engine` for how it works and docs/performance.md for the numbers.
"""

from .spec import Elementwise

__all__ = ["Elementwise"]
