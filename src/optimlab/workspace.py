"""Scratch tensors a transform reuses from step to step.

On the CPU a fresh large tensor costs its first touch: each new page faults in, about
0.3 ms per MB on this project's 2-core machine, which is as much as the arithmetic of an
elementwise pass over it. A transform that needs the same scratch every step (Muon's
stacked matrices and the Newton-Schulz products) takes it from a `Workspace` instead.

A workspace is not state: nothing in it outlives a step's use, so a checkpoint, a copy or
a pickle of the transform leaves it out (an empty one comes back). Each thread has its
own tensors, so two threads stepping optimizers that share a transform do not share
scratch.
"""

from __future__ import annotations

import threading

import torch


class Workspace:
    """Scratch tensors by (name, shape, dtype, device), made on first use and kept."""

    def __init__(self) -> None:
        self._tensors: dict[tuple, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """The scratch tensor ``name`` of this shape, dtype and device (uninitialized the
        first time, then as its last use left it)."""
        key = (threading.get_ident(), name, tuple(shape), dtype, device)
        tensor = self._tensors.get(key)
        if tensor is None:
            tensor = self._tensors[key] = torch.empty(shape, dtype=dtype, device=device)
        return tensor

    def clear(self) -> None:
        """Free every scratch tensor."""
        self._tensors.clear()

    def __reduce__(self):
        return (Workspace, ())

    def __deepcopy__(self, memo) -> Workspace:
        return Workspace()
